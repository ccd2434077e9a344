//! The v3 lock recipe: Go's `concurrency.Mutex`, as a sans-IO state machine.
//!
//! # Theory of operation
//!
//! A lock named `n` lives under the prefix `n/` (Go's `NewMutex(s, "n")`,
//! `etcdctl lock n` and etcd's own lock service use the same keys, so they
//! exclude each other). Each contender owns one key, `n/<lease in hex>`,
//! attached to its session's lease; keys are ordered by their
//! `create_revision`, and **the oldest key holds the lock**.
//!
//! [`AcquireMutex`] is one acquisition, a [`StreamFlow`] that emits the
//! [`HeldMutex`] once and ends:
//!
//! 1. One transaction: if our key does not exist (`create_revision == 0`),
//!    put it (empty value, our lease) and read the owner (the prefix's
//!    oldest key); otherwise read our key and the owner. Our revision is the
//!    put's revision, or the existing key's `create_revision` (a session that
//!    already queued adopts its key, as in Go). The transaction is safe to
//!    replay: an attempt whose answer was lost is adopted by the next one.
//! 2. No owner, or the owner's `create_revision` is ours: held.
//! 3. Otherwise (Go's `waitDeletes`): read the newest key created before ours
//!    (`max_create_revision = ours - 1`, newest first, limit 1); if there is
//!    one, watch it ([`Watch`], deletes only) from the read's revision until
//!    it is deleted, and repeat. When no older key is left, re-read our key:
//!    gone means our session's lease ended, [`MutexError::SessionExpired`].
//!
//! **Options** ([`MutexOptions`]): a deadline for the whole acquisition (every
//! request is capped by it, the watch's open request too); try-lock (one
//! look: someone else's lock ends in [`MutexError::Busy`]); and the [`Hold`]
//! mode. A [`Hold::MaxTtl`] acquisition renews the lease once on acquiring,
//! so the lease's TTL counts from the acquisition: the caller then stops
//! keeping it alive and the lock frees itself about one TTL later.
//!
//! **Nothing is left behind by a flow that ends:** a timed-out, busy or
//! failed acquisition deletes its own key (guarded by its create revision)
//! before it ends with the error. A caller who *drops* the flow part-way
//! cannot run that delete: the key then goes when the session's lease ends
//! (closed, or no longer kept alive).
//!
//! **Release** ([`HeldMutex::release`]) deletes our key only while its
//! `create_revision` is still ours: it never deletes a later acquisition's
//! key. The `create_revision` is the fencing token: it grows with every
//! acquisition of the lock, and [`HeldMutex::owner_compare`] guards a
//! transaction on still holding the lock.
//!
//! **One acquisition per session and lock name at a time**: a second one
//! through the same session finds the first one's key and adopts it (Go's
//! behaviour); releasing either releases both.

use std::time::{Duration, Instant};

use super::error::V3ErrorKind;
use super::kv::{Delete, Get, Put};
use super::lease::{LeaseKeepAliveOnce, LeaseKeepAliveResponse};
use super::txn::{Compare, CompareOp, Txn, TxnOpResponse, TxnResponse};
use super::types::{KeyRange, KeyValue, ResponseHeader, SortOrder, SortTarget};
use super::unary::Derived;
use super::watch::{EventKind, Watch, WatchItem};
use crate::call::Call;
use crate::cluster::Cluster;
use crate::error::{Error, MalformedResponse, TransportErrorKind, UsageError};
use crate::flow::{Flow, Input, StreamFlow, StreamStep, Transmit};
use crate::operation::{Operation, Replay};

/// The TTL, in seconds, of a session a client grants for a lock it was not
/// given a session for (Go's `concurrency.NewSession` default).
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// What went wrong with a v3 lock or election, beyond ordinary errors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MutexError {
    /// A try-lock found the lock held by someone else; our key was removed.
    Busy {
        /// The lock's prefix (`<name>/`).
        prefix: String,
    },
    /// The deadline passed before the lock was ours; our key was removed.
    Timeout {
        /// The lock's prefix (`<name>/`).
        prefix: String,
    },
    /// Our key vanished while we waited or held it: the session's lease ended
    /// (expired or revoked) or someone deleted the key.
    SessionExpired {
        /// The key that vanished.
        key: String,
    },
    /// The lock or leadership is no longer ours (a guarded release, proclaim
    /// or check found our key gone or re-created).
    NotHeld {
        /// Our key.
        key: String,
    },
}

impl std::fmt::Display for MutexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MutexError::Busy { prefix } => write!(f, "lock {prefix} is held by another session"),
            MutexError::Timeout { prefix } => write!(f, "timed out waiting for lock {prefix}"),
            MutexError::SessionExpired { key } => {
                write!(f, "lock key {key} vanished: the session's lease ended")
            }
            MutexError::NotHeld { key } => write!(f, "{key} no longer holds the lock"),
        }
    }
}

impl std::error::Error for MutexError {}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// How long a held lock lasts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Hold {
    /// The session's lease is kept alive until the lock is released (Go's
    /// Mutex): a holder that dies frees the lock at most one TTL later.
    #[default]
    KeepAlive,
    /// The TTL is a hard maximum (etcetra's `with_lock(ttl=…)`): the lease is
    /// kept alive only while waiting, renewed once at acquisition and never
    /// again, so the lock frees itself about one TTL after it was acquired,
    /// whatever the holder is doing.
    MaxTtl,
}

/// Options of an acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutexOptions {
    timeout: Option<Duration>,
    wait: bool,
    hold: Hold,
    ttl: i64,
}

impl Default for MutexOptions {
    fn default() -> Self {
        MutexOptions {
            timeout: None,
            wait: true,
            hold: Hold::KeepAlive,
            ttl: DEFAULT_SESSION_TTL,
        }
    }
}

impl MutexOptions {
    /// Waits as long as it takes, keeps the lease alive while held, 60 s TTL.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most the whole acquisition may take, from the flow's first poll.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// One look, no waiting: a lock held by someone else ends the attempt
    /// with [`MutexError::Busy`], leaving no key behind.
    pub fn try_lock(mut self) -> Self {
        self.wait = false;
        self
    }

    /// How long the held lock lasts; see [`Hold`].
    pub fn hold(mut self, hold: Hold) -> Self {
        self.hold = hold;
        self
    }

    /// The TTL in seconds of the session lease a client grants when it makes
    /// a session for this lock itself (ignored with a session of your own).
    pub fn ttl(mut self, seconds: i64) -> Self {
        self.ttl = seconds.max(1);
        self
    }

    /// The deadline's length, if any.
    pub fn timeout_duration(&self) -> Option<Duration> {
        self.timeout
    }

    /// False for a try-lock.
    pub fn waits(&self) -> bool {
        self.wait
    }

    /// The hold mode.
    pub fn hold_mode(&self) -> Hold {
        self.hold
    }

    /// The session TTL in seconds.
    pub fn ttl_seconds(&self) -> i64 {
        self.ttl
    }
}

/// The prefix of the lock (or election) `name`: the name and a `/`, as in
/// Go (`NewMutex(s, "n")` uses `n/`).
pub fn lock_prefix(name: impl Into<Vec<u8>>) -> Vec<u8> {
    let mut prefix = name.into();
    prefix.push(b'/');
    prefix
}

/// A session's key under `prefix`: the prefix and the lease ID in lowercase
/// hex (Go's `fmt.Sprintf("%s%x", pfx, lease)`, a minus sign included).
pub fn session_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    key.extend_from_slice(hex.as_bytes());
    key
}

/// The read of a prefix's oldest key: the lock's owner, the election's leader.
pub(crate) fn owner_get(prefix: &[u8]) -> Get {
    Get::new(KeyRange::prefix(prefix.to_vec()))
        .sort(SortTarget::Create, SortOrder::Ascend)
        .limit(1)
}

/// A lock this session holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMutex {
    /// The lock's prefix, `<name>/`.
    pub prefix: Vec<u8>,
    /// Our key, `<name>/<lease hex>`.
    pub key: Vec<u8>,
    /// Our key's `create_revision`: **the fencing token**, growing with every
    /// acquisition of the lock.
    pub create_revision: i64,
    /// The session lease our key is attached to.
    pub lease: i64,
    /// The header of the read that found the lock ours.
    pub header: ResponseHeader,
    /// How long the lock lasts.
    pub hold: Hold,
    /// For [`Hold::MaxTtl`]: when the lease, renewed at acquisition, runs
    /// out as seen from here (the renewal's send time plus its TTL). The
    /// lock frees itself about then, never before.
    pub expires: Option<Instant>,
}

impl HeldMutex {
    /// The fencing token: our key's `create_revision`.
    pub fn fencing_token(&self) -> i64 {
        self.create_revision
    }

    /// A compare that holds only while this lock is still ours: add it to a
    /// [`Txn`] to write only as the holder (Go's `Mutex.IsOwner`).
    pub fn owner_compare(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.create_revision)
    }

    /// The flow that releases the lock: deletes our key only if it is still
    /// this acquisition's. `Ok(false)`: it was already gone.
    pub fn release(&self) -> Call<ReleaseMutex> {
        Call::new(ReleaseMutex::new(self.key.clone(), self.create_revision))
    }

    /// The flow that asks whether we still hold the lock.
    pub fn check(&self) -> Call<CheckOwner> {
        Call::new(CheckOwner::new(
            self.prefix.clone(),
            self.key.clone(),
            self.create_revision,
        ))
    }
}

/// Deletes a lock (or election) key only while its `create_revision` is the
/// given one. Output: `true` if it deleted it, `false` if it was already gone
/// (or re-created since). Safe to replay: a second attempt finds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseMutex {
    key: Vec<u8>,
    create_revision: i64,
}

impl ReleaseMutex {
    /// Deletes `key` if its `create_revision` is `create_revision`.
    pub fn new(key: impl Into<Vec<u8>>, create_revision: i64) -> Self {
        ReleaseMutex {
            key: key.into(),
            create_revision,
        }
    }

    fn txn(&self) -> Txn {
        Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                self.create_revision,
            )])
            .and_then([Delete::new(self.key.clone()).into()])
    }
}

impl Derived for ReleaseMutex {
    type Base = Txn;
    type Output = bool;

    fn base(&self) -> Txn {
        self.txn()
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn finish(&self, response: TxnResponse) -> Result<bool, Error> {
        Ok(response.succeeded
            && response
                .responses
                .iter()
                .any(|r| matches!(r, TxnOpResponse::Delete(d) if d.deleted > 0)))
    }
}

/// Whether a key still holds its lock: it is the prefix's oldest key, with
/// the given `create_revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOwner {
    prefix: Vec<u8>,
    key: Vec<u8>,
    create_revision: i64,
}

impl CheckOwner {
    /// Checks that `key`, created at `create_revision`, is `prefix`'s oldest key.
    pub fn new(prefix: Vec<u8>, key: Vec<u8>, create_revision: i64) -> Self {
        CheckOwner {
            prefix,
            key,
            create_revision,
        }
    }
}

impl CheckOwner {
    /// True if the owner read shows our key, at our create revision.
    fn owns(&self, owner: &super::RangeResponse) -> bool {
        owner
            .first()
            .is_some_and(|kv| kv.key == self.key && kv.create_revision == self.create_revision)
    }
}

impl Derived for CheckOwner {
    type Base = Get;
    type Output = bool;

    fn base(&self) -> Get {
        owner_get(&self.prefix)
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn finish(&self, response: super::RangeResponse) -> Result<bool, Error> {
        Ok(self.owns(&response))
    }
}

/// The recipe's first transaction (see the [module docs](self)): create our
/// key if absent, read it otherwise, and read the owner. Unlike other writes
/// it is safe to replay: a replay after a lost answer finds the key the first
/// attempt created and adopts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim(Txn);

impl Claim {
    fn new(prefix: &[u8], key: &[u8], value: &[u8], lease: i64) -> Self {
        Claim(
            Txn::new()
                .when([Compare::create_revision(key.to_vec(), CompareOp::Equal, 0)])
                .and_then([
                    Put::new(key.to_vec(), value.to_vec()).lease(lease).into(),
                    owner_get(prefix).into(),
                ])
                .or_else([Get::new(key.to_vec()).into(), owner_get(prefix).into()]),
        )
    }
}

impl Derived for Claim {
    type Base = Txn;
    type Output = TxnResponse;

    fn base(&self) -> Txn {
        self.0.clone()
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn finish(&self, response: TxnResponse) -> Result<TxnResponse, Error> {
        Ok(response)
    }
}

/// What [`Claim`] found.
struct Claimed {
    header: ResponseHeader,
    /// Our key's create revision.
    revision: i64,
    /// Our key's value when it already existed (`None`: just created).
    existing_value: Option<Vec<u8>>,
    owner: Option<KeyValue>,
}

fn claimed(response: TxnResponse) -> Result<Claimed, Error> {
    let malformed = |reason: &str| -> Error { MalformedResponse::new(200, reason, b"").into() };
    let mut ranges = response.responses.into_iter().filter_map(|r| match r {
        TxnOpResponse::Get(range) => Some(range),
        _ => None,
    });
    if response.succeeded {
        let owner = ranges
            .next()
            .ok_or_else(|| malformed("lock transaction without the owner read"))?;
        Ok(Claimed {
            header: response.header,
            revision: response.header.revision,
            existing_value: None,
            owner: owner.kvs.into_iter().next(),
        })
    } else {
        let mine = ranges
            .next()
            .and_then(|r| r.kvs.into_iter().next())
            .ok_or_else(|| malformed("lock transaction: our key neither created nor read"))?;
        let owner = ranges
            .next()
            .ok_or_else(|| malformed("lock transaction without the owner read"))?;
        Ok(Claimed {
            header: response.header,
            revision: mine.create_revision,
            existing_value: Some(mine.value),
            owner: owner.kvs.into_iter().next(),
        })
    }
}

/// Puts a new value on a key only while its `create_revision` is the given
/// one (an election's proclaim). Fails with [`MutexError::NotHeld`] otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardedPut {
    key: Vec<u8>,
    create_revision: i64,
    value: Vec<u8>,
    lease: i64,
}

impl GuardedPut {
    /// Sets `key` (attached to `lease`) to `value` if it was created at `create_revision`.
    pub fn new(key: Vec<u8>, create_revision: i64, value: Vec<u8>, lease: i64) -> Self {
        GuardedPut {
            key,
            create_revision,
            value,
            lease,
        }
    }

    fn txn(&self) -> Txn {
        Txn::new()
            .when([Compare::create_revision(
                self.key.clone(),
                CompareOp::Equal,
                self.create_revision,
            )])
            .and_then([Put::new(self.key.clone(), self.value.clone())
                .lease(self.lease)
                .into()])
    }
}

impl Derived for GuardedPut {
    type Base = Txn;
    type Output = ResponseHeader;

    fn base(&self) -> Txn {
        self.txn()
    }

    fn replay(&self) -> Replay {
        // Writing the same value twice under the same guard is harmless.
        Replay::Safe
    }

    fn finish(&self, response: TxnResponse) -> Result<ResponseHeader, Error> {
        if response.succeeded {
            Ok(response.header)
        } else {
            Err(MutexError::NotHeld {
                key: lossy(&self.key),
            }
            .into())
        }
    }
}

/// How the flow removes its key when it ends without the lock.
#[derive(Debug)]
pub(crate) enum Cleanup {
    /// Our key, known by its create revision.
    Guarded(Call<ReleaseMutex>),
    /// The claim's outcome is unknown: delete the key whatever it holds.
    Blind(Call<Delete>),
}

#[derive(Debug)]
enum Stage {
    Start,
    Claiming(Call<Claim>),
    /// An election found its key holding another value: set ours.
    Proclaiming(Call<GuardedPut>),
    /// The newest key created before ours.
    Predecessor(Call<Get>),
    /// Waiting for that key's delete.
    Watching(Box<Watch>),
    /// No older key left: is ours still there?
    Verifying(Call<Get>),
    /// [`Hold::MaxTtl`]: the renewal the TTL counts from.
    Renewing(Call<LeaseKeepAliveOnce>, Instant),
    Emit(Option<HeldMutex>),
    CleaningUp(Cleanup, Option<Error>),
    Done(Option<Result<(), Error>>),
}

/// One acquisition of a lock (or, through [`Campaign`](super::election::Campaign),
/// of an election): a [`StreamFlow`] that emits the [`HeldMutex`] once, then
/// ends. See the [module docs](self) for the recipe.
///
/// Errors: [`MutexError::Busy`] (try-lock), [`MutexError::Timeout`] (the
/// deadline passed: whatever step it cut short), [`MutexError::SessionExpired`]
/// (our key vanished), or what a request failed with; in every case but an
/// expired session the flow deletes its own key before it ends.
///
/// # States
///
/// ```text
///  Start ─▶ Claiming ─(ours, value differs)─▶ Proclaiming ─┐
///              │ (txn: create our key or read it)          │
///              ├──(our key is the oldest)──────────────────┼──▶ Renewing ──┐ (Hold::MaxTtl)
///              │                                           │               ▼
///              └──(an older key exists)──▶ Predecessor ◀───┘ ...........▶ Emit ─▶ Done
///                                           │    ▲                        ▲
///                          (newest older key)    │ (it was deleted)       │
///                                           ▼    │                        │
///                                         Watching ──(no older key)──▶ Verifying
///
///  any waiting stage ──(deadline, try-lock busy, failure)──▶ CleaningUp ─▶ Done(error)
///  our key gone ──▶ Done(SessionExpired)             (deletes our key)
/// ```
#[derive(Debug)]
pub struct AcquireMutex {
    prefix: Vec<u8>,
    key: Vec<u8>,
    lease: i64,
    value: Vec<u8>,
    /// An election: an existing key holding another value gets ours.
    proclaim_existing: bool,
    options: MutexOptions,
    deadline: Option<Instant>,
    /// Our key's create revision, once known.
    revision: Option<i64>,
    /// The claim was sent: our key may exist even without an answer.
    claim_sent: bool,
    /// The claim found our key the oldest.
    owner_is_us: bool,
    header: ResponseHeader,
    stage: Stage,
}

impl AcquireMutex {
    /// Acquires the lock `name` (keys under `<name>/`) for the session `lease`.
    pub fn new(name: impl Into<Vec<u8>>, lease: i64, options: MutexOptions) -> Self {
        Self::with_prefix(lock_prefix(name), lease, Vec::new(), false, options)
    }

    /// An acquisition under `prefix` whose key holds `value`; an existing key
    /// holding another value is updated if `proclaim_existing`.
    pub(crate) fn with_prefix(
        prefix: Vec<u8>,
        lease: i64,
        value: Vec<u8>,
        proclaim_existing: bool,
        options: MutexOptions,
    ) -> Self {
        AcquireMutex {
            key: session_key(&prefix, lease),
            prefix,
            lease,
            value,
            proclaim_existing,
            options,
            deadline: None,
            revision: None,
            claim_sent: false,
            owner_is_us: false,
            header: ResponseHeader::default(),
            stage: Stage::Start,
        }
    }

    /// The lock's prefix, `<name>/`.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Our key, `<name>/<lease hex>`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The session lease.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// The options.
    pub fn options(&self) -> &MutexOptions {
        &self.options
    }

    /// The value our key holds.
    pub(crate) fn value(&self) -> &[u8] {
        &self.value
    }

    fn past_deadline(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    fn timeout_error(&self) -> Error {
        MutexError::Timeout {
            prefix: lossy(&self.prefix),
        }
        .into()
    }

    /// `error`, or [`MutexError::Timeout`] once the deadline has passed
    /// (whatever step the deadline cut short).
    fn or_timed_out(&self, error: Error, now: Instant) -> Error {
        if self.past_deadline(now) {
            self.timeout_error()
        } else {
            error
        }
    }

    fn session_expired(&mut self) -> Stage {
        self.revision = None;
        Stage::Done(Some(Err(MutexError::SessionExpired {
            key: lossy(&self.key),
        }
        .into())))
    }

    /// Ends with `error`, deleting our key first if it may exist. The
    /// delete has no deadline of its own but the request timeout: it must
    /// run even when the acquisition's deadline is what ended it.
    fn end(&mut self, error: Error) -> Stage {
        match self.revision.take() {
            Some(revision) => Stage::CleaningUp(
                Cleanup::Guarded(Call::new(ReleaseMutex::new(self.key.clone(), revision))),
                Some(error),
            ),
            None if self.claim_sent => Stage::CleaningUp(
                Cleanup::Blind(Call::new(Delete::new(self.key.clone()))),
                Some(error),
            ),
            None => Stage::Done(Some(Err(error))),
        }
    }

    fn held(&self, expires: Option<Instant>) -> Option<HeldMutex> {
        Some(HeldMutex {
            prefix: self.prefix.clone(),
            key: self.key.clone(),
            create_revision: self.revision?,
            lease: self.lease,
            header: self.header,
            hold: self.options.hold,
            expires,
        })
    }

    /// The lock is ours: renew the lease once for a hard-maximum hold, else emit.
    fn acquired(&mut self, now: Instant) -> Stage {
        if self.options.hold == Hold::MaxTtl {
            let call = Call::new(LeaseKeepAliveOnce(self.lease)).with_deadline(self.deadline);
            return Stage::Renewing(call, now);
        }
        Stage::Emit(self.held(None))
    }

    fn call<O: Operation>(&self, op: O) -> Call<O> {
        Call::new(op).with_deadline(self.deadline)
    }

    fn predecessor(&self) -> Stage {
        let revision = self.revision.unwrap_or(0);
        if revision <= 1 {
            // Nothing can be older than the first revision (and a
            // `max_create_revision` of 0 would mean no bound at all).
            return Stage::Verifying(self.call(Get::new(self.key.clone())));
        }
        let get = Get::new(KeyRange::prefix(self.prefix.clone()))
            .sort(SortTarget::Create, SortOrder::Descend)
            .max_create_revision(revision - 1)
            .limit(1);
        Stage::Predecessor(self.call(get))
    }

    fn after_claim(&mut self, result: Result<TxnResponse, Error>, now: Instant) -> Stage {
        let claimed = match result.and_then(claimed) {
            Ok(claimed) => claimed,
            Err(e) => {
                let e = self.or_timed_out(e, now);
                return self.end(e);
            }
        };
        self.revision = Some(claimed.revision);
        self.header = claimed.header;
        let ours = claimed
            .owner
            .as_ref()
            .is_none_or(|owner| owner.create_revision == claimed.revision);
        self.owner_is_us = ours;
        if self.proclaim_existing {
            if let Some(existing) = &claimed.existing_value {
                if *existing != self.value {
                    let put = GuardedPut::new(
                        self.key.clone(),
                        claimed.revision,
                        self.value.clone(),
                        self.lease,
                    );
                    return Stage::Proclaiming(self.call(put));
                }
            }
        }
        self.after_owner(ours, now)
    }

    /// The claim is done: held if we are the owner, else busy or wait.
    fn after_owner(&mut self, ours: bool, now: Instant) -> Stage {
        if ours {
            return self.acquired(now);
        }
        if !self.options.wait {
            let busy = MutexError::Busy {
                prefix: lossy(&self.prefix),
            };
            return self.end(busy.into());
        }
        self.predecessor()
    }

    fn after_predecessor(
        &mut self,
        result: Result<super::RangeResponse, Error>,
        now: Instant,
    ) -> Stage {
        match result {
            Ok(range) => match range.kvs.into_iter().next() {
                Some(older) => {
                    let watch = Watch::new(older.key)
                        .start_revision(range.header.revision)
                        .no_put();
                    Stage::Watching(Box::new(watch))
                }
                None => Stage::Verifying(self.call(Get::new(self.key.clone()))),
            },
            Err(e) => {
                let e = self.or_timed_out(e, now);
                self.end(e)
            }
        }
    }

    fn after_verify(&mut self, result: Result<super::RangeResponse, Error>, now: Instant) -> Stage {
        match result {
            Ok(range) => {
                let ours = range
                    .first()
                    .is_some_and(|kv| Some(kv.create_revision) == self.revision);
                if !ours {
                    // Gone (or re-created by a later acquisition): not ours to delete.
                    return self.session_expired();
                }
                self.header = range.header;
                self.acquired(now)
            }
            Err(e) => {
                let e = self.or_timed_out(e, now);
                self.end(e)
            }
        }
    }

    fn after_renewal(
        &mut self,
        result: Result<LeaseKeepAliveResponse, Error>,
        sent: Instant,
        now: Instant,
    ) -> Stage {
        match result {
            Ok(renewed) => {
                let ttl = Duration::from_secs(renewed.ttl.max(0) as u64);
                Stage::Emit(self.held(Some(sent + ttl)))
            }
            Err(e)
                if e.as_v3()
                    .is_some_and(|v| v.kind == V3ErrorKind::LeaseNotFound) =>
            {
                // The lease is gone, and our key with it.
                self.session_expired()
            }
            Err(e) => {
                let e = self.or_timed_out(e, now);
                self.end(e)
            }
        }
    }

    /// Caps a request's timeout at the deadline.
    fn capped(&self, mut transmit: Transmit, now: Instant) -> Transmit {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(now);
            transmit.timeout = Some(transmit.timeout.map_or(left, |t| t.min(left)));
        }
        transmit
    }

    /// Drives the watch for our predecessor's delete: the next stage, or a
    /// step to pass on (large like every step: it is returned at once).
    #[allow(clippy::result_large_err)]
    fn poll_watch(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
    ) -> Result<Stage, StreamStep<HeldMutex>> {
        let Stage::Watching(watch) = &mut self.stage else {
            return Ok(Stage::Done(Some(Err(UsageError::FlowOutOfOrder {
                expected: "a watch stage",
            }
            .into()))));
        };
        loop {
            match watch.poll(cluster, now) {
                StreamStep::Emit(WatchItem::Events(batch)) => {
                    if batch.events.iter().any(|e| e.kind == EventKind::Delete) {
                        return Ok(self.predecessor());
                    }
                }
                // History was compacted past our position: look again.
                StreamStep::Emit(WatchItem::Compacted { .. }) | StreamStep::End(Ok(())) => {
                    return Ok(self.predecessor())
                }
                StreamStep::Emit(_) => {}
                StreamStep::End(Err(e)) => {
                    let e = self.or_timed_out(e, now);
                    return Ok(self.end(e));
                }
                StreamStep::Read(until) => {
                    let until = match (until, self.deadline) {
                        (Some(u), Some(d)) => Some(u.min(d)),
                        (u, d) => u.or(d),
                    };
                    return Err(StreamStep::Read(until));
                }
                // Nothing answers: the session's keep-alive notices that;
                // the wait itself goes on (or ends by its deadline).
                StreamStep::Warn(_) => {}
                StreamStep::Open(transmit) => {
                    return Err(StreamStep::Open(self.capped(transmit, now)))
                }
                StreamStep::Transmit(transmit) => {
                    return Err(StreamStep::Transmit(self.capped(transmit, now)))
                }
                StreamStep::Send(message) => return Err(StreamStep::Send(message)),
                StreamStep::Sleep(until) => {
                    let until = self.deadline.map_or(until, |d| until.min(d));
                    return Err(StreamStep::Sleep(until));
                }
            }
        }
    }
}

impl StreamFlow for AcquireMutex {
    type Item = HeldMutex;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> StreamStep<HeldMutex> {
        loop {
            // The deadline ends any wait at once, whatever is in progress.
            let waiting = matches!(
                self.stage,
                Stage::Watching(_) | Stage::Predecessor(_) | Stage::Verifying(_)
            );
            if waiting && self.past_deadline(now) {
                let error = self.timeout_error();
                self.stage = self.end(error);
            }
            let next = match &mut self.stage {
                Stage::Start => {
                    self.deadline = self.options.timeout.map(|t| now + t);
                    self.claim_sent = true;
                    let claim = Claim::new(&self.prefix, &self.key, &self.value, self.lease);
                    Stage::Claiming(self.call(claim))
                }
                Stage::Claiming(call) => match StreamStep::from_flow(call.poll(cluster, now)) {
                    Ok(result) => self.after_claim(result, now),
                    Err(step) => return step,
                },
                Stage::Proclaiming(call) => match StreamStep::from_flow(call.poll(cluster, now)) {
                    // Our value is set: carry on as if just claimed.
                    Ok(Ok(_)) => self.after_owner(self.owner_is_us, now),
                    Ok(Err(Error::Mutex(MutexError::NotHeld { .. }))) => self.session_expired(),
                    Ok(Err(e)) => {
                        let e = self.or_timed_out(e, now);
                        self.end(e)
                    }
                    Err(step) => return step,
                },
                Stage::Predecessor(call) => match StreamStep::from_flow(call.poll(cluster, now)) {
                    Ok(result) => self.after_predecessor(result, now),
                    Err(step) => return step,
                },
                Stage::Watching(_) => match self.poll_watch(cluster, now) {
                    Ok(stage) => stage,
                    Err(step) => return step,
                },
                Stage::Verifying(call) => match StreamStep::from_flow(call.poll(cluster, now)) {
                    Ok(result) => self.after_verify(result, now),
                    Err(step) => return step,
                },
                Stage::Renewing(call, sent) => {
                    let sent = *sent;
                    match StreamStep::from_flow(call.poll(cluster, now)) {
                        Ok(result) => self.after_renewal(result, sent, now),
                        Err(step) => return step,
                    }
                }
                Stage::Emit(held) => match held.take() {
                    Some(held) => {
                        self.stage = Stage::Done(Some(Ok(())));
                        return StreamStep::Emit(held);
                    }
                    None => Stage::Done(Some(Err(UsageError::FlowOutOfOrder {
                        expected: "a held lock to emit",
                    }
                    .into()))),
                },
                Stage::CleaningUp(cleanup, error) => {
                    let step = match cleanup {
                        Cleanup::Guarded(call) => {
                            StreamStep::from_flow(call.poll(cluster, now)).map(|r| r.map(drop))
                        }
                        Cleanup::Blind(call) => {
                            StreamStep::from_flow(call.poll(cluster, now)).map(|r| r.map(drop))
                        }
                    };
                    match step {
                        // The delete's own outcome changes nothing: the key
                        // is gone, or goes with the session's lease.
                        Ok(_) => Stage::Done(Some(Err(error.take().unwrap_or_else(|| {
                            UsageError::FlowOutOfOrder {
                                expected: "an error to end with",
                            }
                            .into()
                        })))),
                        Err(step) => return step,
                    }
                }
                Stage::Done(result) => return crate::flow::stream_finished(result),
            };
            self.stage = next;
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match (input, &mut self.stage) {
            // Left as if dropped: a key claimed goes with the session's lease.
            (Input::Stop, _) => self.stage = Stage::Done(Some(crate::flow::stopped())),
            (input, Stage::Claiming(call)) => call.handle(cluster, now, input),
            (input, Stage::Proclaiming(call)) => call.handle(cluster, now, input),
            (input, Stage::Predecessor(call)) => call.handle(cluster, now, input),
            // The watch's open request timed out at our deadline: nothing is
            // wrong with the endpoint, and the next poll ends the wait.
            (Input::Failure(failure), Stage::Watching(_))
                if failure.kind == TransportErrorKind::Timeout
                    && self.deadline.is_some_and(|d| now >= d) => {}
            (input, Stage::Watching(watch)) => watch.handle(cluster, now, input),
            (input, Stage::Verifying(call)) => call.handle(cluster, now, input),
            (input, Stage::Renewing(call, _)) => call.handle(cluster, now, input),
            (input, Stage::CleaningUp(Cleanup::Guarded(call), _)) => {
                call.handle(cluster, now, input)
            }
            (input, Stage::CleaningUp(Cleanup::Blind(call), _)) => call.handle(cluster, now, input),
            (_, Stage::Start | Stage::Emit(_) | Stage::Done(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testkit::v3::Store;
    use crate::testkit::world::{Driver, Fault, Unary, World};

    const fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn prefix() -> Vec<u8> {
        b"n/".to_vec()
    }

    fn acquire(lease: i64, options: MutexOptions) -> Driver<AcquireMutex> {
        Driver::new(AcquireMutex::new("n", lease, options))
    }

    /// Acquires uncontended and returns the lock.
    fn hold(sim: &mut World, lease: i64) -> HeldMutex {
        let mut a = acquire(lease, MutexOptions::new());
        sim.settle(&mut [&mut a]);
        assert!(matches!(a.result, Some(Ok(()))), "{:?}", a.result);
        a.items.pop().unwrap()
    }

    fn release(sim: &mut World, held: &HeldMutex) -> bool {
        let mut r = Driver::new(Unary::new(held.release()));
        sim.settle(&mut [&mut r]);
        r.items.pop().expect("released")
    }

    fn keys(store: &Store) -> Vec<Vec<u8>> {
        store
            .queue(&prefix())
            .into_iter()
            .map(|kv| kv.key)
            .collect()
    }

    fn mutex_error(error: Option<&Error>) -> Option<&MutexError> {
        match error {
            Some(Error::Mutex(e)) => Some(e),
            _ => None,
        }
    }

    #[test]
    fn keys_are_go_s() {
        assert_eq!(lock_prefix("a/b"), b"a/b/");
        assert_eq!(
            session_key(b"n/", 0x694d77c8e0a3c41f),
            b"n/694d77c8e0a3c41f"
        );
        assert_eq!(session_key(b"n/", -10), b"n/-a");
    }

    #[test]
    fn uncontended_acquire_is_one_transaction() {
        let mut sim = World::new();
        let lease = sim.session(10);
        let mut a = acquire(lease, MutexOptions::new());
        sim.settle(&mut [&mut a]);
        assert!(matches!(a.result, Some(Ok(()))), "{:?}", a.result);
        assert_eq!(a.paths(), ["/v3/kv/txn"]);
        let txn = &a.sent[0].json();
        assert_eq!(txn["compare"][0]["target"], "CREATE");
        assert_eq!(txn["compare"][0]["create_revision"], "0");
        let held = &a.items[0];
        assert_eq!(held.key, session_key(b"n/", lease));
        assert_eq!(held.lease, lease);
        assert_eq!(held.hold, Hold::KeepAlive);
        assert_eq!(held.expires, None);
        let kv = sim.store.kvs.get(&held.key).unwrap();
        assert_eq!(
            (kv.create_revision, kv.lease, kv.value.len()),
            (held.create_revision, lease, 0)
        );
        assert_eq!(held.fencing_token(), kv.create_revision);
        assert_eq!(held.header.revision, kv.create_revision);
        // Released, guarded by the create revision; a second release finds nothing.
        assert!(release(&mut sim, held));
        assert!(keys(&sim.store).is_empty());
        assert!(!release(&mut sim, held));
    }

    #[test]
    fn a_waiter_watches_its_predecessor_and_takes_over_on_its_delete() {
        let mut sim = World::new();
        let (la, lb) = (sim.session(10), sim.session(10));
        let first = hold(&mut sim, la);
        let mut b = acquire(lb, MutexOptions::new());
        sim.settle(&mut [&mut b]);
        assert_eq!(b.paths(), ["/v3/kv/txn", "/v3/kv/range", "/v3/watch"]);
        assert!(b.watching());
        let mine = sim.store.kvs[&session_key(b"n/", lb)].create_revision;
        let range = &b.sent[1].json();
        assert_eq!(range["max_create_revision"], (mine - 1).to_string());
        assert_eq!(
            (range["sort_order"].as_str(), range["sort_target"].as_str()),
            (Some("DESCEND"), Some("CREATE"))
        );
        assert_eq!(range["limit"], "1");
        let watch = &b.sent[2].json()["create_request"];
        assert_eq!(watch["filters"][0], "NOPUT");
        assert_eq!(watch["start_revision"], sim.store.revision.to_string());
        assert_eq!(
            b.sent[2].timeout,
            Some(crate::DEFAULT_REQUEST_TIMEOUT),
            "no deadline: only the watch's head is bounded, by the request timeout"
        );
        // Unrelated writes under the prefix do not wake it up for good.
        sim.store.put(b"n/zzz", b"", 0);
        sim.store.put(b"n/zzz", b"again", 0);
        sim.run_for(secs(30), &mut [&mut b]);
        assert!(b.items.is_empty() && !b.done());
        sim.store.delete(b"n/zzz");
        assert!(release(&mut sim, &first));
        sim.settle(&mut [&mut b]);
        assert!(matches!(b.result, Some(Ok(()))), "{:?}", b.result);
        assert_eq!(
            b.paths(),
            [
                "/v3/kv/txn",
                "/v3/kv/range",
                "/v3/watch",
                // The quiet watch re-opens after each idle timeout (10 s).
                "/v3/watch",
                "/v3/watch",
                "/v3/watch",
                "/v3/kv/range",
                "/v3/kv/range"
            ]
        );
        let second = &b.items[0];
        assert_eq!(second.create_revision, mine);
        assert!(second.fencing_token() > first.fencing_token());
        assert_eq!(keys(&sim.store), [session_key(b"n/", lb)]);
    }

    #[test]
    fn each_waiter_watches_the_newest_older_key_and_re_reads_when_it_goes() {
        let mut sim = World::new();
        let (la, lb, lc) = (sim.session(10), sim.session(5), sim.session(10));
        let first = hold(&mut sim, la);
        let mut b = acquire(lb, MutexOptions::new());
        let mut c = acquire(lc, MutexOptions::new());
        sim.settle(&mut [&mut b, &mut c]);
        let watched = |d: &Driver<AcquireMutex>| {
            let w = d
                .sent
                .iter()
                .rev()
                .find(|s| s.path() == "/v3/watch")
                .unwrap();
            base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                w.json()["create_request"]["key"].as_str().unwrap(),
            )
            .unwrap()
        };
        assert_eq!(watched(&b), session_key(b"n/", la));
        assert_eq!(watched(&c), session_key(b"n/", lb));
        // B's session ends while it waits: C now waits for A; B does not know yet.
        sim.orphan(lb);
        sim.run_for(secs(6), &mut [&mut b, &mut c]);
        assert_eq!(watched(&c), session_key(b"n/", la));
        assert!(!b.done() && !c.done());
        assert!(release(&mut sim, &first));
        sim.settle(&mut [&mut b, &mut c]);
        assert!(matches!(c.result, Some(Ok(()))), "{:?}", c.result);
        assert!(
            matches!(
                mutex_error(b.error()),
                Some(MutexError::SessionExpired { .. })
            ),
            "{:?}",
            b.result
        );
        assert!(b.items.is_empty());
        assert_eq!(keys(&sim.store), [session_key(b"n/", lc)]);
    }

    #[test]
    fn the_deadline_ends_the_wait_and_removes_the_waiter_key() {
        let mut sim = World::new();
        let (la, lb) = (sim.session(10), sim.session(10));
        hold(&mut sim, la);
        let mut b = acquire(lb, MutexOptions::new().timeout(secs(2)));
        sim.run_for(secs(10), &mut [&mut b]);
        assert!(
            matches!(mutex_error(b.error()), Some(MutexError::Timeout { prefix }) if prefix == "n/"),
            "{:?}",
            b.result
        );
        assert!(b.items.is_empty());
        let watch = b.sent.iter().find(|s| s.path() == "/v3/watch").unwrap();
        assert!(watch.timeout.is_some_and(|t| t <= secs(2)), "{watch:?}");
        let cleanup = b.sent.last().unwrap();
        assert_eq!(cleanup.path(), "/v3/kv/txn");
        assert_eq!(cleanup.at, secs(2), "cleaned up at the deadline");
        assert_eq!(cleanup.json()["compare"][0]["target"], "CREATE");
        assert!(cleanup.json()["success"][0]
            .get("request_delete_range")
            .is_some());
        // Every request before it respected the deadline.
        for sent in &b.sent[..b.sent.len() - 1] {
            let left = secs(2).saturating_sub(sent.at);
            assert!(sent.timeout.is_some_and(|t| t <= left), "{sent:?}");
        }
        assert_eq!(keys(&sim.store), [session_key(b"n/", la)]);
    }

    #[test]
    fn a_try_lock_on_a_held_lock_is_busy_and_leaves_no_key() {
        let mut sim = World::new();
        let (la, lb) = (sim.session(10), sim.session(10));
        hold(&mut sim, la);
        let mut b = acquire(lb, MutexOptions::new().try_lock());
        sim.settle(&mut [&mut b]);
        assert!(
            matches!(mutex_error(b.error()), Some(MutexError::Busy { .. })),
            "{:?}",
            b.result
        );
        assert_eq!(b.paths(), ["/v3/kv/txn", "/v3/kv/txn"]);
        assert_eq!(keys(&sim.store), [session_key(b"n/", la)]);
        assert_eq!(sim.elapsed(), Duration::ZERO, "no waiting at all");
        // A try-lock on a free lock simply takes it.
        let mut c = acquire(lb, MutexOptions::new().try_lock());
        sim.store.revoke(la);
        sim.settle(&mut [&mut c]);
        assert!(matches!(c.result, Some(Ok(()))));
    }

    #[test]
    fn a_session_that_expired_while_waiting_is_reported() {
        let mut sim = World::new();
        let (la, lb) = (sim.session(10), sim.session(3));
        let first = hold(&mut sim, la);
        let mut b = acquire(lb, MutexOptions::new());
        sim.settle(&mut [&mut b]);
        sim.orphan(lb);
        sim.run_for(secs(10), &mut [&mut b]);
        assert!(!sim.store.leases.contains_key(&lb));
        release(&mut sim, &first);
        sim.settle(&mut [&mut b]);
        match mutex_error(b.error()) {
            Some(MutexError::SessionExpired { key }) => {
                assert_eq!(key.as_bytes(), session_key(b"n/", lb))
            }
            other => panic!("{other:?} {:?}", b.result),
        }
        // Its key is gone: nothing to clean up, no request after the check.
        assert_eq!(b.sent.last().unwrap().path(), "/v3/kv/range");
        assert!(keys(&sim.store).is_empty());
    }

    #[test]
    fn a_session_queued_already_adopts_its_key() {
        let mut sim = World::new();
        let la = sim.session(10);
        let first = hold(&mut sim, la);
        let again = hold(&mut sim, la);
        assert_eq!(again.create_revision, first.create_revision);
        assert_eq!(keys(&sim.store).len(), 1);
    }

    #[test]
    fn a_lost_claim_answer_is_adopted_by_the_replay() {
        let mut sim = World::new();
        let la = sim.session(10);
        let mut a = acquire(la, MutexOptions::new());
        let mut lost = 0;
        a.faults = Box::new(move |_| {
            lost += 1;
            if lost == 1 {
                Fault::LoseAnswer
            } else {
                Fault::None
            }
        });
        sim.run_for(secs(1), &mut [&mut a]);
        assert!(matches!(a.result, Some(Ok(()))), "{:?}", a.result);
        assert_eq!(a.paths(), ["/v3/kv/txn", "/v3/kv/txn"]);
        let kv = &sim.store.kvs[&session_key(b"n/", la)];
        assert_eq!(a.items[0].create_revision, kv.create_revision);
        assert_eq!(kv.version, 1, "created once");
    }

    #[test]
    fn a_failed_claim_deletes_the_key_it_may_have_made() {
        let mut sim = World::new();
        let la = sim.session(10);
        // Every answer lost: the claim gives up when its next retry would
        // not fit before the deadline, then the blind cleanup delete goes out.
        let mut a = acquire(la, MutexOptions::new().timeout(secs(1)));
        a.faults = Box::new(|_| Fault::LoseAnswer);
        sim.run_for(secs(30), &mut [&mut a]);
        assert!(
            matches!(a.error(), Some(Error::Transport(_))),
            "{:?}",
            a.result
        );
        assert!(a.sent.last().unwrap().at < secs(1));
        assert_eq!(a.sent.last().unwrap().path(), "/v3/kv/deleterange");
        assert!(keys(&sim.store).is_empty());
    }

    #[test]
    fn a_hard_maximum_hold_renews_the_lease_at_acquisition() {
        let mut sim = World::new();
        let (la, lb) = (sim.session(10), sim.session(7));
        let first = hold(&mut sim, la);
        let mut b = acquire(lb, MutexOptions::new().hold(Hold::MaxTtl));
        sim.run_for(secs(4), &mut [&mut b]);
        release(&mut sim, &first);
        sim.settle(&mut [&mut b]);
        assert!(matches!(b.result, Some(Ok(()))), "{:?}", b.result);
        assert_eq!(b.sent.last().unwrap().path(), "/v3/lease/keepalive");
        let held = &b.items[0];
        assert_eq!(held.hold, Hold::MaxTtl);
        assert_eq!(held.expires, Some(sim.t0 + secs(4) + secs(7)));
        // Nobody keeps it alive any more: the lock frees itself one TTL later.
        sim.orphan(lb);
        sim.run_for(Duration::from_millis(6900), &mut []);
        assert_eq!(keys(&sim.store).len(), 1);
        sim.run_for(Duration::from_millis(200), &mut []);
        assert!(keys(&sim.store).is_empty());
    }

    #[test]
    fn the_owner_check_and_compare_follow_the_key() {
        let mut sim = World::new();
        let la = sim.session(10);
        let held = hold(&mut sim, la);
        let mut check = Driver::new(Unary::new(held.check()));
        sim.settle(&mut [&mut check]);
        assert_eq!(check.items, [true]);
        let compare = held.owner_compare();
        assert_eq!(
            compare,
            Compare::create_revision(held.key.clone(), CompareOp::Equal, held.create_revision)
        );
        sim.store.revoke(la);
        let mut check = Driver::new(Unary::new(held.check()));
        sim.settle(&mut [&mut check]);
        assert_eq!(check.items, [false]);
    }

    #[test]
    fn mutual_exclusion_under_random_contention_expiries_and_lost_answers() {
        let cases: u64 = std::env::var("LOCK_SIM_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300);
        let mut total = [0; 5];
        for seed in 0..cases {
            let tape = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes();
            for (sum, n) in total
                .iter_mut()
                .zip(crate::testkit::v3_scenarios::lock_contention(&tape))
            {
                *sum += n;
            }
        }
        // Every outcome happens: the runs exercise the whole recipe.
        assert!(total.iter().all(|n| *n > 0), "{total:?}");
    }
}
