//! Database errors, mapped once: [`db_err`] says what a failed statement means to a caller (503
//! when the database cannot serve or its disk is full, 409 on a collision, else 500), and
//! [`DbResult`] applies it where a statement is awaited (`.await.db()?`). [`on_unique`] maps a
//! unique violation to the caller's 409.

use connect_manager_core::Error;

/// Whether a connection coming back to the pool may serve again: not while it is still inside a
/// transaction. When a COMMIT fails (SQLite: `SQLITE_FULL` on a full disk), SQLite may already
/// have rolled the transaction back, so the ROLLBACK sqlx sends when the transaction is dropped
/// fails too, and sqlx still counts the connection as inside it: back in the pool, every
/// transaction begun on it would fail ("attempted to call begin_with at non-zero transaction
/// depth"), a write outage until a restart. Such a connection is closed instead (the pool opens
/// a fresh one when needed).
pub(crate) fn fit_for_reuse(conn: &impl sqlx::Connection) -> bool {
    let fit = !conn.is_in_transaction();
    if !fit {
        tracing::warn!("a connection left inside a failed transaction is closed, not reused");
    }
    fit
}

/// Maps a database error: connection trouble is 503, a full disk 503 `storage_full`, the rest
/// 500 (detail for the log only).
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Database(ref d) if d.code().is_some_and(|c| storage_full_code(&c)) => {
            let detail = e.to_string();
            crate::availability::STORAGE_FAILURES.record(&detail);
            Error::StorageFull { detail }
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => Error::Unavailable {
            detail: e.to_string(),
        },
        sqlx::Error::Database(ref d) if d.code().is_some_and(|c| unavailable_code(&c)) => {
            Error::Unavailable {
                detail: e.to_string(),
            }
        }
        // A deadlock or serialization failure the locks of `sql/` should rule out: if one still
        // happens, the change was rolled back whole, and trying again is the right advice.
        sqlx::Error::Database(ref d) if d.code().is_some_and(|c| c == "40P01" || c == "40001") => {
            tracing::warn!(error = %e, "a change collided with a concurrent one");
            Error::conflict(
                "concurrent_change",
                "the change collided with a concurrent one and was not made; try again",
            )
        }
        other => Error::internal(other),
    }
}

/// SQLSTATEs that mean the database cannot serve now rather than that the statement is wrong:
/// class 08 (connection exception), 57P01-57P05 (shut down by the administrator, crashed,
/// not accepting connections yet, database dropped, idle session timeout), 53300 (too many
/// connections), 57014 (cancelled: `statement_timeout` ran out, or an administrator cancelled
/// it; nothing was changed) and 25006 (read-only transaction: the host is, or has just become,
/// a standby; the availability watch moves to the host that accepts writes).
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("57P")
        || code == "53300"
        || code == "57014"
        || code == "25006"
}

/// Error codes that mean the disk (or a configured limit on the database's size) is full:
/// SQLite's `SQLITE_FULL` (13) and PostgreSQL's `disk_full` (53100). The write was not made;
/// the database is intact and takes writes again once there is space.
fn storage_full_code(code: &str) -> bool {
    code == "13" || code == "53100"
}

/// Maps a unique violation to `conflict`, anything else through [`db_err`].
pub(crate) fn on_unique(e: sqlx::Error, conflict: impl FnOnce() -> Error) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => conflict(),
        _ => db_err(e),
    }
}

/// `.db()` on a statement's result: its error mapped through [`db_err`]; `.unique(…)` maps a
/// unique violation to the given conflict instead (see [`on_unique`]).
pub(crate) trait DbResult<T> {
    fn db(self) -> connect_manager_core::Result<T>;
    fn unique(self, conflict: impl FnOnce() -> Error) -> connect_manager_core::Result<T>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> connect_manager_core::Result<T> {
        self.map_err(db_err)
    }

    fn unique(self, conflict: impl FnOnce() -> Error) -> connect_manager_core::Result<T> {
        self.map_err(|e| on_unique(e, conflict))
    }
}

#[cfg(test)]
mod tests {
    /// A database error with a given SQLSTATE.
    #[derive(Debug)]
    struct Sqlstate(&'static str);

    impl std::fmt::Display for Sqlstate {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl std::error::Error for Sqlstate {}

    impl sqlx::error::DatabaseError for Sqlstate {
        fn message(&self) -> &str {
            "test"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn e1_a_database_that_cannot_serve_is_503_not_500() {
        use connect_manager_core::Error;
        let map = |code| super::db_err(sqlx::Error::Database(Box::new(Sqlstate(code))));
        // connection failure, admin shutdown, crash shutdown, starting up or shutting down,
        // too many connections
        for code in ["08006", "57P01", "57P02", "57P03", "53300"] {
            assert!(
                matches!(map(code), Error::Unavailable { .. }),
                "{code} is 503"
            );
        }
        assert!(
            matches!(map("42601"), Error::Internal { .. }),
            "syntax is 500"
        );
        for code in ["40P01", "40001"] {
            assert!(
                matches!(
                    map(code),
                    Error::Conflict {
                        code: "concurrent_change",
                        ..
                    }
                ),
                "{code} is 409: nothing was changed, try again"
            );
        }
        assert!(matches!(
            super::db_err(sqlx::Error::PoolTimedOut),
            Error::Unavailable { .. }
        ));
    }

    #[test]
    fn a_statement_timeout_or_a_read_only_host_is_503_not_500() {
        use connect_manager_core::Error;
        let map = |code| super::db_err(sqlx::Error::Database(Box::new(Sqlstate(code))));
        for code in ["57014", "25006"] {
            assert!(
                matches!(map(code), Error::Unavailable { .. }),
                "{code} is 503"
            );
        }
    }

    #[test]
    fn e1_a_full_disk_is_503_storage_full_not_500() {
        use connect_manager_core::Error;
        let map = |code| super::db_err(sqlx::Error::Database(Box::new(Sqlstate(code))));
        let before = crate::availability::STORAGE_FAILURES.count();
        // SQLITE_FULL, PostgreSQL's disk_full
        for code in ["13", "53100"] {
            assert!(
                matches!(map(code), Error::StorageFull { .. }),
                "{code} is 503 storage_full"
            );
        }
        assert!(
            crate::availability::STORAGE_FAILURES.count() >= before + 2,
            "counted"
        );
        // Out of memory, too many connections: not a full disk.
        assert!(!matches!(map("53200"), Error::StorageFull { .. }));
        assert!(!matches!(map("53300"), Error::StorageFull { .. }));
    }
}
