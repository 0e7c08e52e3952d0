//! A small typed HTTP client for the API, on its request and response types (`core::api`).
//! It only talks HTTP: it never opens the database. Every call goes through [`send_traced`],
//! which traces it to standard error under `--debug`.

use anyhow::{Context, bail};
use connect_manager_core::api::error::ErrorBody;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    /// `--debug`: trace each call.
    pub debug: bool,
}

/// An error the API answered with: its message is what the user reads.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body.error.message)?;
        if self.body.error.code == "ambiguous"
            && let Some(candidates) = self.body.error.details.get("candidates")
        {
            write!(f, " (candidates: {candidates})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiFailure {}

/// Percent-encodes one path segment or query value (names may hold spaces, slashes, anything).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An HTTP client for `url` (the service, or a Connect server for `vault import`), once `url`
/// is an http(s) URL; `setting` names where the URL came from, for the error.
pub fn http_client(setting: &str, url: &str) -> anyhow::Result<reqwest::Client> {
    // One TLS stack for the whole binary: rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("{setting}: '{url}' is not an http:// or https:// URL");
    }
    reqwest::Client::builder()
        .user_agent(concat!("connect-manager-cli/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("cannot set up the HTTP client")
}

/// Sends `request`; with `debug` (`--debug`), writes one line to standard error for it: method,
/// URL (without any user or password in it), status or failure, time taken. Never a header (the
/// API key or Connect token travel in one), never a body (a token or credentials file may).
pub async fn send_traced(debug: bool, request: RequestBuilder) -> reqwest::Result<Response> {
    if !debug {
        return request.send().await;
    }
    let (http, request) = request.build_split();
    let request = request?;
    let method = request.method().clone();
    let mut url = request.url().clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let started = std::time::Instant::now();
    let response = http.execute(request).await;
    let took = started.elapsed().as_millis();
    match &response {
        Ok(r) => eprintln!("[DEBUG] {method} {url} {} {took} ms", r.status()),
        Err(_) => eprintln!("[DEBUG] {method} {url} no answer {took} ms"),
    }
    response
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        let http = http_client("--url / CONNECT_MANAGER_URL", &base)?;
        Ok(Client {
            base,
            token,
            http,
            debug: false,
        })
    }

    /// Traces each call to standard error when `debug` (`--debug`).
    pub fn debug(self, debug: bool) -> Self {
        Client { debug, ..self }
    }

    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<T> {
        let Some(token) = &self.token else {
            bail!(
                "no API key: set CONNECT_MANAGER_TOKEN, pass --token, or save an account \
                 (connect-manager account add)"
            );
        };
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = send_traced(self.debug, req)
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading the response")?;
        if !status.is_success() {
            return match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(body) => Err(ApiFailure { status, body }.into()),
                Err(_) => bail!("{} answered {status}", self.base),
            };
        }
        let bytes = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes)
            .with_context(|| format!("unexpected answer from {}", self.base))
    }

    /// POSTs `fields` as `application/x-www-form-urlencoded` WITHOUT the API key: for the token
    /// exchange, where the subject token in the form is the only credential. The answer's status
    /// and body, whatever the status; the caller reads its errors (RFC 6749's shape, not E1's).
    pub async fn post_form_anonymous(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let response = send_traced(self.debug, req)
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading the response")?;
        Ok((status, bytes.to_vec()))
    }

    /// The service's address, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> anyhow::Result<T> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> anyhow::Result<T> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn put<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::PUT, path, None::<&()>).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(Method::DELETE, path, None::<&()>).await
    }

    /// Every page of a list.
    pub async fn list_all<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Vec<T>> {
        self.list_up_to(path, None).await
    }

    /// The first `max` items of a list (all of them with `None`), page after page.
    pub async fn list_up_to<T: DeserializeOwned>(
        &self,
        path: &str,
        max: Option<usize>,
    ) -> anyhow::Result<Vec<T>> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let limit = max.map_or(1000, |m| (m - items.len()).clamp(1, 1000));
            let page_path = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={}", enc(c)),
                None => format!("{path}{sep}limit={limit}"),
            };
            let page: connect_manager_core::page::Page<T> = self.get(&page_path).await?;
            items.extend(page.items);
            if let Some(m) = max {
                items.truncate(m);
                if items.len() == m {
                    return Ok(items);
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(items),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::enc;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("Prod Secrets/x"), "Prod%20Secrets%2Fx");
        assert_eq!(enc("plain-id_1"), "plain-id_1");
    }
}
