//! What every console page shares: the layout (navigation, sign-out, the CSRF token), times,
//! rendering, the error pages, and posted forms with their CSRF check.

use askama::Template;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use connect_manager_core::Timestamp;
use connect_manager_core::page::Page;
use connect_manager_core::secret::ct_eq;

use super::session::Console;
use crate::error::ApiError;
use crate::state::AppState;

/// What the layout shows: the navigation the signed-in user may use, and the CSRF token every
/// form carries.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub csrf: String,
    /// Owners see Groups, Users and Audit (the API lets only them use those).
    pub owner: bool,
    pub signed_in: bool,
    /// Which navigation link is the current page's.
    pub current: &'static str,
}

impl Layout {
    pub fn of(console: &Console, current: &'static str) -> Layout {
        Layout {
            csrf: console.csrf.clone(),
            owner: console.principal.owner,
            signed_in: true,
            current,
        }
    }

    /// `aria-current="page"` for the current page's link.
    pub fn aria(&self, link: &str) -> &'static str {
        if self.current == link {
            "page"
        } else {
            "false"
        }
    }
}

/// A time as the console shows it: `<time datetime="RFC 3339" title="…">` with UTC text, which
/// the page's script rewrites into the browser's zone.
pub fn time(t: Timestamp) -> String {
    let iso = t.to_rfc3339();
    let text = format!("{} UTC", iso.get(..16).unwrap_or(&iso).replace('T', " "));
    format!(r#"<time datetime="{iso}" title="{iso}">{text}</time>"#)
}

/// [`time`], or `none` in words.
pub fn time_or(t: Option<Timestamp>, none: &str) -> String {
    t.map(time).unwrap_or_else(|| none.to_owned())
}

/// A rendered page with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page answered 200.
pub fn ok(template: &impl Template) -> Response {
    render(StatusCode::OK, template)
}

/// After a change: back to `to` (POST, redirect, GET).
pub fn see(to: impl AsRef<str>) -> Response {
    Redirect::to(to.as_ref()).into_response()
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    layout: Layout,
    title: String,
    message: String,
}

/// Why a console request was not answered with its page.
#[derive(Debug)]
pub enum Failure {
    /// No live session: back to the sign-in page (303).
    SignIn,
    /// A form without a valid CSRF token (403, "Request refused").
    Refused(Option<Layout>),
    /// What the API answered; a 404 is the Not found page.
    Api(Box<ApiError>, Option<Layout>),
}

impl Failure {
    pub fn api(e: impl Into<ApiError>, console: &Console) -> Failure {
        Failure::Api(Box::new(e.into()), Some(Layout::of(console, "")))
    }
}

/// `ApiResult` for the console: a failure carries the layout of whoever was signed in.
pub trait OrFail<T> {
    fn or_fail(self, console: &Console) -> Result<T, Failure>;
}

impl<T, E: Into<ApiError>> OrFail<T> for Result<T, E> {
    fn or_fail(self, console: &Console) -> Result<T, Failure> {
        self.map_err(|e| Failure::api(e, console))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::SignIn => Redirect::to("/ui/sign-in").into_response(),
            Failure::Refused(layout) => render(
                StatusCode::FORBIDDEN,
                &ErrorPage {
                    layout: layout.unwrap_or_default(),
                    title: "Request refused".into(),
                    message: "The form was not sent with a valid security token (CSRF). Reload \
                              the page and try again."
                        .into(),
                },
            ),
            Failure::Api(e, layout) => {
                let e = *e;
                let title = match e.status {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::FORBIDDEN => "Forbidden",
                    StatusCode::TOO_MANY_REQUESTS => "Too many requests",
                    StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
                    s if s.is_client_error() => "Request refused",
                    _ => "Something went wrong",
                };
                let mut response = render(
                    e.status,
                    &ErrorPage {
                        layout: layout.unwrap_or_default(),
                        title: title.into(),
                        message: e.message,
                    },
                );
                if let Some(seconds) = e.retry_after
                    && let Ok(v) = seconds.to_string().parse()
                {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
                response
            }
        }
    }
}

/// An unknown console address: the sign-in page without a session (as for any `/ui/` address),
/// else the Not found page.
pub async fn unknown(console: Result<Console, Failure>) -> Response {
    match console {
        Err(failure) => failure.into_response(),
        Ok(console) => {
            let mut response = not_found().await;
            if let Ok(html) = (ErrorPage {
                layout: Layout::of(&console, ""),
                title: "Not found".into(),
                message: "there is no such page in the console".into(),
            })
            .render()
            {
                *response.body_mut() = html.into();
            }
            response
        }
    }
}

/// The Not found page (404).
pub async fn not_found() -> Response {
    Failure::Api(
        Box::new(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "there is no such page in the console",
        )),
        None,
    )
    .into_response()
}

/// A posted form's fields, in order (a name may repeat: checkboxes).
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A form posted by a signed-in user, its CSRF token checked (in constant time) before the
/// handler runs: no session is a 303 to sign-in, a missing or wrong token a 403.
pub struct Posted {
    pub console: Console,
    pub fields: Fields,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Failure;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Failure> {
        let (mut parts, body) = request.into_parts();
        let console = Console::from_request_parts(&mut parts, state).await?;
        let refused = || Failure::Refused(Some(Layout::of(&console, "")));
        let Ok(Form(fields)) =
            Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), state)
                .await
        else {
            return Err(refused());
        };
        let fields = Fields(fields);
        if !ct_eq(fields.get("csrf_token"), &console.csrf) {
            return Err(refused());
        }
        Ok(Posted { console, fields })
    }
}

/// The `?cursor=` of a list page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Paging {
    pub cursor: Option<String>,
}

/// The link to a page's next page, if there is one: `base` with `cursor` added.
pub fn next_link<T>(base: &str, page: &Page<T>) -> Option<String> {
    let cursor = page.next_cursor.as_deref()?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}cursor={}", encode(cursor)))
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A page of the console (a handler's answer): the page, or why not.
pub type PageResult = Result<Response, Failure>;
