//! The flags and environment variables of `serve` and the `admin` commands, as clap reads them
//! (SPEC "Running"). `Debug` shows no secret.

use connect_manager_core::secret::redacted;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::database::ConnectionArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the data lives: the database and the master key. `serve` and the `admin` commands
/// read the same settings. `Debug` shows no secret (see `core::secret::redacted`).
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

/// `connect-manager serve`'s settings. `Debug` shows no secret (see `core::secret::redacted`).
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

    /// Let trusted issuers (the token exchange) be plain http:// on a loopback address. For
    /// tests only: issuers are https:// otherwise.
    #[arg(
        long,
        env = "CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_insecure_issuers: bool,

    /// The header the trusted proxies append the client's address to.
    #[arg(
        long,
        env = "CONNECT_MANAGER_FORWARDED_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub forwarded_header: crate::client::ForwardedHeader,

    /// Make a new token signing key when the newest is older than this: a sum of
    /// <n>s|m|h|d|w terms (`30d`, `12w`), at least 1h. Once across replicas. Older keys stay
    /// published while they verify a live token; retire them with `signing-key retire`.
    /// Default: off (rotate by hand).
    #[arg(
        long,
        env = "CONNECT_MANAGER_KEY_ROTATION_INTERVAL",
        value_name = "DURATION"
    )]
    pub key_rotation_interval: Option<String>,
    #[command(flatten)]
    pub console: ConsoleArgs,
}

/// The console's sessions (issue 17; docs/console.md).
#[derive(clap::Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// A console session ends after this long without a page (durations as R7: `90s`, `1h`).
    #[arg(
        long = "console-idle-timeout",
        env = "CONNECT_MANAGER_CONSOLE_IDLE_TIMEOUT",
        default_value = "1h"
    )]
    pub idle_timeout: String,

    /// A console session ends this long after sign-in, however busy.
    #[arg(
        long = "console-max-age",
        env = "CONNECT_MANAGER_CONSOLE_MAX_AGE",
        default_value = "12h"
    )]
    pub max_age: String,
}

impl Default for ConsoleArgs {
    fn default() -> Self {
        ConsoleArgs {
            idle_timeout: "1h".into(),
            max_age: "12h".into(),
        }
    }
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
            .field("key_rotation_interval", &self.key_rotation_interval)
            .finish_non_exhaustive()
    }
}
