//! T2: vault access bits, as Connect tokens carry them, and R7's access suffixes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::VaultAccess;

/// The permission bits of T2, with their names in the API's `acl` lists.
pub const PERMISSIONS: [(i64, &str); 6] = [
    (16, "view_items"),
    (32, "view_and_copy_passwords"),
    (64, "create_items"),
    (128, "edit_items"),
    (256, "archive_items"),
    (512, "delete_items"),
];

pub const READ: i64 = 16 | 32;
pub const WRITE: i64 = 64 | 128 | 256 | 512;
pub const READ_WRITE: i64 = READ | WRITE;

impl VaultAccess {
    /// The bits an access level grants (T2: read 48, write 960, both 1008).
    pub fn bits(self) -> i64 {
        match self {
            VaultAccess::Read => READ,
            VaultAccess::Write => WRITE,
            VaultAccess::ReadWrite => READ_WRITE,
        }
    }
}

/// The names of the set bits, in T2's order.
pub fn acl(bits: i64) -> Vec<String> {
    PERMISSIONS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

/// A vault a token reaches and what it may do there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VaultAcl {
    pub id: String,
    /// Permission names: view_items, view_and_copy_passwords, create_items, edit_items,
    /// archive_items, delete_items.
    pub acl: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t2_access_bits_match_connect() {
        assert_eq!(VaultAccess::Read.bits(), 48);
        assert_eq!(VaultAccess::Write.bits(), 960);
        assert_eq!(VaultAccess::ReadWrite.bits(), 1008);
        assert_eq!(acl(48), ["view_items", "view_and_copy_passwords"]);
        assert_eq!(acl(1008).len(), 6);
        assert_eq!(acl(0), Vec::<String>::new());
    }
}
