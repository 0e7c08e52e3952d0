//! The commands that talk to the service, one module per resource, as the API's routes are:
//! [`servers`] (`op connect server`), [`tokens`] (`op connect token`), [`vaults`] (`op connect
//! vault grant|revoke` and the registry), [`groups`] (`op connect group grant|revoke` and the
//! owners' groups), [`users`] and their API [`keys`]. Each command builds its request from
//! `connect_manager_core::api`, calls the API through [`Client`] and hands the answer to
//! [`Output`]. What they share is here: the connection options and reading `-` from standard
//! input.

pub mod groups;
pub mod keys;
pub mod servers;
pub mod tokens;
pub mod users;
pub mod vaults;

use std::io::{BufRead, Read};

use anyhow::{Context, bail};
use clap::Args;

use crate::client::Client;
use crate::output::{Format, Output};

pub use groups::GroupCommand;
pub use keys::KeyCommand;
pub use servers::ServerCommand;
pub use tokens::TokenCommand;
pub use users::UserCommand;
pub use vaults::VaultCommand;

/// Where and how to reach the service; every client command takes these. `Debug` does not show
/// the API key.
#[derive(Args)]
pub struct ClientArgs {
    /// The service's URL.
    #[arg(
        long,
        global = true,
        env = "CONNECT_MANAGER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An API key.
    #[arg(
        long,
        global = true,
        env = "CONNECT_MANAGER_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Output format.
    #[arg(
        long,
        global = true,
        env = "CONNECT_MANAGER_FORMAT",
        value_enum,
        default_value = "human-readable"
    )]
    pub format: Format,
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("url", &self.url)
            .field(
                "token",
                &format_args!("{}", connect_manager_core::secret::redacted(&self.token)),
            )
            .field("format", &self.format)
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
}

pub async fn run_client(args: ClientArgs, command: ClientCommand) -> anyhow::Result<()> {
    let client = Client::new(&args.url, args.token.filter(|t| !t.is_empty()))?;
    let out = Output::new(args.format);
    match command {
        ClientCommand::Server(c) => servers::run(&client, out, c).await,
        ClientCommand::Token(c) => tokens::run(&client, out, c).await,
        ClientCommand::Vault(c) => vaults::run(&client, out, c).await,
        ClientCommand::Group(c) => groups::run(&client, out, c).await,
        ClientCommand::User(c) => users::run(&client, out, c).await,
    }
}

/// An argument, or `-` to read it from standard input (as op does).
fn arg(value: String) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the argument from standard input")?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        bail!("'-' given but standard input is empty");
    }
    Ok(text)
}

/// Arguments, where `-` stands for one per line of standard input.
fn args(values: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for v in values {
        if v == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.context("reading arguments from standard input")?;
                if !line.trim().is_empty() {
                    out.push(line.trim().to_owned());
                }
            }
        } else {
            out.push(v);
        }
    }
    Ok(out)
}
