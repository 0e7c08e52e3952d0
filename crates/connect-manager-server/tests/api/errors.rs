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

/// Traversal-like, control-character, quoting and oversized references reach every lookup as
/// names (R1) and are simply found nowhere: a 404, never a 500 (PostgreSQL refuses NUL in text,
/// so a NUL must never reach it), and nothing is created by bodies that carry them (E2).
async fn r1_odd_references_are_404_everywhere(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server, _) = app.server("odd-refs", &[]).await;
    let server_id = server["id"].as_str().unwrap().to_owned();
    let long = "x".repeat(300);
    let huge = "y".repeat(6000);
    let odd = [
        "%00",
        "a%00b",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "..%5C..",
        "%0A",
        "%E2%80%AE",
        "%F0%9F%98%80",
        "%27%20OR%201%3D1%20--",
        "%25",
        "*",
        long.as_str(),
        huge.as_str(),
    ];
    for r in odd {
        for (method, path) in [
            (Method::GET, format!("/v1/connect/servers/{r}")),
            (Method::DELETE, format!("/v1/connect/tokens/{r}")),
            (Method::GET, format!("/v1/vaults/{r}")),
            (Method::GET, format!("/v1/groups/{r}")),
            (Method::GET, format!("/v1/users/{r}")),
            (Method::DELETE, format!("/v1/users/{r}/keys/{r}")),
            (
                Method::PUT,
                format!("/v1/connect/servers/{server_id}/vaults/{r}"),
            ),
            (Method::POST, format!("/v1/connect/servers/{r}/credentials")),
        ] {
            let reply = raw(&app, method, &path, None, Vec::new()).await;
            assert_eq!(reply.status, 404, "{path}: {}", reply.body);
            assert_eq!(reply.body["error"]["code"], "not_found", "{path}");
        }
        app.get(&format!("/v1/connect/tokens?server={r}"))
            .await
            .expect_error(404, "not_found");
        app.delete(&format!("/v1/connect/tokens/{r}?server={server_id}"))
            .await
            .expect_error(404, "not_found");
    }
    // The same references inside bodies: refused, nothing created.
    for r in ["\\u0000", "../../etc/passwd", "a\\u0000b"] {
        let body: serde_json::Value = serde_json::from_str(&format!(
            r#"{{"name": "t", "vaults": [{{"vault": "{r}"}}]}}"#
        ))
        .unwrap();
        let reply = app
            .post(&format!("/v1/connect/servers/{server_id}/tokens"), body)
            .await;
        assert!(
            [404, 422].contains(&reply.status.as_u16()),
            "{r}: {}",
            reply.body
        );
    }
    // As a name: a control character breaks R2 (422); a slash-dot name is just a name.
    for (name, status) in [
        ("\\u0000", 422),
        ("a\\u0000b", 422),
        ("../../etc/passwd", 201),
    ] {
        let body: serde_json::Value =
            serde_json::from_str(&format!(r#"{{"name": "{name}", "type": "USER_CREATED"}}"#))
                .unwrap();
        app.post("/v1/vaults", body).await.expect(status);
    }
    let tokens = app
        .get(&format!("/v1/connect/tokens?server={server_id}"))
        .await
        .expect(200);
    assert_eq!(tokens["items"].as_array().unwrap().len(), 0);
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
    r1_odd_references_are_404_everywhere,
);
