//! The vault registry ([`VaultStore`]), and R5 where a grant reads its vault
//! ([`load_grantable_vault`]).

use async_trait::async_trait;
use connect_manager_core::id::new_lower;
use connect_manager_core::lookup::Found;
use connect_manager_core::model::{Actor, Vault, VaultType, check_grantable};
use connect_manager_core::name::{Name, name_key};
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::{Error, Result, Timestamp};
use sqlx::AssertSqlSafe;

use super::rows::{VAULT_COLS, VaultRow};
use super::{Conn, ThisStore, commit, find_rows, name_taken, page_rows, require_changed};
use crate::sql_backend::{NameTable, SqlBackend};
use crate::{Change, DbResult, VaultStore};

/// The vault `vault_id`, its row read with `lock` (a backend's `LOCK_*` clause, or none), or 404.
async fn load_vault(conn: &mut Conn, vault_id: &str, lock: &str) -> Result<Vault> {
    let sql = format!("SELECT {VAULT_COLS} FROM vaults WHERE id = $1{lock}");
    let row: Option<VaultRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(vault_id)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    row.map(VaultRow::into_vault)
        .transpose()?
        .ok_or_else(|| Error::not_found("vault", vault_id))
}

/// A vault about to be granted (R3, R5): it must exist, and R5 (built-in vaults are refused) is
/// `check_grantable`, called here and nowhere else in the store: every grant (`create_server`,
/// `grant_vault`) reads its vault through this. It stays so until the grant commits:
/// `LOCK_VAULT_KEY` holds the vault row against a concurrent delete, which otherwise could
/// commit between this read and the grant's insert (whose foreign key then failed with a 500);
/// the delete waits, then ends the new grant with the vault (R6).
pub(super) async fn load_grantable_vault(conn: &mut Conn, vault_id: &str) -> Result<()> {
    let vault = load_vault(conn, vault_id, ThisStore::LOCK_VAULT_KEY).await?;
    check_grantable(&vault)
}

impl ThisStore {
    /// A new vault with `id` (fresh, or given by G8's caller): refused when a vault has or had
    /// the ID, or when the name is taken.
    async fn insert_vault(
        &self,
        actor: &Actor,
        id: &str,
        name: &Name,
        vault_type: VaultType,
    ) -> Result<Vault> {
        let mut tx = self.write_tx().await?;
        // Also held by vault delete: a vault cannot be deleted between the check and the insert.
        ThisStore::lock_names(&mut tx, NameTable::Vaults).await?;
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT id FROM vaults WHERE id = $1 UNION ALL SELECT id FROM deleted_vaults WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        if taken.is_some() {
            return Err(Error::conflict(
                "vault_id_taken",
                format!("vault ID {id} is taken: a vault has it, or had it and was deleted"),
            ));
        }
        let v = Vault {
            id: id.to_owned(),
            name: name.as_str().to_owned(),
            vault_type,
            created_at: Timestamp::now(),
        };
        sqlx::query(
            "INSERT INTO vaults (id, name, name_key, type, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&v.id)
        .bind(&v.name)
        .bind(name_key(&v.name))
        .bind(v.vault_type.as_str())
        .bind(v.created_at.micros())
        .execute(&mut *tx)
        .await
        .unique(|| name_taken("vault", name))?;
        audit!(tx, actor, VaultCreate, Vault, &v.id).await?;
        commit(tx).await?;
        Ok(v)
    }
}

#[async_trait]
impl VaultStore for ThisStore {
    async fn create_vault(
        &self,
        actor: &Actor,
        name: &Name,
        vault_type: VaultType,
    ) -> Result<Vault> {
        self.insert_vault(actor, &new_lower(), name, vault_type)
            .await
    }

    async fn create_vault_with_id(
        &self,
        actor: &Actor,
        id: &str,
        name: &Name,
        vault_type: VaultType,
    ) -> Result<Vault> {
        self.insert_vault(actor, id, name, vault_type).await
    }

    async fn list_vaults(&self, page: &PageRequest) -> Result<Page<Vault>> {
        let select = format!("SELECT {VAULT_COLS} FROM vaults");
        let rows: Vec<VaultRow> = page_rows(&mut *self.conn().await?, &select, page).await?;
        let vaults = rows
            .into_iter()
            .map(VaultRow::into_vault)
            .collect::<Result<_>>()?;
        Ok(page.finish(vaults))
    }

    async fn find_vaults(&self, reference: &str) -> Result<Found<Vault>> {
        let select = format!("SELECT {VAULT_COLS} FROM vaults");
        let key = name_key(reference);
        match find_rows(
            &mut *self.conn().await?,
            &select,
            reference,
            "name_key",
            key,
        )
        .await?
        {
            Found::Id(row) => Ok(Found::Id(VaultRow::into_vault(row)?)),
            Found::Names(rows) => Ok(Found::Names(
                rows.into_iter()
                    .map(VaultRow::into_vault)
                    .collect::<Result<_>>()?,
            )),
            Found::Hidden(id) => Ok(Found::Hidden(id)),
        }
    }

    async fn rename_vault(&self, actor: &Actor, vault_id: &str, name: &Name) -> Result<Vault> {
        let mut tx = self.write_tx().await?;
        ThisStore::lock_names(&mut tx, NameTable::Vaults).await?;
        let updated = sqlx::query("UPDATE vaults SET name = $1, name_key = $2 WHERE id = $3")
            .bind(name.as_str())
            .bind(name_key(name))
            .bind(vault_id)
            .execute(&mut *tx)
            .await
            .unique(|| name_taken("vault", name))?
            .rows_affected();
        require_changed(updated, "vault", vault_id)?;
        audit!(tx, actor, VaultRename, Vault, vault_id).await?;
        let v = load_vault(&mut tx, vault_id, "").await?;
        commit(tx).await?;
        Ok(v)
    }

    async fn delete_vault(&self, actor: &Actor, vault_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        // Against a concurrent create with this ID (G8; see `insert_vault`).
        ThisStore::lock_names(&mut tx, NameTable::Vaults).await?;
        let now = Timestamp::now().micros();
        sqlx::query(
            "UPDATE servers SET updated_at = $1 \
             WHERE id IN (SELECT server_id FROM server_vaults WHERE vault_id = $2)",
        )
        .bind(now)
        .bind(vault_id)
        .execute(&mut *tx)
        .await
        .db()?;
        let deleted = sqlx::query("DELETE FROM vaults WHERE id = $1")
            .bind(vault_id)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        require_changed(deleted, "vault", vault_id)?;
        sqlx::query("INSERT INTO deleted_vaults (id, deleted_at) VALUES ($1, $2)")
            .bind(vault_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
        audit!(tx, actor, VaultDelete, Vault, vault_id).await?;
        self.commit_announcing(tx, Change::All).await
    }
}
