//! The commands for what only curl reached before (issue 15, item 6), against a live service on
//! each backend: `server rotate-credentials` (C3), `audit list` with its filters and `--follow`
//! (A5), `signing-key list|rotate|retire` (T3).

use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use super::runner::{self, Cli, credentials_server_id, table_rows};
use crate::support::http;

/// The server secret a credentials file carries (`credentials show --reveal`).
fn secret(cli: &Cli, file: &str) -> String {
    let shown = cli.run(&["credentials", "show", file, "--reveal"]).ok();
    shown
        .lines()
        .find_map(|l| l.strip_prefix("secret"))
        .unwrap()
        .trim()
        .to_owned()
}

/// `GET /v1/connect/self`'s status with a server's ID and secret (T4's HTTP Basic).
async fn self_status(cli: &Cli, server_id: &str, secret: &str) -> u16 {
    http()
        .get(format!("{}/v1/connect/self", cli.url))
        .basic_auth(server_id, Some(secret))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn c3_server_rotate_credentials_writes_the_new_file(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    cli.run(&["vault", "create", "Prod"]).ok();
    cli.run(&["server", "create", "web", "--vaults", "Prod", "-f"])
        .ok();
    let path = cli.credentials();
    let web_id = credentials_server_id(&path);
    std::fs::copy(&path, cli.dir.join("old.json")).unwrap();
    let old = secret(&cli, "old.json");
    assert_eq!(self_status(&cli, &web_id, &old).await, 200);
    let jwt = cli
        .run(&[
            "token", "create", "ci", "--server", "web", "--vault", "Prod",
        ])
        .ok();

    // The file is there and no terminal asks: refused, and nothing rotated.
    cli.run(&["server", "rotate-credentials", "web"])
        .fails("-f");
    assert_eq!(self_status(&cli, &web_id, &old).await, 200);
    let version = |cli: &Cli| {
        cli.run(&["server", "get", "web", "--format", "json"])
            .json()["tokens_version"]
            .clone()
    };
    assert_eq!(version(&cli), 1);

    // -f: the new file, written as `server create` writes it.
    let out = cli.run(&["server", "rotate-credentials", "web", "-f"]).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], format!("UUID: {web_id}"), "{out}");
    let shown = std::fs::canonicalize(&path).unwrap();
    assert_eq!(lines[2], format!("Credentials file: {}", shown.display()));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(cli.run(&["credentials", "show"]).ok().contains(&web_id));
    let new = secret(&cli, "1password-credentials.json");
    assert_ne!(new, old);
    assert_eq!(
        self_status(&cli, &web_id, &old).await,
        401,
        "the old file stops working"
    );
    assert_eq!(self_status(&cli, &web_id, &new).await, 200);
    assert_eq!(version(&cli), 2);
    // Tokens stay valid (C3).
    let introspected = http()
        .post(format!("{}/v1/introspect", cli.url))
        .basic_auth(&web_id, Some(&new))
        .json(&json!({"token": jwt.trim()}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true, "{introspected}");

    // No file yet: no -f needed; JSON is the API's answer; `-` reads the server.
    std::fs::remove_file(&path).unwrap();
    let json = cli
        .run_stdin(
            &["server", "rotate-credentials", "-", "--format", "json"],
            "web\n",
        )
        .json();
    assert_eq!(json["server"]["id"], web_id.as_str());
    assert_eq!(json["server"]["tokens_version"], 3);
    assert_eq!(
        secret(&cli, "1password-credentials.json"),
        {
            let file = serde_json::to_string(&json["credentials"]).unwrap();
            std::fs::write(cli.dir.join("printed.json"), file).unwrap();
            secret(&cli, "printed.json")
        },
        "the file written is the one answered"
    );
    cli.run(&["server", "rotate-credentials", "ghost", "-f"])
        .fails("not found");
    app.stop();
}

async fn a5_audit_list_filters_and_follows(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    cli.run(&["vault", "create", "Prod"]).ok();
    let web = cli
        .run(&[
            "server", "create", "web", "--vaults", "Prod", "-f", "--format", "json",
        ])
        .json();
    let web_id = web["server"]["id"].as_str().unwrap().to_owned();
    let owner_id = cli.run(&["user", "ls", "--format", "json"]).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let all = cli.run(&["audit", "list", "--format", "json"]).json();
    let all = all.as_array().unwrap();
    let actions: Vec<&str> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions[0], "server.create", "newest first: {actions:?}");
    assert!(actions.contains(&"vault.create"), "{actions:?}");
    let table = cli.run(&["audit", "ls"]).ok();
    assert!(
        table.starts_with("AT") && table.contains("ACTION"),
        "{table}"
    );
    assert_eq!(table_rows(&table).len(), all.len());

    let only = |args: &[&str]| -> Vec<Value> {
        let mut full = vec!["audit", "list", "--format", "json"];
        full.extend_from_slice(args);
        cli.run(&full).json().as_array().unwrap().clone()
    };
    let created = only(&["--action", "vault.create"]);
    assert!(
        !created.is_empty() && created.iter().all(|e| e["action"] == "vault.create"),
        "{created:?}"
    );
    let about_web = only(&["--target", &web_id]);
    assert!(!about_web.is_empty() && about_web.iter().all(|e| e["target_id"] == web_id.as_str()));
    let by_owner: Vec<Value> = all
        .iter()
        .filter(|e| e["actor_id"] == owner_id.as_str())
        .cloned()
        .collect();
    assert!(by_owner.len() >= 2 && by_owner.len() < all.len(), "{all:?}");
    assert_eq!(only(&["--actor", &owner_id]), by_owner);
    assert!(only(&["--actor", "0000000000000000000000000A"]).is_empty());
    assert!(only(&["--since", "2999-01-01T00:00:00Z"]).is_empty());
    assert!(only(&["--until", "2000-01-01T00:00:00Z"]).is_empty());
    assert_eq!(only(&["--limit", "1"]), all[..1].to_vec());
    cli.run(&["audit", "list", "--since", "yesterday"])
        .fails("since");

    // --follow: what is there (oldest first), then each new event as it comes.
    let mut follow = cli.cmd(&[
        "audit",
        "list",
        "--follow",
        "--interval",
        "1",
        "--format",
        "json",
    ]);
    follow.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = follow.spawn().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(20))
            .expect("an event line")
    };
    let mut first = Vec::new();
    for _ in 0..all.len() {
        first.push(next());
    }
    let mut oldest_first = all.clone();
    oldest_first.reverse();
    assert_eq!(first, oldest_first);
    let later = cli
        .run(&["vault", "create", "Later", "--format", "json"])
        .json();
    let event = next();
    assert_eq!(event["action"], "vault.create");
    assert_eq!(event["target_id"], later["id"]);
    cli.run(&["server", "delete", "web"]).ok();
    assert_eq!(next()["action"], "server.delete");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lines.try_recv().is_err(), "each event once");
    app.stop();
}

async fn t3_signing_key_rotate_list_retire(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    let kids = |cli: &Cli| -> Vec<String> {
        cli.run(&["signing-key", "list", "--format", "json"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = kids(&cli);
    assert_eq!(first.len(), 1, "{first:?}");
    let table = cli.run(&["signing-key", "ls"]).ok();
    assert_eq!(
        table_rows(&table),
        [[first[0].as_str(), "ES256", "P-256", "sig"]]
    );
    // A live token signed by the first key keeps it published after the rotation.
    cli.run(&["vault", "create", "Prod"]).ok();
    cli.run(&["server", "create", "web", "--vaults", "Prod", "-f"])
        .ok();
    cli.run(&[
        "token", "create", "ci", "--server", "web", "--vault", "Prod",
    ])
    .ok();

    let new = cli.run(&["signing-key", "rotate"]).ok().trim().to_owned();
    assert!(!new.is_empty() && new != first[0]);
    let both = kids(&cli);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both.contains(&new) && both.contains(&first[0]));

    // The key that signs cannot be retired; the older one can, and takes its tokens along.
    cli.run(&["signing-key", "retire", &new]).fails("rotate");
    let retired = cli
        .run(&["signing-key", "retire", &first[0], "--format", "json"])
        .json();
    assert_eq!(retired["kid"], first[0].as_str());
    assert_eq!(retired["tokens_revoked"], 1);
    assert_eq!(kids(&cli), [new.as_str()]);
    let tokens = cli.run(&["token", "ls", "--format", "json"]).json();
    assert_eq!(tokens[0]["state"], "REVOKED", "{tokens}");
    let said = cli
        .run(&["signing-key", "rotate", "--format", "json"])
        .json();
    assert!(said["kid"].is_string());
    assert!(
        cli.run(&["signing-key", "retire", &new])
            .ok()
            .contains(&format!("Retired signing key {new}"))
    );
    app.stop();
}

backend_tests!(
    c3_server_rotate_credentials_writes_the_new_file,
    a5_audit_list_filters_and_follows,
    t3_signing_key_rotate_list_retire,
);
