-- Console sessions (issue 17): a signed-in browser. Only the SHA-256 of the 32-byte random session
-- ID is kept (the cookie holds the ID itself), with the user and the API key it was opened with.
-- Deleting the user or the key ends its sessions (the cascade here, and every lookup joins the key
-- row, so whatever ends a key ends its sessions). Idle and absolute expiry are checked on lookup
-- against last_seen_at and created_at; last_seen_at is written at most once a minute.
CREATE TABLE console_sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    api_key_id   TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_key ON console_sessions (api_key_id);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_seen ON console_sessions (last_seen_at);
CREATE INDEX console_sessions_created ON console_sessions (created_at);
