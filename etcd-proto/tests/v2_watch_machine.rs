//! The v2 watch machine — `WaitForEvent`, `Watch`, `NextEvent`, `WatchOnce` —
//! driven in virtual time: `now` moves only on `Step::Sleep` and when a
//! scripted answer says the exchange took time (or ran into its timeout).
//! Every `Transmit` is answered from a script or a small model server, with
//! response bytes taken from the recordings in `etcd-samples-3.4.txt` and
//! `etcd-samples-extra.txt` §8/§8c/§8d. No server, no clock, no threads
//! (apart from one watchdog around the random-script property).
//!
//! Case counts are kept small; set `PROPTEST_CASES=10000` for a longer run.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::testkit::{Reply, Sent, Sim};
use etcd_proto::v2::{Action, Read, V2ErrorCode, WaitForEvent, Watch, WatchEvent, WatchOptions};
use etcd_proto::{
    Cluster, Endpoint, Error, ErrorKind, Flow, Operation, Replay, Step, Target, TransportErrorKind,
    Wait, DEFAULT_IDLE_TIMEOUT,
};
use proptest::prelude::*;

const A: &str = "http://127.0.0.1:23790";
const B: &str = "http://127.0.0.1:23791";
const C: &str = "http://127.0.0.1:23792";

/// How long an idle long poll lasts by default: the cluster's idle timeout.
const IDLE: Duration = DEFAULT_IDLE_TIMEOUT;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// One capped attempt of an ordinary request while another endpoint is left
/// to try: a third of the default 5 s request timeout.
fn attempt() -> Duration {
    secs(5) / 3
}

// ---------------------------------------------------------------------------
// recorded bodies

/// The anchoring read of a watch from now, the shape of 3.4's
/// `GET /v2/keys/samples/foo` before the write of `FOO_EVENT` (X-Etcd-Index: 5).
const FOO_READ: &str = "{\"action\":\"get\",\"node\":{\"key\":\"/samples/foo\",\"value\":\"bar\",\"modifiedIndex\":4,\"createdIndex\":4}}\n";

/// §8d's key before it was written: `GET /v2/keys/lp/none` is a 404 at index 3.
const LP_NONE: &str =
    "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/lp/none\",\"index\":3}\n";

/// The anchoring read of the directory `/samples/s` (X-Etcd-Index: 6).
const DIR_S_READ: &str = "{\"action\":\"get\",\"node\":{\"key\":\"/samples/s\",\"dir\":true,\"modifiedIndex\":5,\"createdIndex\":5}}\n";

/// 3.4: `GET /v2/keys/samples/foo?wait=true&waitIndex=6`, answered by a write
/// (the waiter's headers carry `X-Etcd-Index: 5`, flushed when the wait began).
const FOO_EVENT: &str = "{\"action\":\"set\",\"node\":{\"key\":\"/samples/foo\",\"value\":\"baz\",\"modifiedIndex\":6,\"createdIndex\":6},\"prevNode\":{\"key\":\"/samples/foo\",\"value\":\"bar\",\"modifiedIndex\":4,\"createdIndex\":4}}\n";

/// §8d: the idle long poll `GET /v2/keys/lp/none?wait=true` (X-Etcd-Index: 3),
/// woken 3014 s later.
const LP_EVENT: &str = "{\"action\":\"set\",\"node\":{\"key\":\"/lp/none\",\"value\":\"wake\",\"modifiedIndex\":2227,\"createdIndex\":2227}}\n";

/// 3.4: events of a recursive watch on the directory `/samples/s`.
const CHILD_K1: &str = "{\"action\":\"set\",\"node\":{\"key\":\"/samples/s/k1\",\"value\":\"v1\",\"modifiedIndex\":7,\"createdIndex\":7}}\n";
const CHILD_K2: &str = "{\"action\":\"set\",\"node\":{\"key\":\"/samples/s/k2\",\"value\":\"v2\",\"modifiedIndex\":8,\"createdIndex\":8}}\n";

/// §8 (3.4.23 and 3.5.1): `GET /v2/keys/hist/a?wait=true&waitIndex=4` after
/// 1010 writes: HTTP 400, `X-Etcd-Index: 1014`.
const CLEARED_A: &str = "{\"errorCode\":401,\"message\":\"The event in requested index is outdated and cleared\",\"cause\":\"the requested history has been cleared [15/4]\",\"index\":1014}\n";
/// §8: `GET /v2/keys/hist?wait=true&recursive=true&waitIndex=1`.
const CLEARED_DIR: &str = "{\"errorCode\":401,\"message\":\"The event in requested index is outdated and cleared\",\"cause\":\"the requested history has been cleared [15/1]\",\"index\":1014}\n";

/// The resync read of `/hist/a` (the shape of §8's first answer, as a get).
const HIST_A_READ: &str = "{\"action\":\"get\",\"node\":{\"key\":\"/hist/a\",\"value\":\"0\",\"modifiedIndex\":4,\"createdIndex\":4}}\n";
/// The recursive, sorted resync read of `/hist`.
const HIST_DIR_READ: &str = "{\"action\":\"get\",\"node\":{\"key\":\"/hist\",\"dir\":true,\"nodes\":[{\"key\":\"/hist/a\",\"value\":\"0\",\"modifiedIndex\":4,\"createdIndex\":4},{\"key\":\"/hist/b\",\"value\":\"1009\",\"modifiedIndex\":1014,\"createdIndex\":1014}],\"modifiedIndex\":4,\"createdIndex\":4}}\n";
/// The resync read finds the key gone (3.4: `GET /v2/keys/samples/nokey`).
const HIST_A_GONE: &str =
    "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/hist/a\",\"index\":1014}\n";

/// errorCode 400: the watcher was cleared by a store recovery.
const WATCHER_CLEARED: &str = "{\"errorCode\":400,\"message\":\"watcher is cleared due to etcd recovery\",\"cause\":\"\",\"index\":20}\n";
/// errorCode 110 with HTTP 401.
const UNAUTHORIZED: &str = "{\"errorCode\":110,\"message\":\"The request requires user authentication\",\"cause\":\"Insufficient credentials\",\"index\":0}\n";
/// A 200 cut short (§8c: a member shutting down closes the chunked body early).
const TRUNCATED: &str = "{\"action\":\"set\",\"node\":{\"key\":\"/samples/foo\",\"val";

const MEMBERS: &str = "{\"members\":[{\"id\":\"8e9e05c52164694d\",\"name\":\"m1\",\"peerURLs\":[\"http://127.0.0.1:23800\"],\"clientURLs\":[\"http://127.0.0.1:23790\"]},{\"id\":\"91bc3c398fb3c146\",\"name\":\"m2\",\"peerURLs\":[\"http://127.0.0.1:23801\"],\"clientURLs\":[\"http://127.0.0.1:23791\"]}]}\n";

// ---------------------------------------------------------------------------
// the watch's shorthands on the testkit's virtual-time driver

trait WatchSim {
    /// Drives `flow` to its end, asking `answer` for the outcome of each
    /// request. `None` if `answer` said [`Reply::Stop`].
    fn answer_with<F: Flow>(
        &mut self,
        flow: F,
        answer: impl FnMut(&Sent) -> Reply,
    ) -> Option<Result<F::Output, Error>>;

    /// One `next_event` of `watch`, with exactly `replies`.
    fn next(&mut self, watch: Watch, replies: Vec<Reply>) -> (Watch, Result<WatchEvent, Error>);

    /// The first long poll `flow` sends (and nothing more), answering the
    /// requests before it (the anchoring read) with exactly `reads`.
    fn first_poll<F: Flow>(&mut self, flow: F, reads: Vec<Reply>) -> Sent;
}

impl WatchSim for Sim<'_> {
    fn answer_with<F: Flow>(
        &mut self,
        mut flow: F,
        mut answer: impl FnMut(&Sent) -> Reply,
    ) -> Option<Result<F::Output, Error>> {
        self.drive_with(&mut flow, &mut |sent, _| answer(sent))
    }

    fn next(&mut self, watch: Watch, replies: Vec<Reply>) -> (Watch, Result<WatchEvent, Error>) {
        self.script(watch.next_event(), replies)
            .expect("NextEvent itself never fails when driven in order")
    }

    fn first_poll<F: Flow>(&mut self, flow: F, reads: Vec<Reply>) -> Sent {
        let mut reads = VecDeque::from(reads);
        let mut poll = None;
        let out = self.answer_with(flow, |sent| {
            if sent.is_poll() {
                poll = Some(sent.clone());
                return Reply::Stop;
            }
            reads
                .pop_front()
                .unwrap_or_else(|| panic!("no reply scripted for {sent:?}"))
        });
        assert!(out.is_none(), "the flow ended without a poll");
        assert!(reads.is_empty(), "{} replies left unused", reads.len());
        poll.expect("a poll")
    }
}

fn response(status: u16, etcd_index: Option<u64>, body: &str) -> http::Response<Bytes> {
    let mut builder = http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-etcd-cluster-id", "26f366baf1040dbd");
    if let Some(index) = etcd_index {
        builder = builder.header("x-etcd-index", index.to_string());
    }
    builder
        .body(Bytes::copy_from_slice(body.as_bytes()))
        .unwrap()
}

/// An answer after `after`.
fn answer(after: Duration, status: u16, etcd_index: u64, body: &str) -> Reply {
    Reply::Answer(after, response(status, Some(etcd_index), body))
}

/// An immediate answer.
fn now(status: u16, etcd_index: u64, body: &str) -> Reply {
    answer(Duration::ZERO, status, etcd_index, body)
}

/// An immediate 404 (errorCode 100) to the anchoring read of `key`, at `index`.
fn not_found(key: &str, index: u64) -> Reply {
    let body = format!(
        "{{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"{key}\",\"index\":{index}}}\n"
    );
    now(404, index, &body)
}

/// A 200 read of `key` (a value last modified at `index`, X-Etcd-Index
/// `index`), `after` this long: how a live member answers a member check.
fn alive(after: Duration, key: &str, index: u64) -> Reply {
    let body = format!(
        "{{\"action\":\"get\",\"node\":{{\"key\":\"{key}\",\"value\":\"v\",\"modifiedIndex\":{index},\"createdIndex\":{index}}}}}\n"
    );
    answer(after, 200, index, &body)
}

/// The member checks among `sent`.
fn checks(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter().filter(|s| s.is_check()).collect()
}

/// The long polls among `sent`.
fn polls(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter().filter(|s| s.is_poll()).collect()
}

/// `P` for a long poll, `C` for a member check, `R` for any other read, `M`
/// for a member-list refresh: the shape of a run at a glance.
fn kinds(sent: &[Sent]) -> String {
    sent.iter()
        .map(|s| match () {
            _ if s.is_poll() => 'P',
            _ if s.is_check() => 'C',
            _ if s.path() == "/v2/members" => 'M',
            _ => 'R',
        })
        .collect()
}

fn changed(item: Result<WatchEvent, Error>) -> etcd_proto::v2::KeysResponse {
    match item {
        Ok(WatchEvent::Changed(event)) => event,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn resynced(item: Result<WatchEvent, Error>) -> etcd_proto::v2::Resync {
    match item {
        Ok(WatchEvent::Resynced(resync)) => resync,
        other => panic!("expected a resync, got {other:?}"),
    }
}

fn failed(item: Result<WatchEvent, Error>) -> Error {
    match item {
        Err(error) => error,
        Ok(event) => panic!("expected an error, got {event:?}"),
    }
}

fn is_timeout(error: &Error) -> bool {
    match error {
        Error::Transport(t) => t.kind() == TransportErrorKind::Timeout,
        _ => false,
    }
}

/// The error of a call that ended at its deadline without sending anything.
fn is_deadline_before_send(error: &Error, endpoint: &str) -> bool {
    match error {
        Error::Transport(t) => {
            t.kind() == TransportErrorKind::Timeout
                && t.endpoint() == endpoint
                && error
                    .to_string()
                    .contains("the deadline passed before any request was sent")
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// 1. request shape and timeouts

#[test]
fn a_watch_from_now_reads_the_key_once_then_long_polls_after_its_index() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new());
    assert_eq!(watch.next_index(), None);
    let poll = sim.first_poll(watch.next_event(), vec![now(200, 5, FOO_READ)]);
    assert_eq!(sim.sent.len(), 2);
    // First one plain read of the key: it pins "now" to an index.
    let read = &sim.sent[0];
    assert_eq!(read.method, http::Method::GET);
    assert_eq!(read.uri, format!("{A}/v2/keys/samples/foo"));
    assert!(read.is_anchor() && !read.is_poll());
    assert_eq!(read.body.len(), 0);
    assert_eq!(read.authorization, None);
    // An ordinary read on the only endpoint: the last endpoint left gets the
    // whole request timeout.
    assert_eq!(read.timeout, Some(secs(5)));
    // Then a bodyless long poll from the read's X-Etcd-Index + 1.
    assert_eq!(poll.method, http::Method::GET);
    assert_eq!(
        poll.uri,
        format!("{A}/v2/keys/samples/foo?wait=true&waitIndex=6")
    );
    assert_eq!(poll.body.len(), 0);
    assert_eq!(poll.authorization, None);
    assert_eq!(poll.at, Duration::ZERO);
    // The renewal time (the cluster's idle timeout, 10 s), not the 5 s
    // request timeout.
    assert_eq!(sim.cluster.request_timeout(), Some(secs(5)));
    assert_eq!(IDLE, secs(10));
    assert_eq!(sim.cluster.idle_timeout(), IDLE);
    assert_eq!(poll.timeout, Some(IDLE));

    // With another endpoint left to try, one attempt of the read gets a third
    // of the request timeout.
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/samples/foo", WatchOptions::new());
    let poll = sim.first_poll(watch.next_event(), vec![now(200, 5, FOO_READ)]);
    assert!(sim.sent[0].is_anchor());
    assert_eq!(sim.sent[0].host(), A);
    assert_eq!(sim.sent[0].timeout, Some(attempt()));
    assert_eq!(poll.host(), A);
    assert_eq!(poll.wait_index(), Some(6));
    assert_eq!(poll.timeout, Some(IDLE));
}

#[test]
fn a_watch_from_an_index_polls_at_once_without_reading() {
    let mut sim = Sim::scripted(&[A]);
    let sent =
        sim.first(Watch::new("/samples/foo", WatchOptions::new().from_index(6)).next_event());
    assert_eq!(sent.method, http::Method::GET);
    assert_eq!(
        sent.uri,
        format!("{A}/v2/keys/samples/foo?wait=true&waitIndex=6")
    );
    assert_eq!(sent.body.len(), 0);
    assert_eq!(sent.timeout, Some(IDLE));
}

#[test]
fn the_anchor_of_a_missing_key_is_the_index_of_the_404() {
    // §8d: the key does not exist yet; the 404's body says index 3.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/lp/none", WatchOptions::new());
    let poll = sim.first_poll(watch.next_event(), vec![now(404, 3, LP_NONE)]);
    assert_eq!(sim.sent[0].target(), "/v2/keys/lp/none");
    assert_eq!(poll.target(), "/v2/keys/lp/none?wait=true&waitIndex=4");
    // The body's index counts, even when no header says it.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/lp/none", WatchOptions::new());
    let poll = sim.first_poll(
        watch.next_event(),
        vec![Reply::Answer(Duration::ZERO, response(404, None, LP_NONE))],
    );
    assert_eq!(poll.wait_index(), Some(4));
}

#[test]
fn recursive_and_from_index_add_their_parameters_in_order() {
    let mut sim = Sim::scripted(&[A]);
    let options = WatchOptions::new().recursive(true).from_index(9);
    let sent = sim.first(Watch::new("/samples/h", options).next_event());
    assert_eq!(
        sent.uri,
        format!("{A}/v2/keys/samples/h?wait=true&recursive=true&waitIndex=9")
    );
    let sent = sim.first(Watch::new("samples/h", WatchOptions::new().from_index(0)).next_event());
    assert_eq!(
        sent.uri,
        format!("{A}/v2/keys/samples/h?wait=true&waitIndex=0")
    );
    // From now: the anchoring read needs only the index, so it is not recursive.
    let from = sim.sent.len();
    let root = "{\"action\":\"get\",\"node\":{\"dir\":true,\"nodes\":[{\"key\":\"/samples\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4}]}}\n";
    let sent = sim.first_poll(
        Watch::new("/", WatchOptions::new().recursive(true)).next_event(),
        vec![now(200, 11, root)],
    );
    assert_eq!(sim.sent[from].uri, format!("{A}/v2/keys/"));
    assert_eq!(
        sent.uri,
        format!("{A}/v2/keys/?wait=true&recursive=true&waitIndex=12")
    );
}

#[test]
fn the_transmit_timeout_is_the_renewal_or_the_watch_timeout_whichever_is_first() {
    let cases = [
        (WatchOptions::new(), IDLE),
        (WatchOptions::new().timeout(secs(4)), secs(4)),
        (WatchOptions::new().timeout(IDLE), IDLE),
        (WatchOptions::new().timeout(secs(600)), IDLE),
        (WatchOptions::new().poll_interval(secs(5)), secs(5)),
        // A caller's interval longer than the idle timeout is kept.
        (WatchOptions::new().poll_interval(secs(60)), secs(60)),
        (
            WatchOptions::new()
                .poll_interval(secs(60))
                .timeout(secs(45)),
            secs(45),
        ),
        (
            WatchOptions::new()
                .poll_interval(secs(30))
                .timeout(secs(20)),
            secs(20),
        ),
        // The interval is clamped to at least 10 ms.
        (WatchOptions::new().poll_interval(millis(1)), millis(10)),
        (
            WatchOptions::new().poll_interval(Duration::ZERO),
            millis(10),
        ),
    ];
    for (options, expected) in cases {
        let mut sim = Sim::scripted(&[A]);
        let sent = sim.first_poll(
            Watch::new("/k", options.clone()).next_event(),
            vec![not_found("/k", 3)],
        );
        assert_eq!(sent.timeout, Some(expected), "{options:?}");
        let mut sim = Sim::scripted(&[A]);
        let sent = sim.first(Watch::new("/k", options.clone().from_index(4)).next_event());
        assert_eq!(sent.timeout, Some(expected), "{options:?}");
    }
    // The watch timeout counts from the start, the anchoring read included.
    let mut sim = Sim::scripted(&[A]);
    let sent = sim.first_poll(
        Watch::new("/k", WatchOptions::new().timeout(secs(10))).next_event(),
        vec![Reply::Answer(
            secs(2),
            response(404, Some(3), &LP_NONE.replace("/lp/none", "/k")),
        )],
    );
    assert_eq!(sent.at, secs(2));
    assert_eq!(sent.timeout, Some(secs(8)));
}

#[test]
fn no_request_timeout_caps_a_long_poll() {
    for request_timeout in [Some(millis(1)), Some(secs(1)), Some(secs(3600)), None] {
        let mut sim = Sim::scripted(&[A, B]);
        sim.cluster.set_request_timeout(request_timeout);
        let sent = sim.first_poll(
            Watch::new("/k", WatchOptions::new()).next_event(),
            vec![not_found("/k", 3)],
        );
        assert_eq!(sent.timeout, Some(IDLE), "{request_timeout:?}");
        // The anchoring read is an ordinary request: the request timeout caps it.
        let read = &sim.sent[0];
        assert!(read.is_anchor(), "{read:?}");
        match request_timeout {
            Some(t) => assert!(read.timeout.is_some_and(|r| r <= t), "{read:?}"),
            None => assert_eq!(read.timeout, None),
        }
        let sent = sim.first(
            Watch::new(
                "/k",
                WatchOptions::new()
                    .timeout(secs(7200))
                    .poll_interval(secs(900))
                    .from_index(4),
            )
            .next_event(),
        );
        assert_eq!(sent.timeout, Some(secs(900)), "{request_timeout:?}");
    }
}

#[test]
fn renewed_polls_count_down_to_the_watch_timeout() {
    // Each renewal is preceded by a member check (0.5 s here); the time the
    // checks take counts against the watch timeout too.
    let mut sim = Sim::scripted(&[A]);
    let options = WatchOptions::new()
        .poll_interval(secs(30))
        .timeout(secs(75));
    let watch = Watch::new("/k", options.from_index(3));
    let (_, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            alive(millis(500), "/k", 2),
            Reply::TimeOut,
            alive(millis(500), "/k", 2),
            Reply::TimeOut,
        ],
    );
    assert!(is_timeout(&failed(item)));
    assert_eq!(kinds(&sim.sent), "PCPCP");
    let polls = polls(&sim.sent);
    let timeouts: Vec<_> = polls.iter().map(|s| s.timeout).collect();
    assert_eq!(timeouts, [Some(secs(30)), Some(secs(30)), Some(secs(14))]);
    let at: Vec<_> = polls.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(0), millis(30_500), secs(61)]);
    assert!(polls.iter().all(|s| s.wait_index() == Some(3)));
    // The checks: ordinary reads on the only endpoint (the whole 5 s).
    let checks = checks(&sim.sent);
    let at: Vec<_> = checks.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(30), millis(60_500)]);
    assert!(checks.iter().all(|s| s.timeout == Some(secs(5))));
    assert_eq!(sim.elapsed(), secs(75));
}

#[test]
fn wait_for_event_as_an_operation() {
    let endpoint = Endpoint::parse("https://gw.example:8443/etcd").unwrap();
    let target = Target::new(&endpoint, "/v2");
    let op = WaitForEvent::new("/dir/a b", true, Some(12), None);
    let request = op.build(&target).unwrap();
    assert_eq!(request.method(), http::Method::GET);
    assert_eq!(
        request.uri().to_string(),
        "https://gw.example:8443/etcd/v2/keys/dir/a%20b?wait=true&recursive=true&waitIndex=12"
    );
    assert!(request.body().is_empty());
    assert_eq!(op.replay(), Replay::Safe);
    assert_eq!(op.wait(), Wait::LongPoll(None));
    let until = Instant::now() + secs(60);
    assert_eq!(
        WaitForEvent::new("/k", false, None, Some(until)).wait(),
        Wait::LongPoll(Some(until))
    );
    // A key etcd would clean into another key is refused, not sent.
    assert!(WaitForEvent::new("/a//b", false, None, None)
        .build(&target)
        .is_err());
}

#[test]
fn a_key_that_cannot_be_sent_yields_an_error_without_sending() {
    // From an index (the poll) and from now (the anchoring read).
    for options in [WatchOptions::new().from_index(5), WatchOptions::new()] {
        let mut sim = Sim::scripted(&[A]);
        let watch = Watch::new("/a/../b", options.clone());
        let before = watch.clone();
        let (watch, item) = sim.next(watch, vec![]);
        assert_eq!(failed(item).kind(), ErrorKind::Usage, "{options:?}");
        assert_eq!(watch, before, "{options:?}");
        assert!(sim.sent.is_empty(), "{options:?}");
    }
}

#[test]
fn credentials_go_with_polls_and_resync_reads() {
    let mut sim = Sim::scripted(&[A]);
    sim.cluster.set_basic_auth("root", "secret");
    let watch = Watch::new("/hist/a", WatchOptions::new().from_index(4));
    let (_, item) = sim.next(
        watch,
        vec![now(400, 1014, CLEARED_A), now(200, 1014, HIST_A_READ)],
    );
    resynced(item);
    assert_eq!(sim.sent.len(), 2);
    // And with the anchoring read of a watch from now.
    let watch = Watch::new("/samples/foo", WatchOptions::new());
    let (_, item) = sim.next(
        watch,
        vec![now(200, 5, FOO_READ), answer(secs(1), 200, 5, FOO_EVENT)],
    );
    changed(item);
    assert_eq!(sim.sent.len(), 4);
    assert!(sim.sent[2].is_anchor());
    for sent in &sim.sent {
        assert_eq!(
            sent.authorization.as_deref(),
            Some("Basic cm9vdDpzZWNyZXQ=")
        );
    }
}

// ---------------------------------------------------------------------------
// 2. events and index tracking

#[test]
fn an_event_is_a_change_and_the_next_wait_starts_after_it() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(6));
    assert_eq!(watch.next_index(), Some(6));
    let (watch, item) = sim.next(watch, vec![answer(millis(500), 200, 5, FOO_EVENT)]);
    let event = changed(item);
    assert_eq!(event.action, Action::Set);
    assert_eq!(event.node.key, "/samples/foo");
    assert_eq!(event.node.value.as_deref(), Some("baz"));
    assert_eq!(event.node.modified_index, 6);
    assert_eq!(event.prev_node.unwrap().value.as_deref(), Some("bar"));
    // X-Etcd-Index of a wait is when the wait began, not the event.
    assert_eq!(event.meta.etcd_index, Some(5));
    assert_eq!(watch.next_index(), Some(7));

    let sent = sim.first(watch.next_event());
    assert_eq!(
        sent.uri,
        format!("{A}/v2/keys/samples/foo?wait=true&waitIndex=7")
    );
}

#[test]
fn a_watch_from_now_tracks_the_event_not_the_header() {
    // §8d: the key is missing at index 3; the poll's headers say X-Etcd-Index
    // 3 (when it began), the event is at 2227.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/lp/none", WatchOptions::new());
    assert_eq!(watch.next_index(), None);
    let (watch, item) = sim.next(
        watch,
        vec![now(404, 3, LP_NONE), answer(secs(59), 200, 3, LP_EVENT)],
    );
    let event = changed(item);
    assert_eq!(event.node.value.as_deref(), Some("wake"));
    assert_eq!(event.meta.etcd_index, Some(3));
    assert_eq!(watch.next_index(), Some(2228));
    let sent = sim.first(watch.next_event());
    let uris: Vec<_> = sim.sent.iter().map(|s| s.target().to_owned()).collect();
    assert_eq!(
        uris,
        [
            "/v2/keys/lp/none",
            "/v2/keys/lp/none?wait=true&waitIndex=4",
            "/v2/keys/lp/none?wait=true&waitIndex=2228",
        ]
    );
    assert_eq!(sent.at, secs(59));
}

#[test]
fn a_recursive_watch_follows_its_children_indexes() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/s", WatchOptions::new().recursive(true));
    let (watch, first) = sim.next(
        watch,
        vec![now(200, 6, DIR_S_READ), answer(secs(1), 200, 6, CHILD_K1)],
    );
    assert_eq!(changed(first).node.key, "/samples/s/k1");
    assert_eq!(watch.next_index(), Some(8));
    // The watch has an index now: no second read.
    let (watch, second) = sim.next(watch, vec![answer(secs(1), 200, 7, CHILD_K2)]);
    assert_eq!(changed(second).node.key, "/samples/s/k2");
    assert_eq!(watch.next_index(), Some(9));
    let sent = sim.first(watch.next_event());
    let uris: Vec<_> = sim.sent.iter().map(|s| s.target().to_owned()).collect();
    assert_eq!(
        uris,
        [
            "/v2/keys/samples/s",
            "/v2/keys/samples/s?wait=true&recursive=true&waitIndex=7",
            "/v2/keys/samples/s?wait=true&recursive=true&waitIndex=8",
            "/v2/keys/samples/s?wait=true&recursive=true&waitIndex=9",
        ]
    );
    assert_eq!(sent.wait_index(), Some(9));
}

#[test]
fn a_history_answer_is_delivered_at_once_and_followed() {
    // 3.4: `?wait=true&recursive=true&waitIndex=9` returns the hidden key's event.
    let hidden = "{\"action\":\"set\",\"node\":{\"key\":\"/samples/h/_hidden\",\"value\":\"1\",\"modifiedIndex\":9,\"createdIndex\":9}}\n";
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new(
        "/samples/h",
        WatchOptions::new().recursive(true).from_index(9),
    );
    let (watch, item) = sim.next(watch, vec![now(200, 1020, hidden)]);
    assert_eq!(changed(item).node.key, "/samples/h/_hidden");
    assert_eq!(watch.next_index(), Some(10));
    assert_eq!(sim.elapsed(), Duration::ZERO);
}

// ---------------------------------------------------------------------------
// 2b. anchoring a watch from now

#[test]
fn a_failed_anchoring_read_yields_an_error_and_the_next_call_reads_again() {
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/samples/foo", WatchOptions::new());
    let before = watch.clone();
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::Fail(millis(1), TransportErrorKind::Connect),
            Reply::Fail(millis(1), TransportErrorKind::Connect),
        ],
    );
    let error = failed(item);
    assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    // Still a watch from now: nothing was pinned.
    assert_eq!(watch, before);
    assert_eq!(watch.next_index(), None);
    assert!(sim.sent.iter().all(Sent::is_anchor));

    let from = sim.sent.len();
    let (watch, item) = sim.next(
        watch,
        vec![now(200, 5, FOO_READ), answer(secs(1), 200, 5, FOO_EVENT)],
    );
    assert_eq!(changed(item).node.modified_index, 6);
    let again = sim.since(from);
    assert!(again[0].is_anchor(), "{:?}", again[0]);
    assert_eq!(again[1].wait_index(), Some(6));
    assert_eq!(watch.next_index(), Some(7));
}

#[test]
fn an_anchoring_read_without_x_etcd_index_is_an_error_and_is_retried() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new());
    let (watch, item) = sim.next(
        watch,
        vec![Reply::Answer(Duration::ZERO, response(200, None, FOO_READ))],
    );
    assert_eq!(failed(item).kind(), ErrorKind::Malformed);
    assert_eq!(watch.next_index(), None);
    assert_eq!(sim.sent.len(), 1);
    let poll = sim.first_poll(watch.next_event(), vec![now(200, 9, FOO_READ)]);
    assert!(sim.sent[1].is_anchor());
    assert_eq!(poll.wait_index(), Some(10));
}

#[test]
fn an_anchoring_read_fails_over_like_any_read() {
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/samples/foo", WatchOptions::new());
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::Fail(millis(1), TransportErrorKind::Connect),
            now(200, 5, FOO_READ),
            answer(secs(1), 200, 5, FOO_EVENT),
        ],
    );
    changed(item);
    let hosts: Vec<_> = sim.sent.iter().map(|s| s.host().to_owned()).collect();
    assert_eq!(hosts, [A, B, B]);
    assert!(sim.sent[0].is_anchor() && sim.sent[1].is_anchor());
    assert_eq!(sim.sent[2].wait_index(), Some(6));
    assert_eq!(watch.next_index(), Some(7));
}

#[test]
fn a_poll_failure_after_the_anchor_keeps_the_anchor() {
    // The read pinned now to index 5; the poll then fails everywhere. The
    // watch handed back waits from 6, so nothing written meanwhile is missed.
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/samples/foo", WatchOptions::new());
    let (watch, item) = sim.next(
        watch,
        vec![
            now(200, 5, FOO_READ),
            Reply::Fail(millis(1), TransportErrorKind::Connect),
            Reply::Fail(millis(1), TransportErrorKind::Connect),
        ],
    );
    assert_eq!(failed(item).kind(), ErrorKind::Transport);
    assert_eq!(watch.next_index(), Some(6));
    let sent = sim.first(watch.next_event());
    assert!(sent.is_poll(), "{sent:?}");
    assert_eq!(sent.wait_index(), Some(6));
}

#[test]
fn once_from_now_anchors_first_too() {
    let mut sim = Sim::scripted(&[A]);
    let event = sim
        .script(
            Watch::new("/samples/foo", WatchOptions::new()).once(),
            vec![now(200, 5, FOO_READ), answer(secs(1), 200, 5, FOO_EVENT)],
        )
        .unwrap();
    assert_eq!(event.node.modified_index, 6);
    assert!(sim.sent[0].is_anchor());
    assert_eq!(sim.sent[1].wait_index(), Some(6));
}

// ---------------------------------------------------------------------------
// 3. empty bodies

#[test]
fn an_empty_200_is_polled_again_from_the_same_index() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(7));
    let (watch, item) = sim.next(
        watch,
        vec![
            answer(secs(5), 200, 6, ""),
            answer(secs(1), 200, 6, "\n"),
            answer(secs(1), 200, 6, "\r\n \t"),
            Reply::Answer(Duration::ZERO, response(200, None, "")),
            answer(
                secs(2),
                200,
                6,
                &FOO_EVENT.replace("\"modifiedIndex\":6", "\"modifiedIndex\":7"),
            ),
        ],
    );
    assert_eq!(changed(item).node.modified_index, 7);
    assert_eq!(sim.sent.len(), 5);
    for sent in &sim.sent {
        assert_eq!(sent.target(), "/v2/keys/samples/foo?wait=true&waitIndex=7");
        // Each re-poll gets a fresh renewal window.
        assert_eq!(sent.timeout, Some(IDLE));
    }
    let at: Vec<_> = sim.sent.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(0), secs(5), secs(6), secs(7), secs(7)]);
    assert_eq!(watch.next_index(), Some(8));
}

#[test]
fn an_empty_200_does_not_extend_the_watch_timeout() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7).timeout(secs(10)));
    let (watch, item) = sim.next(watch, vec![answer(secs(4), 200, 6, ""), Reply::TimeOut]);
    assert!(is_timeout(&failed(item)));
    assert_eq!(sim.sent[1].timeout, Some(secs(6)));
    assert_eq!(sim.elapsed(), secs(10));
    assert_eq!(watch.next_index(), Some(7));
}

// ---------------------------------------------------------------------------
// 4. errorCode 401: resync

#[test]
fn history_cleared_resyncs_from_a_quorum_read() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/hist/a", WatchOptions::new().from_index(4));
    let (watch, item) = sim.next(
        watch,
        vec![
            answer(millis(10), 400, 1014, CLEARED_A),
            answer(millis(10), 200, 1016, HIST_A_READ),
        ],
    );
    let resync = resynced(item);
    assert_eq!(resync.next_index, 1017);
    let snapshot = resync.snapshot.expect("the key exists");
    assert_eq!(snapshot.action, Action::Get);
    assert_eq!(snapshot.node.key, "/hist/a");
    assert_eq!(snapshot.node.value.as_deref(), Some("0"));
    assert_eq!(snapshot.meta.etcd_index, Some(1016));
    assert_eq!(resync.cleared.code, V2ErrorCode::EventIndexCleared);
    assert_eq!(resync.cleared.status, 400);
    assert_eq!(resync.cleared.index, 1014);
    assert_eq!(
        resync.cleared.cause.as_deref(),
        Some("the requested history has been cleared [15/4]")
    );
    assert_eq!(watch.next_index(), Some(1017));

    let read = &sim.sent[1];
    assert_eq!(read.method, http::Method::GET);
    assert!(!read.is_poll());
    assert_eq!(
        read.uri,
        format!("{A}/v2/keys/hist/a?sorted=true&quorum=true")
    );
    // An ordinary read: the request timeout applies (on the only endpoint,
    // the last one left, all of it).
    assert_eq!(read.timeout, Some(secs(5)));

    let sent = sim.first(watch.next_event());
    assert_eq!(
        sent.uri,
        format!("{A}/v2/keys/hist/a?wait=true&waitIndex=1017")
    );
}

#[test]
fn a_recursive_watch_resyncs_with_a_recursive_sorted_quorum_read() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/hist", WatchOptions::new().recursive(true).from_index(1));
    let (watch, item) = sim.next(
        watch,
        vec![now(400, 1014, CLEARED_DIR), now(200, 1014, HIST_DIR_READ)],
    );
    let resync = resynced(item);
    assert_eq!(resync.next_index, 1015);
    assert_eq!(
        resync.cleared.cause.as_deref(),
        Some("the requested history has been cleared [15/1]")
    );
    let snapshot = resync.snapshot.unwrap();
    assert!(snapshot.node.dir);
    let keys: Vec<_> = snapshot.node.leaves().map(|n| n.key.as_str()).collect();
    assert_eq!(keys, ["/hist/a", "/hist/b"]);
    assert_eq!(
        sim.sent[0].target(),
        "/v2/keys/hist?wait=true&recursive=true&waitIndex=1"
    );
    assert_eq!(
        sim.sent[1].target(),
        "/v2/keys/hist?recursive=true&sorted=true&quorum=true"
    );
    let sent = sim.first(watch.next_event());
    assert_eq!(
        sent.target(),
        "/v2/keys/hist?wait=true&recursive=true&waitIndex=1015"
    );
}

#[test]
fn a_resync_that_finds_the_key_gone_continues_after_the_error_index() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/hist/a", WatchOptions::new().from_index(4));
    let (watch, item) = sim.next(
        watch,
        vec![now(400, 1014, CLEARED_A), now(404, 1014, HIST_A_GONE)],
    );
    let resync = resynced(item);
    assert_eq!(resync.snapshot, None);
    assert_eq!(resync.next_index, 1015);
    assert_eq!(resync.cleared.code, V2ErrorCode::EventIndexCleared);
    assert_eq!(watch.next_index(), Some(1015));
}

#[test]
fn a_resync_read_lost_on_every_endpoint_is_retried_by_the_next_call() {
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/hist/a", WatchOptions::new().from_index(4));
    let before = watch.clone();
    let (watch, item) = sim.next(
        watch,
        vec![
            now(400, 1014, CLEARED_A),
            Reply::Fail(millis(1), TransportErrorKind::Connect),
            Reply::Fail(millis(1), TransportErrorKind::Connect),
        ],
    );
    let error = failed(item);
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    // Nothing was delivered: the index has not moved.
    assert_eq!(watch.next_index(), before.next_index());
    let hosts: Vec<_> = sim.sent[1..].iter().map(|s| s.host().to_owned()).collect();
    assert_eq!(hosts, [A, B]);
    assert!(sim.sent[1..].iter().all(|s| !s.is_poll()));

    // The next call goes straight back to the read, not to a poll.
    let from = sim.sent.len();
    let (watch, item) = sim.next(watch, vec![now(200, 1020, HIST_A_READ)]);
    let resync = resynced(item);
    assert_eq!(resync.next_index, 1021);
    assert_eq!(resync.cleared.index, 1014);
    let again = sim.since(from);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].target(), "/v2/keys/hist/a?sorted=true&quorum=true");
    assert_eq!(watch.next_index(), Some(1021));
    assert_eq!(sim.first(watch.next_event()).wait_index(), Some(1021));
}

#[test]
fn a_resync_read_that_keeps_breaking_gives_up_by_the_request_timeout() {
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/hist/a", WatchOptions::new().from_index(4));
    let mut polls = 0;
    let (watch, item) = sim
        .answer_with(watch.next_event(), |sent| {
            if sent.is_poll() {
                polls += 1;
                now(400, 1014, CLEARED_A)
            } else {
                Reply::Fail(millis(100), TransportErrorKind::Io)
            }
        })
        .unwrap()
        .unwrap();
    assert_eq!(polls, 1);
    assert_eq!(failed(item).kind(), ErrorKind::Transport);
    assert!(
        sim.elapsed() <= secs(5) + millis(100),
        "{:?}",
        sim.elapsed()
    );
    assert_eq!(watch.next_index(), Some(4));
    let sent = sim.first(watch.next_event());
    assert!(!sent.is_poll(), "{sent:?}");
}

#[test]
fn a_resync_read_without_x_etcd_index_is_an_error_and_is_retried() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/hist/a", WatchOptions::new().from_index(4));
    let (watch, item) = sim.next(
        watch,
        vec![
            now(400, 1014, CLEARED_A),
            Reply::Answer(Duration::ZERO, response(200, None, HIST_A_READ)),
        ],
    );
    assert_eq!(failed(item).kind(), ErrorKind::Malformed);
    assert_eq!(watch.next_index(), Some(4));
    let (watch, item) = sim.next(watch, vec![now(200, 1030, HIST_A_READ)]);
    assert_eq!(resynced(item).next_index, 1031);
    assert_eq!(watch.next_index(), Some(1031));
    assert!(!sim.sent[2].is_poll());
}

#[test]
fn a_watch_from_a_past_index_resyncs_once_and_then_polls() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/hist/a", WatchOptions::new().from_index(4));
    let (watch, item) = sim.next(
        watch,
        vec![now(400, 1014, CLEARED_A), now(200, 1014, HIST_A_READ)],
    );
    resynced(item);
    let event = "{\"action\":\"set\",\"node\":{\"key\":\"/hist/a\",\"value\":\"1\",\"modifiedIndex\":1015,\"createdIndex\":1015},\"prevNode\":{\"key\":\"/hist/a\",\"value\":\"0\",\"modifiedIndex\":4,\"createdIndex\":4}}\n";
    let (watch, item) = sim.next(watch, vec![answer(secs(3), 200, 1014, event)]);
    assert_eq!(changed(item).node.value.as_deref(), Some("1"));
    assert_eq!(watch.next_index(), Some(1016));
    let kinds: Vec<_> = sim.sent.iter().map(Sent::is_poll).collect();
    assert_eq!(kinds, [true, false, true]);
    assert_eq!(sim.sent[2].wait_index(), Some(1015));
}

// ---------------------------------------------------------------------------
// 5. errorCode 400: watcher cleared

#[test]
fn a_cleared_watcher_is_polled_again_from_the_same_index() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(6));
    let (watch, item) = sim.next(
        watch,
        vec![
            answer(secs(2), 400, 20, WATCHER_CLEARED),
            answer(secs(1), 400, 20, WATCHER_CLEARED),
            answer(secs(1), 200, 5, FOO_EVENT),
        ],
    );
    assert_eq!(changed(item).node.modified_index, 6);
    assert_eq!(sim.sent.len(), 3);
    assert!(sim
        .sent
        .iter()
        .all(|s| s.is_poll() && s.wait_index() == Some(6)));
    assert_eq!(watch.next_index(), Some(7));
}

// ---------------------------------------------------------------------------
// 6. renewal and the watch timeout

#[test]
fn an_idle_poll_is_renewed_at_its_renewal_time_from_the_same_index() {
    // Every idle timeout (10 s) the poll ends without an event; a quorum read
    // checks the member, then the poll is renewed from the same index.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(6));
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            now(200, 5, FOO_READ),
            Reply::TimeOut,
            now(200, 5, FOO_READ),
            Reply::TimeOut,
            now(200, 5, FOO_READ),
            answer(secs(4), 200, 5, FOO_EVENT),
        ],
    );
    assert_eq!(changed(item).node.modified_index, 6);
    assert_eq!(kinds(&sim.sent), "PCPCPCP");
    let polls = polls(&sim.sent);
    let at: Vec<_> = polls.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(0), secs(10), secs(20), secs(30)]);
    assert!(polls
        .iter()
        .all(|s| s.wait_index() == Some(6) && s.timeout == Some(IDLE) && s.host() == A));
    let checks = checks(&sim.sent);
    let at: Vec<_> = checks.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(10), secs(20), secs(30)]);
    assert!(checks
        .iter()
        .all(|s| s.uri == format!("{A}/v2/keys/samples/foo?quorum=true")
            && s.timeout == Some(secs(5))
            && s.body.is_empty()));
    assert_eq!(sim.elapsed(), secs(34));
    assert_eq!(watch.next_index(), Some(7));
}

#[test]
fn an_idle_watch_from_now_is_renewed_from_its_anchored_index() {
    // §8d: the key was written 3014 s after the wait began; every 10 s (the
    // idle timeout) the idle poll ends, a quorum read checks the member (the
    // key is still missing: a 404 is an answer, the member is alive), and the
    // poll is renewed. The watch read the key once (index 3), and every
    // renewal waits from 4: an event between two polls cannot be missed.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/lp/none", WatchOptions::new());
    let mut replies = vec![now(404, 3, LP_NONE)];
    for _ in 0..301 {
        replies.push(Reply::TimeOut);
        replies.push(not_found("/lp/none", 3));
    }
    replies.push(answer(secs(4), 200, 3, LP_EVENT));
    let (watch, item) = sim.next(watch, replies);
    assert_eq!(changed(item).node.modified_index, 2227);
    assert_eq!(sim.elapsed(), secs(3014));
    assert_eq!(sim.sent.len(), 1 + 301 * 2 + 1);
    assert_eq!(sim.sent[0].target(), "/v2/keys/lp/none");
    assert!(sim.sent[0].is_anchor());
    assert_eq!(kinds(&sim.sent[1..]), format!("{}P", "PC".repeat(301)));
    let polls = polls(&sim.sent);
    assert!(
        polls
            .iter()
            .all(|s| s.target() == "/v2/keys/lp/none?wait=true&waitIndex=4"
                && s.timeout == Some(IDLE))
    );
    let at: Vec<_> = polls.iter().map(|s| s.at).collect();
    let every_ten_seconds: Vec<_> = (0..302).map(|i| secs(10 * i)).collect();
    assert_eq!(at, every_ten_seconds);
    let checks = checks(&sim.sent);
    assert!(checks
        .iter()
        .all(|s| s.target() == "/v2/keys/lp/none?quorum=true"));
    let at: Vec<_> = checks.iter().map(|s| s.at).collect();
    let after_each_poll: Vec<_> = (1..302).map(|i| secs(10 * i)).collect();
    assert_eq!(at, after_each_poll);
    assert_eq!(watch.next_index(), Some(2228));
}

#[test]
fn an_event_between_two_polls_of_a_watch_from_now_is_delivered_by_the_renewal() {
    // The key is written at index 4 right after the first poll timed out and
    // before the renewal reached the server. The member check already reads
    // the new value, but a check never moves the index: the renewal asks for
    // waitIndex=4, and etcd answers it at once from its history.
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/lp/none", WatchOptions::new());
    let event = LP_EVENT.replace("2227", "4");
    let (watch, item) = sim.next(
        watch,
        vec![
            now(404, 3, LP_NONE),
            Reply::TimeOut,
            alive(Duration::ZERO, "/lp/none", 4),
            now(200, 4, &event),
        ],
    );
    let event = changed(item);
    assert_eq!(event.node.modified_index, 4);
    assert_eq!(event.action, Action::Set);
    assert_eq!(kinds(&sim.sent), "RPCP");
    assert_eq!(sim.sent[2].target(), "/v2/keys/lp/none?quorum=true");
    assert_eq!(sim.sent[2].at, IDLE);
    assert_eq!(sim.sent[3].at, IDLE);
    assert_eq!(sim.sent[3].wait_index(), Some(4));
    assert!(sim.sent.iter().all(|s| s.host() == A));
    assert_eq!(watch.next_index(), Some(5));
}

#[test]
fn the_watch_timeout_yields_a_timeout_and_keeps_the_state() {
    // 13 s: one full poll (10 s), its member check, then a poll cut to what
    // is left. The check too is bounded by the watch timeout (3 s, not 5).
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7).timeout(secs(13)));
    let before = watch.clone();
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            Reply::TimeOut,
        ],
    );
    let error = failed(item);
    assert!(is_timeout(&error), "{error:?}");
    assert_eq!(sim.elapsed(), secs(13));
    assert_eq!(kinds(&sim.sent), "PCP");
    let timeouts: Vec<_> = sim.sent.iter().map(|s| s.timeout).collect();
    assert_eq!(timeouts, [Some(IDLE), Some(secs(3)), Some(secs(3))]);
    assert_eq!(watch, before);

    // The timeout is per event: the next call has the whole 13 s again.
    let from = sim.sent.len();
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            answer(secs(1), 200, 5, FOO_EVENT),
        ],
    );
    changed(item);
    assert_eq!(kinds(sim.since(from)), "PCP");
    let timeouts: Vec<_> = sim.since(from).iter().map(|s| s.timeout).collect();
    assert_eq!(timeouts, [Some(IDLE), Some(secs(3)), Some(secs(3))]);
    assert_eq!(watch.next_index(), Some(7));
}

#[test]
fn a_timeout_reported_late_is_still_a_renewal() {
    // The transport noticed its timeout 1.5 s after the renewal time: the
    // member is checked and the poll renewed, as at the renewal time.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7));
    let (_, item) = sim.next(
        watch,
        vec![
            Reply::Fail(IDLE + millis(1_500), TransportErrorKind::Timeout),
            alive(Duration::ZERO, "/k", 6),
            answer(secs(1), 200, 5, &FOO_EVENT.replace(":6,", ":7,")),
        ],
    );
    assert_eq!(changed(item).node.modified_index, 7);
    assert_eq!(kinds(&sim.sent), "PCP");
    assert_eq!(sim.sent[1].at, millis(11_500));
    assert_eq!(sim.sent[1].target(), "/v2/keys/k?quorum=true");
    assert_eq!(sim.sent[2].at, millis(11_500));
    assert_eq!(sim.sent[2].timeout, Some(IDLE));
    assert_eq!(sim.sent[2].wait_index(), Some(7));
}

#[test]
fn no_request_is_sent_once_the_watch_timeout_has_passed() {
    // An empty 200 (or errorCode 400) right at the watch timeout: nothing more
    // is sent (not even with a zero timeout), and the item is a timeout that
    // names the endpoint.
    for (label, last) in [("empty", ""), ("cleared", WATCHER_CLEARED)] {
        let mut sim = Sim::scripted(&[A]);
        let watch = Watch::new("/k", WatchOptions::new().from_index(7).timeout(secs(10)));
        let before = watch.clone();
        let status = if last.is_empty() { 200 } else { 400 };
        let (watch, item) = sim
            .answer_with(watch.next_event(), |sent| {
                if sent.at < secs(10) {
                    answer(secs(10), status, 6, last)
                } else {
                    Reply::TimeOut
                }
            })
            .unwrap()
            .unwrap();
        let error = failed(item);
        assert!(is_deadline_before_send(&error, A), "{label}: {error:?}");
        assert_eq!(watch, before, "{label}");
        assert_eq!(sim.elapsed(), secs(10), "{label}");
        assert_eq!(sim.sent.len(), 1, "{label}: {:?}", sim.sent);
        assert_eq!(sim.sent[0].timeout, Some(secs(10)), "{label}");
    }
}

#[test]
fn the_watch_timeout_ends_the_poll_without_counting_against_the_endpoint() {
    // A poll that runs into the watch timeout is not a failure of the
    // endpoint: no other endpoint is tried, the pin stays, the member list is
    // not refreshed, and the next call polls the same endpoint.
    // The two renewals before it (their checks answered) are not failures
    // either.
    let mut sim = Sim::scripted(&[A, B]);
    sim.cluster.set_discover_members(true);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7).timeout(secs(30)));
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            Reply::TimeOut,
        ],
    );
    let error = failed(item);
    assert!(is_timeout(&error), "{error:?}");
    assert!(
        matches!(&error, Error::Transport(t) if t.endpoint() == A),
        "{error:?}"
    );
    assert_eq!(kinds(&sim.sent), "PCPCP");
    assert!(sim.sent.iter().all(|s| s.host() == A), "{:?}", sim.sent);
    let at: Vec<_> = sim.sent.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(0), secs(10), secs(10), secs(20), secs(20)]);
    assert_eq!(sim.elapsed(), secs(30));
    assert_eq!(sim.cluster.pinned().as_str(), A);
    assert_eq!(watch.next_index(), Some(7));
    let sent = sim.first(watch.next_event());
    assert_eq!(sent.host(), A);
    assert_eq!(sent.wait_index(), Some(7));
}

#[test]
fn a_timeout_before_the_renewal_time_is_retried_not_renewed() {
    // The transport gave up early (its own limit): the Call counts it as a busy
    // endpoint and retries the same poll after a backoff, within the window.
    // No member check: that is only for a poll that reached its renewal time.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7));
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::Fail(secs(3), TransportErrorKind::Timeout),
            answer(secs(1), 200, 5, &FOO_EVENT.replace(":6,", ":7,")),
        ],
    );
    assert_eq!(changed(item).node.modified_index, 7);
    assert_eq!(kinds(&sim.sent), "PP");
    assert_eq!(sim.sent[1].at, secs(3) + millis(50));
    assert_eq!(sim.sent[1].timeout, Some(secs(7) - millis(50)));
    assert_eq!(sim.sent[1].wait_index(), Some(7));
    assert_eq!(watch.next_index(), Some(8));
}

#[test]
fn with_two_endpoints_a_renewal_whose_check_is_answered_stays_on_the_same_endpoint() {
    // An idle renewal is not a failure of the endpoint: its member check goes
    // to the same endpoint, which answers, and the pin stays.
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7));
    let (_, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            alive(millis(20), "/k", 6),
            Reply::TimeOut,
            alive(millis(20), "/k", 6),
            answer(secs(1), 200, 5, FOO_EVENT),
        ],
    );
    changed(item);
    assert_eq!(kinds(&sim.sent), "PCPCP");
    let hosts: Vec<_> = sim.sent.iter().map(|s| s.host().to_owned()).collect();
    assert_eq!(hosts, [A, A, A, A, A]);
    let polls = polls(&sim.sent);
    assert!(polls.iter().all(|s| s.wait_index() == Some(7)));
    let at: Vec<_> = polls.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(0), millis(10_020), millis(20_040)]);
    // B is still untried: a check attempt is capped at a third.
    let checks = checks(&sim.sent);
    let at: Vec<_> = checks.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(10), millis(20_020)]);
    assert!(checks.iter().all(|s| s.timeout == Some(attempt())));
    assert_eq!(sim.cluster.pinned().as_str(), A);
}

#[test]
fn with_member_discovery_a_renewal_does_not_refresh_the_member_list() {
    // Idle renewals are not failures: no member refresh, however many.
    let mut sim = Sim::scripted(&[A, B]);
    sim.cluster.set_discover_members(true);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7));
    let (_, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            answer(secs(1), 200, 5, FOO_EVENT),
        ],
    );
    changed(item);
    let targets: Vec<_> = sim
        .sent
        .iter()
        .map(|s| format!("{}{}", s.host(), s.target()))
        .collect();
    assert_eq!(
        targets,
        [
            format!("{A}/v2/keys/k?wait=true&waitIndex=7"),
            format!("{A}/v2/keys/k?quorum=true"),
            format!("{A}/v2/keys/k?wait=true&waitIndex=7"),
            format!("{A}/v2/keys/k?quorum=true"),
            format!("{A}/v2/keys/k?wait=true&waitIndex=7"),
        ]
    );
}

// ---------------------------------------------------------------------------
// 6b. the member check at each renewal

#[test]
fn a_silent_member_is_left_at_the_next_renewal() {
    // A goes silent: its long poll gets nothing until the renewal time (the
    // idle timeout), and the member check there hangs (or is refused). The
    // check fails over to B, which answers; the next poll goes to B from the
    // same index, and the event arrives there, once.
    for silent in [TransportErrorKind::Timeout, TransportErrorKind::Connect] {
        let mut sim = Sim::scripted(&[A, B, C]);
        let watch = Watch::new("/k", WatchOptions::new().from_index(7));
        let check_on_a = match silent {
            TransportErrorKind::Timeout => Reply::TimeOut,
            kind => Reply::Fail(millis(1), kind),
        };
        let event = FOO_EVENT.replace(":6,", ":7,");
        let (watch, item) = sim.next(
            watch,
            vec![
                Reply::TimeOut,
                check_on_a,
                alive(Duration::ZERO, "/k", 6),
                answer(secs(2), 200, 6, &event),
            ],
        );
        let event = changed(item);
        assert_eq!(event.node.modified_index, 7, "{silent:?}");
        assert_eq!(watch.next_index(), Some(8), "{silent:?}");
        assert_eq!(kinds(&sim.sent), "PCCP", "{silent:?}");
        let hosts: Vec<_> = sim.sent.iter().map(|s| s.host().to_owned()).collect();
        assert_eq!(hosts, [A, A, B, B], "{silent:?}");

        // The check: a quorum read of the key on the member that went quiet,
        // at the renewal time, with the capped attempt timeout (B and C are
        // still untried); then the same read on B, capped too (C is left).
        let (poll, check_a, check_b, renewed) =
            (&sim.sent[0], &sim.sent[1], &sim.sent[2], &sim.sent[3]);
        assert_eq!(check_a.uri, format!("{A}/v2/keys/k?quorum=true"));
        assert_eq!(check_a.param("quorum"), Some("true"));
        assert_eq!(check_a.method, http::Method::GET);
        assert_eq!(check_a.body.len(), 0);
        assert_eq!(check_a.at, IDLE);
        assert_eq!(check_a.timeout, Some(attempt()), "{silent:?}");
        assert_eq!(check_b.uri, format!("{B}/v2/keys/k?quorum=true"));
        assert_eq!(check_b.timeout, Some(attempt()), "{silent:?}");

        // The renewed poll: on B, the same waitIndex, a fresh window.
        assert_eq!(poll.wait_index(), Some(7));
        assert_eq!(renewed.target(), poll.target());
        assert_eq!(renewed.timeout, Some(IDLE));
        // Left within the idle timeout plus one attempt.
        let detection = renewed.at - poll.at;
        assert!(detection <= IDLE + attempt(), "{silent:?}: {detection:?}");
        let expected = match silent {
            TransportErrorKind::Timeout => IDLE + attempt(),
            _ => IDLE + millis(1),
        };
        assert_eq!(detection, expected, "{silent:?}");
        assert_eq!(check_b.at, renewed.at);
        assert_eq!(sim.elapsed(), expected + secs(2));
        assert_eq!(sim.cluster.pinned().as_str(), B, "{silent:?}");
        assert!(sim.sent.iter().all(|s| s.host() != C), "{silent:?}");

        // Delivered once: the next call waits after it, on B.
        let next = sim.first(watch.next_event());
        assert!(next.is_poll(), "{next:?}");
        assert_eq!(next.host(), B);
        assert_eq!(next.wait_index(), Some(8));
    }
}

#[test]
fn a_renewal_check_answered_with_key_not_found_renews_on_the_same_member() {
    // §8d: the watched key does not exist. The member check's quorum read is a
    // 404 (errorCode 100) at the store's current index, 2226: an answer of
    // etcd, so the member is alive. The poll is renewed on the same member,
    // from the same index: the 404's index does not move the watch.
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/lp/none", WatchOptions::new().from_index(4));
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            not_found("/lp/none", 2226),
            answer(secs(3), 200, 3, LP_EVENT),
        ],
    );
    let event = changed(item);
    assert_eq!(event.node.modified_index, 2227);
    assert_eq!(event.node.value.as_deref(), Some("wake"));
    assert_eq!(kinds(&sim.sent), "PCP");
    let hosts: Vec<_> = sim.sent.iter().map(|s| s.host().to_owned()).collect();
    assert_eq!(hosts, [A, A, A]);
    let check = &sim.sent[1];
    assert_eq!(check.target(), "/v2/keys/lp/none?quorum=true");
    assert_eq!(check.at, IDLE);
    assert_eq!(check.timeout, Some(attempt()));
    let renewed = &sim.sent[2];
    assert_eq!(renewed.target(), "/v2/keys/lp/none?wait=true&waitIndex=4");
    assert_eq!(renewed.at, IDLE);
    assert_eq!(renewed.timeout, Some(IDLE));
    assert_eq!(sim.cluster.pinned().as_str(), A);
    assert_eq!(watch.next_index(), Some(2228));
}

#[test]
fn a_check_that_fails_everywhere_yields_the_error_and_the_watch_resumes_from_the_same_index() {
    // Refused everywhere: the error names both members, at once.
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(42));
    let before = watch.clone();
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            Reply::Fail(millis(1), TransportErrorKind::Connect),
            Reply::Fail(millis(1), TransportErrorKind::Connect),
        ],
    );
    let error = failed(item);
    assert_eq!(error.kind(), ErrorKind::Transport);
    match &error {
        Error::Unavailable(u) => {
            let names: Vec<_> = u.failures.iter().map(|(e, _)| e.as_str()).collect();
            assert_eq!(names, [A, B]);
            assert!(u.failures.iter().all(|(_, e)| matches!(
                e,
                Error::Transport(t) if t.kind() == TransportErrorKind::Connect
            )));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(kinds(&sim.sent), "PCC");
    assert_eq!(sim.elapsed(), IDLE + millis(2));
    assert_eq!(watch, before);
    let sent = sim.first(watch.next_event());
    assert!(sent.is_poll(), "{sent:?}");
    assert_eq!(sent.wait_index(), Some(42));
    assert_eq!(sent.timeout, Some(IDLE));

    // Hanging everywhere: every check attempt is capped (each member may
    // still answer: none refused), the rounds go on within the request
    // timeout; then the error, and the next call resumes from the same
    // index and gets the event.
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(42));
    let before = watch.clone();
    let (watch, item) = sim.next(watch, (0..4).map(|_| Reply::TimeOut).collect());
    let error = failed(item);
    assert!(
        matches!(&error, Error::Unavailable(u) if u.failures.len() == 2
            && u.failures.iter().all(|(_, e)| is_timeout(e))),
        "{error:?}"
    );
    assert_eq!(kinds(&sim.sent), "PCCC");
    let hosts: Vec<_> = sim.sent.iter().map(|s| s.host().to_owned()).collect();
    assert_eq!(hosts, [A, A, B, A]);
    for check in &sim.sent[1..] {
        assert!(check.timeout.unwrap() <= attempt(), "{check:?}");
        assert!(
            check.at + check.timeout.unwrap() <= IDLE + secs(5),
            "{check:?}"
        );
    }
    assert_eq!(sim.elapsed(), IDLE + secs(5));
    assert_eq!(watch, before);
    let from = sim.sent.len();
    let event = FOO_EVENT.replace(":6,", ":42,");
    let (watch, item) = sim.next(watch, vec![answer(secs(1), 200, 41, &event)]);
    assert_eq!(changed(item).node.modified_index, 42);
    let again = sim.since(from);
    assert_eq!(kinds(again), "P");
    assert_eq!(again[0].wait_index(), Some(42));
    assert_eq!(watch.next_index(), Some(43));

    // On the only endpoint: it gets the whole request timeout, then the
    // timeout is the item.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(42));
    let before = watch.clone();
    let (watch, item) = sim.next(watch, vec![Reply::TimeOut, Reply::TimeOut]);
    let error = failed(item);
    assert!(is_timeout(&error), "{error:?}");
    assert!(
        matches!(&error, Error::Transport(t) if t.endpoint() == A),
        "{error:?}"
    );
    assert_eq!(kinds(&sim.sent), "PC");
    assert_eq!(sim.sent[1].timeout, Some(secs(5)));
    assert_eq!(sim.elapsed(), IDLE + secs(5));
    assert_eq!(watch, before);
    let sent = sim.first(watch.next_event());
    assert!(sent.is_poll(), "{sent:?}");
    assert_eq!(sent.wait_index(), Some(42));
}

#[test]
fn a_caller_set_poll_interval_overrides_the_idle_timeout_and_set_idle_timeout_sets_the_default() {
    // The default poll lasts the cluster's idle timeout.
    let mut sim = Sim::scripted(&[A]);
    assert_eq!(sim.cluster.idle_timeout(), DEFAULT_IDLE_TIMEOUT);
    let sent = sim.first(Watch::new("/k", WatchOptions::new().from_index(7)).next_event());
    assert_eq!(sent.timeout, Some(DEFAULT_IDLE_TIMEOUT));

    // `set_idle_timeout` changes it, for polls from an index and from now,
    // and renewals (with their member checks) come at that pace.
    let mut sim = Sim::scripted(&[A]);
    sim.cluster.set_idle_timeout(secs(3));
    assert_eq!(sim.cluster.idle_timeout(), secs(3));
    let poll = sim.first_poll(
        Watch::new("/k", WatchOptions::new()).next_event(),
        vec![not_found("/k", 6)],
    );
    assert_eq!(poll.timeout, Some(secs(3)));
    let mut sim = Sim::scripted(&[A]);
    sim.cluster.set_idle_timeout(secs(3));
    let watch = Watch::new("/k", WatchOptions::new().from_index(7));
    let (_, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            answer(secs(1), 200, 6, &FOO_EVENT.replace(":6,", ":7,")),
        ],
    );
    changed(item);
    assert_eq!(kinds(&sim.sent), "PCPCP");
    let at: Vec<_> = sim.sent.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(0), secs(3), secs(3), secs(6), secs(6)]);
    assert!(polls(&sim.sent)
        .iter()
        .all(|s| s.timeout == Some(secs(3)) && s.wait_index() == Some(7)));

    // A caller's poll interval wins over the idle timeout, longer or shorter,
    // and the renewal (with its check) comes at the caller's pace.
    let mut sim = Sim::scripted(&[A]);
    sim.cluster.set_idle_timeout(secs(3));
    let watch = Watch::new(
        "/k",
        WatchOptions::new().from_index(7).poll_interval(secs(60)),
    );
    let (_, item) = sim.next(
        watch,
        vec![
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            answer(secs(1), 200, 6, &FOO_EVENT.replace(":6,", ":7,")),
        ],
    );
    changed(item);
    assert_eq!(kinds(&sim.sent), "PCP");
    let at: Vec<_> = sim.sent.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(0), secs(60), secs(60)]);
    assert!(polls(&sim.sent).iter().all(|s| s.timeout == Some(secs(60))));
    let mut sim = Sim::scripted(&[A]);
    let options = WatchOptions::new().from_index(7).poll_interval(secs(1));
    let sent = sim.first(Watch::new("/k", options).next_event());
    assert_eq!(sent.timeout, Some(secs(1)));

    // The watch timeout still bounds a poll, whatever the idle timeout.
    let mut sim = Sim::scripted(&[A]);
    sim.cluster.set_idle_timeout(secs(30));
    let options = WatchOptions::new().from_index(7).timeout(secs(20));
    let sent = sim.first(Watch::new("/k", options).next_event());
    assert_eq!(sent.timeout, Some(secs(20)));

    // The idle timeout is at least 1 ms.
    let mut sim = Sim::scripted(&[A]);
    sim.cluster.set_idle_timeout(Duration::ZERO);
    let sent = sim.first(Watch::new("/k", WatchOptions::new().from_index(7)).next_event());
    assert_eq!(sent.timeout, Some(millis(1)));
}

// ---------------------------------------------------------------------------
// 7. failover

#[test]
fn a_poll_broken_mid_way_is_sent_again_to_the_other_endpoint() {
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(6));
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::Fail(secs(3), TransportErrorKind::Io),
            answer(secs(1), 200, 5, FOO_EVENT),
        ],
    );
    let event = changed(item);
    assert_eq!(event.node.modified_index, 6);
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(sim.sent[0].host(), A);
    assert_eq!(sim.sent[1].host(), B);
    assert_eq!(sim.sent[0].target(), sim.sent[1].target());
    assert_eq!(sim.sent[1].wait_index(), Some(6));
    assert_eq!(sim.sent[1].at, secs(3));
    // What is left of the renewal window.
    assert_eq!(sim.sent[1].timeout, Some(IDLE - secs(3)));
    assert_eq!(watch.next_index(), Some(7));
    assert_eq!(sim.cluster.pinned().as_str(), B);
    // One event in, one out: the next wait starts right after it.
    let (watch, item) = sim.next(
        watch,
        vec![Reply::Answer(
            secs(1),
            response(200, Some(6), &FOO_EVENT.replace(":6,", ":7,")),
        )],
    );
    assert_eq!(changed(item).node.modified_index, 7);
    assert_eq!(sim.sent[2].host(), B);
    assert_eq!(sim.sent[2].wait_index(), Some(7));
    assert_eq!(watch.next_index(), Some(8));
}

#[test]
fn failover_with_member_discovery_refreshes_the_list_then_polls_the_same_index() {
    let mut sim = Sim::scripted(&[A, B]);
    sim.cluster.set_discover_members(true);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(6));
    let (_, item) = sim.next(
        watch,
        vec![
            Reply::Fail(secs(3), TransportErrorKind::Io),
            now(200, 5, MEMBERS),
            answer(secs(1), 200, 5, FOO_EVENT),
        ],
    );
    changed(item);
    assert_eq!(kinds(&sim.sent), "PMP");
    assert_eq!(sim.sent[1].target(), "/v2/members");
    // The refresh goes to the endpoint the pin moved to. How long it may take
    // is stated by `a_member_refresh_during_a_long_poll_is_bounded_by_the_request_timeout`
    // below (an open machine issue: it gets the rest of the poll's window).
    assert_eq!(sim.sent[1].host(), B);
    assert_eq!(sim.sent[1].at, secs(3));
    assert_eq!(sim.sent[2].host(), B);
    assert_eq!(sim.sent[2].target(), sim.sent[0].target());
    assert_eq!(sim.sent[2].timeout, Some(IDLE - secs(3)));
}

#[test]
fn a_truncated_body_on_shutdown_is_retried_on_the_only_endpoint_after_a_backoff() {
    // §8c: the member closes the connection without the last chunk.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(6));
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::Fail(millis(500), TransportErrorKind::Http),
            Reply::Fail(millis(10), TransportErrorKind::Io),
            answer(secs(1), 200, 5, FOO_EVENT),
        ],
    );
    changed(item);
    assert_eq!(sim.sent.len(), 3);
    assert!(sim
        .sent
        .iter()
        .all(|s| s.host() == A && s.wait_index() == Some(6)));
    let at: Vec<_> = sim.sent.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(0), millis(550), millis(660)]);
    assert_eq!(watch.next_index(), Some(7));
}

#[test]
fn a_member_that_went_down_after_a_truncated_body_yields_an_error() {
    // The retry after the backoff is refused: every endpoint refused, the
    // error is yielded, the index kept.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(6));
    let before = watch.clone();
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::Fail(millis(500), TransportErrorKind::Http),
            Reply::Fail(millis(1), TransportErrorKind::Connect),
        ],
    );
    assert_eq!(failed(item).kind(), ErrorKind::Transport);
    assert_eq!(watch, before);
}

#[test]
fn every_endpoint_refusing_yields_an_error_and_the_next_call_polls_the_same_index() {
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(42));
    let before = watch.clone();
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::Fail(millis(1), TransportErrorKind::Connect),
            Reply::Fail(millis(1), TransportErrorKind::Connect),
        ],
    );
    let error = failed(item);
    assert!(
        matches!(&error, Error::Unavailable(u) if u.failures.len() == 2),
        "{error:?}"
    );
    assert_eq!(watch, before);
    let sent = sim.first(watch.next_event());
    assert!(sent.is_poll());
    assert_eq!(sent.wait_index(), Some(42));
}

#[test]
fn a_flaky_endpoint_then_an_idle_one_renews_instead_of_failing_the_watch() {
    // A breaks 4 s into the poll, the poll moves to B, and B stays idle until
    // the renewal time. B did not fail: it is checked (the pin moved to it),
    // answers, and the poll is renewed on B, no item.
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7));
    let (watch, item) = sim.next(
        watch,
        vec![
            Reply::Fail(secs(4), TransportErrorKind::Io),
            Reply::TimeOut,
            alive(Duration::ZERO, "/k", 6),
            answer(secs(1), 200, 5, &FOO_EVENT.replace(":6,", ":7,")),
        ],
    );
    assert_eq!(changed(item).node.modified_index, 7);
    assert_eq!(kinds(&sim.sent), "PPCP");
    let polls = polls(&sim.sent);
    assert!(polls.iter().all(|s| s.wait_index() == Some(7)));
    let hosts: Vec<_> = sim.sent.iter().map(|s| s.host().to_owned()).collect();
    assert_eq!(hosts, [A, B, B, B]);
    let at: Vec<_> = sim.sent.iter().map(|s| s.at).collect();
    assert_eq!(at, [secs(0), secs(4), secs(10), secs(10)]);
    let timeouts: Vec<_> = sim.sent.iter().map(|s| s.timeout).collect();
    assert_eq!(
        timeouts,
        [Some(IDLE), Some(secs(6)), Some(attempt()), Some(IDLE)]
    );
    assert_eq!(sim.cluster.pinned().as_str(), B);
    assert_eq!(watch.next_index(), Some(8));
}

#[test]
fn a_flaky_endpoint_then_an_idle_one_still_ends_at_the_watch_timeout() {
    // The same, but the renewal time is the watch timeout: the item is the
    // timeout, nothing is sent after it (no member check either).
    let mut sim = Sim::scripted(&[A, B]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7).timeout(IDLE));
    let (watch, item) = sim.next(
        watch,
        vec![Reply::Fail(secs(4), TransportErrorKind::Io), Reply::TimeOut],
    );
    let error = failed(item);
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(
        matches!(&error, Error::Unavailable(u) if u.failures.len() == 2),
        "{error:?}"
    );
    assert_eq!(sim.elapsed(), IDLE);
    assert_eq!(kinds(&sim.sent), "PP");
    assert_eq!(sim.sent[1].timeout, Some(secs(6)));
    assert_eq!(watch.next_index(), Some(7));
}

// ---------------------------------------------------------------------------
// 8. one-shot watches

#[test]
fn once_returns_the_event() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(6));
    let event = sim
        .script(
            watch.once(),
            vec![
                answer(secs(1), 200, 6, ""),
                Reply::TimeOut,
                now(200, 5, FOO_READ),
                answer(secs(1), 200, 5, FOO_EVENT),
            ],
        )
        .unwrap();
    assert_eq!(event.node.value.as_deref(), Some("baz"));
    // A one-shot watch renews (with a member check) like a continuous one.
    assert_eq!(kinds(&sim.sent), "PPCP");
    assert!(polls(&sim.sent).iter().all(|s| s.wait_index() == Some(6)));
    assert_eq!(sim.sent[2].at, secs(1) + IDLE);
    assert_eq!(sim.sent[2].target(), "/v2/keys/samples/foo?quorum=true");
}

#[test]
fn once_reports_history_cleared_without_resyncing() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/hist/a", WatchOptions::new().from_index(4));
    let error = sim
        .script(watch.once(), vec![now(400, 1014, CLEARED_A)])
        .unwrap_err();
    let v2 = error.as_v2().expect("an etcd error");
    assert_eq!(v2.code, V2ErrorCode::EventIndexCleared);
    assert_eq!(v2.code.number(), 401);
    assert_eq!(v2.status, 400);
    assert_eq!(v2.index, 1014);
    assert_eq!(sim.sent.len(), 1);
}

#[test]
fn once_re_polls_a_cleared_watcher_and_times_out_by_its_timeout() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(6).timeout(secs(5)));
    let error = sim
        .script(
            watch.once(),
            vec![answer(secs(1), 400, 20, WATCHER_CLEARED), Reply::TimeOut],
        )
        .unwrap_err();
    assert!(is_timeout(&error), "{error:?}");
    assert_eq!(sim.sent[1].timeout, Some(secs(4)));
    assert_eq!(sim.elapsed(), secs(5));
}

// ---------------------------------------------------------------------------
// 9. an error item hands the state back unchanged

#[test]
fn every_error_item_hands_back_the_same_watch() {
    type Script = fn() -> Vec<Reply>;
    let failures: Vec<(&str, Script)> = vec![
        ("refused", || {
            vec![Reply::Fail(millis(1), TransportErrorKind::Connect)]
        }),
        ("tls", || {
            vec![Reply::Fail(millis(1), TransportErrorKind::Tls)]
        }),
        ("truncated 200", || vec![now(200, 5, TRUNCATED)]),
        ("garbage 200", || vec![now(200, 5, "<html>proxy</html>")]),
        ("unauthorized", || vec![now(401, 0, UNAUTHORIZED)]),
        ("not a directory", || {
            vec![now(
                400,
                5,
                "{\"errorCode\":104,\"message\":\"Not a directory\",\"cause\":\"/k\",\"index\":5}",
            )]
        }),
        ("404 page", || vec![now(404, 5, "404 page not found\n")]),
        ("redirect", || vec![now(307, 5, "")]),
    ];
    for (what, replies) in failures {
        // The poll of a watch from an index fails.
        let mut sim = Sim::scripted(&[A]);
        let watch = Watch::new("/k", WatchOptions::new().from_index(42));
        let before = watch.clone();
        let script = replies();
        let count = script.len();
        let (watch, item) = sim.next(watch, script);
        assert!(item.is_err(), "{what}: {item:?}");
        assert_eq!(watch, before, "{what}");
        assert_eq!(sim.sent.len(), count, "{what}");
        let sent = sim.first(watch.next_event());
        assert!(sent.is_poll(), "{what}");
        assert_eq!(sent.wait_index(), Some(42), "{what}");

        // The anchoring read of a watch from now fails: still from now, and
        // the next call reads again.
        let mut sim = Sim::scripted(&[A]);
        let watch = Watch::new("/k", WatchOptions::new().recursive(true));
        let before = watch.clone();
        let script = replies();
        let count = script.len();
        let (watch, item) = sim.next(watch, script);
        assert!(item.is_err(), "{what}: {item:?}");
        assert_eq!(watch, before, "{what}");
        assert_eq!(watch.next_index(), None, "{what}");
        assert_eq!(sim.sent.len(), count, "{what}");
        assert!(sim.sent.iter().all(Sent::is_anchor), "{what}");
        let sent = sim.first(watch.next_event());
        assert!(sent.is_anchor(), "{what}: {sent:?}");

        // The anchoring read works, then the poll fails: the watch keeps the
        // anchor (and nothing else changed).
        let mut sim = Sim::scripted(&[A]);
        let watch = Watch::new("/k", WatchOptions::new().recursive(true));
        let mut script = vec![not_found("/k", 30)];
        script.extend(replies());
        let count = script.len();
        let (watch, item) = sim.next(watch, script);
        assert!(item.is_err(), "{what}: {item:?}");
        assert_eq!(watch.next_index(), Some(31), "{what}");
        assert_eq!(sim.sent.len(), count, "{what}");
        let sent = sim.first(watch.next_event());
        assert!(sent.is_poll(), "{what}");
        assert_eq!(
            sent.target(),
            "/v2/keys/k?wait=true&recursive=true&waitIndex=31",
            "{what}"
        );
    }
}

#[test]
fn a_5xx_on_the_only_endpoint_is_retried_then_yielded_with_the_same_index() {
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(9).timeout(secs(2)));
    let before = watch.clone();
    let (watch, item) = sim
        .answer_with(watch.next_event(), |_| {
            Reply::Answer(millis(100), response(503, None, "upstream gone\n"))
        })
        .unwrap()
        .unwrap();
    assert_eq!(failed(item).kind(), ErrorKind::Malformed);
    assert!(sim.sent.len() > 1);
    assert!(sim.sent.iter().all(|s| s.wait_index() == Some(9)));
    assert!(sim.elapsed() <= secs(2) + millis(100));
    // Nothing is sent once the deadline has passed.
    assert!(
        sim.sent
            .iter()
            .all(|s| s.at < secs(2) && s.timeout.is_some_and(|t| !t.is_zero())),
        "{:?}",
        sim.sent
    );
    assert_eq!(watch, before);
}

// ---------------------------------------------------------------------------
// the flow contract

#[test]
fn polling_after_done_is_an_out_of_order_error_not_a_panic() {
    let mut cluster = Cluster::from_urls(&[A]).unwrap();
    let t0 = Instant::now();
    let mut flow = Watch::new("/k", WatchOptions::new().from_index(6)).next_event();
    let Step::Transmit(_) = flow.poll(&mut cluster, t0) else {
        panic!("a poll first");
    };
    flow.handle_response(&mut cluster, t0, response(200, Some(5), FOO_EVENT));
    let Step::Done(Ok((watch, Ok(_)))) = flow.poll(&mut cluster, t0) else {
        panic!("the event");
    };
    assert_eq!(watch.next_index(), Some(7));
    match flow.poll(&mut cluster, t0) {
        Step::Done(Err(Error::Usage(_))) => {}
        other => panic!("{other:?}"),
    }
    // Reports nobody asked for are ignored.
    flow.handle_response(&mut cluster, t0, response(200, Some(5), FOO_EVENT));
    flow.handle_failure(&mut cluster, t0, TransportErrorKind::Io, "late".into());
    assert!(matches!(flow.poll(&mut cluster, t0), Step::Done(Err(_))));
}

#[test]
fn polling_twice_without_reporting_is_an_error_not_a_second_request() {
    // Whether the first request is the anchoring read or a poll.
    for options in [WatchOptions::new(), WatchOptions::new().from_index(6)] {
        let mut cluster = Cluster::from_urls(&[A]).unwrap();
        let t0 = Instant::now();
        let mut flow = Watch::new("/k", options.clone()).next_event();
        assert!(matches!(flow.poll(&mut cluster, t0), Step::Transmit(_)));
        match flow.poll(&mut cluster, t0) {
            Step::Done(Ok((_, Err(Error::Usage(_))))) | Step::Done(Err(Error::Usage(_))) => {}
            other => panic!("{options:?}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// index arithmetic: saturating at the top, never going backwards

#[test]
fn an_event_at_the_last_index_does_not_panic() {
    let body = "{\"action\":\"set\",\"node\":{\"key\":\"/k\",\"value\":\"v\",\"modifiedIndex\":18446744073709551615,\"createdIndex\":1}}";
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/k", WatchOptions::new().from_index(1));
    let (watch, item) = sim.next(watch, vec![now(200, 1, body)]);
    assert_eq!(changed(item).node.modified_index, u64::MAX);
    assert_ne!(watch.next_index(), Some(0), "the index must not wrap");
    assert_eq!(watch.next_index(), Some(u64::MAX));
    let sent = sim.first(watch.next_event());
    assert_eq!(sent.wait_index(), Some(u64::MAX));
}

#[test]
fn an_anchor_at_the_last_index_does_not_panic() {
    let gone = "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/k\",\"index\":18446744073709551615}";
    for read in [
        now(200, u64::MAX, FOO_READ),
        Reply::Answer(Duration::ZERO, response(404, None, gone)),
    ] {
        let mut sim = Sim::scripted(&[A]);
        let poll = sim.first_poll(
            Watch::new("/k", WatchOptions::new()).next_event(),
            vec![read],
        );
        assert_eq!(poll.wait_index(), Some(u64::MAX), "the index must not wrap");
    }
}

#[test]
fn an_event_below_the_index_never_moves_it_back() {
    // A confused server (or proxy) answers `waitIndex=10` with an event at 6:
    // it is delivered as it came, and the watch still waits from 10.
    let mut sim = Sim::scripted(&[A]);
    let watch = Watch::new("/samples/foo", WatchOptions::new().from_index(10));
    let (watch, item) = sim.next(watch, vec![now(200, 5, FOO_EVENT)]);
    assert_eq!(changed(item).node.modified_index, 6);
    assert_eq!(watch.next_index(), Some(10));
    // An event at the index itself moves it on by one.
    let event = FOO_EVENT.replace(":6,", ":10,");
    let (watch, item) = sim.next(watch, vec![now(200, 9, &event)]);
    assert_eq!(changed(item).node.modified_index, 10);
    assert_eq!(watch.next_index(), Some(11));
    let waits: Vec<_> = sim.sent.iter().map(Sent::wait_index).collect();
    assert_eq!(waits, [Some(10), Some(10)]);
}

#[test]
fn a_resync_at_the_last_index_does_not_panic() {
    let gone = "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/k\",\"index\":18446744073709551615}";
    for read in [
        now(200, u64::MAX, HIST_A_READ),
        Reply::Answer(Duration::ZERO, response(404, None, gone)),
    ] {
        let mut sim = Sim::scripted(&[A]);
        let watch = Watch::new("/hist/a", WatchOptions::new().from_index(4));
        let (watch, item) = sim.next(watch, vec![now(400, 1014, CLEARED_A), read]);
        assert_eq!(resynced(item).next_index, u64::MAX);
        assert_ne!(watch.next_index(), Some(0), "the index must not wrap");
        assert_eq!(watch.next_index(), Some(u64::MAX));
    }
}

// ---------------------------------------------------------------------------
// open machine issues: these state the contract and fail against the machine
// as it is; they are ignored until the machine is fixed

#[test]
fn no_member_refresh_is_sent_once_the_deadline_has_passed() {
    // The poll breaks (Io) exactly at the watch timeout. That failure asks for
    // a member refresh, and the call sends `GET /v2/members` at 30 s with a
    // timeout of 0 (and marks the refresh as done) before it notices that its
    // deadline has passed.
    let mut sim = Sim::scripted(&[A, B]);
    sim.cluster.set_discover_members(true);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7).timeout(secs(30)));
    let (_, item) = sim
        .answer_with(watch.next_event(), |sent| {
            if sent.is_poll() {
                Reply::Fail(secs(30), TransportErrorKind::Io)
            } else {
                Reply::TimeOut
            }
        })
        .unwrap()
        .unwrap();
    assert_eq!(failed(item).kind(), ErrorKind::Transport);
    assert!(
        sim.sent
            .iter()
            .all(|s| s.at < secs(30) && s.timeout.is_some_and(|t| !t.is_zero())),
        "{:?}",
        sim.sent
    );
}

#[test]
fn the_watch_timeout_bounds_the_anchoring_read() {
    // A watch from now that may wait 1 s for its event, against an endpoint
    // that hangs: the anchoring read takes three attempts and 5 s (the request
    // timeout), and without a request timeout it is sent with no timeout at all.
    for request_timeout in [Some(secs(5)), None] {
        let mut sim = Sim::scripted(&[A]);
        sim.cluster.set_request_timeout(request_timeout);
        let watch = Watch::new("/k", WatchOptions::new().timeout(secs(1)));
        let out = sim.answer_with(watch.next_event(), |sent| match sent.timeout {
            Some(_) => Reply::TimeOut,
            None => Reply::Stop,
        });
        assert!(
            sim.sent
                .iter()
                .all(|s| s.timeout.is_some_and(|t| s.at + t <= secs(1))),
            "{request_timeout:?}: {:?}",
            sim.sent
        );
        let (_, item) = out.expect("the watch ends").unwrap();
        assert!(is_timeout(&failed(item)), "{request_timeout:?}");
        assert!(sim.elapsed() <= secs(1), "{request_timeout:?}");
    }
}

#[test]
fn a_member_refresh_during_a_long_poll_is_bounded_by_the_request_timeout() {
    // The poll on A breaks 3 s in; the poll's call first refreshes the member
    // list (`GET /v2/members`, an ordinary request) on B. That refresh must
    // not wait longer than the request timeout (5 s): a silent B would
    // otherwise hold the watch for the rest of the poll's window — 7 s by
    // default, 897 s with a 900 s poll interval — before the poll is even
    // sent. The machine sends it with the whole rest of the window.
    for interval in [None, Some(secs(900))] {
        let mut sim = Sim::scripted(&[A, B]);
        sim.cluster.set_discover_members(true);
        let mut options = WatchOptions::new().from_index(6);
        if let Some(interval) = interval {
            options = options.poll_interval(interval);
        }
        let out = sim.answer_with(Watch::new("/k", options).next_event(), |sent| {
            if sent.path() == "/v2/members" {
                Reply::Stop
            } else {
                Reply::Fail(secs(3), TransportErrorKind::Io)
            }
        });
        assert!(out.is_none(), "{interval:?}: {:?}", sim.sent);
        assert_eq!(kinds(&sim.sent), "PM", "{interval:?}");
        let refresh = &sim.sent[1];
        assert_eq!(refresh.host(), B);
        assert!(
            refresh.timeout.is_some_and(|t| t <= secs(5)),
            "{interval:?}: {refresh:?}"
        );
    }
}

#[test]
fn a_check_answered_with_5xx_by_the_only_member_yields_the_error() {
    // A member that answers every quorum read with a 500 (raft timed out: it
    // has lost its quorum) failed the check. With two members answering so,
    // the check fails everywhere and the error is the item; with one member,
    // the call's last failure is that same etcd error, and the machine takes
    // it for an answer (`Error::Etcd`: "alive") and renews the poll on the
    // member that just failed, for ever, without a word to the caller.
    const RAFT_TIMEOUT: &str = "{\"errorCode\":300,\"message\":\"Raft Internal Error\",\"cause\":\"etcdserver: request timed out\",\"index\":0}\n";
    for urls in [&[A, B][..], &[A][..]] {
        let mut sim = Sim::scripted(urls);
        let watch = Watch::new("/k", WatchOptions::new().from_index(7));
        let before = watch.clone();
        let mut polls = 0;
        let out = sim.answer_with(watch.next_event(), |sent| {
            if sent.is_poll() {
                polls += 1;
                if polls > 1 {
                    return Reply::Stop;
                }
                return Reply::TimeOut;
            }
            Reply::Answer(millis(500), response(500, Some(20), RAFT_TIMEOUT))
        });
        let (watch, item) = out
            .unwrap_or_else(|| {
                panic!(
                    "{urls:?}: renewed after a failed check: {}",
                    kinds(&sim.sent)
                )
            })
            .unwrap();
        let error = failed(item);
        if urls.len() == 1 {
            // The call's own failure: the member's raft error.
            let v2 = error.as_v2().expect("the member's error");
            assert_eq!(v2.code.number(), 300, "{error:?}");
            assert_eq!(v2.status, 500, "{error:?}");
        } else {
            assert!(
                matches!(&error, Error::Unavailable(u) if u.failures.len() == 2),
                "{error:?}"
            );
        }
        assert_eq!(watch, before, "{urls:?}");
        assert_eq!(&kinds(&sim.sent)[..1], "P", "{urls:?}");
        assert!(kinds(&sim.sent)[1..].chars().all(|k| k == 'C'), "{urls:?}");
        assert_eq!(polls, 1, "{urls:?}");
    }
}

#[test]
fn without_a_request_timeout_the_member_check_still_has_a_timeout() {
    // `set_request_timeout(None)` and no watch timeout: the member check is
    // sent with no timeout at all, so a silent member hangs the watch for
    // ever — the very liveness bug the check is there to fix. The cluster's
    // own rule for such probes is the request timeout, or the idle timeout
    // without one.
    let mut sim = Sim::scripted(&[A, B]);
    sim.cluster.set_request_timeout(None);
    let watch = Watch::new("/k", WatchOptions::new().from_index(7));
    let out = sim.answer_with(watch.next_event(), |sent| {
        if sent.is_poll() {
            Reply::TimeOut
        } else {
            Reply::Stop
        }
    });
    assert!(out.is_none());
    assert_eq!(kinds(&sim.sent), "PC");
    let check = &sim.sent[1];
    assert!(check.timeout.is_some_and(|t| t <= IDLE), "{check:?}");
}

// ---------------------------------------------------------------------------
// 10. property tests

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => 100u16..=599,
        2 => prop::sample::select(vec![200u16, 201, 204, 307, 400, 401, 403, 404, 412, 500, 503]),
    ]
}

/// Index-like numbers, biased to edges (`u64::MAX` included: index arithmetic
/// saturates).
fn index() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..2_000,
        1 => prop::sample::select(vec![0, 1, u64::from(u32::MAX), i64::MAX as u64, u64::MAX - 1, u64::MAX]),
        1 => any::<u64>(),
    ]
}

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = prop::sample::select(vec![
        "x-etcd-index",
        "X-Etcd-Index",
        "x-raft-index",
        "x-raft-term",
        "x-etcd-cluster-id",
        "content-type",
        "location",
        "transfer-encoding",
    ]);
    let value = prop_oneof![
        index().prop_map(|i| i.to_string().into_bytes()),
        Just(b"18446744073709551616".to_vec()),
        Just(b"-1".to_vec()),
        Just(b" 12 ".to_vec()),
        prop::collection::vec(any::<u8>(), 0..24),
    ];
    (name.prop_map(str::to_owned), value)
}

fn seed_body() -> impl Strategy<Value = String> {
    let event = (index(), "[a-z/_]{0,12}", any::<bool>()).prop_map(|(i, key, dir)| {
        format!(
            "{{\"action\":\"set\",\"node\":{{\"key\":\"/{key}\",{}\"modifiedIndex\":{i},\"createdIndex\":{i}}}}}\n",
            if dir { "\"dir\":true," } else { "\"value\":\"v\"," }
        )
    });
    let error = (
        prop::sample::select(vec![100u32, 104, 110, 300, 301, 400, 401, 500, 999]),
        index(),
    )
        .prop_map(|(code, i)| {
            format!("{{\"errorCode\":{code},\"message\":\"m\",\"cause\":\"c\",\"index\":{i}}}\n")
        });
    prop_oneof![
        event,
        error,
        Just(String::new()),
        Just("\n".to_owned()),
        Just(FOO_EVENT.to_owned()),
        Just(LP_EVENT.to_owned()),
        Just(CLEARED_A.to_owned()),
        Just(HIST_A_READ.to_owned()),
        Just(HIST_DIR_READ.to_owned()),
        Just(HIST_A_GONE.to_owned()),
        Just(WATCHER_CLEARED.to_owned()),
        Just(TRUNCATED.to_owned()),
        Just("{\"action\":\"set\"}".to_owned()),
        Just("{\"action\":\"set\",\"node\":null}".to_owned()),
        Just("[]".to_owned()),
        Just("null".to_owned()),
    ]
}

/// A recorded or generated body, possibly cut or with a byte changed, or noise.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => seed_body().prop_map(String::into_bytes),
        2 => (seed_body(), any::<prop::sample::Index>()).prop_map(|(b, cut)| {
            let bytes = b.into_bytes();
            let at = if bytes.is_empty() { 0 } else { cut.index(bytes.len()) };
            bytes[..at].to_vec()
        }),
        2 => (seed_body(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(b, at, byte)| {
            let mut bytes = b.into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes
        }),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

#[derive(Debug, Clone)]
struct Raw {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Raw {
    fn response(&self) -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::from(self.body.clone()));
        *response.status_mut() = http::StatusCode::from_u16(self.status).unwrap();
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

fn raw() -> impl Strategy<Value = Raw> {
    (status(), prop::collection::vec(header(), 0..4), body()).prop_map(|(status, headers, body)| {
        Raw {
            status,
            headers,
            body,
        }
    })
}

/// One scripted outcome of a request in the random-script property.
#[derive(Debug, Clone)]
enum Act {
    Respond(u64, Raw),
    /// A well-formed answer to a read of `/w` at this X-Etcd-Index (found, or
    /// a 404), so that watches from now get past their anchoring read often.
    Read(u64, bool),
    Fail(u64, TransportErrorKind),
    TimeOut,
}

impl Act {
    fn reply(&self) -> Reply {
        match self {
            Act::Respond(ms, raw) => Reply::Answer(millis(*ms), raw.response()),
            Act::Read(index, found) => Reply::Answer(Duration::ZERO, read_of_w(*index, *found)),
            Act::Fail(ms, kind) => Reply::Fail(millis(*ms), *kind),
            Act::TimeOut => Reply::TimeOut,
        }
    }

    /// The same answer again (responses are not `Clone`), if it is one.
    fn response(&self) -> Option<http::Response<Bytes>> {
        match self {
            Act::Respond(_, raw) => Some(raw.response()),
            Act::Read(index, found) => Some(read_of_w(*index, *found)),
            Act::Fail(..) | Act::TimeOut => None,
        }
    }
}

fn read_of_w(index: u64, found: bool) -> http::Response<Bytes> {
    if found {
        let body = format!(
            "{{\"action\":\"get\",\"node\":{{\"key\":\"/w\",\"value\":\"v\",\"modifiedIndex\":{index},\"createdIndex\":{index}}}}}\n"
        );
        response(200, Some(index), &body)
    } else {
        let body = format!(
            "{{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/w\",\"index\":{index}}}\n"
        );
        response(404, Some(index), &body)
    }
}

/// Where a watch from now continues if its anchoring read ends with
/// `response` (`None`: the read failed and the watch is still from now). The
/// oracle is the read's own parser: X-Etcd-Index + 1, or the `index` + 1 of
/// an errorCode 100.
fn anchor_of(response: http::Response<Bytes>) -> Option<u64> {
    let index = match Read::new("/w").parse(response) {
        Ok(read) => read.meta.etcd_index,
        Err(e) if e.is_key_not_found() => e.as_v2().map(|v| v.index),
        Err(_) => None,
    };
    index.map(|i| i.saturating_add(1))
}

fn act() -> impl Strategy<Value = Act> {
    let kind = prop::sample::select(vec![
        TransportErrorKind::Connect,
        TransportErrorKind::Timeout,
        TransportErrorKind::Io,
        TransportErrorKind::Http,
        TransportErrorKind::Tls,
    ]);
    prop_oneof![
        5 => (0u64..90_000, raw()).prop_map(|(ms, raw)| Act::Respond(ms, raw)),
        1 => (index(), any::<bool>()).prop_map(|(i, found)| Act::Read(i, found)),
        2 => (0u64..90_000, kind).prop_map(|(ms, kind)| Act::Fail(ms, kind)),
        2 => Just(Act::TimeOut),
    ]
}

fn options() -> impl Strategy<Value = WatchOptions> {
    (
        any::<bool>(),
        prop::option::of(index()),
        prop::option::of(0u64..200_000),
        prop::option::of(0u64..120_000),
    )
        .prop_map(|(recursive, from, timeout, interval)| {
            let mut o = WatchOptions::new().recursive(recursive);
            if let Some(i) = from {
                o = o.from_index(i);
            }
            if let Some(ms) = timeout {
                o = o.timeout(millis(ms));
            }
            if let Some(ms) = interval {
                o = o.poll_interval(millis(ms));
            }
            o
        })
}

/// Runs `f` on a thread and fails if it does not finish in time: a flow that
/// loops inside `poll` without returning would otherwise hang the test run.
fn with_watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(secs(60)) {
        Ok(()) => handle.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("a flow kept running inside poll() for 60 s")
        }
    }
}

/// Drives a chain of `next_event`s with `acts`, checking the invariants after
/// each item. Returns the number of items.
///
/// A watch from now first reads the key (the anchoring read); from then on
/// every poll carries the watch's index. An event moves the index to just
/// after it (never back), a resync to the resync's index, an error leaves it
/// where it was (or at the anchor, if the anchoring read of this call worked).
fn run_random(urls: &[&str], discover: bool, options: WatchOptions, acts: &[Act]) -> usize {
    let mut sim = Sim::scripted(urls);
    sim.cluster.set_discover_members(discover);
    let mut acts = acts.iter();
    let mut watch = Watch::new("/w", options);
    let mut items = 0;
    loop {
        let before = watch.clone();
        let mut out_of_acts = false;
        // The index this call's polls must carry, once it is known.
        let mut from = before.next_index();
        // An anchoring read answered 5xx is a failure and the call goes on,
        // but if that failure is all the call has when it gives up, and its
        // body is an errorCode 100, the watch anchors on it: such indexes are
        // candidates until a poll or the item tells.
        let mut candidates: Vec<u64> = Vec::new();
        let mut settled = false;
        let mut polled = None;
        let result = sim.answer_with(watch.next_event(), |sent| {
            // Every request targets the watched key (or the member list), and
            // every long poll has a timeout and a waitIndex.
            assert!(
                sent.path() == "/v2/keys/w" || sent.path() == "/v2/members",
                "{sent:?}"
            );
            let anchor = sent.is_anchor();
            if sent.is_poll() {
                assert!(sent.timeout.is_some(), "{sent:?}");
                let wait = sent.wait_index();
                assert!(wait.is_some(), "a poll without waitIndex: {sent:?}");
                if from.is_none() && !settled {
                    assert!(wait.is_some_and(|w| candidates.contains(&w)), "{sent:?}");
                    from = wait;
                }
                assert_eq!(wait, from, "{sent:?}");
                polled = wait;
            } else if anchor {
                // Only a watch from now reads to anchor, and before any poll.
                assert_eq!(before.next_index(), None, "{sent:?}");
                assert_eq!(from, None, "{sent:?}");
                assert_eq!(polled, None, "{sent:?}");
            }
            let Some(act) = acts.next() else {
                out_of_acts = true;
                return Reply::Stop;
            };
            if let Some(response) = act.response().filter(|_| anchor) {
                if response.status().is_server_error() {
                    candidates.extend(anchor_of(response));
                } else {
                    // Any other answer ends the read: this is the anchor.
                    from = anchor_of(response);
                    settled = true;
                }
            }
            act.reply()
        });
        let Some(result) = result else {
            assert!(out_of_acts);
            return items;
        };
        let (next, item) = result.expect("NextEvent never fails as a flow when driven in order");
        items += 1;
        match &item {
            Ok(WatchEvent::Changed(event)) => {
                let waited = polled.expect("an event answers a poll");
                let after = event.node.modified_index.saturating_add(1);
                assert_eq!(next.next_index(), Some(waited.max(after)));
            }
            Ok(WatchEvent::Resynced(resync)) => {
                assert_eq!(next.next_index(), Some(resync.next_index));
                assert_eq!(resync.cleared.code, V2ErrorCode::EventIndexCleared);
            }
            Err(_) if from.is_none() && !settled => assert!(
                next.next_index().is_none_or(|n| candidates.contains(&n)),
                "{next:?}"
            ),
            Err(_) => assert_eq!(next.next_index(), from),
        }
        watch = next;
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// `WaitForEvent::parse` survives any status, headers and body, and only
    /// accepts what it should.
    #[test]
    fn wait_for_event_parse_never_panics(raw in raw(), recursive in any::<bool>()) {
        let op = WaitForEvent::new("/w", recursive, Some(3), None);
        let success = (200..300).contains(&raw.status);
        let blank = raw.body.iter().all(u8::is_ascii_whitespace);
        match op.parse(raw.response()) {
            Ok(None) => prop_assert!(success && blank, "{raw:?}"),
            Ok(Some(event)) => {
                prop_assert!(success && !blank, "{raw:?}");
                prop_assert_eq!(event.new_key, raw.status == 201);
            }
            Err(e) => {
                prop_assert!(!(success && blank), "{raw:?}: {e}");
                let _ = e.to_string();
            }
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Random answers and failures: the flow never panics, every item keeps
    /// the index invariants, and it never spins without sending or sleeping.
    #[test]
    fn next_event_survives_random_scripts(
        two in any::<bool>(),
        discover in any::<bool>(),
        options in options(),
        acts in prop::collection::vec(act(), 0..40),
    ) {
        with_watchdog(move || {
            let urls: &[&str] = if two { &[A, B] } else { &[A] };
            run_random(urls, discover, options, &acts)
        });
    }

    /// A small model server whose store changes over virtual time, faults
    /// injected: a watch from index 1 gets every event, a watch from now every
    /// event after its anchoring read; each exactly once, in order, whatever
    /// fails (or is renewed) in between.
    #[test]
    fn model_server_no_event_lost_or_duplicated(
        gaps in prop::collection::vec((1u64..4, 0u64..90_000), 1..12),
        faults in prop::collection::vec(0u8..7, 0..40),
        two in any::<bool>(),
        from_now in any::<bool>(),
    ) {
        let mut events = Vec::new();
        let (mut index, mut at) = (5, Duration::ZERO);
        for (gap, ms) in gaps {
            index += gap;
            at += millis(ms);
            events.push((index, at));
        }
        let run = with_watchdog(move || model_run(&events, &faults, two, from_now));
        prop_assert_eq!(&run.delivered, &run.expected);
        prop_assert_eq!(run.anchor.is_some(), from_now);
    }
}

/// What a [`model_run`] saw.
#[derive(Debug)]
struct ModelRun {
    delivered: Vec<u64>,
    expected: Vec<u64>,
    errors: usize,
    /// The store index the anchoring read found (a watch from now).
    anchor: Option<u64>,
    /// Member checks sent (one or more after each idle renewal).
    checks: usize,
}

/// The body of an event on a child of `/m`.
fn model_event(i: u64) -> String {
    format!(
        "{{\"action\":\"set\",\"node\":{{\"key\":\"/m/k{i}\",\"value\":\"{i}\",\"modifiedIndex\":{i},\"createdIndex\":{i}}}}}\n"
    )
}

/// Runs a recursive watch of `/m`, from index 1 or from now, against a model
/// server whose store starts at index 5 and takes the `events` —
/// `(modifiedIndex, when)`, in order — on children of `/m`. `faults` decide
/// the first requests' fates (0: normal, 1: Io after 2 s, 2: empty 200,
/// 3: errorCode 400, 4: truncated body (Http), 5: refused, 6: a hung
/// connection that runs into its timeout). Past the faults, the server answers
/// an anchoring read or a member check with its current index (a 404 while
/// `/m` is still missing), and a poll with the first event at or after
/// `waitIndex` as soon as it has happened, or holds it until its timeout. A
/// member check is only ever sent after a poll that ran into its timeout (or
/// after a check that failed). The run ends when a poll waits past the last
/// event; every item's invariants are checked on the way.
fn model_run(events: &[(u64, Duration)], faults: &[u8], two: bool, from_now: bool) -> ModelRun {
    let urls: &[&str] = if two { &[A, B] } else { &[A] };
    let mut sim = Sim::scripted(urls);
    let mut faults = faults.iter().copied();
    let mut options = WatchOptions::new().recursive(true);
    if !from_now {
        options = options.from_index(1);
    }
    let mut watch = Watch::new("/m", options);
    let mut delivered: Vec<u64> = Vec::new();
    let mut errors = 0;
    let mut calls = 0;
    let mut anchor: Option<u64> = None;
    let mut checks = 0;
    // What the previous request was and how it ended: a check may only follow
    // a poll that timed out, or a check (a retry or a failover).
    let mut check_may_follow;
    // Indexes above this one are to be delivered (all of them from index 1).
    let floor = |anchor: Option<u64>| if from_now { anchor } else { Some(0) };
    // The store as a read at `at` finds it: its index, and `/m` once written.
    let store = |at: Duration| {
        let current = events
            .iter()
            .filter(|(_, when)| *when <= at)
            .map(|(i, _)| *i)
            .next_back();
        let reply = match current {
            None => now(404, 5, "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"/m\",\"index\":5}\n"),
            Some(i) => now(200, i, "{\"action\":\"get\",\"node\":{\"key\":\"/m\",\"dir\":true,\"modifiedIndex\":6,\"createdIndex\":6}}\n"),
        };
        (current.unwrap_or(5), reply)
    };
    loop {
        calls += 1;
        assert!(calls < 500, "the watch does not get through");
        let before = watch.next_index();
        let anchored_before = anchor;
        // A new call starts with a poll or its anchoring read, never a check.
        check_may_follow = false;
        let result = sim.answer_with(watch.next_event(), |sent| {
            let fault = faults.next().unwrap_or(0);
            let check = sent.is_check();
            if sent.is_anchor() {
                assert!(
                    from_now && anchor.is_none(),
                    "an anchoring read too many: {sent:?}"
                );
            } else if check {
                assert_eq!(sent.target(), "/v2/keys/m?quorum=true");
                assert!(check_may_follow, "a check not after a renewal: {sent:?}");
                assert!(
                    floor(anchor).is_some(),
                    "a check before the anchor: {sent:?}"
                );
                checks += 1;
            } else {
                assert!(sent.is_poll(), "{sent:?}");
                assert!(
                    floor(anchor).is_some(),
                    "a poll before the anchor: {sent:?}"
                );
            }
            let reply = match fault {
                1 => Reply::Fail(secs(2), TransportErrorKind::Io),
                2 => answer(secs(1), 200, 4, ""),
                3 => answer(secs(1), 400, 4, WATCHER_CLEARED),
                4 => Reply::Fail(millis(300), TransportErrorKind::Http),
                5 => Reply::Fail(Duration::ZERO, TransportErrorKind::Connect),
                6 => Reply::TimeOut,
                _ if sent.is_anchor() => {
                    let (index, reply) = store(sent.at);
                    anchor = Some(index);
                    reply
                }
                _ if check => store(sent.at).1,
                _ => {
                    let wait = sent.wait_index().expect("every poll carries a waitIndex");
                    let Some(&(i, at)) = events.iter().find(|(i, _)| *i >= wait) else {
                        // Nothing more will happen: the run is over.
                        return Reply::Stop;
                    };
                    let timeout = sent.timeout.expect("a poll has a timeout");
                    if at <= sent.at {
                        answer(millis(100), 200, 4, &model_event(i))
                    } else if at < sent.at + timeout {
                        answer(at - sent.at, 200, 4, &model_event(i))
                    } else {
                        Reply::TimeOut
                    }
                }
            };
            // A check follows a poll that reached its timeout, or a check
            // that failed (retried or failed over); an answered check is
            // followed by a poll.
            check_may_follow = match &reply {
                Reply::TimeOut | Reply::Fail(_, TransportErrorKind::Timeout) => {
                    sent.is_poll() || check
                }
                Reply::Fail(..) => check,
                Reply::Answer(..) | Reply::Stop => false,
                _ => unreachable!("no model behind this run"),
            };
            reply
        });
        let Some(result) = result else { break };
        let (next, item) = result.expect("NextEvent never fails as a flow");
        let expected_next = floor(anchor).map(|f| {
            events
                .iter()
                .map(|(i, _)| *i)
                .filter(|&i| i > f)
                .nth(delivered.len())
        });
        match item {
            Ok(WatchEvent::Changed(event)) => {
                let i = event.node.modified_index;
                assert_eq!(expected_next, Some(Some(i)), "every event once, in order");
                delivered.push(i);
                assert_eq!(next.next_index(), Some(i + 1));
            }
            Ok(WatchEvent::Resynced(r)) => panic!("no history was cleared: {r:?}"),
            Err(_) => {
                errors += 1;
                // Unchanged, or the anchor this call's read found.
                let anchored_now = anchor.filter(|_| anchored_before.is_none());
                assert_eq!(next.next_index(), before.or(anchored_now.map(|a| a + 1)));
            }
        }
        watch = next;
    }
    let expected: Vec<u64> = match floor(anchor) {
        Some(f) => events.iter().map(|(i, _)| *i).filter(|&i| i > f).collect(),
        None => Vec::new(),
    };
    assert_eq!(delivered, expected, "every event once, in order");
    ModelRun {
        delivered,
        expected,
        errors,
        anchor,
        checks,
    }
}

#[test]
fn model_server_sanity() {
    // From index 1, with faults everywhere: all four events, few error items.
    let events = [(6, secs(0)), (7, secs(0)), (9, secs(30)), (12, secs(200))];
    let run = model_run(&events, &[1, 2, 3, 4, 5, 6, 0, 1, 1, 1, 5, 5], true, false);
    assert_eq!(run.delivered, [6, 7, 9, 12]);
    assert_eq!(run.anchor, None);
    assert!(run.errors <= 2, "{}", run.errors);
    let run = model_run(&[(6, secs(0))], &[], false, false);
    assert_eq!(run.delivered, [6]);
    assert_eq!(run.checks, 0);

    // The member check at the first renewal (10 s) hangs on A: it fails over
    // to B, which answers, and the watch goes on there; nothing is lost.
    let run = model_run(&[(6, secs(25))], &[0, 6], true, false);
    assert_eq!(run.delivered, [6]);
    assert_eq!(run.errors, 0);
    assert_eq!(run.checks, 3);
    // On the only endpoint, a refused check is an error item; the next call
    // polls from the same index and gets the event.
    let run = model_run(&[(6, secs(25))], &[0, 5], false, false);
    assert_eq!(run.delivered, [6]);
    assert_eq!(run.errors, 1);
    assert_eq!(run.checks, 2);
    assert_eq!(run.delivered, [6]);

    // From now: the read at 0 s finds index 5 (a 404), and the one event comes
    // 150 s later, after fifteen idle renewals (every 10 s), each after one
    // member check.
    let run = model_run(&[(6, secs(150))], &[], false, true);
    assert_eq!(run.anchor, Some(5));
    assert_eq!(run.delivered, [6]);
    assert_eq!(run.errors, 0);
    assert_eq!(run.checks, 15);

    // From now, but the first read breaks after 2 s: the retry at 2.05 s finds
    // index 6 (written at 1 s), so 6 is not delivered and 7 and 9 are.
    let events = [(6, secs(1)), (7, secs(100)), (9, secs(130))];
    let run = model_run(&events, &[1], false, true);
    assert_eq!(run.anchor, Some(6));
    assert_eq!(run.delivered, [7, 9]);
    assert_eq!(run.errors, 0);
}
