//! T3: signing keys. Stored sealed under the master key ([`SealedKey`]), opened into a
//! [`KeySet`] whose newest key signs and every key verifies.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;

use super::claims::Claims;
use super::jwks::{Jwk, PublicKeys};
use crate::id::random_bytes;
use crate::secret::MasterKey;
use crate::{Error, Result};

/// A P-256 signing key as stored: its private half sealed under the master key, bound (AES-GCM
/// associated data) to its `kid` and its public half, which is kept beside it as JWK coordinates.
/// Nothing here is trusted as read: [`KeySet::open`] opens the private half and derives the
/// public key from it, so a row planted without the master key never verifies a token.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub kid: String,
    /// PKCS#8 DER, sealed by [`MasterKey::seal`] with [`key_binding`] as associated data.
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

/// The associated data a signing key's private half is sealed with: its ID and public key.
pub fn key_binding(kid: &str, x: &str, y: &str) -> Vec<u8> {
    format!("connect-manager signing key v2\0{kid}\0{x}\0{y}").into_bytes()
}

/// The JWK coordinates of a private key's public half.
fn public_coordinates(signing: &p256::ecdsa::SigningKey) -> (String, String) {
    let point = signing.verifying_key().to_sec1_point(false);
    (
        URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point")),
        URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point")),
    )
}

fn parse_private(der: &[u8]) -> Option<p256::ecdsa::SigningKey> {
    use p256::pkcs8::DecodePrivateKey;
    p256::ecdsa::SigningKey::from_pkcs8_der(der).ok()
}

/// Seals a PKCS#8 private key as `kid`, its public half derived from it.
pub fn seal_key(master: &MasterKey, kid: &str, der: &[u8]) -> Result<SealedKey> {
    let signing = parse_private(der)
        .ok_or_else(|| Error::internal(format!("signing key {kid}: not a P-256 key")))?;
    let (x, y) = public_coordinates(&signing);
    Ok(SealedKey {
        kid: kid.to_owned(),
        sealed_private: master.seal(&key_binding(kid, &x, &y), der),
        x,
        y,
    })
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
    seal_key(master, &crate::id::new_lower(), der.as_bytes()).expect("a key just made")
}

/// Re-seals a key stored by installations made before (sealed without associated data, under
/// the legacy master key) under `new`, with its public half derived from the private half (the
/// stored coordinates are not trusted).
pub fn reseal_legacy_key(old: &MasterKey, new: &MasterKey, key: &SealedKey) -> Result<SealedKey> {
    let der = old.open_legacy(&key.sealed_private).map_err(|_| {
        Error::internal(format!(
            "signing key {}: its private half does not open under the master key",
            key.kid
        ))
    })?;
    seal_key(new, &key.kid, &der)
}

/// The keys in memory: the newest signs, every one verifies.
pub struct KeySet {
    signing: Option<(String, EncodingKey)>,
    verifying: PublicKeys,
    /// The public keys, newest first, as derived from the private halves.
    public: Vec<Jwk>,
}

impl KeySet {
    /// Opens every key of `keys` (newest first) with the master key; refuses if any does not
    /// open, is not bound to its `kid` and public half, or is not a P-256 key.
    pub fn open(master: &MasterKey, keys: &[SealedKey]) -> Result<Self> {
        let (set, mut refused) = Self::open_skipping(master, keys);
        match refused.is_empty() {
            true => Ok(set),
            false => Err(refused.remove(0)),
        }
    }

    /// Like [`Self::open`], but leaves out the keys that fail (each reported), for a running
    /// service that must not stop verifying good tokens because a bad row appeared.
    pub fn open_skipping(master: &MasterKey, keys: &[SealedKey]) -> (Self, Vec<Error>) {
        let mut set = KeySet {
            signing: None,
            verifying: PublicKeys::default(),
            public: Vec::new(),
        };
        let mut refused = Vec::new();
        for key in keys {
            match open_one(master, key) {
                Ok((signing, jwk)) => {
                    if set.verifying.insert(&jwk).is_err() {
                        refused.push(Error::internal(format!(
                            "signing key {}: bad public key",
                            key.kid
                        )));
                        continue;
                    }
                    if set.signing.is_none() {
                        let der = signing
                            .to_pkcs8_der()
                            .expect("a P-256 key encodes as PKCS#8");
                        set.signing =
                            Some((key.kid.clone(), EncodingKey::from_ec_der(der.as_bytes())));
                    }
                    set.public.push(jwk);
                }
                Err(e) => refused.push(e),
            }
        }
        (set, refused)
    }

    /// The public keys, newest first.
    pub fn public_keys(&self) -> &[Jwk] {
        &self.public
    }

    /// The IDs of the keys, newest first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.public.iter().map(|k| k.kid.as_str())
    }

    pub fn signing_kid(&self) -> Option<&str> {
        self.signing.as_ref().map(|(kid, _)| kid.as_str())
    }

    pub fn knows(&self, kid: &str) -> bool {
        self.verifying.knows(kid)
    }

    /// The public keys that verify, as a JWKS reader would build them.
    pub fn verifying(&self) -> &PublicKeys {
        &self.verifying
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

    /// Verifies an ES256 token signed by one of these keys for our audience (see
    /// [`PublicKeys::verify`]: the gateway verifies the same way from the published JWKS).
    pub fn verify(&self, token: &str) -> Option<Claims> {
        self.verifying.verify(token)
    }

    /// The `kid` a token's header names, if it parses.
    pub fn kid_of(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).ok()?.kid
    }
}

/// Opens one stored key: the private half must open with its `kid` and stored public half as
/// associated data, and the public half must be the one the private half gives.
fn open_one(master: &MasterKey, key: &SealedKey) -> Result<(p256::ecdsa::SigningKey, Jwk)> {
    let refuse = |why: &str| {
        Error::internal(format!(
            "signing key {}: {why}; it was not made by this service under this master key \
             (was the signing_keys table changed?)",
            key.kid
        ))
    };
    let der = master
        .open(&key_binding(&key.kid, &key.x, &key.y), &key.sealed_private)
        .map_err(|_| refuse("its private half does not open bound to its ID and public key"))?;
    let signing = parse_private(&der).ok_or_else(|| refuse("not a P-256 private key"))?;
    let (x, y) = public_coordinates(&signing);
    if x != key.x || y != key.y {
        return Err(refuse("its public key is not its private key's"));
    }
    let jwk = SealedKey {
        kid: key.kid.clone(),
        sealed_private: String::new(),
        x,
        y,
    }
    .jwk();
    Ok((signing, jwk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::fixtures::{claims, forge, private_der};

    #[test]
    fn t1_tokens_sign_and_verify_with_es256() {
        let master = MasterKey::random();
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

    #[test]
    fn defect_planted_signing_key_rows_never_open() {
        let master = MasterKey::random();
        let good = generate_key(&master);
        let other = generate_key(&master);
        let c = claims();
        let planted_kid = crate::id::new_lower();
        let (forged, attacker) = forge(&planted_kid, &c);

        // The attacker's public half, with sealed garbage or a sealed blob of another key.
        let garbage = SealedKey {
            kid: planted_kid.clone(),
            sealed_private: master.seal(b"", b"garbage"),
            x: attacker.x.clone(),
            y: attacker.y.clone(),
        };
        let borrowed_blob = SealedKey {
            sealed_private: good.sealed_private.clone(),
            ..garbage.clone()
        };
        // A good key's blob under a new ID with its own public half: bound to the old ID.
        let moved = SealedKey {
            kid: planted_kid.clone(),
            ..good.clone()
        };
        // A good key's row with its public half replaced by the attacker's.
        let swapped = SealedKey {
            x: attacker.x.clone(),
            y: attacker.y.clone(),
            ..other.clone()
        };
        // A blob sealed without associated data (the format before), under the right key.
        let unbound = SealedKey {
            kid: planted_kid.clone(),
            sealed_private: master.seal(b"", &private_der(&master, &good)),
            ..good.clone()
        };
        for planted in [&garbage, &borrowed_blob, &moved, &swapped, &unbound] {
            let keys = [planted.clone(), good.clone()];
            let err = KeySet::open(&master, &keys).err().expect("refused");
            assert!(format!("{err:?}").contains(&planted.kid), "{err:?}");
            let (set, refused) = KeySet::open_skipping(&master, &keys);
            assert_eq!(refused.len(), 1);
            assert!(!set.knows(&planted.kid) || planted.kid == good.kid);
            assert!(
                set.verify(&forged).is_none(),
                "a forged token never verifies"
            );
            assert_eq!(set.signing_kid(), Some(good.kid.as_str()));
            assert_eq!(set.public_keys().len(), 1);
        }
        // The good keys open, and publish the public halves their private halves give.
        let set = KeySet::open(&master, &[other.clone(), good.clone()]).unwrap();
        assert_eq!(set.public_keys()[0], other.jwk());
        assert_eq!(
            set.kids().collect::<Vec<_>>(),
            vec![other.kid.as_str(), good.kid.as_str()]
        );
    }

    #[test]
    fn legacy_keys_reseal_bound_to_the_public_key_their_private_half_gives() {
        let old = MasterKey::legacy_v1(&"m".repeat(40)).unwrap();
        let new = MasterKey::random();
        let fresh = generate_key(&new);
        let der = private_der(&new, &fresh);
        // As installations made before stored it: no associated data, columns as written.
        let legacy = SealedKey {
            sealed_private: URL_SAFE_NO_PAD.encode({
                let sealed = old.seal(b"", &der);
                URL_SAFE_NO_PAD
                    .decode(sealed.strip_prefix("v2.").unwrap())
                    .unwrap()
            }),
            ..fresh.clone()
        };
        assert!(KeySet::open(&new, std::slice::from_ref(&legacy)).is_err());
        let resealed = reseal_legacy_key(&old, &new, &legacy).unwrap();
        assert_eq!((&resealed.x, &resealed.y), (&fresh.x, &fresh.y));
        KeySet::open(&new, &[resealed]).unwrap();
        // A legacy row whose columns were changed is resealed with the true public key.
        let lying = SealedKey {
            x: generate_key(&new).x,
            ..legacy.clone()
        };
        assert_eq!(reseal_legacy_key(&old, &new, &lying).unwrap().x, fresh.x);
        assert!(
            reseal_legacy_key(&new, &new, &legacy).is_err(),
            "wrong key: refused"
        );
    }
}
