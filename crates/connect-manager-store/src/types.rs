//! The data the store's methods take and give beyond core's model: a new server or token as the
//! store writes it, what a server authenticates against, the audit filter, a retired key, what the
//! first start did.

use connect_manager_core::Result;
use connect_manager_core::Timestamp;
use connect_manager_core::model::User;
use connect_manager_core::name::Name;
use connect_manager_core::scope::TokenScope;
use connect_manager_core::token::SealedKey;

/// A new server as the store writes it (R3): the vaults are already resolved to IDs.
#[derive(Debug, Clone)]
pub struct NewServer {
    pub id: String,
    pub name: Name,
    pub secret_verifier: String,
    pub vault_ids: Vec<String>,
}

/// What a server authenticates against (T4, C2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCredentials {
    pub server_id: String,
    pub secret_verifier: String,
    pub tokens_version: i64,
}

/// A new token as the store writes it (R7): vaults resolved to IDs, access as bits.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub server_id: String,
    pub name: Name,
    pub issuer: String,
    pub kid: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub vaults: TokenScope,
    /// Made by the token exchange (issue 18): where from. Audited as `token.exchange` rather
    /// than `token.create`.
    pub exchange: Option<connect_manager_core::api::trust::TokenExchangeOrigin>,
}

/// A new trusted issuer (issue 18).
#[derive(Debug, Clone)]
pub struct NewIssuer {
    pub name: Name,
    /// The URL, checked (`connect_manager_core::trust::check_issuer_url`).
    pub issuer: String,
}

/// A new trust policy of a server (issue 18): references resolved, patterns and ttl checked.
#[derive(Debug, Clone)]
pub struct NewTrustPolicy {
    pub server_id: String,
    pub issuer_id: String,
    pub name: Name,
    pub audience: String,
    pub subject: String,
    pub claims: std::collections::BTreeMap<String, String>,
    pub vaults: TokenScope,
    pub ttl_seconds: i64,
}

/// What introspection needs of a live server (T4, R6): its credentials and the vaults it is
/// granted now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAccess {
    pub credentials: ServerCredentials,
    pub vault_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    /// Inclusive lower bound, microseconds.
    pub since: Option<i64>,
    /// Exclusive upper bound, microseconds.
    pub until: Option<i64>,
}

/// Re-seals one signing key (see [`InstallStore::replace_master_key_check`](crate::InstallStore::replace_master_key_check)).
pub type Reseal<'a> = dyn Fn(&SealedKey) -> Result<SealedKey> + Send + Sync + 'a;

/// A signing key retired (T3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    pub kid: String,
    pub retired_at: Timestamp,
    /// Active tokens it had signed, revoked with it (0 when it was retired already).
    pub tokens_revoked: u64,
}

/// What happened at first start (A1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// The database was empty: this owner was created with the given key.
    Created(User),
    /// The database already had users: nothing was changed.
    AlreadyDone,
}
