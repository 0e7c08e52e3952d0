//! T1: the claims of a token, and the one way to make a new token's ([`Claims::new`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::id::random_bytes;
use crate::scope::TokenScope;
use crate::timestamp::Timestamp;

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

impl Claims {
    /// T1: the claims of a new token for server `server_id`, issued by `issuer` at `now`, reaching
    /// `scope` and expiring `lifetime` seconds later (never, when `None`). Its ID (`jti`) is new,
    /// its `1password.com/token` random; `aud` and `1password.com/fts` are Connect's.
    pub fn new(
        issuer: &str,
        account_id: &str,
        server_id: &str,
        scope: &TokenScope,
        now: Timestamp,
        lifetime: Option<i64>,
    ) -> Claims {
        Claims {
            iss: issuer.to_owned(),
            aud: vec![AUDIENCE.into()],
            sub: server_id.to_owned(),
            jti: crate::id::new_lower(),
            iat: now.unix_seconds(),
            exp: lifetime.map(|s| now.plus_seconds(s).unix_seconds()),
            account_uuid: account_id.to_owned(),
            token: random_token_value(),
            features: vec![FEATURE_VAULT_ACCESS.into()],
            vaults: scope
                .iter()
                .map(|(u, a)| VaultScope { u: u.to_owned(), a })
                .collect(),
        }
    }
}

/// 32 random URL-safe characters for the `1password.com/token` claim.
pub fn random_token_value() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<24>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{READ, WRITE};

    #[test]
    fn t1_new_claims_name_the_server_scope_and_lifetime_with_connects_audience_and_features() {
        let scope = TokenScope::new([("v2".to_owned(), READ), ("v1".to_owned(), WRITE)]).unwrap();
        let now = Timestamp::now();
        let c = Claims::new(
            "https://cm.example",
            "ACCOUNT",
            "SERVER",
            &scope,
            now,
            Some(90),
        );
        assert_eq!(c.iss, "https://cm.example");
        assert_eq!(c.account_uuid, "ACCOUNT");
        assert_eq!(c.sub, "SERVER");
        assert_eq!(c.aud, [AUDIENCE]);
        assert_eq!(c.features, [FEATURE_VAULT_ACCESS]);
        assert!(crate::id::is_lower(&c.jti), "{}", c.jti);
        assert_eq!(c.token.len(), 32);
        assert_eq!(
            (c.iat, c.exp),
            (now.unix_seconds(), Some(now.unix_seconds() + 90))
        );
        assert_eq!(
            c.vaults,
            [
                VaultScope {
                    u: "v1".into(),
                    a: WRITE
                },
                VaultScope {
                    u: "v2".into(),
                    a: READ
                },
            ]
        );
        // Never the same token twice; no `exp` when it does not expire.
        let d = Claims::new("https://cm.example", "ACCOUNT", "SERVER", &scope, now, None);
        assert_ne!((&c.jti, &c.token), (&d.jti, &d.token));
        assert_eq!(d.exp, None);
    }
}
