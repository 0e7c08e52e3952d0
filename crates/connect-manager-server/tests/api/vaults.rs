//! The vault registry over HTTP.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::json;

use crate::harness::{TestApp, ids};

async fn vault_registry_crud(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let v = app.vault("Prod", "USER_CREATED").await;
    assert_eq!(v["type"], "USER_CREATED");
    assert!(
        v["id"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    );
    assert_eq!(v["id"].as_str().unwrap().len(), 26);
    let id = v["id"].as_str().unwrap();
    assert_eq!(app.get("/v1/vaults/prod").await.expect(200)["id"], id);
    assert_eq!(
        app.get(&format!("/v1/vaults/{id}")).await.expect(200)["name"],
        "Prod"
    );
    let renamed = app
        .patch("/v1/vaults/Prod", json!({"name": "Production"}))
        .await
        .expect(200);
    assert_eq!(renamed["name"], "Production");
    assert_eq!(renamed["type"], "USER_CREATED");
    app.patch("/v1/vaults/Production", json!({"type": "PERSONAL"}))
        .await
        .expect_error(400, "invalid_body");
    assert_eq!(
        ids(&app.get("/v1/vaults").await.expect(200)),
        vec![id.to_owned()]
    );
    app.delete("/v1/vaults/production").await.expect(204);
    app.get(&format!("/v1/vaults/{id}"))
        .await
        .expect_error(404, "not_found");
    app.stop().await;
}

async fn r1_unknown_reference_is_404_naming_it(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let body = app
        .get("/v1/vaults/no-such-vault")
        .await
        .expect_error(404, "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-vault"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["kind"], "vault");
    app.stop().await;
}

async fn r2_names_are_validated_and_unique(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let trimmed = app.vault("  Spaced  ", "EVERYONE").await;
    assert_eq!(trimmed["name"], "Spaced");
    for bad in ["", "   ", "a\u{1}b", "line\nbreak"] {
        app.post("/v1/vaults", json!({"name": bad, "type": "EVERYONE"}))
            .await
            .expect_error(422, "invalid_field");
    }
    app.post(
        "/v1/vaults",
        json!({"name": "x".repeat(256), "type": "EVERYONE"}),
    )
    .await
    .expect_error(422, "invalid_field");
    app.vault(&"y".repeat(255), "EVERYONE").await;
    app.post("/v1/vaults", json!({"name": "SPACED", "type": "EVERYONE"}))
        .await
        .expect_error(409, "name_taken");
    assert_eq!(
        ids(&app.get("/v1/vaults").await.expect(200)).len(),
        2,
        "nothing else written"
    );
    app.stop().await;
}

async fn a2_registry_reads_are_open_changes_are_owners_only(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.vault("Prod", "USER_CREATED").await;
    let (_, key) = app.user_with("nobody", None).await;
    assert_eq!(
        ids(&app.get_as(Some(&key), "/v1/vaults").await.expect(200)).len(),
        1
    );
    app.get_as(Some(&key), "/v1/vaults/prod").await.expect(200);
    app.post_as(
        &key,
        "/v1/vaults",
        json!({"name": "Mine", "type": "EVERYONE"}),
    )
    .await
    .expect_error(403, "forbidden");
    app.as_user(&key, Method::DELETE, "/v1/vaults/prod")
        .await
        .expect_error(403, "forbidden");
    app.get("/v1/vaults/prod").await.expect(200);
    app.stop().await;
}

async fn g8_a_vault_can_be_created_with_its_real_id(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = "abcdefghijklmnopqrstuvwxy2";
    let v = app
        .post(
            "/v1/vaults",
            json!({"id": id, "name": "Prod", "type": "USER_CREATED"}),
        )
        .await
        .expect(201);
    assert_eq!(v["id"], id);
    assert_eq!(
        app.get(&format!("/v1/vaults/{id}")).await.expect(200)["name"],
        "Prod"
    );
    // Audited like any create.
    let events = app
        .get(&format!("/v1/audit/events?target={id}"))
        .await
        .expect(200);
    assert!(
        crate::harness::items(&events)
            .iter()
            .any(|e| e["action"] == "vault.create" && e["outcome"] == "success"),
        "{events}"
    );
    // Not the shape of an ID: 422, nothing written.
    for bad in [
        "ABCDEFGHIJKLMNOPQRSTUVWXY2",
        "short",
        "abcdefghijklmnopqrstuvwxy23",
        "abcdefghijklmnopqrstuvwx-2",
        "",
    ] {
        app.post(
            "/v1/vaults",
            json!({"id": bad, "name": format!("n{bad}"), "type": "EVERYONE"}),
        )
        .await
        .expect_error(422, "invalid_field");
    }
    assert_eq!(ids(&app.get("/v1/vaults").await.expect(200)).len(), 1);
    app.stop().await;
}

async fn g8_a_vault_id_live_or_deleted_is_not_taken_again(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = "abcdefghijklmnopqrstuvwxy3";
    app.post(
        "/v1/vaults",
        json!({"id": id, "name": "Prod", "type": "USER_CREATED"}),
    )
    .await
    .expect(201);
    // Live: 409, under another name too.
    app.post(
        "/v1/vaults",
        json!({"id": id, "name": "Other", "type": "USER_CREATED"}),
    )
    .await
    .expect_error(409, "vault_id_taken");
    // A generated ID of a deleted vault, and the given one once deleted: 409.
    let generated = app.vault("Gone", "EVERYONE").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/v1/vaults/{generated}"))
        .await
        .expect(204);
    app.delete(&format!("/v1/vaults/{id}")).await.expect(204);
    for taken in [&generated, &id.to_owned()] {
        app.post(
            "/v1/vaults",
            json!({"id": taken, "name": "Again", "type": "USER_CREATED"}),
        )
        .await
        .expect_error(409, "vault_id_taken");
    }
    // A name clash with a new ID is still `name_taken`.
    app.vault("Prod2", "EVERYONE").await;
    app.post(
        "/v1/vaults",
        json!({"id": "abcdefghijklmnopqrstuvwxy4", "name": "prod2", "type": "EVERYONE"}),
    )
    .await
    .expect_error(409, "name_taken");
    assert_eq!(ids(&app.get("/v1/vaults").await.expect(200)).len(), 1);
    app.stop().await;
}

backend_tests!(
    g8_a_vault_can_be_created_with_its_real_id,
    g8_a_vault_id_live_or_deleted_is_not_taken_again,
    vault_registry_crud,
    r1_unknown_reference_is_404_naming_it,
    r2_names_are_validated_and_unique,
    a2_registry_reads_are_open_changes_are_owners_only,
);
