//! How a blocking client runs the async drivers: **every driver, watcher,
//! guard and session is written once, as async code**, and a blocking
//! transport runs it through [`Ready`] and [`block_on`].
//!
//! - [`Ready`] makes a blocking [`Transport`] an [`AsyncTransport`]: each of
//!   its futures does the blocking work (send, open, read a chunk) when
//!   first polled, then yields once (it wakes itself and returns `Pending`)
//!   before completing. That yield hands control back to whatever combines
//!   the futures — a lock acquisition raced against its session's loss, a
//!   keep-alive's sleep raced against its stop — so blocking and async
//!   clients behave the same.
//! - [`block_on`] is the tiny executor: it polls a future on the calling
//!   thread and parks the thread while the future waits; its waker unparks
//!   it. A blocking sleep ([`Transport::sleep_until`]) parks too, so a wake
//!   (a session's keep-alive stopped, a lease lost) ends it early.
//!
//! Nothing here decides anything about etcd: it only moves blocking calls
//! into futures.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    AsyncDatagram, AsyncResponseBody, AsyncTransport, Datagram, Entropy, Exchange, ExchangeFailure,
    ResponseBody, Transport,
};
use crate::cluster::Cluster;
use crate::flow::Transmit;

/// Runs `future` to completion on the calling thread, parking it while the
/// future waits.
pub fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static WAKER: Waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    }
    let waker = WAKER.with(Waker::clone);
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// Wakes a thread parked in [`block_on`] (or in a blocking sleep).
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A blocking call as a future: done when first polled (never before),
/// then, unless told otherwise, one yield.
struct Blocking<W, R> {
    work: Option<W>,
    output: Option<R>,
    yields: bool,
}

impl<W: FnOnce() -> R, R> Blocking<W, R> {
    fn new(work: W) -> Self {
        Blocking {
            work: Some(work),
            output: None,
            yields: true,
        }
    }

    /// Completes in the poll that does the work.
    fn without_yield(work: W) -> Self {
        Blocking {
            yields: false,
            ..Blocking::new(work)
        }
    }
}

// Nothing is pinned in place: the work and its output move freely.
impl<W, R> Unpin for Blocking<W, R> {}

impl<W: FnOnce() -> R, R> Future for Blocking<W, R> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        if let Some(work) = self.work.take() {
            let output = work();
            if !self.yields {
                return Poll::Ready(output);
            }
            self.output = Some(output);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.output.take() {
            Some(output) => Poll::Ready(output),
            // Polled after completion: never completes again.
            None => Poll::Pending,
        }
    }
}

/// A blocking transport as an async one; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Ready<T>(pub T);

impl<T: Entropy> Entropy for Ready<T> {
    fn random(&self) -> u64 {
        self.0.random()
    }
}

/// The body of a response opened through [`Ready`].
#[derive(Debug)]
pub struct ReadyBody<B>(B);

impl<B: ResponseBody + Send> AsyncResponseBody for ReadyBody<B> {
    fn next_chunk(
        &mut self,
        until: Option<Instant>,
    ) -> impl Future<Output = Result<Option<Bytes>, ExchangeFailure>> + Send {
        Blocking::new(move || self.0.next_chunk(until))
    }

    fn take_trailers(&mut self) -> http::HeaderMap {
        self.0.take_trailers()
    }
}

impl<T: Transport> AsyncTransport for Ready<T> {
    fn send(&self, transmit: Transmit) -> impl Future<Output = Exchange> + Send {
        Blocking::new(move || self.0.send(transmit))
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        // Slept when polled, not when made: a keeper registers its stop's
        // waker first. No yield: a sleep that ends early is polled again.
        Blocking::without_yield(move || self.0.sleep_until(deadline))
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        self.0.with_cluster(f)
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.spawn(move || block_on(task));
    }

    type Body = ReadyBody<T::Body>;

    fn open(
        &self,
        transmit: Transmit,
    ) -> impl Future<Output = Result<(http::response::Parts, Self::Body), ExchangeFailure>> + Send
    {
        Blocking::new(move || {
            self.0
                .open(transmit)
                .map(|(head, body)| (head, ReadyBody(body)))
        })
    }
}

impl<T: Transport + ?Sized> Transport for &T {
    fn send(&self, transmit: Transmit) -> Exchange {
        (**self).send(transmit)
    }
    fn sleep_until(&self, deadline: Instant) {
        (**self).sleep_until(deadline)
    }
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        (**self).with_cluster(f)
    }
    fn spawn(&self, task: impl FnOnce() + Send + 'static) {
        (**self).spawn(task)
    }
    type Body = T::Body;
    fn open(
        &self,
        transmit: Transmit,
    ) -> Result<(http::response::Parts, Self::Body), ExchangeFailure> {
        (**self).open(transmit)
    }
}

impl<T: Entropy + ?Sized> Entropy for &T {
    fn random(&self) -> u64 {
        (**self).random()
    }
}

/// A blocking DNS socket as an async one, as [`Ready`] does for transports.
pub(crate) struct ReadyDatagram<'a, D>(pub(crate) &'a D);

impl<D: Entropy> Entropy for ReadyDatagram<'_, D> {
    fn random(&self) -> u64 {
        self.0.random()
    }
}

impl<D: Datagram> AsyncDatagram for ReadyDatagram<'_, D> {
    fn send(&self, bytes: &[u8]) -> impl Future<Output = std::io::Result<()>> + Send {
        Blocking::new(move || self.0.send(bytes))
    }

    fn recv_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> impl Future<Output = std::io::Result<Option<usize>>> + Send {
        Blocking::new(move || self.0.recv_timeout(buf, timeout))
    }

    fn now(&self) -> Instant {
        self.0.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocking_call_yields_once_then_completes() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut call = Blocking::new(|| 7);
        assert!(Pin::new(&mut call).poll(&mut cx).is_pending());
        assert_eq!(Pin::new(&mut call).poll(&mut cx), Poll::Ready(7));
        assert_eq!(block_on(Blocking::new(|| 8)), 8);
    }

    #[test]
    fn block_on_parks_until_woken_from_another_thread() {
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        let mut sent = false;
        let woken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = woken.clone();
        let waker_thread = std::thread::spawn(move || {
            let waker = rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(20));
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            waker.wake();
        });
        block_on(std::future::poll_fn(|cx| {
            if woken.load(std::sync::atomic::Ordering::SeqCst) {
                return Poll::Ready(());
            }
            if !sent {
                sent = true;
                tx.send(cx.waker().clone()).unwrap();
            }
            Poll::Pending
        }));
        waker_thread.join().unwrap();
    }
}
