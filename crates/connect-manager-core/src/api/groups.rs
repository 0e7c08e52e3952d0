//! Groups (A2, R11): `/v1/groups…` and `/v1/connect/groups…`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    #[schema(value_type = crate::name::Name)]
    pub name: String,
}
