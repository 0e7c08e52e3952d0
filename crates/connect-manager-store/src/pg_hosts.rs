//! Which PostgreSQL host to use, when `DATABASE_URL` names several (parsed by
//! `crate::pg_url`), and the settings every connection carries (statement timeout, TCP
//! keepalives).
//!
//! [`Hosts::select`] does what libpq's `target_session_attrs` does: it tries the hosts, the one
//! in use first and then the others in the order given, and takes the first that accepts the
//! session (`read-write`: `SHOW transaction_read_only` is `off`; `primary`: not
//! `pg_is_in_recovery()`; `any`: any that answers). The availability watch
//! (`postgres::watch_database`) runs it whenever the host in use stops answering or accepting
//! writes, and points the pool at the host it finds; see `postgres.rs`. Errors name hosts as
//! written in the URL, never the user information.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::watch;

use crate::pg_url::{HostList, SessionAttrs};

/// Settings every PostgreSQL connection carries, sent as run-time parameters at connect (so they
/// hold on every pooled connection, the change feed's and the watch's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `statement_timeout`: PostgreSQL cancels a statement that runs longer (SQLSTATE 57014,
    /// answered 503). Zero: no limit. Migrations run without it.
    pub statement_timeout: Duration,
    /// `tcp_keepalives_idle`, `tcp_keepalives_interval`, `tcp_keepalives_count`: the server's
    /// side of the connection sends keepalive probes after this much silence, this often, and
    /// gives the connection up after this many unanswered. Zero: the operating system's default.
    pub keepalives_idle: Duration,
    pub keepalives_interval: Duration,
    pub keepalives_count: u32,
}

impl ConnectionSettings {
    /// Below the service's 30 s request timeout, so that a stuck statement is cancelled on the
    /// server and answered 503 before the request would time out (and not left running).
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(20);
    pub const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
    pub const DEFAULT_KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
    pub const DEFAULT_KEEPALIVES_COUNT: u32 = 3;

    /// The run-time parameters to send; a zero setting is left out (the server's default).
    fn parameters(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.statement_timeout.is_zero() {
            out.push((
                "statement_timeout",
                format!("{}ms", self.statement_timeout.as_millis()),
            ));
        }
        // tcp_keepalives_* take whole seconds.
        if !self.keepalives_idle.is_zero() {
            out.push((
                "tcp_keepalives_idle",
                format!("{}s", self.keepalives_idle.as_secs().max(1)),
            ));
        }
        if !self.keepalives_interval.is_zero() {
            out.push((
                "tcp_keepalives_interval",
                format!("{}s", self.keepalives_interval.as_secs().max(1)),
            ));
        }
        if self.keepalives_count != 0 {
            out.push(("tcp_keepalives_count", self.keepalives_count.to_string()));
        }
        out
    }
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
            keepalives_idle: Self::DEFAULT_KEEPALIVES_IDLE,
            keepalives_interval: Self::DEFAULT_KEEPALIVES_INTERVAL,
            keepalives_count: Self::DEFAULT_KEEPALIVES_COUNT,
        }
    }
}

/// How long one host may take to connect and answer whether it accepts the session.
pub(crate) const HOST_TIMEOUT: Duration = Duration::from_secs(2);

/// The hosts of a store, the one in use, and when the pool last moved to another.
pub(crate) struct Hosts {
    list: HostList,
    current: AtomicUsize,
    switched_at: Mutex<Option<Instant>>,
    /// Bumped on every switch: the change feed listens again, on the new host.
    switched: watch::Sender<u64>,
}

impl Hosts {
    pub(crate) fn new(mut list: HostList, settings: &ConnectionSettings) -> Hosts {
        let parameters = settings.parameters();
        for host in &mut list.hosts {
            host.options = host.options.clone().options(parameters.clone());
        }
        Hosts {
            list,
            current: AtomicUsize::new(0),
            switched_at: Mutex::new(None),
            switched: watch::channel(0).0,
        }
    }

    pub(crate) fn attrs(&self) -> SessionAttrs {
        self.list.attrs
    }

    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }

    pub(crate) fn options(&self, index: usize) -> &PgConnectOptions {
        &self.list.hosts[index].options
    }

    pub(crate) fn label(&self, index: usize) -> &str {
        &self.list.hosts[index].label
    }

    /// Whether a connection made `age` ago predates the last switch (it may lead to the host
    /// the pool left: it is not used again).
    pub(crate) fn predates_switch(&self, age: Duration) -> bool {
        let switched_at = *self.switched_at.lock().expect("hosts lock");
        switched_at.is_some_and(|at| Instant::now().checked_sub(age).is_none_or(|made| made < at))
    }

    /// Records that `index` is the host in use from now on. Returns whether it changed.
    pub(crate) fn switch_to(&self, index: usize) -> bool {
        if self.current.swap(index, Ordering::SeqCst) == index {
            return false;
        }
        *self.switched_at.lock().expect("hosts lock") = Some(Instant::now());
        self.switched.send_modify(|n| *n += 1);
        true
    }

    pub(crate) fn switches(&self) -> watch::Receiver<u64> {
        self.switched.subscribe()
    }

    /// Whether the connection's host accepts the session `target_session_attrs` asks for.
    /// `Err` when the connection failed; `Ok(Some(why))` when it answered but does not.
    pub(crate) async fn refuses(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Option<&'static str>, sqlx::Error> {
        match self.list.attrs {
            SessionAttrs::Any => conn.ping().await.map(|()| None),
            SessionAttrs::ReadWrite => {
                let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
                    .fetch_one(&mut *conn)
                    .await?;
                Ok((read_only == "on").then_some("read-only"))
            }
            SessionAttrs::Primary => {
                let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut *conn)
                    .await?;
                Ok(standby.then_some("in recovery (a standby)"))
            }
        }
    }

    /// A fresh connection to host `index` that accepts the session, within [`HOST_TIMEOUT`].
    pub(crate) async fn connect(&self, index: usize) -> Result<PgConnection, String> {
        let attempt = async {
            let mut conn = PgConnection::connect_with(self.options(index))
                .await
                .map_err(|e| crate::redact_url(&e.to_string()))?;
            match self.refuses(&mut conn).await {
                Ok(None) => Ok(conn),
                Ok(Some(why)) => {
                    let _ = conn.close().await;
                    Err(why.to_owned())
                }
                Err(e) => Err(crate::redact_url(&e.to_string())),
            }
        };
        match tokio::time::timeout(HOST_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {} s", HOST_TIMEOUT.as_secs())),
        }
    }

    /// The first host that accepts the session: the one in use first, then the others in the
    /// order of the URL. The error says, per host, why not.
    pub(crate) async fn select(&self) -> Result<(usize, PgConnection), String> {
        let current = self.current();
        let order =
            std::iter::once(current).chain((0..self.list.hosts.len()).filter(|&i| i != current));
        let mut why = Vec::new();
        for index in order {
            match self.connect(index).await {
                Ok(conn) => return Ok((index, conn)),
                Err(e) => why.push(format!("{}: {e}", self.label(index))),
            }
        }
        let what = match self.list.attrs {
            SessionAttrs::Any => "no database host answered",
            SessionAttrs::ReadWrite => "no database host accepts writes",
            SessionAttrs::Primary => "no database host is a primary",
        };
        Err(format!("{what} ({})", why.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg_url::parse;

    #[test]
    fn connection_settings_become_run_time_parameters() {
        let params = ConnectionSettings::default().parameters();
        assert_eq!(
            params,
            vec![
                ("statement_timeout", "20000ms".to_owned()),
                ("tcp_keepalives_idle", "30s".to_owned()),
                ("tcp_keepalives_interval", "10s".to_owned()),
                ("tcp_keepalives_count", "3".to_owned()),
            ]
        );
        let off = ConnectionSettings {
            statement_timeout: Duration::ZERO,
            keepalives_idle: Duration::ZERO,
            keepalives_interval: Duration::ZERO,
            keepalives_count: 0,
        };
        assert!(off.parameters().is_empty());
        let list = parse("postgres://u@h1,h2/db?options=-c%20search_path%3Dx").unwrap();
        let hosts = Hosts::new(list, &ConnectionSettings::default());
        let options = hosts
            .options(1)
            .get_options()
            .unwrap_or_default()
            .to_owned();
        assert!(
            options.contains("search_path") && options.contains("statement_timeout=20000ms"),
            "{options}"
        );
    }

    #[test]
    fn a_connection_made_before_a_switch_is_not_reused() {
        let hosts = Hosts::new(
            parse("postgres://u@h1,h2/db").unwrap(),
            &ConnectionSettings::default(),
        );
        assert!(!hosts.predates_switch(Duration::from_secs(3600)));
        assert!(!hosts.switch_to(0), "already in use");
        assert!(hosts.switch_to(1));
        assert_eq!(hosts.current(), 1);
        assert!(hosts.predates_switch(Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!hosts.predates_switch(Duration::from_millis(5)));
    }
}
