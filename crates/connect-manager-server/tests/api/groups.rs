//! Groups, members and Secrets Automation grants over HTTP (R11, A3, A4).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::json;

use crate::harness::{TestApp, ids};

async fn groups_and_members_crud(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let g = app
        .post("/v1/groups", json!({"name": "Ops"}))
        .await
        .expect(201);
    let gid = g["id"].as_str().unwrap();
    app.post("/v1/groups", json!({"name": "OPS"}))
        .await
        .expect_error(409, "name_taken");
    let (uid, _) = app.user_with("ann", None).await;
    let with = app
        .put(&format!("/v1/groups/ops/members/{uid}"))
        .await
        .expect(200);
    assert_eq!(with["members"], json!([uid]));
    app.put(&format!("/v1/groups/ops/members/{uid}"))
        .await
        .expect(200);
    assert_eq!(
        app.get(&format!("/v1/groups/{gid}")).await.expect(200)["members"],
        json!([uid])
    );
    app.delete(&format!("/v1/groups/ops/members/{uid}"))
        .await
        .expect(200);
    app.delete(&format!("/v1/groups/ops/members/{uid}"))
        .await
        .expect_error(404, "not_found");
    app.put("/v1/groups/ops/members/nobody@example.test")
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        ids(&app.get("/v1/groups").await.expect(200)).len(),
        2,
        "Ops and Owners"
    );
    app.delete("/v1/groups/ops").await.expect(204);
    app.get("/v1/groups/ops")
        .await
        .expect_error(404, "not_found");
    app.stop().await;
}

async fn r11_group_grant_and_revoke(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.post("/v1/groups", json!({"name": "ops"}))
        .await
        .expect(201);
    app.server("web", &[]).await;
    for path in ["manager", "all-servers", "servers/web"] {
        app.put(&format!("/v1/connect/groups/ops/grants/{path}"))
            .await
            .expect(200);
        app.put(&format!("/v1/connect/groups/ops/grants/{path}"))
            .await
            .expect(200);
    }
    let g = app.get("/v1/groups/ops").await.expect(200);
    let scopes: Vec<_> = g["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["MANAGER", "ALL_SERVERS", "SERVER"]);
    assert_eq!(g["grants"][0]["server_id"], serde_json::Value::Null);
    assert_eq!(g["grants"][2]["server_id"].as_str().unwrap().len(), 26);
    for path in ["manager", "all-servers", "servers/web"] {
        app.delete(&format!("/v1/connect/groups/ops/grants/{path}"))
            .await
            .expect(200);
        app.delete(&format!("/v1/connect/groups/ops/grants/{path}"))
            .await
            .expect_error(404, "not_found");
    }
    app.put("/v1/connect/groups/ghost/grants/manager")
        .await
        .expect_error(404, "not_found");
    app.put("/v1/connect/groups/ops/grants/servers/ghost")
        .await
        .expect_error(404, "not_found");
    app.stop().await;
}

async fn a3_manager_all_servers_and_server_grants(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (x, _) = app.server("x", &[]).await;
    app.server("y", &[]).await;
    let x_id = x["id"].as_str().unwrap();
    let (_, manager) = app.user_with("manager", Some("manager")).await;
    let (_, all) = app.user_with("all", Some("all-servers")).await;
    let (_, one) = app.user_with("one", Some(&format!("servers/{x_id}"))).await;
    let (_, nobody) = app.user_with("nobody", None).await;

    // Create: owners and managers only.
    app.post_as(&manager, "/v1/connect/servers", json!({"name": "m"}))
        .await
        .expect(201);
    app.post_as(&all, "/v1/connect/servers", json!({"name": "a"}))
        .await
        .expect_error(403, "forbidden");
    app.post_as(&one, "/v1/connect/servers", json!({"name": "o"}))
        .await
        .expect_error(403, "forbidden");
    // Lists show only what the caller may manage (A4).
    assert_eq!(
        ids(&app
            .get_as(Some(&manager), "/v1/connect/servers")
            .await
            .expect(200))
        .len(),
        3
    );
    assert_eq!(
        ids(&app
            .get_as(Some(&all), "/v1/connect/servers")
            .await
            .expect(200))
        .len(),
        3
    );
    assert_eq!(
        ids(&app
            .get_as(Some(&one), "/v1/connect/servers")
            .await
            .expect(200)),
        vec![x_id]
    );
    assert!(
        ids(&app
            .get_as(Some(&nobody), "/v1/connect/servers")
            .await
            .expect(200))
        .is_empty()
    );
    // One-server grantee: X yes, Y is invisible (404, not 403).
    app.as_user(&one, Method::GET, "/v1/connect/servers/x")
        .await
        .expect(200);
    app.as_user(&one, Method::GET, "/v1/connect/servers/y")
        .await
        .expect_error(404, "not_found");
    app.as_user(&one, Method::DELETE, "/v1/connect/servers/y")
        .await
        .expect_error(404, "not_found");
    app.as_user(&nobody, Method::GET, "/v1/connect/servers/x")
        .await
        .expect_error(404, "not_found");
    // All-servers grantee manages every server, including future ones.
    app.server("future", &[]).await;
    app.as_user(&all, Method::DELETE, "/v1/connect/servers/future")
        .await
        .expect(204);
    app.as_user(&one, Method::DELETE, "/v1/connect/servers/x")
        .await
        .expect(204);
    app.stop().await;
}

/// A deleted key, a deleted user and a removed membership lose access on the very next request,
/// on this replica and, on PostgreSQL, on another one sharing the database (one process serves a
/// SQLite database: a second is refused at start).
async fn a3_lost_access_takes_effect_on_the_next_request_everywhere(db: TestDb) {
    let postgres = db.backend == connect_manager_store::Backend::Postgres;
    let app = TestApp::spawn(db).await;
    let other = if postgres {
        Some(app.replica().await)
    } else {
        None
    };
    let everywhere = || std::iter::once(&app).chain(other.as_ref());
    let (uid, key) = app.user_with("m", Some("manager")).await;
    for (i, a) in everywhere().enumerate() {
        a.post_as(
            &key,
            "/v1/connect/servers",
            json!({"name": format!("s{i}")}),
        )
        .await
        .expect(201);
    }
    app.delete(&format!("/v1/groups/m-group/members/{uid}"))
        .await
        .expect(200);
    for a in everywhere() {
        a.post_as(&key, "/v1/connect/servers", json!({"name": "never"}))
            .await
            .expect_error(403, "forbidden");
        assert!(
            ids(&a
                .get_as(Some(&key), "/v1/connect/servers")
                .await
                .expect(200))
            .is_empty()
        );
    }
    app.delete(&format!("/v1/users/{uid}")).await.expect(204);
    for a in everywhere() {
        a.get_as(Some(&key), "/v1/vaults")
            .await
            .expect_error(401, "unauthorized");
    }
    if let Some(other) = other {
        other.stop().await;
    }
    app.stop().await;
}

/// A4: an object the caller may not see is 404, exactly as one that does not exist; an action
/// on a visible object the caller may not take is 403.
async fn a4_invisible_is_404_and_visible_but_forbidden_is_403(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (x, _) = app.server("x", &[]).await;
    app.server("y", &[]).await;
    let x_id = x["id"].as_str().unwrap();
    let (_, grantee) = app.user_with("g", Some(&format!("servers/{x_id}"))).await;
    let hidden = app
        .as_user(&grantee, Method::GET, "/v1/connect/servers/y")
        .await
        .expect_error(404, "not_found");
    let missing = app
        .as_user(&grantee, Method::GET, "/v1/connect/servers/zz")
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        hidden["error"]["details"]["kind"],
        missing["error"]["details"]["kind"]
    );
    // The vault registry is visible to every user; changing it is owners' only.
    app.vault("v", "EVERYONE").await;
    app.as_user(&grantee, Method::GET, "/v1/vaults/v")
        .await
        .expect(200);
    app.as_user(&grantee, Method::DELETE, "/v1/vaults/v")
        .await
        .expect_error(403, "forbidden");
    app.stop().await;
}

backend_tests!(
    a4_invisible_is_404_and_visible_but_forbidden_is_403,
    a3_lost_access_takes_effect_on_the_next_request_everywhere,
    groups_and_members_crud,
    r11_group_grant_and_revoke,
    a3_manager_all_servers_and_server_grants,
);
