//! Connect servers, credentials and vault grants over HTTP (R3–R6, C1–C3).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::json;

use crate::harness::{TestApp, ids, secret_of};

async fn r3_server_create_returns_credentials_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("Prod", "USER_CREATED").await;
    let body = app
        .post(
            "/v1/connect/servers",
            json!({"name": "web", "vaults": ["prod"]}),
        )
        .await
        .expect(201);
    let server = &body["server"];
    let id = server["id"].as_str().unwrap();
    assert_eq!(id.len(), 26);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert_eq!(server["state"], "ACTIVE");
    assert_eq!(server["tokens_version"], 1);
    assert_eq!(server["vaults"][0]["name"], "Prod");
    assert_eq!(server["vaults"][0]["access"], "read_write");
    assert_eq!(server["creator_id"].as_str().unwrap().len(), 26);
    // C1: the version-2 file's top level.
    let creds = &body["credentials"];
    for field in [
        "verifier",
        "encCredentials",
        "version",
        "deviceUuid",
        "uniqueKey",
    ] {
        assert!(!creds[field].is_null(), "credentials lack {field}: {creds}");
    }
    assert_eq!(creds["version"], "2");
    assert_eq!(creds["encCredentials"]["enc"], "A256GCM");
    assert_eq!(creds["uniqueKey"]["kty"], "oct");
    let file: connect_manager_core::credentials::CredentialsFile =
        serde_json::from_value(creds.clone()).unwrap();
    let payload = connect_manager_core::credentials::open(&file).unwrap();
    assert_eq!(payload.server_id, id);
    assert_eq!(payload.url, "https://cm.example.test");
    // Later reads never carry credentials.
    let got = app
        .get(&format!("/v1/connect/servers/{id}"))
        .await
        .expect(200);
    assert!(got.get("credentials").is_none() && !got.to_string().contains(&payload.secret));
    app.stop().await;
}

async fn r3_one_bad_vault_creates_nothing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("Shared", "EVERYONE").await;
    app.vault("Mine", "PERSONAL").await;
    let before = app.audit_actions().await.len();
    app.post(
        "/v1/connect/servers",
        json!({"name": "web", "vaults": ["shared", "mine"]}),
    )
    .await
    .expect_error(422, "vault_not_grantable");
    app.post(
        "/v1/connect/servers",
        json!({"name": "web", "vaults": ["shared", "ghost"]}),
    )
    .await
    .expect_error(404, "not_found");
    assert!(ids(&app.get("/v1/connect/servers").await.expect(200)).is_empty());
    assert_eq!(
        app.audit_actions().await.len(),
        before,
        "no event for a failed change"
    );
    app.server("web", &["shared"]).await;
    app.stop().await;
}

async fn server_list_get_edit(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (a, _) = app.server("alpha", &[]).await;
    let (b, _) = app.server("beta", &[]).await;
    let list = app.get("/v1/connect/servers").await.expect(200);
    assert_eq!(
        ids(&list),
        vec![b["id"].as_str().unwrap(), a["id"].as_str().unwrap()]
    );
    assert!(list["next_cursor"].is_null());
    let page = app.get("/v1/connect/servers?limit=1").await.expect(200);
    assert_eq!(ids(&page).len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!("/v1/connect/servers?limit=1&cursor={cursor}"))
        .await
        .expect(200);
    assert_eq!(ids(&next), vec![a["id"].as_str().unwrap()]);
    app.get("/v1/connect/servers?limit=0")
        .await
        .expect_error(422, "invalid_field");
    app.get("/v1/connect/servers?cursor=garbage!")
        .await
        .expect_error(400, "invalid_cursor");
    let renamed = app
        .patch("/v1/connect/servers/ALPHA", json!({"name": "gamma"}))
        .await
        .expect(200);
    assert_eq!(renamed["name"], "gamma");
    assert!(renamed["updated_at"].as_str() >= a["updated_at"].as_str());
    app.patch("/v1/connect/servers/gamma", json!({"name": "Beta"}))
        .await
        .expect_error(409, "name_taken");
    app.get("/v1/connect/servers/alpha")
        .await
        .expect_error(404, "not_found");
    app.stop().await;
}

async fn r4_deleted_server_credentials_stop_working(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("Shared", "EVERYONE").await;
    let (s, secret) = app.server("web", &["shared"]).await;
    let id = s["id"].as_str().unwrap();
    let me = app
        .get_as_server("/v1/connect/self", id, &secret)
        .await
        .expect(200);
    assert_eq!(me["vaults"][0]["name"], "Shared");
    app.delete("/v1/connect/servers/web").await.expect(204);
    app.get_as_server("/v1/connect/self", id, &secret)
        .await
        .expect_error(401, "unauthorized");
    app.get(&format!("/v1/connect/servers/{id}"))
        .await
        .expect_error(404, "not_found");
    assert!(ids(&app.get("/v1/connect/servers").await.expect(200)).is_empty());
    // The name is free; the row stays, DELETED, with no grants.
    app.server("web", &[]).await;
    let store = app.db.open().await;
    let kept = store.get_server(id).await.unwrap().unwrap();
    assert_eq!(kept.state.as_str(), "DELETED");
    assert!(kept.vaults.is_empty());
    app.stop().await;
}

async fn r5_builtin_vaults_are_not_grantable(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.server("web", &[]).await;
    for t in ["PERSONAL", "PRIVATE", "EMPLOYEE"] {
        app.vault(t, t).await;
        let body = app
            .put(&format!("/v1/connect/servers/web/vaults/{t}"))
            .await
            .expect_error(422, "vault_not_grantable");
        assert_eq!(
            body["error"]["message"],
            "can't grant a Connect server access to a built-in Personal, Private or Employee vault"
        );
    }
    for t in ["USER_CREATED", "EVERYONE", "TRANSFER"] {
        app.vault(t, t).await;
        app.put(&format!("/v1/connect/servers/web/vaults/{t}"))
            .await
            .expect(200);
    }
    app.put("/v1/connect/servers/web/vaults/ghost")
        .await
        .expect_error(404, "not_found");
    let twice = app
        .put("/v1/connect/servers/web/vaults/everyone")
        .await
        .expect(200);
    assert_eq!(
        twice["vaults"].as_array().unwrap().len(),
        3,
        "granting twice makes no duplicate"
    );
    app.stop().await;
}

async fn r6_vault_revoke_ends_the_grant_at_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("Shared", "EVERYONE").await;
    app.vault("Other", "EVERYONE").await;
    let (s, secret) = app.server("web", &["shared", "other"]).await;
    let id = s["id"].as_str().unwrap();
    let after = app
        .delete("/v1/connect/servers/web/vaults/shared")
        .await
        .expect(200);
    assert_eq!(after["vaults"].as_array().unwrap().len(), 1);
    let me = app
        .get_as_server("/v1/connect/self", id, &secret)
        .await
        .expect(200);
    assert_eq!(me["vaults"].as_array().unwrap().len(), 1);
    assert_eq!(me["vaults"][0]["name"], "Other");
    app.delete("/v1/connect/servers/web/vaults/shared")
        .await
        .expect_error(404, "not_found");
    // Deleting a vault ends every grant of it.
    app.delete("/v1/vaults/other").await.expect(204);
    let me = app
        .get_as_server("/v1/connect/self", id, &secret)
        .await
        .expect(200);
    assert!(me["vaults"].as_array().unwrap().is_empty());
    app.stop().await;
}

async fn c3_rotation_replaces_the_credentials_file(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (s, old) = app.server("web", &[]).await;
    let id = s["id"].as_str().unwrap();
    app.get_as_server("/v1/connect/self", id, &old)
        .await
        .expect(200);
    let rotated = app
        .post("/v1/connect/servers/web/credentials", json!({}))
        .await
        .expect(201);
    assert_eq!(rotated["server"]["tokens_version"], 2);
    let new = secret_of(&rotated["credentials"]);
    assert_ne!(new, old);
    app.get_as_server("/v1/connect/self", id, &old)
        .await
        .expect_error(401, "unauthorized");
    let me = app
        .get_as_server("/v1/connect/self", id, &new)
        .await
        .expect(200);
    assert_eq!(me["tokens_version"], 2);
    app.stop().await;
}

async fn connect_self_refuses_bad_credentials(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (s, secret) = app.server("web", &[]).await;
    let id = s["id"].as_str().unwrap();
    let r = app.get_as_server("/v1/connect/self", id, "wrong").await;
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    r.expect_error(401, "unauthorized");
    app.get_as_server("/v1/connect/self", "NOSUCHSERVER00000000000000", &secret)
        .await
        .expect_error(401, "unauthorized");
    app.get_as(None, "/v1/connect/self")
        .await
        .expect_error(401, "unauthorized");
    // An owner's API key is not a server credential.
    app.get("/v1/connect/self")
        .await
        .expect_error(401, "unauthorized");
    // Twice in a row: the second hit is served from the verified-secret cache, same answer.
    app.get_as_server("/v1/connect/self", id, &secret)
        .await
        .expect(200);
    app.get_as_server("/v1/connect/self", id, &secret)
        .await
        .expect(200);
    app.stop().await;
}

backend_tests!(
    r3_server_create_returns_credentials_once,
    r3_one_bad_vault_creates_nothing,
    server_list_get_edit,
    r4_deleted_server_credentials_stop_working,
    r5_builtin_vaults_are_not_grantable,
    r6_vault_revoke_ends_the_grant_at_once,
    c3_rotation_replaces_the_credentials_file,
    connect_self_refuses_bad_credentials,
);
