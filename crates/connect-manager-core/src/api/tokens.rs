//! Tokens (R7–R10, T1–T2): `/v1/connect/…/tokens…`; introspection (T4); signing keys (T3).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::Timestamp;
use crate::access::VaultAcl;
use crate::model::{Token, VaultAccess};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenVault {
    /// Vault ID or name; it must be granted to the server.
    pub vault: String,
    /// Omitted: the server's access (read and write).
    pub access: Option<VaultAccess>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    #[schema(value_type = crate::name::Name)]
    pub name: String,
    /// At least one.
    #[schema(min_items = 1)]
    pub vaults: Vec<TokenVault>,
    /// A sum of `<n>s|m|h|d|w` terms (`90m`, `1w2d`), more than zero and at most 10 years (R7);
    /// omitted: the token does not expire. The pattern gives the shape; the total is checked
    /// when the token is made.
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[0-9]{1,12}[smhdw])+[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub expires_in: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameToken {
    #[schema(value_type = crate::name::Name)]
    pub name: String,
}

/// A new token: the token object plus the JWT, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: Token,
    /// The JWT. It is never stored and cannot be shown again.
    #[serde(rename = "token")]
    pub jwt: String,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenParams {
    /// Only this server's tokens (ID or name; a deleted server by ID).
    pub server: Option<String>,
    /// Only live tokens (active, not expired) that expire within this long, in `--expires-in`'s
    /// syntax (`7d`).
    #[param(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[0-9]{1,12}[smhdw])+[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub expiring_within: Option<String>,
    /// Only live tokens with no use in this long (`30d`): never used, or last used (G7) before
    /// then.
    #[param(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[0-9]{1,12}[smhdw])+[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub unused_for: Option<String>,
    /// Items per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ServerFilter {
    /// The token's server (ID or name), to tell tokens of the same name apart.
    pub server: Option<String>,
}

/// The body of `POST /v1/introspect` (T4).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    /// The JWT.
    pub token: String,
}

/// RFC 7662's shape. An inactive token is `{"active": false}` and nothing else, whatever the
/// reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The server's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// The token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The effective access: the token's scope ∩ the server's live grants (R6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vaults: Option<Vec<VaultAcl>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RotatedKey {
    /// The new signing key's ID.
    pub kid: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetiredKeyView {
    /// The retired key's ID.
    pub kid: String,
    /// When it was retired.
    pub retired_at: Timestamp,
    /// Active tokens it had signed, revoked with it (0 if it was retired already).
    pub tokens_revoked: u64,
}
