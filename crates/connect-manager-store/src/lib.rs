//! Storage (SPEC S1): the store's API as one async trait per resource, [`Store`] their union,
//! each method one use case, each change in one transaction together with its audit event (A5).
//! Two implementations on sqlx, chosen from the URL scheme at start: [`sqlite`] (the embedded
//! default, WAL) and [`postgres`].
//!
//! Where things live:
//! - `store.rs`: the traits ([`Store`], [`InstallStore`], [`UserStore`], [`GroupStore`],
//!   [`VaultStore`], [`ServerStore`], [`TokenStore`], [`AuditStore`]); [`prelude`] brings them
//!   into scope.
//! - `types.rs`: what the methods take and give beyond core's model ([`NewServer`], [`NewToken`],
//!   [`AuditFilter`], …); `change.rs`: change notification for caches ([`Change`], [`Listeners`]).
//! - `sql/`: the SQL, written once, one file per resource, compiled into each backend module with
//!   the backend's own types (`#[path]`), so the two cannot drift apart.
//! - `sql_backend.rs`: what a backend provides the shared SQL (`SqlBackend`: how a write
//!   transaction begins, the row locks, notification); `sqlite.rs` and `postgres.rs` implement it
//!   with everything else the two databases do differently (connection setup, migrations).
//! - `error.rs`: database errors mapped to the service's, once.
//!
//! The conformance suite (`tests/conformance/`) is what both backends must pass.

use std::sync::Arc;

use connect_manager_core::{Error, Result};

mod availability;
mod change;
mod error;
mod pg_hosts;
mod pg_url;
pub mod postgres;
mod sql_backend;
pub mod sqlite;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

pub use change::{CHANGE_CHANNEL, Change, ChangeListener, Listeners};
pub(crate) use error::{DbResult, fit_for_reuse};
pub use store::{
    AuditStore, DEFAULT_API_KEY_NAME, GroupStore, InstallStore, ServerStore, SessionStore, Store,
    TokenStore, TrustStore, UserStore, VaultStore,
};
pub use types::{
    AuditFilter, Bootstrap, ConsoleSession, KeyAuth, NewApiKey, NewIssuer, NewServer, NewToken,
    NewTrustPolicy, Reseal, RetiredKey, ServerAccess, ServerCredentials, SessionLimits,
    TokenFilter, TokenGauges,
};

/// The store's traits, for code that calls them on a concrete store (a `dyn Store` needs none):
/// `use connect_manager_store::prelude::*;`.
pub mod prelude {
    pub use crate::store::{
        AuditStore, GroupStore, InstallStore, ServerStore, SessionStore, Store, TokenStore,
        TrustStore, UserStore, VaultStore,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Connections in the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

pub type DynStore = Arc<dyn Store>;

pub use pg_hosts::ConnectionSettings;

/// Opens the store named by `url` (`sqlite:…` or `postgres://…`) and runs its migrations, with
/// the default [`ConnectionSettings`].
pub async fn open(url: &str) -> Result<DynStore> {
    open_with(url, &ConnectionSettings::default()).await
}

/// Opens the store named by `url`; on PostgreSQL, every connection carries `settings`. A
/// `postgres://` URL may name several hosts (see `PostgresStore::open_with`).
pub async fn open_with(url: &str, settings: &ConnectionSettings) -> Result<DynStore> {
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => Ok(Arc::new(sqlite::SqliteStore::open(url).await?)),
        Some("postgres" | "postgresql") => Ok(Arc::new(
            postgres::PostgresStore::open_with(url, settings).await?,
        )),
        _ => Err(Error::bad_request(format!(
            "DATABASE_URL: unsupported scheme in '{}' (use sqlite:… or postgres://…)",
            redact_url(url)
        ))),
    }
}

/// A database URL fit for a log line or an error message: the password is replaced, in the
/// user information (`user:***@`, whatever it holds up to the last '@', so also a password
/// with an unencoded '@' or '/') and in a `password=` parameter.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    // `password=…` parameters first, up to the next '&' or '#'.
    let mut rest = url;
    while let Some(i) = rest.find("password=") {
        let starts_param = i > 0 && matches!(rest.as_bytes()[i - 1], b'?' | b'&');
        out.push_str(&rest[..i + "password=".len()]);
        rest = &rest[i + "password=".len()..];
        if starts_param {
            out.push_str("***");
            rest = &rest[rest.find(['&', '#']).unwrap_or(rest.len())..];
        }
    }
    out.push_str(rest);
    let url = out;
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url,
            }
        }
        _ => url,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_urls_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://app:s3cret@db:5432/cm"),
            "postgres://app:***@db:5432/cm"
        );
        assert_eq!(super::redact_url("postgres://db/cm"), "postgres://db/cm");
        assert_eq!(super::redact_url("sqlite:data/x.db"), "sqlite:data/x.db");
    }

    #[test]
    fn multi_host_urls_and_password_parameters_are_redacted() {
        for (url, redacted) in [
            (
                "postgres://app:s3cret@h1:5432,[::1]:5433/cm?target_session_attrs=read-write",
                "postgres://app:***@h1:5432,[::1]:5433/cm?target_session_attrs=read-write",
            ),
            (
                "postgres://app:p%40ss%3Aw%2Frd@h1,h2/cm",
                "postgres://app:***@h1,h2/cm",
            ),
            // Unencoded '@' and '/' in the password: still nothing of it shows.
            (
                "postgres://app:s3@c/ret@h1,h2/cm",
                "postgres://app:***@h1,h2/cm",
            ),
            (
                "postgres://app@h1,h2/cm?sslmode=require&password=s3cret&application_name=x",
                "postgres://app@h1,h2/cm?sslmode=require&password=***&application_name=x",
            ),
            (
                "postgres://h1/cm?password=s3cret",
                "postgres://h1/cm?password=***",
            ),
        ] {
            assert_eq!(super::redact_url(url), redacted);
        }
    }
}
