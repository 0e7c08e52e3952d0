//! The CLI's side of G7 (`token list` shows last use) and G8 (`vault import` from a Connect
//! server: the Connect API stand-in, `tests/gateway/connect_standin.py`), on both backends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use crate::support::standin::Standin;
use crate::support::{BIN, Running, command, http};

const OWNER: &str = "import-owner-key-0123456789abcdefghijk";
const CONNECT_TOKEN: &str = "connect-upstream-token-s3cret-0123456789";

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    #[track_caller]
    fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "stderr: {}\nstdout: {}",
            self.stderr, self.stdout
        );
        self.stdout
    }
}

/// A service on `db` and a working directory for the CLI.
async fn service(db: &TestDb, dir: &Path) -> (Running, PathBuf) {
    let mut serve = command(dir);
    serve
        .env("DATABASE_URL", &db.url)
        .env("CONNECT_MANAGER_BOOTSTRAP_KEY", OWNER)
        .env("CONNECT_MANAGER_DATA_DIR", dir.join("data"))
        .env("CONNECT_MANAGER_AUTH_FAILURES_PER_MINUTE", "0");
    let mut app = Running::start(serve, dir);
    app.wait_ready().await;
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    (app, work)
}

fn cli(app: &Running, work: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut c = Command::new(BIN);
    c.current_dir(work)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONNECT_MANAGER_URL", &app.base)
        .env("CONNECT_MANAGER_TOKEN", OWNER)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip(1)
        .filter(|l| !l.contains(" created, ") && !l.starts_with("Nothing changed"))
        .map(|l| {
            l.split("    ")
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect()
}

async fn audit_actions(app: &Running, target: &str) -> Vec<String> {
    let events: Value = http()
        .get(format!("{}/v1/audit/events?target={target}", app.base))
        .bearer_auth(OWNER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect()
}

async fn audit_count(app: &Running) -> usize {
    let events: Value = http()
        .get(format!("{}/v1/audit/events?limit=1000", app.base))
        .bearer_auth(OWNER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    events["items"].as_array().unwrap().len()
}

async fn g8_vault_import_creates_renames_and_is_idempotent(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let (app, work) = service(&db, dir.path()).await;
    let connect = Standin::start(CONNECT_TOKEN);
    let (prod, staging, shared) = (
        connect.vault("Production"),
        connect.vault("Staging"),
        connect.vault("Shared"),
    );
    // The registry already has Production under its real ID but an old name, and another
    // vault named Staging.
    cli(
        &app,
        &work,
        &["vault", "create", "Old Prod", "--id", &prod],
        &[],
    )
    .ok();
    cli(&app, &work, &["vault", "create", "Staging"], &[]).ok();
    let host = connect.base.as_str();
    let token_env = [("OP_CONNECT_TOKEN", CONNECT_TOKEN)];

    // First run: Production renamed, Shared created, Staging's name clash reported without
    // stopping the others; exit 1 since one failed.
    let first = cli(
        &app,
        &work,
        &["vault", "import", "--connect-host", host],
        &token_env,
    );
    assert_eq!(first.code, 1, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stderr.starts_with("[ERROR] 1 of 3 vaults"),
        "{}",
        first.stderr
    );
    let table = rows(&first.stdout);
    let row = |id: &str| table.iter().find(|r| r[0] == id).cloned().unwrap();
    assert_eq!(row(&prod)[1..3], ["Production", "renamed"]);
    assert_eq!(row(&prod)[3], "was 'Old Prod'");
    assert_eq!(row(&shared)[1..3], ["Shared", "created"]);
    assert_eq!(row(&staging)[1..3], ["Staging", "failed"]);
    assert!(
        row(&staging)[3].contains("already exists"),
        "{:?}",
        row(&staging)
    );
    assert!(
        first
            .stdout
            .contains("1 created, 1 renamed, 0 unchanged, 1 failed.")
    );
    for out in [&first.stdout, &first.stderr] {
        assert!(
            !out.contains(CONNECT_TOKEN),
            "the Connect token was printed"
        );
    }

    // Every change went through the API, so each is an audit event.
    assert!(
        audit_actions(&app, &shared)
            .await
            .contains(&"vault.create success".to_owned())
    );
    assert!(
        audit_actions(&app, &prod)
            .await
            .contains(&"vault.rename success".to_owned())
    );

    // The clash resolved, the token by flag this time, JSON out: Staging created, the rest left.
    cli(
        &app,
        &work,
        &["vault", "edit", "Staging", "--name", "Staging (local)"],
        &[],
    )
    .ok();
    let second: Value = serde_json::from_str(
        &cli(
            &app,
            &work,
            &[
                "vault",
                "import",
                "--connect-host",
                host,
                "--connect-token",
                CONNECT_TOKEN,
                "--format",
                "json",
            ],
            &[],
        )
        .ok(),
    )
    .unwrap();
    assert_eq!(
        (
            &second["created"],
            &second["renamed"],
            &second["unchanged"],
            &second["failed"]
        ),
        (&json!(1), &json!(0), &json!(2), &json!(0)),
        "{second}"
    );
    let staging_row = second["vaults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == staging.as_str())
        .unwrap()
        .clone();
    assert_eq!(staging_row["action"], "created");

    // Third run: nothing changes, and it says so; nothing new in the audit trail.
    let events_before = audit_count(&app).await;
    let third = cli(
        &app,
        &work,
        &["vault", "import", "--connect-host", host],
        &token_env,
    )
    .ok();
    assert!(
        third.contains("Nothing changed: the registry already holds all 3 vaults."),
        "{third}"
    );
    assert!(rows(&third).iter().all(|r| r[2] == "unchanged"), "{third}");
    assert_eq!(audit_count(&app).await, events_before);

    // The registry: the three Connect vaults under their real IDs, the local one kept.
    let listed: Value =
        serde_json::from_str(&cli(&app, &work, &["vault", "ls", "--format", "json"], &[]).ok())
            .unwrap();
    let mut names: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().into(),
                v["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    names.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(names.len(), 4, "never deletes: {names:?}");
    for (id, name) in [
        (&prod, "Production"),
        (&staging, "Staging"),
        (&shared, "Shared"),
    ] {
        assert!(names.contains(&(id.clone(), name.to_owned())), "{names:?}");
    }

    // A wrong or missing Connect token: refused, and the token is not printed.
    let wrong = "wrong-connect-token-0123456789";
    let bad = cli(
        &app,
        &work,
        &[
            "vault",
            "import",
            "--connect-host",
            host,
            "--connect-token",
            wrong,
        ],
        &[],
    );
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("401"), "{}", bad.stderr);
    assert!(!bad.stderr.contains(wrong) && !bad.stdout.contains(wrong));
    let missing = cli(
        &app,
        &work,
        &["vault", "import", "--connect-host", host],
        &[],
    );
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no Connect token"),
        "{}",
        missing.stderr
    );
    // Nor does `--help` show the token taken from the environment.
    let help = cli(&app, &work, &["vault", "import", "--help"], &token_env).ok();
    assert!(
        help.contains("OP_CONNECT_TOKEN") && !help.contains(CONNECT_TOKEN),
        "{help}"
    );
    let log = app.stop();
    assert!(!log.contains(CONNECT_TOKEN));
}

async fn g7_token_list_shows_last_use(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let (app, work) = service(&db, dir.path()).await;
    cli(&app, &work, &["vault", "create", "Prod"], &[]).ok();
    cli(
        &app,
        &work,
        &["server", "create", "web", "--vaults", "Prod"],
        &[],
    )
    .ok();
    cli(
        &app,
        &work,
        &[
            "token", "create", "ci", "--server", "web", "--vault", "Prod",
        ],
        &[],
    )
    .ok();
    let listed = cli(&app, &work, &["token", "list"], &[]).ok();
    assert!(
        listed.lines().next().unwrap().ends_with("LAST USED"),
        "{listed}"
    );
    assert_eq!(rows(&listed)[0].last().unwrap(), "never");
    let token: Value =
        serde_json::from_str(&cli(&app, &work, &["token", "list", "--format", "json"], &[]).ok())
            .unwrap();
    let token = token[0].clone();
    assert!(
        token["last_used_at"].is_null() && token["last_used_ip"].is_null(),
        "{token}"
    );

    // The server's gateway reports a use.
    let file = serde_json::from_str(
        &std::fs::read_to_string(work.join("1password-credentials.json")).unwrap(),
    )
    .unwrap();
    let opened = connect_manager_core::credentials::open(&file).unwrap();
    let at = "2026-01-02T03:04:05Z";
    let status = http()
        .post(format!("{}/v1/connect/self/usage", app.base))
        .basic_auth(&opened.server_id, Some(&opened.secret))
        .json(&json!({"tokens": [{"id": token["id"], "last_used_at": at, "last_used_ip": "192.0.2.7"}]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204);
    let listed = cli(&app, &work, &["token", "list", "--iso-timestamps"], &[]).ok();
    assert_eq!(
        rows(&listed)[0].last().unwrap(),
        &format!("{at} from 192.0.2.7"),
        "{listed}"
    );
    let token: Value =
        serde_json::from_str(&cli(&app, &work, &["token", "list", "--format", "json"], &[]).ok())
            .unwrap();
    assert_eq!(token[0]["last_used_at"], at);
    assert_eq!(token[0]["last_used_ip"], "192.0.2.7");
    app.stop();
}

backend_tests!(
    g8_vault_import_creates_renames_and_is_idempotent,
    g7_token_list_shows_last_use,
);
