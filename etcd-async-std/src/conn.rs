//! One HTTP/1.1 connection, driven by the task that uses it.
//!
//! hyper splits a client connection in two: the [`SendRequest`] that hands
//! requests over, and the `Connection` (the *driver*), the future that
//! actually writes requests to the socket and reads responses from it. A
//! [`Conn`] keeps both together, and no task is spawned for the driver:
//! whichever task uses the connection polls the driver alongside its own
//! work (waiting for the connection to be ready, or one exchange), in the
//! same poll. A request's bytes are written and its response read in the
//! request's own task, with no hand-off to another task or thread. An idle
//! connection in the pool is polled by nobody until it is checked out again.
//!
//! # Wakes
//!
//! The driver and the work talk to each other through hyper's channels, and
//! wake each other several times per request (request queued, response
//! head, body chunk, body consumed). Polling both on every wake of the task
//! would reschedule the task each time, through the executor, and call the
//! driver (a socket read each time) more often than needed. So each gets its
//! own waker, which only marks it woken ([`Wakes`]): a poll of the
//! connection polls what was marked, again while polling marks more, and
//! only a wake from outside that poll (in practice: the socket is ready)
//! wakes the task.

use std::error::Error as StdError;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Frame, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::TrySendError;

use crate::rt::FuturesIo;

/// The sending half of the connection.
type Sender = SendRequest<Full<Bytes>>;

/// hyper's half that reads and writes the socket.
type Connection = http1::Connection<FuturesIo<crate::stream::Stream>, Full<Bytes>>;

/// Why [`Conn::exchange`] failed, for the caller to classify.
pub(crate) enum ExchangeError {
    /// No response head.
    Head {
        error: hyper::Error,
        /// hyper handed the request back: it never reached the wire.
        unsent: bool,
    },
    /// The response body could not be read to its end within the limit.
    Body(Box<dyn StdError + Send + Sync>),
}

impl ExchangeError {
    fn head(error: TrySendError<http::Request<Full<Bytes>>>) -> Self {
        ExchangeError::Head {
            unsent: error.message().is_some(),
            error: error.into_error(),
        }
    }
}

/// One HTTP/1.1 connection: the sender and the driver that moves its bytes.
/// Dropping it closes the connection.
pub(crate) struct Conn {
    sender: Sender,
    driver: Driver,
}

impl Conn {
    /// The two halves [`http1::handshake`] returned.
    pub(crate) fn new(sender: Sender, connection: Connection) -> Self {
        Conn {
            sender,
            driver: Driver::new(connection),
        }
    }

    /// True unless the connection is known to have closed.
    pub(crate) fn is_open(&self) -> bool {
        self.driver.is_running() && !self.sender.is_closed()
    }

    /// For an idle connection: polls the driver first (a connection the peer
    /// closed while it was idle ends there), then waits until hyper can take
    /// a request, still driving the connection. False if it closed.
    pub(crate) async fn ready(&mut self) -> bool {
        let Conn { sender, driver } = self;
        driver.mark(DRIVER | WORK);
        poll_fn(|cx| driver.poll_with(cx, |cx| sender.poll_ready(cx)))
            .await
            .is_ok()
    }

    /// Sends `request` and reads the whole response, its body up to
    /// `max_body` bytes, driving the connection meanwhile. Dropped before
    /// the end, it leaves the connection mid-exchange: then the connection
    /// must be dropped too.
    pub(crate) async fn exchange(
        &mut self,
        request: http::Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<http::Response<Bytes>, ExchangeError> {
        let Conn { sender, driver } = self;
        let mut work = pin!(async move {
            let response = sender
                .try_send_request(request)
                .await
                .map_err(ExchangeError::head)?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max_body)
                .collect()
                .await
                .map_err(ExchangeError::Body)?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body))
        });
        driver.mark(WORK);
        poll_fn(|cx| driver.poll_with(cx, |cx| work.as_mut().poll(cx))).await
    }

    /// Sends `request` and returns the response as soon as its head arrived,
    /// the body left for [`next_frame`](Self::next_frame), driving the
    /// connection meanwhile. The connection then serves that body only: it
    /// never goes back to a pool.
    pub(crate) async fn open(
        &mut self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, ExchangeError> {
        let Conn { sender, driver } = self;
        let mut work = pin!(async move {
            sender
                .try_send_request(request)
                .await
                .map_err(ExchangeError::head)
        });
        driver.mark(WORK);
        poll_fn(|cx| driver.poll_with(cx, |cx| work.as_mut().poll(cx))).await
    }

    /// The next frame of `body`, the body of the response [`open`](Self::open)
    /// returned, driving the connection meanwhile.
    pub(crate) async fn next_frame(
        &mut self,
        body: &mut Incoming,
    ) -> Option<Result<Frame<Bytes>, hyper::Error>> {
        let Conn { driver, .. } = self;
        // Nobody polled the connection since the last frame: poll both once.
        driver.mark(DRIVER | WORK);
        poll_fn(|cx| driver.poll_with(cx, |cx| Pin::new(&mut *body).poll_frame(cx))).await
    }

    /// The connection goes idle: it forgets the last task that polled it,
    /// which it need not wake any more (nor keep alive).
    pub(crate) fn park(&mut self) {
        *self.driver.wakes.lock_task() = None;
    }
}

/// The driver, and the wakers that let one poll of the connection poll
/// only what was woken.
struct Driver {
    /// `None` once it has finished: the connection is closed.
    connection: Option<Connection>,
    wakes: Arc<Wakes>,
    /// Handed to the driver.
    driver_waker: Waker,
    /// Handed to the work beside it.
    work_waker: Waker,
}

impl Driver {
    fn new(connection: Connection) -> Self {
        let wakes = Arc::new(Wakes {
            // Nothing has been polled yet.
            state: AtomicU8::new(DRIVER | WORK),
            task: Mutex::new(None),
        });
        Driver {
            connection: Some(connection),
            driver_waker: wakes.waker(DRIVER),
            work_waker: wakes.waker(WORK),
            wakes,
        }
    }

    fn is_running(&self) -> bool {
        self.connection.is_some()
    }

    /// The next poll polls these parts, woken or not (new work has never
    /// been polled).
    fn mark(&self, parts: u8) {
        self.wakes.state.fetch_or(parts, Ordering::AcqRel);
    }

    /// One poll of the connection from the task using it: the driver, then
    /// `work` (which talks to the driver through the sender), each if marked
    /// woken, round after round while they wake each other.
    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut work: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.wakes.set_task(cx.waker());
        let state = &self.wakes.state;
        state.fetch_or(POLLING, Ordering::AcqRel);
        for _ in 0..MAX_ROUNDS {
            let woken = state.swap(POLLING, Ordering::AcqRel);
            if woken & DRIVER != 0 {
                if let Some(connection) = &mut self.connection {
                    // Its outcome is of no use here: hyper hands the
                    // connection's errors to the work through the sender.
                    // Finished, it is dropped, as a driver task would drop
                    // it: whatever still waits on the connection learns
                    // that it closed, and it is never polled again.
                    let mut cx = Context::from_waker(&self.driver_waker);
                    if Pin::new(connection).poll(&mut cx).is_ready() {
                        self.connection = None;
                    }
                }
            }
            if woken & WORK != 0 {
                if let Poll::Ready(out) = work(&mut Context::from_waker(&self.work_waker)) {
                    // Anything woken meanwhile stays marked for whoever
                    // polls the connection next.
                    state.fetch_and(!POLLING, Ordering::AcqRel);
                    return Poll::Ready(out);
                }
            }
            if state
                .compare_exchange(POLLING, 0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // Nothing woken since this round began: from now on, a wake
                // wakes the task.
                return Poll::Pending;
            }
        }
        // Still busy: let the executor run other tasks first. What was
        // woken stays marked, and the task is woken to poll it.
        state.fetch_and(!POLLING, Ordering::AcqRel);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Bit of [`Wakes::state`]: the driver was woken since its last poll.
const DRIVER: u8 = 1;
/// Bit of [`Wakes::state`]: the work was woken since its last poll.
const WORK: u8 = 2;
/// Bit of [`Wakes::state`]: a poll of the connection is running, and will
/// see any part marked meanwhile.
const POLLING: u8 = 4;

/// Rounds in one poll of a connection before it yields to the executor (an
/// exchange needs two or three).
const MAX_ROUNDS: usize = 16;

/// What was woken on one connection, and the task to wake.
struct Wakes {
    /// `DRIVER`, `WORK` and `POLLING` bits.
    state: AtomicU8,
    /// The waker of the task that last polled the connection.
    task: Mutex<Option<Waker>>,
}

impl Wakes {
    /// The waker for one part of the connection.
    fn waker(self: &Arc<Self>, part: u8) -> Waker {
        Waker::from(Arc::new(PartWaker {
            wakes: Arc::clone(self),
            part,
        }))
    }

    fn set_task(&self, waker: &Waker) {
        let mut task = self.lock_task();
        if !task.as_ref().is_some_and(|t| t.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }

    fn lock_task(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        // An `Option` is never left half-written, so a panic elsewhere cannot corrupt it.
        self.task.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `part` woken, and wakes the task unless a poll of the
    /// connection is running (it sees the mark) or the task was already
    /// woken since the last poll.
    fn wake(&self, part: u8) {
        if self.state.fetch_or(part, Ordering::AcqRel) == 0 {
            let task = self.lock_task().clone();
            if let Some(task) = task {
                task.wake();
            }
        }
    }
}

/// The waker of one part of a connection.
struct PartWaker {
    wakes: Arc<Wakes>,
    part: u8,
}

impl Wake for PartWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.wake(self.part);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.wake(self.part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wakes of a task.
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let count = Arc::new(CountingWaker(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn wakes() -> Arc<Wakes> {
        Arc::new(Wakes {
            state: AtomicU8::new(0),
            task: Mutex::new(None),
        })
    }

    #[test]
    fn only_the_first_wake_outside_a_poll_wakes_the_task() {
        let wakes = wakes();
        let (count, task) = counting();
        wakes.set_task(&task);
        let (driver, work) = (wakes.waker(DRIVER), wakes.waker(WORK));
        driver.wake_by_ref();
        work.wake_by_ref();
        driver.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(wakes.state.load(Ordering::SeqCst), DRIVER | WORK);
    }

    #[test]
    fn wakes_during_a_poll_only_mark() {
        let wakes = wakes();
        let (count, task) = counting();
        wakes.set_task(&task);
        wakes.state.store(POLLING, Ordering::SeqCst);
        wakes.waker(WORK).wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(wakes.state.load(Ordering::SeqCst), POLLING | WORK);
    }

    #[test]
    fn a_parked_connection_wakes_nobody() {
        let wakes = wakes();
        let (count, task) = counting();
        wakes.set_task(&task);
        *wakes.lock_task() = None;
        wakes.waker(DRIVER).wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(wakes.state.load(Ordering::SeqCst), DRIVER);
    }
}
