//! Workload identity's commands (issue 18) against a live service on each backend: `issuer
//! add|list|remove`, `trust create|list|get|delete` and `token exchange`'s refusals (a real
//! exchange, against a real identity provider, is `identity_provider.rs`), and docs/exchange.md's
//! examples of them, run as written.

use std::io::{Read, Write};
use std::net::TcpListener;

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;

use super::runner::{self, Cli, table_rows};

/// An OIDC issuer on loopback that serves only its discovery document and a JWKS of one ES256
/// public key: enough to be trusted (`issuer add`), never to sign anything. Its thread serves
/// until the test process ends. Its URL.
pub(super) fn static_issuer() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "id_token_signing_alg_values_supported": ["ES256"],
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
    })
    .to_string();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "use": "sig", "kid": "static-1", "alg": "ES256", "crv": "P-256",
        "x": "d27kgsMfFJ41jJq2Q2EEybX6rfD0wF5KNIOosWGIDYA",
        "y": "0HXY_P1j0fdjXbSbVJaFv6hlxIByDmwLc6udoo5IaG8",
    }]})
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&request);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = match path {
                "/.well-known/openid-configuration" => ("200 OK", discovery.as_str()),
                "/jwks" => ("200 OK", jwks.as_str()),
                _ => ("404 Not Found", "{}"),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    issuer
}

/// What `--format json` printed, parsed.
fn json(cli: &Cli, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    cli.run(&args).json()
}

async fn issuer_and_trust_commands_manage_issuers_and_policies(db: TestDb) {
    let (_dir, app, cli) =
        runner::start_with(&db, &[("CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS", "true")]).await;
    let prod = json(&cli, &["vault", "create", "Prod"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    json(&cli, &["vault", "create", "Staging"]);
    cli.run(&["server", "create", "web", "--vaults", "Prod,Staging"])
        .ok();
    cli.run(&["server", "create", "api", "--vaults", "Prod", "-f"])
        .ok();

    // ---- issuer add | list ---------------------------------------------------------------------
    let issuer = static_issuer();
    let out = cli.run(&["issuer", "add", &issuer, "--name", "ci"]).ok();
    let rows = table_rows(&out);
    assert_eq!(
        out.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["ID", "NAME", "ISSUER", "CREATED"]
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0][1].as_str(), rows[0][2].as_str()),
        ("ci", issuer.as_str())
    );
    let listed = json(&cli, &["issuer", "ls"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["issuer"], issuer.as_str());
    assert_eq!(listed[0]["name"], "ci");
    // Plain http is for loopback only, and only with the setting; the API's reason is shown.
    cli.run(&[
        "issuer",
        "add",
        "http://issuer.example.test",
        "--name",
        "plain",
    ])
    .fails("https");
    // Owners only: a key of nobody in particular is refused.
    cli.run_with(
        &["issuer", "list"],
        &[("CONNECT_MANAGER_TOKEN", "cmk_not_a_key_0123456789")],
    )
    .fails("");

    // ---- trust create ------------------------------------------------------------------------
    let out = cli
        .run(&[
            "trust",
            "create",
            "deploy",
            "--server",
            "web",
            "--issuer",
            "ci",
            "--audience",
            "https://connect.example.test",
            "--subject",
            "repo:acme/api:ref:refs/heads/*",
            "--claim",
            "environment=production",
            "--claim",
            "ref_type=branch",
            "--vault",
            "Prod,r",
            "--ttl",
            "30m",
        ])
        .ok();
    let field = |out: &str, key: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} in {out}"))
            .trim()
            .to_owned()
    };
    assert_eq!(field(&out, "Name"), "deploy");
    assert_eq!(field(&out, "Audience"), "https://connect.example.test");
    assert_eq!(field(&out, "Subject"), "repo:acme/api:ref:refs/heads/*");
    assert_eq!(
        field(&out, "Claims"),
        "environment=production, ref_type=branch"
    );
    assert_eq!(field(&out, "Vaults"), format!("{prod},r"));
    assert_eq!(field(&out, "TTL"), "30m");
    assert!(field(&out, "Issuer").starts_with(&issuer));
    let first = json(&cli, &["trust", "get", "deploy", "--server", "web"]);

    // The issuer by its URL; the vault with the server's access; the default TTL (15 minutes).
    let second = json(
        &cli,
        &[
            "trust",
            "create",
            "any-branch",
            "--server",
            "web",
            "--issuer",
            &issuer,
            "--audience",
            "https://connect.example.test",
            "--subject",
            "repo:acme/api:*",
            "--vault",
            "Staging",
        ],
    );
    assert_eq!(second["ttl_seconds"], 900);
    assert_eq!(second["claims"], serde_json::json!({}));
    assert_eq!(second["vaults"][0]["acl"].as_array().unwrap().len(), 6);
    assert_eq!(second["issuer"], issuer.as_str());
    let third = json(
        &cli,
        &[
            "trust",
            "create",
            "api-main",
            "--server",
            "api",
            "--issuer",
            "ci",
            "--audience",
            "connect",
            "--subject",
            "system:serviceaccount:apps:api",
            "--vault",
            "Prod,w",
            "--ttl",
            "1h",
        ],
    );
    assert_eq!(third["ttl_seconds"], 3600);
    assert_eq!(
        third["vaults"][0]["acl"],
        serde_json::json!([
            "create_items",
            "edit_items",
            "archive_items",
            "delete_items"
        ])
    );

    // What the command itself refuses, and what the API refuses (its reason shown).
    let refused = cli.run(&[
        "trust",
        "create",
        "x",
        "--server",
        "web",
        "--issuer",
        "ci",
        "--audience",
        "a",
        "--subject",
        "s",
        "--vault",
        "Prod",
        "--claim",
        "environment",
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("NAME=PATTERN"),
        "{}",
        refused.stderr
    );
    cli.run(&[
        "trust",
        "create",
        "x",
        "--server",
        "web",
        "--issuer",
        "ci",
        "--audience",
        "a",
        "--subject",
        "s",
        "--vault",
        "Prod",
        "--claim",
        "env=a",
        "--claim",
        "env=b",
    ])
    .fails("--claim env=… is given twice");
    let missing_vault = cli.run(&[
        "trust",
        "create",
        "x",
        "--server",
        "web",
        "--issuer",
        "ci",
        "--audience",
        "a",
        "--subject",
        "s",
    ]);
    assert_eq!(missing_vault.code, 2, "{}", missing_vault.stderr);
    cli.run(&[
        "trust",
        "create",
        "x",
        "--server",
        "web",
        "--issuer",
        "ci",
        "--audience",
        "a",
        "--subject",
        "s",
        "--vault",
        "Prod",
        "--ttl",
        "25h",
    ])
    .fails("");
    cli.run(&[
        "trust",
        "create",
        "x",
        "--server",
        "web",
        "--issuer",
        "nobody",
        "--audience",
        "a",
        "--subject",
        "s",
        "--vault",
        "Prod",
    ])
    .fails("");

    // ---- shown on the server: `server get` lists its policies; JSON stays the server's ---------------
    let shown = cli.run(&["server", "get", "web"]).ok();
    let (_, policies) = shown
        .split_once("Trust policies:")
        .expect("a policies table");
    assert!(policies.contains("deploy"), "{shown}");
    cli.run(&["server", "create", "bare", "-f"]).ok();
    assert!(
        !cli.run(&["server", "get", "bare"])
            .ok()
            .contains("Trust policies")
    );
    assert!(
        json(&cli, &["server", "get", "web"])
            .get("trust_policies")
            .is_none()
    );

    // ---- trust list | get --------------------------------------------------------------------
    let out = cli.run(&["trust", "list", "--server", "web"]).ok();
    assert_eq!(
        out.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["ID", "NAME", "SERVER", "ISSUER", "SUBJECT", "VAULTS", "TTL"]
    );
    let names: Vec<String> = table_rows(&out).iter().map(|r| r[1].clone()).collect();
    // In the order they are tried: oldest first (created in the same second: by ID).
    let mut tried = [&first, &second];
    tried.sort_by_key(|p| {
        (
            p["created_at"].as_str().unwrap().to_owned(),
            p["id"].as_str().unwrap().to_owned(),
        )
    });
    assert_eq!(
        names,
        tried.map(|p| p["name"].as_str().unwrap()),
        "in the order they are tried"
    );
    assert_eq!(json(&cli, &["trust", "ls"]).as_array().unwrap().len(), 3);
    let api_only = json(&cli, &["trust", "ls", "--server", "api"]);
    assert_eq!(api_only.as_array().unwrap().len(), 1);
    assert_eq!(api_only[0]["name"], "api-main");
    let got = cli.run(&["trust", "get", "deploy", "--server", "web"]).ok();
    assert_eq!(field(&got, "Subject"), "repo:acme/api:ref:refs/heads/*");
    let got = json(&cli, &["trust", "get", "deploy", "--server", "web"]);
    assert_eq!(got["claims"]["environment"], "production");
    assert_eq!(got["ttl_seconds"], 1800);
    cli.run(&["trust", "get", "deploy", "--server", "api"])
        .fails("");

    // ---- removal -------------------------------------------------------------------------------
    // An issuer that a policy names stays.
    cli.run(&["issuer", "remove", "ci"]).fails("");
    assert_eq!(
        cli.run(&["trust", "delete", "deploy", "--server", "web"])
            .ok(),
        ""
    );
    cli.run(&["trust", "get", "deploy", "--server", "web"])
        .fails("");
    cli.run_stdin(&["trust", "rm", "-", "--server", "web"], "any-branch\n")
        .ok();
    let id = third["id"].as_str().unwrap();
    cli.run(&["trust", "delete", id, "--server", "api"]).ok();
    assert_eq!(json(&cli, &["trust", "list"]), serde_json::json!([]));
    // By its URL, as it was added.
    assert_eq!(cli.run(&["issuer", "remove", &issuer]).ok(), "");
    assert_eq!(json(&cli, &["issuer", "list"]), serde_json::json!([]));
    cli.run(&["issuer", "remove", "ci"]).fails("");
    app.stop();
}

/// `token exchange` needs no API key; a refusal is one line with the RFC 6749 error and exit 1,
/// and never shows the subject token, from a file or from standard input.
async fn token_exchange_refusals_are_one_line_without_the_subject_token(db: TestDb) {
    let (_dir, app, cli) =
        runner::start_with(&db, &[("CONNECT_MANAGER_ALLOW_INSECURE_ISSUERS", "true")]).await;
    cli.run(&["vault", "create", "Prod"]).ok();
    cli.run(&["server", "create", "web", "--vaults", "Prod"])
        .ok();
    // Well-formed, signed by nobody the service trusts.
    let subject = "eyJhbGciOiJFUzI1NiIsImtpZCI6Im5vYm9keSJ9.eyJpc3MiOiJodHRwczovL25vYm9keS5leGFtcGxlLnRlc3QiLCJzdWIiOiJTVUJKRUNULU1BUktFUiIsImF1ZCI6ImNvbm5lY3QiLCJleHAiOjQxMDI0NDQ4MDB9.c2lnbmF0dXJlLW1hcmtlci1ub3QtYS1yZWFsLW9uZQ";
    let file = cli.dir.join("subject.jwt");
    std::fs::write(&file, format!("{subject}\n")).unwrap();
    let no_key = |args: &[&str], stdin: Option<&str>| {
        let mut c = cli.cmd(args);
        c.env_remove("CONNECT_MANAGER_TOKEN");
        match stdin {
            Some(input) => Cli::output_stdin(c, input),
            None => Cli::output(c),
        }
    };
    let check = |ran: runner::Ran| {
        let stderr = ran.fails("token exchange refused (invalid_");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        for part in subject.split('.') {
            assert!(!stderr.contains(part), "the subject token shown: {stderr}");
        }
    };
    check(no_key(
        &[
            "token",
            "exchange",
            "--server",
            "web",
            "--subject-token-file",
            file.to_str().unwrap(),
        ],
        None,
    ));
    check(no_key(
        &[
            "token",
            "exchange",
            "--server",
            "web",
            "--subject-token-file",
            "-",
        ],
        Some(subject),
    ));
    // --debug traces the call, never the form.
    let mut c = cli.cmd(&[
        "token",
        "exchange",
        "--server",
        "web",
        "--subject-token-file",
        "-",
        "--debug",
    ]);
    c.env_remove("CONNECT_MANAGER_TOKEN");
    let ran = Cli::output_stdin(c, subject);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("[DEBUG] POST "), "{}", ran.stderr);
    assert!(!ran.stderr.contains("SUBJECT") && !ran.stderr.contains(&subject[..40]));
    // Not a JWT at all, an unknown server: refused by the service, still one line.
    check(no_key(
        &[
            "token",
            "exchange",
            "--server",
            "web",
            "--subject-token-file",
            "-",
        ],
        Some("not-a-jwt"),
    ));
    check(no_key(
        &[
            "token",
            "exchange",
            "--server",
            "nosuch",
            "--subject-token-file",
            file.to_str().unwrap(),
        ],
        None,
    ));
    // What the command itself refuses, before asking anything.
    let empty = cli.dir.join("empty.jwt");
    std::fs::write(&empty, "\n").unwrap();
    no_key(
        &[
            "token",
            "exchange",
            "--server",
            "web",
            "--subject-token-file",
            empty.to_str().unwrap(),
        ],
        None,
    )
    .fails("is empty");
    no_key(
        &[
            "token",
            "exchange",
            "--server",
            "web",
            "--subject-token-file",
            "/nonexistent/jwt",
        ],
        None,
    )
    .fails("cannot read the subject token file /nonexistent/jwt");
    app.stop();
}

/// The `connect-manager` commands in docs/exchange.md's Examples (issuer add, trust create),
/// each with its continuation lines joined: the words of each, quotes removed.
fn docs_example_commands() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/exchange.md"
    ))
    .unwrap();
    let examples = &doc[doc.find("## Examples").expect("an Examples section")..];
    let mut commands = Vec::new();
    for block in examples.split("```sh\n").skip(1) {
        let block = &block[..block.find("```").unwrap()];
        let joined = block.replace("\\\n", " ");
        for line in joined.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("connect-manager ") {
                commands.push(shell_words(rest));
            }
        }
    }
    commands
}

/// Words split on white space, `'…'` quoting (all the docs use).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => {
                words.extend(word.take());
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(!quoted, "unbalanced quote in {line}");
    words.extend(word);
    words
}

/// docs/exchange.md's `issuer add` and `trust create` commands run as written (adding an issuer
/// fetches nothing, so GitHub's, GitLab's and a cluster's URLs are taken offline), and make what
/// the docs say.
async fn exchange_docs_examples_run_as_written(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    cli.run(&["vault", "create", "Production"]).ok();
    cli.run(&["server", "create", "web", "--vaults", "Production"])
        .ok();
    let commands = docs_example_commands();
    let mut policies = Vec::new();
    for words in &commands {
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        cli.run(&args).ok();
        if args[..2] == ["trust", "create"] {
            policies.push(args[2].to_owned());
        }
    }
    let issuers = json(&cli, &["issuer", "list"]);
    let mut urls: Vec<&str> = issuers
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["issuer"].as_str().unwrap())
        .collect();
    urls.sort_unstable();
    assert_eq!(
        urls,
        [
            "https://gitlab.com",
            "https://oidc.prod-cluster.example.com",
            "https://token.actions.githubusercontent.com",
        ]
    );
    let listed = json(&cli, &["trust", "list", "--server", "web"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, policies);
    assert_eq!(policies.len(), 4, "{commands:?}");
    let gitlab = json(&cli, &["trust", "get", "api-gitlab", "--server", "web"]);
    assert_eq!(
        gitlab["subject"],
        "project_path:acme/api:ref_type:branch:ref:main"
    );
    assert_eq!(gitlab["claims"]["ref_protected"], "true");
    assert_eq!(gitlab["ttl_seconds"], 900);
    app.stop();
}

backend_tests!(
    issuer_and_trust_commands_manage_issuers_and_policies,
    token_exchange_refusals_are_one_line_without_the_subject_token,
    exchange_docs_examples_run_as_written,
);
