//! References in paths and queries (R1), among what the caller may see (A4): one resolver per
//! kind of object, so that every handler names servers, vaults, groups and users alike.

use axum::http::StatusCode;
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::lookup::{self, Found, Named, resolve};
use connect_manager_core::model::{Group, Server, ServerState, User, Vault};

use crate::error::ApiResult;
use crate::extract::Caller;
use crate::state::AppState;

/// Whether a server reference may name a deleted server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Live servers only: every action on a server.
    Hidden,
    /// Also a deleted server, by its exact ID, for callers who see deleted servers
    /// ([`Principal::sees_deleted_servers`](connect_manager_core::principal::Principal)): its
    /// tokens stay listed (R4).
    ByIdToAllServerManagers,
}

/// A4 for servers, stated once: the caller sees a server exactly when it may manage it
/// (`Principal::may_manage_server`; the store's lookups and lists apply the same test in SQL).
/// A server the caller may not see is 404, exactly like one that does not exist, so existence
/// does not leak; the attempt on it is audited as denied (`action`, A5), once, since the caller
/// was refused something that exists. An action on a visible object that the caller may not take
/// is 403 (`Caller::authorize`); for servers there is none, since seeing one is managing it.
/// R1: by ID or name; a deleted server only as `deleted` allows.
pub async fn resolve_server(
    state: &AppState,
    caller: &Caller,
    reference: &str,
    action: AuditAction,
    deleted: Deleted,
) -> ApiResult<Server> {
    let found = state
        .store
        .find_servers(&caller.principal, reference)
        .await?;
    let live = resolve_visible(state, caller, TargetType::Server, reference, found, action).await;
    match live {
        Err(e)
            if e.status == StatusCode::NOT_FOUND
                && deleted == Deleted::ByIdToAllServerManagers
                && caller.principal.sees_deleted_servers() =>
        {
            match state.store.get_server(reference).await? {
                Some(s) if s.state == ServerState::Deleted => Ok(s),
                _ => Err(e),
            }
        }
        other => other,
    }
}

/// R1 over what the store found among the objects the caller may see (A4): a match the caller
/// may not see is 404, and its one denied event (A5) names the hidden object's ID.
pub async fn resolve_visible<T: Named>(
    state: &AppState,
    caller: &Caller,
    kind: TargetType,
    reference: &str,
    found: Found<T>,
    action: AuditAction,
) -> ApiResult<T> {
    if let Some(hidden) = found.hidden() {
        caller.deny(state, action, kind, hidden).await?;
    }
    Ok(resolve(kind.as_str(), reference, found)?)
}

/// R1 for vaults: every authenticated caller sees the registry.
pub async fn resolve_vault(state: &AppState, reference: &str) -> ApiResult<Vault> {
    let found = state.store.find_vaults(reference).await?;
    Ok(resolve(TargetType::Vault.as_str(), reference, found)?)
}

/// R1 for groups (owners only: the caller is authorised before).
pub async fn resolve_group(state: &AppState, reference: &str) -> ApiResult<Group> {
    let found = state.store.find_groups(reference).await?;
    Ok(resolve(TargetType::Group.as_str(), reference, found)?)
}

/// R1 for users, by ID or email ([`lookup::resolve_user`]; owners only: the caller is
/// authorised before).
pub async fn resolve_user(state: &AppState, reference: &str) -> ApiResult<User> {
    let found = state.store.find_users(reference).await?;
    Ok(lookup::resolve_user(reference, found)?)
}
