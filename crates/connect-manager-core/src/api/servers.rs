//! Connect servers (R3–R6, C1–C3): `/v1/connect/servers…`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::credentials::CredentialsFile;
use crate::model::Server;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServer {
    #[schema(value_type = crate::name::Name)]
    pub name: String,
    /// Vaults to grant at once, by ID or name (each must pass R5; all or nothing).
    #[serde(default)]
    pub vaults: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameServer {
    #[schema(value_type = crate::name::Name)]
    pub name: String,
}

/// A server with its credentials file: returned once, never stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerWithCredentials {
    pub server: Server,
    /// The content of `1password-credentials.json`.
    pub credentials: CredentialsFile,
}
