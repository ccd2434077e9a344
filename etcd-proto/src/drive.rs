//! The one loop that runs a [`Flow`] over a transport, written once for every
//! client: blocking ([`drive_blocking`]) and async ([`drive`]).
//!
//! A transport implements [`Transport`] or [`AsyncTransport`]: one HTTP
//! exchange, a way to wait, the clock and access to its shared [`Cluster`].
//! These functions do the rest. They read the clock only through the
//! transport and spawn nothing, so this module stays free of any runtime.

use std::future::Future;
use std::time::Instant;

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind};
use crate::flow::{Flow, Step, Transmit};

/// Why an exchange produced no complete response.
#[derive(Debug)]
pub struct ExchangeFailure {
    /// What kind of failure it was.
    pub kind: TransportErrorKind,
    /// The transport's own error.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl ExchangeFailure {
    /// A failure of `kind` caused by `source`.
    pub fn new(
        kind: TransportErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ExchangeFailure {
            kind,
            source: source.into(),
        }
    }
}

/// The outcome of one exchange.
pub type Exchange = Result<http::Response<Bytes>, ExchangeFailure>;

/// What a blocking transport provides.
pub trait Transport {
    /// Sends the request and reads the complete response, within `transmit.timeout`.
    fn send(&self, transmit: Transmit) -> Exchange;
    /// Blocks until `deadline`.
    fn sleep_until(&self, deadline: Instant);
    /// The current time.
    fn now(&self) -> Instant;
    /// Runs `f` with exclusive access to the client's cluster state.
    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R;
}

/// What an async transport provides.
pub trait AsyncTransport: Sync {
    /// Sends the request and reads the complete response, within `transmit.timeout`.
    fn send(&self, transmit: Transmit) -> impl Future<Output = Exchange> + Send;
    /// Completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;
    /// The current time.
    fn now(&self) -> Instant;
    /// Runs `f` with exclusive access to the client's cluster state. Never
    /// held across an `.await`.
    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R;
}

/// Runs `flow` to completion on a blocking transport.
pub fn drive_blocking<T: Transport, F: Flow>(
    transport: &T,
    mut flow: F,
) -> Result<F::Output, Error> {
    loop {
        let step = transport.with_cluster(|c| flow.poll(c, transport.now()));
        match step {
            Step::Transmit(transmit) => {
                let outcome = transport.send(transmit);
                transport.with_cluster(|c| report(&mut flow, c, transport.now(), outcome));
            }
            Step::Sleep(deadline) => transport.sleep_until(deadline),
            Step::Done(result) => return result,
        }
    }
}

/// Runs `flow` to completion on an async transport. The future is `Send`
/// when the flow is.
pub async fn drive<T: AsyncTransport, F: Flow + Send>(
    transport: &T,
    mut flow: F,
) -> Result<F::Output, Error> {
    loop {
        let step = transport.with_cluster(|c| flow.poll(c, transport.now()));
        match step {
            Step::Transmit(transmit) => {
                let outcome = transport.send(transmit).await;
                transport.with_cluster(|c| report(&mut flow, c, transport.now(), outcome));
            }
            Step::Sleep(deadline) => transport.sleep_until(deadline).await,
            Step::Done(result) => return result,
        }
    }
}

fn report<F: Flow>(flow: &mut F, cluster: &mut Cluster, now: Instant, outcome: Exchange) {
    match outcome {
        Ok(response) => flow.handle_response(cluster, now, response),
        Err(failure) => flow.handle_failure(cluster, now, failure.kind, failure.source),
    }
}

/// A client that runs flows to completion by blocking the calling thread.
pub trait BlockingRun {
    /// Drives `flow` to completion.
    fn run_flow<F: Flow>(&self, flow: F) -> Result<F::Output, Error>;
}

impl<T: Transport> BlockingRun for T {
    fn run_flow<F: Flow>(&self, flow: F) -> Result<F::Output, Error> {
        drive_blocking(self, flow)
    }
}

/// A continuous v2 watch as a blocking iterator: each `next()` waits for the
/// next [`WatchEvent`](crate::v2::WatchEvent). It never ends; an `Err` item
/// (every endpoint failed, say) can be followed by more items, resuming from
/// the same index.
#[derive(Debug)]
pub struct Watcher<'c, C> {
    client: &'c C,
    watch: crate::v2::Watch,
}

impl<'c, C: BlockingRun> Watcher<'c, C> {
    /// A watcher driving `watch` on `client`.
    pub fn new(client: &'c C, watch: crate::v2::Watch) -> Self {
        Watcher { client, watch }
    }

    /// The index the next wait starts from (`None`: from now).
    pub fn next_index(&self) -> Option<u64> {
        self.watch.next_index()
    }
}

impl<C: BlockingRun> Iterator for Watcher<'_, C> {
    type Item = Result<crate::v2::WatchEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let flow = self.watch.clone().next_event();
        Some(match self.client.run_flow(flow) {
            Ok((watch, result)) => {
                self.watch = watch;
                result
            }
            Err(error) => Err(error),
        })
    }
}

type WatchFuture = std::pin::Pin<
    Box<dyn Future<Output = (crate::v2::Watch, Result<crate::v2::WatchEvent, Error>)> + Send>,
>;

/// A continuous v2 watch as a [`Stream`](futures_core::Stream) of
/// [`WatchEvent`](crate::v2::WatchEvent)s, for any async client. It never
/// ends; dropping it cancels the long poll in flight (its connection is
/// closed, nothing is left behind on the server).
pub struct WatchStream<T> {
    client: T,
    idle: Option<crate::v2::Watch>,
    running: Option<WatchFuture>,
}

impl<T> std::fmt::Debug for WatchStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("waiting", &self.running.is_some())
            .finish_non_exhaustive()
    }
}

// No field is ever pinned in place (the running future is boxed), so moving
// the stream is always fine.
impl<T> Unpin for WatchStream<T> {}

impl<T: AsyncTransport + Clone + Send + 'static> WatchStream<T> {
    /// A stream driving `watch` on `client`.
    pub fn new(client: T, watch: crate::v2::Watch) -> Self {
        WatchStream {
            client,
            idle: Some(watch),
            running: None,
        }
    }
}

impl<T: AsyncTransport + Clone + Send + 'static> futures_core::Stream for WatchStream<T> {
    type Item = Result<crate::v2::WatchEvent, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.running.is_none() {
            let Some(watch) = this.idle.take() else {
                return std::task::Poll::Ready(None);
            };
            let client = this.client.clone();
            this.running = Some(Box::pin(async move {
                let fallback = watch.clone();
                match drive(&client, watch.next_event()).await {
                    Ok(outcome) => outcome,
                    Err(error) => (fallback, Err(error)),
                }
            }));
        }
        let Some(running) = this.running.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        match running.as_mut().poll(cx) {
            std::task::Poll::Ready((watch, result)) => {
                this.running = None;
                this.idle = Some(watch);
                std::task::Poll::Ready(Some(result))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}
