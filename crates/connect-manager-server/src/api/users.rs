//! Users and their API keys (owners only, A2). A key is shown once and stored only as a hash.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use connect_manager_core::Timestamp;
use connect_manager_core::api::users::{CreateApiKey, CreateUser, CreatedApiKey};
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::duration::parse_expires_in;
use connect_manager_core::model::{ApiKeyInfo, User};
use connect_manager_core::name;
use connect_manager_core::page::Page;
use connect_manager_core::principal::Permission;
use connect_manager_core::secret::{api_key_hash, new_api_key};

use super::{Errors, ListParams, WithSecret, resolve_user, with_secret};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, OptionalJson};
use crate::state::AppState;
use connect_manager_store::{DEFAULT_API_KEY_NAME, NewApiKey};

/// Create a user (owners).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser,
    security(("api_key" = [])),
    responses((status = 201, description = "The new user.", body = User), Errors))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::UserCreate,
            TargetType::User,
            "",
        )
        .await?;
    let name = name::Name::parse("name", &body.name)?;
    let email = name::validate_email(&body.email)?;
    let user = state
        .store
        .create_user(&caller.actor, &name, &email)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// List users, newest first (owners).
#[utoipa::path(get, path = "/v1/users", tag = "users", params(ListParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of users, newest first.", body = Page<User>), Errors))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<User>>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::UserList,
            TargetType::User,
            "",
        )
        .await?;
    Ok(Json(state.store.list_users(&params.page()?).await?))
}

/// Get a user by ID or email (owners).
#[utoipa::path(get, path = "/v1/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User ID or email")),
    security(("api_key" = [])),
    responses((status = 200, description = "The user.", body = User), Errors))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user): ApiPath<String>,
) -> ApiResult<Json<User>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::UserGet,
            TargetType::User,
            &user,
        )
        .await?;
    Ok(Json(resolve_user(&state, &user).await?))
}

/// Delete a user and its keys (owners). The last owner cannot be deleted (409).
#[utoipa::path(delete, path = "/v1/users/{user}", tag = "users",
    params(("user" = String, Path, description = "User ID or email")),
    security(("api_key" = [])),
    responses((status = 204, description = "Deleted."), Errors))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::UserDelete,
            TargetType::User,
            &user,
        )
        .await?;
    let user = resolve_user(&state, &user).await?;
    state.store.delete_user(&caller.actor, &user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an API key for a user (owners). The key is in this response only. The body is
/// optional: without one (or with `null` or `{}`) the key is named `key` and does not expire.
#[utoipa::path(post, path = "/v1/users/{user}/keys", tag = "users",
    params(("user" = String, Path, description = "User ID or email")),
    request_body(content = Option<CreateApiKey>, description = "Optional: a name and an expiry."),
    security(("api_key" = [])),
    responses((status = 201, description = "The new API key, shown this once.", body = CreatedApiKey,
        headers(("Cache-Control" = String, description = "`no-store`: the body carries a secret."))), Errors))]
pub async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user): ApiPath<String>,
    OptionalJson(body): OptionalJson<CreateApiKey>,
) -> ApiResult<WithSecret<CreatedApiKey>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::ApiKeyCreate,
            TargetType::User,
            &user,
        )
        .await?;
    let body = body.unwrap_or_default();
    let name = name::Name::parse("name", body.name.as_deref().unwrap_or(DEFAULT_API_KEY_NAME))?;
    let lifetime = body
        .expires_in
        .as_deref()
        .map(parse_expires_in)
        .transpose()?;
    let user = resolve_user(&state, &user).await?;
    let key = new_api_key();
    let new = NewApiKey {
        key_hash: api_key_hash(&key),
        name,
        expires_at: lifetime.map(|s| Timestamp::now().plus_seconds(s)),
    };
    let info = state
        .store
        .create_named_api_key(&caller.actor, &user.id, &new)
        .await?;
    Ok(with_secret(
        StatusCode::CREATED,
        CreatedApiKey {
            id: info.id,
            key,
            name: info.name,
            expires_at: info.expires_at,
        },
    ))
}

/// List a user's API keys: metadata only (owners).
#[utoipa::path(get, path = "/v1/users/{user}/keys", tag = "users",
    params(("user" = String, Path, description = "User ID or email"), ListParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of API keys (metadata only), newest first.", body = Page<ApiKeyInfo>), Errors))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(user): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<ApiKeyInfo>>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::ApiKeyList,
            TargetType::User,
            &user,
        )
        .await?;
    let user = resolve_user(&state, &user).await?;
    Ok(Json(
        state.store.list_api_keys(&user.id, &params.page()?).await?,
    ))
}

/// Delete an API key (owners). It stops working on the next request.
#[utoipa::path(delete, path = "/v1/users/{user}/keys/{key_id}", tag = "users",
    params(
        ("user" = String, Path, description = "User ID or email"),
        ("key_id" = String, Path, description = "API key ID"),
    ),
    security(("api_key" = [])),
    responses((status = 204, description = "Deleted."), Errors))]
pub async fn delete_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((user, key_id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::ApiKeyDelete,
            TargetType::ApiKey,
            &key_id,
        )
        .await?;
    let user = resolve_user(&state, &user).await?;
    state
        .store
        .delete_api_key(&caller.actor, &user.id, &key_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
