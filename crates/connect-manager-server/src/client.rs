//! Who the client is: the one address the failed-authentication limiter, the audit trail's
//! `client_ip` and the request logs all use (issue 12, item 3).
//!
//! By default the client is the TCP peer. Behind a reverse proxy every client would then share the
//! proxy's address (one client's failures would lock everyone out), so the operator names the
//! proxies in `CONNECT_MANAGER_TRUSTED_PROXIES`. Only a request whose TCP peer is one of them has its
//! forwarding header read, and in it only the entries those proxies appended count: walking it from
//! the right, the client is the first address that is not a trusted proxy. Anything left of that
//! was written by the client and is ignored, so nobody can spoof their way out of the limit.
//!
//! Exactly one forwarding header is read (`CONNECT_MANAGER_FORWARDED_HEADER`): a proxy appends to
//! one of `X-Forwarded-For` and `Forwarded` and passes the other through from the client
//! unchanged, so reading both would let a client write the entry that is read.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use clap::ValueEnum;
use ipnet::IpNet;

/// The forwarding header trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, Traefik, Caddy, Envoy).
    #[default]
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    #[value(name = "forwarded")]
    Forwarded,
}

/// The proxies whose forwarding header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Parses a comma-separated list of CIDRs (`10.0.0.0/8, 2001:db8::/32`; a bare address is
    /// that one address). Empty: no proxy is trusted.
    pub fn parse(list: &str, header: ForwardedHeader) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = IpNet::from_str(item)
                .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                .map_err(|_| {
                    format!("'{item}' is not a CIDR like 10.0.0.0/8 or fd00::/8, nor an address")
                })?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies { nets, header })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut hop = peer.to_canonical();
        if !self.trusts(hop) {
            return hop;
        }
        // Entries appended by the hops nearest us are on the right: walk from there while each hop
        // is a trusted proxy; the first one that is not is the client.
        let chain = match self.header {
            ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
            ForwardedHeader::Forwarded => forwarded_for(headers),
        };
        for entry in chain.into_iter().rev() {
            // An entry a trusted proxy could not fill in ("unknown", an obfuscated name): the
            // proxy that wrote it is the last address known.
            let Some(ip) = entry else {
                return hop;
            };
            hop = ip.to_canonical();
            if !self.trusts(hop) {
                return hop;
            }
        }
        hop
    }
}

/// `X-Forwarded-For` entries in order (every header line, comma-separated).
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("unknown")
                .split(',')
                .map(|s| parse_node(s.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// RFC 7239 `Forwarded` elements' `for=` values in order.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("for=unknown")
                .split(',')
                .map(|element| {
                    element
                        .split(';')
                        .filter_map(|pair| pair.trim().split_once('='))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                        .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A node: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(s) {
        return Some(ip);
    }
    if let Ok(addr) = SocketAddr::from_str(s) {
        return Some(addr.ip());
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    IpAddr::from_str(inner).ok()
}

/// The client of the request, set once by [`layer`] for everything after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The client of a request (the TCP peer when [`layer`] did not run, as in unit tests).
    pub fn of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
        extensions.get::<ClientAddr>().map(|c| c.0).or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_canonical())
        })
    }

    pub fn of_parts(parts: &Parts) -> Option<IpAddr> {
        ClientAddr::of(&parts.extensions)
    }

    /// As text, for audit events and logs ("" when unknown).
    pub fn text(extensions: &axum::http::Extensions) -> String {
        ClientAddr::of(extensions)
            .map(|ip| ip.to_string())
            .unwrap_or_default()
    }
}

/// Resolves the client once per request (outermost layer, so the request span has it).
pub async fn layer(
    axum::extract::State(trusted): axum::extract::State<std::sync::Arc<TrustedProxies>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    {
        let client = trusted.client(peer, req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_are_read_only_from_trusted_proxies_and_only_their_entries() {
        let none = TrustedProxies::default();
        let xff = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(none.client(ip("10.0.0.5"), &xff), ip("10.0.0.5"));

        let proxies =
            TrustedProxies::parse("10.0.0.0/8, 192.168.1.1", ForwardedHeader::default()).unwrap();
        // Not from a proxy: the peer, whatever it claims.
        assert_eq!(proxies.client(ip("203.0.113.9"), &xff), ip("203.0.113.9"));
        // From a proxy: the right-most untrusted entry; what the client wrote left of it is ignored.
        assert_eq!(proxies.client(ip("10.0.0.5"), &xff), ip("203.0.113.7"));
        let two_hops = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.7, 192.168.1.1"),
        ]);
        assert_eq!(proxies.client(ip("10.0.0.5"), &two_hops), ip("203.0.113.7"));
        // No header, or only proxies in it: the left-most proxy.
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &headers(&[])),
            ip("10.0.0.5")
        );
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &headers(&[("x-forwarded-for", "10.1.1.1")])),
            ip("10.1.1.1")
        );
        // Garbage a client wrote left of the proxy's entry never matters; garbage in the proxy's
        // own place stops at the proxy.
        assert_eq!(
            proxies.client(
                ip("10.0.0.5"),
                &headers(&[("x-forwarded-for", "bogus, 203.0.113.7")])
            ),
            ip("203.0.113.7")
        );
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &headers(&[("x-forwarded-for", "unknown")])),
            ip("10.0.0.5")
        );
        // The other header is not read.
        let fwd = headers(&[("forwarded", "for=198.51.100.1")]);
        assert_eq!(proxies.client(ip("10.0.0.5"), &fwd), ip("10.0.0.5"));
        // IPv4-mapped peers are their IPv4 address.
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.5"), &xff),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn rfc7239_forwarded_for_values_are_parsed() {
        let proxies = TrustedProxies::parse("10.0.0.0/8", ForwardedHeader::Forwarded).unwrap();
        let h = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, For=10.2.2.2;by=10.0.0.5"#,
        )]);
        assert_eq!(proxies.client(ip("10.0.0.5"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "proto=https;for=\"203.0.113.4:80\"")]);
        assert_eq!(proxies.client(ip("10.0.0.5"), &h), ip("203.0.113.4"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(proxies.client(ip("10.0.0.5"), &h), ip("10.0.0.5"));
    }

    #[test]
    fn a_bad_cidr_is_refused() {
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "fd00::/129"] {
            assert!(
                TrustedProxies::parse(bad, ForwardedHeader::default()).is_err(),
                "{bad}"
            );
        }
        let ok = TrustedProxies::parse(
            " 10.0.0.1/8 ,fd00::/8,127.0.0.1",
            ForwardedHeader::default(),
        )
        .unwrap();
        assert_eq!(ok.nets.len(), 3);
        assert!(ok.trusts(ip("10.200.0.1")));
        assert!(
            TrustedProxies::parse("", ForwardedHeader::default())
                .unwrap()
                .is_empty()
        );
    }
}
