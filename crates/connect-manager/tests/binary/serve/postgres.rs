//! `serve` on PostgreSQL: a database outage in the log, and several replicas starting at once.

use connect_manager_store::testing::TestDb;

use crate::support::{Running, command};

/// Issue 12, item 14: during a database outage the log says so once, then counts the 503s once
/// per interval, instead of an ERROR line per request (hundreds a second under load). The
/// transitions are logged once each. The outage: a TCP proxy between the service and PostgreSQL,
/// cut, then restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_logs_a_count_per_interval_not_an_error_per_503() {
    use connect_manager_store::testing::TcpProxy;
    use std::time::{Duration, Instant};
    const REQUESTS: usize = 1_000;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let (mut proxy, url) = TcpProxy::to_postgres(&db.url).await;
    let dir = tempfile::tempdir().unwrap();
    let key = "outage-key-outage-key-outage-key-0123";
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &url)
        .env("CONNECT_MANAGER_BOOTSTRAP_KEY", key)
        .env("NO_COLOR", "1");
    let mut app = Running::start(cmd, dir.path());
    app.wait_ready().await;
    let client = crate::support::http();
    let get = move |url: String| {
        let client = client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let errors = |log: &str| log.lines().filter(|l| l.contains("ERROR")).count();
    assert_eq!(errors(&app.stderr()), 0, "{}", app.stderr());

    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(format!("{}/readyz", app.base)).await != 503 {
        assert!(Instant::now() < deadline, "the outage was never noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (get, url) = (get.clone(), format!("{}/v1/users", app.base));
            tokio::spawn(async move {
                for _ in 0..REQUESTS / 8 {
                    assert_eq!(get(url.clone()).await, 503);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    proxy.restore().await;
    app.wait_ready().await;
    // The count of the interval follows within it.
    let interval = connect_manager_server::unavailable_log::INTERVAL;
    let deadline = Instant::now() + interval + Duration::from_secs(5);
    while !app.stderr().contains("more requests in the last") {
        assert!(Instant::now() < deadline, "no count line: {}", app.stderr());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = app.stop();
    let error_lines: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    // The first 503 (a /readyz probe) at once, then a count per interval: one or two intervals.
    assert!(
        (2..=3).contains(&error_lines.len()),
        "{}",
        error_lines.join("\n")
    );
    assert!(error_lines[0].contains("database unavailable: answering 503"));
    let counted: usize = error_lines[1..]
        .iter()
        .map(|l| {
            l.split("answered 503 to ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("a count: {l}"))
        })
        .sum();
    assert!(counted >= REQUESTS, "{}", error_lines.join("\n"));
    assert_eq!(log.matches("database down").count(), 1, "{log}");
    assert_eq!(log.matches("database back").count(), 1, "{log}");
    eprintln!(
        "{} 503s in the outage: {} ERROR lines",
        counted + 1,
        error_lines.len()
    );
}

/// S1/S2: several replicas starting at once on one fresh PostgreSQL database apply each migration
/// once and make one owner.
#[tokio::test]
async fn postgres_replicas_starting_together_migrate_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut replicas: Vec<Running> = (0..3)
        .map(|_| {
            let mut cmd = command(dir.path());
            cmd.env("DATABASE_URL", &db.url)
                .env("CONNECT_MANAGER_MASTER_KEY", "m".repeat(40));
            Running::start(cmd, dir.path())
        })
        .collect();
    for r in &mut replicas {
        r.wait_ready().await;
    }
    let logs: Vec<String> = replicas.into_iter().map(Running::stop).collect();
    let created = logs
        .iter()
        .filter(|l| l.contains("created the first owner"))
        .count();
    assert_eq!(created, 1, "exactly one replica created the first owner");
    assert!(logs.iter().all(|l| !l.contains("cmk_")), "{logs:?}");
    assert!(dir.path().join("data/owner.key").exists());
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/postgres"
    ))
    .unwrap()
    .count();
    assert_eq!(applied as usize, files);
    let owners: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(owners, 1);
}
