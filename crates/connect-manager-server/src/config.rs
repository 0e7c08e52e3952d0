//! `connect-manager serve` configuration (SPEC "Running"): every setting a flag and an
//! environment variable, secrets also from `*_FILE`, validated at start. A setting that makes no
//! sense stops start-up with a one-line reason and exit code 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use connect_manager_core::secret::MIN_BOOTSTRAP_KEY_CHARS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the data lives: the database and the master key. `serve` and the `admin` commands
/// read the same settings.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the SQLite database and the master key file (created if missing).
    #[arg(long, env = "CONNECT_MANAGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://…` for PostgreSQL; default: SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Key that encrypts secrets at rest (32+ characters). Default: a key file made in the data
    /// directory on first start.
    #[arg(long, env = "CONNECT_MANAGER_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// File holding the master key.
    #[arg(
        long,
        env = "CONNECT_MANAGER_MASTER_KEY_FILE",
        conflicts_with = "master_key"
    )]
    pub master_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
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

/// A validated configuration.
#[derive(Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub master_key: MasterKeySource,
    pub bootstrap_key: Option<String>,
    pub public_url: String,
    pub log_format: LogFormat,
    pub auth_failures_per_minute: u32,
    pub trusted_proxies: crate::client::TrustedProxies,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &connect_manager_store::redact_url(&self.database_url),
            )
            .field("public_url", &self.public_url)
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
            master_key,
            master_key_file,
        } = self.storage;
        let master_key = match (set(master_key), master_key_file) {
            (Some(k), _) => MasterKeySource::Given(k),
            (None, Some(path)) => {
                MasterKeySource::Given(read_secret_file("CONNECT_MANAGER_MASTER_KEY_FILE", &path)?)
            }
            (None, None) => MasterKeySource::DataDir,
        };
        if let MasterKeySource::Given(k) = &master_key {
            connect_manager_core::secret::MasterKey::from_text(k).map_err(|_| {
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
        let database_url = resolve_database_url(&data_dir, database_url)?;
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
