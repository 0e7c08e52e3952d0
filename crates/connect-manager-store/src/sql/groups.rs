//! Groups, their members and their grants ([`GroupStore`]), and A2's Owners group: it cannot be
//! deleted, and its last member cannot leave it.

use async_trait::async_trait;
use connect_manager_core::id::new_lower;
use connect_manager_core::lookup::Found;
use connect_manager_core::model::{Actor, GrantScope, Group, GroupGrant};
use connect_manager_core::name::{Name, name_key};
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::{Error, Result, Timestamp};
use sqlx::AssertSqlSafe;

use super::rows::{GROUP_COLS, GroupRow};
use super::servers::lock_live_server;
use super::{
    Conn, ThisStore, Tx, children_of, commit, find_rows, name_taken, page_rows, require_changed,
};
use crate::sql_backend::SqlBackend;
use crate::{DbResult, GroupStore};

/// Loads the groups' members and grants and builds the groups, in the rows' order.
async fn hydrate_groups(conn: &mut Conn, rows: Vec<GroupRow>) -> Result<Vec<Group>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut members = children_of(
        conn,
        &ids,
        |ids| {
            format!(
                "SELECT group_id, user_id FROM group_members WHERE group_id IN ({ids}) \
                 ORDER BY user_id"
            )
        },
        |(group_id, user_id): (String, String)| Ok((group_id, user_id)),
    )
    .await?;
    let mut grants = children_of(
        conn,
        &ids,
        |ids| {
            format!(
                "SELECT group_id, role, '' FROM group_roles WHERE group_id IN ({ids}) \
                 UNION ALL \
                 SELECT group_id, 'SERVER', server_id FROM group_servers WHERE group_id IN ({ids})"
            )
        },
        |(group_id, scope, server_id): (String, String, String)| {
            let scope = GrantScope::parse(&scope)
                .ok_or_else(|| Error::internal(format!("unknown grant scope {scope}")))?;
            let server_id = (scope == GrantScope::Server).then_some(server_id);
            Ok((group_id, GroupGrant { scope, server_id }))
        },
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let mut g = grants.remove(&r.id).unwrap_or_default();
            g.sort();
            Group {
                members: members.remove(&r.id).unwrap_or_default(),
                grants: g,
                id: r.id,
                name: r.name,
                created_at: Timestamp(r.created_at),
            }
        })
        .collect())
}

async fn load_group(conn: &mut Conn, group_id: &str) -> Result<Group> {
    let row: Option<GroupRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {GROUP_COLS} FROM groups WHERE id = $1"
    )))
    .bind(group_id)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    hydrate_groups(conn, row.into_iter().collect())
        .await?
        .pop()
        .ok_or_else(|| Error::not_found("group", group_id))
}

async fn is_owners_group(conn: &mut Conn, group_id: &str) -> Result<bool> {
    let builtin: Option<Option<String>> =
        sqlx::query_scalar("SELECT builtin FROM groups WHERE id = $1")
            .bind(group_id)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
    Ok(builtin.flatten().as_deref() == Some("owners"))
}

/// A2: refuses a change that would leave the Owners group without `user_id` when `user_id` is
/// its last member. Call with the owners lock held.
pub(super) async fn ensure_not_last_owner(tx: &mut Tx, user_id: &str) -> Result<()> {
    let (is_owner, owners): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN m.user_id = $1 THEN 1 ELSE 0 END), 0), COUNT(*) \
         FROM group_members m JOIN groups g ON g.id = m.group_id WHERE g.builtin = 'owners'",
    )
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await
    .db()?;
    if is_owner > 0 && owners <= 1 {
        return Err(Error::conflict(
            "last_owner",
            "this is the last owner: add another owner first, so nobody is locked out",
        ));
    }
    Ok(())
}

fn grant_target(group_id: &str, grant: &GroupGrant) -> String {
    match &grant.server_id {
        Some(s) => format!("{group_id}/{}/{s}", grant.scope.as_str()),
        None => format!("{group_id}/{}", grant.scope.as_str()),
    }
}

#[async_trait]
impl GroupStore for ThisStore {
    async fn create_group(&self, actor: &Actor, name: &Name) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        let g = Group {
            id: new_lower(),
            name: name.as_str().to_owned(),
            created_at: Timestamp::now(),
            members: vec![],
            grants: vec![],
        };
        sqlx::query("INSERT INTO groups (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&g.id)
            .bind(&g.name)
            .bind(name_key(&g.name))
            .bind(g.created_at.micros())
            .execute(&mut *tx)
            .await
            .unique(|| name_taken("group", name))?;
        audit!(tx, actor, GroupCreate, Group, &g.id).await?;
        commit(tx).await?;
        Ok(g)
    }

    async fn list_groups(&self, page: &PageRequest) -> Result<Page<Group>> {
        let mut conn = self.conn().await?;
        let select = format!("SELECT {GROUP_COLS} FROM groups");
        let rows = page_rows(&mut conn, &select, page).await?;
        Ok(page.finish(hydrate_groups(&mut conn, rows).await?))
    }

    async fn find_groups(&self, reference: &str) -> Result<Found<Group>> {
        let mut conn = self.conn().await?;
        let select = format!("SELECT {GROUP_COLS} FROM groups");
        let key = name_key(reference);
        match find_rows(&mut conn, &select, reference, "name_key", key).await? {
            Found::Id(row) => hydrate_groups(&mut conn, vec![row])
                .await?
                .pop()
                .map(Found::Id)
                .ok_or_else(|| Error::internal("a group vanished while it was read")),
            Found::Names(rows) => Ok(Found::Names(hydrate_groups(&mut conn, rows).await?)),
            Found::Hidden(id) => Ok(Found::Hidden(id)),
        }
    }

    async fn delete_group(&self, actor: &Actor, group_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        if is_owners_group(&mut tx, group_id).await? {
            return Err(Error::conflict(
                "builtin_group",
                "the Owners group cannot be deleted",
            ));
        }
        let deleted = sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(group_id)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        require_changed(deleted, "group", group_id)?;
        audit!(tx, actor, GroupDelete, Group, group_id).await?;
        commit(tx).await
    }

    async fn add_member(&self, actor: &Actor, group_id: &str, user_id: &str) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        load_group(&mut tx, group_id).await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        if exists.is_none() {
            return Err(Error::not_found("user", user_id));
        }
        let added = sqlx::query(
            "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) \
             ON CONFLICT (group_id, user_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        if added > 0 {
            let target = format!("{group_id}/{user_id}");
            audit!(tx, actor, GroupMemberAdd, GroupMember, &target).await?;
        }
        let g = load_group(&mut tx, group_id).await?;
        commit(tx).await?;
        Ok(g)
    }

    async fn remove_member(&self, actor: &Actor, group_id: &str, user_id: &str) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        if is_owners_group(&mut tx, group_id).await? {
            ThisStore::lock_owners(&mut tx).await?;
            ensure_not_last_owner(&mut tx, user_id).await?;
        }
        let removed = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        if removed == 0 {
            load_group(&mut tx, group_id).await?;
            return Err(Error::not_found("member", user_id));
        }
        let target = format!("{group_id}/{user_id}");
        audit!(tx, actor, GroupMemberRemove, GroupMember, &target).await?;
        let g = load_group(&mut tx, group_id).await?;
        commit(tx).await?;
        Ok(g)
    }

    async fn grant_group(
        &self,
        actor: &Actor,
        group_id: &str,
        grant: &GroupGrant,
    ) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        load_group(&mut tx, group_id).await?;
        let added = match (&grant.scope, &grant.server_id) {
            (GrantScope::Server, Some(server_id)) => {
                // R4: see `lock_live_server`.
                lock_live_server(&mut tx, server_id, ThisStore::LOCK_SERVER_SHARE).await?;
                sqlx::query(
                    "INSERT INTO group_servers (group_id, server_id) VALUES ($1, $2) \
                     ON CONFLICT (group_id, server_id) DO NOTHING",
                )
                .bind(group_id)
                .bind(server_id)
                .execute(&mut *tx)
                .await
            }
            (GrantScope::Manager | GrantScope::AllServers, None) => {
                sqlx::query(
                    "INSERT INTO group_roles (group_id, role) VALUES ($1, $2) \
                     ON CONFLICT (group_id, role) DO NOTHING",
                )
                .bind(group_id)
                .bind(grant.scope.as_str())
                .execute(&mut *tx)
                .await
            }
            _ => {
                return Err(Error::bad_request(
                    "a SERVER grant names one server; others none",
                ));
            }
        }
        .db()?
        .rows_affected();
        if added > 0 {
            let target = grant_target(group_id, grant);
            audit!(tx, actor, GroupGrant, GroupGrant, &target).await?;
        }
        let g = load_group(&mut tx, group_id).await?;
        commit(tx).await?;
        Ok(g)
    }

    async fn revoke_group(
        &self,
        actor: &Actor,
        group_id: &str,
        grant: &GroupGrant,
    ) -> Result<Group> {
        let mut tx = self.write_tx().await?;
        load_group(&mut tx, group_id).await?;
        let removed = match &grant.server_id {
            Some(server_id) => {
                sqlx::query("DELETE FROM group_servers WHERE group_id = $1 AND server_id = $2")
                    .bind(group_id)
                    .bind(server_id)
                    .execute(&mut *tx)
                    .await
            }
            None => {
                sqlx::query("DELETE FROM group_roles WHERE group_id = $1 AND role = $2")
                    .bind(group_id)
                    .bind(grant.scope.as_str())
                    .execute(&mut *tx)
                    .await
            }
        }
        .db()?
        .rows_affected();
        require_changed(removed, "grant", grant_target(group_id, grant))?;
        let target = grant_target(group_id, grant);
        audit!(tx, actor, GroupRevoke, GroupGrant, &target).await?;
        let g = load_group(&mut tx, group_id).await?;
        commit(tx).await?;
        Ok(g)
    }
}
