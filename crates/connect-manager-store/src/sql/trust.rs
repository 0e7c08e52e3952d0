//! Workload identity ([`TrustStore`], issue 18): trusted issuers (owners) and servers' trust
//! policies, whose scope is checked as a token's (R7: the server live, every vault granted).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use connect_manager_core::api::trust::Issuer;
use connect_manager_core::id::new_lower;
use connect_manager_core::lookup::Found;
use connect_manager_core::model::Actor;
use connect_manager_core::name::name_key;
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::trust::TrustPolicyRecord;
use connect_manager_core::{Error, Result, Timestamp};
use sqlx::AssertSqlSafe;

use super::servers::lock_live_server;
use super::{
    Conn, ThisStore, children_of, commit, find_rows, matchable, name_match_limit, name_taken,
    page_rows, placeholders, require_changed,
};
use crate::sql_backend::SqlBackend;
use crate::{DbResult, NewIssuer, NewTrustPolicy, TrustStore};

const ISSUER_COLS: &str = "id, name, issuer, creator_id, created_at";

#[derive(sqlx::FromRow)]
struct IssuerRow {
    id: String,
    name: String,
    issuer: String,
    creator_id: String,
    created_at: i64,
}

impl IssuerRow {
    fn into_issuer(self) -> Issuer {
        Issuer {
            id: self.id,
            name: self.name,
            issuer: self.issuer,
            creator_id: self.creator_id,
            created_at: Timestamp(self.created_at),
        }
    }
}

const POLICY_SELECT: &str = "SELECT p.id, p.name, p.server_id, p.issuer_id, i.issuer, \
     p.audience, p.subject, p.claims, p.ttl_seconds, p.creator_id, p.created_at \
     FROM trust_policies p JOIN issuers i ON i.id = p.issuer_id";

#[derive(sqlx::FromRow)]
struct PolicyRow {
    id: String,
    name: String,
    server_id: String,
    issuer_id: String,
    issuer: String,
    audience: String,
    subject: String,
    claims: String,
    ttl_seconds: i64,
    creator_id: String,
    created_at: i64,
}

/// Loads the policies' scopes and builds the records, in the rows' order.
async fn hydrate_policies(conn: &mut Conn, rows: Vec<PolicyRow>) -> Result<Vec<TrustPolicyRecord>> {
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut scopes = children_of(
        conn,
        &ids,
        |ids| {
            format!(
                "SELECT policy_id, vault_id, access FROM trust_policy_vaults \
                 WHERE policy_id IN ({ids}) ORDER BY vault_id"
            )
        },
        |(policy_id, vault_id, access): (String, String, i64)| Ok((policy_id, (vault_id, access))),
    )
    .await?;
    rows.into_iter()
        .map(|r| {
            let claims: BTreeMap<String, String> = serde_json::from_str(&r.claims)
                .map_err(|e| Error::internal(format!("trust policy {} claims: {e}", r.id)))?;
            Ok(TrustPolicyRecord {
                vaults: scopes.remove(&r.id).unwrap_or_default(),
                id: r.id,
                name: r.name,
                server_id: r.server_id,
                issuer_id: r.issuer_id,
                issuer: r.issuer,
                audience: r.audience,
                subject: r.subject,
                claims,
                ttl_seconds: r.ttl_seconds,
                creator_id: r.creator_id,
                created_at: Timestamp(r.created_at),
            })
        })
        .collect()
}

#[async_trait]
impl TrustStore for ThisStore {
    async fn create_issuer(&self, actor: &Actor, new: &NewIssuer) -> Result<Issuer> {
        let mut tx = self.write_tx().await?;
        let trusted: Option<String> =
            sqlx::query_scalar("SELECT id FROM issuers WHERE issuer = $1")
                .bind(&new.issuer)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        if let Some(id) = trusted {
            return Err(Error::conflict(
                "issuer_taken",
                format!("issuer {} is trusted already (as {id})", new.issuer),
            ));
        }
        let issuer = Issuer {
            id: new_lower(),
            name: new.name.as_str().to_owned(),
            issuer: new.issuer.clone(),
            creator_id: actor.user_id.clone(),
            created_at: Timestamp::now(),
        };
        sqlx::query(
            "INSERT INTO issuers (id, name, name_key, issuer, creator_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&issuer.id)
        .bind(&issuer.name)
        .bind(name_key(&new.name))
        .bind(&issuer.issuer)
        .bind(&issuer.creator_id)
        .bind(issuer.created_at.micros())
        .execute(&mut *tx)
        .await
        .unique(|| name_taken("issuer", &issuer.name))?;
        audit!(tx, actor, IssuerCreate, Issuer, &issuer.id).await?;
        commit(tx).await?;
        Ok(issuer)
    }

    async fn list_issuers(&self, page: &PageRequest) -> Result<Page<Issuer>> {
        let select = format!("SELECT {ISSUER_COLS} FROM issuers");
        let rows: Vec<IssuerRow> = page_rows(&mut *self.conn().await?, &select, page).await?;
        Ok(page.finish(rows.into_iter().map(IssuerRow::into_issuer).collect()))
    }

    async fn find_issuers(&self, reference: &str) -> Result<Found<Issuer>> {
        let select = format!("SELECT {ISSUER_COLS} FROM issuers");
        let found: Found<IssuerRow> = find_rows(
            &mut *self.conn().await?,
            &select,
            reference,
            "name_key",
            name_key(reference),
        )
        .await?;
        Ok(match found {
            Found::Id(row) => Found::Id(row.into_issuer()),
            Found::Names(rows) => {
                Found::Names(rows.into_iter().map(IssuerRow::into_issuer).collect())
            }
            Found::Hidden(id) => Found::Hidden(id),
        })
    }

    async fn issuer_by_url(&self, url: &str) -> Result<Option<Issuer>> {
        if !matchable(url) {
            return Ok(None);
        }
        let row: Option<IssuerRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {ISSUER_COLS} FROM issuers WHERE issuer = $1"
        )))
        .bind(url)
        .fetch_optional(&mut *self.conn().await?)
        .await
        .db()?;
        Ok(row.map(IssuerRow::into_issuer))
    }

    async fn delete_issuer(&self, actor: &Actor, issuer_id: &str) -> Result<()> {
        let mut tx = self.write_tx().await?;
        // Locked first, so that a policy being made for it either commits before (and is seen
        // below) or waits and then finds no issuer.
        let live: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT id FROM issuers WHERE id = $1{}",
            ThisStore::LOCK_ISSUER_UPDATE
        )))
        .bind(issuer_id)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        if live.is_none() {
            return Err(Error::not_found("issuer", issuer_id));
        }
        let used: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM trust_policies WHERE issuer_id = $1")
                .bind(issuer_id)
                .fetch_one(&mut *tx)
                .await
                .db()?;
        if used > 0 {
            return Err(Error::conflict(
                "issuer_in_use",
                format!(
                    "{used} trust polic{} name this issuer: delete them first",
                    if used == 1 { "y" } else { "ies" }
                ),
            ));
        }
        let deleted = sqlx::query("DELETE FROM issuers WHERE id = $1")
            .bind(issuer_id)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        require_changed(deleted, "issuer", issuer_id)?;
        audit!(tx, actor, IssuerDelete, Issuer, issuer_id).await?;
        commit(tx).await
    }

    async fn create_trust_policy(
        &self,
        actor: &Actor,
        new: &NewTrustPolicy,
    ) -> Result<TrustPolicyRecord> {
        let mut tx = self.write_tx().await?;
        // Lock order: the server row, then the issuer row, then the grants (see
        // `servers::lock_live_server`).
        lock_live_server(&mut tx, &new.server_id, ThisStore::LOCK_SERVER_SHARE).await?;
        let issuer: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT issuer FROM issuers WHERE id = $1{}",
            ThisStore::LOCK_ISSUER_SHARE
        )))
        .bind(&new.issuer_id)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let issuer = issuer.ok_or_else(|| Error::not_found("issuer", &new.issuer_id))?;
        // R7 as token create: every vault granted to the server.
        let sql = format!(
            "SELECT sv.vault_id FROM server_vaults sv WHERE sv.server_id = $1 \
             AND sv.vault_id IN ({}){}",
            placeholders(2, new.vaults.len()),
            ThisStore::LOCK_READ_GRANTS
        );
        let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).bind(&new.server_id);
        for (vault_id, _) in new.vaults.iter() {
            q = q.bind(vault_id.to_owned());
        }
        let granted: BTreeSet<String> = q.fetch_all(&mut *tx).await.db()?.into_iter().collect();
        if let Some((vault_id, _)) = new.vaults.iter().find(|(v, _)| !granted.contains(*v)) {
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
        let record = TrustPolicyRecord {
            id: new_lower(),
            name: new.name.as_str().to_owned(),
            server_id: new.server_id.clone(),
            issuer_id: new.issuer_id.clone(),
            issuer,
            audience: new.audience.clone(),
            subject: new.subject.clone(),
            claims: new.claims.clone(),
            vaults: new.vaults.to_vec(),
            ttl_seconds: new.ttl_seconds,
            created_at: Timestamp::now(),
            creator_id: actor.user_id.clone(),
        };
        let claims = serde_json::to_string(&record.claims).map_err(Error::internal)?;
        sqlx::query(
            "INSERT INTO trust_policies (id, server_id, issuer_id, name, name_key, audience, \
             subject, claims, ttl_seconds, creator_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&record.id)
        .bind(&record.server_id)
        .bind(&record.issuer_id)
        .bind(&record.name)
        .bind(name_key(&new.name))
        .bind(&record.audience)
        .bind(&record.subject)
        .bind(&claims)
        .bind(record.ttl_seconds)
        .bind(&record.creator_id)
        .bind(record.created_at.micros())
        .execute(&mut *tx)
        .await
        .unique(|| name_taken("trust policy of this server", &record.name))?;
        let sql = format!(
            "INSERT INTO trust_policy_vaults (policy_id, vault_id, access) VALUES {}",
            (0..new.vaults.len())
                .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(&record.id);
        for (vault_id, access) in new.vaults.iter() {
            q = q.bind(vault_id.to_owned()).bind(access);
        }
        q.execute(&mut *tx).await.db()?;
        audit!(tx, actor, TrustPolicyCreate, TrustPolicy, &record.id).await?;
        commit(tx).await?;
        Ok(record)
    }

    async fn list_trust_policies(
        &self,
        server_id: &str,
        page: &PageRequest,
    ) -> Result<Page<TrustPolicyRecord>> {
        // Oldest first, the order the exchange tries them in: the cursor is a lower bound.
        let (at, id) = match &page.after {
            Some(c) => (c.created_at, c.id.clone()),
            None => (i64::MIN, String::new()),
        };
        let mut conn = self.conn().await?;
        let rows: Vec<PolicyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{POLICY_SELECT} WHERE p.server_id = $1 AND (p.created_at, p.id) > ($2, $3) \
             ORDER BY p.created_at, p.id LIMIT $4"
        )))
        .bind(server_id)
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .fetch_all(&mut *conn)
        .await
        .db()?;
        let policies = hydrate_policies(&mut conn, rows).await?;
        Ok(page.finish(policies))
    }

    async fn find_trust_policies(
        &self,
        server_id: &str,
        reference: &str,
    ) -> Result<Found<TrustPolicyRecord>> {
        if !matchable(reference) || !matchable(server_id) {
            return Ok(Found::Names(Vec::new()));
        }
        let mut conn = self.conn().await?;
        let by_id: Option<PolicyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{POLICY_SELECT} WHERE p.server_id = $1 AND p.id = $2"
        )))
        .bind(server_id)
        .bind(reference)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
        if let Some(row) = by_id {
            let mut found = hydrate_policies(&mut conn, vec![row]).await?;
            return found
                .pop()
                .map(Found::Id)
                .ok_or_else(|| Error::internal("a trust policy vanished while it was read"));
        }
        let rows: Vec<PolicyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{POLICY_SELECT} WHERE p.server_id = $1 AND p.name_key = $2 \
             ORDER BY p.created_at DESC, p.id DESC LIMIT $3"
        )))
        .bind(server_id)
        .bind(name_key(reference))
        .bind(name_match_limit())
        .fetch_all(&mut *conn)
        .await
        .db()?;
        Ok(Found::Names(hydrate_policies(&mut conn, rows).await?))
    }

    async fn exchange_policies(
        &self,
        server_id: &str,
        issuer_id: &str,
    ) -> Result<Vec<TrustPolicyRecord>> {
        let mut conn = self.conn().await?;
        let rows: Vec<PolicyRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{POLICY_SELECT} WHERE p.server_id = $1 AND p.issuer_id = $2 \
             ORDER BY p.created_at, p.id"
        )))
        .bind(server_id)
        .bind(issuer_id)
        .fetch_all(&mut *conn)
        .await
        .db()?;
        hydrate_policies(&mut conn, rows).await
    }

    async fn delete_trust_policy(
        &self,
        actor: &Actor,
        server_id: &str,
        policy_id: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let deleted = sqlx::query("DELETE FROM trust_policies WHERE id = $1 AND server_id = $2")
            .bind(policy_id)
            .bind(server_id)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        require_changed(deleted, "trust policy", policy_id)?;
        audit!(tx, actor, TrustPolicyDelete, TrustPolicy, policy_id).await?;
        commit(tx).await
    }
}
