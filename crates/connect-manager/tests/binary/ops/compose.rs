//! The compose file as shipped: its services, profiles, ports, health checks and secrets, checked
//! against the settings the binary knows.

use serde_json::{Value, json};

use super::{read, serve_help};
use crate::support::command;

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
