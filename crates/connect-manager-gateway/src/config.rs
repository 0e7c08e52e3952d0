//! G1: the gateway's settings, each a flag and an environment variable, validated once at start
//! into a [`GatewayConfig`]. A bad one is refused with a one-line reason (the binary exits 2).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The longest a cached answer about a token may be trusted (SPEC G1).
pub const MAX_STALENESS_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `connect-manager gateway`: connect-manager tokens enforced in front of one Connect server.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// The address to listen on.
    #[arg(
        long,
        env = "CONNECT_MANAGER_GATEWAY_BIND",
        default_value = "127.0.0.1:8090"
    )]
    pub bind: String,
    /// The Connect API's base URL (http:// or https://), e.g. http://connect-api:8080. Without
    /// it the gateway serves only /v1/forward-auth and its own endpoints.
    #[arg(long, env = "CONNECT_MANAGER_GATEWAY_UPSTREAM")]
    pub upstream: Option<String>,
    /// The real Connect token presented upstream (never logged, never sent to a client).
    #[arg(
        long,
        env = "CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN",
        hide_env_values = true
    )]
    pub upstream_token: Option<String>,
    /// A file holding the upstream token (instead of CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN).
    #[arg(long, env = "CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE")]
    pub upstream_token_file: Option<PathBuf>,
    /// The credentials file connect-manager issued for the server this gateway stands for.
    #[arg(
        long,
        env = "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE",
        default_value = "./connect-manager-credentials.json"
    )]
    pub credentials_file: PathBuf,
    /// How old a cached answer about a token may be (e.g. 1s, 500ms; at most 5s).
    #[arg(
        long,
        env = "CONNECT_MANAGER_GATEWAY_MAX_STALENESS",
        default_value = "1s"
    )]
    pub max_staleness: String,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// The upstream Connect API: where allowed requests go and the token they carry there.
#[derive(Clone)]
pub struct Upstream {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// A path prefix without its trailing `/` (usually empty).
    pub base_path: String,
    /// The real Connect token.
    pub token: String,
    /// `Bearer <token>` as a header value marked sensitive, built once (None when the token
    /// cannot be a header value: such a request gets a 502, as before).
    authorization: Option<hyper::header::HeaderValue>,
    /// `scheme://authority/`, what a new connection is made to.
    root: Option<hyper::Uri>,
    /// The `Host` header sent upstream: the host, and the port when it is not the scheme's.
    host: Option<hyper::header::HeaderValue>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Upstream({}://{}{}, token: <redacted>)",
            self.scheme, self.authority, self.base_path
        )
    }
}

impl Upstream {
    /// The upstream for `scheme://authority<base_path>` with `token`.
    pub fn new(scheme: String, authority: String, base_path: String, token: String) -> Upstream {
        let authorization = hyper::header::HeaderValue::try_from(format!("Bearer {token}"))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        let root: Option<hyper::Uri> = format!("{scheme}://{authority}/").parse().ok();
        let host = root.as_ref().and_then(|u| {
            let name = u.host()?;
            let default = if scheme == "https" { 443 } else { 80 };
            let value = match u.port_u16() {
                Some(p) if p != default => format!("{name}:{p}"),
                _ => name.to_string(),
            };
            hyper::header::HeaderValue::try_from(value).ok()
        });
        Upstream {
            scheme,
            authority,
            base_path,
            token,
            authorization,
            root,
            host,
        }
    }

    /// `scheme://authority/`, what a new connection is made to.
    pub fn root(&self) -> Option<&hyper::Uri> {
        self.root.as_ref()
    }

    /// The `Host` header value sent upstream.
    pub fn host(&self) -> Option<&hyper::header::HeaderValue> {
        self.host.as_ref()
    }

    /// The request target sent upstream for `path_and_query` (which starts with `/`).
    pub fn origin(&self, path_and_query: &str) -> String {
        let mut s = String::with_capacity(self.base_path.len() + path_and_query.len());
        s.push_str(&self.base_path);
        s.push_str(path_and_query);
        s
    }

    /// The `Authorization` header value sent upstream.
    pub fn authorization(&self) -> Option<&hyper::header::HeaderValue> {
        self.authorization.as_ref()
    }

    /// The upstream URI for `path_and_query` (which starts with `/`).
    pub fn uri(&self, path_and_query: &str) -> String {
        format!(
            "{}://{}{}{}",
            self.scheme, self.authority, self.base_path, path_and_query
        )
    }
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub bind: SocketAddr,
    pub upstream: Option<Upstream>,
    pub credentials_file: PathBuf,
    pub max_staleness: Duration,
    pub log_format: LogFormat,
}

impl GatewayArgs {
    /// Checks every setting; the error is one line naming the setting.
    pub fn validate(self) -> Result<GatewayConfig, String> {
        let bind: SocketAddr = self.bind.parse().map_err(|_| {
            format!(
                "CONNECT_MANAGER_GATEWAY_BIND: {:?} is not an address like 127.0.0.1:8090",
                self.bind
            )
        })?;
        let max_staleness = parse_duration(&self.max_staleness)
            .ok_or_else(|| {
                format!(
                    "CONNECT_MANAGER_GATEWAY_MAX_STALENESS: {:?} is not a duration like 1s or 500ms",
                    self.max_staleness
                )
            })
            .and_then(|d| {
                if d > MAX_STALENESS_LIMIT {
                    Err(format!(
                        "CONNECT_MANAGER_GATEWAY_MAX_STALENESS: {} is over the limit of 5s",
                        self.max_staleness
                    ))
                } else {
                    Ok(d)
                }
            })?;
        let token = match (self.upstream_token, self.upstream_token_file) {
            (Some(_), Some(_)) => {
                return Err("CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN and \
                            CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE are both set: set one"
                    .into());
            }
            (Some(t), None) => Some(t),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|e| {
                        format!(
                            "CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE: cannot read {}: {e}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        if let Some(t) = &token
            && (t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err("CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN: empty or not printable".into());
        }
        let upstream = match (self.upstream, token) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err("CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN is set but \
                            CONNECT_MANAGER_GATEWAY_UPSTREAM is not"
                    .into());
            }
            (Some(_), None) => {
                return Err("CONNECT_MANAGER_GATEWAY_UPSTREAM needs \
                            CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN or its _FILE"
                    .into());
            }
            (Some(url), Some(token)) => Some(parse_upstream(&url, token)?),
        };
        Ok(GatewayConfig {
            bind,
            upstream,
            credentials_file: self.credentials_file,
            max_staleness,
            log_format: self.log_format,
        })
    }
}

fn parse_upstream(url: &str, token: String) -> Result<Upstream, String> {
    // The value is echoed in the reason, but never user information (it may hold a secret).
    let shown = match url.split_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => url.to_string(),
    };
    let bad = |why: &str| format!("CONNECT_MANAGER_GATEWAY_UPSTREAM: {shown:?} {why}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("is not an http(s) URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad("is not an http(s) URL"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("has a query or fragment"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(bad("has no host"));
    }
    if authority.contains('@') {
        return Err(bad(
            "has user information; the token goes in its own setting",
        ));
    }
    let uri: hyper::Uri = format!("{scheme}://{authority}/")
        .parse()
        .map_err(|_| bad("is not a valid URL"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    let base_path = path.trim_end_matches('/').to_string();
    if base_path.split('/').any(|s| s == "." || s == "..") || base_path.contains("//") {
        return Err(bad("has a path with . or .. or //"));
    }
    Ok(Upstream::new(
        scheme,
        authority.to_string(),
        base_path,
        token,
    ))
}

/// `1s`, `500ms`, `0.5s`, `2` (seconds).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(value * scale).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GatewayArgs,
    }

    fn validate(args: &[&str]) -> Result<GatewayConfig, String> {
        let mut argv = vec!["gateway"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().args.validate()
    }

    #[test]
    fn g1_defaults_bind_8090_staleness_1s_no_upstream() {
        let c = validate(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8090");
        assert_eq!(c.max_staleness, Duration::from_secs(1));
        assert!(c.upstream.is_none());
        assert_eq!(
            c.credentials_file,
            PathBuf::from("./connect-manager-credentials.json")
        );
    }

    #[test]
    fn g1_max_staleness_over_5s_or_unparsable_is_refused() {
        assert!(
            validate(&["--max-staleness", "6s"])
                .unwrap_err()
                .contains("5s")
        );
        assert!(validate(&["--max-staleness", "soon"]).is_err());
        assert!(validate(&["--max-staleness=-1s"]).is_err());
        assert_eq!(
            validate(&["--max-staleness", "500ms"])
                .unwrap()
                .max_staleness,
            Duration::from_millis(500)
        );
        assert!(validate(&["--max-staleness", "5s"]).is_ok());
    }

    #[test]
    fn g1_upstream_must_be_an_http_url_with_a_token() {
        for bad in [
            "ftp://x",
            "connect-api:8080",
            "http://",
            "http://u:p@h",
            "http://h/?q",
        ] {
            let e = validate(&["--upstream", bad, "--upstream-token", "t"]).unwrap_err();
            assert!(e.starts_with("CONNECT_MANAGER_GATEWAY_UPSTREAM"), "{e}");
            assert!(!e.contains('\n'));
        }
        assert!(validate(&["--upstream", "http://h:1"]).is_err());
        let c = validate(&["--upstream", "http://h:1/", "--upstream-token", "t"]).unwrap();
        let u = c.upstream.unwrap();
        assert_eq!(u.uri("/v1/vaults"), "http://h:1/v1/vaults");
        assert!(!format!("{u:?}").contains('t') || !format!("{u:?}").contains("token: t"));
    }

    #[test]
    fn g1_token_and_token_file_both_set_is_refused() {
        let dir = std::env::temp_dir().join(format!("gw-token-{}", std::process::id()));
        std::fs::write(&dir, "tok\n").unwrap();
        let file = dir.to_str().unwrap();
        let e = validate(&[
            "--upstream",
            "http://h",
            "--upstream-token",
            "t",
            "--upstream-token-file",
            file,
        ])
        .unwrap_err();
        assert!(e.contains("both set"));
        let c = validate(&["--upstream", "http://h", "--upstream-token-file", file]).unwrap();
        assert_eq!(c.upstream.unwrap().token, "tok");
        let _ = std::fs::remove_file(&dir);
    }
}
