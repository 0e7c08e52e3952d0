//! `DATABASE_URL` naming one PostgreSQL host or several (libpq's multi-host form,
//! `postgres://user:pw@h1:5432,[::1]:5433/db?target_session_attrs=read-write`).
//!
//! sqlx's `PgConnectOptions` takes one host, so the host list is split here into one set of
//! options per host, each parsed by sqlx from a one-host URL (so every other parameter means
//! what it means to sqlx). Which of them to use is `crate::pg_hosts`'s business.
//!
//! Nothing here ever puts the password into a message: errors name hosts as written in the URL
//! (`h1:5432`), never the user information.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

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
}
