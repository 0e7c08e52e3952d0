//! Tokens: a server's new-token form (vaults × access, expiry), the JWT shown once, and revoke.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use connect_manager_core::api::tokens::{CreateToken, ServerFilter, TokenVault};
use connect_manager_core::model::{Server, Token, TokenState, VaultAccess};

use super::page::{Fields, Layout, OrFail, PageResult, Posted, ok, render, see, time, time_or};
use super::session::Console;
use crate::api;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// A token as the lists show it.
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub server_id: String,
    /// `Active`, `Expired` or `Revoked`.
    pub state: &'static str,
    pub active: bool,
    pub created: String,
    pub expires: String,
    pub last_used: String,
}

impl From<Token> for TokenRow {
    fn from(t: Token) -> Self {
        let (state, active) = match (t.state, t.expired) {
            (TokenState::Revoked, _) => ("Revoked", false),
            (TokenState::Active, true) => ("Expired", false),
            (TokenState::Active, false) => ("Active", true),
        };
        TokenRow {
            state,
            active,
            created: time(t.created_at),
            expires: time_or(t.expires_at, "never"),
            last_used: time_or(t.last_used_at, "never"),
            id: t.id,
            name: t.name,
            server_id: t.integration_id,
        }
    }
}

pub struct AccessChoice {
    pub name: String,
    pub field: String,
    pub chosen: String,
}

#[derive(Template)]
#[template(path = "console/token_new.html")]
struct NewTokenPage {
    layout: Layout,
    alert: Option<String>,
    server: Server,
    name: String,
    expires_in: String,
    vaults: Vec<AccessChoice>,
}

async fn new_token_page(
    state: &AppState,
    console: &Console,
    id: &str,
    status: StatusCode,
    alert: Option<String>,
    fields: &Fields,
) -> PageResult {
    let server = api::servers::get_server(
        State(state.clone()),
        console.caller(),
        ApiPath(id.to_owned()),
    )
    .await
    .or_fail(console)?
    .0;
    let vaults = server
        .vaults
        .iter()
        .map(|v| {
            let field = format!("access.{}", v.id);
            AccessChoice {
                chosen: match fields.get(&field) {
                    "" => "none".into(),
                    c => c.to_owned(),
                },
                field,
                name: v.name.clone(),
            }
        })
        .collect();
    Ok(render(
        status,
        &NewTokenPage {
            layout: Layout::of(console, "servers"),
            alert,
            name: fields.get("name").to_owned(),
            expires_in: fields.get("expires_in").to_owned(),
            vaults,
            server,
        },
    ))
}

pub async fn new_form(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> PageResult {
    new_token_page(
        &state,
        &console,
        &id,
        StatusCode::OK,
        None,
        &Fields::default(),
    )
    .await
}

#[derive(Template)]
#[template(path = "console/token_created.html")]
struct CreatedPage {
    layout: Layout,
    server_id: String,
    name: String,
    jwt: String,
    expires: String,
}

/// POST …/tokens: the vaults chosen (`access.<vault id>` other than `none`) and the expiry, as
/// the API takes them (R7); the JWT is shown once.
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let mut vaults = Vec::new();
    for (field, value) in &fields.0 {
        let Some(vault) = field.strip_prefix("access.") else {
            continue;
        };
        let access = match value.as_str() {
            "read" => VaultAccess::Read,
            "write" => VaultAccess::Write,
            "read_write" => VaultAccess::ReadWrite,
            _ => continue,
        };
        vaults.push(TokenVault {
            vault: vault.to_owned(),
            access: Some(access),
        });
    }
    let expires_in = Some(fields.get("expires_in").to_owned()).filter(|e| !e.is_empty());
    let body = CreateToken {
        name: fields.get("name").to_owned(),
        vaults,
        expires_in,
    };
    match api::tokens::create_token(
        State(state.clone()),
        console.caller(),
        ApiPath(id.clone()),
        ApiJson(body),
    )
    .await
    {
        Ok((_, _, created)) => {
            let created = created.0;
            let mut response = ok(&CreatedPage {
                layout: Layout::of(&console, "servers"),
                server_id: created.token.integration_id.clone(),
                name: created.token.name.clone(),
                expires: time_or(created.token.expires_at, "never"),
                jwt: created.jwt,
            });
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static(api::NO_STORE),
            );
            Ok(response)
        }
        Err(e) => new_token_page(&state, &console, &id, e.status, Some(e.message), &fields).await,
    }
}

/// POST /ui/tokens/{id}/revoke (R8), back to the token's server.
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, .. }: Posted,
) -> PageResult {
    let revoked = api::tokens::revoke_token(
        State(state),
        console.caller(),
        ApiPath(id),
        ApiQuery(ServerFilter { server: None }),
    )
    .await
    .or_fail(&console)?
    .0;
    Ok(see(format!("/ui/servers/{}", revoked.integration_id)))
}
