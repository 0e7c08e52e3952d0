//! `server …` (`op connect server`): Connect servers and their credentials files, written by
//! `server create` and `server rotate-credentials` alike.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use connect_manager_core::api::servers::{CreateServer, RenameServer, ServerWithCredentials};
use connect_manager_core::api::trust::TrustPolicy;
use connect_manager_core::model::Server;
use serde_json::Value;

use super::{one, references};
use crate::client::{Client, enc};
use crate::output::{Format, Output, Render, Style};

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Set up a Connect server and write its credentials file, 1password-credentials.json, in the
    /// current directory.
    Create {
        /// The server's name.
        name: String,
        /// Vaults the server may reach, by name or ID, comma-separated.
        #[arg(long, value_delimiter = ',')]
        vaults: Vec<String>,
        /// Overwrite an existing 1password-credentials.json without asking.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Remove a Connect server: its tokens are revoked, its credentials stop working.
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// Servers by name or ID; `-` reads them from standard input (JSON with `id`s, as
        /// `--format json` prints them, or one per line).
        #[arg(required = true)]
        servers: Vec<String>,
    },
    /// Rename a Connect server.
    Edit {
        /// The server, by name or ID (`-`: standard input).
        server: String,
        /// The new name.
        #[arg(long)]
        name: String,
    },
    /// Get a Connect server's details.
    Get {
        /// The server, by name or ID; `-` reads servers from standard input.
        server: String,
    },
    /// List the Connect servers you may manage.
    #[command(visible_alias = "ls")]
    List,
    /// Rotate a Connect server's credentials (C3): write the new 1password-credentials.json in
    /// the current directory; the old file stops working at once, tokens stay valid.
    RotateCredentials {
        /// The server, by name or ID (`-`: standard input).
        server: String,
        /// Overwrite an existing 1password-credentials.json without asking.
        #[arg(short = 'f', long)]
        force: bool,
    },
}

impl Render for Server {
    const COLUMNS: &'static [&'static str] = &["ID", "Name", "State"];

    fn row(&self, style: &Style) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            style.state(self.state.as_str()),
        ]
    }

    fn fields(&self, style: &Style) -> Vec<(&'static str, String)> {
        let vaults: Vec<String> = self
            .vaults
            .iter()
            .map(|v| format!("{} ({})", v.name, v.id))
            .collect();
        vec![
            ("ID", self.id.clone()),
            ("Name", self.name.clone()),
            ("State", style.state(self.state.as_str())),
            ("Created", style.time(self.created_at)),
            ("Updated", style.time(self.updated_at)),
            ("Creator", self.creator_id.clone()),
            ("Tokens version", self.tokens_version.to_string()),
            ("Vaults", vaults.join(", ")),
        ]
    }
}

pub async fn run(client: &Client, out: Output, command: ServerCommand) -> anyhow::Result<()> {
    match command {
        ServerCommand::Create {
            name,
            vaults,
            force,
        } => {
            let name = one(name)?;
            let path = PathBuf::from(CREDENTIALS_FILE);
            may_write_credentials(&path, force, "created")?;
            let created: ServerWithCredentials = client
                .post("/v1/connect/servers", &CreateServer { name, vaults })
                .await?;
            save_credentials(out, &path, &created, "Set up a Connect server.")
        }
        ServerCommand::RotateCredentials { server, force } => {
            let server = one(server)?;
            let path = PathBuf::from(CREDENTIALS_FILE);
            may_write_credentials(&path, force, "rotated")?;
            let rotated: ServerWithCredentials = client
                .post(&format!("{}/credentials", server_path(&server)), &())
                .await?;
            save_credentials(
                out,
                &path,
                &rotated,
                "Rotated the Connect server's credentials.",
            )
        }
        ServerCommand::Delete { servers } => {
            for s in references(servers)? {
                let _: Value = client.delete(&server_path(&s)).await?;
            }
            Ok(())
        }
        ServerCommand::Edit { server, name } => {
            let path = server_path(&one(server)?);
            let s: Server = client.patch(&path, &RenameServer { name }).await?;
            out.changed(&s)
        }
        ServerCommand::Get { server } => {
            for server in references(vec![server])? {
                let s: Server = client.get(&server_path(&server)).await?;
                // The server's trust policies (issue 18) beside it, in the order the exchange
                // tries them; JSON stays the API's server object, as op's is.
                let mut policies: Vec<TrustPolicy> = match out.format {
                    Format::Json => Vec::new(),
                    Format::HumanReadable => {
                        client.list_all(&super::trust::policies_path(&s.id)).await?
                    }
                };
                super::trust::in_exchange_order(&mut policies);
                out.show_with(&s, "Trust policies", &policies)?;
            }
            Ok(())
        }
        ServerCommand::List => out.list(client.list_all::<Server>("/v1/connect/servers").await?),
    }
}

fn server_path(server: &str) -> String {
    format!("/v1/connect/servers/{}", enc(server))
}

const CREDENTIALS_FILE: &str = "1password-credentials.json";

/// Writes the credentials file an answer carries (mode 0600) and says so, as op does after
/// `server create`; JSON prints the answer.
fn save_credentials(
    out: Output,
    path: &Path,
    answer: &ServerWithCredentials,
    headline: &str,
) -> anyhow::Result<()> {
    write_private(path, &serde_json::to_string_pretty(&answer.credentials)?)?;
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    out.custom(answer, || {
        println!("{headline}");
        println!("UUID: {}", answer.server.id);
        println!("Credentials file: {}", shown.display());
    })
}

/// op asks before overwriting the credentials file; without a terminal to ask on, it refuses.
/// Asked before the call, so that a refusal changes nothing on the service.
fn may_write_credentials(path: &Path, force: bool, done: &str) -> anyhow::Result<()> {
    if force || !path.exists() {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{} already exists; pass -f to overwrite it", path.display());
    }
    eprint!(
        "File {} already exists, overwrite it? [y/N] ",
        path.display()
    );
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        Ok(())
    } else {
        bail!("not overwriting {}; nothing was {done}", path.display())
    }
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
