#!/usr/bin/env python3
"""Seeds the console's scale scenario straight into a connect-manager database (scripts/bench, 7).

console_seed.py sqlite PATH SERVER_ID TOKENS EVENTS     (writes with Python's sqlite3)
console_seed.py postgres-sql SERVER_ID TOKENS EVENTS    (prints SQL for psql)

TOKENS tokens on SERVER_ID, scoped to its first granted vault, signed by the newest key, with
creation times spread over the last months, a third never expiring, some expiring within 7 days,
a tenth revoked, a quarter never used and the rest last used 0-59 days ago (so that the overview's
"expiring soon" and "unused" lists have something to find). EVENTS audit events by the first
user, of a few kinds, spread over the last months: through the API they would take minutes (each
is one management request), so they go into the table as the store writes them.
"""
import sys
import time

DAY = 86_400_000_000  # microseconds, as the store keeps times

TOKENS = """
INSERT INTO tokens (id, server_id, name, name_key, state, issuer, kid, created_at, expires_at,
                    revoked_at, last_used_at, last_used_ip)
SELECT {tid}, '{server}', 'seeded-' || n.i, 'seeded-' || n.i,
       CASE WHEN n.i % 10 = 0 THEN 'REVOKED' ELSE 'ACTIVE' END, 'https://bench',
       (SELECT kid FROM signing_keys ORDER BY created_at DESC LIMIT 1),
       {now} - n.i * 600000000,
       CASE n.i % 3 WHEN 0 THEN NULL WHEN 1 THEN {now} + (n.i % 14) * {day} - {day} / 2
            ELSE {now} + 90 * {day} END,
       CASE WHEN n.i % 10 = 0 THEN {now} - (n.i % 30) * {day} ELSE NULL END,
       CASE WHEN n.i % 4 = 0 THEN NULL ELSE {now} - (n.i % 60) * {day} END,
       CASE WHEN n.i % 4 = 0 THEN NULL ELSE '10.0.0.' || (n.i % 250) END
FROM ({series}) n;
INSERT INTO token_vaults (token_id, vault_id, access)
SELECT t.id, (SELECT vault_id FROM server_vaults WHERE server_id = '{server}' LIMIT 1), 48
FROM tokens t WHERE t.name LIKE 'seeded-%';
"""
EVENTS = """
INSERT INTO audit_events (id, at, actor_id, action, target_type, target_id, request_id, client_ip, outcome)
SELECT {eid}, {now} - n.i * 60000000, (SELECT id FROM users ORDER BY created_at LIMIT 1),
       CASE n.i % 5 WHEN 0 THEN 'token.create' WHEN 1 THEN 'token.revoke' WHEN 2 THEN 'vault.grant'
            WHEN 3 THEN 'server.credentials.rotate' ELSE 'token.list' END,
       CASE n.i % 5 WHEN 2 THEN 'server_vault' WHEN 3 THEN 'server' ELSE 'token' END,
       CASE n.i % 5 WHEN 3 THEN '{server}' ELSE 'seeded-' || n.i END,
       'seeded-' || n.i, '127.0.0.1',
       CASE WHEN n.i % 50 = 0 THEN 'denied' ELSE 'success' END
FROM ({series}) n;
"""


def main() -> None:
    mode = sys.argv[1]
    now = int(time.time() * 1_000_000)
    if mode == "sqlite":
        import sqlite3

        path, server, tokens, events = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

        def series(n: int) -> str:
            return f"WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) SELECT i FROM seq"

        db = sqlite3.connect(path, timeout=60)
        db.execute("PRAGMA foreign_keys = ON")
        with db:
            db.executescript(TOKENS.format(tid="lower(hex(randomblob(13)))", server=server, now=now, day=DAY, series=series(tokens)))
            db.executescript(EVENTS.format(eid="lower(hex(randomblob(13)))", server=server, now=now, series=series(events)))
        # A running service checkpoints its WAL as it writes; a bulk load must do it itself.
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    elif mode == "postgres-sql":
        server, tokens, events = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

        def series(n: int) -> str:
            return f"SELECT generate_series(1, {n})::bigint AS i"

        print("BEGIN;")
        print(TOKENS.format(tid="substr(md5(random()::text || n.i), 1, 26)", server=server, now=now, day=DAY, series=series(tokens)))
        print(EVENTS.format(eid="substr(md5(random()::text || n.i || 'e'), 1, 26)", server=server, now=now, series=series(events)))
        print("COMMIT; ANALYZE;")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
