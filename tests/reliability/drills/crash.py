"""Drill 4 (issue 8): kill -9 of the service under write load, on SQLite and on PostgreSQL:
after a restart every acknowledged write is there and the database passes its integrity checks.
"""

from __future__ import annotations

import os
import random
import time

from .common import Verdict, say
from .fixtures import Load, create_server, create_vault, read_back
from .pg import have_pg, pg_checks, pg_fresh_db, sqlite_checks
from .service import Service


def drill_crash(long: bool) -> Verdict:
    v = Verdict("crash")
    rounds = 10 if long else 3
    say(f"== crash: kill -9 under write load, {rounds} rounds per backend")
    backends = ["sqlite"] + (["postgres"] if have_pg() else [])
    if not have_pg():
        v.check(False, "PostgreSQL cluster available")
    for backend in backends:
        if backend == "postgres":
            db, url = pg_fresh_db("crash")
        else:
            db, url = "", None
        svc = Service(f"crash-{backend}", url)
        svc.start()
        svc.wait_ready()
        vault = create_vault(svc.base, "crash-vault")
        server, _ = create_server(svc.base, "crash-server", [vault])
        all_created: dict[str, str] = {}
        all_revoked: set[str] = set()
        all_servers: dict[str, str] = {}
        per_round = []
        for rnd in range(1, rounds + 1):
            load = Load([svc.base], server, vault, workers=6, with_servers=True)
            load.created.update({t: s for t, s in all_created.items() if t not in all_revoked})
            # only new acknowledgements count in this round's figure
            known = set(load.created)
            load.run()
            time.sleep(random.uniform(1.0, 2.5) if not long else random.uniform(1.0, 4.0))
            svc.kill9()
            load.finish()
            new_created = {t: s for t, s in load.created.items() if t not in known}
            all_created.update(new_created)
            all_revoked |= load.revoked
            all_servers.update(load.servers)
            cut = [r for _, r in load.results if r.status == 0]
            t_restart = time.monotonic()
            svc.start()
            svc.wait_ready()
            restart_s = time.monotonic() - t_restart
            check = Load([svc.base], server, vault)
            check.created, check.revoked, check.servers = all_created, all_revoked, all_servers
            acked = len(new_created) + len(load.revoked) + len(load.servers)
            per_round.append(acked)
            say(f"  {backend} round {rnd}: {acked} writes acknowledged before the kill"
                f" ({len(new_created)} token creates, {len(load.revoked)} revokes, {len(load.servers)} server creates),"
                f" {len(cut)} requests cut off by it; restarted and ready in {restart_s:.2f} s")
            read_back(svc.base, check, v, f"{backend} round {rnd}")
        svc.stop()
        if backend == "sqlite":
            results = sqlite_checks(os.path.join(svc.data_dir, "connect-manager.db"))
        else:
            results = pg_checks(db)
        for what, ok, detail in results:
            v.check(ok, f"{backend}: {what} ({detail})")
        say(f"  {backend}: {rounds} kills, {sum(per_round)} acknowledged writes in all"
            f" (min {min(per_round)}, max {max(per_round)} per round)")
        v.check(min(per_round) > 0, f"{backend}: every round had acknowledged writes before its kill")
    return v
