//! Logging: one span per request (method, matched route, request ID, client IP), one event when
//! it ends (status, latency). Headers, bodies and query strings are never logged, so neither is
//! `Authorization` nor any key, secret, token or credentials file.

use axum::extract::MatchedPath;
use axum::http::Request;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnRequest, DefaultOnResponse, TraceLayer,
};
use tracing::Level;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::request_id::RequestId;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

type MakeSpan = fn(&Request<axum::body::Body>) -> tracing::Span;

/// The request log: a span per request and one INFO event when it is answered, whatever the
/// status. No separate event for a 5xx (tower-http's default `on_failure` logs each at ERROR):
/// a 500 logs its cause where it is mapped (error.rs), and the 503s of a database outage are
/// counted, not logged one by one (unavailable_log.rs).
pub type RequestTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    MakeSpan,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    (),
>;

pub fn trace_layer() -> RequestTrace {
    TraceLayer::new_for_http()
        .make_span_with(request_span as MakeSpan)
        .on_response(DefaultOnResponse::new().level(Level::INFO))
        .on_failure(())
}

fn request_span(req: &Request<axum::body::Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.as_str())
        .unwrap_or("");
    let client_ip = crate::client::ClientAddr::text(req.extensions());
    tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        request_id = %request_id,
        client_ip = %client_ip,
    )
}
