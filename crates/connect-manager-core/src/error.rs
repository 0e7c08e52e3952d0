//! The one error type of the domain and the store. The server maps each variant to one HTTP status
//! and the error envelope of SPEC E1.

use serde_json::Value;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is malformed (400); `code` is the machine-readable reason.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// A value breaks a rule of SPEC (422); `code` is the machine-readable reason.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        details: Value,
    },
    /// Nothing matched the reference (404).
    #[error("{kind} '{reference}' not found")]
    NotFound {
        kind: &'static str,
        reference: String,
    },
    /// A name matched several objects (409, R1).
    #[error("{kind} '{reference}' matches {} objects; use an ID", candidates.len())]
    Ambiguous {
        kind: &'static str,
        reference: String,
        candidates: Vec<String>,
    },
    /// The change conflicts with the current state (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The caller may see the object but may not take this action (403).
    #[error("{message}")]
    Forbidden { message: String },
    /// The database cannot be reached (503).
    #[error("the database is unavailable")]
    Unavailable { detail: String },
    /// The database's disk is full: writes fail until space is freed (503 `storage_full`).
    /// Reads still work; writes work again by themselves once there is space.
    #[error("the database's storage is full")]
    StorageFull { detail: String },
    /// Anything else (500). The detail goes to the log, never to the client.
    #[error("internal error")]
    Internal { detail: String },
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    /// A field of the request failed validation (422 `invalid_field`).
    pub fn invalid_field(field: &str, message: impl std::fmt::Display) -> Self {
        Error::Invalid {
            code: "invalid_field",
            message: format!("{field}: {message}"),
            details: serde_json::json!({ "field": field }),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest {
            code: "bad_request",
            message: message.into(),
        }
    }

    /// A `cursor` that is not a `next_cursor` this service returned (400 `invalid_cursor`): it
    /// is opaque, so no description of its shape tells a client what will be accepted.
    pub fn invalid_cursor() -> Self {
        Error::BadRequest {
            code: "invalid_cursor",
            message: "cursor: not a cursor this service returned".into(),
        }
    }

    pub fn not_found(kind: &'static str, reference: impl Into<String>) -> Self {
        Error::NotFound {
            kind,
            reference: reference.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::Forbidden {
            message: message.into(),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Error::Internal {
            detail: detail.to_string(),
        }
    }
}
