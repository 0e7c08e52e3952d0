//! The README's quick start, run as written (issue 15), so that it cannot rot: the fenced block
//! after `<!-- quickstart -->` in README.md, run by `bash` with `set -euo pipefail` in an empty
//! directory, against the built binary first on PATH, on the embedded default (SQLite). Any line
//! of it that fails fails the test, with bash's trace and the service's log.
//!
//! What the test changes, and why (nothing else):
//! - lines starting with `cargo install` are dropped: the binary under test is already built,
//!   and its directory is put first on PATH instead (installing would build the workspace again,
//!   into the tester's ~/.cargo/bin).
//! - `127.0.0.1:8080` becomes `127.0.0.1:<a free port>`: tests run in parallel, and 8080 may be
//!   taken on the machine.
//! - the environment is PATH (the binary's directory first) and HOME (the temporary directory,
//!   so that nothing is read from or written to the tester's home): a user's shell has both.
//! - before the block, a trap stops what the block started in the background (the service)
//!   when bash exits; after it, nothing. The whole process group is killed at the end as well.
//!
//! Then it checks what the last line printed: the token is active and reaches the vault read-only.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{BIN, free_port};

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
const MARKER: &str = "<!-- quickstart -->";

/// The fenced block after the marker, without its fences.
fn quickstart_block(readme: &str) -> String {
    assert_eq!(
        readme.matches(MARKER).count(),
        1,
        "README.md must have exactly one {MARKER}"
    );
    let after = &readme[readme.find(MARKER).unwrap() + MARKER.len()..];
    let mut lines = after.lines().skip_while(|l| l.trim().is_empty());
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```"),
        "{MARKER} must be followed by a fenced block, found {fence:?}"
    );
    let block: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    assert!(!block.is_empty(), "the quick start block is empty");
    block.join("\n") + "\n"
}

/// The script bash runs: the block with the substitutions the module's documentation lists.
fn script(block: &str, port: u16) -> String {
    let body: Vec<String> = block
        .lines()
        .filter(|l| !l.trim_start().starts_with("cargo install"))
        .map(|l| l.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")))
        .collect();
    format!(
        "set -euo pipefail\n\
         trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n\
         {}\n",
        body.join("\n")
    )
}

#[test]
fn readme_quick_start_runs_as_written() {
    let readme = std::fs::read_to_string(README).unwrap();
    let block = quickstart_block(&readme);
    assert!(
        block.contains("cargo install --locked --path crates/connect-manager"),
        "the quick start installs from the checkout"
    );
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let script_path = dir.path().join("quickstart.sh");
    std::fs::write(&script_path, script(&block, free_port())).unwrap();

    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    let mut child = Command::new("bash")
        .arg("-x")
        .arg(&script_path)
        .current_dir(&work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .process_group(0)
        .spawn()
        .expect("bash runs the quick start");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever is left of the group (nothing, when the trap did its work).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();

    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let stdout = read(&stdout_path);
    let report = || {
        format!(
            "--- bash's trace and stderr:\n{}\n--- stdout:\n{stdout}\n--- connect-manager.log:\n{}",
            read(&stderr_path),
            read(&work.join("connect-manager.log"))
        )
    };
    match status {
        None => panic!("the quick start did not finish in 120 s\n{}", report()),
        Some(s) if !s.success() => panic!("the quick start failed ({s})\n{}", report()),
        Some(_) => {}
    }

    // The last line's answer: the introspection of the token the block made.
    let answer: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON answer on stdout\n{}", report()));
    assert_eq!(answer["active"], true, "{}", report());
    assert_eq!(answer["name"], "ci");
    assert_eq!(
        answer["vaults"][0]["acl"],
        serde_json::json!(["view_items", "view_and_copy_passwords"]),
        "read-only on the vault"
    );
}

#[test]
fn quick_start_substitutions_are_only_the_documented_ones() {
    let block = "cargo install --locked --path crates/connect-manager\n\
                 connect-manager serve --bind 127.0.0.1:8080 &\n\
                 curl http://127.0.0.1:8080/healthz\n";
    assert_eq!(
        script(block, 1234),
        "set -euo pipefail\n\
         trap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n\
         connect-manager serve --bind 127.0.0.1:1234 &\n\
         curl http://127.0.0.1:1234/healthz\n"
    );
    let readme = format!("intro\n{MARKER}\n\n```sh\necho one\necho two\n```\nafter\n");
    assert_eq!(quickstart_block(&readme), "echo one\necho two\n");
}
