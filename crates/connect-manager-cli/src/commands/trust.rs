//! `trust create|list|get|delete` (a server's managers, issue 18): a server's trust policies, which
//! say whose tokens from a trusted issuer (`issuer …`) `token exchange` trades for a short-lived
//! token of the server, and what that token reaches.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::Subcommand;
use connect_manager_core::api::trust::{CreateTrustPolicy, TrustPolicy};
use connect_manager_core::model::Server;

use super::one;
use super::tokens::parse_vault_access;
use crate::client::{Client, enc};
use crate::output::{Output, Render, Style};

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Add a trust policy to a server: a token of ISSUER whose `aud` holds AUDIENCE, whose `sub`
    /// matches SUBJECT and whose claims match every --claim may be exchanged for a token of the
    /// server on its --vault(s), living --ttl. Policies are tried oldest first.
    Create {
        /// The policy's name.
        name: String,
        /// The server, by name or ID.
        #[arg(long)]
        server: String,
        /// The trusted issuer, by name, ID or URL.
        #[arg(long)]
        issuer: String,
        /// The subject token's `aud` must contain this.
        #[arg(long)]
        audience: String,
        /// The subject token's `sub`: exact, or with `*` globs (`repo:acme/api:ref:refs/heads/*`);
        /// `*` matches any run of characters, `/` and `:` included.
        #[arg(long, value_name = "PATTERN")]
        subject: String,
        /// Another claim the subject token must have: `name=value`, the value exact or with `*`
        /// globs (`environment=production`). Repeat for more claims.
        #[arg(long = "claim", value_name = "NAME=PATTERN", value_parser = parse_claim)]
        claims: Vec<(String, String)>,
        /// A vault the exchanged tokens reach: `vault` (the server's access), `vault,r` (read),
        /// `vault,w` (write) or `vault,rw`. Repeat for more vaults; at least one.
        #[arg(
            long = "vault",
            visible_alias = "vaults",
            value_name = "VAULT[,r|,w|,rw]",
            required = true
        )]
        vault: Vec<String>,
        /// How long an exchanged token lives: a sum of <n>s, m, h, d or w, at most 24h. Default:
        /// 15m.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List trust policies, each server's in the order `token exchange` tries them (oldest first).
    #[command(visible_alias = "ls")]
    List {
        /// Only this server's policies (default: those of every server you may manage).
        #[arg(long)]
        server: Option<String>,
    },
    /// Get a trust policy's details.
    Get {
        /// The policy, by name or ID (`-`: standard input).
        policy: String,
        /// Its server, by name or ID.
        #[arg(long)]
        server: String,
    },
    /// Delete a trust policy: no more exchanges under it. Tokens it issued stay valid until they
    /// expire or are revoked.
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// The policy, by name or ID (`-`: standard input).
        policy: String,
        /// Its server, by name or ID.
        #[arg(long)]
        server: String,
    },
}

/// `name=value` of `--claim`.
fn parse_claim(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "'{text}' is not NAME=PATTERN (environment=production)"
        )),
    }
}

/// A policy's vaults as `--vault` takes them: `vault,r`, `vault,w` or `vault,rw`.
fn vaults(p: &TrustPolicy) -> String {
    p.vaults
        .iter()
        .map(|v| {
            let read = v.acl.iter().any(|a| a == "view_items");
            let write = v.acl.iter().any(|a| a == "create_items");
            let suffix = match (read, write) {
                (true, true) => "rw",
                (false, true) => "w",
                _ => "r",
            };
            format!("{},{suffix}", v.id)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Seconds as the largest whole unit: `15m`, `1h`, `90s`.
fn ttl(seconds: i64) -> String {
    match seconds {
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl Render for TrustPolicy {
    const COLUMNS: &'static [&'static str] =
        &["ID", "Name", "Server", "Issuer", "Subject", "Vaults", "TTL"];

    fn row(&self, _style: &Style) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.server_id.clone(),
            self.issuer.clone(),
            self.subject.clone(),
            vaults(self),
            ttl(self.ttl_seconds),
        ]
    }

    fn fields(&self, style: &Style) -> Vec<(&'static str, String)> {
        let claims: Vec<String> = self
            .claims
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        vec![
            ("ID", self.id.clone()),
            ("Name", self.name.clone()),
            ("Server", self.server_id.clone()),
            ("Issuer", format!("{} ({})", self.issuer, self.issuer_id)),
            ("Audience", self.audience.clone()),
            ("Subject", self.subject.clone()),
            ("Claims", claims.join(", ")),
            ("Vaults", vaults(self)),
            ("TTL", ttl(self.ttl_seconds)),
            ("Created", style.time(self.created_at)),
            ("Creator", self.creator_id.clone()),
        ]
    }
}

/// A server's policies in the order the exchange tries them: oldest first, then by ID.
pub(crate) fn in_exchange_order(policies: &mut [TrustPolicy]) {
    policies.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
}

pub(crate) fn policies_path(server: &str) -> String {
    format!("/v1/connect/servers/{}/trust-policies", enc(server))
}

fn policy_path(server: &str, policy: &str) -> String {
    format!("{}/{}", policies_path(server), enc(policy))
}

pub async fn run(client: &Client, out: Output, command: TrustCommand) -> anyhow::Result<()> {
    match command {
        TrustCommand::Create {
            name,
            server,
            issuer,
            audience,
            subject,
            claims,
            vault,
            ttl,
        } => {
            let mut by_name = BTreeMap::new();
            for (k, v) in claims {
                if by_name.insert(k.clone(), v).is_some() {
                    bail!("--claim {k}=… is given twice");
                }
            }
            let created: TrustPolicy = client
                .post(
                    &policies_path(&server),
                    &CreateTrustPolicy {
                        name: one(name)?,
                        issuer,
                        audience,
                        subject,
                        claims: by_name,
                        vaults: vault.iter().map(|v| parse_vault_access(v)).collect(),
                        ttl,
                    },
                )
                .await?;
            out.show(&created)
        }
        TrustCommand::List { server } => {
            let servers = match server {
                Some(s) => vec![s],
                None => client
                    .list_all::<Server>("/v1/connect/servers")
                    .await?
                    .into_iter()
                    .map(|s| s.id)
                    .collect(),
            };
            let mut all = Vec::new();
            for s in servers {
                let mut policies = client.list_all::<TrustPolicy>(&policies_path(&s)).await?;
                in_exchange_order(&mut policies);
                all.extend(policies);
            }
            out.list(all)
        }
        TrustCommand::Get { policy, server } => {
            let p: TrustPolicy = client.get(&policy_path(&server, &one(policy)?)).await?;
            out.show(&p)
        }
        TrustCommand::Delete { policy, server } => {
            client
                .delete::<()>(&policy_path(&server, &one(policy)?))
                .await?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_name_equals_pattern() {
        assert_eq!(
            parse_claim("environment=prod*").unwrap(),
            ("environment".into(), "prod*".into())
        );
        assert_eq!(
            parse_claim("ref=refs/heads/a=b").unwrap(),
            ("ref".into(), "refs/heads/a=b".into())
        );
        assert!(parse_claim("environment").is_err());
        assert!(parse_claim("=x").is_err());
    }

    #[test]
    fn ttls_read_in_their_largest_whole_unit() {
        assert_eq!(ttl(900), "15m");
        assert_eq!(ttl(86400), "24h");
        assert_eq!(ttl(90), "90s");
        assert_eq!(ttl(5400), "90m");
    }
}
