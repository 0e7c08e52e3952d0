//! The gateway's client of the manager, authenticated as the server this gateway stands for
//! (HTTP Basic with the server ID and secret from the credentials file, as in T4).
//! Owned by the verification side of the crate; see lib.rs.

use std::path::Path;
use std::time::Duration;

use connect_manager_core::api::tokens::{IntrospectRequest, Introspection};
use connect_manager_core::api::usage::UsageReport;
use connect_manager_core::credentials::{self, CredentialsFile, CredentialsPayload};
use connect_manager_core::token::Jwks;

/// How long connecting to the manager may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one call to the manager may take, start to end. Short: a check waiting on it holds
/// a client's request, and an answer this late is no fresher than failing closed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read from the manager (a JWKS or an introspection is a few KiB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why a call to the manager gave no answer. Never carries a token or the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagerError {
    /// Not reachable, timed out, or the connection broke.
    #[error("the manager is unreachable: {0}")]
    Unreachable(String),
    /// It refused our credentials (401): the server was deleted or its credentials rotated.
    #[error(
        "the manager refuses this server's credentials (401): was the server deleted or its credentials rotated?"
    )]
    Refused,
    /// Any other status, or an answer that does not parse.
    #[error("the manager answered {0}")]
    Failed(String),
}

/// The manager as this gateway's server sees it.
pub struct Manager {
    http: reqwest::Client,
    /// The manager's public URL, without a trailing `/`: where we call it and what tokens carry
    /// in `iss`.
    url: String,
    server_id: String,
    secret: String,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("url", &self.url)
            .field("server_id", &self.server_id)
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl Manager {
    /// Reads and opens a credentials file (C1). The error is one line, saying what is wrong with
    /// the file, never its contents.
    pub fn from_credentials_file(path: &Path) -> Result<Manager, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("credentials file {shown}: cannot read it: {e}"))?;
        let file: CredentialsFile = serde_json::from_str(&text).map_err(|_| {
            format!("credentials file {shown}: not a connect-manager credentials file (JSON)")
        })?;
        let payload = credentials::open(&file)
            .map_err(|e| format!("{shown}: {}", e.to_string().replace('\n', " ")))?;
        Manager::new(payload)
    }

    /// A client for the server `payload` names.
    pub fn new(payload: CredentialsPayload) -> Result<Manager, String> {
        let url = payload.url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "credentials file: the manager URL '{url}' is not an http:// or https:// URL"
            ));
        }
        // rustls's crypto provider (ring) is installed by the caller: the binary, at start.
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "connect-manager-gateway/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Manager {
            http,
            url,
            server_id: payload.server_id,
            secret: payload.secret,
        })
    }

    /// The manager's public URL: what tokens carry in `iss`.
    pub fn issuer(&self) -> &str {
        &self.url
    }

    /// The ID of the server this gateway stands for: what its tokens carry in `sub`.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// `GET /.well-known/jwks.json` (T3, public).
    pub async fn jwks(&self) -> Result<Jwks, ManagerError> {
        let req = self.http.get(format!("{}/.well-known/jwks.json", self.url));
        read_json(req).await
    }

    /// `POST /v1/introspect` (T4) as this server.
    pub async fn introspect(&self, jwt: &str) -> Result<Introspection, ManagerError> {
        let req = self
            .http
            .post(format!("{}/v1/introspect", self.url))
            .basic_auth(&self.server_id, Some(&self.secret))
            .json(&IntrospectRequest {
                token: jwt.to_owned(),
            });
        read_json(req).await
    }

    /// `POST /v1/connect/self/usage` (G7) as this server.
    pub async fn report_usage(&self, report: &UsageReport) -> Result<(), ManagerError> {
        let req = self
            .http
            .post(format!("{}/v1/connect/self/usage", self.url))
            .basic_auth(&self.server_id, Some(&self.secret))
            .json(report);
        let answer = send(req).await?;
        drop(answer);
        Ok(())
    }
}

async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, ManagerError> {
    // Errors are shown without their URL's query (none here) and never with a body: the body
    // of an introspection carries the token.
    let answer = req
        .send()
        .await
        .map_err(|e| ManagerError::Unreachable(describe(&e)))?;
    let status = answer.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(ManagerError::Refused);
    }
    if !status.is_success() {
        return Err(ManagerError::Failed(status.to_string()));
    }
    Ok(answer)
}

async fn read_json<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> Result<T, ManagerError> {
    let mut answer = send(req).await?;
    let mut body = Vec::new();
    while let Some(chunk) = answer
        .chunk()
        .await
        .map_err(|e| ManagerError::Unreachable(describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ManagerError::Failed("an answer too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|_| ManagerError::Failed("an answer that does not parse".into()))
}

/// A transport error in one line, with its causes.
fn describe(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "the connection failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn install_crypto() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }

    #[test]
    fn g1_the_secret_never_shows_in_debug() {
        install_crypto();
        let m = Manager::new(CredentialsPayload {
            server_id: "SERVER".into(),
            secret: "very-secret-value".into(),
            url: "http://127.0.0.1:1/".into(),
        })
        .unwrap();
        let shown = format!("{m:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert_eq!(m.issuer(), "http://127.0.0.1:1");
        assert_eq!(m.server_id(), "SERVER");
    }

    #[test]
    fn g1_a_bad_credentials_file_is_refused_with_one_line() {
        install_crypto();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        let missing = Manager::from_credentials_file(&path).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        std::fs::write(&path, "{not json").unwrap();
        let garbage = Manager::from_credentials_file(&path).unwrap_err();
        assert!(!garbage.contains('\n'), "{garbage}");
        let payload = CredentialsPayload {
            server_id: "SERVER".into(),
            secret: "very-secret-value".into(),
            url: "http://127.0.0.1:1".into(),
        };
        let mut file = credentials::seal(&payload);
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let m = Manager::from_credentials_file(&path).unwrap();
        assert_eq!(m.server_id(), "SERVER");
        file.unique_key.k = credentials::seal(&payload).unique_key.k;
        std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        let wrong_key = Manager::from_credentials_file(&path).unwrap_err();
        assert!(
            !wrong_key.contains('\n') && !wrong_key.contains("very-secret"),
            "{wrong_key}"
        );
    }
}
