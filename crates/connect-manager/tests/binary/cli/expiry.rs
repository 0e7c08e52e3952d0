//! Expiry you can see, from the CLI (issue 18): `token list --expiring-within/--unused-for`
//! (with `--server`), in the table and in JSON; `user key create --name --expires-in` and the
//! key list's columns; an expired key's refusal as the user reads it.

use std::time::Duration;

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::Value;

use super::runner::{self, Cli, table_rows};

/// The names of a JSON token list, sorted.
fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .expect("a bare JSON array")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn token(cli: &Cli, name: &str, server: &str, expires_in: Option<&str>) {
    let mut args = vec![
        "token", "create", name, "--server", server, "--vault", "Prod",
    ];
    if let Some(e) = expires_in {
        args.extend(["--expires-in", e]);
    }
    cli.run(&args).ok();
}

async fn token_list_filters_expiring_within_and_unused_for(db: TestDb) {
    let (_dir, _app, cli) = runner::start(&db).await;
    cli.run(&["vault", "create", "Prod"]).ok();
    for server in ["web", "api"] {
        cli.run(&["server", "create", server, "--vaults", "Prod", "-f"])
            .ok();
    }
    token(&cli, "soon", "web", Some("2d"));
    token(&cli, "later", "web", Some("30d"));
    token(&cli, "forever", "web", None);
    token(&cli, "api-soon", "api", Some("1d"));
    token(&cli, "revoked-soon", "web", Some("1d"));
    cli.run(&["token", "delete", "revoked-soon", "--server", "web"])
        .ok();

    let json = |args: &[&str]| {
        let mut all = vec!["token", "list", "--format", "json"];
        all.extend(args);
        names(&cli.run(&all).json())
    };
    assert_eq!(json(&["--expiring-within", "7d"]), ["api-soon", "soon"]);
    assert_eq!(
        json(&["--expiring-within", "7d", "--server", "web"]),
        ["soon"]
    );
    // Nothing was used: every live token is unused, the revoked one is not live.
    assert_eq!(
        json(&["--unused-for", "30d", "--server", "web"]),
        ["forever", "later", "soon"]
    );
    assert_eq!(
        json(&["--expiring-within", "1w", "--unused-for", "30d"]),
        ["api-soon", "soon"]
    );
    assert_eq!(json(&[]).len(), 5, "without a filter: every token");

    // The table shows the same tokens.
    let table = cli
        .run(&[
            "token",
            "list",
            "--expiring-within",
            "7d",
            "--server",
            "web",
        ])
        .ok();
    let rows = table_rows(&table);
    assert_eq!(rows.len(), 1, "{table}");
    assert_eq!(rows[0][1], "soon");

    // A duration that is not R7's is the API's 422, named.
    cli.run(&["token", "list", "--expiring-within", "5x"])
        .fails("expiring_within");
    cli.run(&["token", "list", "--unused-for", "0d"])
        .fails("unused_for");
}

async fn user_key_create_names_and_expires_keys(db: TestDb) {
    let (_dir, _app, cli) = runner::start(&db).await;
    cli.run(&[
        "user",
        "create",
        "--name",
        "Ann",
        "--email",
        "ann@example.test",
    ])
    .ok();
    cli.run(&[
        "group",
        "add-member",
        "--group",
        "owners",
        "--user",
        "ann@example.test",
    ])
    .ok();
    let created = cli
        .run(&[
            "user",
            "key",
            "create",
            "ann@example.test",
            "--name",
            "deploy bot",
            "--expires-in",
            "90d",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(created["name"], "deploy bot");
    assert!(created["expires_at"].is_string());
    let plain = cli
        .run(&["user", "key", "create", "ann@example.test"])
        .ok()
        .trim()
        .to_owned();
    assert!(plain.starts_with("cmk_"), "the key alone on stdout");
    let short = cli
        .run(&[
            "user",
            "key",
            "create",
            "ann@example.test",
            "--name",
            "short",
            "--expires-in",
            "3s",
        ])
        .ok()
        .trim()
        .to_owned();

    let table = cli.run(&["user", "key", "list", "ann@example.test"]).ok();
    let header = table.lines().next().unwrap();
    for column in ["ID", "NAME", "CREATED", "EXPIRES", "LAST USED"] {
        assert!(header.contains(column), "{header}");
    }
    let rows = table_rows(&table);
    assert_eq!(rows.len(), 3, "{table}");
    let deploy = rows.iter().find(|r| r[1] == "deploy bot").expect("{table}");
    assert_eq!(deploy[4], "never", "not used yet: {table}");
    let plain_row = rows.iter().find(|r| r[1] == "key").expect("{table}");
    assert_eq!(plain_row[3], "never", "does not expire: {table}");

    let listed = cli
        .run(&[
            "user",
            "key",
            "list",
            "ann@example.test",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    for key in listed.as_array().unwrap() {
        assert!(
            key["last_used_at"].is_null() && key["expired"].is_boolean(),
            "{key}"
        );
        if key["name"] != "short" {
            assert_eq!(key["expired"], false, "{key}");
        }
    }

    // An expired key: the user reads that it expired.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    cli.run_with(
        &["vault", "list"],
        &[("CONNECT_MANAGER_TOKEN", short.as_str())],
    )
    .fails("expired");
    cli.run_with(
        &["vault", "list"],
        &[("CONNECT_MANAGER_TOKEN", plain.as_str())],
    )
    .ok();
    let bad = cli.run(&[
        "user",
        "key",
        "create",
        "ann@example.test",
        "--expires-in",
        "forever",
    ]);
    bad.fails("expires_in");
}

backend_tests!(
    token_list_filters_expiring_within_and_unused_for,
    user_key_create_names_and_expires_keys,
);
