//! Users and API keys over HTTP (A1, A2).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::json;

use crate::harness::{OWNER_KEY, TestApp, ids};

async fn users_and_keys_crud(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let u = app
        .post(
            "/v1/users",
            json!({"name": "Ann", "email": "ann@example.test"}),
        )
        .await
        .expect(201);
    let id = u["id"].as_str().unwrap();
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            && id.len() == 26
    );
    assert_eq!(
        app.get("/v1/users/ANN@example.test").await.expect(200)["id"],
        id
    );
    assert_eq!(
        ids(&app.get("/v1/users").await.expect(200)).len(),
        2,
        "Ann and the owner"
    );
    app.post(
        "/v1/users",
        json!({"name": "Ann", "email": "Ann@Example.test"}),
    )
    .await
    .expect_error(409, "email_taken");
    app.post("/v1/users", json!({"name": "Bob", "email": "not-an-email"}))
        .await
        .expect_error(422, "invalid_field");

    let k = app
        .post(&format!("/v1/users/{id}/keys"), json!({}))
        .await
        .expect(201);
    let key = k["key"].as_str().unwrap().to_owned();
    let keys = app.get(&format!("/v1/users/{id}/keys")).await.expect(200);
    assert_eq!(ids(&keys), vec![k["id"].as_str().unwrap()]);
    assert!(
        !keys.to_string().contains(&key),
        "listing shows metadata only"
    );
    app.get_as(Some(&key), "/v1/vaults").await.expect(200);
    app.delete(&format!(
        "/v1/users/{id}/keys/{}",
        k["id"].as_str().unwrap()
    ))
    .await
    .expect(204);
    app.get_as(Some(&key), "/v1/vaults")
        .await
        .expect_error(401, "unauthorized");

    let k2 = app
        .post(&format!("/v1/users/{id}/keys"), json!({}))
        .await
        .expect(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get_as(Some(&k2), "/v1/vaults").await.expect(200);
    app.delete(&format!("/v1/users/{id}")).await.expect(204);
    app.get_as(Some(&k2), "/v1/vaults")
        .await
        .expect_error(401, "unauthorized");
    app.get(&format!("/v1/users/{id}"))
        .await
        .expect_error(404, "not_found");
    app.stop().await;
}

async fn a2_last_owner_cannot_be_removed_or_deleted(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let owners = app.get("/v1/groups/owners").await.expect(200);
    let owner_id = owners["members"][0].as_str().unwrap().to_owned();
    app.delete(&format!("/v1/users/{owner_id}"))
        .await
        .expect_error(409, "last_owner");
    app.delete(&format!("/v1/groups/owners/members/{owner_id}"))
        .await
        .expect_error(409, "last_owner");
    app.delete("/v1/groups/owners")
        .await
        .expect_error(409, "builtin_group");
    // With a second owner, the first may go.
    let (second, second_key) = app.user_with("second", None).await;
    app.put(&format!("/v1/groups/owners/members/{second}"))
        .await
        .expect(200);
    app.delete(&format!("/v1/groups/owners/members/{owner_id}"))
        .await
        .expect(200);
    app.get_as(Some(OWNER_KEY), "/v1/users")
        .await
        .expect_error(403, "forbidden");
    app.as_user(&second_key, Method::GET, "/v1/users")
        .await
        .expect(200);
    app.stop().await;
}

async fn a2_users_are_owners_only(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (id, key) = app.user_with("manager", Some("manager")).await;
    for (method, path) in [
        (Method::GET, "/v1/users".to_owned()),
        (Method::GET, format!("/v1/users/{id}")),
        (Method::POST, format!("/v1/users/{id}/keys")),
        (Method::GET, format!("/v1/users/{id}/keys")),
        (Method::DELETE, format!("/v1/users/{id}")),
        (Method::GET, "/v1/groups".to_owned()),
        (Method::GET, "/v1/audit/events".to_owned()),
    ] {
        app.as_user(&key, method, &path)
            .await
            .expect_error(403, "forbidden");
    }
    let denied = app
        .audit_actions()
        .await
        .into_iter()
        .filter(|(_, o)| o == "denied")
        .count();
    assert_eq!(denied, 7, "every denied attempt is audited");
    app.stop().await;
}

/// The `Email` schema in openapi.yaml states this rule; what it calls valid is accepted.
async fn email_parts_are_bounded_as_documented(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let longest = format!(" {}@{} ", "é".repeat(64), "d".repeat(189));
    let u = app
        .post("/v1/users", json!({"name": "Long", "email": longest}))
        .await
        .expect(201);
    assert_eq!(u["email"], longest.trim(), "trimmed, counted in characters");
    for email in [
        format!("{}@example.test", "a".repeat(65)),
        format!("ann@{}", "d".repeat(190)),
        "ann@example@test".to_owned(),
        "ann\u{85}@example.test".to_owned(),
    ] {
        app.post("/v1/users", json!({"name": "Ann", "email": email}))
            .await
            .expect_error(422, "invalid_field");
    }
}

backend_tests!(
    email_parts_are_bounded_as_documented,
    users_and_keys_crud,
    a2_last_owner_cannot_be_removed_or_deleted,
    a2_users_are_owners_only,
);
