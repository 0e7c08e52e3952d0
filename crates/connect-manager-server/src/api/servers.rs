//! Connect servers: `op connect server …` and `op connect vault grant|revoke` (R3–R6, C1–C3).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use connect_manager_core::api::servers::{CreateServer, RenameServer, ServerWithCredentials};
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::credentials::{self, CredentialsFile, CredentialsPayload};
use connect_manager_core::model::Server;
use connect_manager_core::page::Page;
use connect_manager_core::principal::Permission;
use connect_manager_core::secret::new_server_secret;
use connect_manager_core::{Error, id, name};
use connect_manager_store::NewServer;

use super::{Deleted, Errors, ListParams, WithSecret, resolve_server, resolve_vault, with_secret};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, ServerCaller};
use crate::state::AppState;

/// A new secret, its verifier (argon2id, off the runtime) and the file that carries it.
async fn issue_credentials(
    state: &AppState,
    server_id: &str,
) -> ApiResult<(String, CredentialsFile)> {
    let secret = new_server_secret();
    let verifier = state.server_secrets.argon2.hash(secret.clone()).await?;
    let file = credentials::seal(&CredentialsPayload {
        server_id: server_id.to_owned(),
        secret,
        url: state.public_url.to_string(),
    });
    Ok((verifier, file))
}

/// `op connect server create <name> [--vaults v1,v2]` (R3). The credentials file is in this
/// response only.
#[utoipa::path(post, path = "/v1/connect/servers", tag = "connect servers",
    request_body = CreateServer,
    security(("api_key" = [])),
    responses((status = 201, description = "The server and its credentials file, shown this once.", body = ServerWithCredentials,
        headers(("Cache-Control" = String, description = "`no-store`: the body carries a secret."))), Errors))]
pub async fn create_server(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateServer>,
) -> ApiResult<WithSecret<ServerWithCredentials>> {
    caller
        .authorize(
            &state,
            Permission::CreateServers,
            AuditAction::ServerCreate,
            TargetType::Server,
            "",
        )
        .await?;
    let name = name::Name::parse("name", &body.name)?;
    let mut vault_ids = Vec::with_capacity(body.vaults.len());
    for reference in &body.vaults {
        vault_ids.push(resolve_vault(&state, reference).await?.id);
    }
    let server_id = id::new_upper();
    let (secret_verifier, credentials) = issue_credentials(&state, &server_id).await?;
    let server = state
        .store
        .create_server(
            &caller.actor,
            &NewServer {
                id: server_id,
                name,
                secret_verifier,
                vault_ids,
            },
        )
        .await?;
    Ok(with_secret(
        StatusCode::CREATED,
        ServerWithCredentials {
            server,
            credentials,
        },
    ))
}

/// `op connect server list`: the live servers the caller may manage, newest first.
#[utoipa::path(get, path = "/v1/connect/servers", tag = "connect servers", params(ListParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of servers, newest first.", body = Page<Server>), Errors))]
pub async fn list_servers(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Server>>> {
    Ok(Json(
        state
            .store
            .list_servers(&caller.principal, &params.page()?)
            .await?,
    ))
}

/// `op connect server get <server>`.
#[utoipa::path(get, path = "/v1/connect/servers/{server}", tag = "connect servers",
    params(("server" = String, Path, description = "Server ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The server, with the vaults it is granted now.", body = Server), Errors))]
pub async fn get_server(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(server): ApiPath<String>,
) -> ApiResult<Json<Server>> {
    let found = resolve_server(
        &state,
        &caller,
        &server,
        AuditAction::ServerGet,
        Deleted::Hidden,
    )
    .await?;
    // The lookup reads no vaults; the answer has them.
    let full = state.store.get_server(&found.id).await?;
    Ok(Json(full.ok_or_else(|| {
        Error::not_found(TargetType::Server.as_str(), &server)
    })?))
}

/// `op connect server edit <server> --name N`.
#[utoipa::path(patch, path = "/v1/connect/servers/{server}", tag = "connect servers",
    request_body = RenameServer,
    params(("server" = String, Path, description = "Server ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The server, with the vaults it is granted now.", body = Server), Errors))]
pub async fn rename_server(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(server): ApiPath<String>,
    ApiJson(body): ApiJson<RenameServer>,
) -> ApiResult<Json<Server>> {
    let name = name::Name::parse("name", &body.name)?;
    let server = resolve_server(
        &state,
        &caller,
        &server,
        AuditAction::ServerRename,
        Deleted::Hidden,
    )
    .await?;
    Ok(Json(
        state
            .store
            .rename_server(&caller.actor, &server.id, &name)
            .await?,
    ))
}

/// `op connect server delete <server>` (R4): the server leaves every listing, its name is freed,
/// its credentials stop working and its grants end. The record stays, state DELETED, for audit.
#[utoipa::path(delete, path = "/v1/connect/servers/{server}", tag = "connect servers",
    params(("server" = String, Path, description = "Server ID or name")),
    security(("api_key" = [])),
    responses((status = 204, description = "Deleted."), Errors))]
pub async fn delete_server(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(server): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let server = resolve_server(
        &state,
        &caller,
        &server,
        AuditAction::ServerDelete,
        Deleted::Hidden,
    )
    .await?;
    let revoked = state.store.delete_server(&caller.actor, &server.id).await?;
    crate::metrics::add(&state.metrics.tokens_revoked, revoked);
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a server's credentials (C3): a new file, `tokens_version` + 1, the old file stops
/// working at once.
#[utoipa::path(post, path = "/v1/connect/servers/{server}/credentials", tag = "connect servers",
    params(("server" = String, Path, description = "Server ID or name")),
    security(("api_key" = [])),
    responses((status = 201, description = "The server and its credentials file, shown this once.", body = ServerWithCredentials,
        headers(("Cache-Control" = String, description = "`no-store`: the body carries a secret."))), Errors))]
pub async fn rotate_credentials(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(server): ApiPath<String>,
) -> ApiResult<WithSecret<ServerWithCredentials>> {
    let server = resolve_server(
        &state,
        &caller,
        &server,
        AuditAction::ServerCredentialsRotate,
        Deleted::Hidden,
    )
    .await?;
    let (verifier, credentials) = issue_credentials(&state, &server.id).await?;
    let server = state
        .store
        .rotate_server_secret(&caller.actor, &server.id, &verifier)
        .await?;
    Ok(with_secret(
        StatusCode::CREATED,
        ServerWithCredentials {
            server,
            credentials,
        },
    ))
}

/// `op connect vault grant --server S --vault V` (R5).
#[utoipa::path(put, path = "/v1/connect/servers/{server}/vaults/{vault}", tag = "connect vaults",
    params(
        ("server" = String, Path, description = "Server ID or name"),
        ("vault" = String, Path, description = "Vault ID or name"),
    ),
    security(("api_key" = [])),
    responses((status = 200, description = "The server, with the vaults it is granted now.", body = Server), Errors))]
pub async fn grant_vault(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((server, vault)): ApiPath<(String, String)>,
) -> ApiResult<Json<Server>> {
    change_vault_grant(&state, &caller, &server, &vault, true).await
}

/// `op connect vault revoke --server S --vault V` (R6): 404 when there was no grant.
#[utoipa::path(delete, path = "/v1/connect/servers/{server}/vaults/{vault}", tag = "connect vaults",
    params(
        ("server" = String, Path, description = "Server ID or name"),
        ("vault" = String, Path, description = "Vault ID or name"),
    ),
    security(("api_key" = [])),
    responses((status = 200, description = "The server, with the vaults it is granted now.", body = Server), Errors))]
pub async fn revoke_vault(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((server, vault)): ApiPath<(String, String)>,
) -> ApiResult<Json<Server>> {
    change_vault_grant(&state, &caller, &server, &vault, false).await
}

/// A vault granted to (R5) or revoked from (R6) a server: the two routes differ only in that.
async fn change_vault_grant(
    state: &AppState,
    caller: &Caller,
    server: &str,
    vault: &str,
    grant: bool,
) -> ApiResult<Json<Server>> {
    let action = if grant {
        AuditAction::VaultGrant
    } else {
        AuditAction::VaultRevoke
    };
    let server = resolve_server(state, caller, server, action, Deleted::Hidden).await?;
    let vault = resolve_vault(state, vault).await?;
    let store = &state.store;
    Ok(Json(if grant {
        store
            .grant_vault(&caller.actor, &server.id, &vault.id)
            .await?
    } else {
        store
            .revoke_vault(&caller.actor, &server.id, &vault.id)
            .await?
    }))
}

/// The calling server's own record and live vault grants. Authenticate as the server: HTTP Basic,
/// user = server ID, password = the secret in its credentials file.
#[utoipa::path(get, path = "/v1/connect/self", tag = "connect servers",
    security(("server_credentials" = [])),
    responses(
        (status = 200, description = "The server, with the vaults it is granted now.", body = Server),
        (status = 401, description = "Not a live server's credentials.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The scheme to authenticate with: `Basic realm=\"connect-manager\"` (the server's ID and secret)."))),
        (status = 429, description = "Too many failed authentications from this address: the credentials were not read.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "The database is unavailable.", body = ErrorBody),
    ))]
pub async fn connect_self(
    State(state): State<AppState>,
    server: ServerCaller,
) -> ApiResult<Json<Server>> {
    let found = state.store.get_server(&server.server_id).await?;
    Ok(Json(found.ok_or_else(|| {
        Error::not_found(TargetType::Server.as_str(), &server.server_id)
    })?))
}
