//! The PostgreSQL connection settings of issue 12 (item 14), through the built binary: a
//! statement that runs longer than `CONNECT_MANAGER_DB_STATEMENT_TIMEOUT` is cancelled by
//! PostgreSQL and the request answered 503 in the error envelope, not left hanging until the
//! request timeout and not 500.

use std::time::{Duration, Instant};

use connect_manager_store::testing::TestDb;
use sqlx::Connection;

use crate::support::{Running, command, http};

const OWNER_KEY: &str = "cmk_statement_timeout_test_owner_key_0123456789";

#[tokio::test]
async fn db_statement_timeout_answers_a_stuck_request_503() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &db.url)
        .env("CONNECT_MANAGER_MASTER_KEY", "m".repeat(40))
        .env("CONNECT_MANAGER_BOOTSTRAP_KEY", OWNER_KEY)
        .env("CONNECT_MANAGER_DB_STATEMENT_TIMEOUT", "300ms");
    let mut app = Running::start(cmd, dir.path());
    app.wait_ready().await;
    let client = http();
    let vaults = || {
        client
            .get(format!("{}/v1/vaults", app.base))
            .bearer_auth(OWNER_KEY)
            .timeout(Duration::from_secs(10))
            .send()
    };
    assert_eq!(vaults().await.unwrap().status(), 200);

    // Another session holds the vaults table: the listing waits for it, until the timeout.
    let mut locker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = locker.begin().await.unwrap();
    sqlx::query("LOCK TABLE vaults IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let start = Instant::now();
    let r = vaults()
        .await
        .expect("answered, not left waiting for the lock");
    let took = start.elapsed();
    assert_eq!(r.status(), 503, "after {took:?}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        !body.to_string().contains("statement timeout"),
        "the detail stays in the log: {body}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(vaults().await.unwrap().status(), 200, "served again");
    locker.close().await.ok();
    let log = app.stop();
    assert!(log.contains("statement timeout"), "the log says why: {log}");
}
