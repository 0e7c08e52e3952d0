//! HTTP tests: the real stack (`launch` on 127.0.0.1:0) on a fresh database of each backend.

mod harness;
mod matrix;

mod api_keys;
mod auth;
mod concurrency;
mod console;
mod denials;
mod errors;
mod exchange;
mod groups;
mod headers;
mod key_rotation;
mod keys;
mod limiter;
mod lookup;
mod metrics;
mod openapi;
mod proxy;
mod secrets;
mod servers;
mod tokens;
mod usage;
mod users;
mod vaults;
