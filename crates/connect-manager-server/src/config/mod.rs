//! `connect-manager serve` configuration (SPEC "Running"): every setting a flag and an
//! environment variable, secrets also from `*_FILE`, validated at start. A setting that makes no
//! sense stops start-up with a one-line reason and exit code 2.
//!
//! * `args.rs`: the flags and variables as clap reads them ([`ServeArgs`], [`StorageArgs`]).
//! * `database.rs`: the database URL, its password file and the PostgreSQL connection settings.
//! * here: [`ServeArgs::validate`], which makes them a [`Config`], and the data directory.

mod args;
mod database;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use connect_manager_core::secret::MIN_BOOTSTRAP_KEY_CHARS;
use connect_manager_store::ConnectionSettings;

pub use args::{ConsoleArgs, LogFormat, ServeArgs, StorageArgs};
use connect_manager_core::secret::redacted;
pub use database::{ConnectionArgs, SQLITE_FILE, resolve_database_url, with_password};

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
    /// CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS: http:// issuers on loopback (tests).
    pub allow_insecure_issuers: bool,
    /// How long console sessions live (issue 17).
    pub console_sessions: connect_manager_store::SessionLimits,
    /// Scheduled signing-key rotation (issue 18): None when off.
    pub key_rotation_interval: Option<std::time::Duration>,
}

/// The shortest scheduled rotation interval accepted: keys rotated more often than hourly would
/// pile up in the JWKS while their tokens live.
pub const MIN_KEY_ROTATION_SECONDS: i64 = 3600;

/// `CONNECT_MANAGER_KEY_ROTATION_INTERVAL`: unset or empty is off; otherwise R7's duration
/// syntax, at least [`MIN_KEY_ROTATION_SECONDS`].
pub fn parse_key_rotation_interval(
    text: Option<&str>,
) -> Result<Option<std::time::Duration>, ConfigError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let bad = |why: &str| {
        ConfigError(format!(
            "CONNECT_MANAGER_KEY_ROTATION_INTERVAL: '{text}' {why}"
        ))
    };
    let seconds = connect_manager_core::duration::parse_duration("key_rotation_interval", text)
        .map_err(|_| {
            bad("is not a sum of <n>s, <n>m, <n>h, <n>d or <n>w terms such as 30d (at most 10 years)")
        })?;
    if seconds < MIN_KEY_ROTATION_SECONDS {
        return Err(bad("is shorter than the minimum of 1h"));
    }
    Ok(Some(std::time::Duration::from_secs(
        u64::try_from(seconds).unwrap_or_default(),
    )))
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
            .field("key_rotation_interval", &self.key_rotation_interval)
            .field("allow_insecure_issuers", &self.allow_insecure_issuers)
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
        let key_rotation_interval =
            parse_key_rotation_interval(self.key_rotation_interval.as_deref())?;
        let seconds = |setting: &str, text: &str| {
            connect_manager_core::duration::parse_expires_in(text)
                .map(|s| s.saturating_mul(1_000_000))
                .map_err(|_| {
                    ConfigError(format!(
                        "{setting}: '{text}' is not a duration like 90s, 30m or 1h"
                    ))
                })
        };
        let console_sessions = connect_manager_store::SessionLimits {
            idle_micros: seconds(
                "CONNECT_MANAGER_CONSOLE_IDLE_TIMEOUT",
                &self.console.idle_timeout,
            )?,
            max_age_micros: seconds("CONNECT_MANAGER_CONSOLE_MAX_AGE", &self.console.max_age)?,
        };
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
            key_rotation_interval,
            console_sessions,
            allow_insecure_issuers: self.allow_insecure_issuers,
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

    #[test]
    fn key_rotation_interval_is_off_by_default_and_at_least_an_hour() {
        assert_eq!(parse_key_rotation_interval(None).unwrap(), None);
        assert_eq!(parse_key_rotation_interval(Some(" ")).unwrap(), None);
        assert_eq!(
            parse_key_rotation_interval(Some("1h")).unwrap(),
            Some(std::time::Duration::from_secs(3600))
        );
        assert_eq!(
            parse_key_rotation_interval(Some("4w2d")).unwrap(),
            Some(std::time::Duration::from_secs(30 * 86_400))
        );
        for bad in ["59m", "3599s", "0h", "-1d", "monthly", "1.5d"] {
            let e = parse_key_rotation_interval(Some(bad)).unwrap_err().0;
            assert!(
                e.starts_with("CONNECT_MANAGER_KEY_ROTATION_INTERVAL: ") && !e.contains('\n'),
                "{bad}: {e}"
            );
        }
    }

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
}
