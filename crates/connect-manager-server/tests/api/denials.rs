//! A5 under attack: a denied request writes one audit event, whatever it matched; what a caller
//! typed is stored bounded and escaped; a client's request ID is kept only when short and plain.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use crate::harness::TestApp;

/// The audit events of one request.
async fn events_of(app: &TestApp, request_id: &str) -> Vec<Value> {
    app.all_items("/v1/audit/events?limit=1000")
        .await
        .into_iter()
        .filter(|e| e["request_id"] == request_id)
        .collect()
}

/// One denied request writes one event: a manager of server A naming a token that 150 tokens of
/// server B share gets 404, and the trail gets one `denied` event, not one per hidden match.
async fn a5_one_denied_event_per_request(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("shared", "EVERYONE").await;
    let (a, _) = app.server("a", &["shared"]).await;
    app.server("b", &["shared"]).await;
    for _ in 0..150 {
        app.token("b", json!({"name": "ci", "vaults": [{"vault": "shared"}]}))
            .await;
    }
    let (_, a_manager) = app
        .user_with(
            "amanager",
            Some(&format!("servers/{}", a["id"].as_str().unwrap())),
        )
        .await;
    for (n, path) in [
        "/v1/connect/tokens/ci",
        "/v1/connect/tokens/ci?server=b",
        "/v1/connect/servers/b",
    ]
    .into_iter()
    .enumerate()
    {
        let request_id = format!("denied-{n}");
        let r = app
            .client
            .delete(format!("{}{path}", app.base))
            .bearer_auth(&a_manager)
            .header("x-request-id", &request_id)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
        let events = events_of(&app, &request_id).await;
        assert_eq!(events.len(), 1, "{path}: {events:#?}");
        assert_eq!(events[0]["outcome"], "denied");
        let target = events[0]["target_id"].as_str().unwrap();
        assert_eq!(
            target.len(),
            26,
            "{path}: the hidden object's ID, not {target:?}"
        );
    }
    app.stop().await;
}

/// An owner-only endpoint refuses before it resolves anything, so the denied event's target is
/// what the caller typed: stored at most 255 characters, control and format characters escaped.
async fn a5_denied_targets_are_bounded_and_escaped(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (_, nobody) = app.user_with("nobody", None).await;
    let typed = format!("{}%0A%1B%E2%80%AE{}", "x".repeat(20), "y".repeat(8000));
    let r = app
        .client
        .get(format!("{}/v1/users/{typed}", app.base))
        .bearer_auth(&nobody)
        .header("x-request-id", "long-target")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let events = events_of(&app, "long-target").await;
    assert_eq!(events.len(), 1, "{events:#?}");
    let target = events[0]["target_id"].as_str().unwrap();
    assert!(target.chars().count() <= 255, "{} characters", target.len());
    assert!(
        !target
            .chars()
            .any(|c| c.is_control() || connect_manager_core::name::is_format(c)),
        "{target:?}"
    );
    assert!(
        target.starts_with(&format!("{}\\u{{a}}\\u{{1b}}\\u{{202e}}y", "x".repeat(20))),
        "{target:?}"
    );
    app.stop().await;
}

/// A client's `x-request-id` is kept only when it is 1–64 characters of `[A-Za-z0-9._-]`:
/// otherwise the response and the audit trail carry a fresh one.
async fn a5_client_request_ids_are_bounded(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (_, nobody) = app.user_with("nobody", None).await;
    let long = "a".repeat(65);
    let kept = "a".repeat(64);
    for (sent, keep) in [
        (kept.as_str(), true),
        ("trace.1_2-3", true),
        (long.as_str(), false),
        ("a:b", false),
        ("a/b", false),
        ("a b", false),
    ] {
        let r = app
            .client
            .post(format!("{}/v1/vaults", app.base))
            .bearer_auth(&nobody)
            .header("x-request-id", sent)
            .json(&json!({"name": "v", "type": "EVERYONE"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403);
        let echoed = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["request_id"], echoed.as_str());
        if keep {
            assert_eq!(echoed, sent);
        } else {
            assert_ne!(echoed, sent);
            assert_eq!(echoed.len(), 26, "a fresh ID");
        }
        // The denied event carries the same ID.
        assert_eq!(events_of(&app, &echoed).await.len(), 1, "{sent:?}");
    }
    app.stop().await;
}

backend_tests!(
    a5_one_denied_event_per_request,
    a5_denied_targets_are_bounded_and_escaped,
    a5_client_request_ids_are_bounded,
);
