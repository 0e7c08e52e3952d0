//! Trust policies: managed by the server's managers (A3/A4: 404 to others, audited A5); vaults
//! as token create's (R5, R7); ttl 15 min by default, at most 24 h; the issuer by ID, name or
//! URL; gone with their server (R4).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use super::{AUDIENCE, TestIssuer, setup};
use crate::harness::{TestApp, items};

fn policy(name: &str, issuer: &str, vaults: Value) -> Value {
    json!({"name": name, "issuer": issuer, "audience": AUDIENCE, "subject": "repo:acme/*",
        "vaults": vaults})
}

async fn a3_trust_policies_are_managed_by_the_servers_managers(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    let (web, _) = setup(&app, &issuer).await;
    let (other, _) = app.server("other", &["prod"]).await;
    let (_, grantee) = app
        .user_with("grantee", Some(&format!("servers/{web}")))
        .await;
    // The grantee of web manages web's policies…
    let made = app
        .post_as(
            &grantee,
            "/v1/connect/servers/web/trust-policies",
            policy("ci", "github", json!([{"vault": "prod", "access": "read"}])),
        )
        .await
        .expect(201);
    assert_eq!(made["server_id"], web.as_str());
    assert_eq!(made["ttl_seconds"], 900, "15 minutes by default");
    assert_eq!(made["issuer"], issuer.url);
    let listed = app
        .get_as(Some(&grantee), "/v1/connect/servers/web/trust-policies")
        .await
        .expect(200);
    let names: Vec<String> = items(&listed)
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["deploy", "ci"],
        "oldest first, the order they are tried in"
    );
    app.get_as(Some(&grantee), "/v1/connect/servers/web/trust-policies/ci")
        .await
        .expect(200);
    // …and sees nothing of other's (A4: 404, audited as denied).
    let other_id = other["id"].as_str().unwrap();
    for (method, path) in [
        (
            Method::GET,
            format!("/v1/connect/servers/{other_id}/trust-policies"),
        ),
        (
            Method::POST,
            format!("/v1/connect/servers/{other_id}/trust-policies"),
        ),
        (
            Method::GET,
            format!("/v1/connect/servers/{other_id}/trust-policies/deploy"),
        ),
        (
            Method::DELETE,
            format!("/v1/connect/servers/{other_id}/trust-policies/deploy"),
        ),
    ] {
        let body =
            (method == Method::POST).then(|| policy("x", "github", json!([{"vault": "prod"}])));
        app.send(method.clone(), &path, Some(&grantee), body)
            .await
            .expect_error(404, "not_found");
    }
    app.as_user(
        &grantee,
        Method::DELETE,
        "/v1/connect/servers/web/trust-policies/ci",
    )
    .await
    .expect(204);
    app.get("/v1/connect/servers/web/trust-policies/ci")
        .await
        .expect_error(404, "not_found");
    let actions = app.audit_actions().await;
    for a in [
        ("trust_policy.create", "success"),
        ("trust_policy.delete", "success"),
        ("trust_policy.list", "denied"),
    ] {
        assert!(
            actions.contains(&(a.0.into(), a.1.into())),
            "{a:?}: {actions:?}"
        );
    }
    app.stop().await;
}

async fn r7_policy_vaults_are_checked_as_token_creates(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    app.vault("ungranted", "EVERYONE").await;
    app.vault("mine", "PERSONAL").await;
    let path = "/v1/connect/servers/web/trust-policies";
    app.post(path, policy("a", "github", json!([{"vault": "ungranted"}])))
        .await
        .expect_error(422, "vault_not_granted");
    app.post(path, policy("b", "github", json!([{"vault": "mine"}])))
        .await
        .expect_error(422, "vault_not_grantable");
    app.post(path, policy("c", "github", json!([{"vault": "nope"}])))
        .await
        .expect_error(404, "not_found");
    app.post(path, policy("d", "github", json!([])))
        .await
        .expect_error(422, "invalid_field");
    app.stop().await;
}

async fn policy_ttl_defaults_to_15_minutes_and_is_at_most_24_hours(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let path = "/v1/connect/servers/web/trust-policies";
    for (ttl, seconds) in [("24h", 86_400), ("90m", 5_400), ("30s", 30)] {
        let mut body = policy(&format!("t{seconds}"), "github", json!([{"vault": "prod"}]));
        body["ttl"] = json!(ttl);
        assert_eq!(
            app.post(path, body).await.expect(201)["ttl_seconds"],
            seconds
        );
    }
    for ttl in ["24h1s", "2d", "0s", "soon"] {
        let mut body = policy("bad", "github", json!([{"vault": "prod"}]));
        body["ttl"] = json!(ttl);
        app.post(path, body)
            .await
            .expect_error(422, "invalid_field");
    }
    app.stop().await;
}

async fn a_policys_issuer_is_named_by_id_name_or_url(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    let id = app.get("/v1/issuers/github").await.expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = "/v1/connect/servers/web/trust-policies";
    for (n, reference) in [("by-id", id.as_str()), ("by-url", issuer.url.as_str())] {
        let made = app
            .post(path, policy(n, reference, json!([{"vault": "prod"}])))
            .await
            .expect(201);
        assert_eq!(made["issuer_id"], id.as_str());
    }
    app.post(
        path,
        policy("x", "https://unknown.example", json!([{"vault": "prod"}])),
    )
    .await
    .expect_error(404, "not_found");
    app.post(path, policy("deploy", "github", json!([{"vault": "prod"}])))
        .await
        .expect_error(409, "name_taken");
    let mut bad = policy("y", "github", json!([{"vault": "prod"}]));
    bad["subject"] = json!("");
    app.post(path, bad).await.expect_error(422, "invalid_field");
    app.stop().await;
}

async fn r4_a_deleted_servers_policies_go_with_it(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    app.delete("/v1/connect/servers/web").await.expect(204);
    // Nothing names the issuer any more.
    app.delete("/v1/issuers/github").await.expect(204);
    app.stop().await;
}

backend_tests!(
    a3_trust_policies_are_managed_by_the_servers_managers,
    r7_policy_vaults_are_checked_as_token_creates,
    policy_ttl_defaults_to_15_minutes_and_is_at_most_24_hours,
    a_policys_issuer_is_named_by_id_name_or_url,
    r4_a_deleted_servers_policies_go_with_it,
);
