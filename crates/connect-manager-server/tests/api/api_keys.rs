//! API keys' name, expiry and last use (issue 18, "Expiry you can see").

use std::time::{Duration, Instant};

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{OWNER_KEY, TestApp, items, reply};

async fn user(app: &TestApp) -> String {
    app.post(
        "/v1/users",
        json!({"name": "Ann", "email": "ann@example.test"}),
    )
    .await
    .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn key_info(keys: &Value, id: &str) -> Value {
    items(keys)
        .into_iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("key {id} not listed: {keys}"))
}

async fn api_keys_have_a_name_and_an_optional_expiry(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = user(&app).await;
    let path = format!("/v1/users/{id}/keys");
    let named = app
        .post(&path, json!({"name": "  ci deploy ", "expires_in": "1w2d"}))
        .await
        .expect(201);
    assert_eq!(named["name"], "ci deploy", "R2: trimmed");
    let expires =
        connect_manager_core::Timestamp::parse_rfc3339(named["expires_at"].as_str().unwrap())
            .unwrap();
    let expected = connect_manager_core::Timestamp::now().plus_seconds(9 * 86_400);
    assert!((expected.unix_seconds() - expires.unix_seconds()).abs() < 60);
    let plain = app.post(&path, json!({})).await.expect(201);
    assert_eq!(plain["name"], "key");
    assert_eq!(plain["expires_at"], Value::Null);

    let keys = app.get(&path).await.expect(200);
    let listed = key_info(&keys, named["id"].as_str().unwrap());
    assert_eq!(listed["name"], "ci deploy");
    assert_eq!(listed["expires_at"], named["expires_at"]);
    assert_eq!(listed["expired"], false);
    assert_eq!(listed["last_used_at"], Value::Null);
    let listed = key_info(&keys, plain["id"].as_str().unwrap());
    assert_eq!(listed["expires_at"], Value::Null);
    assert_eq!(listed["expired"], false);

    // R2 for the name, R7 for the expiry; nothing is made.
    for bad in [
        json!({"name": ""}),
        json!({"name": "a\u{7}b"}),
        json!({"name": "x".repeat(256)}),
    ] {
        app.post(&path, bad)
            .await
            .expect_error(422, "invalid_field");
    }
    for bad in ["0s", "-1d", "5x", "1.5h", ""] {
        app.post(&path, json!({"expires_in": bad}))
            .await
            .expect_error(422, "invalid_field");
    }
    app.post(&path, json!({"nmae": "typo"}))
        .await
        .expect_error(400, "invalid_body");
    assert_eq!(items(&app.get(&path).await.expect(200)).len(), 2);
    app.stop().await;
}

async fn an_empty_body_still_creates_a_key(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = user(&app).await;
    let url = format!("{}/v1/users/{id}/keys", app.base);
    // As clients before issue 18 sent it: no body at all, and JSON `null` (the old CLI).
    let bare = reply(
        app.client
            .post(&url)
            .bearer_auth(OWNER_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(201);
    assert_eq!(bare["name"], "key");
    let null = reply(
        app.client
            .post(&url)
            .bearer_auth(OWNER_KEY)
            .header("content-type", "application/json")
            .body("null")
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect(201);
    app.get_as(null["key"].as_str(), "/v1/vaults")
        .await
        .expect(200);
    // Anything but an object or null is refused: serde alone would read `[null, null]` as a
    // struct (the fuzzer found it).
    let array = reply(
        app.client
            .post(&url)
            .bearer_auth(OWNER_KEY)
            .header("content-type", "application/json")
            .body("[null, null]")
            .send()
            .await
            .unwrap(),
    )
    .await;
    array.expect_error(400, "invalid_body");
    // A body that is not JSON is still refused, as everywhere.
    reply(
        app.client
            .post(&url)
            .bearer_auth(OWNER_KEY)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await
    .expect_error(400, "malformed_json");
    app.stop().await;
}

async fn an_expired_api_key_is_401_saying_it_expired(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = user(&app).await;
    app.put(&format!("/v1/groups/owners/members/{id}"))
        .await
        .expect(200);
    let k = app
        .post(&format!("/v1/users/{id}/keys"), json!({"expires_in": "1s"}))
        .await
        .expect(201);
    let key = k["key"].as_str().unwrap().to_owned();
    app.get_as(Some(&key), "/v1/vaults").await.expect(200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refused = app
        .get_as(Some(&key), "/v1/vaults")
        .await
        .expect_error(401, "unauthorized");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("expired") && message.contains(k["expires_at"].as_str().unwrap()),
        "says it expired, and when: {message}"
    );
    assert!(!message.contains(&key), "never echoes the key");
    // Listed as expired; counted as a failed authentication, apart from unknown keys.
    let keys = app.get(&format!("/v1/users/{id}/keys")).await.expect(200);
    assert_eq!(key_info(&keys, k["id"].as_str().unwrap())["expired"], true);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("connect_manager_auth_failures_total{kind=\"expired_api_key\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

async fn an_expired_api_key_counts_against_the_failure_limit(db: TestDb) {
    let app = TestApp::spawn_limited(db, 2).await;
    let id = user(&app).await;
    let key = app
        .post(&format!("/v1/users/{id}/keys"), json!({"expires_in": "1s"}))
        .await
        .expect(201)["key"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            app.as_user(&key, Method::GET, "/v1/vaults")
                .await
                .status
                .as_u16(),
        );
    }
    assert!(
        statuses.contains(&401) && statuses.ends_with(&[429]),
        "{statuses:?}"
    );
    app.stop().await;
}

async fn api_key_last_use_is_shown_and_written_at_most_once_a_minute(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = user(&app).await;
    app.put(&format!("/v1/groups/owners/members/{id}"))
        .await
        .expect(200);
    let k = app
        .post(&format!("/v1/users/{id}/keys"), json!({}))
        .await
        .expect(201);
    let key = k["key"].as_str().unwrap();
    let key_id = k["id"].as_str().unwrap();
    let path = format!("/v1/users/{id}/keys");
    app.get_as(Some(key), "/v1/vaults").await.expect(200);
    // Written beside the request: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let at = key_info(&app.get(&path).await.expect(200), key_id)["last_used_at"].clone();
        if !at.is_null() {
            break at;
        }
        assert!(Instant::now() < deadline, "last use never written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..3 {
        app.get_as(Some(key), "/v1/vaults").await.expect(200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        key_info(&app.get(&path).await.expect(200), key_id)["last_used_at"],
        first,
        "within a minute of the stored last use, nothing is written"
    );
    app.stop().await;
}

async fn the_bootstrap_key_is_named_and_never_expires(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let owners = app.get("/v1/groups/owners").await.expect(200);
    let owner = owners["members"][0].as_str().unwrap().to_owned();
    let keys = app
        .get(&format!("/v1/users/{owner}/keys"))
        .await
        .expect(200);
    let keys = items(&keys);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "bootstrap");
    assert_eq!(keys[0]["expires_at"], Value::Null);
    assert_eq!(keys[0]["expired"], false);
    app.stop().await;
}

backend_tests!(
    api_keys_have_a_name_and_an_optional_expiry,
    an_empty_body_still_creates_a_key,
    an_expired_api_key_is_401_saying_it_expired,
    an_expired_api_key_counts_against_the_failure_limit,
    api_key_last_use_is_shown_and_written_at_most_once_a_minute,
    the_bootstrap_key_is_named_and_never_expires,
);
