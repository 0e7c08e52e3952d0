//! The resources of SPEC "Resources", as the API shows them (JSON, snake_case).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::timestamp::Timestamp;

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("RFC 3339 timestamp, UTC"))
            .into()
    }
}
impl ToSchema for Timestamp {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerState {
    Active,
    Deleted,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Active => "ACTIVE",
            ServerState::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(ServerState::Active),
            "DELETED" => Some(ServerState::Deleted),
            _ => None,
        }
    }
}

/// A server's access to a granted vault. A Connect server may read and write the vaults it is
/// granted; tokens narrow that down (R7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VaultAccess {
    Read,
    Write,
    ReadWrite,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerVault {
    pub id: String,
    pub name: String,
    pub access: VaultAccess,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Server {
    #[schema(pattern = "^[0-9A-Z]{26}$")]
    pub id: String,
    pub name: String,
    pub state: ServerState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub creator_id: String,
    /// Bumped each time the server's credentials are rotated (C3).
    pub tokens_version: i64,
    /// The vaults the server may reach now, by name.
    pub vaults: Vec<ServerVault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VaultType {
    UserCreated,
    Everyone,
    Transfer,
    Personal,
    Private,
    Employee,
}

impl VaultType {
    pub const ALL: [VaultType; 6] = [
        VaultType::UserCreated,
        VaultType::Everyone,
        VaultType::Transfer,
        VaultType::Personal,
        VaultType::Private,
        VaultType::Employee,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VaultType::UserCreated => "USER_CREATED",
            VaultType::Everyone => "EVERYONE",
            VaultType::Transfer => "TRANSFER",
            VaultType::Personal => "PERSONAL",
            VaultType::Private => "PRIVATE",
            VaultType::Employee => "EMPLOYEE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// R5: built-in Personal, Private and Employee vaults are never granted to a Connect server.
    pub fn is_grantable(self) -> bool {
        !matches!(
            self,
            VaultType::Personal | VaultType::Private | VaultType::Employee
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Vault {
    #[schema(pattern = "^[0-9a-z]{26}$")]
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub vault_type: VaultType,
    pub created_at: Timestamp,
}

/// R5 as a function (built-in vaults are refused): the error a grant of `vault` gets, if any.
pub fn check_grantable(vault: &Vault) -> crate::Result<()> {
    if vault.vault_type.is_grantable() {
        Ok(())
    } else {
        Err(crate::Error::Invalid {
            code: "vault_not_grantable",
            message: "can't grant a Connect server access to a built-in Personal, Private or Employee vault".into(),
            details: serde_json::json!({ "vault": vault.id, "type": vault.vault_type.as_str() }),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    #[schema(pattern = "^[0-9A-Z]{26}$")]
    pub id: String,
    pub name: String,
    pub email: String,
    pub created_at: Timestamp,
}

/// An API key's metadata; the key itself is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyInfo {
    pub id: String,
    pub user_id: String,
    /// What the key is for (R2; `key` unless named at creation; `bootstrap` for the first
    /// owner's, `owner-key` for one made by `admin owner-key`).
    pub name: String,
    pub created_at: Timestamp,
    /// When the key stops authenticating; null when it does not expire.
    #[schema(required = true)]
    pub expires_at: Option<Timestamp>,
    /// Whether `expires_at` has passed: the key is refused (401, saying it expired).
    pub expired: bool,
    /// When the key last authenticated a request, accurate to a minute; null until then.
    #[schema(required = true)]
    pub last_used_at: Option<Timestamp>,
}

/// How often an API key's `last_used_at` is written at most: a key used all the time costs one
/// write a minute, and authenticating stays a read otherwise.
pub const API_KEY_LAST_USE_RESOLUTION_SECONDS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GrantScope {
    /// Secrets Automation manager: may create servers and manage every server.
    Manager,
    /// May manage every current and future server, but not create servers.
    AllServers,
    /// May manage one server.
    Server,
}

impl GrantScope {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantScope::Manager => "MANAGER",
            GrantScope::AllServers => "ALL_SERVERS",
            GrantScope::Server => "SERVER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            GrantScope::Manager,
            GrantScope::AllServers,
            GrantScope::Server,
        ]
        .into_iter()
        .find(|g| g.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct GroupGrant {
    pub scope: GrantScope,
    /// The server, for a SERVER grant; null otherwise.
    #[schema(required = true)]
    pub server_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    #[schema(pattern = "^[0-9a-z]{26}$")]
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    /// User IDs.
    pub members: Vec<String>,
    pub grants: Vec<GroupGrant>,
}

/// The name of the built-in group whose members may do everything (A2).
pub const OWNERS_GROUP: &str = "Owners";

// The audit trail's types live with its vocabulary; these paths stay for the crates that import
// them from here.
pub use crate::audit::{AuditEvent, MAX_AUDIT_TARGET_CHARS, Outcome, audit_target};

/// Who acts, for the audit trail: written with every change in the same transaction (A5).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: String,
    pub request_id: String,
    pub client_ip: String,
}

impl Actor {
    /// Changes made beside the database by `connect-manager admin …` or at start-up.
    pub fn system(what: &str) -> Self {
        Actor {
            user_id: format!("system:{what}"),
            request_id: crate::id::new_lower(),
            client_ip: "local".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r5_builtin_vault_types_are_not_grantable() {
        let grantable: Vec<_> = VaultType::ALL
            .into_iter()
            .filter(|t| t.is_grantable())
            .collect();
        assert_eq!(
            grantable,
            [
                VaultType::UserCreated,
                VaultType::Everyone,
                VaultType::Transfer
            ]
        );
        for t in VaultType::ALL {
            assert_eq!(VaultType::parse(t.as_str()), Some(t));
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::Value::String(t.as_str().into())
            );
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenState {
    Active,
    Revoked,
}

impl TokenState {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "ACTIVE",
            TokenState::Revoked => "REVOKED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(TokenState::Active),
            "REVOKED" => Some(TokenState::Revoked),
            _ => None,
        }
    }
}

/// A token as the API shows it (SPEC "Resources"). The JWT is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Token {
    /// The JWT's `jti`.
    #[schema(pattern = "^[0-9a-z]{26}$")]
    pub id: String,
    pub name: String,
    /// ACTIVE until revoked; an expired token stays ACTIVE with `expired: true` (R12).
    pub state: TokenState,
    pub issuer: String,
    pub audience: Vec<String>,
    pub features: Vec<String>,
    /// The scope as issued.
    pub vaults: Vec<crate::access::VaultAcl>,
    pub created_at: Timestamp,
    /// Null when the token does not expire.
    #[schema(required = true)]
    pub expires_at: Option<Timestamp>,
    pub expired: bool,
    /// Null while the token is active.
    #[schema(required = true)]
    pub revoked_at: Option<Timestamp>,
    /// The server's ID.
    pub integration_id: String,
    /// When a gateway last let a request with this token through (G7), accurate to a minute;
    /// null until then.
    #[schema(required = true)]
    pub last_used_at: Option<Timestamp>,
    /// The client address the gateway saw on that request; null until the token is used.
    #[schema(required = true)]
    pub last_used_ip: Option<String>,
    /// Where a token issued by the token exchange came from (issue 18); null for a token made
    /// with `POST …/tokens`.
    #[schema(required = true)]
    pub exchange: Option<crate::api::trust::TokenExchangeOrigin>,
}

/// A token as stored: everything but the JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub server_id: String,
    pub name: String,
    pub state: TokenState,
    pub issuer: String,
    pub kid: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// `(vault ID, access bits)` as issued.
    pub vaults: Vec<(String, i64)>,
    /// G7: last use as the gateways reported it (accurate to a minute).
    pub last_used_at: Option<Timestamp>,
    pub last_used_ip: Option<String>,
    /// The exchange that issued it, if one did.
    pub exchange: Option<crate::api::trust::TokenExchangeOrigin>,
}

impl TokenRecord {
    /// R12: expired at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// R8, R12: a token is valid while active and not expired.
    pub fn is_valid(&self, now: Timestamp) -> bool {
        self.state == TokenState::Active && !self.is_expired(now)
    }

    /// R6: the scope that is still granted to the server.
    pub fn effective_vaults(&self, granted: &dyn Fn(&str) -> bool) -> Vec<crate::access::VaultAcl> {
        self.vaults
            .iter()
            .filter(|(vault, _)| granted(vault))
            .map(|(vault, bits)| crate::access::VaultAcl {
                id: vault.clone(),
                acl: crate::access::acl(*bits),
            })
            .collect()
    }

    pub fn view(&self, now: Timestamp) -> Token {
        Token {
            id: self.id.clone(),
            name: self.name.clone(),
            state: self.state,
            issuer: self.issuer.clone(),
            audience: vec![crate::token::AUDIENCE.into()],
            features: vec![crate::token::FEATURE_VAULT_ACCESS.into()],
            vaults: self.effective_vaults(&|_| true),
            created_at: self.created_at,
            expires_at: self.expires_at,
            expired: self.is_expired(now),
            revoked_at: self.revoked_at,
            integration_id: self.server_id.clone(),
            last_used_at: self.last_used_at,
            last_used_ip: self.last_used_ip.clone(),
            exchange: self.exchange.clone(),
        }
    }
}

impl crate::lookup::Named for TokenRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}
