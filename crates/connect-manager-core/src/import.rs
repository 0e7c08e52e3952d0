//! G8, the vault import's rule: what becomes of each vault a Connect server shows, against the
//! registry. Created under its real ID when the registry lacks it, renamed when its name changed
//! in Connect, otherwise left alone; never deleted. The CLI's `vault import` and the console's
//! import page both carry out these steps through the API, so each change is audited as the user
//! who ran it.

use serde::Deserialize;

use crate::model::{Vault, VaultType};
use crate::name::Name;
use crate::{id, name};

/// A vault as Connect's `GET /v1/vaults` shows it (the fields the import reads).
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectVault {
    pub id: String,
    pub name: String,
    /// `USER_CREATED`, `PERSONAL`, `EVERYONE` or `TRANSFER`.
    #[serde(rename = "type")]
    pub vault_type: Option<String>,
}

/// What the import does with one vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The registry lacks it: create it with Connect's ID, name and type.
    Create {
        id: String,
        name: Name,
        vault_type: VaultType,
    },
    /// Its name changed in Connect.
    Rename {
        id: String,
        name: Name,
        previous_name: String,
    },
    /// The registry has it as Connect shows it.
    Unchanged { id: String, name: Name },
}

/// The step for `vault` given the registry's vaults, or why it cannot be imported (its ID is not
/// one the registry can hold, its name breaks R2, its type is unknown).
pub fn plan(registry: &[Vault], vault: &ConnectVault) -> Result<Step, String> {
    if !id::is_lower(&vault.id) {
        return Err(
            "not a vault ID the registry can hold (26 digits and lower-case letters)".into(),
        );
    }
    let name = name::Name::parse("name", &vault.name).map_err(|e| e.to_string())?;
    let id = vault.id.clone();
    Ok(match registry.iter().find(|v| v.id == vault.id) {
        Some(v) if v.name == name.as_str() => Step::Unchanged { id, name },
        Some(v) => Step::Rename {
            id,
            name,
            previous_name: v.name.clone(),
        },
        None => Step::Create {
            id,
            name,
            vault_type: registry_type(vault.vault_type.as_deref())?,
        },
    })
}

/// Connect's vault types onto the registry's: the same names (Connect shows `USER_CREATED`,
/// `PERSONAL`, `EVERYONE` and `TRANSFER`; the registry also knows `PRIVATE` and `EMPLOYEE`).
/// No type: `USER_CREATED`, Connect's type for a vault people made. An unknown type is refused,
/// so that a vault never becomes grantable by a guess.
pub fn registry_type(connect_type: Option<&str>) -> Result<VaultType, String> {
    match connect_type {
        None => Ok(VaultType::UserCreated),
        Some(t) => VaultType::parse(&t.to_ascii_uppercase())
            .ok_or_else(|| format!("unknown Connect vault type '{t}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Timestamp;

    #[test]
    fn g8_connect_vault_types_map_onto_the_registrys() {
        for (connect, ours) in [
            (Some("USER_CREATED"), VaultType::UserCreated),
            (Some("EVERYONE"), VaultType::Everyone),
            (Some("TRANSFER"), VaultType::Transfer),
            (Some("PERSONAL"), VaultType::Personal),
            (Some("user_created"), VaultType::UserCreated),
            (None, VaultType::UserCreated),
        ] {
            assert_eq!(registry_type(connect), Ok(ours), "{connect:?}");
        }
        assert!(registry_type(Some("SHARED_WITH_ME")).is_err());
    }

    #[test]
    fn g8_import_creates_renames_or_leaves_never_deletes() {
        let held = Vault {
            id: "a".repeat(26),
            name: "Prod".into(),
            vault_type: VaultType::UserCreated,
            created_at: Timestamp(0),
        };
        let registry = [held.clone()];
        let connect = |id: &str, name: &str, t: Option<&str>| ConnectVault {
            id: id.into(),
            name: name.into(),
            vault_type: t.map(str::to_owned),
        };
        assert!(matches!(
            plan(&registry, &connect(&held.id, "Prod", None)),
            Ok(Step::Unchanged { .. })
        ));
        assert!(matches!(
            plan(&registry, &connect(&held.id, "Production", None)),
            Ok(Step::Rename { previous_name, .. }) if previous_name == "Prod"
        ));
        let new_id = "b".repeat(26);
        assert!(matches!(
            plan(&registry, &connect(&new_id, "Shared", Some("EVERYONE"))),
            Ok(Step::Create {
                vault_type: VaultType::Everyone,
                ..
            })
        ));
        assert!(plan(&registry, &connect("NOT-AN-ID", "x", None)).is_err());
        assert!(plan(&registry, &connect(&new_id, " ", None)).is_err());
        assert!(plan(&registry, &connect(&new_id, "x", Some("ODD"))).is_err());
    }
}
