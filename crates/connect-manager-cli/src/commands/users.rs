//! `user …`: users (owners, A2); their API keys are [`super::keys`].

use clap::Subcommand;
use connect_manager_core::api::users::CreateUser;
use connect_manager_core::model::User;
use serde_json::Value;

use super::keys::{self, KeyCommand};
use super::references;
use crate::client::{Client, enc};
use crate::output::{Output, Render, Style};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (owners). Give it an API key with `user key create`.
    Create {
        /// The user's name.
        #[arg(long)]
        name: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
    },
    /// List users (owners).
    #[command(visible_alias = "ls")]
    List,
    /// Get a user's details (owners).
    Get {
        /// The user, by ID or email; `-` reads users from standard input.
        user: String,
    },
    /// Delete a user and its API keys (owners).
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// The user, by ID or email; `-` reads users from standard input.
        user: String,
    },
    /// A user's API keys (owners).
    #[command(subcommand)]
    Key(KeyCommand),
}

impl Render for User {
    const COLUMNS: &'static [&'static str] = &["ID", "Name", "Email"];

    fn row(&self, _: &Style) -> Vec<String> {
        vec![self.id.clone(), self.name.clone(), self.email.clone()]
    }

    fn fields(&self, style: &Style) -> Vec<(&'static str, String)> {
        vec![
            ("ID", self.id.clone()),
            ("Name", self.name.clone()),
            ("Email", self.email.clone()),
            ("Created", style.time(self.created_at)),
        ]
    }
}

pub async fn run(client: &Client, out: Output, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { name, email } => {
            let u: User = client
                .post("/v1/users", &CreateUser { name, email })
                .await?;
            out.row(&u)
        }
        UserCommand::List => out.list(client.list_all::<User>("/v1/users").await?),
        UserCommand::Get { user } => {
            for user in references(vec![user])? {
                let u: User = client.get(&user_path(&user)).await?;
                out.show(&u)?;
            }
            Ok(())
        }
        UserCommand::Delete { user } => {
            for user in references(vec![user])? {
                let _: Value = client.delete(&user_path(&user)).await?;
            }
            Ok(())
        }
        UserCommand::Key(command) => keys::run(client, out, command).await,
    }
}

/// A user, by ID or email.
pub(super) fn user_path(user: &str) -> String {
    format!("/v1/users/{}", enc(user))
}
