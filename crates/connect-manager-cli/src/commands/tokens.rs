//! `token …` (`op connect token`): a server's tokens. A new token's JWT is shown once.
//! `token exchange` (issue 18) trades a workload's JWT from a trusted issuer for a short-lived
//! token of a server (RFC 8693, `POST /v1/token-exchange`), with no API key.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use connect_manager_core::api::error::ErrorBody;
use connect_manager_core::api::tokens::{CreateToken, CreatedToken, RenameToken, TokenVault};
use connect_manager_core::api::trust::{
    GRANT_TYPE_TOKEN_EXCHANGE, OAuthError, TOKEN_TYPE_JWT, TokenExchangeResponse,
};
use connect_manager_core::model::{Token, VaultAccess};

use super::{one, references};
use crate::client::{Client, enc};
use crate::output::{Output, Render, Style};

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
        /// `vault,w` (write) or `vault,rw`. Repeat for more vaults. `--vaults` is the same flag,
        /// as op's `--vaults Kubernetes,r` (read-only Kubernetes) uses it.
        #[arg(
            long = "vault",
            visible_alias = "vaults",
            value_name = "VAULT[,r|,w|,rw]"
        )]
        vault: Vec<String>,
        /// How long the token lives: a sum of <n>s, m, h, d or w (`90m`, `1w2d`). Default: it
        /// does not expire.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Revoke a token. It stays listed, REVOKED.
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// The token, by name or ID; `-` reads tokens from standard input.
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
        /// Only live tokens (active, not expired) that expire within this long: a sum of
        /// <n>s|m|h|d|w terms, as --expires-in (`7d`).
        #[arg(long, value_name = "DURATION")]
        expiring_within: Option<String>,
        /// Only live tokens not used for this long (`30d`): never used, or last used by a gateway
        /// before then.
        #[arg(long, value_name = "DURATION")]
        unused_for: Option<String>,
    },
    /// Exchange a workload's identity token (a JWT from a trusted issuer: a CI job's OIDC token,
    /// a Kubernetes service-account token) for a short-lived token of a server, under the first
    /// of its trust policies that matches. Needs no API key. Prints only the token (a JWT).
    Exchange {
        /// The server the token is for, by name or ID.
        #[arg(long)]
        server: String,
        /// The file holding the workload's JWT; `-` reads it from standard input.
        #[arg(long, value_name = "FILE")]
        subject_token_file: PathBuf,
    },
}

impl Render for Token {
    const COLUMNS: &'static [&'static str] =
        &["ID", "Name", "State", "Server", "Expires", "Last used"];

    fn row(&self, style: &Style) -> Vec<String> {
        let state = if self.expired {
            style.state(&format!("{} (expired)", self.state.as_str()))
        } else {
            style.state(self.state.as_str())
        };
        // When and from where it was last used (G7, accurate to a minute).
        let last_used = match (self.last_used_at, &self.last_used_ip) {
            (Some(at), Some(ip)) => format!("{} from {ip}", style.time(at)),
            (at, _) => style.time(at),
        };
        vec![
            self.id.clone(),
            self.name.clone(),
            state,
            self.integration_id.clone(),
            style.time(self.expires_at),
            last_used,
        ]
    }
}

pub async fn run(client: &Client, out: Output, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            server,
            vault,
            expires_in,
        } => {
            let scope: Vec<TokenVault> = vault.iter().map(|v| parse_vault_access(v)).collect();
            let created: CreatedToken = client
                .post(
                    &format!("/v1/connect/servers/{}/tokens", enc(&server)),
                    &CreateToken {
                        name: one(name)?,
                        vaults: scope,
                        expires_in,
                    },
                )
                .await?;
            out.custom(&created, || println!("{}", created.jwt))
        }
        TokenCommand::Delete { token_ref, server } => {
            for token in references(vec![token_ref])? {
                let t: Token = client.delete(&token_path(&token, &server)).await?;
                out.changed(&t)?;
            }
            Ok(())
        }
        TokenCommand::Edit {
            token_ref,
            name,
            server,
        } => {
            let path = token_path(&one(token_ref)?, &server);
            let t: Token = client.patch(&path, &RenameToken { name }).await?;
            out.changed(&t)
        }
        TokenCommand::List {
            server,
            expiring_within,
            unused_for,
        } => {
            let query = [
                ("server", &server),
                ("expiring_within", &expiring_within),
                ("unused_for", &unused_for),
            ]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
            .collect::<Vec<_>>()
            .join("&");
            let path = if query.is_empty() {
                "/v1/connect/tokens".to_owned()
            } else {
                format!("/v1/connect/tokens?{query}")
            };
            out.list(client.list_all::<Token>(&path).await?)
        }
        TokenCommand::Exchange {
            server,
            subject_token_file,
        } => {
            let subject_token = read_subject_token(&subject_token_file)?;
            let exchanged = exchange(client, &server, &subject_token).await?;
            out.custom(&exchanged, || println!("{}", exchanged.access_token))
        }
    }
}

/// The subject token from `path` (`-`: standard input), without surrounding white space.
fn read_subject_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the subject token from standard input")?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the subject token file {}", path.display()))?
    };
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "the subject token {} is empty",
            if path.as_os_str() == "-" {
                "on standard input".to_owned()
            } else {
                format!("file {}", path.display())
            }
        );
    }
    Ok(token.to_owned())
}

/// `POST /v1/token-exchange` (RFC 8693). A refusal is one line: the RFC 6749 error code and the
/// service's description of what did not match (which never holds the token).
async fn exchange(
    client: &Client,
    server: &str,
    subject_token: &str,
) -> anyhow::Result<TokenExchangeResponse> {
    let (status, body) = client
        .post_form_anonymous(
            "/v1/token-exchange",
            &[
                ("grant_type", GRANT_TYPE_TOKEN_EXCHANGE),
                ("subject_token", subject_token),
                ("subject_token_type", TOKEN_TYPE_JWT),
                ("resource", server),
            ],
        )
        .await?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .with_context(|| format!("unexpected answer from {}", client.base()));
    }
    if let Ok(e) = serde_json::from_slice::<OAuthError>(&body) {
        bail!(
            "token exchange refused ({}): {}",
            e.error,
            e.error_description
        );
    }
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(&body) {
        bail!("token exchange failed: {}", e.error.message);
    }
    bail!("token exchange failed: {} answered {status}", client.base())
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

fn token_path(token: &str, server: &Option<String>) -> String {
    format!("/v1/connect/tokens/{}{}", enc(token), server_query(server))
}

fn server_query(server: &Option<String>) -> String {
    server
        .as_ref()
        .map(|s| format!("?server={}", enc(s)))
        .unwrap_or_default()
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
}
