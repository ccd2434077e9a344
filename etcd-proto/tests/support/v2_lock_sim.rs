// The simulated etcd v2 lock directory and the contenders' arena of the
// v2 lock machine tests (`tests/v2_lock_machine.rs`), included there and
// by the `v2_lock` fuzz target (`fuzz/fuzz_targets/v2_lock.rs`) with
// `include!`: one simulator for both. See the test file's docs for what
// the model answers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::v2::{AcquireLock, HeldLock, Hold, LockError, LockOptions};
use etcd_proto::{Cluster, Error, Flow, Input, Step, TransportErrorKind};
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


/// One contender's options.
#[derive(Debug, Clone)]
struct Plan {
    blocking: bool,
    timeout: Option<Duration>,
    max: bool,
    ttl: u64,
    start: Duration,
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
