//! The one loop that runs a [`Flow`] over a transport, written once, as
//! async code ([`drive`]): a blocking client runs the same code through
//! [`Ready`] and [`block_on`] ([`drive_blocking`] is one line; see
//! [`ready`] for how).
//!
//! A transport implements [`Transport`] or [`AsyncTransport`]: one HTTP
//! exchange, a way to wait, the clock, random bits and access to its shared
//! [`Cluster`]. These functions do the rest. They read the clock only
//! through the transport and spawn nothing, so this module stays free of
//! any runtime.
//!
//! # Streamed responses
//!
//! A [`StreamFlow`] (a v3 watch, say) keeps one response body open and emits
//! items as its chunks arrive. A transport opens such a response with
//! [`Transport::open`] / [`AsyncTransport::open`]: the response head comes
//! back at once, the body stays streaming as a [`ResponseBody`] /
//! [`AsyncResponseBody`] on a connection of its own (never a pooled one), and
//! dropping the body closes that connection. The drivers, written once:
//!
//! - [`run_stream_blocking`] / [`run_stream`]: the first item, then the
//!   stream is closed;
//! - [`StreamIter`] (blocking [`Iterator`], a thin wrapper that runs the
//!   async driver) and [`FlowStream`] (async [`Stream`](futures_core::Stream)):
//!   every item, the open body kept between items. A flow that ends with an error yields it as one last
//!   `Err` item; dropping either closes the open body.
//!
//! Following the [`StreamFlow`] contract, a driver closes the open body as
//! soon as the flow answers anything but `Read`, `Emit` or `Warn`. A
//! `Warn` reaches the caller as an `Err` item that is not the last one.

use std::future::Future;
use std::time::Instant;

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind, UsageError};
use crate::flow::{Flow, Input, Step, StreamFlow, StreamStep, Transmit};

pub mod ready;
use ready::ReadyDatagram;
pub use ready::{block_on, Ready, ReadyBody};

pub use crate::flow::ExchangeFailure;

/// The outcome of one exchange.
pub type Exchange = Result<http::Response<Bytes>, ExchangeFailure>;

/// Where chance comes from: lock identities, DNS query IDs and backoff
/// jitter are drawn by the transport (or the caller) and passed to the
/// machines as arguments; the core draws no random number itself, so a
/// test or a fuzzer can replay any run.
pub trait Entropy {
    /// 64 fresh random bits.
    fn random(&self) -> u64;

    /// 128 fresh random bits.
    fn random_u128(&self) -> u128 {
        (u128::from(self.random()) << 64) | u128::from(self.random())
    }
}

/// What a blocking transport provides.
pub trait Transport: Entropy + Sync {
    /// Sends the request and reads the complete response, within `transmit.timeout`.
    fn send(&self, transmit: Transmit) -> Exchange;
    /// Blocks until `deadline`, or until the thread is unparked (a wake:
    /// a keep-alive stopped): `std::thread::park_timeout`. Returning early
    /// is fine, the driver polls again; sleeping through a wake delays a
    /// stop until the next renewal.
    fn sleep_until(&self, deadline: Instant);
    /// The current time.
    fn now(&self) -> Instant;
    /// Runs `f` with exclusive access to the client's cluster state.
    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R;
    /// Runs `task` in the background (a lock's TTL keeper). The core never
    /// spawns by itself: it asks the transport.
    fn spawn(&self, task: impl FnOnce() + Send + 'static);

    /// The body of a response opened with [`open`](Self::open).
    type Body: ResponseBody + Send + 'static;

    /// Sends the request and returns the response head as soon as it
    /// arrives, its body left streaming, on a connection of its own that the
    /// body closes when dropped. `transmit.timeout` (if any) bounds
    /// connecting and the head; each read of the body has its own limit.
    fn open(
        &self,
        transmit: Transmit,
    ) -> Result<(http::response::Parts, Self::Body), ExchangeFailure>;
}

/// The streaming body of a response opened with [`Transport::open`].
/// Dropping it closes its connection.
pub trait ResponseBody {
    /// Blocks until the next chunk of the body arrives, and returns it
    /// (whatever arrived, however small); `Ok(None)` at the body's clean end.
    /// Fails with [`TransportErrorKind::Timeout`] if nothing arrived by
    /// `until` (`None`: no limit).
    fn next_chunk(&mut self, until: Option<Instant>) -> Result<Option<Bytes>, ExchangeFailure>;

    /// The trailers that followed the body, once [`next_chunk`](Self::next_chunk)
    /// returned its end; empty by default (HTTP/1.1 bodies have none here).
    fn take_trailers(&mut self) -> http::HeaderMap {
        http::HeaderMap::new()
    }
}

/// The streaming body of a response opened with [`AsyncTransport::open`].
/// Dropping it closes its connection.
pub trait AsyncResponseBody: Send {
    /// The next chunk of the body as soon as it arrives (whatever arrived,
    /// however small); `Ok(None)` at the body's clean end. Fails with
    /// [`TransportErrorKind::Timeout`] if nothing arrived by `until`
    /// (`None`: no limit).
    fn next_chunk(
        &mut self,
        until: Option<Instant>,
    ) -> impl Future<Output = Result<Option<Bytes>, ExchangeFailure>> + Send;

    /// The trailers that followed the body (gRPC's status), once
    /// [`next_chunk`](Self::next_chunk) returned its end; empty by default.
    fn take_trailers(&mut self) -> http::HeaderMap {
        http::HeaderMap::new()
    }

    /// Writes `message` on the open request's body, which stays open (a
    /// gRPC stream over HTTP/2). By default the request was sent whole
    /// (HTTP/1.1) and this fails.
    fn send_message(
        &mut self,
        message: Bytes,
    ) -> impl Future<Output = Result<(), ExchangeFailure>> + Send {
        drop(message);
        std::future::ready(Err(cannot_send()))
    }
}

/// What an async transport provides.
pub trait AsyncTransport: Sync + Entropy {
    /// Sends the request and reads the complete response, within `transmit.timeout`.
    fn send(&self, transmit: Transmit) -> impl Future<Output = Exchange> + Send;
    /// Completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;
    /// The current time.
    fn now(&self) -> Instant;
    /// Runs `f` with exclusive access to the client's cluster state. Never
    /// held across an `.await`.
    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R;
    /// Runs `task` in the background on the client's runtime (a lock's TTL
    /// keeper). The core never spawns by itself: it asks the transport.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);

    /// The body of a response opened with [`open`](Self::open).
    type Body: AsyncResponseBody + 'static;

    /// Sends the request and returns the response head as soon as it
    /// arrives, its body left streaming, on a connection of its own that the
    /// body closes when dropped. `transmit.timeout` (if any) bounds
    /// connecting and the head; each read of the body has its own limit.
    fn open(
        &self,
        transmit: Transmit,
    ) -> impl Future<Output = Result<(http::response::Parts, Self::Body), ExchangeFailure>> + Send;
}

/// Runs `flow` to completion on a blocking transport: [`drive`] through
/// [`Ready`].
pub fn drive_blocking<T: Transport, F: Flow>(transport: &T, flow: F) -> Result<F::Output, Error> {
    block_on(drive(&Ready(transport), flow))
}

/// Runs `flow` to completion on an async transport. The future is `Send`
/// when the flow is.
pub async fn drive<T: AsyncTransport, F: Flow>(
    transport: &T,
    mut flow: F,
) -> Result<F::Output, Error> {
    loop {
        let step = transport.with_cluster(|c| flow.poll(c, transport.now()));
        match step {
            Step::Transmit(transmit) => {
                let input = exchange_input(transport.send(transmit).await);
                transport.with_cluster(|c| flow.handle(c, transport.now(), input));
            }
            Step::Sleep(deadline) => transport.sleep_until(deadline).await,
            Step::Done(result) => return result,
        }
    }
}

/// What an exchange's outcome is, as a flow's input.
pub(crate) fn exchange_input(outcome: Exchange) -> Input {
    match outcome {
        Ok(response) => Input::Response(response),
        Err(failure) => Input::Failure(failure),
    }
}

/// What opening a stream gave, as a flow's input.
fn head_input(outcome: Result<http::response::Parts, ExchangeFailure>) -> Input {
    match outcome {
        Ok(head) => Input::Head(head),
        Err(failure) => Input::Failure(failure),
    }
}

/// What a read of the open body gave, as a flow's input. A body that ended
/// (with its trailers) or failed is closed first: the flow is done with it.
/// A read that timed out leaves the body open: the flow decides (a gRPC
/// watch asks for progress and reads on; any other step closes it).
fn chunk_input<B: AsyncResponseBody>(
    outcome: Result<Option<Bytes>, ExchangeFailure>,
    body: &mut Option<B>,
) -> Input {
    match outcome {
        Ok(Some(data)) => Input::Data(data),
        Ok(None) => Input::End(
            body.take()
                .map(|mut b| b.take_trailers())
                .unwrap_or_default(),
        ),
        Err(failure) => {
            if failure.kind != TransportErrorKind::Timeout {
                *body = None;
            }
            Input::Failure(failure)
        }
    }
}

/// Why a [`StreamStep::Send`] failed over HTTP/1.1, where a request is
/// sent whole before its answer is read.
fn cannot_send() -> ExchangeFailure {
    ExchangeFailure::new(
        TransportErrorKind::Http,
        "this transport sends each request whole (HTTP/1.1): nothing can be sent on an open stream",
    )
}

/// What a [`StreamFlow`]'s driver does next, after closing the open body if
/// the step is done with it.
enum StreamPlan {
    Transmit(Transmit),
    Open(Transmit),
    Read(Option<Instant>),
    Send(Bytes),
    Sleep(Instant),
}

/// What a stream driver hands its caller.
enum Yielded<I> {
    /// An item; the flow goes on.
    Item(I),
    /// An error; the flow goes on.
    Warning(Error),
    /// The flow's last word: it ended with this error.
    Failed(Error),
    /// The flow ended cleanly.
    Ended,
}

impl<I> Yielded<I> {
    /// What an iterator or a stream of the flow's items gives next, and
    /// whether that was the end.
    fn into_next(self) -> (Option<Result<I, Error>>, bool) {
        match self {
            Yielded::Item(item) => (Some(Ok(item)), false),
            Yielded::Warning(error) => (Some(Err(error)), false),
            Yielded::Failed(error) => (Some(Err(error)), true),
            Yielded::Ended => (None, true),
        }
    }
}

/// Sorts a stream flow's step into work for the driver or something for the
/// caller. Per the [`StreamFlow`] contract, any step but `Read`, `Send`,
/// `Emit` and `Warn` closes the open body first.
fn stream_plan<I, B>(step: StreamStep<I>, body: &mut Option<B>) -> Result<StreamPlan, Yielded<I>> {
    if !matches!(
        step,
        StreamStep::Read(_) | StreamStep::Send(_) | StreamStep::Emit(_) | StreamStep::Warn(_)
    ) {
        *body = None;
    }
    match step {
        StreamStep::Transmit(transmit) => Ok(StreamPlan::Transmit(transmit)),
        StreamStep::Open(transmit) => Ok(StreamPlan::Open(transmit)),
        StreamStep::Read(until) if body.is_some() => Ok(StreamPlan::Read(until)),
        StreamStep::Read(_) => Err(Yielded::Failed(
            UsageError::FlowOutOfOrder {
                expected: "an open response (an Open step) before Read",
            }
            .into(),
        )),
        StreamStep::Send(message) => Ok(StreamPlan::Send(message)),
        StreamStep::Sleep(deadline) => Ok(StreamPlan::Sleep(deadline)),
        StreamStep::Emit(item) => Err(Yielded::Item(item)),
        StreamStep::Warn(error) => Err(Yielded::Warning(error)),
        StreamStep::End(Ok(())) => Err(Yielded::Ended),
        StreamStep::End(Err(error)) => Err(Yielded::Failed(error)),
    }
}

/// Drives `flow` on an async transport up to its next item or its end.
async fn next_async<T: AsyncTransport, F: StreamFlow>(
    transport: &T,
    flow: &mut F,
    body: &mut Option<T::Body>,
) -> Yielded<F::Item> {
    loop {
        let step = transport.with_cluster(|c| flow.poll(c, transport.now()));
        let plan = match stream_plan(step, body) {
            Ok(plan) => plan,
            Err(yielded) => return yielded,
        };
        match plan {
            StreamPlan::Transmit(transmit) => {
                let input = exchange_input(transport.send(transmit).await);
                transport.with_cluster(|c| flow.handle(c, transport.now(), input));
            }
            StreamPlan::Open(transmit) => {
                let input = head_input(transport.open(transmit).await.map(|(head, opened)| {
                    *body = Some(opened);
                    head
                }));
                transport.with_cluster(|c| flow.handle(c, transport.now(), input));
            }
            StreamPlan::Read(until) => {
                let Some(open) = body.as_mut() else {
                    continue; // `stream_plan` checked: unreachable
                };
                let input = chunk_input(open.next_chunk(until).await, body);
                transport.with_cluster(|c| flow.handle(c, transport.now(), input));
            }
            StreamPlan::Send(message) => {
                let sent = match body.as_mut() {
                    Some(open) => open.send_message(message).await,
                    None => Err(cannot_send()),
                };
                if let Err(failure) = sent {
                    *body = None;
                    transport
                        .with_cluster(|c| flow.handle(c, transport.now(), Input::Failure(failure)));
                }
            }
            StreamPlan::Sleep(deadline) => transport.sleep_until(deadline).await,
        }
    }
}

fn first_item<I>(yielded: Yielded<I>) -> Result<I, Error> {
    match yielded {
        Yielded::Item(item) => Ok(item),
        Yielded::Failed(error) | Yielded::Warning(error) => Err(error),
        Yielded::Ended => Err(UsageError::FlowOutOfOrder {
            expected: "an item before the end",
        }
        .into()),
    }
}

/// Runs a [`StreamFlow`] on a blocking transport until its first item, and
/// returns it; any open response is closed on return. A flow that ends
/// with an error returns it; one that ends cleanly before any item is a
/// [`UsageError::FlowOutOfOrder`].
pub fn run_stream_blocking<T: Transport, F: StreamFlow>(
    transport: &T,
    flow: F,
) -> Result<F::Item, Error> {
    block_on(run_stream(&Ready(transport), flow))
}

/// Runs a [`StreamFlow`] on an async transport until its first item, as
/// [`run_stream_blocking`] does. The future is `Send` when the flow is.
pub async fn run_stream<T: AsyncTransport, F: StreamFlow>(
    transport: &T,
    mut flow: F,
) -> Result<F::Item, Error> {
    let mut body = None;
    first_item(next_async(transport, &mut flow, &mut body).await)
}

/// A [`StreamFlow`] driven on a blocking transport, as an [`Iterator`]:
/// each `next()` blocks until the flow's next item. A flow that ends with an
/// error yields it as a last `Err` item; after the end, `next()` is `None`.
/// A flow's warning (`StreamStep::Warn`) is an `Err` item that is not the last.
///
/// It owns its transport (a client is a cheap handle: pass a clone, or a
/// reference). The open response body is kept between calls to `next()`;
/// dropping the iterator closes it (and its connection).
pub struct StreamIter<T: Transport, F: StreamFlow> {
    transport: T,
    flow: F,
    body: Option<ReadyBody<T::Body>>,
    done: bool,
}

impl<T: Transport, F: StreamFlow> std::fmt::Debug for StreamIter<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIter")
            .field("open", &self.body.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<T: Transport, F: StreamFlow> StreamIter<T, F> {
    /// An iterator driving `flow` on `transport`. Nothing is sent before the
    /// first `next()`.
    pub fn new(transport: T, flow: F) -> Self {
        StreamIter {
            transport,
            flow,
            body: None,
            done: false,
        }
    }

    /// The flow, as the last `next()` left it.
    pub fn flow(&self) -> &F {
        &self.flow
    }

    /// True while a response body is open.
    pub fn is_open(&self) -> bool {
        self.body.is_some()
    }

    /// The flow, the open response (if any) closed.
    pub fn into_flow(self) -> F {
        self.flow
    }
}

impl<T: Transport, F: StreamFlow> Iterator for StreamIter<T, F> {
    type Item = Result<F::Item, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let transport = Ready(&self.transport);
        let yielded = block_on(next_async(&transport, &mut self.flow, &mut self.body));
        let (item, done) = yielded.into_next();
        if done {
            self.done = true;
            self.body = None;
        }
        item
    }
}

impl<T: Transport, F: StreamFlow> std::iter::FusedIterator for StreamIter<T, F> {}

/// The future a [`FlowStream`] polls: it owns the flow and its open body
/// while it runs, and hands them back with what it got.
type FlowFuture<F, B, I> =
    std::pin::Pin<Box<dyn Future<Output = (F, Option<B>, Yielded<I>)> + Send>>;

/// A [`StreamFlow`] driven on an async transport, as a
/// [`Stream`](futures_core::Stream) of its items. A flow that ends with an
/// error yields it as a last `Err` item; after the end the stream is over.
/// A flow's warning (`StreamStep::Warn`) is an `Err` item that is not the last.
///
/// The open response body is kept between items; dropping the stream
/// (between items or in the middle of one) closes it and its connection.
pub struct FlowStream<T: AsyncTransport, F: StreamFlow> {
    client: T,
    /// The flow and its open body between items (and after the end).
    idle: Option<(F, Option<T::Body>)>,
    running: Option<FlowFuture<F, T::Body, F::Item>>,
    done: bool,
}

impl<T: AsyncTransport, F: StreamFlow> std::fmt::Debug for FlowStream<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowStream")
            .field("waiting", &self.running.is_some())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

// No field is ever pinned in place (the running future is boxed), so moving
// the stream is always fine.
impl<T: AsyncTransport, F: StreamFlow> Unpin for FlowStream<T, F> {}

impl<T: AsyncTransport, F: StreamFlow> FlowStream<T, F> {
    /// A stream driving `flow` on `client`. Nothing is sent before it is
    /// first polled.
    pub fn new(client: T, flow: F) -> Self {
        FlowStream {
            client,
            idle: Some((flow, None)),
            running: None,
            done: false,
        }
    }

    /// The flow, between items (and after the end); `None` while the stream
    /// is waiting for its next item (the flow is then inside that wait).
    pub fn flow(&self) -> Option<&F> {
        self.idle.as_ref().map(|(flow, _)| flow)
    }

    /// True while a response body is open between items.
    pub fn is_open(&self) -> bool {
        self.idle.as_ref().is_some_and(|(_, body)| body.is_some())
    }
}

impl<T, F> futures_core::Stream for FlowStream<T, F>
where
    T: AsyncTransport + Clone + Send + 'static,
    F: StreamFlow + Send + 'static,
    F::Item: Send,
{
    type Item = Result<F::Item, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.running.is_none() {
            if this.done {
                return std::task::Poll::Ready(None);
            }
            let Some((mut flow, mut body)) = this.idle.take() else {
                return std::task::Poll::Ready(None);
            };
            let client = this.client.clone();
            this.running = Some(Box::pin(async move {
                let yielded = next_async(&client, &mut flow, &mut body).await;
                (flow, body, yielded)
            }));
        }
        let Some(running) = this.running.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let std::task::Poll::Ready((flow, body, yielded)) = running.as_mut().poll(cx) else {
            return std::task::Poll::Pending;
        };
        this.running = None;
        let (item, done) = yielded.into_next();
        this.done = done;
        // After the end the flow stays for inspection; its body is closed.
        this.idle = Some((flow, if this.done { None } else { body }));
        std::task::Poll::Ready(item)
    }
}

impl<T, F> futures_core::FusedStream for FlowStream<T, F>
where
    T: AsyncTransport + Clone + Send + 'static,
    F: StreamFlow + Send + 'static,
    F::Item: Send,
{
    fn is_terminated(&self) -> bool {
        self.done
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
///
/// It owns its client (a cheap handle: pass a clone, or a reference).
#[derive(Debug)]
pub struct Watcher<C> {
    client: C,
    watch: crate::v2::Watch,
}

impl<C: BlockingRun> Watcher<C> {
    /// A watcher driving `watch` on `client`.
    pub fn new(client: C, watch: crate::v2::Watch) -> Self {
        Watcher { client, watch }
    }

    /// The index the next wait starts from (`None`: from now).
    pub fn next_index(&self) -> Option<u64> {
        self.watch.next_index()
    }
}

impl<C: BlockingRun> Iterator for Watcher<C> {
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

/// A lock held through an async client; see [`crate::v2::lock`].
///
/// For a [`Hold::KeepAlive`](crate::v2::Hold::KeepAlive) lock a background
/// task (spawned through [`AsyncTransport::spawn`]) refreshes the TTL while
/// the guard lives. **Release it with [`release`](Self::release)`.await`.**
/// Dropping the guard without releasing stops the refreshing at once; the
/// lock then frees itself when its TTL runs out (nothing can be awaited in
/// `Drop`).
pub struct AsyncLockGuard<T> {
    client: T,
    lock: crate::v2::HeldLock,
    keeper: std::sync::Arc<crate::keeper::Shared>,
}

impl<T> std::fmt::Debug for AsyncLockGuard<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLockGuard")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl<T: AsyncTransport + Clone + Send + 'static> AsyncLockGuard<T> {
    /// Acquires the lock `name`. A non-blocking attempt on a held lock fails
    /// with [`LockError::Busy`](crate::v2::LockError::Busy), leaving no key behind.
    pub async fn acquire(
        client: &T,
        name: &str,
        options: crate::v2::LockOptions,
    ) -> Result<Self, Error> {
        let flow = crate::v2::AcquireLock::new(name, options, client.random_u128());
        let path = flow.path().to_owned();
        let Some(lock) = drive(client, flow).await? else {
            return Err(crate::v2::LockError::Busy { path }.into());
        };
        let shared = std::sync::Arc::new(crate::keeper::Shared::default());
        if lock.hold == crate::v2::Hold::KeepAlive {
            let keeper = crate::v2::KeepLock::new(lock.clone());
            let (background, signal) = (client.clone(), shared.clone());
            client.spawn(async move { crate::keeper::keep(&background, keeper, &signal).await });
        }
        Ok(AsyncLockGuard {
            client: client.clone(),
            lock,
            keeper: shared,
        })
    }
}

impl<T> AsyncLockGuard<T> {
    /// The lock: its key, uuid and fencing token.
    pub fn lock(&self) -> &crate::v2::HeldLock {
        &self.lock
    }

    /// The fencing token: our key's `createdIndex`, growing with every acquisition.
    pub fn fencing_token(&self) -> u64 {
        self.lock.index
    }

    /// True once the refresher found our key gone, or could not refresh it
    /// within its TTL (less a margin, so the holder learns first): the lock
    /// must be taken as no longer ours.
    pub fn is_lost(&self) -> bool {
        self.keeper.is_lost()
    }

    /// Why the lock was lost (`None` while it is held), e.g. "lock key
    /// /_locks/n/13: its TTL (5s) ran out without a successful renewal".
    pub fn lost_reason(&self) -> Option<String> {
        self.keeper.reason()
    }

    /// Runs `callback` with the reason once the lock is lost (at once if it
    /// already is), on the refresher's thread or task.
    pub fn on_lost(&self, callback: impl FnOnce(&str) + Send + 'static) {
        self.keeper.on_lost(Box::new(callback));
    }
}

impl<T: AsyncTransport> AsyncLockGuard<T> {
    /// Asks etcd whether we still hold the lock.
    pub async fn is_acquired(&self) -> Result<bool, Error> {
        drive(&self.client, self.lock.check()).await
    }

    /// Stops refreshing and deletes our key (only if it is still ours).
    /// `Ok(false)`: it was already gone.
    pub async fn release(self) -> Result<bool, Error> {
        self.keeper.stop();
        drive(&self.client, self.lock.release()).await
    }
}

impl<T> Drop for AsyncLockGuard<T> {
    fn drop(&mut self) {
        self.keeper.stop();
    }
}

/// A lock held through a blocking client; see [`crate::v2::lock`]. The
/// [`AsyncLockGuard`] run through [`Ready`], plus what only a blocking
/// guard can do: **dropping it releases the lock** (a guarded
/// compare-and-delete); [`release`](Self::release) does the same and
/// reports the outcome.
///
/// For a [`Hold::KeepAlive`](crate::v2::Hold::KeepAlive) lock a background
/// thread (spawned through [`Transport::spawn`]) refreshes the TTL while the
/// guard lives.
pub struct LockGuard<C: Transport> {
    /// `None` once released.
    guard: Option<AsyncLockGuard<Ready<C>>>,
}

impl<C: Transport> std::fmt::Debug for LockGuard<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.guard.as_ref().map(|g| &g.lock))
            .finish_non_exhaustive()
    }
}

impl<C: Transport + Clone + Send + 'static> LockGuard<C> {
    /// Acquires the lock `name`. A non-blocking attempt on a held lock fails
    /// with [`LockError::Busy`](crate::v2::LockError::Busy), leaving no key behind.
    pub fn acquire(client: &C, name: &str, options: crate::v2::LockOptions) -> Result<Self, Error> {
        let guard = block_on(AsyncLockGuard::acquire(
            &Ready(client.clone()),
            name,
            options,
        ))?;
        Ok(LockGuard { guard: Some(guard) })
    }
}

impl<C: Transport> LockGuard<C> {
    /// Asks etcd whether we still hold the lock.
    pub fn is_acquired(&self) -> Result<bool, Error> {
        block_on(self.held().is_acquired())
    }

    /// Stops refreshing and deletes our key (only if it is still ours).
    /// `Ok(false)`: it was already gone.
    pub fn release(mut self) -> Result<bool, Error> {
        match self.guard.take() {
            Some(guard) => block_on(guard.release()),
            None => Ok(false),
        }
    }

    fn held(&self) -> &AsyncLockGuard<Ready<C>> {
        // Taken only by `release` and `drop`, which consume the guard.
        self.guard.as_ref().expect("a live guard holds its lock")
    }

    /// The lock: its key, uuid and fencing token.
    pub fn lock(&self) -> &crate::v2::HeldLock {
        self.held().lock()
    }

    /// The fencing token: our key's `createdIndex`, growing with every acquisition.
    pub fn fencing_token(&self) -> u64 {
        self.held().fencing_token()
    }

    /// True once the refresher found our key gone, or could not refresh it
    /// within its TTL (less a margin, so the holder learns first): the lock
    /// must be taken as no longer ours.
    pub fn is_lost(&self) -> bool {
        self.held().is_lost()
    }

    /// Why the lock was lost (`None` while it is held), e.g. "lock key
    /// /_locks/n/13: its TTL (5s) ran out without a successful renewal".
    pub fn lost_reason(&self) -> Option<String> {
        self.held().lost_reason()
    }

    /// Runs `callback` with the reason once the lock is lost (at once if it
    /// already is), on the refresher's thread.
    pub fn on_lost(&self, callback: impl FnOnce(&str) + Send + 'static) {
        self.held().on_lost(callback);
    }
}

impl<C: Transport> Drop for LockGuard<C> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            let _ = block_on(guard.release());
        }
    }
}

/// A UDP socket connected to a DNS server, as a blocking transport provides it.
pub trait Datagram: Entropy + Sync {
    /// Sends one datagram.
    fn send(&self, bytes: &[u8]) -> std::io::Result<()>;
    /// Receives one datagram within `timeout`; `Ok(None)` when none came.
    fn recv_timeout(
        &self,
        buf: &mut [u8],
        timeout: std::time::Duration,
    ) -> std::io::Result<Option<usize>>;
    /// The current time.
    fn now(&self) -> Instant;
}

/// A UDP socket connected to a DNS server, as an async transport provides it.
pub trait AsyncDatagram: Sync + Entropy {
    /// Sends one datagram.
    fn send(&self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Receives one datagram within `timeout`; `Ok(None)` when none came.
    fn recv_timeout(
        &self,
        buf: &mut [u8],
        timeout: std::time::Duration,
    ) -> impl Future<Output = std::io::Result<Option<usize>>> + Send;
    /// The current time.
    fn now(&self) -> Instant;
}

/// What the discovery loop needs next.
enum DiscoveryStep {
    Done(Result<Vec<String>, crate::srv::DiscoveryError>),
    Send(Vec<u8>),
    Receive(std::time::Duration),
}

/// The discovery loop's decision: the result, a query to
/// send (restarting the attempt's clock), or how long to wait for an answer.
fn discovery_step(
    discovery: &mut crate::srv::SrvDiscovery,
    attempt_ends: &mut Instant,
    per_attempt: std::time::Duration,
    now: Instant,
) -> DiscoveryStep {
    if let Some(result) = discovery.result() {
        return DiscoveryStep::Done(result);
    }
    if let Some(query) = discovery.poll_transmit() {
        *attempt_ends = now + per_attempt;
        return DiscoveryStep::Send(query);
    }
    DiscoveryStep::Receive(attempt_ends.saturating_duration_since(now))
}

/// Runs DNS SRV discovery for `domain` over a blocking socket connected to
/// `server`; see [`crate::srv`].
pub fn discover_blocking(
    socket: &impl Datagram,
    domain: &str,
    server: std::net::SocketAddr,
    per_attempt: std::time::Duration,
) -> Result<Vec<String>, crate::srv::DiscoveryError> {
    block_on(discover(
        &ReadyDatagram(socket),
        domain,
        server,
        per_attempt,
    ))
}

/// Runs DNS SRV discovery for `domain` over an async socket connected to
/// `server`; see [`crate::srv`].
pub async fn discover(
    socket: &impl AsyncDatagram,
    domain: &str,
    server: std::net::SocketAddr,
    per_attempt: std::time::Duration,
) -> Result<Vec<String>, crate::srv::DiscoveryError> {
    let io_error = |e: std::io::Error| crate::srv::DiscoveryError::io(domain, server, &e);
    let mut discovery = crate::srv::SrvDiscovery::new(domain, socket.random() as u16);
    let mut buffer = vec![0; crate::srv::MAX_DATAGRAM];
    let mut attempt_ends = socket.now();
    loop {
        match discovery_step(&mut discovery, &mut attempt_ends, per_attempt, socket.now()) {
            DiscoveryStep::Done(result) => return result,
            DiscoveryStep::Send(query) => socket.send(&query).await.map_err(io_error)?,
            DiscoveryStep::Receive(left) => match socket.recv_timeout(&mut buffer, left).await {
                Ok(Some(n)) => discovery.handle_datagram(&buffer[..n]),
                Ok(None) => discovery.handle_timeout(),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            },
        }
    }
}

#[cfg(test)]
mod stream_tests {
    //! The stream drivers against a scripted flow and a fake transport that
    //! counts the bodies it has open.

    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// One step of the script.
    #[derive(Clone, Copy, Debug)]
    enum Do {
        Transmit,
        Open,
        Read,
        Emit(u32),
        Sleep,
        EndOk,
        EndErr,
    }

    /// What the fake transport and the flow saw, in order.
    #[derive(Default)]
    struct Shared {
        open: AtomicUsize,
        log: Mutex<Vec<String>>,
    }

    impl Shared {
        fn log(&self, line: impl Into<String>) {
            self.log.lock().unwrap().push(line.into());
        }
        fn lines(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    #[derive(Clone)]
    struct Fake {
        cluster: Arc<Mutex<Cluster>>,
        shared: Arc<Shared>,
        chunks: Vec<Result<&'static [u8], TransportErrorKind>>,
    }

    impl Fake {
        fn new(chunks: Vec<Result<&'static [u8], TransportErrorKind>>) -> Self {
            Fake {
                cluster: Arc::new(Mutex::new(
                    Cluster::from_urls(&["http://127.0.0.1:2379"]).unwrap(),
                )),
                shared: Arc::default(),
                chunks,
            }
        }

        fn body(&self) -> (http::response::Parts, FakeBody) {
            self.shared.open.fetch_add(1, Ordering::SeqCst);
            self.shared.log("open");
            let body = FakeBody {
                shared: self.shared.clone(),
                chunks: self.chunks.iter().copied().collect(),
            };
            (http::Response::new(()).into_parts().0, body)
        }

        fn sleep(&self) {
            let open = self.shared.open.load(Ordering::SeqCst);
            self.shared.log(format!("sleep with {open} open"));
        }
    }

    struct FakeBody {
        shared: Arc<Shared>,
        chunks: VecDeque<Result<&'static [u8], TransportErrorKind>>,
    }

    impl FakeBody {
        fn chunk(&mut self) -> Result<Option<Bytes>, ExchangeFailure> {
            match self.chunks.pop_front() {
                None => Ok(None),
                Some(Ok(data)) => Ok(Some(Bytes::from_static(data))),
                Some(Err(kind)) => Err(ExchangeFailure::new(kind, "scripted")),
            }
        }
    }

    impl Drop for FakeBody {
        fn drop(&mut self) {
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
            self.shared.log("close");
        }
    }

    impl ResponseBody for FakeBody {
        fn next_chunk(&mut self, _: Option<Instant>) -> Result<Option<Bytes>, ExchangeFailure> {
            self.chunk()
        }
    }

    impl AsyncResponseBody for FakeBody {
        async fn next_chunk(
            &mut self,
            _: Option<Instant>,
        ) -> Result<Option<Bytes>, ExchangeFailure> {
            self.chunk()
        }
    }

    fn ok_response() -> Exchange {
        Ok(http::Response::new(Bytes::new()))
    }

    impl Entropy for Fake {
        fn random(&self) -> u64 {
            4
        }
    }

    impl Transport for Fake {
        type Body = FakeBody;
        fn send(&self, _: Transmit) -> Exchange {
            ok_response()
        }
        fn open(&self, _: Transmit) -> Result<(http::response::Parts, FakeBody), ExchangeFailure> {
            Ok(self.body())
        }
        fn sleep_until(&self, _: Instant) {
            self.sleep();
        }
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
            f(&mut self.cluster.lock().unwrap())
        }
        fn spawn(&self, task: impl FnOnce() + Send + 'static) {
            task();
        }
    }

    impl AsyncTransport for Fake {
        type Body = FakeBody;
        async fn send(&self, _: Transmit) -> Exchange {
            ok_response()
        }
        async fn open(
            &self,
            _: Transmit,
        ) -> Result<(http::response::Parts, FakeBody), ExchangeFailure> {
            Ok(self.body())
        }
        async fn sleep_until(&self, _: Instant) {
            self.sleep();
        }
        fn now(&self) -> Instant {
            Instant::now()
        }
        fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
            f(&mut self.cluster.lock().unwrap())
        }
        fn spawn(&self, _: impl Future<Output = ()> + Send + 'static) {}
    }

    /// Answers each poll with the next step of its script, logging what it
    /// is told and how many bodies are open when polled.
    struct Script {
        steps: VecDeque<Do>,
        shared: Arc<Shared>,
    }

    impl Script {
        fn new(fake: &Fake, steps: &[Do]) -> Self {
            Script {
                steps: steps.iter().copied().collect(),
                shared: fake.shared.clone(),
            }
        }
    }

    fn transmit() -> Transmit {
        Transmit {
            request: http::Request::new(Bytes::new()),
            timeout: None,
        }
    }

    impl StreamFlow for Script {
        type Item = u32;

        fn poll(&mut self, _: &mut Cluster, _: Instant) -> StreamStep<u32> {
            let step = self.steps.pop_front().unwrap_or(Do::EndOk);
            let open = self.shared.open.load(Ordering::SeqCst);
            self.shared.log(format!("{step:?} with {open} open"));
            match step {
                Do::Transmit => StreamStep::Transmit(transmit()),
                Do::Open => StreamStep::Open(transmit()),
                Do::Read => StreamStep::Read(None),
                Do::Emit(item) => StreamStep::Emit(item),
                Do::Sleep => StreamStep::Sleep(Instant::now()),
                Do::EndOk => StreamStep::End(Ok(())),
                Do::EndErr => StreamStep::End(Err(UsageError::NoEndpoints.into())),
            }
        }
        fn handle(&mut self, _: &mut Cluster, _: Instant, input: Input) {
            match input {
                Input::Response(_) => self.shared.log("response"),
                Input::Head(_) => self.shared.log("head"),
                Input::Data(data) => self
                    .shared
                    .log(format!("data {}", String::from_utf8_lossy(&data))),
                Input::End(_) => self.shared.log("end"),
                Input::Failure(failure) => self.shared.log(format!("failure {:?}", failure.kind)),
                Input::Stop => self.shared.log("stop"),
            }
        }
    }

    /// Polls a stream whose futures are always ready (the fake's are).
    fn next_ready<S: futures_core::Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::Pin::new(stream).poll_next(&mut cx) {
            std::task::Poll::Ready(item) => item,
            std::task::Poll::Pending => panic!("the fake transport never waits"),
        }
    }

    fn ready<T>(future: impl Future<Output = T>) -> T {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(future).poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("the fake transport never waits"),
        }
    }

    fn items(results: Vec<Result<u32, Error>>) -> Vec<Result<u32, String>> {
        results
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    const SCRIPT: &[Do] = &[
        Do::Open,
        Do::Read,
        Do::Emit(1),
        Do::Read,
        Do::Emit(2),
        Do::Sleep,
        Do::Open,
        Do::Read,
        Do::Transmit,
        Do::EndErr,
    ];

    const LOG: &[&str] = &[
        "Open with 0 open",
        "open",
        "head",
        "Read with 1 open",
        "data a",
        "Emit(1) with 1 open",
        "Read with 1 open",
        "data b",
        "Emit(2) with 1 open",
        "Sleep with 1 open",
        "close",
        "sleep with 0 open",
        "Open with 0 open",
        "open",
        "head",
        "Read with 1 open",
        "data a",
        "Transmit with 1 open",
        "close",
        "response",
        "EndErr with 0 open",
    ];

    fn expected_items() -> Vec<Result<u32, String>> {
        vec![
            Ok(1),
            Ok(2),
            Err("invalid request: no endpoint configured".to_owned()),
        ]
    }

    #[test]
    fn the_iterator_keeps_the_body_between_items_and_closes_it_on_any_other_step() {
        let fake = Fake::new(vec![Ok(b"a"), Ok(b"b")]);
        let mut iter = StreamIter::new(&fake, Script::new(&fake, SCRIPT));
        assert_eq!(iter.next().unwrap().unwrap(), 1);
        assert!(iter.is_open());
        assert_eq!(iter.flow().steps.len(), SCRIPT.len() - 3);
        let rest: Vec<_> = iter.by_ref().collect();
        assert!(iter.next().is_none(), "fused after the end");
        let mut all = vec![Ok(1)];
        all.extend(rest);
        assert_eq!(items(all), expected_items());
        assert_eq!(fake.shared.lines(), LOG);
        assert_eq!(fake.shared.open.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_async_stream_does_the_same() {
        let fake = Fake::new(vec![Ok(b"a"), Ok(b"b")]);
        let mut stream = FlowStream::new(fake.clone(), Script::new(&fake, SCRIPT));
        let mut all = Vec::new();
        while let Some(item) = next_ready(&mut stream) {
            all.push(item);
            assert!(stream.flow().is_some());
        }
        assert!(futures_core::FusedStream::is_terminated(&stream));
        assert!(next_ready(&mut stream).is_none());
        assert_eq!(items(all), expected_items());
        assert_eq!(fake.shared.lines(), LOG);
        assert_eq!(fake.shared.open.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn dropping_the_iterator_or_the_stream_closes_the_body() {
        let fake = Fake::new(vec![Ok(b"a")]);
        let mut iter = StreamIter::new(&fake, Script::new(&fake, SCRIPT));
        iter.next();
        assert_eq!(fake.shared.open.load(Ordering::SeqCst), 1);
        drop(iter);
        assert_eq!(fake.shared.open.load(Ordering::SeqCst), 0);

        let mut stream = FlowStream::new(fake.clone(), Script::new(&fake, SCRIPT));
        next_ready(&mut stream);
        assert!(stream.is_open());
        assert_eq!(fake.shared.open.load(Ordering::SeqCst), 1);
        drop(stream);
        assert_eq!(fake.shared.open.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn run_stream_returns_the_first_item_and_closes_the_body() {
        let fake = Fake::new(vec![Ok(b"a")]);
        let steps = [Do::Open, Do::Read, Do::Emit(7)];
        let first = run_stream_blocking(&fake, Script::new(&fake, &steps));
        assert_eq!(first.unwrap(), 7);
        assert_eq!(fake.shared.open.load(Ordering::SeqCst), 0);
        let first = ready(run_stream(&fake, Script::new(&fake, &steps)));
        assert_eq!(first.unwrap(), 7);
        assert_eq!(fake.shared.open.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_end_before_any_item_is_out_of_order_for_run_stream() {
        let fake = Fake::new(vec![]);
        for result in [
            run_stream_blocking(&fake, Script::new(&fake, &[Do::EndOk])),
            ready(run_stream(&fake, Script::new(&fake, &[Do::EndOk]))),
        ] {
            assert!(matches!(
                result,
                Err(Error::Usage(UsageError::FlowOutOfOrder { .. }))
            ));
        }
        // The iterator simply ends.
        let mut iter = StreamIter::new(&fake, Script::new(&fake, &[Do::EndOk]));
        assert!(iter.next().is_none());
    }

    /// A `Send` flow whose items are not `Send`.
    struct RcItems;

    impl StreamFlow for RcItems {
        type Item = std::rc::Rc<u32>;
        fn poll(&mut self, _: &mut Cluster, _: Instant) -> StreamStep<Self::Item> {
            StreamStep::Emit(std::rc::Rc::new(1))
        }
        fn handle(&mut self, _: &mut Cluster, _: Instant, _: Input) {}
    }

    #[test]
    fn run_stream_is_send_when_the_flow_is() {
        fn assert_send<T: Send>(_: &T) {}
        let fake = Fake::new(vec![]);
        let future = run_stream(&fake, RcItems);
        assert_send(&future);
        assert_eq!(*ready(future).unwrap(), 1);
    }

    #[test]
    fn a_read_without_an_open_body_is_out_of_order() {
        let fake = Fake::new(vec![]);
        let mut iter = StreamIter::new(&fake, Script::new(&fake, &[Do::Read, Do::Emit(1)]));
        assert!(matches!(
            iter.next(),
            Some(Err(Error::Usage(UsageError::FlowOutOfOrder { .. })))
        ));
        assert!(iter.next().is_none());
    }

    #[test]
    fn a_body_that_ends_or_fails_is_closed_before_it_is_reported() {
        let fake = Fake::new(vec![Err(TransportErrorKind::Io)]);
        let got: Vec<_> =
            StreamIter::new(&fake, Script::new(&fake, &[Do::Open, Do::Read])).collect();
        assert!(got.is_empty());
        let log = fake.shared.lines();
        let failed = log.iter().position(|l| l == "failure Io").unwrap();
        assert_eq!(log[failed - 1], "close");
        // A read that timed out leaves the body open: the flow decides.
        let fake = Fake::new(vec![Err(TransportErrorKind::Timeout)]);
        let got: Vec<_> =
            StreamIter::new(&fake, Script::new(&fake, &[Do::Open, Do::Read])).collect();
        assert!(got.is_empty());
        let log = fake.shared.lines();
        let failed = log.iter().position(|l| l == "failure Timeout").unwrap();
        assert_ne!(log[failed - 1], "close", "{log:?}");
        // A body that ends cleanly.
        let fake = Fake::new(vec![]);
        let got: Vec<_> =
            StreamIter::new(&fake, Script::new(&fake, &[Do::Open, Do::Read])).collect();
        assert!(got.is_empty());
        let log = fake.shared.lines();
        let ended = log.iter().position(|l| l == "end").unwrap();
        assert_eq!(log[ended - 1], "close");
    }
}
