//! The HTTP API. Handlers are short: extract, authorise, resolve references (R1), call the store,
//! map. Rules live in core and in the store, never here.

pub mod audit;
pub mod groups;
pub mod health;
pub mod servers;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod vaults;

use axum::Json;
use axum::http::{HeaderName, StatusCode, header};
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::lookup::{Found, Named, resolve};
use connect_manager_core::model::{Group, Server, User, Vault};
use utoipa::IntoResponses;

use crate::error::{ApiResult, ErrorBody};
use crate::extract::Caller;
use crate::state::AppState;

/// The error responses every authenticated operation may give (E1).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Errors {
    /// Malformed request: bad JSON, unknown field, wrong type, bad query or cursor.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Missing or invalid credentials.
    #[response(status = 401, headers(("WWW-Authenticate" = String, description = "The scheme to authenticate with: `Bearer realm=\"connect-manager\"` (a user's API key).")))]
    Unauthorized(ErrorBody),
    /// The caller may see the object but not take this action.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Nothing matched the reference, or the caller may not see it.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A name matched several objects (`ambiguous`), or the change conflicts with the state.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// The request body is over 64 KiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not JSON (`Content-Type: application/json`).
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A value breaks a rule (`invalid_field`, `vault_not_grantable`, …).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Too many failed authentications from this address: the credentials were not read.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait.")))]
    TooManyRequests(ErrorBody),
    /// The database is unavailable.
    #[response(status = 503)]
    Unavailable(ErrorBody),
    /// Internal error: the message is generic, the detail is in the log under the request ID.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// A response whose body carries a secret (an API key, a JWT, a credentials file): sent with
/// `Cache-Control: no-store`, so no cache on the way keeps it.
pub type WithSecret<T> = (StatusCode, [(HeaderName, &'static str); 1], Json<T>);

/// `body` with `status`, never stored by a cache.
pub fn with_secret<T>(status: StatusCode, body: T) -> WithSecret<T> {
    (status, [(header::CACHE_CONTROL, NO_STORE)], Json(body))
}

/// The `Cache-Control` of a response carrying a secret.
pub const NO_STORE: &str = "no-store";

/// The paging query of every list, defined in core with the other request types.
pub use connect_manager_core::api::ListParams;

/// R1 and A4: a live server the caller may manage, by ID or name. One the caller may not manage
/// is not a candidate, so it is 404 exactly like one that does not exist; the attempt on it is
/// audited as denied (`action`), once, since the caller was refused something that exists.
pub async fn resolve_server(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    action: AuditAction,
) -> ApiResult<Server> {
    let found = state
        .store
        .find_servers(&caller.principal, reference)
        .await?;
    resolve_visible(state, caller, TargetType::Server, reference, found, action).await
}

/// R1 over what the store found among the objects the caller may see (A4): a match the caller
/// may not see is 404, and its one denied event (A5) names the hidden object's ID.
pub async fn resolve_visible<T: Named>(
    state: &AppState,
    caller: &Caller,
    kind: TargetType,
    reference: &str,
    found: Found<T>,
    action: AuditAction,
) -> ApiResult<T> {
    if let Some(hidden) = found.hidden() {
        caller.deny(state, action, kind, hidden).await?;
    }
    Ok(resolve(kind.as_str(), reference, found)?)
}

pub async fn resolve_vault(state: &AppState, reference: &str) -> ApiResult<Vault> {
    Ok(resolve(
        "vault",
        reference,
        state.store.find_vaults(reference).await?,
    )?)
}

pub async fn resolve_group(state: &AppState, reference: &str) -> ApiResult<Group> {
    Ok(resolve(
        "group",
        reference,
        state.store.find_groups(reference).await?,
    )?)
}

/// Users are named by ID or email.
pub async fn resolve_user(state: &AppState, reference: &str) -> ApiResult<User> {
    let found = state.store.find_users(reference).await?;
    match found {
        Found::Id(u) => Ok(u),
        // Emails are unique: one match at most.
        other => other
            .into_vec()
            .pop()
            .ok_or_else(|| connect_manager_core::Error::not_found("user", reference).into()),
    }
}
