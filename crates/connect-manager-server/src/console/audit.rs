//! The audit trail (A5), with the API's filters (`action`, `actor`) and paging (owners; the API
//! refuses anyone else, and the refusal is audited like the API's).

use askama::Template;
use axum::extract::{Query, State};
use connect_manager_core::api::audit::AuditParams;
use connect_manager_core::audit::{AuditAction, AuditEvent, NamedKind, actor_user, target_parts};

use super::page::{Layout, OrFail, PageResult, encode, next_link, ok, time};
use super::session::Console;
use crate::api;
use crate::error::ApiResult;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Events per page unless `limit` says otherwise; at most [`MAX_EVENTS`], so a page stays small.
const EVENTS_PER_PAGE: u32 = 50;
const MAX_EVENTS: u32 = 100;

/// One thing an event names, as the page shows it: its name where it still has one (the ID on
/// hover, and a link to its page where it has one), else its ID or the text stored.
pub struct Shown {
    pub label: &'static str,
    pub text: String,
    /// The ID, shown on hover, when `text` is a name.
    pub title: Option<String>,
    pub href: Option<String>,
}

pub struct EventRow {
    pub at: String,
    pub actor: Shown,
    pub action: String,
    pub target: Vec<Shown>,
    pub outcome: String,
    pub client_ip: String,
}

/// A page of events as rows, with the names of the users and things they refer to by ID (one
/// query per kind of thing: [`AuditStore::names_of`]). Only owners read the trail, and they may
/// see every name.
pub async fn event_rows(state: &AppState, events: Vec<AuditEvent>) -> ApiResult<Vec<EventRow>> {
    let mut things = Vec::new();
    for e in &events {
        if let Some(user) = actor_user(&e.actor_id) {
            things.push((NamedKind::User, user));
        }
        for part in target_parts(&e.target_type, &e.target_id) {
            if let Some(kind) = part.named {
                things.push((kind, part.id));
            }
        }
    }
    let names = state.store.names_of(&things).await?;
    let shown = |label, id: &str, kind: Option<NamedKind>| {
        let name = kind.and_then(|k| names.get(&(k, id.to_owned())));
        let href = match (kind, name) {
            (Some(NamedKind::User), Some(_)) => Some(format!("/ui/users/{}", encode(id))),
            (Some(NamedKind::Server), Some(_)) => Some(format!("/ui/servers/{}", encode(id))),
            (Some(NamedKind::Group), Some(_)) => Some(format!("/ui/groups/{}", encode(id))),
            _ => None,
        };
        Shown {
            label,
            text: name.cloned().unwrap_or_else(|| id.to_owned()),
            title: name.map(|_| id.to_owned()),
            href,
        }
    };
    Ok(events
        .iter()
        .map(|e| EventRow {
            at: time(e.at),
            actor: shown(
                "actor",
                &e.actor_id,
                actor_user(&e.actor_id).map(|_| NamedKind::User),
            ),
            action: e.action.clone(),
            target: target_parts(&e.target_type, &e.target_id)
                .into_iter()
                .map(|p| shown(p.label, p.id, p.named))
                .collect(),
            outcome: e.outcome.clone(),
            client_ip: e.client_ip.clone(),
        })
        .collect())
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
    // The filter takes a user's email as well as the API's actor ID (owners only read the trail,
    // and only they may resolve users; anything else is passed on as typed).
    let actor_id = match (&actor, console.principal.owner) {
        (Some(a), true) => match api::resolve_user(&state, a).await {
            Ok(user) => Some(user.id),
            Err(_) => Some(a.clone()),
        },
        _ => actor.clone(),
    };
    let limit = q.limit.unwrap_or(EVENTS_PER_PAGE).clamp(1, MAX_EVENTS);
    let page = api::audit::list_events(
        State(state.clone()),
        console.caller(),
        ApiQuery(AuditParams {
            limit: Some(limit),
            cursor: q.cursor,
            action: action.clone(),
            actor: actor_id,
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
        events: event_rows(&state, page.items).await.or_fail(&console)?,
    }))
}
