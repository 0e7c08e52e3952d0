"""The shared throwaway PostgreSQL cluster of scripts/drill (pg_ctl stop/start, psql, a fresh
database per drill) and the integrity checks on a database after a drill: RELATIONAL_CHECKS (same
SQL on both backends), sqlite_checks and pg_checks.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess

from .common import PG_BIN, PG_DATA, PG_LOG, PG_PORT, PG_RUNAS


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


def psql(db: str, sql: str, port: str = "") -> list[list[str]]:
    """Rows of `sql` on database `db` of the shared cluster (or of the cluster on `port`)."""
    out = subprocess.run(
        [os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
         "-h", "127.0.0.1", "-p", port or PG_PORT, "-U", "postgres", "-d", db, "-c", sql],
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


def pg_checks(db: str, port: str = "") -> list[tuple[str, bool, str]]:
    """The checks on database `db` of the shared cluster (or of the cluster on `port`)."""
    results = []
    amcheck = subprocess.run(
        [os.path.join(PG_BIN, "pg_amcheck"), "-h", "127.0.0.1", "-p", port or PG_PORT, "-U", "postgres",
         "--install-missing", "--heapallindexed", "--parent-check", "-d", db],
        capture_output=True, text=True,
    )
    detail = (amcheck.stdout + amcheck.stderr).strip().replace("\n", " | ")[:400]
    results.append(("pg_amcheck (heap, all indexes, parent check)", amcheck.returncode == 0,
                    detail or "no corruption reported"))
    for what, sql in RELATIONAL_CHECKS:
        n = int(psql(db, sql, port)[0][0])
        results.append((what, n == 0, f"{n} violations"))
    return results
