//! Groups, their members (owners only, A2) and their Secrets Automation grants (R11).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use connect_manager_core::api::groups::CreateGroup;
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::model::{GrantScope, Group, GroupGrant};
use connect_manager_core::name;
use connect_manager_core::page::Page;
use connect_manager_core::principal::Permission;

use super::{Errors, ListParams, resolve_group, resolve_user};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;

/// Create a group (owners).
#[utoipa::path(post, path = "/v1/groups", tag = "groups", request_body = CreateGroup,
    security(("api_key" = [])),
    responses((status = 201, description = "The new group.", body = Group), Errors))]
pub async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::GroupCreate,
            TargetType::Group,
            "",
        )
        .await?;
    let name = name::Name::parse("name", &body.name)?;
    let group = state.store.create_group(&caller.actor, &name).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

/// List groups with their members and grants, newest first (owners).
#[utoipa::path(get, path = "/v1/groups", tag = "groups", params(ListParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of groups, newest first.", body = Page<Group>), Errors))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Group>>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::GroupList,
            TargetType::Group,
            "",
        )
        .await?;
    Ok(Json(state.store.list_groups(&params.page()?).await?))
}

/// Get a group by ID or name (owners).
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The group, with its members and grants.", body = Group), Errors))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> ApiResult<Json<Group>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::GroupGet,
            TargetType::Group,
            &group,
        )
        .await?;
    Ok(Json(resolve_group(&state, &group).await?))
}

/// Delete a group: its memberships and grants end (owners). Owners cannot be deleted (409).
#[utoipa::path(delete, path = "/v1/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "Group ID or name")),
    security(("api_key" = [])),
    responses((status = 204, description = "Deleted."), Errors))]
pub async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::GroupDelete,
            TargetType::Group,
            &group,
        )
        .await?;
    let group = resolve_group(&state, &group).await?;
    state.store.delete_group(&caller.actor, &group.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a user to a group (owners). Adding a member twice is not an error.
#[utoipa::path(put, path = "/v1/groups/{group}/members/{user}", tag = "groups",
    params(
        ("group" = String, Path, description = "Group ID or name"),
        ("user" = String, Path, description = "User ID or email"),
    ),
    security(("api_key" = [])),
    responses((status = 200, description = "The group, with its members and grants.", body = Group), Errors))]
pub async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((group, user)): ApiPath<(String, String)>,
) -> ApiResult<Json<Group>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::GroupMemberAdd,
            TargetType::Group,
            &group,
        )
        .await?;
    let group = resolve_group(&state, &group).await?;
    let user = resolve_user(&state, &user).await?;
    Ok(Json(
        state
            .store
            .add_member(&caller.actor, &group.id, &user.id)
            .await?,
    ))
}

/// Remove a user from a group (owners). The last owner cannot leave Owners (409).
#[utoipa::path(delete, path = "/v1/groups/{group}/members/{user}", tag = "groups",
    params(
        ("group" = String, Path, description = "Group ID or name"),
        ("user" = String, Path, description = "User ID or email"),
    ),
    security(("api_key" = [])),
    responses((status = 200, description = "The group, with its members and grants.", body = Group), Errors))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((group, user)): ApiPath<(String, String)>,
) -> ApiResult<Json<Group>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::GroupMemberRemove,
            TargetType::Group,
            &group,
        )
        .await?;
    let group = resolve_group(&state, &group).await?;
    let user = resolve_user(&state, &user).await?;
    Ok(Json(
        state
            .store
            .remove_member(&caller.actor, &group.id, &user.id)
            .await?,
    ))
}

/// The grant a path names: `manager`, `all-servers`, or `servers/{server}` (resolved by the caller).
async fn change_grant(
    state: &AppState,
    caller: &Caller,
    group: &str,
    scope: GrantScope,
    server: Option<&str>,
    grant: bool,
) -> ApiResult<Json<Group>> {
    let action = if grant {
        AuditAction::GroupGrant
    } else {
        AuditAction::GroupRevoke
    };
    caller
        .authorize(state, Permission::Owner, action, TargetType::Group, group)
        .await?;
    let group = resolve_group(state, group).await?;
    let server_id = match server {
        Some(reference) => Some(
            super::resolve_server(state, caller, reference, action, super::Deleted::Hidden)
                .await?
                .id,
        ),
        None => None,
    };
    let g = GroupGrant { scope, server_id };
    let store = &state.store;
    Ok(Json(if grant {
        store.grant_group(&caller.actor, &group.id, &g).await?
    } else {
        store.revoke_group(&caller.actor, &group.id, &g).await?
    }))
}

/// `op connect group grant --group G`: the group becomes a Secrets Automation manager (R11).
#[utoipa::path(put, path = "/v1/connect/groups/{group}/grants/manager", tag = "connect groups",
    params(("group" = String, Path, description = "Group ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The group, with its members and grants.", body = Group), Errors))]
pub async fn grant_manager(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> ApiResult<Json<Group>> {
    change_grant(&state, &caller, &group, GrantScope::Manager, None, true).await
}

/// `op connect group revoke --group G` (R11).
#[utoipa::path(delete, path = "/v1/connect/groups/{group}/grants/manager", tag = "connect groups",
    params(("group" = String, Path, description = "Group ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The group, with its members and grants.", body = Group), Errors))]
pub async fn revoke_manager(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> ApiResult<Json<Group>> {
    change_grant(&state, &caller, &group, GrantScope::Manager, None, false).await
}

/// `op connect group grant --group G --all-servers` (R11).
#[utoipa::path(put, path = "/v1/connect/groups/{group}/grants/all-servers", tag = "connect groups",
    params(("group" = String, Path, description = "Group ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The group, with its members and grants.", body = Group), Errors))]
pub async fn grant_all_servers(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> ApiResult<Json<Group>> {
    change_grant(&state, &caller, &group, GrantScope::AllServers, None, true).await
}

/// `op connect group revoke --group G --all-servers` (R11).
#[utoipa::path(delete, path = "/v1/connect/groups/{group}/grants/all-servers", tag = "connect groups",
    params(("group" = String, Path, description = "Group ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The group, with its members and grants.", body = Group), Errors))]
pub async fn revoke_all_servers(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(group): ApiPath<String>,
) -> ApiResult<Json<Group>> {
    change_grant(&state, &caller, &group, GrantScope::AllServers, None, false).await
}

/// `op connect group grant --group G --server S` (R11).
#[utoipa::path(put, path = "/v1/connect/groups/{group}/grants/servers/{server}", tag = "connect groups",
    params(
        ("group" = String, Path, description = "Group ID or name"),
        ("server" = String, Path, description = "Server ID or name"),
    ),
    security(("api_key" = [])),
    responses((status = 200, description = "The group, with its members and grants.", body = Group), Errors))]
pub async fn grant_server(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((group, server)): ApiPath<(String, String)>,
) -> ApiResult<Json<Group>> {
    change_grant(
        &state,
        &caller,
        &group,
        GrantScope::Server,
        Some(&server),
        true,
    )
    .await
}

/// `op connect group revoke --group G --server S` (R11).
#[utoipa::path(delete, path = "/v1/connect/groups/{group}/grants/servers/{server}", tag = "connect groups",
    params(
        ("group" = String, Path, description = "Group ID or name"),
        ("server" = String, Path, description = "Server ID or name"),
    ),
    security(("api_key" = [])),
    responses((status = 200, description = "The group, with its members and grants.", body = Group), Errors))]
pub async fn revoke_server(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((group, server)): ApiPath<(String, String)>,
) -> ApiResult<Json<Group>> {
    change_grant(
        &state,
        &caller,
        &group,
        GrantScope::Server,
        Some(&server),
        false,
    )
    .await
}
