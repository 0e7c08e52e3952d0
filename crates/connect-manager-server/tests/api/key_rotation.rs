//! Scheduled signing-key rotation (issue 18): `CONNECT_MANAGER_KEY_ROTATION_INTERVAL` makes a
//! new key when the newest is older than the interval, once across replicas.

use std::time::{Duration, Instant};

use connect_manager_store::testing::TestDb;
use connect_manager_store::{Backend, backend_tests};
use serde_json::{Value, json};

use crate::harness::TestApp;

/// Runs `sql` on the test database directly (ages keys; counts them).
async fn sql_scalar(db: &TestDb, sql: &str) -> i64 {
    match db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let v = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_optional(&pool)
                .await
                .unwrap();
            pool.close().await;
            v.unwrap_or_default()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let v = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_optional(&pool)
                .await
                .unwrap();
            pool.close().await;
            v.unwrap_or_default()
        }
    }
}

async fn key_count(db: &TestDb) -> i64 {
    sql_scalar(db, "SELECT COUNT(*) FROM signing_keys").await
}

/// Makes every signing key look two hours old.
async fn age_keys(db: &TestDb) {
    sql_scalar(
        db,
        "UPDATE signing_keys SET created_at = created_at - 7200000000 RETURNING created_at",
    )
    .await;
}

/// Waits until the database holds `n` signing keys (the rotation runs beside the start), then
/// a little longer, and checks it still holds exactly `n`.
async fn expect_keys(db: &TestDb, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while key_count(db).await < n {
        assert!(Instant::now() < deadline, "no rotation within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(key_count(db).await, n, "exactly {n} signing keys");
}

fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn newest_created_at(db: &TestDb) -> i64 {
    sql_scalar(db, "SELECT MAX(created_at) FROM signing_keys").await
}

async fn scheduled_rotation_makes_a_key_when_the_newest_is_older_than_the_interval(db: TestDb) {
    let mut app = TestApp::spawn(db).await;
    app.vault("Prod", "USER_CREATED").await;
    app.server("web", &["Prod"]).await;
    let (_, before) = app
        .token("web", json!({"name": "old", "vaults": [{"vault": "Prod"}]}))
        .await;
    assert_eq!(key_count(&app.db).await, 1);

    // A young key: nothing to do.
    app.restart_rotating("1h").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(key_count(&app.db).await, 1, "the key is younger than 1h");

    // The key is two hours old: one new key, which signs from now on.
    age_keys(&app.db).await;
    app.restart_rotating("1h").await;
    expect_keys(&app.db, 2).await;
    let made = newest_created_at(&app.db).await;
    let (_, after) = app
        .token("web", json!({"name": "new", "vaults": [{"vault": "Prod"}]}))
        .await;
    assert_ne!(kid_of(&after), kid_of(&before), "the new key signs");
    // The old key is not retired: its token still verifies and it stays published.
    let jwks = app.get_as(None, "/.well-known/jwks.json").await.expect(200);
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(kids.contains(&kid_of(&before).as_str()), "{jwks}");
    assert!(
        app.audit_actions()
            .await
            .contains(&("signing_key.create".to_owned(), "success".to_owned()))
    );
    // Restarting does not rotate again: the new key is young.
    app.restart_rotating("1h").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(key_count(&app.db).await, 2);
    assert_eq!(newest_created_at(&app.db).await, made);
    app.stop().await;
}

/// S2: replicas sharing one PostgreSQL that find the key due at the same moment make exactly
/// one key between them, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_racing_to_rotate_make_exactly_one_key() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn(db).await;
    for round in 1..=3 {
        age_keys(&app.db).await;
        let (a, b, c) = tokio::join!(
            app.replica_rotating("1h"),
            app.replica_rotating("1h"),
            app.replica_rotating("1h"),
        );
        expect_keys(&app.db, 1 + round).await;
        a.stop().await;
        b.stop().await;
        c.stop().await;
    }
    app.stop().await;
}

backend_tests!(scheduled_rotation_makes_a_key_when_the_newest_is_older_than_the_interval);
