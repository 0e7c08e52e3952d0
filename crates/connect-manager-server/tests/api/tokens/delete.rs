//! `DELETE /v1/connect/tokens/{token}`: revoking (R8), and naming a token whose name repeats
//! (R1).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::json;

use super::setup;
use crate::harness::{TestApp, items};

async fn r8_revoked_token_is_never_valid_again(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (token, jwt) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    let id = token["id"].as_str().unwrap();
    let active = app.introspect(&server_id, &secret, &jwt).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["jti"], id);
    assert_eq!(active["sub"], server_id.as_str());
    assert_eq!(active["name"], "ci");
    let revoked = app
        .delete(&format!("/v1/connect/tokens/{id}"))
        .await
        .expect(200);
    assert_eq!(revoked["state"], "REVOKED");
    assert!(revoked["revoked_at"].is_string());
    // At once, on the replica that revoked (its cache had the token).
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await,
        json!({"active": false})
    );
    let again = app.delete("/v1/connect/tokens/ci").await.expect(200);
    assert_eq!(
        again["revoked_at"], revoked["revoked_at"],
        "revoking twice changes nothing"
    );
    let list = app.get("/v1/connect/tokens").await.expect(200);
    assert_eq!(items(&list)[0]["state"], "REVOKED", "still listed");
    app.stop().await;
}

async fn r1_token_names_may_repeat_and_are_then_ambiguous(db: TestDb) {
    let app = TestApp::spawn(db).await;
    setup(&app).await;
    app.server("api", &["a"]).await;
    let (one, _) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    let (two, _) = app
        .token("api", json!({"name": "CI", "vaults": [{"vault": "a"}]}))
        .await;
    let body = app
        .delete("/v1/connect/tokens/ci")
        .await
        .expect_error(409, "ambiguous");
    let mut candidates: Vec<_> = body["error"]["details"]["candidates"]
        .as_array()
        .unwrap()
        .clone();
    candidates.sort_by_key(|c| c.as_str().unwrap().to_owned());
    let mut want = vec![one["id"].clone(), two["id"].clone()];
    want.sort_by_key(|c| c.as_str().unwrap().to_owned());
    assert_eq!(candidates, want);
    assert!(body["error"]["message"].as_str().unwrap().contains("ID"));
    let narrowed = app
        .delete("/v1/connect/tokens/ci?server=api")
        .await
        .expect(200);
    assert_eq!(narrowed["id"], two["id"]);
    app.stop().await;
}

backend_tests!(
    r8_revoked_token_is_never_valid_again,
    r1_token_names_may_repeat_and_are_then_ambiguous,
);
