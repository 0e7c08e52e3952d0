//! R2: names are trimmed, 1–255 characters, without control characters. Uniqueness is
//! case-insensitive: the store compares [`name_key`]s, computed here so both backends agree.
//! Email addresses (users) are validated here too. [`Name`] and [`Email`] describe both rules to
//! the API description exactly, so that what it calls valid is what [`validate`] and
//! [`validate_email`] accept.

use crate::{Error, Result};

pub const MAX_NAME_CHARS: usize = 255;
/// The most characters of an email address before its `@`, and after it.
pub const MAX_EMAIL_LOCAL_CHARS: usize = 64;
pub const MAX_EMAIL_DOMAIN_CHARS: usize = 189;

/// What `str::trim` removes (Unicode White_Space), as a regular expression class.
const TRIMMED: &str = r"[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// Neither a control character (`char::is_control`: Cc) nor whitespace.
const VISIBLE: &str = r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// Not a control character.
const NOT_CONTROL: &str = r"[^\x00-\x1F\x7F-\x9F]";
/// Neither `@`, nor a control character, nor whitespace.
const EMAIL_PART: &str = r"[^@\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// The schema of a name in a request (R2): what [`validate`] accepts, as a pattern.
pub struct Name;

impl utoipa::PartialSchema for Name {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let inner = MAX_NAME_CHARS - 2;
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^{TRIMMED}*{VISIBLE}(?:{NOT_CONTROL}{{0,{inner}}}{VISIBLE})?{TRIMMED}*$"
            )))
            .description(Some(
                "A name (R2): trimmed of surrounding whitespace, then 1–255 characters without \
                 control characters.",
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
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^{TRIMMED}*{EMAIL_PART}{{1,{MAX_EMAIL_LOCAL_CHARS}}}@\
                 {EMAIL_PART}{{1,{MAX_EMAIL_DOMAIN_CHARS}}}{TRIMMED}*$"
            )))
            .description(Some(
                "An email address: trimmed of surrounding whitespace, then one `@` with 1–64 \
                 characters before it and 1–189 after, none of them whitespace or control \
                 characters.",
            ))
            .into()
    }
}
impl utoipa::ToSchema for Email {}

/// Validates and normalises a name (R2). `field` names the field in the error.
pub fn validate(field: &str, raw: &str) -> Result<String> {
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
    if name.chars().any(char::is_control) {
        return Err(Error::invalid_field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// Validates and normalises an email address: trimmed; one `@` with 1–64 characters before it and
/// 1–189 after (254 in all at most, as SMTP allows); no whitespace or control characters.
pub fn validate_email(raw: &str) -> Result<String> {
    let email = raw.trim();
    let ok = email.split_once('@').is_some_and(|(local, domain)| {
        (1..=MAX_EMAIL_LOCAL_CHARS).contains(&local.chars().count())
            && (1..=MAX_EMAIL_DOMAIN_CHARS).contains(&domain.chars().count())
            && !domain.contains('@')
    }) && !email.chars().any(|c| c.is_whitespace() || c.is_control());
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
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }
}
