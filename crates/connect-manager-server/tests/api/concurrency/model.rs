//! What the serial replay tracks: the servers (names, grants, deletes) and the tokens.

use std::collections::BTreeSet;

/// What the serial replay tracks of servers: names, vault grants, the group's SERVER grants and
/// which servers are deleted.
#[derive(Clone, Default)]
pub(super) struct Servers {
    pub(super) names: Vec<String>,
    pub(super) grants: BTreeSet<(usize, usize)>,
    pub(super) group_grants: BTreeSet<usize>,
    pub(super) deleted: BTreeSet<usize>,
}

impl Servers {
    pub(super) fn name_taken_by_other(&self, server: usize, name: &str) -> bool {
        self.names.iter().enumerate().any(|(i, n)| {
            i != server && !self.deleted.contains(&i) && n.to_lowercase() == name.to_lowercase()
        })
    }
}

pub(super) struct Token {
    pub(super) server: usize,
    pub(super) name: String,
    pub(super) vaults: BTreeSet<usize>,
    pub(super) revoked_at: Option<i64>,
}
