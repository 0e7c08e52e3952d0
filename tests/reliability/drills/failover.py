"""Drill 6 (issue 12): PostgreSQL failover. PgNode (one cluster of a primary and its
synchronous streaming standby, on free ports), drill_failover (the primary killed -9, the standby
promoted, the replicas follow by themselves) and check_on_primary.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time

from .common import (
    FAIL_FAST_S,
    PG_BIN,
    PG_RUNAS,
    REPLICA_LAG_S,
    TMP,
    DrillFailure,
    Resp,
    Verdict,
    call,
    free_port,
    is_envelope,
    say,
)
from .fixtures import Load, create_server, create_vault, read_back, revocation_lag
from .service import Service

# Its own pair of clusters (the shared one of scripts/drill is not used): a primary and a
# synchronous streaming standby made from it with pg_basebackup -R, on free ports, under a
# directory scripts/drill also removes (FAILOVER_CLUSTERS lists them) should this script be
# killed.

FAILOVER_CLUSTERS = os.path.join(TMP, "failover-clusters") if TMP else ""
FAILOVER_WRITES = ("token.create", "token.revoke", "server.create")


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return stat[stat.rindex(")") + 2:].split()[0] not in ("Z", "X")
    except (OSError, ValueError):
        return False


class PgNode:
    """One PostgreSQL cluster of the failover pair, run as PG_RUNAS."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"connect-manager-failover-{name}.", dir="/tmp")
        with open(FAILOVER_CLUSTERS, "a") as f:
            f.write(self.dir + "\n")
        if PG_RUNAS:
            shutil.chown(self.dir, PG_RUNAS, PG_RUNAS)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "sock")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.run("mkdir", self.sock)

    def run(self, *cmd: str) -> None:
        if cmd[0] != "mkdir":
            cmd = (os.path.join(PG_BIN, cmd[0]), *cmd[1:])
        if PG_RUNAS:
            cmd = ("runuser", "-u", PG_RUNAS, "--", *cmd)
        out = subprocess.run(cmd, cwd="/", capture_output=True, text=True)
        if out.returncode != 0:
            raise DrillFailure(f"{self.name}: {' '.join(cmd[-6:])} failed: {(out.stdout + out.stderr)[-600:]}")

    def initdb(self) -> None:
        self.run("initdb", "-D", self.data, "--auth=trust", "-U", "postgres", "--encoding=UTF8",
                 "--no-locale", "-N")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# scripts/drill failover\nlisten_addresses = '127.0.0.1'\nmax_connections = 200\n"
                    "synchronous_commit = on\nwal_level = replica\nhot_standby = on\n")

    def standby_of(self, primary: "PgNode") -> None:
        """A fresh copy of `primary`, streaming from it (-R), ready to be its synchronous standby;
        never itself waiting for a standby once promoted."""
        if os.path.exists(self.data):
            shutil.rmtree(self.data)
        self.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                 "-D", self.data, "-R", "-X", "stream", "-c", "fast")
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            f.write("synchronous_standby_names = ''\n")

    def start(self) -> None:
        self.run("pg_ctl", "start", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                 "-o", f"-p {self.port} -k {self.sock}")

    def postmaster(self) -> tuple[int, int | None]:
        """The postmaster's process ID and its System V shared memory ID (0 when it is gone)."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                lines = f.read().splitlines()
        except OSError:
            return 0, None
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
        shm = lines[6].split() if len(lines) > 6 else []
        shmid = int(shm[1]) if len(shm) == 2 and shm[1].isdigit() else None
        if pid and not alive(pid):
            pid = 0
        return pid, shmid

    def kill9(self) -> int:
        """The primary is lost: SIGKILL to the postmaster and every one of its processes at once
        (no shutdown, no goodbye to clients beyond the kernel closing their sockets). Returns how
        many processes were killed."""
        pid, shmid = self.postmaster()
        if not pid:
            raise DrillFailure(f"{self.name}: no running postmaster to kill")
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        stat = f.read()
                    if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                        children.append(int(entry))
                except (OSError, ValueError):
                    pass
        for p in [pid, *children]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(alive(p) for p in [pid, *children]) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.remove_shm(shmid)
        return 1 + len(children)

    @staticmethod
    def remove_shm(shmid: int | None) -> None:
        # A killed postmaster leaves its (small) System V segment behind.
        if shmid is not None:
            subprocess.run(["ipcrm", "-m", str(shmid)], capture_output=True)

    def promote(self) -> None:
        self.run("pg_ctl", "promote", "-D", self.data, "-w", "-t", "60")

    def stop(self) -> None:
        pid, shmid = self.postmaster()
        if pid:
            try:
                self.run("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w", "-t", "30")
            except DrillFailure:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.remove_shm(shmid)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, db: str, sql: str) -> list[list[str]]:
        out = subprocess.run(
            [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
            check=True, capture_output=True, text=True,
        ).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def make_synchronous(self, standby: "PgNode") -> float:
        """Has this primary wait for `standby` on every commit; returns once it streams as the
        synchronous standby (seconds taken)."""
        self.psql("postgres", "ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.psql("postgres", "SELECT pg_reload_conf()")
        t = time.monotonic()
        while time.monotonic() - t < 60:
            rows = self.psql("postgres", "SELECT state, sync_state FROM pg_stat_replication")
            if ["streaming", "sync"] in rows:
                return time.monotonic() - t
            time.sleep(0.05)
        raise DrillFailure(f"{standby.name} did not become {self.name}'s synchronous standby within 60 s")


def drill_failover(long: bool) -> Verdict:
    v = Verdict("failover")
    rounds = 3 if long else 1
    say(f"== failover: a primary and a synchronous standby, the primary killed (-9) under write load"
        f" and the standby promoted; {rounds} round(s)")
    if not (PG_BIN and os.path.exists(os.path.join(PG_BIN, "pg_basebackup"))):
        v.check(False, "PostgreSQL server binaries (with pg_basebackup) available")
        return v
    nodes = [PgNode("a"), PgNode("b")]
    replicas: list[Service] = []
    load: Load | None = None
    try:
        primary, standby = nodes
        t0 = time.monotonic()
        primary.initdb()
        primary.start()
        standby.standby_of(primary)
        standby.start()
        primary.make_synchronous(standby)
        say(f"  primary {primary.name} on 127.0.0.1:{primary.port}, synchronous standby {standby.name} on"
            f" 127.0.0.1:{standby.port} (streaming, sync_state=sync), set up in {time.monotonic() - t0:.1f} s")
        primary.psql("postgres", "CREATE DATABASE drill_failover")
        url = (f"postgres://postgres@127.0.0.1:{nodes[0].port},127.0.0.1:{nodes[1].port}/drill_failover"
               "?target_session_attrs=read-write")
        say(f"  DATABASE_URL={url}")
        replicas = [Service(f"failover-{i}", url) for i in range(2)]
        for s in replicas:
            s.start()
        for s in replicas:
            s.wait_ready()
        bases = [s.base for s in replicas]
        vault = create_vault(bases[0], "failover-vault")
        server, creds = create_server(bases[0], "failover-server", [vault])
        load = Load(bases, server, vault, workers=4, with_servers=True)
        load.run()
        say("  two replicas, 4 writers round-robin (token create and revoke, server create, server get)")
        figures = []
        for rnd in range(1, rounds + 1):
            time.sleep(3.0 if long else 2.0)
            mark = len(load.results)
            t_kill = time.monotonic()
            killed = primary.kill9()
            t_killed = time.monotonic()
            standby.promote()
            t_promoted = time.monotonic()
            # each replica writes again (a probe write per replica, besides the load)
            recovered: dict[str, float] = {}
            probes: list[Resp] = []
            while time.monotonic() - t_promoted < 30 and len(recovered) < len(bases):
                for b in bases:
                    if b in recovered:
                        continue
                    w = call(b, "POST", f"/v1/connect/servers/{server}/tokens",
                             {"name": "after-failover", "vaults": [{"vault": vault}]}, timeout=10)
                    probes.append(w)
                    if w.status == 201:
                        recovered[b] = w.ended
                        with load.lock:
                            load.created[w.body["id"]] = server
                time.sleep(0.02)
            time.sleep(2.0)  # the load goes on against the new primary
            with load.lock:
                results = [r for _, r in load.results[mark:]]
                writes = [r for k, r in load.results[mark:] if k in FAILOVER_WRITES]
            everything = results + probes
            after_kill = [r for r in everything if r.ended > t_kill]
            failed = [r for r in after_kill if r.status not in (200, 201, 204)]
            n503 = [r for r in failed if r.status == 503]
            other = [r for r in failed if r.status != 503]
            bad_env = [r for r in n503 if not is_envelope(r.body)]
            # Counted from the moment every process of the old primary was gone: a write sent
            # while the signals went out may still have been committed (and replicated) by it.
            acks = [r.ended for r in writes + probes if r.status in (200, 201, 204) and r.started >= t_killed]
            first_ack = min(acks, default=float("inf"))
            window = (max(r.ended for r in n503) - min(r.ended for r in n503)) if n503 else 0.0
            worst_replica = max(recovered.values(), default=float("inf"))
            slowest = max((r.elapsed for r in after_kill), default=0.0)
            max_fail = max((r.elapsed for r in failed), default=0.0)
            figures.append((first_ack - t_killed, t_promoted - t_killed, first_ack - t_promoted, window,
                            len(n503), worst_replica - t_killed))
            say(f"  round {rnd}: {primary.name} killed ({killed} processes, all gone {t_killed - t_kill:.2f} s after"
                f" the first signal) -> {standby.name} promoted in {t_promoted - t_killed:.2f} s (pg_ctl promote -w);"
                f" first acknowledged write {first_ack - t_killed:.2f} s after the kill"
                f" ({first_ack - t_promoted:.2f} s after the promotion), both replicas writing"
                f" {worst_replica - t_killed:.2f} s after it")
            say(f"  round {rnd}: {len(after_kill)} requests answered after the kill: {len(n503)} 503s over"
                f" {window:.2f} s, {len(other)} other failures; failed-request latency max {max_fail*1000:.0f} ms,"
                f" slowest request {slowest*1000:.0f} ms")
            v.check(len(recovered) == len(bases),
                    f"round {rnd}: both replicas write on the new primary by themselves"
                    f" ({worst_replica - t_promoted:.2f} s after the promotion)")
            v.check(not other, f"round {rnd}: every failed request is a 503"
                    + (f" (others: {sorted({(r.status, r.error[:60]) for r in other})[:5]})" if other else ""))
            v.check(not bad_env, f"round {rnd}: every 503 carries the error envelope ({len(bad_env)} without)")
            no503_after = [r for r in n503 if r.started > worst_replica]
            v.check(not no503_after,
                    f"round {rnd}: no 503 once a host accepts writes and both replicas found it"
                    f" ({len(no503_after)} after)")
            v.check(slowest < FAIL_FAST_S * 5,
                    f"round {rnd}: no request hung (slowest {slowest:.2f} s; bound {FAIL_FAST_S * 5:.0f} s)")
            # every acknowledged write so far, before and after the failover, is on the new primary
            check_on_primary(standby, load, v, f"round {rnd}")
            if rnd < rounds:
                # The lost primary comes back as the new primary's synchronous standby.
                t_rebuild = time.monotonic()
                primary.stop()
                primary.standby_of(standby)
                primary.start()
                standby.make_synchronous(primary)
                say(f"  round {rnd}: {primary.name} rebuilt as {standby.name}'s synchronous standby in"
                    f" {time.monotonic() - t_rebuild:.1f} s (pg_basebackup -R)")
            primary, standby = standby, primary
        load.finish()
        hung = [r for _, r in load.results if r.status == 0]
        v.check(not hung, f"no request hung or lost its connection ({len(hung)} of {len(load.results)})")
        read_back(bases[0], load, v, "through the API after the failover(s)")
        for s in replicas:
            text = s.log_text()
            switched = text.count("database host changed")
            v.check(switched >= rounds, f"{s.name}: followed the new primary ({switched} host changes logged)")
            errors = [line for line in text.splitlines() if " ERROR " in line]
            kinds = sorted({line.split(" ERROR ", 1)[1].rsplit("}: ", 1)[-1][:90] for line in errors})
            say(f"  {s.name}: {len(errors)} ERROR lines in its log ({'; '.join(kinds[:4]) or 'none'})")
            v.check("panicked" not in text, f"{s.name}: no panic in its log")
        # The change feed listens on the new primary: a revocation on one replica reaches the other.
        before, lag = revocation_lag(bases, server, vault, creds)
        v.check(before.status == 200 and lag is not None and lag < REPLICA_LAG_S,
                f"after the failover a revocation on one replica is seen on the other in"
                f" {lag if lag is None else round(lag, 3)} s")
        if figures:
            rec = [f[0] for f in figures]
            say(f"  recovery (kill -> first acknowledged write): min {min(rec):.2f} s, max {max(rec):.2f} s;"
                f" promotion {min(f[1] for f in figures):.2f}-{max(f[1] for f in figures):.2f} s;"
                f" promotion -> first write {min(f[2] for f in figures):.2f}-{max(f[2] for f in figures):.2f} s;"
                f" 503 window {min(f[3] for f in figures):.2f}-{max(f[3] for f in figures):.2f} s"
                f" ({sum(f[4] for f in figures)} 503s in all); {load.acknowledged()} acknowledged writes")
        for s in replicas:
            s.stop()
    finally:
        if load is not None:
            load.finish()
        for s in replicas:
            s.stop()
        for n in nodes:
            n.remove()
    return v


def check_on_primary(node: PgNode, load: Load, v: Verdict, label: str) -> None:
    """Every acknowledged write is in the (new) primary's tables, read there directly."""
    # What was acknowledged first, then the tables (writes go on meanwhile).
    with load.lock:
        created, revoked, made = dict(load.created), set(load.revoked), dict(load.servers)
    tokens = dict((r[0], r[1]) for r in node.psql("drill_failover", "SELECT id, state FROM tokens"))
    servers = {r[0] for r in node.psql("drill_failover", "SELECT id FROM servers")}
    missing = [t for t in created if t not in tokens]
    not_revoked = [t for t in revoked if tokens.get(t) != "REVOKED"]
    missing_servers = [s for s in made if s not in servers]
    v.check(not missing and not not_revoked and not missing_servers,
            f"{label}: all {len(created) + len(revoked) + len(made)} acknowledged writes are on the new"
            f" primary {node.name} ({len(created)} token creates, {len(revoked)} revokes,"
            f" {len(made)} server creates); missing: {len(missing)} tokens, {len(not_revoked)} revokes,"
            f" {len(missing_servers)} servers")
