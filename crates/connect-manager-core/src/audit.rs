//! The audit trail's vocabulary (A5), spelled once: what was done ([`AuditAction`]) to what kind
//! of thing ([`TargetType`]). Authorisation (a denied attempt) and the store (a change) write the
//! same values, and `GET /v1/audit/events?action=` filters by the same strings. An event as the
//! trail holds it ([`AuditEvent`], its [`Outcome`]) and the bound on a target ([`audit_target`])
//! live here too.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::timestamp::Timestamp;

macro_rules! vocabulary {
    ($(#[$doc:meta])* $ty:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $ty {
            $($(#[$vdoc])* $variant,)*
        }

        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant,)*];

            /// The value as stored and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)*
                }
            }

            /// The value whose text this is.
            pub fn parse(text: &str) -> Option<$ty> {
                match text {
                    $($text => Some($ty::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// What an audit event records as done (or attempted and denied), as `resource.verb`.
    AuditAction {
        UserCreate = "user.create",
        UserList = "user.list",
        UserGet = "user.get",
        UserDelete = "user.delete",
        ApiKeyCreate = "api_key.create",
        ApiKeyList = "api_key.list",
        ApiKeyDelete = "api_key.delete",
        GroupCreate = "group.create",
        GroupList = "group.list",
        GroupGet = "group.get",
        GroupDelete = "group.delete",
        GroupMemberAdd = "group.member.add",
        GroupMemberRemove = "group.member.remove",
        GroupGrant = "group.grant",
        GroupRevoke = "group.revoke",
        VaultCreate = "vault.create",
        VaultRename = "vault.rename",
        VaultDelete = "vault.delete",
        VaultGrant = "vault.grant",
        VaultRevoke = "vault.revoke",
        ServerCreate = "server.create",
        ServerGet = "server.get",
        ServerRename = "server.rename",
        ServerDelete = "server.delete",
        ServerCredentialsRotate = "server.credentials.rotate",
        TokenCreate = "token.create",
        TokenList = "token.list",
        TokenRename = "token.rename",
        TokenRevoke = "token.revoke",
        SigningKeyCreate = "signing_key.create",
        SigningKeyRetire = "signing_key.retire",
        MasterKeyUpgrade = "master_key.upgrade",
        AuditList = "audit.list",
        /// A console sign-in (issue 17): a session opened with an API key.
        SessionCreate = "session.create",
        /// A console sign-out: the session ended at once.
        SessionDelete = "session.delete",
        IssuerCreate = "issuer.create",
        IssuerGet = "issuer.get",
        IssuerDelete = "issuer.delete",
        TrustPolicyCreate = "trust_policy.create",
        TrustPolicyList = "trust_policy.list",
        TrustPolicyGet = "trust_policy.get",
        TrustPolicyDelete = "trust_policy.delete",
        /// A token issued by the token exchange (issue 18): the actor is the workload
        /// (`exchange:<policy ID>:<issuer>#<subject>`), the target the token.
        TokenExchange = "token.exchange",
        /// `/readyz`'s write probe: inserted and deleted in one transaction, never seen.
        StorageProbe = "storage.probe",
    }
}

vocabulary! {
    /// The kind of thing an audit event's `target_id` names.
    TargetType {
        User = "user",
        ApiKey = "api_key",
        Group = "group",
        GroupMember = "group_member",
        GroupGrant = "group_grant",
        Vault = "vault",
        Server = "server",
        ServerVault = "server_vault",
        Token = "token",
        SigningKey = "signing_key",
        Installation = "installation",
        Audit = "audit",
        Issuer = "issuer",
        TrustPolicy = "trust_policy",
        Storage = "storage",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    pub at: Timestamp,
    pub actor_id: String,
    /// What was done, as `resource.verb` (`server.create`, `vault.grant`, …).
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub request_id: String,
    pub client_ip: String,
    pub outcome: String,
}

/// The most characters of an audit event's `target_id`.
pub const MAX_AUDIT_TARGET_CHARS: usize = 255;

/// An audit event's target as stored (A5): IDs pass unchanged; a reference the caller typed (an
/// owner-only endpoint refuses before resolving it) has its control and format characters
/// escaped as `\u{…}` and is cut to [`MAX_AUDIT_TARGET_CHARS`] characters (the last one `…`), so
/// that what a caller sends can neither bloat the trail nor garble whoever reads it.
pub fn audit_target(raw: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| !c.is_control() && !crate::name::is_format(c);
    if raw.chars().all(plain) && raw.chars().count() <= MAX_AUDIT_TARGET_CHARS {
        return std::borrow::Cow::Borrowed(raw);
    }
    let pieces: Vec<String> = raw
        .chars()
        .map(|c| {
            if plain(c) {
                c.to_string()
            } else {
                format!("\\u{{{:x}}}", c as u32)
            }
        })
        .collect();
    let total: usize = pieces.iter().map(|p| p.chars().count()).sum();
    if total <= MAX_AUDIT_TARGET_CHARS {
        return std::borrow::Cow::Owned(pieces.concat());
    }
    let mut out = String::new();
    let mut chars = 0;
    for piece in &pieces {
        let n = piece.chars().count();
        if chars + n > MAX_AUDIT_TARGET_CHARS - 1 {
            break;
        }
        out.push_str(piece);
        chars += n;
    }
    out.push('…');
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a5_every_action_and_target_type_reads_back_from_its_text() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
        }
        for t in TargetType::ALL {
            assert_eq!(TargetType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(AuditAction::parse("server.list"), None);
    }

    #[test]
    fn a5_audit_targets_are_bounded_and_escaped() {
        assert_eq!(
            audit_target("ABCDEFGHJKMNPQRSTVWXYZ0123"),
            "ABCDEFGHJKMNPQRSTVWXYZ0123"
        );
        assert_eq!(audit_target("a\u{1}b\u{202E}c"), "a\\u{1}b\\u{202e}c");
        let raw = "x\n".repeat(30_000);
        let long = audit_target(&raw);
        assert!(long.chars().count() <= MAX_AUDIT_TARGET_CHARS);
        assert!(long.ends_with('…') && !long.contains('\n'));
        assert!(long.starts_with("x\\u{a}x"));
        assert_eq!(audit_target(&"é".repeat(255)).chars().count(), 255);
        assert!(audit_target(&"é".repeat(256)).ends_with('…'));
    }
}
