//! T1, T3: tokens are ES256 JWTs, claims mirroring Connect's, signed by P-256 keys that are kept
//! encrypted under the master key. This module signs and verifies; it knows nothing of storage.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::EncodePrivateKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::id::random_bytes;
use crate::secret::MasterKey;
use crate::{Error, Result};

pub const AUDIENCE: &str = "com.1password.connect";
pub const FEATURE_VAULT_ACCESS: &str = "vaultaccess";

/// One vault in a token's scope: `u` the vault ID, `a` the access bits (T2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultScope {
    pub u: String,
    pub a: i64,
}

/// T1: the claims of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: Vec<String>,
    /// The server's ID.
    pub sub: String,
    /// The token's ID.
    pub jti: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(rename = "1password.com/auuid")]
    pub account_uuid: String,
    /// 32 random URL-safe characters; in the JWT only, never stored.
    #[serde(rename = "1password.com/token")]
    pub token: String,
    #[serde(rename = "1password.com/fts")]
    pub features: Vec<String>,
    #[serde(rename = "1password.com/vts")]
    pub vaults: Vec<VaultScope>,
}

/// 32 random URL-safe characters for the `1password.com/token` claim.
pub fn random_token_value() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<24>())
}

/// A P-256 signing key: its private half sealed under the master key, its public half as JWK
/// coordinates.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub kid: String,
    /// PKCS#8 DER, sealed by [`MasterKey::seal`].
    pub sealed_private: String,
    pub x: String,
    pub y: String,
}

impl std::fmt::Debug for SealedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A new P-256 key, sealed under `master`.
pub fn generate_key(master: &MasterKey) -> SealedKey {
    let signing = loop {
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&random_bytes::<32>()) {
            break k;
        }
    };
    let der = signing
        .to_pkcs8_der()
        .expect("a P-256 key encodes as PKCS#8");
    let point = signing.verifying_key().to_sec1_point(false);
    SealedKey {
        kid: crate::id::new_lower(),
        sealed_private: master.seal(der.as_bytes()),
        x: URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point")),
        y: URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point")),
    }
}

/// A public key as JWKS publishes it (T3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub key_use: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl SealedKey {
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: self.x.clone(),
            y: self.y.clone(),
            kid: self.kid.clone(),
            alg: "ES256".into(),
            key_use: "sig".into(),
        }
    }
}

/// The keys in memory: the newest signs, every one verifies.
pub struct KeySet {
    signing: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
}

impl KeySet {
    /// Opens `keys` (newest first) with the master key.
    pub fn open(master: &MasterKey, keys: &[SealedKey]) -> Result<Self> {
        let mut verifying = HashMap::new();
        let mut signing = None;
        for key in keys {
            let decoding = DecodingKey::from_ec_components(&key.x, &key.y)
                .map_err(|e| Error::internal(format!("signing key {}: {e}", key.kid)))?;
            verifying.insert(key.kid.clone(), decoding);
            if signing.is_none() {
                let der = master.open(&key.sealed_private)?;
                signing = Some((key.kid.clone(), EncodingKey::from_ec_der(&der)));
            }
        }
        Ok(KeySet { signing, verifying })
    }

    pub fn signing_kid(&self) -> Option<&str> {
        self.signing.as_ref().map(|(kid, _)| kid.as_str())
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.verifying.contains_key(kid)
    }

    /// Signs `claims` with the newest key: header `{alg: ES256, kid, typ: JWT}`.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let (kid, key) = self
            .signing
            .as_ref()
            .ok_or_else(|| Error::internal("no signing key"))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, key).map_err(Error::internal)
    }

    /// Verifies an ES256 token signed by one of these keys for our audience. Expiry is *not*
    /// checked here (the caller compares with the stored token). `None` for anything else:
    /// garbage, another algorithm (`none` included), an unknown key, a bad signature.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::ES256 {
            return None;
        }
        let key = self.verifying.get(header.kid.as_deref()?)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["aud", "sub", "iss"]
            .into_iter()
            .map(String::from)
            .collect();
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .ok()
            .map(|d| d.claims)
    }

    /// The `kid` a token's header names, if it parses.
    pub fn kid_of(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).ok()?.kid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            iss: "https://cm.example".into(),
            aud: vec![AUDIENCE.into()],
            sub: crate::id::new_upper(),
            jti: crate::id::new_lower(),
            iat: 1_700_000_000,
            exp: None,
            account_uuid: crate::id::new_upper(),
            token: random_token_value(),
            features: vec![FEATURE_VAULT_ACCESS.into()],
            vaults: vec![VaultScope {
                u: crate::id::new_lower(),
                a: 48,
            }],
        }
    }

    #[test]
    fn t1_tokens_sign_and_verify_with_es256() {
        let master = MasterKey::from_text(&MasterKey::generate_text()).unwrap();
        let key = generate_key(&master);
        let set = KeySet::open(&master, std::slice::from_ref(&key)).unwrap();
        let c = claims();
        assert_eq!(c.token.len(), 32);
        let jwt = set.sign(&c).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(set.verify(&jwt).unwrap(), c);
        let payload = jwt.split('.').nth(1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(json.get("exp").is_none(), "no exp when it does not expire");

        // A foreign key, garbage and alg none are all refused.
        let other = generate_key(&master);
        let foreign = KeySet::open(&master, &[other]).unwrap();
        assert!(foreign.verify(&jwt).is_none());
        assert!(set.verify("garbage").is_none());
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"x"}"#);
        assert!(set.verify(&format!("{none_header}.{payload}.")).is_none());
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let tampered_payload = URL_SAFE_NO_PAD.encode(json.to_string().replace("48", "1008"));
        parts[1] = &tampered_payload;
        assert!(
            set.verify(&parts.join(".")).is_none(),
            "a changed claim breaks the signature"
        );
    }
}
