//! Users and their API keys (A1, A2): `/v1/users…`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(value_type = crate::name::Name)]
    pub name: String,
    #[schema(value_type = crate::name::Email)]
    pub email: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    /// The API key: shown this once, never again.
    pub key: String,
}
