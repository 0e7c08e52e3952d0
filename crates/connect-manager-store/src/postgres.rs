//! PostgreSQL (S1, S2): for scale and for several replicas sharing one database. Migrations take
//! sqlx's advisory lock, so replicas starting together apply each migration once.

use std::str::FromStr;
use std::time::Duration;

use connect_manager_core::Result;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{Backend, db_err};

pub(crate) type Db = sqlx::Postgres;
pub(crate) type Pool = sqlx::PgPool;
pub(crate) type ThisStore = PostgresStore;
pub(crate) const BACKEND: Backend = Backend::Postgres;

// One SQL source for both backends, compiled once per backend (see the crate docs).
#[allow(clippy::duplicate_mod)]
#[path = "sql.rs"]
mod sql;

pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and runs the migrations in `migrations/postgres`.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            connect_manager_core::Error::bad_request(format!(
                "DATABASE_URL: {}",
                crate::redact_url(&e.to_string())
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db_err)?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| connect_manager_core::Error::internal(format!("migrations: {e}")))?;
        Ok(PostgresStore { pool })
    }

    /// The pool, for tests that read raw rows.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

async fn begin_write(pool: &Pool) -> Result<sqlx::Transaction<'static, Db>> {
    pool.begin().await.map_err(db_err)
}

/// Serialises changes to the Owners group (A2's last-owner check) across connections and
/// replicas: a row lock on the group, held to the end of the transaction.
async fn lock_owners(tx: &mut sqlx::Transaction<'static, Db>) -> Result<()> {
    sqlx::query("SELECT id FROM groups WHERE builtin = 'owners' FOR UPDATE")
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}
