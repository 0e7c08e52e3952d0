//! The two migration trees, `migrations/postgres` and `migrations/sqlite`, describe one schema.
//!
//! Each backend embeds its own tree (`sqlx::migrate!` in `src/postgres.rs` and `src/sqlite.rs`),
//! so nothing but this test stops the two from drifting apart (atuin writes its SQL twice and its
//! copies have drifted; see CONVENTIONS.md). It pins that:
//! - both trees hold the same migrations: the same file names, so the same numbers and names;
//! - each pair of files is the same, line for line, except for the differences listed in
//!   [`ALLOWED`], each with the reason it must differ;
//! - every listed difference still occurs, so that the list stays the truth about the trees.
//!
//! Adding a migration to one tree only, or changing a column in one tree only, fails here.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// A line that may differ between the trees: (file, PostgreSQL's line, SQLite's line, why).
///
/// Today the schema uses only SQL both databases read the same way (`TEXT` and `BIGINT` columns,
/// `CHECK (… IN (…))`, `REFERENCES … ON DELETE CASCADE`, partial unique indexes, an
/// `INSERT … SELECT`), so the one difference is the header naming the database. (Locking clauses
/// such as `FOR UPDATE` live in the queries, `src/postgres.rs` and `src/sqlite.rs`, not here.) A dialect spot a later migration needs (a type name, a clause one
/// database lacks) is added here, with its reason, in the same change.
const ALLOWED: &[(&str, &str, &str, &str)] = &[(
    "0001_foundation.sql",
    "-- connect-manager, PostgreSQL. Timestamps are microseconds since the Unix epoch (UTC).",
    "-- connect-manager, SQLite. Timestamps are microseconds since the Unix epoch (UTC).",
    "the header comment names the database the tree is for",
)];

fn tree(dialect: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(dialect)
}

/// The `.sql` file names in a tree, sorted.
fn migrations(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".sql"))
        .collect()
}

#[test]
fn both_trees_hold_the_same_migrations() {
    let postgres = migrations(&tree("postgres"));
    let sqlite = migrations(&tree("sqlite"));
    assert!(
        !postgres.is_empty(),
        "no migrations found in migrations/postgres"
    );
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    assert!(
        only_postgres.is_empty() && only_sqlite.is_empty(),
        "the migration trees hold different migrations: only in migrations/postgres: \
         {only_postgres:?}; only in migrations/sqlite: {only_sqlite:?}"
    );
}

#[test]
fn each_pair_differs_only_where_the_dialects_must() {
    let postgres = migrations(&tree("postgres"));
    let sqlite = migrations(&tree("sqlite"));
    let mut used = vec![false; ALLOWED.len()];
    let mut drift = Vec::new();
    for name in postgres.intersection(&sqlite) {
        let pg_text = fs::read_to_string(tree("postgres").join(name)).unwrap();
        let lite_text = fs::read_to_string(tree("sqlite").join(name)).unwrap();
        let pg_lines: Vec<&str> = pg_text.lines().collect();
        let lite_lines: Vec<&str> = lite_text.lines().collect();
        if pg_lines.len() != lite_lines.len() {
            drift.push(format!(
                "{name}: {} lines in migrations/postgres, {} in migrations/sqlite",
                pg_lines.len(),
                lite_lines.len()
            ));
        }
        for (i, (pg, lite)) in pg_lines.iter().zip(&lite_lines).enumerate() {
            if pg == lite {
                continue;
            }
            match ALLOWED
                .iter()
                .position(|&(file, p, l, _)| file == name && p == *pg && l == *lite)
            {
                Some(k) => used[k] = true,
                None => drift.push(format!(
                    "{name}:{}:\n  postgres: {pg}\n  sqlite:   {lite}",
                    i + 1
                )),
            }
        }
    }
    assert!(
        drift.is_empty(),
        "the migration trees differ outside the allowed dialect spots (change both trees, or \
         add the difference to ALLOWED with its reason):\n{}",
        drift.join("\n")
    );
    let stale: Vec<_> = ALLOWED
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|((file, _, _, why), _)| format!("{file}: {why}"))
        .collect();
    assert!(
        stale.is_empty(),
        "ALLOWED lists differences the trees no longer have (remove them): {stale:?}"
    );
}
