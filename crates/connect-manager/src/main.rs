//! `connect-manager`: `serve` runs the service; the other subcommands are its client, shaped
//! like `op connect …` so that an alias is the whole migration.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
mod admin;
#[cfg(test)]
mod cli_docs;

use admin::AdminCommand;
use connect_manager_cli::{
    AccountCommand, AuditCommand, ClientArgs, ClientCommand, CredentialsCommand, GlobalArgs,
    GroupCommand, IssuerCommand, ServerCommand, SigningKeyCommand, TokenCommand, TrustCommand,
    UserCommand, VaultCommand,
};
use connect_manager_server::ServeArgs;

#[derive(Debug, Parser)]
#[command(
    name = "connect-manager",
    version,
    about = "Manage 1Password Connect-style servers: their credentials files, tokens, vault \
             grants, and who may manage them.",
    after_help = "Client commands reach the service at CONNECT_MANAGER_URL (--url) with the API \
                  key in CONNECT_MANAGER_TOKEN (--token), or else the account saved with `account add` \
                  (--account NAME selects one). Arguments naming a server, vault, group \
                  or token take a name or an ID; `-` reads them from standard input (JSON with \
                  `id`s, as `--format json` prints it, or one per line). The global options may \
                  come before the subcommand or after it."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// A client command group: its subcommands share the connection options.
#[derive(Debug, clap::Args)]
struct Client<T: Subcommand> {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: T,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage Connect servers (op connect server).
    Server(Client<ServerCommand>),
    /// Manage Connect server tokens (op connect token).
    Token(Client<TokenCommand>),
    /// Grant and revoke servers' access to vaults (op connect vault); the vault registry.
    Vault(Client<VaultCommand>),
    /// Grant and revoke groups' access to manage Secrets Automation (op connect group); groups.
    Group(Client<GroupCommand>),
    /// Manage users and their API keys (owners).
    User(Client<UserCommand>),
    /// Read the audit trail, or follow it (owners).
    Audit(Client<AuditCommand>),
    /// List, rotate and retire the keys that sign tokens (owners).
    SigningKey(Client<SigningKeyCommand>),
    /// Trust OIDC issuers whose tokens may be exchanged for servers' tokens (owners).
    Issuer(Client<IssuerCommand>),
    /// Manage a server's trust policies: which workloads' tokens `token exchange` trades for its
    /// tokens, and what those reach.
    Trust(Client<TrustCommand>),
    /// Save, list and forget accounts: a service's address and API key (op account).
    #[command(subcommand)]
    Account(AccountCommand),
    /// Read a credentials file.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Work beside the database, without a running service: recovery and key rotation.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    Completion { shell: clap_complete::Shell },
    /// Run the service (embedded SQLite by default; PostgreSQL with DATABASE_URL=postgres://…).
    #[command(
        after_help = "Also read: RUST_LOG, the log filter [default: info,sqlx=warn,tower_http=info]. \
                            Secrets may come from files: CONNECT_MANAGER_MASTER_KEY_FILE, \
                            CONNECT_MANAGER_BOOTSTRAP_KEY_FILE."
    )]
    Serve(Box<ServeArgs>),
    /// Run the gateway: connect-manager tokens enforced in front of one Connect server's API
    /// (docs/GATEWAY.md).
    #[command(
        after_help = "Also read: RUST_LOG, the log filter [default: info]. The upstream token \
                      may come from a file: CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE."
    )]
    Gateway(Box<connect_manager_gateway::GatewayArgs>),
    /// Exit 0 when the service on this machine answers GET /healthz (the container's health
    /// check; the gateway's container asks its /-/healthz with --path).
    Healthcheck {
        /// The address the service listens on (0.0.0.0 is checked on 127.0.0.1).
        #[arg(long, env = "CONNECT_MANAGER_BIND", default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// The path asked: /healthz for `serve`, /-/healthz for `gateway`.
        #[arg(long, default_value = "/healthz", value_parser = health_path)]
        path: String,
    },
    /// Print the OpenAPI description this build serves.
    #[command(hide = true)]
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("[ERROR] cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let global = &cli.global;
    let client = |args, command| {
        report(runtime.block_on(connect_manager_cli::run_client(global, args, command)))
    };
    match cli.command {
        Command::Server(c) => client(c.client, ClientCommand::Server(c.command)),
        Command::Token(c) => client(c.client, ClientCommand::Token(c.command)),
        Command::Vault(c) => client(c.client, ClientCommand::Vault(c.command)),
        Command::Group(c) => client(c.client, ClientCommand::Group(c.command)),
        Command::User(c) => client(c.client, ClientCommand::User(c.command)),
        Command::Audit(c) => client(c.client, ClientCommand::Audit(c.command)),
        Command::SigningKey(c) => client(c.client, ClientCommand::SigningKey(c.command)),
        Command::Issuer(c) => client(c.client, ClientCommand::Issuer(c.command)),
        Command::Trust(c) => client(c.client, ClientCommand::Trust(c.command)),
        Command::Account(command) => {
            report(runtime.block_on(connect_manager_cli::run_account(global, command)))
        }
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Gateway(args) => runtime.block_on(gateway(*args)),
        Command::Admin(command) => report(runtime.block_on(admin::run(command))),
        Command::Credentials(command) => report(connect_manager_cli::run_credentials(command)),
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "connect-manager",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Healthcheck { bind, path } => report(runtime.block_on(healthcheck(bind, &path))),
        Command::Openapi => {
            print!("{}", connect_manager_server::openapi::generate_yaml());
            ExitCode::SUCCESS
        }
    }
}

/// A health check path: absolute, and nothing a URL would read as more than a path.
fn health_path(path: &str) -> Result<String, String> {
    if path.starts_with('/')
        && !path.starts_with("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'%' | b'\\'))
    {
        Ok(path.to_owned())
    } else {
        Err(format!("'{path}' is not an absolute path like /-/healthz"))
    }
}

async fn healthcheck(mut bind: std::net::SocketAddr, path: &str) -> anyhow::Result<()> {
    if bind.ip().is_unspecified() {
        bind.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?
        .get(format!("http://{bind}{path}"))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{path} answered {}",
        response.status()
    );
    Ok(())
}

/// Errors go to stderr as `[ERROR] <message>`, exit code 1 (usage errors are clap's, exit 2).
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[ERROR] {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let failed = |e: &dyn std::fmt::Display, code: u8| {
        eprintln!("connect-manager: {e}");
        ExitCode::from(code)
    };
    let config = match args.validate() {
        Ok(c) => c,
        Err(e) => return failed(&e, 2),
    };
    connect_manager_server::telemetry::init(config.log_format);
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(e) => return failed(&format_args!("cannot listen on {}: {e}", config.bind), 2),
    };
    match connect_manager_server::launch(config, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&e, e.exit_code() as u8),
    }
}

/// `connect-manager gateway`: a bad setting exits 2 with a one-line reason, as `serve` does.
async fn gateway(args: connect_manager_gateway::GatewayArgs) -> ExitCode {
    let failed = |e: &dyn std::fmt::Display, code: u8| {
        eprintln!("connect-manager gateway: {e}");
        ExitCode::from(code)
    };
    let config = match args.validate() {
        Ok(c) => c,
        Err(e) => return failed(&e, 2),
    };
    connect_manager_server::telemetry::init(match config.log_format {
        connect_manager_gateway::config::LogFormat::Json => {
            connect_manager_server::config::LogFormat::Json
        }
        connect_manager_gateway::config::LogFormat::Text => {
            connect_manager_server::config::LogFormat::Text
        }
    });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let prepared = match connect_manager_gateway::prepare(&config) {
        Ok(p) => p,
        Err(e) => return failed(&e, 2),
    };
    let listener = match tokio::net::TcpListener::bind(config.bind).await {
        Ok(l) => l,
        Err(e) => return failed(&format_args!("cannot listen on {}: {e}", config.bind), 2),
    };
    match connect_manager_gateway::run(prepared, listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(&e, 1),
    }
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received: finishing requests in flight");
}
