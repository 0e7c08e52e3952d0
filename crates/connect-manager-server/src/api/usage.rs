//! G7, last use: a Connect server's gateways report when its tokens were last used and from
//! which client address. Telemetry, not a management action: a report is not audited event by
//! event (every request of every client would otherwise land in the audit trail, burying the
//! changes people made); it is counted in `/metrics` instead.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use connect_manager_core::api::usage::{MAX_USAGE_BATCH, TokenUsage, UsageReport};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ServerCaller};
use crate::state::AppState;

/// The body limit of a usage report: room for [`MAX_USAGE_BATCH`] entries with IPv6 addresses.
pub const MAX_USAGE_BODY_BYTES: usize = 256 * 1024;

/// Record when the calling server's tokens were last used (G7). Authenticate as the server.
/// Entries naming another server's token, or no token, are ignored without notice; a token's
/// last use is kept to the minute and never moves back; a `last_used_ip` that is not an IP
/// address is dropped (the use is recorded without it).
#[utoipa::path(post, path = "/v1/connect/self/usage", tag = "connect servers",
    request_body = UsageReport,
    security(("server_credentials" = [])),
    responses(
        (status = 204, description = "Recorded."),
        (status = 400, description = "The body is not a usage report.", body = ErrorBody),
        (status = 401, description = "Not a live server's credentials.", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The scheme to authenticate with: `Basic realm=\"connect-manager\"` (the server's ID and secret)."))),
        (status = 413, description = "The body is over 256 KiB.", body = ErrorBody),
        (status = 415, description = "The body is not JSON.", body = ErrorBody),
        (status = 422, description = "More than 1000 entries (`invalid_field`): send several reports.", body = ErrorBody),
        (status = 429, description = "Too many failed authentications from this address: the credentials were not read.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "The database is unavailable.", body = ErrorBody),
    ))]
pub async fn report_usage(
    State(state): State<AppState>,
    server: ServerCaller,
    ApiJson(body): ApiJson<UsageReport>,
) -> ApiResult<StatusCode> {
    if body.tokens.len() > MAX_USAGE_BATCH {
        // 422 (not 413): the body is within its size limit; it is the list that is too long,
        // as the schema's maxItems says.
        return Err(ApiError {
            details: serde_json::json!({ "field": "tokens", "max": MAX_USAGE_BATCH }),
            ..ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!(
                    "tokens: a usage report carries at most {MAX_USAGE_BATCH} tokens; send the rest in another"
                ),
            )
        });
    }
    let usage: Vec<TokenUsage> = body.tokens.into_iter().map(canonical_ip).collect();
    let written = state
        .store
        .record_token_usage(&server.server_id, &usage)
        .await?;
    let m = &state.metrics;
    crate::metrics::inc(&m.usage_reports);
    crate::metrics::add(&m.usage_entries, usage.len() as u64);
    crate::metrics::add(&m.usage_written, written);
    Ok(StatusCode::NO_CONTENT)
}

/// The entry with its address in canonical form (`2001:db8::1`, not `2001:0db8:0:0::1`). An
/// address that is not one is dropped and the use recorded without it: the time is what last use
/// is about, and a gateway only sends what it read off a socket.
fn canonical_ip(mut u: TokenUsage) -> TokenUsage {
    u.last_used_ip = u
        .last_used_ip
        .take()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical().to_string());
    u
}
