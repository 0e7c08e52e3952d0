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

/// The kinds of thing an audit event names by ID that have a name to show in its place (the
/// console shows the trail with names: [`target_parts`], [`actor_user`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NamedKind {
    User,
    ApiKey,
    Group,
    Vault,
    Server,
    Token,
    Issuer,
    TrustPolicy,
}

/// One piece of an audit event's target as it reads: what it is (`label`) and its ID, with the
/// kind of thing to show by name when it has one (`named`), else the ID is shown as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPart<'a> {
    pub label: &'static str,
    pub id: &'a str,
    pub named: Option<NamedKind>,
}

/// What an event's target names, in order: one part for a plain target (`server S`), two or three
/// for the composite ones the store writes (`server_vault` `S/V`: server S, vault V;
/// `group_member` `G/U`: group G, member U; `group_grant` `G/SCOPE[/S]`: group G, grant SCOPE,
/// server S). A target that does not have its type's shape (a denied attempt stores what the
/// caller typed) is one part, its type and text, named by nothing.
pub fn target_parts<'a>(target_type: &str, target_id: &'a str) -> Vec<TargetPart<'a>> {
    let part = |label, id, named| TargetPart { label, id, named };
    let pieces: Vec<&str> = target_id.split('/').collect();
    let Some(ty) = TargetType::parse(target_type) else {
        return vec![part("target", target_id, None)];
    };
    let single = |named| match pieces.len() {
        1 => Some(vec![part(ty.as_str(), target_id, Some(named))]),
        _ => None,
    };
    let parts = match (ty, pieces.as_slice()) {
        (TargetType::User, _) => single(NamedKind::User),
        (TargetType::ApiKey, _) => single(NamedKind::ApiKey),
        (TargetType::Group, _) => single(NamedKind::Group),
        (TargetType::Vault, _) => single(NamedKind::Vault),
        (TargetType::Server, _) => single(NamedKind::Server),
        (TargetType::Token, _) => single(NamedKind::Token),
        (TargetType::Issuer, _) => single(NamedKind::Issuer),
        (TargetType::TrustPolicy, _) => single(NamedKind::TrustPolicy),
        (TargetType::ServerVault, [server, vault]) => Some(vec![
            part("server", server, Some(NamedKind::Server)),
            part("vault", vault, Some(NamedKind::Vault)),
        ]),
        (TargetType::GroupMember, [group, user]) => Some(vec![
            part("group", group, Some(NamedKind::Group)),
            part("member", user, Some(NamedKind::User)),
        ]),
        (TargetType::GroupGrant, [group, scope, rest @ ..]) if rest.len() <= 1 => {
            let mut parts = vec![
                part("group", group, Some(NamedKind::Group)),
                part("grant", scope, None),
            ];
            parts.extend(
                rest.iter()
                    .map(|s| part("server", s, Some(NamedKind::Server))),
            );
            Some(parts)
        }
        _ => None,
    };
    parts
        .filter(|parts| parts.iter().all(|p| !p.id.is_empty()))
        .unwrap_or_else(|| vec![part(ty.as_str(), target_id, None)])
}

/// The user an event's actor is, when it is one: a user's ID, not `system:…` nor an exchange's
/// `exchange:…` (which carry no user).
pub fn actor_user(actor_id: &str) -> Option<&str> {
    (!actor_id.is_empty() && !actor_id.contains(':')).then_some(actor_id)
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

    #[test]
    fn a5_composite_targets_name_each_thing_they_join() {
        let named = |parts: Vec<TargetPart<'_>>| -> Vec<(&str, String, Option<NamedKind>)> {
            parts
                .into_iter()
                .map(|p| (p.label, p.id.to_owned(), p.named))
                .collect()
        };
        assert_eq!(
            named(target_parts("server", "S1")),
            [("server", "S1".into(), Some(NamedKind::Server))]
        );
        assert_eq!(
            named(target_parts("server_vault", "S1/v1")),
            [
                ("server", "S1".into(), Some(NamedKind::Server)),
                ("vault", "v1".into(), Some(NamedKind::Vault))
            ]
        );
        assert_eq!(
            named(target_parts("group_member", "g/U")),
            [
                ("group", "g".into(), Some(NamedKind::Group)),
                ("member", "U".into(), Some(NamedKind::User))
            ]
        );
        assert_eq!(
            named(target_parts("group_grant", "g/SERVER/S1")),
            [
                ("group", "g".into(), Some(NamedKind::Group)),
                ("grant", "SERVER".into(), None),
                ("server", "S1".into(), Some(NamedKind::Server))
            ]
        );
        assert_eq!(
            named(target_parts("group_grant", "g/CREATE_SERVERS")),
            [
                ("group", "g".into(), Some(NamedKind::Group)),
                ("grant", "CREATE_SERVERS".into(), None)
            ]
        );
        // What a denied attempt stored as typed, and what has no name, stay text.
        assert_eq!(
            named(target_parts("server", "a/b")),
            [("server", "a/b".into(), None)]
        );
        assert_eq!(
            named(target_parts("server_vault", "S1/")),
            [("server_vault", "S1/".into(), None)]
        );
        assert_eq!(
            named(target_parts("signing_key", "k1")),
            [("signing_key", "k1".into(), None)]
        );
        assert_eq!(
            named(target_parts("nonsense", "x")),
            [("target", "x".into(), None)]
        );
        assert_eq!(actor_user("U1"), Some("U1"));
        assert_eq!(actor_user("system:bootstrap"), None);
        assert_eq!(actor_user("exchange:p:https://i#s"), None);
    }
}
