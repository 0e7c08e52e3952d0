//! The API's requests and responses (bodies and query strings), below everything that speaks
//! them: the service answers with them (`connect_manager_server::api::<resource>` holds the
//! handlers of the same name), the CLI sends and reads them, the gateway reads introspection and
//! sends usage reports. None of the clients depends on the server crate.
//!
//! One module per resource, named like the server's: [`servers`], [`tokens`] (with
//! introspection and signing keys), [`vaults`], [`groups`], [`users`] (with API keys), [`usage`]
//! (G7), [`audit`] (A5), [`health`]; [`error`] is the envelope every failure answers with (E1);
//! [`ListParams`] pages every list. The resources themselves (`Server`, `Token`, …) are in
//! [`crate::model`], the page of a list in [`crate::page`], the JWKS in [`crate::token`].

pub mod audit;
pub mod error;
pub mod groups;
pub mod health;
pub mod servers;
pub mod tokens;
pub mod trust;
pub mod usage;
pub mod users;
pub mod vaults;

use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::page::PageRequest;

/// Paging of every list: newest first.
#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Items per page, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListParams {
    /// The page asked for, or `invalid_field` for a bad limit or cursor.
    pub fn page(&self) -> crate::Result<PageRequest> {
        PageRequest::parse(self.limit, self.cursor.as_deref())
    }
}
