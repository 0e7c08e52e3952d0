//! The token exchange against a real identity provider (issue 18): `oidc-provider`, the certified
//! Node implementation (tests/idp, started by `support::idp`), issues JWT access tokens on
//! loopback; the service trusts it as an issuer and trades them for its own tokens.

use crate::support::idp::{self, Provider};

/// The harness itself: the provider answers discovery with its JWKS and issues ES256 and RS256
/// access tokens whose `aud` is the resource asked for and whose `sub` is the client.
#[tokio::test]
async fn idp_provider_issues_jwt_access_tokens_for_the_asked_audience() {
    let Some(provider) = Provider::start() else {
        return;
    };
    let discovery: serde_json::Value = crate::support::http()
        .get(format!(
            "{}/.well-known/openid-configuration",
            provider.issuer
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], provider.issuer.as_str());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/jwks", provider.issuer).as_str()
    );
    for (client, alg) in [("deploy-es256", "ES256"), ("deploy-rs256", "RS256")] {
        let jwt = provider
            .access_token(client, "https://connect.example.test/web")
            .await;
        assert_eq!(idp::header(&jwt)["alg"], alg);
        let claims = idp::claims(&jwt);
        assert_eq!(claims["iss"], provider.issuer.as_str());
        assert_eq!(claims["aud"], "https://connect.example.test/web");
        assert_eq!(claims["sub"], client);
        assert_eq!(claims["environment"], "production");
    }
    provider.stop();
}
