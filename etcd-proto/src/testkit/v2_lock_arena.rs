//! Several v2 `AcquireLock` contenders, each with its own two-endpoint
//! [`Cluster`], against one v2 [`Store`] on one virtual clock, every
//! choice from a [`Tape`]: for the lock machine's property test and the
//! `v2_lock` fuzz target.
//!
//! Every answer (and injected fault) takes no time: time moves only when
//! no contender is ready, to the next sleep end, poll timeout, release, TTL
//! expiry (or a random bit less). Invariants are checked after every step
//! and at every flow's end: at most one contender holds the lock with its
//! key in place, a holder's key is the first in the directory, and no
//! contender that finished leaves a key behind.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::chance::Tape;
use super::sent::Sent;
use super::v2::Store;
use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind};
use crate::flow::{Flow, Step};
use crate::v2::{AcquireLock, HeldLock, Hold, LockError, LockOptions};

const A: &str = "http://127.0.0.1:23790";
const B: &str = "http://127.0.0.1:23791";
/// The lock directory of `AcquireLock::new("n", …)` under the default prefix.
pub const DIR: &str = "/_locks/n";

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// One contender's options.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Wait for the lock (or give up at once when it is held).
    pub blocking: bool,
    /// Give up waiting after this long.
    pub timeout: Option<Duration>,
    /// Hold for at most one TTL ([`Hold::MaxTtl`]) instead of keeping it alive.
    pub max: bool,
    pub ttl: u64,
    /// When it starts, since the run began.
    pub start: Duration,
}

enum State {
    /// Not started yet, or asleep: ready again at this time.
    Until(Duration),
    Ready,
    Parked(Sent),
    /// Returned `Some`; releases at `until`.
    Holding {
        lock: HeldLock,
        until: Duration,
    },
    Finished,
}

struct Contender {
    plan: Plan,
    flow: AcquireLock,
    uuid: String,
    cluster: Cluster,
    state: State,
    deadline: Option<Duration>,
    last_faulted: bool,
    append_faults: u32,
}

/// Several `AcquireLock` flows, each with its own two-endpoint `Cluster`,
/// against one `Store` on one virtual clock. Every answer (and injected
/// fault) takes no time: time moves only when no contender is ready, to the
/// next sleep end, poll timeout, release, TTL expiry (or a random bit less).
/// Invariants are checked after every step and at every flow's end.
pub struct Arena {
    start: Instant,
    now: Duration,
    model: Store,
    tape: Tape,
    contenders: Vec<Contender>,
    /// Keys a third party removed.
    disturbed: BTreeSet<String>,
    fault_percent: u64,
    disturb_percent: u64,
    log: Vec<String>,
    /// How each contender ended: `held`, `busy`, `expired`, `timed out`.
    pub outcomes: Vec<String>,
}

impl Arena {
    /// `plans` against one store; `tape` decides scheduling, faults (in
    /// `fault_percent` of requests) and disturbances (`disturb_percent`).
    pub fn new(plans: Vec<Plan>, tape: Tape, fault_percent: u64, disturb_percent: u64) -> Arena {
        let contenders = plans
            .into_iter()
            .enumerate()
            .map(|(i, plan)| {
                let mut options = LockOptions::new()
                    .ttl(plan.ttl)
                    .blocking(plan.blocking)
                    .hold(if plan.max {
                        Hold::MaxTtl
                    } else {
                        Hold::KeepAlive
                    });
                if let Some(t) = plan.timeout {
                    options = options.timeout(t);
                }
                let flow = AcquireLock::new("n", options, 0x1000 + i as u128);
                let mut cluster = Cluster::from_urls(&[A, B]).unwrap();
                cluster.set_discover_members(false);
                Contender {
                    uuid: flow.uuid().to_owned(),
                    flow,
                    cluster,
                    state: State::Until(plan.start),
                    deadline: plan.timeout.map(|t| plan.start + t),
                    plan,
                    last_faulted: false,
                    append_faults: 0,
                }
            })
            .collect();
        Arena {
            start: Instant::now(),
            now: Duration::ZERO,
            model: Store::new(11),
            tape,
            contenders,
            disturbed: BTreeSet::new(),
            fault_percent,
            disturb_percent,
            log: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    fn note(&mut self, line: String) {
        self.log.push(format!("{:>12?} {line}", self.now));
    }

    fn fail(&self, what: String) -> ! {
        let from = self.log.len().saturating_sub(60);
        panic!(
            "{what}\n--- last events ---\n{}",
            self.log[from..].join("\n")
        );
    }

    /// Runs every contender to its end, checking the invariants; panics
    /// with the last events if one breaks.
    pub fn run(&mut self) {
        for _ in 0..300_000 {
            self.check_exclusion();
            if self
                .contenders
                .iter()
                .all(|c| matches!(c.state, State::Finished))
            {
                self.check_end();
                return;
            }
            if self.tape.chance(self.disturb_percent) {
                self.disturb();
            }
            let ready: Vec<usize> = (0..self.contenders.len())
                .filter(|&i| matches!(self.contenders[i].state, State::Ready))
                .collect();
            if ready.is_empty() {
                self.advance();
            } else {
                let i = ready[self.tape.below(ready.len() as u64) as usize];
                self.step(i);
            }
            if self.now > secs(3_600) {
                self.fail("an hour of virtual time: some contender never ends".into());
            }
        }
        self.fail("too many steps: some contender never ends".into());
    }

    /// At most one contender holds the lock with its key still in place.
    fn check_exclusion(&self) {
        let live: Vec<usize> = (0..self.contenders.len())
            .filter(|&i| match &self.contenders[i].state {
                State::Holding { lock, .. } => {
                    self.model.value(&lock.key) == Some(self.contenders[i].uuid.as_str())
                }
                _ => false,
            })
            .collect();
        if live.len() > 1 {
            self.fail(format!("contenders {live:?} hold the lock at once"));
        }
    }

    fn check_end(&self) {
        for (i, c) in self.contenders.iter().enumerate() {
            let left = self.model.holding(&c.uuid);
            if !left.is_empty() {
                self.fail(format!(
                    "contender {i} finished, but its keys {left:?} remain"
                ));
            }
        }
    }

    /// A third party acts on the directory.
    fn disturb(&mut self) {
        let queue = self.model.queue(DIR);
        match self.tape.below(7) {
            which @ 0..=2 if !queue.is_empty() => {
                let k = queue[self.tape.below(queue.len() as u64) as usize].clone();
                match which {
                    0 => self.model.delete(&k),
                    1 => self.model.compare_and_delete(&k),
                    _ => self.model.expire(&k),
                };
                self.note(format!("third party removes {k}"));
                self.disturbed.insert(k);
            }
            3 => {
                let k = match self.tape.below(3) {
                    0 => "/elsewhere".to_owned(),
                    i => format!("{DIR}/sub/k{i}"),
                };
                self.model.set(&k, "x");
                self.note(format!("third party sets {k}"));
            }
            4 => {
                let ttl = 1 + self.tape.below(5);
                let k = self.model.append(DIR, "phantom", Some(ttl));
                self.note(format!("a phantom queues {k} for {ttl} s"));
            }
            5 | 6 => {
                self.model.clear_history();
                self.note(format!("history cleared below {}", self.model.first_kept));
            }
            _ => {}
        }
        self.wake_parked();
    }

    /// Hands parked polls the events that came.
    fn wake_parked(&mut self) {
        let now = self.start + self.now;
        for i in 0..self.contenders.len() {
            let answer = match &self.contenders[i].state {
                State::Parked(sent) => self.model.poll(sent, true),
                _ => None,
            };
            if let Some(answer) = answer {
                let c = &mut self.contenders[i];
                c.flow.handle_response(&mut c.cluster, now, answer);
                c.state = State::Ready;
            }
        }
    }

    /// Moves time to the next thing that happens (or a bit, at random).
    fn advance(&mut self) {
        let pending = self.contenders.iter().filter_map(|c| match &c.state {
            State::Until(t) => Some(*t),
            State::Parked(sent) => Some(sent.ends().expect("every lock poll has a timeout")),
            State::Holding { until, .. } => Some(*until),
            _ => None,
        });
        let Some(mut next) = pending.chain(self.model.next_expiry()).min() else {
            self.fail("nobody is waiting for anything, yet not everyone finished".into());
        };
        if self.tape.chance(20) {
            next = next.min(self.now + millis(1 + self.tape.below(1_500)));
        }
        self.now = next.max(self.now);
        self.model.advance_to(self.now);
        self.wake_parked();
        let now = self.start + self.now;
        for i in 0..self.contenders.len() {
            let c = &mut self.contenders[i];
            match &c.state {
                State::Until(t) if *t <= self.now => c.state = State::Ready,
                State::Parked(sent) if sent.ends().is_some_and(|e| e <= self.now) => {
                    c.flow.handle_failure(
                        &mut c.cluster,
                        now,
                        TransportErrorKind::Timeout,
                        "timed out".into(),
                    );
                    c.state = State::Ready;
                }
                State::Holding { until, .. } if *until <= self.now => {
                    self.release(i);
                }
                _ => {}
            }
        }
    }

    fn step(&mut self, i: usize) {
        let now = self.start + self.now;
        let c = &mut self.contenders[i];
        match c.flow.poll(&mut c.cluster, now) {
            Step::Transmit(t) => {
                let sent = Sent::new(&t.request, t.timeout, self.now);
                let late = c.deadline.is_some_and(|d| self.now > d);
                // Transient faults only: never two in a row for one contender
                // (its `Call` then succeeds on the other endpoint or on a
                // retry), and at most two per contender on appends, which are
                // not replayed (a third would hit the lost-last-append bug).
                let appends_spent = sent.kind() == "POST" && c.append_faults >= 2;
                let may_fault = !(c.last_faulted || appends_spent);
                let fault = may_fault && self.tape.chance(self.fault_percent);
                let mut line = format!("#{i} {} {}", sent.kind(), sent.uri);
                if fault {
                    c.last_faulted = true;
                    if sent.kind() == "POST" {
                        c.append_faults += 1;
                    }
                    let (kind, applied) = match self.tape.below(3) {
                        0 => (TransportErrorKind::Connect, false),
                        1 => (TransportErrorKind::Io, false),
                        _ => (TransportErrorKind::Io, true),
                    };
                    if applied {
                        let _ = self.model.serve(&sent);
                    }
                    c.flow
                        .handle_failure(&mut c.cluster, now, kind, "injected".into());
                    c.state = State::Ready;
                    line += &format!(" -> {kind:?} (applied: {applied})");
                } else {
                    c.last_faulted = false;
                    match self.model.serve(&sent) {
                        Some(answer) => {
                            line += &format!(" -> {}", answer.status());
                            c.flow.handle_response(&mut c.cluster, now, answer);
                            c.state = State::Ready;
                        }
                        None => {
                            line += " -> parked";
                            c.state = State::Parked(sent.clone());
                        }
                    }
                }
                self.note(line);
                if late && sent.kind() != "DELETE" {
                    self.fail(format!("#{i} sent {} after its deadline", sent.uri));
                }
                self.wake_parked();
            }
            Step::Sleep(until) => {
                assert!(until > now, "a sleep moves time forward");
                c.state = State::Until(until - self.start);
            }
            Step::Done(result) => self.finish(i, result),
        }
    }

    fn finish(&mut self, i: usize, result: Result<Option<HeldLock>, Error>) {
        let c = &self.contenders[i];
        let left = self.model.holding(&c.uuid);
        let (uuid, plan, deadline) = (c.uuid.clone(), c.plan.clone(), c.deadline);
        match result {
            Ok(Some(lock)) => {
                self.note(format!("#{i} holds {}", lock.key));
                if lock.uuid != uuid || lock.path != DIR || lock.ttl != plan.ttl {
                    self.fail(format!("#{i} holds a lock not its own: {lock:?}"));
                }
                if let Some(entry) = self.model.keys.get(&lock.key) {
                    let first = self.model.queue(DIR).into_iter().next();
                    if entry.value != uuid || entry.created != lock.index {
                        self.fail(format!("#{i} holds {lock:?}, the key is {entry:?}"));
                    }
                    if first.as_ref() != Some(&lock.key) {
                        self.fail(format!("#{i} holds {} but {first:?} is first", lock.key));
                    }
                }
                // Holders do not refresh: past its TTL, a key runs out.
                let until = self.now + millis(self.tape.below(lock.ttl * 1_500));
                self.contenders[i].state = State::Holding { lock, until };
                self.outcomes.push("held".into());
            }
            Ok(None) => {
                self.note(format!("#{i} found the lock busy"));
                if plan.blocking {
                    self.fail(format!("#{i} blocks, yet returned None"));
                }
                if !left.is_empty() {
                    self.fail(format!("#{i} found it busy but left {left:?}"));
                }
                self.contenders[i].state = State::Finished;
                self.outcomes.push("busy".into());
            }
            Err(error) => {
                self.note(format!("#{i} failed: {error}"));
                if !left.is_empty() {
                    self.fail(format!("#{i} failed ({error}) but left {left:?}"));
                }
                match &error {
                    Error::Lock(LockError::Expired { key }) => {
                        if !self.disturbed.contains(key) {
                            self.fail(format!(
                                "#{i}'s key {key} ran out while it was refreshing it"
                            ));
                        }
                    }
                    Error::Lock(LockError::TimedOut { path }) => {
                        if path != DIR || deadline != Some(self.now) {
                            self.fail(format!(
                                "#{i} timed out at {:?}, its deadline is {deadline:?}",
                                self.now
                            ));
                        }
                    }
                    other => self.fail(format!("#{i} failed unexpectedly: {other:?}")),
                }
                self.contenders[i].state = State::Finished;
                self.outcomes.push(match error {
                    Error::Lock(LockError::Expired { .. }) => "expired".into(),
                    _ => "timed out".into(),
                });
            }
        }
    }

    /// The holder releases its lock through `ReleaseLock`.
    fn release(&mut self, i: usize) {
        let now = self.start + self.now;
        let c = &mut self.contenders[i];
        let State::Holding { lock, .. } = std::mem::replace(&mut c.state, State::Finished) else {
            unreachable!("only holders release")
        };
        let mut call = lock.release();
        let released = loop {
            match call.poll(&mut c.cluster, now) {
                Step::Transmit(t) => {
                    let sent = Sent::new(&t.request, t.timeout, self.now);
                    assert_eq!(sent.kind(), "DELETE");
                    let answer = self.model.serve(&sent).expect("answered");
                    call.handle_response(&mut c.cluster, now, answer);
                }
                Step::Sleep(_) => unreachable!("nothing fails here"),
                Step::Done(result) => break result.expect("a release answers true or false"),
            }
        };
        let left = self.model.holding(&c.uuid);
        self.note(format!("#{i} releases {} ({released})", lock.key));
        if !left.is_empty() {
            self.fail(format!("#{i} released, but {left:?} remain"));
        }
        self.wake_parked();
    }
}
