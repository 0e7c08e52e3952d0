//! `PATCH /v1/connect/tokens/{token}`: renames only (R9).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::json;

use super::setup;
use crate::harness::TestApp;

async fn r9_token_edit_renames_only(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (token, jwt) = app
        .token(
            "web",
            json!({"name": "ci", "vaults": [{"vault": "a", "access": "read"}]}),
        )
        .await;
    let id = token["id"].as_str().unwrap();
    let renamed = app
        .patch(
            &format!("/v1/connect/tokens/{id}"),
            json!({"name": "deploy"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "deploy");
    assert_eq!(renamed["vaults"], token["vaults"]);
    app.patch(
        "/v1/connect/tokens/deploy",
        json!({"name": "x", "vaults": []}),
    )
    .await
    .expect_error(400, "invalid_body");
    app.patch("/v1/connect/tokens/deploy", json!({"expires_in": "1d"}))
        .await
        .expect_error(400, "invalid_body");
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await["name"],
        "deploy",
        "the cache saw the rename"
    );
    app.stop().await;
}

backend_tests!(r9_token_edit_renames_only,);
