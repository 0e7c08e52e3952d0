//! The overview: servers, tokens that need a look (expiring within 7 days, never used or unused
//! for 30 days), the latest tokens and the latest audit events (owners).

use askama::Template;
use axum::extract::State;
use connect_manager_core::api::ListParams;
use connect_manager_core::api::audit::AuditParams;
use connect_manager_core::api::tokens::TokenParams;

use super::audit::{EventRow, event_rows};
use super::page::{Layout, OrFail, PageResult, ok};
use super::servers::ServerRow;
use super::session::Console;
use super::tokens::TokenRow;
use crate::api;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Rows per overview section.
const SECTION: u32 = 10;
/// "Expiring soon" and "unused" as the overview means them (the API's token filters).
const EXPIRING_WITHIN: &str = "7d";
const UNUSED_FOR: &str = "30d";

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Overview {
    layout: Layout,
    may_create: bool,
    servers: Vec<ServerRow>,
    more_servers: bool,
    tokens: Vec<TokenRow>,
    expiring: Vec<TokenRow>,
    more_expiring: bool,
    unused: Vec<TokenRow>,
    more_unused: bool,
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
    let tokens = |params: TokenParams| {
        let state = state.clone();
        let caller = console.caller();
        async move {
            api::tokens::list_tokens(
                State(state),
                caller,
                ApiQuery(TokenParams {
                    limit: Some(SECTION),
                    ..params
                }),
            )
            .await
            .map(|page| page.0)
        }
    };
    let latest = tokens(TokenParams::default()).await.or_fail(&console)?;
    let expiring = tokens(TokenParams {
        expiring_within: Some(EXPIRING_WITHIN.into()),
        ..Default::default()
    })
    .await
    .or_fail(&console)?;
    let unused = tokens(TokenParams {
        unused_for: Some(UNUSED_FOR.into()),
        ..Default::default()
    })
    .await
    .or_fail(&console)?;
    let events = match console.principal.owner {
        false => Vec::new(),
        true => {
            let page = api::audit::list_events(
                State(state.clone()),
                console.caller(),
                ApiQuery(AuditParams {
                    limit: Some(SECTION),
                    ..Default::default()
                }),
            )
            .await
            .or_fail(&console)?
            .0;
            event_rows(&state, page.items).await.or_fail(&console)?
        }
    };
    Ok(ok(&Overview {
        layout: Layout::of(&console, "overview"),
        may_create: console.principal.may_create_servers(),
        more_servers: servers.next_cursor.is_some(),
        servers: servers.items.into_iter().map(ServerRow::from).collect(),
        tokens: latest.items.into_iter().map(TokenRow::from).collect(),
        more_expiring: expiring.next_cursor.is_some(),
        expiring: expiring.items.into_iter().map(TokenRow::from).collect(),
        more_unused: unused.next_cursor.is_some(),
        unused: unused.items.into_iter().map(TokenRow::from).collect(),
        events,
    }))
}
