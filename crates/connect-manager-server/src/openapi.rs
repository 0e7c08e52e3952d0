//! The OpenAPI description is generated from the handlers (utoipa); `openapi.yaml` at the
//! repository root is that output, committed. A test fails when the two differ, and
//! `connect-manager openapi > openapi.yaml` (or `UPDATE_OPENAPI=1 cargo test`) rewrites it.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{audit, exchange, groups, health, servers, tokens, trust, usage, users, vaults};
use crate::state::AppState;

/// The committed description, served at `GET /openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../../openapi.yaml");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "connect-manager",
        description = "Manage 1Password Connect-style servers: servers and their credentials \
                       files, tokens, vault grants, and who may manage them.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "connect servers", description = "op connect server …"),
        (name = "connect tokens", description = "op connect token …, introspection, signing keys"),
        (name = "connect vaults", description = "op connect vault grant|revoke"),
        (name = "connect groups", description = "op connect group grant|revoke"),
        (name = "vaults", description = "The vault registry"),
        (name = "users", description = "Users and API keys (owners)"),
        (name = "groups", description = "Groups and members (owners)"),
        (name = "audit", description = "The audit trail (owners)"),
        (name = "workload identity", description = "Trusted issuers, trust policies and the token exchange (RFC 8693)"),
        (name = "health", description = "Liveness, readiness, this description"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A user's API key: `Authorization: Bearer <key>`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "server_credentials",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A Connect server: user = server ID, password = the secret in its \
                         credentials file.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every route of the API, with its description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::openapi_yaml))
        .routes(routes!(crate::metrics::metrics))
        .routes(routes!(vaults::create_vault, vaults::list_vaults))
        .routes(routes!(
            vaults::get_vault,
            vaults::rename_vault,
            vaults::delete_vault
        ))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::get_user, users::delete_user))
        .routes(routes!(users::create_api_key, users::list_api_keys))
        .routes(routes!(users::delete_api_key))
        .routes(routes!(groups::create_group, groups::list_groups))
        .routes(routes!(groups::get_group, groups::delete_group))
        .routes(routes!(groups::add_member, groups::remove_member))
        .routes(routes!(groups::grant_manager, groups::revoke_manager))
        .routes(routes!(
            groups::grant_all_servers,
            groups::revoke_all_servers
        ))
        .routes(routes!(groups::grant_server, groups::revoke_server))
        .routes(routes!(servers::create_server, servers::list_servers))
        .routes(routes!(
            servers::get_server,
            servers::rename_server,
            servers::delete_server
        ))
        .routes(routes!(servers::rotate_credentials))
        .routes(routes!(servers::grant_vault, servers::revoke_vault))
        .routes(routes!(servers::connect_self))
        .routes(usage_route())
        .routes(routes!(tokens::create_token))
        .routes(routes!(tokens::list_tokens))
        .routes(routes!(tokens::rename_token, tokens::revoke_token))
        .routes(routes!(tokens::introspect))
        .routes(routes!(tokens::jwks))
        .routes(routes!(tokens::rotate_key))
        .routes(routes!(tokens::retire_key))
        .routes(routes!(audit::list_events))
        .routes(routes!(trust::create_issuer, trust::list_issuers))
        .routes(routes!(trust::get_issuer, trust::delete_issuer))
        .routes(routes!(
            trust::create_trust_policy,
            trust::list_trust_policies
        ))
        .routes(routes!(trust::get_trust_policy, trust::delete_trust_policy))
        .routes(routes!(exchange::token_exchange))
}

/// `POST /v1/connect/self/usage` with its own body limit: a full report is larger than 64 KiB.
fn usage_route() -> utoipa_axum::router::UtoipaMethodRouter<AppState> {
    let (schemas, paths, method_router) = routes!(usage::report_usage);
    (
        schemas,
        paths,
        method_router.layer(axum::extract::DefaultBodyLimit::max(
            usage::MAX_USAGE_BODY_BYTES,
        )),
    )
}

/// The router and the generated description.
pub fn split() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = router().split_for_parts();
    refer_page_items(&mut api);
    (router, api)
}

/// utoipa writes a copy of a generic's type argument into `Page_X`; refer to the `X` component
/// instead, so generated clients have one `Token` type, not a `Token` and a `PageTokenItemsItem`.
fn refer_page_items(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{ArrayItems, Schema};
    use utoipa::openapi::{Ref, RefOr};
    let Some(components) = api.components.as_mut() else {
        return;
    };
    let pages: Vec<String> = components
        .schemas
        .keys()
        .filter(|n| n.starts_with("Page_"))
        .cloned()
        .collect();
    for page in pages {
        let item = page.trim_start_matches("Page_").to_owned();
        let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&page) else {
            continue;
        };
        let Some(RefOr::T(Schema::Array(array))) = object.properties.get_mut("items") else {
            continue;
        };
        let reference = ArrayItems::RefOrSchema(Box::new(RefOr::Ref(Ref::from_schema_name(&item))));
        if let ArrayItems::RefOrSchema(inline) = std::mem::replace(&mut array.items, reference) {
            components.schemas.entry(item).or_insert(*inline);
        }
    }
}

/// The description as YAML, as `openapi.yaml` holds it.
pub fn generate_yaml() -> String {
    split()
        .1
        .to_yaml()
        .expect("the OpenAPI description serialises to YAML")
}
