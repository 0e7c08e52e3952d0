//! Tokens over HTTP, one file per route as the API has them: create, list, edit, delete (revoke),
//! introspect, the JWKS with key rotation (R7–R10, R12, T1–T4), and two replicas on one
//! PostgreSQL. What they share to set up is here.

mod create;
mod delete;
mod edit;
mod introspect;
mod jwks;
mod list;
mod replicas;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::harness::TestApp;

pub fn decode_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A server `web` granted vaults `a` and `b`; returns (server id, secret).
pub async fn setup(app: &TestApp) -> (String, String) {
    app.vault("a", "USER_CREATED").await;
    app.vault("b", "EVERYONE").await;
    let (s, secret) = app.server("web", &["a", "b"]).await;
    (s["id"].as_str().unwrap().to_owned(), secret)
}

pub async fn vault_id(app: &TestApp, name: &str) -> String {
    app.get(&format!("/v1/vaults/{name}")).await.expect(200)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}
