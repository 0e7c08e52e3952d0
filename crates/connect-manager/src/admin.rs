//! `connect-manager admin …`: the commands that work beside the database, without a running
//! service: an owner's API key for recovery (A1), signing key rotation and retirement (T3). They
//! open the installation the way `serve` does (the same settings, the master key checked), so
//! they live in the binary, beside the server; the client crate never opens a database.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use connect_manager_core::lookup;
use connect_manager_core::model::Actor;
use connect_manager_core::secret::{MasterKey, api_key_hash, new_api_key};
use connect_manager_core::token::generate_key;
use connect_manager_server::config::{LogFormat, SQLITE_FILE, StorageArgs};
use connect_manager_server::{ServeArgs, open_checked};
use connect_manager_store::DynStore;

// The variants are the subcommands' names (`owner-key`, `rotate-key`, `retire-key`).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Mint a new API key for an owner, straight in the database (recovery; A1). Prints the key
    /// once on stdout.
    OwnerKey {
        /// The owner (user ID or email); default: the oldest owner.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Make a new token signing key (T3). Running services sign with it at once; older keys stay
    /// published while they verify a live token.
    RotateKey {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Retire a token signing key (T3): it leaves the JWKS and the tokens it signed stop
    /// verifying (they are revoked), on running services within a second. The key that signs
    /// is refused: rotate first. After a compromise: rotate-key, then retire-key.
    RetireKey {
        /// The key's ID (a JWT header's `kid`; `GET /.well-known/jwks.json` lists them).
        kid: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// Where the database and the master key are: the same settings as `serve`.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
}

impl DatabaseArgs {
    /// Opens an existing installation's database (never creates one) and its master key.
    async fn open(self) -> anyhow::Result<(DynStore, MasterKey)> {
        let storage = self.storage;
        if storage.database_url.as_deref().is_none_or(str::is_empty) {
            let file = storage.data_dir.join(SQLITE_FILE);
            if !file.exists() {
                bail!(
                    "no database at {} (set CONNECT_MANAGER_DATA_DIR or DATABASE_URL)",
                    file.display()
                );
            }
        }
        let config = ServeArgs {
            bind: "127.0.0.1:0".into(),
            storage,
            bootstrap_key: None,
            bootstrap_key_file: None,
            public_url: None,
            log_format: LogFormat::Text,
            auth_failures_per_minute: 0,
            trusted_proxies: String::new(),
            forwarded_header: Default::default(),
            key_rotation_interval: None,
            console: Default::default(),
            allow_insecure_issuers: false,
        }
        .validate()?;
        Ok(open_checked(&config).await?)
    }
}

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::OwnerKey { user, database } => owner_key(user, database).await,
        AdminCommand::RotateKey { database } => {
            let (store, master) = database.open().await?;
            let key = generate_key(&master);
            store
                .add_signing_key(&Actor::system("admin-rotate-key"), &key)
                .await
                .map_err(anyhow::Error::msg)?;
            store.close().await;
            println!("{}", key.kid);
            Ok(())
        }
        AdminCommand::RetireKey { kid, database } => {
            let (store, _) = database.open().await?;
            let retired = store
                .retire_signing_key(&Actor::system("admin-retire-key"), &kid)
                .await;
            store.close().await;
            let retired = retired.map_err(anyhow::Error::msg)?;
            eprintln!(
                "Retired signing key {} ({} active tokens revoked).",
                retired.kid, retired.tokens_revoked
            );
            println!("{}", retired.kid);
            Ok(())
        }
    }
}

async fn owner_key(user: Option<String>, database: DatabaseArgs) -> anyhow::Result<()> {
    let (store, _) = database.open().await?;
    let owners = store.owners().await.map_err(anyhow::Error::msg)?;
    let owner = match &user {
        // R1 for users, as the API resolves them: exact ID, else the email.
        Some(reference) => {
            let found = store
                .find_users(reference)
                .await
                .map_err(anyhow::Error::msg)?;
            let user = lookup::resolve_user(reference, found).map_err(anyhow::Error::msg)?;
            owners
                .into_iter()
                .find(|u| u.id == user.id)
                .with_context(|| format!("'{reference}' is not an owner"))?
        }
        None => owners
            .into_iter()
            .next()
            .context("the database has no owner; start the service once to create one")?,
    };
    let key = new_api_key();
    let new = connect_manager_store::NewApiKey {
        key_hash: api_key_hash(&key),
        name: connect_manager_core::name::Name::parse("name", "owner-key")
            .map_err(anyhow::Error::msg)?,
        expires_at: None,
    };
    store
        .create_named_api_key(&Actor::system("admin-owner-key"), &owner.id, &new)
        .await
        .map_err(anyhow::Error::msg)?;
    store.close().await;
    eprintln!("New API key for owner {} ({}):", owner.id, owner.email);
    println!("{key}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use connect_manager_cli::ClientArgs;

    #[test]
    fn debug_of_the_client_and_admin_options_shows_no_secret() {
        use clap::Parser;

        #[derive(Debug, Parser)]
        struct Client {
            #[command(flatten)]
            client: ClientArgs,
            #[command(subcommand)]
            admin: AdminCommand,
        }
        let api_key = "cmk_api-key-SECRET-0123456789";
        let master = "master-key-SECRET-0123456789abcdefghijkl";
        let parsed = Client::try_parse_from([
            "cm",
            "--token",
            api_key,
            "rotate-key",
            "--master-key",
            master,
            "--database-url",
            "postgres://app:db-password-SECRET@db/cm",
        ])
        .unwrap();
        for debug in [
            format!("{:?}", parsed.client),
            format!("{parsed:?}"),
            format!("{parsed:#?}"),
        ] {
            for secret in [api_key, master, "db-password-SECRET"] {
                assert!(!debug.contains(secret), "{debug}");
            }
        }
        assert!(format!("{:?}", parsed.client).contains("token: Some(<redacted>)"));
    }
}
