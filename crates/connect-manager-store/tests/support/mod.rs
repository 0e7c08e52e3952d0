//! What the store's outage and failover tests share: the TCP proxy that can cut the database
//! away or silence it and the URL rewriting (both in `connect_manager_store::testing`), a
//! recorder of change announcements and the actor (also `testing`'s).

#![allow(dead_code)] // each test file uses its own part

pub use connect_manager_store::testing::{Recorder, TcpProxy as Proxy, actor, through};
