//! The gateway's client of the manager, authenticated as the server this gateway stands for
//! (HTTP Basic with the server ID and secret from the credentials file, as in T4).
//! Owned by the verification side of the crate; see lib.rs.
