//! Keepers: flows that run in the background until told to stop (a v3
//! session's [`KeepAlive`](crate::v3::KeepAlive), a v2 lock's
//! [`KeepLock`](crate::v2::KeepLock)), what their handles share with them,
//! and the one loop that drives them.
//!
//! **Stopping is an input.** A handle calls [`Shared::stop`]; the keeper's
//! driver, asleep until the next renewal, wakes at once (its waker: a task
//! is woken, a thread unparked) and gives the flow
//! [`Input::Stop`], which ends it at its next poll. Nothing polls a flag:
//! a keeper wakes only to renew, or to stop. A stop that comes while a
//! renewal is in flight is given once its outcome is in (the flow contract
//! has at most one exchange in flight, and a stop never interrupts one).
//!
//! **Loss is an output.** A keeper whose flow ends with an error reports it
//! through [`Shared::lose`]: handles see it as `is_lost`, `lost_reason`,
//! `wait_lost` (blocking), a [`Lost`] future (async) and `on_lost`
//! callbacks, each told once.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::drive::{exchange_input, AsyncTransport};
use crate::error::Error;
use crate::flow::{Flow, Input, Step};

pub(crate) type LostCallback = Box<dyn FnOnce(&str) + Send>;

/// What the handles of something kept alive in the background share with
/// its keeper: the stop request, and the loss once the keeper reports it.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    stopped: bool,
    lost: Option<String>,
    /// Tasks waiting for a change (a keeper's stop, a `Lost` future).
    wakers: Vec<Waker>,
    callbacks: Vec<LostCallback>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes every waiter: a thread on the condition variable, a task by its waker.
    fn changed(&self, state: &mut State) {
        self.changed.notify_all();
        for waker in state.wakers.drain(..) {
            waker.wake();
        }
    }

    /// Asks the keeper to stop: it wakes at once and ends.
    pub(crate) fn stop(&self) {
        let mut state = self.state();
        if !state.stopped {
            state.stopped = true;
            self.changed(&mut state);
        }
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.state().stopped
    }

    /// The keeper ended with `error`: what it kept is lost.
    pub(crate) fn lose(&self, error: &Error) {
        let reason = error.to_string();
        let callbacks = {
            let mut state = self.state();
            if state.lost.is_some() {
                return;
            }
            state.lost = Some(reason.clone());
            self.changed(&mut state);
            std::mem::take(&mut state.callbacks)
        };
        for callback in callbacks {
            callback(&reason);
        }
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.state().lost.is_some()
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.state().lost.clone()
    }

    pub(crate) fn on_lost(&self, callback: LostCallback) {
        let mut state = self.state();
        match state.lost.clone() {
            Some(reason) => {
                drop(state);
                callback(&reason);
            }
            None => state.callbacks.push(callback),
        }
    }

    /// Blocks until the loss (true) or until `timeout` passes (false).
    pub(crate) fn wait_lost(&self, timeout: Option<Duration>) -> bool {
        self.wait(timeout, |state| state.lost.is_none())
            .lost
            .is_some()
    }

    /// Blocks while `pending` holds, at most `timeout` (std's timed wait
    /// keeps the time itself: no clock is read here).
    fn wait(
        &self,
        timeout: Option<Duration>,
        pending: impl FnMut(&mut State) -> bool,
    ) -> std::sync::MutexGuard<'_, State> {
        let state = self.state();
        match timeout {
            None => self
                .changed
                .wait_while(state, pending)
                .unwrap_or_else(|p| p.into_inner()),
            Some(timeout) => {
                self.changed
                    .wait_timeout_while(state, timeout, pending)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        }
    }

    /// Ready once `done` holds; registers the task's waker otherwise.
    fn poll_until(&self, cx: &mut Context<'_>, done: impl Fn(&State) -> bool) -> Poll<()> {
        let mut state = self.state();
        if done(&state) {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Completes with the reason once a session's keep-alive reports its lease
/// lost ([`AsyncSession::lost`](crate::session::AsyncSession::lost)); it
/// stays pending if the keep-alive is stopped first.
pub struct Lost {
    pub(crate) shared: std::sync::Arc<Shared>,
}

impl std::fmt::Debug for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lost").finish_non_exhaustive()
    }
}

impl Future for Lost {
    type Output = String;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<String> {
        match self.shared.poll_until(cx, |state| state.lost.is_some()) {
            Poll::Ready(()) => Poll::Ready(self.shared.reason().unwrap_or_default()),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Runs `flow` until it ends: a sleep is raced against the stop, so a
/// stopped keeper ends at once, the stop reaching the flow as
/// [`Input::Stop`]. An error it ends with is reported to the handles as the
/// loss. A blocking client runs this on its thread through
/// [`Ready`](crate::drive::Ready): its sleep parks the thread, and the stop's
/// wake unparks it.
pub(crate) async fn keep<T: AsyncTransport, F: Flow<Output = ()> + Send>(
    transport: &T,
    mut flow: F,
    shared: &Shared,
) {
    let mut told = false;
    let result = loop {
        if !told && shared.is_stopped() {
            told = true;
            transport.with_cluster(|c| flow.handle(c, transport.now(), Input::Stop));
        }
        let step = transport.with_cluster(|c| flow.poll(c, transport.now()));
        match step {
            Step::Transmit(transmit) => {
                let outcome = transport.send(transmit).await;
                let input = exchange_input(outcome);
                transport.with_cluster(|c| flow.handle(c, transport.now(), input));
            }
            Step::Sleep(deadline) => {
                let mut sleep = std::pin::pin!(transport.sleep_until(deadline));
                std::future::poll_fn(|cx| {
                    // The stop's waker first: a blocking sleep parks the
                    // thread inside its poll, and the stop must unpark it.
                    if shared.poll_until(cx, |state| state.stopped).is_ready() {
                        return Poll::Ready(());
                    }
                    sleep.as_mut().poll(cx)
                })
                .await;
            }
            Step::Done(result) => break result,
        }
    };
    if let Err(error) = result {
        shared.lose(&error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn loss_is_reported_once_to_every_listener() {
        let shared = Arc::new(Shared::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        shared.on_lost(Box::new(move |r| log.lock().unwrap().push(r.to_owned())));
        assert!(!shared.wait_lost(Some(Duration::from_millis(1))));
        let lost = Lost {
            shared: shared.clone(),
        };
        let waiter = {
            let shared = shared.clone();
            std::thread::spawn(move || shared.wait_lost(None))
        };
        let error: Error = crate::v3::MutexError::SessionExpired { key: "k".into() }.into();
        shared.lose(&error);
        shared.lose(&error);
        assert!(waiter.join().unwrap());
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert!(shared.is_lost());
        let mut cx = Context::from_waker(Waker::noop());
        let mut lost = std::pin::pin!(lost);
        assert!(matches!(
            lost.as_mut().poll(&mut cx),
            Poll::Ready(r) if r.contains("vanished")
        ));
        // A late listener hears at once.
        let late = Arc::new(AtomicBool::new(false));
        let flag = late.clone();
        shared.on_lost(Box::new(move |_| flag.store(true, Ordering::SeqCst)));
        assert!(late.load(Ordering::SeqCst));
    }

    #[test]
    fn a_stop_wakes_a_sleeping_thread_at_once() {
        let shared = Arc::new(Shared::default());
        let sleeper = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                drop(shared.wait(Some(Duration::from_secs(600)), |s| !s.stopped));
                shared.is_stopped()
            })
        };
        shared.stop();
        assert!(
            sleeper.join().unwrap(),
            "woken by the stop, not the timeout"
        );
    }
}
