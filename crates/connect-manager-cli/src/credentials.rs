//! `credentials show`: decode a credentials file, without the service.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use connect_manager_core::credentials::{self, CredentialsFile};

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
