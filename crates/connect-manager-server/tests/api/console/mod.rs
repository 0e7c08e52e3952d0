//! The console (issue 17) over HTTP, one file per part as `src/console/` is split: sessions
//! (sign-in, expiry, sign-out, what ends them), CSRF, headers and cookies, servers and tokens
//! (A4, the audit trail, the credentials file and the JWT shown once), and the owners' pages.
//! A [`Browser`] keeps cookies and the page's CSRF token as a browser would; the Chromium tests
//! (axe, screenshots) are the browser suite's.

mod csrf;
mod headers;
mod owners;
mod servers;
mod sessions;
mod tokens;

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::harness::TestApp;

/// An answer: status, headers, the HTML.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub html: String,
}

impl Page {
    #[track_caller]
    pub fn expect(self, status: u16) -> Page {
        assert_eq!(self.status.as_u16(), status, "{}", self.html);
        self
    }

    /// A 303 to `to`.
    #[track_caller]
    pub fn expect_redirect(self, to: &str) -> Page {
        assert_eq!(self.status.as_u16(), 303, "{}", self.html);
        assert_eq!(self.location(), to);
        self
    }

    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The text of the page's one `<h1>`.
    pub fn h1(&self) -> String {
        between(&self.html, "<h1>", "</h1>").unwrap_or_default()
    }

    /// The text of the `role="alert"` element, if any.
    pub fn alert(&self) -> Option<String> {
        between(&self.html, r#"role="alert" class="alert">"#, "</p>")
    }

    /// The text of the element with this `id` (`<code id="new-token">…</code>`).
    pub fn by_id(&self, id: &str) -> Option<String> {
        let start = self.html.find(&format!(r#"id="{id}">"#))?;
        let rest = &self.html[start..];
        let open = rest.find('>')? + 1;
        let close = rest[open..].find('<')?;
        Some(unescape(&rest[open..open + close]))
    }

    /// The value of the first hidden input `name`.
    pub fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!(r#"name="{name}" value=""#);
        let start = self.html.find(&marker)? + marker.len();
        let end = self.html[start..].find('"')?;
        Some(unescape(&self.html[start..start + end]))
    }
}

fn between(html: &str, open: &str, close: &str) -> Option<String> {
    let start = html.find(open)? + open.len();
    let end = html[start..].find(close)?;
    Some(unescape(&html[start..start + end]))
}

/// Percent-encodes a form value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A browser on the console: its own cookie jar, no redirects followed (tests look at them).
pub struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
    /// The CSRF token of the last page that had a form.
    csrf: Mutex<String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Mutex::default(),
            csrf: Mutex::default(),
        }
    }

    /// The cookie header's value, and every `Set-Cookie` of the answer applied to the jar.
    fn jar(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.into(), value.into());
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header(reqwest::header::COOKIE, self.jar())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for c in headers.get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let pair = c.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if c.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.into(), value.into());
            }
        }
        let html = response.text().await.unwrap();
        let page = Page {
            status,
            headers,
            html,
        };
        if let Some(token) = page.hidden("csrf_token") {
            *self.csrf.lock().unwrap() = token;
        }
        page
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    /// Posts exactly these fields (no CSRF token unless given).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body),
        )
        .await
    }

    /// Posts a form as the page would: these fields and the CSRF token of the last page.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf.lock().unwrap().clone();
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Signs in with `key` through the sign-in form.
    pub async fn sign_in(&self, key: &str) -> Page {
        self.get("/ui/sign-in").await.expect(200);
        self.post("/ui/sign-in", &[("api_key", key)]).await
    }

    /// Signs in and expects the overview.
    pub async fn signed_in(app: &TestApp, key: &str) -> Browser {
        let b = Browser::new(app);
        b.sign_in(key).await.expect_redirect("/ui/");
        b.get("/ui/").await.expect(200);
        b
    }
}
