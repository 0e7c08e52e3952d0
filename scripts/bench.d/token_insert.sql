-- pgbench: the rows one token create writes, in one transaction (the baseline of scenario 3).
-- Variables (quoted literals): -D server="'…'" -D kid="'…'" -D vault="'…'"
\set r random(1, 9000000000000000)
BEGIN;
INSERT INTO tokens (id, server_id, name, name_key, state, issuer, kid, created_at, expires_at, revoked_at)
VALUES (substr(md5(:r::text || '-' || :client_id::text), 1, 26), :server, 'bench', 'bench',
        'ACTIVE', 'https://bench', :kid, (extract(epoch from clock_timestamp()) * 1000000)::bigint,
        NULL, NULL);
INSERT INTO token_vaults (token_id, vault_id, access)
VALUES (substr(md5(:r::text || '-' || :client_id::text), 1, 26), :vault, 48);
INSERT INTO audit_events (id, at, actor_id, action, target_type, target_id, request_id, client_ip, outcome)
VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 26),
        (extract(epoch from clock_timestamp()) * 1000000)::bigint, 'BENCH', 'token.create', 'token',
        substr(md5(:r::text || '-' || :client_id::text), 1, 26), 'bench', '127.0.0.1', 'success');
END;
