//! `docs/cli.md`, the CLI reference: every command and subcommand of the clap tree `main.rs`
//! builds, each with the long help `connect-manager … --help` prints, and the drift test that
//! keeps the committed file in step with the code, as `openapi.yaml`'s does:
//! `UPDATE_CLI_DOCS=1 cargo test -p connect-manager --bin connect-manager cli_docs` rewrites it.

use clap::{Command, CommandFactory};

/// Where the reference is committed, from this crate's directory.
const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");

/// The whole reference.
pub fn render() -> String {
    // Environment values would show in the help as `[env: NAME=value]`: never in the docs.
    let mut root = hide_env_values(crate::Cli::command()).term_width(100);
    root.build();
    let mut commands = Vec::new();
    collect(&mut root, 0, &mut commands);

    let mut out = String::from(
        "# The connect-manager command line\n\n\
         Every command and subcommand with what its `--help` prints. Generated from the CLI's \
         own definition\n(`crates/connect-manager/src/cli_docs.rs`); a test fails when this \
         file differs from it, and\n`UPDATE_CLI_DOCS=1 cargo test -p connect-manager --bin \
         connect-manager cli_docs` rewrites it.\nWhat the commands manage: \
         [`CONCEPTS.md`](CONCEPTS.md).\n\n",
    );
    for (depth, path, _) in &commands {
        out.push_str(&format!(
            "{}- [`{path}`](#{})\n",
            "  ".repeat(*depth),
            path.replace(' ', "-")
        ));
    }
    for (_, path, help) in &commands {
        out.push_str(&format!(
            "\n## {path}\n\n```text\n{}\n```\n",
            help.trim_end()
        ));
    }
    out
}

/// `cmd` and every subcommand under it, depth first, skipping hidden ones and clap's `help`:
/// (depth, the command line that reaches it, its long help as plain text).
fn collect(cmd: &mut Command, depth: usize, out: &mut Vec<(usize, String, String)>) {
    let path = cmd
        .get_bin_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_owned();
    let help = cmd
        .render_long_help()
        .to_string()
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    out.push((depth, path, help));
    for sub in cmd.get_subcommands_mut() {
        if !sub.is_hide_set() && sub.get_name() != "help" {
            collect(sub, depth + 1, out);
        }
    }
}

/// `cmd` with every argument's environment value hidden, all the way down.
fn hide_env_values(cmd: Command) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    names
        .into_iter()
        .fold(cmd.mut_args(|a| a.hide_env_values(true)), |cmd, name| {
            cmd.mut_subcommand(name, hide_env_values)
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_docs_match_the_clap_tree() {
        let rendered = super::render();
        if std::env::var_os("UPDATE_CLI_DOCS").is_some() {
            std::fs::write(super::PATH, &rendered).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(super::PATH).unwrap_or_default();
        assert!(
            committed == rendered,
            "docs/cli.md differs from the CLI's definition; regenerate it with\n  \
             UPDATE_CLI_DOCS=1 cargo test -p connect-manager --bin connect-manager cli_docs\n\
             and commit it"
        );
    }

    /// The reference has every visible command, and no environment value.
    #[test]
    fn cli_docs_cover_every_command() {
        let rendered = super::render();
        for path in [
            "## connect-manager\n",
            "## connect-manager server create\n",
            "## connect-manager token create\n",
            "## connect-manager group grant\n",
            "## connect-manager user key create\n",
            "## connect-manager credentials show\n",
            "## connect-manager admin owner-key\n",
            "## connect-manager serve\n",
            "## connect-manager gateway\n",
        ] {
            assert!(rendered.contains(path), "{path:?} missing");
        }
        assert!(!rendered.contains("## connect-manager openapi"), "hidden");
        assert!(!rendered.contains("## connect-manager help"));
        assert!(rendered.contains("[env: CONNECT_MANAGER_URL]"));
    }
}
