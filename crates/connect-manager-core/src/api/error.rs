//! The error envelope (E1): every failure of the API answers with an [`ErrorBody`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

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
