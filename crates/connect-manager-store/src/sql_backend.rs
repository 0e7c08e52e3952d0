//! The contract between the shared SQL (`sql/`) and a backend: everything the SQL needs that the
//! two databases do differently. `sqlite::SqliteStore` and `postgres::PostgresStore` implement
//! [`SqlBackend`]; the shared SQL, compiled into each backend module, names only `ThisStore` (the
//! module's store) and reaches everything else through this trait.
//!
//! Where SQLite needs nothing (its `BEGIN IMMEDIATE` already serialises every writer), its
//! implementation is a no-op: an empty lock suffix, a lock function that returns at once.

use connect_manager_core::Result;

use crate::availability::Availability;
use crate::{Backend, Change, Listeners};

/// The tables whose live names are unique and can be renamed (see [`SqlBackend::lock_names`]).
#[derive(Clone, Copy)]
pub(crate) enum NameTable {
    Servers = 1,
    Vaults = 2,
}

/// A write transaction of a backend.
pub(crate) type Tx<B> = sqlx::Transaction<'static, <B as SqlBackend>::Db>;

/// What a backend provides the shared SQL. The `LOCK_*` constants are row-lock clauses appended
/// to a `SELECT` (constants, never a value: see `sql::placeholders`); the lock functions take
/// their lock inside the transaction, held to its end. The order every change takes its locks in
/// is stated at `sql::servers::lock_live_server`.
pub(crate) trait SqlBackend: Send + Sync + Sized + 'static {
    /// The sqlx database.
    type Db: sqlx::Database;

    /// Which backend this is ([`crate::Store::backend`]).
    const BACKEND: Backend;

    /// Token create against concurrent grant changes: appended to its read of the server's
    /// vault grants (`server_vaults sv`).
    const LOCK_READ_GRANTS: &'static str;

    /// A change to a server's grants against a concurrent delete of the server (R4): appended to
    /// the read of the server row, where the change does not update that row (a group's SERVER
    /// grant).
    const LOCK_SERVER_SHARE: &'static str;

    /// As [`Self::LOCK_SERVER_SHARE`], where the change updates the server row (vault grant and
    /// revoke).
    const LOCK_SERVER_UPDATE: &'static str;

    /// A vault being granted against a concurrent delete of the vault: appended to the read of
    /// the vault row.
    const LOCK_VAULT_KEY: &'static str;

    /// A trust policy being made against a concurrent delete of its issuer: appended to the
    /// read of the issuer row (issue 18).
    const LOCK_ISSUER_SHARE: &'static str;

    /// An issuer's delete against a concurrent policy naming it: appended to its read of the
    /// issuer row, before it checks that no policy names it.
    const LOCK_ISSUER_UPDATE: &'static str;

    /// The connection pool.
    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// Who hears of this store's changes in this process.
    fn listeners(&self) -> &Listeners;

    /// Whether the database is known to be down (see `crate::availability`).
    fn availability(&self) -> &Availability;

    /// Stops what the backend runs beside the pool (PostgreSQL: the change feed and the watch),
    /// before the pool is closed.
    async fn shutdown(&self);

    /// Begins a write transaction, the backend's way.
    async fn begin_write(&self) -> Result<Tx<Self>>;

    /// Serialises the changes that write a unique name of `table` (create and rename).
    async fn lock_names(tx: &mut Tx<Self>, table: NameTable) -> Result<()>;

    /// Serialises changes to the Owners group (A2's last-owner check).
    async fn lock_owners(tx: &mut Tx<Self>) -> Result<()>;

    /// Holds the signing keys against a concurrent add or retire while they are re-sealed.
    async fn lock_signing_keys(tx: &mut Tx<Self>) -> Result<()>;

    /// Tells the other replicas of `change`, on commit (in the transaction).
    async fn notify(tx: &mut Tx<Self>, change: &Change) -> Result<()>;
}
