//! Request deadlines that share one timer.
//!
//! async-io, the reactor under async-std (and smol), makes every new timer
//! cost system calls: registering one wakes the reactor (an eventfd write,
//! its read, a timerfd reset), from whichever thread registered it. A timer
//! per request made that a quarter of a sequential request's CPU on loopback.
//!
//! [`Deadlines`] keeps the requests of one client waiting on a single armed
//! timer instead. The timer is set for the earliest deadline waiting when it
//! was armed; a request whose deadline comes later only records itself (a map
//! insert under a lock) and relies on the timer being re-armed when it fires.
//! Firing wakes every request that is due, then re-arms for the earliest one
//! still waiting. A steady stream of requests with the same timeout therefore
//! touches the reactor about once per timeout period, and an idle client at
//! most once more after its last request. A request that finishes early just
//! removes its record; the timer it may have armed is left to fire and find
//! nothing due.
//!
//! Invariant: while any request waits, the armed timer fires no later than
//! the earliest waiting deadline.

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// The deadlines of one client's requests. Cheap to clone: clones share the
/// timer.
#[derive(Clone, Default)]
pub(crate) struct Deadlines {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Deadlines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Deadlines")
            .field("waiting", &state.waiting.len())
            .field("armed_for", &state.armed.as_ref().map(|armed| armed.at))
            .finish()
    }
}

/// `future` ran past its time limit (and was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

impl Deadlines {
    /// Polls `future` for at most `limit`: its output, or [`Elapsed`] once
    /// the limit passes first. A limit too far out to represent is no limit.
    ///
    /// The future is borrowed pinned, not moved in, so the caller's state
    /// holds it once (a debug build's deep request futures would otherwise
    /// be copied into every wrapper).
    pub(crate) fn within<'a, F: Future + ?Sized>(
        &'a self,
        limit: Duration,
        future: Pin<&'a mut F>,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> + 'a {
        self.until(Instant::now().checked_add(limit), future)
    }

    /// Polls `future` until `at` at the latest (`None`: no limit): its
    /// output, or [`Elapsed`] if `at` passes first.
    pub(crate) fn until<'a, F: Future + ?Sized>(
        &'a self,
        at: Option<Instant>,
        mut future: Pin<&'a mut F>,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> + 'a {
        let mut expiry = at.map(|at| Expiry {
            shared: &self.shared,
            at,
            id: None,
        });
        poll_fn(move |cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            match &mut expiry {
                Some(expiry) => expiry.poll(cx).map(|()| Err(Elapsed)),
                None => Poll::Pending,
            }
        })
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent, so a panic elsewhere
        // cannot have corrupted it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct State {
    /// Each waiting request's deadline (with an id, as deadlines repeat) and
    /// the waker of the task waiting on it.
    waiting: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    armed: Option<Armed>,
}

/// The one timer, registered with the reactor and waking an [`Alarm`].
struct Armed {
    at: Instant,
    /// Registered with the reactor; only held, as dropping it deregisters.
    _timer: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl State {
    /// Takes every waiting request due at `now` into `due`, then makes sure
    /// the timer fires by the earliest deadline left (arming it when none is
    /// armed, or when the armed one fires too late).
    fn settle(&mut self, shared: &Arc<Shared>, due: &mut Vec<Waker>) {
        loop {
            let now = Instant::now();
            while let Some(entry) = self.waiting.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            let Some(&(earliest, _)) = self.waiting.keys().next() else {
                return;
            };
            if self
                .armed
                .as_ref()
                .is_some_and(|armed| armed.at <= earliest)
            {
                return;
            }
            let mut sleep: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(
                async_std::task::sleep(earliest.saturating_duration_since(now)),
            );
            let alarm = Waker::from(Arc::new(Alarm(Arc::downgrade(shared))));
            if sleep
                .as_mut()
                .poll(&mut Context::from_waker(&alarm))
                .is_pending()
            {
                self.armed = Some(Armed {
                    at: earliest,
                    _timer: sleep,
                });
                return;
            }
            // Already past `earliest`: take it as due on the next turn.
            self.armed = None;
        }
    }
}

/// What the armed timer wakes: settles the state it belongs to.
struct Alarm(Weak<Shared>);

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        // The client (and every request) is gone: nothing to wake.
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        let mut due = Vec::new();
        {
            let mut state = shared.lock();
            // A timer replaced meanwhile may still fire here: dropping the
            // armed one then only costs settling's re-arm.
            state.armed = None;
            state.settle(&shared, &mut due);
        }
        due.into_iter().for_each(Waker::wake);
    }
}

/// One request's deadline, recorded while its task waits.
struct Expiry<'a> {
    shared: &'a Arc<Shared>,
    at: Instant,
    /// Set while recorded in `waiting`.
    id: Option<u64>,
}

impl Expiry<'_> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut due = Vec::new();
        let mut state = self.shared.lock();
        let expired = Instant::now() >= self.at;
        if expired {
            if let Some(id) = self.id.take() {
                state.waiting.remove(&(self.at, id));
            }
        } else {
            match self.id {
                Some(id) => {
                    if let Some(waker) = state.waiting.get_mut(&(self.at, id)) {
                        waker.clone_from(cx.waker());
                    }
                }
                None => {
                    let id = state.next_id;
                    state.next_id += 1;
                    state.waiting.insert((self.at, id), cx.waker().clone());
                    self.id = Some(id);
                    state.settle(self.shared, &mut due);
                }
            }
        }
        drop(state);
        due.into_iter().for_each(Waker::wake);
        if expired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Expiry<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.lock().waiting.remove(&(self.at, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::pending;
    use std::pin::pin;

    #[test]
    fn the_future_wins_before_its_deadline() {
        let deadlines = Deadlines::default();
        let out =
            async_std::task::block_on(deadlines.within(Duration::from_secs(5), pin!(async { 7 })));
        assert_eq!(out, Ok(7));
        assert!(deadlines.shared.lock().waiting.is_empty());
    }

    #[test]
    fn a_pending_future_times_out_near_its_limit() {
        let deadlines = Deadlines::default();
        let start = Instant::now();
        let out = async_std::task::block_on(
            deadlines.within(Duration::from_millis(50), pin!(pending::<()>())),
        );
        let took = start.elapsed();
        assert_eq!(out, Err(Elapsed));
        assert!(took >= Duration::from_millis(50), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(deadlines.shared.lock().waiting.is_empty());
    }

    #[test]
    fn a_shorter_deadline_rearms_the_timer_earlier() {
        let deadlines = Deadlines::default();
        async_std::task::block_on(async {
            // A long wait arms the timer for 60 s ...
            let long = async_std::task::spawn({
                let deadlines = deadlines.clone();
                async move {
                    deadlines
                        .within(Duration::from_secs(60), pin!(pending::<()>()))
                        .await
                }
            });
            async_std::task::sleep(Duration::from_millis(20)).await;
            // ... and a short one must still expire on time.
            let start = Instant::now();
            let out = deadlines
                .within(Duration::from_millis(30), pin!(pending::<()>()))
                .await;
            assert_eq!(out, Err(Elapsed));
            assert!(start.elapsed() < Duration::from_secs(2));
            assert_eq!(long.cancel().await, None);
        });
        assert!(deadlines.shared.lock().waiting.is_empty());
    }

    #[test]
    fn later_deadlines_expire_after_the_armed_timer_fires() {
        let deadlines = Deadlines::default();
        async_std::task::block_on(async {
            // The first request arms the timer for its own (earlier) deadline
            // and finishes; the second, due later, is woken only by the re-arm.
            let quick = deadlines
                .within(Duration::from_millis(20), pin!(async {}))
                .await;
            assert_eq!(quick, Ok(()));
            let start = Instant::now();
            let out = deadlines
                .within(Duration::from_millis(60), pin!(pending::<()>()))
                .await;
            let took = start.elapsed();
            assert_eq!(out, Err(Elapsed));
            assert!(took >= Duration::from_millis(60), "{took:?}");
            assert!(took < Duration::from_secs(2), "{took:?}");
        });
    }

    #[test]
    fn many_tasks_each_expire() {
        let deadlines = Deadlines::default();
        async_std::task::block_on(async {
            let tasks: Vec<_> = (0..20u64)
                .map(|i| {
                    let deadlines = deadlines.clone();
                    async_std::task::spawn(async move {
                        let limit = Duration::from_millis(10 + 7 * (i % 5));
                        deadlines.within(limit, pin!(pending::<()>())).await
                    })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await, Err(Elapsed));
            }
        });
        assert!(deadlines.shared.lock().waiting.is_empty());
    }
}
