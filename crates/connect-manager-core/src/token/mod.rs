//! T1, T3: tokens are ES256 JWTs, claims mirroring Connect's, signed by P-256 keys that are kept
//! encrypted under the master key. This module signs and verifies; it knows nothing of storage.
//!
//! * [`claims`]: what a token says (T1), and [`Claims::new`], the one way to make a new token's.
//! * [`keys`]: signing keys as stored (sealed under the master key) and in memory ([`KeySet`]):
//!   the newest signs, every one verifies.
//! * [`jwks`]: public keys as a JWKS publishes them (T3) and [`PublicKeys`], the one
//!   verification, shared by the manager and the gateway.

pub mod claims;
pub mod jwks;
pub mod keys;

pub use claims::{AUDIENCE, Claims, FEATURE_VAULT_ACCESS, VaultScope, random_token_value};
pub use jwks::{Jwk, Jwks, PublicKeys};
pub use keys::{KeySet, SealedKey, generate_key, key_binding, reseal_legacy_key, seal_key};

/// What the tests of the three parts share: a token's claims, and a token forged with a key
/// this service never made.
#[cfg(test)]
mod fixtures {
    use super::*;
    use crate::secret::MasterKey;

    pub fn claims() -> Claims {
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

    /// Signs `claims` with a key the attacker made (not sealed by this service), naming `kid`.
    pub fn forge(kid: &str, claims: &Claims) -> (String, SealedKey) {
        let attacker_master = MasterKey::random();
        let made = generate_key(&attacker_master);
        let der = private_der(&attacker_master, &made);
        let attacker = seal_key(&attacker_master, kid, &der).unwrap();
        let set = KeySet::open(&attacker_master, std::slice::from_ref(&attacker)).unwrap();
        (set.sign(claims).unwrap(), attacker)
    }

    pub fn private_der(master: &MasterKey, key: &SealedKey) -> Vec<u8> {
        master
            .open(&key_binding(&key.kid, &key.x, &key.y), &key.sealed_private)
            .unwrap()
    }
}
