//! `connect-manager serve` configuration (SPEC "Running"): every setting a flag and an
//! environment variable, secrets also from `*_FILE`, validated at start. A setting that makes no
//! sense stops start-up with a one-line reason and exit code 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use connect_manager_core::secret::{MIN_BOOTSTRAP_KEY_CHARS, redacted};
use connect_manager_store::ConnectionSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the data lives: the database and the master key. `serve` and the `admin` commands
/// read the same settings. `Debug` shows no secret (see [`redacted`]).
#[derive(Clone, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite database and the master key file (created if missing).
    #[arg(long, env = "CONNECT_MANAGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://…` for PostgreSQL; default: SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// File holding the PostgreSQL password, for a DATABASE_URL written without one (e.g. the
    /// file of a compose secret).
    #[arg(long, env = "DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<PathBuf>,

    /// Key that encrypts secrets at rest: 32 bytes in base64 or hex (e.g. `head -c 32
    /// /dev/urandom | base64`), or a passphrase of 32+ characters (stretched with Argon2id).
    /// Default: a key file of 32 random bytes made in the data directory on first start.
    #[arg(long, env = "CONNECT_MANAGER_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// File holding the master key.
    #[arg(
        long,
        env = "CONNECT_MANAGER_MASTER_KEY_FILE",
        conflicts_with = "master_key"
    )]
    pub master_key_file: Option<PathBuf>,

    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// What every PostgreSQL connection carries (ignored on SQLite). Unset: the defaults of
/// `connect_manager_store::ConnectionSettings`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// PostgreSQL cancels a statement that runs longer (answered 503): `<n>ms`, `<n>s` or `<n>m`,
    /// at most the 30 s request timeout; `0` for no limit. Default 20s.
    #[arg(long, env = "CONNECT_MANAGER_DB_STATEMENT_TIMEOUT")]
    pub db_statement_timeout: Option<String>,

    /// TCP keepalives on PostgreSQL connections: probes start after this much silence (`<n>s`
    /// or `<n>m`, whole seconds; `0`: the system's default). Default 30s.
    #[arg(long, env = "CONNECT_MANAGER_DB_KEEPALIVES_IDLE")]
    pub db_keepalives_idle: Option<String>,

    /// TCP keepalives: time between probes (`<n>s`; `0`: the system's default). Default 10s.
    #[arg(long, env = "CONNECT_MANAGER_DB_KEEPALIVES_INTERVAL")]
    pub db_keepalives_interval: Option<String>,

    /// TCP keepalives: unanswered probes before the connection is given up (`0`: the
    /// system's default). Default 3.
    #[arg(long, env = "CONNECT_MANAGER_DB_KEEPALIVES_COUNT")]
    pub db_keepalives_count: Option<String>,
}

impl ConnectionArgs {
    pub fn validate(self) -> Result<ConnectionSettings, ConfigError> {
        let set = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let defaults = ConnectionSettings::default();
        let statement_timeout = match set(self.db_statement_timeout) {
            None => defaults.statement_timeout,
            Some(text) => {
                let d =
                    parse_setting_duration(&text).filter(|d| *d <= crate::startup::REQUEST_TIMEOUT);
                d.ok_or_else(|| {
                    ConfigError(format!(
                        "CONNECT_MANAGER_DB_STATEMENT_TIMEOUT: '{text}' is not a duration like 500ms, 20s or 0 (off) \
                         of at most {} s (the request timeout)",
                        crate::startup::REQUEST_TIMEOUT.as_secs()
                    ))
                })?
            }
        };
        let seconds = |name: &str, value: Option<String>, default: Duration| match set(value) {
            None => Ok(default),
            Some(text) => parse_setting_duration(&text)
                .filter(|d| d.subsec_nanos() == 0 && *d <= Duration::from_secs(7200))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "{name}: '{text}' is not a whole number of seconds like 30s, 2m or 0 \
                         (the system's default), of at most 2 hours"
                    ))
                }),
        };
        let keepalives_idle = seconds(
            "CONNECT_MANAGER_DB_KEEPALIVES_IDLE",
            self.db_keepalives_idle,
            defaults.keepalives_idle,
        )?;
        let keepalives_interval = seconds(
            "CONNECT_MANAGER_DB_KEEPALIVES_INTERVAL",
            self.db_keepalives_interval,
            defaults.keepalives_interval,
        )?;
        let keepalives_count = match set(self.db_keepalives_count) {
            None => defaults.keepalives_count,
            Some(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 100)
                .ok_or_else(|| {
                    ConfigError(format!(
                        "CONNECT_MANAGER_DB_KEEPALIVES_COUNT: '{text}' is not a number from 0 \
                         (the system's default) to 100"
                    ))
                })?,
        };
        Ok(ConnectionSettings {
            statement_timeout,
            keepalives_idle,
            keepalives_interval,
            keepalives_count,
        })
    }
}

/// `<n>ms`, `<n>s`, `<n>m`, or `0`.
fn parse_setting_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let (number, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        return None;
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) || number.len() > 9 {
        return None;
    }
    number
        .parse::<u64>()
        .ok()
        .map(|n| Duration::from_millis(n * unit_ms))
}

/// `connect-manager serve`'s settings. `Debug` shows no secret (see [`redacted`]).
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONNECT_MANAGER_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    #[command(flatten)]
    pub storage: StorageArgs,

    /// The first owner's API key on an empty database (32+ characters). Default: a random key,
    /// printed once to stderr.
    #[arg(long, env = "CONNECT_MANAGER_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,

    /// File holding the bootstrap key.
    #[arg(
        long,
        env = "CONNECT_MANAGER_BOOTSTRAP_KEY_FILE",
        conflicts_with = "bootstrap_key"
    )]
    pub bootstrap_key_file: Option<PathBuf>,

    /// The service's public URL: written into credentials files and used as the token issuer.
    /// Default: `http://<bind>`.
    #[arg(long, env = "CONNECT_MANAGER_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Failed authentications a client IP may make in a burst and per minute after it; beyond,
    /// 429 with Retry-After. 0 turns the limit off.
    #[arg(long, env = "CONNECT_MANAGER_AUTH_FAILURES_PER_MINUTE", default_value_t = crate::limiter::DEFAULT_FAILURES_PER_MINUTE)]
    pub auth_failures_per_minute: u32,

    /// Reverse proxies whose forwarding header names the client: a comma-separated list of CIDRs
    /// (`10.0.0.0/8,fd00::/8`; a bare address is that address). Default: none, the TCP peer is
    /// the client.
    #[arg(long, env = "CONNECT_MANAGER_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,

    /// The header the trusted proxies append the client's address to.
    #[arg(
        long,
        env = "CONNECT_MANAGER_FORWARDED_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub forwarded_header: crate::client::ForwardedHeader,
}

impl std::fmt::Debug for StorageArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageArgs")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self
                    .database_url
                    .as_deref()
                    .map(connect_manager_store::redact_url),
            )
            .field(
                "master_key",
                &format_args!("{}", redacted(&self.master_key)),
            )
            .field("master_key_file", &self.master_key_file)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeArgs")
            .field("bind", &self.bind)
            .field("storage", &self.storage)
            .field(
                "bootstrap_key",
                &format_args!("{}", redacted(&self.bootstrap_key)),
            )
            .field("bootstrap_key_file", &self.bootstrap_key_file)
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("auth_failures_per_minute", &self.auth_failures_per_minute)
            .finish_non_exhaustive()
    }
}

/// A validated configuration.
#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    /// What every PostgreSQL connection carries.
    pub db_connection: ConnectionSettings,
    pub master_key: MasterKeySource,
    pub bootstrap_key: Option<String>,
    pub public_url: String,
    pub log_format: LogFormat,
    pub auth_failures_per_minute: u32,
    pub trusted_proxies: crate::client::TrustedProxies,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let master_key = match self.master_key {
            MasterKeySource::Given(_) => "Given(<redacted>)",
            MasterKeySource::DataDir => "DataDir",
        };
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &connect_manager_store::redact_url(&self.database_url),
            )
            .field("master_key", &format_args!("{master_key}"))
            .field(
                "bootstrap_key",
                &format_args!("{}", redacted(&self.bootstrap_key)),
            )
            .field("db_connection", &self.db_connection)
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("auth_failures_per_minute", &self.auth_failures_per_minute)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub enum MasterKeySource {
    /// Given in the environment or a file.
    Given(String),
    /// `master.key` in the data directory, made on first start.
    DataDir,
}

/// A configuration error: printed as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn read_secret_file(setting: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| ConfigError(format!("{setting}: cannot read {}: {e}", path.display())))
}

/// `DATABASE_URL` if set (its scheme checked), else SQLite in the data directory.
pub fn resolve_database_url(data_dir: &Path, url: Option<String>) -> Result<String, ConfigError> {
    match url.filter(|u| !u.is_empty()) {
        Some(url) => {
            let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
            if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
                return Err(ConfigError(format!(
                    "DATABASE_URL: unsupported scheme '{scheme}' (use postgres://… or sqlite:…)"
                )));
            }
            Ok(url)
        }
        None => Ok(format!("sqlite://{}", data_dir.join(SQLITE_FILE).display())),
    }
}

/// `url` (PostgreSQL, with a user and no password) with `password` put in, percent-encoded.
pub fn with_password(url: &str, password: &str) -> Result<String, ConfigError> {
    let fail = |why: &str| ConfigError(format!("DATABASE_PASSWORD_FILE: {why}"));
    let rest = url
        .strip_prefix("postgres://")
        .map(|r| ("postgres://", r))
        .or_else(|| {
            url.strip_prefix("postgresql://")
                .map(|r| ("postgresql://", r))
        });
    let Some((scheme, rest)) = rest else {
        return Err(fail("only for a postgres:// DATABASE_URL"));
    };
    if password.is_empty() {
        return Err(fail("the file is empty"));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return Err(fail("DATABASE_URL names no user (postgres://USER@host/db)"));
    };
    if userinfo.contains(':') {
        return Err(fail("DATABASE_URL already has a password"));
    }
    let encoded: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    Ok(format!("{scheme}{userinfo}:{encoded}@{host}{tail}"))
}

/// The SQLite database's file name in the data directory.
pub const SQLITE_FILE: &str = "connect-manager.db";

impl ServeArgs {
    pub fn validate(self) -> Result<Config, ConfigError> {
        let bind: SocketAddr = self.bind.parse().map_err(|_| {
            ConfigError(format!(
                "CONNECT_MANAGER_BIND: '{}' is not an address like 127.0.0.1:8080",
                self.bind
            ))
        })?;
        // An empty variable is an unset one (compose files pass `${X:-}`).
        let set = |v: Option<String>| v.filter(|v| !v.is_empty());
        let StorageArgs {
            data_dir,
            database_url,
            database_password_file,
            master_key,
            master_key_file,
            connection,
        } = self.storage;
        let db_connection = connection.validate()?;
        let master_key = match (set(master_key), master_key_file) {
            (Some(k), _) => MasterKeySource::Given(k),
            (None, Some(path)) => {
                MasterKeySource::Given(read_secret_file("CONNECT_MANAGER_MASTER_KEY_FILE", &path)?)
            }
            (None, None) => MasterKeySource::DataDir,
        };
        if let MasterKeySource::Given(k) = &master_key {
            connect_manager_core::secret::MasterKeyText::parse(k).map_err(|_| {
                ConfigError(format!(
                    "CONNECT_MANAGER_MASTER_KEY: must be at least {} characters",
                    connect_manager_core::secret::MasterKey::MIN_CHARS
                ))
            })?;
        }
        let bootstrap_key = match (set(self.bootstrap_key), self.bootstrap_key_file) {
            (Some(k), _) => Some(k),
            (None, Some(path)) => Some(read_secret_file(
                "CONNECT_MANAGER_BOOTSTRAP_KEY_FILE",
                &path,
            )?),
            (None, None) => None,
        };
        if let Some(k) = &bootstrap_key
            && (k.chars().count() < MIN_BOOTSTRAP_KEY_CHARS || k.chars().any(char::is_whitespace))
        {
            return Err(ConfigError(format!(
                "CONNECT_MANAGER_BOOTSTRAP_KEY: must be at least {MIN_BOOTSTRAP_KEY_CHARS} characters without spaces"
            )));
        }
        let mut database_url = resolve_database_url(&data_dir, database_url)?;
        if let Some(path) = database_password_file {
            let password = read_secret_file("DATABASE_PASSWORD_FILE", &path)?;
            database_url = with_password(&database_url, &password)?;
        }
        let public_url = set(self.public_url)
            .unwrap_or_else(|| format!("http://{bind}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://"))
            || public_url.contains(char::is_whitespace)
        {
            return Err(ConfigError(format!(
                "CONNECT_MANAGER_PUBLIC_URL: '{public_url}' is not an http:// or https:// URL"
            )));
        }
        let trusted_proxies =
            crate::client::TrustedProxies::parse(&self.trusted_proxies, self.forwarded_header)
                .map_err(|e| ConfigError(format!("CONNECT_MANAGER_TRUSTED_PROXIES: {e}")))?;
        let config = Config {
            bind,
            data_dir,
            database_url,
            db_connection,
            master_key,
            bootstrap_key,
            public_url,
            log_format: self.log_format,
            auth_failures_per_minute: self.auth_failures_per_minute,
            trusted_proxies,
        };
        if config.uses_data_dir() {
            ensure_data_dir(&config.data_dir)?;
        }
        Ok(config)
    }
}

/// Creates the data directory (mode 0700) if missing and checks that it is writable, so an
/// unusable directory stops start-up with its reason, not a later failure.
pub fn ensure_data_dir(dir: &Path) -> Result<(), ConfigError> {
    let fail = |e: std::io::Error| {
        ConfigError(format!(
            "CONNECT_MANAGER_DATA_DIR: cannot use {}: {e}",
            dir.display()
        ))
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(fail)?;
    let probe = dir.join(format!(".probe-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(fail)
}

impl Config {
    /// Whether anything lives in the data directory (SQLite, or the master key file).
    pub fn uses_data_dir(&self) -> bool {
        self.database_url.starts_with("sqlite:")
            || matches!(self.master_key, MasterKeySource::DataDir)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    const MASTER: &str = "master-key-SECRET-0123456789abcdefghijkl";
    const BOOTSTRAP: &str = "bootstrap-key-SECRET-0123456789abcdefgh";
    const DB_PASSWORD: &str = "db-password-SECRET";

    fn assert_no_secret(what: &str, debug: String) {
        for secret in [MASTER, BOOTSTRAP, DB_PASSWORD] {
            assert!(!debug.contains(secret), "{what} shows a secret: {debug}");
        }
    }

    #[test]
    fn debug_of_the_settings_shows_no_secret() {
        let url = format!("postgres://app:{DB_PASSWORD}@db:5432/cm");
        let parsed = Serve::try_parse_from([
            "serve",
            "--master-key",
            MASTER,
            "--bootstrap-key",
            BOOTSTRAP,
            "--database-url",
            &url,
        ])
        .unwrap();
        assert_no_secret("StorageArgs", format!("{:?}", parsed.args.storage));
        assert_no_secret("ServeArgs", format!("{:?}", parsed.args));
        assert_no_secret("the serve command", format!("{parsed:?}"));
        assert!(format!("{:?}", parsed.args).contains("master_key: Some(<redacted>)"));
        let config = parsed.args.clone().validate().unwrap();
        assert_no_secret("Config", format!("{config:?}"));
        assert_no_secret("Config (pretty)", format!("{config:#?}"));
        assert!(format!("{config:?}").contains("postgres://app:***@db:5432/cm"));
    }

    #[test]
    fn database_password_file_fills_in_a_url_without_a_password() {
        assert_eq!(
            with_password("postgres://cm@db:5432/cm?sslmode=require", "p@ss:w/rd %").unwrap(),
            "postgres://cm:p%40ss%3Aw%2Frd%20%25@db:5432/cm?sslmode=require"
        );
        assert_eq!(
            with_password("postgresql://cm@db", "x").unwrap(),
            "postgresql://cm:x@db"
        );
        for (url, why) in [
            ("postgres://cm:old@db/cm", "already has a password"),
            ("postgres://db/cm", "names no user"),
            ("sqlite://data/x.db", "only for a postgres"),
        ] {
            let e = with_password(url, "x").unwrap_err().0;
            assert!(e.contains(why) && !e.contains("old"), "{e}");
        }
        assert!(with_password("postgres://cm@db", "").is_err());
    }
}
