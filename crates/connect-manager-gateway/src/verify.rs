//! G2: the checks on a request's token.

use std::collections::BTreeMap;

/// What a token may do now: its effective scope (the token's scope ∩ the server's live grants,
/// R6) as the manager last said, at most max-staleness ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The token's ID (its `jti`), for logs and G7.
    pub jti: String,
    /// Vault ID → access bits (T2).
    pub vaults: BTreeMap<String, u32>,
}

impl Access {
    /// The access bits this token has on `vault` (0 when the vault is out of scope).
    pub fn bits(&self, vault: &str) -> u32 {
        self.vaults.get(vault).copied().unwrap_or(0)
    }
}

/// Why a token was refused (G4 maps it to Connect's error body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Missing, malformed, foreign, revoked or expired: 401, one message for all.
    #[error("invalid token")]
    Unauthorized,
    /// The manager is unreachable and no answer is young enough: 503 (fail closed).
    #[error("the token cannot be checked now")]
    Unavailable,
}
