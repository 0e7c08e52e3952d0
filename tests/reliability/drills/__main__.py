"""Fault drills for connect-manager (issue 8, items 3-5; issue 12: failover), run by scripts/drill.

    python3 -m drills <outage|crash|replicas|failover|disk-full|all> [--long]

(from tests/reliability, or with it on PYTHONPATH). Python 3 standard library only. scripts/drill
starts the throwaway PostgreSQL cluster (scripts/lib/postgres.sh) and passes it in the environment:

  DRILL_BIN          the connect-manager binary
  DRILL_TMP          a scratch directory (removed by scripts/drill)
  DRILL_PG_BIN       PostgreSQL's bin dir (pg_ctl, psql, pg_amcheck)
  DRILL_PG_DATA      the cluster's data dir, DRILL_PG_LOG its log, DRILL_PG_PORT its port
  DRILL_PG_RUNAS     the system user pg_ctl must run as ("" = the current user)

Every service runs on a free 127.0.0.1 port with its own data dir; every PostgreSQL drill gets a
fresh database. Each drill prints what it tried, how often, and what held, with numbers, and
the process exits 1 when anything did not hold. Services are stopped on every exit path.

What lives where: common.py (environment, bounds, keys, say/Verdict, HTTP helpers, free_port,
pct), service.py (Service, ALL_SERVICES, stop_all), pg.py (the shared PostgreSQL cluster and the
database checks), fixtures.py (API fixtures, Load, read_back), one module per drill (outage.py,
crash.py, replicas.py, failover.py, disk_full.py) and this file: the drill table and main.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from .common import BIN, TMP, DrillFailure, Verdict, say
from .crash import drill_crash
from .disk_full import drill_disk_full
from .failover import drill_failover
from .outage import drill_outage
from .replicas import drill_replicas
from .service import stop_all


def main() -> int:
    args = sys.argv[1:]
    long = "--long" in args
    args = [a for a in args if a != "--long"]
    if len(args) != 1 or args[0] not in ("outage", "crash", "replicas", "failover", "disk-full", "all"):
        print("usage: python3 -m drills <outage|crash|replicas|failover|disk-full|all> [--long]", file=sys.stderr)
        return 2
    if not BIN or not TMP:
        print("DRILL_BIN and DRILL_TMP must be set (run scripts/drill)", file=sys.stderr)
        return 2
    which = ["outage", "crash", "replicas", "failover", "disk-full"] if args[0] == "all" else args[0:1]
    drills = {"outage": drill_outage, "crash": drill_crash, "replicas": drill_replicas,
              "failover": drill_failover, "disk-full": drill_disk_full}
    verdicts = []
    started = time.monotonic()
    try:
        for name in which:
            t = time.monotonic()
            try:
                verdict = drills[name](long)
            except DrillFailure as e:
                verdict = Verdict(name)
                verdict.check(False, f"drill aborted: {e}")
            except (subprocess.CalledProcessError, OSError) as e:
                verdict = Verdict(name)
                verdict.check(False, f"drill aborted: {e}")
            say(f"== {name}: {'held' if not verdict.failures else 'FAILED'} ({time.monotonic() - t:.0f} s)")
            verdicts.append(verdict)
            stop_all()
    finally:
        stop_all()
    failed = [v for v in verdicts if v.failures]
    say(f"drills: {len(verdicts) - len(failed)}/{len(verdicts)} held"
        f" ({'long' if long else 'quick'} mode, {time.monotonic() - started:.0f} s)")
    for v in failed:
        for f in v.failures:
            say(f"  FAILED {v.name}: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
