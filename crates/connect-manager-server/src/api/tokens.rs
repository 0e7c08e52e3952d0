//! Tokens: `op connect token create|delete|edit|list` (R7–R10, R12, T1–T2), introspection (T4),
//! the JWKS and key rotation (T3).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use connect_manager_core::api::tokens::{
    CreateToken, CreatedToken, IntrospectRequest, Introspection, RenameToken, RetiredKeyView,
    RotatedKey, ServerFilter, TokenParams, TokenVault,
};
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::duration::{parse_duration, parse_expires_in};
use connect_manager_core::model::{Token, TokenRecord, VaultAccess, check_grantable};
use connect_manager_core::page::Page;
use connect_manager_core::principal::Permission;
use connect_manager_core::scope::TokenScope;
use connect_manager_core::token::Jwks;
use connect_manager_core::{Timestamp, name};
use connect_manager_store::TokenFilter;

use super::{Deleted, Errors, WithSecret, resolve_server, resolve_vault, with_secret};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller, ServerCaller};
use crate::state::AppState;

/// R1 for tokens: by ID or name among the tokens of servers the caller may manage, narrowed to
/// one server with `?server=`. Names need not be unique: several matches are 409 `ambiguous`.
async fn resolve_token(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    server: Option<&str>,
    action: AuditAction,
) -> ApiResult<TokenRecord> {
    let server_id = match server {
        Some(s) => Some(
            resolve_server(state, caller, s, action, Deleted::ByIdToAllServerManagers)
                .await?
                .id,
        ),
        None => None,
    };
    let found = state
        .store
        .find_tokens(&caller.principal, reference, server_id.as_deref())
        .await?;
    super::resolve_visible(state, caller, TargetType::Token, reference, found, action).await
}

/// `op connect token create <name> --server S --vault V[,r|,w] … [--expires-in 30d]` (R7). The
/// JWT is in this response only.
#[utoipa::path(post, path = "/v1/connect/servers/{server}/tokens", tag = "connect tokens",
    request_body = CreateToken,
    params(("server" = String, Path, description = "Server ID or name")),
    security(("api_key" = [])),
    responses((status = 201, description = "The new token, with its JWT shown this once.", body = CreatedToken,
        headers(("Cache-Control" = String, description = "`no-store`: the body carries a secret."))), Errors))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(server): ApiPath<String>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<WithSecret<CreatedToken>> {
    let server = resolve_server(
        &state,
        &caller,
        &server,
        AuditAction::TokenCreate,
        Deleted::Hidden,
    )
    .await?;
    let name = name::Name::parse("name", &body.name)?;
    let lifetime = body
        .expires_in
        .as_deref()
        .map(parse_expires_in)
        .transpose()?;
    let scope = token_scope(&state, &body.vaults).await?;
    let (record, jwt) =
        crate::tokens::issue(&state, &caller.actor, &server, name, scope, lifetime).await?;
    Ok(with_secret(
        StatusCode::CREATED,
        CreatedToken {
            token: record.view(record.created_at),
            jwt,
        },
    ))
}

/// R7: the vaults a token request names, by ID (each must pass R5), with their access bits
/// (omitted: read and write).
pub(crate) async fn token_scope(state: &AppState, vaults: &[TokenVault]) -> ApiResult<TokenScope> {
    let mut scope = Vec::with_capacity(vaults.len());
    for v in vaults {
        let vault = resolve_vault(state, &v.vault).await?;
        check_grantable(&vault)?;
        scope.push((vault.id, v.access.unwrap_or(VaultAccess::ReadWrite).bits()));
    }
    Ok(TokenScope::new(scope)?)
}

/// `op connect token list [--server S]` (R10): active and revoked, newest first. With
/// `expiring_within` or `unused_for`, only the live tokens in that view (issue 18).
#[utoipa::path(get, path = "/v1/connect/tokens", tag = "connect tokens", params(TokenParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of tokens, newest first.", body = Page<Token>), Errors))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<TokenParams>,
) -> ApiResult<Json<Page<Token>>> {
    let page = super::ListParams {
        limit: params.limit,
        cursor: params.cursor,
    }
    .page()?;
    let server_id = match params.server.as_deref() {
        Some(s) => Some(
            resolve_server(
                &state,
                &caller,
                s,
                AuditAction::TokenList,
                Deleted::ByIdToAllServerManagers,
            )
            .await?
            .id,
        ),
        None => None,
    };
    let filter = TokenFilter {
        server_id,
        expiring_within: params
            .expiring_within
            .as_deref()
            .map(|d| parse_duration("expiring_within", d))
            .transpose()?,
        unused_for: params
            .unused_for
            .as_deref()
            .map(|d| parse_duration("unused_for", d))
            .transpose()?,
    };
    let records = state
        .store
        .list_tokens(&caller.principal, &filter, &page)
        .await?;
    let now = Timestamp::now();
    Ok(Json(Page {
        items: records.items.iter().map(|t| t.view(now)).collect(),
        next_cursor: records.next_cursor,
    }))
}

/// `op connect token edit <token> --name N [--server S]` (R9): renames only.
#[utoipa::path(patch, path = "/v1/connect/tokens/{token}", tag = "connect tokens",
    request_body = RenameToken,
    params(("token" = String, Path, description = "Token ID or name"), ServerFilter),
    security(("api_key" = [])),
    responses((status = 200, description = "The token.", body = Token), Errors))]
pub async fn rename_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(token): ApiPath<String>,
    ApiQuery(filter): ApiQuery<ServerFilter>,
    ApiJson(body): ApiJson<RenameToken>,
) -> ApiResult<Json<Token>> {
    let name = name::Name::parse("name", &body.name)?;
    let token = resolve_token(
        &state,
        &caller,
        &token,
        filter.server.as_deref(),
        AuditAction::TokenRename,
    )
    .await?;
    let renamed = state
        .store
        .rename_token(&caller.actor, &token.id, &name)
        .await?;
    Ok(Json(renamed.view(Timestamp::now())))
}

/// `op connect token delete <token> [--server S]` (R8): revokes. The token stays listed, REVOKED;
/// revoking it again is not an error.
#[utoipa::path(delete, path = "/v1/connect/tokens/{token}", tag = "connect tokens",
    params(("token" = String, Path, description = "Token ID or name"), ServerFilter),
    security(("api_key" = [])),
    responses((status = 200, description = "The token.", body = Token), Errors))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(token): ApiPath<String>,
    ApiQuery(filter): ApiQuery<ServerFilter>,
) -> ApiResult<Json<Token>> {
    let token = resolve_token(
        &state,
        &caller,
        &token,
        filter.server.as_deref(),
        AuditAction::TokenRevoke,
    )
    .await?;
    let revoked = state.store.revoke_token(&caller.actor, &token.id).await?;
    if token.state != revoked.state {
        crate::metrics::inc(&state.metrics.tokens_revoked);
    }
    Ok(Json(revoked.view(Timestamp::now())))
}

/// Whether a token is valid now, and what it may reach (T4). Authenticate as the Connect server
/// the token belongs to; a server learns only about its own tokens.
#[utoipa::path(post, path = "/v1/introspect", tag = "connect tokens",
    request_body = IntrospectRequest,
    security(("server_credentials" = [])),
    responses(
        (status = 200, description = "Whether the token is valid now, and what it may reach.", body = Introspection),
        (status = 400, description = "The body is not `{\"token\": \"…\"}`.", body = ErrorBody),
        (status = 401, description = "Not a live server's credentials.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The scheme to authenticate with: `Basic realm=\"connect-manager\"` (the server's ID and secret)."))),
        (status = 413, description = "The body is over 64 KiB.", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address: the credentials were not read.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 415, description = "The body is not JSON.", body = ErrorBody),
        (status = 503, description = "The database is unavailable.", body = ErrorBody),
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    server: ServerCaller,
    ApiJson(body): ApiJson<IntrospectRequest>,
) -> ApiResult<Json<Introspection>> {
    let answer = introspection(&state, &server, &body.token).await?;
    crate::metrics::inc(if answer.active {
        &state.metrics.introspections_active
    } else {
        &state.metrics.introspections_inactive
    });
    Ok(Json(answer))
}

/// T4: valid now, for this server, and what it may reach now.
async fn introspection(
    state: &AppState,
    server: &ServerCaller,
    jwt: &str,
) -> ApiResult<Introspection> {
    let inactive = Introspection::default;
    let Some(claims) = state.keys.verify(&state.store, jwt).await? else {
        return Ok(inactive());
    };
    if claims.sub != server.server_id {
        return Ok(inactive());
    }
    let Some(record) = state.access.token(&state.store, &claims.jti).await? else {
        return Ok(inactive());
    };
    if record.server_id != server.server_id
        || record.issuer != claims.iss
        || !record.is_valid(Timestamp::now())
    {
        return Ok(inactive());
    }
    let granted = &server.access.vault_ids;
    Ok(Introspection {
        active: true,
        jti: Some(record.id.clone()),
        sub: Some(record.server_id.clone()),
        iat: Some(claims.iat),
        exp: claims.exp,
        name: Some(record.name.clone()),
        vaults: Some(record.effective_vaults(&|v| granted.iter().any(|g| g == v))),
    })
}

/// The public keys that verify this service's tokens (T3): the signing key and every key that
/// still verifies a live token.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "connect tokens",
    responses(
        (status = 200, description = "The public keys that verify tokens.", body = Jwks),
        (status = 503, description = "The database is unavailable.", body = ErrorBody),
    ))]
pub async fn jwks(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let doc = state.keys.jwks(&state.store).await?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=60")],
        Json((*doc).clone()),
    ))
}

/// Make a new signing key (owners, T3). New tokens are signed with it at once on every replica;
/// older keys stay published while they verify a live token.
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "connect tokens",
    security(("api_key" = [])),
    responses((status = 201, description = "The new signing key.", body = RotatedKey), Errors))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<RotatedKey>)> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::SigningKeyCreate,
            TargetType::SigningKey,
            "",
        )
        .await?;
    let kid = state.keys.rotate(&state.store, &caller.actor).await?;
    Ok((StatusCode::CREATED, Json(RotatedKey { kid })))
}

/// Retire a signing key (owners, T3): it leaves the JWKS and the tokens it signed stop
/// verifying at once, on every replica (they are revoked). The key that signs (the newest) is
/// refused with 409: rotate first, then retire. After a compromise: rotate, then retire.
/// Retiring a retired key changes nothing.
#[utoipa::path(post, path = "/v1/keys/{kid}/retire", tag = "connect tokens",
    params(("kid" = String, Path, description = "The signing key's ID (a JWT header's `kid`)")),
    security(("api_key" = [])),
    responses((status = 200, description = "The key is retired.", body = RetiredKeyView), Errors))]
pub async fn retire_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(kid): ApiPath<String>,
) -> ApiResult<Json<RetiredKeyView>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::SigningKeyRetire,
            TargetType::SigningKey,
            &kid,
        )
        .await?;
    let retired = state.keys.retire(&state.store, &caller.actor, &kid).await?;
    Ok(Json(RetiredKeyView {
        kid: retired.kid,
        retired_at: retired.retired_at,
        tokens_revoked: retired.tokens_revoked,
    }))
}
