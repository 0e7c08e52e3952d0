//! G7 over HTTP: `POST /v1/connect/self/usage`, and `last_used_at` / `last_used_ip` on every
//! token the API shows.

use connect_manager_core::Timestamp;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use crate::harness::{TestApp, items};

const USAGE: &str = "/v1/connect/self/usage";

/// A vault and two servers with one token each: ((server ID, secret, token ID) of A, … of B).
async fn two_servers(app: &TestApp) -> ((String, String, String), (String, String, String)) {
    app.vault("Prod", "USER_CREATED").await;
    let mut out = Vec::new();
    for name in ["a", "b"] {
        let (server, secret) = app.server(name, &["Prod"]).await;
        let id = server["id"].as_str().unwrap().to_owned();
        let (token, _) = app
            .token(&id, json!({"name": "t", "vaults": [{"vault": "Prod"}]}))
            .await;
        // null until used, in the create answer too
        assert!(token["last_used_at"].is_null(), "{token}");
        assert!(token["last_used_ip"].is_null(), "{token}");
        assert!(token.as_object().unwrap().contains_key("last_used_at"));
        assert!(token.as_object().unwrap().contains_key("last_used_ip"));
        out.push((id, secret, token["id"].as_str().unwrap().to_owned()));
    }
    let b = out.pop().unwrap();
    (out.pop().unwrap(), b)
}

fn entry(token: &str, at: Timestamp, ip: &str) -> Value {
    json!({"id": token, "last_used_at": at.to_rfc3339(), "last_used_ip": ip})
}

fn minutes_ago(minutes: i64) -> Timestamp {
    Timestamp::now().plus_seconds(-60 * minutes)
}

/// The token as the list shows it.
async fn listed(app: &TestApp, token: &str) -> Value {
    let page = app.get("/v1/connect/tokens?limit=1000").await.expect(200);
    items(&page)
        .into_iter()
        .find(|t| t["id"] == token)
        .expect("the token is listed")
}

async fn report(app: &TestApp, server: &(String, String, String), entries: Vec<Value>) -> u16 {
    app.post_as_server(USAGE, &server.0, &server.1, json!({"tokens": entries}))
        .await
        .status
        .as_u16()
}

async fn g7_usage_endpoint_records_last_use(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (a, _) = two_servers(&app).await;
    let at = minutes_ago(3);
    assert_eq!(
        report(&app, &a, vec![entry(&a.2, at, "192.0.2.10")]).await,
        204
    );
    let t = listed(&app, &a.2).await;
    assert_eq!(t["last_used_at"], at.to_rfc3339());
    assert_eq!(t["last_used_ip"], "192.0.2.10");
    // Edit and delete answer with it too.
    let edited = app
        .patch(&format!("/v1/connect/tokens/{}", a.2), json!({"name": "u"}))
        .await
        .expect(200);
    assert_eq!(edited["last_used_ip"], "192.0.2.10");
    // An address is kept in canonical form.
    let later = minutes_ago(1);
    assert_eq!(
        report(&app, &a, vec![entry(&a.2, later, "2001:0db8:0:0::1")]).await,
        204
    );
    let deleted = app
        .delete(&format!("/v1/connect/tokens/{}", a.2))
        .await
        .expect(200);
    assert_eq!(deleted["last_used_at"], later.to_rfc3339());
    assert_eq!(deleted["last_used_ip"], "2001:db8::1");
    // Not audited, but counted.
    assert!(
        !app.audit_actions()
            .await
            .iter()
            .any(|(action, _)| action.contains("usage")),
    );
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("connect_manager_usage_reports_total 2"),
        "{text}"
    );
    assert!(
        text.contains("connect_manager_usage_entries_total{result=\"written\"} 2"),
        "{text}"
    );
    // An address that is not one is dropped; the use is recorded without it.
    let latest = later.plus_seconds(60);
    let (_, c) = {
        let (server, secret) = app.server("c", &["Prod"]).await;
        let id = server["id"].as_str().unwrap().to_owned();
        let (token, _) = app
            .token(&id, json!({"name": "t", "vaults": [{"vault": "Prod"}]}))
            .await;
        (
            id.clone(),
            (id, secret, token["id"].as_str().unwrap().to_owned()),
        )
    };
    assert_eq!(
        report(&app, &c, vec![entry(&c.2, latest, "not-an-address")]).await,
        204
    );
    let t = listed(&app, &c.2).await;
    assert_eq!(t["last_used_at"], latest.to_rfc3339());
    assert!(t["last_used_ip"].is_null(), "{t}");
    app.stop().await;
}

async fn g7_usage_ignores_other_servers_tokens(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (a, b) = two_servers(&app).await;
    let at = minutes_ago(2);
    // A reports B's token and an unknown one: 204 all the same (nothing tells A about B).
    assert_eq!(
        report(
            &app,
            &a,
            vec![
                entry(&b.2, at, "192.0.2.1"),
                entry("nosuchtoken000000000000000", at, "192.0.2.1"),
            ]
        )
        .await,
        204
    );
    let t = listed(&app, &b.2).await;
    assert!(t["last_used_at"].is_null(), "{t}");
    assert!(t["last_used_ip"].is_null(), "{t}");
    app.stop().await;
}

async fn g7_usage_refuses_a_bad_credential(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (a, b) = two_servers(&app).await;
    let body = json!({"tokens": [entry(&a.2, minutes_ago(1), "192.0.2.1")]});
    // B's secret for A, a wrong secret, a user's API key, nothing.
    app.post_as_server(USAGE, &a.0, &b.1, body.clone())
        .await
        .expect_error(401, "unauthorized");
    app.post_as_server(USAGE, &a.0, "wrong", body.clone())
        .await
        .expect_error(401, "unauthorized");
    app.post(USAGE, body.clone())
        .await
        .expect_error(401, "unauthorized");
    app.send(reqwest::Method::POST, USAGE, None, Some(body))
        .await
        .expect_error(401, "unauthorized");
    assert!(listed(&app, &a.2).await["last_used_at"].is_null());
    app.stop().await;
}

async fn g7_usage_refuses_an_oversized_batch(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (a, _) = two_servers(&app).await;
    let at = minutes_ago(1);
    // A full report with IPv6 addresses is over 64 KiB: accepted.
    let full: Vec<Value> = (0..1000)
        .map(|i| {
            entry(
                &format!("unknown{i:019}"),
                at,
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            )
        })
        .chain([entry(&a.2, at, "192.0.2.1")])
        .skip(1)
        .collect();
    assert!(serde_json::to_vec(&full).unwrap().len() > 64 * 1024);
    assert_eq!(report(&app, &a, full).await, 204);
    assert_eq!(listed(&app, &a.2).await["last_used_ip"], "192.0.2.1");
    // 1001 entries: 422 in the envelope, nothing written.
    let over: Vec<Value> = (0..1001)
        .map(|_| entry(&a.2, Timestamp::now(), "192.0.2.2"))
        .collect();
    app.post_as_server(USAGE, &a.0, &a.1, json!({"tokens": over}))
        .await
        .expect_error(422, "invalid_field");
    assert_eq!(listed(&app, &a.2).await["last_used_ip"], "192.0.2.1");
    // A body over 256 KiB: 413 too.
    let padding = "x".repeat(300 * 1024);
    app.post_as_server(
        USAGE,
        &a.0,
        &a.1,
        json!({"tokens": [{"id": padding, "last_used_at": at.to_rfc3339(), "last_used_ip": null}]}),
    )
    .await
    .expect_error(413, "too_large");
    app.stop().await;
}

async fn g7_usage_never_moves_time_back(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (a, _) = two_servers(&app).await;
    let recent = minutes_ago(2);
    assert_eq!(
        report(&app, &a, vec![entry(&a.2, recent, "192.0.2.1")]).await,
        204
    );
    assert_eq!(
        report(&app, &a, vec![entry(&a.2, minutes_ago(20), "192.0.2.2")]).await,
        204
    );
    let t = listed(&app, &a.2).await;
    assert_eq!(t["last_used_at"], recent.to_rfc3339());
    assert_eq!(t["last_used_ip"], "192.0.2.1");
    app.stop().await;
}

async fn g7_usage_writes_a_token_at_most_once_a_minute(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (a, _) = two_servers(&app).await;
    let first = minutes_ago(10);
    // Three gateways of the same server report uses within one minute: one write.
    for (seconds, ip) in [(0, "192.0.2.1"), (20, "192.0.2.2"), (59, "192.0.2.3")] {
        assert_eq!(
            report(&app, &a, vec![entry(&a.2, first.plus_seconds(seconds), ip)]).await,
            204
        );
    }
    let t = listed(&app, &a.2).await;
    assert_eq!(t["last_used_at"], first.to_rfc3339());
    assert_eq!(t["last_used_ip"], "192.0.2.1");
    let text = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("connect_manager_usage_entries_total{result=\"written\"} 1"),
        "{text}"
    );
    // A minute on: written.
    let later = first.plus_seconds(60);
    assert_eq!(
        report(&app, &a, vec![entry(&a.2, later, "192.0.2.4")]).await,
        204
    );
    assert_eq!(listed(&app, &a.2).await["last_used_at"], later.to_rfc3339());
    app.stop().await;
}

backend_tests!(
    g7_usage_endpoint_records_last_use,
    g7_usage_ignores_other_servers_tokens,
    g7_usage_refuses_a_bad_credential,
    g7_usage_refuses_an_oversized_batch,
    g7_usage_never_moves_time_back,
    g7_usage_writes_a_token_at_most_once_a_minute,
);
