//! Workload identity's rules (issue 18), below the service: `*` globs ([`glob_match`]), what a
//! trust policy matches ([`TrustPolicyRecord::matches`]), its lifetime ([`parse_ttl`]), and the
//! issuer URLs that may be trusted ([`check_issuer_url`]).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::trust::TrustPolicy;
use crate::{Error, Result, Timestamp};

/// A policy's ttl when none is given: 15 minutes.
pub const DEFAULT_TTL_SECONDS: i64 = 15 * 60;
/// The longest ttl: 24 hours.
pub const MAX_TTL_SECONDS: i64 = 24 * 3600;
/// The longest subject, claim name or claim pattern of a policy, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// The most claims a policy may match.
pub const MAX_CLAIMS: usize = 32;

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none included;
/// `/` and `:` included) and every other character matches itself. No other metacharacter: `?`,
/// `[` and `\` are literal. Linear in practice (greedy with one backtrack point, no recursion).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it is matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` take one more character and try again after it.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The text a claim's value matches as: a string as it is, a number or a boolean as its JSON
/// text (`42`, `true`); anything else (null, an array, an object) matches no pattern.
pub fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A policy's ttl: R7's duration syntax, at most 24 h; omitted, 15 min.
pub fn parse_ttl(ttl: Option<&str>) -> Result<i64> {
    let Some(text) = ttl else {
        return Ok(DEFAULT_TTL_SECONDS);
    };
    let bad = || {
        Error::invalid_field(
            "ttl",
            "must be a sum of <n>s, <n>m, <n>h, <n>d or <n>w terms such as 15m or 1h, \
             greater than zero and at most 24h",
        )
    };
    let seconds = crate::duration::parse_expires_in(text).map_err(|_| bad())?;
    if seconds > MAX_TTL_SECONDS {
        return Err(bad());
    }
    Ok(seconds)
}

/// A subject or claim pattern of a policy: not empty, at most [`MAX_PATTERN_BYTES`], no control
/// character.
pub fn check_pattern(field: &str, pattern: &str) -> Result<()> {
    if pattern.is_empty() {
        return Err(Error::invalid_field(
            field,
            "must not be empty (use * for any)",
        ));
    }
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(Error::invalid_field(
            field,
            format_args!("must be at most {MAX_PATTERN_BYTES} bytes"),
        ));
    }
    if pattern.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// An issuer URL that may be trusted: `https://host[:port][/path]` without query, fragment or
/// credentials; `http://` only to a loopback host (`127.0.0.0/8`, `[::1]`, `localhost`) and only
/// when `allow_insecure` (CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS). Returned as given: tokens are
/// matched on `iss` exactly.
pub fn check_issuer_url(url: &str, allow_insecure: bool) -> Result<()> {
    let bad = |why: &str| Error::invalid_field("issuer", why);
    if url.len() > 512 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(
            "must be a URL of at most 512 characters, without spaces",
        ));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("must be an https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("must name a host, without credentials"));
    }
    if url.contains('?') || url.contains('#') {
        return Err(bad("must not have a query or a fragment"));
    }
    match scheme {
        "https" => Ok(()),
        "http" if allow_insecure && is_loopback_authority(authority) => Ok(()),
        "http" => Err(bad(
            "must be https:// (http:// only to a loopback address with \
             CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS=true)",
        )),
        _ => Err(bad("must be an https:// URL")),
    }
}

/// Whether `host[:port]` names this machine.
pub fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A trust policy as stored: its scope as `(vault ID, access bits)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPolicyRecord {
    pub id: String,
    pub name: String,
    pub server_id: String,
    pub issuer_id: String,
    /// The issuer URL.
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    pub claims: BTreeMap<String, String>,
    pub vaults: Vec<(String, i64)>,
    pub ttl_seconds: i64,
    pub created_at: Timestamp,
    pub creator_id: String,
}

/// Why a policy did not match a token, for the refusal's description: names the claim, never
/// its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Audience,
    Subject,
    Claim(String),
}

impl TrustPolicyRecord {
    /// Whether the subject token's (already verified) claims pass this policy: `aud` contains
    /// the audience, `sub` matches the subject pattern, and every claim pattern matches.
    pub fn matches(
        &self,
        claims: &serde_json::Map<String, Value>,
    ) -> std::result::Result<(), Mismatch> {
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(Mismatch::Audience);
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !glob_match(&self.subject, sub) {
            return Err(Mismatch::Subject);
        }
        for (name, pattern) in &self.claims {
            let ok = claims
                .get(name)
                .and_then(claim_text)
                .is_some_and(|text| glob_match(pattern, &text));
            if !ok {
                return Err(Mismatch::Claim(name.clone()));
            }
        }
        Ok(())
    }

    pub fn view(&self) -> TrustPolicy {
        TrustPolicy {
            id: self.id.clone(),
            name: self.name.clone(),
            server_id: self.server_id.clone(),
            issuer_id: self.issuer_id.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            subject: self.subject.clone(),
            claims: self.claims.clone(),
            vaults: self
                .vaults
                .iter()
                .map(|(vault, bits)| crate::access::VaultAcl {
                    id: vault.clone(),
                    acl: crate::access::acl(*bits),
                })
                .collect(),
            ttl_seconds: self.ttl_seconds,
            created_at: self.created_at,
            creator_id: self.creator_id.clone(),
        }
    }
}

impl crate::lookup::Named for TrustPolicyRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl crate::page::Keyed for TrustPolicyRecord {
    fn cursor(&self) -> crate::page::Cursor {
        crate::page::Cursor {
            created_at: self.created_at.micros(),
            id: self.id.clone(),
        }
    }
}

impl crate::page::Keyed for crate::api::trust::Issuer {
    fn cursor(&self) -> crate::page::Cursor {
        crate::page::Cursor {
            created_at: self.created_at.micros(),
            id: self.id.clone(),
        }
    }
}

impl crate::lookup::Named for crate::api::trust::Issuer {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn glob_exact_patterns_match_only_themselves() {
        assert!(glob_match(
            "repo:acme/api:ref:refs/heads/main",
            "repo:acme/api:ref:refs/heads/main"
        ));
        assert!(!glob_match(
            "repo:acme/api:ref:refs/heads/main",
            "repo:acme/api:ref:refs/heads/mainx"
        ));
        assert!(!glob_match("repo:acme/api", "repo:acme/ap"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
    }

    #[test]
    fn glob_star_matches_any_run_including_colon_and_slash() {
        assert!(glob_match(
            "repo:acme/*",
            "repo:acme/api:ref:refs/heads/main"
        ));
        assert!(glob_match(
            "repo:acme/api:ref:refs/heads/*",
            "repo:acme/api:ref:refs/heads/feature/x"
        ));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything:at/all"));
        assert!(glob_match(
            "repo:*:environment:production",
            "repo:acme/api:environment:production"
        ));
        assert!(!glob_match(
            "repo:*:environment:production",
            "repo:acme/api:environment:staging"
        ));
        assert!(glob_match("a*b*c", "aXXbYYbZZc"));
        assert!(!glob_match("a*b*c", "aXXbYYbZZ"));
        assert!(glob_match("**", "x"));
        assert!(glob_match("*main", "refs/heads/main"));
        assert!(!glob_match("*main", "refs/heads/main2"));
    }

    #[test]
    fn glob_has_no_other_metacharacters() {
        assert!(!glob_match("a?c", "abc"));
        assert!(glob_match("a?c", "a?c"));
        assert!(!glob_match("[ab]", "a"));
        assert!(glob_match("[ab]", "[ab]"));
        assert!(!glob_match(r"a\*", "ab"));
        assert!(glob_match(r"a\*", r"a\b"));
        assert!(!glob_match("a.c", "abc"));
    }

    #[test]
    fn glob_is_fast_on_adversarial_patterns() {
        let text = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        let start = std::time::Instant::now();
        assert!(!glob_match(&pattern, &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    fn policy() -> TrustPolicyRecord {
        TrustPolicyRecord {
            id: "p".into(),
            name: "deploy".into(),
            server_id: "S".into(),
            issuer_id: "i".into(),
            issuer: "https://issuer.example".into(),
            audience: "connect-manager".into(),
            subject: "repo:acme/api:*".into(),
            claims: BTreeMap::from([
                ("environment".into(), "production".into()),
                ("run_attempt".into(), "1".into()),
            ]),
            vaults: vec![],
            ttl_seconds: 900,
            created_at: Timestamp(0),
            creator_id: "U".into(),
        }
    }

    fn claims(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn policy_matches_audience_subject_and_claims() {
        let ok = json!({"aud": ["x", "connect-manager"], "sub": "repo:acme/api:environment:production",
            "environment": "production", "run_attempt": 1});
        assert_eq!(policy().matches(&claims(ok.clone())), Ok(()));
        let mut one_aud = ok.clone();
        one_aud["aud"] = json!("connect-manager");
        assert_eq!(policy().matches(&claims(one_aud)), Ok(()));
        let mut bad_aud = ok.clone();
        bad_aud["aud"] = json!("other");
        assert_eq!(policy().matches(&claims(bad_aud)), Err(Mismatch::Audience));
        let mut bad_sub = ok.clone();
        bad_sub["sub"] = json!("repo:evil/api:x");
        assert_eq!(policy().matches(&claims(bad_sub)), Err(Mismatch::Subject));
        let mut bad_claim = ok.clone();
        bad_claim["environment"] = json!("staging");
        assert_eq!(
            policy().matches(&claims(bad_claim)),
            Err(Mismatch::Claim("environment".into()))
        );
    }

    #[test]
    fn policy_claims_match_numbers_and_booleans_as_text_never_objects_or_missing() {
        let base = json!({"aud": "connect-manager", "sub": "repo:acme/api:x", "environment": "production"});
        for (value, ok) in [
            (json!(1), true),
            (json!("1"), true),
            (json!(2), false),
            (json!(true), false),
            (json!(null), false),
            (json!(["1"]), false),
            (json!({"a": "1"}), false),
        ] {
            let mut c = base.clone();
            c["run_attempt"] = value.clone();
            assert_eq!(policy().matches(&claims(c)).is_ok(), ok, "{value}");
        }
        assert_eq!(
            policy().matches(&claims(base)),
            Err(Mismatch::Claim("run_attempt".into()))
        );
        let mut p = policy();
        p.claims = BTreeMap::from([("flag".into(), "true".into())]);
        let c = json!({"aud": "connect-manager", "sub": "repo:acme/api:x", "flag": true});
        assert_eq!(p.matches(&claims(c)), Ok(()));
    }

    #[test]
    fn ttl_defaults_to_15_minutes_and_is_at_most_24_hours() {
        assert_eq!(parse_ttl(None).unwrap(), 900);
        assert_eq!(parse_ttl(Some("1h")).unwrap(), 3600);
        assert_eq!(parse_ttl(Some("24h")).unwrap(), 86_400);
        for bad in ["24h1s", "2d", "0m", "", "15 minutes"] {
            let err = parse_ttl(Some(bad)).unwrap_err().to_string();
            assert!(err.starts_with("ttl:"), "{bad}: {err}");
        }
    }

    #[test]
    fn issuer_urls_are_https_or_loopback_http_when_allowed() {
        assert!(check_issuer_url("https://token.actions.githubusercontent.com", false).is_ok());
        assert!(check_issuer_url("https://gitlab.example.com/path", false).is_ok());
        assert!(check_issuer_url("http://127.0.0.1:8080", false).is_err());
        assert!(check_issuer_url("http://127.0.0.1:8080", true).is_ok());
        assert!(check_issuer_url("http://[::1]:8080", true).is_ok());
        assert!(check_issuer_url("http://localhost:9", true).is_ok());
        assert!(check_issuer_url("http://example.com", true).is_err());
        assert!(check_issuer_url("http://127.0.0.1.example.com", true).is_err());
        assert!(check_issuer_url("ftp://example.com", true).is_err());
        assert!(check_issuer_url("https://user:pw@example.com", false).is_err());
        assert!(check_issuer_url("https://example.com/?q", false).is_err());
        assert!(check_issuer_url("https://", false).is_err());
    }
}
