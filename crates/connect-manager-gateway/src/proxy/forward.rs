//! G4: an allowed request forwarded to the upstream Connect server, on the client connection's
//! own upstream connection ([`UpstreamConn`]): hop-by-hop headers dropped both ways, the
//! client's `Authorization` replaced by the upstream token, `GET /v1/vaults` cut
//! (`vault_list.rs`). The hot path of G1's figures: no allocation or lock is added here
//! lightly.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::refused::{check_headers, single_authorization};
use super::vault_list::cut_vault_list;
use super::{Gateway, Outcome, connect_error};
use crate::config::Upstream;
use crate::conn::UpstreamConn;
use crate::operation::{Operation, Route};
use crate::verify::Access;

/// RFC 9110 §7.6.1 hop-by-hop headers, dropped in both directions (as are the ones a
/// `Connection` header names).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A marker the forwarding puts on its own 502 (removed before the answer leaves).
const GATEWAY_ERROR: &str = "x-connect-manager-gateway-error";

/// Drops hop-by-hop headers and the ones `Connection` names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

impl Gateway {
    /// G4: the decision, then the request forwarded.
    pub(super) async fn proxy(
        &self,
        request: Request<Incoming>,
        remote: SocketAddr,
        conn: &UpstreamConn,
    ) -> (Response<Body>, Outcome) {
        let mut outcome = Outcome {
            decision: "malformed",
            ..Outcome::default()
        };
        if let Err(r) = check_headers(request.headers()) {
            return (r.response(), outcome);
        }
        let Some(upstream) = &self.upstream else {
            outcome.decision = "not_found";
            return (
                connect_error(
                    StatusCode::NOT_FOUND,
                    "This gateway has no upstream: it answers only /v1/forward-auth",
                ),
                outcome,
            );
        };
        let authorization = match single_authorization(request.headers()) {
            Ok(a) => a,
            Err(r) => return (r.response(), outcome),
        };
        let decided = self
            .decide(
                request.method().as_str(),
                request.uri().path(),
                request.uri().query(),
                authorization,
                &mut outcome,
            )
            .await;
        let (op, access) = match decided {
            Ok(d) => d,
            Err(r) => {
                outcome.decision = r.decision;
                return (r.response(), outcome);
            }
        };
        outcome.decision = "allowed";
        if let Some(access) = &access {
            self.usage.record(&access.jti, remote.ip());
        }
        let response = self
            .forward(upstream, conn, request, &op, access.as_deref())
            .await;
        if response.status() == StatusCode::BAD_GATEWAY
            && response.headers().contains_key(GATEWAY_ERROR)
        {
            outcome.decision = "upstream_unreachable";
        }
        let mut response = response;
        response.headers_mut().remove(GATEWAY_ERROR);
        (response, outcome)
    }

    async fn forward(
        &self,
        upstream: &Upstream,
        conn: &UpstreamConn,
        request: Request<Incoming>,
        op: &Operation,
        access: Option<&Access>,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::AUTHORIZATION);
        // hyper answered any `Expect: 100-continue` to the client; its client does not do it
        // upstream.
        headers.remove(header::EXPECT);
        if op.route.needs_token() {
            let Some(value) = upstream.authorization() else {
                return connect_error(StatusCode::BAD_GATEWAY, "Bad upstream token");
            };
            headers.insert(header::AUTHORIZATION, value.clone());
        }
        let cut = op.route == Route::ListVaults;
        if cut {
            // The list is read to be cut: ask for it uncompressed.
            headers.remove(header::ACCEPT_ENCODING);
        }
        let Some(host) = upstream.host() else {
            return connect_error(StatusCode::BAD_GATEWAY, "Bad upstream host");
        };
        headers.insert(header::HOST, host.clone());
        let uri = upstream.origin(&op.upstream_path_and_query());
        let mut out = match Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(Body::new(body))
        {
            Ok(r) => r,
            Err(_) => return connect_error(StatusCode::BAD_GATEWAY, "Bad upstream request"),
        };
        *out.headers_mut() = headers;
        let sent = Instant::now();
        let answer = self.send(upstream, conn, out).await;
        self.requests.upstream_latency(sent.elapsed());
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "the upstream cannot be reached");
                let mut r = connect_error(
                    StatusCode::BAD_GATEWAY,
                    "The Connect server cannot be reached",
                );
                r.headers_mut()
                    .insert(GATEWAY_ERROR, HeaderValue::from_static("1"));
                return r;
            }
        };
        let (mut parts, body) = answer.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if cut && parts.status == StatusCode::OK {
            let Some(access) = access else {
                return connect_error(StatusCode::BAD_GATEWAY, "No access to cut the list");
            };
            return match cut_vault_list(body, access).await {
                Ok(bytes) => {
                    parts.headers.remove(header::ETAG);
                    parts.headers.remove(header::CONTENT_ENCODING);
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    Response::from_parts(parts, Body::from(bytes))
                }
                Err(why) => {
                    tracing::warn!(why, "the upstream's vault list cannot be cut");
                    connect_error(
                        StatusCode::BAD_GATEWAY,
                        "The Connect server's vault list cannot be read",
                    )
                }
            };
        }
        Response::from_parts(parts, Body::new(body))
    }

    /// Sends `out` on the client connection's upstream connection (a new one when there is none
    /// or it was closed). A request the connection closed before sending is sent once more on a
    /// new connection, as hyper-util's pooled client did.
    async fn send(
        &self,
        upstream: &Upstream,
        conn: &UpstreamConn,
        mut out: Request<Body>,
    ) -> Result<Response<Incoming>, String> {
        let mut last = String::new();
        for _ in 0..2 {
            let mut sender = match conn.take() {
                Some(s) => s,
                None => self.connect(upstream, conn).await?,
            };
            if let Err(e) = sender.ready().await {
                last = e.to_string();
                continue;
            }
            let answer = sender.try_send_request(out);
            conn.put(sender);
            match answer.await {
                Ok(a) => return Ok(a),
                Err(mut e) => match e.take_message() {
                    Some(again) => {
                        last = e.error().to_string();
                        out = again;
                    }
                    None => return Err(e.error().to_string()),
                },
            }
        }
        Err(last)
    }

    /// A new upstream connection for `conn`: its driver installed there, its sender returned.
    async fn connect(
        &self,
        upstream: &Upstream,
        conn: &UpstreamConn,
    ) -> Result<SendRequest<Body>, String> {
        let root = upstream.root().ok_or("bad upstream URL")?.clone();
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx))
            .await
            .map_err(|e| e.to_string())?;
        let io = tower_service::Service::call(&mut connector, root)
            .await
            .map_err(|e| e.to_string())?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        conn.install(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g4_hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }
}
