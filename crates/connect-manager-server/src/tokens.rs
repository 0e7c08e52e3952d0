//! Issuing a token (T1, R7): the one way a token comes to be, whichever endpoint asks for one
//! (`POST /v1/connect/servers/{server}/tokens`, and the token exchange of issue 18 through
//! [`issue_exchanged`]). Signed with the newest key, stored with its audit event, counted.

use connect_manager_core::api::trust::TokenExchangeOrigin;
use connect_manager_core::model::{Actor, Server, TokenRecord};
use connect_manager_core::name::Name;
use connect_manager_core::scope::TokenScope;
use connect_manager_core::token::Claims;
use connect_manager_core::{Error, Timestamp};
use connect_manager_store::NewToken;

use crate::error::ApiResult;
use crate::state::AppState;

/// A new token named `name` for `server` (resolved and authorised by the caller), reaching
/// `scope` and expiring `lifetime` seconds from now (never, when `None`): the stored record and
/// the JWT, which is never stored and must be shown at once.
pub async fn issue(
    state: &AppState,
    actor: &Actor,
    server: &Server,
    name: Name,
    scope: TokenScope,
    lifetime: Option<i64>,
) -> ApiResult<(TokenRecord, String)> {
    issue_exchanged(state, actor, server, name, scope, lifetime, None).await
}

/// As [`issue`], for a token the exchange makes: `origin` (the subject token's issuer and
/// subject, the policy) is stored on it and its audit event is `token.exchange`.
pub async fn issue_exchanged(
    state: &AppState,
    actor: &Actor,
    server: &Server,
    name: Name,
    scope: TokenScope,
    lifetime: Option<i64>,
    origin: Option<TokenExchangeOrigin>,
) -> ApiResult<(TokenRecord, String)> {
    let keys = state.keys.for_signing(&state.store).await?;
    let kid = keys
        .signing_kid()
        .ok_or_else(|| Error::internal("no signing key"))?
        .to_owned();
    let now = Timestamp::now();
    let claims = Claims::new(
        &state.public_url,
        &state.account_id,
        &server.id,
        &scope,
        now,
        lifetime,
    );
    let jwt = keys.sign(&claims)?;
    let record = state
        .store
        .create_token(
            actor,
            &NewToken {
                id: claims.jti,
                server_id: server.id.clone(),
                name,
                issuer: claims.iss,
                kid,
                created_at: now,
                expires_at: lifetime.map(|s| now.plus_seconds(s)),
                vaults: scope,
                exchange: origin,
            },
        )
        .await?;
    crate::metrics::inc(&state.metrics.tokens_issued);
    Ok((record, jwt))
}
