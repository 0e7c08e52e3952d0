//! G8 in the console: an owner imports a Connect server's vaults under their real IDs (created,
//! renamed, never deleted), each change audited as that owner; the Connect token goes to that
//! server only and never comes back in a page; anyone else is refused before anything is fetched.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use super::Browser;
use crate::harness::{OWNER_KEY, TestApp, items};

const CONNECT_TOKEN: &str = "connect-token-not-for-pages-4b1d";
const KNOWN: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaa";
const NEW: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A stand-in for Connect's `GET /v1/vaults` (the closed Connect server cannot run here): the
/// published path and shape, answering only its own token, recording every Authorization header.
async fn fake_connect() -> (String, Arc<Mutex<Vec<String>>>) {
    async fn vaults(
        State(seen): State<Arc<Mutex<Vec<String>>>>,
        headers: HeaderMap,
    ) -> (StatusCode, axum::Json<Value>) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        seen.lock().unwrap().push(auth.clone());
        if auth != format!("Bearer {CONNECT_TOKEN}") {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"status": 401, "message": "Invalid token signature"})),
            );
        }
        (
            StatusCode::OK,
            axum::Json(json!([
                {"id": KNOWN, "name": "Production", "type": "USER_CREATED"},
                {"id": NEW, "name": "Shared", "type": "EVERYONE"},
                {"id": "NOT-A-VAULT-ID", "name": "odd"}
            ])),
        )
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/v1/vaults", get(vaults))
        .with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

async fn g8_console_import_creates_and_renames_by_real_id_as_the_owner(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (connect, seen) = fake_connect().await;
    app.post(
        "/v1/vaults",
        json!({"name": "Prod", "type": "USER_CREATED", "id": KNOWN}),
    )
    .await
    .expect(201);
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let page = b
        .post(
            "/ui/vaults/import",
            &[("connect_host", &connect), ("connect_token", CONNECT_TOKEN)],
        )
        .await
        .expect(200);
    assert!(
        page.html
            .contains("1 created, 1 renamed, 0 unchanged, 1 failed."),
        "{}",
        page.html
    );
    assert!(
        !page.html.contains(CONNECT_TOKEN),
        "the token is never shown"
    );
    let vaults = app.get("/v1/vaults").await.expect(200);
    let names: Vec<(String, String)> = items(&vaults)
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().into(),
                v["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        names.contains(&(KNOWN.into(), "Production".into())),
        "{names:?}"
    );
    assert!(names.contains(&(NEW.into(), "Shared".into())), "{names:?}");
    assert_eq!(names.len(), 2, "nothing else created, nothing deleted");
    // Each change is the owner's, in the audit trail like the API's.
    let actions = app.audit_actions().await;
    assert!(
        actions.iter().any(|(a, _)| a == "vault.create"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|(a, _)| a == "vault.rename"),
        "{actions:?}"
    );
    // Again: nothing changes.
    let again = b
        .post(
            "/ui/vaults/import",
            &[("connect_host", &connect), ("connect_token", CONNECT_TOKEN)],
        )
        .await
        .expect(200);
    assert!(
        again
            .html
            .contains("0 created, 0 renamed, 2 unchanged, 1 failed.")
    );
    // A wrong token: Connect's 401 inline, the token not echoed.
    let refused = b
        .post(
            "/ui/vaults/import",
            &[
                ("connect_host", &connect),
                ("connect_token", "wrong-token-77"),
            ],
        )
        .await
        .expect(502);
    let alert = refused.alert().unwrap();
    assert!(
        alert.contains("status 401") && alert.contains("check the Connect token"),
        "{alert}"
    );
    assert!(!refused.html.contains("wrong-token-77"));
    assert_eq!(seen.lock().unwrap().len(), 3);
}

async fn g8_console_import_is_refused_to_non_owners_before_any_fetch(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (connect, seen) = fake_connect().await;
    let (_, key) = app.user_with("mgr", Some("manager")).await;
    let b = Browser::signed_in(&app, &key).await;
    let page = b
        .post(
            "/ui/vaults/import",
            &[("connect_host", &connect), ("connect_token", CONNECT_TOKEN)],
        )
        .await
        .expect(403);
    assert!(page.alert().is_some());
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing fetched for a non-owner"
    );
    // Denied like the API denies (A5).
    let events = app
        .get("/v1/audit/events?action=vault.create")
        .await
        .expect(200);
    assert!(
        items(&events).iter().any(|e| e["outcome"] == "denied"),
        "{events}"
    );
}

backend_tests!(
    g8_console_import_creates_and_renames_by_real_id_as_the_owner,
    g8_console_import_is_refused_to_non_owners_before_any_fetch,
);
