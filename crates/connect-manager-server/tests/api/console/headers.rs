//! Headers and cookies: CSP and friends on every console answer, no caching of pages, and the
//! session cookie's flags over http and https public URLs.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, SET_COOKIE};

use super::Browser;
use crate::harness::{OWNER_KEY, Setup, TestApp};

const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn set_cookies(page: &super::Page) -> Vec<String> {
    page.headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

async fn every_console_answer_has_csp_nosniff_and_no_referrer(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let anonymous = Browser::new(&app);
    let b = Browser::signed_in(&app, OWNER_KEY).await;
    let pages = [
        anonymous.get("/ui/").await,
        anonymous.get("/ui/sign-in").await,
        b.get("/ui/").await,
        b.get("/ui/servers").await,
        b.get("/ui/servers/new").await,
        b.get("/ui/groups").await,
        b.get("/ui/vaults").await,
        b.get("/ui/users").await,
        b.get("/ui/audit").await,
        b.get("/ui/no-such-page").await,
        b.post_raw("/ui/vaults", &[]).await,
    ];
    for page in &pages {
        let h = &page.headers;
        assert_eq!(h[CONTENT_SECURITY_POLICY], CSP, "{}", page.status);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h[CACHE_CONTROL], "no-store");
    }
    // Each page: html lang, a title, one h1, a main, the navigation, no inline script or style.
    for page in &pages[2..9] {
        let html = &page.html;
        assert!(html.contains(r#"<html lang="en">"#));
        assert!(html.contains("<title>"));
        assert_eq!(html.matches("<h1>").count(), 1, "{html}");
        assert!(html.contains("<main"));
        assert!(html.contains(r#"<nav aria-label="Main">"#));
        assert!(html.contains(r#"id="sign-out""#));
        assert!(
            !html.contains("<script>") && !html.contains(" style="),
            "{html}"
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing from elsewhere"
        );
    }
    assert_eq!(pages[9].status.as_u16(), 404);
    assert_eq!(pages[9].h1(), "Not found");
    let css = b.get("/ui/static/console.css").await.expect(200);
    assert!(
        css.headers[CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("public")
    );
    assert_eq!(css.headers[CONTENT_SECURITY_POLICY], CSP);
    b.get("/ui/static/console.js").await.expect(200);
}

async fn session_cookie_is_host_prefixed_and_secure_over_https(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let b = Browser::new(&app);
    let form = b.get("/ui/sign-in").await.expect(200);
    let c = set_cookies(&form);
    assert!(c[0].starts_with("__Host-cm_sign_in="), "{c:?}");
    let signed = b.post("/ui/sign-in", &[("api_key", OWNER_KEY)]).await;
    let c = set_cookies(&signed);
    let session = c
        .iter()
        .find(|c| c.starts_with("__Host-cm_session="))
        .unwrap();
    for flag in ["; Path=/", "; HttpOnly", "; SameSite=Strict", "; Secure"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(!session.contains("Domain="), "{session}");
}

async fn session_cookie_over_http_is_plain_and_not_secure(db: TestDb) {
    let app = TestApp::spawn_console(
        db,
        Setup {
            public_url: "http://cm.example.test",
            ..Setup::default()
        },
    )
    .await;
    let b = Browser::new(&app);
    b.get("/ui/sign-in").await.expect(200);
    let signed = b.post("/ui/sign-in", &[("api_key", OWNER_KEY)]).await;
    let c = set_cookies(&signed);
    let session = c.iter().find(|c| c.starts_with("cm_session=")).unwrap();
    for flag in ["; Path=/", "; HttpOnly", "; SameSite=Strict"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(!session.contains("Secure"), "{session}");
    b.get("/ui/").await.expect(200);
}

backend_tests!(
    every_console_answer_has_csp_nosniff_and_no_referrer,
    session_cookie_is_host_prefixed_and_secure_over_https,
    session_cookie_over_http_is_plain_and_not_secure,
);
