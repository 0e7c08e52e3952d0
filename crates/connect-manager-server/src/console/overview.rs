//! The overview: servers, tokens that need a look (expiring within 7 days, never used or unused
//! for 30 days), the latest tokens and the latest audit events (owners).

use askama::Template;
use axum::extract::State;
use connect_manager_core::api::ListParams;
use connect_manager_core::api::audit::AuditParams;
use connect_manager_core::api::tokens::TokenParams;

use super::audit::EventRow;
use super::page::{Layout, OrFail, PageResult, ok};
use super::servers::ServerRow;
use super::session::Console;
use super::tokens::TokenRow;
use crate::api;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Rows per overview section.
const SECTION: u32 = 10;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    layout: Layout,
    may_create: bool,
    servers: Vec<ServerRow>,
    more_servers: bool,
    tokens: Vec<TokenRow>,
    events: Vec<EventRow>,
}

pub async fn show(State(state): State<AppState>, console: Console) -> PageResult {
    let servers = api::servers::list_servers(
        State(state.clone()),
        console.caller(),
        ApiQuery(ListParams {
            limit: Some(SECTION),
            cursor: None,
        }),
    )
    .await
    .or_fail(&console)?
    .0;
    let tokens = api::tokens::list_tokens(
        State(state.clone()),
        console.caller(),
        ApiQuery(TokenParams {
            server: None,
            limit: Some(SECTION),
            cursor: None,
        }),
    )
    .await
    .or_fail(&console)?
    .0;
    let events = match console.principal.owner {
        false => Vec::new(),
        true => api::audit::list_events(
            State(state.clone()),
            console.caller(),
            ApiQuery(AuditParams {
                limit: Some(SECTION),
                ..Default::default()
            }),
        )
        .await
        .or_fail(&console)?
        .0
        .items
        .into_iter()
        .map(EventRow::from)
        .collect(),
    };
    Ok(ok(&Overview {
        layout: Layout::of(&console, "overview"),
        may_create: console.principal.may_create_servers(),
        more_servers: servers.next_cursor.is_some(),
        servers: servers.items.into_iter().map(ServerRow::from).collect(),
        tokens: tokens.items.into_iter().map(TokenRow::from).collect(),
        events,
    }))
}
