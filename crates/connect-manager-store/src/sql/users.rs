//! Users and their API keys ([`UserStore`]): owners manage them; the last owner stays (A2).

use async_trait::async_trait;
use connect_manager_core::id::new_lower;
use connect_manager_core::lookup::Found;
use connect_manager_core::model::{API_KEY_LAST_USE_RESOLUTION_SECONDS, Actor, ApiKeyInfo, User};
use connect_manager_core::name::Name;
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::{Error, Result, Timestamp};

use super::groups::ensure_not_last_owner;
use super::rows::{ApiKeyRow, USER_COLS, UserRow};
use super::{ThisStore, commit, find_rows, matchable, page_rows, require_changed};
use crate::sql_backend::SqlBackend;
use crate::{DbResult, NewApiKey, UserStore};
use sqlx::AssertSqlSafe;

#[async_trait]
impl UserStore for ThisStore {
    async fn create_user(&self, actor: &Actor, name: &Name, email: &str) -> Result<User> {
        let mut tx = self.write_tx().await?;
        let u = User {
            id: connect_manager_core::id::new_upper(),
            name: name.as_str().to_owned(),
            email: email.to_owned(),
            created_at: Timestamp::now(),
        };
        sqlx::query(
            "INSERT INTO users (id, name, email, email_key, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&u.id)
        .bind(&u.name)
        .bind(&u.email)
        .bind(u.email.to_lowercase())
        .bind(u.created_at.micros())
        .execute(&mut *tx)
        .await
        .unique(|| Error::conflict("email_taken", format!("a user with email '{email}' exists")))?;
        audit!(tx, actor, UserCreate, User, &u.id).await?;
        commit(tx).await?;
        Ok(u)
    }

    async fn list_users(&self, page: &PageRequest) -> Result<Page<User>> {
        let select = format!("SELECT {USER_COLS} FROM users");
        let rows: Vec<UserRow> = page_rows(&mut *self.conn().await?, &select, page).await?;
        Ok(page.finish(rows.into_iter().map(User::from).collect()))
    }

    async fn find_users(&self, reference: &str) -> Result<Found<User>> {
        let select = format!("SELECT {USER_COLS} FROM users");
        // By email (unique: at most one), case-insensitively.
        let key = reference.trim().to_lowercase();
        let found: Found<UserRow> = find_rows(
            &mut *self.conn().await?,
            &select,
            reference,
            "email_key",
            key,
        )
        .await?;
        Ok(found.map(User::from))
    }

    async fn owners(&self) -> Result<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as(
            "SELECT u.id, u.name, u.email, u.created_at FROM users u \
             JOIN group_members m ON m.user_id = u.id JOIN groups g ON g.id = m.group_id \
             WHERE g.builtin = 'owners' ORDER BY u.created_at, u.id",
        )
        .fetch_all(&mut *self.conn().await?)
        .await
        .db()?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    async fn delete_user(&self, actor: &Actor, user_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        ThisStore::lock_owners(&mut tx).await?;
        ensure_not_last_owner(&mut tx, user_id).await?;
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        require_changed(deleted, "user", user_id)?;
        audit!(tx, actor, UserDelete, User, user_id).await?;
        commit(tx).await
    }

    async fn create_named_api_key(
        &self,
        actor: &Actor,
        user_id: &str,
        key: &NewApiKey,
    ) -> Result<ApiKeyInfo> {
        let mut tx = self.write_tx().await?;
        let now = Timestamp::now();
        let info = ApiKeyInfo {
            id: new_lower(),
            user_id: user_id.to_owned(),
            name: key.name.as_str().to_owned(),
            created_at: now,
            expires_at: key.expires_at,
            expired: key.expires_at.is_some_and(|e| e <= now),
            last_used_at: None,
        };
        let inserted = sqlx::query(
            "INSERT INTO api_keys (id, user_id, key_hash, created_at, name, expires_at) \
             SELECT $1, id, $3, $4, $5, $6 FROM users WHERE id = $2",
        )
        .bind(&info.id)
        .bind(user_id)
        .bind(&key.key_hash)
        .bind(info.created_at.micros())
        .bind(&info.name)
        .bind(info.expires_at.map(Timestamp::micros))
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        require_changed(inserted, "user", user_id)?;
        audit!(tx, actor, ApiKeyCreate, ApiKey, &info.id).await?;
        commit(tx).await?;
        Ok(info)
    }

    async fn list_api_keys(&self, user_id: &str, page: &PageRequest) -> Result<Page<ApiKeyInfo>> {
        let (at, id) = page.bounds();
        let rows: Vec<ApiKeyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id, user_id, name, created_at, expires_at, last_used_at, \
             NOT {live} AS expired FROM api_keys k \
             WHERE user_id = $1 AND (created_at, id) < ($2, $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
            live = super::api_key_live("k", "$5"),
        )))
        .bind(user_id)
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .bind(Timestamp::now().micros())
        .fetch_all(&mut *self.conn().await?)
        .await
        .db()?;
        Ok(page.finish(rows.into_iter().map(ApiKeyInfo::from).collect()))
    }

    async fn touch_api_key(&self, key_id: &str, at: Timestamp) -> Result<bool> {
        // A plain UPDATE, not a write transaction of its own with an audit event: telemetry.
        let written = sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $1 - $3)",
        )
        .bind(at.micros())
        .bind(key_id)
        .bind(API_KEY_LAST_USE_RESOLUTION_SECONDS * 1_000_000)
        .execute(&mut *self.conn().await?)
        .await
        .db()?
        .rows_affected();
        Ok(written > 0)
    }

    async fn delete_api_key(&self, actor: &Actor, user_id: &str, key_id: &str) -> Result<()> {
        if !matchable(key_id) {
            return Err(Error::not_found("api key", key_id));
        }
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND user_id = $2")
            .bind(key_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        require_changed(deleted, "api key", key_id)?;
        audit!(tx, actor, ApiKeyDelete, ApiKey, key_id).await?;
        commit(tx).await
    }
}
