//! Wire types that more than one side speaks: the service answers with them, the CLI and the
//! gateway read them. They live here, below all three, so that neither client depends on the
//! server crate (the JWKS types are in [`crate::token`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::Timestamp;
use crate::access::VaultAcl;

/// The error envelope (E1).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, snake_case: `not_found`, `ambiguous`, `vault_not_grantable`, …
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Structured context (the candidates of an ambiguous name, the field at fault, …).
    #[schema(value_type = Object)]
    pub details: Value,
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

/// How fine last use is kept (G7): the manager writes a token's last use only when it is at least
/// this much newer than the stored one, so it is accurate to a minute and each token's row is
/// written at most once a minute however many gateways report.
pub const LAST_USE_RESOLUTION_SECONDS: i64 = 60;

/// The most entries one usage report may carry; a gateway sends more in several reports.
pub const MAX_USAGE_BATCH: usize = 1000;

/// The body of `POST /v1/connect/self/usage` (G7): what a gateway saw of its server's tokens
/// since its last report, at most one entry per token and at most [`MAX_USAGE_BATCH`] entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    #[schema(max_items = 1000)]
    pub tokens: Vec<TokenUsage>,
}

/// One token's last use as a gateway saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenUsage {
    /// The token's ID (its `jti`).
    pub id: String,
    /// When the gateway last let a request with it through (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: Timestamp,
    /// The client address the gateway saw for that request.
    pub last_used_ip: Option<String>,
}
