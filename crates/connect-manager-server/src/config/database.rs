//! The database settings: the URL (SQLite in the data directory unless `DATABASE_URL` says
//! otherwise), a password from a file, and what every PostgreSQL connection carries.

use std::path::Path;
use std::time::Duration;

use clap::Args;
use connect_manager_store::ConnectionSettings;

use super::ConfigError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
