//! The conformance suite: every `Store` implementation passes it, SQLite always and PostgreSQL
//! whenever `TEST_DATABASE_URL` is set (always in CI). Each test has its own fresh database.
//!
//! One file per resource, as the store's `src/sql/` is split; `support.rs` holds what they share.

mod audit;
mod groups;
mod install;
mod lookup;
mod servers;
mod sessions;
mod support;
mod tokens;
mod trust;
mod users;
mod vaults;
