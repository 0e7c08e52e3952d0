//! The vault registry: the vaults the organisation has. Owners change it; every authenticated
//! user may read it, so managers can pick vaults to grant.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use connect_manager_core::api::vaults::{CreateVault, RenameVault};
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::model::Vault;
use connect_manager_core::page::Page;
use connect_manager_core::principal::Permission;
use connect_manager_core::{Error, id, name};

use super::{Errors, ListParams, resolve_vault};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;

/// Add a vault to the registry (owners).
#[utoipa::path(post, path = "/v1/vaults", tag = "vaults", request_body = CreateVault,
    security(("api_key" = [])),
    responses((status = 201, description = "The new vault.", body = Vault), Errors))]
pub async fn create_vault(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateVault>,
) -> ApiResult<(StatusCode, Json<Vault>)> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::VaultCreate,
            TargetType::Vault,
            "",
        )
        .await?;
    let name = name::Name::parse("name", &body.name)?;
    let vault = match &body.id {
        None => {
            state
                .store
                .create_vault(&caller.actor, &name, body.vault_type)
                .await?
        }
        Some(id) if id::is_lower(id) => {
            state
                .store
                .create_vault_with_id(&caller.actor, id, &name, body.vault_type)
                .await?
        }
        Some(_) => {
            return Err(Error::invalid_field(
                "id",
                "a vault ID is 26 characters, digits and lower-case letters (^[0-9a-z]{26}$)",
            )
            .into());
        }
    };
    Ok((StatusCode::CREATED, Json(vault)))
}

/// List the registry's vaults, newest first.
#[utoipa::path(get, path = "/v1/vaults", tag = "vaults", params(ListParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of vaults, newest first.", body = Page<Vault>), Errors))]
pub async fn list_vaults(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Vault>>> {
    Ok(Json(state.store.list_vaults(&params.page()?).await?))
}

/// Get a vault by ID or name.
#[utoipa::path(get, path = "/v1/vaults/{vault}", tag = "vaults",
    params(("vault" = String, Path, description = "Vault ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The vault.", body = Vault), Errors))]
pub async fn get_vault(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(vault): ApiPath<String>,
) -> ApiResult<Json<Vault>> {
    Ok(Json(resolve_vault(&state, &vault).await?))
}

/// Rename a vault (owners).
#[utoipa::path(patch, path = "/v1/vaults/{vault}", tag = "vaults", request_body = RenameVault,
    params(("vault" = String, Path, description = "Vault ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The vault.", body = Vault), Errors))]
pub async fn rename_vault(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(vault): ApiPath<String>,
    ApiJson(body): ApiJson<RenameVault>,
) -> ApiResult<Json<Vault>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::VaultRename,
            TargetType::Vault,
            &vault,
        )
        .await?;
    let name = name::Name::parse("name", &body.name)?;
    let vault = resolve_vault(&state, &vault).await?;
    Ok(Json(
        state
            .store
            .rename_vault(&caller.actor, &vault.id, &name)
            .await?,
    ))
}

/// Delete a vault (owners). Every grant of it ends (R6).
#[utoipa::path(delete, path = "/v1/vaults/{vault}", tag = "vaults",
    params(("vault" = String, Path, description = "Vault ID or name")),
    security(("api_key" = [])),
    responses((status = 204, description = "Deleted."), Errors))]
pub async fn delete_vault(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(vault): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::VaultDelete,
            TargetType::Vault,
            &vault,
        )
        .await?;
    let vault = resolve_vault(&state, &vault).await?;
    state.store.delete_vault(&caller.actor, &vault.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
