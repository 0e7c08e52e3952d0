//! Workload identity (issue 18): trusted issuers (`/v1/issuers…`, owners), a server's trust
//! policies (`/v1/connect/servers/{server}/trust-policies…`, the server's managers) and the RFC
//! 8693 token exchange (`POST /v1/token-exchange`, form-encoded, no other credential).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Timestamp;
use crate::access::VaultAcl;
use crate::api::tokens::TokenVault;

/// RFC 8693's `grant_type`.
pub const GRANT_TYPE_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The `subject_token_type` accepted: a JWT (an OIDC ID token or a JWT access token).
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The `issued_token_type` of the answer (and the `requested_token_type` accepted besides
/// [`TOKEN_TYPE_JWT`]): an access token for a Connect server.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// `POST /v1/issuers`: trust an OIDC issuer (owners).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIssuer {
    /// The issuer URL exactly as its tokens carry it in `iss` (`https://token.actions.githubusercontent.com`).
    /// `https` only; `http` on a loopback address when `CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS=true`.
    #[schema(
        pattern = r"^https://[^\s\x00-\x1F\x7F-\x9F/?#@]{1,200}(/[^\s\x00-\x1F\x7F-\x9F?#]{0,300})?$"
    )]
    pub issuer: String,
    #[schema(value_type = crate::name::Name)]
    pub name: String,
}

/// A trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Issuer {
    #[schema(pattern = "^[0-9a-z]{26}$")]
    pub id: String,
    pub name: String,
    /// The issuer URL (`iss`).
    pub issuer: String,
    pub created_at: Timestamp,
    /// The user who added it.
    pub creator_id: String,
}

/// `POST /v1/connect/servers/{server}/trust-policies`: who may exchange a token of `issuer`
/// for a token of the server, and what that token reaches.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTrustPolicy {
    #[schema(value_type = crate::name::Name)]
    pub name: String,
    /// A trusted issuer: its ID, name or URL.
    pub issuer: String,
    /// The subject token's `aud` must contain this.
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]{1,256}$")]
    pub audience: String,
    /// The subject token's `sub`: exact, or with `*` globs (`repo:acme/api:ref:refs/heads/*`);
    /// `*` matches any run of characters, `/` and `:` included.
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]{1,256}$")]
    pub subject: String,
    /// Further claims, each exact or with `*` globs, like `subject` (`{"environment":
    /// "production"}`). A claim matches when it is a string that matches (or a number or boolean
    /// whose JSON text matches); a missing claim, an object, an array or null never matches.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// At least one, as in token create: each granted to the server (R5, R7).
    #[schema(min_items = 1)]
    pub vaults: Vec<TokenVault>,
    /// How long an issued token lives: R7's syntax (`15m`, `1h`), at most 24 h; omitted: 15 min.
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[0-9]{1,12}[smhdw])+[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub ttl: Option<String>,
}

/// A trust policy of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrustPolicy {
    #[schema(pattern = "^[0-9a-z]{26}$")]
    pub id: String,
    pub name: String,
    /// The server's ID.
    pub server_id: String,
    /// The trusted issuer's ID.
    pub issuer_id: String,
    /// The issuer URL.
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    pub claims: BTreeMap<String, String>,
    /// The scope of the tokens it issues (∩ the server's live grants when used, R6).
    pub vaults: Vec<VaultAcl>,
    /// The issued tokens' lifetime, in seconds.
    pub ttl_seconds: i64,
    pub created_at: Timestamp,
    /// The user who made it.
    pub creator_id: String,
}

/// The form of `POST /v1/token-exchange` (RFC 8693 §2.1), `application/x-www-form-urlencoded`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TokenExchangeRequest {
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    #[schema(
        value_type = String,
        nullable = false,
        required = true,
        pattern = r"^urn:ietf:params:oauth:grant-type:token-exchange$"
    )]
    pub grant_type: Option<String>,
    /// The workload's JWT (at most 16 KiB): `header.payload.signature`, base64url.
    #[schema(
        value_type = String,
        nullable = false,
        required = true,
        pattern = r"^[A-Za-z0-9_-]{1,4096}\.[A-Za-z0-9_-]{1,8192}\.[A-Za-z0-9_-]{0,4000}$"
    )]
    pub subject_token: Option<String>,
    /// `urn:ietf:params:oauth:token-type:jwt`.
    #[schema(
        value_type = String,
        nullable = false,
        required = true,
        pattern = r"^urn:ietf:params:oauth:token-type:jwt$"
    )]
    pub subject_token_type: Option<String>,
    /// The Connect server the token is for: its ID or name.
    #[schema(
        value_type = String,
        nullable = false,
        required = true,
        min_length = 1,
        max_length = 255
    )]
    pub resource: Option<String>,
    /// Optional: `urn:ietf:params:oauth:token-type:access_token` or `…:jwt`.
    #[schema(
        value_type = String,
        nullable = false,
        pattern = r"^urn:ietf:params:oauth:token-type:(access_token|jwt)$"
    )]
    pub requested_token_type: Option<String>,
}

/// A successful exchange (RFC 8693 §2.2.1). `Cache-Control: no-store`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenExchangeResponse {
    /// A connect-manager token of the server (a JWT), as `POST …/tokens` makes.
    pub access_token: String,
    /// `urn:ietf:params:oauth:token-type:access_token`.
    pub issued_token_type: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds until it expires (the policy's ttl).
    pub expires_in: i64,
}

/// A refused exchange (RFC 6749 §5.2), with status 400 (413 for an oversized body, 429 when the
/// client's address failed too often).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant`, `invalid_target`, `unsupported_grant_type`, …
    pub error: String,
    /// What did not match; never the token nor its claims' values.
    pub error_description: String,
}

/// Where an exchanged token came from, on the token object (null for a token made with
/// `POST …/tokens`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenExchangeOrigin {
    /// The subject token's issuer URL.
    pub issuer: String,
    /// The subject token's `sub`.
    pub subject: String,
    /// The trust policy that matched.
    pub policy_id: String,
}
