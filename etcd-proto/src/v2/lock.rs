//! The v2 lock recipe (python-etcd's `etcd.Lock`), with its bugs fixed.
//!
//! # Theory of operation
//!
//! A lock named `n` lives in the directory `<prefix>/n` (prefix `/_locks` by
//! default). Each contender appends an in-order key holding its uuid; keys
//! sort by creation, and **the lowest key holds the lock**.
//!
//! [`AcquireLock`] is the flow of one acquisition:
//!
//! 1. Append our key (value: our uuid, with the lock's TTL). If the answer is
//!    lost on the way, the listing below finds our key by its uuid before
//!    anything is appended again. Re-adopting a lock after a restart skips
//!    the append and finds the key by uuid the same way.
//! 2. List the directory (sorted, quorum). Ours first: acquired. Ours gone:
//!    [`LockError::Expired`]. Otherwise our predecessor is the key just before
//!    ours; a non-blocking attempt deletes its own key and ends with `None`
//!    (the guards turn that into [`LockError::Busy`]).
//! 3. Watch the directory from the listing's index until the predecessor is
//!    deleted or expires (back to 2), or our own key is (expired: error at
//!    once). etcd's history being cleared (errorCode 401) resyncs into 2.
//!    While waiting, our key's TTL is refreshed every third of the TTL, so a
//!    long wait does not lose our place; the deadline, if any, bounds it all
//!    and a timed-out waiter deletes its own key.
//!
//! Every write of an existing lock key is guarded by `prevValue=<uuid>`:
//! [`RefreshLock`] (TTL refresh without notifying watchers) and
//! [`ReleaseLock`] (compare-and-delete) never touch another holder's key.
//! The lock key's `createdIndex` is a fencing token: it grows with every
//! acquisition of the lock.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error::V2ErrorCode;
use super::keys::{Delete, DeleteOptions, Read, ReadOptions, Write, WriteOptions};
use super::response::{Action, KeysResponse};
use super::watch::{is_timeout, NextEvent, Watch, WatchEvent, WatchOptions};
use crate::call::Call;
use crate::cluster::Cluster;
use crate::error::{Error, UsageError};
use crate::flow::{Flow, Input, Step};
use crate::operation::{Api, Replay};

/// The directory locks live under by default (python-etcd's `lock_prefix`).
pub const DEFAULT_LOCK_PREFIX: &str = "/_locks";
/// A lock's TTL in seconds by default.
pub const DEFAULT_LOCK_TTL: u64 = 60;

/// What went wrong with a lock, beyond ordinary errors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockError {
    /// Our lock key is gone (its TTL ran out, or someone deleted it).
    Expired {
        /// The key that vanished.
        key: String,
    },
    /// No key with this uuid exists to re-adopt.
    NotFound {
        /// The uuid looked for.
        uuid: String,
    },
    /// The deadline passed while waiting; our key was removed.
    TimedOut {
        /// The lock's directory.
        path: String,
    },
    /// A non-blocking attempt found the lock held; our key was removed.
    Busy {
        /// The lock's directory.
        path: String,
    },
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Expired { key } => write!(f, "lock key {key} expired or was deleted"),
            LockError::NotFound { uuid } => write!(f, "no lock key holds uuid {uuid}"),
            LockError::TimedOut { path } => write!(f, "timed out waiting for lock {path}"),
            LockError::Busy { path } => write!(f, "lock {path} is held by another client"),
        }
    }
}

impl std::error::Error for LockError {}

/// How a held lock's TTL behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The holder refreshes the TTL while it holds the lock (the default); if
    /// the holder dies, the lock frees itself at most one TTL later. The
    /// same name as v3's [`Hold::KeepAlive`](crate::v3::Hold::KeepAlive).
    KeepAlive,
    /// The TTL is a hard maximum: the lock frees itself one TTL after it was
    /// acquired, held or not (etcetra's `ttl`); v3's
    /// [`Hold::MaxTtl`](crate::v3::Hold::MaxTtl).
    MaxTtl,
}

/// Options of a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    prefix: String,
    ttl: u64,
    hold: Hold,
    blocking: bool,
    timeout: Option<Duration>,
    uuid: Option<String>,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            prefix: DEFAULT_LOCK_PREFIX.to_owned(),
            ttl: DEFAULT_LOCK_TTL,
            hold: Hold::KeepAlive,
            blocking: true,
            timeout: None,
            uuid: None,
        }
    }
}

impl LockOptions {
    /// Blocking, no deadline, a 60 s TTL refreshed while held, under `/_locks`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The directory locks live under.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_end_matches('/').to_owned();
        self
    }

    /// The lock key's TTL in seconds (at least 1).
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = seconds.max(1);
        self
    }

    /// Whether the TTL is refreshed while held or is a hard maximum.
    pub fn hold(mut self, hold: Hold) -> Self {
        self.hold = hold;
        self
    }

    /// `false`: one attempt; a busy lock is reported at once and leaves nothing behind.
    pub fn blocking(mut self, on: bool) -> Self {
        self.blocking = on;
        self
    }

    /// The most the whole acquisition may take (default: as long as it takes).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Re-adopt the lock key holding this uuid (after a restart) instead of
    /// queueing anew.
    pub fn adopt(mut self, uuid: impl Into<String>) -> Self {
        self.uuid = Some(uuid.into());
        self
    }

    /// The TTL in seconds.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl
    }

    /// How the held lock's TTL behaves.
    pub fn hold_mode(&self) -> Hold {
        self.hold
    }
}

/// A lock this client holds: its key, uuid and fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    /// The lock's directory, `<prefix>/<name>`.
    pub path: String,
    /// Our key in it.
    pub key: String,
    /// The uuid our key holds.
    pub uuid: String,
    /// Our key's `createdIndex`: a fencing token that grows with every acquisition.
    pub index: u64,
    /// The TTL in seconds.
    pub ttl: u64,
    /// How the TTL behaves while held.
    pub hold: Hold,
}

impl HeldLock {
    /// How often a [`Hold::KeepAlive`] lock should be refreshed: a third of its TTL.
    pub fn refresh_interval(&self) -> Duration {
        refresh_interval(self.ttl)
    }

    /// The flow that refreshes this lock's TTL once.
    pub fn refresh(&self) -> Call<RefreshLock> {
        Call::new(RefreshLock {
            key: self.key.clone(),
            uuid: self.uuid.clone(),
            ttl: self.ttl,
        })
    }

    /// The flow that releases this lock (only if our key is still ours).
    pub fn release(&self) -> Call<ReleaseLock> {
        Call::new(ReleaseLock {
            key: self.key.clone(),
            uuid: self.uuid.clone(),
        })
    }

    /// The flow that checks whether we still hold the lock.
    pub fn check(&self) -> Call<CheckLock> {
        Call::new(CheckLock {
            path: self.path.clone(),
            key: self.key.clone(),
            uuid: self.uuid.clone(),
        })
    }
}

fn refresh_interval(ttl: u64) -> Duration {
    Duration::from_millis((ttl * 1000 / 3).max(300))
}

/// A lock identity made of `bits` (128 random bits from the transport:
/// [`Entropy::random_u128`](crate::drive::Entropy::random_u128)), in hex.
pub fn uuid_from(bits: u128) -> String {
    format!("{bits:032x}")
}

/// The lock key's children in lock order (lowest first), directories left out.
fn queue(listing: &KeysResponse) -> Vec<&super::Node> {
    let mut keys: Vec<_> = listing.node.children().filter(|n| !n.dir).collect();
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    keys
}

/// Refresh a lock key's TTL, only if it still holds our uuid.
#[derive(Debug, Clone)]
pub struct RefreshLock {
    key: String,
    uuid: String,
    ttl: u64,
}

impl crate::Operation for RefreshLock {
    type Output = ();

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &crate::Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        let options = WriteOptions::new()
            .ttl(self.ttl)
            .refresh(true)
            .prev_exist(true)
            .prev_value(&self.uuid);
        Write::without_value(self.key.clone())
            .options(options)
            .build(target)
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<(), Error> {
        match Write::without_value(self.key.clone()).parse(response) {
            Ok(_) => Ok(()),
            Err(e) if lost_key(&e) => Err(LockError::Expired {
                key: self.key.clone(),
            }
            .into()),
            Err(e) => Err(e),
        }
    }

    fn replay(&self) -> crate::Replay {
        // Refreshing twice is harmless.
        crate::Replay::Safe
    }
}

/// Delete a lock key, only if it still holds our uuid. `Ok(false)`: it was
/// already gone or not ours.
#[derive(Debug, Clone)]
pub struct ReleaseLock {
    key: String,
    uuid: String,
}

impl crate::Operation for ReleaseLock {
    type Output = bool;

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &crate::Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        Delete::new(self.key.clone())
            .options(DeleteOptions::new().prev_value(&self.uuid))
            .build(target)
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<bool, Error> {
        match Delete::new(self.key.clone()).parse(response) {
            Ok(_) => Ok(true),
            Err(e) if lost_key(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn replay(&self) -> crate::Replay {
        // Guarded by the uuid: a second delete finds nothing and says so.
        crate::Replay::Safe
    }
}

/// Whether we still hold a lock: our key exists, holds our uuid, and is first.
#[derive(Debug, Clone)]
pub struct CheckLock {
    path: String,
    key: String,
    uuid: String,
}

impl crate::Operation for CheckLock {
    type Output = bool;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &crate::Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        listing(&self.path).build(target)
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<bool, Error> {
        match listing(&self.path).parse(response) {
            Ok(list) => Ok(queue(&list).first().is_some_and(|n| {
                n.key == self.key && n.value.as_deref() == Some(self.uuid.as_str())
            })),
            Err(e) if e.is_key_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn listing(path: &str) -> Read {
    Read::new(path).options(ReadOptions::new().sorted(true).quorum(true))
}

/// True when an append failed in a way that may still have created the key:
/// the answer was lost, or raft timed out (the write may yet commit).
fn may_have_appended(error: &Error) -> bool {
    match error {
        Error::Transport(t) => !t.request_not_sent(),
        Error::Unavailable(u) => u.failures.iter().any(|(_, e)| may_have_appended(e)),
        Error::Etcd(_) => error.as_v2().is_some_and(|e| {
            e.code == V2ErrorCode::RaftInternal || e.code == V2ErrorCode::LeaderElect
        }),
        Error::Malformed(m) => m.status >= 500,
        _ => false,
    }
}

/// errorCode 100 or 101: the key is gone, or holds another uuid.
fn lost_key(e: &Error) -> bool {
    e.as_v2().is_some_and(|v| {
        matches!(
            v.code,
            V2ErrorCode::KeyNotFound | V2ErrorCode::CompareFailed
        )
    })
}

/// The flow of one lock acquisition; see the [module docs](self). Output:
/// `Some(lock)` when held, `None` when a non-blocking attempt found it busy.
///
/// # States
///
/// ```text
///  Start ─▶ Appending ─(our key)─▶ Listing ─(ours is first)─────────────────▶ Done(held)
///    │       (POST, TTL)            ▲  │ ─(Hold::MaxTtl, first)─▶ Finishing ─▶ Done(held)
///    │ adopt a uuid                 │  │
///    └──────────────────────────────┘  └─(a key before ours)─▶ WatchFrom ─▶ Waiting
///                                   ▲                                       │  │
///                                   └──(the predecessor changed or went)────┘  │
///                                                      refresh due ▼           │
///                                   Refreshing (our TTL, then back to Waiting) ◀┘
///
///  busy (non-blocking), deadline, lost append, failure ─▶ Cleanup ─▶ Done(error or None)
///                                                  (deletes our key)
/// ```
#[derive(Debug)]
pub struct AcquireLock {
    path: String,
    options: LockOptions,
    uuid: String,
    mine: Option<(String, u64)>,
    predecessor: Option<String>,
    deadline: Option<Instant>,
    next_refresh: Option<Instant>,
    started: bool,
    appends: u32,
    append_error: Option<Error>,
    stage: Stage,
}

/// Appends tried at most when their answers get lost.
const MAX_APPENDS: u32 = 3;

#[derive(Debug)]
enum Stage {
    Start,
    Appending(Call<Write>),
    Listing(Call<Read>),
    Waiting(NextEvent),
    WatchFrom(Watch),
    Refreshing(Call<RefreshLock>, Watch),
    /// The one refresh of a hard-maximum lock, at acquisition.
    Finishing(Call<RefreshLock>),
    Cleanup(Call<ReleaseLock>, Option<Result<Option<HeldLock>, Error>>),
    Done(Option<Result<Option<HeldLock>, Error>>),
}

impl AcquireLock {
    /// Acquire the lock `name` with `options`. `identity`: 128 random bits
    /// that become the lock's uuid unless `options` adopt one (the core
    /// draws no random numbers: the transport does, with
    /// [`Entropy::random_u128`](crate::drive::Entropy::random_u128)).
    pub fn new(name: &str, options: LockOptions, identity: u128) -> Self {
        let path = format!("{}/{}", options.prefix, name.trim_start_matches('/'));
        AcquireLock {
            path,
            uuid: options.uuid.clone().unwrap_or_else(|| uuid_from(identity)),
            options,
            mine: None,
            predecessor: None,
            deadline: None,
            next_refresh: None,
            started: false,
            appends: 0,
            append_error: None,
            stage: Stage::Start,
        }
    }

    /// The uuid this acquisition queues with (to re-adopt it later).
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The lock's directory, `<prefix>/<name>`.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn my_key(&self) -> Option<&str> {
        self.mine.as_ref().map(|(k, _)| k.as_str())
    }

    fn append(&mut self) -> Stage {
        self.appends += 1;
        let write = Write::append(self.path.clone(), &self.uuid)
            .options(WriteOptions::new().append(true).ttl(self.options.ttl));
        Stage::Appending(Call::new(write).with_deadline(self.deadline))
    }

    fn list(&self) -> Stage {
        Stage::Listing(Call::new(listing(&self.path)).with_deadline(self.deadline))
    }

    /// The error to end with: [`LockError::TimedOut`] once the deadline has
    /// passed (whatever step was cut short by it), else `error`.
    fn or_timed_out(&self, error: Error, now: Instant) -> Error {
        if self.deadline.is_some_and(|d| now >= d) {
            LockError::TimedOut {
                path: self.path.clone(),
            }
            .into()
        } else {
            error
        }
    }

    /// Ends with `result`, deleting our key first if we queued one.
    fn end(&mut self, result: Result<Option<HeldLock>, Error>) -> Stage {
        match self.mine.take() {
            Some((key, _)) => Stage::Cleanup(
                Call::new(ReleaseLock {
                    key,
                    uuid: self.uuid.clone(),
                }),
                Some(result),
            ),
            None => Stage::Done(Some(result)),
        }
    }

    fn held(&self) -> Option<HeldLock> {
        let (key, index) = self.mine.clone()?;
        Some(HeldLock {
            path: self.path.clone(),
            key,
            uuid: self.uuid.clone(),
            index,
            ttl: self.options.ttl,
            hold: self.options.hold,
        })
    }

    /// A refresh of our key failed: it is gone (expired, or not ours any
    /// more), the deadline cut it short, or something else went wrong.
    fn after_refresh_error(&mut self, error: Error, now: Instant) -> Stage {
        if matches!(error, Error::Lock(LockError::Expired { .. })) {
            self.mine = None;
        }
        let error = self.or_timed_out(error, now);
        self.end(Err(error))
    }

    fn after_append(&mut self, result: Result<KeysResponse, Error>, now: Instant) -> Stage {
        match result {
            Ok(created) => {
                self.mine = Some((created.node.key, created.node.created_index));
                self.list()
            }
            // The key may exist although the answer never came (a lost answer,
            // or a raft timeout that still commits): look for it by uuid before
            // appending again or giving up, so nothing is left behind.
            Err(e) if may_have_appended(&e) => {
                self.append_error = Some(e);
                if self.deadline.is_some_and(|d| now >= d) {
                    // No time to look: the key, if any, expires with its TTL.
                    let e = self.append_error.take().map_or_else(
                        || {
                            LockError::TimedOut {
                                path: self.path.clone(),
                            }
                            .into()
                        },
                        |e| self.or_timed_out(e, now),
                    );
                    return Stage::Done(Some(Err(e)));
                }
                self.list()
            }
            Err(e) => Stage::Done(Some(Err(e))),
        }
    }

    fn after_list(&mut self, result: Result<KeysResponse, Error>, now: Instant) -> Stage {
        let listing = match result {
            Ok(listing) => listing,
            Err(e) if e.is_key_not_found() => KeysResponse {
                action: Action::Get,
                node: super::Node::default(),
                prev_node: None,
                new_key: false,
                meta: Default::default(),
            },
            Err(e) => {
                let e = self.or_timed_out(e, now);
                return self.end(Err(e));
            }
        };
        let queue = queue(&listing);
        if self.mine.is_none() {
            // Find our key by uuid: adopting, or recovering a lost append answer.
            if let Some(node) = queue
                .iter()
                .find(|n| n.value.as_deref() == Some(self.uuid.as_str()))
            {
                self.mine = Some((node.key.clone(), node.created_index));
            } else if self.options.uuid.is_some() && self.appends == 0 {
                return Stage::Done(Some(Err(LockError::NotFound {
                    uuid: self.uuid.clone(),
                }
                .into())));
            } else if self.appends >= MAX_APPENDS {
                let error = self.append_error.take().unwrap_or_else(|| {
                    LockError::NotFound {
                        uuid: self.uuid.clone(),
                    }
                    .into()
                });
                return Stage::Done(Some(Err(self.or_timed_out(error, now))));
            } else if self.deadline.is_some_and(|d| now >= d) {
                let path = self.path.clone();
                return Stage::Done(Some(Err(LockError::TimedOut { path }.into())));
            } else {
                return self.append();
            }
        }
        let Some(mine) = self.my_key().map(str::to_owned) else {
            return self.append();
        };
        let ours =
            |n: &&super::Node| n.key == mine && n.value.as_deref() == Some(self.uuid.as_str());
        let Some(position) = queue.iter().position(ours) else {
            self.mine = None;
            return Stage::Done(Some(Err(LockError::Expired { key: mine }.into())));
        };
        if position == 0 {
            // Acquired. A hard-maximum TTL counts from now: refresh it once.
            if self.options.hold == Hold::MaxTtl {
                if let Some(held) = self.held() {
                    return Stage::Finishing(held.refresh().with_deadline(self.deadline));
                }
            }
            let held = self.held();
            return Stage::Done(Some(Ok(held)));
        }
        if !self.options.blocking {
            return self.end(Ok(None));
        }
        self.predecessor = Some(queue[position - 1].key.clone());
        if self.next_refresh.is_none() {
            self.next_refresh = Some(now + refresh_interval(self.options.ttl));
        }
        let from = listing.meta.etcd_index.map_or(1, |i| i + 1);
        Stage::WatchFrom(Watch::new(
            &self.path,
            WatchOptions::new().recursive(true).from_index(from),
        ))
    }

    /// Starts the next wait on `watch`, or a refresh of our key if one is due.
    fn wait(&mut self, watch: Watch, now: Instant) -> Stage {
        if self.deadline.is_some_and(|d| now >= d) {
            let path = self.path.clone();
            return self.end(Err(LockError::TimedOut { path }.into()));
        }
        if self.next_refresh.is_some_and(|t| now >= t) {
            if let Some(held) = self.held() {
                self.next_refresh = Some(now + refresh_interval(self.options.ttl));
                return Stage::Refreshing(held.refresh().with_deadline(self.deadline), watch);
            }
        }
        // Come back by the next refresh or the deadline, whichever is first.
        let mut until = self
            .next_refresh
            .unwrap_or(now + refresh_interval(self.options.ttl));
        if let Some(deadline) = self.deadline {
            until = until.min(deadline);
        }
        let mut watch = watch;
        watch.set_timeout(
            until
                .saturating_duration_since(now)
                .max(Duration::from_millis(1)),
        );
        Stage::Waiting(watch.next_event())
    }

    fn after_event(
        &mut self,
        watch: Watch,
        result: Result<WatchEvent, Error>,
        now: Instant,
    ) -> Stage {
        match result {
            Ok(WatchEvent::Changed(event)) => {
                let gone = matches!(
                    event.action,
                    Action::Delete | Action::Expire | Action::CompareAndDelete
                );
                if gone && Some(event.node.key.as_str()) == self.my_key() {
                    let key = event.node.key;
                    self.mine = None;
                    return Stage::Done(Some(Err(LockError::Expired { key }.into())));
                }
                if gone && Some(&event.node.key) == self.predecessor.as_ref() {
                    return self.list();
                }
                self.wait(watch, now)
            }
            // Events were compacted away: look at the queue afresh.
            Ok(WatchEvent::Resynced(_)) => self.list(),
            // The wait reached a refresh time or the deadline.
            Err(e) if is_timeout(&e) => self.wait(watch, now),
            Err(e) => self.end(Err(e)),
        }
    }
}

impl Flow for AcquireLock {
    type Output = Option<HeldLock>;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<Option<HeldLock>> {
        if !self.started {
            self.started = true;
            self.deadline = self.options.timeout.map(|t| now + t);
        }
        loop {
            let next = match &mut self.stage {
                Stage::Start if self.options.uuid.is_some() => self.list(),
                Stage::Start => self.append(),
                Stage::Appending(call) => match call.poll(cluster, now) {
                    Step::Done(result) => self.after_append(result, now),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::Listing(call) => match call.poll(cluster, now) {
                    Step::Done(result) => self.after_list(result, now),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::WatchFrom(watch) => {
                    let watch = watch.clone();
                    self.wait(watch, now)
                }
                Stage::Waiting(flow) => match flow.poll(cluster, now) {
                    Step::Done(Ok((watch, result))) => self.after_event(watch, result, now),
                    Step::Done(Err(e)) => self.end(Err(e)),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::Finishing(call) => match call.poll(cluster, now) {
                    Step::Done(Ok(())) => {
                        let held = self.held();
                        Stage::Done(Some(Ok(held)))
                    }
                    Step::Done(Err(e)) => self.after_refresh_error(e, now),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::Refreshing(call, watch) => match call.poll(cluster, now) {
                    Step::Done(Ok(())) => {
                        let watch = watch.clone();
                        self.wait(watch, now)
                    }
                    Step::Done(Err(e)) => self.after_refresh_error(e, now),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::Cleanup(call, result) => match call.poll(cluster, now) {
                    Step::Done(_) => Stage::Done(result.take()),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::Done(result) => return crate::flow::finished(result),
            };
            self.stage = next;
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        if let Input::Stop = input {
            // Left as if dropped: a key appended stays until its TTL ends.
            self.stage = Stage::Done(Some(crate::flow::stopped()));
            return;
        }
        match &mut self.stage {
            Stage::Appending(call) => call.handle(cluster, now, input),
            Stage::Listing(call) => call.handle(cluster, now, input),
            Stage::Waiting(flow) => flow.handle(cluster, now, input),
            Stage::Refreshing(call, _) | Stage::Finishing(call) => call.handle(cluster, now, input),
            Stage::Cleanup(call, _) => call.handle(cluster, now, input),
            Stage::Start | Stage::WatchFrom(_) | Stage::Done(_) => {}
        }
    }
}

/// The flow that keeps a [`Hold::KeepAlive`] lock's TTL fresh until told to
/// stop: it refreshes every third of the TTL and checks `stop` at least
/// every 100 ms.
///
/// **The holder learns of a loss before anyone else can take the lock.** A
/// refresh re-arms the key's TTL no earlier than it was sent, so the key
/// lives at least until `sent + TTL`. The keeper counts its lock as valid
/// until then, less a safety margin (a tenth of the TTL, between 100 ms and
/// 1 s); at the start, from the acquisition less one refresh interval (the
/// key's TTL was last set by the append or by a refresh while waiting). A
/// failed refresh is retried every 500 ms, each attempt ending by that
/// validity. Once it passes with no refresh through — a partition, a frozen
/// member, a cluster without a leader — the keeper ends with
/// [`Error::TtlExpired`] naming the last failure; if etcd says the key is
/// gone or no longer ours, with [`LockError::Expired`].
#[derive(Debug)]
pub struct KeepLock {
    lock: HeldLock,
    /// Told to [`Stop`](Input::Stop).
    stopped: bool,
    next_refresh: Option<Instant>,
    /// The refresh in flight, and when it was started.
    refreshing: Option<(Call<RefreshLock>, Instant)>,
    /// Until when the lock is surely still ours.
    valid_until: Option<Instant>,
    last_error: Option<Error>,
}

/// How soon a failed refresh is tried again.
const REFRESH_RETRY: Duration = Duration::from_millis(500);

impl KeepLock {
    /// Keeps `lock` until told to [`Stop`](Input::Stop).
    pub fn new(lock: HeldLock) -> Self {
        KeepLock {
            lock,
            stopped: false,
            next_refresh: None,
            refreshing: None,
            valid_until: None,
            last_error: None,
        }
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.lock.ttl.max(1))
    }

    /// The loss: the TTL may have run out.
    fn expired(&mut self) -> Error {
        crate::error::TtlExpired {
            what: format!("lock key {}", self.lock.key),
            ttl: self.ttl(),
            last_error: self.last_error.take().map(Box::new),
        }
        .into()
    }
}

impl Flow for KeepLock {
    type Output = ();

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<()> {
        let ttl = self.ttl();
        let interval = self.lock.refresh_interval();
        loop {
            // At the start: the key's TTL was last set by the acquisition's
            // append, or by a refresh while waiting, one interval ago at most.
            let valid_until = *self.valid_until.get_or_insert_with(|| {
                let set_at = now.checked_sub(interval).unwrap_or(now);
                crate::v3::lease::valid_until(set_at, ttl)
            });
            if self.stopped {
                return Step::Done(Ok(()));
            }
            if let Some((call, sent)) = &mut self.refreshing {
                let sent = *sent;
                match call.poll(cluster, now) {
                    Step::Done(Ok(())) => {
                        self.refreshing = None;
                        self.last_error = None;
                        self.valid_until = Some(crate::v3::lease::valid_until(sent, ttl));
                        self.next_refresh = Some(sent + interval);
                        continue;
                    }
                    // Lost: nothing left to keep.
                    Step::Done(Err(e @ Error::Lock(_))) => return Step::Done(Err(e)),
                    // Try again soon, while the lock is still surely ours.
                    Step::Done(Err(e)) => {
                        self.refreshing = None;
                        self.last_error = Some(e);
                        self.next_refresh = Some(now + REFRESH_RETRY);
                    }
                    other => return other,
                }
            }
            if now >= valid_until {
                return Step::Done(Err(self.expired()));
            }
            let due = *self.next_refresh.get_or_insert(now + interval);
            if now < due {
                return Step::Sleep(due.min(valid_until));
            }
            self.next_refresh = None;
            // Each refresh ends by the validity: past it, the lock is lost.
            let call = self.lock.refresh().with_deadline(Some(valid_until));
            self.refreshing = Some((call, now));
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match (input, &mut self.refreshing) {
            (Input::Stop, _) => self.stopped = true,
            (input, Some((call, _))) => call.handle(cluster, now, input),
            (_, None) => {}
        }
    }
}
