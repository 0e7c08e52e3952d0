//! A successful exchange: the answer (RFC 8693 §2.2.1), and the token it yields, an ordinary
//! token of the server (introspectable with the policy's scope, listed with its provenance,
//! revocable, audited with issuer and subject); the first matching policy wins; keys are cached.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::json;

use super::{AUDIENCE, SUBJECT, TestIssuer, exchange, now, setup};
use crate::harness::{TestApp, items};

async fn exchange_answers_an_access_token_of_the_server(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    let (server_id, _) = setup(&app, &issuer).await;
    let reply = exchange(&app, &issuer.sign(&issuer.claims()), "web").await;
    assert_eq!(reply.headers["cache-control"], "no-store");
    let body = reply.expect(200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["expires_in"], 600, "the policy's ttl: {body}");
    let jwt = body["access_token"].as_str().unwrap();
    let claims = crate::tokens::decode_part(jwt, 1);
    assert_eq!(claims["sub"], server_id.as_str());
    let exp = claims["exp"].as_i64().unwrap();
    assert!((exp - now() - 600).abs() <= 5, "{claims}");
    // By ID too.
    exchange(&app, &issuer.sign(&issuer.claims()), &server_id)
        .await
        .expect(200);
    app.stop().await;
}

async fn the_issued_token_introspects_with_the_policys_scope_is_listed_revocable_and_audited(
    db: TestDb,
) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    let (server_id, secret) = setup(&app, &issuer).await;
    let body = exchange(&app, &issuer.sign(&issuer.claims()), "web")
        .await
        .expect(200);
    let jwt = body["access_token"].as_str().unwrap();
    let seen = app.introspect(&server_id, &secret, jwt).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["name"], "deploy");
    let prod = app.get("/v1/vaults/prod").await.expect(200)["id"].clone();
    assert_eq!(
        seen["vaults"],
        json!([{"id": prod, "acl": ["view_items", "view_and_copy_passwords"]}]),
        "read only, as the policy says"
    );
    let policy = app
        .get("/v1/connect/servers/web/trust-policies/deploy")
        .await
        .expect(200);
    let listed = items(&app.get("/v1/connect/tokens?server=web").await.expect(200));
    assert_eq!(listed.len(), 1);
    let token = &listed[0];
    assert_eq!(token["id"], seen["jti"]);
    assert_eq!(token["name"], "deploy");
    assert_eq!(token["state"], "ACTIVE");
    assert!(token["expires_at"].is_string());
    assert_eq!(
        token["exchange"],
        json!({"issuer": issuer.url, "subject": SUBJECT, "policy_id": policy["id"]})
    );
    // A5: audited with the issuer and the subject, the policy as the actor's name.
    let events = items(
        &app.get("/v1/audit/events?action=token.exchange&limit=10")
            .await
            .expect(200),
    );
    assert_eq!(events.len(), 1, "{events:?}");
    let actor = events[0]["actor_id"].as_str().unwrap();
    assert_eq!(events[0]["target_id"], token["id"]);
    assert_eq!(events[0]["outcome"], "success");
    assert!(actor.starts_with("exchange:"), "{actor}");
    assert!(actor.contains(policy["id"].as_str().unwrap()), "{actor}");
    assert!(actor.contains(&issuer.url), "{actor}");
    assert!(actor.contains(SUBJECT), "{actor}");
    // Revocable as any token.
    let id = token["id"].as_str().unwrap();
    app.delete(&format!("/v1/connect/tokens/{id}"))
        .await
        .expect(200);
    let seen = app.introspect(&server_id, &secret, jwt).await;
    assert_eq!(seen, json!({"active": false}));
    // Tokens made by a user have no provenance.
    let (made, _) = app
        .token(
            "web",
            json!({"name": "plain", "vaults": [{"vault": "prod"}]}),
        )
        .await;
    assert!(made["exchange"].is_null(), "{made}");
    app.stop().await;
}

async fn the_first_matching_policy_by_creation_order_wins(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    // Made after `deploy`: matches every subject of the issuer, and reads and writes.
    app.post(
        "/v1/connect/servers/web/trust-policies",
        json!({"name": "any", "issuer": issuer.url, "audience": AUDIENCE, "subject": "*",
            "vaults": [{"vault": "prod"}], "ttl": "1h"}),
    )
    .await
    .expect(201);
    let body = exchange(&app, &issuer.sign(&issuer.claims()), "web")
        .await
        .expect(200);
    assert_eq!(body["expires_in"], 600, "deploy, the older, wins");
    let staging = issuer.token_with(|c| c["environment"] = json!("staging"));
    let body = exchange(&app, &staging, "web").await.expect(200);
    assert_eq!(body["expires_in"], 3600, "only any matches");
    let names: Vec<String> = items(&app.get("/v1/connect/tokens").await.expect(200))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["any", "deploy"]);
    app.stop().await;
}

async fn github_actions_subjects_match_globs(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    app.post(
        "/v1/connect/servers/web/trust-policies",
        json!({"name": "branches", "issuer": "github", "audience": AUDIENCE,
            "subject": "repo:acme/*:ref:refs/heads/*",
            "claims": {"workflow": "deploy", "ref_type": "branch"},
            "vaults": [{"vault": "prod", "access": "read"}]}),
    )
    .await
    .expect(201);
    for (sub, ok) in [
        ("repo:acme/web:ref:refs/heads/main", true),
        ("repo:acme/api:ref:refs/heads/feature/x", true),
        ("repo:acme/a:b:ref:refs/heads/main", true),
        ("repo:evil/api:ref:refs/heads/main", false),
        ("repo:acme/api:ref:refs/tags/v1", false),
        ("repo:acme/api:pull_request", false),
    ] {
        // Not production: `deploy` (repo:acme/api:*) never matches, only `branches` may.
        let token = issuer.token_with(|c| {
            c["sub"] = json!(sub);
            c["environment"] = json!("ci");
        });
        let status = exchange(&app, &token, "web").await.status.as_u16();
        assert_eq!(status, if ok { 200 } else { 400 }, "{sub}");
    }
    app.stop().await;
}

async fn an_issuers_keys_are_fetched_once_and_cached(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let issuer = TestIssuer::start().await;
    setup(&app, &issuer).await;
    assert!(
        issuer.fetched().is_empty(),
        "nothing fetched before a token comes"
    );
    for _ in 0..5 {
        exchange(&app, &issuer.sign(&issuer.claims()), "web")
            .await
            .expect(200);
    }
    assert_eq!(issuer.fetched(), ["discovery", "jwks"]);
    app.stop().await;
}

backend_tests!(
    exchange_answers_an_access_token_of_the_server,
    the_issued_token_introspects_with_the_policys_scope_is_listed_revocable_and_audited,
    the_first_matching_policy_by_creation_order_wins,
    github_actions_subjects_match_globs,
    an_issuers_keys_are_fetched_once_and_cached,
);
