//! The API's request and response bodies, below everything that speaks them: the service answers
//! with them (`connect_manager_server::api::<resource>` holds the handlers of the same name), the
//! CLI sends and reads them, the gateway reads introspection and sends usage reports. None of the
//! clients depends on the server crate.
//!
//! One module per resource, named like the server's: [`servers`], [`tokens`] (with
//! introspection and signing keys), [`vaults`], [`groups`], [`users`] (with API keys), [`usage`]
//! (G7), [`health`]; [`error`] is the envelope every failure answers with (E1). The resources
//! themselves (`Server`, `Token`, …) are in [`crate::model`], the page of a list in
//! [`crate::page`], the JWKS in [`crate::token`].

pub mod error;
pub mod groups;
pub mod health;
pub mod servers;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod vaults;
