//! The client side of the binary: the commands mirroring `op connect …` and the owners'
//! registry commands talk to the service over HTTP only, on the API's request and response types
//! (`connect_manager_core::api`); `credentials show` reads a credentials file. Nothing here opens
//! the database: `admin …` (beside the database) is the binary's own
//! (`crates/connect-manager/src/admin.rs`).
//!
//! Where things are: [`commands`] (one module per resource), [`output`] (how everything prints:
//! the `Render` trait and the JSON/table forms), [`client`] (the HTTP client and the error
//! envelope), [`accounts`] (saved accounts and which service a command reaches), [`import`]
//! (`vault import`, G8), [`credentials`].

pub mod accounts;
pub mod client;
pub mod commands;
pub mod credentials;
pub mod import;
pub mod output;

pub use commands::{
    AccountCommand, AuditCommand, ClientArgs, ClientCommand, GlobalArgs, GroupCommand,
    IssuerCommand, KeyCommand, ServerCommand, SigningKeyCommand, TokenCommand, TrustCommand,
    UserCommand, VaultCommand, run_account, run_client,
};
pub use credentials::{CredentialsCommand, run_credentials};
