//! The audit trail (A5), with the API's filters (`action`, `actor`) and paging (owners; the API
//! refuses anyone else, and the refusal is audited like the API's).

use askama::Template;
use axum::extract::{Query, State};
use connect_manager_core::api::audit::AuditParams;
use connect_manager_core::audit::{AuditAction, AuditEvent};

use super::page::{Layout, OrFail, PageResult, encode, next_link, ok, time};
use super::session::Console;
use crate::api;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Events per page unless `limit` says otherwise; at most [`MAX_EVENTS`], so a page stays small.
const EVENTS_PER_PAGE: u32 = 50;
const MAX_EVENTS: u32 = 100;

pub struct EventRow {
    pub at: String,
    pub actor_id: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub client_ip: String,
}

impl From<AuditEvent> for EventRow {
    fn from(e: AuditEvent) -> Self {
        EventRow {
            at: time(e.at),
            target: match e.target_id.is_empty() {
                true => e.target_type,
                false => format!("{} {}", e.target_type, e.target_id),
            },
            actor_id: e.actor_id,
            action: e.action,
            outcome: e.outcome,
            client_ip: e.client_ip,
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    /// Every action, and whether it is the one filtered by.
    actions: Vec<(&'static str, bool)>,
    actor: String,
    events: Vec<EventRow>,
    next: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let set = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let action = set(q.action);
    let actor = set(q.actor);
    let limit = q.limit.unwrap_or(EVENTS_PER_PAGE).clamp(1, MAX_EVENTS);
    let page = api::audit::list_events(
        State(state),
        console.caller(),
        ApiQuery(AuditParams {
            limit: Some(limit),
            cursor: q.cursor,
            action: action.clone(),
            actor: actor.clone(),
            ..Default::default()
        }),
    )
    .await
    .or_fail(&console)?
    .0;
    let mut base = format!("/ui/audit?limit={limit}");
    if let Some(a) = &action {
        base.push_str(&format!("&action={}", encode(a)));
    }
    if let Some(a) = &actor {
        base.push_str(&format!("&actor={}", encode(a)));
    }
    Ok(ok(&AuditPage {
        layout: Layout::of(&console, "audit"),
        actions: AuditAction::ALL
            .iter()
            .filter(|a| **a != AuditAction::StorageProbe)
            .map(|a| (a.as_str(), action.as_deref() == Some(a.as_str())))
            .collect(),
        actor: actor.unwrap_or_default(),
        next: next_link(&base, &page),
        events: page.items.into_iter().map(EventRow::from).collect(),
    }))
}
