//! The audit trail (A5): every change and every denied attempt, newest first (owners).

use axum::Json;
use axum::extract::State;
use connect_manager_core::api::audit::AuditParams;
use connect_manager_core::audit::AuditEvent;
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::page::{Page, PageRequest};
use connect_manager_core::principal::Permission;
use connect_manager_core::{Error, Timestamp};
use connect_manager_store::AuditFilter;

use super::Errors;
use crate::error::ApiResult;
use crate::extract::{ApiQuery, Caller};
use crate::state::AppState;

fn time_param(name: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value
        .map(|v| {
            Timestamp::parse_rfc3339(v)
                .map(Timestamp::micros)
                .ok_or_else(|| {
                    Error::invalid_field(name, "must be an RFC 3339 time like 2026-11-30T12:00:00Z")
                        .into()
                })
        })
        .transpose()
}

/// Page through audit events, newest first (owners): every change and every denied attempt.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(AuditParams),
    security(("api_key" = [])),
    responses((status = 200, description = "A page of audit events, newest first.", body = Page<AuditEvent>), Errors))]
pub async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::AuditList,
            TargetType::Audit,
            "",
        )
        .await?;
    let page = PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let filter = AuditFilter {
        action: params.action,
        actor_id: params.actor,
        target_id: params.target,
        since: time_param("since", params.since.as_deref())?,
        until: time_param("until", params.until.as_deref())?,
    };
    Ok(Json(state.store.list_audit_events(&filter, &page).await?))
}
