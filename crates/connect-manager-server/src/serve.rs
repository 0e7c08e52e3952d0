//! Serving connections: HTTP/1.1 over hyper, with bounds that a slow or hostile client cannot
//! lift. `axum::serve` gives hyper no timer, so a client that never finishes its request head
//! would hold a connection forever; this accept loop sets one, and caps the connections held.
//!
//! The gateway has a sibling loop (crates/connect-manager-gateway/src/serve.rs), kept apart on
//! purpose: the gateway may not depend on this crate, core does no I/O, and the two share only
//! the slot-and-shutdown skeleton; each connection there runs the gateway's handler with its own
//! upstream connection driven beside it (its hot path). The bounds are the same numbers: change
//! one, look at the other.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// How long a client has to send a whole request head, counted from when the connection is
/// ready for its next request: after that the connection is closed (slowloris, idle keep-alive).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections served at once; beyond, new connections wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// The most bytes hyper buffers for one request head: beyond, it answers 431 and closes. Heads
/// between `request_id::MAX_HEADER_BYTES` and this get a 431 in the error envelope.
pub const MAX_HEAD_BUFFER: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, lets requests in
/// flight finish and closes idle connections. Returns false if connections were still open
/// after `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> bool {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    // Warned once when the limit is reached, not for every connection that then waits.
    let mut at_limit = false;
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                at_limit = false;
                slot
            }
            Err(_) => {
                if !std::mem::replace(&mut at_limit, true) {
                    tracing::warn!(
                        limit = MAX_CONNECTIONS,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request.map(Body::new)
            });
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BUFFER);
            let mut connection = pin!(
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            );
            tokio::select! {
                served = connection.as_mut() => log_connection_end(served, remote),
                () = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await, remote);
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Every connection holds a slot until it ends: having them all back means all have ended.
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_ok()
}

fn log_connection_end(served: Result<(), hyper::Error>, remote: SocketAddr) {
    if let Err(e) = served {
        // Timeouts, resets and malformed requests are the client's business: debug only.
        tracing::debug!(client_ip = %remote.ip(), error = %e, "connection ended with an error");
    }
}

/// Accepting fails for a connection reset before it was accepted (nothing to do) or when the
/// process is out of file descriptors (wait for some to close rather than spin).
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
