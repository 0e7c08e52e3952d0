//! R2: names are trimmed, 1–255 characters, without control characters (Cc) and without format
//! characters (Cf: bidi overrides and isolates, zero-width space and joiners, the BOM, the soft
//! hyphen, tags, …), which are invisible or reorder text: `admin` and `admin` + U+200B would
//! look alike but be two names. Uniqueness is case-insensitive: the store compares [`name_key`]s, computed here so both backends agree.
//! Email addresses (users) are validated here too. [`Name`] and [`Email`] describe both rules to
//! the API description exactly, so that what it calls valid is what [`validate`] and
//! [`validate_email`] accept.

use crate::{Error, Result};

pub const MAX_NAME_CHARS: usize = 255;
/// The most characters of an email address before its `@`, and after it.
pub const MAX_EMAIL_LOCAL_CHARS: usize = 64;
pub const MAX_EMAIL_DOMAIN_CHARS: usize = 189;

/// Unicode's general category Cf (format characters), as of Unicode 16.0: the ranges of
/// `DerivedGeneralCategory.txt`. A test checks this table against the `\p{Cf}` of the Unicode
/// tables the `regex-syntax` crate carries.
pub const FORMAT_CHARS: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),   // soft hyphen
    ('\u{0600}', '\u{0605}'),   // Arabic number signs
    ('\u{061C}', '\u{061C}'),   // Arabic letter mark
    ('\u{06DD}', '\u{06DD}'),   // Arabic end of ayah
    ('\u{070F}', '\u{070F}'),   // Syriac abbreviation mark
    ('\u{0890}', '\u{0891}'),   // Arabic pound and piastre marks above
    ('\u{08E2}', '\u{08E2}'),   // Arabic disputed end of ayah
    ('\u{180E}', '\u{180E}'),   // Mongolian vowel separator
    ('\u{200B}', '\u{200F}'),   // zero-width space, ZWNJ, ZWJ, LRM, RLM
    ('\u{202A}', '\u{202E}'),   // bidi embeddings and overrides
    ('\u{2060}', '\u{2064}'),   // word joiner, invisible operators
    ('\u{2066}', '\u{206F}'),   // bidi isolates, deprecated format characters
    ('\u{FEFF}', '\u{FEFF}'),   // zero-width no-break space (BOM)
    ('\u{FFF9}', '\u{FFFB}'),   // interlinear annotation
    ('\u{110BD}', '\u{110BD}'), // Kaithi number sign
    ('\u{110CD}', '\u{110CD}'), // Kaithi number sign above
    ('\u{13430}', '\u{1343F}'), // Egyptian hieroglyph format controls
    ('\u{1BCA0}', '\u{1BCA3}'), // shorthand format controls
    ('\u{1D173}', '\u{1D17A}'), // musical symbol format controls
    ('\u{E0001}', '\u{E0001}'), // language tag
    ('\u{E0020}', '\u{E007F}'), // tag characters
];

/// Whether `c` is a format character (general category Cf).
pub fn is_format(c: char) -> bool {
    FORMAT_CHARS
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Neither a control nor a format character: what a name may hold (R2).
fn allowed(c: char) -> bool {
    !c.is_control() && !is_format(c)
}

/// The format characters as the inside of a regular expression class: `\uXXXX` escapes for the
/// basic plane, the characters themselves beyond it (neither ECMAScript without the `u` flag nor
/// Python knows an escape for those that the other reads the same).
fn format_class() -> String {
    let one = |c: char| {
        if (c as u32) <= 0xFFFF {
            format!("\\u{:04X}", c as u32)
        } else {
            c.to_string()
        }
    };
    FORMAT_CHARS
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                one(lo)
            } else {
                format!("{}-{}", one(lo), one(hi))
            }
        })
        .collect()
}

/// What `str::trim` removes (Unicode White_Space), as a regular expression class.
const TRIMMED: &str = r"[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// Neither a control character (`char::is_control`: Cc) nor whitespace (a format character is
/// excluded where this is used).
const VISIBLE: &str = r"\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Control characters.
const CONTROL: &str = r"\x00-\x1F\x7F-\x9F";
/// `@`, control characters and whitespace: what an email address's parts may not hold (nor a
/// format character).
const NOT_EMAIL: &str = r"@\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A valid name (R2): trimmed, 1–255 characters, no control or format characters. The only way
/// to make one is [`Name::parse`], so a store method that takes a `&Name` never sees a bad one.
/// Its schema (a request's `name` field) is what `parse` accepts, as a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    /// Validates and normalises a name (R2). `field` names the field in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Name> {
        validate(field, raw).map(Name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key two names are compared by (R2's case-insensitive uniqueness, R1's lookup).
    pub fn key(&self) -> String {
        name_key(&self.0)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl utoipa::PartialSchema for Name {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let inner = MAX_NAME_CHARS - 2;
        let format = format_class();
        let visible = format!("[^{VISIBLE}{format}]");
        let allowed = format!("[^{CONTROL}{format}]");
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^{TRIMMED}*{visible}(?:{allowed}{{0,{inner}}}{visible})?{TRIMMED}*$"
            )))
            .description(Some(
                "A name (R2): trimmed of surrounding whitespace, then 1–255 characters without \
                 control characters or format characters (Unicode category Cf: bidi controls, \
                 zero-width characters, …).",
            ))
            .into()
    }
}
impl utoipa::ToSchema for Name {}

/// The schema of an email address in a request: what [`validate_email`] accepts, as a pattern.
pub struct Email;

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let part = format!("[^{NOT_EMAIL}{}]", format_class());
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^{TRIMMED}*{part}{{1,{MAX_EMAIL_LOCAL_CHARS}}}@\
                 {part}{{1,{MAX_EMAIL_DOMAIN_CHARS}}}{TRIMMED}*$"
            )))
            .description(Some(
                "An email address: trimmed of surrounding whitespace, then one `@` with 1–64 \
                 characters before it and 1–189 after, none of them whitespace, control or \
                 format characters.",
            ))
            .into()
    }
}
impl utoipa::ToSchema for Email {}

/// Validates and normalises a name (R2); [`Name::parse`] is the public way in.
fn validate(field: &str, raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::invalid_field(field, "must not be empty"));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(Error::invalid_field(
            field,
            format_args!("must be at most {MAX_NAME_CHARS} characters (got {chars})"),
        ));
    }
    if let Some(c) = name.chars().find(|&c| !allowed(c)) {
        let what = if c.is_control() {
            "control"
        } else {
            "invisible format"
        };
        return Err(Error::invalid_field(
            field,
            format_args!(
                "must not contain {what} characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    Ok(name.to_owned())
}

/// Validates and normalises an email address: trimmed; one `@` with 1–64 characters before it and
/// 1–189 after (254 in all at most, as SMTP allows); no whitespace, control or format
/// characters (two addresses that look alike are one address).
pub fn validate_email(raw: &str) -> Result<String> {
    let email = raw.trim();
    let ok = email.split_once('@').is_some_and(|(local, domain)| {
        (1..=MAX_EMAIL_LOCAL_CHARS).contains(&local.chars().count())
            && (1..=MAX_EMAIL_DOMAIN_CHARS).contains(&domain.chars().count())
            && !domain.contains('@')
    }) && !email.chars().any(|c| c.is_whitespace() || !allowed(c));
    if ok {
        Ok(email.to_owned())
    } else {
        Err(Error::invalid_field(
            "email",
            "must be an email address like ops@example.com",
        ))
    }
}

/// The key two names are compared by: names equal case-insensitively have equal keys.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r2_names_are_trimmed_bounded_and_printable() {
        assert_eq!(validate("name", "  prod  ").unwrap(), "prod");
        assert!(validate("name", "   ").is_err());
        assert!(validate("name", "").is_err());
        assert!(validate("name", &"é".repeat(255)).is_ok());
        assert!(validate("name", &"é".repeat(256)).is_err());
        assert!(validate("name", "a\u{7}b").is_err());
        assert!(validate("name", "a\nb").is_err());
        assert_eq!(name_key("Prod Server"), name_key("PROD server"));
        assert_eq!(name_key("Ärger"), name_key("äRGER"));
        assert_eq!(validate("name", "\u{3000}\tprod\u{a0}").unwrap(), "prod");
        assert!(validate("name", "a\u{86}b").is_err(), "C1 controls too");
    }

    #[test]
    fn r2_names_refuse_unicode_format_characters() {
        for bad in [
            "admin\u{200B}",  // zero-width space
            "ad\u{200D}min",  // zero-width joiner
            "\u{202E}nimda",  // right-to-left override
            "admin\u{2066}x", // left-to-right isolate
            "\u{FEFF}admin",  // BOM
            "ad\u{AD}min",    // soft hyphen
            "admin\u{E0041}", // tag letter A
            "admin\u{2060}",  // word joiner
            "\u{061C}admin",  // Arabic letter mark
        ] {
            let e = validate("name", bad).expect_err(bad);
            assert!(e.to_string().contains("format characters"), "{e}");
        }
        assert_eq!(validate("name", "admin").unwrap(), "admin");
        // Letters of other scripts and emoji (without joiners) stay names.
        assert!(validate("name", "Ärger 日本 🙂").is_ok());
    }

    #[test]
    fn r2_format_character_table_is_unicodes_cf() {
        use regex_syntax::hir::{Class, HirKind};
        let hir = regex_syntax::Parser::new().parse(r"\p{Cf}").unwrap();
        let HirKind::Class(Class::Unicode(class)) = hir.kind() else {
            panic!("\\p{{Cf}} is a Unicode class");
        };
        let unicode: Vec<(char, char)> = class.iter().map(|r| (r.start(), r.end())).collect();
        assert_eq!(FORMAT_CHARS, unicode.as_slice());
        for &(lo, hi) in FORMAT_CHARS {
            assert!(is_format(lo) && is_format(hi));
            for c in [char::from_u32(lo as u32 - 1), char::from_u32(hi as u32 + 1)]
                .into_iter()
                .flatten()
            {
                assert!(!is_format(c), "U+{:04X}", c as u32);
            }
        }
    }

    #[test]
    fn email_addresses_have_one_at_and_bounded_parts() {
        assert_eq!(
            validate_email("  ops@example.com ").unwrap(),
            "ops@example.com"
        );
        assert!(validate_email(&format!("{}@example.com", "é".repeat(64))).is_ok());
        assert!(validate_email(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(validate_email(&format!("ops@{}", "é".repeat(189))).is_ok());
        assert!(validate_email(&format!("ops@{}", "a".repeat(190))).is_err());
        for bad in [
            "",
            "ops",
            "@example.com",
            "ops@",
            "a@b@c",
            "o ps@x",
            "ops@x\u{7}",
            "ops\u{200B}@example.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }
}
