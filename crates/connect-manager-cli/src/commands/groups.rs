//! `group …`: granting a group the management of Secrets Automation (`op connect group
//! grant|revoke`, R11) and the owners' groups and members (A2).

use clap::{Args, Subcommand};
use connect_manager_core::api::groups::CreateGroup;
use connect_manager_core::model::{GrantScope, Group};
use serde_json::Value;

use super::{one, references};
use crate::client::{Client, enc};
use crate::output::{Output, Render, Style};

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
        /// The group, by name or ID; `-` reads groups from standard input.
        group: String,
    },
    /// Delete a group: its memberships and grants end (owners).
    #[command(visible_aliases = ["remove", "rm"])]
    Delete {
        /// The group, by name or ID; `-` reads groups from standard input.
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

impl Render for Group {
    const COLUMNS: &'static [&'static str] = &["ID", "Name", "Members", "Grants"];

    fn row(&self, _: &Style) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.members.len().to_string(),
            grants_text(self),
        ]
    }

    fn fields(&self, style: &Style) -> Vec<(&'static str, String)> {
        vec![
            ("ID", self.id.clone()),
            ("Name", self.name.clone()),
            ("Created", style.time(self.created_at)),
            ("Members", self.members.join(", ")),
            ("Grants", grants_text(self)),
        ]
    }
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

pub async fn run(client: &Client, out: Output, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Grant(grant) => {
            let g: Group = client.put(&grant.path()).await?;
            out.changed(&g)
        }
        GroupCommand::Revoke(grant) => {
            let g: Group = client.delete(&grant.path()).await?;
            out.changed(&g)
        }
        GroupCommand::Create { name } => {
            let body = CreateGroup { name: one(name)? };
            let g: Group = client.post("/v1/groups", &body).await?;
            out.show(&g)
        }
        GroupCommand::List => out.list(client.list_all::<Group>("/v1/groups").await?),
        GroupCommand::Get { group } => {
            for group in references(vec![group])? {
                let g: Group = client.get(&group_path(&group)).await?;
                out.show(&g)?;
            }
            Ok(())
        }
        GroupCommand::Delete { group } => {
            for group in references(vec![group])? {
                let _: Value = client.delete(&group_path(&group)).await?;
            }
            Ok(())
        }
        GroupCommand::AddMember { group, user } => {
            let g: Group = client.put(&member_path(&group, &user)).await?;
            out.changed(&g)
        }
        GroupCommand::RemoveMember { group, user } => {
            let g: Group = client.delete(&member_path(&group, &user)).await?;
            out.changed(&g)
        }
    }
}

fn group_path(group: &str) -> String {
    format!("/v1/groups/{}", enc(group))
}

fn member_path(group: &str, user: &str) -> String {
    format!("{}/members/{}", group_path(group), enc(user))
}
