//! `POST /v1/connect/servers/{server}/tokens`: what a new token says (T1) and what a request
//! for one may not ask (R7).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use super::{decode_part, setup, vault_id};
use crate::harness::{TestApp, items};

async fn t1_token_claims_mirror_connect(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, _) = setup(&app).await;
    let (a, b) = (vault_id(&app, "a").await, vault_id(&app, "b").await);
    let (token, jwt) = app
        .token(
            "web",
            json!({"name": "ci", "vaults": [{"vault": "a"}, {"vault": "b", "access": "read"}], "expires_in": "1w2d"}),
        )
        .await;
    // The token object (SPEC "Resources").
    assert_eq!(token["name"], "ci");
    assert_eq!(token["state"], "ACTIVE");
    assert_eq!(token["issuer"], "https://cm.example.test");
    assert_eq!(token["audience"], json!(["com.1password.connect"]));
    assert_eq!(token["features"], json!(["vaultaccess"]));
    assert_eq!(token["integration_id"], server_id.as_str());
    assert_eq!(token["expired"], false);
    assert!(token["revoked_at"].is_null());
    assert!(token["expires_at"].is_string());
    let acl_of = |id: &str| {
        token["vaults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .unwrap()["acl"]
            .clone()
    };
    assert_eq!(acl_of(&a).as_array().unwrap().len(), 6);
    assert_eq!(acl_of(&b), json!(["view_items", "view_and_copy_passwords"]));
    // The JWT (T1).
    let header = decode_part(&jwt, 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert!(header["kid"].is_string());
    let claims = decode_part(&jwt, 1);
    assert_eq!(claims["iss"], "https://cm.example.test");
    assert_eq!(claims["aud"], json!(["com.1password.connect"]));
    assert_eq!(claims["sub"], server_id.as_str());
    assert_eq!(claims["jti"], token["id"]);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 9 * 86_400);
    let auuid = claims["1password.com/auuid"].as_str().unwrap();
    assert!(
        auuid.len() == 26
            && auuid
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert_eq!(claims["1password.com/token"].as_str().unwrap().len(), 32);
    assert_eq!(claims["1password.com/fts"], json!(["vaultaccess"]));
    let mut vts = claims["1password.com/vts"].as_array().unwrap().clone();
    vts.sort_by_key(|v| v["u"].as_str().unwrap().to_owned());
    let mut want = vec![json!({"u": a, "a": 1008}), json!({"u": b, "a": 48})];
    want.sort_by_key(|v| v["u"].as_str().unwrap().to_owned());
    assert_eq!(vts, want);
    // No expiry: no exp claim, expires_at null.
    let (token, jwt) = app
        .token(
            "web",
            json!({"name": "forever", "vaults": [{"vault": "a", "access": "write"}]}),
        )
        .await;
    assert!(decode_part(&jwt, 1).get("exp").is_none());
    assert!(token["expires_at"].is_null());
    assert_eq!(decode_part(&jwt, 1)["1password.com/vts"][0]["a"], 960);
    // The same account on every token; a fresh token value each time.
    assert_eq!(decode_part(&jwt, 1)["1password.com/auuid"], auuid);
    app.stop().await;
}

async fn r7_bad_token_requests_are_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    setup(&app).await;
    app.vault("ungranted", "EVERYONE").await;
    app.vault("mine", "PERSONAL").await;
    let post = |body: Value| app.post("/v1/connect/servers/web/tokens", body);
    for bad in ["0", "-5m", "5x", "99999999w", "", "0s", "1.5h"] {
        let body = post(json!({"name": "t", "vaults": [{"vault": "a"}], "expires_in": bad}))
            .await
            .expect_error(422, "invalid_field");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("1w2d"),
            "{body}"
        );
    }
    post(json!({"name": "t", "vaults": []}))
        .await
        .expect_error(422, "invalid_field");
    post(json!({"name": "", "vaults": [{"vault": "a"}]}))
        .await
        .expect_error(422, "invalid_field");
    post(json!({"name": "t", "vaults": [{"vault": "ungranted"}]}))
        .await
        .expect_error(422, "vault_not_granted");
    post(json!({"name": "t", "vaults": [{"vault": "mine"}]}))
        .await
        .expect_error(422, "vault_not_grantable");
    post(json!({"name": "t", "vaults": [{"vault": "ghost"}]}))
        .await
        .expect_error(404, "not_found");
    post(json!({"name": "t", "vaults": [{"vault": "a", "access": "admin"}]}))
        .await
        .expect_error(400, "invalid_body");
    post(json!({"name": "t"}))
        .await
        .expect_error(400, "invalid_body");
    app.post(
        "/v1/connect/servers/ghost/tokens",
        json!({"name": "t", "vaults": [{"vault": "a"}]}),
    )
    .await
    .expect_error(404, "not_found");
    assert!(
        items(&app.get("/v1/connect/tokens").await.expect(200)).is_empty(),
        "nothing written"
    );
    app.stop().await;
}

backend_tests!(
    t1_token_claims_mirror_connect,
    r7_bad_token_requests_are_refused,
);
