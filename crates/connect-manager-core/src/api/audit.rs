//! The audit trail (A5): `GET /v1/audit/events`.

use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Items per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only this action (`server.create`, `vault.grant`, …).
    pub action: Option<String>,
    /// Only events of this actor (a user ID).
    pub actor: Option<String>,
    /// Only events about this target ID.
    pub target: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
}
