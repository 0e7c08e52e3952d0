//! Users and their API keys (owners): create, delete, and keys shown once.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use connect_manager_core::api::ListParams;
use connect_manager_core::api::users::{CreateApiKey, CreateUser};
use connect_manager_core::model::User;

use super::page::{
    Layout, OrFail, PageResult, Paging, Posted, encode, next_link, render, see, time, time_or,
};
use super::session::Console;
use crate::api;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
use crate::state::AppState;

const USERS_PER_PAGE: u32 = 50;
const KEYS_PER_PAGE: u32 = 50;

pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub created: String,
}

impl From<User> for UserRow {
    fn from(u: User) -> Self {
        UserRow {
            created: time(u.created_at),
            id: u.id,
            name: u.name,
            email: u.email,
        }
    }
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    layout: Layout,
    alert: Option<String>,
    users: Vec<UserRow>,
    next: Option<String>,
}

async fn users_page(
    state: &AppState,
    console: &Console,
    cursor: Option<String>,
    status: StatusCode,
    alert: Option<String>,
) -> PageResult {
    let page = api::users::list_users(
        State(state.clone()),
        console.caller(),
        ApiQuery(ListParams {
            limit: Some(USERS_PER_PAGE),
            cursor,
        }),
    )
    .await
    .or_fail(console)?
    .0;
    Ok(render(
        status,
        &UsersPage {
            layout: Layout::of(console, "users"),
            alert,
            next: next_link("/ui/users", &page),
            users: page.items.into_iter().map(UserRow::from).collect(),
        },
    ))
}

pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(paging): Query<Paging>,
) -> PageResult {
    users_page(&state, &console, paging.cursor, StatusCode::OK, None).await
}

pub async fn create(
    State(state): State<AppState>,
    Posted { console, fields }: Posted,
) -> PageResult {
    match api::users::create_user(
        State(state.clone()),
        console.caller(),
        ApiJson(CreateUser {
            name: fields.get("name").to_owned(),
            email: fields.get("email").to_owned(),
        }),
    )
    .await
    {
        Ok((_, user)) => Ok(see(format!("/ui/users/{}", user.0.id))),
        Err(e) => users_page(&state, &console, None, e.status, Some(e.message)).await,
    }
}

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub expires: String,
    pub expired: bool,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "console/user.html")]
struct UserPage {
    layout: Layout,
    alert: Option<String>,
    user: UserRow,
    keys: Vec<KeyRow>,
    next: Option<String>,
    new_key: Option<String>,
}

async fn user_page(
    state: &AppState,
    console: &Console,
    id: &str,
    cursor: Option<String>,
    status: StatusCode,
    alert: Option<String>,
    new_key: Option<String>,
) -> PageResult {
    let user = api::users::get_user(
        State(state.clone()),
        console.caller(),
        ApiPath(id.to_owned()),
    )
    .await
    .or_fail(console)?
    .0;
    let keys = api::users::list_api_keys(
        State(state.clone()),
        console.caller(),
        ApiPath(user.id.clone()),
        ApiQuery(ListParams {
            limit: Some(KEYS_PER_PAGE),
            cursor,
        }),
    )
    .await
    .or_fail(console)?
    .0;
    let base = format!("/ui/users/{}", user.id);
    Ok(render(
        status,
        &UserPage {
            layout: Layout::of(console, "users"),
            alert,
            next: next_link(&base, &keys),
            keys: keys
                .items
                .into_iter()
                .map(|k| KeyRow {
                    created: time(k.created_at),
                    expires: time_or(k.expires_at, "never"),
                    expired: k.expired,
                    last_used: time_or(k.last_used_at, "never"),
                    name: k.name,
                    id: k.id,
                })
                .collect(),
            user: UserRow::from(user),
            new_key,
        },
    ))
}

pub async fn detail(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
) -> PageResult {
    user_page(
        &state,
        &console,
        &id,
        paging.cursor,
        StatusCode::OK,
        None,
        None,
    )
    .await
}

async fn back(
    state: &AppState,
    console: &Console,
    id: &str,
    done: Result<(), ApiError>,
) -> PageResult {
    match done {
        Ok(()) => Ok(see(format!("/ui/users/{}", encode(id)))),
        Err(e) => user_page(state, console, id, None, e.status, Some(e.message), None).await,
    }
}

/// POST …/keys (`name`, `expires_in`, both optional): a new key, shown this once in
/// `<code id="new-key">`.
pub async fn create_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let given = |field: &str| Some(fields.get(field).to_owned()).filter(|v| !v.is_empty());
    let body = CreateApiKey {
        name: given("name"),
        expires_in: given("expires_in"),
    };
    match api::users::create_api_key(
        State(state.clone()),
        console.caller(),
        ApiPath(id.clone()),
        OptionalJson(Some(body)),
    )
    .await
    {
        Ok((_, _, created)) => {
            let mut response = user_page(
                &state,
                &console,
                &id,
                None,
                StatusCode::OK,
                None,
                Some(created.0.key),
            )
            .await?;
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static(api::NO_STORE),
            );
            Ok(response)
        }
        Err(e) => back(&state, &console, &id, Err(e)).await,
    }
}

pub async fn delete_key(
    State(state): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    Posted { console, .. }: Posted,
) -> PageResult {
    let done = api::users::delete_api_key(
        State(state.clone()),
        console.caller(),
        ApiPath((id.clone(), key)),
    )
    .await
    .map(drop);
    back(&state, &console, &id, done).await
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, .. }: Posted,
) -> PageResult {
    match api::users::delete_user(State(state.clone()), console.caller(), ApiPath(id.clone())).await
    {
        Ok(_) => Ok(see("/ui/users")),
        Err(e) => back(&state, &console, &id, Err(e)).await,
    }
}
