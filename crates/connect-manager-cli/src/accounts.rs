//! Saved accounts, as op keeps them (`op account add`): a service's address, a shorthand and an
//! API key, in `accounts.json` under the configuration directory (`--config DIR`, else
//! `$XDG_CONFIG_HOME/connect-manager`, else `~/.config/connect-manager`). The directory is mode
//! 0700, the file 0600, and every write replaces the file whole (a temporary file beside it,
//! synced, then renamed), so a crash never leaves half a file or a key readable by others.
//!
//! Which service a client command reaches ([`Connection::resolve`]): `--url`/`--token`, then
//! `CONNECT_MANAGER_URL`/`CONNECT_MANAGER_TOKEN` (clap reads both into the same arguments), then
//! the account `--account` names, or the only one saved. An account's key is sent only to its
//! own address: with another URL given, it is not used.
//! The commands (`account add|list|forget`) are in [`crate::commands::accounts`].

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The service's address when nothing else gives one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

const FILE: &str = "accounts.json";

/// One saved account. `Debug` does not show the key.
#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    pub shorthand: String,
    pub address: String,
    pub key: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("shorthand", &self.shorthand)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The accounts file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Accounts {
    pub accounts: Vec<Account>,
}

/// The configuration directory: `--config DIR`, else `$XDG_CONFIG_HOME/connect-manager`, else
/// `$HOME/.config/connect-manager`.
pub fn config_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_owned());
    }
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_CONFIG_HOME") {
        return Ok(PathBuf::from(xdg).join("connect-manager"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".config").join("connect-manager")),
        None => bail!("no configuration directory: HOME is not set; pass --config DIR"),
    }
}

impl Accounts {
    /// The accounts saved in `dir` (none when there is no file yet).
    pub fn load(dir: &Path) -> anyhow::Result<Accounts> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is not an accounts file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Accounts::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the file whole: the directory made (0700) if need be, a temporary file (0600)
    /// beside it, synced, renamed over the old one.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(FILE);
        let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(self)?;
        let written = (|| -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            // The rename itself, durable.
            std::fs::File::open(dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("cannot write {}", path.display()));
        }
        Ok(())
    }

    /// The account named by `name` (its shorthand, or its address), or, with no name, the only
    /// one saved.
    pub fn select(&self, name: Option<&str>) -> anyhow::Result<Option<&Account>> {
        let Some(name) = name else {
            return Ok(match self.accounts.as_slice() {
                [only] => Some(only),
                _ => None,
            });
        };
        let found = self
            .accounts
            .iter()
            .find(|a| a.shorthand == name)
            .or_else(|| {
                self.accounts
                    .iter()
                    .find(|a| same_address(&a.address, name))
            });
        match found {
            Some(a) => Ok(Some(a)),
            None => bail!("no account '{name}' is saved ({})", self.names()),
        }
    }

    /// The shorthands saved, for messages.
    pub fn names(&self) -> String {
        if self.accounts.is_empty() {
            return "none is; add one with `connect-manager account add`".into();
        }
        let names: Vec<&str> = self.accounts.iter().map(|a| a.shorthand.as_str()).collect();
        format!("saved: {}", names.join(", "))
    }
}

/// Two addresses of the same service (a trailing `/` aside).
pub fn same_address(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// A plain `http://` address of another machine: the key would travel in clear.
pub fn in_clear(address: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(address) else {
        return false;
    };
    if url.scheme() != "http" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return true;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return !ip.is_loopback();
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    !(host == "localhost" || host.ends_with(".localhost"))
}

/// Where a client command goes, and with which key.
pub struct Connection {
    pub url: String,
    pub token: Option<String>,
}

impl Connection {
    /// `url` and `token` come from the flags or the environment (clap gives the flag first);
    /// what they leave out comes from the account `account` names or the only one saved in
    /// `config`. The account's key goes only to the account's address.
    pub fn resolve(
        url: Option<String>,
        token: Option<String>,
        config: Option<&Path>,
        account: Option<&str>,
    ) -> anyhow::Result<Connection> {
        let token = token.filter(|t| !t.is_empty());
        let url = url.filter(|u| !u.is_empty());
        if account.is_none() && url.is_some() && token.is_some() {
            return Ok(Connection {
                url: url.unwrap_or_default(),
                token,
            });
        }
        let dir = match config_dir(config) {
            Ok(dir) => dir,
            // Nowhere to look, and no account asked for: as without any account saved.
            Err(_) if account.is_none() => {
                return Ok(Connection {
                    url: url.unwrap_or_else(|| DEFAULT_URL.into()),
                    token,
                });
            }
            Err(e) => return Err(e),
        };
        let accounts = Accounts::load(&dir)?;
        let Some(saved) = accounts.select(account)? else {
            return Ok(Connection {
                url: url.unwrap_or_else(|| DEFAULT_URL.into()),
                token,
            });
        };
        let url = url.unwrap_or_else(|| saved.address.clone());
        let token = match token {
            Some(t) => Some(t),
            None if same_address(&url, &saved.address) => Some(saved.key.clone()),
            None => None,
        };
        Ok(Connection { url, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_to_another_machine_is_in_clear() {
        assert!(in_clear("http://cm.example.com"));
        assert!(in_clear("http://10.0.0.5:8080/"));
        assert!(!in_clear("https://cm.example.com"));
        assert!(!in_clear("http://127.0.0.1:8080"));
        assert!(!in_clear("http://127.9.0.1"));
        assert!(!in_clear("http://[::1]:8080"));
        assert!(!in_clear("http://localhost:8080"));
        assert!(!in_clear("http://Api.LocalHost"));
    }

    #[test]
    fn the_only_account_is_the_default_and_a_name_selects_one() {
        let account = |s: &str| Account {
            shorthand: s.into(),
            address: format!("https://{s}.example"),
            key: format!("key-{s}"),
        };
        let mut accounts = Accounts {
            accounts: vec![account("a")],
        };
        assert_eq!(accounts.select(None).unwrap().unwrap().shorthand, "a");
        accounts.accounts.push(account("b"));
        assert!(accounts.select(None).unwrap().is_none());
        assert_eq!(accounts.select(Some("b")).unwrap().unwrap().key, "key-b");
        assert_eq!(
            accounts
                .select(Some("https://a.example/"))
                .unwrap()
                .unwrap()
                .shorthand,
            "a"
        );
        let missing = accounts.select(Some("c")).unwrap_err().to_string();
        assert!(missing.contains("saved: a, b"), "{missing}");
        assert!(!format!("{accounts:?}").contains("key-"));
    }
}
