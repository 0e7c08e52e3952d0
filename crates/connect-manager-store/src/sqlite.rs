//! The embedded default (S1): SQLite in WAL mode with a busy timeout, `synchronous=NORMAL` and
//! foreign keys on. Writes begin with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout
//! instead of failing when a read lock would be upgraded.

use std::str::FromStr;
use std::time::Duration;

use connect_manager_core::Result;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Backend, db_err};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type Pool = sqlx::SqlitePool;
pub(crate) type ThisStore = SqliteStore;
pub(crate) const BACKEND: Backend = Backend::Sqlite;

// One SQL source for both backends, compiled once per backend (see the crate docs).
#[allow(clippy::duplicate_mod)]
#[path = "sql.rs"]
mod sql;
use sql::NameTable;

pub struct SqliteStore {
    pool: Pool,
    listeners: crate::Listeners,
    /// Never marked down: the database is a file of this process.
    availability: crate::availability::Availability,
}

/// The database file a `sqlite:` URL names, or `None` for an in-memory database (or a URL that
/// is not SQLite's). `serve` locks it (`<file>.lock`) so that one process serves it: the caches
/// of two processes on one file would never hear of each other's changes.
pub fn database_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    let file = options.get_filename();
    let memory = file
        .to_str()
        .is_some_and(|f| f.starts_with("file:sqlx-in-memory-"))
        || url
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|p| p == "mode=memory"));
    (!memory).then(|| file.to_path_buf())
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite:path/to/file.db`) and runs the
    /// migrations in `migrations/sqlite`.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| connect_manager_core::Error::bad_request(format!("DATABASE_URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // SQLite writes one at a time; four connections keep readers going beside a writer on
        // small machines without four more page caches.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .after_release(|conn, _| {
                Box::pin(async move {
                    // A transaction dropped unfinished queued its ROLLBACK on the connection;
                    // one round trip runs it. Then see whether it left the transaction.
                    conn.ping().await?;
                    Ok(crate::fit_for_reuse(&*conn))
                })
            })
            .connect_with(options)
            .await
            .map_err(db_err)?;
        sqlx::migrate!("../../migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| connect_manager_core::Error::internal(format!("migrations: {e}")))?;
        Ok(SqliteStore {
            pool,
            listeners: crate::Listeners::default(),
            availability: Default::default(),
        })
    }

    /// The pool, for tests that read raw rows.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn listeners(&self) -> &crate::Listeners {
        &self.listeners
    }

    fn availability(&self) -> &crate::availability::Availability {
        &self.availability
    }

    async fn shutdown(&self) {}
}

/// SQLite serves one process: the in-process announcement after commit is all there is.
async fn notify(_tx: &mut sqlx::Transaction<'static, Db>, _change: &crate::Change) -> Result<()> {
    Ok(())
}

async fn begin_write(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
}

/// Name changes against each other: `BEGIN IMMEDIATE` already serialises writers.
async fn lock_names(_tx: &mut sqlx::Transaction<'static, Db>, _table: NameTable) -> Result<()> {
    Ok(())
}

/// Token create against concurrent grant changes: `BEGIN IMMEDIATE` already serialises writers.
const LOCK_READ_GRANTS: &str = "";

/// Grant changes against a concurrent server delete (R4): `BEGIN IMMEDIATE` already serialises
/// writers.
const LOCK_SERVER_SHARE: &str = "";
const LOCK_SERVER_UPDATE: &str = "";

/// A vault being granted against a concurrent delete: `BEGIN IMMEDIATE` already serialises
/// writers.
const LOCK_VAULT_KEY: &str = "";

/// Serialises changes to the Owners group (A2's last-owner check). `BEGIN IMMEDIATE` already
/// holds the database's only write lock.
async fn lock_owners(_tx: &mut sqlx::Transaction<'static, Db>) -> Result<()> {
    Ok(())
}

/// Re-sealing the signing keys against a concurrent key change: `BEGIN IMMEDIATE` already holds
/// the database's only write lock.
async fn lock_signing_keys(_tx: &mut sqlx::Transaction<'static, Db>) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::database_file;
    use std::path::Path;

    #[test]
    fn database_file_names_the_file_of_a_sqlite_url() {
        assert_eq!(
            database_file("sqlite:///var/lib/cm/connect-manager.db").as_deref(),
            Some(Path::new("/var/lib/cm/connect-manager.db"))
        );
        assert_eq!(
            database_file("sqlite:data/x.db?mode=rwc").as_deref(),
            Some(Path::new("data/x.db"))
        );
        assert_eq!(database_file("sqlite::memory:"), None);
        assert_eq!(database_file("sqlite:x.db?mode=memory"), None);
        assert_eq!(database_file("postgres://h/db"), None);
    }
}
