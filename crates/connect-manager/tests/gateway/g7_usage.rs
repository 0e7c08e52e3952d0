//! G7: the gateway's usage reporter against the real manager: at most one report per token per
//! minute (shortened here), and the last use shows on the token in the manager's API.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_manager_gateway::manager::Manager;
use connect_manager_gateway::metrics::Metrics;
use connect_manager_gateway::usage::Usage;

use crate::support::install_crypto;
use crate::support::manager::{Server, TestManager};

fn usage(server: &Server, period: Option<Duration>) -> (Arc<Usage>, Arc<Metrics>) {
    install_crypto();
    let manager = Arc::new(Manager::from_credentials_file(&server.credentials).unwrap());
    let metrics = Arc::new(Metrics::default());
    let u = match period {
        Some(p) => Usage::with_period(manager, metrics.clone(), p),
        None => Usage::new(manager, metrics.clone()),
    };
    (Arc::new(u), metrics)
}

fn reports(metrics: &Metrics) -> u64 {
    metrics
        .usage_reports
        .load(std::sync::atomic::Ordering::Relaxed)
}

async fn entries_received(m: &TestManager) -> f64 {
    m.metric("connect_manager_usage_entries_total{result=\"received\"}")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_reporter_sends_at_most_one_report_per_token_per_minute() {
    let m = TestManager::start().await;
    m.create_vault("prod").await;
    let web = m.create_server("web", &["prod"]).await;
    let a = m.create_token("web", "a", &[("prod", "read")], None).await;
    let b = m.create_token("web", "b", &[("prod", "read")], None).await;
    // The minute, shortened to 2 s (batches every 166 ms).
    let period = Duration::from_secs(2);
    let (u, metrics) = usage(&web, Some(period));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = u.start(async move {
        let _ = stopped.await;
    });
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let start = Instant::now();
    let mut recorded = 0;
    while start.elapsed() < Duration::from_millis(5200) {
        u.record(&a.id, ip);
        u.record(&b.id, ip);
        recorded += 2;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap();
    let elapsed = start.elapsed();
    let entries = entries_received(&m).await;
    // Each token: one report at its first batch, then one per period at most.
    let per_token_bound = (elapsed.as_secs_f64() / period.as_secs_f64()).floor() + 1.0;
    println!(
        "{recorded} uses of 2 tokens over {elapsed:?}: {} reports, {entries} entries (at most {} per token)",
        reports(&metrics),
        per_token_bound
    );
    assert!(entries >= 4.0, "reported as it went: {entries}");
    assert!(
        entries <= 2.0 * per_token_bound,
        "at most one report per token per period: {entries} entries"
    );
    assert_eq!(
        u.pending(),
        2,
        "the uses since each token's last report wait for its period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g7_last_use_appears_on_the_token_in_the_manager_api() {
    let mut m = TestManager::start().await;
    m.create_vault("prod").await;
    let web = m.create_server("web", &["prod"]).await;
    let used = m
        .create_token("web", "used", &[("prod", "read")], None)
        .await;
    let unused = m
        .create_token("web", "unused", &[("prod", "read")], None)
        .await;
    let late = m
        .create_token("web", "late", &[("prod", "read")], None)
        .await;
    let (u, metrics) = usage(&web, None);
    let before = connect_manager_core::Timestamp::now();
    u.record(&used.id, "203.0.113.7".parse().unwrap());
    u.record(&used.id, "2001:db8::1".parse().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = u.start(async move {
        let _ = stopped.await;
    });
    // The first batch goes out within 5 s (a minute's twelfth).
    let deadline = Instant::now() + Duration::from_secs(10);
    let token = loop {
        let t = m.token(&used.id, "web").await;
        if !t["last_used_at"].is_null() {
            break t;
        }
        assert!(Instant::now() < deadline, "never reported: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        token["last_used_ip"], "2001:db8::1",
        "the last use: {token}"
    );
    let at =
        connect_manager_core::Timestamp::parse_rfc3339(token["last_used_at"].as_str().unwrap())
            .unwrap();
    assert!(at.unix_seconds() >= before.unix_seconds(), "{token}");
    let never = m.token(&unused.id, "web").await;
    assert!(
        never["last_used_at"].is_null() && never["last_used_ip"].is_null(),
        "{never}"
    );

    // Used just before shutdown: the last flush reports it.
    u.record(&late.id, "198.51.100.2".parse().unwrap());
    stop.send(()).unwrap();
    task.await.unwrap();
    let t = m.token(&late.id, "web").await;
    assert_eq!(
        t["last_used_ip"], "198.51.100.2",
        "reported at shutdown: {t}"
    );
    assert_eq!(reports(&metrics), 2);

    // A report the manager could not take is sent again once it is back.
    let (u, metrics) = usage(&web, None);
    let retried = m
        .create_token("web", "retried", &[("prod", "read")], None)
        .await;
    m.stop();
    u.record(&retried.id, "192.0.2.9".parse().unwrap());
    u.flush().await;
    assert_eq!(reports(&metrics), 0);
    assert_eq!(u.pending(), 1, "kept for the next batch");
    m.restart().await;
    u.flush().await;
    assert_eq!((reports(&metrics), u.pending()), (1, 0));
    let t = m.token(&retried.id, "web").await;
    assert_eq!(t["last_used_ip"], "192.0.2.9", "{t}");
}
