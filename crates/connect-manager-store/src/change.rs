//! Change notification (S2): what changed, for caches, and who must hear of it.

use std::sync::Arc;

/// What changed, for caches (S2). Each backend announces a change to its own process after the
/// commit; PostgreSQL also tells every other replica (NOTIFY in the same transaction, delivered on
/// commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A token was revoked or renamed.
    Token(String),
    /// A server's state, credentials or vault grants changed.
    Server(String),
    /// A signing key was added or retired (retiring revokes its tokens: token caches drop too).
    Keys,
    /// Anything may have changed (e.g. a vault was deleted; the change feed reconnected).
    All,
    /// The change feed is down: notifications may be missed until the next `All`.
    Unreliable,
}

impl Change {
    pub fn encode(&self) -> String {
        match self {
            Change::Token(id) => format!("t:{id}"),
            Change::Server(id) => format!("s:{id}"),
            Change::Keys => "k".into(),
            Change::All | Change::Unreliable => "*".into(),
        }
    }

    pub fn decode(s: &str) -> Change {
        match s.split_once(':') {
            Some(("t", id)) => Change::Token(id.to_owned()),
            Some(("s", id)) => Change::Server(id.to_owned()),
            _ if s == "k" => Change::Keys,
            _ => Change::All,
        }
    }
}

/// Something that must hear of changes: a cache.
pub trait ChangeListener: Send + Sync + 'static {
    /// Called on the committing task or the change feed's task: must not block.
    fn changed(&self, change: &Change);
}

/// The listeners of one store.
#[derive(Default)]
pub struct Listeners(std::sync::RwLock<Vec<Arc<dyn ChangeListener>>>);

impl Listeners {
    pub fn add(&self, listener: Arc<dyn ChangeListener>) {
        self.0.write().expect("listeners lock").push(listener);
    }

    pub fn announce(&self, change: &Change) {
        for l in self.0.read().expect("listeners lock").iter() {
            l.changed(change);
        }
    }
}

/// The channel PostgreSQL replicas announce changes on.
pub const CHANGE_CHANNEL: &str = "connect_manager_changes";
