//! Groups (owners): members and the three grant scopes (R11). Every change is the API's.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use connect_manager_core::api::ListParams;
use connect_manager_core::api::groups::CreateGroup;
use connect_manager_core::audit::NamedKind;
use connect_manager_core::model::{GrantScope, Group, GroupGrant};

use super::page::{
    Fields, Layout, OrFail, PageResult, Paging, Posted, encode, next_link, render, see, time,
};
use super::session::Console;
use crate::api;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

const GROUPS_PER_PAGE: u32 = 50;

pub struct GroupRow {
    pub id: String,
    pub name: String,
    pub members: usize,
    pub grants: String,
    pub created: String,
}

/// The names of the users and servers a groups page refers to by ID (a group's members, SERVER
/// grants), read in one query per kind; an ID without a name left is shown as it is.
struct Names(HashMap<(NamedKind, String), String>);

/// The servers a group's SERVER grants name.
fn granted_servers(g: &Group) -> impl Iterator<Item = (NamedKind, &str)> {
    g.grants
        .iter()
        .filter_map(|x| x.server_id.as_deref())
        .map(|s| (NamedKind::Server, s))
}

impl Names {
    async fn of(state: &AppState, things: &[(NamedKind, &str)]) -> ApiResult<Names> {
        Ok(Names(state.store.names_of(things).await?))
    }

    fn get<'a>(&'a self, kind: NamedKind, id: &'a str) -> &'a str {
        self.0
            .get(&(kind, id.to_owned()))
            .map_or(id, String::as_str)
    }

    fn grant_text(&self, grant: &GroupGrant) -> String {
        match (grant.scope, grant.server_id.as_deref()) {
            (GrantScope::Manager, _) => "Secrets Automation manager (MANAGER)".into(),
            (GrantScope::AllServers, _) => "every server (ALL_SERVERS)".into(),
            (GrantScope::Server, s) => format!(
                "server {} (SERVER)",
                s.map_or("", |s| self.get(NamedKind::Server, s))
            ),
        }
    }

    fn row(&self, g: Group) -> GroupRow {
        GroupRow {
            members: g.members.len(),
            grants: match g.grants.is_empty() {
                true => "none".into(),
                false => g
                    .grants
                    .iter()
                    .map(|x| self.grant_text(x))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            created: time(g.created_at),
            id: g.id,
            name: g.name,
        }
    }
}

#[derive(Template)]
#[template(path = "console/groups.html")]
struct GroupsPage {
    layout: Layout,
    alert: Option<String>,
    groups: Vec<GroupRow>,
    next: Option<String>,
}

async fn groups_page(
    state: &AppState,
    console: &Console,
    cursor: Option<String>,
    status: StatusCode,
    alert: Option<String>,
) -> PageResult {
    let page = api::groups::list_groups(
        State(state.clone()),
        console.caller(),
        ApiQuery(ListParams {
            limit: Some(GROUPS_PER_PAGE),
            cursor,
        }),
    )
    .await
    .or_fail(console)?
    .0;
    // The list shows member counts, not members: only the granted servers are named.
    let servers: Vec<_> = page.items.iter().flat_map(granted_servers).collect();
    let names = Names::of(state, &servers).await.or_fail(console)?;
    Ok(render(
        status,
        &GroupsPage {
            layout: Layout::of(console, "groups"),
            alert,
            next: next_link("/ui/groups", &page),
            groups: page.items.into_iter().map(|g| names.row(g)).collect(),
        },
    ))
}

pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(paging): Query<Paging>,
) -> PageResult {
    groups_page(&state, &console, paging.cursor, StatusCode::OK, None).await
}

pub async fn create(
    State(state): State<AppState>,
    Posted { console, fields }: Posted,
) -> PageResult {
    match api::groups::create_group(
        State(state.clone()),
        console.caller(),
        ApiJson(CreateGroup {
            name: fields.get("name").to_owned(),
        }),
    )
    .await
    {
        Ok((_, group)) => Ok(see(format!("/ui/groups/{}", group.0.id))),
        Err(e) => groups_page(&state, &console, None, e.status, Some(e.message)).await,
    }
}

pub struct GrantRow {
    pub scope: &'static str,
    pub server: String,
    pub text: String,
}

/// A member as the page shows them: by email, the ID on hover and in the link.
pub struct Member {
    pub id: String,
    pub email: String,
}

#[derive(Template)]
#[template(path = "console/group.html")]
struct GroupPage {
    layout: Layout,
    alert: Option<String>,
    group: Group,
    created: String,
    members: Vec<Member>,
    grants: Vec<GrantRow>,
}

async fn group_page(
    state: &AppState,
    console: &Console,
    id: &str,
    status: StatusCode,
    alert: Option<String>,
) -> PageResult {
    let group = api::groups::get_group(
        State(state.clone()),
        console.caller(),
        ApiPath(id.to_owned()),
    )
    .await
    .or_fail(console)?
    .0;
    let things: Vec<_> = group
        .members
        .iter()
        .map(|m| (NamedKind::User, m.as_str()))
        .chain(granted_servers(&group))
        .collect();
    let names = Names::of(state, &things).await.or_fail(console)?;
    Ok(render(
        status,
        &GroupPage {
            layout: Layout::of(console, "groups"),
            alert,
            created: time(group.created_at),
            members: group
                .members
                .iter()
                .map(|m| Member {
                    email: names.get(NamedKind::User, m).to_owned(),
                    id: m.clone(),
                })
                .collect(),
            grants: group
                .grants
                .iter()
                .map(|g| GrantRow {
                    scope: g.scope.as_str(),
                    server: g.server_id.clone().unwrap_or_default(),
                    text: names.grant_text(g),
                })
                .collect(),
            group,
        },
    ))
}

pub async fn detail(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> PageResult {
    group_page(&state, &console, &id, StatusCode::OK, None).await
}

async fn back(
    state: &AppState,
    console: &Console,
    id: &str,
    done: Result<(), ApiError>,
) -> PageResult {
    match done {
        Ok(()) => Ok(see(format!("/ui/groups/{}", encode(id)))),
        Err(e) => group_page(state, console, id, e.status, Some(e.message)).await,
    }
}

pub async fn add_member(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let user = fields.get("user").to_owned();
    let done = api::groups::add_member(
        State(state.clone()),
        console.caller(),
        ApiPath((id.clone(), user)),
    )
    .await
    .map(drop);
    back(&state, &console, &id, done).await
}

pub async fn remove_member(
    State(state): State<AppState>,
    Path((id, user)): Path<(String, String)>,
    Posted { console, .. }: Posted,
) -> PageResult {
    let done = api::groups::remove_member(
        State(state.clone()),
        console.caller(),
        ApiPath((id.clone(), user)),
    )
    .await
    .map(drop);
    back(&state, &console, &id, done).await
}

/// The API call a grant form names: `scope` (MANAGER, ALL_SERVERS, SERVER) and `server`.
async fn change_grant(
    state: &AppState,
    console: &Console,
    id: &str,
    fields: &Fields,
    grant: bool,
) -> Result<(), ApiError> {
    let s = State(state.clone());
    let c = console.caller();
    let id = id.to_owned();
    let server = fields.get("server").to_owned();
    match (GrantScope::parse(fields.get("scope")), grant) {
        (Some(GrantScope::Manager), true) => api::groups::grant_manager(s, c, ApiPath(id))
            .await
            .map(drop),
        (Some(GrantScope::Manager), false) => api::groups::revoke_manager(s, c, ApiPath(id))
            .await
            .map(drop),
        (Some(GrantScope::AllServers), true) => api::groups::grant_all_servers(s, c, ApiPath(id))
            .await
            .map(drop),
        (Some(GrantScope::AllServers), false) => api::groups::revoke_all_servers(s, c, ApiPath(id))
            .await
            .map(drop),
        (Some(GrantScope::Server), true) => api::groups::grant_server(s, c, ApiPath((id, server)))
            .await
            .map(drop),
        (Some(GrantScope::Server), false) => {
            api::groups::revoke_server(s, c, ApiPath((id, server)))
                .await
                .map(drop)
        }
        (None, _) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "scope: choose MANAGER, ALL_SERVERS or SERVER",
        )),
    }
}

pub async fn grant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let done = change_grant(&state, &console, &id, &fields, true).await;
    back(&state, &console, &id, done).await
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, fields }: Posted,
) -> PageResult {
    let done = change_grant(&state, &console, &id, &fields, false).await;
    back(&state, &console, &id, done).await
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { console, .. }: Posted,
) -> PageResult {
    match api::groups::delete_group(State(state.clone()), console.caller(), ApiPath(id.clone()))
        .await
    {
        Ok(_) => Ok(see("/ui/groups")),
        Err(e) => back(&state, &console, &id, Err(e)).await,
    }
}
