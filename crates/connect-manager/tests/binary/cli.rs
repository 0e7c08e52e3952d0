//! The client commands, run as a user runs them against a live service on each backend: every
//! subcommand and flag, with stdout, stderr, exit codes and the credentials file checked.
//!
//! Here: the end-to-end run and the help and completion scripts; `cli/op.rs`: the habits op's
//! users bring (issue 15: `--vaults V,r`, JSON lists as bare arrays, `-` reading op's JSON, the
//! global flags anywhere); `cli/accounts.rs`: saved accounts (`account add|list|forget`);
//! `cli/more.rs`: what only curl reached before (`server rotate-credentials`, `audit list`,
//! `signing-key …`); `cli/trust.rs`: workload identity (`issuer …`, `trust …`, `token exchange`);
//! `cli/runner.rs`: starting the service, running a command as a user
//! and reading what it printed.

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;

use crate::support::command;

mod accounts;
mod expiry;
mod identity_provider;
mod more;
mod op;
mod runner;
mod trust;
use runner::{credentials_server_id, table_rows};

async fn cli_end_to_end(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;

    // ---- the vault registry ------------------------------------------------------------------
    let out = cli
        .run(&["vault", "create", "Prod", "--type", "USER_CREATED"])
        .ok();
    assert_eq!(
        out.lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["ID", "NAME", "TYPE"]
    );
    assert!(out.contains("Prod") && out.contains("USER_CREATED"));
    let shared = cli
        .run(&[
            "vault", "create", "Shared", "--type", "everyone", "--format", "json",
        ])
        .json();
    assert_eq!(shared["type"], "EVERYONE");
    cli.run(&["vault", "create", "Mine", "--type", "PERSONAL"])
        .ok();
    cli.run(&["vault", "create", "Bad", "--type", "NOPE"])
        .fails("--type must be one of");
    assert_eq!(table_rows(&cli.run(&["vault", "ls"]).ok()).len(), 3);
    assert!(cli.run(&["vault", "get", "prod"]).ok().contains("Type:"));
    assert_eq!(
        cli.run(&[
            "vault", "edit", "Shared", "--name", "Shared2", "--format", "json"
        ])
        .json()["name"],
        "Shared2"
    );
    cli.run(&["vault", "edit", "Shared2", "--name", "Shared"])
        .ok();
    cli.run(&["vault", "create", "prod"])
        .fails("already exists");

    // ---- server create and the credentials file ---------------------------------------------
    let out = cli
        .run(&["server", "create", "web", "--vaults", "Prod,Shared"])
        .ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Set up a Connect server.");
    let web_id = lines[1].strip_prefix("UUID: ").unwrap().to_owned();
    assert_eq!(web_id.len(), 26);
    let path = std::fs::canonicalize(cli.credentials()).unwrap();
    assert_eq!(lines[2], format!("Credentials file: {}", path.display()));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(credentials_server_id(&path), web_id);
    let shown = cli.run(&["credentials", "show"]).ok();
    assert!(shown.contains(&web_id) && shown.contains("hidden"));
    assert!(
        !cli.run(&["credentials", "show", "--reveal"])
            .ok()
            .contains("hidden")
    );
    // No terminal and no -f: refuse, keep the file, create nothing.
    cli.run(&["server", "create", "api"]).fails("-f");
    assert_eq!(credentials_server_id(&path), web_id);
    assert!(!cli.run(&["server", "ls"]).ok().contains("api"));
    let out = cli.run(&["server", "create", "api", "-f"]).ok();
    let api_id = out
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("UUID: ")
        .unwrap()
        .to_owned();
    assert_eq!(
        credentials_server_id(&path),
        api_id,
        "-f overwrote the file"
    );
    let json = cli
        .run(&[
            "server",
            "create",
            "json-server",
            "--force",
            "--format",
            "json",
        ])
        .json();
    assert!(json["server"]["id"].is_string() && json["credentials"]["encCredentials"].is_object());
    cli.run(&["server", "delete", "json-server"]).ok();

    // ---- server list, get, edit; formats; `-` from stdin --------------------------------------
    let rows = table_rows(&cli.run(&["server", "list"]).ok());
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        [api_id.as_str(), "api", "ACTIVE"],
        "newest first, aligned columns"
    );
    assert_eq!(
        cli.run(&["server", "ls"]).ok(),
        cli.run(&["server", "list"]).ok()
    );
    let web = cli
        .run(&["server", "get", "web", "--format", "json"])
        .json();
    assert_eq!(web["vaults"].as_array().unwrap().len(), 2);
    let web_env = cli
        .run_with(
            &["server", "get", "WEB"],
            &[("CONNECT_MANAGER_FORMAT", "json")],
        )
        .json();
    assert_eq!(web_env["id"], web["id"]);
    assert!(
        cli.run(&["server", "get", &web_id])
            .ok()
            .contains("Tokens version: 1")
    );
    cli.run(&["server", "edit", "api", "--name", "api2"]).ok();
    assert!(
        cli.run_stdin(&["server", "get", "-"], "api2\n")
            .ok()
            .contains(&api_id)
    );
    cli.run(&["server", "get", "ghost"]).fails("not found");

    // ---- vault grant / revoke ------------------------------------------------------------------
    cli.run(&["vault", "grant", "--server", "api2", "--vault", "Prod"])
        .ok();
    cli.run(&["vault", "revoke", "--server", "api2", "--vault", "Prod"])
        .ok();
    cli.run(&["vault", "revoke", "--server", "api2", "--vault", "Prod"])
        .fails("not found");
    cli.run(&["vault", "grant", "--server", "web", "--vault", "Mine"])
        .fails(
            "can't grant a Connect server access to a built-in Personal, Private or Employee vault",
        );
    assert_eq!(
        cli.run(&[
            "vault", "grant", "--server", "api2", "--vault", "Shared", "--format", "json"
        ])
        .json()["vaults"][0]["name"],
        "Shared"
    );

    // ---- tokens --------------------------------------------------------------------------------
    let jwt = cli
        .run(&[
            "token", "create", "ci", "--server", "web", "--vault", "Prod,r", "--vault", "Shared",
        ])
        .ok();
    assert_eq!(jwt.lines().count(), 1, "only the JWT: {jwt}");
    assert_eq!(jwt.trim().split('.').count(), 3);
    let created = cli
        .run(&[
            "token",
            "create",
            "cd",
            "--server",
            "web",
            "--vaults",
            "Prod",
            "--vaults",
            "Shared",
            "--expires-in",
            "1w2d",
            "--format",
            "json",
        ])
        .json();
    assert!(
        created["token"].as_str().unwrap().split('.').count() == 3
            && created["expires_at"].is_string()
    );
    cli.run(&[
        "token",
        "create",
        "x",
        "--server",
        "web",
        "--vault",
        "Prod",
        "--expires-in",
        "5x",
    ])
    .fails("expires_in");
    cli.run(&["token", "create", "x", "--server", "web"])
        .fails("at least one vault");
    let listed = cli
        .run(&["token", "list", "--server", "web", "--format", "json"])
        .json();
    let ci = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap()
        .clone();
    let prod_id = cli
        .run(&["vault", "get", "Prod", "--format", "json"])
        .json()["id"]
        .clone();
    let prod_acl = ci["vaults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == prod_id)
        .unwrap()["acl"]
        .clone();
    assert_eq!(
        prod_acl,
        serde_json::json!(["view_items", "view_and_copy_passwords"])
    );
    let rows = table_rows(&cli.run(&["token", "ls", "--server", "web"]).ok());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1], "cd");
    cli.run(&["token", "edit", "ci", "--name", "ci2", "--server", "web"])
        .ok();
    cli.run(&["token", "rm", "ci2"]).ok();
    let revoked = cli.run(&["token", "ls", "--format", "json"]).json();
    let ci2 = revoked
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci2")
        .unwrap()
        .clone();
    assert_eq!(ci2["state"], "REVOKED");
    assert!(
        table_rows(&cli.run(&["token", "list"]).ok())
            .iter()
            .any(|r| r.contains(&"REVOKED".to_owned()))
    );
    // Names may repeat; then the server (or an ID) tells them apart.
    cli.run(&[
        "token", "create", "dup", "--server", "web", "--vault", "Prod",
    ])
    .ok();
    cli.run(&[
        "token", "create", "dup", "--server", "api2", "--vault", "Shared",
    ])
    .ok();
    cli.run(&["token", "delete", "dup"]).fails("candidates");
    cli.run(&["token", "remove", "dup", "--server", "api2"])
        .ok();
    cli.run_stdin(&["token", "delete", "-"], "cd").ok();

    // ---- users, keys, groups and grants ---------------------------------------------------------
    let ann = cli
        .run(&[
            "user",
            "create",
            "--name",
            "Ann",
            "--email",
            "ann@example.test",
            "--format",
            "json",
        ])
        .json();
    let ann_key = cli
        .run(&["user", "key", "create", "ann@example.test"])
        .ok()
        .trim()
        .to_owned();
    assert!(ann_key.starts_with("cmk_"));
    assert_eq!(
        table_rows(&cli.run(&["user", "key", "ls", "ann@example.test"]).ok()).len(),
        1
    );
    assert_eq!(table_rows(&cli.run(&["user", "ls"]).ok()).len(), 2);
    assert!(
        cli.run(&["user", "get", "ann@example.test"])
            .ok()
            .contains("Ann")
    );
    let as_ann = |args: &[&str]| cli.run_with(args, &[("CONNECT_MANAGER_TOKEN", ann_key.as_str())]);
    as_ann(&["vault", "create", "X"]).fails("only owners");
    assert!(table_rows(&as_ann(&["server", "ls"]).ok()).is_empty());
    cli.run(&["group", "create", "ops"]).ok();
    cli.run(&[
        "group",
        "add-member",
        "--group",
        "ops",
        "--user",
        "ann@example.test",
    ])
    .ok();
    cli.run(&["group", "grant", "--group", "ops"]).ok();
    cli.run(&["group", "grant", "--group", "ops", "--all-servers"])
        .ok();
    cli.run(&["group", "grant", "--group", "ops", "--server", "web"])
        .ok();
    let ops = cli.run(&["group", "get", "ops", "--format", "json"]).json();
    assert_eq!(ops["grants"].as_array().unwrap().len(), 3);
    assert_eq!(ops["members"], serde_json::json!([ann["id"]]));
    assert_eq!(
        table_rows(&as_ann(&["server", "ls"]).ok()).len(),
        2,
        "Ann manages every server now"
    );
    as_ann(&["server", "create", "anns", "-f"]).ok();
    cli.run(&["group", "revoke", "--group", "ops"]).ok();
    cli.run(&["group", "revoke", "--group", "ops", "--all-servers"])
        .ok();
    cli.run(&["group", "revoke", "--group", "ops", "--server", "web"])
        .ok();
    cli.run(&["group", "revoke", "--group", "ops"])
        .fails("not found");
    let usage = cli.run(&[
        "group",
        "grant",
        "--group",
        "ops",
        "--server",
        "web",
        "--all-servers",
    ]);
    assert_eq!(usage.code, 2, "usage errors exit 2: {}", usage.stderr);
    assert!(table_rows(&cli.run(&["group", "ls"]).ok()).len() >= 2);
    cli.run(&[
        "group",
        "remove-member",
        "--group",
        "ops",
        "--user",
        "ann@example.test",
    ])
    .ok();
    cli.run(&["group", "rm", "ops"]).ok();
    let key_id = cli
        .run(&[
            "user",
            "key",
            "list",
            "ann@example.test",
            "--format",
            "json",
        ])
        .json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.run(&["user", "key", "delete", "ann@example.test", &key_id])
        .ok();
    as_ann(&["server", "ls"]).fails("not valid");
    cli.run(&["user", "rm", "ann@example.test"]).ok();

    // ---- server delete, several at once; vault delete ------------------------------------------
    cli.run(&["server", "delete", "web", "api2", "anns"]).ok();
    assert!(table_rows(&cli.run(&["server", "ls"]).ok()).is_empty());
    cli.run(&["server", "rm", "web"]).fails("not found");
    let after = cli
        .run(&["token", "ls", "--server", &web_id, "--format", "json"])
        .json();
    assert!(
        after
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "REVOKED")
    );
    cli.run(&["vault", "delete", "Mine"]).ok();

    // ---- errors and usage ------------------------------------------------------------------------
    cli.run_with(&["server", "ls"], &[("CONNECT_MANAGER_TOKEN", "")])
        .fails("no API key");
    cli.run_with(&["server", "ls"], &[("CONNECT_MANAGER_TOKEN", "cmk_wrong")])
        .fails("not valid");
    cli.run(&["server", "ls", "--url", "http://127.0.0.1:9"])
        .fails("cannot reach");
    let usage = cli.run(&["server", "create"]);
    assert_eq!(usage.code, 2, "{}", usage.stderr);
    assert!(usage.stderr.contains("Usage"));
    let usage = cli.run(&[
        "token", "create", "t", "--server", "web", "--format", "yaml",
    ]);
    assert_eq!(usage.code, 2);
    app.stop();
}

#[test]
fn completion_scripts_and_help() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = runner::completion(shell);
        assert!(
            script.contains("connect-manager") && script.contains("token"),
            "{shell}"
        );
    }
    let help =
        String::from_utf8(command(dir.path()).arg("--help").output().unwrap().stdout).unwrap();
    for sub in [
        "server",
        "token",
        "vault",
        "group",
        "user",
        "credentials",
        "admin",
        "completion",
        "serve",
    ] {
        assert!(help.contains(sub), "--help lacks {sub}");
    }
    let help = String::from_utf8(
        command(dir.path())
            .args(["server", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(help.contains("[aliases: remove, rm]"), "{help}");
    let serve_help = String::from_utf8(
        command(dir.path())
            .args(["serve", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for env in [
        "CONNECT_MANAGER_BIND",
        "CONNECT_MANAGER_DATA_DIR",
        "DATABASE_URL",
        "CONNECT_MANAGER_MASTER_KEY",
        "CONNECT_MANAGER_MASTER_KEY_FILE",
        "CONNECT_MANAGER_BOOTSTRAP_KEY",
        "CONNECT_MANAGER_BOOTSTRAP_KEY_FILE",
        "CONNECT_MANAGER_PUBLIC_URL",
        "LOG_FORMAT",
    ] {
        assert!(serve_help.contains(env), "serve --help lacks {env}");
    }
}

backend_tests!(cli_end_to_end);
