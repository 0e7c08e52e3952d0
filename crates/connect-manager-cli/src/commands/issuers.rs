//! `issuer add|list|remove` (owners, issue 18): the OIDC issuers whose tokens may be exchanged for
//! a server's tokens under its trust policies (`trust …`). Nothing is ever fetched from an issuer
//! that is not on this list.

use clap::Subcommand;
use connect_manager_core::api::trust::{CreateIssuer, Issuer};

use super::one;
use crate::client::{Client, enc};
use crate::output::{Output, Render, Style};

#[derive(Debug, Subcommand)]
pub enum IssuerCommand {
    /// Trust an OIDC issuer: its discovery document and keys are then fetched from it.
    Add {
        /// The issuer URL exactly as its tokens carry it in `iss`
        /// (https://token.actions.githubusercontent.com). https only.
        issuer: String,
        /// A name for it.
        #[arg(long)]
        name: String,
    },
    /// List the trusted issuers, newest first.
    #[command(visible_alias = "ls")]
    List,
    /// Stop trusting an issuer. Refused while a trust policy names it.
    #[command(visible_aliases = ["delete", "rm"])]
    Remove {
        /// The issuer, by name, ID or URL (`-`: standard input).
        issuer: String,
    },
}

impl Render for Issuer {
    const COLUMNS: &'static [&'static str] = &["ID", "Name", "Issuer", "Created"];

    fn row(&self, style: &Style) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.issuer.clone(),
            style.time(self.created_at),
        ]
    }
}

pub async fn run(client: &Client, out: Output, command: IssuerCommand) -> anyhow::Result<()> {
    match command {
        IssuerCommand::Add { issuer, name } => {
            let added: Issuer = client
                .post(
                    "/v1/issuers",
                    &CreateIssuer {
                        issuer: one(issuer)?,
                        name,
                    },
                )
                .await?;
            out.row(&added)
        }
        IssuerCommand::List => out.list(client.list_all::<Issuer>("/v1/issuers").await?),
        IssuerCommand::Remove { issuer } => {
            let issuer = issuer_ref(client, &one(issuer)?).await?;
            client
                .delete::<()>(&format!("/v1/issuers/{}", enc(&issuer)))
                .await?;
            Ok(())
        }
    }
}

/// The API names an issuer by ID or name; an issuer URL (what `issuer add` was given) is looked
/// up in the list. A URL that no issuer has is passed on as it is, for the API's "not found".
pub async fn issuer_ref(client: &Client, issuer: &str) -> anyhow::Result<String> {
    if !issuer.contains("://") {
        return Ok(issuer.to_owned());
    }
    let trimmed = issuer.trim_end_matches('/');
    let all = client.list_all::<Issuer>("/v1/issuers").await?;
    Ok(all
        .into_iter()
        .find(|i| i.issuer.trim_end_matches('/') == trimmed)
        .map_or_else(|| issuer.to_owned(), |i| i.id))
}
