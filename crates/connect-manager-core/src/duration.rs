//! R7: `--expires-in` is a sum of `<n>s|m|h|d|w` terms (`1w2d`, `90m`). Zero, negative,
//! malformed or absurdly long is refused with what is allowed. Every other duration a caller
//! gives (the token list's `expiring_within` and `unused_for`, …) takes the same syntax.

use crate::{Error, Result};

/// The longest expiry accepted: ten years.
pub const MAX_SECONDS: i64 = 10 * 365 * 24 * 3600;

const ALLOWED: &str = "a sum of <n>s, <n>m, <n>h, <n>d or <n>w terms such as 90m or 1w2d, \
                       greater than zero and at most 10 years";

/// Parses an expiry into seconds.
pub fn parse_expires_in(text: &str) -> Result<i64> {
    parse_duration("expires_in", text)
}

/// Parses a duration given in `field` into seconds; an error names the field.
pub fn parse_duration(field: &str, text: &str) -> Result<i64> {
    let bad = || Error::invalid_field(field, format_args!("must be {ALLOWED}"));
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            if digits.len() > 12 {
                return Err(bad());
            }
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total <= 0 || total > MAX_SECONDS {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r7_expires_in_sums_terms() {
        assert_eq!(parse_expires_in("90m").unwrap(), 5400);
        assert_eq!(parse_expires_in("1w2d").unwrap(), 9 * 86_400);
        assert_eq!(parse_expires_in("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_expires_in("1h30m15s").unwrap(), 5415);
        for bad in [
            "",
            "0",
            "0s",
            "-5m",
            "5x",
            "99999999w",
            "5",
            "m",
            "1.5h",
            "1 h",
            "1h-1m",
        ] {
            assert!(parse_expires_in(bad).is_err(), "{bad:?} accepted");
        }
    }
}
