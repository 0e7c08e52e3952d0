//! A token's scope (R7, T1–T2): the vaults it may reach and the access bits on each.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// At least one vault, each with its access bits; a vault named twice has its bits merged. The
/// only ways to make one check R7's "at least one vault", so nothing downstream checks it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScope(BTreeMap<String, i64>);

impl TokenScope {
    /// The scope of `(vault id, access bits)` pairs; 422 `invalid_request` on `vaults` when there
    /// are none.
    pub fn new(vaults: impl IntoIterator<Item = (String, i64)>) -> Result<TokenScope> {
        let mut scope = BTreeMap::new();
        for (vault_id, bits) in vaults {
            *scope.entry(vault_id).or_insert(0) |= bits;
        }
        if scope.is_empty() {
            return Err(Error::invalid_field("vaults", "name at least one vault"));
        }
        Ok(TokenScope(scope))
    }

    /// `(vault id, access bits)`, by vault ID.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, i64)> + '_ {
        self.0.iter().map(|(v, a)| (v.as_str(), *a))
    }

    /// How many vaults (never zero).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: kept so `len` reads naturally beside it.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// `(vault id, access bits)` pairs, by vault ID, as a token record holds them.
    pub fn to_vec(&self) -> Vec<(String, i64)> {
        self.0.iter().map(|(v, a)| (v.clone(), *a)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{READ, WRITE};

    #[test]
    fn r7_a_scope_needs_at_least_one_vault() {
        let err = TokenScope::new([]).unwrap_err();
        assert!(err.to_string().contains("at least one vault"), "{err}");
    }

    #[test]
    fn r7_a_vault_named_twice_has_its_access_bits_merged() {
        let scope = TokenScope::new([
            ("b".to_owned(), READ),
            ("a".to_owned(), WRITE),
            ("b".to_owned(), WRITE),
        ])
        .unwrap();
        assert_eq!(scope.len(), 2);
        assert_eq!(
            scope.to_vec(),
            vec![("a".to_owned(), WRITE), ("b".to_owned(), READ | WRITE)]
        );
    }
}
