//! The data the store's methods take and give beyond core's model: a new server or token as the
//! store writes it, what a server authenticates against, the audit filter, a retired key, what the
//! first start did.

use connect_manager_core::Result;
use connect_manager_core::Timestamp;
use connect_manager_core::model::User;
use connect_manager_core::name::Name;
use connect_manager_core::principal::Principal;
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

/// Which tokens a list shows (R10) and the expiry views (issue 18): the filters add up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Only this server's tokens (a deleted server's too); without it, tokens of live servers.
    pub server_id: Option<String>,
    /// Only live tokens (active, not expired) that expire within this many seconds from now.
    pub expiring_within: Option<i64>,
    /// Only live tokens with no use in this many seconds: never used (whatever their age), or
    /// last used longer ago (G7's last use, accurate to a minute).
    pub unused_for: Option<i64>,
}

impl TokenFilter {
    /// One server's tokens, or all the viewer may manage.
    pub fn server(server_id: Option<&str>) -> Self {
        TokenFilter {
            server_id: server_id.map(str::to_owned),
            ..TokenFilter::default()
        }
    }
}

/// The token gauges of `/metrics` (issue 18), over live tokens of live servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenGauges {
    /// Expiring within the window asked for.
    pub expiring: u64,
    /// Never used (no last use reported by a gateway, G7).
    pub never_used: u64,
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

/// A new API key as the store writes it: its hash (the key itself is never stored), its name and
/// when it expires (null: never).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key_hash: String,
    pub name: Name,
    pub expires_at: Option<Timestamp>,
}

/// What an API key is, looked up by its hash (A1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAuth {
    /// No key has this hash.
    Unknown,
    /// The key exists but expired at `expired_at`: refused, saying so.
    Expired {
        key_id: String,
        expired_at: Timestamp,
    },
    /// The key authenticates `principal`; `last_used_at` is the stored last use, so the caller
    /// writes a new one only when it is a minute old ([`UserStore::touch_api_key`](crate::UserStore::touch_api_key)).
    Valid {
        principal: Principal,
        key_id: String,
        last_used_at: Option<Timestamp>,
    },
}

/// How long a console session lives (issue 17): idle since its last use, and at most since it
/// was opened. Microseconds, as timestamps are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub idle_micros: i64,
    pub max_age_micros: i64,
}

impl SessionLimits {
    /// `last_seen_at` is written at most this often (a minute, or a quarter of a shorter idle
    /// timeout), so reading a page costs no write most of the time.
    pub fn touch_every_micros(&self) -> i64 {
        (self.idle_micros / 4).clamp(0, 60_000_000)
    }
}

/// A live console session, with who it signs in as now (read on every lookup, as an API key's
/// principal is: a removed membership counts on the next page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub user_id: String,
    pub api_key_id: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub principal: connect_manager_core::principal::Principal,
}
