-- Issue 18, expiry you can see: API keys get a name (R2; "key" unless one is given), an optional
-- expiry (`expires_at`, null: never) and their last use (`last_used_at`, null until used;
-- written at most once a minute per key, so authenticating stays a read).
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT 'key';
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
-- The keys made before names existed, named after what made them (their audit event).
UPDATE api_keys SET name = 'bootstrap' WHERE id IN (
    SELECT target_id FROM audit_events
    WHERE action = 'api_key.create' AND actor_id = 'system:bootstrap');
UPDATE api_keys SET name = 'owner-key' WHERE id IN (
    SELECT target_id FROM audit_events
    WHERE action = 'api_key.create' AND actor_id = 'system:admin-owner-key');
