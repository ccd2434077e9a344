//! Many actors on one simulated v3 etcd and one virtual clock, for the
//! lock and election tests: contenders and observers, each a flow with its
//! own [`Cluster`], stepping in turn against one [`Store`]. Time moves only
//! when every actor is waiting: to the next sleep, read timeout or lease
//! expiry.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::sent::Sent;
use super::v3::{OpenWatch, Store};
use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind};
use crate::flow::{Flow, Input, Step, StreamFlow, StreamStep};

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answered.
    None,
    /// Applied, but the answer is lost (an I/O error).
    LoseAnswer,
}

/// Decides each unary request's fate.
pub(crate) type Faults = Box<dyn FnMut(&Sent) -> Fault>;

/// Something that runs on the virtual clock.
pub(crate) trait Actor {
    /// Makes every step possible at `now`; true if anything happened.
    fn advance(&mut self, store: &mut Store, now: Instant) -> bool;
    /// When it next needs the clock (a sleep's end, a read's timeout).
    fn wake(&self) -> Option<Instant>;
}

/// Drives one stream flow against the store.
pub(crate) struct Driver<F: StreamFlow> {
    pub(crate) flow: F,
    cluster: Cluster,
    watch: Option<OpenWatch>,
    sleeping: Option<Instant>,
    parked: bool,
    pub(crate) items: Vec<F::Item>,
    pub(crate) result: Option<Result<(), Error>>,
    pub(crate) sent: Vec<Sent>,
    /// Decides each unary request's fate.
    pub(crate) faults: Faults,
    /// Stop after each item, for the caller to look.
    pub(crate) pause_on_item: bool,
    paused: bool,
}

impl<F: StreamFlow> Driver<F> {
    pub(crate) fn new(flow: F) -> Self {
        Driver {
            flow,
            cluster: Cluster::from_urls(&["http://127.0.0.1:2379"]).unwrap(),
            watch: None,
            sleeping: None,
            parked: false,
            items: Vec::new(),
            result: None,
            sent: Vec::new(),
            faults: Box::new(|_| Fault::None),
            pause_on_item: false,
            paused: false,
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.result.is_some()
    }

    /// Lets a paused driver go on.
    pub(crate) fn resume(&mut self) {
        self.paused = false;
    }

    pub(crate) fn paths(&self) -> Vec<&str> {
        self.sent.iter().map(|s| s.path()).collect()
    }

    pub(crate) fn error(&self) -> Option<&Error> {
        match &self.result {
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn watching(&self) -> bool {
        self.watch.is_some()
    }
}

impl<F: StreamFlow> Actor for Driver<F> {
    fn advance(&mut self, store: &mut Store, now: Instant) -> bool {
        let mut progressed = false;
        loop {
            if self.result.is_some() || self.paused {
                return progressed;
            }
            if let Some(until) = self.sleeping {
                if now < until {
                    return progressed;
                }
                self.sleeping = None;
            }
            if self.parked {
                let watch = self.watch.as_mut().expect("a read needs an open watch");
                let data = store.watch_data(watch);
                if !data.is_empty() {
                    self.parked = false;
                    self.flow
                        .handle_data(&mut self.cluster, now, Bytes::from(data));
                    progressed = true;
                    continue;
                }
                if watch.ends.is_some_and(|e| now >= e) {
                    self.parked = false;
                    self.watch = None;
                    self.flow.handle_failure(
                        &mut self.cluster,
                        now,
                        TransportErrorKind::Timeout,
                        "read timed out".into(),
                    );
                    progressed = true;
                    continue;
                }
                return progressed;
            }
            progressed = true;
            let step = self.flow.poll(&mut self.cluster, now);
            if !matches!(
                step,
                StreamStep::Read(_) | StreamStep::Emit(_) | StreamStep::Warn(_)
            ) {
                self.watch = None;
            }
            match step {
                StreamStep::Transmit(t) => {
                    let sent = Sent::new(&t.request, t.timeout, now - store.epoch);
                    let fault = (self.faults)(&sent);
                    self.sent.push(sent);
                    let response = store.handle(&t.request, now);
                    match fault {
                        Fault::None => self.flow.handle_response(&mut self.cluster, now, response),
                        Fault::LoseAnswer => self.flow.handle_failure(
                            &mut self.cluster,
                            now,
                            TransportErrorKind::Io,
                            "answer lost".into(),
                        ),
                    }
                }
                StreamStep::Open(t) => {
                    let mut sent = Sent::new(&t.request, t.timeout, now - store.epoch);
                    sent.stream = true;
                    self.sent.push(sent);
                    // The head comes at once; each read has its own deadline.
                    self.watch = Some(store.open_watch(&t.request, now, None));
                    let head = http::Response::new(()).into_parts().0;
                    self.flow.handle_head(&mut self.cluster, now, head);
                }
                StreamStep::Read(until) => {
                    self.parked = true;
                    if let Some(watch) = self.watch.as_mut() {
                        watch.ends = until;
                    }
                }
                StreamStep::Warn(_) => {}
                StreamStep::Send(_) => panic!("nothing is sent on a gateway stream"),
                StreamStep::Sleep(until) => self.sleeping = Some(until),
                StreamStep::Emit(item) => {
                    self.items.push(item);
                    if self.pause_on_item {
                        self.paused = true;
                    }
                }
                StreamStep::End(result) => self.result = Some(result),
            }
        }
    }

    fn wake(&self) -> Option<Instant> {
        if self.result.is_some() || self.paused {
            return None;
        }
        if self.parked {
            return self.watch.as_ref().and_then(|w| w.ends);
        }
        self.sleeping
    }
}

/// A unary flow as a stream flow: its output is the one item.
pub(crate) struct Unary<F: Flow>(pub(crate) F, bool);

impl<F: Flow> Unary<F> {
    pub(crate) fn new(flow: F) -> Self {
        Unary(flow, false)
    }
}

impl<F: Flow> StreamFlow for Unary<F> {
    type Item = F::Output;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> StreamStep<F::Output> {
        if self.1 {
            return StreamStep::End(Ok(()));
        }
        match self.0.poll(cluster, now) {
            Step::Transmit(t) => StreamStep::Transmit(t),
            Step::Sleep(t) => StreamStep::Sleep(t),
            Step::Done(Ok(out)) => {
                self.1 = true;
                StreamStep::Emit(out)
            }
            Step::Done(Err(e)) => StreamStep::End(Err(e)),
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        self.0.handle(cluster, now, input);
    }
}

/// The store and the virtual clock.
pub(crate) struct World {
    pub(crate) store: Store,
    pub(crate) now: Instant,
    pub(crate) t0: Instant,
    /// Leases kept alive by the simulation (a perfect background keeper).
    pub(crate) kept: Vec<i64>,
}

impl World {
    pub(crate) fn new() -> Self {
        let store = Store::new();
        let t0 = store.epoch;
        World {
            store,
            now: t0,
            t0,
            kept: Vec::new(),
        }
    }

    /// A lease of `ttl` seconds, kept alive by the simulation.
    pub(crate) fn session(&mut self, ttl: i64) -> i64 {
        let lease = self.store.grant(ttl, self.now);
        self.kept.push(lease);
        lease
    }

    /// Stops keeping `lease` alive: it expires one TTL later.
    pub(crate) fn orphan(&mut self, lease: i64) {
        self.kept.retain(|l| *l != lease);
    }

    /// The virtual time since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Runs every actor until none can move without the clock.
    pub(crate) fn settle(&mut self, actors: &mut [&mut dyn Actor]) {
        loop {
            for lease in &self.kept {
                self.store.keep_alive(*lease, self.now);
            }
            self.store.expire(self.now);
            let mut any = false;
            for actor in actors.iter_mut() {
                any |= actor.advance(&mut self.store, self.now);
            }
            if !any {
                return;
            }
        }
    }

    /// Runs the actors up to `after` from now, the clock jumping from one
    /// wake-up to the next.
    pub(crate) fn run_for(&mut self, after: Duration, actors: &mut [&mut dyn Actor]) {
        let until = self.now + after;
        self.run_until(until, actors);
    }

    pub(crate) fn run_until(&mut self, until: Instant, actors: &mut [&mut dyn Actor]) {
        loop {
            self.settle(actors);
            if self.now >= until {
                return;
            }
            let next = actors
                .iter()
                .filter_map(|a| a.wake())
                .chain(self.store.next_expiry())
                .filter(|t| *t > self.now)
                .fold(until, |a, b| a.min(b));
            self.now = next;
        }
    }
}
