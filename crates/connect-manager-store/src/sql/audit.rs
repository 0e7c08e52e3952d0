//! The audit trail ([`AuditStore`]): denied attempts (changes write their own events, in their
//! transaction: see `super::audit`), the filtered, paged list, and the names of what it refers to.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use connect_manager_core::Result;
use connect_manager_core::audit::{AuditAction, NamedKind, TargetType};
use connect_manager_core::model::{Actor, AuditEvent, Outcome};
use connect_manager_core::page::{Page, PageRequest};

use super::rows::AuditRow;
use super::{ThisStore, children_of, commit, matchable, record_event};
use crate::{AuditFilter, AuditStore, DbResult};

#[async_trait]
impl AuditStore for ThisStore {
    async fn record_denial(
        &self,
        actor: &Actor,
        action: AuditAction,
        target_type: TargetType,
        target_id: &str,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        record_event(
            &mut tx,
            actor,
            action,
            target_type,
            target_id,
            Outcome::Denied,
        )
        .await?;
        commit(tx).await
    }

    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let filters = [&filter.action, &filter.actor_id, &filter.target_id];
        if filters
            .iter()
            .any(|f| f.as_deref().is_some_and(|f| !matchable(f)))
        {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let (at, id) = page.bounds();
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at, actor_id, action, target_type, target_id, request_id, client_ip, \
             outcome FROM audit_events \
             WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR actor_id = $2) \
             AND ($3 IS NULL OR target_id = $3) AND ($4 IS NULL OR at >= $4) \
             AND ($5 IS NULL OR at < $5) AND (at, id) < ($6, $7) \
             ORDER BY at DESC, id DESC LIMIT $8",
        )
        .bind(filter.action.as_deref())
        .bind(filter.actor_id.as_deref())
        .bind(filter.target_id.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .bind(at)
        .bind(id)
        .bind(page.fetch())
        .fetch_all(&mut *self.conn().await?)
        .await
        .db()?;
        Ok(page.finish(rows.into_iter().map(AuditEvent::from).collect()))
    }

    async fn names_of(
        &self,
        things: &[(NamedKind, &str)],
    ) -> Result<HashMap<(NamedKind, String), String>> {
        if things.is_empty() {
            return Ok(HashMap::new());
        }
        let mut by_kind: HashMap<NamedKind, BTreeSet<&str>> = HashMap::new();
        for (kind, id) in things {
            by_kind.entry(*kind).or_default().insert(id);
        }
        let mut names = HashMap::new();
        let mut conn = self.conn().await?;
        for (kind, ids) in by_kind {
            let ids: Vec<&str> = ids.into_iter().collect();
            let (table, column) = name_column(kind);
            let found = children_of(
                &mut conn,
                &ids,
                |ids| format!("SELECT id, {column} FROM {table} WHERE id IN ({ids})"),
                |(id, name): (String, String)| Ok((id, name)),
            )
            .await?;
            for (id, mut name) in found {
                if let Some(name) = name.pop() {
                    names.insert((kind, id), name);
                }
            }
        }
        Ok(names)
    }
}

/// Where a kind of thing keeps the name shown for it: constants, formatted into SQL as
/// `placeholders` says.
fn name_column(kind: NamedKind) -> (&'static str, &'static str) {
    match kind {
        NamedKind::User => ("users", "email"),
        NamedKind::ApiKey => ("api_keys", "name"),
        NamedKind::Group => ("groups", "name"),
        NamedKind::Vault => ("vaults", "name"),
        NamedKind::Server => ("servers", "name"),
        NamedKind::Token => ("tokens", "name"),
        NamedKind::Issuer => ("issuers", "name"),
        NamedKind::TrustPolicy => ("trust_policies", "name"),
    }
}
