//! `POST /v1/introspect`: what a token may reach now (R6, T4), across a credentials rotation
//! (C3), and the metrics that count issuing, revoking and introspecting.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use super::{decode_part, setup, vault_id};
use crate::harness::{TestApp, secret_of};

async fn r6_introspection_uses_the_live_grants(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (a, b) = (vault_id(&app, "a").await, vault_id(&app, "b").await);
    let (_, jwt) = app
        .token(
            "web",
            json!({"name": "ci", "vaults": [{"vault": "a"}, {"vault": "b", "access": "read"}]}),
        )
        .await;
    let vaults = |v: &Value| {
        let mut ids: Vec<String> = v["vaults"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(
        vaults(&app.introspect(&server_id, &secret, &jwt).await),
        both
    );
    app.delete("/v1/connect/servers/web/vaults/a")
        .await
        .expect(200);
    let now = app.introspect(&server_id, &secret, &jwt).await;
    assert_eq!(now["active"], true);
    assert_eq!(vaults(&now), vec![b.clone()]);
    assert_eq!(
        now["vaults"][0]["acl"],
        json!(["view_items", "view_and_copy_passwords"])
    );
    app.put("/v1/connect/servers/web/vaults/a")
        .await
        .expect(200);
    assert_eq!(
        vaults(&app.introspect(&server_id, &secret, &jwt).await),
        both,
        "scope ∩ grants, not a copy"
    );
    app.delete("/v1/vaults/b").await.expect(204);
    assert_eq!(
        vaults(&app.introspect(&server_id, &secret, &jwt).await),
        vec![a]
    );
    app.stop().await;
}

async fn t4_introspection_says_inactive_and_nothing_more(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (other, other_secret) = app.server("other", &["a"]).await;
    let other_id = other["id"].as_str().unwrap();
    let (_, jwt) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    let inactive = json!({"active": false});
    // Another server learns nothing about this server's token.
    assert_eq!(
        app.introspect(other_id, &other_secret, &jwt).await,
        inactive
    );
    // Garbage, alg none, a foreign key, a tampered claim.
    let payload = jwt.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
    );
    let master = connect_manager_core::secret::MasterKey::random();
    let foreign_key = connect_manager_core::token::generate_key(&master);
    let foreign_set = connect_manager_core::token::KeySet::open(&master, &[foreign_key]).unwrap();
    let claims: connect_manager_core::token::Claims =
        serde_json::from_value(decode_part(&jwt, 1)).unwrap();
    let foreign = foreign_set.sign(&claims).unwrap();
    let mut tampered_claims = decode_part(&jwt, 1);
    tampered_claims["1password.com/vts"][0]["a"] = json!(1008);
    tampered_claims["sub"] = json!(other_id);
    let parts: Vec<&str> = jwt.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string()),
        parts[2]
    );
    for bad in [
        "",
        "garbage",
        "a.b.c",
        none.as_str(),
        foreign.as_str(),
        tampered.as_str(),
        &"x".repeat(10_000),
    ] {
        assert_eq!(
            app.introspect(&server_id, &secret, bad).await,
            inactive,
            "{bad:.40}"
        );
    }
    // Bad server credentials are 401, not an answer.
    app.post_as_server("/v1/introspect", &server_id, "wrong", json!({"token": jwt}))
        .await
        .expect_error(401, "unauthorized");
    app.send(
        Method::POST,
        "/v1/introspect",
        None,
        Some(json!({"token": jwt})),
    )
    .await
    .expect_error(401, "unauthorized");
    app.post_as_server("/v1/introspect", &server_id, &secret, json!({"jwt": jwt}))
        .await
        .expect_error(400, "invalid_body");
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await["active"],
        true
    );
    app.stop().await;
}

async fn c3_credentials_rotation_keeps_tokens_valid(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, old) = setup(&app).await;
    let (_, jwt) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    assert_eq!(app.introspect(&server_id, &old, &jwt).await["active"], true);
    let rotated = app
        .post("/v1/connect/servers/web/credentials", json!({}))
        .await
        .expect(201);
    let new = secret_of(&rotated["credentials"]);
    app.post_as_server("/v1/introspect", &server_id, &old, json!({"token": jwt}))
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(app.introspect(&server_id, &new, &jwt).await["active"], true);
    app.stop().await;
}

async fn metrics_count_requests_by_route_tokens_and_introspections(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (t, jwt) = app
        .token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    app.introspect(&server_id, &secret, &jwt).await;
    app.delete(&format!("/v1/connect/tokens/{}", t["id"].as_str().unwrap()))
        .await
        .expect(200);
    app.delete(&format!("/v1/connect/tokens/{}", t["id"].as_str().unwrap()))
        .await
        .expect(200);
    app.introspect(&server_id, &secret, &jwt).await;
    app.get(&format!("/v1/connect/servers/{server_id}"))
        .await
        .expect(200);
    app.get_as(Some("cmk_bad"), "/v1/vaults").await.expect(401);
    let r = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for line in [
        "connect_manager_tokens_issued_total 1",
        "connect_manager_tokens_revoked_total 1",
        "connect_manager_introspections_total{result=\"active\"} 1",
        "connect_manager_introspections_total{result=\"inactive\"} 1",
        "connect_manager_auth_failures_total{kind=\"api_key\"} 1",
        "connect_manager_http_requests_total{method=\"GET\",route=\"/v1/connect/servers/{server}\",status=\"200\"} 1",
        "connect_manager_http_requests_total{method=\"GET\",route=\"/v1/vaults\",status=\"401\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}:\n{text}");
    }
    assert!(text.contains("connect_manager_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/introspect\",status=\"200\",le=\"+Inf\"} 2"));
    assert!(text.contains("connect_manager_db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("connect_manager_build_info{version="));
    // Route labels are templates, never raw paths with IDs or names.
    assert!(
        !text.contains(&server_id) && !text.contains("/web"),
        "a raw path in a label"
    );
    app.stop().await;
}

backend_tests!(
    r6_introspection_uses_the_live_grants,
    t4_introspection_says_inactive_and_nothing_more,
    c3_credentials_rotation_keeps_tokens_valid,
    metrics_count_requests_by_route_tokens_and_introspections,
);
