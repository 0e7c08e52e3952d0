//! Behind a real reverse proxy (Debian's nginx, started by the test with its own configuration):
//! each client has its own failed-authentication budget (issue 12, item 3).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::json;

use crate::harness::{TestApp, reply};

/// An nginx in front of `upstream`, on a loopback port, appending the client's address to
/// `X-Forwarded-For`; stopped when dropped.
struct Nginx {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Nginx {
    /// None (with a message) when nginx is not installed, outside CI; under `CI=true` its
    /// absence fails the test.
    async fn start(upstream: &str) -> Option<Nginx> {
        let Some(binary) = nginx_binary() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nginx is not installed; CI must run the proxy tests (.ci/run installs nginx-light)"
            );
            eprintln!("SKIPPED: nginx is not installed (apt-get install nginx-light)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let upstream = upstream.trim_start_matches("http://");
        let d = dir.path().display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream connect_manager {{ server {upstream}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://connect_manager;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(&binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        nginx.wait_ready(&conf_path).await;
        Some(nginx)
    }

    async fn wait_ready(&self, conf: &Path) {
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.base.trim_start_matches("http://"))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(conf.with_file_name("error.log")).unwrap_or_default();
        panic!("nginx did not listen within 5 s: {log}");
    }
}

/// Client A (connecting to nginx from 127.0.0.2) floods bad API keys and server secrets; client
/// B (from 127.0.0.3) then authenticates with credentials new to the service, an API key and a
/// server secret, and is answered at once. A's spoofed `X-Forwarded-For` does not free it, and
/// B's denied request is audited with B's address.
async fn defect_behind_a_proxy_one_clients_flood_does_not_lock_out_another(db: TestDb) {
    let app = TestApp::spawn_with(db, 10, "127.0.0.1/32").await;
    let Some(nginx) = Nginx::start(&app.base).await else {
        app.stop().await;
        return;
    };
    let (s, secret) = app.server("web", &[]).await;
    let id = s["id"].as_str().unwrap().to_owned();
    let (_, key) = app.user_with("bea", None).await;

    let a = TestApp::client_from("127.0.0.2");
    let mut flood = Vec::new();
    for i in 0..40 {
        let (a, base, id) = (a.clone(), nginx.base.clone(), id.clone());
        flood.push(tokio::spawn(async move {
            let req = if i % 2 == 0 {
                a.get(format!("{base}/v1/vaults"))
                    .bearer_auth(format!("cmk_guess_{i}"))
            } else {
                a.get(format!("{base}/v1/connect/self"))
                    .basic_auth(id, Some(format!("guess-{i}")))
            };
            req.send().await.expect("sent").status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in flood {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        30,
        "{statuses:?}"
    );
    // A cannot spoof its way out: nginx appends its real address after whatever it sends.
    let spoofed = a
        .get(format!("{}/v1/vaults", nginx.base))
        .bearer_auth("cmk_another_guess")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 429);

    // B's credentials have never been used: they are charged to B's own budget, not A's.
    let b = TestApp::client_from("127.0.0.3");
    let started = std::time::Instant::now();
    let r = reply(
        b.get(format!("{}/v1/connect/self", nginx.base))
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.expect(200)["id"], id.as_str());
    let r = reply(
        b.get(format!("{}/v1/vaults", nginx.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.expect(200);
    eprintln!(
        "client B's first two requests during A's lock-out: {} ms",
        started.elapsed().as_millis()
    );
    // B's denied request is audited with B's address, not the proxy's.
    let r = reply(
        b.post(format!("{}/v1/vaults", nginx.base))
            .bearer_auth(&key)
            .json(&json!({"name": "x", "type": "EVERYONE"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.expect_error(403, "forbidden");
    let events = app
        .get("/v1/audit/events?action=vault.create")
        .await
        .expect(200);
    assert_eq!(events["items"][0]["outcome"], "denied");
    assert_eq!(events["items"][0]["client_ip"], "127.0.0.3");
    drop(nginx);
    app.stop().await;
}

backend_tests!(defect_behind_a_proxy_one_clients_flood_does_not_lock_out_another);
