//! The vault registry: everyone reads it (to pick vaults to grant); owners create, rename and
//! delete (the API decides, and says no to anyone else).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use connect_manager_core::api::ListParams;
use connect_manager_core::api::vaults::{CreateVault, RenameVault};
use connect_manager_core::model::VaultType;

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
