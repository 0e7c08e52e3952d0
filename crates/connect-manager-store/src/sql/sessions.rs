//! Console sessions ([`SessionStore`], issue 17). A session row holds the SHA-256 of the session
//! ID, never the ID; every lookup joins the API key it was opened with, live as A1 decides it
//! ([`api_key_live`](super::api_key_live)), so whatever ends the key (its deletion, its user's
//! deletion: the foreign keys cascade too; its expiry) ends the session on the next page.

use async_trait::async_trait;
use connect_manager_core::model::Actor;
use connect_manager_core::{Error, Result, Timestamp};
use sqlx::AssertSqlSafe;

use super::{ThisStore, USER_GRANTS, api_key_live, commit, principal_of};
use crate::{ConsoleSession, DbResult, SessionLimits, SessionStore};

/// A session lookup's row: the session, and one grant of its user ([`USER_GRANTS`]).
type SessionRow = (String, String, i64, i64, Option<String>, Option<String>);

#[async_trait]
impl SessionStore for ThisStore {
    async fn create_session(
        &self,
        actor: &Actor,
        key_hash: &str,
        session_hash: &str,
    ) -> Result<ConsoleSession> {
        let now = Timestamp::now();
        let mut tx = self.write_tx().await?;
        let key_id: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "INSERT INTO console_sessions (id_hash, user_id, api_key_id, created_at, last_seen_at) \
             SELECT $1, k.user_id, k.id, $2, $2 FROM api_keys k \
             WHERE k.key_hash = $3 AND k.user_id = $4 AND {live} \
             RETURNING api_key_id",
            live = api_key_live("k", "$2"),
        )))
        .bind(session_hash)
        .bind(now.micros())
        .bind(key_hash)
        .bind(&actor.user_id)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let Some(key_id) = key_id else {
            return Err(Error::not_found("api key", ""));
        };
        audit!(tx, actor, SessionCreate, ApiKey, &key_id).await?;
        commit(tx).await?;
        let limits = SessionLimits {
            idle_micros: i64::MAX,
            max_age_micros: i64::MAX,
        };
        self.session(session_hash, now, limits)
            .await?
            .ok_or_else(|| Error::not_found("api key", ""))
    }

    async fn session(
        &self,
        session_hash: &str,
        now: Timestamp,
        limits: SessionLimits,
    ) -> Result<Option<ConsoleSession>> {
        let mut conn = self.conn().await?;
        let rows: Vec<SessionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT s.user_id, s.api_key_id, s.created_at, s.last_seen_at, x.scope, x.server_id \
             FROM console_sessions s \
             JOIN api_keys k ON k.id = s.api_key_id AND k.user_id = s.user_id AND {live} \
             LEFT JOIN ({USER_GRANTS}) x ON x.user_id = s.user_id \
             WHERE s.id_hash = $1",
            live = api_key_live("k", "$2"),
        )))
        .bind(session_hash)
        .bind(now.micros())
        .fetch_all(&mut *conn)
        .await
        .db()?;
        let Some((user_id, api_key_id, created_at, last_seen_at, _, _)) = rows.first().cloned()
        else {
            return Ok(None);
        };
        let now = now.micros();
        if now.saturating_sub(last_seen_at) >= limits.idle_micros
            || now.saturating_sub(created_at) >= limits.max_age_micros
        {
            sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
                .bind(session_hash)
                .execute(&mut *conn)
                .await
                .db()?;
            return Ok(None);
        }
        let mut seen = last_seen_at;
        if now.saturating_sub(last_seen_at) >= limits.touch_every_micros() {
            sqlx::query(
                "UPDATE console_sessions SET last_seen_at = $2 \
                 WHERE id_hash = $1 AND last_seen_at < $2",
            )
            .bind(session_hash)
            .bind(now)
            .execute(&mut *conn)
            .await
            .db()?;
            seen = now;
        }
        let principal = principal_of(
            user_id.clone(),
            rows.into_iter()
                .map(|(_, _, _, _, scope, server)| (scope, server)),
        );
        Ok(Some(ConsoleSession {
            user_id,
            api_key_id,
            created_at: Timestamp(created_at),
            last_seen_at: Timestamp(seen),
            principal,
        }))
    }

    async fn delete_session(&self, actor: &Actor, session_hash: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let key_id: Option<String> = sqlx::query_scalar(
            "DELETE FROM console_sessions WHERE id_hash = $1 RETURNING api_key_id",
        )
        .bind(session_hash)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        if let Some(key_id) = key_id {
            audit!(tx, actor, SessionDelete, ApiKey, &key_id).await?;
        }
        commit(tx).await
    }

    async fn delete_expired_sessions(&self, now: Timestamp, limits: SessionLimits) -> Result<u64> {
        let now = now.micros();
        Ok(
            sqlx::query(
                "DELETE FROM console_sessions WHERE last_seen_at <= $1 OR created_at <= $2",
            )
            .bind(now.saturating_sub(limits.idle_micros))
            .bind(now.saturating_sub(limits.max_age_micros))
            .execute(&mut *self.conn().await?)
            .await
            .db()?
            .rows_affected(),
        )
    }
}
