//! The commands that talk to the service, one module per resource, as the API's routes are:
//! [`servers`] (`op connect server`), [`tokens`] (`op connect token`), [`vaults`] (`op connect
//! vault grant|revoke` and the registry), [`groups`] (`op connect group grant|revoke` and the
//! owners' groups), [`users`] and their API [`keys`], the [`audit`] trail and the
//! [`signing_keys`]; [`issuers`] and [`trust`] policies (workload identity, with `token exchange`
//! in [`tokens`]); [`accounts`] saves a service's address
//! and key (`account add|list|forget`, as op's). Each command builds its request from
//! `connect_manager_core::api`, calls the API through [`Client`] and hands the answer to
//! [`Output`]. What they share is here: the global flags (op's, taken anywhere on the command
//! line), the connection options and reading `-` from standard input (one reader: JSON as
//! `--format json` prints it, or lines).

pub mod accounts;
pub mod audit;
pub mod groups;
pub mod issuers;
pub mod keys;
pub mod servers;
pub mod signing_keys;
pub mod tokens;
pub mod trust;
pub mod users;
pub mod vaults;

use std::io::Read;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::accounts::Connection;
use crate::client::Client;
use crate::output::{Format, Output, Style};

pub use accounts::{AccountCommand, run_account};
pub use audit::AuditCommand;
pub use groups::GroupCommand;
pub use issuers::IssuerCommand;
pub use keys::KeyCommand;
pub use servers::ServerCommand;
pub use signing_keys::SigningKeyCommand;
pub use tokens::TokenCommand;
pub use trust::TrustCommand;
pub use users::UserCommand;
pub use vaults::VaultCommand;

/// The help heading of [`GlobalArgs`].
const GLOBAL: &str = "Global options";

/// The flags op takes anywhere on the command line, before the subcommand or after it.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format of the client commands: a table, or the API's JSON (lists as a bare array
    /// of every item).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "CONNECT_MANAGER_FORMAT",
        value_enum,
        default_value = "human-readable"
    )]
    pub format: Format,
    /// Show times as RFC 3339 in UTC, as the API writes them (default: local time).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub iso_timestamps: bool,
    /// No colour (it is used only when standard output is a terminal and NO_COLOR is unset).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub no_color: bool,
    /// Trace each HTTP call to standard error: method, URL, status, time taken (never a header,
    /// key, token or body).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub debug: bool,
    /// The configuration directory, where accounts are saved (default:
    /// $XDG_CONFIG_HOME/connect-manager, else ~/.config/connect-manager).
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "DIR")]
    pub config: Option<std::path::PathBuf>,
    /// The saved account to use, by shorthand or address (default: the only one saved).
    /// --url/--token and CONNECT_MANAGER_URL/_TOKEN win over it.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "NAME")]
    pub account: Option<String>,
}

/// Where to reach the service; every client command takes these. `Debug` does not show the API
/// key.
#[derive(Args)]
pub struct ClientArgs {
    /// The service's URL (default: the saved account's, else http://127.0.0.1:8080).
    #[arg(long, global = true, env = "CONNECT_MANAGER_URL")]
    pub url: Option<String>,
    /// An API key (default: the saved account's, sent only to its address).
    #[arg(
        long,
        global = true,
        env = "CONNECT_MANAGER_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("url", &self.url)
            .field(
                "token",
                &format_args!("{}", connect_manager_core::secret::redacted(&self.token)),
            )
            .finish_non_exhaustive()
    }
}

/// The commands that talk to the service.
#[derive(Debug)]
pub enum ClientCommand {
    Server(ServerCommand),
    Token(TokenCommand),
    Vault(VaultCommand),
    Group(GroupCommand),
    User(UserCommand),
    Audit(AuditCommand),
    SigningKey(SigningKeyCommand),
    Issuer(IssuerCommand),
    Trust(TrustCommand),
}

pub async fn run_client(
    global: &GlobalArgs,
    args: ClientArgs,
    command: ClientCommand,
) -> anyhow::Result<()> {
    let to = Connection::resolve(
        args.url,
        args.token,
        global.config.as_deref(),
        global.account.as_deref(),
    )?;
    let client = Client::new(&to.url, to.token)?.debug(global.debug);
    let out = Output::new(
        global.format,
        Style::new(global.iso_timestamps, global.no_color),
    );
    match command {
        ClientCommand::Server(c) => servers::run(&client, out, c).await,
        ClientCommand::Token(c) => tokens::run(&client, out, c).await,
        ClientCommand::Vault(c) => vaults::run(&client, out, c).await,
        ClientCommand::Group(c) => groups::run(&client, out, c).await,
        ClientCommand::User(c) => users::run(&client, out, c).await,
        ClientCommand::Audit(c) => audit::run(&client, out, c).await,
        ClientCommand::SigningKey(c) => signing_keys::run(&client, out, c).await,
        ClientCommand::Issuer(c) => issuers::run(&client, out, c).await,
        ClientCommand::Trust(c) => trust::run(&client, out, c).await,
    }
}

/// A reference argument, or `-` for the one reference on standard input (see [`references`]).
fn one(value: String) -> anyhow::Result<String> {
    let mut refs = references(vec![value])?;
    match refs.len() {
        1 => Ok(refs.remove(0)),
        0 => bail!("'-' given but standard input is empty"),
        n => bail!("'-' given where one argument is expected, but standard input holds {n}"),
    }
}

/// Reference arguments, where `-` stands for every reference on standard input, as op pipes
/// them: `connect-manager server list --format json | connect-manager server delete -`.
fn references(values: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for v in values {
        if v == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading arguments from standard input")?;
            out.extend(parse_references(&text)?);
        } else {
            out.push(v);
        }
    }
    Ok(out)
}

/// The references in what was piped in. JSON, when it starts with `{` or `[`: an object with an
/// `id`, a string, an array of these, or several such values one after another (what
/// `--format json` prints, a list or one object per command); otherwise one reference per
/// non-empty line, trimmed.
pub fn parse_references(text: &str) -> anyhow::Result<Vec<String>> {
    let text = text.trim();
    if !text.starts_with(['{', '[']) {
        return Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect());
    }
    let mut out = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let value = value.context("standard input starts as JSON but is not JSON")?;
        match value {
            Value::Array(items) => {
                for item in items {
                    out.push(reference(item)?);
                }
            }
            item => out.push(reference(item)?),
        }
    }
    Ok(out)
}

/// One JSON value as a reference: an object's `id`, or a string.
fn reference(value: Value) -> anyhow::Result<String> {
    match value {
        Value::String(s) => Ok(s),
        Value::Object(mut o) => match o.remove("id") {
            Some(Value::String(id)) => Ok(id),
            _ => bail!("a JSON object on standard input has no \"id\""),
        },
        other => bail!("standard input holds {other}, not an object with an \"id\""),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_references;

    #[test]
    fn references_are_read_from_json_or_lines() {
        let refs = |t: &str| parse_references(t).unwrap();
        assert_eq!(refs("web\n\n  api 2 \n"), ["web", "api 2"]);
        assert_eq!(refs(r#"{"id": "a", "name": "x"}"#), ["a"]);
        assert_eq!(refs(r#"[{"id": "a"}, {"id": "b"}]"#), ["a", "b"]);
        assert_eq!(refs("{\"id\": \"a\"}\n{\"id\": \"b\"}\n"), ["a", "b"]);
        assert_eq!(refs(r#"["a", "b"]"#), ["a", "b"]);
        assert!(refs("").is_empty());
        assert!(parse_references(r#"[{"name": "x"}]"#).is_err());
        assert!(parse_references(r#"{"id": "a""#).is_err());
    }
}
