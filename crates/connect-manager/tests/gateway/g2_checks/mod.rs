//! G2: the gateway's checks on a token, driven through its `Verifier` against the real manager.
//! Local checks refuse what is forged or foreign without a call to the manager; the manager's
//! answer is cached at most max-staleness, asked once per token at a time, and the gateway fails
//! closed when no answer is young enough.
//!
//! - `local_checks.rs`: what is refused before any call to the manager (signature, `kid`,
//!   claims), and the JWKS refetch when a `kid` is unknown.
//! - `live_answers.rs`: the manager's answer: revocation within max-staleness, one call for a
//!   cold burst, inactive answers cached, failing closed and recovering when the manager stops.
//!
//! The helpers here are shared by both.

mod live_answers;
mod local_checks;

use std::sync::Arc;
use std::time::Duration;

use connect_manager_gateway::manager::Manager;
use connect_manager_gateway::metrics::Metrics;
use connect_manager_gateway::verify::Verifier;

use crate::support::install_crypto;
use crate::support::manager::{Server, TestManager};

/// A verifier for `server`, as the gateway builds it from the server's credentials file.
pub(super) fn verifier(server: &Server, max_staleness: Duration) -> (Arc<Verifier>, Arc<Metrics>) {
    install_crypto();
    let manager = Manager::from_credentials_file(&server.credentials).unwrap();
    let metrics = Arc::new(Metrics::default());
    let v = Verifier::new(Arc::new(manager), max_staleness, metrics.clone());
    (Arc::new(v), metrics)
}

pub(super) fn calls(metrics: &Metrics) -> u64 {
    metrics
        .introspection_calls
        .load(std::sync::atomic::Ordering::Relaxed)
}

pub(super) fn hits(metrics: &Metrics) -> u64 {
    metrics
        .introspection_cache_hits
        .load(std::sync::atomic::Ordering::Relaxed)
}

pub(super) fn jwks_fetches(metrics: &Metrics) -> u64 {
    metrics
        .jwks_fetches
        .load(std::sync::atomic::Ordering::Relaxed)
}

pub(super) fn bearer(jwt: &str) -> String {
    format!("Bearer {jwt}")
}

/// A manager with vaults `prod` and `shared`, a server `web` granted both.
pub(super) async fn setup(m: &TestManager) -> (Server, String, String) {
    let prod = m.create_vault("prod").await;
    let shared = m.create_vault("shared").await;
    let web = m.create_server("web", &["prod", "shared"]).await;
    (web, prod, shared)
}
