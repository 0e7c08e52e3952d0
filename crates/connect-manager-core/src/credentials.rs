//! C1: the credentials file, `1password-credentials.json`. Same top level as 1Password's
//! version-2 file, so tooling that mounts it or passes it base64 in `OP_SESSION` handles it
//! unchanged. `encCredentials` is AES-256-GCM under `uniqueKey` and holds what the holder needs to
//! authenticate as the server: its ID, its secret and the service URL.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::id::{new_lower, random_bytes};
use crate::{Error, Result};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialsFile {
    pub verifier: CredentialsVerifier,
    #[serde(rename = "encCredentials")]
    pub enc_credentials: EncCredentials,
    /// Always "2".
    pub version: String,
    #[serde(rename = "deviceUuid")]
    pub device_uuid: String,
    #[serde(rename = "uniqueKey")]
    pub unique_key: UniqueKey,
}

impl std::fmt::Debug for CredentialsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialsFile(..)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CredentialsVerifier {
    pub salt: String,
    #[serde(rename = "localHash")]
    pub local_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EncCredentials {
    pub kid: String,
    /// Always "A256GCM".
    pub enc: String,
    pub cty: String,
    pub iv: String,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UniqueKey {
    /// Always "A256GCM".
    pub alg: String,
    pub ext: bool,
    pub k: String,
    pub key_ops: Vec<String>,
    /// Always "oct".
    pub kty: String,
    pub kid: String,
}

/// What `encCredentials` decrypts to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsPayload {
    pub server_id: String,
    pub secret: String,
    pub url: String,
}

impl std::fmt::Debug for CredentialsPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsPayload")
            .field("server_id", &self.server_id)
            .field("secret", &"<hidden>")
            .field("url", &self.url)
            .finish()
    }
}

const CTY: &str = "b5+jwk+json";

fn local_hash(salt: &[u8], secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Makes a new credentials file for `payload` (a new secret is made by the caller).
pub fn seal(payload: &CredentialsPayload) -> CredentialsFile {
    let key = random_bytes::<32>();
    let iv = random_bytes::<12>();
    let kid = new_lower();
    let cipher = Aes256Gcm::new_from_slice(&key).expect("32-byte key");
    let plaintext = serde_json::to_vec(payload).expect("payload serialises");
    let nonce = Nonce::try_from(&iv[..]).expect("12-byte nonce");
    let data = cipher
        .encrypt(&nonce, plaintext.as_slice())
        .expect("AES-GCM encryption of an in-memory buffer");
    let salt = random_bytes::<16>();
    CredentialsFile {
        verifier: CredentialsVerifier {
            salt: URL_SAFE_NO_PAD.encode(salt),
            local_hash: local_hash(&salt, &payload.secret),
        },
        enc_credentials: EncCredentials {
            kid: kid.clone(),
            enc: "A256GCM".into(),
            cty: CTY.into(),
            iv: URL_SAFE_NO_PAD.encode(iv),
            data: URL_SAFE_NO_PAD.encode(data),
        },
        version: "2".into(),
        device_uuid: new_lower(),
        unique_key: UniqueKey {
            alg: "A256GCM".into(),
            ext: true,
            k: URL_SAFE_NO_PAD.encode(key),
            key_ops: vec!["decrypt".into(), "encrypt".into()],
            kty: "oct".into(),
            kid,
        },
    }
}

/// Decrypts a credentials file (C1; `connect-manager credentials show`).
pub fn open(file: &CredentialsFile) -> Result<CredentialsPayload> {
    let bad = |what: &str| Error::bad_request(format!("credentials file: {what}"));
    if file.version != "2" || file.enc_credentials.enc != "A256GCM" || file.unique_key.kty != "oct"
    {
        return Err(bad("not a version-2 A256GCM credentials file"));
    }
    let key = URL_SAFE_NO_PAD
        .decode(&file.unique_key.k)
        .map_err(|_| bad("uniqueKey.k is not base64url"))?;
    let iv = URL_SAFE_NO_PAD
        .decode(&file.enc_credentials.iv)
        .map_err(|_| bad("encCredentials.iv is not base64url"))?;
    let data = URL_SAFE_NO_PAD
        .decode(&file.enc_credentials.data)
        .map_err(|_| bad("encCredentials.data is not base64url"))?;
    let cipher = Aes256Gcm::new_from_slice(&key).map_err(|_| bad("uniqueKey.k is not 256 bits"))?;
    let nonce = Nonce::try_from(&iv[..]).map_err(|_| bad("encCredentials.iv is not 96 bits"))?;
    let plaintext = cipher
        .decrypt(&nonce, data.as_slice())
        .map_err(|_| bad("encCredentials does not decrypt under uniqueKey"))?;
    let payload: CredentialsPayload = serde_json::from_slice(&plaintext)
        .map_err(|_| bad("encCredentials holds no credentials"))?;
    let salt = URL_SAFE_NO_PAD
        .decode(&file.verifier.salt)
        .map_err(|_| bad("verifier.salt is not base64url"))?;
    if !crate::secret::ct_eq(
        &local_hash(&salt, &payload.secret),
        &file.verifier.local_hash,
    ) {
        return Err(bad("verifier does not match the credentials"));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c1_credentials_file_has_the_version_2_shape_and_opens() {
        let payload = CredentialsPayload {
            server_id: crate::id::new_upper(),
            secret: crate::secret::new_server_secret(),
            url: "http://localhost:8080".into(),
        };
        let file = seal(&payload);
        let json = serde_json::to_value(&file).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "deviceUuid",
                "encCredentials",
                "uniqueKey",
                "verifier",
                "version"
            ]
        );
        assert_eq!(json["version"], "2");
        assert_eq!(json["uniqueKey"]["kty"], "oct");
        assert_eq!(json["encCredentials"]["enc"], "A256GCM");
        assert!(json["verifier"]["localHash"].is_string());
        assert!(!json.to_string().contains(&payload.secret));
        assert_eq!(open(&file).unwrap(), payload);

        let mut tampered = file.clone();
        tampered.enc_credentials.data.replace_range(0..2, "AA");
        assert!(open(&tampered).is_err() || tampered == file);
        assert!(!format!("{payload:?}").contains(&payload.secret));
    }
}
