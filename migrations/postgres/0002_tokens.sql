-- Tokens (T1–T4, R7–R10, R12) and the keys that sign them (T3).

-- P-256 signing keys. The private key is PKCS#8 sealed (AES-256-GCM) under the master key; x and
-- y are the public JWK coordinates. The newest key signs; every key verifies.
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    sealed_private TEXT NOT NULL,
    x              TEXT NOT NULL,
    y              TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX signing_keys_order ON signing_keys (created_at, kid);

-- Tokens: the JWT itself and its `1password.com/token` value are never stored.
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    server_id  TEXT NOT NULL REFERENCES servers (id),
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('ACTIVE', 'REVOKED')),
    issuer     TEXT NOT NULL,
    kid        TEXT NOT NULL REFERENCES signing_keys (kid),
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX tokens_order ON tokens (created_at, id);
CREATE INDEX tokens_server_order ON tokens (server_id, created_at, id);
CREATE INDEX tokens_name ON tokens (name_key);
CREATE INDEX tokens_kid_live ON tokens (kid) WHERE state = 'ACTIVE';

-- A token's scope as issued (T1 vts). No foreign key to vaults: the scope is a record of the
-- issue; what a token may reach now is this scope ∩ the server's live grants (R6).
CREATE TABLE token_vaults (
    token_id TEXT NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
    vault_id TEXT NOT NULL,
    access   BIGINT NOT NULL,
    PRIMARY KEY (token_id, vault_id)
);
