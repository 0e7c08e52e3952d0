//! A stand-in OIDC issuer for `scripts/bench` (the token exchange, issue 18): its own P-256 key,
//! `/.well-known/openid-configuration` and `/.well-known/jwks` served on 127.0.0.1, and
//! `--tokens` distinct GitHub-Actions-shaped subject tokens written to `--out`, one per line,
//! valid for an hour. Prints its URL once serving, then serves until killed.
//!
//! `cargo run --release -p connect-manager --example bench-issuer -- --port 18500 --tokens 1000 --out tokens.txt`

use axum::Json;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    port: u16,
    #[arg(long, default_value_t = 1000)]
    tokens: usize,
    #[arg(long)]
    out: std::path::PathBuf,
    #[arg(long, default_value = "connect-manager")]
    audience: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let signing = loop {
        let seed = connect_manager_core::id::random_bytes::<32>();
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&seed) {
            break k;
        }
    };
    let der = signing.to_pkcs8_der()?;
    let point = signing.verifying_key().to_sec1_point(false);
    let kid = "bench-key".to_owned();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed")),
        "y": URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed")),
    });
    let url = format!("http://127.0.0.1:{}", args.port);
    let key = EncodingKey::from_ec_der(der.as_bytes());
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut out = String::new();
    for i in 0..args.tokens.max(1) {
        let claims = json!({
            "iss": url, "aud": args.audience, "sub": format!("repo:acme/api:ref:refs/heads/b{i}"),
            "jti": connect_manager_core::id::new_lower(), "repository": "acme/api",
            "ref": format!("refs/heads/b{i}"), "workflow": "deploy", "environment": "production",
            "iat": now, "nbf": now, "exp": now + 3600,
        });
        out.push_str(&jsonwebtoken::encode(&header, &claims, &key)?);
        out.push('\n');
    }
    std::fs::write(&args.out, out)?;
    let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/.well-known/jwks")});
    let jwks = json!({"keys": [jwk]});
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/.well-known/jwks", get(move || async move { Json(jwks) }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("{url}");
    axum::serve(listener, app).await?;
    Ok(())
}
