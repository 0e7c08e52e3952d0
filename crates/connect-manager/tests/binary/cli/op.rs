//! The habits op's users bring (issue 15, SPEC "The subcommands"), against a live service on
//! each backend: `--vaults V,r` is `--vault`; `--format json` prints a list as a bare array of
//! every page's items; `-` reads what op pipes (JSON with `id`s, or lines); the global flags
//! (`--format`, `--iso-timestamps`, `--no-color`, `--debug`) go before the subcommand or after
//! it, and mean what op's do.

use std::process::Command;

use connect_manager_core::Timestamp;
use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use super::runner::{self, Cli, OWNER, table_rows};
use crate::support::{BIN, command, http, status_and_json};

/// The `id`s of a JSON list the CLI printed.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a bare array: {list}"))
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn op_vaults_flag_takes_access_suffix_like_vault(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    cli.run(&["vault", "create", "Kubernetes"]).ok();
    cli.run(&["vault", "create", "Shared"]).ok();
    cli.run(&[
        "server",
        "create",
        "web",
        "--vaults",
        "Kubernetes,Shared",
        "-f",
    ])
    .ok();
    // op's own example: read-only Kubernetes, not the vaults "Kubernetes" and "r".
    let token = cli
        .run(&[
            "token",
            "create",
            "ci",
            "--server",
            "web",
            "--vaults",
            "Kubernetes,r",
            "--vaults",
            "Shared,w",
            "--format",
            "json",
        ])
        .json();
    let acl = |name: &str| {
        let id = cli.run(&["vault", "get", name, "--format", "json"]).json()["id"].clone();
        token["vaults"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("{name} not in {token}"))["acl"]
            .clone()
    };
    assert_eq!(token["vaults"].as_array().unwrap().len(), 2, "{token}");
    assert_eq!(
        acl("Kubernetes"),
        json!(["view_items", "view_and_copy_passwords"])
    );
    assert_eq!(
        acl("Shared"),
        json!([
            "create_items",
            "edit_items",
            "archive_items",
            "delete_items"
        ])
    );
    // `--vaults` and `--vault` mix, as one flag.
    let mixed = cli
        .run(&[
            "token",
            "create",
            "cd",
            "--server",
            "web",
            "--vault",
            "Kubernetes,rw",
            "--vaults",
            "Shared",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(mixed["vaults"].as_array().unwrap().len(), 2, "{mixed}");
    app.stop();
}

async fn op_json_lists_are_bare_arrays_across_pages(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    assert_eq!(
        cli.run(&["server", "list", "--format", "json"]).json(),
        json!([])
    );
    // More vaults than the largest page (1000), so the CLI must follow next_cursor.
    let http = http();
    let total = 1003;
    let names: Vec<String> = (0..total).map(|i| format!("v{i:04}")).collect();
    for chunk in names.chunks(16) {
        let mut calls = tokio::task::JoinSet::new();
        for name in chunk {
            let call = http
                .post(format!("{}/v1/vaults", app.base))
                .bearer_auth(OWNER)
                .json(&json!({"name": name, "type": "USER_CREATED"}));
            calls.spawn(async move { call.send().await.unwrap().status().as_u16() });
        }
        while let Some(status) = calls.join_next().await {
            assert_eq!(status.unwrap(), 201);
        }
    }
    let ran = cli.run(&["vault", "list", "--format", "json", "--debug"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let traced: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(traced.len(), 2, "two pages read: {}", ran.stderr);
    assert!(traced[1].contains("cursor="), "{}", traced[1]);
    let listed: Value = serde_json::from_str(&ran.stdout).unwrap();
    let mut got = ids(&listed);
    assert_eq!(got.len(), total, "every item of every page");
    got.sort();
    got.dedup();
    assert_eq!(got.len(), total, "no item twice");
    let mut listed_names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    listed_names.sort();
    assert_eq!(listed_names, names);
    // The table too shows every page.
    assert_eq!(table_rows(&cli.run(&["vault", "ls"]).ok()).len(), total);
    // Over HTTP a list keeps its page shape.
    let (_, page) = status_and_json(
        http.get(format!("{}/v1/vaults?limit=2", app.base))
            .bearer_auth(OWNER)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());
    app.stop();
}

async fn op_dash_reads_ids_from_op_json_on_stdin(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    cli.run(&["vault", "create", "Prod"]).ok();
    for name in ["a", "b", "c"] {
        cli.run(&["server", "create", name, "--vaults", "Prod", "-f"])
            .ok();
    }
    // A list as op prints it, piped into a command that takes one reference: each is read.
    let listed = cli.run(&["server", "list", "--format", "json"]).ok();
    let got = cli
        .run_stdin(&["server", "get", "-", "--format", "json"], &listed)
        .ok();
    let got: Vec<Value> = serde_json::Deserializer::from_str(&got)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        got.iter().map(|s| s["name"].clone()).collect::<Vec<_>>(),
        [json!("c"), json!("b"), json!("a")]
    );
    // One object (a `get`), then several one after another, as several `get`s print them.
    let a = cli.run(&["server", "get", "a", "--format", "json"]).ok();
    assert!(
        cli.run_stdin(&["server", "get", "-"], &a)
            .ok()
            .contains("Name:           a")
    );
    cli.run_stdin(&["server", "edit", "-", "--name", "a2"], &a)
        .ok();
    let b = cli.run(&["server", "get", "b", "--format", "json"]).ok();
    let a2 = cli.run(&["server", "get", "a2", "--format", "json"]).ok();
    cli.run_stdin(&["server", "delete", "-"], &format!("{a2}{b}"))
        .ok();
    assert_eq!(
        ids(&cli.run(&["server", "ls", "--format", "json"]).json()).len(),
        1
    );
    // op's pipe: list | delete -.
    let c_tokens: Vec<String> = ["t1", "t2"]
        .iter()
        .map(|t| {
            cli.run(&["token", "create", t, "--server", "c", "--vault", "Prod"])
                .ok()
        })
        .collect();
    assert_eq!(c_tokens.len(), 2);
    let tokens = cli.run(&["token", "list", "--format", "json"]).ok();
    cli.run_stdin(&["token", "delete", "-"], &tokens).ok();
    let after = cli.run(&["token", "list", "--format", "json"]).json();
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "REVOKED"),
        "{after}"
    );
    let servers = cli.run(&["server", "list", "--format", "json"]).ok();
    cli.run_stdin(&["server", "delete", "-"], &servers).ok();
    assert_eq!(
        cli.run(&["server", "ls", "--format", "json"]).json(),
        json!([])
    );
    // Plain lines, one reference each.
    cli.run(&["vault", "create", "x"]).ok();
    cli.run(&["vault", "create", "y z"]).ok();
    cli.run_stdin(&["vault", "delete", "-"], "x\n\n  y z  \nProd\n")
        .ok();
    assert_eq!(
        cli.run(&["vault", "ls", "--format", "json"]).json(),
        json!([])
    );
    // JSON without an id, or several where one is expected, is an error.
    cli.run(&["group", "create", "ops"]).ok();
    cli.run_stdin(&["group", "delete", "-"], r#"[{"name": "ops"}]"#)
        .fails("no \"id\"");
    cli.run_stdin(&["group", "create", "-"], "g1\ng2\n")
        .fails("one argument");
    app.stop();
}

async fn op_global_flags_before_the_subcommand(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    cli.run(&["vault", "create", "Prod"]).ok();
    // --format before the subcommand, between, after: the same JSON.
    let before = cli.run(&["--format", "json", "vault", "list"]).json();
    assert_eq!(before.as_array().unwrap().len(), 1);
    assert_eq!(
        cli.run(&["vault", "--format", "json", "list"]).json(),
        before
    );
    assert_eq!(
        cli.run(&["vault", "list", "--format", "json"]).json(),
        before
    );
    let prod = cli.run(&["--format=json", "vault", "get", "Prod"]).json();
    let created = prod["created_at"].as_str().unwrap().to_owned();

    // Times: RFC 3339 UTC, as the API writes them, with --iso-timestamps (anywhere) ...
    for args in [
        ["--iso-timestamps", "vault", "get", "Prod"],
        ["vault", "get", "Prod", "--iso-timestamps"],
    ] {
        let out = cli.run(&args).ok();
        assert!(out.contains(&format!("Created: {created}")), "{out}");
    }
    // ... the machine's local time, readable, without it (here UTC+2, a POSIX TZ).
    let at = Timestamp::parse_rfc3339(&created).unwrap();
    let local = Timestamp(at.micros() + 2 * 3_600_000_000).to_rfc3339();
    let local = format!("{} {}", &local[..10], &local[11..19]);
    let out = cli
        .run_with(&["vault", "get", "Prod"], &[("TZ", "XYZ-2")])
        .ok();
    assert!(out.contains(&format!("Created: {local}")), "{local}: {out}");

    // Colour: on a terminal only, and not with --no-color or NO_COLOR.
    cli.run(&["server", "create", "web", "-f"]).ok();
    let piped = cli.run(&["server", "ls"]).ok();
    assert!(
        piped.contains("ACTIVE") && !piped.contains('\x1b'),
        "{piped:?}"
    );
    let terminal = |flags: &str, env: &[(&str, &str)]| in_terminal(&cli, flags, env);
    let coloured = terminal("server ls", &[]);
    assert!(coloured.contains("\x1b[32mACTIVE\x1b[0m"), "{coloured:?}");
    let rows: Vec<&str> = coloured.lines().collect();
    assert!(rows[1].contains("web"), "{coloured:?}");
    for plain in [
        terminal("--no-color server ls", &[]),
        terminal("server ls --no-color", &[]),
        terminal("server ls", &[("NO_COLOR", "1")]),
    ] {
        assert!(
            plain.contains("ACTIVE") && !plain.contains('\x1b'),
            "{plain:?}"
        );
    }
    app.stop();
}

/// What `connect-manager <args>` prints on a terminal (a pseudo-terminal from `script`).
fn in_terminal(cli: &Cli, args: &str, env: &[(&str, &str)]) -> String {
    let mut c = Command::new("script");
    c.current_dir(&cli.dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONNECT_MANAGER_URL", &cli.url)
        .env("CONNECT_MANAGER_TOKEN", &cli.key)
        .args(["-qec", &format!("{BIN} {args}"), "/dev/null"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
}

async fn op_debug_traces_calls_without_secrets(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    cli.run(&["vault", "create", "Prod"]).ok();
    let created = cli.run(&[
        "--debug", "server", "create", "web", "--vaults", "Prod", "-f",
    ]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    assert_eq!(
        created.stderr.lines().count(),
        1,
        "one call, one line: {}",
        created.stderr
    );
    let line = created.stderr.trim();
    assert!(
        line.starts_with(&format!(
            "[DEBUG] POST {}/v1/connect/servers 201 Created ",
            app.base
        )) && line.ends_with(" ms"),
        "{line}"
    );
    let file = std::fs::read_to_string(cli.credentials()).unwrap();
    let file: Value = serde_json::from_str(&file).unwrap();
    let jwt = cli
        .run(&[
            "token", "create", "ci", "--server", "web", "--vault", "Prod",
        ])
        .ok();
    let issued = cli.run(&[
        "token", "create", "cd", "--server", "web", "--vault", "Prod", "--debug",
    ]);
    assert_eq!(issued.code, 0, "{}", issued.stderr);
    let minted = issued.stdout.trim().to_owned();
    let listed = cli.run(&["token", "ls", "--debug", "--format", "json"]);
    for trace in [&created.stderr, &issued.stderr, &listed.stderr] {
        for secret in [
            OWNER,
            "Bearer",
            "Authorization",
            jwt.trim(),
            minted.as_str(),
            file["uniqueKey"]["k"].as_str().unwrap(),
            file["encCredentials"]["data"].as_str().unwrap(),
            "\"name\"",
        ] {
            assert!(!trace.contains(secret), "{secret} in {trace}");
        }
        assert!(trace.starts_with("[DEBUG] "), "{trace}");
    }
    assert!(listed.stderr.contains("GET ") && listed.stderr.contains(" 200 OK "));
    // A failed call is traced too, and the error still reads as before.
    let failed = cli.run(&["server", "ls", "--url", "http://127.0.0.1:9", "--debug"]);
    assert_eq!(failed.code, 1);
    assert!(
        failed
            .stderr
            .starts_with("[DEBUG] GET http://127.0.0.1:9/v1/connect/servers?limit=1000 no answer "),
        "{}",
        failed.stderr
    );
    assert!(failed.stderr.contains("[ERROR] cannot reach"));
    // An API error: the status is traced, the message is the API's.
    let missing = cli.run(&["--debug", "server", "get", "ghost"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains(" 404 Not Found "),
        "{}",
        missing.stderr
    );
    // Without --debug, nothing.
    assert!(cli.run(&["server", "ls"]).stderr.is_empty());
    app.stop();
}

#[test]
fn op_completions_cover_the_global_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let script = runner::completion(shell);
        for flag in [
            "format",
            "iso-timestamps",
            "no-color",
            "debug",
            "config",
            "account",
        ] {
            assert!(script.contains(flag), "{shell} completion lacks --{flag}");
        }
        // Every command issue 15 added, and their own flags.
        for word in [
            "account",
            "forget",
            "shorthand",
            "address",
            "rotate-credentials",
            "audit",
            "follow",
            "since",
            "signing-key",
            "retire",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    // Usage errors in the new commands exit 2, as every usage error does.
    for args in [
        &["account", "add"][..],
        &["account", "forget"],
        &[
            "audit",
            "list",
            "--follow",
            "--until",
            "2026-01-01T00:00:00Z",
        ],
        &["audit", "list", "--interval", "5"],
        &["audit", "list", "--limit", "0"],
        &["signing-key", "retire"],
        &["server", "rotate-credentials"],
    ] {
        let out = command(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
    let help = String::from_utf8(
        command(dir.path())
            .args(["token", "create", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(help.contains("--vault <VAULT[,r|,w|,rw]>"), "{help}");
    assert!(help.contains("vaults"), "{help}");
}

backend_tests!(
    op_vaults_flag_takes_access_suffix_like_vault,
    op_json_lists_are_bare_arrays_across_pages,
    op_dash_reads_ids_from_op_json_on_stdin,
    op_global_flags_before_the_subcommand,
    op_debug_traces_calls_without_secrets,
);
