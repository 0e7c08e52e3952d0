//! Tokens ([`TokenStore`]): create on granted vaults (R7), find and list what the viewer may see
//! (R1, R10, A4), rename (R9), revoke (R8), and their last use as gateways report it (G7).

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use connect_manager_core::api::usage::{LAST_USE_RESOLUTION_SECONDS, TokenUsage};
use connect_manager_core::lookup::Found;
use connect_manager_core::model::{Actor, TokenRecord, TokenState};
use connect_manager_core::name::{Name, name_key};
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::principal::Principal;
use connect_manager_core::{Error, Result, Timestamp};
use sqlx::AssertSqlSafe;

use super::rows::{TOKEN_COLS, TokenRow};
use super::servers::load_live_server;
use super::{
    Conn, ThisStore, children_of, commit, managed, matchable, name_match_limit, placeholders,
    require_changed,
};
use crate::sql_backend::SqlBackend;
use crate::{Change, DbResult, NewToken, TokenFilter, TokenGauges, TokenStore};

/// Whether the token `t` is live at `now` (a placeholder): active and not expired (R8, R12). The
/// expiry views of the list and the metrics' gauges both read it.
fn token_live(now: &str) -> String {
    format!("(t.state = 'ACTIVE' AND (t.expires_at IS NULL OR t.expires_at > {now}))")
}

/// Loads the tokens' scopes and builds the records, in the rows' order.
async fn hydrate_tokens(conn: &mut Conn, rows: Vec<TokenRow>) -> Result<Vec<TokenRecord>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut scopes = children_of(
        conn,
        &ids,
        |ids| {
            format!(
                "SELECT token_id, vault_id, access FROM token_vaults WHERE token_id IN ({ids}) \
                 ORDER BY vault_id"
            )
        },
        |(token_id, vault_id, access): (String, String, i64)| Ok((token_id, (vault_id, access))),
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            let vaults = scopes.remove(&r.id).unwrap_or_default();
            r.into_record(vaults)
        })
        .collect()
}

async fn load_token(conn: &mut Conn, token_id: &str) -> Result<Option<TokenRecord>> {
    let row: Option<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {TOKEN_COLS} FROM tokens t WHERE t.id = $1"
    )))
    .bind(token_id)
    .fetch_optional(&mut *conn)
    .await
    .db()?;
    Ok(hydrate_tokens(conn, row.into_iter().collect()).await?.pop())
}

#[async_trait]
impl TokenStore for ThisStore {
    async fn live_token_kids(&self, now: Timestamp) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT kid FROM tokens WHERE state = 'ACTIVE' \
             AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now.micros())
        .fetch_all(&mut *self.conn().await?)
        .await
        .db()
    }

    async fn create_token(&self, actor: &Actor, new: &NewToken) -> Result<TokenRecord> {
        let mut tx = self.write_tx().await?;
        // One read checks that the server is live and which of the vaults it is granted, and
        // (PostgreSQL) holds those grants until the token is committed: see LOCK_READ_GRANTS.
        let sql = format!(
            "SELECT sv.vault_id FROM servers s JOIN server_vaults sv ON sv.server_id = s.id \
             WHERE s.id = $1 AND s.state = 'ACTIVE' AND sv.vault_id IN ({}){}",
            placeholders(2, new.vaults.len()),
            ThisStore::LOCK_READ_GRANTS
        );
        let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(&new.server_id);
        for (vault_id, _) in new.vaults.iter() {
            q = q.bind(vault_id.to_owned());
        }
        let granted: BTreeSet<String> = q.fetch_all(&mut *tx).await.db()?.into_iter().collect();
        if let Some((vault_id, _)) = new.vaults.iter().find(|(v, _)| !granted.contains(*v)) {
            load_live_server(&mut tx, &new.server_id).await?;
            return Err(Error::Invalid {
                code: "vault_not_granted",
                message: format!(
                    "vault {vault_id} is not granted to server {}: grant it first \
                     (op connect vault grant)",
                    new.server_id
                ),
                details: serde_json::json!({ "vault": vault_id, "server": new.server_id }),
            });
        }
        let origin = new.exchange.as_ref();
        sqlx::query(
            "INSERT INTO tokens (id, server_id, name, name_key, state, issuer, kid, created_at, \
             expires_at, revoked_at, exchange_issuer, exchange_subject, exchange_policy_id) \
             VALUES ($1, $2, $3, $4, 'ACTIVE', $5, $6, $7, $8, NULL, $9, $10, $11)",
        )
        .bind(&new.id)
        .bind(&new.server_id)
        .bind(new.name.as_str())
        .bind(name_key(&new.name))
        .bind(&new.issuer)
        .bind(&new.kid)
        .bind(new.created_at.micros())
        .bind(new.expires_at.map(Timestamp::micros))
        .bind(origin.map(|o| o.issuer.as_str()))
        .bind(origin.map(|o| o.subject.as_str()))
        .bind(origin.map(|o| o.policy_id.as_str()))
        .execute(&mut *tx)
        .await
        .db()?;
        let sql = format!(
            "INSERT INTO token_vaults (token_id, vault_id, access) VALUES {}",
            (0..new.vaults.len())
                .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(&new.id);
        for (vault_id, access) in new.vaults.iter() {
            q = q.bind(vault_id.to_owned()).bind(access);
        }
        q.execute(&mut *tx).await.db()?;
        if origin.is_some() {
            audit!(tx, actor, TokenExchange, Token, &new.id).await?;
        } else {
            audit!(tx, actor, TokenCreate, Token, &new.id).await?;
        }
        commit(tx).await?;
        let vaults = new.vaults.to_vec();
        Ok(TokenRecord {
            id: new.id.clone(),
            server_id: new.server_id.clone(),
            name: new.name.as_str().to_owned(),
            state: TokenState::Active,
            issuer: new.issuer.clone(),
            kid: new.kid.clone(),
            created_at: new.created_at,
            expires_at: new.expires_at,
            revoked_at: None,
            vaults,
            last_used_at: None,
            last_used_ip: None,
            exchange: new.exchange.clone(),
        })
    }

    async fn token(&self, token_id: &str) -> Result<Option<TokenRecord>> {
        if !matchable(token_id) {
            return Ok(None);
        }
        let mut conn = self.conn().await?;
        load_token(&mut conn, token_id).await
    }

    async fn find_tokens(
        &self,
        viewer: &Principal,
        reference: &str,
        server_id: Option<&str>,
    ) -> Result<Found<TokenRecord>> {
        if !matchable(reference) || server_id.is_some_and(|s| !matchable(s)) {
            return Ok(Found::Names(Vec::new()));
        }
        let mut conn = self.conn().await?;
        // Visibility (A4) and the server filter in SQL, the same test as the lists': tokens the
        // viewer may not see are never candidates and take no place under the limit.
        let visible = managed("t.server_id");
        // The ID first, alone: however many tokens are named with it, it wins (R1).
        let by_id: Option<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM tokens t WHERE t.id = $3 \
             AND ($4 IS NULL OR t.server_id = $4) AND {visible}"
        )))
        .bind(viewer.manages_all_servers())
        .bind(&viewer.user_id)
        .bind(reference)
        .bind(server_id)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
        if let Some(row) = by_id {
            let mut tokens = hydrate_tokens(&mut conn, vec![row]).await?;
            return tokens
                .pop()
                .map(Found::Id)
                .ok_or_else(|| Error::internal("a token vanished while it was read"));
        }
        let rows: Vec<TokenRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {TOKEN_COLS} FROM tokens t WHERE t.name_key = $3 \
             AND ($4 IS NULL OR t.server_id = $4) AND {visible} \
             ORDER BY t.created_at DESC, t.id DESC LIMIT $5"
        )))
        .bind(viewer.manages_all_servers())
        .bind(&viewer.user_id)
        .bind(name_key(reference))
        .bind(server_id)
        .bind(name_match_limit())
        .fetch_all(&mut *conn)
        .await
        .db()?;
        if !rows.is_empty() {
            return Ok(Found::Names(hydrate_tokens(&mut conn, rows).await?));
        }
        // Nothing visible matched; a match the viewer may not see (the ID first) is a denied
        // attempt.
        let mut hidden = None;
        for (sql, key) in [
            (
                "SELECT id FROM tokens WHERE id = $1 AND ($2 IS NULL OR server_id = $2)",
                reference.to_owned(),
            ),
            (
                "SELECT id FROM tokens WHERE name_key = $1 AND ($2 IS NULL OR server_id = $2) \
                 LIMIT 1",
                name_key(reference),
            ),
        ] {
            hidden = sqlx::query_scalar(sql)
                .bind(key)
                .bind(server_id)
                .fetch_optional(&mut *conn)
                .await
                .db()?;
            if hidden.is_some() {
                break;
            }
        }
        Ok(hidden.map_or(Found::Names(Vec::new()), Found::Hidden))
    }

    async fn list_tokens(
        &self,
        viewer: &Principal,
        filter: &TokenFilter,
        page: &PageRequest,
    ) -> Result<Page<TokenRecord>> {
        let (at, id) = page.bounds();
        let now = Timestamp::now();
        let expiring_before = filter.expiring_within.map(|s| now.plus_seconds(s).0);
        let unused_since = filter.unused_for.map(|s| now.plus_seconds(-s).0);
        let mut conn = self.conn().await?;
        // Two statements, not one with an OR, so each can walk its own index: one server's
        // tokens by (server_id, created_at, id), all tokens by (created_at, id).
        // A4: see `managed`.
        let visible = managed("t.server_id");
        // The expiry views: only live tokens (active, not expired at $7), expiring before $8
        // or unused since $9; a null bound leaves its view out.
        let views = format!(
            "($8 IS NULL AND $9 IS NULL OR {live}) \
             AND ($8 IS NULL OR t.expires_at IS NOT NULL AND t.expires_at <= $8) \
             AND ($9 IS NULL OR t.last_used_at IS NULL OR t.last_used_at < $9)",
            live = token_live("$7"),
        );
        let sql = match filter.server_id {
            Some(_) => format!(
                "SELECT {TOKEN_COLS} FROM tokens t WHERE t.server_id = $3 AND {visible} \
                 AND {views} AND (t.created_at, t.id) < ($4, $5) \
                 ORDER BY t.created_at DESC, t.id DESC LIMIT $6"
            ),
            None => format!(
                "SELECT {TOKEN_COLS} FROM tokens t JOIN servers s ON s.id = t.server_id \
                 WHERE s.state = 'ACTIVE' AND $3 IS NULL AND {visible} \
                 AND {views} AND (t.created_at, t.id) < ($4, $5) \
                 ORDER BY t.created_at DESC, t.id DESC LIMIT $6"
            ),
        };
        let rows: Vec<TokenRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(viewer.manages_all_servers())
            .bind(&viewer.user_id)
            .bind(filter.server_id.as_deref())
            .bind(at)
            .bind(id)
            .bind(page.fetch())
            .bind(now.0)
            .bind(expiring_before)
            .bind(unused_since)
            .fetch_all(&mut *conn)
            .await
            .db()?;
        let tokens = hydrate_tokens(&mut conn, rows).await?;
        Ok(page.finish(tokens))
    }

    async fn token_gauges(&self, now: Timestamp, expiring_within: i64) -> Result<TokenGauges> {
        // One statement, one pass over the tokens of live servers (10,000 tokens: see the
        // README's figures).
        let row: (i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT \
             COALESCE(SUM(CASE WHEN t.expires_at IS NOT NULL AND t.expires_at <= $2 \
                 THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN t.last_used_at IS NULL THEN 1 ELSE 0 END), 0) \
             FROM tokens t JOIN servers s ON s.id = t.server_id \
             WHERE s.state = 'ACTIVE' AND {live}",
            live = token_live("$1"),
        )))
        .bind(now.micros())
        .bind(now.plus_seconds(expiring_within).micros())
        .fetch_one(&mut *self.conn().await?)
        .await
        .db()?;
        Ok(TokenGauges {
            expiring: u64::try_from(row.0).unwrap_or_default(),
            never_used: u64::try_from(row.1).unwrap_or_default(),
        })
    }

    async fn rename_token(
        &self,
        actor: &Actor,
        token_id: &str,
        name: &Name,
    ) -> Result<TokenRecord> {
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query("UPDATE tokens SET name = $1, name_key = $2 WHERE id = $3")
            .bind(name.as_str())
            .bind(name_key(name))
            .bind(token_id)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        require_changed(updated, "token", token_id)?;
        audit!(tx, actor, TokenRename, Token, token_id).await?;
        let t = load_token(&mut tx, token_id)
            .await?
            .ok_or_else(|| Error::not_found("token", token_id))?;
        self.commit_announcing(tx, Change::Token(token_id.to_owned()))
            .await?;
        Ok(t)
    }

    async fn revoke_token(&self, actor: &Actor, token_id: &str) -> Result<TokenRecord> {
        let mut tx = self.write_tx().await?;
        let revoked = sqlx::query(
            "UPDATE tokens SET state = 'REVOKED', revoked_at = $1 WHERE id = $2 AND state = 'ACTIVE'",
        )
        .bind(Timestamp::now().micros())
        .bind(token_id)
        .execute(&mut *tx)
        .await
        .db()?
        .rows_affected();
        let t = load_token(&mut tx, token_id)
            .await?
            .ok_or_else(|| Error::not_found("token", token_id))?;
        if revoked == 0 {
            // Already revoked: not an error, and nothing changed.
            commit(tx).await?;
            return Ok(t);
        }
        audit!(tx, actor, TokenRevoke, Token, token_id).await?;
        self.commit_announcing(tx, Change::Token(token_id.to_owned()))
            .await?;
        Ok(t)
    }

    async fn record_token_usage(&self, server_id: &str, usage: &[TokenUsage]) -> Result<u64> {
        if !matchable(server_id) {
            return Ok(0);
        }
        // One entry per token, its latest use; none later than now (a gateway's clock ahead of
        // ours must not pin a token's last use in the future, where no report could move it).
        let now = Timestamp::now();
        let mut latest: HashMap<&str, (Timestamp, Option<&str>)> = HashMap::new();
        for u in usage.iter().filter(|u| matchable(&u.id)) {
            let at = u.last_used_at.min(now);
            let entry = latest.entry(u.id.as_str()).or_insert((at, None));
            if at >= entry.0 {
                *entry = (at, u.last_used_ip.as_deref().filter(|ip| matchable(ip)));
            }
        }
        if latest.is_empty() {
            return Ok(0);
        }
        let mut entries: Vec<_> = latest.into_iter().collect();
        entries.sort_unstable_by_key(|(id, _)| *id);
        let resolution = LAST_USE_RESOLUTION_SECONDS * 1_000_000;
        let mut tx = self.write_tx().await?;
        let mut written = 0;
        // `VALUES` names its columns column1, column2, … in both databases.
        for chunk in entries.chunks(500) {
            let sql = format!(
                "UPDATE tokens SET last_used_at = u.column2, last_used_ip = u.column3 \
                 FROM (VALUES {}) AS u \
                 WHERE tokens.id = u.column1 AND tokens.server_id = $1 \
                 AND (tokens.last_used_at IS NULL OR tokens.last_used_at <= u.column2 - $2)",
                (0..chunk.len())
                    .map(|i| format!("(${}, ${}, ${})", 3 * i + 3, 3 * i + 4, 3 * i + 5))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(server_id)
                .bind(resolution);
            for (id, (at, ip)) in chunk {
                q = q.bind(*id).bind(at.micros()).bind(*ip);
            }
            written += q.execute(&mut *tx).await.db()?.rows_affected();
        }
        commit(tx).await?;
        Ok(written)
    }
}
