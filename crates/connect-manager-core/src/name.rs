//! R2: names are trimmed, 1–255 characters, without control characters. Uniqueness is
//! case-insensitive: the store compares [`name_key`]s, computed here so both backends agree.

use crate::{Error, Result};

pub const MAX_NAME_CHARS: usize = 255;

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
    }
}
