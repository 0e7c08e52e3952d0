//! The console (issue 17) in the real binary: a whole session (sign-in, a server and its
//! credentials file, a token, sign-out) leaves no secret in the log, and none in a URL it sent.

use crate::support::manager::{OWNER_KEY, TestManager};

/// A browser with a cookie jar of one-cookie-per-name, following no redirect.
struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
    csrf: String,
    /// Every URL requested and every Location answered.
    urls: Vec<String>,
}

impl Browser {
    async fn send(&mut self, method: reqwest::Method, path: &str, form: Option<String>) -> String {
        self.urls.push(path.to_owned());
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("cookie", cookie);
        if let Some(body) = form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().as_u16() < 400, "{path}: {}", r.status());
        for c in r.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() {
                self.cookies.push((k.into(), v.into()));
            }
        }
        if let Some(l) = r.headers().get("location") {
            self.urls.push(l.to_str().unwrap().to_owned());
        }
        let html = r.text().await.unwrap();
        if let Some(token) = hidden(&html, "csrf_token") {
            self.csrf = token;
        }
        html
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> String {
        let mut body = format!("csrf_token={}", self.csrf);
        for (k, v) in fields {
            body.push_str(&format!("&{}={}", enc(k), enc(v)));
        }
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
}

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(
        html[start..start + end]
            .replace("&quot;", "\"")
            .replace("&#34;", "\""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_leaves_no_secret_in_the_log_or_a_url() {
    let mut m = TestManager::start().await;
    m.create_vault("Prod").await;
    let mut b = Browser {
        base: m.base.clone(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        cookies: Vec::new(),
        csrf: String::new(),
        urls: Vec::new(),
    };
    b.send(reqwest::Method::GET, "/ui/sign-in", None).await;
    b.post("/ui/sign-in", &[("api_key", OWNER_KEY)]).await;
    let session = b
        .cookies
        .iter()
        .find(|(k, _)| k == "cm_session")
        .map(|(_, v)| v.clone())
        .expect("a session cookie over http");
    b.send(reqwest::Method::GET, "/ui/", None).await;
    let created = b
        .post("/ui/servers", &[("name", "web"), ("vaults", "prod")])
        .await;
    let file = hidden(&created, "credentials").expect("the credentials form");
    let at = created.find("/ui/servers/").unwrap() + 12;
    let server = created[at..at + 26].to_owned();
    let downloaded = b
        .post("/ui/credentials-file", &[("credentials", &file)])
        .await;
    let json: serde_json::Value = serde_json::from_str(&downloaded).unwrap();
    let unique_key = json["uniqueKey"]["k"].as_str().unwrap().to_owned();
    let token_page = b
        .post(
            &format!("/ui/servers/{server}/tokens"),
            &[("name", "ci"), ("access.prod", "read")],
        )
        .await;
    let start = token_page.find(r#"id="new-token">"#).unwrap() + 15;
    let jwt = token_page[start..start + token_page[start..].find('<').unwrap()].to_owned();
    assert!(jwt.starts_with("eyJ"), "{jwt}");
    // A failed sign-in with a key-like string is logged without it.
    let mut stranger = Browser {
        base: m.base.clone(),
        client: b.client.clone(),
        cookies: Vec::new(),
        csrf: String::new(),
        urls: Vec::new(),
    };
    stranger
        .send(reqwest::Method::GET, "/ui/sign-in", None)
        .await;
    let wrong = "cmk_not_a_real_key_but_looks_like_one_0123456789";
    let _ = stranger
        .client
        .post(format!("{}/ui/sign-in", m.base))
        .header("cookie", format!("cm_sign_in={}", stranger.cookies[0].1))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={}&api_key={wrong}", stranger.csrf))
        .send()
        .await
        .unwrap();
    b.post("/ui/sign-out", &[]).await;
    m.stop();
    let log = m.log();
    assert!(
        log.contains("/ui/"),
        "the log has the console's requests: {log}"
    );
    let csrf = connect_manager_server::console::csrf_token_of(&session);
    for secret in [OWNER_KEY, &session, &csrf, &jwt, &unique_key, wrong] {
        assert!(!log.contains(secret), "a secret in the log");
        for url in &b.urls {
            assert!(!url.contains(secret), "a secret in {url}");
        }
    }
}
