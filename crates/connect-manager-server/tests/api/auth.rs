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

async fn a5_failed_authentication_is_rate_limited_per_address(db: TestDb) {
    let app = TestApp::spawn_limited(db, 10).await;
    let (_, valid) = app.user_with("ann", None).await;
    // Ann's key has succeeded here once; a brute-force loop follows from the same address.
    app.get_as(Some(&valid), "/v1/vaults").await.expect(200);
    let mut statuses = Vec::new();
    for i in 0..30 {
        let r = app
            .get_as(Some(&format!("cmk_guess_{i}")), "/v1/vaults")
            .await;
        if r.status == 429 {
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=6).contains(&retry), "{retry}");
            r.expect_error(429, "too_many_requests");
            statuses.push(429);
        } else {
            r.expect_error(401, "unauthorized");
            statuses.push(401);
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "{statuses:?}"
    );
    assert!(statuses[10..].iter().all(|s| *s == 429));
    // Valid callers are not slowed: a key that worked before still works, at once.
    app.get_as(Some(&valid), "/v1/vaults").await.expect(200);
    // Server credentials count against the same budget.
    let (s, secret) = app.server("web", &[]).await;
    let id = s["id"].as_str().unwrap();
    app.get_as_server("/v1/connect/self", id, "guess")
        .await
        .expect_error(429, "too_many_requests");
    // A credential that has not succeeded here yet is refused while the address is blocked,
    // even a right one: the block reveals nothing.
    app.get_as_server("/v1/connect/self", id, &secret)
        .await
        .expect_error(429, "too_many_requests");
    app.stop().await;
}

async fn a5_audit_events_filter_by_action_actor_target_and_time(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let before = connect_manager_core::Timestamp::now().to_rfc3339();
    let v = app.vault("Prod", "EVERYONE").await;
    let vid = v["id"].as_str().unwrap();
    let (s, _) = app.server("web", &["prod"]).await;
    let (uid, key) = app.user_with("ann", None).await;
    app.post_as(
        &key,
        "/v1/vaults",
        serde_json::json!({"name": "x", "type": "EVERYONE"}),
    )
    .await
    .expect_error(403, "forbidden");
    let a = &app;
    let q = async |query: String| {
        a.get(&format!("/v1/audit/events?{query}"))
            .await
            .expect(200)
    };
    let actions = |page: serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        actions(q("action=server.create".into()).await),
        ["server.create"]
    );
    assert_eq!(actions(q(format!("target={vid}")).await), ["vault.create"]);
    let denied = q(format!("actor={uid}")).await;
    assert_eq!(actions(denied.clone()), ["vault.create"]);
    assert_eq!(denied["items"][0]["outcome"], "denied");
    assert_eq!(denied["items"][0]["client_ip"], "127.0.0.1");
    assert_eq!(denied["items"][0]["request_id"].as_str().unwrap().len(), 26);
    let server_id = s["id"].as_str().unwrap();
    assert!(actions(q(format!("target={server_id}")).await).contains(&"server.create".to_owned()));
    let since_before = q(format!("since={before}&action=vault.create")).await;
    assert_eq!(since_before["items"].as_array().unwrap().len(), 2);
    let until_before = q(format!("until={before}&action=vault.create")).await;
    assert!(until_before["items"].as_array().unwrap().is_empty());
    app.get("/v1/audit/events?since=yesterday")
        .await
        .expect_error(422, "invalid_field");
    // Never a secret in an event.
    let all = q("limit=1000".into()).await.to_string();
    assert!(!all.contains(&key) && !all.contains(crate::harness::OWNER_KEY));
    app.stop().await;
}

/// The limit holds under a concurrent brute-force flood, API keys and server credentials mixed:
/// 400 guesses from 16 tasks at once get exactly the 10 answers the budget allows (so at most
/// 10 argon2 verifications were spent on them), everything else 429.
async fn a5_failed_authentication_limit_holds_under_a_concurrent_flood(db: TestDb) {
    let app = std::sync::Arc::new(TestApp::spawn_limited(db, 10).await);
    let (s, _) = app.server("web", &[]).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let (app, id) = (app.clone(), id.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..25 {
                    let r = if (t + i) % 2 == 0 {
                        app.get_as(Some(&format!("cmk_guess_{t}_{i}")), "/v1/vaults")
                            .await
                    } else {
                        app.get_as_server("/v1/connect/self", &id, &format!("guess-{t}-{i}"))
                            .await
                    };
                    statuses.push(r.status.as_u16());
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.extend(t.await.unwrap());
    }
    assert_eq!(statuses.len(), 400);
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 390);
    std::sync::Arc::into_inner(app).unwrap().stop().await;
}

backend_tests!(
    a5_failed_authentication_limit_holds_under_a_concurrent_flood,
    a5_audit_events_filter_by_action_actor_target_and_time,
    a5_failed_authentication_is_rate_limited_per_address,
    a1_missing_or_bad_key_is_401_with_www_authenticate,
    a1_bootstrap_key_is_an_owner_key,
    public_endpoints_need_no_key,
);
