//! The token exchange against a real identity provider (issue 18): `oidc-provider`, the certified
//! Node implementation (tests/idp, started by `support::idp`), issues JWT access tokens on
//! loopback; the service trusts it as an issuer and trades them for its own tokens.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use super::runner::{self, Cli};
use crate::support::http;
use crate::support::idp::{self, Provider};

/// The harness itself: the provider answers discovery with its JWKS and issues ES256 and RS256
/// access tokens whose `aud` is the resource asked for and whose `sub` is the client.
#[tokio::test]
async fn idp_provider_issues_jwt_access_tokens_for_the_asked_audience() {
    let Some(provider) = Provider::start() else {
        return;
    };
    let discovery: Value = http()
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

/// The audience the provider's tokens are asked for, and the policy binds.
const AUDIENCE: &str = "https://connect.example.test/web";

/// Issue 18's whole path against the real provider, on each backend: the provider added as an
/// issuer, a trust policy on a server, an access token from the provider's token endpoint
/// (ES256 from a file, RS256 on standard input) exchanged with `token exchange`, which prints only
/// the JWT; the result introspects active with the policy's scope and lifetime, and is listed
/// with where it came from. Tokens the policy does not cover (another claim value, another
/// audience) are refused in one line that never shows them.
async fn idp_access_tokens_exchange_for_server_tokens_that_introspect_active(db: TestDb) {
    let Some(provider) = Provider::start() else {
        return;
    };
    let (_dir, app, cli) =
        runner::start_with(&db, &[("CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS", "true")]).await;
    let prod = cli
        .run(&["vault", "create", "Prod", "--format", "json"])
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.run(&["vault", "create", "Staging"]).ok();
    cli.run(&["server", "create", "web", "--vaults", "Prod,Staging"])
        .ok();
    let shown = cli
        .run(&[
            "credentials",
            "show",
            "1password-credentials.json",
            "--reveal",
        ])
        .ok();
    let line = |key: &str| {
        shown
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .trim()
            .to_owned()
    };
    let (server_id, secret) = (line("server_id"), line("secret"));

    cli.run(&["issuer", "add", &provider.issuer, "--name", "idp"])
        .ok();
    let policy = cli
        .run(&[
            "trust",
            "create",
            "deploy",
            "--server",
            "web",
            "--issuer",
            "idp",
            "--audience",
            AUDIENCE,
            "--subject",
            "deploy-*",
            "--claim",
            "environment=production",
            "--vault",
            "Prod,r",
            "--ttl",
            "10m",
            "--format",
            "json",
        ])
        .json();

    let introspect = |jwt: String| {
        let (server_id, secret, base) = (server_id.clone(), secret.clone(), cli.url.clone());
        async move {
            http()
                .post(format!("{base}/v1/introspect"))
                .basic_auth(server_id, Some(secret))
                .json(&json!({ "token": jwt }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let exchange = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["token", "exchange", "--server", "web"];
        all.extend_from_slice(args);
        let mut c = cli.cmd(&all);
        c.env_remove("CONNECT_MANAGER_TOKEN");
        match stdin {
            Some(input) => Cli::output_stdin(c, input),
            None => Cli::output(c),
        }
    };

    // ES256, from a file.
    let subject = provider.access_token("deploy-es256", AUDIENCE).await;
    let file = cli.dir.join("subject.jwt");
    std::fs::write(&file, &subject).unwrap();
    let out = exchange(&["--subject-token-file", file.to_str().unwrap()], None).ok();
    assert_eq!(out.lines().count(), 1, "only the JWT: {out}");
    let jwt = out.trim().to_owned();
    assert_eq!(jwt.split('.').count(), 3, "{jwt}");
    assert_ne!(jwt, subject);
    let answer = introspect(jwt.clone()).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["name"], "deploy");
    assert_eq!(answer["sub"], server_id.as_str());
    assert_eq!(
        answer["vaults"],
        json!([{"id": prod, "acl": ["view_items", "view_and_copy_passwords"]}])
    );
    assert_eq!(
        answer["exp"].as_i64().unwrap() - answer["iat"].as_i64().unwrap(),
        600
    );
    let es_id = answer["jti"].as_str().unwrap().to_owned();

    // RS256, on standard input, with --format json: RFC 8693's answer.
    let subject = provider.access_token("deploy-rs256", AUDIENCE).await;
    let answer = exchange(
        &["--subject-token-file", "-", "--format", "json"],
        Some(&subject),
    )
    .json();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(
        answer["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(answer["expires_in"], 600);
    let introspected = introspect(answer["access_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(introspected["active"], true, "{introspected}");

    // Listed as the server's tokens, named after the policy, with the subject and issuer.
    let tokens = cli
        .run(&["token", "list", "--server", "web", "--format", "json"])
        .json();
    let tokens = tokens.as_array().unwrap();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    for t in tokens {
        assert_eq!(t["name"], "deploy");
        assert_eq!(t["state"], "ACTIVE");
        assert_eq!(t["exchange"]["issuer"], provider.issuer.as_str());
        assert_eq!(t["exchange"]["policy_id"], policy["id"]);
        assert!(!t["expires_at"].is_null(), "{t}");
    }
    let es = tokens.iter().find(|t| t["id"] == es_id.as_str()).unwrap();
    assert_eq!(es["exchange"]["subject"], "deploy-es256");

    // Revoked like any token: it stops introspecting active.
    cli.run(&["token", "delete", &es_id, "--server", "web"])
        .ok();
    assert_eq!(introspect(jwt).await["active"], false);

    // What the policy does not cover: refused, in one line, never showing the token.
    let refused = |stderr: String, token: &str| {
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        for part in token.split('.') {
            assert!(!stderr.contains(part), "the subject token shown: {stderr}");
        }
    };
    let staging = provider.access_token("deploy-staging", AUDIENCE).await;
    let ran = exchange(&["--subject-token-file", "-"], Some(&staging));
    refused(
        ran.fails("token exchange refused (invalid_grant)"),
        &staging,
    );
    let elsewhere = provider
        .access_token("deploy-es256", "https://other.example.test")
        .await;
    let ran = exchange(&["--subject-token-file", "-"], Some(&elsewhere));
    refused(
        ran.fails("token exchange refused (invalid_grant)"),
        &elsewhere,
    );
    assert_eq!(
        cli.run(&["token", "list", "--server", "web", "--format", "json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2,
        "a refused exchange issues nothing"
    );

    app.stop();
    provider.stop();
}

backend_tests!(idp_access_tokens_exchange_for_server_tokens_that_introspect_active);
