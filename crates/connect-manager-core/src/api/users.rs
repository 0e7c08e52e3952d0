//! Users and their API keys (A1, A2): `/v1/users…`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(value_type = crate::name::Name)]
    pub name: String,
    #[schema(value_type = crate::name::Email)]
    pub email: String,
}

/// `POST /v1/users/{user}/keys`: every field optional, and the body too (an empty body, `null`
/// and `{}` make a key named `key` that does not expire).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// R2; default `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::name::Name>)]
    pub name: Option<String>,
    /// R7's duration (`90d`, `1w2d`): the key stops authenticating after it. Default: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*(?:[0-9]{1,12}[smhdw])+[\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub expires_in: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    /// The API key: shown this once, never again.
    pub key: String,
    /// Added by issue 18; absent from older services' answers.
    #[serde(default)]
    pub name: String,
    /// Null when the key does not expire.
    #[serde(default)]
    #[schema(required = true)]
    pub expires_at: Option<crate::Timestamp>,
}
