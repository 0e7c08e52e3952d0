-- connect-manager, PostgreSQL. Timestamps are microseconds since the Unix epoch (UTC).
-- `name_key` columns hold the case-folded name (computed by the application) that R2 uniqueness
-- and R1 lookups compare.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT NOT NULL,
    email_key  TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX users_order ON users (created_at, id);

-- API keys: only a SHA-256 of the key is kept.
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE groups (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    -- 'owners' for the built-in Owners group, NULL otherwise.
    builtin    TEXT UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX groups_order ON groups (created_at, id);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- Group grants of scope MANAGER and ALL_SERVERS.
CREATE TABLE group_roles (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    role     TEXT NOT NULL CHECK (role IN ('MANAGER', 'ALL_SERVERS')),
    PRIMARY KEY (group_id, role)
);

CREATE TABLE vaults (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    name_key   TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX vaults_order ON vaults (created_at, id);

-- Deleted servers stay (state 'DELETED') for the audit trail; only live names are unique.
CREATE TABLE servers (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('ACTIVE', 'DELETED')),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    creator_id      TEXT NOT NULL,
    tokens_version  BIGINT NOT NULL,
    -- argon2id PHC string of the server secret (C2); empty once deleted.
    secret_verifier TEXT NOT NULL
);
CREATE UNIQUE INDEX servers_live_name ON servers (name_key) WHERE state = 'ACTIVE';
CREATE INDEX servers_order ON servers (created_at, id);

CREATE TABLE server_vaults (
    server_id  TEXT NOT NULL REFERENCES servers (id),
    vault_id   TEXT NOT NULL REFERENCES vaults (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, vault_id)
);
CREATE INDEX server_vaults_vault ON server_vaults (vault_id);

-- Group grants of scope SERVER.
CREATE TABLE group_servers (
    group_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    server_id TEXT NOT NULL REFERENCES servers (id),
    PRIMARY KEY (group_id, server_id)
);
CREATE INDEX group_servers_server ON group_servers (server_id);

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor_id    TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    client_ip   TEXT NOT NULL,
    outcome     TEXT NOT NULL
);
CREATE INDEX audit_events_order ON audit_events (at, id);
