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

/// How a secret setting shows in `Debug`: whether it is set, never its value.
pub fn redacted(secret: &Option<String>) -> &'static str {
    match secret {
        Some(_) => "Some(<redacted>)",
        None => "None",
    }
}

/// The key that encrypts secrets at rest (signing keys), 256 bits.
///
/// Given (`CONNECT_MANAGER_MASTER_KEY` or `_FILE`) or made on first start into the key file, as
/// text ([`MasterKeyText`]): exactly 32 bytes in base64 or hex are the key itself (the key file
/// holds 32 random bytes); anything else is a passphrase, stretched with Argon2id under a salt
/// kept in the database ([`Kdf`]), so that a dump does not let a passphrase be searched for at
/// the speed of SHA-256.
///
/// Installations made before: the key was SHA-256 of the text under a label and its check value
/// had no version ([`MasterKey::legacy_v1`], [`is_legacy_check`]); start-up opens them with the
/// old derivation and re-seals everything under the new key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The master key as the operator gives it.
#[derive(Clone)]
pub enum MasterKeyText {
    /// 32 bytes, given in base64 (standard or URL-safe, padded or not) or hex.
    Raw([u8; 32]),
    /// Anything else of [`MasterKey::MIN_CHARS`]+ characters: stretched with Argon2id.
    Passphrase(String),
}

impl std::fmt::Debug for MasterKeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MasterKeyText::Raw(_) => "MasterKeyText::Raw(..)",
            MasterKeyText::Passphrase(_) => "MasterKeyText::Passphrase(..)",
        })
    }
}

impl MasterKeyText {
    /// Reads a key as given (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.chars().count() < MasterKey::MIN_CHARS {
            return Err(Error::invalid_field(
                "master key",
                format_args!("must be at least {} characters", MasterKey::MIN_CHARS),
            ));
        }
        Ok(match decode_32_bytes(text) {
            Some(bytes) => MasterKeyText::Raw(bytes),
            None => MasterKeyText::Passphrase(text.to_owned()),
        })
    }

    /// Whether deriving the key needs a [`Kdf`] (a salt) from the database.
    pub fn needs_kdf(&self) -> bool {
        matches!(self, MasterKeyText::Passphrase(_))
    }

    /// The key. A passphrase needs `kdf`; slow on purpose then (Argon2id): call it off the async
    /// runtime.
    pub fn derive(&self, kdf: Option<&Kdf>) -> Result<MasterKey> {
        match (self, kdf) {
            (MasterKeyText::Raw(bytes), _) => Ok(MasterKey(*bytes)),
            (MasterKeyText::Passphrase(text), Some(kdf)) => kdf.derive(text.as_bytes()),
            (MasterKeyText::Passphrase(_), None) => Err(Error::internal(
                "a passphrase master key needs its salt (setting master_key_kdf)",
            )),
        }
    }
}

/// 32 bytes from hex (64 digits) or base64 (any alphabet, padded or not), else `None`.
fn decode_32_bytes(text: &str) -> Option<[u8; 32]> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = [0u8; 32];
        for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
            out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
        }
        return Some(out);
    }
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
}

/// How a passphrase becomes the key: Argon2id with these costs and a random salt, stored in the
/// database as `argon2id$m=<KiB>,t=<passes>,p=<lanes>$<salt base64url>` (setting
/// `master_key_kdf`). Not secret: the passphrase is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kdf {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    pub salt: Vec<u8>,
}

impl Kdf {
    /// 64 MiB and 3 passes: each guess at a passphrase costs an attacker about as much as a
    /// start costs the service (a fraction of a second, once per start).
    pub fn generate() -> Kdf {
        Kdf {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
            salt: random_bytes::<16>().to_vec(),
        }
    }

    pub fn encode(&self) -> String {
        format!(
            "argon2id$m={},t={},p={}${}",
            self.m_kib,
            self.t,
            self.p,
            URL_SAFE_NO_PAD.encode(&self.salt)
        )
    }

    pub fn parse(s: &str) -> Result<Kdf> {
        let bad = || Error::internal("the stored master key salt (master_key_kdf) is malformed");
        let mut parts = s.split('$');
        if parts.next() != Some("argon2id") {
            return Err(bad());
        }
        let (mut m, mut t, mut p) = (None, None, None);
        for kv in parts.next().ok_or_else(bad)?.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            let v: u32 = v.parse().map_err(|_| bad())?;
            match k {
                "m" => m = Some(v),
                "t" => t = Some(v),
                "p" => p = Some(v),
                _ => return Err(bad()),
            }
        }
        let salt = URL_SAFE_NO_PAD
            .decode(parts.next().ok_or_else(bad)?)
            .map_err(|_| bad())?;
        if parts.next().is_some() || salt.len() < 16 {
            return Err(bad());
        }
        Ok(Kdf {
            m_kib: m.ok_or_else(bad)?,
            t: t.ok_or_else(bad)?,
            p: p.ok_or_else(bad)?,
            salt,
        })
    }

    fn derive(&self, passphrase: &[u8]) -> Result<MasterKey> {
        let params =
            argon2::Params::new(self.m_kib, self.t, self.p, Some(32)).map_err(Error::internal)?;
        let mut key = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(passphrase, &self.salt, &mut key)
            .map_err(Error::internal)?;
        Ok(MasterKey(key))
    }
}

/// Whether a stored check value is the format of installations made before the key was
/// stretched (64 hex digits, no version prefix).
pub fn is_legacy_check(check: &str) -> bool {
    !check.starts_with(CHECK_V2) && check.len() == 64
}

const CHECK_V2: &str = "v2:";
const SEALED_V2: &str = "v2.";

impl MasterKey {
    pub const MIN_CHARS: usize = 32;

    /// A random key (tests, benchmarks).
    pub fn random() -> Self {
        MasterKey(random_bytes::<32>())
    }

    /// The derivation of installations made before: SHA-256 of the text under a label. Only to
    /// open such an installation once and re-seal it.
    pub fn legacy_v1(text: &str) -> Result<Self> {
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

    /// Text for a new key file: 32 random bytes, base64url.
    pub fn generate_text() -> String {
        URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    }

    /// The check value of the legacy derivation (installations made before).
    pub fn legacy_check_value(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"connect-manager master key check v1\0");
        h.update(self.0);
        hex(&h.finalize())
    }

    /// A value stored in the database on first start, so a start with another master key is
    /// refused with a clear message instead of failing later to decrypt. It says nothing about
    /// the key: 256 random bits, or a passphrase stretched by Argon2id.
    pub fn check_value(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"connect-manager master key check v2\0");
        h.update(self.0);
        format!("{CHECK_V2}{}", hex(&h.finalize()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.0).expect("32-byte key")
    }

    /// AES-256-GCM with a random 96-bit nonce, authenticating `aad` (what the value belongs to:
    /// moved elsewhere, it no longer opens). Output `v2.` then base64url of `nonce || ciphertext`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> String {
        let nonce_bytes = random_bytes::<12>();
        let nonce = Nonce::try_from(&nonce_bytes[..]).expect("12-byte nonce");
        let mut out = nonce_bytes.to_vec();
        out.extend(
            self.cipher()
                .encrypt(
                    &nonce,
                    aes_gcm::aead::Payload {
                        msg: plaintext,
                        aad,
                    },
                )
                .expect("AES-GCM encryption of an in-memory buffer"),
        );
        format!("{SEALED_V2}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`Self::seal`] made with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &str) -> Result<Vec<u8>> {
        let body = sealed.strip_prefix(SEALED_V2).ok_or_else(sealed_fail)?;
        self.open_raw(aad, body)
    }

    /// Opens a value sealed by installations made before (no prefix, no associated data).
    pub fn open_legacy(&self, sealed: &str) -> Result<Vec<u8>> {
        self.open_raw(b"", sealed)
    }

    fn open_raw(&self, aad: &[u8], body: &str) -> Result<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| sealed_fail())?;
        if raw.len() < 12 {
            return Err(sealed_fail());
        }
        let nonce = Nonce::try_from(&raw[..12]).map_err(|_| sealed_fail())?;
        self.cipher()
            .decrypt(
                &nonce,
                aes_gcm::aead::Payload {
                    msg: &raw[12..],
                    aad,
                },
            )
            .map_err(|_| sealed_fail())
    }
}

fn sealed_fail() -> Error {
    Error::internal("a value sealed under the master key does not open")
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
        assert!(MasterKeyText::parse("short").is_err());
        let k = MasterKey::random();
        let sealed = k.seal(b"kid-1", b"private key");
        assert!(sealed.starts_with("v2."));
        assert_eq!(k.open(b"kid-1", &sealed).unwrap(), b"private key");
        assert!(
            k.open(b"kid-2", &sealed).is_err(),
            "bound to its associated data"
        );
        assert!(k.open_legacy(&sealed).is_err());
        let other = MasterKey::random();
        assert!(other.open(b"kid-1", &sealed).is_err());
        assert_ne!(k.check_value(), other.check_value());
        assert!(!is_legacy_check(&k.check_value()));
        assert!(is_legacy_check(&k.legacy_check_value()));
    }

    #[test]
    fn master_key_text_32_bytes_are_the_key_anything_else_a_passphrase() {
        let bytes = random_bytes::<32>();
        let forms = [
            URL_SAFE_NO_PAD.encode(bytes),
            base64::engine::general_purpose::STANDARD.encode(bytes),
            hex(&bytes),
        ];
        for form in forms {
            match MasterKeyText::parse(&format!(" {form}\n")).unwrap() {
                MasterKeyText::Raw(b) => assert_eq!(b, bytes, "{form}"),
                other => panic!("{form}: {other:?}"),
            }
        }
        let generated = MasterKeyText::parse(&MasterKey::generate_text()).unwrap();
        assert!(!generated.needs_kdf(), "the key file holds the key itself");
        let phrase = MasterKeyText::parse("correct horse battery staple, a passphrase").unwrap();
        assert!(phrase.needs_kdf());
        assert!(phrase.derive(None).is_err());
    }

    #[test]
    fn master_key_passphrase_is_stretched_with_argon2id_under_a_stored_salt() {
        let phrase = MasterKeyText::parse("correct horse battery staple, a passphrase").unwrap();
        let kdf = Kdf {
            m_kib: 1024,
            ..Kdf::generate()
        };
        let parsed = Kdf::parse(&kdf.encode()).unwrap();
        assert_eq!(parsed, kdf);
        let a = phrase.derive(Some(&kdf)).unwrap();
        assert_eq!(
            a.0,
            phrase.derive(Some(&parsed)).unwrap().0,
            "deterministic"
        );
        let other_salt = Kdf {
            m_kib: 1024,
            ..Kdf::generate()
        };
        assert_ne!(a.0, phrase.derive(Some(&other_salt)).unwrap().0);
        // Not the old single SHA-256 of the text.
        let legacy = MasterKey::legacy_v1("correct horse battery staple, a passphrase").unwrap();
        assert_ne!(a.0, legacy.0);
        // It is Argon2id (v0x13) with the stored costs and salt, computed independently.
        let mut expected = [0u8; 32];
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(1024, 3, 1, Some(32)).unwrap(),
        )
        .hash_password_into(
            b"correct horse battery staple, a passphrase",
            &kdf.salt,
            &mut expected,
        )
        .unwrap();
        assert_eq!(a.0, expected);
        assert!(Kdf::parse("argon2id$m=1,t=1$c2FsdA").is_err());
        assert_eq!(Kdf::generate().m_kib, 65536);
    }
}
