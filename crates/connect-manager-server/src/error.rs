//! E1: one JSON envelope for every error, at every status:
//! `{"error": {"code", "message", "details"}, "request_id"}`. A 500 tells the client nothing but
//! the request ID; the detail goes to the log.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connect_manager_core::Error;
use serde_json::Value;

use crate::request_id::current_request_id;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    /// The `WWW-Authenticate` challenge sent with a 401.
    pub challenge: &'static str,
    /// Seconds for `Retry-After` (429).
    pub retry_after: Option<u64>,
}

pub use connect_manager_core::api::error::{ErrorBody, ErrorDetail};

/// Marks a response whose body is already the envelope, or a console page (HTML, issue 17):
/// either way `request_id.rs` leaves its body alone.
#[derive(Clone, Copy)]
pub(crate) struct Enveloped;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Object(Default::default()),
            challenge: r#"Bearer realm="connect-manager""#,
            retry_after: None,
        }
    }

    /// 429: too many failed authentications from this address.
    pub fn too_many(retry_after: u64) -> Self {
        ApiError::too_many_because(
            retry_after,
            "too many failed authentications from this address",
        )
    }

    /// 429 with `Retry-After`, saying why.
    pub fn too_many_because(retry_after: u64, why: &str) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("{why}; retry in {retry_after} s"),
            )
        }
    }

    /// The limiter's refusal (limiter/).
    pub fn refused(r: crate::limiter::Refused) -> Self {
        if r.server_budget {
            ApiError::too_many_because(
                r.retry_after,
                "too many failed authentications as this server",
            )
        } else {
            ApiError::too_many(r.retry_after)
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// The envelope for a status produced outside the handlers (unknown route, wrong method,
    /// body limit, timeout).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this endpoint does not take that method",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "too_large",
                "the request body is over the limit (64 KiB; 256 KiB for usage reports)",
            ),
            StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send JSON with Content-Type: application/json",
            ),
            s if s.is_server_error() => ("internal", "internal error"),
            _ => ("bad_request", "the request is not valid"),
        };
        ApiError::new(status, code, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::BadRequest { code, .. } => ApiError::new(StatusCode::BAD_REQUEST, code, message),
            Error::Invalid { code, details, .. } => ApiError {
                details: if details.is_null() {
                    Value::Object(Default::default())
                } else {
                    details
                },
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            },
            Error::NotFound { kind, reference } => ApiError {
                details: serde_json::json!({ "kind": kind, "reference": reference }),
                ..ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            },
            Error::Ambiguous {
                kind,
                reference,
                candidates,
            } => ApiError {
                details: serde_json::json!({
                    "kind": kind, "reference": reference, "candidates": candidates,
                }),
                ..ApiError::new(StatusCode::CONFLICT, "ambiguous", message)
            },
            Error::Conflict { code, .. } => ApiError::new(StatusCode::CONFLICT, code, message),
            Error::Forbidden { .. } => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            Error::Unavailable { detail } => {
                // Not a line per request: one per interval, with a count.
                crate::unavailable_log::UNAVAILABLE.record(&detail);
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; try again shortly",
                )
            }
            Error::StorageFull { detail } => {
                tracing::error!(error = %detail, "database storage full");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_full",
                    "the database's storage is full: changes cannot be saved until space is \
                     freed; reads still work",
                )
            }
            Error::Internal { detail } => {
                tracing::error!(error = %detail, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            JsonRejection::JsonSyntaxError(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!(
                    "the body is not valid JSON: {}",
                    inner_message(&r.body_text())
                ),
            ),
            JsonRejection::JsonDataError(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!(
                    "the body does not fit this endpoint: {}",
                    inner_message(&r.body_text())
                ),
            ),
            _ => ApiError::new(r.status(), "bad_request", r.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!(
                "the query string does not fit this endpoint: {}",
                inner_message(&r.body_text())
            ),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", r.body_text())
    }
}

/// axum's rejection texts start with a generic sentence; keep what serde said.
fn inner_message(text: &str) -> &str {
    text.split_once(": ").map(|(_, rest)| rest).unwrap_or(text)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
            request_id: current_request_id(),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(self.challenge),
            );
        }
        if let Some(seconds) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response.extensions_mut().insert(Enveloped);
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e1_storage_full_is_503_storage_full_without_the_detail() {
        let e = ApiError::from(Error::StorageFull {
            detail: "could not extend file \"base/16384/2619\"".into(),
        });
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code, "storage_full");
        assert!(!e.message.contains("base/16384"), "{}", e.message);
    }
}
