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

backend_tests!(
    r10_token_list_is_newest_first_paged_and_filtered,
    r12_expired_token_stays_active_and_is_never_valid,
    r4_server_delete_revokes_its_tokens,
);
