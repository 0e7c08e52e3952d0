//! Workload identity over HTTP (issue 18), by concern: trusted issuers (`issuers.rs`), trust
//! policies (`policies.rs`), a successful exchange and the token it yields (`issued.rs`), and
//! every refusal as a named test (`refusals.rs`). Here: a GitHub-Actions-shaped issuer run by
//! the test (its own P-256 key, a discovery document and a JWKS served on 127.0.0.1, every
//! fetch recorded) and the setup the tests share.

mod issued;
mod issuers;
mod policies;
mod refusals;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

use crate::harness::{Reply, TestApp, reply};

pub const AUDIENCE: &str = "connect-manager";
pub const SUBJECT: &str = "repo:acme/api:environment:production";

/// An OIDC issuer shaped like GitHub Actions' (`token.actions.githubusercontent.com`): its own
/// P-256 key, `/.well-known/openid-configuration` and `/jwks` on 127.0.0.1, every request
/// recorded by path.
pub struct TestIssuer {
    pub url: String,
    pub kid: String,
    key: EncodingKey,
    /// The public key as its JWKS publishes it.
    pub jwk: Value,
    fetched: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Served {
    url: String,
    jwk: Value,
    fetched: Arc<Mutex<Vec<String>>>,
}

async fn discovery(State(s): State<Served>) -> Json<Value> {
    s.fetched.lock().unwrap().push("discovery".into());
    Json(json!({
        "issuer": s.url,
        "jwks_uri": format!("{}/.well-known/jwks", s.url),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref",
            "repository", "repository_id", "repository_owner", "run_id", "run_number",
            "run_attempt", "actor", "workflow", "head_ref", "base_ref", "event_name",
            "ref_type", "environment", "job_workflow_ref"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
    }))
}

async fn jwks(State(s): State<Served>) -> Json<Value> {
    s.fetched.lock().unwrap().push("jwks".into());
    Json(json!({ "keys": [s.jwk] }))
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl TestIssuer {
    pub async fn start() -> TestIssuer {
        let signing = loop {
            let mut seed = [0u8; 32];
            getrandom_fill(&mut seed);
            if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&seed) {
                break k;
            }
        };
        let der = signing.to_pkcs8_der().unwrap();
        let point = signing.verifying_key().to_sec1_point(false);
        let kid = format!("kid-{}", connect_manager_core::id::new_lower());
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fetched = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks", get(jwks))
            .with_state(Served {
                url: url.clone(),
                jwk: jwk.clone(),
                fetched: fetched.clone(),
            });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestIssuer {
            url,
            kid,
            key: EncodingKey::from_ec_der(der.as_bytes()),
            jwk,
            fetched,
            task,
        }
    }

    /// What was fetched from this issuer so far, in order (`discovery`, `jwks`).
    pub fn fetched(&self) -> Vec<String> {
        self.fetched.lock().unwrap().clone()
    }

    /// A GitHub Actions job's claims: repository `acme/api`, branch `main`, environment
    /// `production`, valid for five minutes.
    pub fn claims(&self) -> Value {
        let now = now();
        json!({
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": SUBJECT,
            "jti": connect_manager_core::id::new_lower(),
            "repository": "acme/api",
            "repository_owner": "acme",
            "ref": "refs/heads/main",
            "ref_type": "branch",
            "workflow": "deploy",
            "event_name": "push",
            "environment": "production",
            "run_id": "42",
            "run_attempt": "1",
            "nbf": now - 5,
            "iat": now - 5,
            "exp": now + 300,
        })
    }

    /// `claims` signed with this issuer's key.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_kid(claims, &self.kid)
    }

    pub fn sign_with_kid(&self, claims: &Value, kid: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    /// A job's token with `edit` applied to its claims.
    pub fn token_with(&self, edit: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.claims();
        edit(&mut claims);
        self.sign(&claims)
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn getrandom_fill(buf: &mut [u8; 32]) {
    *buf = connect_manager_core::id::random_bytes::<32>();
}

/// `POST /v1/token-exchange` with this form (no credential).
pub async fn exchange_form(app: &TestApp, form: &[(&str, &str)]) -> Reply {
    let body = serde_urlencoded::to_string(form).unwrap();
    reply(
        app.client
            .post(format!("{}/v1/token-exchange", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request sent"),
    )
    .await
}

/// An RFC 8693 exchange of `subject_token` for a token of `resource`.
pub async fn exchange(app: &TestApp, subject_token: &str, resource: &str) -> Reply {
    exchange_form(
        app,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject_token),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("resource", resource),
        ],
    )
    .await
}

/// Asserts an RFC 6749 §5.2 refusal: `status`, `error`, and a description containing `says`
/// (and never the subject token).
#[track_caller]
pub fn expect_refusal(reply: Reply, status: u16, error: &str, says: &str) -> String {
    let body = reply.expect(status);
    assert_eq!(body["error"], error, "{body}");
    let description = body["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(description.contains(says), "{says:?} not in {body}");
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only error and error_description: {body}"
    );
    description
}

/// What the exchange tests share: a vault `prod` granted to server `web`, the issuer trusted as
/// `github`, and policy `deploy` on `web` (audience, `repo:acme/api:*`, environment
/// `production`, `prod` read-only, 10 minutes). Returns (server ID, its secret).
pub async fn setup(app: &TestApp, issuer: &TestIssuer) -> (String, String) {
    app.vault("prod", "USER_CREATED").await;
    let (server, secret) = app.server("web", &["prod"]).await;
    app.post(
        "/v1/issuers",
        json!({"issuer": issuer.url, "name": "github"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/connect/servers/web/trust-policies",
        json!({
            "name": "deploy",
            "issuer": "github",
            "audience": AUDIENCE,
            "subject": "repo:acme/api:*",
            "claims": {"environment": "production"},
            "vaults": [{"vault": "prod", "access": "read"}],
            "ttl": "10m",
        }),
    )
    .await
    .expect(201);
    (server["id"].as_str().unwrap().to_owned(), secret)
}
