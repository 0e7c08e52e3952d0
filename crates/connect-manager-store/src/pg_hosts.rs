//! Which PostgreSQL host to use, when `DATABASE_URL` names several (libpq's multi-host form,
//! `postgres://user:pw@h1:5432,h2:5433/db?target_session_attrs=read-write`), and the settings
//! every connection carries (statement timeout, TCP keepalives).
//!
//! sqlx's `PgConnectOptions` takes one host, so the host list is split here into one set of
//! options per host, each parsed by sqlx from a one-host URL (so every other parameter means
//! what it means to sqlx). [`Hosts::select`] then does what libpq's `target_session_attrs` does:
//! it tries the hosts, the one in use first and then the others in the order given, and takes
//! the first that accepts the session (`read-write`: `SHOW transaction_read_only` is `off`;
//! `primary`: not `pg_is_in_recovery()`; `any`: any that answers). The availability watch
//! (`postgres::watch_database`) runs it whenever the host in use stops answering or accepting
//! writes, and points the pool at the host it finds; see `postgres.rs`.
//!
//! Nothing here ever puts the password into a message: errors name hosts as written in the URL
//! (`h1:5432`), never the user information.

use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::watch;

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

/// libpq's `target_session_attrs`, as far as a service that writes can use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionAttrs {
    /// Any host that answers (libpq's default; the default here for a single host).
    Any,
    /// `SHOW transaction_read_only` is `off` (the default here when several hosts are named).
    ReadWrite,
    /// Not in recovery (`pg_is_in_recovery()` is false).
    Primary,
}

/// One host of the list: how it is named in the URL (for logs) and how to connect to it.
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub label: String,
    pub options: PgConnectOptions,
}

/// A parsed `DATABASE_URL`.
#[derive(Debug, Clone)]
pub(crate) struct HostList {
    pub hosts: Vec<Host>,
    pub attrs: SessionAttrs,
}

/// Parses a `postgres://` URL naming one host or several. The error is one line fit for a log:
/// it never contains the password.
pub(crate) fn parse(url: &str) -> Result<HostList, String> {
    let bad = |why: &str| format!("DATABASE_URL: {why}");
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "postgres" | "postgresql"))
        .ok_or_else(|| bad("not a postgres:// URL"))?;
    // The authority ends at the first '/', '?' or '#' (as for sqlx's URL parser, so a password
    // holding one of them must be percent-encoded); user information ends at its last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_list) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let (path, query, fragment) = split_tail(tail);
    let mut attrs = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key).as_str() {
            "target_session_attrs" => {
                attrs = Some(match decode(value).as_str() {
                    "any" => SessionAttrs::Any,
                    "read-write" => SessionAttrs::ReadWrite,
                    "primary" => SessionAttrs::Primary,
                    other => {
                        return Err(bad(&format!(
                            "target_session_attrs={other} is not supported: the service writes, \
                             use read-write (the default with several hosts), primary or any"
                        )));
                    }
                })
            }
            "host" | "hostaddr" | "port" if host_list.contains(',') => {
                return Err(bad(
                    "with several hosts, name each as host:port in the URL, not in host=, \
                     hostaddr= or port= parameters",
                ));
            }
            _ => kept.push(pair),
        }
    }
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    let entries: Vec<&str> = host_list.split(',').collect();
    let several = entries.len() > 1;
    let mut hosts = Vec::with_capacity(entries.len());
    for entry in entries {
        if several {
            check_host_entry(entry).map_err(|why| bad(&why))?;
        }
        let one = format!("{scheme}://{userinfo}{entry}{path}{query}{fragment}");
        let mut options = PgConnectOptions::from_str(&one).map_err(|e| {
            // sqlx's messages do not quote the URL; redact anyway, in case one ever does.
            bad(&format!(
                "host '{entry}': {}",
                crate::redact_url(&e.to_string())
            ))
        })?;
        // sqlx keeps an IPv6 host's brackets, which the connect then resolves as a name.
        if let Some(v6) = options
            .get_host()
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
        {
            let v6 = v6.to_owned();
            options = options.host(&v6);
        }
        hosts.push(Host {
            label: if entry.is_empty() {
                "(default host)".into()
            } else {
                entry.to_owned()
            },
            options,
        });
    }
    let attrs = attrs.unwrap_or(if several {
        SessionAttrs::ReadWrite
    } else {
        SessionAttrs::Any
    });
    Ok(HostList { hosts, attrs })
}

/// `(path, query without '?', "#fragment")` of what follows the authority.
fn split_tail(tail: &str) -> (&str, &str, &str) {
    let (before_fragment, fragment) = match tail.find('#') {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => (path, query, fragment),
        None => (before_fragment, "", fragment),
    }
}

fn decode(s: &str) -> String {
    // The few keys and values read here are plain ASCII; '+' is not a space in libpq URLs.
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// One entry of a host list: `name`, `name:port`, `[v6]` or `[v6]:port`.
fn check_host_entry(entry: &str) -> Result<(), String> {
    let port = if let Some(rest) = entry.strip_prefix('[') {
        let (addr, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("host '{entry}': an IPv6 address needs its closing ']'"))?;
        addr.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("host '{entry}': '{addr}' is not an IPv6 address"))?;
        match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| {
                format!("host '{entry}': expected ':port' after the IPv6 address")
            })?),
        }
    } else {
        let (name, port) = match entry.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (entry, None),
        };
        if name.is_empty() {
            return Err("a host in the list is empty".into());
        }
        if port.is_some_and(|p| p.contains(':')) {
            return Err(format!(
                "host '{entry}': an IPv6 address goes in brackets, as [::1]:5432"
            ));
        }
        port
    };
    match port {
        Some(p) if p.parse::<u16>().map_or(true, |p| p == 0) => {
            Err(format!("host '{entry}': '{p}' is not a port number"))
        }
        _ => Ok(()),
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
    use sqlx::ConnectOptions;

    fn hosts(url: &str) -> Vec<(String, String, u16)> {
        parse(url)
            .unwrap()
            .hosts
            .into_iter()
            .map(|h| {
                (
                    h.label,
                    h.options.get_host().to_owned(),
                    h.options.get_port(),
                )
            })
            .collect()
    }

    #[test]
    fn a_multi_host_url_gives_each_host_its_port_and_the_rest_of_the_url() {
        let list = parse(
            "postgres://app:pw@db1:5432,db2:5433,db3/cm?sslmode=disable&target_session_attrs=read-write&application_name=x",
        )
        .unwrap();
        assert_eq!(list.attrs, SessionAttrs::ReadWrite);
        let got: Vec<_> = list
            .hosts
            .iter()
            .map(|h| {
                (
                    h.label.as_str(),
                    h.options.get_host(),
                    h.options.get_port(),
                    h.options.get_username(),
                    h.options.get_database(),
                    h.options.get_application_name(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("db1:5432", "db1", 5432, "app", Some("cm"), Some("x")),
                ("db2:5433", "db2", 5433, "app", Some("cm"), Some("x")),
                ("db3", "db3", 5432, "app", Some("cm"), Some("x")),
            ]
        );
    }

    #[test]
    fn ipv6_hosts_in_brackets_with_and_without_ports() {
        assert_eq!(
            hosts("postgres://u@[::1]:5433,[fd00::2],10.0.0.3:6000/db"),
            vec![
                ("[::1]:5433".into(), "::1".into(), 5433),
                ("[fd00::2]".into(), "fd00::2".into(), 5432),
                ("10.0.0.3:6000".into(), "10.0.0.3".into(), 6000),
            ]
        );
        for bad in [
            "postgres://u@::1:5432,h2/db",
            "postgres://u@[::1:5432,h2/db",
            "postgres://u@[nonsense]:5432,h2/db",
            "postgres://u@[::1]5432,h2/db",
        ] {
            assert!(parse(bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn passwords_with_special_characters_reach_every_host_decoded() {
        // '@', ':', '/', '?', '#', '%', ',' and a space, percent-encoded; '@' and ':' also bare.
        let list = parse(
            "postgres://app:p%40ss%3Aw%2Fr%3Fd%23%25%2C%20x@h1:5432,h2:5433/cm?target_session_attrs=read-write",
        )
        .unwrap();
        for h in &list.hosts {
            let url = h.options.to_url_lossy().to_string();
            assert!(url.contains("p%40ss%3Aw%2Fr%3Fd%23%25%2C%20x"), "{url}");
        }
        let list = parse("postgres://app:a:b@c@h1,h2/cm").unwrap();
        assert_eq!(list.hosts.len(), 2);
        assert_eq!(list.hosts[1].options.get_host(), "h2");
        assert_eq!(list.hosts[1].options.get_username(), "app");
    }

    #[test]
    fn a_single_host_keeps_libpq_s_default_and_several_default_to_read_write() {
        assert_eq!(parse("postgres://u@h/db").unwrap().attrs, SessionAttrs::Any);
        assert_eq!(
            parse("postgres://u@h1,h2/db").unwrap().attrs,
            SessionAttrs::ReadWrite
        );
        assert_eq!(
            parse("postgresql://u@h1,h2/db?target_session_attrs=primary")
                .unwrap()
                .attrs,
            SessionAttrs::Primary
        );
        assert_eq!(
            parse("postgres://u@h1,h2/db?target_session_attrs=any")
                .unwrap()
                .attrs,
            SessionAttrs::Any
        );
        // A single host may still come from host= (a Unix socket directory).
        assert_eq!(
            parse("postgres:///db?host=/run/postgresql&user=u")
                .unwrap()
                .hosts[0]
                .options
                .get_socket()
                .map(|p| p.display().to_string()),
            Some("/run/postgresql".into())
        );
    }

    #[test]
    fn what_cannot_work_is_refused_without_the_password() {
        for (url, says) in [
            (
                "postgres://u:hunter2@h1,h2/db?target_session_attrs=standby",
                "target_session_attrs=standby",
            ),
            (
                "postgres://u:hunter2@h1,h2/db?target_session_attrs=read-only",
                "read-only",
            ),
            ("postgres://u:hunter2@h1,,h2/db", "empty"),
            (
                "postgres://u:hunter2@h1:99999,h2/db",
                "'99999' is not a port",
            ),
            ("postgres://u:hunter2@h1:0,h2/db", "'0' is not a port"),
            ("postgres://u:hunter2@h1,h2/db?port=5", "host:port"),
            ("postgres://u:hunter2@h1,h2/db?sslmode=bogus", "host 'h1'"),
            ("mysql://u:hunter2@h1,h2/db", "postgres://"),
        ] {
            let e = parse(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: the password leaked: {e}");
            assert!(e.starts_with("DATABASE_URL: "), "{e}");
        }
    }

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
