//! `connect-manager gateway` (SPEC G): a reverse proxy in front of one 1Password Connect
//! server's API that lets through exactly what a connect-manager token allows.
//!
//! The seam inside the crate:
//! - [`manager`]: the gateway's client of the manager (JWKS, introspection, usage reports),
//!   authenticated as the server from the credentials file (G1, T4).
//! - [`verify`]: G2. [`verify::Verifier::check`] turns a request's `Authorization` header into the
//!   token's effective access, or a refusal. Local checks first, then the manager's answer,
//!   cached at most max-staleness, one call in flight per token, failing closed.
//! - [`usage`]: G7. The proxy records each allowed request; reports go to the manager in
//!   batches, at most once a minute per token.
//! - [`metrics`]: G6 counters shared by all parts.
//! - everything else (settings, the operation table, forwarding, forward-auth, the gateway's own
//!   endpoints and logs: G1, G3–G6) is built on [`verify::Verifier`].

pub mod manager;
pub mod metrics;
pub mod usage;
pub mod verify;

pub mod config;
pub mod operation;
pub mod proxy;
pub mod request_metrics;
pub mod serve;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use config::{GatewayArgs, GatewayConfig};

/// How long requests in flight may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves the gateway on `listener` with the given token check and usage record until
/// `shutdown` resolves.
pub async fn launch_with(
    config: &GatewayConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
    checker: Arc<dyn proxy::TokenCheck>,
    usage: Arc<dyn proxy::UsageRecord>,
    metrics: Arc<metrics::Metrics>,
) -> Result<(), String> {
    let gateway = Arc::new(proxy::Gateway::new(
        checker,
        usage,
        config.upstream.clone(),
        metrics,
    )?);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(
            bind = %addr,
            upstream = config.upstream.as_ref().map(|u| u.uri("")).unwrap_or_default(),
            max_staleness_ms = config.max_staleness.as_millis() as u64,
            "gateway listening"
        );
    }
    serve::serve(listener, gateway, shutdown, SHUTDOWN_GRACE).await;
    Ok(())
}
