//! The vault registry: everyone reads it (to pick vaults to grant); owners create, rename and
//! delete (the API decides, and says no to anyone else).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use connect_manager_core::api::ListParams;
use connect_manager_core::api::vaults::{CreateVault, RenameVault};
use connect_manager_core::import::{ConnectVault, Step, plan};
use connect_manager_core::model::{Vault, VaultType};

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

#[derive(Template)]
#[template(path = "console/vaults.html")]
struct VaultsPage {
    layout: Layout,
    alert: Option<String>,
    types: Vec<&'static str>,
    vaults: Vec<VaultRow>,
    next: Option<String>,
}

async fn vaults_page(
    state: &AppState,
    console: &Console,
    cursor: Option<String>,
    status: StatusCode,
    alert: Option<String>,
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

/// One vault of an import, as the results table shows it.
pub struct ImportRow {
    pub id: String,
    pub name: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "console/vault_import.html")]
struct ImportPage {
    layout: Layout,
    alert: Option<String>,
    pasted: String,
    results: Vec<ImportRow>,
}

pub async fn import_form(console: Console) -> PageResult {
    Ok(render(
        StatusCode::OK,
        &ImportPage {
            layout: Layout::of(&console, "vaults"),
            alert: None,
            pasted: String::new(),
            results: Vec::new(),
        },
    ))
}

/// Every vault of the registry (the import compares against all of it, as the CLI does).
async fn whole_registry(state: &AppState, console: &Console) -> Result<Vec<Vault>, ApiError> {
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
            Some(c) => cursor = Some(c),
            None => return Ok(all),
        }
    }
}

/// POST /ui/vaults/import (G8): the vaults of Connect's `GET /v1/vaults` answer, pasted, into the
/// registry under their real IDs by core's import plan (create, rename, leave; never delete),
/// each step through the API as the signed-in user, so each change is audited as theirs.
pub async fn import(
    State(state): State<AppState>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let pasted = fields.get("connect_vaults").to_owned();
    let page = |status, alert: Option<String>, results| {
        render(
            status,
            &ImportPage {
                layout: Layout::of(&console, "vaults"),
                alert,
                pasted: pasted.clone(),
                results,
            },
        )
    };
    let vaults: Vec<ConnectVault> = match serde_json::from_str(&pasted) {
        Ok(v) => v,
        Err(e) => {
            return Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(format!(
                    "connect_vaults: paste the JSON array Connect's GET /v1/vaults answers ({e})"
                )),
                Vec::new(),
            ));
        }
    };
    let registry = match whole_registry(&state, &console).await {
        Ok(r) => r,
        Err(e) => return Ok(page(e.status, Some(e.message), Vec::new())),
    };
    let mut results = Vec::with_capacity(vaults.len());
    for cv in &vaults {
        let (name, outcome) = match plan(&registry, cv) {
            Err(why) => (cv.name.clone(), format!("not imported: {why}")),
            Ok(Step::Unchanged { name, .. }) => (name.into_string(), "unchanged".into()),
            Ok(Step::Rename {
                id,
                name,
                previous_name,
            }) => {
                let name = name.into_string();
                let done = api::vaults::rename_vault(
                    State(state.clone()),
                    console.caller(),
                    ApiPath(id),
                    ApiJson(RenameVault { name: name.clone() }),
                )
                .await;
                let outcome = match done {
                    Ok(_) => format!("renamed (was {previous_name})"),
                    Err(e) => format!("not imported: {}", e.message),
                };
                (name, outcome)
            }
            Ok(Step::Create {
                id,
                name,
                vault_type,
            }) => {
                let name = name.into_string();
                let done = api::vaults::create_vault(
                    State(state.clone()),
                    console.caller(),
                    ApiJson(CreateVault {
                        name: name.clone(),
                        vault_type,
                        id: Some(id),
                    }),
                )
                .await;
                let outcome = match done {
                    Ok(_) => "created".into(),
                    Err(e) => format!("not imported: {}", e.message),
                };
                (name, outcome)
            }
        };
        results.push(ImportRow {
            id: cv.id.clone(),
            name,
            outcome,
        });
    }
    Ok(page(StatusCode::OK, None, results))
}
