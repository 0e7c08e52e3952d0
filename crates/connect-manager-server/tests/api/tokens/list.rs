//! `GET /v1/connect/tokens`: newest first, paged, by server (R10), expired tokens stay ACTIVE
//! (R12), a deleted server's tokens stay listed, revoked (R4).

use std::time::Duration;

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::json;

use super::setup;
use crate::harness::{TestApp, ids, items};

async fn r10_token_list_is_newest_first_paged_and_filtered(db: TestDb) {
    let app = TestApp::spawn(db).await;
    setup(&app).await;
    app.server("api", &["a"]).await;
    let mut made = Vec::new();
    for (server, name) in [
        ("web", "t1"),
        ("api", "t2"),
        ("web", "t3"),
        ("api", "t4"),
        ("web", "t5"),
    ] {
        let (t, _) = app
            .token(server, json!({"name": name, "vaults": [{"vault": "a"}]}))
            .await;
        made.push(t["id"].as_str().unwrap().to_owned());
    }
    made.reverse();
    assert_eq!(ids(&app.get("/v1/connect/tokens").await.expect(200)), made);
    let web: Vec<_> = items(&app.get("/v1/connect/tokens?server=WEB").await.expect(200))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(web, ["t5", "t3", "t1"]);
    let seen: Vec<String> = app
        .all_items("/v1/connect/tokens?limit=2")
        .await
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, made);
    app.get("/v1/connect/tokens?server=ghost")
        .await
        .expect_error(404, "not_found");
    app.stop().await;
}

async fn r12_expired_token_stays_active_and_is_never_valid(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, secret) = setup(&app).await;
    let (_, jwt) = app
        .token(
            "web",
            json!({"name": "short", "vaults": [{"vault": "a"}], "expires_in": "1s"}),
        )
        .await;
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await["active"],
        true
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.introspect(&server_id, &secret, &jwt).await,
        json!({"active": false})
    );
    let t = &items(&app.get("/v1/connect/tokens").await.expect(200))[0];
    assert_eq!(t["state"], "ACTIVE");
    assert_eq!(t["expired"], true);
    app.stop().await;
}

async fn r4_server_delete_revokes_its_tokens(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (server_id, _) = setup(&app).await;
    app.token("web", json!({"name": "ci", "vaults": [{"vault": "a"}]}))
        .await;
    app.token("web", json!({"name": "cd", "vaults": [{"vault": "b"}]}))
        .await;
    app.delete("/v1/connect/servers/web").await.expect(204);
    assert!(items(&app.get("/v1/connect/tokens").await.expect(200)).is_empty());
    let kept = items(
        &app.get(&format!("/v1/connect/tokens?server={server_id}"))
            .await
            .expect(200),
    );
    assert_eq!(kept.len(), 2);
    assert!(
        kept.iter()
            .all(|t| t["state"] == "REVOKED" && t["revoked_at"].is_string())
    );
    app.stop().await;
}

/// Issue 18's expiry views over HTTP: `?expiring_within=` and `?unused_for=` take R7's duration
/// syntax, narrow the list to live tokens, combine with `?server=`, and a bad duration is 422
/// naming the parameter.
async fn token_list_expiry_views_filter_live_tokens(db: TestDb) {
    let app = TestApp::spawn(db).await;
    setup(&app).await;
    let made = |name: &'static str, expires_in: Option<&'static str>| {
        let app = &app;
        async move {
            let mut body = json!({"name": name, "vaults": [{"vault": "a"}]});
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            app.token("web", body).await.0["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let soon = made("soon", Some("2d")).await;
    let later = made("later", Some("30d")).await;
    let never = made("never", None).await;
    let names = |page: serde_json::Value| -> Vec<String> { ids(&page) };
    assert_eq!(
        names(
            app.get("/v1/connect/tokens?expiring_within=7d")
                .await
                .expect(200)
        ),
        [soon.as_str()]
    );
    assert_eq!(
        names(
            app.get("/v1/connect/tokens?expiring_within=5w&server=web")
                .await
                .expect(200)
        ),
        [later.clone(), soon.clone()]
    );
    // None has been used yet: all three are unused for any window.
    assert_eq!(
        names(
            app.get("/v1/connect/tokens?unused_for=30d")
                .await
                .expect(200)
        ),
        [never, later, soon]
    );
    for bad in ["expiring_within=0s", "unused_for=soon"] {
        let field = bad.split('=').next().unwrap();
        let err = app
            .get(&format!("/v1/connect/tokens?{bad}"))
            .await
            .expect_error(422, "invalid_field");
        assert!(err.to_string().contains(field), "{err}");
    }
    app.stop().await;
}

backend_tests!(
    token_list_expiry_views_filter_live_tokens,
    r10_token_list_is_newest_first_paged_and_filtered,
    r12_expired_token_stays_active_and_is_never_valid,
    r4_server_delete_revokes_its_tokens,
);
