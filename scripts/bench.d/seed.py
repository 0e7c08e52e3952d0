#!/usr/bin/env python3
"""Seeds rows straight into a connect-manager database for the scale scenario.

seed.py sqlite PATH SERVER_ID SERVERS PER_SERVER      (writes with Python's sqlite3)
seed.py postgres-sql SERVER_ID SERVERS PER_SERVER     (prints SQL for psql)

Adds SERVERS-1 more servers (state ACTIVE, no usable credentials) and PER_SERVER tokens on every
server, SERVER_ID's included, scoped to SERVER_ID's first granted vault, signed by the newest
key. Token rows get old creation times so tokens made through the API stay first in lists.
"""
import sys

TOKENS = """
INSERT INTO tokens (id, server_id, name, name_key, state, issuer, kid, created_at, expires_at, revoked_at)
SELECT {tid}, s.id, 'seeded', 'seeded', 'ACTIVE', 'https://bench',
       (SELECT kid FROM signing_keys ORDER BY created_at DESC LIMIT 1), {at}, NULL, NULL
FROM servers s CROSS JOIN ({series}) n;
INSERT INTO token_vaults (token_id, vault_id, access)
SELECT t.id, (SELECT vault_id FROM server_vaults WHERE server_id = '{web}' LIMIT 1), 48
FROM tokens t WHERE t.name = 'seeded';
"""
SERVERS = """
INSERT INTO servers (id, name, name_key, state, created_at, updated_at, creator_id, tokens_version, secret_verifier)
SELECT {sid}, 'seeded-' || n.i, 'seeded-' || n.i, 'ACTIVE', 1, 1, 'BENCH', 1, 'seeded'
FROM ({series}) n;
"""


def main():
    mode = sys.argv[1]
    if mode == "sqlite":
        import sqlite3
        path, web, servers, per = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        series = lambda n: f"WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {n}) SELECT i FROM seq"
        db = sqlite3.connect(path, timeout=60)
        db.execute("PRAGMA foreign_keys = ON")
        with db:
            if servers > 1:
                db.executescript(SERVERS.format(sid="upper(hex(randomblob(13)))", series=series(servers - 1)))
            db.executescript(TOKENS.format(tid="lower(hex(randomblob(13)))", at="1000000 + n.i", series=series(per), web=web))
        # A running service checkpoints its WAL as it writes; a bulk load must do it itself.
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
    elif mode == "postgres-sql":
        web, servers, per = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        series = lambda n: f"SELECT generate_series(1, {n}) AS i"
        print("BEGIN;")
        if servers > 1:
            print(SERVERS.format(sid="upper(substr(md5(random()::text || n.i), 1, 26))", series=series(servers - 1)))
        print(TOKENS.format(tid="substr(md5(random()::text || s.id || n.i), 1, 26)", at="1000000 + n.i", series=series(per), web=web))
        print("COMMIT; ANALYZE;")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
