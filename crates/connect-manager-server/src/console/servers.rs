//! Servers: the list, a server's page (vault grants, tokens, rotation, deletion), creation, and
//! the credentials file download (once, never in a URL).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use connect_manager_core::api::ListParams;
use connect_manager_core::api::servers::{CreateServer, ServerWithCredentials};
use connect_manager_core::api::tokens::TokenParams;
use connect_manager_core::api::trust::TrustPolicy;
use connect_manager_core::credentials::CredentialsFile;
use connect_manager_core::model::{Server, Vault};

use super::page::{
    Failure, Fields, Layout, OrFail, PageResult, Paging, Posted, next_link, ok, render, see, time,
};
use super::session::Console;
use super::tokens::TokenRow;
use crate::api;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Servers per page of the list.
const SERVERS_PER_PAGE: u32 = 50;
/// Tokens per page of a server's page.
pub const TOKENS_PER_PAGE: u32 = 50;
/// Vaults offered to pick from (grant, create): the registry's newest.
pub const VAULT_CHOICES: u32 = 200;

/// The warning the credentials page gives.
pub const CREDENTIALS_WARNING: &str = "This is the only time this credentials file can be \
    downloaded: connect-manager keeps only a verifier of the secret in it. Store it like a \
    password (readable only by the Connect server that uses it, never in a repository); if it is \
    lost, rotate the credentials to make a new one.";

pub struct ServerRow {
    pub id: String,
    pub name: String,
    pub vaults: String,
    pub created: String,
}

impl From<Server> for ServerRow {
    fn from(s: Server) -> Self {
        ServerRow {
            vaults: match s.vaults.len() {
                0 => "none".into(),
                _ => s
                    .vaults
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            created: time(s.created_at),
            id: s.id,
            name: s.name,
        }
    }
}

#[derive(Template)]
#[template(path = "console/servers.html")]
struct ServersPage {
    layout: Layout,
    may_create: bool,
    servers: Vec<ServerRow>,
    next: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(paging): Query<Paging>,
) -> PageResult {
    let page = api::servers::list_servers(
        State(state),
        console.caller(),
        ApiQuery(ListParams {
            limit: Some(SERVERS_PER_PAGE),
            cursor: paging.cursor,
        }),
    )
    .await
    .or_fail(&console)?
    .0;
    Ok(ok(&ServersPage {
        layout: Layout::of(&console, "servers"),
        may_create: console.principal.may_create_servers(),
        next: next_link("/ui/servers", &page),
        servers: page.items.into_iter().map(ServerRow::from).collect(),
    }))
}

/// The vaults the registry has (newest first), for a picker.
pub async fn vault_choices(state: &AppState, console: &Console) -> Result<Vec<Vault>, Failure> {
    Ok(api::vaults::list_vaults(
        State(state.clone()),
        console.caller(),
        ApiQuery(ListParams {
            limit: Some(VAULT_CHOICES),
            cursor: None,
        }),
    )
    .await
    .or_fail(console)?
    .0
    .items)
}

pub struct VaultChoice {
    pub id: String,
    pub name: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "console/server_new.html")]
struct NewServerPage {
    layout: Layout,
    alert: Option<String>,
    name: String,
    vaults: Vec<VaultChoice>,
}

async fn new_server_page(
    state: &AppState,
    console: &Console,
    status: StatusCode,
    alert: Option<String>,
    fields: &Fields,
) -> PageResult {
    let picked: Vec<&str> = fields.all("vaults").collect();
    let vaults = vault_choices(state, console)
        .await?
        .into_iter()
        .filter(|v| v.vault_type.is_grantable())
        .map(|v| VaultChoice {
            checked: picked.contains(&v.id.as_str()),
            id: v.id,
            name: v.name,
        })
        .collect();
    Ok(render(
        status,
        &NewServerPage {
            layout: Layout::of(console, "servers"),
            alert,
            name: fields.get("name").to_owned(),
            vaults,
        },
    ))
}

pub async fn new_form(State(state): State<AppState>, console: Console) -> PageResult {
    new_server_page(&state, &console, StatusCode::OK, None, &Fields::default()).await
}

#[derive(Template)]
#[template(path = "console/credentials.html")]
struct CredentialsPage {
    layout: Layout,
    title: &'static str,
    server_id: String,
    server_name: String,
    warning: &'static str,
    credentials: String,
}

fn credentials_page(
    console: &Console,
    title: &'static str,
    created: ServerWithCredentials,
) -> PageResult {
    let credentials = serde_json::to_string(&created.credentials).map_err(|e| {
        Failure::api(
            ApiError::from(connect_manager_core::Error::internal(e.to_string())),
            console,
        )
    })?;
    let mut response = ok(&CredentialsPage {
        layout: Layout::of(console, "servers"),
        title,
        server_id: created.server.id,
        server_name: created.server.name,
        warning: CREDENTIALS_WARNING,
        credentials,
    });
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(api::NO_STORE),
    );
    Ok(response)
}

/// POST /ui/servers: creates through the API (R3, A3) and shows the credentials page.
pub async fn create(
    State(state): State<AppState>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let body = CreateServer {
        name: fields.get("name").to_owned(),
        vaults: fields.all("vaults").map(str::to_owned).collect(),
    };
    match api::servers::create_server(State(state.clone()), console.caller(), ApiJson(body)).await {
        Ok((_, _, created)) => credentials_page(&console, "Server created", created.0),
        Err(e) => new_server_page(&state, &console, e.status, Some(e.message), &fields).await,
    }
}

/// POST /ui/credentials-file: the credentials file the page above carries, handed back as a
/// download (so it never appears in a URL and the service keeps no copy).
pub async fn download(Posted { console, fields }: Posted) -> PageResult {
    let file: CredentialsFile = serde_json::from_str(fields.get("credentials")).map_err(|_| {
        Failure::api(
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "that is not a credentials file",
            ),
            &console,
        )
    })?;
    let body = serde_json::to_string_pretty(&file).unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"1password-credentials.json\"",
            ),
            (header::CACHE_CONTROL, api::NO_STORE),
        ],
        body,
    )
        .into_response())
}

pub struct GrantRow {
    pub id: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "console/server.html")]
struct ServerPage {
    layout: Layout,
    alert: Option<String>,
    server: Server,
    created: String,
    grants: Vec<GrantRow>,
    grantable: Vec<GrantRow>,
    policies: Vec<PolicyRow>,
    tokens: Vec<TokenRow>,
    next: Option<String>,
}

/// A trust policy (issue 18) as the server's page shows it: what a workload must present and
/// what its exchanged tokens may reach.
pub struct PolicyRow {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    pub claims: String,
    pub vaults: String,
    pub ttl: String,
}

impl PolicyRow {
    fn of(p: TrustPolicy, server: &Server) -> Self {
        let vault_name = |id: &str| {
            server
                .vaults
                .iter()
                .find(|v| v.id == id)
                .map_or_else(|| id.to_owned(), |v| v.name.clone())
        };
        PolicyRow {
            claims: p
                .claims
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            vaults: p
                .vaults
                .iter()
                .map(|v| format!("{} ({})", vault_name(&v.id), v.acl.join(", ")))
                .collect::<Vec<_>>()
                .join("; "),
            ttl: match p.ttl_seconds % 60 {
                0 => format!("{} min", p.ttl_seconds / 60),
                _ => format!("{} s", p.ttl_seconds),
            },
            id: p.id,
            name: p.name,
            issuer: p.issuer,
            audience: p.audience,
            subject: p.subject,
        }
    }
}

/// The most trust policies a server's page lists (the order the exchange tries them in).
const POLICIES_PER_PAGE: u32 = 50;

/// A server's page, with `alert` (an action's error) shown at the top, answered with `status`.
pub async fn server_page(
    state: &AppState,
    console: &Console,
    id: &str,
    cursor: Option<String>,
    status: StatusCode,
    alert: Option<String>,
) -> PageResult {
    let server = api::servers::get_server(
        State(state.clone()),
        console.caller(),
        ApiPath(id.to_owned()),
    )
    .await
    .or_fail(console)?
    .0;
    let tokens = api::tokens::list_tokens(
        State(state.clone()),
        console.caller(),
        ApiQuery(TokenParams {
            server: Some(server.id.clone()),
            limit: Some(TOKENS_PER_PAGE),
            cursor,
            ..Default::default()
        }),
    )
    .await
    .or_fail(console)?
    .0;
    let policies = api::trust::list_trust_policies(
        State(state.clone()),
        console.caller(),
        ApiPath(server.id.clone()),
        ApiQuery(ListParams {
            limit: Some(POLICIES_PER_PAGE),
            cursor: None,
        }),
    )
    .await
    .or_fail(console)?
    .0
    .items
    .into_iter()
    .map(|p| PolicyRow::of(p, &server))
    .collect();
    let grantable = vault_choices(state, console)
        .await?
        .into_iter()
        .filter(|v| v.vault_type.is_grantable() && !server.vaults.iter().any(|g| g.id == v.id))
        .map(|v| GrantRow {
            id: v.id,
            name: v.name,
        })
        .collect();
    let base = format!("/ui/servers/{}", server.id);
    Ok(render(
        status,
        &ServerPage {
            layout: Layout::of(console, "servers"),
            alert,
            created: time(server.created_at),
            grants: server
                .vaults
                .iter()
                .map(|v| GrantRow {
                    id: v.id.clone(),
                    name: v.name.clone(),
                })
                .collect(),
            grantable,
            policies,
            next: next_link(&base, &tokens),
            tokens: tokens.items.into_iter().map(TokenRow::from).collect(),
            server,
        },
    ))
}

pub async fn detail(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> PageResult {
    server_page(&state, &console, &id, paging.cursor, StatusCode::OK, None).await
}

/// After an action on server `id`: back to its page, or its page with the API's error.
async fn back(
    state: &AppState,
    console: &Console,
    id: &str,
    result: Result<(), ApiError>,
) -> PageResult {
    match result {
        Ok(()) => Ok(see(format!("/ui/servers/{}", super::page::encode(id)))),
        Err(e) => server_page(state, console, id, None, e.status, Some(e.message)).await,
    }
}

pub async fn grant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let vault = fields.get("vault").to_owned();
    let done = api::servers::grant_vault(
        State(state.clone()),
        console.caller(),
        ApiPath((id.clone(), vault)),
    )
    .await
    .map(drop);
    back(&state, &console, &id, done).await
}

pub async fn revoke(
    State(state): State<AppState>,
    Path((id, vault)): Path<(String, String)>,
    Posted { console, .. }: Posted,
) -> PageResult {
    let done = api::servers::revoke_vault(
        State(state.clone()),
        console.caller(),
        ApiPath((id.clone(), vault)),
    )
    .await
    .map(drop);
    back(&state, &console, &id, done).await
}

/// POST …/trust-policies/{policy}/delete: no more exchanges under it (issue 18).
pub async fn delete_policy(
    State(state): State<AppState>,
    Path((id, policy)): Path<(String, String)>,
    Posted { console, .. }: Posted,
) -> PageResult {
    let done = api::trust::delete_trust_policy(
        State(state.clone()),
        console.caller(),
        ApiPath((id.clone(), policy)),
    )
    .await
    .map(drop);
    back(&state, &console, &id, done).await
}

/// POST …/credentials: rotates (C3) and shows the new file once.
pub async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, .. }: Posted,
) -> PageResult {
    match api::servers::rotate_credentials(
        State(state.clone()),
        console.caller(),
        ApiPath(id.clone()),
    )
    .await
    {
        Ok((_, _, rotated)) => credentials_page(&console, "Credentials rotated", rotated.0),
        Err(e) => back(&state, &console, &id, Err(e)).await,
    }
}

/// POST …/delete: the typed name must be the server's (a confirmation, not a rule: the API
/// decides whether this user may delete it).
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let server =
        api::servers::get_server(State(state.clone()), console.caller(), ApiPath(id.clone()))
            .await
            .or_fail(&console)?
            .0;
    if fields.get("confirm_name") != server.name {
        let e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "confirmation_mismatch",
            format!("type the server's name, {}, to delete it", server.name),
        );
        return back(&state, &console, &id, Err(e)).await;
    }
    match api::servers::delete_server(
        State(state.clone()),
        console.caller(),
        ApiPath(server.id.clone()),
    )
    .await
    {
        Ok(_) => Ok(see("/ui/servers")),
        Err(e) => back(&state, &console, &id, Err(e)).await,
    }
}
