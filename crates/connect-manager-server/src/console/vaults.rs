//! The vault registry: everyone reads it (to pick vaults to grant); owners create, rename and
//! delete (the API decides, and says no to anyone else), and import a Connect server's vaults
//! under their real IDs (G8: core's import plan, carried out through the API's handlers, as the
//! CLI's `vault import` carries it out over HTTP).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use connect_manager_core::api::ListParams;
use connect_manager_core::api::vaults::{CreateVault, RenameVault};
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::import::{ConnectVault, Step, plan};
use connect_manager_core::model::{Vault, VaultType};
use connect_manager_core::principal::Permission;

use super::page::{Layout, OrFail, PageResult, Paging, Posted, next_link, render, see, time};
use super::session::Console;
use crate::api;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

const VAULTS_PER_PAGE: u32 = 50;

pub struct VaultRow {
    pub id: String,
    pub name: String,
    pub vault_type: &'static str,
    pub created: String,
}

/// What an import did with one of the Connect server's vaults.
pub struct ImportRow {
    pub id: String,
    pub name: String,
    pub action: &'static str,
    pub detail: String,
}

/// An import's outcome, shown above the registry.
pub struct Imported {
    pub host: String,
    pub rows: Vec<ImportRow>,
    pub summary: String,
}

#[derive(Template)]
#[template(path = "console/vaults.html")]
struct VaultsPage {
    layout: Layout,
    alert: Option<String>,
    types: Vec<&'static str>,
    vaults: Vec<VaultRow>,
    next: Option<String>,
    imported: Option<Imported>,
}

async fn vaults_page(
    state: &AppState,
    console: &Console,
    cursor: Option<String>,
    status: StatusCode,
    alert: Option<String>,
) -> PageResult {
    vaults_page_with(state, console, cursor, status, alert, None).await
}

async fn vaults_page_with(
    state: &AppState,
    console: &Console,
    cursor: Option<String>,
    status: StatusCode,
    alert: Option<String>,
    imported: Option<Imported>,
) -> PageResult {
    let page = api::vaults::list_vaults(
        State(state.clone()),
        console.caller(),
        ApiQuery(ListParams {
            limit: Some(VAULTS_PER_PAGE),
            cursor,
        }),
    )
    .await
    .or_fail(console)?
    .0;
    Ok(render(
        status,
        &VaultsPage {
            layout: Layout::of(console, "vaults"),
            alert,
            imported,
            types: VaultType::ALL.iter().map(|t| t.as_str()).collect(),
            next: next_link("/ui/vaults", &page),
            vaults: page
                .items
                .into_iter()
                .map(|v| VaultRow {
                    vault_type: v.vault_type.as_str(),
                    created: time(v.created_at),
                    id: v.id,
                    name: v.name,
                })
                .collect(),
        },
    ))
}

pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(paging): Query<Paging>,
) -> PageResult {
    vaults_page(&state, &console, paging.cursor, StatusCode::OK, None).await
}

async fn back(state: &AppState, console: &Console, done: Result<(), ApiError>) -> PageResult {
    match done {
        Ok(()) => Ok(see("/ui/vaults")),
        Err(e) => vaults_page(state, console, None, e.status, Some(e.message)).await,
    }
}

pub async fn create(
    State(state): State<AppState>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let done = match VaultType::parse(fields.get("type")) {
        None => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "type: choose one of the vault types",
        )),
        Some(vault_type) => api::vaults::create_vault(
            State(state.clone()),
            console.caller(),
            ApiJson(CreateVault {
                name: fields.get("name").to_owned(),
                vault_type,
                id: None,
            }),
        )
        .await
        .map(drop),
    };
    back(&state, &console, done).await
}

pub async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let done = api::vaults::rename_vault(
        State(state.clone()),
        console.caller(),
        ApiPath(id),
        ApiJson(RenameVault {
            name: fields.get("name").to_owned(),
        }),
    )
    .await
    .map(drop);
    back(&state, &console, done).await
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, .. }: Posted,
) -> PageResult {
    let done = api::vaults::delete_vault(State(state.clone()), console.caller(), ApiPath(id))
        .await
        .map(drop);
    back(&state, &console, done).await
}

/// The most a Connect server's vault list may weigh.
const MAX_CONNECT_VAULTS_BYTES: usize = 1024 * 1024;

/// POST /ui/vaults/import (`connect_host`, `connect_token`): reads the Connect server's
/// `GET /v1/vaults` and creates or renames registry entries by ID; never deletes. Owners only,
/// decided by the API's own check before anything is fetched, so the console never makes the
/// service call an address for someone who may not change the registry. The Connect token goes
/// to that host only and is never shown, logged or kept.
pub async fn import(
    State(state): State<AppState>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let fail = |status, message: String| vaults_page(&state, &console, None, status, Some(message));
    let caller = console.caller();
    if let Err(e) = caller
        .authorize(
            &state,
            Permission::Owner,
            AuditAction::VaultCreate,
            TargetType::Vault,
            "import",
        )
        .await
    {
        return fail(e.status, e.message).await;
    }
    let host = fields.get("connect_host").trim_end_matches('/').to_owned();
    let token = fields.get("connect_token");
    if !(host.starts_with("https://") || host.starts_with("http://")) {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "connect_host: give the Connect server's URL, like https://connect.example.com".into(),
        )
        .await;
    }
    if token.is_empty() {
        return fail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "connect_token: give a Connect token that may list the vaults".into(),
        )
        .await;
    }
    let url = format!("{host}/v1/vaults");
    let http = crate::outbound::client();
    let fetched =
        crate::outbound::get_json(&http, &url, Some(token), MAX_CONNECT_VAULTS_BYTES).await;
    let from_connect: Vec<ConnectVault> = match fetched.and_then(|v| {
        serde_json::from_value(v).map_err(|_| format!("GET {url}: not a list of vaults"))
    }) {
        Ok(list) => list,
        Err(e) => {
            let hint = if e.ends_with("status 401") {
                " (check the Connect token)"
            } else {
                ""
            };
            return fail(
                StatusCode::BAD_GATEWAY,
                format!("could not read Connect's vaults: {e}{hint}"),
            )
            .await;
        }
    };
    let registry = match all_vaults(&state, &console).await {
        Ok(v) => v,
        Err(e) => return fail(e.status, e.message).await,
    };
    let mut rows = Vec::with_capacity(from_connect.len());
    for cv in &from_connect {
        rows.push(import_one(&state, &console, &registry, cv).await);
    }
    let count = |a: &str| rows.iter().filter(|r| r.action == a).count();
    let summary = format!(
        "{} created, {} renamed, {} unchanged, {} failed.",
        count("created"),
        count("renamed"),
        count("unchanged"),
        count("failed")
    );
    let imported = Imported {
        host,
        rows,
        summary,
    };
    vaults_page_with(&state, &console, None, StatusCode::OK, None, Some(imported)).await
}

/// Every vault of the registry, page by page through the API's list.
async fn all_vaults(state: &AppState, console: &Console) -> Result<Vec<Vault>, ApiError> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = api::vaults::list_vaults(
            State(state.clone()),
            console.caller(),
            ApiQuery(ListParams {
                limit: Some(1000),
                cursor,
            }),
        )
        .await?
        .0;
        all.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// One vault of the import: core's plan, carried out through the API's handlers.
async fn import_one(
    state: &AppState,
    console: &Console,
    registry: &[Vault],
    cv: &ConnectVault,
) -> ImportRow {
    let row = |name: &str, action, detail: String| ImportRow {
        id: cv.id.clone(),
        name: name.to_owned(),
        action,
        detail,
    };
    let step = match plan(registry, cv) {
        Ok(step) => step,
        Err(e) => return row(&cv.name, "failed", e),
    };
    let (name, action, detail, done) = match step {
        Step::Unchanged { name, .. } => (name, "unchanged", String::new(), Ok(())),
        Step::Rename {
            id,
            name,
            previous_name,
        } => {
            let done = api::vaults::rename_vault(
                State(state.clone()),
                console.caller(),
                ApiPath(id),
                ApiJson(RenameVault {
                    name: name.as_str().to_owned(),
                }),
            )
            .await
            .map(drop);
            (name, "renamed", format!("was '{previous_name}'"), done)
        }
        Step::Create {
            id,
            name,
            vault_type,
        } => {
            let done = api::vaults::create_vault(
                State(state.clone()),
                console.caller(),
                ApiJson(CreateVault {
                    name: name.as_str().to_owned(),
                    vault_type,
                    id: Some(id),
                }),
            )
            .await
            .map(drop);
            (name, "created", String::new(), done)
        }
    };
    match done {
        Ok(()) => row(name.as_str(), action, detail),
        Err(e) => row(name.as_str(), "failed", e.message),
    }
}
