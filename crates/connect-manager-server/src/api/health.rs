//! Liveness, readiness and the API description: no authentication.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use connect_manager_core::api::health::Health;

use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Alive: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The service is up.", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Ready: the database answers, and takes writes. After a write failed for lack of space, a
/// probe write decides (at most one a second): `storage_full` while writes fail for lack of
/// space; ready again, by itself, once there is space.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The service is up.", body = Health),
        (status = 503, description = "The database is unavailable (`unavailable`), or its storage is full and writes fail (`storage_full`; reads still work).", body = ErrorBody),
    ))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<axum::Json<Health>> {
    state.store.ping().await?;
    Ok(axum::Json(Health {
        status: "ok".into(),
    }))
}

/// This API's OpenAPI description (the committed `openapi.yaml`).
#[utoipa::path(get, path = "/openapi.yaml", tag = "health",
    responses((status = 200, description = "OpenAPI 3.1, YAML: the document, an object.", content_type = "text/yaml", body = Object)))]
pub async fn openapi_yaml() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/yaml; charset=utf-8")],
        crate::openapi::OPENAPI_YAML,
    )
}
