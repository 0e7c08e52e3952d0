//! The client side of the binary: the commands mirroring `op connect …` and the owners'
//! registry commands talk to the service over HTTP only, on the API's own request and response
//! types; `admin …` works beside the database (no service needed); `credentials show` reads a
//! credentials file.

pub mod client;
pub mod commands;
pub mod import;
pub mod output;

pub use commands::{
    ClientArgs, GroupCommand, KeyCommand, ServerCommand, TokenCommand, UserCommand, VaultCommand,
};

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use connect_manager_core::credentials::{self, CredentialsFile};
use connect_manager_core::model::Actor;
use connect_manager_core::secret::MasterKey;
use connect_manager_core::secret::{api_key_hash, new_api_key};
use connect_manager_core::token::generate_key;
use connect_manager_server::config::{LogFormat, SQLITE_FILE, StorageArgs};
use connect_manager_server::{ServeArgs, open_checked};
use connect_manager_store::DynStore;

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
        }
        .validate()?;
        Ok(open_checked(&config).await?)
    }
}

pub async fn run_admin(command: AdminCommand) -> anyhow::Result<()> {
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
        Some(reference) => owners
            .into_iter()
            .find(|u| u.id == *reference || u.email.eq_ignore_ascii_case(reference))
            .with_context(|| format!("'{reference}' is not an owner"))?,
        None => owners
            .into_iter()
            .next()
            .context("the database has no owner; start the service once to create one")?,
    };
    let key = new_api_key();
    store
        .create_api_key(
            &Actor::system("admin-owner-key"),
            &owner.id,
            &api_key_hash(&key),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    store.close().await;
    eprintln!("New API key for owner {} ({}):", owner.id, owner.email);
    println!("{key}");
    Ok(())
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
