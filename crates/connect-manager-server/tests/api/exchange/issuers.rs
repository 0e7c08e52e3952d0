//! Trusted issuers: owners add and remove them, every user reads them (R1 by ID or name); https
//! only (loopback http only with CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS, as the tests run);
//! adding one fetches nothing; one a policy names is not removed.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::json;

use super::{TestIssuer, setup};
use crate::harness::{TestApp, items};

async fn issuers_are_added_and_removed_by_owners_and_read_by_all(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (_, manager) = app.user_with("manager", Some("manager")).await;
    app.post_as(
        &manager,
        "/v1/issuers",
        json!({"issuer": "https://token.actions.githubusercontent.com", "name": "github"}),
    )
    .await
    .expect_error(403, "forbidden");
    let made = app
        .post(
            "/v1/issuers",
            json!({"issuer": "https://token.actions.githubusercontent.com", "name": "github"}),
        )
        .await
        .expect(201);
    assert_eq!(
        made["issuer"],
        "https://token.actions.githubusercontent.com"
    );
    assert_eq!(made["name"], "github");
    let id = made["id"].as_str().unwrap();
    let listed = app.get_as(Some(&manager), "/v1/issuers").await.expect(200);
    assert_eq!(items(&listed).len(), 1);
    assert_eq!(
        app.get_as(Some(&manager), "/v1/issuers/GitHub")
            .await
            .expect(200)["id"],
        id
    );
    app.get(&format!("/v1/issuers/{id}")).await.expect(200);
    app.get("/v1/issuers/nope")
        .await
        .expect_error(404, "not_found");
    app.post(
        "/v1/issuers",
        json!({"issuer": "https://token.actions.githubusercontent.com", "name": "again"}),
    )
    .await
    .expect_error(409, "issuer_taken");
    app.as_user(&manager, Method::DELETE, "/v1/issuers/github")
        .await
        .expect_error(403, "forbidden");
    app.delete("/v1/issuers/github").await.expect(204);
    app.get("/v1/issuers/github")
        .await
        .expect_error(404, "not_found");
    let actions = app.audit_actions().await;
    for a in [
        ("issuer.create", "success"),
        ("issuer.delete", "success"),
        ("issuer.create", "denied"),
        ("issuer.delete", "denied"),
    ] {
        assert!(
            actions.contains(&(a.0.into(), a.1.into())),
            "{a:?}: {actions:?}"
        );
    }
    app.stop().await;
}

async fn issuer_urls_are_https_or_loopback_http(db: TestDb) {
    let app = TestApp::spawn(db).await;
    for bad in [
        "http://issuer.example.com",
        "ftp://issuer.example.com",
        "https://user:pw@issuer.example.com",
        "https://issuer.example.com/?x=1",
        "issuer.example.com",
    ] {
        app.post("/v1/issuers", json!({"issuer": bad, "name": "x"}))
            .await
            .expect_error(422, "invalid_field");
    }
    // The tests run with CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS=true.
    app.post(
        "/v1/issuers",
        json!({"issuer": "http://127.0.0.1:9", "name": "local"}),
    )
    .await
    .expect(201);
    app.stop().await;
}

async fn adding_an_issuer_fetches_nothing_and_one_in_use_is_not_removed(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    assert!(issuer.fetched().is_empty());
    app.delete("/v1/issuers/github")
        .await
        .expect_error(409, "issuer_in_use");
    app.delete("/v1/connect/servers/web/trust-policies/deploy")
        .await
        .expect(204);
    app.delete("/v1/issuers/github").await.expect(204);
    app.stop().await;
}

backend_tests!(
    issuers_are_added_and_removed_by_owners_and_read_by_all,
    issuer_urls_are_https_or_loopback_http,
    adding_an_issuer_fetches_nothing_and_one_in_use_is_not_removed,
);
