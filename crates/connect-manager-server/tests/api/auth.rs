//! Authentication (A1).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;

use crate::harness::TestApp;

async fn a1_missing_or_bad_key_is_401_with_www_authenticate(db: TestDb) {
    let app = TestApp::spawn(db).await;
    for key in [None, Some("cmk_not-a-real-key"), Some("")] {
        let r = app.get_as(key, "/v1/vaults").await;
        assert!(
            r.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        r.expect_error(401, "unauthorized");
    }
    let r = app
        .client
        .get(format!("{}/v1/vaults", app.base))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

async fn a1_bootstrap_key_is_an_owner_key(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let owners = app.get("/v1/groups/owners").await.expect(200);
    assert_eq!(owners["name"], "Owners");
    assert_eq!(owners["members"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn public_endpoints_need_no_key(db: TestDb) {
    let app = TestApp::spawn(db).await;
    assert_eq!(
        app.get_as(None, "/healthz").await.expect(200)["status"],
        "ok"
    );
    assert_eq!(
        app.get_as(None, "/readyz").await.expect(200)["status"],
        "ok"
    );
    let r = app
        .client
        .get(format!("{}/openapi.yaml", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        connect_manager_server::openapi::OPENAPI_YAML
    );
    app.stop().await;
}

backend_tests!(
    a1_missing_or_bad_key_is_401_with_www_authenticate,
    a1_bootstrap_key_is_an_owner_key,
    public_endpoints_need_no_key,
);
