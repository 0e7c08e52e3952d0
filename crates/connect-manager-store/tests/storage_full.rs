//! A full disk (issue 12, item 15): writes answer `StorageFull` (503 `storage_full`), never a
//! 500; the readiness check says so; and once there is space again writes work by themselves,
//! with no restart. Before, a COMMIT that failed on a full disk left its connection inside a
//! transaction as sqlx counts it (SQLite had already rolled it back, so sqlx's ROLLBACK failed
//! too), that connection went back to the pool, and every write begun on it failed until a
//! restart. `scripts/drill disk-full` does the same on real full file systems, for both backends.

use std::time::{Duration, Instant};

use connect_manager_core::Error;
use connect_manager_core::model::VaultType;
use connect_manager_store::postgres::PostgresStore;
use connect_manager_store::prelude::*;
use connect_manager_store::sqlite::SqliteStore;
use connect_manager_store::testing::{TestDb, actor};
use connect_manager_store::{Backend, backend_tests};

/// Fills every connection of `$pool` with a transaction whose COMMIT fails the way a COMMIT on a
/// full disk does: the database has already ended the transaction (here: a ROLLBACK behind
/// sqlx's back), so the COMMIT fails (SQLite) and so does the ROLLBACK sqlx sends on drop.
/// `$spare` connections are the store's own (PostgreSQL's change feed holds one). Returns how
/// many of the COMMITs failed.
macro_rules! fail_a_commit_on_every_connection {
    ($pool:expr, $spare:expr) => {{
        let pool = $pool;
        let mut held = Vec::new();
        for _ in 0..pool.options().get_max_connections() - $spare {
            held.push(pool.begin().await.expect("begin"));
        }
        let mut failed = 0;
        for mut tx in held {
            sqlx::query("ROLLBACK")
                .execute(&mut *tx)
                .await
                .expect("rollback behind sqlx's back");
            if tx.commit().await.is_err() {
                failed += 1;
            }
        }
        failed
    }};
}

async fn write(store: &dyn Store, name: &str) -> Result<String, Error> {
    store
        .create_vault(
            &actor(),
            &connect_manager_store::testing::name(name),
            VaultType::UserCreated,
        )
        .await
        .map(|v| v.id)
}

async fn e1_a_failed_commit_puts_no_connection_back_inside_a_transaction(db: TestDb) {
    let (store, failed): (Box<dyn Store>, usize) = match db.backend {
        Backend::Sqlite => {
            let store = SqliteStore::open(&db.url).await.unwrap();
            let failed = fail_a_commit_on_every_connection!(store.pool().clone(), 0);
            (Box::new(store), failed)
        }
        Backend::Postgres => {
            let store = PostgresStore::open(&db.url).await.unwrap();
            let failed = fail_a_commit_on_every_connection!(store.pool().clone(), 1);
            (Box::new(store), failed)
        }
    };
    if db.backend == Backend::Sqlite {
        // PostgreSQL answers a COMMIT outside a transaction with a warning, not an error.
        assert_eq!(failed, 4, "every COMMIT failed");
    }
    // Every connection went back to the pool after its failed transaction: each write below
    // lands on one of them, or on a fresh one that replaced it.
    for i in 0..20 {
        write(&*store, &format!("after-{i}"))
            .await
            .unwrap_or_else(|e| panic!("write {i} after failed commits: {e:?}"));
    }
    store.close().await;
}

/// Sets SQLite's `max_page_count` on every connection of the pool (it is a per-connection
/// setting, and the store replaces a connection it closes): writes that need a page past it
/// fail with `SQLITE_FULL`, as on a full disk.
async fn limit_pages(store: &SqliteStore, pages: i64) {
    let pool = store.pool();
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await.unwrap());
    }
    for conn in &mut held {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA max_page_count = {pages}"
        )))
        .execute(&mut **conn)
        .await
        .unwrap();
    }
}

async fn e1_a_full_database_answers_storage_full_and_recovers_without_restart(db: TestDb) {
    if db.backend != Backend::Sqlite {
        // PostgreSQL has no size limit to set per session; `scripts/drill disk-full` fills a
        // real file system under it.
        return;
    }
    let store = SqliteStore::open(&db.url).await.unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        acknowledged.push(write(&store, &format!("before-{i}")).await.unwrap());
    }
    store.ping().await.unwrap();

    // Full: writes fail with StorageFull (never Internal) once no page is left.
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let mut full = 0;
    for i in 0..2000 {
        limit_pages(&store, pages).await;
        match write(&store, &format!("filling-{i}-{}", "x".repeat(200))).await {
            Ok(id) => acknowledged.push(id),
            Err(Error::StorageFull { .. }) => {
                full += 1;
                if full >= 10 {
                    break;
                }
            }
            Err(e) => panic!("write {i} on a full database: {e:?}, not StorageFull"),
        }
    }
    assert!(full >= 10, "the database never filled up");
    limit_pages(&store, pages).await;
    assert!(
        matches!(store.ping().await, Err(Error::StorageFull { .. })),
        "the readiness check says writes fail for lack of space"
    );
    // Reads still work.
    assert!(matches!(
        store.find_vaults("before-0").await.unwrap(),
        connect_manager_core::lookup::Found::Names(v) if v.len() == 1
    ));

    // Space again: writes work by themselves, and so does the readiness check.
    limit_pages(&store, 1 << 30).await;
    for i in 0..20 {
        acknowledged.push(
            write(&store, &format!("after-{i}"))
                .await
                .unwrap_or_else(|e| panic!("write {i} once there is space again: {e:?}")),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = store.ping().await {
        assert!(Instant::now() < deadline, "still not ready: {e:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing acknowledged was lost, and the file is sound.
    for id in &acknowledged {
        assert!(
            matches!(
                store.find_vaults(id).await.unwrap(),
                connect_manager_core::lookup::Found::Id(_)
            ),
            "{id}"
        );
    }
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(check, "ok");
    store.close().await;
}

backend_tests!(
    e1_a_failed_commit_puts_no_connection_back_inside_a_transaction,
    e1_a_full_database_answers_storage_full_and_recovers_without_restart,
);
