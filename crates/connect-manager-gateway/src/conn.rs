//! One upstream connection per client connection, driven by the task that serves the client
//! connection: a request and its answer never cross to another task (hyper-util's pooled client
//! runs each upstream connection as a task of its own, so every request crossed tasks twice).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use hyper::client::conn::http1::SendRequest;

type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
struct Inner {
    sender: Option<SendRequest<Body>>,
    driver: Option<Driver>,
    waker: Option<Waker>,
}

/// The upstream connection of one client connection (none until the first forwarded request).
#[derive(Default)]
pub struct UpstreamConn {
    inner: Mutex<Inner>,
}

impl UpstreamConn {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection's sender when it is still open.
    pub(crate) fn take(&self) -> Option<SendRequest<Body>> {
        self.lock().sender.take().filter(|s| !s.is_closed())
    }

    /// Gives the sender back after a request was handed to it.
    pub(crate) fn put(&self, sender: SendRequest<Body>) {
        self.lock().sender = Some(sender);
    }

    /// A new connection's driver (polled by [`Self::drive`]); its sender is given back with
    /// [`Self::put`].
    pub(crate) fn install(&self, driver: impl Future<Output = ()> + Send + 'static) {
        let mut inner = self.lock();
        inner.sender = None;
        inner.driver = Some(Box::pin(driver));
        if let Some(w) = &inner.waker {
            w.wake_by_ref();
        }
    }

    /// Drives the upstream connection; never ends (the serving task selects it beside the client
    /// connection, which ends first).
    pub fn drive(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            let mut inner = self.lock();
            if !inner
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                inner.waker = Some(cx.waker().clone());
            }
            if let Some(d) = inner.driver.as_mut()
                && d.as_mut().poll(cx).is_ready()
            {
                inner.driver = None;
                inner.sender = None;
            }
            Poll::Pending
        })
    }
}
