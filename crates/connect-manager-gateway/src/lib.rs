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
