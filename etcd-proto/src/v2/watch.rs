//! Watching v2 keys: long polls whose index the machine tracks itself.
//!
//! # Theory of operation
//!
//! A v2 watch is a long poll, `GET /v2/keys/<key>?wait=true&waitIndex=N`,
//! answered with the first event at index `N` or later (from etcd's history
//! of the last 1000 events, or when it happens).
//!
//! [`Watch`] is the state of a continuous watch: the key, and the index to
//! wait from next. [`Watch::next_event`] turns it into a [`NextEvent`] flow
//! that yields exactly one [`WatchEvent`] and hands the state back, ready for
//! the next one, **even on error**: a caller can always go on where it left.
//!
//! - After an event, the next wait starts at its `modifiedIndex + 1`: no event
//!   is seen twice or skipped.
//! - A poll that ends without an event (an empty body) is re-issued from the
//!   same index.
//! - **Liveness.** A poll lasts at most the poll interval (by default the
//!   cluster's [`idle_timeout`](crate::Cluster::set_idle_timeout), 10 s).
//!   When it runs out with no event — an idle key, or a member gone silent,
//!   which look the same from here — the watch checks the member with a
//!   quorum read of the key, an ordinary call: a frozen, partitioned or
//!   blackholed member fails it within one attempt, counts as failed, and
//!   the read fails over, so the next poll goes to a member that answered.
//!   Then the poll is re-issued from the same index: nothing is lost, and a
//!   silent member is left within the poll interval plus one attempt.
//! - When the index has left etcd's history (errorCode 401), the machine never
//!   loops and never skips silently: it re-reads the key or directory and
//!   resumes from that read's `X-Etcd-Index + 1`, yielding
//!   [`WatchEvent::Resynced`] with the fresh state, so the caller knows that
//!   the events in between were compacted away.
//! - Transport failures fail over like any call; when every endpoint failed
//!   the error is yielded, and the next call resumes from the same index.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error::{V2Error, V2ErrorCode};
use super::form::Form;
use super::keys::{keys_path, Read, ReadOptions};
use super::response::{parse_keys_response, KeysResponse};
use crate::call::Call;
use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind, UsageError};
use crate::flow::{Flow, Input, Step};
use crate::operation::{empty_request, Api, Operation, Replay, Target, Wait};

/// One long poll: the first event on a key (or under it) at or after an index.
///
/// Its output is `None` when the server ended the poll without an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitForEvent {
    key: String,
    recursive: bool,
    wait_index: Option<u64>,
    until: Option<Instant>,
}

impl WaitForEvent {
    /// Wait for the next event on `key` (and under it, if `recursive`), from
    /// `wait_index` or, with `None`, from now; give up at `until`.
    pub fn new(
        key: impl Into<String>,
        recursive: bool,
        wait_index: Option<u64>,
        until: Option<Instant>,
    ) -> Self {
        WaitForEvent {
            key: key.into(),
            recursive,
            wait_index,
            until,
        }
    }
}

impl Operation for WaitForEvent {
    type Output = Option<KeysResponse>;

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        let mut query = Form::new();
        query.flag("wait", true).flag("recursive", self.recursive);
        if let Some(index) = self.wait_index {
            query.push("waitIndex", &index.to_string());
        }
        let path = query.append_to(keys_path(&self.key)?);
        Ok(empty_request(http::Method::GET, target.v2_uri(&path)?))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<Option<KeysResponse>, Error> {
        if response.status().is_success() && response.body().iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse_keys_response(response).map(Some)
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn wait(&self) -> Wait {
        Wait::LongPoll(self.until)
    }
}

/// Options of a watch (python-etcd's `watch(key, index=, recursive=, timeout=)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    recursive: bool,
    from_index: Option<u64>,
    timeout: Option<Duration>,
    /// `None`: the cluster's idle timeout.
    poll_interval: Option<Duration>,
}

impl WatchOptions {
    /// Watch one key, from now, with no deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also watch everything under the key.
    pub fn recursive(mut self, on: bool) -> Self {
        self.recursive = on;
        self
    }

    /// Start at this index (etcd's `waitIndex`) instead of now; events still
    /// in etcd's history are delivered at once.
    pub fn from_index(mut self, index: u64) -> Self {
        self.from_index = Some(index);
        self
    }

    /// Give up waiting for one event after this long. The default is to wait
    /// as long as it takes (python-etcd's silent 60 s limit is not repeated).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long one idle long poll lasts before the member is checked and
    /// the poll renewed (default: the client's idle timeout, 10 s). Renewal
    /// loses nothing; the check notices dead connections and silent members.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = Some(interval.max(Duration::from_millis(10)));
        self
    }
}

/// What a watch yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A change: the event as etcd reported it (`action`, `node`, `prev_node`).
    Changed(KeysResponse),
    /// The watch fell out of etcd's 1000-event history and was resynced:
    /// events between the last one delivered and `next_index` are gone.
    Resynced(Resync),
}

/// A watch starting over from a fresh read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resync {
    /// The key or directory as it is now (recursive for recursive watches);
    /// `None` if it does not exist.
    pub snapshot: Option<KeysResponse>,
    /// The index the watch continues from.
    pub next_index: u64,
    /// The error etcd reported (errorCode 401, with the indexes in its cause).
    pub cleared: V2Error,
}

/// The state of a continuous watch; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    key: String,
    options: WatchOptions,
    next_index: Option<u64>,
    resync: Option<V2Error>,
}

impl Watch {
    /// A watch of `key` with `options`.
    pub fn new(key: impl Into<String>, options: WatchOptions) -> Self {
        Watch {
            key: key.into(),
            next_index: options.from_index,
            options,
            resync: None,
        }
    }

    /// The index the next wait starts from (`None`: from now).
    pub fn next_index(&self) -> Option<u64> {
        self.next_index
    }

    /// Sets how long the next wait may take before it gives up with a timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.options.timeout = Some(timeout);
    }

    /// The flow that waits for the next event and gives this state back.
    pub fn next_event(self) -> NextEvent {
        NextEvent::new(self, true)
    }

    /// The flow of a one-shot watch: the next event, or an error (errorCode
    /// 401 included, which a one-shot watch does not resync).
    pub fn once(self) -> WatchOnce {
        WatchOnce(NextEvent::new(self, false))
    }
}

/// The flow that yields one [`WatchEvent`] of a [`Watch`] and hands the watch
/// back: its output is `(watch, result)`, so a failure loses no state.
///
/// # States
///
/// ```text
///  Start ─(from now)─▶ Anchoring ─(index pinned)─┐
///    │                                           ▼
///    └─(from an index)──────────────────────▶ Polling ─(an event)──────────▶ Done(event)
///                                             ▲  │ │
///            (checked: poll again, same index)│  │ └─(401 event index cleared)─▶ Resyncing
///                                             │  ▼                               │ (a read: the
///                                           Checking ◀─(the poll ran out)        │  node as an
///                                        (a quorum read: fails over)             ▼  event)
///                                                                          Done(event)
///  failure that no retry fixes, Stop ─▶ Done(error)
/// ```
#[derive(Debug)]
pub struct NextEvent {
    watch: Option<Watch>,
    resync_on_cleared: bool,
    deadline: Option<Instant>,
    started: bool,
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    Start,
    /// A watch "from now": one read pins now to an index first, so that no
    /// later poll (renewals, failovers) can miss an event.
    Anchoring(Call<Read>),
    Polling {
        call: Call<WaitForEvent>,
        until: Option<Instant>,
    },
    Resyncing(Call<Read>),
    /// A poll ran out with no event: a quorum read checks the member (and
    /// fails over from it) before the next poll.
    Checking(Call<Read>),
    Done(Option<Result<WatchEvent, Error>>),
}

impl NextEvent {
    fn new(watch: Watch, resync_on_cleared: bool) -> Self {
        NextEvent {
            watch: Some(watch),
            resync_on_cleared,
            deadline: None,
            started: false,
            stage: Stage::Start,
        }
    }

    fn watch(&mut self) -> &mut Watch {
        // Present from construction until the flow hands it back on Done.
        self.watch
            .get_or_insert_with(|| Watch::new("/", WatchOptions::new()))
    }

    /// Starts the next request: a resync read, or a poll.
    fn start(&mut self, cluster: &Cluster, now: Instant) -> Stage {
        let deadline = self.deadline;
        let watch = self.watch();
        if watch.resync.is_some() {
            let options = ReadOptions::new()
                .recursive(watch.options.recursive)
                .sorted(true)
                .quorum(true);
            let read = Read::new(watch.key.clone()).options(options);
            return Stage::Resyncing(Call::new(read).with_deadline(deadline));
        }
        if watch.next_index.is_none() {
            return Stage::Anchoring(
                Call::new(Read::new(watch.key.clone())).with_deadline(deadline),
            );
        }
        let interval = watch
            .options
            .poll_interval
            .unwrap_or(cluster.idle_timeout());
        let renew_at = now + interval;
        let until = Some(deadline.map_or(renew_at, |d| d.min(renew_at)));
        let op = WaitForEvent::new(
            watch.key.clone(),
            watch.options.recursive,
            watch.next_index,
            until,
        );
        Stage::Polling {
            call: Call::new(op),
            until,
        }
    }

    /// What to do with the outcome of one poll.
    fn after_poll(
        &mut self,
        result: Result<Option<KeysResponse>, Error>,
        until: Option<Instant>,
        now: Instant,
        check_timeout: Duration,
    ) -> Stage {
        let deadline = self.deadline;
        let resync_on_cleared = self.resync_on_cleared;
        let watch = self.watch();
        match result {
            Ok(Some(event)) => {
                let next = event.node.modified_index.saturating_add(1);
                watch.next_index = Some(watch.next_index.map_or(next, |current| current.max(next)));
                Stage::Done(Some(Ok(WatchEvent::Changed(event))))
            }
            // The server ended the poll without an event: poll again.
            Ok(None) => Stage::Start,
            Err(error) => match error.as_v2().map(|e| e.code) {
                Some(V2ErrorCode::EventIndexCleared) if resync_on_cleared => {
                    watch.resync = error.as_v2().cloned();
                    Stage::Start
                }
                Some(V2ErrorCode::WatcherCleared) => Stage::Start,
                _ => {
                    let renewal_due = until.is_some_and(|u| now >= u);
                    let past_deadline = deadline.is_some_and(|d| now >= d);
                    if renewal_due && !past_deadline && is_timeout(&error) {
                        // An idle poll reached its renewal time: check the
                        // member, then renew it.
                        // Bounded even without a request timeout: a silent
                        // member must never hold the watch.
                        let read =
                            Read::new(watch.key.clone()).options(ReadOptions::new().quorum(true));
                        let by = now + check_timeout;
                        let by = deadline.map_or(by, |d| d.min(by));
                        Stage::Checking(Call::new(read).with_deadline(Some(by)))
                    } else {
                        Stage::Done(Some(Err(error)))
                    }
                }
            },
        }
    }

    /// What to do with the outcome of a member check: an answer of etcd's
    /// (a missing key or a permission error included) means a member is
    /// alive and pinned; a 5xx (no quorum, a raft timeout) is the check
    /// failing, like a transport error.
    fn after_check(&mut self, result: Result<KeysResponse, Error>) -> Stage {
        match result {
            Ok(_) => Stage::Start,
            Err(e) if e.as_v2().is_some_and(|v2| v2.status < 500) => Stage::Start,
            Err(e) => Stage::Done(Some(Err(e))),
        }
    }

    /// What to do with the outcome of the anchoring read.
    fn after_anchor(&mut self, result: Result<KeysResponse, Error>) -> Stage {
        let index = match result {
            Ok(read) => read.meta.etcd_index,
            Err(e) if e.is_key_not_found() => e.as_v2().map(|v| v.index),
            Err(e) => return Stage::Done(Some(Err(e))),
        };
        match index {
            Some(index) => {
                self.watch().next_index = Some(index.saturating_add(1));
                Stage::Start
            }
            None => Stage::Done(Some(Err(crate::error::MalformedResponse::new(
                200,
                "read without X-Etcd-Index: cannot tell where now is",
                b"",
            )
            .into()))),
        }
    }

    /// What to do with the outcome of a resync read.
    fn after_resync(&mut self, result: Result<KeysResponse, Error>) -> Stage {
        let watch = self.watch();
        let Some(cleared) = watch.resync.clone() else {
            return Stage::Start;
        };
        let (snapshot, index) = match result {
            Ok(read) => match read.meta.etcd_index {
                Some(index) => (Some(read), index),
                None => {
                    let error = crate::error::MalformedResponse::new(
                        200,
                        "resync read without X-Etcd-Index",
                        b"",
                    );
                    return Stage::Done(Some(Err(error.into())));
                }
            },
            // Gone: the error carries the current index.
            Err(e) if e.is_key_not_found() => (None, e.as_v2().map_or(0, |v| v.index)),
            Err(e) => return Stage::Done(Some(Err(e))),
        };
        watch.resync = None;
        // Never back: a member behind the one that cleared the history
        // must not make the watch deliver events a second time.
        let next = watch.next_index.map_or(index.saturating_add(1), |current| {
            current.max(index.saturating_add(1))
        });
        watch.next_index = Some(next);
        Stage::Done(Some(Ok(WatchEvent::Resynced(Resync {
            snapshot,
            next_index: next,
            cleared,
        }))))
    }
}

/// True when a long poll ended by reaching its own time limit: a transport
/// timeout, alone or among the endpoints' last failures (in a long poll, a
/// timeout only happens at the renewal time or the caller's deadline).
pub(crate) fn is_timeout(error: &Error) -> bool {
    match error {
        Error::Transport(t) => t.kind() == TransportErrorKind::Timeout,
        Error::Unavailable(u) => u.failures.iter().any(|(_, e)| is_timeout(e)),
        _ => false,
    }
}

impl Flow for NextEvent {
    type Output = (Watch, Result<WatchEvent, Error>);

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<Self::Output> {
        if !self.started {
            self.started = true;
            self.deadline = self.watch().options.timeout.map(|t| now + t);
        }
        loop {
            let next = match &mut self.stage {
                Stage::Start => self.start(cluster, now),
                Stage::Polling { call, until } => match call.poll(cluster, now) {
                    Step::Done(result) => {
                        let until = *until;
                        self.after_poll(result, until, now, cluster.probe_timeout())
                    }
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::Anchoring(call) => match call.poll(cluster, now) {
                    Step::Done(result) => self.after_anchor(result),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::Resyncing(call) => match call.poll(cluster, now) {
                    Step::Done(result) => self.after_resync(result),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::Checking(call) => match call.poll(cluster, now) {
                    Step::Done(result) => self.after_check(result),
                    Step::Transmit(t) => return Step::Transmit(t),
                    Step::Sleep(t) => return Step::Sleep(t),
                },
                Stage::Done(result) => {
                    let Some(result) = result.take() else {
                        return Step::Done(Err(UsageError::FlowOutOfOrder {
                            expected: "no poll after Done",
                        }
                        .into()));
                    };
                    let watch = self
                        .watch
                        .take()
                        .unwrap_or_else(|| Watch::new("/", WatchOptions::new()));
                    return Step::Done(Ok((watch, result)));
                }
            };
            self.stage = next;
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match (input, &mut self.stage) {
            // One event is this flow's result: stopped before it, it has none.
            (Input::Stop, _) => self.stage = Stage::Done(Some(crate::flow::stopped())),
            (input, Stage::Polling { call, .. }) => call.handle(cluster, now, input),
            (input, Stage::Resyncing(call) | Stage::Anchoring(call) | Stage::Checking(call)) => {
                call.handle(cluster, now, input)
            }
            (_, Stage::Start | Stage::Done(_)) => {}
        }
    }
}

/// The flow of a one-shot watch (python-etcd's `watch()`): the next event.
#[derive(Debug)]
pub struct WatchOnce(NextEvent);

impl Flow for WatchOnce {
    type Output = KeysResponse;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<KeysResponse> {
        match self.0.poll(cluster, now) {
            Step::Done(Ok((_, Ok(WatchEvent::Changed(event))))) => Step::Done(Ok(event)),
            Step::Done(Ok((_, Err(error)))) | Step::Done(Err(error)) => Step::Done(Err(error)),
            // A one-shot watch never resyncs.
            Step::Done(Ok((_, Ok(WatchEvent::Resynced(_))))) => {
                Step::Done(Err(UsageError::FlowOutOfOrder {
                    expected: "no resync in a one-shot watch",
                }
                .into()))
            }
            Step::Transmit(t) => Step::Transmit(t),
            Step::Sleep(t) => Step::Sleep(t),
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        self.0.handle(cluster, now, input)
    }
}
