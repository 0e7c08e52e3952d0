//! The domain of connect-manager: identifiers, names, timestamps, resources, secrets and the
//! rules of `SPEC.md` as plain functions and types. Nothing here does I/O.

pub mod access;
pub mod api;
pub mod audit;
pub mod credentials;
pub mod duration;
pub mod error;
pub mod id;
pub mod import;
pub mod lookup;
pub mod model;
pub mod name;
pub mod page;
pub mod principal;
pub mod scope;
pub mod secret;
pub mod timestamp;
pub mod token;
pub mod trust;

pub use error::{Error, Result};
pub use timestamp::Timestamp;
