//! Saved accounts, as op's `account add|list|forget` (issue 15, item 5), against a live service
//! on each backend: the key read from standard input (never argv, never printed), checked
//! before it is saved, kept in a 0600 file in a 0700 directory under the configuration
//! directory; `--account` and the only account as the default; flags, then the environment,
//! then the account; the warning for a plain http:// address of another machine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use connect_manager_store::backend_tests;
use connect_manager_store::testing::TestDb;
use serde_json::{Value, json};

use super::runner::{self, Cli, OWNER, Ran, table_rows};
use crate::support::BIN;

/// A user with no URL and no key in the environment, only a home directory.
fn bare(cli: &Cli, home: &Path, args: &[&str]) -> Command {
    let mut c = cli.cmd(args);
    c.env_remove("CONNECT_MANAGER_URL")
        .env_remove("CONNECT_MANAGER_TOKEN")
        .env("HOME", home);
    c
}

fn run(cli: &Cli, home: &Path, args: &[&str]) -> Ran {
    Cli::output(bare(cli, home, args))
}

fn run_env(cli: &Cli, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut c = bare(cli, home, args);
    for (k, v) in env {
        c.env(k, v);
    }
    Cli::output(c)
}

/// `account add --address ADDRESS --shorthand SHORTHAND [extra…]` with `key` piped on
/// standard input.
fn add(cli: &Cli, home: &Path, address: &str, shorthand: &str, extra: &[&str], key: &str) -> Ran {
    let mut args = vec![
        "account",
        "add",
        "--address",
        address,
        "--shorthand",
        shorthand,
    ];
    args.extend_from_slice(extra);
    Cli::output_stdin(bare(cli, home, &args), key)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn op_account_add_saves_the_key_privately_and_never_shows_it(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let url = cli.url.clone();
    assert_eq!(
        run(&cli, home, &["account", "list", "--format", "json"]).json(),
        json!([])
    );
    // Without an account, nowhere to send a key.
    run(&cli, home, &["server", "ls"]).fails("no API key");

    // A bad key is refused and nothing is saved.
    let bad = add(
        &cli,
        home,
        &url,
        "local",
        &[],
        "cmk_wrong_key_0123456789abcdefghijkl\n",
    );
    bad.fails("refused the key");
    let config = home.join(".config").join("connect-manager");
    assert!(!config.join("accounts.json").exists());

    // The key comes from standard input; it is never printed.
    let added = add(&cli, home, &url, "local", &[], &format!("{OWNER}\n"));
    let said = added.ok();
    assert!(said.contains("local") && !said.contains(OWNER), "{said}");
    let file = config.join("accounts.json");
    assert_eq!(mode(&file), 0o600, "the accounts file is private");
    assert_eq!(mode(&config), 0o700, "so is its directory");
    let entries: Vec<String> = std::fs::read_dir(&config)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, ["accounts.json"], "no temporary file left behind");
    let listed = run(&cli, home, &["account", "list", "--format", "json"]).json();
    assert_eq!(listed, json!([{"shorthand": "local", "address": url}]));
    let table = run(&cli, home, &["account", "ls"]).ok();
    assert_eq!(table_rows(&table), [["local", url.as_str()]]);
    assert!(!table.contains(OWNER) && table.starts_with("SHORTHAND"));

    // The only account is the default: no URL, no key, it works.
    run(&cli, home, &["vault", "create", "Prod"]).ok();
    assert_eq!(table_rows(&run(&cli, home, &["vault", "ls"]).ok()).len(), 1);

    // The key is never taken from the command line.
    let argv = run(
        &cli,
        home,
        &["account", "add", "--address", &url, "--key", OWNER],
    );
    assert_eq!(argv.code, 2, "{}", argv.stderr);

    // --config DIR and XDG_CONFIG_HOME choose where accounts live.
    let elsewhere = tempfile::tempdir().unwrap();
    let dir = elsewhere.path().join("cm");
    let dir_s = dir.to_str().unwrap();
    assert_eq!(
        run(
            &cli,
            home,
            &["--config", dir_s, "account", "ls", "--format", "json"]
        )
        .json(),
        json!([])
    );
    add(&cli, home, &url, "x", &["--config", dir_s], OWNER).ok();
    assert_eq!(mode(&dir.join("accounts.json")), 0o600);
    let xdg = elsewhere.path().to_str().unwrap();
    let renamed = std::fs::rename(&dir, elsewhere.path().join("connect-manager"));
    renamed.unwrap();
    let via_xdg = run_env(
        &cli,
        home,
        &["account", "ls", "--format", "json"],
        &[("XDG_CONFIG_HOME", xdg)],
    )
    .json();
    assert_eq!(via_xdg[0]["shorthand"], "x", "{via_xdg}");
    app.stop();
}

async fn op_account_precedence_is_flags_then_environment_then_account(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let url = cli.url.clone();
    let as_localhost = url.replace("127.0.0.1", "localhost");
    for (shorthand, address) in [("local", url.as_str()), ("alias", as_localhost.as_str())] {
        add(&cli, home, address, shorthand, &[], OWNER).ok();
    }
    // Two accounts: none is the default; --account picks one, anywhere on the line.
    run(&cli, home, &["server", "ls"]).fails("no API key");
    run(&cli, home, &["--account", "local", "server", "ls"]).ok();
    run(&cli, home, &["server", "ls", "--account", "alias"]).ok();
    run(&cli, home, &["server", "ls", "--account", "ghost"]).fails("no account 'ghost'");

    // The environment's key wins over the account's; the flag's over the environment's.
    let wrong = [("CONNECT_MANAGER_TOKEN", "cmk_wrong")];
    run_env(&cli, home, &["--account", "local", "server", "ls"], &wrong).fails("not valid");
    run_env(
        &cli,
        home,
        &["--account", "local", "server", "ls", "--token", OWNER],
        &wrong,
    )
    .ok();
    // The environment's URL wins over the account's, and the account's key does not follow
    // it to another address.
    let elsewhere = [("CONNECT_MANAGER_URL", "http://127.0.0.1:9")];
    run_env(
        &cli,
        home,
        &["--account", "local", "server", "ls"],
        &elsewhere,
    )
    .fails("no API key");
    let both = [
        ("CONNECT_MANAGER_URL", "http://127.0.0.1:9"),
        ("CONNECT_MANAGER_TOKEN", OWNER),
    ];
    run_env(&cli, home, &["--account", "local", "server", "ls"], &both).fails("cannot reach");
    // The flag's URL wins over the environment's; it is the account's address, so its key goes.
    run_env(
        &cli,
        home,
        &["--account", "local", "server", "ls", "--url", &url],
        &elsewhere,
    )
    .ok();

    // forget: gone from the list; the one left is the default again.
    run(&cli, home, &["account", "forget", "alias"]).ok();
    run(&cli, home, &["account", "forget", "alias"]).fails("no account 'alias'");
    let left: Value = run(&cli, home, &["account", "ls", "--format", "json"]).json();
    assert_eq!(left, json!([{"shorthand": "local", "address": url}]));
    run(&cli, home, &["server", "ls"]).ok();
    app.stop();
}

async fn op_account_add_warns_when_the_key_would_travel_in_clear(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    // Plain http to an address that is not loopback: warned before anything is sent. (0.0.0.0
    // is not loopback; Linux refuses the connection at once, so nothing is saved either.)
    let far = add(&cli, home, "http://0.0.0.0:9", "far", &[], OWNER);
    assert_eq!(far.code, 1, "{}", far.stderr);
    assert!(
        far.stderr
            .starts_with("[WARNING] http://0.0.0.0:9 is plain http://")
            && far.stderr.contains("travels in clear"),
        "{}",
        far.stderr
    );
    assert!(far.stderr.contains("nothing was saved") && !far.stderr.contains(OWNER));
    assert_eq!(
        run(&cli, home, &["account", "ls", "--format", "json"]).json(),
        json!([])
    );
    // Loopback is not warned about (`ok` wants an empty stderr).
    add(&cli, home, &cli.url, "here", &[], OWNER).ok();
    app.stop();
}

async fn op_account_add_asks_for_the_key_without_echo(db: TestDb) {
    let (_dir, app, cli) = runner::start(&db).await;
    let home = tempfile::tempdir().unwrap();
    // On a terminal (a pseudo-terminal from `script`): a prompt, and the key typed unseen.
    let mut c = Command::new("script");
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .args([
            "-qec",
            &format!("{BIN} account add --address {} --shorthand tty", cli.url),
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    // The whole prompt: echo is off before it shows.
    let prompt = format!("API key for {}: ", cli.url);
    while !String::from_utf8_lossy(&seen).contains(&prompt) {
        seen.extend(
            rx.recv_timeout(Duration::from_secs(20))
                .expect("the prompt"),
        );
    }
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, format!("{OWNER}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    while let Ok(more) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.extend(more);
    }
    let seen = String::from_utf8(seen).unwrap();
    assert!(seen.contains("Saved account tty"), "{seen}");
    assert!(!seen.contains(OWNER), "the key was echoed: {seen}");
    let listed = run(&cli, home.path(), &["account", "ls", "--format", "json"]).json();
    assert_eq!(listed[0]["shorthand"], "tty");
    run(&cli, home.path(), &["server", "ls"]).ok();

    // Ctrl-C at the prompt: the command dies of it, and the terminal echoes again.
    let script = format!(
        "trap \"\" INT; {BIN} account add --address {} --shorthand gone; echo rc=$?; stty -a",
        cli.url
    );
    let mut c = Command::new("script");
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .args(["-qec", &format!("sh -c '{script}'"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(&prompt) {
        let n = std::io::Read::read(&mut stdout, &mut buf).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"abc\x03").unwrap();
    std::io::Read::read_to_end(&mut stdout, &mut seen).unwrap();
    drop(stdin);
    child.wait().unwrap();
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("rc=130"), "{seen}");
    let after = seen.split("rc=130").nth(1).unwrap();
    assert!(
        after.split_whitespace().any(|w| w == "echo"),
        "echo is back on: {after}"
    );
    let listed = run(&cli, home.path(), &["account", "ls", "--format", "json"]).json();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "nothing saved: {listed}"
    );
    app.stop();
}

backend_tests!(
    op_account_add_asks_for_the_key_without_echo,
    op_account_add_saves_the_key_privately_and_never_shows_it,
    op_account_precedence_is_flags_then_environment_then_account,
    op_account_add_warns_when_the_key_would_travel_in_clear,
);
