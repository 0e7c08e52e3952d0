//! The gateway (SPEC G), run as operators run it: the real `connect-manager serve` as the
//! manager, the real `connect-manager gateway`, and a Connect API stand-in
//! (tests/gateway/connect_standin.py). One file per rule; `exchange.rs`: tokens from the token
//! exchange (issue 18), traded for a real identity provider's tokens.

/// The support shared with tests/binary (tests/support).
#[path = "../support/mod.rs"]
mod support;

mod exchange;
mod g1_settings;
mod g2_checks;
mod g3_operations;
mod g4_answers;
mod g5_forward_auth;
mod g6_own_endpoints;
mod g7_usage;
