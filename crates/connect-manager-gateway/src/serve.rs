//! The gateway's accept loop: HTTP/1.1 over hyper with the bounds the service uses (a header
//! read timeout, a cap on the request head, a cap on connections), graceful shutdown.
//!
//! A sibling of the manager's loop (crates/connect-manager-server/src/serve.rs), kept apart on
//! purpose: the gateway may not depend on the server crate, core does no I/O, and the two share
//! only the slot-and-shutdown skeleton (about 30 lines). What each connection runs differs: here
//! a `service_fn` straight into [`Gateway::handle`] with the connection's own upstream connection
//! driven beside it in the same task (G1's hot path), there an axum `Router` with `ConnectInfo`.
//! A crate for that skeleton alone would cost more than it saves. The bounds are the same
//! numbers: change one, look at the other.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::conn::UpstreamConn;
use crate::proxy::Gateway;

/// How long a client has to send a whole request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// The most bytes hyper buffers for one request head: beyond, it answers 431 itself. Heads
/// between [`crate::proxy::MAX_HEADER_BYTES`] and this get a 431 in Connect's shape.
pub const MAX_HEAD_BUFFER: usize = 64 * 1024;

/// Serves until `shutdown`; then stops accepting, lets requests in flight finish (at most
/// `grace`) and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let upstream = Arc::new(UpstreamConn::default());
            let conn = upstream.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let gateway = gateway.clone();
                let conn = conn.clone();
                async move { Ok::<_, Infallible>(gateway.handle(request, remote, &conn).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BUFFER);
            let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            // The upstream connection is driven here, beside the client connection (it never
            // ends by itself).
            let mut drive = pin!(upstream.drive());
            tokio::select! {
                biased;
                served = connection.as_mut() => ended(served),
                () = async { let _ = closing.wait_for(|c| *c).await; } => {
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        biased;
                        served = connection.as_mut() => ended(served),
                        () = drive.as_mut() => {}
                    }
                }
                () = drive.as_mut() => {}
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period");
    }
}

fn ended(served: Result<(), hyper::Error>) {
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
