//! Secrets and how they are kept: API keys (SHA-256, looked up by hash and compared in constant
//! time), server secrets (argon2id verifier, C2) and the master key that encrypts data at rest.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::id::random_bytes;
use crate::{Error, Result};

/// The shortest bootstrap key accepted (SPEC "Running").
pub const MIN_BOOTSTRAP_KEY_CHARS: usize = 32;

/// A new API key: a prefix that makes leaked keys easy to find with secret scanners, then 256
/// random bits.
pub fn new_api_key() -> String {
    format!("cmk_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// What the database keeps of an API key.
pub fn api_key_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Constant-time equality of two strings of secret material.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new server secret: 256 random bits, URL-safe.
pub fn new_server_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// C2: the argon2id verifier (PHC string) the service keeps instead of the secret. Slow on purpose:
/// call it off the async runtime.
pub fn server_secret_verifier(secret: &str) -> Result<String> {
    use argon2::password_hash::PasswordHasher;
    // OWASP's argon2id settings with 12 MiB and 3 passes: as costly to attack as its 19 MiB and
    // 2 passes, with less memory per run. Verification reads the settings from the PHC string.
    let params = argon2::Params::new(12 * 1024, 3, 1, None).map_err(Error::internal)?;
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(Error::internal)
}

/// C2: whether `secret` matches `verifier`. Slow on purpose: call it off the async runtime.
pub fn verify_server_secret(secret: &str, verifier: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    match PasswordHash::new(verifier) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A fast, non-reversible fingerprint of a secret, for in-memory caches (never stored).
pub fn fingerprint(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key that encrypts secrets at rest (signing keys). Given as any string of 32+ characters
/// (`CONNECT_MANAGER_MASTER_KEY`) or made on first start into a key file; the AES-256 key is
/// SHA-256 of it under a domain label.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub const MIN_CHARS: usize = 32;

    pub fn from_text(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.chars().count() < Self::MIN_CHARS {
            return Err(Error::invalid_field(
                "master key",
                format_args!("must be at least {} characters", Self::MIN_CHARS),
            ));
        }
        let mut h = Sha256::new();
        h.update(b"connect-manager master key v1\0");
        h.update(text.as_bytes());
        Ok(MasterKey(h.finalize().into()))
    }

    /// Text for a new key file: 256 random bits.
    pub fn generate_text() -> String {
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    }

    /// A value stored in the database on first start, so a start with another master key is
    /// refused with a clear message instead of failing later to decrypt.
    pub fn check_value(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"connect-manager master key check v1\0");
        h.update(self.0);
        hex(&h.finalize())
    }

    /// AES-256-GCM with a random 96-bit nonce; output is `nonce || ciphertext`, base64url.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let cipher = Aes256Gcm::new_from_slice(&self.0).expect("32-byte key");
        let nonce_bytes = random_bytes::<12>();
        let nonce = Nonce::try_from(&nonce_bytes[..]).expect("12-byte nonce");
        let mut out = nonce_bytes.to_vec();
        out.extend(
            cipher
                .encrypt(&nonce, plaintext)
                .expect("AES-GCM encryption of an in-memory buffer"),
        );
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>> {
        let fail = || Error::internal("a value sealed under the master key does not open");
        let raw = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| fail())?;
        if raw.len() < 12 {
            return Err(fail());
        }
        let cipher = Aes256Gcm::new_from_slice(&self.0).expect("32-byte key");
        let nonce = Nonce::try_from(&raw[..12]).map_err(|_| fail())?;
        cipher.decrypt(&nonce, &raw[12..]).map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c2_server_secret_verifier_accepts_only_the_secret() {
        let secret = new_server_secret();
        let v = server_secret_verifier(&secret).unwrap();
        assert!(v.starts_with("$argon2id$"));
        assert!(!v.contains(&secret));
        assert!(verify_server_secret(&secret, &v));
        assert!(!verify_server_secret("wrong", &v));
        assert!(!verify_server_secret(&secret, "garbage"));
    }

    #[test]
    fn api_keys_are_random_and_hashed() {
        let k = new_api_key();
        assert!(k.starts_with("cmk_") && k.len() > 40);
        assert_ne!(k, new_api_key());
        let h = api_key_hash(&k);
        assert_eq!(h.len(), 64);
        assert!(ct_eq(&h, &api_key_hash(&k)));
        assert!(!ct_eq(&h, &api_key_hash("other")));
    }

    #[test]
    fn master_key_seals_and_detects_tampering() {
        assert!(MasterKey::from_text("short").is_err());
        let k = MasterKey::from_text(&MasterKey::generate_text()).unwrap();
        let sealed = k.seal(b"private key");
        assert_eq!(k.open(&sealed).unwrap(), b"private key");
        let other = MasterKey::from_text(&MasterKey::generate_text()).unwrap();
        assert!(other.open(&sealed).is_err());
        assert_ne!(k.check_value(), other.check_value());
    }
}
