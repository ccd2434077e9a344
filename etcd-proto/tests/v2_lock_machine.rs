//! The v2 lock recipe (`etcd_proto::v2::lock`) — `AcquireLock`, `RefreshLock`,
//! `ReleaseLock`, `CheckLock` and `KeepLock` — driven in virtual time against
//! a small in-memory model of an etcd v2 lock directory.
//!
//! The model keeps keys (values, TTLs, created/modified indexes), the etcd
//! index and the event history, and answers what the recipe sends, with the
//! body shapes of `etcd-samples-3.4.txt`: the in-order `POST` (201 `create`),
//! the sorted quorum listing (with `X-Etcd-Index`), recursive
//! `wait=true&waitIndex=N` long polls (at once from history, errorCode 401
//! once history was cleared, or parked until a matching event or the
//! request's own timeout), guarded `PUT … refresh=true` (no watcher event)
//! and `DELETE …?prevValue=` (404/100, 412/101). `now` moves only on
//! `Step::Sleep`, on parked polls and on scripted slow answers; TTLs run out
//! on that clock. Faults (lost answers, refused connections, canned answers,
//! compaction) are scripted per request. No server, no clock, no threads.
//!
//! Case counts are kept small; set `PROPTEST_CASES=2000` for a longer run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::v2::lock::uuid_from;
use etcd_proto::v2::{AcquireLock, HeldLock, Hold, KeepLock, LockError, LockOptions};
use etcd_proto::{Cluster, Error, ErrorKind, Flow, Input, Step, TransportErrorKind};
use proptest::prelude::*;
use serde_json::{json, Value};

const A: &str = "http://127.0.0.1:23790";
const B: &str = "http://127.0.0.1:23791";
/// The lock directory of `AcquireLock::new("n", …)` under the default prefix.
const DIR: &str = "/_locks/n";

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The in-order key etcd makes at `index` in the lock directory.
fn key(index: u64) -> String {
    format!("{DIR}/{index:020}")
}

// ---------------------------------------------------------------------------
// requests as the model sees them

/// One request a flow sent, decoded.
#[derive(Debug, Clone)]
struct Sent {
    method: http::Method,
    uri: String,
    /// The key after `/v2/keys`, percent-decoded.
    key: String,
    query: Vec<(String, String)>,
    form: Vec<(String, String)>,
    content_type: Option<String>,
    timeout: Option<Duration>,
    /// Virtual time when it was sent.
    at: Duration,
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .expect("UTF-8 after decoding")
        .into_owned()
}

fn pairs(s: &str) -> Vec<(String, String)> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

impl Sent {
    fn new(request: &http::Request<Bytes>, timeout: Option<Duration>, at: Duration) -> Sent {
        let uri = request.uri().to_string();
        let key = request
            .uri()
            .path()
            .strip_prefix("/v2/keys")
            .unwrap_or_else(|| panic!("not a v2 keys request: {uri}"));
        Sent {
            method: request.method().clone(),
            key: decode(key),
            query: request.uri().query().map(pairs).unwrap_or_default(),
            form: pairs(std::str::from_utf8(request.body()).expect("a UTF-8 body")),
            content_type: request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned()),
            timeout,
            at,
            uri,
        }
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// What the request is, in a word.
    fn kind(&self) -> &'static str {
        match self.method.as_str() {
            "POST" => "POST",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            "GET" if self.param("wait") == Some("true") => "POLL",
            "GET" if self.param("recursive") == Some("true") => "RESYNC",
            "GET" if self.param("sorted") == Some("true") => "LIST",
            _ => "GET",
        }
    }

    fn wait_index(&self) -> u64 {
        self.param("waitIndex")
            .expect("the lock always watches from an index")
            .parse()
            .expect("a numeric waitIndex")
    }

    /// When the request's own timeout runs out.
    fn ends(&self) -> Option<Duration> {
        self.timeout.map(|t| self.at + t)
    }

    /// The form or query as sorted pairs, for order-free comparison.
    fn sorted(pairs: &[(String, String)]) -> Vec<(String, String)> {
        let mut pairs = pairs.to_vec();
        pairs.sort();
        pairs
    }
}

fn kinds(sent: &[Sent]) -> Vec<&'static str> {
    sent.iter().map(Sent::kind).collect()
}

fn of_kind<'a>(sent: &'a [Sent], kind: &str) -> Vec<&'a Sent> {
    sent.iter().filter(|s| s.kind() == kind).collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    pairs.sort();
    pairs
}

/// The exact form of a guarded refresh.
fn refresh_form(uuid: &str, ttl: u64) -> Vec<(String, String)> {
    owned(&[
        ("ttl", &ttl.to_string()),
        ("refresh", "true"),
        ("prevExist", "true"),
        ("prevValue", uuid),
    ])
}

// ---------------------------------------------------------------------------
// the model of the lock directory

#[derive(Debug, Clone)]
struct Entry {
    value: String,
    created: u64,
    modified: u64,
    expires: Option<Duration>,
}

#[derive(Debug)]
struct Event {
    index: u64,
    key: String,
    body: String,
}

/// A tiny etcd v2 store: keys, directories, the index and the history.
#[derive(Debug)]
struct Model {
    now: Duration,
    index: u64,
    keys: BTreeMap<String, Entry>,
    dirs: BTreeMap<String, u64>,
    history: Vec<Event>,
    /// Events below this index were compacted away (errorCode 401).
    first_kept: u64,
    /// Keys whose TTL ran out on the model's clock.
    natural_expiries: Vec<String>,
}

fn parent(key: &str) -> &str {
    match key.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &key[..i],
    }
}

fn stamp(at: Duration) -> String {
    let s = at.as_secs();
    format!(
        "2026-11-21T06:{:02}:{:02}.{:09}Z",
        (s / 60) % 60,
        s % 60,
        at.subsec_nanos()
    )
}

fn respond(status: u16, index: u64, body: &str) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-etcd-cluster-id", "26f366baf1040dbd")
        .header("x-etcd-index", index.to_string())
        .body(Bytes::from(body.to_owned()))
        .unwrap()
}

fn etcd_error(
    status: u16,
    code: u32,
    message: &str,
    cause: &str,
    index: u64,
) -> http::Response<Bytes> {
    let body = json!({"errorCode": code, "message": message, "cause": cause, "index": index});
    respond(status, index, &format!("{body}\n"))
}

impl Model {
    /// An empty store at etcd index `index` (the next write gets `index + 1`).
    fn new(index: u64) -> Model {
        Model {
            now: Duration::ZERO,
            index,
            keys: BTreeMap::new(),
            dirs: BTreeMap::new(),
            history: Vec::new(),
            first_kept: 1,
            natural_expiries: Vec::new(),
        }
    }

    fn node(&self, key: &str, e: &Entry) -> Value {
        let mut node = json!({
            "key": key,
            "value": e.value,
            "modifiedIndex": e.modified,
            "createdIndex": e.created,
        });
        if let Some(at) = e.expires {
            let left = at.saturating_sub(self.now);
            let ttl = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            node["expiration"] = json!(stamp(at));
            node["ttl"] = json!(ttl);
        }
        node
    }

    /// Adds an event at the current index; returns its body.
    fn record(&mut self, key: &str, body: Value) -> String {
        let body = format!("{body}\n");
        self.history.push(Event {
            index: self.index,
            key: key.to_owned(),
            body: body.clone(),
        });
        body
    }

    fn make_parents(&mut self, key: &str) {
        let mut dir = parent(key);
        while dir != "/" {
            self.dirs.entry(dir.to_owned()).or_insert(self.index);
            dir = parent(dir);
        }
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(|e| e.value.as_str())
    }

    /// The lock order of `dir`: its direct non-directory children, sorted.
    fn queue(&self, dir: &str) -> Vec<String> {
        self.keys
            .keys()
            .filter(|k| parent(k) == dir)
            .cloned()
            .collect()
    }

    /// Every key holding `value`.
    fn holding(&self, value: &str) -> Vec<String> {
        self.keys
            .iter()
            .filter(|(_, e)| e.value == value)
            .map(|(k, _)| k.clone())
            .collect()
    }

    // --- what third parties do -------------------------------------------

    /// Appends an in-order key (another client queueing).
    fn append(&mut self, dir: &str, value: &str, ttl: Option<u64>) -> String {
        self.index += 1;
        let key = format!("{dir}/{:020}", self.index);
        let entry = Entry {
            value: value.to_owned(),
            created: self.index,
            modified: self.index,
            expires: ttl.map(|t| self.now + secs(t)),
        };
        self.make_parents(&key);
        let body = json!({"action": "create", "node": self.node(&key, &entry)});
        self.keys.insert(key.clone(), entry);
        self.record(&key, body);
        key
    }

    /// An unconditional, permanent set.
    fn set(&mut self, key: &str, value: &str) {
        self.index += 1;
        let prev = self.keys.get(key).cloned();
        let entry = Entry {
            value: value.to_owned(),
            created: prev.as_ref().map_or(self.index, |p| p.created),
            modified: self.index,
            expires: None,
        };
        self.make_parents(key);
        let mut body = json!({"action": "set", "node": self.node(key, &entry)});
        if let Some(prev) = &prev {
            body["prevNode"] = self.node(key, prev);
        }
        self.keys.insert(key.to_owned(), entry);
        self.record(key, body);
    }

    /// Removes `key` with `action` (`delete`, `compareAndDelete`, `expire`).
    fn remove(&mut self, key: &str, action: &str) -> Option<String> {
        let prev = self.keys.remove(key)?;
        self.index += 1;
        let body = json!({
            "action": action,
            "node": {"key": key, "modifiedIndex": self.index, "createdIndex": prev.created},
            "prevNode": self.node(key, &prev),
        });
        Some(self.record(key, body))
    }

    fn delete(&mut self, key: &str) -> bool {
        self.remove(key, "delete").is_some()
    }

    fn compare_and_delete(&mut self, key: &str) -> bool {
        self.remove(key, "compareAndDelete").is_some()
    }

    /// The key's TTL runs out now.
    fn expire(&mut self, key: &str) -> bool {
        self.remove(key, "expire").is_some()
    }

    /// More than 1000 events went by: older indexes answer errorCode 401.
    fn clear_history(&mut self) {
        self.first_kept = self.index + 1;
    }

    fn next_expiry(&self) -> Option<Duration> {
        self.keys.values().filter_map(|e| e.expires).min()
    }

    /// Moves the clock to `t`, expiring keys on the way.
    fn advance_to(&mut self, t: Duration) {
        loop {
            let due = self
                .keys
                .iter()
                .filter_map(|(k, e)| e.expires.map(|at| (at, k.clone())))
                .filter(|(at, _)| *at <= t)
                .min();
            let Some((at, key)) = due else { break };
            self.now = self.now.max(at);
            self.remove(&key, "expire");
            self.natural_expiries.push(key);
        }
        self.now = self.now.max(t);
    }

    // --- what the flows send ---------------------------------------------

    /// The answer to `s`; `None` for a long poll that has to wait.
    fn serve(&mut self, s: &Sent) -> Option<http::Response<Bytes>> {
        match s.kind() {
            "POLL" => self.poll(s, false),
            "POST" => Some(self.append_request(s)),
            "PUT" => Some(self.refresh_request(s)),
            "DELETE" => Some(self.delete_request(s)),
            "GET" | "LIST" | "RESYNC" => Some(self.read(s)),
            other => panic!("unexpected {other}"),
        }
    }

    fn not_found(&self, key: &str) -> http::Response<Bytes> {
        etcd_error(404, 100, "Key not found", key, self.index)
    }

    fn compare_failed(&self, prev: &str, current: &str) -> http::Response<Bytes> {
        let cause = format!("[{prev} != {current}]");
        etcd_error(412, 101, "Compare failed", &cause, self.index)
    }

    fn append_request(&mut self, s: &Sent) -> http::Response<Bytes> {
        assert!(s.query.is_empty(), "an append has no query: {}", s.uri);
        let names: Vec<&str> = s.form.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names == ["value", "ttl"],
            "an append sends its value and TTL only: {:?}",
            s.form
        );
        let ttl = s.field("ttl").map(|t| t.parse().expect("a numeric ttl"));
        let value = s.field("value").unwrap().to_owned();
        let key = self.append(&s.key, &value, ttl);
        let body = self.history.last().expect("the create event").body.clone();
        assert!(body.contains(&key));
        respond(201, self.index, &body)
    }

    fn refresh_request(&mut self, s: &Sent) -> http::Response<Bytes> {
        assert!(
            s.query.is_empty(),
            "the refresh's conditions go in its form"
        );
        assert_eq!(s.field("refresh"), Some("true"), "{:?}", s.form);
        assert_eq!(s.field("prevExist"), Some("true"), "{:?}", s.form);
        assert_eq!(s.field("value"), None, "a refresh sends no value");
        let ttl: u64 = s
            .field("ttl")
            .expect("a refresh has a ttl")
            .parse()
            .expect("a numeric ttl");
        let Some(current) = self.keys.get(&s.key).cloned() else {
            return self.not_found(&s.key);
        };
        if let Some(prev) = s.field("prevValue") {
            if prev != current.value {
                return self.compare_failed(prev, &current.value);
            }
        }
        self.index += 1;
        let mut entry = current.clone();
        entry.modified = self.index;
        entry.expires = Some(self.now + secs(ttl));
        let action = if s.field("prevValue").is_some() {
            "compareAndSwap"
        } else {
            "update"
        };
        let body = json!({
            "action": action,
            "node": self.node(&s.key, &entry),
            "prevNode": self.node(&s.key, &current),
        });
        self.keys.insert(s.key.clone(), entry);
        // refresh=true: no watcher is told, and history scans skip it.
        respond(200, self.index, &format!("{body}\n"))
    }

    fn delete_request(&mut self, s: &Sent) -> http::Response<Bytes> {
        assert!(s.form.is_empty(), "a delete has no body");
        for (name, _) in &s.query {
            assert_eq!(name, "prevValue", "unexpected delete option in {}", s.uri);
        }
        let Some(current) = self.keys.get(&s.key) else {
            return self.not_found(&s.key);
        };
        let action = match s.param("prevValue") {
            Some(prev) if prev != current.value => {
                return self.compare_failed(prev, &current.value.clone())
            }
            Some(_) => "compareAndDelete",
            None => "delete",
        };
        let body = self.remove(&s.key, action).expect("present");
        respond(200, self.index, &body)
    }

    fn dir_node(&self, dir: &str, created: u64, recursive: bool, sorted: bool) -> Value {
        let mut children: Vec<(&String, bool)> = self
            .keys
            .keys()
            .map(|k| (k, false))
            .chain(self.dirs.keys().map(|k| (k, true)))
            .filter(|(k, _)| parent(k) == dir)
            .collect();
        children.sort();
        if !sorted {
            // Go map order: anything but sorted.
            children.reverse();
        }
        let nodes: Vec<Value> = children
            .into_iter()
            .map(|(k, is_dir)| match (is_dir, recursive) {
                (true, true) => self.dir_node(k, self.dirs[k], true, sorted),
                (true, false) => json!({
                    "key": k, "dir": true,
                    "modifiedIndex": self.dirs[k], "createdIndex": self.dirs[k],
                }),
                (false, _) => self.node(k, &self.keys[k]),
            })
            .collect();
        let mut node =
            json!({"key": dir, "dir": true, "modifiedIndex": created, "createdIndex": created});
        if !nodes.is_empty() {
            node["nodes"] = Value::Array(nodes);
        }
        node
    }

    fn read(&self, s: &Sent) -> http::Response<Bytes> {
        let recursive = s.param("recursive") == Some("true");
        let sorted = s.param("sorted") == Some("true");
        let node = if let Some(e) = self.keys.get(&s.key) {
            self.node(&s.key, e)
        } else if let Some(created) = self.dirs.get(&s.key) {
            self.dir_node(&s.key, *created, recursive, sorted)
        } else {
            return self.not_found(&s.key);
        };
        let body = json!({"action": "get", "node": node});
        respond(200, self.index, &format!("{body}\n"))
    }

    /// A long poll: the first event at or after its `waitIndex` on its key
    /// (or under it). At request time from history (errorCode 401 if that
    /// was cleared); `live`: a parked poll woken by a new event.
    fn poll(&self, s: &Sent, live: bool) -> Option<http::Response<Bytes>> {
        let from = s.wait_index();
        if !live && from < self.first_kept {
            let cause = format!(
                "the requested history has been cleared [{}/{from}]",
                self.first_kept
            );
            return Some(etcd_error(
                400,
                401,
                "The event in requested index is outdated and cleared",
                &cause,
                self.index,
            ));
        }
        let recursive = s.param("recursive") == Some("true");
        let under = format!("{}/", s.key);
        let hit = self.history.iter().find(|e| {
            e.index >= from && (e.key == s.key || (recursive && e.key.starts_with(&under)))
        })?;
        Some(respond(200, self.index, &hit.body))
    }
}

// ---------------------------------------------------------------------------
// the virtual-time driver of one flow

/// What happens to one request, decided per request by a test's hook.
enum Fault {
    /// The model answers at once (a long poll: when its event comes).
    Serve,
    /// The model acts when the request arrives; the answer comes this late.
    Slow(Duration),
    /// No complete answer; `applied`: the model acted on it anyway.
    Lost {
        applied: bool,
        kind: TransportErrorKind,
    },
    /// Nothing comes back before the request's own timeout.
    Hang { applied: bool },
    /// This answer instead of the model's.
    Reply(http::Response<Bytes>),
}

type Hook = Box<dyn FnMut(&Sent, &mut Model) -> Fault>;
type Action = Box<dyn FnOnce(&mut Model)>;

struct Sim {
    cluster: Cluster,
    start: Instant,
    now: Instant,
    model: Model,
    sent: Vec<Sent>,
    /// Every `Step::Sleep`: (when, until).
    sleeps: Vec<(Duration, Duration)>,
    /// Third-party actions on the model, by virtual time.
    timeline: Vec<(Duration, Action)>,
    hook: Hook,
    /// When the caller stops the flow ([`Input::Stop`]), and whether it was told.
    stop: Option<(Duration, bool)>,
}

impl Sim {
    /// One endpoint, no member discovery, a store at index 11 (the first
    /// write is index 12, as in the brief's example).
    fn new() -> Sim {
        let mut cluster = Cluster::from_urls(&[A]).unwrap();
        cluster.set_discover_members(false);
        let start = Instant::now();
        Sim {
            cluster,
            start,
            now: start,
            model: Model::new(11),
            sent: Vec::new(),
            sleeps: Vec::new(),
            timeline: Vec::new(),
            hook: Box::new(|_, _| Fault::Serve),
            stop: None,
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Runs `action` on the model at virtual time `t`.
    fn at(&mut self, t: Duration, action: impl FnOnce(&mut Model) + 'static) {
        let i = self.timeline.partition_point(|(x, _)| *x <= t);
        self.timeline.insert(i, (t, Box::new(action)));
    }

    /// Stops the flow at `t`, as a guard's handle does: a sleep through `t`
    /// is cut short there (the driver is woken), and the flow is told.
    fn stop_at(&mut self, t: Duration) {
        self.stop = Some((t, false));
    }

    /// Decides each request's fate.
    fn hook(&mut self, hook: impl FnMut(&Sent, &mut Model) -> Fault + 'static) {
        self.hook = Box::new(hook);
    }

    /// The next time something happens to the model, if by `limit`.
    fn next_change(&self, limit: Duration) -> Option<Duration> {
        let scheduled = self.timeline.first().map(|(t, _)| *t);
        [scheduled, self.model.next_expiry()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.max(self.elapsed()))
            .filter(|t| *t <= limit)
    }

    fn apply_at(&mut self, t: Duration) {
        let t = t.max(self.elapsed());
        self.model.advance_to(t);
        while self.timeline.first().is_some_and(|(x, _)| *x <= t) {
            let (_, action) = self.timeline.remove(0);
            action(&mut self.model);
        }
        self.now = self.start + t;
    }

    fn advance(&mut self, to: Instant) {
        let limit = to - self.start;
        while let Some(t) = self.next_change(limit) {
            self.apply_at(t);
        }
        self.apply_at(limit);
    }

    /// A parked long poll: its answer when an event comes, or `None` at its timeout.
    fn park(&mut self, sent: &Sent) -> Option<http::Response<Bytes>> {
        let ends = sent.ends();
        loop {
            match self.next_change(ends.unwrap_or(Duration::MAX)) {
                Some(t) => {
                    self.apply_at(t);
                    if let Some(answer) = self.model.poll(sent, true) {
                        return Some(answer);
                    }
                }
                None => {
                    let ends = ends.unwrap_or_else(|| panic!("{sent:?} would wait forever"));
                    self.apply_at(ends);
                    return None;
                }
            }
        }
    }

    /// Drives `flow` to its end.
    fn run<F: Flow>(&mut self, flow: &mut F) -> Result<F::Output, Error> {
        loop {
            assert!(self.sent.len() < 10_000, "the flow never ends");
            assert!(self.sleeps.len() < 100_000, "the flow sleeps forever");
            if let Some((at, told @ false)) = &mut self.stop {
                if *at <= self.now - self.start {
                    *told = true;
                    flow.handle(&mut self.cluster, self.now, Input::Stop);
                }
            }
            match flow.poll(&mut self.cluster, self.now) {
                Step::Transmit(t) => {
                    let sent = Sent::new(&t.request, t.timeout, self.elapsed());
                    self.sent.push(sent.clone());
                    match (self.hook)(&sent, &mut self.model) {
                        Fault::Serve => match self.model.serve(&sent) {
                            Some(answer) => {
                                flow.handle_response(&mut self.cluster, self.now, answer)
                            }
                            None => match self.park(&sent) {
                                Some(answer) => {
                                    flow.handle_response(&mut self.cluster, self.now, answer)
                                }
                                None => flow.handle_failure(
                                    &mut self.cluster,
                                    self.now,
                                    TransportErrorKind::Timeout,
                                    "timed out".into(),
                                ),
                            },
                        },
                        Fault::Slow(after) => {
                            let answer = self.model.serve(&sent).expect("not a parked poll");
                            self.advance(self.now + after);
                            flow.handle_response(&mut self.cluster, self.now, answer);
                        }
                        Fault::Lost { applied, kind } => {
                            if applied {
                                let _ = self.model.serve(&sent);
                            }
                            flow.handle_failure(
                                &mut self.cluster,
                                self.now,
                                kind,
                                "scripted".into(),
                            );
                        }
                        Fault::Hang { applied } => {
                            if applied {
                                let _ = self.model.serve(&sent);
                            }
                            let timeout =
                                sent.timeout.expect("a request that can hang has a timeout");
                            self.advance(self.now + timeout);
                            flow.handle_failure(
                                &mut self.cluster,
                                self.now,
                                TransportErrorKind::Timeout,
                                "timed out".into(),
                            );
                        }
                        Fault::Reply(answer) => {
                            flow.handle_response(&mut self.cluster, self.now, answer)
                        }
                    }
                }
                Step::Sleep(until) => {
                    assert!(until > self.now, "a sleep moves time forward");
                    self.sleeps.push((self.elapsed(), until - self.start));
                    let woken = match self.stop {
                        Some((at, false)) => until.min(self.start + at),
                        _ => until,
                    };
                    self.advance(woken);
                }
                Step::Done(result) => return result,
            }
        }
    }
}

fn lock_error<T: std::fmt::Debug>(result: Result<T, Error>) -> LockError {
    match result {
        Err(Error::Lock(e)) => e,
        other => panic!("expected a lock error, got {other:?}"),
    }
}

fn expired(k: &str) -> LockError {
    LockError::Expired { key: k.to_owned() }
}

/// A lock of `DIR` as this test file's flows hold it.
fn held(k: &str, uuid: &str, index: u64, ttl: u64) -> HeldLock {
    HeldLock {
        path: DIR.to_owned(),
        key: k.to_owned(),
        uuid: uuid.to_owned(),
        index,
        ttl,
        hold: Hold::KeepAlive,
    }
}

/// Removes a key from the model, `true` if it was there.
type Remove = fn(&mut Model, &str) -> bool;

/// The three ways a key leaves the directory, as etcd reports them.
const GONE: [(&str, Remove); 3] = [
    ("delete", Model::delete),
    ("expire", Model::expire),
    ("compareAndDelete", Model::compare_and_delete),
];

// ---------------------------------------------------------------------------
// 1. uncontended acquisition

#[test]
fn uncontended_acquisition_appends_our_uuid_then_lists_once() {
    let mut sim = Sim::new();
    let mut flow = AcquireLock::new("n", LockOptions::new(), 2);
    let uuid = flow.uuid().to_owned();
    assert_eq!(flow.path(), DIR);
    let lock = sim
        .run(&mut flow)
        .unwrap()
        .expect("an uncontended lock is held");

    assert_eq!(kinds(&sim.sent), ["POST", "LIST"]);
    let post = &sim.sent[0];
    assert_eq!(post.uri, format!("{A}/v2/keys/_locks/n"));
    assert_eq!(
        post.form,
        [("value".into(), uuid.clone()), ("ttl".into(), "60".into())]
    );
    assert_eq!(
        post.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let list = &sim.sent[1];
    assert_eq!(
        list.uri,
        format!("{A}/v2/keys/_locks/n?sorted=true&quorum=true")
    );
    assert!(list.form.is_empty());

    assert_eq!(lock, held(&key(12), &uuid, 12, 60));
    assert_eq!(lock.refresh_interval(), secs(20));
    assert_eq!(sim.elapsed(), Duration::ZERO);
    assert_eq!(sim.model.value(&key(12)), Some(uuid.as_str()));
    assert_eq!(sim.model.keys[&key(12)].expires, Some(secs(60)));
}

#[test]
fn options_shape_the_path_and_ttl() {
    let mut sim = Sim::new();
    let mut flow = AcquireLock::new("/jobs", LockOptions::new().prefix("/locks/").ttl(0), 3);
    assert_eq!(flow.path(), "/locks/jobs");
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(sim.sent[0].uri, format!("{A}/v2/keys/locks/jobs"));
    assert_eq!(
        sim.sent[0].field("ttl"),
        Some("1"),
        "the TTL is at least 1 s"
    );
    assert_eq!(lock.key, format!("/locks/jobs/{:020}", 12));
    assert_eq!(lock.ttl, 1);
    assert_eq!(lock.refresh_interval(), millis(333));
    assert_eq!(LockOptions::new().ttl(7).ttl_seconds(), 7);
    assert_eq!(LockOptions::new().hold_mode(), Hold::KeepAlive);
}

#[test]
fn every_acquisition_queues_with_a_fresh_uuid() {
    let a = AcquireLock::new("n", LockOptions::new(), 4);
    let b = AcquireLock::new("n", LockOptions::new(), 5);
    assert_ne!(a.uuid(), b.uuid());
    for uuid in [a.uuid().to_owned(), uuid_from(0xfeed)] {
        assert_eq!(uuid.len(), 32, "{uuid}");
        assert!(uuid
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}

#[test]
fn a_hard_maximum_lock_refreshes_once_at_acquisition() {
    let mut sim = Sim::new();
    // The listing is answered 5 s late: the TTL must count from acquisition.
    sim.hook(|sent, _| match sent.kind() {
        "LIST" => Fault::Slow(secs(5)),
        _ => Fault::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(30).hold(Hold::MaxTtl), 6);
    let uuid = flow.uuid().to_owned();
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "PUT"]);
    let put = &sim.sent[2];
    assert_eq!(
        put.uri,
        format!("{A}/v2/keys{}", key(12)),
        "no query: {}",
        put.uri
    );
    assert_eq!(Sent::sorted(&put.form), refresh_form(&uuid, 30));
    assert_eq!(put.at, secs(5));
    assert_eq!(sim.model.keys[&key(12)].expires, Some(secs(35)));
    assert_eq!(
        lock,
        HeldLock {
            hold: Hold::MaxTtl,
            ..held(&key(12), &uuid, 12, 30)
        }
    );
}

#[test]
fn a_hard_maximum_refresh_that_finds_the_key_gone_is_expired() {
    for (code, status) in [(100, 404), (101, 412)] {
        let mut sim = Sim::new();
        sim.hook(move |sent, model| match sent.kind() {
            "PUT" => Fault::Reply(etcd_error(status, code, "gone", &sent.key, model.index)),
            _ => Fault::Serve,
        });
        let mut flow = AcquireLock::new("n", LockOptions::new().hold(Hold::MaxTtl), 7);
        assert_eq!(lock_error(sim.run(&mut flow)), expired(&key(12)));
        assert_eq!(
            kinds(&sim.sent),
            ["POST", "LIST", "PUT"],
            "no cleanup of a lost key"
        );
    }
}

// ---------------------------------------------------------------------------
// 2. contended acquisition

#[test]
fn a_waiter_watches_from_the_listing_and_only_its_predecessor_leaving_counts() {
    for (action, gone) in GONE {
        let mut sim = Sim::new();
        let pred = sim.model.append(DIR, "other", Some(60)); // 12
        let p = pred.clone();
        sim.at(secs(1), |m| m.set(&format!("{DIR}/sub/x"), "1")); // 14: under the directory
        sim.at(secs(2), |m| m.set("/elsewhere", "1")); // 15: not under it, never delivered
        sim.at(secs(3), |m| {
            m.append(DIR, "late", Some(60)); // 16: a later key
        });
        sim.at(secs(4), |m| {
            m.delete(&key(16)); // 17: a later key leaving
        });
        sim.at(secs(5), move |m| m.set(&p, "changed")); // 18: the predecessor, not gone
        let p = pred.clone();
        sim.at(secs(6), move |m| {
            assert!(gone(m, &p)); // 19
        });
        let mut flow = AcquireLock::new("n", LockOptions::new(), 8);
        let uuid = flow.uuid().to_owned();
        let lock = sim.run(&mut flow).unwrap().expect("acquired");
        assert_eq!(lock, held(&key(13), &uuid, 13, 60), "{action}");
        assert_eq!(
            kinds(&sim.sent),
            ["POST", "LIST", "POLL", "POLL", "POLL", "POLL", "POLL", "LIST"],
            "{action}"
        );
        let polls = of_kind(&sim.sent, "POLL");
        let from: Vec<u64> = polls.iter().map(|p| p.wait_index()).collect();
        // The listing said X-Etcd-Index 13; then each event's index + 1.
        assert_eq!(from, [14, 15, 17, 18, 19], "{action}");
        assert_eq!(
            polls[0].uri,
            format!("{A}/v2/keys/_locks/n?wait=true&recursive=true&waitIndex=14")
        );
        for poll in &polls {
            // Every wait lasts the idle timeout (10 s), which ends it before
            // the first refresh (a third of 60 s).
            assert_eq!(poll.timeout, Some(secs(10)), "{poll:?}");
        }
        assert_eq!(
            sim.sent[7].at,
            secs(6),
            "re-listed when the predecessor left"
        );
        assert_eq!(sim.elapsed(), secs(6));
    }
}

#[test]
fn in_a_three_deep_queue_only_the_direct_predecessor_matters() {
    // The first in line leaves first: nothing to do yet.
    let mut sim = Sim::new();
    let first = sim.model.append(DIR, "first", Some(60)); // 12
    let second = sim.model.append(DIR, "second", Some(60)); // 13
    sim.at(secs(1), move |m| {
        m.delete(&first); // 15
    });
    sim.at(secs(2), move |m| {
        m.delete(&second); // 16
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 9);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(14));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "POLL", "LIST"]);
    assert_eq!(sim.sent[4].at, secs(2));

    // The direct predecessor leaves first: re-list, then wait for the first.
    let mut sim = Sim::new();
    let first = sim.model.append(DIR, "first", Some(60)); // 12
    let second = sim.model.append(DIR, "second", Some(60)); // 13
    sim.at(secs(1), move |m| {
        m.delete(&second); // 15
    });
    sim.at(secs(2), move |m| {
        m.expire(&first); // 16
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 10);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(14));
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "LIST", "POLL", "LIST"]
    );
    let polls = of_kind(&sim.sent, "POLL");
    assert_eq!(polls[0].wait_index(), 15);
    assert_eq!(
        polls[1].wait_index(),
        16,
        "from the second listing's index + 1"
    );
    assert_eq!(polls[1].at, secs(1));
    assert_eq!(sim.elapsed(), secs(2));
}

// ---------------------------------------------------------------------------
// 3. our own key vanishing

#[test]
fn our_key_vanishing_while_waiting_is_expired_at_once() {
    for (action, gone) in GONE {
        let mut sim = Sim::new();
        sim.model.append(DIR, "other", Some(60)); // 12
        sim.at(secs(1), move |m| {
            assert!(gone(m, &key(13)));
        });
        let mut flow = AcquireLock::new("n", LockOptions::new(), 11);
        assert_eq!(
            lock_error(sim.run(&mut flow)),
            expired(&key(13)),
            "{action}"
        );
        // No listing, and no cleanup of a key that is gone.
        assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL"], "{action}");
        assert_eq!(sim.elapsed(), secs(1));
    }
}

#[test]
fn our_key_missing_from_a_listing_is_expired() {
    let mut sim = Sim::new();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    sim.at(secs(1), move |m| {
        m.delete(&pred); // 14: the poll wakes on this
        m.expire(&key(13)); // 15: gone before the listing
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 12);
    assert_eq!(lock_error(sim.run(&mut flow)), expired(&key(13)));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "LIST"]);
}

/// `CheckLock` holds a lock only while its first key *holds our uuid*;
/// `AcquireLock` matches our key by name alone. A key whose value was
/// replaced while we waited is acquired as ours when it comes first, so
/// the flow hands out a lock that `check()` at once says is not held (and
/// that `release()` cannot release).
#[test]
fn a_key_overwritten_while_waiting_is_not_acquired() {
    let mut sim = Sim::new();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    sim.at(millis(1_500), |m| m.set(&key(13), "thief")); // not ours any more
    sim.at(millis(1_700), move |m| {
        m.delete(&pred);
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 13);
    let result = sim.run(&mut flow);
    if let Ok(Some(lock)) = &result {
        assert!(
            sim.run(&mut lock.check()).unwrap(),
            "acquired {lock:?}, but the key holds {:?}",
            sim.model.value(&lock.key)
        );
    }
    assert_eq!(lock_error(result), expired(&key(13)));
}

// ---------------------------------------------------------------------------
// 4. refreshes while waiting

#[test]
fn a_waiting_key_is_refreshed_every_third_of_its_ttl() {
    let mut sim = Sim::new();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    sim.at(millis(10_500), move |m| {
        m.delete(&pred);
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3), 14);
    let uuid = flow.uuid().to_owned();
    let lock = sim.run(&mut flow).unwrap().expect("acquired after 10.5 s");
    assert_eq!(lock.index, 13);
    let puts = of_kind(&sim.sent, "PUT");
    let at: Vec<Duration> = puts.iter().map(|p| p.at).collect();
    assert_eq!(at, (1..=10).map(secs).collect::<Vec<_>>());
    for put in &puts {
        assert_eq!(put.uri, format!("{A}/v2/keys{}", key(13)));
        assert_eq!(Sent::sorted(&put.form), refresh_form(&uuid, 3));
    }
    // Every wait ends by the next refresh; refreshes wake no watcher, so the
    // watch goes on from the same index.
    let polls = of_kind(&sim.sent, "POLL");
    assert_eq!(polls.len(), 11);
    for poll in &polls {
        assert_eq!(poll.wait_index(), 14);
        let next_second = secs(poll.at.as_secs() + 1);
        assert!(poll.ends().unwrap() <= next_second, "{poll:?}");
    }
    assert_eq!(sim.sent.last().unwrap().kind(), "LIST");
    assert_eq!(sim.elapsed(), millis(10_500));
    // Without the refreshes it would have expired at 3 s.
    assert_eq!(sim.model.keys[&key(13)].expires, Some(secs(13)));
    assert!(sim.model.natural_expiries.is_empty());
}

#[test]
fn a_refresh_finding_our_key_replaced_is_expired() {
    let mut sim = Sim::new();
    sim.model.append(DIR, "other", Some(60)); // 12
    sim.at(millis(1_500), |m| m.set(&key(13), "thief")); // 15, after the refresh at 1 s (14)
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3), 15);
    assert_eq!(lock_error(sim.run(&mut flow)), expired(&key(13)));
    // The set is an event on our key, but not its end: skipped; the next
    // refresh (412, errorCode 101) tells. The key is not ours: no cleanup.
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "PUT", "POLL", "POLL", "PUT"]
    );
    assert_eq!(sim.sent[6].at, secs(2));
    assert_eq!(sim.model.value(&key(13)), Some("thief"));
}

#[test]
fn a_refresh_finding_our_key_gone_is_expired() {
    let mut sim = Sim::new();
    sim.model.append(DIR, "other", Some(60)); // 12
    let mut puts = 0;
    sim.hook(move |sent, model| {
        if sent.kind() == "PUT" {
            puts += 1;
            if puts == 2 {
                return Fault::Reply(etcd_error(
                    404,
                    100,
                    "Key not found",
                    &sent.key,
                    model.index,
                ));
            }
        }
        Fault::Serve
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3), 16);
    assert_eq!(lock_error(sim.run(&mut flow)), expired(&key(13)));
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "PUT", "POLL", "PUT"]
    );
    assert_eq!(sim.elapsed(), secs(2));
}

#[test]
fn an_acquisition_failing_for_another_reason_removes_its_key() {
    // The one endpoint refuses the refresh: the flow gives up with that error,
    // deleting its key (guarded by its uuid) on the way out.
    let mut sim = Sim::new();
    sim.model.append(DIR, "other", Some(60)); // 12
    let mut refused = false;
    sim.hook(move |sent, _| match sent.kind() {
        "PUT" if !refused => {
            refused = true;
            Fault::Lost {
                applied: false,
                kind: TransportErrorKind::Connect,
            }
        }
        _ => Fault::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3), 17);
    let uuid = flow.uuid().to_owned();
    let error = sim.run(&mut flow).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:?}");
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "PUT", "DELETE"]);
    let delete = &sim.sent[4];
    assert_eq!(delete.param("prevValue"), Some(uuid.as_str()));
    assert!(sim.model.holding(&uuid).is_empty());

    // So does a watch that fails outright.
    let mut sim = Sim::new();
    sim.model.append(DIR, "other", Some(60));
    sim.hook(|sent, _| match sent.kind() {
        "POLL" => Fault::Lost {
            applied: false,
            kind: TransportErrorKind::Connect,
        },
        _ => Fault::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 18);
    let uuid = flow.uuid().to_owned();
    assert_eq!(sim.run(&mut flow).unwrap_err().kind(), ErrorKind::Transport);
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "DELETE"]);
    assert!(sim.model.holding(&uuid).is_empty());
}

// ---------------------------------------------------------------------------
// 5. the deadline

#[test]
fn at_the_deadline_our_key_is_deleted_and_the_wait_times_out() {
    let mut sim = Sim::new();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12, never leaves
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3).timeout(millis(2_500)), 19);
    let uuid = flow.uuid().to_owned();
    assert_eq!(
        lock_error(sim.run(&mut flow)),
        LockError::TimedOut { path: DIR.into() }
    );
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "PUT", "POLL", "PUT", "POLL", "DELETE"]
    );
    let (cleanup, before) = sim.sent.split_last().unwrap();
    assert_eq!(cleanup.at, millis(2_500));
    assert_eq!(
        cleanup.uri,
        format!("{A}/v2/keys{}?prevValue={uuid}", key(13))
    );
    for sent in before {
        assert!(sent.at < millis(2_500), "{sent:?}");
    }
    for poll in of_kind(&sim.sent, "POLL") {
        assert!(poll.ends().unwrap() <= millis(2_500), "{poll:?}");
    }
    assert_eq!(sim.elapsed(), millis(2_500));
    assert!(sim.model.holding(&uuid).is_empty());
    assert_eq!(sim.model.queue(DIR), [pred]);
}

#[test]
fn a_deadline_without_refreshes_due_cuts_the_wait_short() {
    let mut sim = Sim::new();
    sim.model.append(DIR, "other", Some(60));
    let mut flow = AcquireLock::new("n", LockOptions::new().timeout(millis(700)), 20);
    assert!(matches!(
        lock_error(sim.run(&mut flow)),
        LockError::TimedOut { .. }
    ));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "DELETE"]);
    assert_eq!(sim.sent[2].ends(), Some(millis(700)));
    assert_eq!(sim.sent[3].at, millis(700));
}

/// The deadline is meant to bound the whole acquisition, and a waiter that
/// times out sends nothing but its cleanup after it. But `AcquireLock` runs
/// its append, listing and refresh `Call`s without `Call::with_deadline`:
/// each gets the request timeout (5 s, a third of it per attempt), so a slow
/// append overruns a 1 s deadline, and the flow then lists and appends again
/// after it, never reporting `TimedOut`.
#[test]
fn a_hanging_append_does_not_outlive_the_deadline() {
    let mut sim = Sim::new();
    sim.hook(|sent, _| match sent.kind() {
        "POST" => Fault::Hang { applied: false },
        _ => Fault::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().timeout(secs(1)), 21);
    let result = sim.run(&mut flow);
    for sent in &sim.sent {
        if sent.at < secs(1) {
            assert!(
                sent.ends().unwrap() <= secs(1),
                "waits past the deadline: {sent:?}"
            );
        } else {
            // Only cleanup: finding a key the append may have made, deleting it.
            assert!(
                ["LIST", "DELETE"].contains(&sent.kind()),
                "sent after the deadline: {sent:?}"
            );
        }
    }
    assert!(matches!(lock_error(result), LockError::TimedOut { .. }));
}

/// The same with a refresh that hangs while waiting.
#[test]
fn a_hanging_refresh_does_not_outlive_the_deadline() {
    let mut sim = Sim::new();
    sim.model.append(DIR, "other", Some(60));
    sim.hook(|sent, _| match sent.kind() {
        "PUT" => Fault::Hang { applied: false },
        _ => Fault::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3).timeout(millis(2_500)), 22);
    let result = sim.run(&mut flow);
    for sent in &sim.sent {
        assert!(
            sent.at <= millis(2_500)
                && (sent.kind() == "DELETE" || sent.ends().unwrap() <= millis(2_500)),
            "past the deadline: {sent:?}"
        );
    }
    assert!(matches!(lock_error(result), LockError::TimedOut { .. }));
}

// ---------------------------------------------------------------------------
// 6. non-blocking attempts

#[test]
fn a_non_blocking_attempt_on_a_held_lock_removes_its_key_and_returns_none() {
    let mut sim = Sim::new();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    let mut flow = AcquireLock::new("n", LockOptions::new().blocking(false), 23);
    let uuid = flow.uuid().to_owned();
    assert_eq!(sim.run(&mut flow).unwrap(), None);
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "DELETE"]);
    assert_eq!(
        sim.sent[2].uri,
        format!("{A}/v2/keys{}?prevValue={uuid}", key(13))
    );
    assert_eq!(sim.model.queue(DIR), [pred]);
    assert_eq!(sim.elapsed(), Duration::ZERO);
}

#[test]
fn a_non_blocking_attempt_on_a_free_lock_holds_it() {
    let mut sim = Sim::new();
    let mut flow = AcquireLock::new("n", LockOptions::new().blocking(false), 24);
    let lock = sim.run(&mut flow).unwrap().expect("free");
    assert_eq!(lock.key, key(12));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST"]);
}

// ---------------------------------------------------------------------------
// 7. history cleared while waiting

#[test]
fn history_cleared_while_waiting_resyncs_into_a_fresh_listing() {
    let mut sim = Sim::new();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    let mut polls = 0;
    sim.hook(move |sent, model| {
        if sent.kind() == "POLL" {
            polls += 1;
            if polls == 1 {
                for i in 0..3 {
                    model.set(&format!("/busy/{i}"), "x"); // 14, 15, 16
                }
                model.clear_history();
            }
        }
        Fault::Serve
    });
    sim.at(secs(1), move |m| {
        m.delete(&pred); // 17
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 25);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(13));
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "RESYNC", "LIST", "POLL", "LIST"]
    );
    assert_eq!(
        sim.sent[3].uri,
        format!("{A}/v2/keys/_locks/n?recursive=true&sorted=true&quorum=true")
    );
    let polls = of_kind(&sim.sent, "POLL");
    assert_eq!(polls[0].wait_index(), 14);
    assert_eq!(
        polls[1].wait_index(),
        17,
        "from the fresh listing's index + 1"
    );
    assert_eq!(sim.sent[6].at, secs(1));
}

#[test]
fn a_predecessor_leaving_in_the_compacted_window_is_not_missed() {
    let mut sim = Sim::new();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    let mut polls = 0;
    sim.hook(move |sent, model| {
        if sent.kind() == "POLL" {
            polls += 1;
            assert_eq!(polls, 1, "no second poll: the lock is free");
            model.delete(&pred); // 14, compacted away below
            model.clear_history();
        }
        Fault::Serve
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 26);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(13));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "RESYNC", "LIST"]);
}

// ---------------------------------------------------------------------------
// 8. lost append answers

#[test]
fn a_lost_append_answer_is_found_by_uuid_and_not_appended_again() {
    for fault in ["io", "hang"] {
        let mut sim = Sim::new();
        let mut first = true;
        sim.hook(move |sent, _| match sent.kind() {
            "POST" if first => {
                first = false;
                match fault {
                    "io" => Fault::Lost {
                        applied: true,
                        kind: TransportErrorKind::Io,
                    },
                    _ => Fault::Hang { applied: true },
                }
            }
            _ => Fault::Serve,
        });
        let mut flow = AcquireLock::new("n", LockOptions::new(), 27);
        let uuid = flow.uuid().to_owned();
        let lock = sim.run(&mut flow).unwrap().expect("held");
        assert_eq!(lock, held(&key(12), &uuid, 12, 60), "{fault}");
        assert_eq!(kinds(&sim.sent), ["POST", "LIST"], "{fault}");
        assert_eq!(sim.model.holding(&uuid), [key(12)]);
    }
}

#[test]
fn a_lost_append_answer_behind_a_holder_still_waits_its_turn() {
    let mut sim = Sim::new();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    let mut first = true;
    sim.hook(move |sent, _| match sent.kind() {
        "POST" if first => {
            first = false;
            Fault::Lost {
                applied: true,
                kind: TransportErrorKind::Io,
            }
        }
        _ => Fault::Serve,
    });
    sim.at(secs(1), move |m| {
        m.delete(&pred);
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 28);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!((lock.key.as_str(), lock.index), (key(13).as_str(), 13));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "LIST"]);
}

#[test]
fn an_append_that_never_happened_is_made_again_a_few_times_at_most() {
    // Once.
    let mut sim = Sim::new();
    let mut first = true;
    sim.hook(move |sent, _| match sent.kind() {
        "POST" if first => {
            first = false;
            Fault::Lost {
                applied: false,
                kind: TransportErrorKind::Io,
            }
        }
        _ => Fault::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 29);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(12));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POST", "LIST"]);

    // Always: three appends, each answer looked for by uuid, then the error;
    // nothing left behind.
    let mut sim = Sim::new();
    sim.hook(|sent, _| match sent.kind() {
        "POST" => Fault::Lost {
            applied: false,
            kind: TransportErrorKind::Io,
        },
        _ => Fault::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 30);
    let error = sim.run(&mut flow).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:?}");
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POST", "LIST", "POST", "LIST"]
    );
    assert!(sim.model.keys.is_empty());
}

/// The module docs promise that a lost append answer is looked for before
/// anything else happens. After the third append, though, a lost answer ends
/// the flow with the transport error at once: no listing, no cleanup, so a
/// key that append did make stays queued — and blocks every later contender —
/// until its TTL runs out.
#[test]
fn a_lost_answer_to_the_last_append_leaves_nothing_behind() {
    let mut sim = Sim::new();
    let mut posts = 0;
    sim.hook(move |sent, _| match sent.kind() {
        "POST" => {
            posts += 1;
            Fault::Lost {
                applied: posts == 3,
                kind: TransportErrorKind::Io,
            }
        }
        _ => Fault::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 31);
    let uuid = flow.uuid().to_owned();
    let result = sim.run(&mut flow);
    assert!(
        sim.model.holding(&uuid).is_empty() || matches!(result, Ok(Some(_))),
        "{result:?} left {:?} queued; sent {:?}",
        sim.model.holding(&uuid),
        kinds(&sim.sent)
    );
}

/// The same for an append etcd answers with 500 "etcdserver: request timed
/// out": the proposal may still be committed (here it was), but the flow
/// treats the answer as final and returns it without a listing, so the key
/// it made stays queued until its TTL runs out.
#[test]
fn an_append_that_timed_out_in_raft_leaves_nothing_behind() {
    let mut sim = Sim::new();
    let mut first = true;
    sim.hook(move |sent, model| match sent.kind() {
        "POST" if first => {
            first = false;
            let _ = model.serve(sent);
            let cause = "etcdserver: request timed out";
            Fault::Reply(etcd_error(500, 300, "Raft Internal Error", cause, 0))
        }
        _ => Fault::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 32);
    let uuid = flow.uuid().to_owned();
    let result = sim.run(&mut flow);
    assert!(
        sim.model.holding(&uuid).is_empty() || matches!(result, Ok(Some(_))),
        "{result:?} left {:?} queued; sent {:?}",
        sim.model.holding(&uuid),
        kinds(&sim.sent)
    );
}

// ---------------------------------------------------------------------------
// 9. adopting a lock after a restart

#[test]
fn adopting_finds_the_key_by_uuid_without_appending() {
    let mut sim = Sim::new();
    let mine = sim.model.append(DIR, "u-1", Some(60)); // 12
    let mut flow = AcquireLock::new("n", LockOptions::new().adopt("u-1"), 33);
    assert_eq!(flow.uuid(), "u-1");
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock, held(&mine, "u-1", 12, 60));
    assert_eq!(kinds(&sim.sent), ["LIST"]);
}

#[test]
fn adopting_a_key_that_is_not_first_waits_for_it() {
    let mut sim = Sim::new();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    sim.model.append(DIR, "u-1", Some(60)); // 13
    sim.at(secs(1), move |m| {
        m.delete(&pred);
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().adopt("u-1"), 34);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!((lock.key.as_str(), lock.index), (key(13).as_str(), 13));
    assert_eq!(kinds(&sim.sent), ["LIST", "POLL", "LIST"]);
}

#[test]
fn adopting_a_missing_key_is_not_found_without_appending() {
    // Another key in the directory.
    let mut sim = Sim::new();
    sim.model.append(DIR, "other", Some(60));
    let mut flow = AcquireLock::new("n", LockOptions::new().adopt("u-1"), 35);
    assert_eq!(
        lock_error(sim.run(&mut flow)),
        LockError::NotFound { uuid: "u-1".into() }
    );
    assert_eq!(kinds(&sim.sent), ["LIST"]);
    assert_eq!(sim.model.keys.len(), 1);

    // No directory at all (404).
    let mut sim = Sim::new();
    let mut flow = AcquireLock::new("n", LockOptions::new().adopt("u-1"), 36);
    assert!(matches!(
        lock_error(sim.run(&mut flow)),
        LockError::NotFound { .. }
    ));
    assert_eq!(kinds(&sim.sent), ["LIST"]);
    assert!(sim.model.keys.is_empty());
}

// ---------------------------------------------------------------------------
// 10. release, check, refresh

#[test]
fn release_deletes_only_our_key() {
    // A uuid that needs escaping, to be sure the guard is sent intact.
    let uuid = "u 1/&=+";
    let mut sim = Sim::new();
    let mine = sim.model.append(DIR, uuid, Some(60)); // 12
    let theirs = sim.model.append(DIR, "other", Some(60)); // 13
    let lock = held(&mine, uuid, 12, 60);
    assert!(sim.run(&mut lock.release()).unwrap());
    let delete = &sim.sent[0];
    assert_eq!(delete.method, http::Method::DELETE);
    assert_eq!(
        delete.uri,
        format!("{A}/v2/keys{mine}?prevValue=u%201%2F%26%3D%2B")
    );
    assert_eq!(delete.param("prevValue"), Some(uuid));
    assert!(delete.form.is_empty());
    assert_eq!(sim.model.queue(DIR), [theirs.as_str()]);

    // Already gone: 404, errorCode 100.
    assert!(!sim.run(&mut lock.release()).unwrap());
    // Not ours: 412, errorCode 101; the key stays.
    assert!(!sim.run(&mut held(&theirs, uuid, 13, 60).release()).unwrap());
    assert_eq!(sim.model.queue(DIR), [theirs]);
    assert_eq!(kinds(&sim.sent), ["DELETE", "DELETE", "DELETE"]);
}

#[test]
fn check_is_true_only_while_our_key_is_first_and_ours() {
    let mut sim = Sim::new();
    let first = sim.model.append(DIR, "u-1", Some(60)); // 12
    let second = sim.model.append(DIR, "u-2", Some(60)); // 13
    let one = held(&first, "u-1", 12, 60);
    let two = held(&second, "u-2", 13, 60);
    assert!(sim.run(&mut one.check()).unwrap());
    assert!(!sim.run(&mut two.check()).unwrap(), "not first");
    assert_eq!(
        sim.sent[0].uri,
        format!("{A}/v2/keys/_locks/n?sorted=true&quorum=true")
    );
    sim.model.delete(&first);
    assert!(!sim.run(&mut one.check()).unwrap(), "gone");
    assert!(sim.run(&mut two.check()).unwrap(), "first now");
    sim.model.set(&second, "u-3");
    assert!(!sim.run(&mut two.check()).unwrap(), "first, but not ours");
    let elsewhere = HeldLock {
        path: "/_locks/none".into(),
        ..one.clone()
    };
    assert!(!sim.run(&mut elsewhere.check()).unwrap(), "no directory");
    assert_eq!(kinds(&sim.sent), ["LIST"; 6]);
    assert_eq!(sim.model.keys.len(), 1, "a check changes nothing");
}

#[test]
fn refresh_sends_a_guarded_ttl_only_form() {
    let mut sim = Sim::new();
    let mine = sim.model.append(DIR, "u-1", Some(5)); // 12
    let lock = held(&mine, "u-1", 12, 5);
    sim.advance(sim.now + secs(4));
    sim.run(&mut lock.refresh()).unwrap();
    let put = &sim.sent[0];
    assert_eq!(put.method, http::Method::PUT);
    assert_eq!(
        put.uri,
        format!("{A}/v2/keys{mine}"),
        "everything in the form"
    );
    assert_eq!(
        put.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(Sent::sorted(&put.form), refresh_form("u-1", 5));
    assert_eq!(put.field("value"), None);
    assert_eq!(sim.model.keys[&mine].expires, Some(secs(9)));
    assert_eq!(sim.model.keys[&mine].modified, 13);

    // Replaced: 412, errorCode 101.
    sim.model.set(&mine, "u-2");
    assert_eq!(lock_error(sim.run(&mut lock.refresh())), expired(&mine));
    // Gone: 404, errorCode 100.
    sim.model.delete(&mine);
    assert_eq!(lock_error(sim.run(&mut lock.refresh())), expired(&mine));
}

#[test]
fn release_and_refresh_are_retried_after_a_lost_answer() {
    // Guarded by the uuid, both are safe to send twice.
    let mut sim = Sim::new();
    let mine = sim.model.append(DIR, "u-1", Some(5));
    let lock = held(&mine, "u-1", 12, 5);
    let mut calls = 0;
    sim.hook(move |_, _| {
        calls += 1;
        if calls % 2 == 1 {
            Fault::Lost {
                applied: true,
                kind: TransportErrorKind::Io,
            }
        } else {
            Fault::Serve
        }
    });
    sim.run(&mut lock.refresh()).unwrap();
    assert_eq!(kinds(&sim.sent), ["PUT", "PUT"]);
    // The retried delete finds nothing: it says so.
    assert!(!sim.run(&mut lock.release()).unwrap());
    assert_eq!(kinds(&sim.sent), ["PUT", "PUT", "DELETE", "DELETE"]);
    assert!(sim.model.keys.is_empty());
}

// ---------------------------------------------------------------------------
// 11. the keeper

fn keeper_sim(ttl: u64) -> (Sim, HeldLock) {
    let mut sim = Sim::new();
    let mine = sim.model.append(DIR, "u-1", Some(ttl));
    (sim, held(&mine, "u-1", 12, ttl))
}

#[test]
fn the_keeper_refreshes_every_third_of_the_ttl_until_stopped() {
    let (mut sim, lock) = keeper_sim(3);
    sim.stop_at(millis(3_550));
    sim.run(&mut KeepLock::new(lock.clone())).unwrap();
    let puts = of_kind(&sim.sent, "PUT");
    let at: Vec<Duration> = puts.iter().map(|p| p.at).collect();
    assert_eq!(at, [secs(1), secs(2), secs(3)]);
    for put in &puts {
        assert_eq!(Sent::sorted(&put.form), refresh_form("u-1", 3));
    }
    // It wakes only to refresh, or when stopped: no flag to look at.
    let slept: Vec<_> = sim.sleeps.iter().map(|(at, _)| *at).collect();
    assert_eq!(slept, [Duration::ZERO, secs(1), secs(2), secs(3)]);
    assert_eq!(sim.elapsed(), millis(3_550), "the stop woke it at once");
    assert!(
        sim.model.keys.contains_key(&lock.key),
        "kept alive past its TTL"
    );
}

#[test]
fn a_keeper_stopped_before_it_starts_sends_nothing() {
    let (mut sim, lock) = keeper_sim(3);
    sim.stop_at(Duration::ZERO);
    sim.run(&mut KeepLock::new(lock)).unwrap();
    assert!(sim.sent.is_empty());
    assert_eq!(sim.elapsed(), Duration::ZERO);
}

#[test]
fn the_keeper_ends_with_expired_when_the_key_is_lost() {
    for replaced in [false, true] {
        let (mut sim, lock) = keeper_sim(3);
        let k = lock.key.clone();
        sim.at(millis(1_500), move |m| {
            if replaced {
                m.set(&k, "thief");
            } else {
                m.delete(&k);
            }
        });
        let result = sim.run(&mut KeepLock::new(lock.clone()));
        assert_eq!(
            lock_error(result),
            expired(&lock.key),
            "replaced: {replaced}"
        );
        assert_eq!(kinds(&sim.sent), ["PUT", "PUT"]);
        assert_eq!(sim.elapsed(), secs(2));
    }
}

#[test]
fn the_keeper_keeps_going_after_a_transport_failure() {
    let (mut sim, lock) = keeper_sim(3);
    let mut first = true;
    sim.hook(move |sent, _| match sent.kind() {
        "PUT" if first => {
            first = false;
            Fault::Lost {
                applied: false,
                kind: TransportErrorKind::Connect,
            }
        }
        _ => Fault::Serve,
    });
    sim.stop_at(millis(2_550));
    sim.run(&mut KeepLock::new(lock.clone())).unwrap();
    let at: Vec<Duration> = sim.sent.iter().map(|p| p.at).collect();
    assert_eq!(
        at,
        [secs(1), millis(1_500), millis(2_500)],
        "the failed refresh is retried 500 ms later, not at once; the next one TTL/3 after it"
    );
    assert_eq!(sim.model.keys[&lock.key].expires, Some(millis(5_500)));
}

/// A holder that cannot refresh (a partition: every refresh hangs) ends
/// with the TTL named in its error before etcd can expire the key, so it
/// learns of the loss before anyone else can take the lock.
#[test]
fn a_keeper_that_cannot_refresh_reports_the_loss_before_the_key_expires() {
    let (mut sim, lock) = keeper_sim(3);
    sim.hook(|_, _| Fault::Hang { applied: false });
    let error = sim.run(&mut KeepLock::new(lock.clone())).unwrap_err();
    let Error::TtlExpired(expired) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(expired.ttl, secs(3));
    assert!(expired.what.contains(&lock.key), "{error}");
    assert!(
        expired.last_error.is_some(),
        "the last failure is its source: {error}"
    );
    // The key was last written at 0 s (the acquisition), so etcd expires it
    // at 3 s at the earliest; the keeper gave up before, by its margin.
    let expires = sim.model.keys[&lock.key].expires.unwrap();
    assert!(
        sim.elapsed() < expires,
        "{:?} before {expires:?}",
        sim.elapsed()
    );
    assert!(
        sim.elapsed() >= millis(1_700),
        "not before it had to: {:?}",
        sim.elapsed()
    );
    // Every refresh tried ended by the validity.
    for put in of_kind(&sim.sent, "PUT") {
        assert!(put.at + put.timeout.unwrap() <= sim.elapsed(), "{put:?}");
    }
}

/// A refresh that got through moves the validity to its send time + TTL.
#[test]
fn a_refresh_that_got_through_extends_the_validity_from_when_it_was_sent() {
    let (mut sim, lock) = keeper_sim(3);
    let mut n = 0;
    sim.hook(move |sent, _| {
        if sent.kind() == "PUT" {
            n += 1;
            if n > 1 {
                return Fault::Hang { applied: false };
            }
        }
        Fault::Serve
    });
    let error = sim.run(&mut KeepLock::new(lock.clone())).unwrap_err();
    assert!(matches!(error, Error::TtlExpired(_)), "{error:?}");
    // The one refresh, sent at 1 s, keeps the key until 4 s; the keeper
    // gives up 300 ms (a tenth of the TTL) before.
    assert_eq!(sim.model.keys[&lock.key].expires, Some(secs(4)));
    assert_eq!(sim.elapsed(), millis(3_700));
}

/// A stop while a failing refresh is being retried (the refresh call sleeps
/// between its attempts) ends the keeper then, not after the retries.
#[test]
fn a_stopped_keeper_does_not_keep_retrying_a_failing_refresh() {
    let (mut sim, lock) = keeper_sim(3);
    sim.hook(|_, _| Fault::Lost {
        applied: false,
        kind: TransportErrorKind::Io,
    });
    sim.stop_at(millis(1_200));
    sim.run(&mut KeepLock::new(lock)).unwrap();
    assert_eq!(sim.elapsed(), millis(1_200), "stopped at once");
}

// ---------------------------------------------------------------------------
// 12. several contenders against one model

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

/// One contender's options.
#[derive(Debug, Clone)]
struct Plan {
    blocking: bool,
    timeout: Option<Duration>,
    max: bool,
    ttl: u64,
    start: Duration,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        prop::bool::weighted(0.8),
        prop::option::weighted(0.4, 300u64..15_000),
        any::<bool>(),
        1u64..=5,
        0u64..3_000,
    )
        .prop_map(|(blocking, timeout, max, ttl, start)| Plan {
            blocking,
            timeout: timeout.map(millis),
            max,
            ttl,
            start: millis(start),
        })
}

/// The random choices of one run; once used up, every choice is the
/// quietest one (no fault, no disturbance, the first ready contender).
struct Tape {
    values: Vec<u16>,
    next: usize,
}

impl Tape {
    fn pick(&mut self, n: u64) -> u64 {
        let v = self.values.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        u64::from(v) % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.pick(100) >= 100 - percent
    }
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
/// against one `Model` on one virtual clock. Every answer (and injected
/// fault) takes no time: time moves only when no contender is ready, to the
/// next sleep end, poll timeout, release, TTL expiry (or a random bit less).
/// Invariants are checked after every step and at every flow's end.
struct Arena {
    start: Instant,
    now: Duration,
    model: Model,
    tape: Tape,
    contenders: Vec<Contender>,
    /// Keys a third party removed.
    disturbed: BTreeSet<String>,
    fault_percent: u64,
    disturb_percent: u64,
    log: Vec<String>,
    outcomes: Vec<String>,
}

impl Arena {
    fn new(plans: Vec<Plan>, tape: Vec<u16>, fault_percent: u64, disturb_percent: u64) -> Arena {
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
            model: Model::new(11),
            tape: Tape {
                values: tape,
                next: 0,
            },
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

    fn run(&mut self) {
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
                let i = ready[self.tape.pick(ready.len() as u64) as usize];
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
        match self.tape.pick(7) {
            which @ 0..=2 if !queue.is_empty() => {
                let k = queue[self.tape.pick(queue.len() as u64) as usize].clone();
                match which {
                    0 => self.model.delete(&k),
                    1 => self.model.compare_and_delete(&k),
                    _ => self.model.expire(&k),
                };
                self.note(format!("third party removes {k}"));
                self.disturbed.insert(k);
            }
            3 => {
                let k = match self.tape.pick(3) {
                    0 => "/elsewhere".to_owned(),
                    i => format!("{DIR}/sub/k{i}"),
                };
                self.model.set(&k, "x");
                self.note(format!("third party sets {k}"));
            }
            4 => {
                let ttl = 1 + self.tape.pick(5);
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
            next = next.min(self.now + millis(1 + self.tape.pick(1_500)));
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
                    let (kind, applied) = match self.tape.pick(3) {
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
                let until = self.now + millis(self.tape.pick(lock.ttl * 1_500));
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

proptest! {
    #![proptest_config(config(512))]

    /// Contenders driven round-robin against one model, with random TTL
    /// expiries, third-party deletions and writes, compactions and transient
    /// transport failures: at most one holds the lock at any time, every one
    /// ends, and none that failed, timed out or found the lock busy leaves a
    /// key behind.
    #[test]
    fn contenders_exclude_each_other_and_clean_up(
        plans in prop::collection::vec(plan(), 2..=6),
        tape in prop::collection::vec(any::<u16>(), 0..2_000),
        fault_percent in 0u64..=20,
        disturb_percent in 0u64..=15,
    ) {
        let mut arena = Arena::new(plans, tape, fault_percent, disturb_percent);
        arena.run();
    }
}

/// The arena itself: quiet runs end with every contender served in turn.
#[test]
fn contenders_without_disturbance_take_turns() {
    let plans = (0..4)
        .map(|i| Plan {
            blocking: true,
            timeout: None,
            max: i % 2 == 0,
            ttl: 2,
            start: millis(i * 10),
        })
        .collect();
    let mut arena = Arena::new(plans, Vec::new(), 0, 0);
    arena.run();
    assert_eq!(arena.outcomes, ["held"; 4]);
}
