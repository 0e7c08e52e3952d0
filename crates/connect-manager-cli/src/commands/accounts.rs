//! `account add|list|forget`, as op's `account` commands: save a service's address and an API
//! key under a shorthand, so that client commands need neither `--url` nor `--token`. The key
//! is read from standard input when it is piped, else from a prompt that does not echo; never
//! from the command line (it would show in `ps` and the shell's history). Where and how the
//! accounts are kept is [`crate::accounts`].

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;

use super::GlobalArgs;
use crate::accounts::{Account, Accounts, config_dir, in_clear, same_address};
use crate::client::{ApiFailure, Client};
use crate::output::{Output, Render, Style};

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Save an account: the service's address and an API key, checked against the service
    /// first. The key is read from standard input when piped, else asked for without echo.
    /// Saving a shorthand or an address again replaces that account.
    Add {
        /// The service's URL (http:// or https://).
        #[arg(long)]
        address: String,
        /// A short name to select the account with (`--account NAME`); default: the address's
        /// host.
        #[arg(long)]
        shorthand: Option<String>,
    },
    /// List the saved accounts: shorthand and address (never the key).
    #[command(visible_alias = "ls")]
    List,
    /// Remove a saved account (its key stays valid on the service).
    Forget {
        /// The account's shorthand or address.
        account: String,
    },
}

/// An account as listed: never its key.
#[derive(Debug, Serialize)]
pub struct AccountView {
    pub shorthand: String,
    pub address: String,
}

impl Render for AccountView {
    const COLUMNS: &'static [&'static str] = &["Shorthand", "Address"];

    fn row(&self, _style: &Style) -> Vec<String> {
        vec![self.shorthand.clone(), self.address.clone()]
    }
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        AccountView {
            shorthand: a.shorthand.clone(),
            address: a.address.clone(),
        }
    }
}

pub async fn run_account(global: &GlobalArgs, command: AccountCommand) -> anyhow::Result<()> {
    let out = Output::new(
        global.format,
        Style::new(global.iso_timestamps, global.no_color),
    );
    let dir = config_dir(global.config.as_deref())?;
    match command {
        AccountCommand::Add { address, shorthand } => {
            let address = address.trim().trim_end_matches('/').to_owned();
            let url = reqwest::Url::parse(&address)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .with_context(|| format!("--address: '{address}' is not an http(s) URL"))?;
            let shorthand = match shorthand {
                Some(s) => s.trim().to_owned(),
                None => url.host_str().unwrap_or_default().to_owned(),
            };
            if shorthand.is_empty() || shorthand.chars().any(char::is_control) {
                bail!("--shorthand: '{shorthand}' is not a usable name");
            }
            if in_clear(&address) {
                eprintln!(
                    "[WARNING] {address} is plain http:// to another machine: the API key \
                     travels in clear on every call; use https://"
                );
            }
            let key = read_key(&address)?;
            check_key(&address, &key, global.debug).await?;
            let mut accounts = Accounts::load(&dir)?;
            accounts
                .accounts
                .retain(|a| a.shorthand != shorthand && !same_address(&a.address, &address));
            let account = Account {
                shorthand,
                address,
                key,
            };
            let view = AccountView::from(&account);
            accounts.accounts.push(account);
            accounts.save(&dir)?;
            out.custom(&view, || {
                println!(
                    "Saved account {} ({}) in {}.",
                    view.shorthand,
                    view.address,
                    dir.display()
                );
            })
        }
        AccountCommand::List => {
            let accounts = Accounts::load(&dir)?;
            out.list(accounts.accounts.iter().map(AccountView::from).collect())
        }
        AccountCommand::Forget { account } => {
            let mut accounts = Accounts::load(&dir)?;
            let Some(found) = accounts.select(Some(&account))? else {
                bail!("no account '{account}' is saved");
            };
            let shorthand = found.shorthand.clone();
            accounts.accounts.retain(|a| a.shorthand != shorthand);
            accounts.save(&dir)
        }
    }
}

/// The API key: all of standard input when it is piped (trimmed), else typed at a prompt on
/// standard error without echo.
fn read_key(address: &str) -> anyhow::Result<String> {
    let key = if std::io::stdin().is_terminal() {
        let key = read_line_hidden(&format!("API key for {address}: "))?;
        eprintln!();
        key
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the API key from standard input")?;
        text
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        bail!("no API key given (pipe it on standard input, or type it at the prompt)");
    }
    Ok(key)
}

/// One line from the terminal on standard input, with echo off while it is typed: turned off
/// before `prompt` is shown on standard error (as getpass does), so nothing typed after the
/// prompt appears can echo.
fn read_line_hidden(prompt: &str) -> anyhow::Result<String> {
    let show = || {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(prompt.as_bytes());
        let _ = err.flush();
    };
    let mut line = String::new();
    #[cfg(unix)]
    {
        let fd = libc::STDIN_FILENO;
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr writes only to `saved`; it is read only when the call succeeded.
        let saved = unsafe {
            if libc::tcgetattr(fd, saved.as_mut_ptr()) != 0 {
                bail!("cannot turn off echo on the terminal");
            }
            saved.assume_init()
        };
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        let _ = SAVED_TERMINAL.set(saved);
        let handler = restore_terminal_and_die as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only calls async-signal-safe functions; the old handlers are put
        // back below. tcsetattr sets the terminal's attributes from a termios tcgetattr filled.
        let before = unsafe {
            let before = [
                libc::signal(libc::SIGINT, handler),
                libc::signal(libc::SIGTERM, handler),
                libc::signal(libc::SIGHUP, handler),
            ];
            libc::tcsetattr(fd, libc::TCSANOW, &quiet);
            before
        };
        show();
        let read = std::io::stdin().read_line(&mut line);
        // SAFETY: as above; restores what was there.
        unsafe {
            libc::tcsetattr(fd, libc::TCSANOW, &saved);
            libc::signal(libc::SIGINT, before[0]);
            libc::signal(libc::SIGTERM, before[1]);
            libc::signal(libc::SIGHUP, before[2]);
        }
        read.context("reading the API key")?;
    }
    #[cfg(not(unix))]
    {
        show();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the API key")?;
    }
    Ok(line)
}

/// The terminal's settings before echo went off, for [`restore_terminal_and_die`].
#[cfg(unix)]
static SAVED_TERMINAL: std::sync::OnceLock<libc::termios> = std::sync::OnceLock::new();

/// Interrupted at the prompt (Ctrl-C, a kill, the terminal gone): echo back on, then die of the
/// signal as without this handler.
#[cfg(unix)]
extern "C" fn restore_terminal_and_die(signal: libc::c_int) {
    // SAFETY: tcsetattr, write, signal and raise are async-signal-safe; SAVED_TERMINAL was set
    // before this handler was installed and is only read here.
    unsafe {
        if let Some(saved) = SAVED_TERMINAL.get() {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
        }
        libc::write(libc::STDERR_FILENO, b"\n".as_ptr().cast(), 1);
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

/// Asks the service whether it takes `key` (a list every authenticated user may read).
async fn check_key(address: &str, key: &str, debug: bool) -> anyhow::Result<()> {
    let client = Client::new(address, Some(key.to_owned()))?.debug(debug);
    match client.get::<Value>("/v1/vaults?limit=1").await {
        Ok(_) => Ok(()),
        Err(e) => match e.downcast_ref::<ApiFailure>() {
            Some(f) if f.status == reqwest::StatusCode::UNAUTHORIZED => {
                bail!("{address} refused the key ({f}); nothing was saved")
            }
            _ => Err(e.context(format!(
                "cannot check the key with {address}; nothing was saved"
            ))),
        },
    }
}
