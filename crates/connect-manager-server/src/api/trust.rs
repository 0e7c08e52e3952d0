//! Workload identity (issue 18): trusted issuers (owners) and a server's trust policies (its
//! managers, A3/A4). The exchange itself is `exchange.rs`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use connect_manager_core::Error;
use connect_manager_core::api::trust::{CreateIssuer, CreateTrustPolicy, Issuer, TrustPolicy};
use connect_manager_core::page::Page;

use super::{Errors, ListParams};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::state::AppState;

fn not_yet() -> Error {
    Error::internal("trusted issuers are not implemented yet")
}

/// Trust an OIDC issuer (owners): its tokens may then be exchanged under trust policies.
#[utoipa::path(post, path = "/v1/issuers", tag = "workload identity",
    request_body = CreateIssuer,
    security(("api_key" = [])),
    responses((status = 201, description = "The trusted issuer.", body = Issuer), Errors))]
pub async fn create_issuer(
    State(_state): State<AppState>,
    _caller: Caller,
    ApiJson(_body): ApiJson<CreateIssuer>,
) -> ApiResult<(StatusCode, Json<Issuer>)> {
    Err(not_yet().into())
}

/// The trusted issuers, newest first.
#[utoipa::path(get, path = "/v1/issuers", tag = "workload identity", params(ListParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of trusted issuers.", body = Page<Issuer>), Errors))]
pub async fn list_issuers(
    State(_state): State<AppState>,
    _caller: Caller,
    ApiQuery(_params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Issuer>>> {
    Err(not_yet().into())
}

/// A trusted issuer, by ID or name (R1).
#[utoipa::path(get, path = "/v1/issuers/{issuer}", tag = "workload identity",
    params(("issuer" = String, Path, description = "Issuer ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The trusted issuer.", body = Issuer), Errors))]
pub async fn get_issuer(
    State(_state): State<AppState>,
    _caller: Caller,
    ApiPath(_issuer): ApiPath<String>,
) -> ApiResult<Json<Issuer>> {
    Err(not_yet().into())
}

/// Stop trusting an issuer (owners). Refused with 409 while a trust policy names it.
#[utoipa::path(delete, path = "/v1/issuers/{issuer}", tag = "workload identity",
    params(("issuer" = String, Path, description = "Issuer ID or name")),
    security(("api_key" = [])),
    responses((status = 204, description = "The issuer is no longer trusted."), Errors))]
pub async fn delete_issuer(
    State(_state): State<AppState>,
    _caller: Caller,
    ApiPath(_issuer): ApiPath<String>,
) -> ApiResult<StatusCode> {
    Err(not_yet().into())
}

/// A trust policy of the server (its managers): who may exchange a token of a trusted issuer
/// for a token of this server, and what that token reaches.
#[utoipa::path(post, path = "/v1/connect/servers/{server}/trust-policies", tag = "workload identity",
    request_body = CreateTrustPolicy,
    params(("server" = String, Path, description = "Server ID or name")),
    security(("api_key" = [])),
    responses((status = 201, description = "The trust policy.", body = TrustPolicy), Errors))]
pub async fn create_trust_policy(
    State(_state): State<AppState>,
    _caller: Caller,
    ApiPath(_server): ApiPath<String>,
    ApiJson(_body): ApiJson<CreateTrustPolicy>,
) -> ApiResult<(StatusCode, Json<TrustPolicy>)> {
    Err(not_yet().into())
}

/// The server's trust policies, in the order they are tried (oldest first).
#[utoipa::path(get, path = "/v1/connect/servers/{server}/trust-policies", tag = "workload identity",
    params(("server" = String, Path, description = "Server ID or name"), ListParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of trust policies, oldest first.", body = Page<TrustPolicy>), Errors))]
pub async fn list_trust_policies(
    State(_state): State<AppState>,
    _caller: Caller,
    ApiPath(_server): ApiPath<String>,
    ApiQuery(_params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<TrustPolicy>>> {
    Err(not_yet().into())
}

/// A trust policy of the server, by ID or name.
#[utoipa::path(get, path = "/v1/connect/servers/{server}/trust-policies/{policy}", tag = "workload identity",
    params(("server" = String, Path, description = "Server ID or name"),
        ("policy" = String, Path, description = "Trust policy ID or name")),
    security(("api_key" = [])),
    responses((status = 200, description = "The trust policy.", body = TrustPolicy), Errors))]
pub async fn get_trust_policy(
    State(_state): State<AppState>,
    _caller: Caller,
    ApiPath(_path): ApiPath<(String, String)>,
) -> ApiResult<Json<TrustPolicy>> {
    Err(not_yet().into())
}

/// Delete a trust policy: no more exchanges under it. Tokens it issued stay valid until they
/// expire or are revoked.
#[utoipa::path(delete, path = "/v1/connect/servers/{server}/trust-policies/{policy}", tag = "workload identity",
    params(("server" = String, Path, description = "Server ID or name"),
        ("policy" = String, Path, description = "Trust policy ID or name")),
    security(("api_key" = [])),
    responses((status = 204, description = "The policy is deleted."), Errors))]
pub async fn delete_trust_policy(
    State(_state): State<AppState>,
    _caller: Caller,
    ApiPath(_path): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    Err(not_yet().into())
}
