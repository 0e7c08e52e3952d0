//! `vault import` (G8): the vaults a Connect server sees, into the registry under their real IDs.
//!
//! Reads Connect's `GET /v1/vaults` with the Connect token, then, vault by vault, through the
//! API (so every change is an audit event of the user running it): creates a vault the registry
//! lacks with Connect's ID, name and type; renames one whose name changed in Connect; leaves the
//! rest. Never deletes. A vault that cannot be imported (its name is another registry vault's,
//! its ID was a deleted vault's, …) is reported and the others go on. The Connect token is sent
//! to the Connect server only, and never printed.

use anyhow::{Context, anyhow, bail};
use connect_manager_core::api::vaults::{CreateVault, RenameVault};
use connect_manager_core::import::{ConnectVault, Step, plan};
use connect_manager_core::model::Vault;
use serde::Serialize;

use crate::client::{Client, enc, http_client, send_traced};
use crate::output::{Output, Render, Style};

/// What the import did with one vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Renamed,
    Unchanged,
    Failed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Renamed => "renamed",
            Action::Unchanged => "unchanged",
            Action::Failed => "failed",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub id: String,
    pub name: String,
    pub action: Action,
    /// The registry's name before a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_name: Option<String>,
    /// Why a vault failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Render for Outcome {
    const COLUMNS: &'static [&'static str] = &["ID", "Name", "Action", "Detail"];

    fn row(&self, _: &Style) -> Vec<String> {
        let detail = match (&self.previous_name, &self.error) {
            (_, Some(e)) => e.clone(),
            (Some(old), None) => format!("was '{old}'"),
            (None, None) => String::new(),
        };
        vec![
            self.id.clone(),
            self.name.clone(),
            self.action.as_str().to_owned(),
            detail,
        ]
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub vaults: Vec<Outcome>,
    pub created: usize,
    pub renamed: usize,
    pub unchanged: usize,
    pub failed: usize,
}

/// Connect's `GET /v1/vaults`.
async fn connect_vaults(host: &str, token: &str, debug: bool) -> anyhow::Result<Vec<ConnectVault>> {
    let host = host.trim_end_matches('/');
    let http = http_client("--connect-host", host)?;
    let request = http.get(format!("{host}/v1/vaults")).bearer_auth(token);
    let response = send_traced(debug, request)
        .await
        // reqwest's error names the URL, never the header that carries the token.
        .with_context(|| format!("cannot reach Connect at {host}"))?;
    let status = response.status();
    let bytes = response.bytes().await.context("reading Connect's answer")?;
    if !status.is_success() {
        // Connect's error body: {"status": N, "message": "…"}.
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
            " (check --connect-token / OP_CONNECT_TOKEN)"
        } else {
            ""
        };
        bail!("Connect at {host} answered {status}: {message}{hint}");
    }
    serde_json::from_slice(&bytes)
        .with_context(|| format!("Connect at {host} did not answer with a list of vaults"))
}

/// Imports the vaults of the Connect server at `host` into the registry behind `client`.
pub async fn import(
    client: &Client,
    out: Output,
    host: &str,
    token: Option<String>,
) -> anyhow::Result<()> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("no Connect token: set OP_CONNECT_TOKEN or pass --connect-token"))?;
    let from_connect = connect_vaults(host, &token, client.debug).await?;
    drop(token);
    let registry: Vec<Vault> = client.list_all("/v1/vaults").await?;
    let mut outcomes = Vec::with_capacity(from_connect.len());
    for cv in from_connect {
        outcomes.push(import_one(client, &registry, cv).await);
    }
    let count = |a: Action| outcomes.iter().filter(|o| o.action == a).count();
    let report = Report {
        created: count(Action::Created),
        renamed: count(Action::Renamed),
        unchanged: count(Action::Unchanged),
        failed: count(Action::Failed),
        vaults: outcomes,
    };
    out.custom(&report, || {
        out.table(&report.vaults);
        if report.created + report.renamed == 0 && report.failed == 0 {
            println!(
                "Nothing changed: the registry already holds all {} vaults.",
                report.unchanged
            );
        } else {
            println!(
                "{} created, {} renamed, {} unchanged, {} failed.",
                report.created, report.renamed, report.unchanged, report.failed
            );
        }
    })?;
    if report.failed > 0 {
        bail!(
            "{} of {} vaults could not be imported (see above)",
            report.failed,
            report.vaults.len()
        );
    }
    Ok(())
}

async fn import_one(client: &Client, registry: &[Vault], cv: ConnectVault) -> Outcome {
    let outcome = |name: String, action, previous_name, error| Outcome {
        id: cv.id.clone(),
        name,
        action,
        previous_name,
        error,
    };
    let step = match plan(registry, &cv) {
        Ok(step) => step,
        Err(e) => return outcome(cv.name.clone(), Action::Failed, None, Some(e)),
    };
    let (done, result): (_, anyhow::Result<Option<Vault>>) = match step {
        Step::Unchanged { name, .. } => ((name.into_string(), Action::Unchanged, None), Ok(None)),
        Step::Rename {
            id,
            name,
            previous_name,
        } => {
            let name = name.into_string();
            let body = RenameVault { name: name.clone() };
            let renamed = client
                .patch(&format!("/v1/vaults/{}", enc(&id)), &body)
                .await;
            (
                (name, Action::Renamed, Some(previous_name)),
                renamed.map(Some),
            )
        }
        Step::Create {
            id,
            name,
            vault_type,
        } => {
            let name = name.into_string();
            let body = CreateVault {
                name: name.clone(),
                vault_type,
                id: Some(id),
            };
            let created = client.post("/v1/vaults", &body).await;
            ((name, Action::Created, None), created.map(Some))
        }
    };
    let (name, action, previous_name) = done;
    match result {
        Ok(_) => outcome(name, action, previous_name, None),
        Err(e) => outcome(name, Action::Failed, None, Some(format!("{e:#}"))),
    }
}
