//! The operator console (issue 17): server-rendered HTML at `/ui/`, in the same binary, on the
//! same rules. A browser signs in with a user's API key and gets a server-side session
//! (`session.rs`); every page and action then runs as that user through the API's own handler
//! functions (`crate::api::*`), so authorisation (A2–A4) and the audit trail (A5) are exactly the
//! API's. Pages are askama templates under `templates/console/`; the CSS and the little
//! JavaScript (local times, copy buttons) are embedded and served from `/ui/static/`.
//!
//! One module per part of the console, as the routes are: `overview.rs`, `servers.rs`,
//! `tokens.rs`, `groups.rs`, `vaults.rs`, `users.rs`, `audit.rs`; `page.rs` holds what every page
//! shares (the layout, times, errors, forms and their CSRF check).

mod assets;
mod audit;
mod groups;
mod overview;
mod page;
mod servers;
mod session;
mod tokens;
mod users;
mod vaults;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use connect_manager_store::SessionLimits;

use crate::state::AppState;

pub use session::{csrf_token_of, session_hash_of};

/// The console's settings: how long sessions live, and whether cookies are `Secure` with the
/// `__Host-` prefix (the public URL is https).
#[derive(Debug, Clone, Copy)]
pub struct ConsoleSettings {
    pub limits: SessionLimits,
    pub secure: bool,
}

impl ConsoleSettings {
    pub fn new(limits: SessionLimits, public_url: &str) -> Self {
        ConsoleSettings {
            limits,
            secure: public_url.starts_with("https://"),
        }
    }

    /// A cookie's name: `__Host-<base>` over https (Secure, Path=/, no Domain), else `<base>`.
    pub fn cookie_name(&self, base: &str) -> String {
        match self.secure {
            true => format!("__Host-{base}"),
            false => base.to_owned(),
        }
    }
}

/// The Content-Security-Policy of every console answer: nothing from another origin, no inline
/// script or style, no framing, forms posting only here.
pub const CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The console's routes (docs/console.md lists them).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview::show))
        .route(
            "/ui/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/servers", get(servers::list).post(servers::create))
        .route("/ui/servers/new", get(servers::new_form))
        .route("/ui/servers/{id}", get(servers::detail))
        .route("/ui/servers/{id}/vaults", post(servers::grant))
        .route(
            "/ui/servers/{id}/vaults/{vault}/revoke",
            post(servers::revoke),
        )
        .route("/ui/servers/{id}/credentials", post(servers::rotate))
        .route("/ui/servers/{id}/delete", post(servers::delete))
        .route(
            "/ui/servers/{id}/trust-policies/{policy}/delete",
            post(servers::delete_policy),
        )
        .route("/ui/servers/{id}/tokens/new", get(tokens::new_form))
        .route("/ui/servers/{id}/tokens", post(tokens::create))
        .route("/ui/tokens/{id}/revoke", post(tokens::revoke))
        .route("/ui/credentials-file", post(servers::download))
        .route("/ui/groups", get(groups::list).post(groups::create))
        .route("/ui/groups/{id}", get(groups::detail))
        .route("/ui/groups/{id}/members", post(groups::add_member))
        .route(
            "/ui/groups/{id}/members/{user}/remove",
            post(groups::remove_member),
        )
        .route("/ui/groups/{id}/grants", post(groups::grant))
        .route("/ui/groups/{id}/grants/revoke", post(groups::revoke))
        .route("/ui/groups/{id}/delete", post(groups::delete))
        .route("/ui/vaults", get(vaults::list).post(vaults::create))
        .route(
            "/ui/vaults/import",
            get(vaults::import_form).post(vaults::import),
        )
        .route("/ui/vaults/{id}/rename", post(vaults::rename))
        .route("/ui/vaults/{id}/delete", post(vaults::delete))
        .route("/ui/users", get(users::list).post(users::create))
        .route("/ui/users/{id}", get(users::detail))
        .route("/ui/users/{id}/keys", post(users::create_key))
        .route("/ui/users/{id}/keys/{key}/delete", post(users::delete_key))
        .route("/ui/users/{id}/delete", post(users::delete))
        .route("/ui/audit", get(audit::list))
        .route("/ui/static/{file}", get(assets::serve))
        .route("/ui/{*rest}", get(page::unknown).post(page::unknown))
        .layer(axum::middleware::map_response(headers))
}

/// The headers of every console answer: CSP, nosniff, no referrer, and no caching of pages
/// (static assets set their own `Cache-Control`).
async fn headers(mut response: Response) -> Response {
    // An error page is the answer itself, not a body for the API's envelope.
    response.extensions_mut().insert(crate::error::Enveloped);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response.into_response()
}
