//! The HTTP API. Handlers are short: extract, authorise, resolve references (R1, A4: the
//! resolvers are in `resolve.rs`), call the store, map. Rules live in core and in the store,
//! never here; one module per resource, as the routes are.

pub mod audit;
pub mod exchange;
pub mod groups;
pub mod health;
mod resolve;
pub mod servers;
pub mod tokens;
pub mod trust;
pub mod usage;
pub mod users;
pub mod vaults;

pub use resolve::{
    Deleted, resolve_group, resolve_server, resolve_user, resolve_vault, resolve_visible,
};

use axum::Json;
use axum::http::{HeaderName, StatusCode, header};
use utoipa::IntoResponses;

use crate::error::ErrorBody;

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
