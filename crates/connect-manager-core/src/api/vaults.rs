//! The vault registry: `/v1/vaults…`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::VaultType;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVault {
    #[schema(value_type = crate::name::Name)]
    pub name: String,
    #[serde(rename = "type")]
    pub vault_type: VaultType,
    /// The vault's ID, when it must be a given one (G8: a Connect vault's real ID, so that the
    /// registry and Connect name the vault alike). Omitted: a new ID. An ID a vault has or had
    /// (deleted) is refused (409 `vault_id_taken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-z]{26}$")]
    pub id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameVault {
    /// The new name. A vault's type never changes.
    #[schema(value_type = crate::name::Name)]
    pub name: String,
}
