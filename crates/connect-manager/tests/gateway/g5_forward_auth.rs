//! G5: `GET /v1/forward-auth` gives a proxy that forwards by itself the gateway's decision on
//! the original method and URI: 200 and an empty body, or the G4 refusal. It forwards nothing.

use crate::support::gateway::{Gateway, Scene, Settings};
use crate::support::manager::TestManager;

async fn forward_auth(
    s: &Scene,
    base: &str,
    headers: &[(&str, &str)],
    jwt: Option<&str>,
) -> (u16, String) {
    let mut req = s.client.get(format!("{base}/v1/forward-auth"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(jwt) = jwt {
        req = req.bearer_auth(jwt);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_forward_auth_gives_the_proxys_decision_and_forwards_nothing() {
    let s = Scene::start().await;
    s.standin.reset().await;
    let p = s.production.clone();
    let read = s.token(&[(&p, "read")]).await;
    let item = s.standin.item(&p, "Database")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let base = s.gateway.base.clone();
    let item_path = format!("/v1/vaults/{p}/items/{item}");
    for (method_h, uri_h) in [
        ("X-Forwarded-Method", "X-Forwarded-Uri"),
        ("X-Original-Method", "X-Original-URI"),
    ] {
        let cases: Vec<(&str, String, Option<&str>, u16)> = vec![
            ("GET", item_path.clone(), Some(&read.jwt), 200),
            (
                "GET",
                format!("/v1/vaults/{p}/items?filter=title%20eq%20%22x%22"),
                Some(&read.jwt),
                200,
            ),
            ("GET", "/v1/vaults/".to_string(), Some(&read.jwt), 200),
            ("DELETE", item_path.clone(), Some(&read.jwt), 403),
            (
                "GET",
                format!("/v1/vaults/{}", s.staging),
                Some(&read.jwt),
                403,
            ),
            ("GET", "/v1/activity".to_string(), Some(&read.jwt), 403),
            ("GET", item_path.clone(), None, 401),
            ("GET", item_path.clone(), Some("forged"), 401),
            (
                "GET",
                format!("/v1/vaults/{p}/../{}", s.staging),
                Some(&read.jwt),
                400,
            ),
            (
                "GET",
                format!("/v1/vaults/{p}%2Fitems"),
                Some(&read.jwt),
                400,
            ),
            ("GET", "/v1/unknown".to_string(), Some(&read.jwt), 404),
        ];
        for (method, uri, jwt, want) in cases {
            let (status, body) =
                forward_auth(&s, &base, &[(method_h, method), (uri_h, &uri)], jwt).await;
            assert_eq!(status, want, "{method_h} {method} {uri}: {body}");
            if want == 200 {
                assert!(body.is_empty(), "a 200 has an empty body: {body}");
            } else {
                // The same refusal as the proxy's.
                let (proxy_status, proxy_body) = match want {
                    400 => (400, serde_json::from_str(&body).unwrap()),
                    _ => s.call(method, &uri, jwt, None).await,
                };
                assert_eq!(proxy_status, want, "{uri}");
                assert_eq!(
                    serde_json::from_str::<serde_json::Value>(&body).unwrap(),
                    proxy_body
                );
            }
        }
    }
    // Without the original method and URI: 400.
    let (status, _) = forward_auth(&s, &base, &[], Some(&read.jwt)).await;
    assert_eq!(status, 400);
    // Only the proxy calls above with 4xx went through /v1/…, and they were refused: nothing of
    // forward-auth's reached the upstream.
    let reached = s.reached().await;
    assert!(reached.is_empty(), "{reached:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g5_without_an_upstream_only_forward_auth_and_own_endpoints_are_served() {
    let m = TestManager::start().await;
    let v = m.create_vault("prod").await;
    let server = m.create_server("fa", &[&v]).await;
    let t = m.create_token(&server.id, "t", &[(&v, "read")], None).await;
    let g = Gateway::start(m.data_dir(), Settings::new(&server.credentials, None)).await;
    g.wait_ready().await;
    let client = crate::support::http();
    let r = client
        .get(g.url("/v1/forward-auth"))
        .header("X-Forwarded-Method", "GET")
        .header("X-Forwarded-Uri", format!("/v1/vaults/{v}/items"))
        .bearer_auth(&t.jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(g.url(&format!("/v1/vaults/{v}/items")))
        .bearer_auth(&t.jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 404);
    let ready: serde_json::Value = client
        .get(g.url("/-/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["checks"]["upstream"],
        serde_json::Value::Null,
        "{ready}"
    );
}
