//! The audit trail ([`AuditStore`]): denied attempts (changes write their own events, in their
//! transaction: see `super::audit`) and the filtered, paged list.

use async_trait::async_trait;
use connect_manager_core::Result;
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::model::{Actor, AuditEvent, Outcome};
use connect_manager_core::page::{Page, PageRequest};

use super::rows::AuditRow;
use super::{ThisStore, commit, matchable, record_event};
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
}
