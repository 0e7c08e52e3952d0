//! Sign-in, sign-out and the session every other page needs.
//!
//! A session ID is 32 random bytes (base64url) in an `HttpOnly`, `SameSite=Strict` cookie
//! (`__Host-` prefixed and `Secure` when the public URL is https); the database keeps only its
//! SHA-256 (`SessionStore`). Each form carries a CSRF token derived from the session ID (SHA-256
//! over a fixed label and the ID), so whoever reads the database cannot forge it; it is checked
//! in constant time on every POST. The sign-in form, before there is a session, uses a
//! double-submit cookie: a random value in a cookie and in the form, which must match.

use askama::Template;
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connect_manager_core::Timestamp;
use connect_manager_core::id::random_bytes;
use connect_manager_core::model::Actor;
use connect_manager_core::principal::Principal;
use connect_manager_core::secret::{api_key_hash, ct_eq, hex};
use sha2::{Digest, Sha256};

use super::page::{Failure, Layout, render, see};
use crate::extract::{Caller, actor_for, authenticate_key};
use crate::state::AppState;

const SESSION_COOKIE: &str = "cm_session";
const SIGN_IN_COOKIE: &str = "cm_sign_in";
const CSRF_LABEL: &[u8] = b"connect-manager console csrf v1\0";

/// What the database keeps of a session ID.
pub fn session_hash_of(session_id: &str) -> String {
    api_key_hash(session_id)
}

/// The CSRF token of a session: derived from the session ID, which the database never holds.
pub fn csrf_token_of(session_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(CSRF_LABEL);
    h.update(session_id.as_bytes());
    hex(&h.finalize())
}

/// The signed-in user of a console request: a live session's principal, looked up on every
/// request (as an API key is), and the CSRF token its forms carry.
#[derive(Debug)]
pub struct Console {
    pub principal: Principal,
    pub actor: Actor,
    pub csrf: String,
    session_hash: String,
}

impl Console {
    /// The API's caller for this user: console actions run through the API's handlers with it.
    pub fn caller(&self) -> Caller {
        Caller::signed_in(self.actor.clone(), self.principal.clone())
    }
}

/// The value of cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over https.
fn set_cookie(state: &AppState, base: &str, value: &str, max_age: Option<u32>) -> HeaderValue {
    let settings = &state.console;
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict",
        settings.cookie_name(base)
    );
    if settings.secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).expect("a cookie of URL-safe characters")
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let name = state.console.cookie_name(SESSION_COOKIE);
        let Some(id) = cookie(&parts.headers, &name) else {
            return Err(Failure::SignIn);
        };
        let hash = session_hash_of(id);
        let session = state
            .store
            .session(&hash, Timestamp::now(), state.console.limits)
            .await
            .map_err(|e| Failure::Api(Box::new(e.into()), None))?;
        let Some(session) = session else {
            return Err(Failure::SignIn);
        };
        Ok(Console {
            actor: actor_for(parts, session.user_id),
            principal: session.principal,
            csrf: csrf_token_of(id),
            session_hash: hash,
        })
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    layout: Layout,
    alert: Option<String>,
}

/// GET /ui/sign-in: the form, with a fresh double-submit token (or the one the browser has).
pub async fn sign_in_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    sign_in_page(&state, &headers, StatusCode::OK, None)
}

fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    alert: Option<String>,
) -> Response {
    let name = state.console.cookie_name(SIGN_IN_COOKIE);
    let token = cookie(headers, &name)
        .filter(|t| {
            t.len() == 43
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
    let mut response = render(
        status,
        &SignInPage {
            layout: Layout {
                csrf: token.clone(),
                ..Layout::default()
            },
            alert,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, SIGN_IN_COOKIE, &token, None),
    );
    response
}

#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    csrf_token: String,
}

/// POST /ui/sign-in: checks the double-submit token, then the API key (through the same
/// limiter as the API's Bearer key), and opens a session.
pub async fn sign_in(
    State(state): State<AppState>,
    parts: Parts,
    Form(form): Form<SignInForm>,
) -> Response {
    let name = state.console.cookie_name(SIGN_IN_COOKIE);
    let expected = cookie(&parts.headers, &name).unwrap_or("");
    if expected.is_empty() || !ct_eq(expected, form.csrf_token.trim()) {
        return Failure::Refused(None).into_response();
    }
    let key = form.api_key.trim();
    if key.is_empty() {
        return sign_in_page(
            &state,
            &parts.headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Enter an API key.".into()),
        );
    }
    let principal = match authenticate_key(&parts, &state, key).await {
        Ok(p) => p,
        Err(e) => {
            return sign_in_page(&state, &parts.headers, e.status, Some(e.message));
        }
    };
    let actor = actor_for(&parts, principal.user_id.clone());
    let id = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    if let Err(e) = state
        .store
        .create_session(&actor, &api_key_hash(key), &session_hash_of(&id))
        .await
    {
        let e = crate::error::ApiError::from(e);
        return sign_in_page(&state, &parts.headers, e.status, Some(e.message));
    }
    // Sweep what has expired meanwhile: one indexed delete per sign-in, no background task.
    if let Err(e) = state
        .store
        .delete_expired_sessions(Timestamp::now(), state.console.limits)
        .await
    {
        tracing::warn!(error = %e, "sweeping expired console sessions failed");
    }
    let mut response = see("/ui/");
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, &id, None),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, SIGN_IN_COOKIE, "", Some(0)),
    );
    response
}

/// POST /ui/sign-out: ends the session at once (audited), clears the cookie.
pub async fn sign_out(State(state): State<AppState>, posted: super::page::Posted) -> Response {
    let console = posted.console;
    if let Err(e) = state
        .store
        .delete_session(&console.actor, &console.session_hash)
        .await
    {
        return Failure::api(e, &console).into_response();
    }
    let mut response = see("/ui/sign-in");
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", Some(0)),
    );
    response
}
