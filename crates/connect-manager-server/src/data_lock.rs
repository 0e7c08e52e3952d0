//! One `serve` per SQLite database.
//!
//! The introspection caches learn of changes from the store's in-process announcements; on
//! PostgreSQL other replicas hear of them by `LISTEN/NOTIFY`, but SQLite has no such feed. Two
//! processes serving one SQLite file would each keep serving what the other had changed: a token
//! revoked through one would stay active on the other. So `serve` takes an exclusive lock
//! (`flock`) on `<database file>.lock` (in the data directory by default: `connect-manager.db.lock`)
//! for as long as it runs, and writes its process ID and listening address into the file; a second
//! `serve` on the same database stops at start with exit code 2, naming the holder.
//!
//! The operating system releases the lock when the process ends, however it ends (`kill -9`
//! included), so a stale file never blocks a start; the file itself is left in place (removing it
//! on exit would let two processes lock two different files of the same name).
//!
//! The `admin` commands do not take the lock: they run beside a running service on purpose, are
//! short-lived and serve no cached state. What they write reaches the running service anyway: a
//! new API key is read per request, and a rotated signing key is found by signing's comparison
//! with the database's newest key.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;

/// Held for the life of `serve`: dropping it releases the lock.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
    pub path: PathBuf,
}

/// The lock file of the SQLite database at `database`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    database.with_file_name(name)
}

/// Takes the lock of the SQLite database `database_url` names, for a service listening on
/// `bind`. `Ok(None)` for PostgreSQL (replicas share it by design) and in-memory SQLite.
pub fn lock_database(
    database_url: &str,
    bind: SocketAddr,
) -> Result<Option<DatabaseLock>, ConfigError> {
    let Some(database) = connect_manager_store::sqlite::database_file(database_url) else {
        return Ok(None);
    };
    let path = lock_path(&database);
    let fail = |e: std::io::Error| ConfigError(format!("cannot lock {}: {e}", path.display()));
    let mut options = OpenOptions::new();
    // Never truncate before holding the lock: the holder's line is what the refusal shows.
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(fail)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(ConfigError(format!(
                "the SQLite database {} is in use by another connect-manager serve ({}); \
                 one process serves a SQLite database (several replicas need PostgreSQL)",
                database.display(),
                holder(&mut file)
            )));
        }
        Err(TryLockError::Error(e)) => return Err(fail(e)),
    }
    let line = format!("pid {}, listening on {bind}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(line.as_bytes()))
        .and_then(|()| file.flush())
        .map_err(fail)?;
    Ok(Some(DatabaseLock { _file: file, path }))
}

/// The holder as its lock file says (one line, printable characters only).
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.take(256).read_to_string(&mut text);
    let line: String = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if line.is_empty() {
        "a process that is still starting".into()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}",
            dir.path().join("connect-manager.db").display()
        );
        let bind: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let first = lock_database(&url, bind).unwrap().expect("a SQLite lock");
        assert_eq!(first.path, dir.path().join("connect-manager.db.lock"));
        let refused = lock_database(&url, "127.0.0.1:9090".parse().unwrap()).unwrap_err();
        let expected = format!("pid {}, listening on 127.0.0.1:8080", std::process::id());
        assert!(refused.0.contains(&expected), "{}", refused.0);
        drop(first);
        let again = lock_database(&url, "127.0.0.1:9090".parse().unwrap()).unwrap();
        assert!(again.is_some(), "free again once the holder is gone");
        assert!(lock_database("postgres://h/db", bind).unwrap().is_none());
    }
}
