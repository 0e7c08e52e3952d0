//! `POST /v1/token-exchange` (issue 18, RFC 8693): a workload's JWT from a trusted issuer for a
//! short-lived token of a Connect server, under the first of the server's trust policies (oldest
//! first) that matches. No other credential: the subject token is the credential.
//!
//! The order of the checks is the order of what they cost and what they reveal: the form; the
//! subject token's size and algorithm (none and HMAC refused before any key is looked up); its
//! `iss` among the trusted issuers (nothing is fetched for any other); its signature and times
//! (`crate::exchange`); only then the server (so an unauthenticated caller learns nothing about
//! which servers exist) and its policies. Refusals are RFC 6749 §5.2 JSON errors: what did not
//! match, never the token or a claim's value. Failed exchanges are charged to the client
//! address's failed-authentication budget (`crate::limiter`), as a bad API key is.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connect_manager_core::api::trust::{
    GRANT_TYPE_TOKEN_EXCHANGE, OAuthError, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT,
    TokenExchangeOrigin, TokenExchangeRequest, TokenExchangeResponse,
};
use connect_manager_core::audit::audit_target;
use connect_manager_core::lookup::resolve;
use connect_manager_core::model::Actor;
use connect_manager_core::name::Name;
use connect_manager_core::principal::Principal;
use connect_manager_core::scope::TokenScope;
use connect_manager_core::trust::Mismatch;

use crate::client::ClientAddr;
use crate::exchange::{MAX_SUBJECT_TOKEN_BYTES, Refusal, Verified};
use crate::limiter::Target;
use crate::state::AppState;

/// The largest form read: a subject token at its largest, and the rest.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// An RFC 6749 §5.2 error, passed through the envelope middleware as it is.
pub fn oauth_error(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response = (
        status,
        [
            (header::CACHE_CONTROL, super::NO_STORE),
            (header::PRAGMA, "no-cache"),
        ],
        axum::Json(OAuthError {
            error: error.to_owned(),
            error_description: description.into(),
        }),
    )
        .into_response();
    response.extensions_mut().insert(crate::error::Enveloped);
    response
}

fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Request(why) => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why),
        Refusal::Grant(why) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
        Refusal::Target(why) => oauth_error(StatusCode::BAD_REQUEST, "invalid_target", why),
        Refusal::Unavailable(why) => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            why,
        ),
    }
}

/// A failure of the service itself (the database): not the client's fault, not charged.
fn unavailable(e: &crate::error::ApiError) -> Response {
    if e.status == StatusCode::SERVICE_UNAVAILABLE {
        oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the database is unavailable; retry later",
        )
    } else {
        tracing::error!(code = e.code, "token exchange failed: {}", e.message);
        oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }
}

/// Exchange a workload's JWT for a token of a Connect server (RFC 8693). Form-encoded
/// (`grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, `subject_token`,
/// `subject_token_type=urn:ietf:params:oauth:token-type:jwt`, `resource=<server ID or name>`);
/// no other credential. The token is an ordinary token of the server (listed, revocable,
/// introspectable), named after the policy, expiring after the policy's ttl.
#[utoipa::path(post, path = "/v1/token-exchange", tag = "workload identity",
    request_body(content = TokenExchangeRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token.", body = TokenExchangeResponse,
            headers(("Cache-Control" = String, description = "`no-store`: the body carries a secret."))),
        (status = 400, description = "Refused (RFC 6749 §5.2): `invalid_request`, `invalid_grant`, `invalid_target`, `unsupported_grant_type`.", body = OAuthError),
        (status = 413, description = "The form is over 64 KiB (`invalid_request`).", body = OAuthError),
        (status = 429, description = "Too many failed exchanges from this address (`invalid_request`).", body = OAuthError,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
        (status = 503, description = "The database or the issuer's keys are unavailable (`temporarily_unavailable`).", body = OAuthError),
    ))]
pub async fn token_exchange(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let form_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return refused(Refusal::Request(
            "send the request as application/x-www-form-urlencoded (RFC 8693)".into(),
        ));
    }
    // Read up to the limit and no further: a larger body is never buffered whole.
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return oauth_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("the form is over {} KiB", MAX_FORM_BYTES / 1024),
        );
    };
    let form: TokenExchangeRequest = match serde_urlencoded::from_bytes(&bytes) {
        Ok(form) => form,
        Err(_) => return refused(Refusal::Request("the form is malformed".into())),
    };
    if form.grant_type.as_deref() != Some(GRANT_TYPE_TOKEN_EXCHANGE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant_type must be {GRANT_TYPE_TOKEN_EXCHANGE}"),
        );
    }
    let Some(subject_token) = form.subject_token.as_deref().filter(|t| !t.is_empty()) else {
        return refused(Refusal::Request("subject_token is missing".into()));
    };
    if subject_token.len() > MAX_SUBJECT_TOKEN_BYTES {
        return refused(Refusal::Request(format!(
            "subject_token is over {} KiB",
            MAX_SUBJECT_TOKEN_BYTES / 1024
        )));
    }
    if form.subject_token_type.as_deref() != Some(TOKEN_TYPE_JWT) {
        return refused(Refusal::Request(format!(
            "subject_token_type must be {TOKEN_TYPE_JWT}"
        )));
    }
    if form
        .requested_token_type
        .as_deref()
        .is_some_and(|t| t != TOKEN_TYPE_ACCESS_TOKEN && t != TOKEN_TYPE_JWT)
    {
        return refused(Refusal::Request(format!(
            "requested_token_type must be {TOKEN_TYPE_ACCESS_TOKEN} (or omitted)"
        )));
    }
    let Some(resource) = form.resource.as_deref().filter(|r| !r.is_empty()) else {
        return refused(Refusal::Request(
            "resource is missing: name the Connect server (its ID or name)".into(),
        ));
    };
    let fingerprint = connect_manager_core::secret::fingerprint(subject_token);
    let attempt = match state
        .auth_limiter
        .admit(
            ClientAddr::of(&parts.extensions),
            &fingerprint,
            Target::Other,
        )
        .await
    {
        Ok(attempt) => attempt,
        Err(r) => {
            crate::metrics::inc(&state.metrics.auth_rate_limited);
            let mut response = oauth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_request",
                format!(
                    "too many failed exchanges from this address; retry in {} s",
                    r.retry_after
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&r.retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return response;
        }
    };
    let client_ip = ClientAddr::text(&parts.extensions);
    match exchange(&state, subject_token, resource, client_ip).await {
        Ok(Ok(answer)) => {
            // Dropped without a verdict: the unit is given back, and the subject token is not
            // remembered as a good credential.
            drop(attempt);
            (
                StatusCode::OK,
                [
                    (header::CACHE_CONTROL, super::NO_STORE),
                    (header::PRAGMA, "no-cache"),
                ],
                axum::Json(answer),
            )
                .into_response()
        }
        Ok(Err(refusal)) => {
            if !matches!(refusal, Refusal::Unavailable(_)) {
                attempt.failed();
                crate::metrics::inc(&state.metrics.auth_failures_user);
            }
            tracing::info!(?refusal, "token exchange refused");
            refused(refusal)
        }
        Err(e) => unavailable(&e),
    }
}

/// The exchange proper, once the form is well-formed: a refusal, or the new token. `Err` is the
/// service's own failure.
async fn exchange(
    state: &AppState,
    subject_token: &str,
    resource: &str,
    client_ip: String,
) -> crate::error::ApiResult<Result<TokenExchangeResponse, Refusal>> {
    let (alg, kid) = match crate::exchange::header(subject_token) {
        Ok(h) => h,
        Err(r) => return Ok(Err(r)),
    };
    let iss = match crate::exchange::unverified_issuer(subject_token) {
        Ok(iss) => iss,
        Err(r) => return Ok(Err(r)),
    };
    let Some(issuer) = state.store.issuer_by_url(&iss).await? else {
        return Ok(Err(Refusal::Grant(
            "the subject token's issuer is not trusted".into(),
        )));
    };
    let verified: Verified =
        match crate::exchange::verify(&state.issuer_keys, issuer, alg, &kid, subject_token).await {
            Ok(v) => v,
            Err(r) => return Ok(Err(r)),
        };
    // The server, now that the caller is known to hold a trusted issuer's token.
    let everyone = Principal {
        owner: true,
        ..Default::default()
    };
    let found = state.store.find_servers(&everyone, resource).await?;
    let Ok(server) = resolve("server", resource, found) else {
        return Ok(Err(Refusal::Target(
            "resource names no Connect server (by ID or name)".into(),
        )));
    };
    let policies = state
        .store
        .exchange_policies(&server.id, &verified.issuer.id)
        .await?;
    if policies.is_empty() {
        return Ok(Err(Refusal::Grant(
            "no trust policy of this server accepts tokens of this issuer".into(),
        )));
    }
    let mut mismatches = Vec::with_capacity(policies.len());
    let mut chosen = None;
    for policy in policies {
        match policy.matches(&verified.claims) {
            Ok(()) => {
                chosen = Some(policy);
                break;
            }
            Err(m) => mismatches.push(format!(
                "{}: {}",
                policy.name,
                match m {
                    Mismatch::Audience => "aud does not contain its audience".to_owned(),
                    Mismatch::Subject => "sub does not match its subject".to_owned(),
                    Mismatch::Claim(c) => format!(
                        "claim {} does not match",
                        audit_target(&c).chars().take(64).collect::<String>()
                    ),
                }
            )),
        }
    }
    let Some(policy) = chosen else {
        return Ok(Err(Refusal::Grant(format!(
            "no trust policy matched the subject token ({})",
            mismatches.join("; ")
        ))));
    };
    let subject = verified.subject().to_owned();
    let issuer_url = verified.issuer.issuer.clone();
    // A5: the actor of an exchange is the workload, under the policy that let it in.
    let actor = Actor {
        user_id: audit_target(&format!("exchange:{}:{issuer_url}#{subject}", policy.id))
            .into_owned(),
        request_id: crate::request_id::current_request_id(),
        client_ip,
    };
    let name = Name::parse("name", &policy.name)?;
    let scope = TokenScope::new(policy.vaults.iter().cloned())?;
    let issued = crate::tokens::issue_exchanged(
        state,
        &actor,
        &server,
        name,
        scope,
        Some(policy.ttl_seconds),
        Some(TokenExchangeOrigin {
            issuer: issuer_url,
            subject,
            policy_id: policy.id.clone(),
        }),
    )
    .await;
    match issued {
        Ok((record, jwt)) => Ok(Ok(TokenExchangeResponse {
            access_token: jwt,
            issued_token_type: TOKEN_TYPE_ACCESS_TOKEN.to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: record.expires_at.map_or(policy.ttl_seconds, |e| {
                (e.micros() - record.created_at.micros()) / 1_000_000
            }),
        })),
        Err(e) if e.code == "vault_not_granted" => Ok(Err(Refusal::Grant(format!(
            "trust policy {} names a vault no longer granted to the server",
            policy.name
        )))),
        Err(e) if e.status == StatusCode::NOT_FOUND => Ok(Err(Refusal::Target(
            "resource names no Connect server (by ID or name)".into(),
        ))),
        Err(e) => Err(e),
    }
}
