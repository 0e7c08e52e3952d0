//! The embedded default (S1): SQLite in WAL mode with a busy timeout, `synchronous=NORMAL` and
//! foreign keys on. Writes begin with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout
//! instead of failing when a read lock would be upgraded.

use std::str::FromStr;
use std::time::Duration;

use connect_manager_core::Result;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::sql_backend::{NameTable, SqlBackend, Tx};
use crate::{Backend, DbResult};

type Pool = sqlx::SqlitePool;
/// The store the shared SQL is compiled for in this module.
type ThisStore = SqliteStore;

// One SQL source for both backends, compiled once per backend (see the crate docs).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

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
            .db()?;
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
}

/// SQLite serves one process, and `BEGIN IMMEDIATE` takes the database's only write lock at the
/// start of every write: writers queue, one at a time. So no row lock is needed (the `LOCK_*`
/// suffixes are empty, the lock functions return at once), and the in-process announcement after
/// commit is all the notification there is.
impl SqlBackend for SqliteStore {
    type Db = sqlx::Sqlite;
    const BACKEND: Backend = Backend::Sqlite;
    const LOCK_READ_GRANTS: &'static str = "";
    const LOCK_SERVER_SHARE: &'static str = "";
    const LOCK_SERVER_UPDATE: &'static str = "";
    const LOCK_VAULT_KEY: &'static str = "";
    const LOCK_ISSUER_SHARE: &'static str = "";
    const LOCK_ISSUER_UPDATE: &'static str = "";

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn listeners(&self) -> &crate::Listeners {
        &self.listeners
    }

    fn availability(&self) -> &crate::availability::Availability {
        &self.availability
    }

    async fn shutdown(&self) {}

    async fn begin_write(&self) -> Result<Tx<Self>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.db()
    }

    async fn lock_names(_tx: &mut Tx<Self>, _table: NameTable) -> Result<()> {
        Ok(())
    }

    async fn lock_owners(_tx: &mut Tx<Self>) -> Result<()> {
        Ok(())
    }

    async fn lock_signing_keys(_tx: &mut Tx<Self>) -> Result<()> {
        Ok(())
    }

    async fn notify(_tx: &mut Tx<Self>, _change: &crate::Change) -> Result<()> {
        Ok(())
    }
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
