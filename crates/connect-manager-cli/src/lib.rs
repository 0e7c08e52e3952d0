//! The client side of the binary: the commands mirroring `op connect …` and the owners'
//! registry commands talk to the service over HTTP only, on the API's request and response types
//! (`connect_manager_core::api`); `credentials show` reads a credentials file. Nothing here opens
//! the database: `admin …` (beside the database) is the binary's own (`connect-manager/src/admin.rs`).

pub mod client;
pub mod commands;
pub mod import;
pub mod output;

pub use commands::{
    ClientArgs, GroupCommand, KeyCommand, ServerCommand, TokenCommand, UserCommand, VaultCommand,
};

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use connect_manager_core::credentials::{self, CredentialsFile};

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
    let client = client::Client::new(&args.url, args.token.filter(|t| !t.is_empty()))?;
    let format = args.format;
    match command {
        ClientCommand::Server(c) => commands::server(&client, format, c).await,
        ClientCommand::Token(c) => commands::token(&client, format, c).await,
        ClientCommand::Vault(c) => commands::vault(&client, format, c).await,
        ClientCommand::Group(c) => commands::group(&client, format, c).await,
        ClientCommand::User(c) => commands::user(&client, format, c).await,
    }
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Decode a credentials file: the server ID and service URL; the secret only with --reveal.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The file (default ./1password-credentials.json).
    #[arg(default_value = "1password-credentials.json")]
    pub file: PathBuf,
    /// Print the server secret too.
    #[arg(long)]
    pub reveal: bool,
}

pub fn run_credentials(command: CredentialsCommand) -> anyhow::Result<()> {
    match command {
        CredentialsCommand::Show(args) => {
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            let file: CredentialsFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a credentials file", args.file.display()))?;
            let payload = credentials::open(&file).map_err(anyhow::Error::msg)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "server_id  {}", payload.server_id)?;
            writeln!(out, "url        {}", payload.url)?;
            if args.reveal {
                writeln!(out, "secret     {}", payload.secret)?;
            } else {
                writeln!(out, "secret     (hidden; --reveal shows it)")?;
            }
            Ok(())
        }
    }
}
