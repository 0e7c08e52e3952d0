//! Trusted issuers' signing keys: OIDC discovery (`{issuer}/.well-known/openid-configuration` →
//! `jwks_uri`), the JWKS, cached per issuer.
//!
//! * Only an issuer on the list is ever fetched from: the caller looks `iss` up in the store
//!   first and passes the trusted URL here.
//! * A `kid` not in the cached set refetches at most once per [`REFETCH_INTERVAL`] per issuer,
//!   whatever the number of concurrent requests: one fetch is in flight per issuer (the others
//!   wait for it and then read its result), and a fetch less than a minute after the last one
//!   is not made (the unknown `kid` is refused). A flood of made-up `kid`s thus costs the issuer
//!   one request a minute.
//! * Every fetch has a size limit ([`MAX_DOCUMENT_BYTES`]) and a time limit ([`FETCH_TIMEOUT`]),
//!   follows no redirect, and goes through the service's one HTTP stack (reqwest on rustls).
//! * `jwks_uri` must use the issuer's scheme: https, or http to a loopback host when
//!   `CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS=true` (tests).
//! * A set older than [`MAX_KEY_AGE`] is refreshed on the next exchange (within the same
//!   once-a-minute limit; if that fails, the old set is kept), so a key the issuer withdrew stops
//!   verifying within the hour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The least time between two fetches of one issuer's keys.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// A cached key set older than this is refreshed.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// The time limit of one HTTP request (discovery or JWKS).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest discovery document or JWKS read.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// The most keys kept of one JWKS.
const MAX_KEYS: usize = 100;
/// The shortest RSA modulus accepted.
const MIN_RSA_BITS: usize = 2048;

/// A verification key and the one algorithm it verifies.
#[derive(Clone)]
pub struct IssuerKey {
    pub key: Arc<DecodingKey>,
    pub alg: Algorithm,
}

/// One issuer's keys as last fetched.
struct KeySet {
    keys: HashMap<String, IssuerKey>,
    fetched_at: Instant,
}

#[derive(Default)]
struct Entry {
    keys: Mutex<Option<Arc<KeySet>>>,
    /// When the last fetch started; held while a fetch runs (single flight).
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// Why no key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The issuer's keys were read (or were read less than a minute ago) and none has this `kid`.
    UnknownKid,
    /// The issuer's discovery document or JWKS could not be read; the reason (no secret in it).
    Unavailable(String),
}

/// The key sets of trusted issuers, by issuer URL.
pub struct IssuerKeys {
    http: reqwest::Client,
    allow_insecure: bool,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// Discovery and JWKS requests made (for tests and metrics).
    fetches: std::sync::atomic::AtomicU64,
}

impl IssuerKeys {
    pub fn new(allow_insecure: bool) -> Self {
        // One TLS stack for the whole binary: rustls with ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("connect-manager/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(FETCH_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        IssuerKeys {
            http,
            allow_insecure,
            entries: Mutex::default(),
            fetches: Default::default(),
        }
    }

    /// Whether http:// issuers on loopback are allowed (CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS).
    pub fn allows_insecure(&self) -> bool {
        self.allow_insecure
    }

    /// HTTP requests made to issuers so far.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops what is cached of `issuer` (it is no longer trusted).
    pub fn forget(&self, issuer: &str) {
        self.entries.lock().expect("issuer keys").remove(issuer);
    }

    fn entry(&self, issuer: &str) -> Arc<Entry> {
        let mut entries = self.entries.lock().expect("issuer keys");
        entries.entry(issuer.to_owned()).or_default().clone()
    }

    /// The key `kid` of the trusted issuer `issuer`.
    pub async fn key(&self, issuer: &str, kid: &str) -> Result<IssuerKey, KeyError> {
        let entry = self.entry(issuer);
        let cached = |entry: &Entry| entry.keys.lock().expect("issuer keys").clone();
        if let Some(set) = cached(&entry)
            && let Some(key) = set.keys.get(kid)
            && set.fetched_at.elapsed() < MAX_KEY_AGE
        {
            return Ok(key.clone());
        }
        // One fetch at a time per issuer; whoever waited reads what it fetched.
        let mut last_fetch = entry.fetch.lock().await;
        let set = cached(&entry);
        let fresh = set
            .as_ref()
            .is_some_and(|s| s.fetched_at.elapsed() < MAX_KEY_AGE);
        if fresh && let Some(key) = set.as_ref().and_then(|s| s.keys.get(kid)) {
            return Ok(key.clone());
        }
        if last_fetch.is_some_and(|t| t.elapsed() < REFETCH_INTERVAL) {
            // Fetched less than a minute ago: an old set's key still verifies, an unknown kid
            // waits for the next minute.
            return match &set {
                Some(s) => s.keys.get(kid).cloned().ok_or(KeyError::UnknownKid),
                None => Err(KeyError::Unavailable(
                    "its keys could not be read; retry in a minute".into(),
                )),
            };
        }
        *last_fetch = Some(Instant::now());
        match self.fetch(issuer).await {
            Ok(keys) => {
                let set = Arc::new(KeySet {
                    keys,
                    fetched_at: Instant::now(),
                });
                *entry.keys.lock().expect("issuer keys") = Some(set.clone());
                set.keys.get(kid).cloned().ok_or(KeyError::UnknownKid)
            }
            Err(why) => {
                tracing::warn!(issuer, "cannot read the trusted issuer's keys: {why}");
                match set.as_ref().and_then(|s| s.keys.get(kid)) {
                    Some(key) => Ok(key.clone()),
                    None => Err(KeyError::Unavailable(why)),
                }
            }
        }
    }

    /// Discovery, then the JWKS.
    async fn fetch(&self, issuer: &str) -> Result<HashMap<String, IssuerKey>, String> {
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery = self.get_json(&discovery_url).await?;
        if discovery.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err("its discovery document names another issuer".into());
        }
        let jwks_uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("its discovery document has no jwks_uri")?;
        self.check_jwks_uri(issuer, jwks_uri)?;
        let jwks = self.get_json(jwks_uri).await?;
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("its JWKS has no keys")?;
        Ok(keys
            .iter()
            .take(MAX_KEYS)
            .filter_map(|jwk| {
                let kid = jwk.get("kid")?.as_str()?.to_owned();
                Some((kid, parse_jwk(jwk)?))
            })
            .collect())
    }

    /// `jwks_uri` uses the issuer's scheme, and is https unless insecure issuers are allowed and
    /// it names a loopback host.
    fn check_jwks_uri(&self, issuer: &str, jwks_uri: &str) -> Result<(), String> {
        let scheme = |u: &str| u.split_once("://").map(|(s, _)| s.to_owned());
        if scheme(issuer) != scheme(jwks_uri) {
            return Err("its jwks_uri does not use the issuer's scheme".into());
        }
        connect_manager_core::trust::check_issuer_url(jwks_uri, self.allow_insecure)
            .map_err(|_| "its jwks_uri is not an https:// URL".to_owned())
    }

    /// A JSON document, at most [`MAX_DOCUMENT_BYTES`], within [`FETCH_TIMEOUT`].
    async fn get_json(&self, url: &str) -> Result<Value, String> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let read = async {
            let mut response = self
                .http
                .get(url)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| format!("GET {url}: {}", without_url(&e)))?;
            if !response.status().is_success() {
                return Err(format!("GET {url}: status {}", response.status().as_u16()));
            }
            if response
                .content_length()
                .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
            {
                return Err(format!("GET {url}: over {MAX_DOCUMENT_BYTES} bytes"));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| format!("GET {url}: {}", without_url(&e)))?
            {
                if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                    return Err(format!("GET {url}: over {MAX_DOCUMENT_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            serde_json::from_slice(&body).map_err(|_| format!("GET {url}: not JSON"))
        };
        tokio::time::timeout(FETCH_TIMEOUT, read)
            .await
            .map_err(|_| format!("GET {url}: no answer within {} s", FETCH_TIMEOUT.as_secs()))?
    }
}

fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "");
    }
    text
}

/// A JWKS entry as a verification key: RSA (RS256), EC P-256 (ES256) or OKP Ed25519 (EdDSA), for
/// signatures. Anything else (symmetric `oct` keys above all, other curves, a `use` other than
/// `sig`, an `alg` that disagrees with the key type) is left out: it verifies nothing.
pub fn parse_jwk(jwk: &Value) -> Option<IssuerKey> {
    let text = |k: &str| jwk.get(k).and_then(Value::as_str);
    if text("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let (alg, key) = match (text("kty")?, text("crv")) {
        ("RSA", _) => {
            // At least 2048 bits: a shorter modulus is refused, not trusted.
            let modulus = URL_SAFE_NO_PAD.decode(text("n")?).ok()?;
            let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
            if bits < MIN_RSA_BITS {
                return None;
            }
            (
                Algorithm::RS256,
                DecodingKey::from_rsa_components(text("n")?, text("e")?).ok()?,
            )
        }
        ("EC", Some("P-256")) => (
            Algorithm::ES256,
            DecodingKey::from_ec_components(text("x")?, text("y")?).ok()?,
        ),
        ("OKP", Some("Ed25519")) => (
            Algorithm::EdDSA,
            DecodingKey::from_ed_components(text("x")?).ok()?,
        ),
        _ => return None,
    };
    let named = match text("alg") {
        None => alg,
        Some("RS256") => Algorithm::RS256,
        Some("ES256") => Algorithm::ES256,
        Some("EdDSA") | Some("Ed25519") => Algorithm::EdDSA,
        Some(_) => return None,
    };
    (named == alg).then(|| IssuerKey {
        key: Arc::new(key),
        alg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    #[test]
    fn jwks_keep_rsa_p256_and_ed25519_signature_keys_only() {
        let n = {
            let mut n = vec![0xc3u8; 256];
            n[255] = 0x01;
            b64(&n)
        };
        let rsa = json!({"kty": "RSA", "kid": "r", "n": n, "e": "AQAB"});
        assert_eq!(parse_jwk(&rsa).map(|k| k.alg), Some(Algorithm::RS256));
        let ed = json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": b64(&[7u8; 32])});
        assert_eq!(parse_jwk(&ed).map(|k| k.alg), Some(Algorithm::EdDSA));
        // Refused: a symmetric key, a short RSA modulus, another curve, an encryption key, an
        // alg that disagrees with the key type.
        for bad in [
            json!({"kty": "oct", "kid": "h", "k": b64(b"secret"), "alg": "HS256"}),
            json!({"kty": "RSA", "kid": "s", "n": b64(&[0xc3u8; 128]), "e": "AQAB"}),
            json!({"kty": "EC", "crv": "P-384", "kid": "p", "x": b64(&[1u8; 48]), "y": b64(&[1u8; 48])}),
            json!({"kty": "RSA", "kid": "u", "use": "enc", "n": n, "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "a", "alg": "HS256", "n": n, "e": "AQAB"}),
            json!({"kty": "RSA", "kid": "b", "alg": "ES256", "n": n, "e": "AQAB"}),
        ] {
            assert!(parse_jwk(&bad).is_none(), "{bad}");
        }
    }
}
