//! The client side of the binary. `admin …` works beside the database (no server needed);
//! `credentials show` reads a credentials file. The HTTP client commands mirroring `op connect`
//! are not built yet (see the README's mapping table).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use connect_manager_core::credentials::{self, CredentialsFile};
use connect_manager_core::model::Actor;
use connect_manager_core::secret::{api_key_hash, new_api_key};
use connect_manager_server::config::{SQLITE_FILE, database_url};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Mint a new API key for an owner, straight in the database (recovery; A1). Prints the key
    /// once on stdout.
    OwnerKey(OwnerKeyArgs),
}

#[derive(Debug, Args)]
pub struct OwnerKeyArgs {
    /// The owner (user ID or email); default: the oldest owner.
    #[arg(long)]
    pub user: Option<String>,
    /// Directory of the embedded SQLite database.
    #[arg(long, env = "CONNECT_MANAGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; default: SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

pub async fn run_admin(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::OwnerKey(args) => owner_key(args).await,
    }
}

async fn owner_key(args: OwnerKeyArgs) -> anyhow::Result<()> {
    let url = database_url(&args.data_dir, args.database_url.clone())?;
    if url.starts_with("sqlite:") && args.database_url_is_default() {
        let file = args.data_dir.join(SQLITE_FILE);
        if !file.exists() {
            bail!(
                "no database at {} (set CONNECT_MANAGER_DATA_DIR or DATABASE_URL)",
                file.display()
            );
        }
    }
    let store = connect_manager_store::open(&url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    let owners = store.owners().await.map_err(anyhow::Error::msg)?;
    let owner = match &args.user {
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

impl OwnerKeyArgs {
    fn database_url_is_default(&self) -> bool {
        self.database_url.as_deref().is_none_or(str::is_empty)
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
