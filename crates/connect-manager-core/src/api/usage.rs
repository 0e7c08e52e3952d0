//! G7, last use: what a gateway reports of its server's tokens (`POST /v1/connect/self/usage`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Timestamp;

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
