//! Storage (SPEC S1): one async [`Store`] trait with one method per use case, each change in one
//! transaction together with its audit event (A5). Two implementations on sqlx, chosen from the
//! URL scheme at start: [`sqlite`] (the embedded default, WAL) and [`postgres`].
//!
//! Both run the same SQL, written once in `sql.rs` and compiled into each backend module with the
//! backend's own types (`#[path]`), so the two cannot drift apart; what differs between the
//! databases (connection setup, how a write transaction begins, row locks, migrations) lives in
//! the backend modules. The conformance suite (`tests/conformance.rs`) is what both must pass.

use std::sync::Arc;

use async_trait::async_trait;
use connect_manager_core::Timestamp;
use connect_manager_core::api::usage::TokenUsage;
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::lookup::Found;
use connect_manager_core::model::{
    Actor, ApiKeyInfo, AuditEvent, Group, GroupGrant, Server, TokenRecord, User, Vault, VaultType,
};
use connect_manager_core::name::Name;
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::principal::Principal;
use connect_manager_core::scope::TokenScope;
use connect_manager_core::token::SealedKey;
use connect_manager_core::{Error, Result};

mod availability;
mod pg_hosts;
mod pg_url;
pub mod postgres;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Connections in the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// A new server as the store writes it (R3): the vaults are already resolved to IDs.
#[derive(Debug, Clone)]
pub struct NewServer {
    pub id: String,
    pub name: Name,
    pub secret_verifier: String,
    pub vault_ids: Vec<String>,
}

/// What a server authenticates against (T4, C2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCredentials {
    pub server_id: String,
    pub secret_verifier: String,
    pub tokens_version: i64,
}

/// A new token as the store writes it (R7): vaults resolved to IDs, access as bits.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub server_id: String,
    pub name: Name,
    pub issuer: String,
    pub kid: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub vaults: TokenScope,
}

/// What introspection needs of a live server (T4, R6): its credentials and the vaults it is
/// granted now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAccess {
    pub credentials: ServerCredentials,
    pub vault_ids: Vec<String>,
}

/// What changed, for caches (S2). Each backend announces a change to its own process after the
/// commit; PostgreSQL also tells every other replica (NOTIFY in the same transaction, delivered on
/// commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A token was revoked or renamed.
    Token(String),
    /// A server's state, credentials or vault grants changed.
    Server(String),
    /// A signing key was added or retired (retiring revokes its tokens: token caches drop too).
    Keys,
    /// Anything may have changed (e.g. a vault was deleted; the change feed reconnected).
    All,
    /// The change feed is down: notifications may be missed until the next `All`.
    Unreliable,
}

impl Change {
    pub fn encode(&self) -> String {
        match self {
            Change::Token(id) => format!("t:{id}"),
            Change::Server(id) => format!("s:{id}"),
            Change::Keys => "k".into(),
            Change::All | Change::Unreliable => "*".into(),
        }
    }

    pub fn decode(s: &str) -> Change {
        match s.split_once(':') {
            Some(("t", id)) => Change::Token(id.to_owned()),
            Some(("s", id)) => Change::Server(id.to_owned()),
            _ if s == "k" => Change::Keys,
            _ => Change::All,
        }
    }
}

/// Something that must hear of changes: a cache.
pub trait ChangeListener: Send + Sync + 'static {
    /// Called on the committing task or the change feed's task: must not block.
    fn changed(&self, change: &Change);
}

/// The listeners of one store.
#[derive(Default)]
pub struct Listeners(std::sync::RwLock<Vec<Arc<dyn ChangeListener>>>);

impl Listeners {
    pub fn add(&self, listener: Arc<dyn ChangeListener>) {
        self.0.write().expect("listeners lock").push(listener);
    }

    pub fn announce(&self, change: &Change) {
        for l in self.0.read().expect("listeners lock").iter() {
            l.changed(change);
        }
    }
}

/// The channel PostgreSQL replicas announce changes on.
pub const CHANGE_CHANNEL: &str = "connect_manager_changes";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    /// Inclusive lower bound, microseconds.
    pub since: Option<i64>,
    /// Exclusive upper bound, microseconds.
    pub until: Option<i64>,
}

/// Re-seals one signing key (see [`Store::replace_master_key_check`]).
pub type Reseal<'a> = dyn Fn(&SealedKey) -> Result<SealedKey> + Send + Sync + 'a;

/// A signing key retired (T3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    pub kid: String,
    pub retired_at: Timestamp,
    /// Active tokens it had signed, revoked with it (0 when it was retired already).
    pub tokens_revoked: u64,
}

/// What happened at first start (A1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The database was empty: this owner was created with the given key.
    Created(User),
    /// The database already had users: nothing was changed.
    AlreadyDone,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
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

    // ---- installation ------------------------------------------------------------------------

    /// The value stored under `key`, if any.
    async fn setting(&self, key: &str) -> Result<Option<String>>;

    /// Stores `value` under `key` unless one is there already; returns the value in force. Safe
    /// when several replicas start at once: exactly one value wins.
    async fn init_setting(&self, key: &str, value: &str) -> Result<String>;

    /// On an empty database, creates the Owners group and `owner` in it with an API key whose
    /// SHA-256 is `key_hash` (A1). Atomic: with several replicas starting at once, one creates.
    async fn bootstrap_owner(&self, name: &Name, email: &str, key_hash: &str) -> Result<Bootstrap>;

    // ---- authentication ----------------------------------------------------------------------

    /// The caller behind an API key (by its SHA-256), with what their groups grant.
    async fn principal_for_key(&self, key_hash: &str) -> Result<Option<Principal>>;

    // ---- users and API keys (owners) ---------------------------------------------------------

    async fn create_user(&self, actor: &Actor, name: &Name, email: &str) -> Result<User>;
    async fn list_users(&self, page: &PageRequest) -> Result<Page<User>>;
    /// R1 for users: the user whose ID is `reference`, else the user whose email equals it
    /// case-insensitively.
    async fn find_users(&self, reference: &str) -> Result<Found<User>>;
    /// Members of the Owners group, oldest first (`admin owner-key`).
    async fn owners(&self) -> Result<Vec<User>>;
    /// Deletes the user and its keys; refuses to delete the last owner (A2).
    async fn delete_user(&self, actor: &Actor, user_id: &str) -> Result<()>;
    async fn create_api_key(
        &self,
        actor: &Actor,
        user_id: &str,
        key_hash: &str,
    ) -> Result<ApiKeyInfo>;
    async fn list_api_keys(&self, user_id: &str, page: &PageRequest) -> Result<Page<ApiKeyInfo>>;
    async fn delete_api_key(&self, actor: &Actor, user_id: &str, key_id: &str) -> Result<()>;

    // ---- groups (owners) ---------------------------------------------------------------------

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

    // ---- vault registry ----------------------------------------------------------------------

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

    // ---- servers -----------------------------------------------------------------------------

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

    // ---- signing keys and tokens ----------------------------------------------------------------

    /// Every signing key not retired, newest first (T3).
    async fn signing_keys(&self) -> Result<Vec<SealedKey>>;
    /// The IDs of the keys not retired, newest first (the first signs): one cheap read, so a
    /// running service notices a key made or retired beside it (`admin`) without a notification.
    async fn signing_kids(&self) -> Result<Vec<String>>;
    /// Adds a signing key; it signs from now on, on every replica (T3).
    async fn add_signing_key(&self, actor: &Actor, key: &SealedKey) -> Result<()>;
    /// Retires a key: out of the JWKS, verifying nothing from now on, on every replica; its
    /// active tokens are revoked (they can no longer be verified). 404 for an unknown key; 409
    /// for the key that signs (the newest): rotate first. Retiring a retired key changes nothing.
    async fn retire_signing_key(&self, actor: &Actor, kid: &str) -> Result<RetiredKey>;

    // ---- the master key ----------------------------------------------------------------------

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
    /// server when `server_id` is given (a deleted one too), else of live servers.
    async fn list_tokens(
        &self,
        viewer: &Principal,
        server_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<TokenRecord>>;
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
    /// A live server's credentials and granted vaults, for introspection.
    async fn server_access(&self, server_id: &str) -> Result<Option<ServerAccess>>;

    // ---- audit -------------------------------------------------------------------------------

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
}

pub type DynStore = Arc<dyn Store>;

pub use pg_hosts::ConnectionSettings;

/// Opens the store named by `url` (`sqlite:…` or `postgres://…`) and runs its migrations, with
/// the default [`ConnectionSettings`].
pub async fn open(url: &str) -> Result<DynStore> {
    open_with(url, &ConnectionSettings::default()).await
}

/// Opens the store named by `url`; on PostgreSQL, every connection carries `settings`. A
/// `postgres://` URL may name several hosts (see `PostgresStore::open_with`).
pub async fn open_with(url: &str, settings: &ConnectionSettings) -> Result<DynStore> {
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => Ok(Arc::new(sqlite::SqliteStore::open(url).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(
            postgres::PostgresStore::open_with(url, settings).await?,
        )),
        _ => Err(Error::bad_request(format!(
            "DATABASE_URL: unsupported scheme in '{}' (use sqlite:… or postgres://…)",
            redact_url(url)
        ))),
    }
}

/// A database URL fit for a log line or an error message: the password is replaced, in the
/// user information (`user:***@`, whatever it holds up to the last '@', so also a password
/// with an unencoded '@' or '/') and in a `password=` parameter.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    // `password=…` parameters first, up to the next '&' or '#'.
    let mut rest = url;
    while let Some(i) = rest.find("password=") {
        let starts_param = i > 0 && matches!(rest.as_bytes()[i - 1], b'?' | b'&');
        out.push_str(&rest[..i + "password=".len()]);
        rest = &rest[i + "password=".len()..];
        if starts_param {
            out.push_str("***");
            rest = &rest[rest.find(['&', '#']).unwrap_or(rest.len())..];
        }
    }
    out.push_str(rest);
    let url = out;
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url,
            }
        }
        _ => url,
    }
}

/// Whether a connection coming back to the pool may serve again: not while it is still inside a
/// transaction. When a COMMIT fails (SQLite: `SQLITE_FULL` on a full disk), SQLite may already
/// have rolled the transaction back, so the ROLLBACK sqlx sends when the transaction is dropped
/// fails too, and sqlx still counts the connection as inside it: back in the pool, every
/// transaction begun on it would fail ("attempted to call begin_with at non-zero transaction
/// depth"), a write outage until a restart. Such a connection is closed instead (the pool opens
/// a fresh one when needed).
pub(crate) fn fit_for_reuse(conn: &impl sqlx::Connection) -> bool {
    let fit = !conn.is_in_transaction();
    if !fit {
        tracing::warn!("a connection left inside a failed transaction is closed, not reused");
    }
    fit
}

/// Maps a database error: connection trouble is 503, a full disk 503 `storage_full`, the rest
/// 500 (detail for the log only).
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(ref d) if d.code().is_some_and(|c| storage_full_code(&c)) => {
            let detail = e.to_string();
            availability::STORAGE_FAILURES.record(&detail);
            Error::StorageFull { detail }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => Error::Unavailable {
            detail: e.to_string(),
        },
        sqlx::Error::Database(ref d) if d.code().is_some_and(|c| unavailable_code(&c)) => {
            Error::Unavailable {
                detail: e.to_string(),
            }
        }
        // A deadlock or serialization failure the locks of sql.rs should rule out: if one still
        // happens, the change was rolled back whole, and trying again is the right advice.
        sqlx::Error::Database(ref d) if d.code().is_some_and(|c| c == "40P01" || c == "40001") => {
            tracing::warn!(error = %e, "a change collided with a concurrent one");
            Error::conflict(
                "concurrent_change",
                "the change collided with a concurrent one and was not made; try again",
            )
        }
        other => Error::internal(other),
    }
}

/// SQLSTATEs that mean the database cannot serve now rather than that the statement is wrong:
/// class 08 (connection exception), 57P01-57P05 (shut down by the administrator, crashed,
/// not accepting connections yet, database dropped, idle session timeout), 53300 (too many
/// connections), 57014 (cancelled: `statement_timeout` ran out, or an administrator cancelled
/// it; nothing was changed) and 25006 (read-only transaction: the host is, or has just become,
/// a standby; the availability watch moves to the host that accepts writes).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("57P")
        || code == "53300"
        || code == "57014"
        || code == "25006"
}

/// Error codes that mean the disk (or a configured limit on the database's size) is full:
/// SQLite's `SQLITE_FULL` (13) and PostgreSQL's `disk_full` (53100). The write was not made;
/// the database is intact and takes writes again once there is space.
fn storage_full_code(code: &str) -> bool {
    code == "13" || code == "53100"
}

/// Maps a unique violation to `conflict`, anything else through [`db_err`].
pub(crate) fn on_unique(e: sqlx::Error, conflict: impl FnOnce() -> Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => conflict(),
        _ => db_err(e),
    }
}

#[cfg(test)]
mod tests {
    /// A database error with a given SQLSTATE.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            "test"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn e1_a_database_that_cannot_serve_is_503_not_500() {
        use connect_manager_core::Error;
        let map = |code| super::db_err(sqlx::Error::Database(Box::new(Sqlstate(code))));
        // connection failure, admin shutdown, crash shutdown, starting up or shutting down,
        // too many connections
        for code in ["08006", "57P01", "57P02", "57P03", "53300"] {
            assert!(
                matches!(map(code), Error::Unavailable { .. }),
                "{code} is 503"
            );
        }
        assert!(
            matches!(map("42601"), Error::Internal { .. }),
            "syntax is 500"
        );
        for code in ["40P01", "40001"] {
            assert!(
                matches!(
                    map(code),
                    Error::Conflict {
                        code: "concurrent_change",
                        ..
                    }
                ),
                "{code} is 409: nothing was changed, try again"
            );
        }
        assert!(matches!(
            super::db_err(sqlx::Error::PoolTimedOut),
            Error::Unavailable { .. }
        ));
    }

    #[test]
    fn a_statement_timeout_or_a_read_only_host_is_503_not_500() {
        use connect_manager_core::Error;
        let map = |code| super::db_err(sqlx::Error::Database(Box::new(Sqlstate(code))));
        for code in ["57014", "25006"] {
            assert!(
                matches!(map(code), Error::Unavailable { .. }),
                "{code} is 503"
            );
        }
    }

    #[test]
    fn e1_a_full_disk_is_503_storage_full_not_500() {
        use connect_manager_core::Error;
        let map = |code| super::db_err(sqlx::Error::Database(Box::new(Sqlstate(code))));
        let before = super::availability::STORAGE_FAILURES.count();
        // SQLITE_FULL, PostgreSQL's disk_full
        for code in ["13", "53100"] {
            assert!(
                matches!(map(code), Error::StorageFull { .. }),
                "{code} is 503 storage_full"
            );
        }
        assert!(
            super::availability::STORAGE_FAILURES.count() >= before + 2,
            "counted"
        );
        // Out of memory, too many connections: not a full disk.
        assert!(!matches!(map("53200"), Error::StorageFull { .. }));
        assert!(!matches!(map("53300"), Error::StorageFull { .. }));
    }

    #[test]
    fn database_urls_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://app:s3cret@db:5432/cm"),
            "postgres://app:***@db:5432/cm"
        );
        assert_eq!(super::redact_url("postgres://db/cm"), "postgres://db/cm");
        assert_eq!(super::redact_url("sqlite:data/x.db"), "sqlite:data/x.db");
    }

    #[test]
    fn multi_host_urls_and_password_parameters_are_redacted() {
        for (url, redacted) in [
            (
                "postgres://app:s3cret@h1:5432,[::1]:5433/cm?target_session_attrs=read-write",
                "postgres://app:***@h1:5432,[::1]:5433/cm?target_session_attrs=read-write",
            ),
            (
                "postgres://app:p%40ss%3Aw%2Frd@h1,h2/cm",
                "postgres://app:***@h1,h2/cm",
            ),
            // Unencoded '@' and '/' in the password: still nothing of it shows.
            (
                "postgres://app:s3@c/ret@h1,h2/cm",
                "postgres://app:***@h1,h2/cm",
            ),
            (
                "postgres://app@h1,h2/cm?sslmode=require&password=s3cret&application_name=x",
                "postgres://app@h1,h2/cm?sslmode=require&password=***&application_name=x",
            ),
            (
                "postgres://h1/cm?password=s3cret",
                "postgres://h1/cm?password=***",
            ),
        ] {
            assert_eq!(super::redact_url(url), redacted);
        }
    }
}
