//! Rows as the SQL reads them (`#[derive(sqlx::FromRow)]`, fields named as the columns), each
//! with its column list and its conversion into core's model.

use connect_manager_core::model::{
    ApiKeyInfo, AuditEvent, Server, ServerState, ServerVault, TokenRecord, TokenState, User, Vault,
    VaultType,
};
use connect_manager_core::token::SealedKey;
use connect_manager_core::{Error, Result, Timestamp};

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    id: String,
    name: String,
    email: String,
    created_at: i64,
}
pub(super) const USER_COLS: &str = "id, name, email, created_at";

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User {
            id: r.id,
            name: r.name,
            email: r.email,
            created_at: Timestamp(r.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ApiKeyRow {
    id: String,
    user_id: String,
    name: String,
    created_at: i64,
    expires_at: Option<i64>,
    /// `NOT api_key_live(…)` at the time of the read.
    expired: bool,
    last_used_at: Option<i64>,
}

impl From<ApiKeyRow> for ApiKeyInfo {
    fn from(r: ApiKeyRow) -> ApiKeyInfo {
        ApiKeyInfo {
            id: r.id,
            user_id: r.user_id,
            name: r.name,
            created_at: Timestamp(r.created_at),
            expires_at: r.expires_at.map(Timestamp),
            expired: r.expired,
            last_used_at: r.last_used_at.map(Timestamp),
        }
    }
}

/// An API key as authentication reads it, one row per grant of its user's groups.
#[derive(sqlx::FromRow)]
pub(super) struct KeyPrincipalRow {
    pub(super) key_id: String,
    pub(super) user_id: String,
    pub(super) key_hash: String,
    pub(super) expires_at: Option<i64>,
    pub(super) last_used_at: Option<i64>,
    /// `api_key_live(…)`.
    pub(super) live: bool,
    pub(super) scope: Option<String>,
    pub(super) server_id: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(super) struct GroupRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) created_at: i64,
}
pub(super) const GROUP_COLS: &str = "id, name, created_at";

#[derive(sqlx::FromRow)]
pub(super) struct VaultRow {
    id: String,
    name: String,
    #[sqlx(rename = "type")]
    vault_type: String,
    created_at: i64,
}
pub(super) const VAULT_COLS: &str = "id, name, type, created_at";

impl VaultRow {
    pub(super) fn into_vault(self) -> Result<Vault> {
        Ok(Vault {
            vault_type: VaultType::parse(&self.vault_type).ok_or_else(|| {
                Error::internal(format!(
                    "vault {} has unknown type {}",
                    self.id, self.vault_type
                ))
            })?,
            id: self.id,
            name: self.name,
            created_at: Timestamp(self.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ServerRow {
    pub(super) id: String,
    name: String,
    state: String,
    created_at: i64,
    updated_at: i64,
    creator_id: String,
    tokens_version: i64,
}
pub(super) const SERVER_COLS: &str =
    "id, name, state, created_at, updated_at, creator_id, tokens_version";

impl ServerRow {
    /// The server, with `vaults` as its vault grants.
    pub(super) fn into_server(self, vaults: Vec<ServerVault>) -> Result<Server> {
        Ok(Server {
            state: ServerState::parse(&self.state).ok_or_else(|| {
                Error::internal(format!(
                    "server {} has unknown state {}",
                    self.id, self.state
                ))
            })?,
            id: self.id,
            name: self.name,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            creator_id: self.creator_id,
            tokens_version: self.tokens_version,
            vaults,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    pub(super) id: String,
    server_id: String,
    name: String,
    state: String,
    issuer: String,
    kid: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    last_used_ip: Option<String>,
    exchange_issuer: Option<String>,
    exchange_subject: Option<String>,
    exchange_policy_id: Option<String>,
}
pub(super) const TOKEN_COLS: &str = "t.id, t.server_id, t.name, t.state, t.issuer, t.kid, \
     t.created_at, t.expires_at, t.revoked_at, t.last_used_at, t.last_used_ip, \
     t.exchange_issuer, t.exchange_subject, t.exchange_policy_id";

impl TokenRow {
    /// The token record, with `vaults` as its scope.
    pub(super) fn into_record(self, vaults: Vec<(String, i64)>) -> Result<TokenRecord> {
        Ok(TokenRecord {
            state: TokenState::parse(&self.state).ok_or_else(|| {
                Error::internal(format!("token {} has state {}", self.id, self.state))
            })?,
            vaults,
            id: self.id,
            server_id: self.server_id,
            name: self.name,
            issuer: self.issuer,
            kid: self.kid,
            created_at: Timestamp(self.created_at),
            expires_at: self.expires_at.map(Timestamp),
            revoked_at: self.revoked_at.map(Timestamp),
            last_used_at: self.last_used_at.map(Timestamp),
            last_used_ip: self.last_used_ip,
            exchange: match (
                self.exchange_issuer,
                self.exchange_subject,
                self.exchange_policy_id,
            ) {
                (Some(issuer), Some(subject), Some(policy_id)) => {
                    Some(connect_manager_core::api::trust::TokenExchangeOrigin {
                        issuer,
                        subject,
                        policy_id,
                    })
                }
                _ => None,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct KeyRow {
    kid: String,
    sealed_private: String,
    x: String,
    y: String,
}
pub(super) const KEY_COLS: &str = "kid, sealed_private, x, y";

impl From<KeyRow> for SealedKey {
    fn from(r: KeyRow) -> SealedKey {
        SealedKey {
            kid: r.kid,
            sealed_private: r.sealed_private,
            x: r.x,
            y: r.y,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    id: String,
    at: i64,
    actor_id: String,
    action: String,
    target_type: String,
    target_id: String,
    request_id: String,
    client_ip: String,
    outcome: String,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> AuditEvent {
        AuditEvent {
            id: r.id,
            at: Timestamp(r.at),
            actor_id: r.actor_id,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            request_id: r.request_id,
            client_ip: r.client_ip,
            outcome: r.outcome,
        }
    }
}
