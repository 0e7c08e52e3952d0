//! Log hygiene: every secret a full scenario handles stays out of a trace-level log.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::support::{Running, command, http};

/// Every secret a full scenario handles, searched for in a trace-level log.
#[tokio::test]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let owner = "log-test-owner-key-0123456789abcdefghijk";
    let mut cmd = command(dir.path());
    cmd.env("RUST_LOG", "trace")
        .env("LOG_FORMAT", "json")
        .env("CONNECT_MANAGER_BOOTSTRAP_KEY", owner)
        .env("CONNECT_MANAGER_AUTH_FAILURES_PER_MINUTE", "0");
    let mut app = Running::start(cmd, dir.path());
    app.wait_ready().await;
    let client = http();
    let base = app.base.clone();
    let call = |method: reqwest::Method, path: &str, key: &str, body: Option<Value>| {
        let mut r = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            r.send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap_or(Value::Null)
        }
    };
    use reqwest::Method;
    call(
        Method::POST,
        "/v1/vaults",
        owner,
        Some(json!({"name": "v", "type": "EVERYONE"})),
    )
    .await;
    let user = call(
        Method::POST,
        "/v1/users",
        owner,
        Some(json!({"name": "a", "email": "a@x.test"})),
    )
    .await;
    let user_key = call(
        Method::POST,
        &format!("/v1/users/{}/keys", user["id"].as_str().unwrap()),
        owner,
        None,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = call(
        Method::POST,
        "/v1/connect/servers",
        owner,
        Some(json!({"name": "web", "vaults": ["v"]})),
    )
    .await;
    let rotated = call(
        Method::POST,
        "/v1/connect/servers/web/credentials",
        owner,
        None,
    )
    .await;
    let token = call(
        Method::POST,
        "/v1/connect/servers/web/tokens",
        &user_key,
        Some(json!({"name": "t", "vaults": [{"vault": "v"}]})),
    )
    .await;
    assert!(
        token["error"].is_object(),
        "a user in no group may not: a denial in the log"
    );
    let token = call(
        Method::POST,
        "/v1/connect/servers/web/tokens",
        owner,
        Some(json!({"name": "t", "vaults": [{"vault": "v"}]})),
    )
    .await;
    let jwt = token["token"].as_str().unwrap().to_owned();
    let server_id = created["server"]["id"].as_str().unwrap().to_owned();
    let mut secrets = vec![
        owner.to_owned(),
        user_key.clone(),
        jwt.clone(),
        jwt.split('.').nth(2).unwrap().to_owned(),
    ];
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    secrets.push(claims["1password.com/token"].as_str().unwrap().to_owned());
    let mut basics = Vec::new();
    for c in [&created["credentials"], &rotated["credentials"]] {
        let file = serde_json::from_value(c.clone()).unwrap();
        let secret = connect_manager_core::credentials::open(&file)
            .unwrap()
            .secret;
        secrets.push(secret.clone());
        secrets.push(c["uniqueKey"]["k"].as_str().unwrap().to_owned());
        secrets.push(c["encCredentials"]["data"].as_str().unwrap().to_owned());
        basics.push(STANDARD.encode(format!("{server_id}:{secret}")));
    }
    let new_secret = secrets[secrets.len() - 3].clone();
    for (secret, expect) in [(new_secret.as_str(), true), ("wrong-secret", false)] {
        let r: Value = client
            .post(format!("{base}/v1/introspect"))
            .basic_auth(&server_id, Some(secret))
            .json(&json!({"token": jwt}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["active"].as_bool() == Some(true), expect, "{r}");
    }
    secrets.extend(basics);
    let guessed = "cmk_a-guessed-key-that-must-not-be-logged-either";
    call(Method::GET, "/v1/vaults", guessed, None).await;
    secrets.push(guessed.to_owned());
    secrets.push(
        std::fs::read_to_string(dir.path().join("data/master.key"))
            .unwrap()
            .trim()
            .to_owned(),
    );
    let log = app.stop();
    assert!(
        log.lines().count() > 50,
        "trace logging is on: {} lines",
        log.lines().count()
    );
    for s in &secrets {
        assert!(s.len() >= 20);
        assert!(
            !log.contains(s.as_str()),
            "a secret is in the log: {}…",
            &s[..6]
        );
    }
    assert!(
        !log.to_lowercase().contains("authorization: "),
        "no Authorization header is logged"
    );
    // One structured event per request: method, route, status, latency, request id, client IP.
    let finished: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["message"] == "finished processing request")
        .collect();
    assert!(finished.len() >= 10, "{}", finished.len());
    let e = finished
        .iter()
        .find(|e| e["span"]["route"] == "/v1/connect/servers/{server}/tokens")
        .unwrap();
    assert!(e["status"].is_number() && e["latency"].is_string(), "{e}");
    assert_eq!(e["span"]["method"], "POST");
    assert_eq!(e["span"]["client_ip"], "127.0.0.1");
    assert_eq!(e["span"]["request_id"].as_str().unwrap().len(), 26);
}
