//! Who is calling and what they may do (A2–A3). Loaded from the database on every request, so a
//! deleted user, a deleted key or a removed membership loses access on the very next request.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    /// Member of the built-in Owners group: may do everything (A2).
    pub owner: bool,
    /// Member of a group with a MANAGER grant: may create and manage every server (A3).
    pub manager: bool,
    /// Member of a group with an ALL_SERVERS grant: may manage every server (A3).
    pub all_servers: bool,
    /// Servers granted one by one to the caller's groups (A3).
    pub servers: BTreeSet<String>,
}

impl Principal {
    pub fn may_create_servers(&self) -> bool {
        self.owner || self.manager
    }

    /// Sees and manages every server, current and future.
    pub fn manages_all_servers(&self) -> bool {
        self.owner || self.manager || self.all_servers
    }

    /// A4: sees (and manages) this live server. What the caller may not see is 404, never 403.
    pub fn may_manage_server(&self, server_id: &str) -> bool {
        self.manages_all_servers() || self.servers.contains(server_id)
    }

    /// R4, A4: sees a deleted server, by its exact ID, so that its tokens stay listed: callers
    /// who manage every server.
    pub fn sees_deleted_servers(&self) -> bool {
        self.manages_all_servers()
    }
}

/// What an action on no particular server needs (A2–A3); `Principal::allows` decides. An action
/// on a server needs no permission of its own: seeing the server is managing it
/// ([`Principal::may_manage_server`], A4), so one the caller may not manage is not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Owners only: users, groups, memberships, group grants, the vault registry, audit.
    Owner,
    /// Owners and MANAGER groups.
    CreateServers,
}

impl Principal {
    pub fn allows(&self, permission: Permission) -> bool {
        match permission {
            Permission::Owner => self.owner,
            Permission::CreateServers => self.may_create_servers(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a3_grants_give_exactly_their_scope() {
        let owner = Principal {
            owner: true,
            ..Default::default()
        };
        let manager = Principal {
            manager: true,
            ..Default::default()
        };
        let all = Principal {
            all_servers: true,
            ..Default::default()
        };
        let one = Principal {
            servers: ["X".to_string()].into(),
            ..Default::default()
        };
        let nobody = Principal::default();
        for (p, owner_ok, create_ok, x_ok, y_ok) in [
            (&owner, true, true, true, true),
            (&manager, false, true, true, true),
            (&all, false, false, true, true),
            (&one, false, false, true, false),
            (&nobody, false, false, false, false),
        ] {
            assert_eq!(p.allows(Permission::Owner), owner_ok);
            assert_eq!(p.allows(Permission::CreateServers), create_ok);
            assert_eq!(p.may_manage_server("X"), x_ok);
            assert_eq!(p.may_manage_server("Y"), y_ok);
        }
    }
}
