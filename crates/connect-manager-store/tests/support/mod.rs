//! What the store's outage and failover tests share: a TCP proxy that can cut the database
//! away, a recorder of change announcements, a system actor, and URL rewriting.

#![allow(dead_code)] // each test file uses its own part

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_manager_core::model::Actor;
use connect_manager_store::{Change, ChangeListener};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    pub upstream: SocketAddr,
    accept: Option<JoinHandle<()>>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    silent: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let mut proxy = Proxy {
            addr: listener.local_addr().expect("proxy address"),
            upstream,
            accept: None,
            links: Arc::default(),
            silent: tokio::sync::watch::channel(false).0,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let (upstream, links, silent) = (self.upstream, self.links.clone(), self.silent.clone());
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut quiet = silent.subscribe();
                let link = tokio::spawn(async move {
                    if *quiet.borrow() {
                        // Accepted by the kernel, never answered.
                        let _held = client;
                        return std::future::pending().await;
                    }
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let silenced = tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
                            r = quiet.wait_for(|s| *s) => r.is_ok(),
                        };
                        if silenced {
                            // Both sockets stay open; nothing passes any more.
                            let _held = (client, server);
                            std::future::pending::<()>().await;
                        }
                    }
                });
                links.lock().unwrap().push(link);
            }
        }));
    }

    /// The database host vanishes without a word (a dead machine, a partition): connections
    /// stay open but nothing passes either way, and new ones are accepted but never answered.
    pub fn go_silent(&self) {
        self.silent.send_replace(true);
    }

    /// The database goes away: nothing listens on the proxy's port, every connection is cut.
    pub fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// The database is back, on the same address.
    pub async fn restore(&mut self) {
        let listener = loop {
            // The aborted accept task drops its listener asynchronously.
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }
}

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

/// `postgres://user@host:port/db` -> (host:port resolved, the URL with `proxy` in its place).
pub async fn through(url: &str, proxy: impl Fn(SocketAddr) -> String) -> (SocketAddr, String) {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (userinfo, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
    let (hostport, db) = rest.split_once('/').expect("database");
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let upstream = tokio::net::lookup_host(&hostport)
        .await
        .expect("resolve database host")
        .next()
        .expect("database address");
    let at = if userinfo.is_empty() { "" } else { "@" };
    (
        upstream,
        format!("{scheme}://{userinfo}{at}{}/{db}", proxy(upstream)),
    )
}
