//! The op-style commands: `server`, `token`, `vault`, `group` (as `op connect …`), and the owners'
//! `vault`, `group` and `user` registry commands. Each is one API call (or a few, for lists) on
//! the shared request and response types.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use connect_manager_core::api::groups::CreateGroup;
use connect_manager_core::api::servers::{CreateServer, RenameServer, ServerWithCredentials};
use connect_manager_core::api::tokens::{CreateToken, CreatedToken, RenameToken, TokenVault};
use connect_manager_core::api::users::{CreateUser, CreatedApiKey};
use connect_manager_core::api::vaults::{CreateVault, RenameVault};
use connect_manager_core::model::{
    ApiKeyInfo, GrantScope, Group, Server, Token, User, Vault, VaultAccess, VaultType,
};
use connect_manager_core::page::Page;
use serde_json::Value;

use crate::client::{Client, enc};
use crate::output::{Format, fields, json, table};

/// Where and how to reach the service; every client command takes these. `Debug` does not show
/// the API key.
#[derive(Args)]
pub struct ClientArgs {
    /// The service's URL.
    #[arg(
        long,
        global = true,
        env = "CONNECT_MANAGER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An API key.
    #[arg(
        long,
        global = true,
        env = "CONNECT_MANAGER_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Output format.
    #[arg(
        long,
        global = true,
        env = "CONNECT_MANAGER_FORMAT",
        value_enum,
        default_value = "human-readable"
    )]
    pub format: Format,
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("url", &self.url)
            .field(
                "token",
                &format_args!("{}", connect_manager_core::secret::redacted(&self.token)),
            )
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// An argument, or `-` to read it from standard input (as op does).
fn arg(value: String) -> anyhow::Result<String> {
    if value != "-" {
        return Ok(value);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the argument from standard input")?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        bail!("'-' given but standard input is empty");
    }
    Ok(text)
}

/// Arguments, where `-` stands for one per line of standard input.
fn args(values: Vec<String>) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for v in values {
        if v == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.context("reading arguments from standard input")?;
                if !line.trim().is_empty() {
                    out.push(line.trim().to_owned());
                }
            }
        } else {
            out.push(v);
        }
    }
    Ok(out)
}

fn when(t: Option<connect_manager_core::Timestamp>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())
}

/// When and from where a token was last used (G7, accurate to a minute), or `never`.
fn last_used(t: &Token) -> String {
    match (t.last_used_at, &t.last_used_ip) {
        (Some(at), Some(ip)) => format!("{} from {ip}", at.to_rfc3339()),
        (Some(at), None) => at.to_rfc3339(),
        (None, _) => "never".into(),
    }
}

// ---- server ----------------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Set up a Connect server and write its credentials file, 1password-credentials.json, in the
    /// current directory.
    Create {
        /// The server's name.
        name: String,
        /// Vaults the server may reach, by name or ID, comma-separated.
        #[arg(long, value_delimiter = ',')]
        vaults: Vec<String>,
        /// Overwrite an existing 1password-credentials.json without asking.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Remove a Connect server: its tokens are revoked, its credentials stop working.
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// Servers by name or ID; `-` reads them from standard input, one per line.
        #[arg(required = true)]
        servers: Vec<String>,
    },
    /// Rename a Connect server.
    Edit {
        /// The server, by name or ID (`-`: standard input).
        server: String,
        /// The new name.
        #[arg(long)]
        name: String,
    },
    /// Get a Connect server's details.
    Get {
        /// The server, by name or ID (`-`: standard input).
        server: String,
    },
    /// List the Connect servers you may manage.
    #[command(visible_alias = "ls")]
    List,
}

const CREDENTIALS_FILE: &str = "1password-credentials.json";

/// op asks before overwriting the credentials file; without a terminal to ask on, it refuses.
fn may_write_credentials(path: &std::path::Path, force: bool) -> anyhow::Result<()> {
    if force || !path.exists() {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{} already exists; pass -f to overwrite it", path.display());
    }
    eprint!(
        "File {} already exists, overwrite it? [y/N] ",
        path.display()
    );
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        Ok(())
    } else {
        bail!("not overwriting {}; nothing was created", path.display())
    }
}

fn write_private(path: &std::path::Path, content: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn server_row(s: &Server) -> Vec<String> {
    vec![s.id.clone(), s.name.clone(), s.state.as_str().to_owned()]
}

fn show_server(s: &Server) {
    let vaults: Vec<String> = s
        .vaults
        .iter()
        .map(|v| format!("{} ({})", v.name, v.id))
        .collect();
    fields(&[
        ("ID", s.id.clone()),
        ("Name", s.name.clone()),
        ("State", s.state.as_str().to_owned()),
        ("Created", s.created_at.to_rfc3339()),
        ("Updated", s.updated_at.to_rfc3339()),
        ("Creator", s.creator_id.clone()),
        ("Tokens version", s.tokens_version.to_string()),
        ("Vaults", vaults.join(", ")),
    ]);
}

pub async fn server(client: &Client, format: Format, command: ServerCommand) -> anyhow::Result<()> {
    match command {
        ServerCommand::Create {
            name,
            vaults,
            force,
        } => {
            let name = arg(name)?;
            let path = PathBuf::from(CREDENTIALS_FILE);
            may_write_credentials(&path, force)?;
            let created: ServerWithCredentials = client
                .post("/v1/connect/servers", &CreateServer { name, vaults })
                .await?;
            write_private(&path, &serde_json::to_string_pretty(&created.credentials)?)?;
            let shown = std::fs::canonicalize(&path).unwrap_or(path);
            match format {
                Format::Json => json(&created)?,
                Format::HumanReadable => {
                    println!("Set up a Connect server.");
                    println!("UUID: {}", created.server.id);
                    println!("Credentials file: {}", shown.display());
                }
            }
        }
        ServerCommand::Delete { servers } => {
            for s in args(servers)? {
                let _: Value = client
                    .delete(&format!("/v1/connect/servers/{}", enc(&s)))
                    .await?;
            }
        }
        ServerCommand::Edit { server, name } => {
            let server = arg(server)?;
            let s: Server = client
                .patch(
                    &format!("/v1/connect/servers/{}", enc(&server)),
                    &RenameServer { name },
                )
                .await?;
            if format == Format::Json {
                json(&s)?;
            }
        }
        ServerCommand::Get { server } => {
            let server = arg(server)?;
            let s: Server = client
                .get(&format!("/v1/connect/servers/{}", enc(&server)))
                .await?;
            match format {
                Format::Json => json(&s)?,
                Format::HumanReadable => show_server(&s),
            }
        }
        ServerCommand::List => {
            let servers: Vec<Server> = client.list_all("/v1/connect/servers").await?;
            match format {
                Format::Json => json(&Page {
                    items: servers,
                    next_cursor: None,
                })?,
                Format::HumanReadable => table(
                    &["ID", "Name", "State"],
                    servers.iter().map(server_row).collect(),
                ),
            }
        }
    }
    Ok(())
}

// ---- token -----------------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a Connect server. Prints the token (a JWT): it is shown this once.
    Create {
        /// The token's name.
        name: String,
        /// The server, by name or ID.
        #[arg(long)]
        server: String,
        /// A vault the token may reach: `vault` (the server's access), `vault,r` (read),
        /// `vault,w` (write) or `vault,rw`. Repeat for more vaults.
        #[arg(long = "vault", value_name = "VAULT[,r|,w|,rw]")]
        vault: Vec<String>,
        /// Vaults with the server's access, comma-separated.
        #[arg(long, value_delimiter = ',')]
        vaults: Vec<String>,
        /// How long the token lives: a sum of <n>s, m, h, d or w (`90m`, `1w2d`). Default: it
        /// does not expire.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Revoke a token. It stays listed, REVOKED.
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// The token, by name or ID (`-`: standard input).
        #[arg(value_name = "TOKEN")]
        token_ref: String,
        /// The token's server, to tell tokens of the same name apart.
        #[arg(long)]
        server: Option<String>,
    },
    /// Rename a token. Its vaults and expiry never change: issue a new token instead.
    Edit {
        /// The token, by name or ID (`-`: standard input).
        #[arg(value_name = "TOKEN")]
        token_ref: String,
        /// The new name.
        #[arg(long)]
        name: String,
        /// The token's server, to tell tokens of the same name apart.
        #[arg(long)]
        server: Option<String>,
    },
    /// List tokens, active and revoked, newest first.
    #[command(visible_alias = "ls")]
    List {
        /// Only this server's tokens (a deleted server by its ID).
        #[arg(long)]
        server: Option<String>,
    },
}

/// `vault[,r|,w|,rw]`: the suffix after the last comma, when it is one of these, is the access.
pub fn parse_vault_access(value: &str) -> TokenVault {
    let (vault, access) = match value.rsplit_once(',') {
        Some((v, "r")) => (v, Some(VaultAccess::Read)),
        Some((v, "w")) => (v, Some(VaultAccess::Write)),
        Some((v, "rw")) => (v, Some(VaultAccess::ReadWrite)),
        _ => (value, None),
    };
    TokenVault {
        vault: vault.to_owned(),
        access,
    }
}

fn server_query(server: &Option<String>) -> String {
    server
        .as_ref()
        .map(|s| format!("?server={}", enc(s)))
        .unwrap_or_default()
}

pub async fn token(client: &Client, format: Format, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            server,
            vault,
            vaults,
            expires_in,
        } => {
            let mut scope: Vec<TokenVault> = vault.iter().map(|v| parse_vault_access(v)).collect();
            scope.extend(vaults.into_iter().map(|v| TokenVault {
                vault: v,
                access: None,
            }));
            let created: CreatedToken = client
                .post(
                    &format!("/v1/connect/servers/{}/tokens", enc(&server)),
                    &CreateToken {
                        name: arg(name)?,
                        vaults: scope,
                        expires_in,
                    },
                )
                .await?;
            match format {
                Format::Json => json(&created)?,
                Format::HumanReadable => println!("{}", created.jwt),
            }
        }
        TokenCommand::Delete { token_ref, server } => {
            let t: Token = client
                .delete(&format!(
                    "/v1/connect/tokens/{}{}",
                    enc(&arg(token_ref)?),
                    server_query(&server)
                ))
                .await?;
            if format == Format::Json {
                json(&t)?;
            }
        }
        TokenCommand::Edit {
            token_ref,
            name,
            server,
        } => {
            let t: Token = client
                .patch(
                    &format!(
                        "/v1/connect/tokens/{}{}",
                        enc(&arg(token_ref)?),
                        server_query(&server)
                    ),
                    &RenameToken { name },
                )
                .await?;
            if format == Format::Json {
                json(&t)?;
            }
        }
        TokenCommand::List { server } => {
            let tokens: Vec<Token> = client
                .list_all(&format!("/v1/connect/tokens{}", server_query(&server)))
                .await?;
            match format {
                Format::Json => json(&Page {
                    items: tokens,
                    next_cursor: None,
                })?,
                Format::HumanReadable => table(
                    &["ID", "Name", "State", "Server", "Expires", "Last used"],
                    tokens
                        .iter()
                        .map(|t| {
                            let state = if t.expired {
                                format!("{} (expired)", t.state.as_str())
                            } else {
                                t.state.as_str().to_owned()
                            };
                            vec![
                                t.id.clone(),
                                t.name.clone(),
                                state,
                                t.integration_id.clone(),
                                when(t.expires_at),
                                last_used(t),
                            ]
                        })
                        .collect(),
                ),
            }
        }
    }
    Ok(())
}

// ---- vault -----------------------------------------------------------------------------------

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
        /// The vault, by name or ID (`-`: standard input).
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
        /// The vault, by name or ID (`-`: standard input).
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

fn vault_row(v: &Vault) -> Vec<String> {
    vec![
        v.id.clone(),
        v.name.clone(),
        v.vault_type.as_str().to_owned(),
    ]
}

pub async fn vault(client: &Client, format: Format, command: VaultCommand) -> anyhow::Result<()> {
    let print_server = |s: Server| -> anyhow::Result<()> {
        if format == Format::Json {
            json(&s)?;
        }
        Ok(())
    };
    match command {
        VaultCommand::Grant { server, vault } => print_server(
            client
                .put(&format!(
                    "/v1/connect/servers/{}/vaults/{}",
                    enc(&server),
                    enc(&vault)
                ))
                .await?,
        )?,
        VaultCommand::Revoke { server, vault } => print_server(
            client
                .delete(&format!(
                    "/v1/connect/servers/{}/vaults/{}",
                    enc(&server),
                    enc(&vault)
                ))
                .await?,
        )?,
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
            let v: Vault = client
                .post(
                    "/v1/vaults",
                    &CreateVault {
                        name: arg(name)?,
                        vault_type,
                        id,
                    },
                )
                .await?;
            match format {
                Format::Json => json(&v)?,
                Format::HumanReadable => table(&["ID", "Name", "Type"], vec![vault_row(&v)]),
            }
        }
        VaultCommand::List => {
            let vaults: Vec<Vault> = client.list_all("/v1/vaults").await?;
            match format {
                Format::Json => json(&Page {
                    items: vaults,
                    next_cursor: None,
                })?,
                Format::HumanReadable => table(
                    &["ID", "Name", "Type"],
                    vaults.iter().map(vault_row).collect(),
                ),
            }
        }
        VaultCommand::Get { vault } => {
            let v: Vault = client
                .get(&format!("/v1/vaults/{}", enc(&arg(vault)?)))
                .await?;
            match format {
                Format::Json => json(&v)?,
                Format::HumanReadable => fields(&[
                    ("ID", v.id.clone()),
                    ("Name", v.name.clone()),
                    ("Type", v.vault_type.as_str().to_owned()),
                    ("Created", v.created_at.to_rfc3339()),
                ]),
            }
        }
        VaultCommand::Edit { vault, name } => {
            let v: Vault = client
                .patch(
                    &format!("/v1/vaults/{}", enc(&arg(vault)?)),
                    &RenameVault { name },
                )
                .await?;
            if format == Format::Json {
                json(&v)?;
            }
        }
        VaultCommand::Delete { vault } => {
            let _: Value = client
                .delete(&format!("/v1/vaults/{}", enc(&arg(vault)?)))
                .await?;
        }
        VaultCommand::Import {
            connect_host,
            connect_token,
        } => crate::import::import(client, format, &connect_host, connect_token).await?,
    }
    Ok(())
}

// ---- group -----------------------------------------------------------------------------------

/// Which grant: `--server S`, `--all-servers`, or neither (Secrets Automation manager).
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The group, by name or ID.
    #[arg(long)]
    pub group: String,
    /// The group may manage this server (name or ID).
    #[arg(long, conflicts_with = "all_servers")]
    pub server: Option<String>,
    /// The group may manage every current and future server.
    #[arg(long)]
    pub all_servers: bool,
}

impl GrantArgs {
    fn path(&self) -> String {
        let group = enc(&self.group);
        match (&self.server, self.all_servers) {
            (Some(s), _) => format!("/v1/connect/groups/{group}/grants/servers/{}", enc(s)),
            (None, true) => format!("/v1/connect/groups/{group}/grants/all-servers"),
            (None, false) => format!("/v1/connect/groups/{group}/grants/manager"),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Grant a group access to manage Secrets Automation: with neither flag the group becomes a
    /// manager (may also create servers); `--all-servers` manages every server; `--server S`
    /// manages S.
    Grant(GrantArgs),
    /// Revoke a group's access to manage Secrets Automation (the same three forms).
    Revoke(GrantArgs),
    /// Create a group (owners).
    Create {
        /// The group's name.
        name: String,
    },
    /// List groups with their members and grants (owners).
    #[command(visible_alias = "ls")]
    List,
    /// Get a group's details (owners).
    Get {
        /// The group, by name or ID (`-`: standard input).
        group: String,
    },
    /// Delete a group: its memberships and grants end (owners).
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// The group, by name or ID (`-`: standard input).
        group: String,
    },
    /// Add a user to a group (owners).
    AddMember {
        /// The group, by name or ID.
        #[arg(long)]
        group: String,
        /// The user, by ID or email.
        #[arg(long)]
        user: String,
    },
    /// Remove a user from a group (owners).
    RemoveMember {
        /// The group, by name or ID.
        #[arg(long)]
        group: String,
        /// The user, by ID or email.
        #[arg(long)]
        user: String,
    },
}

fn grants_text(g: &Group) -> String {
    g.grants
        .iter()
        .map(|x| match (&x.scope, &x.server_id) {
            (GrantScope::Server, Some(s)) => format!("SERVER {s}"),
            (scope, _) => scope.as_str().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_group(format: Format, g: &Group) -> anyhow::Result<()> {
    match format {
        Format::Json => json(g),
        Format::HumanReadable => {
            fields(&[
                ("ID", g.id.clone()),
                ("Name", g.name.clone()),
                ("Created", g.created_at.to_rfc3339()),
                ("Members", g.members.join(", ")),
                ("Grants", grants_text(g)),
            ]);
            Ok(())
        }
    }
}

pub async fn group(client: &Client, format: Format, command: GroupCommand) -> anyhow::Result<()> {
    let quiet_group = |g: Group| -> anyhow::Result<()> {
        if format == Format::Json {
            json(&g)?;
        }
        Ok(())
    };
    match command {
        GroupCommand::Grant(grant) => quiet_group(client.put(&grant.path()).await?)?,
        GroupCommand::Revoke(grant) => quiet_group(client.delete(&grant.path()).await?)?,
        GroupCommand::Create { name } => {
            let g: Group = client
                .post("/v1/groups", &CreateGroup { name: arg(name)? })
                .await?;
            print_group(format, &g)?;
        }
        GroupCommand::List => {
            let groups: Vec<Group> = client.list_all("/v1/groups").await?;
            match format {
                Format::Json => json(&Page {
                    items: groups,
                    next_cursor: None,
                })?,
                Format::HumanReadable => table(
                    &["ID", "Name", "Members", "Grants"],
                    groups
                        .iter()
                        .map(|g| {
                            vec![
                                g.id.clone(),
                                g.name.clone(),
                                g.members.len().to_string(),
                                grants_text(g),
                            ]
                        })
                        .collect(),
                ),
            }
        }
        GroupCommand::Get { group } => {
            let g: Group = client
                .get(&format!("/v1/groups/{}", enc(&arg(group)?)))
                .await?;
            print_group(format, &g)?;
        }
        GroupCommand::Delete { group } => {
            let _: Value = client
                .delete(&format!("/v1/groups/{}", enc(&arg(group)?)))
                .await?;
        }
        GroupCommand::AddMember { group, user } => quiet_group(
            client
                .put(&format!(
                    "/v1/groups/{}/members/{}",
                    enc(&group),
                    enc(&user)
                ))
                .await?,
        )?,
        GroupCommand::RemoveMember { group, user } => quiet_group(
            client
                .delete(&format!(
                    "/v1/groups/{}/members/{}",
                    enc(&group),
                    enc(&user)
                ))
                .await?,
        )?,
    }
    Ok(())
}

// ---- user ------------------------------------------------------------------------------------

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
        /// The user, by ID or email (`-`: standard input).
        user: String,
    },
    /// Delete a user and its API keys (owners).
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// The user, by ID or email (`-`: standard input).
        user: String,
    },
    /// A user's API keys (owners).
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key for a user. Prints the key: it is shown this once.
    Create {
        /// The user, by ID or email.
        user: String,
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

fn user_row(u: &User) -> Vec<String> {
    vec![u.id.clone(), u.name.clone(), u.email.clone()]
}

pub async fn user(client: &Client, format: Format, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { name, email } => {
            let u: User = client
                .post("/v1/users", &CreateUser { name, email })
                .await?;
            match format {
                Format::Json => json(&u)?,
                Format::HumanReadable => table(&["ID", "Name", "Email"], vec![user_row(&u)]),
            }
        }
        UserCommand::List => {
            let users: Vec<User> = client.list_all("/v1/users").await?;
            match format {
                Format::Json => json(&Page {
                    items: users,
                    next_cursor: None,
                })?,
                Format::HumanReadable => table(
                    &["ID", "Name", "Email"],
                    users.iter().map(user_row).collect(),
                ),
            }
        }
        UserCommand::Get { user } => {
            let u: User = client
                .get(&format!("/v1/users/{}", enc(&arg(user)?)))
                .await?;
            match format {
                Format::Json => json(&u)?,
                Format::HumanReadable => fields(&[
                    ("ID", u.id.clone()),
                    ("Name", u.name.clone()),
                    ("Email", u.email.clone()),
                    ("Created", u.created_at.to_rfc3339()),
                ]),
            }
        }
        UserCommand::Delete { user } => {
            let _: Value = client
                .delete(&format!("/v1/users/{}", enc(&arg(user)?)))
                .await?;
        }
        UserCommand::Key(KeyCommand::Create { user }) => {
            let k: CreatedApiKey = client
                .post(&format!("/v1/users/{}/keys", enc(&user)), &())
                .await?;
            match format {
                Format::Json => json(&k)?,
                Format::HumanReadable => println!("{}", k.key),
            }
        }
        UserCommand::Key(KeyCommand::List { user }) => {
            let keys: Vec<ApiKeyInfo> = client
                .list_all(&format!("/v1/users/{}/keys", enc(&user)))
                .await?;
            match format {
                Format::Json => json(&Page {
                    items: keys,
                    next_cursor: None,
                })?,
                Format::HumanReadable => table(
                    &["ID", "Created"],
                    keys.iter()
                        .map(|k| vec![k.id.clone(), k.created_at.to_rfc3339()])
                        .collect(),
                ),
            }
        }
        UserCommand::Key(KeyCommand::Delete { user, key_id }) => {
            let _: Value = client
                .delete(&format!("/v1/users/{}/keys/{}", enc(&user), enc(&key_id)))
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_access_suffixes_follow_op() {
        let v = parse_vault_access("prod,r");
        assert_eq!(
            (v.vault.as_str(), v.access),
            ("prod", Some(VaultAccess::Read))
        );
        let v = parse_vault_access("prod,w");
        assert_eq!(v.access, Some(VaultAccess::Write));
        let v = parse_vault_access("prod,rw");
        assert_eq!(v.access, Some(VaultAccess::ReadWrite));
        let v = parse_vault_access("prod");
        assert_eq!((v.vault.as_str(), v.access), ("prod", None));
        let v = parse_vault_access("a,b vault");
        assert_eq!((v.vault.as_str(), v.access), ("a,b vault", None));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(enc("Prod Secrets/x"), "Prod%20Secrets%2Fx");
        assert_eq!(enc("plain-id_1"), "plain-id_1");
    }
}
