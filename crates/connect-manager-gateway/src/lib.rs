//! `connect-manager gateway` (SPEC G): a reverse proxy in front of one 1Password Connect
//! server's API that lets through exactly what a connect-manager token allows.
//!
//! The seam inside the crate:
//! - [`manager`]: the gateway's client of the manager (JWKS, introspection, usage reports),
//!   authenticated as the server from the credentials file (G1, T4).
//! - [`verify`]: G2. [`verify::Verifier::check`] turns a request's `Authorization` header into the
//!   token's effective access, or a refusal. Local checks first, then the manager's answer,
//!   cached at most max-staleness, one call in flight per token, failing closed (`verify/`:
//!   `mod.rs` the order of the checks, `jwks.rs` the keys, `cache.rs` the answers).
//! - [`proxy`]: G3–G6 on one decision per request (`proxy/`: `mod.rs` the decision and the log
//!   event, `refused.rs` the refusals and header checks, `forward.rs` G4, `vault_list.rs` G4's
//!   cut of the vault list, `forward_auth.rs` G5, `own.rs` G6's endpoints).
//! - [`usage`]: G7. The proxy records each allowed request; reports go to the manager in
//!   batches, at most once a minute per token.
//! - [`metrics`]: G6 counters shared by all parts.
//! - everything else (settings G1, the operation table G3, the accept loop, request metrics) is
//!   built on [`verify::Verifier`].

pub mod manager;
pub mod metrics;
pub mod usage;
pub mod verify;

pub mod config;
pub mod conn;
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

/// A gateway ready to serve: settings checked, credentials file read, the verifier and the
/// usage reporter built.
pub struct Prepared {
    config: GatewayConfig,
    verifier: Arc<verify::Verifier>,
    usage: Arc<usage::Usage>,
    metrics: Arc<metrics::Metrics>,
}

/// Reads the credentials file and builds the verifier (G1: a bad file is a bad setting).
pub fn prepare(config: &GatewayConfig) -> Result<Prepared, String> {
    let manager = Arc::new(
        manager::Manager::from_credentials_file(&config.credentials_file).map_err(|e| {
            format!(
                "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE: {}: {e}",
                config.credentials_file.display()
            )
        })?,
    );
    let metrics = Arc::new(metrics::Metrics::default());
    let verifier = Arc::new(verify::Verifier::new(
        manager.clone(),
        config.max_staleness,
        metrics.clone(),
    ));
    let usage = Arc::new(usage::Usage::new(manager, metrics.clone()));
    Ok(Prepared {
        config: config.clone(),
        verifier,
        usage,
        metrics,
    })
}

/// Serves a prepared gateway on `listener` until `shutdown`, then flushes the usage record.
pub async fn run(
    prepared: Prepared,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let Prepared {
        config,
        verifier,
        usage,
        metrics,
    } = prepared;
    // One shutdown for the server and the usage reporter: the reporter's last batch goes after
    // the requests in flight are answered.
    let first = verifier.clone();
    tokio::spawn(async move {
        if let Err(e) = first.refresh_jwks().await {
            tracing::warn!(error = %e, "the manager's JWKS cannot be loaded yet; not ready");
        }
    });
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let reporter = usage.start(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    let served = launch_with(&config, listener, shutdown, verifier, usage, metrics).await;
    let _ = stop_tx.send(true);
    if tokio::time::timeout(SHUTDOWN_GRACE, reporter)
        .await
        .is_err()
    {
        tracing::warn!("the last usage report did not finish in time");
    }
    served
}

/// [`prepare`] then [`run`].
pub async fn launch(
    config: GatewayConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    run(prepare(&config)?, listener, shutdown).await
}

impl proxy::TokenCheck for verify::Verifier {
    fn check<'a>(
        &'a self,
        authorization: Option<&'a str>,
    ) -> proxy::BoxFuture<'a, Result<std::sync::Arc<verify::Access>, verify::Refusal>> {
        Box::pin(verify::Verifier::check(self, authorization))
    }

    fn jwks_loaded(&self) -> bool {
        verify::Verifier::jwks_loaded(self)
    }

    fn manager_reachable(&self) -> proxy::BoxFuture<'_, bool> {
        Box::pin(verify::Verifier::manager_reachable(self))
    }
}

impl proxy::UsageRecord for usage::Usage {
    fn record(&self, jti: &str, ip: std::net::IpAddr) {
        usage::Usage::record(self, jti, ip);
    }
}
