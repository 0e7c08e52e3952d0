-- Workload identity (issue 18): trusted OIDC issuers, each server's trust policies, and on an
-- exchanged token where it came from.

-- Issuers whose tokens may be exchanged (owners). `issuer` is the URL exactly as tokens carry it
-- in `iss`; nothing is ever fetched from an issuer that is not in this table.
CREATE TABLE issuers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    issuer     TEXT NOT NULL UNIQUE,
    creator_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX issuers_order ON issuers (created_at, id);

-- A server's trust policies: tokens of `issuer_id` whose `aud` contains `audience` and whose `sub`
-- and claims match `subject` and `claims` (a JSON object of `*` glob patterns) are exchanged for a
-- token of the server reaching `trust_policy_vaults`, living `ttl_seconds`. An issuer is not
-- deleted while a policy names it; a server's policies are deleted with it (R4).
CREATE TABLE trust_policies (
    id          TEXT PRIMARY KEY,
    server_id   TEXT NOT NULL REFERENCES servers (id),
    issuer_id   TEXT NOT NULL REFERENCES issuers (id),
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    audience    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    claims      TEXT NOT NULL,
    ttl_seconds BIGINT NOT NULL,
    creator_id  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (server_id, name_key)
);
CREATE INDEX trust_policies_order ON trust_policies (created_at, id);
CREATE INDEX trust_policies_server_order ON trust_policies (server_id, created_at, id);
CREATE INDEX trust_policies_issuer ON trust_policies (issuer_id);

-- A policy's scope, as a token's (access bits). No foreign key to vaults, as token_vaults.
CREATE TABLE trust_policy_vaults (
    policy_id TEXT NOT NULL REFERENCES trust_policies (id) ON DELETE CASCADE,
    vault_id  TEXT NOT NULL,
    access    BIGINT NOT NULL,
    PRIMARY KEY (policy_id, vault_id)
);

-- An exchanged token's provenance: the subject token's issuer URL and `sub`, and the policy that
-- matched (kept as a record: the policy may be deleted since). Null for a token made by a user.
ALTER TABLE tokens ADD COLUMN exchange_issuer TEXT;
ALTER TABLE tokens ADD COLUMN exchange_subject TEXT;
ALTER TABLE tokens ADD COLUMN exchange_policy_id TEXT;
