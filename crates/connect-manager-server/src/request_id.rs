//! Request IDs: taken from `x-request-id` when the caller sends a sane one (at most
//! [`MAX_REQUEST_ID_CHARS`] characters of `[A-Za-z0-9._-]`), made otherwise,
//! returned on every response, carried in every error envelope and every audit event. The middleware
//! here also wraps any error response produced outside the handlers (unknown route, wrong method,
//! body limit, timeout) in the envelope of E1, so no error leaves without it.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Enveloped};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The current request's ID ("" outside a request).
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The longest `x-request-id` a client may choose: it is stored with every audit event.
pub const MAX_REQUEST_ID_CHARS: usize = 64;

/// A client's request ID, if it is one we keep: 1–64 characters of `[A-Za-z0-9._-]`. Anything
/// else (longer, other characters) is replaced by a fresh ID, so what a client sends can neither
/// bloat the audit trail nor forge structure in it.
pub fn acceptable(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (1..=MAX_REQUEST_ID_CHARS)
        .contains(&s.len())
        .then_some(())?;
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        .then(|| s.to_owned())
}

/// The most header bytes (names and values) a request may carry: 431 beyond.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

pub async fn request_id_layer(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(acceptable)
        .unwrap_or_else(connect_manager_core::id::new_lower);
    req.extensions_mut().insert(RequestId(id.clone()));
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    let mut response = REQUEST_ID
        .scope(id.clone(), async move {
            if header_bytes > MAX_HEADER_BYTES {
                return ApiError::new(
                    axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers_too_large",
                    format!("the request's headers are over {MAX_HEADER_BYTES} bytes"),
                )
                .into_response();
            }
            let response = next.run(req).await;
            let status = response.status();
            if (status.is_client_error() || status.is_server_error())
                && response.extensions().get::<Enveloped>().is_none()
            {
                let mut enveloped = ApiError::for_status(status).into_response();
                for name in [axum::http::header::ALLOW, axum::http::header::RETRY_AFTER] {
                    if let Some(v) = response.headers().get(&name) {
                        enveloped.headers_mut().insert(name, v.clone());
                    }
                }
                enveloped
            } else {
                response
            }
        })
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a5_client_request_ids_are_kept_only_when_short_and_plain() {
        let ok = |s: &str| acceptable(&HeaderValue::from_str(s).unwrap());
        assert_eq!(ok("trace-abc_1.2").as_deref(), Some("trace-abc_1.2"));
        assert_eq!(ok(&"a".repeat(64)).map(|s| s.len()), Some(64));
        for bad in [
            "",
            &"a".repeat(65),
            "a:b",
            "a b",
            "a/b",
            "a%0Ab",
            "éa",
            "a\tb",
        ] {
            let Ok(v) = HeaderValue::from_str(bad) else {
                continue;
            };
            assert_eq!(acceptable(&v), None, "{bad:?}");
        }
        let non_utf8 = HeaderValue::from_bytes(b"ab\xff").unwrap();
        assert_eq!(acceptable(&non_utf8), None);
    }
}
