//! Issue 18 through the gateway: a token from the token exchange, traded for a real identity
//! provider's access token (`oidc-provider`, tests/idp), is an ordinary token of the server: the
//! gateway lets it reach its policy's vaults with its policy's access, and nothing else.

use reqwest::Method;
use serde_json::json;

use crate::support::gateway::Scene;
use crate::support::idp::{Provider, form_encode};
use crate::support::manager::TestManager;

const AUDIENCE: &str = "https://connect.example.test/gateway";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanged_tokens_pass_the_gateway_on_their_policys_vaults_only() {
    let Some(provider) = Provider::start() else {
        return;
    };
    let manager =
        TestManager::start_with_env(&[("CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS", "true")]).await;
    let s = Scene::start_with(manager, &[], "1s").await;
    let (status, body) = s
        .manager
        .owner(
            Method::POST,
            "/v1/issuers",
            Some(json!({"issuer": provider.issuer, "name": "idp"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s
        .manager
        .owner(
            Method::POST,
            &format!("/v1/connect/servers/{}/trust-policies", s.server.id),
            Some(json!({
                "name": "deploy",
                "issuer": "idp",
                "audience": AUDIENCE,
                "subject": "deploy-*",
                "claims": {"environment": "production"},
                "vaults": [{"vault": s.production, "access": "read"}],
                "ttl": "10m",
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let subject = provider.access_token("deploy-rs256", AUDIENCE).await;
    let form = format!(
        "grant_type={}&subject_token={}&subject_token_type={}&resource={}",
        form_encode("urn:ietf:params:oauth:grant-type:token-exchange"),
        form_encode(&subject),
        form_encode("urn:ietf:params:oauth:token-type:jwt"),
        form_encode(&s.server.id),
    );
    let r = s
        .client
        .post(format!("{}/v1/token-exchange", s.manager.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let (status, body) = crate::support::status_and_json(r).await;
    assert_eq!(status, 200, "{body}");
    let jwt = body["access_token"].as_str().unwrap().to_owned();

    let p = &s.production;
    let (status, body) = s
        .call("GET", &format!("/v1/vaults/{p}/items"), Some(&jwt), None)
        .await;
    assert_eq!(status, 200, "the policy's vault, read: {body}");
    // Read only, as the policy says.
    let new_item = json!({"title": "New", "category": "LOGIN", "vault": {"id": p}});
    let (status, body) = s
        .call(
            "POST",
            &format!("/v1/vaults/{p}/items"),
            Some(&jwt),
            Some(new_item),
        )
        .await;
    assert_eq!(status, 403, "write with a read policy: {body}");
    // Another vault the server has, which the policy does not name.
    let (status, body) = s
        .call(
            "GET",
            &format!("/v1/vaults/{}/items", s.staging),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(status, 403, "a vault outside the policy: {body}");
    // The provider's own token is no token of the gateway's.
    let (status, _) = s
        .call(
            "GET",
            &format!("/v1/vaults/{p}/items"),
            Some(&subject),
            None,
        )
        .await;
    assert_eq!(status, 401);
    provider.stop();
}
