//! Workload identity (issue 18): trusted issuers (owners add and remove them; every user may
//! read them, to write policies) and a server's trust policies (the server's managers, A3/A4,
//! audited A5). The exchange itself is `exchange.rs`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use connect_manager_core::api::trust::{CreateIssuer, CreateTrustPolicy, Issuer, TrustPolicy};
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::lookup::{Found, resolve};
use connect_manager_core::page::Page;
use connect_manager_core::principal::Permission;
use connect_manager_core::trust::{
    MAX_CLAIMS, TrustPolicyRecord, check_issuer_url, check_pattern, parse_ttl,
};
use connect_manager_core::{Error, name};
use connect_manager_store::{NewIssuer, NewTrustPolicy};

use super::{Deleted, Errors, ListParams, resolve_server};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;

/// R1 for issuers: by ID or name; a policy may also name its issuer by URL.
async fn resolve_issuer(state: &AppState, reference: &str, by_url: bool) -> ApiResult<Issuer> {
    if by_url && let Some(issuer) = state.store.issuer_by_url(reference).await? {
        return Ok(issuer);
    }
    let found = state.store.find_issuers(reference).await?;
    Ok(resolve(TargetType::Issuer.as_str(), reference, found)?)
}

/// R1 for a server's policies.
async fn resolve_policy(
    state: &AppState,
    server_id: &str,
    reference: &str,
) -> ApiResult<TrustPolicyRecord> {
    let found: Found<TrustPolicyRecord> = state
        .store
        .find_trust_policies(server_id, reference)
        .await?;
    Ok(resolve(TargetType::TrustPolicy.as_str(), reference, found)?)
}

/// Trust an OIDC issuer (owners): its tokens may then be exchanged under trust policies. Nothing
/// is fetched from it until a token it signed is presented.
#[utoipa::path(post, path = "/v1/issuers", tag = "workload identity",
    request_body = CreateIssuer,
    security(("api_key" = [])),
    responses((status = 201, description = "The trusted issuer.", body = Issuer), Errors))]
pub async fn create_issuer(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateIssuer>,
) -> ApiResult<(StatusCode, Json<Issuer>)> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::IssuerCreate,
            TargetType::Issuer,
            "",
        )
        .await?;
    let name = name::Name::parse("name", &body.name)?;
    check_issuer_url(&body.issuer, state.issuer_keys.allows_insecure())?;
    let issuer = state
        .store
        .create_issuer(
            &caller.actor,
            &NewIssuer {
                name,
                issuer: body.issuer,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(issuer)))
}

/// The trusted issuers, newest first.
#[utoipa::path(get, path = "/v1/issuers", tag = "workload identity", params(ListParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of trusted issuers, newest first.", body = Page<Issuer>), Errors))]
pub async fn list_issuers(
    State(state): State<AppState>,
    _caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Issuer>>> {
    Ok(Json(state.store.list_issuers(&params.page()?).await?))
}

/// A trusted issuer, by ID or name (R1).
#[utoipa::path(get, path = "/v1/issuers/{issuer}", tag = "workload identity",
    params(("issuer" = String, Path, description = "Issuer ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The trusted issuer.", body = Issuer), Errors))]
pub async fn get_issuer(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(issuer): ApiPath<String>,
) -> ApiResult<Json<Issuer>> {
    Ok(Json(resolve_issuer(&state, &issuer, false).await?))
}

/// Stop trusting an issuer (owners). Refused with 409 `issuer_in_use` while a trust policy names
/// it: delete those first (deleting them here would quietly undo what servers' managers set up).
#[utoipa::path(delete, path = "/v1/issuers/{issuer}", tag = "workload identity",
    params(("issuer" = String, Path, description = "Issuer ID or name")),
    security(("api_key" = [])),
    responses((status = 204, description = "The issuer is no longer trusted."), Errors))]
pub async fn delete_issuer(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(issuer): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::IssuerDelete,
            TargetType::Issuer,
            &issuer,
        )
        .await?;
    let issuer = resolve_issuer(&state, &issuer, false).await?;
    state.store.delete_issuer(&caller.actor, &issuer.id).await?;
    state.issuer_keys.forget(&issuer.issuer);
    Ok(StatusCode::NO_CONTENT)
}

/// A trust policy of the server (its managers): tokens of a trusted issuer whose `aud` contains
/// `audience` and whose `sub` and claims match `subject` and `claims` are exchanged for a token
/// of this server reaching `vaults` for `ttl`. The vaults are checked as token create's (R5, R7).
#[utoipa::path(post, path = "/v1/connect/servers/{server}/trust-policies", tag = "workload identity",
    request_body = CreateTrustPolicy,
    params(("server" = String, Path, description = "Server ID or name")),
    security(("api_key" = [])),
    responses((status = 201, description = "The trust policy.", body = TrustPolicy), Errors))]
pub async fn create_trust_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(server): ApiPath<String>,
    ApiJson(body): ApiJson<CreateTrustPolicy>,
) -> ApiResult<(StatusCode, Json<TrustPolicy>)> {
    let server = resolve_server(
        &state,
        &caller,
        &server,
        AuditAction::TrustPolicyCreate,
        Deleted::Hidden,
    )
    .await?;
    let name = name::Name::parse("name", &body.name)?;
    check_pattern("audience", &body.audience)?;
    check_pattern("subject", &body.subject)?;
    if body.claims.len() > MAX_CLAIMS {
        return Err(
            Error::invalid_field("claims", format_args!("at most {MAX_CLAIMS} claims")).into(),
        );
    }
    for (claim, pattern) in &body.claims {
        check_pattern("claims", claim)?;
        check_pattern(&format!("claims.{claim}"), pattern)?;
    }
    let ttl_seconds = parse_ttl(body.ttl.as_deref())?;
    let issuer = resolve_issuer(&state, &body.issuer, true).await?;
    let vaults = super::tokens::token_scope(&state, &body.vaults).await?;
    let policy = state
        .store
        .create_trust_policy(
            &caller.actor,
            &NewTrustPolicy {
                server_id: server.id,
                issuer_id: issuer.id,
                name,
                audience: body.audience,
                subject: body.subject,
                claims: body.claims,
                vaults,
                ttl_seconds,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(policy.view())))
}

/// The server's trust policies in the order the exchange tries them: oldest first (unlike the
/// other lists, since this order decides).
#[utoipa::path(get, path = "/v1/connect/servers/{server}/trust-policies", tag = "workload identity",
    params(("server" = String, Path, description = "Server ID or name"), ListParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of trust policies, oldest first (the order they are tried in).", body = Page<TrustPolicy>), Errors))]
pub async fn list_trust_policies(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(server): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<TrustPolicy>>> {
    let page = params.page()?;
    let server = resolve_server(
        &state,
        &caller,
        &server,
        AuditAction::TrustPolicyList,
        Deleted::Hidden,
    )
    .await?;
    let policies = state.store.list_trust_policies(&server.id, &page).await?;
    Ok(Json(Page {
        items: policies.items.iter().map(TrustPolicyRecord::view).collect(),
        next_cursor: policies.next_cursor,
    }))
}

/// A trust policy of the server, by ID or name.
#[utoipa::path(get, path = "/v1/connect/servers/{server}/trust-policies/{policy}", tag = "workload identity",
    params(("server" = String, Path, description = "Server ID or name"),
        ("policy" = String, Path, description = "Trust policy ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The trust policy.", body = TrustPolicy), Errors))]
pub async fn get_trust_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((server, policy)): ApiPath<(String, String)>,
) -> ApiResult<Json<TrustPolicy>> {
    let server = resolve_server(
        &state,
        &caller,
        &server,
        AuditAction::TrustPolicyGet,
        Deleted::Hidden,
    )
    .await?;
    Ok(Json(
        resolve_policy(&state, &server.id, &policy).await?.view(),
    ))
}

/// Delete a trust policy: no more exchanges under it. Tokens it issued stay valid until they
/// expire or are revoked.
#[utoipa::path(delete, path = "/v1/connect/servers/{server}/trust-policies/{policy}", tag = "workload identity",
    params(("server" = String, Path, description = "Server ID or name"),
        ("policy" = String, Path, description = "Trust policy ID or name")),
    security(("api_key" = [])),
    responses((status = 204, description = "The policy is deleted."), Errors))]
pub async fn delete_trust_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((server, policy)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let server = resolve_server(
        &state,
        &caller,
        &server,
        AuditAction::TrustPolicyDelete,
        Deleted::Hidden,
    )
    .await?;
    let policy = resolve_policy(&state, &server.id, &policy).await?;
    state
        .store
        .delete_trust_policy(&caller.actor, &server.id, &policy.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
