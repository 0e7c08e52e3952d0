//! Running it for real: the container's start-up path, its files, log hygiene at trace level,
//! and graceful shutdown with a request in flight.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::common::{BIN, Running, command, free_port, http, sigterm};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap()
}

fn serve_help() -> String {
    let dir = tempfile::tempdir().unwrap();
    String::from_utf8(
        command(dir.path())
            .args(["serve", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

/// The Dockerfile as built here could not be run (no Docker engine): its settings are checked
/// against what the binary knows, and the next test runs the binary exactly as it would.
#[test]
fn dockerfile_runs_the_tested_start_up_path_as_non_root() {
    let dockerfile = read("Dockerfile");
    let has = |line: &str| dockerfile.lines().any(|l| l.trim() == line);
    assert!(has("USER 10001:10001"), "non-root user");
    assert!(has(r#"ENTRYPOINT ["connect-manager"]"#) && has(r#"CMD ["serve"]"#));
    assert!(has("EXPOSE 8080") && has(r#"VOLUME ["/data"]"#));
    assert!(
        has(r#"CMD ["connect-manager", "healthcheck"]"#),
        "health check by the binary itself"
    );
    assert!(dockerfile.contains("CONNECT_MANAGER_BIND=0.0.0.0:8080"));
    assert!(dockerfile.contains("org.opencontainers.image.title"));
    assert!(
        dockerfile.contains("AS build") && dockerfile.contains("COPY --from=build"),
        "multi-stage"
    );
    // The dependency layer copies every crate's manifest: none forgotten when a crate is added.
    for entry in std::fs::read_dir(format!("{ROOT}/crates")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            dockerfile.contains(&format!("COPY crates/{name}/Cargo.toml crates/{name}/")),
            "Dockerfile does not copy crates/{name}/Cargo.toml"
        );
    }
    let help = serve_help();
    for var in [
        "CONNECT_MANAGER_BIND",
        "CONNECT_MANAGER_DATA_DIR",
        "LOG_FORMAT",
    ] {
        assert!(dockerfile.contains(var) && help.contains(var), "{var}");
    }
}

/// The container's command with the container's environment: serve on 0.0.0.0, data in a fresh
/// directory, JSON logs; its health check passes while it runs and fails once it stopped.
#[tokio::test]
async fn container_start_up_path_and_health_check() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let healthcheck = |dir: &std::path::Path| {
        command(dir)
            .arg("healthcheck")
            .env("CONNECT_MANAGER_BIND", format!("0.0.0.0:{port}"))
            .status()
            .unwrap()
    };
    let mut cmd = command(dir.path());
    cmd.env("CONNECT_MANAGER_DATA_DIR", &data)
        .env("LOG_FORMAT", "json");
    let mut app = Running::start_on(cmd, dir.path(), &format!("0.0.0.0:{port}"), port);
    app.wait_ready().await;
    assert!(healthcheck(dir.path()).success());
    let log = app.stop();
    assert!(!healthcheck(dir.path()).success());
    assert!(data.join("connect-manager.db").exists() && data.join("master.key").exists());
    for line in log.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(line).expect("LOG_FORMAT=json lines are JSON");
    }
}

/// The gateway's container checks its own /-/healthz (it has no /healthz): the health check
/// takes the path to ask, and only a plain absolute path.
#[tokio::test]
async fn healthcheck_asks_the_path_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let check = |path: &str| {
        command(dir.path())
            .args(["healthcheck", "--bind", &bind, "--path", path])
            .output()
            .unwrap()
    };
    let mut app = Running::start_on(command(dir.path()), dir.path(), &bind, port);
    app.wait_ready().await;
    assert!(check("/readyz").status.success(), "serve answers /readyz");
    let missing = check("/-/healthz");
    assert_eq!(missing.status.code(), Some(1), "serve has no /-/healthz");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/-/healthz answered 404"));
    for bad in ["healthz", "//evil.example/healthz", "/healthz?x", "/a%2fb"] {
        assert_eq!(check(bad).status.code(), Some(2), "{bad} is refused");
    }
    app.stop();
}

/// Issue 13, item 4: the compose `connect` profile puts 1Password's connect-api behind the
/// gateway. connect-api is not published on the host; the gateway is, on loopback 8081, with
/// connect-api as its upstream, the credentials file and the real Connect token as compose
/// secrets, a health check on its own endpoint, and a manager URL it can resolve.
#[test]
fn compose_connect_profile_puts_connect_api_behind_the_gateway() {
    let compose: Value = yaml_serde::from_str(&read("docker-compose.yml")).unwrap();
    let services = compose["services"].as_object().unwrap();
    for name in ["connect-api", "connect-sync"] {
        assert!(
            services[name].get("ports").is_none(),
            "{name} is published on the host: clients would go around the gateway"
        );
    }
    let gw = &services["gateway"];
    assert_eq!(gw["profiles"], json!(["connect"]));
    assert_eq!(gw["command"], json!(["gateway"]));
    assert_eq!(
        gw["image"], services["connect-manager"]["image"],
        "our image"
    );
    let env = &gw["environment"];
    let bind = env["CONNECT_MANAGER_GATEWAY_BIND"].as_str().unwrap();
    let bind_port = bind.rsplit_once(':').unwrap().1;
    assert_eq!(
        gw["ports"],
        json!([format!(
            "127.0.0.1:${{CONNECT_GATEWAY_PORT:-8081}}:{bind_port}"
        )]),
        "published on loopback 8081, to the port it binds"
    );
    assert_eq!(
        env["CONNECT_MANAGER_GATEWAY_UPSTREAM"],
        "http://connect-api:8080"
    );
    assert!(env.get("CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN").is_none());
    // Every setting compose gives the gateway is one `connect-manager gateway` reads.
    let dir = tempfile::tempdir().unwrap();
    let help = command(dir.path())
        .args(["gateway", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for var in env.as_object().unwrap().keys() {
        assert!(
            help.contains(var.as_str()) || var == "RUST_LOG",
            "compose sets {var}, which the gateway does not read"
        );
    }
    let declared = compose["secrets"].as_object().unwrap();
    for (var, file) in [
        (
            "CONNECT_MANAGER_GATEWAY_CREDENTIALS_FILE",
            "./secrets/connect-manager-credentials.json",
        ),
        (
            "CONNECT_MANAGER_GATEWAY_UPSTREAM_TOKEN_FILE",
            "./secrets/connect_token",
        ),
    ] {
        let name = env[var]
            .as_str()
            .and_then(|p| p.strip_prefix("/run/secrets/"))
            .unwrap_or_else(|| panic!("{var} is a compose secret"));
        assert!(
            gw["secrets"].as_array().unwrap().iter().any(|x| x == name),
            "the gateway mounts {name}"
        );
        assert_eq!(declared[name]["file"], file, "{var}");
    }
    let health = gw["healthcheck"]["test"].as_array().unwrap();
    let arg = |flag: &str| {
        let at = health.iter().position(|x| x == flag).unwrap();
        health[at + 1].as_str().unwrap().to_owned()
    };
    assert_eq!(arg("--path"), "/-/healthz");
    assert_eq!(arg("--bind"), format!("127.0.0.1:{bind_port}"));
    assert_eq!(
        gw["depends_on"]["connect-manager"]["condition"],
        "service_healthy"
    );
    // The credentials file carries the manager's public URL, and the gateway fetches the JWKS
    // and introspects there: by default it must be a name the compose network resolves.
    let public = services["connect-manager"]["environment"]["CONNECT_MANAGER_PUBLIC_URL"]
        .as_str()
        .unwrap();
    let default = public
        .strip_prefix("${CONNECT_MANAGER_PUBLIC_URL:-")
        .and_then(|d| d.strip_suffix('}'))
        .expect("a default");
    let host = default
        .strip_prefix("http://")
        .and_then(|r| r.split(':').next())
        .unwrap();
    assert!(
        services.contains_key(host),
        "{default}: not a compose service"
    );
    assert!(read(".env.example").contains(&format!("CONNECT_MANAGER_PUBLIC_URL={default}")));
}

#[test]
fn compose_file_wires_postgres_connect_manager_and_connect() {
    let compose: Value = yaml_serde::from_str(&read("docker-compose.yml")).unwrap();
    let services = compose["services"].as_object().unwrap();
    let pg = &services["postgres"];
    assert!(pg["healthcheck"]["test"].to_string().contains("pg_isready"));
    assert!(
        pg["volumes"][0]
            .as_str()
            .unwrap()
            .starts_with("postgres-data:")
    );
    let cm = &services["connect-manager"];
    assert_eq!(cm["depends_on"]["postgres"]["condition"], "service_healthy");
    assert_eq!(cm["build"], ".");
    assert!(
        cm["environment"]["DATABASE_URL"]
            .as_str()
            .unwrap()
            .starts_with("postgres://")
    );
    let help = serve_help();
    for var in cm["environment"].as_object().unwrap().keys() {
        assert!(
            help.contains(var.as_str()),
            "compose sets {var}, which serve does not read"
        );
    }
    for name in ["connect-api", "connect-sync"] {
        let s = &services[name];
        assert_eq!(
            s["profiles"],
            json!(["connect"]),
            "{name} is in the connect profile"
        );
        assert!(
            s["image"]
                .as_str()
                .unwrap()
                .starts_with(&format!("1password/{name}"))
        );
        let mounts = s["volumes"].to_string();
        assert!(
            mounts.contains(":/home/opuser/.op/1password-credentials.json"),
            "{name}: {mounts}"
        );
        assert!(
            mounts.contains("connect-data:/home/opuser/.op/data"),
            "{name} shares the data volume"
        );
    }
    // Ports only on loopback; every named volume declared.
    for (name, s) in services {
        for p in s["ports"].as_array().into_iter().flatten() {
            assert!(p.as_str().unwrap().starts_with("127.0.0.1:"), "{name}: {p}");
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            let source = v.as_str().unwrap().split(':').next().unwrap();
            if !source.starts_with('.') {
                assert!(
                    compose["volumes"].get(source).is_some(),
                    "volume {source} not declared"
                );
            }
        }
    }
    // Every variable the compose file reads is in .env.example.
    let example = read(".env.example");
    let text = read("docker-compose.yml");
    for part in text.split("${").skip(1) {
        let var: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            example.contains(&format!("{var}=")) || example.contains(&format!("# {var}=")),
            "{var} is not in .env.example"
        );
    }
}

/// Item 10: compose passes the master key and the database password as files (compose
/// `secrets`, read through `*_FILE` settings `serve` knows), never as environment variables; the
/// PostgreSQL container reads the same password file.
#[test]
fn defect_compose_passes_secrets_as_files_not_environment() {
    let compose: Value = yaml_serde::from_str(&read("docker-compose.yml")).unwrap();
    let services = compose["services"].as_object().unwrap();
    let declared = compose["secrets"].as_object().expect("top-level secrets");
    for (name, secret) in declared {
        let file = secret["file"].as_str().unwrap();
        assert!(file.starts_with("./secrets/"), "{name}: {file}");
    }
    let help = serve_help();
    let file_of = |service: &str, var: &str| -> String {
        let s = &services[service];
        let path = s["environment"][var]
            .as_str()
            .unwrap_or_else(|| panic!("{service} sets {var}"));
        let name = path
            .strip_prefix("/run/secrets/")
            .expect("a compose secret");
        assert!(
            s["secrets"].as_array().unwrap().iter().any(|x| x == name),
            "{service} mounts {name}"
        );
        declared[name]["file"].as_str().unwrap().to_owned()
    };
    for var in ["CONNECT_MANAGER_MASTER_KEY_FILE", "DATABASE_PASSWORD_FILE"] {
        assert!(help.contains(var), "serve reads {var}");
        file_of("connect-manager", var);
    }
    assert_eq!(
        file_of("connect-manager", "DATABASE_PASSWORD_FILE"),
        file_of("postgres", "POSTGRES_PASSWORD_FILE"),
        "one password file for both"
    );
    // No secret in any environment: no key or password variable, no password in a URL.
    for (name, s) in services {
        for (var, value) in s["environment"].as_object().into_iter().flatten() {
            let value = value.as_str().unwrap_or_default();
            let secret_named = ["KEY", "PASSWORD", "TOKEN", "SECRET"]
                .iter()
                .any(|w| var.contains(w));
            assert!(
                !secret_named || var.ends_with("_FILE"),
                "{name} passes {var} in its environment"
            );
            if let Some(rest) = value.split_once("://").map(|(_, r)| r) {
                let authority = rest.split('/').next().unwrap();
                if let Some((userinfo, _)) = authority.rsplit_once('@') {
                    assert!(!userinfo.contains(':'), "{name}: {var} carries a password");
                }
            }
        }
    }
    assert!(!read(".env.example").contains("MASTER_KEY="));
    assert!(!read(".env.example").contains("PASSWORD="));
}

/// Every secret a full scenario handles, searched for in a trace-level log.
#[tokio::test]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let owner = "log-test-owner-key-0123456789abcdefghijk";
    let mut cmd = command(dir.path());
    cmd.env("RUST_LOG", "trace")
        .env("LOG_FORMAT", "json")
        .env("CONNECT_MANAGER_BOOTSTRAP_KEY", owner)
        .env("CONNECT_MANAGER_AUTH_FAILURES_PER_MINUTE", "0");
    let mut app = Running::start(cmd, dir.path());
    app.wait_ready().await;
    let client = http();
    let base = app.base.clone();
    let call = |method: reqwest::Method, path: &str, key: &str, body: Option<Value>| {
        let mut r = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            r.send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap_or(Value::Null)
        }
    };
    use reqwest::Method;
    call(
        Method::POST,
        "/v1/vaults",
        owner,
        Some(json!({"name": "v", "type": "EVERYONE"})),
    )
    .await;
    let user = call(
        Method::POST,
        "/v1/users",
        owner,
        Some(json!({"name": "a", "email": "a@x.test"})),
    )
    .await;
    let user_key = call(
        Method::POST,
        &format!("/v1/users/{}/keys", user["id"].as_str().unwrap()),
        owner,
        None,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = call(
        Method::POST,
        "/v1/connect/servers",
        owner,
        Some(json!({"name": "web", "vaults": ["v"]})),
    )
    .await;
    let rotated = call(
        Method::POST,
        "/v1/connect/servers/web/credentials",
        owner,
        None,
    )
    .await;
    let token = call(
        Method::POST,
        "/v1/connect/servers/web/tokens",
        &user_key,
        Some(json!({"name": "t", "vaults": [{"vault": "v"}]})),
    )
    .await;
    assert!(
        token["error"].is_object(),
        "a user in no group may not: a denial in the log"
    );
    let token = call(
        Method::POST,
        "/v1/connect/servers/web/tokens",
        owner,
        Some(json!({"name": "t", "vaults": [{"vault": "v"}]})),
    )
    .await;
    let jwt = token["token"].as_str().unwrap().to_owned();
    let server_id = created["server"]["id"].as_str().unwrap().to_owned();
    let mut secrets = vec![
        owner.to_owned(),
        user_key.clone(),
        jwt.clone(),
        jwt.split('.').nth(2).unwrap().to_owned(),
    ];
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    secrets.push(claims["1password.com/token"].as_str().unwrap().to_owned());
    let mut basics = Vec::new();
    for c in [&created["credentials"], &rotated["credentials"]] {
        let file = serde_json::from_value(c.clone()).unwrap();
        let secret = connect_manager_core::credentials::open(&file)
            .unwrap()
            .secret;
        secrets.push(secret.clone());
        secrets.push(c["uniqueKey"]["k"].as_str().unwrap().to_owned());
        secrets.push(c["encCredentials"]["data"].as_str().unwrap().to_owned());
        basics.push(STANDARD.encode(format!("{server_id}:{secret}")));
    }
    let new_secret = secrets[secrets.len() - 3].clone();
    for (secret, expect) in [(new_secret.as_str(), true), ("wrong-secret", false)] {
        let r: Value = client
            .post(format!("{base}/v1/introspect"))
            .basic_auth(&server_id, Some(secret))
            .json(&json!({"token": jwt}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["active"].as_bool() == Some(true), expect, "{r}");
    }
    secrets.extend(basics);
    let guessed = "cmk_a-guessed-key-that-must-not-be-logged-either";
    call(Method::GET, "/v1/vaults", guessed, None).await;
    secrets.push(guessed.to_owned());
    secrets.push(
        std::fs::read_to_string(dir.path().join("data/master.key"))
            .unwrap()
            .trim()
            .to_owned(),
    );
    let log = app.stop();
    assert!(
        log.lines().count() > 50,
        "trace logging is on: {} lines",
        log.lines().count()
    );
    for s in &secrets {
        assert!(s.len() >= 20);
        assert!(
            !log.contains(s.as_str()),
            "a secret is in the log: {}…",
            &s[..6]
        );
    }
    assert!(
        !log.to_lowercase().contains("authorization: "),
        "no Authorization header is logged"
    );
    // One structured event per request: method, route, status, latency, request id, client IP.
    let finished: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["message"] == "finished processing request")
        .collect();
    assert!(finished.len() >= 10, "{}", finished.len());
    let e = finished
        .iter()
        .find(|e| e["span"]["route"] == "/v1/connect/servers/{server}/tokens")
        .unwrap();
    assert!(e["status"].is_number() && e["latency"].is_string(), "{e}");
    assert_eq!(e["span"]["method"], "POST");
    assert_eq!(e["span"]["client_ip"], "127.0.0.1");
    assert_eq!(e["span"]["request_id"].as_str().unwrap().len(), 26);
}

/// SIGTERM with a request in flight: no new connections, the request finishes, exit 0.
#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let key = "shutdown-test-key-0123456789abcdefghijkl";
    let mut app = Running::ready_with_owner(dir.path(), key).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let body = br#"{"name": "in-flight", "type": "EVERYONE"}"#;
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /v1/vaults HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..10]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    sigterm(app.child.id());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).is_err(),
        "no new connections once stopping"
    );
    stream.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = app.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(stopping.elapsed() < Duration::from_secs(15));
    assert!(
        std::fs::read_to_string(&app.log)
            .unwrap()
            .contains("connect-manager stopped")
    );
    let _ = BIN;
}
