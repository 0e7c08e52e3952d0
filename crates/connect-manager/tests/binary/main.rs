//! The built binary, run as an operator would: `serve` (start-up, configuration, recovery) and
//! the client commands against a live service, on both backends.

mod cli;
mod database;
mod hardening;
mod import_and_last_use;
mod ops;
mod quickstart;
mod secrets_at_rest;
mod serve;
/// The support shared with tests/gateway (tests/support).
#[path = "../support/mod.rs"]
mod support;
mod upgrade;
