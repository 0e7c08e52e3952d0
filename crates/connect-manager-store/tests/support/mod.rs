//! What the store's outage and failover tests share: the TCP proxy that can cut the database
//! away or silence it and the URL rewriting (both in `connect_manager_store::testing`), a
//! recorder of change announcements, a system actor.

#![allow(dead_code)] // each test file uses its own part

use std::sync::Mutex;
use std::time::{Duration, Instant};

use connect_manager_core::model::Actor;
use connect_manager_store::{Change, ChangeListener};

pub use connect_manager_store::testing::{TcpProxy as Proxy, through};

#[derive(Default)]
pub struct Recorder(Mutex<Vec<Change>>);

impl ChangeListener for Recorder {
    fn changed(&self, change: &Change) {
        self.0.lock().unwrap().push(change.clone());
    }
}

impl Recorder {
    pub async fn wait_for(&self, change: &Change, within: Duration) {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.0.lock().unwrap().contains(change) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{change:?} not announced within {within:?}; got {:?}",
            self.0.lock().unwrap()
        );
    }
}

pub fn actor() -> Actor {
    Actor {
        user_id: "UTESTACTOR0000000000000000".into(),
        request_id: "req".into(),
        client_ip: "127.0.0.1".into(),
    }
}
