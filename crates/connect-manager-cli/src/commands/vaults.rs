//! `vault …`: granting a server a vault (`op connect vault grant|revoke`), the vault registry
//! (owners change it, everyone reads it) and `vault import` (G8, in [`crate::import`]).

use clap::Subcommand;
use connect_manager_core::api::vaults::{CreateVault, RenameVault};
use connect_manager_core::model::{Server, Vault, VaultType};
use serde_json::Value;

use super::{one, references};
use crate::client::{Client, enc};
use crate::output::{Output, Render, Style};

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Grant a Connect server access to a vault.
    Grant {
        /// The server, by name or ID.
        #[arg(long)]
        server: String,
        /// The vault, by name or ID.
        #[arg(long)]
        vault: String,
    },
    /// Revoke a Connect server's access to a vault; its tokens lose the vault at once.
    Revoke {
        /// The server, by name or ID.
        #[arg(long)]
        server: String,
        /// The vault, by name or ID.
        #[arg(long)]
        vault: String,
    },
    /// Add a vault to the registry (owners).
    Create {
        /// The vault's name.
        name: String,
        /// USER_CREATED, EVERYONE, TRANSFER, PERSONAL, PRIVATE or EMPLOYEE.
        #[arg(long = "type", default_value = "USER_CREATED")]
        vault_type: String,
        /// The vault's ID, e.g. the real ID of the vault in Connect (26 digits and lower-case
        /// letters); omitted: a new one.
        #[arg(long)]
        id: Option<String>,
    },
    /// List the registry's vaults.
    #[command(visible_alias = "ls")]
    List,
    /// Get a vault's details.
    Get {
        /// The vault, by name or ID; `-` reads vaults from standard input.
        vault: String,
    },
    /// Rename a vault (owners). Its type never changes.
    Edit {
        /// The vault, by name or ID (`-`: standard input).
        vault: String,
        /// The new name.
        #[arg(long)]
        name: String,
    },
    /// Remove a vault from the registry (owners): every grant of it ends.
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// The vault, by name or ID; `-` reads vaults from standard input.
        vault: String,
    },
    /// Bring a Connect server's vaults into the registry under their real IDs (owners): creates
    /// the missing ones, renames those whose name changed, never deletes. Running it again
    /// changes nothing.
    Import {
        /// The Connect server's URL, e.g. http://connect-api:8080.
        #[arg(long, env = "OP_CONNECT_HOST")]
        connect_host: String,
        /// The Connect server's token (sent to it only; never printed).
        #[arg(long, env = "OP_CONNECT_TOKEN", hide_env_values = true)]
        connect_token: Option<String>,
    },
}

impl Render for Vault {
    const COLUMNS: &'static [&'static str] = &["ID", "Name", "Type"];

    fn row(&self, _: &Style) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.vault_type.as_str().to_owned(),
        ]
    }

    fn fields(&self, style: &Style) -> Vec<(&'static str, String)> {
        vec![
            ("ID", self.id.clone()),
            ("Name", self.name.clone()),
            ("Type", self.vault_type.as_str().to_owned()),
            ("Created", style.time(self.created_at)),
        ]
    }
}

pub async fn run(client: &Client, out: Output, command: VaultCommand) -> anyhow::Result<()> {
    match command {
        VaultCommand::Grant { server, vault } => {
            let s: Server = client.put(&grant_path(&server, &vault)).await?;
            out.changed(&s)
        }
        VaultCommand::Revoke { server, vault } => {
            let s: Server = client.delete(&grant_path(&server, &vault)).await?;
            out.changed(&s)
        }
        VaultCommand::Create {
            name,
            vault_type,
            id,
        } => {
            let vault_type: VaultType =
                serde_json::from_value(Value::String(vault_type.to_uppercase())).map_err(|_| {
                    anyhow::anyhow!(
                        "--type must be one of USER_CREATED, EVERYONE, TRANSFER, PERSONAL, PRIVATE, EMPLOYEE"
                    )
                })?;
            let body = CreateVault {
                name: one(name)?,
                vault_type,
                id,
            };
            let v: Vault = client.post("/v1/vaults", &body).await?;
            out.row(&v)
        }
        VaultCommand::List => out.list(client.list_all::<Vault>("/v1/vaults").await?),
        VaultCommand::Get { vault } => {
            for vault in references(vec![vault])? {
                let v: Vault = client.get(&vault_path(&vault)).await?;
                out.show(&v)?;
            }
            Ok(())
        }
        VaultCommand::Edit { vault, name } => {
            let path = vault_path(&one(vault)?);
            let v: Vault = client.patch(&path, &RenameVault { name }).await?;
            out.changed(&v)
        }
        VaultCommand::Delete { vault } => {
            for vault in references(vec![vault])? {
                let _: Value = client.delete(&vault_path(&vault)).await?;
            }
            Ok(())
        }
        VaultCommand::Import {
            connect_host,
            connect_token,
        } => crate::import::import(client, out, &connect_host, connect_token).await,
    }
}

fn vault_path(vault: &str) -> String {
    format!("/v1/vaults/{}", enc(vault))
}

/// A server's grant of a vault.
fn grant_path(server: &str, vault: &str) -> String {
    format!("/v1/connect/servers/{}/vaults/{}", enc(server), enc(vault))
}
