//! `user key …`: a user's API keys (owners, A1). A new key is shown once; lists show metadata.

use clap::Subcommand;
use connect_manager_core::api::users::{CreateApiKey, CreatedApiKey};
use connect_manager_core::model::ApiKeyInfo;
use serde_json::Value;

use super::users::user_path;
use crate::client::{Client, enc};
use crate::output::{Output, Render, Style};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a user. Prints the key: it is shown this once.
    Create {
        /// The user, by ID or email.
        user: String,
        /// What the key is for (default: `key`).
        #[arg(long)]
        name: Option<String>,
        /// The key stops working after this long: a sum of <n>s|m|h|d|w terms (`90d`, `1w2d`).
        /// Default: it does not expire.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List a user's API keys (metadata only).
    #[command(visible_alias = "ls")]
    List {
        /// The user, by ID or email.
        user: String,
    },
    /// Delete an API key: it stops working at once.
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// The user, by ID or email.
        user: String,
        /// The key's ID.
        key_id: String,
    },
}

impl Render for ApiKeyInfo {
    const COLUMNS: &'static [&'static str] = &["ID", "Name", "Created", "Expires", "Last used"];

    fn row(&self, style: &Style) -> Vec<String> {
        let expires = if self.expired {
            format!("{} (expired)", style.time(self.expires_at))
        } else {
            style.time(self.expires_at)
        };
        vec![
            self.id.clone(),
            self.name.clone(),
            style.time(self.created_at),
            expires,
            style.time(self.last_used_at),
        ]
    }
}

pub async fn run(client: &Client, out: Output, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create {
            user,
            name,
            expires_in,
        } => {
            let path = format!("{}/keys", user_path(&user));
            let body = CreateApiKey { name, expires_in };
            let k: CreatedApiKey = client.post(&path, &body).await?;
            out.custom(&k, || println!("{}", k.key))
        }
        KeyCommand::List { user } => {
            let path = format!("{}/keys", user_path(&user));
            out.list(client.list_all::<ApiKeyInfo>(&path).await?)
        }
        KeyCommand::Delete { user, key_id } => {
            let path = format!("{}/keys/{}", user_path(&user), enc(&key_id));
            let _: Value = client.delete(&path).await?;
            Ok(())
        }
    }
}
