//! The HTTP service: configuration, start-up, router, extractors, handlers, errors, OpenAPI.
//! [`launch`] runs it on a listener the caller bound, until `shutdown` resolves: the binary binds
//! the configured address, tests bind `127.0.0.1:0`.

pub mod api;
pub mod cache;
pub mod client;
pub mod config;
pub mod console;
pub mod data_lock;
pub mod error;
pub mod exchange;
pub mod extract;
pub mod limiter;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod serve;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tokens;
pub mod unavailable_log;

pub use config::{Config, ConfigError, ServeArgs};
pub use startup::{StartError, launch, open_checked, open_store, prepare};
