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
    /// Runs `task` in the background (a lock's TTL keeper). The core never
    /// spawns by itself: it asks the transport.
    fn spawn(&self, task: impl FnOnce() + Send + 'static);
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
    /// Runs `task` in the background on the client's runtime (a lock's TTL
    /// keeper). The core never spawns by itself: it asks the transport.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);
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

/// A lock held through an async client; see [`crate::v2::lock`].
///
/// For a [`Hold::Refreshed`](crate::v2::Hold::Refreshed) lock a background
/// task (spawned through [`AsyncTransport::spawn`]) refreshes the TTL while
/// the guard lives. **Release it with [`release`](Self::release)`.await`.**
/// Dropping the guard without releasing stops the refreshing at once; the
/// lock then frees itself when its TTL runs out (nothing can be awaited in
/// `Drop`).
pub struct AsyncLockGuard<T> {
    client: T,
    lock: crate::v2::HeldLock,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
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
        let flow = crate::v2::AcquireLock::new(name, options);
        let path = flow.path().to_owned();
        let Some(lock) = drive(client, flow).await? else {
            return Err(crate::v2::LockError::Busy { path }.into());
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if lock.hold == crate::v2::Hold::Refreshed {
            let keeper = crate::v2::KeepLock::new(lock.clone(), stop.clone());
            let (background, lost_flag) = (client.clone(), lost.clone());
            client.spawn(async move {
                if drive(&background, keeper).await.is_err() {
                    lost_flag.store(true, std::sync::atomic::Ordering::Release);
                }
            });
        }
        Ok(AsyncLockGuard {
            client: client.clone(),
            lock,
            stop,
            lost,
        })
    }

    /// The lock: its key, uuid and fencing token.
    pub fn lock(&self) -> &crate::v2::HeldLock {
        &self.lock
    }

    /// The fencing token: our key's `createdIndex`, growing with every acquisition.
    pub fn fencing_token(&self) -> u64 {
        self.lock.index
    }

    /// True if the refresher found our key gone: the lock is no longer ours.
    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Asks etcd whether we still hold the lock.
    pub async fn is_acquired(&self) -> Result<bool, Error> {
        drive(&self.client, self.lock.check()).await
    }

    /// Stops refreshing and deletes our key (only if it is still ours).
    /// `Ok(false)`: it was already gone.
    pub async fn release(self) -> Result<bool, Error> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        drive(&self.client, self.lock.release()).await
    }
}

impl<T> Drop for AsyncLockGuard<T> {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// A lock held through a blocking client; see [`crate::v2::lock`].
///
/// For a [`Hold::Refreshed`](crate::v2::Hold::Refreshed) lock a background
/// thread (spawned through [`Transport::spawn`]) refreshes the TTL while the
/// guard lives. **Dropping the guard releases the lock** (a guarded
/// compare-and-delete); [`release`](Self::release) does the same and reports
/// the outcome.
pub struct LockGuard<C: Transport> {
    client: C,
    lock: crate::v2::HeldLock,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    released: bool,
}

impl<C: Transport> std::fmt::Debug for LockGuard<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl<C: Transport + Clone + Send + 'static> LockGuard<C> {
    /// Acquires the lock `name`. A non-blocking attempt on a held lock fails
    /// with [`LockError::Busy`](crate::v2::LockError::Busy), leaving no key behind.
    pub fn acquire(client: &C, name: &str, options: crate::v2::LockOptions) -> Result<Self, Error> {
        let flow = crate::v2::AcquireLock::new(name, options);
        let path = flow.path().to_owned();
        let Some(lock) = drive_blocking(client, flow)? else {
            return Err(crate::v2::LockError::Busy { path }.into());
        };
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if lock.hold == crate::v2::Hold::Refreshed {
            let keeper = crate::v2::KeepLock::new(lock.clone(), stop.clone());
            let (background, lost_flag) = (client.clone(), lost.clone());
            client.spawn(move || {
                if drive_blocking(&background, keeper).is_err() {
                    lost_flag.store(true, std::sync::atomic::Ordering::Release);
                }
            });
        }
        Ok(LockGuard {
            client: client.clone(),
            lock,
            stop,
            lost,
            released: false,
        })
    }
}

impl<C: Transport> LockGuard<C> {
    /// The lock: its key, uuid and fencing token.
    pub fn lock(&self) -> &crate::v2::HeldLock {
        &self.lock
    }

    /// The fencing token: our key's `createdIndex`, growing with every acquisition.
    pub fn fencing_token(&self) -> u64 {
        self.lock.index
    }

    /// True if the refresher found our key gone: the lock is no longer ours.
    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Asks etcd whether we still hold the lock.
    pub fn is_acquired(&self) -> Result<bool, Error> {
        drive_blocking(&self.client, self.lock.check())
    }

    /// Stops refreshing and deletes our key (only if it is still ours).
    /// `Ok(false)`: it was already gone.
    pub fn release(mut self) -> Result<bool, Error> {
        self.released = true;
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        drive_blocking(&self.client, self.lock.release())
    }
}

impl<C: Transport> Drop for LockGuard<C> {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if !self.released {
            let _ = drive_blocking(&self.client, self.lock.release());
        }
    }
}

/// A UDP socket connected to a DNS server, as a blocking transport provides it.
pub trait Datagram {
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
pub trait AsyncDatagram: Sync {
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

/// The shared decision of both discovery loops: the result, a query to
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
    let io_error = |e: std::io::Error| crate::srv::DiscoveryError::io(domain, server, &e);
    let mut discovery = crate::srv::SrvDiscovery::new(domain, crate::srv::random_query_id());
    let mut buffer = vec![0; crate::srv::MAX_DATAGRAM];
    let mut attempt_ends = socket.now();
    loop {
        match discovery_step(&mut discovery, &mut attempt_ends, per_attempt, socket.now()) {
            DiscoveryStep::Done(result) => return result,
            DiscoveryStep::Send(query) => socket.send(&query).map_err(io_error)?,
            DiscoveryStep::Receive(left) => match socket.recv_timeout(&mut buffer, left) {
                Ok(Some(n)) => discovery.handle_datagram(&buffer[..n]),
                Ok(None) => discovery.handle_timeout(),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error(e)),
            },
        }
    }
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
    let mut discovery = crate::srv::SrvDiscovery::new(domain, crate::srv::random_query_id());
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
