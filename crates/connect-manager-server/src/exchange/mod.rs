//! Verifying a workload's JWT for the token exchange (issue 18): the algorithm (RS256, ES256,
//! EdDSA; `none` and HMAC refused before any key is looked up, so a token signed with HS256 and
//! an issuer's *public* key as the secret never reaches a verifier), a trusted `iss`, the
//! issuer's key by `kid` (`keys.rs`: discovery, JWKS cache, refetch limits), the signature, and
//! `exp`/`nbf`/`iat` with at most [`MAX_SKEW_SECONDS`] of clock skew. What a policy then checks
//! (`aud`, `sub`, claims) is `connect_manager_core::trust`.

pub mod keys;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connect_manager_core::api::trust::Issuer;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

pub use keys::{IssuerKeys, KeyError};

/// The largest subject token accepted, in bytes (GitHub's and GitLab's are about 1–2 KiB,
/// Kubernetes' about 1 KiB).
pub const MAX_SUBJECT_TOKEN_BYTES: usize = 16 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const MAX_SKEW_SECONDS: u64 = 60;

/// Why an exchange is refused: the RFC 6749 error it answers with, and a description that says
/// what did not match without repeating the token or its claims' values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `invalid_request`: the request is malformed.
    Request(String),
    /// `invalid_grant`: the subject token is not accepted.
    Grant(String),
    /// `invalid_target`: no such server.
    Target(String),
    /// The issuer's keys cannot be read now (503, `temporarily_unavailable`).
    Unavailable(String),
}

/// A verified subject token: its claims and the trusted issuer that signed it.
#[derive(Debug)]
pub struct Verified {
    pub issuer: Issuer,
    pub claims: Map<String, Value>,
}

impl Verified {
    pub fn subject(&self) -> &str {
        self.claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

fn grant(why: impl Into<String>) -> Refusal {
    Refusal::Grant(why.into())
}

/// The parts of a compact JWS, and its header's algorithm and key ID, read without trusting
/// anything: an algorithm other than RS256, ES256 and EdDSA is refused here.
pub fn header(token: &str) -> Result<(Algorithm, String), Refusal> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(Refusal::Request(
            "subject_token is not a JWT (header.payload.signature)".into(),
        ));
    }
    let header: Value = URL_SAFE_NO_PAD
        .decode(parts[0])
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(|| Refusal::Request("subject_token's header is not base64url JSON".into()))?;
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => Algorithm::RS256,
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") => Algorithm::EdDSA,
        _ => {
            return Err(grant(
                "the subject token's algorithm is not accepted: RS256, ES256 or EdDSA only \
                 (never none or HMAC)",
            ));
        }
    };
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| grant("the subject token's header has no kid"))?;
    Ok((alg, kid.to_owned()))
}

/// The `iss` of a token not verified yet: only to find which trusted issuer's keys verify it.
pub fn unverified_issuer(token: &str) -> Result<String, Refusal> {
    let payload = token.split('.').nth(1).unwrap_or_default();
    let claims: Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(|| Refusal::Request("subject_token's payload is not base64url JSON".into()))?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| grant("the subject token has no iss claim"))
}

/// Verifies `token`, whose header is `(alg, kid)`, against the trusted `issuer`'s key.
pub async fn verify(
    keys: &IssuerKeys,
    issuer: Issuer,
    alg: Algorithm,
    kid: &str,
    token: &str,
) -> Result<Verified, Refusal> {
    let key = match keys.key(&issuer.issuer, kid).await {
        Ok(key) => key,
        Err(KeyError::UnknownKid) => {
            return Err(grant(
                "the subject token's kid is not among the issuer's keys",
            ));
        }
        Err(KeyError::Unavailable(why)) => {
            return Err(Refusal::Unavailable(format!(
                "the issuer's keys cannot be read: {why}"
            )));
        }
    };
    if key.alg != alg {
        return Err(grant(
            "the subject token's algorithm does not match its key's",
        ));
    }
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.leeway = MAX_SKEW_SECONDS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    // `aud` is each policy's to check.
    validation.validate_aud = false;
    validation.set_issuer(&[&issuer.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
        .map_err(|e| {
            grant(match e.kind() {
                ErrorKind::ExpiredSignature => "the subject token has expired".to_owned(),
                ErrorKind::ImmatureSignature => {
                    "the subject token is not valid yet (nbf is in the future)".to_owned()
                }
                ErrorKind::InvalidIssuer => "the subject token's iss is not trusted".to_owned(),
                ErrorKind::InvalidSignature => {
                    "the subject token's signature does not verify".to_owned()
                }
                ErrorKind::MissingRequiredClaim(c) => {
                    format!("the subject token has no {c} claim")
                }
                ErrorKind::InvalidClaimFormat(c) => {
                    format!("the subject token's {c} claim is malformed")
                }
                _ => "the subject token is malformed".to_owned(),
            })
        })?
        .claims;
    let now = jsonwebtoken::get_current_timestamp();
    if let Some(iat) = claims.get("iat") {
        match iat.as_u64() {
            Some(iat) if iat <= now + MAX_SKEW_SECONDS => {}
            Some(_) => return Err(grant("the subject token was issued in the future (iat)")),
            None => return Err(grant("the subject token's iat claim is malformed")),
        }
    }
    if !claims.get("sub").is_some_and(Value::is_string) {
        return Err(grant("the subject token's sub claim is malformed"));
    }
    Ok(Verified { issuer, claims })
}
