//! The store's API, by resource: one trait each ([`InstallStore`], [`UserStore`], [`GroupStore`],
//! [`VaultStore`], [`ServerStore`], [`TokenStore`], [`AuditStore`]), and [`Store`], the whole
//! store: all of them, and the connection's own methods. Each method is one use case; each change
//! runs in one transaction together with its audit event (A5). A `dyn Store` (e.g. a
//! [`DynStore`](crate::DynStore)) offers every method as is; code holding a concrete store brings
//! the traits into scope with `use connect_manager_store::prelude::*;`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use connect_manager_core::Result;
use connect_manager_core::Timestamp;
use connect_manager_core::api::usage::TokenUsage;
use connect_manager_core::audit::{AuditAction, NamedKind, TargetType};
use connect_manager_core::lookup::Found;
use connect_manager_core::model::{
    Actor, ApiKeyInfo, AuditEvent, Group, GroupGrant, Server, TokenRecord, User, Vault, VaultType,
};
use connect_manager_core::name::Name;
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::principal::Principal;
use connect_manager_core::token::SealedKey;

use crate::{
    AuditFilter, Backend, Bootstrap, ChangeListener, ConsoleSession, KeyAuth, NewApiKey, NewIssuer,
    NewServer, NewToken, NewTrustPolicy, PoolState, Reseal, RetiredKey, ServerAccess,
    SessionLimits, TokenFilter, TokenGauges,
};
use connect_manager_core::api::trust::Issuer;
use connect_manager_core::trust::TrustPolicyRecord;

/// The name of an API key made without one.
pub const DEFAULT_API_KEY_NAME: &str = "key";

/// The whole store: every resource's methods, and the connection's own. What [`crate::open`]
/// returns, implemented by [`SqliteStore`](crate::sqlite::SqliteStore) and
/// [`PostgresStore`](crate::postgres::PostgresStore).
#[async_trait]
pub trait Store:
    InstallStore
    + UserStore
    + GroupStore
    + VaultStore
    + ServerStore
    + TokenStore
    + TrustStore
    + AuditStore
    + SessionStore
{
    fn backend(&self) -> Backend;

    /// One round trip to the database (`/readyz`); and, while writes are suspected to fail for
    /// lack of space, a probe write: `StorageFull` while they do.
    async fn ping(&self) -> Result<()>;

    /// Closes the pool: waits for connections in use to come back.
    async fn close(&self);

    /// The connection pool's state, for metrics.
    fn pool_state(&self) -> PoolState;

    /// Tells `listener` of every change committed from now on, by this process (synchronously,
    /// before the changing call returns) or, on PostgreSQL, by any replica.
    fn subscribe(&self, listener: Arc<dyn ChangeListener>);
}

/// The installation: settings, first start (A1), authentication, signing keys (T3) and the
/// master key.
#[async_trait]
pub trait InstallStore: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    async fn setting(&self, key: &str) -> Result<Option<String>>;

    /// Stores `value` under `key` unless one is there already; returns the value in force. Safe
    /// when several replicas start at once: exactly one value wins.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String>;

    /// On an empty database, creates the Owners group and `owner` in it with an API key whose
    /// SHA-256 is `key_hash` (A1). Atomic: with several replicas starting at once, one creates.
    async fn bootstrap_owner(&self, name: &Name, email: &str, key_hash: &str) -> Result<Bootstrap>;

    /// The caller behind an API key (by its SHA-256) at `now`, with what their groups grant; or
    /// that the key expired (and when), or is unknown. Whether a key has expired is decided by
    /// one SQL fragment (`sql::api_key_live`), the one place that states it.
    async fn authenticate_key(&self, key_hash: &str, now: Timestamp) -> Result<KeyAuth>;

    /// The caller behind a valid API key (by its SHA-256), with what their groups grant; `None`
    /// for an unknown or expired key.
    async fn principal_for_key(&self, key_hash: &str) -> Result<Option<Principal>> {
        Ok(
            match self.authenticate_key(key_hash, Timestamp::now()).await? {
                KeyAuth::Valid { principal, .. } => Some(principal),
                KeyAuth::Unknown | KeyAuth::Expired { .. } => None,
            },
        )
    }

    /// Every signing key not retired, newest first (T3).
    async fn signing_keys(&self) -> Result<Vec<SealedKey>>;
    /// The IDs of the keys not retired, newest first (the first signs): one cheap read, so a
    /// running service notices a key made or retired beside it (`admin`) without a notification.
    async fn signing_kids(&self) -> Result<Vec<String>>;
    /// Adds a signing key; it signs from now on, on every replica (T3).
    async fn add_signing_key(&self, actor: &Actor, key: &SealedKey) -> Result<()>;
    /// Adds a signing key, as [`Self::add_signing_key`], only if the newest key not retired was
    /// made before `cutoff` (or there is none): scheduled rotation. Decided in the adding
    /// transaction under the signing-key lock, so of replicas racing, exactly one adds a key.
    /// Whether it added one.
    async fn add_signing_key_if_newest_before(
        &self,
        actor: &Actor,
        key: &SealedKey,
        cutoff: Timestamp,
    ) -> Result<bool>;
    /// Retires a key: out of the JWKS, verifying nothing from now on, on every replica; its
    /// active tokens are revoked (they can no longer be verified). 404 for an unknown key; 409
    /// for the key that signs (the newest): rotate first. Retiring a retired key changes nothing.
    async fn retire_signing_key(&self, actor: &Actor, kid: &str) -> Result<RetiredKey>;

    /// Sets the master key's check value (setting `master_key_check`) if it is still `expected`
    /// (`None`: absent), in one transaction with `settings` and every stored signing key passed
    /// through `reseal` (a new master key re-seals them). `false` if the check was not
    /// `expected` any more (another replica got there first: read it again). Safe when several
    /// replicas start at once.
    async fn replace_master_key_check(
        &self,
        expected: Option<&str>,
        check: &str,
        settings: &[(&str, &str)],
        reseal: &Reseal<'_>,
    ) -> Result<bool>;
}

/// Users and their API keys (owners).
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn create_user(&self, actor: &Actor, name: &Name, email: &str) -> Result<User>;
    async fn list_users(&self, page: &PageRequest) -> Result<Page<User>>;
    /// R1 for users: the user whose ID is `reference`, else the user whose email equals it
    /// case-insensitively.
    async fn find_users(&self, reference: &str) -> Result<Found<User>>;
    /// Members of the Owners group, oldest first (`admin owner-key`).
    async fn owners(&self) -> Result<Vec<User>>;
    /// Deletes the user and its keys; refuses to delete the last owner (A2).
    async fn delete_user(&self, actor: &Actor, user_id: &str) -> Result<()>;
    /// An API key named `key` that does not expire (see [`Self::create_named_api_key`]).
    async fn create_api_key(
        &self,
        actor: &Actor,
        user_id: &str,
        key_hash: &str,
    ) -> Result<ApiKeyInfo> {
        let key = NewApiKey {
            key_hash: key_hash.to_owned(),
            name: Name::parse("name", DEFAULT_API_KEY_NAME)?,
            expires_at: None,
        };
        self.create_named_api_key(actor, user_id, &key).await
    }
    /// A new API key of the user, with its name and expiry.
    async fn create_named_api_key(
        &self,
        actor: &Actor,
        user_id: &str,
        key: &NewApiKey,
    ) -> Result<ApiKeyInfo>;
    /// Records that the key authenticated a request at `at`: written only when the stored last
    /// use is older than `API_KEY_LAST_USE_RESOLUTION_SECONDS` (or absent), so a key is written
    /// at most once a minute and never moved back. Not audited (telemetry). Whether it wrote.
    async fn touch_api_key(&self, key_id: &str, at: Timestamp) -> Result<bool>;
    async fn list_api_keys(&self, user_id: &str, page: &PageRequest) -> Result<Page<ApiKeyInfo>>;
    async fn delete_api_key(&self, actor: &Actor, user_id: &str, key_id: &str) -> Result<()>;
}

/// Groups, their members and grants (owners).
#[async_trait]
pub trait GroupStore: Send + Sync + 'static {
    async fn create_group(&self, actor: &Actor, name: &Name) -> Result<Group>;
    async fn list_groups(&self, page: &PageRequest) -> Result<Page<Group>>;
    /// R1: the group whose ID is `reference`, else the groups whose name matches it.
    async fn find_groups(&self, reference: &str) -> Result<Found<Group>>;
    /// Ends the group's grants and memberships; the Owners group cannot be deleted (A2).
    async fn delete_group(&self, actor: &Actor, group_id: &str) -> Result<()>;
    async fn add_member(&self, actor: &Actor, group_id: &str, user_id: &str) -> Result<Group>;
    /// Refuses to remove the last owner from Owners (A2).
    async fn remove_member(&self, actor: &Actor, group_id: &str, user_id: &str) -> Result<Group>;
    /// R11: idempotent.
    async fn grant_group(&self, actor: &Actor, group_id: &str, grant: &GroupGrant)
    -> Result<Group>;
    /// R11: 404 when the grant does not exist.
    async fn revoke_group(
        &self,
        actor: &Actor,
        group_id: &str,
        grant: &GroupGrant,
    ) -> Result<Group>;
}

/// The vault registry.
#[async_trait]
pub trait VaultStore: Send + Sync + 'static {
    async fn create_vault(
        &self,
        actor: &Actor,
        name: &Name,
        vault_type: VaultType,
    ) -> Result<Vault>;
    /// G8: a vault with a given ID (a Connect vault's real one). 409 `vault_id_taken` when a
    /// vault has that ID or had it and was deleted; 409 `name_taken` as `create_vault`.
    async fn create_vault_with_id(
        &self,
        actor: &Actor,
        id: &str,
        name: &Name,
        vault_type: VaultType,
    ) -> Result<Vault>;
    async fn list_vaults(&self, page: &PageRequest) -> Result<Page<Vault>>;
    /// R1: the vault whose ID is `reference`, else the vaults whose name matches it.
    async fn find_vaults(&self, reference: &str) -> Result<Found<Vault>>;
    async fn rename_vault(&self, actor: &Actor, vault_id: &str, name: &Name) -> Result<Vault>;
    /// Ends every grant of the vault (R6 applies to every server that had it). Its ID is kept
    /// as deleted: no vault is created with it again (G8).
    async fn delete_vault(&self, actor: &Actor, vault_id: &str) -> Result<()>;
}

/// Connect servers: their vault grants (R3-R6) and credentials (C2, C3).
#[async_trait]
pub trait ServerStore: Send + Sync + 'static {
    /// R3: all or nothing; every vault must exist and be grantable (R5).
    async fn create_server(&self, actor: &Actor, server: &NewServer) -> Result<Server>;
    /// Live servers the viewer may manage (A4), newest first.
    async fn list_servers(&self, viewer: &Principal, page: &PageRequest) -> Result<Page<Server>>;
    /// R1 and A4 among the live servers `viewer` may manage: the one whose ID is `reference`,
    /// else those whose name matches it; `Found::Hidden` when only servers the viewer may not
    /// manage matched. Without their vaults (a lookup; `get_server` reads the whole server).
    async fn find_servers(&self, viewer: &Principal, reference: &str) -> Result<Found<Server>>;
    /// A server by ID, live or deleted.
    async fn get_server(&self, server_id: &str) -> Result<Option<Server>>;
    async fn rename_server(&self, actor: &Actor, server_id: &str, name: &Name) -> Result<Server>;
    /// R4: state DELETED, name freed, credentials dead, vault and group grants ended, every
    /// active token revoked. Returns how many tokens it revoked (for `tokens_revoked_total`).
    async fn delete_server(&self, actor: &Actor, server_id: &str) -> Result<u64>;
    /// C3: a new verifier and `tokens_version + 1`; the old secret stops working at once.
    async fn rotate_server_secret(
        &self,
        actor: &Actor,
        server_id: &str,
        secret_verifier: &str,
    ) -> Result<Server>;
    /// R5: the vault must exist and be grantable; granting twice is not an error.
    async fn grant_vault(&self, actor: &Actor, server_id: &str, vault_id: &str) -> Result<Server>;
    /// R6: 404 when there was no grant.
    async fn revoke_vault(&self, actor: &Actor, server_id: &str, vault_id: &str) -> Result<Server>;

    /// A live server's credentials and granted vaults, for introspection.
    async fn server_access(&self, server_id: &str) -> Result<Option<ServerAccess>>;
}

/// Tokens (R7-R10) and their last use (G7).
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The keys of tokens that are active and not expired at `now`.
    async fn live_token_kids(&self, now: Timestamp) -> Result<Vec<String>>;
    /// R7: the server must be live and every vault granted to it.
    async fn create_token(&self, actor: &Actor, token: &NewToken) -> Result<TokenRecord>;
    async fn token(&self, token_id: &str) -> Result<Option<TokenRecord>>;
    /// R1 and A4 among the tokens of the servers `viewer` may manage (of `server_id` only, when
    /// given): the token whose ID is `reference`, else the tokens whose name matches it (at most
    /// `MAX_NAME_MATCHES` + 1, newest first); `Found::Hidden` when only tokens the viewer may not
    /// see matched. The ID is looked up first, so no number of tokens named with it hides it.
    async fn find_tokens(
        &self,
        viewer: &Principal,
        reference: &str,
        server_id: Option<&str>,
    ) -> Result<Found<TokenRecord>>;
    /// R10: active and revoked tokens of the servers the viewer may manage, newest first; of one
    /// server when the filter names one (a deleted one too), else of live servers; narrowed to
    /// the live tokens expiring soon or unused for a while when the filter says so.
    async fn list_tokens(
        &self,
        viewer: &Principal,
        filter: &TokenFilter,
        page: &PageRequest,
    ) -> Result<Page<TokenRecord>>;
    /// The `/metrics` gauges at `now`, over the live tokens (active, not expired) of live
    /// servers: how many expire within `expiring_within` seconds, and how many were never used.
    /// One statement.
    async fn token_gauges(&self, now: Timestamp, expiring_within: i64) -> Result<TokenGauges>;
    /// R9: renames only.
    async fn rename_token(&self, actor: &Actor, token_id: &str, name: &Name)
    -> Result<TokenRecord>;
    /// R8: revokes; revoking a revoked token changes nothing and is not an error.
    async fn revoke_token(&self, actor: &Actor, token_id: &str) -> Result<TokenRecord>;
    /// G7: records the last use of tokens of `server_id` as one of its gateways saw it. Entries
    /// naming another server's token or no token are ignored, without saying so (a server learns
    /// nothing about other servers' tokens). A token's row is written only when it has no last
    /// use yet or the reported one is at least `LAST_USE_RESOLUTION_SECONDS` newer than the
    /// stored one: last use never moves back, is accurate to a minute, and each token's row is
    /// written at most once a minute however many gateways report. A time in the future is
    /// taken as now. Not audited (telemetry, not a change anyone made). Returns how many tokens'
    /// rows it wrote.
    async fn record_token_usage(&self, server_id: &str, usage: &[TokenUsage]) -> Result<u64>;
}

/// Workload identity (issue 18): trusted issuers (owners) and servers' trust policies (their
/// managers). The exchange reads them and issues through [`TokenStore::create_token`].
#[async_trait]
pub trait TrustStore: Send + Sync + 'static {
    /// 409 `name_taken` for a name in use, 409 `issuer_taken` for an issuer URL trusted already.
    async fn create_issuer(&self, actor: &Actor, issuer: &NewIssuer) -> Result<Issuer>;
    async fn list_issuers(&self, page: &PageRequest) -> Result<Page<Issuer>>;
    /// R1: the issuer whose ID is `reference`, else those whose name matches it.
    async fn find_issuers(&self, reference: &str) -> Result<Found<Issuer>>;
    /// The trusted issuer whose URL is exactly `url` (a token's `iss`).
    async fn issuer_by_url(&self, url: &str) -> Result<Option<Issuer>>;
    /// 409 `issuer_in_use` while a trust policy names it; 404 when there is no such issuer.
    async fn delete_issuer(&self, actor: &Actor, issuer_id: &str) -> Result<()>;
    /// R7's checks on the scope (the server live, every vault granted to it); 409 `name_taken`
    /// for a name in use among the server's policies.
    async fn create_trust_policy(
        &self,
        actor: &Actor,
        policy: &NewTrustPolicy,
    ) -> Result<TrustPolicyRecord>;
    /// The server's policies, oldest first: the order the exchange tries them in (the one list
    /// that is not newest first, since its order decides).
    async fn list_trust_policies(
        &self,
        server_id: &str,
        page: &PageRequest,
    ) -> Result<Page<TrustPolicyRecord>>;
    /// R1 among the server's policies.
    async fn find_trust_policies(
        &self,
        server_id: &str,
        reference: &str,
    ) -> Result<Found<TrustPolicyRecord>>;
    /// The server's policies for tokens of `issuer_id`, oldest first: the order the exchange
    /// tries them in.
    async fn exchange_policies(
        &self,
        server_id: &str,
        issuer_id: &str,
    ) -> Result<Vec<TrustPolicyRecord>>;
    /// 404 when the server has no such policy.
    async fn delete_trust_policy(
        &self,
        actor: &Actor,
        server_id: &str,
        policy_id: &str,
    ) -> Result<()>;
}

/// The audit trail (A5).
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// A denied attempt (A5); changes write their own events. `target_id` is stored as
    /// `connect_manager_core::model::audit_target` makes it: at most 255 characters, control
    /// and format characters escaped, so a caller's raw input cannot bloat or garble the trail.
    async fn record_denial(
        &self,
        actor: &Actor,
        action: AuditAction,
        target_type: TargetType,
        target_id: &str,
    ) -> Result<()>;
    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>>;
    /// The names of the things a page refers to by ID (the audit trail's actors and targets, a
    /// group's members and servers), to show in their place: a user's email, every other thing's
    /// name (a deleted server's or token's too; a deleted user, key, group, vault, issuer or
    /// policy has none left and is absent). One query per kind asked, none when nothing is.
    async fn names_of(
        &self,
        things: &[(NamedKind, &str)],
    ) -> Result<HashMap<(NamedKind, String), String>>;
}

/// Console sessions (issue 17): a browser signed in with a user's API key. Only the SHA-256 of
/// the session ID is stored or passed here; the ID itself lives in the browser's cookie.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Opens a session for `actor.user_id` with the API key whose SHA-256 is `key_hash`;
    /// audited `session.create` (target: the key). 404 when that user has no such key (deleted
    /// between the check of the key and this call).
    async fn create_session(
        &self,
        actor: &Actor,
        key_hash: &str,
        session_hash: &str,
    ) -> Result<ConsoleSession>;
    /// The live session whose ID has SHA-256 `session_hash` at `now`: its key still exists,
    /// it was used within `limits.idle_micros` and opened within `limits.max_age_micros`.
    /// Marks it used (`last_seen_at = now`) when the last mark is older than
    /// [`SessionLimits::touch_every_micros`]. An expired session is deleted and reads `None`.
    async fn session(
        &self,
        session_hash: &str,
        now: Timestamp,
        limits: SessionLimits,
    ) -> Result<Option<ConsoleSession>>;
    /// Ends a session at once (sign-out); audited `session.delete` when there was one. Ending
    /// an unknown session is not an error (signing out twice).
    async fn delete_session(&self, actor: &Actor, session_hash: &str) -> Result<()>;
    /// Deletes every session expired at `now`; returns how many. Not audited (no one acted).
    async fn delete_expired_sessions(&self, now: Timestamp, limits: SessionLimits) -> Result<u64>;
}
