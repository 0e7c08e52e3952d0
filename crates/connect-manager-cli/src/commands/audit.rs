//! `audit list` (owners, A5): `GET /v1/audit/events` with the API's filters, and `--follow`,
//! which polls for new events and prints them as they come, oldest first, until interrupted.

use std::collections::HashSet;
use std::time::Duration;

use clap::Subcommand;
use connect_manager_core::api::audit::AuditParams;
use connect_manager_core::audit::AuditEvent;
use serde_json::Value;

use crate::client::{Client, enc};
use crate::output::{Output, Render, Style};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first: every change and every denied attempt (owners).
    #[command(visible_alias = "ls")]
    List {
        /// Only this action (`server.create`, `vault.grant`, …).
        #[arg(long)]
        action: Option<String>,
        /// Only events of this actor (a user ID).
        #[arg(long)]
        actor: Option<String>,
        /// Only events about this target ID.
        #[arg(long)]
        target: Option<String>,
        /// Only events at or after this time (RFC 3339).
        #[arg(long, value_name = "RFC3339")]
        since: Option<String>,
        /// Only events before this time (RFC 3339).
        #[arg(long, value_name = "RFC3339", conflicts_with = "follow")]
        until: Option<String>,
        /// At most this many events, the newest (with --follow: those shown first; default 10).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Keep going: print new events as they come, oldest first, until interrupted (JSON:
        /// one object a line).
        #[arg(long)]
        follow: bool,
        /// With --follow: seconds between two looks for new events.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..), requires = "follow")]
        interval: u64,
    },
}

impl Render for AuditEvent {
    const COLUMNS: &'static [&'static str] = &["At", "Actor", "Action", "Target", "Outcome"];

    fn row(&self, style: &Style) -> Vec<String> {
        vec![
            style.time(self.at),
            self.actor_id.clone(),
            self.action.clone(),
            format!("{} {}", self.target_type, self.target_id),
            self.outcome.clone(),
        ]
    }

    fn fields(&self, style: &Style) -> Vec<(&'static str, String)> {
        vec![
            ("ID", self.id.clone()),
            ("At", style.time(self.at)),
            ("Actor", self.actor_id.clone()),
            ("Action", self.action.clone()),
            ("Target type", self.target_type.clone()),
            ("Target", self.target_id.clone()),
            ("Outcome", self.outcome.clone()),
            ("Request", self.request_id.clone()),
            ("Client IP", self.client_ip.clone()),
        ]
    }
}

pub async fn run(client: &Client, out: Output, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        action,
        actor,
        target,
        since,
        until,
        limit,
        follow,
        interval,
    } = command;
    let mut params = AuditParams {
        action,
        actor,
        target,
        since,
        until,
        ..AuditParams::default()
    };
    if !follow {
        let max = limit.map(|l| l as usize);
        let events: Vec<AuditEvent> = client.list_up_to(&events_path(&params)?, max).await?;
        return out.list(events);
    }
    // The newest few first, oldest first; then whatever comes at or after the last one seen.
    let max = limit.map_or(10, |l| l as usize);
    let mut first: Vec<AuditEvent> = client.list_up_to(&events_path(&params)?, Some(max)).await?;
    first.reverse();
    out.more(&first, true)?;
    let mut seen: HashSet<String> = first.iter().map(|e| e.id.clone()).collect();
    let mut last = first.last().map(|e| e.at);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        if let Some(at) = last {
            params.since = Some(at.to_rfc3339());
        }
        let mut new: Vec<AuditEvent> = client.list_all(&events_path(&params)?).await?;
        new.retain(|e| !seen.contains(&e.id));
        new.reverse();
        if new.is_empty() {
            continue;
        }
        out.more(&new, false)?;
        last = new.last().map(|e| e.at).or(last);
        seen.extend(new.into_iter().map(|e| e.id));
    }
}

/// `/v1/audit/events` with the filters of `params` in its query (paging is the client's).
fn events_path(params: &AuditParams) -> anyhow::Result<String> {
    let Value::Object(fields) = serde_json::to_value(params)? else {
        anyhow::bail!("audit parameters are not an object");
    };
    let query: Vec<String> = fields
        .into_iter()
        .filter(|(k, _)| k != "limit" && k != "cursor")
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some(format!("{k}={}", enc(&s))),
            _ => None,
        })
        .collect();
    Ok(if query.is_empty() {
        "/v1/audit/events".into()
    } else {
        format!("/v1/audit/events?{}", query.join("&"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_go_in_the_query_encoded() {
        let params = AuditParams {
            action: Some("server.create".into()),
            since: Some("2026-12-03T17:00:00+01:00".into()),
            ..AuditParams::default()
        };
        assert_eq!(
            events_path(&params).unwrap(),
            "/v1/audit/events?action=server.create&since=2026-12-03T17%3A00%3A00%2B01%3A00"
        );
        assert_eq!(
            events_path(&AuditParams::default()).unwrap(),
            "/v1/audit/events"
        );
    }
}
