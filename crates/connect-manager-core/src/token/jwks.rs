//! T3: public keys as the JWKS publishes them, and [`PublicKeys`], the one verification of a
//! token: the manager's from its own keys, the gateway's from the published JWKS.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::claims::{AUDIENCE, Claims};
use super::keys::SealedKey;

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

/// Public keys that verify tokens, by `kid`: the manager's own (from its private halves, in
/// [`KeySet`](super::KeySet)) or a published JWKS (the gateway, which has only public keys).
/// One verification for both.
#[derive(Default, Clone)]
pub struct PublicKeys {
    keys: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("PublicKeys").field("kids", &kids).finish()
    }
}

impl PublicKeys {
    /// The ES256 P-256 signature keys of a published JWKS; any other entry (another key type,
    /// curve, algorithm or use, bad coordinates) is left out, so it verifies nothing.
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let mut set = PublicKeys::default();
        for jwk in &jwks.keys {
            if jwk.kty != "EC" || jwk.crv != "P-256" || jwk.alg != "ES256" || jwk.key_use != "sig" {
                continue;
            }
            let _ = set.insert(jwk);
        }
        set
    }

    pub(super) fn insert(&mut self, jwk: &Jwk) -> std::result::Result<(), ()> {
        // The point must be on the curve: DecodingKey alone would take any bytes.
        let mut sec1 = vec![4u8];
        sec1.extend_from_slice(&decode_coordinate(&jwk.x).ok_or(())?);
        sec1.extend_from_slice(&decode_coordinate(&jwk.y).ok_or(())?);
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| ())?;
        let key = DecodingKey::from_ec_components(&jwk.x, &jwk.y).map_err(|_| ())?;
        self.keys.insert(jwk.kid.clone(), key);
        Ok(())
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verifies an ES256 token signed by one of these keys for our audience. Expiry is *not*
    /// checked here (the caller compares with the stored token or the clock). `None` for
    /// anything else: garbage, another algorithm (`none`, HS*, RS* included), a header without
    /// a `kid` or with an unknown one, a bad signature, a missing `aud`, `sub` or `iss`.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::ES256 {
            return None;
        }
        let key = self.keys.get(header.kid.as_deref()?)?;
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
}

fn decode_coordinate(c: &str) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD.decode(c).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::secret::MasterKey;
    use crate::token::fixtures::{claims, forge};
    use crate::token::{KeySet, generate_key};

    fn jwt_with(header: &str, payload: &serde_json::Value, signature: &str) -> String {
        format!(
            "{}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        )
    }

    #[test]
    fn g2_public_keys_from_a_jwks_verify_exactly_what_the_key_set_verifies() {
        let master = MasterKey::random();
        let key = generate_key(&master);
        let set = KeySet::open(&master, std::slice::from_ref(&key)).unwrap();
        let jwks = Jwks {
            keys: set.public_keys().to_vec(),
        };
        let public = PublicKeys::from_jwks(&jwks);
        assert!(public.knows(&key.kid));
        assert_eq!(public.len(), 1);
        let c = claims();
        let jwt = set.sign(&c).unwrap();
        assert_eq!(public.verify(&jwt).unwrap(), c);

        // Another key under the same kid (a foreign issuer), or the right key under another kid.
        let (forged, _) = forge(&key.kid, &c);
        assert!(public.verify(&forged).is_none(), "forged signature");
        assert!(set.verify(&forged).is_none());
        let other = generate_key(&master);
        let other_set = KeySet::open(&master, std::slice::from_ref(&other)).unwrap();
        assert!(
            public.verify(&other_set.sign(&c).unwrap()).is_none(),
            "unknown kid"
        );

        // alg none, HS256 keyed with the public key's coordinates, RS256: refused before any key.
        let payload: serde_json::Value = serde_json::to_value(&c).unwrap();
        let kid = &key.kid;
        for alg in ["none", "HS256", "HS512", "RS256", "ES384", "PS256"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#);
            let hs = jsonwebtoken::encode(
                &Header {
                    kid: Some(kid.clone()),
                    ..Header::new(Algorithm::HS256)
                },
                &c,
                &EncodingKey::from_secret(key.x.as_bytes()).unwrap(),
            )
            .unwrap();
            assert!(public.verify(&hs).is_none(), "HS256 with a public value");
            let forged = jwt_with(&header, &payload, "c2ln");
            assert!(public.verify(&forged).is_none(), "{alg}");
            assert!(set.verify(&forged).is_none(), "{alg}");
        }
        // No kid at all.
        let no_kid = jwt_with(
            r#"{"alg":"ES256","typ":"JWT"}"#,
            &payload,
            jwt.rsplit('.').next().unwrap(),
        );
        assert!(public.verify(&no_kid).is_none());
        // Wrong audience, even well signed.
        let foreign_aud = Claims {
            aud: vec!["com.example.other".into()],
            ..c.clone()
        };
        assert!(public.verify(&set.sign(&foreign_aud).unwrap()).is_none());
    }

    #[test]
    fn g2_jwks_entries_that_are_not_es256_p256_signature_keys_verify_nothing() {
        let master = MasterKey::random();
        let key = generate_key(&master);
        let good = key.jwk();
        let variants = [
            Jwk {
                kty: "RSA".into(),
                ..good.clone()
            },
            Jwk {
                crv: "P-384".into(),
                ..good.clone()
            },
            Jwk {
                alg: "HS256".into(),
                ..good.clone()
            },
            Jwk {
                key_use: "enc".into(),
                ..good.clone()
            },
            // Not a point on the curve.
            Jwk {
                y: good.x.clone(),
                ..good.clone()
            },
            Jwk {
                x: "AAAA".into(),
                ..good.clone()
            },
        ];
        for bad in variants {
            let public = PublicKeys::from_jwks(&Jwks {
                keys: vec![bad.clone()],
            });
            assert!(!public.knows(&good.kid), "{bad:?}");
            assert!(public.is_empty());
        }
        assert!(
            PublicKeys::from_jwks(&Jwks {
                keys: vec![good.clone()]
            })
            .knows(&good.kid)
        );
    }
}
