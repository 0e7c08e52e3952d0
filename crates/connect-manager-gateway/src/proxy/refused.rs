//! The refusals, in Connect's error shape (`{"status": N, "message": "…"}`; every 401 says
//! [`UNAUTHORIZED_MESSAGE`], G4), and the checks on a request's headers made before any decision:
//! their size, method overrides, `Transfer-Encoding` and a second `Content-Length` (request
//! smuggling), and the one `Authorization` header.

use axum::body::Body;
use hyper::Response;
use hyper::StatusCode;
use hyper::header::{self, HeaderMap, HeaderValue};

use crate::operation::Unmatched;
use crate::verify::Refusal;

/// The most bytes of request headers accepted (names, values and separators): beyond, 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The message of every 401 (G4: one message for all).
pub const UNAUTHORIZED_MESSAGE: &str = "Invalid token";

/// Headers that ask a server to treat a request as another method: refused, whatever the
/// upstream makes of them.
const METHOD_OVERRIDES: [&str; 4] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-http-method",
];

/// A decision against a request, in Connect's error shape.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) decision: &'static str,
}

impl Refused {
    pub(super) fn new(
        status: StatusCode,
        decision: &'static str,
        message: impl Into<String>,
    ) -> Refused {
        Refused {
            status,
            message: message.into(),
            decision,
        }
    }

    pub(super) fn from_unmatched(u: Unmatched) -> Refused {
        match u {
            Unmatched::Malformed => Refused::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                "Invalid request path: refused by the gateway",
            ),
            Unmatched::TooLong => Refused::new(
                StatusCode::URI_TOO_LONG,
                "malformed",
                "Request URI too long",
            ),
            Unmatched::BadQuery => Refused::new(
                StatusCode::BAD_REQUEST,
                "malformed",
                "Unsupported query parameter: refused by the gateway",
            ),
            Unmatched::NotFound => Refused::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found: not an operation the gateway forwards",
            ),
        }
    }

    pub(super) fn from_refusal(r: Refusal) -> Refused {
        match r {
            Refusal::Unauthorized => Refused::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                UNAUTHORIZED_MESSAGE,
            ),
            Refusal::Unavailable => Refused::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The token cannot be checked now: the manager is unreachable",
            ),
        }
    }

    pub(super) fn response(&self) -> Response<Body> {
        connect_error(self.status, &self.message)
    }
}

/// Connect's error body: `{"status": N, "message": "…"}`.
pub fn connect_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "status": status.as_u16(), "message": message }).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// Checks on the request's headers that do not depend on the operation.
pub(super) fn check_headers(headers: &HeaderMap) -> Result<(), Refused> {
    let size: usize = headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return Err(Refused::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "malformed",
            "Request headers too large",
        ));
    }
    if let Some(name) = METHOD_OVERRIDES.iter().find(|n| headers.contains_key(**n)) {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("The {name} header is refused by the gateway"),
        ));
    }
    // A request with both Content-Length and Transfer-Encoding is how requests are smuggled past
    // a front proxy. hyper resolves it (chunked wins) and drops Content-Length before a handler
    // can see both, so any Transfer-Encoding is refused: Connect's clients send Content-Length.
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "Transfer-Encoding in a request is refused by the gateway: send Content-Length",
        ));
    }
    if headers.get_all(header::CONTENT_LENGTH).iter().count() > 1 {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            "More than one Content-Length: refused by the gateway",
        ));
    }
    Ok(())
}

/// The request's one `Authorization` header (two are refused as a bad token).
pub(super) fn single_authorization(headers: &HeaderMap) -> Result<Option<&str>, Refused> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(Refused::from_refusal(Refusal::Unauthorized));
    }
    match first {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| Refused::from_refusal(Refusal::Unauthorized)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g4_method_overrides_both_lengths_and_big_headers_are_refused() {
        for name in METHOD_OVERRIDES {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("DELETE"));
            assert_eq!(check_headers(&h).unwrap_err().status, 400, "{name}");
        }
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("3"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        assert_eq!(check_headers(&h).unwrap_err().status, 400);
        let mut h = HeaderMap::new();
        h.insert(
            "x-big",
            HeaderValue::from_str(&"a".repeat(MAX_HEADER_BYTES)).unwrap(),
        );
        assert_eq!(check_headers(&h).unwrap_err().status, 431);
        let mut h = HeaderMap::new();
        h.insert("accept", HeaderValue::from_static("*/*"));
        assert!(check_headers(&h).is_ok());
    }
}
