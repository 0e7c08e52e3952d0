//! The error envelope (E1) and bad input (E2): a clear 4xx, nothing written, never a 500.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;

use crate::harness::{OWNER_KEY, Reply, TestApp};

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(OWNER_KEY)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

async fn e1_every_error_uses_the_envelope(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let json = Some("application/json");
    raw(
        &app,
        Method::POST,
        "/v1/vaults",
        json,
        b"{\"name\":".to_vec(),
    )
    .await
    .expect_error(400, "malformed_json");
    raw(&app, Method::POST, "/v1/vaults", json, b"[1,2]".to_vec())
        .await
        .expect_error(400, "invalid_body");
    raw(
        &app,
        Method::POST,
        "/v1/vaults",
        json,
        br#"{"name":"a","type":"EVERYONE","x":1}"#.to_vec(),
    )
    .await
    .expect_error(400, "invalid_body");
    raw(
        &app,
        Method::POST,
        "/v1/vaults",
        json,
        br#"{"name":"a","type":"SECRET"}"#.to_vec(),
    )
    .await
    .expect_error(400, "invalid_body");
    raw(
        &app,
        Method::POST,
        "/v1/vaults",
        json,
        br#"{"name":5,"type":"EVERYONE"}"#.to_vec(),
    )
    .await
    .expect_error(400, "invalid_body");
    raw(&app, Method::POST, "/v1/vaults", json, b"\xff\xfe".to_vec())
        .await
        .expect_error(400, "malformed_json");
    raw(
        &app,
        Method::POST,
        "/v1/vaults",
        Some("text/plain"),
        br#"{"name":"a","type":"EVERYONE"}"#.to_vec(),
    )
    .await
    .expect_error(415, "unsupported_media_type");
    raw(&app, Method::POST, "/v1/vaults", None, vec![])
        .await
        .expect_error(415, "unsupported_media_type");
    let mut big = br#"{"name":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend(br#"","type":"EVERYONE"}"#);
    raw(&app, Method::POST, "/v1/vaults", json, big)
        .await
        .expect_error(413, "too_large");
    app.get("/v1/nothing-here")
        .await
        .expect_error(404, "not_found");
    raw(&app, Method::PUT, "/v1/vaults", json, vec![])
        .await
        .expect_error(405, "method_not_allowed");
    app.get("/v1/users?limit=abc")
        .await
        .expect_error(400, "invalid_query");
    // E2: nothing of that reached storage.
    let vaults = app.get("/v1/vaults").await.expect(200);
    assert!(vaults["items"].as_array().unwrap().is_empty(), "{vaults}");
    app.stop().await;
}

async fn e1_request_ids_are_echoed(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let r = app
        .client
        .get(format!("{}/v1/vaults/nope", app.base))
        .bearer_auth(OWNER_KEY)
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], "trace-abc-123");
    let r = app.get("/healthz").await;
    assert_eq!(r.headers["x-request-id"].len(), 26, "made when not given");
    app.stop().await;
}

async fn e1_oversized_headers_are_431(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let r = app
        .client
        .get(format!("{}/v1/vaults", app.base))
        .bearer_auth(OWNER_KEY)
        .header("x-padding", "a".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large");
    app.get("/v1/vaults").await.expect(200);
    app.stop().await;
}

/// E2: bad input never reaches storage: no row and no audit event after a run of refusals.
async fn e2_bad_input_leaves_nothing_behind(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("Shared", "EVERYONE").await;
    app.vault("Mine", "PERSONAL").await;
    let events = app.audit_actions().await.len();
    let json = Some("application/json");
    raw(
        &app,
        Method::POST,
        "/v1/connect/servers",
        json,
        br#"{"name": "web", "vaults": ["shared", "mine"]}"#.to_vec(),
    )
    .await
    .expect_error(422, "vault_not_grantable");
    raw(
        &app,
        Method::POST,
        "/v1/connect/servers",
        json,
        br#"{"name": "", "vaults": []}"#.to_vec(),
    )
    .await
    .expect_error(422, "invalid_field");
    raw(
        &app,
        Method::POST,
        "/v1/users",
        json,
        br#"{"name": "a", "email": "no"}"#.to_vec(),
    )
    .await
    .expect_error(422, "invalid_field");
    raw(
        &app,
        Method::POST,
        "/v1/groups",
        json,
        br#"{"name": "x\u0001"}"#.to_vec(),
    )
    .await
    .expect_error(422, "invalid_field");
    assert!(
        app.get("/v1/connect/servers").await.expect(200)["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.get("/v1/users").await.expect(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get("/v1/groups").await.expect(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.audit_actions().await.len(),
        events,
        "no event for a refused change"
    );
    app.stop().await;
}

backend_tests!(
    e2_bad_input_leaves_nothing_behind,
    e1_every_error_uses_the_envelope,
    e1_request_ids_are_echoed,
    e1_oversized_headers_are_431,
);
