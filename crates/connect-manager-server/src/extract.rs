//! Extractors: request bodies and queries whose rejections speak the error envelope, the calling
//! user (A1, Bearer API key) and the calling Connect server (HTTP Basic with its credentials).

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use connect_manager_core::Timestamp;
use connect_manager_core::audit::{AuditAction, TargetType};
use connect_manager_core::model::{API_KEY_LAST_USE_RESOLUTION_SECONDS, Actor};
use connect_manager_core::principal::{Permission, Principal};
use connect_manager_core::secret::api_key_hash;

use connect_manager_store::KeyAuth;

use crate::client::ClientAddr;
use crate::error::{ApiError, ApiResult};
use crate::limiter::Target;
use crate::request_id::RequestId;
use crate::state::AppState;

/// A JSON body; malformed, unknown-field, wrong-type and oversized bodies are 4xx envelopes.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// A query string, likewise.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// A path, likewise.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// A JSON body that may be left out: an empty body (whatever its content type) is `None`, as is
/// `null`; anything else is read as [`ApiJson`] reads it, with its rejections. For endpoints
/// that took no body before and gained optional fields (`POST /v1/users/{user}/keys`).
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> ApiResult<Self> {
        let (parts, body) = req.into_parts();
        let limited = axum::extract::Request::from_parts(parts.clone(), body);
        let bytes = axum::body::Bytes::from_request(limited, state)
            .await
            .map_err(|r| ApiError::for_status(r.status()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        // An object or `null`, nothing else: serde would read a struct from an array too
        // (`[null, null]`), which no client means.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if !matches!(first, Some(b'{') | Some(b'n')) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_body",
                "the body does not fit this endpoint: expected a JSON object or null",
            ));
        }
        let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let ApiJson(value) = ApiJson::<Option<T>>::from_request(req, state).await?;
        Ok(OptionalJson(value))
    }
}

pub(crate) fn actor_for(parts: &Parts, user_id: String) -> Actor {
    Actor {
        user_id,
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        client_ip: client_ip(parts),
    }
}

/// The client's address as text (client.rs: behind trusted proxies, the forwarded client).
pub fn client_ip(parts: &Parts) -> String {
    ClientAddr::text(&parts.extensions)
}

fn credentials<'a>(parts: &'a Parts, scheme: &str) -> Option<&'a str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// A1: the user behind `Authorization: Bearer <API key>`, looked up on every request.
pub struct Caller {
    pub principal: Principal,
    pub actor: Actor,
    /// Whether this request's denied attempt is audited already: one event per request (A5).
    denied: std::sync::atomic::AtomicBool,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let Some(key) = credentials(parts, "Bearer").filter(|k| !k.is_empty()) else {
            return Err(ApiError::unauthorized(
                "send an API key: Authorization: Bearer <key>",
            ));
        };
        let principal = authenticate_key(parts, state, key).await?;
        Ok(Caller::signed_in(
            actor_for(parts, principal.user_id.clone()),
            principal,
        ))
    }
}

/// A1: the user a live API key belongs to, through the limiter of failed authentications (the
/// API's Bearer key and the console's sign-in both come here). An expired key is refused saying
/// when it expired; a valid one has its last use recorded (at most once a minute).
pub async fn authenticate_key(parts: &Parts, state: &AppState, key: &str) -> ApiResult<Principal> {
    let fingerprint = connect_manager_core::secret::fingerprint(key);
    let attempt = match state
        .auth_limiter
        .admit(ClientAddr::of_parts(parts), &fingerprint, Target::Other)
        .await
    {
        Ok(attempt) => attempt,
        Err(refused) => {
            crate::metrics::inc(&state.metrics.auth_rate_limited);
            return Err(ApiError::refused(refused));
        }
    };
    let now = Timestamp::now();
    match state
        .store
        .authenticate_key(&api_key_hash(key), now)
        .await?
    {
        KeyAuth::Valid {
            principal,
            key_id,
            last_used_at,
        } => {
            attempt.succeeded();
            record_key_use(state, key_id, last_used_at, now);
            Ok(principal)
        }
        KeyAuth::Expired { key_id, expired_at } => {
            attempt.failed();
            crate::metrics::inc(&state.metrics.auth_failures_user_expired);
            tracing::info!(client_ip = %client_ip(parts), key_id = %key_id, "authentication failed: the API key expired");
            Err(ApiError::unauthorized(format!(
                "the API key expired at {}: ask an owner for a new one",
                expired_at.to_rfc3339()
            )))
        }
        KeyAuth::Unknown => {
            attempt.failed();
            crate::metrics::inc(&state.metrics.auth_failures_user);
            tracing::info!(client_ip = %client_ip(parts), "authentication failed: unknown API key");
            Err(ApiError::unauthorized("the API key is not valid"))
        }
    }
}

impl Caller {
    /// The caller a console session signs in as (issue 17): the same principal an API key
    /// gives, so every console action goes through the API's authorisation and audit.
    pub fn signed_in(actor: Actor, principal: Principal) -> Caller {
        Caller {
            principal,
            actor,
            denied: Default::default(),
        }
    }
}

/// Writes the key's last use when the stored one is a minute old or absent (the lookup returned
/// it, so most requests write nothing), off the request's path: a failed write costs a log line,
/// never the request.
fn record_key_use(
    state: &AppState,
    key_id: String,
    last_used_at: Option<Timestamp>,
    now: Timestamp,
) {
    let resolution = API_KEY_LAST_USE_RESOLUTION_SECONDS * 1_000_000;
    if last_used_at.is_some_and(|at| now.micros() - at.micros() < resolution) {
        return;
    }
    let store = state.store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.touch_api_key(&key_id, now).await {
            tracing::debug!(error = %e, "could not record an API key's last use");
        }
    });
}

impl Caller {
    /// The one authorisation check (A2–A5): allowed, or a 403 whose attempt is audited.
    pub async fn authorize(
        &self,
        state: &AppState,
        permission: Permission,
        action: AuditAction,
        target_type: TargetType,
        target_id: &str,
    ) -> ApiResult<()> {
        if self.principal.allows(permission) {
            return Ok(());
        }
        self.deny(state, action, target_type, target_id).await?;
        let needed = match permission {
            Permission::Owner => "only owners may do this",
            Permission::CreateServers => {
                "only owners and Secrets Automation managers may create servers"
            }
        };
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            needed,
        ))
    }
}

impl Caller {
    /// Audits this request's denied attempt (A5): once per request, whatever refused it, so one
    /// request writes one event. `target_id` is an ID when the target is known, else what the
    /// caller named (the store bounds and escapes it).
    pub async fn deny(
        &self,
        state: &AppState,
        action: AuditAction,
        target_type: TargetType,
        target_id: &str,
    ) -> ApiResult<()> {
        if self.denied.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        state
            .store
            .record_denial(&self.actor, action, target_type, target_id)
            .await?;
        Ok(())
    }
}

/// A Connect server authenticating with its credentials: HTTP Basic, user = server ID,
/// password = the secret in its credentials file (C1, C2, T4). Served from the access cache, so
/// a known server with a known secret costs no database round trip and no argon2.
pub struct ServerCaller {
    pub server_id: String,
    /// Its credentials and the vaults it is granted now.
    pub access: std::sync::Arc<connect_manager_store::ServerAccess>,
}

impl FromRequestParts<AppState> for ServerCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let unauthorized = || {
            let mut e = ApiError::unauthorized(
                "authenticate as the server: HTTP Basic with its ID and the secret of its credentials file",
            );
            e.challenge = r#"Basic realm="connect-manager""#;
            e
        };
        let Some(decoded) = credentials(parts, "Basic")
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
        else {
            return Err(unauthorized());
        };
        let fingerprint = connect_manager_core::secret::fingerprint(&decoded);
        // Guesses at one server's secret share its budget, from whatever address.
        let target = match decoded.split_once(':') {
            Some((server_id, _)) if connect_manager_core::id::is_upper(server_id) => {
                Target::Server(server_id)
            }
            _ => Target::Other,
        };
        let attempt = match state
            .auth_limiter
            .admit(ClientAddr::of_parts(parts), &fingerprint, target)
            .await
        {
            Ok(attempt) => attempt,
            Err(refused) => {
                crate::metrics::inc(&state.metrics.auth_rate_limited);
                return Err(ApiError::refused(refused));
            }
        };
        // Wrong credentials are Err(why); a database error is returned as it is (uncharged).
        let checked: Result<_, &str> = match decoded.split_once(':') {
            None => Err("malformed"),
            Some((server_id, _)) if !connect_manager_core::id::is_upper(server_id) => {
                Err("malformed server ID")
            }
            Some((server_id, secret)) => {
                match state.access.server(&state.store, server_id).await? {
                    None => Err("unknown server"),
                    Some(access) => {
                        match state
                            .server_secrets
                            .verify(secret, &access.credentials)
                            .await
                        {
                            Ok(true) => Ok(access),
                            Ok(false) => Err("bad secret"),
                            // Not checked: the attempt is dropped uncharged.
                            Err(crate::state::Busy) => {
                                crate::metrics::inc(&state.metrics.auth_rate_limited);
                                return Err(ApiError::too_many_because(
                                    1,
                                    "too many authentications as this server are being checked",
                                ));
                            }
                        }
                    }
                }
            }
        };
        let access = match checked {
            Ok(access) => access,
            Err(why) => {
                attempt.failed();
                crate::metrics::inc(&state.metrics.auth_failures_server);
                tracing::info!(client_ip = %client_ip(parts), "server authentication failed: {why}");
                return Err(unauthorized());
            }
        };
        attempt.succeeded();
        Ok(ServerCaller {
            server_id: access.credentials.server_id.clone(),
            access,
        })
    }
}
