//! What the service itself fetches from elsewhere: trusted issuers' discovery documents and key
//! sets (the token exchange, issue 18) and a Connect server's vault list (the console's vault
//! import, G8). One HTTP stack (reqwest on rustls with ring), no redirects, and every read
//! bounded in time and size, so a slow or huge answer costs a clear error, never the service.

use std::time::Duration;

use serde_json::Value;

/// The longest any outbound fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A client for outbound fetches: [`FETCH_TIMEOUT`], no redirects followed.
pub fn client() -> reqwest::Client {
    // One TLS stack for the whole binary: rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("connect-manager/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(FETCH_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// `GET url` as JSON, at most `max_bytes`, within [`FETCH_TIMEOUT`]; with `bearer`, sent as
/// `Authorization: Bearer`. The error says what went wrong with the URL, never a header.
pub async fn get_json(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    max_bytes: usize,
) -> Result<Value, String> {
    let read = async {
        let mut request = http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", without_url(&e)))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: status {}", response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > max_bytes as u64)
        {
            return Err(format!("GET {url}: over {max_bytes} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {}", without_url(&e)))?
        {
            if body.len() + chunk.len() > max_bytes {
                return Err(format!("GET {url}: over {max_bytes} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| format!("GET {url}: not JSON"))
    };
    tokio::time::timeout(FETCH_TIMEOUT, read)
        .await
        .map_err(|_| format!("GET {url}: no answer within {} s", FETCH_TIMEOUT.as_secs()))?
}

/// reqwest's error text without the URL (the caller names it once).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "");
    }
    text
}
