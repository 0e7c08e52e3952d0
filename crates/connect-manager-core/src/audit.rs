//! The audit trail's vocabulary (A5), spelled once: what was done ([`AuditAction`]) to what kind
//! of thing ([`TargetType`]). Authorisation (a denied attempt) and the store (a change) write the
//! same values, and `GET /v1/audit/events?action=` filters by the same strings.

use std::fmt;

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
        Storage = "storage",
    }
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
}
