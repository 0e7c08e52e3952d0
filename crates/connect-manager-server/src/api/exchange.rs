//! `POST /v1/token-exchange` (issue 18, RFC 8693): a workload's JWT from a trusted issuer for a
//! short-lived token of a Connect server, under the first of the server's trust policies that
//! matches. No other credential; refusals are RFC 6749 §5.2 errors.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use connect_manager_core::api::trust::{OAuthError, TokenExchangeRequest, TokenExchangeResponse};

use crate::state::AppState;

/// An RFC 6749 §5.2 error, passed through the envelope middleware as it is.
pub fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response = (
        status,
        [(axum::http::header::CACHE_CONTROL, super::NO_STORE)],
        axum::Json(OAuthError {
            error: error.to_owned(),
            error_description: description.into(),
        }),
    )
        .into_response();
    response.extensions_mut().insert(crate::error::Enveloped);
    response
}

/// Exchange a workload's JWT for a token of a Connect server (RFC 8693). Form-encoded; no other
/// credential: the subject token is the credential.
#[utoipa::path(post, path = "/v1/token-exchange", tag = "workload identity",
    request_body(content = TokenExchangeRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token.", body = TokenExchangeResponse,
            headers(("Cache-Control" = String, description = "`no-store`: the body carries a secret."))),
        (status = 400, description = "Refused (RFC 6749 §5.2): `invalid_request`, `invalid_grant`, `invalid_target`, `unsupported_grant_type`.", body = OAuthError),
        (status = 413, description = "The body is over 64 KiB.", body = OAuthError),
        (status = 429, description = "Too many failed exchanges from this address.", body = OAuthError,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "The database is unavailable.", body = OAuthError),
    ))]
pub async fn token_exchange(State(_state): State<AppState>, _request: Request) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "the token exchange is not implemented yet",
    )
}
