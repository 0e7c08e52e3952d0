#!/usr/bin/env python3
"""Fault drills for connect-manager (issue 8, items 3-5; issue 12: failover), run by scripts/drill.

    drills.py <outage|crash|replicas|failover|disk-full|all> [--long]

Python 3 standard library only. scripts/drill starts the throwaway PostgreSQL cluster
(scripts/lib/postgres.sh) and passes it in the environment:

  DRILL_BIN          the connect-manager binary
  DRILL_TMP          a scratch directory (removed by scripts/drill)
  DRILL_PG_BIN       PostgreSQL's bin dir (pg_ctl, psql, pg_amcheck)
  DRILL_PG_DATA      the cluster's data dir, DRILL_PG_LOG its log, DRILL_PG_PORT its port
  DRILL_PG_RUNAS     the system user pg_ctl must run as ("" = the current user)

Every service runs on a free 127.0.0.1 port with its own data dir; every PostgreSQL drill gets a
fresh database. Each drill prints what it tried, how often, and what held, with numbers, and
the process exits 1 when anything did not hold. Services are stopped on every exit path.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

BIN = os.environ.get("DRILL_BIN", "")
TMP = os.environ.get("DRILL_TMP", "")
PG_BIN = os.environ.get("DRILL_PG_BIN", "")
PG_DATA = os.environ.get("DRILL_PG_DATA", "")
PG_LOG = os.environ.get("DRILL_PG_LOG", "")
PG_PORT = os.environ.get("DRILL_PG_PORT", "")
PG_RUNAS = os.environ.get("DRILL_PG_RUNAS", "")

# What "fail fast" means here: a request that fails while the database is down answers within
# this bound (sqlx would otherwise retry connecting up to its 5 s acquire timeout).
FAIL_FAST_S = 1.0
RECOVERY_S = 5.0  # PostgreSQL back -> the service serves again within this
REPLICA_LAG_S = 1.0  # a change on one replica is seen on every other within this
REQUEST_TIMEOUT_S = 30.0  # a request that takes longer counts as hanging

MASTER_KEY = secrets.token_urlsafe(48)
OWNER_KEY = "drill-owner-" + secrets.token_urlsafe(32)

ALL_SERVICES: list["Service"] = []


def say(msg: str) -> None:
    print(msg, flush=True)


class DrillFailure(Exception):
    pass


class Verdict:
    """Collects what held and what did not for one drill."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        say(f"  [{'ok' if ok else 'FAIL'}] {what}")
        if not ok:
            self.failures.append(what)
        return ok


# ---- HTTP ------------------------------------------------------------------------------------


@dataclass
class Resp:
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    body: Any
    elapsed: float
    error: str = ""
    started: float = 0.0
    ended: float = 0.0


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = OWNER_KEY,
    basic: tuple[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT_S,
) -> Resp:
    host, port = base.removeprefix("http://").split(":")
    headers = {"Connection": "close"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if basic is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{basic[0]}:{basic[1]}".encode()
        ).decode()
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    start = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        raw = r.read()
        end = time.monotonic()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return Resp(r.status, parsed, end - start, started=start, ended=end)
    except (OSError, http.client.HTTPException) as e:
        end = time.monotonic()
        return Resp(0, None, end - start, f"{type(e).__name__}: {e}", start, end)
    finally:
        conn.close()


def expect(r: Resp, status: int, what: str) -> Any:
    if r.status != status:
        raise DrillFailure(f"{what}: expected HTTP {status}, got {r.status} {r.error} {r.body!r:.500}")
    return r.body


def is_envelope(body: Any) -> bool:
    """E1: {"error": {"code", "message", "details"}, "request_id"}."""
    if not isinstance(body, dict) or set(body) != {"error", "request_id"}:
        return False
    err = body["error"]
    return (
        isinstance(err, dict)
        and isinstance(err.get("code"), str)
        and isinstance(err.get("message"), str)
        and isinstance(err.get("details"), dict)
        and isinstance(body["request_id"], str)
        and bool(body["request_id"])
    )


def jwt_kid(jwt: str) -> str:
    head = jwt.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


# ---- the service -----------------------------------------------------------------------------


class Service:
    def __init__(self, name: str, database_url: str | None, data_dir: str | None = None) -> None:
        self.name = name
        self.database_url = database_url
        self.data_dir = data_dir or os.path.join(TMP, f"data-{name}")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(TMP, f"{name}.log")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CONNECT_MANAGER_") and k not in ("DATABASE_URL", "RUST_LOG")
        }
        env.update(
            CONNECT_MANAGER_BIND=f"127.0.0.1:{self.port}",
            CONNECT_MANAGER_DATA_DIR=self.data_dir,
            CONNECT_MANAGER_BOOTSTRAP_KEY=OWNER_KEY,
            CONNECT_MANAGER_MASTER_KEY=MASTER_KEY,
            CONNECT_MANAGER_AUTH_FAILURES_PER_MINUTE="0",
            LOG_FORMAT="text",
            NO_COLOR="1",
            RUST_LOG="info",
        )
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"--- start {self.starts} ---\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [BIN, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        # scripts/drill stops whatever is left of these should this script itself be killed.
        with open(os.path.join(TMP, "service.pids"), "a") as pids:
            pids.write(f"{self.proc.pid}\n")
        if self not in ALL_SERVICES:
            ALL_SERVICES.append(self)

    def wait_ready(self, timeout: float = 60.0) -> float:
        start = time.monotonic()
        last = "no answer"
        while time.monotonic() - start < timeout:
            if self.proc is None or self.proc.poll() is not None:
                raise DrillFailure(
                    f"{self.name} exited before it was ready (status {self.proc and self.proc.returncode});"
                    f" log: {self.log_path}\n{self.log_tail()}"
                )
            r = call(self.base, "GET", "/readyz", token=None, timeout=2)
            if r.status == 200:
                return time.monotonic() - start
            last = r.error or f"HTTP {r.status}"
            time.sleep(0.05)
        raise DrillFailure(f"{self.name} not ready within {timeout:.0f} s (last: {last})\n{self.log_tail()}")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                say(f"  note: {self.name} did not stop within 10 s of SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n: int = 30) -> str:
        return "\n".join("    " + line for line in self.log_text().splitlines()[-n:])


def stop_all() -> None:
    for s in ALL_SERVICES:
        try:
            s.stop()
        except Exception as e:  # keep stopping the others
            say(f"  note: stopping {s.name}: {e}")


# ---- PostgreSQL ------------------------------------------------------------------------------


def have_pg() -> bool:
    return bool(PG_BIN and PG_DATA and PG_PORT)


def pg_ctl(*args: str) -> None:
    cmd = [os.path.join(PG_BIN, "pg_ctl"), *args]
    if PG_RUNAS:
        cmd = ["runuser", "-u", PG_RUNAS, "--", *cmd]
    subprocess.run(cmd, check=True, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def pg_stop() -> None:
    pg_ctl("stop", "-D", PG_DATA, "-m", "fast", "-w", "-t", "60")


def pg_start() -> None:
    pg_ctl("start", "-D", PG_DATA, "-l", PG_LOG, "-o", f"-p {PG_PORT}", "-w", "-t", "60")


def pg_ensure_running() -> None:
    """After a drill that stops PostgreSQL ended early: start it again for the next drill."""
    try:
        pg_ctl("status", "-D", PG_DATA)
    except subprocess.CalledProcessError:
        pg_start()


def psql(db: str, sql: str) -> list[list[str]]:
    out = subprocess.run(
        [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
         "-h", "127.0.0.1", "-p", PG_PORT, "-U", "postgres", "-d", db, "-c", sql],
        check=True, capture_output=True, text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


_db_counter = 0


def pg_fresh_db(label: str) -> tuple[str, str]:
    global _db_counter
    _db_counter += 1
    name = f"drill_{label}_{_db_counter}_{os.getpid()}"
    psql("postgres", f"CREATE DATABASE {name}")
    return name, f"postgres://postgres@127.0.0.1:{PG_PORT}/{name}"


# ---- checks on the database ------------------------------------------------------------------

# Relations the service must keep whatever happens to it (same SQL on both backends).
RELATIONAL_CHECKS = [
    ("every token's server exists",
     "SELECT count(*) FROM tokens t LEFT JOIN servers s ON s.id = t.server_id WHERE s.id IS NULL"),
    ("token state and revoked_at agree",
     "SELECT count(*) FROM tokens WHERE (state = 'REVOKED' AND revoked_at IS NULL)"
     " OR (state = 'ACTIVE' AND revoked_at IS NOT NULL)"),
    ("no active token of a deleted server",
     "SELECT count(*) FROM tokens t JOIN servers s ON s.id = t.server_id"
     " WHERE s.state = 'DELETED' AND t.state = 'ACTIVE'"),
    ("no vault grant of a deleted server",
     "SELECT count(*) FROM server_vaults g JOIN servers s ON s.id = g.server_id WHERE s.state = 'DELETED'"),
    ("every token has a vault scope (R7)",
     "SELECT count(*) FROM tokens t WHERE NOT EXISTS"
     " (SELECT 1 FROM token_vaults v WHERE v.token_id = t.id)"),
    ("every token's signing key exists",
     "SELECT count(*) FROM tokens t LEFT JOIN signing_keys k ON k.kid = t.kid WHERE k.kid IS NULL"),
    ("every token and server has its create audit event (A5, same transaction)",
     "SELECT (SELECT count(*) FROM tokens t WHERE NOT EXISTS (SELECT 1 FROM audit_events a"
     "  WHERE a.target_id = t.id AND a.action = 'token.create'))"
     " + (SELECT count(*) FROM servers s WHERE NOT EXISTS (SELECT 1 FROM audit_events a"
     "  WHERE a.target_id = s.id AND a.action = 'server.create'))"),
]


def sqlite_checks(path: str) -> list[tuple[str, bool, str]]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        results = []
        ic = [r[0] for r in con.execute("PRAGMA integrity_check")]
        results.append(("PRAGMA integrity_check", ic == ["ok"], "; ".join(ic[:5])))
        fk = con.execute("PRAGMA foreign_key_check").fetchall()
        results.append(("PRAGMA foreign_key_check", not fk, f"{len(fk)} violations"))
        for what, sql in RELATIONAL_CHECKS:
            n = con.execute(sql).fetchone()[0]
            results.append((what, n == 0, f"{n} violations"))
        return results
    finally:
        con.close()


def pg_checks(db: str) -> list[tuple[str, bool, str]]:
    results = []
    amcheck = subprocess.run(
        [os.path.join(PG_BIN, "pg_amcheck"), "-h", "127.0.0.1", "-p", PG_PORT, "-U", "postgres",
         "--install-missing", "--heapallindexed", "--parent-check", "-d", db],
        capture_output=True, text=True,
    )
    detail = (amcheck.stdout + amcheck.stderr).strip().replace("\n", " | ")[:400]
    results.append(("pg_amcheck (heap, all indexes, parent check)", amcheck.returncode == 0,
                    detail or "no corruption reported"))
    for what, sql in RELATIONAL_CHECKS:
        n = int(psql(db, sql)[0][0])
        results.append((what, n == 0, f"{n} violations"))
    return results


# ---- fixtures through the API ----------------------------------------------------------------


def create_vault(base: str, name: str) -> str:
    return expect(call(base, "POST", "/v1/vaults", {"name": name, "type": "USER_CREATED"}), 201,
                  "create vault")["id"]


@dataclass
class ServerCreds:
    id: str
    secret: str


def credentials_secret(creds_json: Any, label: str) -> ServerCreds:
    """Decodes a credentials file with `connect-manager credentials show --reveal` (the secret is
    AES-GCM sealed; the standard library has no AES-GCM). The secret is never printed."""
    path = os.path.join(TMP, f"creds-{label}-{secrets.token_hex(4)}.json")
    with open(path, "w") as f:
        json.dump(creds_json, f)
    out = subprocess.run([BIN, "credentials", "show", path, "--reveal"], capture_output=True,
                         text=True, check=True).stdout
    os.unlink(path)
    fields = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    return ServerCreds(fields["server_id"].strip(), fields["secret"].strip())


def create_server(base: str, name: str, vaults: list[str]) -> tuple[str, ServerCreds]:
    body = expect(call(base, "POST", "/v1/connect/servers", {"name": name, "vaults": vaults}), 201,
                  "create server")
    return body["server"]["id"], credentials_secret(body["credentials"], name)


def create_token(base: str, server: str, vaults: list[str], name: str = "t") -> dict:
    return expect(call(base, "POST", f"/v1/connect/servers/{server}/tokens",
                       {"name": name, "vaults": [{"vault": v} for v in vaults]}), 201, "create token")


def revocation_lag(bases: list[str], server: str, vault: str, creds: "ServerCreds") -> tuple[Resp, float | None]:
    """A new token, introspected on the second replica, revoked on the first: returns that first
    introspection and how long the second took to see the revocation (None: not within 5 s)."""
    tok = create_token(bases[0], server, [vault])
    before = call(bases[1], "POST", "/v1/introspect", {"token": tok["token"]}, basic=(creds.id, creds.secret))
    expect(call(bases[0], "DELETE", f"/v1/connect/tokens/{tok['id']}"), 200, "revoke")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        r = call(bases[1], "POST", "/v1/introspect", {"token": tok["token"]}, basic=(creds.id, creds.secret))
        if r.status == 200 and r.body.get("active") is False:
            return before, r.ended - t0
    return before, None


def list_all_tokens(base: str, server: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    cursor = None
    while True:
        q = f"/v1/connect/tokens?server={server}&limit=200" + (f"&cursor={cursor}" if cursor else "")
        page = expect(call(base, "GET", q), 200, "list tokens")
        for t in page["items"]:
            out[t["id"]] = t
        cursor = page.get("next_cursor")
        if not cursor:
            return out


# ---- load ------------------------------------------------------------------------------------


@dataclass
class Load:
    """Worker threads writing through the API and recording every answer."""

    bases: list[str]
    server: str
    vault: str
    workers: int = 4
    results: list[tuple[str, Resp]] = field(default_factory=list)
    created: dict[str, str] = field(default_factory=dict)  # token id -> server id (201s)
    revoked: set[str] = field(default_factory=set)  # token ids whose revoke was acknowledged
    servers: dict[str, str] = field(default_factory=dict)  # server id -> name (201s)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    with_servers: bool = False

    def run(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(REQUEST_TIMEOUT_S + 5)

    def _work(self, i: int) -> None:
        rnd = random.Random(i)
        n = 0
        while not self.stop.is_set():
            base = self.bases[n % len(self.bases)]
            n += 1
            roll = rnd.random()
            with self.lock:
                candidates = [t for t in self.created if t not in self.revoked]
            if self.with_servers and roll < 0.15:
                name = f"load-{i}-{n}-{secrets.token_hex(3)}"
                r = call(base, "POST", "/v1/connect/servers", {"name": name, "vaults": [self.vault]})
                kind = "server.create"
                if r.status == 201:
                    with self.lock:
                        self.servers[r.body["server"]["id"]] = name
            elif roll < 0.3 and candidates:
                tid = rnd.choice(candidates)
                r = call(base, "DELETE", f"/v1/connect/tokens/{tid}?server={self.server}")
                kind = "token.revoke"
                if r.status in (200, 204):
                    with self.lock:
                        self.revoked.add(tid)
            elif roll < 0.4:
                r = call(base, "GET", f"/v1/connect/servers/{self.server}")
                kind = "server.get"
            else:
                r = call(base, "POST", f"/v1/connect/servers/{self.server}/tokens",
                         {"name": f"load-{i}-{n}", "vaults": [{"vault": self.vault}]})
                kind = "token.create"
                if r.status == 201:
                    with self.lock:
                        self.created[r.body["id"]] = self.server
            with self.lock:
                self.results.append((kind, r))

    def acknowledged(self) -> int:
        return len(self.created) + len(self.servers) + len(self.revoked)


def read_back(base: str, load: Load, v: Verdict, label: str) -> None:
    """Every acknowledged write is there: created tokens listed, revoked ones REVOKED, servers
    readable."""
    tokens = list_all_tokens(base, load.server)
    missing = [t for t in load.created if t not in tokens]
    not_revoked = [t for t in load.revoked if t in tokens and tokens[t]["state"] != "REVOKED"]
    missing_servers = [s for s in load.servers
                       if call(base, "GET", f"/v1/connect/servers/{s}").status != 200]
    total = load.acknowledged()
    v.check(not missing and not not_revoked and not missing_servers,
            f"{label}: all {total} acknowledged writes read back ({len(load.created)} token creates,"
            f" {len(load.revoked)} revokes, {len(load.servers)} server creates); missing:"
            f" {len(missing)} tokens, {len(not_revoked)} revokes, {len(missing_servers)} servers")


# ---- drill 3: database outage ----------------------------------------------------------------


def drill_outage(long: bool) -> Verdict:
    v = Verdict("outage")
    say("== outage: PostgreSQL stopped under load, then started again")
    if not have_pg():
        v.check(False, "PostgreSQL cluster available")
        return v
    rounds = 5 if long else 2
    outage_s = 8.0 if long else 4.0
    _, url = pg_fresh_db("outage")
    replicas = [Service(f"outage-{i}", url) for i in range(2)]
    for s in replicas:
        s.start()
    for s in replicas:
        s.wait_ready()
    bases = [s.base for s in replicas]
    vault = create_vault(bases[0], "outage-vault")
    server, creds = create_server(bases[0], "outage-server", [vault])
    say(f"  two replicas on one database, 4 writers round-robin; {rounds} round(s),"
        f" PostgreSQL down {outage_s:.0f} s each (pg_ctl stop -m fast / start)")
    load = Load(bases, server, vault, workers=4, with_servers=True)
    load.run()
    try:
        for rnd in range(1, rounds + 1):
            time.sleep(2.0)
            mark = len(load.results)
            t_down = time.monotonic()
            pg_stop()
            t_stopped = time.monotonic()
            # /readyz on both replicas during the outage
            ready_probe: list[Resp] = []
            while time.monotonic() - t_stopped < outage_s:
                for b in bases:
                    ready_probe.append(call(b, "GET", "/readyz", token=None))
                time.sleep(0.1)
            t_start = time.monotonic()
            pg_start()
            t_up = time.monotonic()
            # recovery: every replica answers /readyz 200 and takes a write
            recovered: dict[str, float] = {}
            while time.monotonic() - t_up < 30 and len(recovered) < len(bases):
                for b in bases:
                    if b in recovered:
                        continue
                    r = call(b, "GET", "/readyz", token=None, timeout=10)
                    if r.status == 200:
                        w = call(b, "POST", f"/v1/connect/servers/{server}/tokens",
                                 {"name": "after-outage", "vaults": [{"vault": vault}]}, timeout=10)
                        if w.status == 201:
                            recovered[b] = w.ended - t_up
                            with load.lock:
                                load.created[w.body["id"]] = server
                time.sleep(0.05)
            time.sleep(1.0)
            with load.lock:
                during = [(k, r) for k, r in load.results[mark:] if r.started >= t_stopped
                          and r.ended <= t_start]
                straddling = [(k, r) for k, r in load.results[mark:] if r.started < t_up
                              and r.ended > t_down]
            failed = [r for _, r in straddling if r.status not in (200, 201, 204)]
            n503 = [r for r in failed if r.status == 503]
            other = [r for r in failed if r.status != 503]
            bad_env = [r for r in n503 if not is_envelope(r.body)]
            max_fail = max((r.elapsed for r in failed), default=0.0)
            say(f"  round {rnd}: stop took {t_stopped - t_down:.2f} s; {len(straddling)} requests overlapped"
                f" the outage ({len(during)} wholly inside it), {len(n503)} answered 503,"
                f" {len(other)} other failures, {len(straddling) - len(failed)} succeeded (before/after)")
            v.check(not other, f"round {rnd}: every failed request is a 503"
                    + (f" (others: {sorted({(r.status, r.error[:60]) for r in other})[:5]})" if other else ""))
            v.check(all(r.status == 503 for _, r in during) and len(during) > 0,
                    f"round {rnd}: every request wholly inside the outage answered 503 ({len(during)})")
            v.check(not bad_env, f"round {rnd}: every 503 carries the error envelope ({len(bad_env)} without)")
            codes = sorted({r.body["error"]["code"] for r in n503 if is_envelope(r.body)})
            say(f"  round {rnd}: 503 codes {codes}; failed-request latency p50 {pct([r.elapsed for r in failed], 50)*1000:.0f} ms,"
                f" p99 {pct([r.elapsed for r in failed], 99)*1000:.0f} ms, max {max_fail*1000:.0f} ms")
            v.check(max_fail < FAIL_FAST_S,
                    f"round {rnd}: failed requests fail fast (max {max_fail:.3f} s < {FAIL_FAST_S} s)")
            rp_bad = [r for r in ready_probe if r.status != 503 or not is_envelope(r.body)]
            rp_max = max((r.elapsed for r in ready_probe), default=0.0)
            v.check(not rp_bad and bool(ready_probe),
                    f"round {rnd}: /readyz answered 503 (envelope) {len(ready_probe) - len(rp_bad)}/{len(ready_probe)}"
                    f" times during the outage, max {rp_max*1000:.0f} ms")
            worst = max(recovered.values(), default=float("inf"))
            v.check(len(recovered) == len(bases) and worst <= RECOVERY_S,
                    f"round {rnd}: both replicas ready and writing again {worst:.2f} s after PostgreSQL was"
                    f" back (pg_ctl start took {t_up - t_start:.2f} s; bound {RECOVERY_S:.0f} s)")
    finally:
        load.finish()
        pg_ensure_running()
    hung = [r for _, r in load.results if r.status == 0]
    v.check(not hung, f"no request hung or lost its connection ({len(hung)} of {len(load.results)})")
    read_back(bases[0], load, v, "after the outage(s)")
    # The change feed reconnected by itself: each replica logged it, and a revocation made on one
    # replica is seen on the other through introspection.
    for s in replicas:
        back = s.log_text().count("change feed back")
        v.check(back >= rounds, f"{s.name}: change feed reconnected ({back} times logged)")
    # The log of the 503s: one line when they start, then a count per 10 s (issue 12), never a
    # line per 503. Per round and replica: the first line and one or two counts.
    for s in replicas:
        lines = s.log_text().splitlines()
        unavailable = sum("database unavailable" in line for line in lines)
        errors = sum(" ERROR " in line or "\"ERROR\"" in line for line in lines)
        v.check(unavailable <= 3 * rounds,
                f"{s.name}: {unavailable} 'database unavailable' log lines for {rounds} outage(s)"
                f" ({errors} ERROR lines in all), not one per 503")
    before, lag = revocation_lag(bases, server, vault, creds)
    v.check(before.status == 200 and before.body.get("active") is True and lag is not None and lag < REPLICA_LAG_S,
            f"after the outage a revocation on one replica is seen on the other in {lag if lag is None else round(lag, 3)} s")
    stats = {}
    for k, r in load.results:
        stats.setdefault(k, [0, 0])
        stats[k][0] += 1
        stats[k][1] += r.status in (200, 201, 204)
    say("  requests by kind (total/succeeded): " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(stats.items())))
    for s in replicas:
        s.stop()
    return v


# ---- drill 4: crash --------------------------------------------------------------------------


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


# ---- drill 5: several replicas ---------------------------------------------------------------


def poll_all(bases: list[str], t_ack: float, probe, limit: float = 5.0,
             took: list[float] | None = None) -> list[float | None]:
    """For each replica, how long after t_ack `probe(base)` first held (None: not within limit).
    The lag includes the request that saw it, so it is an upper bound; that request's own
    duration is appended to `took`."""
    out: list[float | None] = [None] * len(bases)

    def one(i: int) -> None:
        while time.monotonic() - t_ack < limit:
            seen, r = probe(bases[i])
            if seen:
                out[i] = max(0.0, r.ended - t_ack)
                if took is not None:
                    took.append(r.elapsed)
                return
            time.sleep(0.01)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def drill_replicas(long: bool) -> Verdict:
    v = Verdict("replicas")
    rounds = 30 if long else 5
    say(f"== replicas: three serve processes started at once on one empty PostgreSQL database, {rounds} rounds per kind")
    if not have_pg():
        v.check(False, "PostgreSQL cluster available")
        return v
    db, url = pg_fresh_db("replicas")
    replicas = [Service(f"replica-{i}", url) for i in range(3)]
    t0 = time.monotonic()
    for s in replicas:
        s.start()
    ready = [s.wait_ready() for s in replicas]
    say(f"  all three started together and ready {max(ready):.2f} s later")
    files = sorted(f for f in os.listdir(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "..", "..", "migrations", "postgres"))
                   if f.endswith(".sql"))
    rows = psql(db, "SELECT version, success FROM _sqlx_migrations ORDER BY version")
    versions = [int(r[0]) for r in rows]
    expected = [int(f.split("_")[0]) for f in files]
    v.check(versions == expected and all(r[1] == "t" for r in rows),
            f"_sqlx_migrations holds each of the {len(expected)} migrations once, all successful (versions {versions})")
    for s in replicas:
        text = s.log_text()
        errors = [line for line in text.splitlines() if " ERROR " in line or "panicked" in line]
        v.check(s.proc is not None and s.proc.poll() is None and not errors,
                f"{s.name} started cleanly (running, {len(errors)} ERROR lines in its log)")
    owners = psql(db, "SELECT count(*) FROM users")[0][0]
    v.check(owners == "1", f"one bootstrap owner for three concurrent first starts ({owners})")
    bases = [s.base for s in replicas]
    v1 = create_vault(bases[0], "replica-v1")
    v2 = create_vault(bases[1], "replica-v2")
    server, creds = create_server(bases[2], "replica-server", [v1, v2])
    # Each replica may make a signing key on a concurrent first start (T3: the newest signs, all
    # verify); within a second every replica must sign with the same, newest one.
    keys0 = int(psql(db, "SELECT count(*) FROM signing_keys")[0][0])
    newest = psql(db, "SELECT kid FROM signing_keys ORDER BY created_at DESC, kid DESC LIMIT 1")[0][0]
    t_keys = time.monotonic()
    converged = poll_all(bases, t_keys, lambda b: (
        (r := call(b, "POST", f"/v1/connect/servers/{server}/tokens",
                   {"name": "kid-probe", "vaults": [{"vault": v1}]})).status == 201
        and jwt_kid(r.body["token"]) == newest, r), limit=5.0)
    worst_conv = max((x for x in converged if x is not None), default=0.0)
    v.check(None not in converged and worst_conv < 2 * REPLICA_LAG_S,
            f"{keys0} signing key(s) after three concurrent first starts; every replica signs with the"
            f" newest within {worst_conv:.2f} s of setup (bound {2 * REPLICA_LAG_S:.0f} s: the key ring"
            " compares with the database once a second)")
    lags: dict[str, list[float]] = {}
    missed: dict[str, int] = {}
    took: dict[str, list[float]] = {}

    def durs(kind: str) -> list[float]:
        return took.setdefault(kind, [])

    def introspect(base: str, jwt: str, c: ServerCreds) -> Resp:
        return call(base, "POST", "/v1/introspect", {"token": jwt}, basic=(c.id, c.secret))

    def record(kind: str, res: list[float | None]) -> None:
        lags.setdefault(kind, [])
        missed.setdefault(kind, 0)
        for x in res:
            if x is None:
                missed[kind] += 1
            else:
                lags[kind].append(x)

    def warm(jwt: str, c: ServerCreds, active: bool = True) -> None:
        for b in bases:
            r = introspect(b, jwt, c)
            if r.status != 200 or r.body.get("active") is not active:
                raise DrillFailure(f"introspection on {b} before the change: {r.status} {r.body!r:.300}")

    for rnd in range(rounds):
        actor = bases[rnd % 3]
        # token revocation
        tok = create_token(bases[(rnd + 1) % 3], server, [v1, v2])
        warm(tok["token"], creds)
        expect(call(actor, "DELETE", f"/v1/connect/tokens/{tok['id']}"), 200, "revoke token")
        t_ack = time.monotonic()
        record("token revocation", poll_all(bases, t_ack, took=durs("token revocation"), probe=lambda b: (
            (r := introspect(b, tok["token"], creds)).status == 200 and r.body.get("active") is False, r)))
        # vault revoke: the token loses v2 on every replica
        tok = create_token(bases[(rnd + 2) % 3], server, [v1, v2])
        warm(tok["token"], creds)
        expect(call(actor, "DELETE", f"/v1/connect/servers/{server}/vaults/{v2}"), 200, "revoke vault")
        t_ack = time.monotonic()
        record("vault revoke", poll_all(bases, t_ack, took=durs("vault revoke"), probe=lambda b: (
            (r := introspect(b, tok["token"], creds)).status == 200 and r.body.get("active") is True
            and [x["id"] for x in r.body.get("vaults", [])] == [v1], r)))
        expect(call(actor, "PUT", f"/v1/connect/servers/{server}/vaults/{v2}"), 200, "grant vault again")
        # server delete: its credentials stop authenticating everywhere
        doomed, dcreds = create_server(bases[(rnd + 1) % 3], f"doomed-{rnd}", [v1])
        dtok = create_token(bases[(rnd + 2) % 3], doomed, [v1])
        warm(dtok["token"], dcreds)
        expect(call(actor, "DELETE", f"/v1/connect/servers/{doomed}"), 204, "delete server")
        t_ack = time.monotonic()
        record("server delete", poll_all(bases, t_ack, took=durs("server delete"), probe=lambda b: (
            (r := introspect(b, dtok["token"], dcreds)).status == 401, r)))
        # signing-key rotation: published by every replica's JWKS, and signing new tokens there
        rot = expect(call(actor, "POST", "/v1/keys/rotate"), 201, "rotate key")
        t_ack = time.monotonic()
        kid = rot["kid"]
        record("key rotation: JWKS", poll_all(bases, t_ack, took=durs("key rotation: JWKS"), probe=lambda b: (
            (r := call(b, "GET", "/.well-known/jwks.json", token=None)).status == 200
            and kid in [k["kid"] for k in r.body["keys"]], r)))
        record("key rotation: signing", poll_all(bases, t_ack, took=durs("key rotation: signing"), probe=lambda b: (
            (r := call(b, "POST", f"/v1/connect/servers/{server}/tokens",
                       {"name": "kid-probe", "vaults": [{"vault": v1}]})).status == 201
            and jwt_kid(r.body["token"]) == kid, r)))
        # credentials rotation: the old secret stops working, the new one works, everywhere
        tok = create_token(actor, server, [v1])
        warm(tok["token"], creds)
        body = expect(call(actor, "POST", f"/v1/connect/servers/{server}/credentials"), 201,
                      "rotate credentials")
        t_ack = time.monotonic()
        new = credentials_secret(body["credentials"], "rotated")
        old = creds
        record("credentials rotation: old refused", poll_all(bases, t_ack, took=durs("credentials rotation: old refused"), probe=lambda b: (
            (r := introspect(b, tok["token"], old)).status == 401, r)))
        record("credentials rotation: new accepted", poll_all(bases, t_ack, took=durs("credentials rotation: new accepted"), probe=lambda b: (
            (r := introspect(b, tok["token"], new)).status == 200 and r.body.get("active") is True, r)))
        creds = new

    say(f"  lag after the acknowledging response until each replica showed the change ({rounds} rounds x 3 replicas;"
        " upper bounds: they include the request that saw it):")
    for kind in lags:
        xs = lags[kind]
        worst = max(xs, default=float("inf")) if not missed[kind] else float("inf")
        say(f"    {kind:36s} n={len(xs):3d}  p50 {pct(xs, 50)*1000:5.0f} ms  worst {max(xs, default=0)*1000:5.0f} ms"
            f"  (the seeing request alone: p50 {pct(took.get(kind, []), 50)*1000:4.0f} ms,"
            f" max {max(took.get(kind, []), default=0)*1000:4.0f} ms)"
            + (f"  NOT SEEN within 5 s: {missed[kind]}" if missed[kind] else ""))
        v.check(worst < REPLICA_LAG_S, f"{kind}: visible on every replica within {REPLICA_LAG_S:.0f} s"
                f" (worst {max(xs, default=0)*1000:.0f} ms)")
    for s in replicas:
        s.stop()
    return v


# ---- drill 6: PostgreSQL failover --------------------------------------------------------------
#
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


# ---- drill: disk full (issue 12, item 15) ----------------------------------------------------
# Its own block, with its own small file systems and its own PostgreSQL cluster: nothing above
# is changed by it. scripts/drill's cleanup stops the cluster and unmounts the file systems on
# every exit path, from what this block records in DRILL_TMP (disk-full.clusters,
# disk-full.mounts, disk-full.dirs) before it creates each of them.

DISK_FULL_RECOVERY_S = 5.0  # space freed -> writes succeed again within this, with no restart


def _df_record(kind: str, line: str) -> None:
    with open(os.path.join(TMP, f"disk-full.{kind}"), "a") as f:
        f.write(line + "\n")


def _df_as_pg(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    if PG_RUNAS:
        cmd = ["runuser", "-u", PG_RUNAS, "--", *cmd]
    return subprocess.run(cmd, cwd="/", **kw)


def _df_mount(parent: str, size: str) -> str:
    """A tmpfs of `size` at parent/fs."""
    mount = os.path.join(parent, "fs")
    os.makedirs(mount)
    _df_record("mounts", mount)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", mount],
                   check=True)
    return mount


def _df_fill(path: str) -> int:
    """Appends to `path` until its file system is full; the bytes written."""
    n = 0
    with open(path, "ab", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            buf = os.urandom(chunk)
            while True:
                try:
                    w = f.write(buf) or 0
                except OSError as e:
                    if e.errno != 28:  # ENOSPC
                        raise
                    break
                n += w
                if w < chunk:
                    break
    return n


def _df_free_kib(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // 1024


def _df_code(r: Resp) -> str:
    return r.body["error"]["code"] if is_envelope(r.body) else ""


def _df_pg_cluster(parent: str) -> tuple[int, str]:
    """A throwaway cluster whose data directory is on a tmpfs under `parent` (its WAL beside it,
    on the ordinary disk: the data directory is what fills, not pg_wal, whose loss PostgreSQL
    meets with a PANIC by design). Returns its port and data dir."""
    if PG_RUNAS:
        subprocess.run(["chown", "-R", PG_RUNAS, parent], check=True)
    data = os.path.join(parent, "fs", "pgdata")
    wal = os.path.join(parent, "pgwal")
    sock = os.path.join(parent, "sock")
    _df_as_pg(["mkdir", "-p", sock], check=True)
    _df_as_pg([os.path.join(PG_BIN, "initdb"), "-D", data, f"--waldir={wal}", "--auth=trust",
               "-U", "postgres", "--encoding=UTF8", "--no-locale", "-N"],
              check=True, capture_output=True)
    port = free_port()
    _df_as_pg(["sh", "-c", f"cat >> {data}/postgresql.conf"], check=True, text=True,
              input=f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{sock}'\n"
                    f"port = {port}\n")
    _df_record("clusters", f"{PG_BIN} {data}")
    _df_as_pg([os.path.join(PG_BIN, "pg_ctl"), "start", "-D", data, "-l",
               os.path.join(parent, "postgres.log"), "-w", "-t", "60"],
              check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return port, data


def _df_pg_stop(data: str) -> None:
    _df_as_pg([os.path.join(PG_BIN, "pg_ctl"), "stop", "-D", data, "-m", "fast", "-w", "-t", "60"],
              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _df_pg_checks(port: int, db: str) -> list[tuple[str, bool, str]]:
    results = []
    amcheck = subprocess.run(
        [os.path.join(PG_BIN, "pg_amcheck"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
         "--install-missing", "--heapallindexed", "--parent-check", "-d", db],
        capture_output=True, text=True,
    )
    detail = (amcheck.stdout + amcheck.stderr).strip().replace("\n", " | ")[:400]
    results.append(("pg_amcheck (heap, all indexes, parent check)", amcheck.returncode == 0,
                    detail or "no corruption reported"))
    for what, sql in RELATIONAL_CHECKS:
        out = subprocess.run(
            [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, "-c", sql],
            check=True, capture_output=True, text=True).stdout
        n = int(out.strip())
        results.append((what, n == 0, f"{n} violations"))
    return results


def _df_round(v: Verdict, svc: Service, load: Load, mount: str, label: str, full_s: float) -> None:
    """Fills the file system under the running load, keeps it full for `full_s`, frees it."""
    base = svc.base
    ballast = os.path.join(mount, "ballast")
    t_fill = time.monotonic()
    filled = _df_fill(ballast)
    ready_during: list[Resp] = []
    t_end = time.monotonic() + full_s
    while time.monotonic() < t_end:
        filled += _df_fill(ballast)  # whatever a rollback or a checkpoint gave back
        ready_during.append(call(base, "GET", "/readyz", token=None, timeout=10))
        time.sleep(0.2)
    t_free = time.monotonic()
    os.unlink(ballast)
    # Recovery: readiness, and writes, with nothing done to the service.
    t_ready = None
    ready_after: list[Resp] = []
    while time.monotonic() - t_free < 15:
        r = call(base, "GET", "/readyz", token=None, timeout=10)
        ready_after.append(r)
        if r.status == 200:
            t_ready = time.monotonic() - t_free
            break
        time.sleep(0.05)
    time.sleep(2.0)  # load keeps writing after the recovery
    with load.lock:
        results = list(load.results)
    writes = [(k, r) for k, r in results if k != "server.get"]
    during = [(k, r) for k, r in writes if r.started >= t_fill and r.ended <= t_free]
    refused = [r for _, r in during if r.status >= 300]
    after = sorted((r for _, r in writes if r.started >= t_free), key=lambda r: r.started)
    first_ok = next((r.ended - t_free for r in after if 200 <= r.status < 300), None)
    # Once one write succeeded again, every write that started after it did too.
    t_first_ok = t_free + first_ok if first_ok is not None else float("inf")
    after_ok = [r for r in after if r.started >= t_first_ok]
    say(f"  {label}: filled with {filled // 1024} KiB of ballast ({_df_free_kib(mount)} KiB free"
        f" after freeing it); {len(during)} writes while full ({len(refused)} refused),"
        f" {len(after)} after")
    v.check(len(refused) > 0, f"{label}: the disk filled up under the write load"
                               f" ({len(refused)} writes refused while it was full)")
    bad = [r for r in refused if not (r.status == 503 and _df_code(r) == "storage_full")]
    v.check(not bad, f"{label}: every write refused while full is a 503 storage_full envelope"
                     f" ({len(refused) - len(bad)} of {len(refused)}; others:"
                     f" {sorted({(r.status, _df_code(r) or r.error[:40]) for r in bad})})")
    five = [r for _, r in results if r.status >= 500 and _df_code(r) != "storage_full"]
    v.check(not five, f"{label}: no other 5xx and no 500 at any time ({len(five)}:"
                      f" {sorted({(r.status, _df_code(r)) for r in five})})")
    cut = [r for _, r in results if r.status == 0]
    v.check(not cut, f"{label}: every request answered ({len(cut)} without an HTTP answer)")
    reads = [r for k, r in results if k == "server.get"]
    v.check(all(r.status == 200 for r in reads),
            f"{label}: reads kept working ({sum(r.status == 200 for r in reads)}/{len(reads)} 200)")
    said = [r for r in ready_during if r.status == 503 and _df_code(r) == "storage_full"]
    v.check(len(said) > 0, f"{label}: /readyz said storage_full while full ({len(said)} of"
                           f" {len(ready_during)} probes; others:"
                           f" {sorted({(r.status, _df_code(r)) for r in ready_during if r not in said})})")
    v.check(t_ready is not None, f"{label}: /readyz 200 again {t_ready if t_ready is None else round(t_ready, 2)} s"
                                 f" after space was freed (by itself, no restart)")
    v.check(first_ok is not None and first_ok <= DISK_FULL_RECOVERY_S,
            f"{label}: writes succeed again {first_ok if first_ok is None else round(first_ok, 2)} s"
            f" after space was freed (bound {DISK_FULL_RECOVERY_S:.0f} s)")
    v.check(bool(after_ok) and all(200 <= r.status < 300 for r in after_ok),
            f"{label}: every write after the first success succeeded"
            f" ({sum(200 <= r.status < 300 for r in after_ok)}/{len(after_ok)})")
    v.check(svc.proc is not None and svc.proc.poll() is None and svc.starts == 1,
            f"{label}: the service was never restarted")


def drill_disk_full(long: bool) -> Verdict:
    v = Verdict("disk-full")
    rounds = 3 if long else 1
    full_s = 5.0 if long else 2.0
    say(f"== disk-full: the database's file system fills under write load and is freed again,"
        f" {rounds} round(s) per backend")
    if os.geteuid() != 0:
        v.check(False, "running as root (mount -t tmpfs)")
        return v
    backends = ["sqlite"] + (["postgres"] if PG_BIN else [])
    if not PG_BIN:
        v.check(False, "PostgreSQL binaries available")
    for backend in backends:
        parent = tempfile.mkdtemp(prefix=f"connect-manager-diskfull-{backend}.", dir="/tmp")
        _df_record("dirs", parent)
        data = None
        try:
            if backend == "sqlite":
                # The service's data directory (the SQLite file, its WAL and shared memory).
                mount = _df_mount(parent, "8m")
                svc = Service("disk-full-sqlite", None, data_dir=os.path.join(mount, "data"))
            else:
                mount = _df_mount(parent, "96m")
                port, data = _df_pg_cluster(parent)
                svc = Service("disk-full-postgres",
                              f"postgres://postgres@127.0.0.1:{port}/postgres")
            svc.start()
            svc.wait_ready()
            vault = create_vault(svc.base, "disk-full-vault")
            server, _ = create_server(svc.base, "disk-full-server", [vault])
            load = Load([svc.base], server, vault, workers=4, with_servers=True)
            load.run()
            time.sleep(0.5)
            for rnd in range(1, rounds + 1):
                _df_round(v, svc, load, mount, f"{backend} round {rnd}", full_s)
            load.finish()
            read_back(svc.base, load, v, backend)
            svc.stop()
            if backend == "sqlite":
                results = sqlite_checks(os.path.join(svc.data_dir, "connect-manager.db"))
            else:
                results = _df_pg_checks(port, "postgres")
            for what, ok, detail in results:
                v.check(ok, f"{backend}: {what} ({detail})")
        finally:
            stop_all()
            if data:
                _df_pg_stop(data)
            subprocess.run(["umount", os.path.join(parent, "fs")], check=False,
                           stderr=subprocess.DEVNULL)
    return v


# ---- main ------------------------------------------------------------------------------------


def main() -> int:
    args = sys.argv[1:]
    long = "--long" in args
    args = [a for a in args if a != "--long"]
    if len(args) != 1 or args[0] not in ("outage", "crash", "replicas", "failover", "disk-full", "all"):
        print("usage: drills.py <outage|crash|replicas|failover|disk-full|all> [--long]", file=sys.stderr)
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
