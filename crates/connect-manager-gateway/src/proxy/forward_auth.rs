//! G5: `/v1/forward-auth`, the gateway's decision for a proxy that forwards by itself. The
//! original method and URI come from one header pair (`X-Forwarded-*` or `X-Original-*`);
//! every value of both pairs must agree, or nothing is decided.

use axum::body::Body;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::refused::{Refused, check_headers, single_authorization};
use super::{Gateway, Outcome, connect_error};
use crate::operation::Unmatched;

impl Gateway {
    /// G5: the same decision for a proxy that forwards by itself.
    pub(super) async fn forward_auth(
        &self,
        request: &Request<Incoming>,
    ) -> (Response<Body>, Outcome) {
        let mut outcome = Outcome {
            decision: "malformed",
            ..Outcome::default()
        };
        let h = request.headers();
        if let Err(r) = check_headers(h) {
            return (r.response(), outcome);
        }
        // Proxies set one pair and pass the client's other headers on: a client could add the
        // pair its proxy does not set, describing another request. Every value of both pairs
        // must agree, or nothing is decided.
        let (method, uri) = match (
            original(h, ["x-forwarded-method", "x-original-method"]),
            original(h, ["x-forwarded-uri", "x-original-uri"]),
        ) {
            (Ok(Some(method)), Ok(Some(uri))) => (method, uri),
            (Err(()), _) | (_, Err(())) => {
                return (
                    connect_error(
                        StatusCode::BAD_REQUEST,
                        "Forward-auth got the original method or URI twice, with different \
                         values: the proxy must set one pair (X-Forwarded-* or X-Original-*) and \
                         drop the client's copies",
                    ),
                    outcome,
                );
            }
            _ => {
                return (
                    connect_error(
                        StatusCode::BAD_REQUEST,
                        "Forward-auth needs X-Forwarded-Method and X-Forwarded-Uri (or X-Original-Method \
                         and X-Original-URI)",
                    ),
                    outcome,
                );
            }
        };
        let uri: hyper::Uri = match uri.parse() {
            Ok(u) => u,
            Err(_) => {
                let r = Refused::from_unmatched(Unmatched::Malformed);
                return (r.response(), outcome);
            }
        };
        let authorization = match single_authorization(h) {
            Ok(a) => a,
            Err(r) => return (r.response(), outcome),
        };
        let decided = self
            .decide(
                &method.to_ascii_uppercase(),
                uri.path(),
                uri.query(),
                authorization,
                &mut outcome,
            )
            .await;
        match decided {
            Ok(_) => {
                outcome.decision = "allowed";
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::OK;
                (r, outcome)
            }
            Err(r) => {
                outcome.decision = r.decision;
                (r.response(), outcome)
            }
        }
    }
}

/// The original method or URI a proxy sent under either of its two names (G5): `None` when
/// absent, `Err` when the values disagree (or are not text).
fn original(h: &hyper::HeaderMap, names: [&str; 2]) -> Result<Option<String>, ()> {
    let mut found: Option<&str> = None;
    for name in names {
        for value in h.get_all(name) {
            let value = value.to_str().map_err(|_| ())?;
            match found {
                Some(seen) if seen != value => return Err(()),
                _ => found = Some(value),
            }
        }
    }
    Ok(found.map(str::to_string))
}
