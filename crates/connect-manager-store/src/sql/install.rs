//! The installation ([`InstallStore`]): settings, the first start (A1), who an API key belongs
//! to, the signing keys (T3) and the master key's check value.

use async_trait::async_trait;
use connect_manager_core::id::new_lower;
use connect_manager_core::model::{Actor, User};
use connect_manager_core::name::{Name, name_key};
use connect_manager_core::secret::ct_eq;
use connect_manager_core::token::SealedKey;
use connect_manager_core::{Error, Result, Timestamp};
use sqlx::AssertSqlSafe;

use super::rows::{KEY_COLS, KeyPrincipalRow, KeyRow};
use super::{ThisStore, USER_GRANTS, commit, principal_of};
use crate::sql_backend::SqlBackend;
use crate::{Bootstrap, Change, DbResult, InstallStore, KeyAuth, Reseal, RetiredKey};

#[async_trait]
impl InstallStore for ThisStore {
    async fn setting(&self, key: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *self.conn().await?)
            .await
            .db()
    }

    async fn init_setting(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *self.conn().await?)
        .await
        .db()?;
        self.setting(key)
            .await?
            .ok_or_else(|| Error::internal(format!("setting {key} vanished")))
    }

    async fn bootstrap_owner(&self, name: &Name, email: &str, key_hash: &str) -> Result<Bootstrap> {
        let mut tx = self.write_tx().await?;
        let now = Timestamp::now().micros();
        // The marker row makes concurrent first starts safe: the second waits on the key and
        // then inserts nothing.
        let marked = sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('bootstrapped', $1) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(now.to_string())
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&mut *tx)
            .await
            .db()?;
        if marked == 0 || users > 0 {
            commit(tx).await?;
            return Ok(Bootstrap::AlreadyDone);
        }
        let owners_id = new_lower();
        sqlx::query(
            "INSERT INTO groups (id, name, name_key, builtin, created_at) \
             VALUES ($1, $2, $3, 'owners', $4)",
        )
        .bind(&owners_id)
        .bind(connect_manager_core::model::OWNERS_GROUP)
        .bind(name_key(connect_manager_core::model::OWNERS_GROUP))
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        let owner = User {
            id: connect_manager_core::id::new_upper(),
            name: name.as_str().to_owned(),
            email: email.to_owned(),
            created_at: Timestamp(now),
        };
        sqlx::query(
            "INSERT INTO users (id, name, email, email_key, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&owner.id)
        .bind(&owner.name)
        .bind(&owner.email)
        .bind(owner.email.to_lowercase())
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        sqlx::query("INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)")
            .bind(&owners_id)
            .bind(&owner.id)
            .execute(&mut *tx)
            .await
            .db()?;
        let key_id = new_lower();
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, key_hash, created_at, name) \
             VALUES ($1, $2, $3, $4, 'bootstrap')",
        )
        .bind(&key_id)
        .bind(&owner.id)
        .bind(key_hash)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        let actor = Actor::system("bootstrap");
        audit!(tx, &actor, UserCreate, User, &owner.id).await?;
        audit!(tx, &actor, ApiKeyCreate, ApiKey, &key_id).await?;
        commit(tx).await?;
        Ok(Bootstrap::Created(owner))
    }

    async fn authenticate_key(&self, key_hash: &str, now: Timestamp) -> Result<KeyAuth> {
        // One round trip: the key, whether it is live, and every grant of the user's groups.
        let rows: Vec<KeyPrincipalRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT k.id AS key_id, k.user_id, k.key_hash, k.expires_at, k.last_used_at, \
             {live} AS live, x.scope, x.server_id FROM api_keys k \
             LEFT JOIN ({USER_GRANTS}) x ON x.user_id = k.user_id \
             WHERE k.key_hash = $1",
            live = super::api_key_live("k", "$2"),
        )))
        .bind(key_hash)
        .bind(now.micros())
        .fetch_all(&mut *self.conn().await?)
        .await
        .db()?;
        let Some(first) = rows.first() else {
            return Ok(KeyAuth::Unknown);
        };
        if !ct_eq(&first.key_hash, key_hash) {
            return Ok(KeyAuth::Unknown);
        }
        let key_id = first.key_id.clone();
        if !first.live {
            return Ok(KeyAuth::Expired {
                key_id,
                expired_at: Timestamp(first.expires_at.unwrap_or_default()),
            });
        }
        let last_used_at = first.last_used_at.map(Timestamp);
        let user_id = first.user_id.clone();
        let p = principal_of(user_id, rows.into_iter().map(|r| (r.scope, r.server_id)));
        Ok(KeyAuth::Valid {
            principal: p,
            key_id,
            last_used_at,
        })
    }

    async fn signing_keys(&self) -> Result<Vec<SealedKey>> {
        let rows: Vec<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM signing_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC"
        )))
        .fetch_all(&mut *self.conn().await?)
        .await
        .db()?;
        Ok(rows.into_iter().map(SealedKey::from).collect())
    }

    async fn signing_kids(&self) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT kid FROM signing_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC",
        )
        .fetch_all(&mut *self.conn().await?)
        .await
        .db()
    }

    async fn add_signing_key(&self, actor: &Actor, key: &SealedKey) -> Result<()> {
        let mut tx = self.write_tx().await?;
        ThisStore::lock_signing_keys(&mut tx).await?;
        insert_signing_key(&mut tx, actor, key).await?;
        self.commit_announcing(tx, Change::Keys).await
    }

    async fn add_signing_key_if_newest_before(
        &self,
        actor: &Actor,
        key: &SealedKey,
        cutoff: Timestamp,
    ) -> Result<bool> {
        // A cheap read first: nearly every check finds a young key and writes nothing.
        let newest = newest_signing_key_at(&mut *self.conn().await?).await?;
        if newest.is_some_and(|at| at > cutoff.micros()) {
            return Ok(false);
        }
        // Decided again under the lock: of replicas racing here, the first makes the key and
        // the others, waiting on the lock, then read it and make none.
        let mut tx = self.write_tx().await?;
        ThisStore::lock_signing_keys(&mut tx).await?;
        let newest = newest_signing_key_at(&mut tx).await?;
        if newest.is_some_and(|at| at > cutoff.micros()) {
            tx.rollback().await.db()?;
            return Ok(false);
        }
        insert_signing_key(&mut tx, actor, key).await?;
        self.commit_announcing(tx, Change::Keys).await?;
        Ok(true)
    }

    async fn retire_signing_key(&self, actor: &Actor, kid: &str) -> Result<RetiredKey> {
        let mut tx = self.write_tx().await?;
        let retired: Option<Option<i64>> =
            sqlx::query_scalar("SELECT retired_at FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        match retired {
            None => return Err(Error::not_found("signing key", kid)),
            Some(Some(at)) => {
                tx.rollback().await.db()?;
                return Ok(RetiredKey {
                    kid: kid.to_owned(),
                    retired_at: Timestamp(at),
                    tokens_revoked: 0,
                });
            }
            Some(None) => {}
        }
        // The newest key signs: retiring it would leave the service signing with an older one
        // (or none). The newest can never be retired, so one key always remains.
        let newest: Option<String> = sqlx::query_scalar(
            "SELECT kid FROM signing_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC, kid DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        if newest.as_deref() == Some(kid) {
            return Err(Error::conflict(
                "signing_key_in_use",
                format!(
                    "signing key {kid} is the one that signs new tokens: rotate first \
                     (POST /v1/keys/rotate or connect-manager admin rotate-key), then retire it"
                ),
            ));
        }
        let now = Timestamp::now();
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE kid = $2")
            .bind(now.micros())
            .bind(kid)
            .execute(&mut *tx)
            .await
            .db()?;
        let tokens_revoked = sqlx::query(
            "UPDATE tokens SET state = 'REVOKED', revoked_at = $1 \
             WHERE kid = $2 AND state = 'ACTIVE'",
        )
        .bind(now.micros())
        .bind(kid)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        audit!(tx, actor, SigningKeyRetire, SigningKey, kid).await?;
        // Keys: the ring drops the key and its verified signatures, the access cache the token
        // records (revoked here).
        self.commit_announcing(tx, Change::Keys).await?;
        Ok(RetiredKey {
            kid: kid.to_owned(),
            retired_at: now,
            tokens_revoked,
        })
    }

    async fn replace_master_key_check(
        &self,
        expected: Option<&str>,
        check: &str,
        settings: &[(&str, &str)],
        reseal: &Reseal<'_>,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        // Taking the check row decides which replica does the work: a second one waits on the
        // row (PostgreSQL) or the write lock (SQLite), then finds it changed.
        let owned =
            match expected {
                None => {
                    sqlx::query(
                        "INSERT INTO settings (key, value) VALUES ('master_key_check', $1) \
                 ON CONFLICT (key) DO NOTHING",
                    )
                    .bind(check)
                    .execute(&mut *tx)
                    .await
                }
                Some(old) => sqlx::query(
                    "UPDATE settings SET value = $1 WHERE key = 'master_key_check' AND value = $2",
                )
                .bind(check)
                .bind(old)
                .execute(&mut *tx)
                .await,
            }
            .db()?
            .rows_affected();
        if owned == 0 {
            tx.rollback().await.db()?;
            return Ok(false);
        }
        ThisStore::lock_signing_keys(&mut tx).await?;
        let keys: Vec<KeyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM signing_keys ORDER BY kid"
        )))
        .fetch_all(&mut *tx)
        .await
        .db()?;
        for key in keys.into_iter().map(SealedKey::from) {
            let new = reseal(&key)?;
            sqlx::query(
                "UPDATE signing_keys SET sealed_private = $1, x = $2, y = $3 WHERE kid = $4",
            )
            .bind(&new.sealed_private)
            .bind(&new.x)
            .bind(&new.y)
            .bind(&key.kid)
            .execute(&mut *tx)
            .await
            .db()?;
        }
        for (key, value) in settings {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await
            .db()?;
        }
        if expected.is_some() {
            let start = Actor::system("start");
            audit!(
                tx,
                &start,
                MasterKeyUpgrade,
                Installation,
                "master_key_check"
            )
            .await?;
        }
        self.commit_announcing(tx, Change::Keys).await?;
        Ok(true)
    }
}

/// When the newest key not retired was made (microseconds), if there is one.
async fn newest_signing_key_at(conn: &mut super::Conn) -> Result<Option<i64>> {
    sqlx::query_scalar("SELECT MAX(created_at) FROM signing_keys WHERE retired_at IS NULL")
        .fetch_one(conn)
        .await
        .db()
}

/// The one statement that writes a signing key, with its audit event, in the caller's
/// transaction (which holds the signing-key lock).
async fn insert_signing_key(tx: &mut super::Tx, actor: &Actor, key: &SealedKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, sealed_private, x, y, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.kid)
    .bind(&key.sealed_private)
    .bind(&key.x)
    .bind(&key.y)
    .bind(Timestamp::now().micros())
    .execute(&mut **tx)
    .await
    .db()?;
    super::audit(
        tx,
        actor,
        connect_manager_core::audit::AuditAction::SigningKeyCreate,
        connect_manager_core::audit::TargetType::SigningKey,
        &key.kid,
    )
    .await
}
