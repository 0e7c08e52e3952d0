//! Headers that protect what a response carries: `WWW-Authenticate` on every 401 (A1), declared
//! in the description and really sent, with the scheme the operation takes; `Cache-Control:
//! no-store` on every response that carries a secret (an API key, a JWT, a credentials file).

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{OWNER_KEY, TestApp};

/// Every operation of the description: (method, path template, operation).
fn operations() -> Vec<(Method, String, Value)> {
    let (_, api) = connect_manager_server::openapi::split();
    let api = serde_json::to_value(&api).unwrap();
    let mut out = Vec::new();
    for (path, item) in api["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Ok(m) = Method::from_bytes(method.to_uppercase().as_bytes()) {
                out.push((m, path.clone(), op.clone()));
            }
        }
    }
    out
}

/// The security scheme an operation takes, if any.
fn scheme(op: &Value) -> Option<String> {
    op["security"]
        .as_array()?
        .iter()
        .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.keys().cloned()))
        .next()
}

/// A1: every 401 in the description declares `WWW-Authenticate`, and the service sends it on
/// each, with `Bearer` where the operation takes a user's API key and `Basic` where it takes a
/// Connect server's credentials; with no credentials and with wrong ones.
async fn a1_every_401_declares_and_sends_www_authenticate(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let mut checked = 0;
    for (method, path, op) in operations() {
        let Some(unauthorized) = op["responses"].get("401") else {
            continue;
        };
        assert!(
            unauthorized["headers"].get("WWW-Authenticate").is_some(),
            "{method} {path}: the 401 does not declare WWW-Authenticate"
        );
        let expected = match scheme(&op).as_deref() {
            Some("api_key") => "Bearer ",
            Some("server_credentials") => "Basic ",
            other => panic!("{method} {path}: a 401 without a known scheme: {other:?}"),
        };
        let url = format!("{}{}", app.base, path.replace('{', "x").replace('}', ""));
        let wrong = |r: reqwest::RequestBuilder| match expected {
            "Bearer " => r.bearer_auth("cmk_not-a-key"),
            _ => r.basic_auth("0123456789ABCDEFGHJKMNPQRS", Some("not-the-secret")),
        };
        for (what, request) in [
            ("no credentials", app.client.request(method.clone(), &url)),
            (
                "wrong credentials",
                wrong(app.client.request(method.clone(), &url)),
            ),
        ] {
            let r = request.json(&json!({})).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401, "{method} {path} with {what}");
            let challenge = r
                .headers()
                .get("www-authenticate")
                .unwrap_or_else(|| panic!("{method} {path} with {what}: no WWW-Authenticate"))
                .to_str()
                .unwrap();
            assert!(
                challenge.starts_with(expected),
                "{method} {path} with {what}: {challenge}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 40, "{checked} operations answer 401");
    app.stop().await;
}

/// The schemas of bodies that carry a secret.
const SECRET_BODIES: [&str; 4] = [
    "CreatedApiKey",
    "CreatedToken",
    "ServerWithCredentials",
    "TokenExchangeResponse",
];

/// Every response carrying a key, a JWT or a credentials file says `Cache-Control: no-store`:
/// the description declares it on every response whose body is one of those schemas (found by
/// walking the description, so a new one is not missed), and each such operation really sends
/// it.
async fn every_response_carrying_a_secret_is_no_store(db: TestDb) {
    let mut declared = Vec::new();
    for (method, path, op) in operations() {
        for (status, response) in op["responses"].as_object().unwrap() {
            let body = response["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_default();
            let carries_secret = SECRET_BODIES
                .iter()
                .any(|s| body == format!("#/components/schemas/{s}"));
            let no_store = response["headers"].get("Cache-Control").is_some();
            assert_eq!(
                carries_secret, no_store,
                "{method} {path} {status}: body {body:?}, Cache-Control declared: {no_store}"
            );
            if carries_secret {
                declared.push(format!("{method} {path}"));
            }
        }
    }
    declared.sort();
    let expected = [
        "POST /v1/connect/servers",
        "POST /v1/connect/servers/{server}/credentials",
        "POST /v1/connect/servers/{server}/tokens",
        // Sent for real: exchange::issued::exchange_answers_an_access_token_of_the_server.
        "POST /v1/token-exchange",
        "POST /v1/users/{user}/keys",
    ];
    assert_eq!(declared, expected);

    let app = TestApp::spawn(db).await;
    app.vault("shared", "EVERYONE").await;
    let (user, _) = app.user_with("someone", None).await;
    for (path, body) in [
        (
            "/v1/connect/servers".to_owned(),
            json!({"name": "web", "vaults": ["shared"]}),
        ),
        ("/v1/connect/servers/web/credentials".to_owned(), json!({})),
        (
            "/v1/connect/servers/web/tokens".to_owned(),
            json!({"name": "t", "vaults": [{"vault": "shared"}]}),
        ),
        (format!("/v1/users/{user}/keys"), json!({})),
    ] {
        let r = app
            .client
            .post(format!("{}{path}", app.base))
            .bearer_auth(OWNER_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{path}");
        assert_eq!(
            r.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{path}"
        );
    }
    app.stop().await;
}

backend_tests!(
    a1_every_401_declares_and_sends_www_authenticate,
    every_response_carrying_a_secret_is_no_store,
);
