//! `connect-manager`: `serve` runs the service; the other subcommands are the client side.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use connect_manager_cli::{AdminCommand, CredentialsCommand};
use connect_manager_server::ServeArgs;

#[derive(Debug, Parser)]
#[command(
    name = "connect-manager",
    version,
    about = "Manage 1Password Connect-style servers, their credentials files, tokens and vault grants."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (embedded SQLite by default; PostgreSQL with DATABASE_URL=postgres://…).
    Serve(Box<ServeArgs>),
    /// Work beside the database, without a running service.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Read a credentials file.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Print the OpenAPI description this build serves.
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
            eprintln!("connect-manager: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(*args)),
        Command::Admin(command) => {
            report(runtime.block_on(connect_manager_cli::run_admin(command)))
        }
        Command::Credentials(command) => report(connect_manager_cli::run_credentials(command)),
        Command::Openapi => {
            print!("{}", connect_manager_server::openapi::generate_yaml());
            ExitCode::SUCCESS
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("connect-manager: {e:#}");
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
