//! `/metrics`: bounded under hostile requests, and counting what it says it counts.

use std::collections::BTreeSet;

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::json;

use crate::harness::{OWNER_KEY, TestApp};

async fn scrape(app: &TestApp) -> String {
    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The series of a scrape: every sample line without its value.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit_once(' ').map(|(s, _)| s).unwrap_or(l).to_owned())
        .collect()
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Path shapes: unmatched paths, and real routes with random IDs.
const PATHS: [&str; 6] = [
    "/{r}",
    "/{r}/{r}/{r}",
    "/v1/{r}",
    "/v1/connect/servers/{r}",
    "/v1/connect/servers/{r}/tokens/{r}",
    "/v1/vaults/{r}",
];
/// Method kinds: an invented method (a new one each time), and standard ones.
const METHODS: [&str; 6] = ["*", "GET", "POST", "PUT", "PATCH", "DELETE"];

async fn hit(app: &TestApp, method: &str, path: &str, auth: bool, rng: &mut Rng) {
    let method = if method == "*" {
        Method::from_bytes(format!("M{}", rng.next() % 1_000_000_000).as_bytes()).unwrap()
    } else {
        Method::from_bytes(method.as_bytes()).unwrap()
    };
    let mut path = path.to_owned();
    while path.contains("{r}") {
        path = path.replacen("{r}", &format!("x{:x}", rng.next()), 1);
    }
    let mut req = app.client.request(method, format!("{}{path}", app.base));
    if auth {
        req = req.bearer_auth(OWNER_KEY);
    }
    let status = req.send().await.expect("request sent").status();
    assert!(!status.is_server_error(), "{path}: {status}");
}

/// Issue 12, item 2: a client sending invented methods and random paths cannot grow `/metrics`.
/// Every label comes from a fixed set (method or `OTHER`, route template or `unmatched`, status),
/// so after one request of each shape, 10,000 more add no series at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_stay_the_same_size_under_random_methods_and_paths() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // One request of each shape, then one scrape (so that GET /metrics is counted too).
    for path in PATHS {
        for method in METHODS {
            for auth in [false, true] {
                hit(&app, method, path, auth, &mut rng).await;
            }
        }
    }
    scrape(&app).await;
    let before = scrape(&app).await;
    // 10,000 random requests of those shapes from 16 clients.
    let app = std::sync::Arc::new(app);
    let workers: Vec<_> = (0..16u64)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (w + 1).wrapping_mul(0x9e37_79b9));
                for _ in 0..625 {
                    let path = PATHS[(rng.next() % PATHS.len() as u64) as usize];
                    let method = METHODS[(rng.next() % METHODS.len() as u64) as usize];
                    let auth = rng.next() & 1 == 0;
                    hit(&app, method, path, auth, &mut rng).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let after = scrape(&app).await;
    let (b, a) = (series(&before), series(&after));
    let added: Vec<_> = a.difference(&b).collect();
    assert!(
        added.is_empty(),
        "10,000 requests added {} series ({} before), e.g. {:?}",
        added.len(),
        b.len(),
        &added[..added.len().min(3)]
    );
    assert_eq!(a.len(), b.len());
    assert!(
        after.contains("method=\"OTHER\""),
        "invented methods are counted as OTHER"
    );
    assert!(
        after.contains("route=\"unmatched\""),
        "unmatched paths share one route label"
    );
    assert!(
        !after.contains("method=\"M"),
        "no invented method in a label"
    );
    // Only the counters' digits grow.
    eprintln!(
        "/metrics before: {} bytes, {} series; after 10,000 random requests: {} bytes, {} series",
        before.len(),
        b.len(),
        after.len(),
        a.len()
    );
    assert!(after.len() < before.len() + before.len() / 10);
    std::sync::Arc::into_inner(app)
        .expect("workers done")
        .stop()
        .await;
}

/// `tokens_revoked_total` counts every token that stops being active by a revoke: by token
/// delete, and with their server by server delete (R4), never one revoked before.
async fn tokens_revoked_total_counts_the_tokens_a_server_delete_revokes(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("a", "USER_CREATED").await;
    app.server("web", &["a"]).await;
    app.server("empty", &[]).await;
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let (t, _) = app
            .token("web", json!({"name": name, "vaults": [{"vault": "a"}]}))
            .await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    app.delete(&format!("/v1/connect/tokens/{}", ids[0]))
        .await
        .expect(200);
    let revoked = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("connect_manager_tokens_revoked_total "))
            .map(|v| v.parse::<u64>().unwrap())
    };
    assert_eq!(revoked(&scrape(&app).await), Some(1));
    app.delete("/v1/connect/servers/web").await.expect(204);
    assert_eq!(
        revoked(&scrape(&app).await),
        Some(3),
        "the server delete revoked two more"
    );
    app.delete("/v1/connect/servers/empty").await.expect(204);
    let text = scrape(&app).await;
    assert_eq!(revoked(&text), Some(3), "a server without tokens adds none");
    assert!(
        text.contains("# HELP connect_manager_tokens_revoked_total Tokens revoked: by token delete, and with their server by server delete.")
    );
    app.stop().await;
}

/// The value of a sample line (`name{labels}` as written), if present.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Issue 18: gauges of live tokens expiring within 7 days and never used, from the database.
async fn metrics_gauge_tokens_expiring_within_7_days_and_never_used(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("Prod", "USER_CREATED").await;
    let (server, secret) = app.server("web", &["Prod"]).await;
    let id = server["id"].as_str().unwrap();
    let (gone, _) = app.server("gone", &["Prod"]).await;
    let token = async |server: &str, expires_in: Option<&str>| {
        let mut body = json!({"name": "t", "vaults": [{"vault": "Prod"}]});
        if let Some(e) = expires_in {
            body["expires_in"] = json!(e);
        }
        app.token(server, body).await.0["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    token(id, Some("2d")).await; // expiring, never used
    let used = token(id, Some("6d")).await; // expiring, used
    token(id, Some("8d")).await; // never used
    token(id, None).await; // never used
    let revoked = token(id, Some("1d")).await; // revoked: neither
    token(gone["id"].as_str().unwrap(), Some("1d")).await; // its server deleted: neither
    app.delete(&format!("/v1/connect/tokens/{revoked}"))
        .await
        .expect(200);
    app.delete(&format!(
        "/v1/connect/servers/{}",
        gone["id"].as_str().unwrap()
    ))
    .await
    .expect(204);
    app.post_as_server(
        "/v1/connect/self/usage",
        id,
        &secret,
        json!({"tokens": [{"id": used, "last_used_at": connect_manager_core::Timestamp::now()}]}),
    )
    .await
    .expect(204);
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, "connect_manager_tokens_expiring{within=\"7d\"}"),
        Some(2),
        "{text}"
    );
    assert_eq!(
        sample(&text, "connect_manager_tokens_never_used"),
        Some(3),
        "{text}"
    );
    assert!(text.contains("# TYPE connect_manager_tokens_expiring gauge"));
    assert!(text.contains("# TYPE connect_manager_tokens_never_used gauge"));
    app.stop().await;
}

backend_tests!(
    tokens_revoked_total_counts_the_tokens_a_server_delete_revokes,
    metrics_gauge_tokens_expiring_within_7_days_and_never_used,
);
