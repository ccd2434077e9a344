//! A small in-memory model of etcd's v3 store behind the JSON gateway, and a
//! virtual-time driver for stream flows, for the lock and election tests.
//!
//! The store keeps keys (create/mod revisions, versions, leases), leases
//! (TTL, expiry on the virtual clock) and the event history; it answers
//! `kv/txn`, `kv/range`, `kv/deleterange`, `kv/put`, `lease/keepalive`,
//! `lease/revoke`, and streams `watch` lines (`created`, then one line per
//! revision of matching events). Time moves only when every actor is
//! waiting: to the next sleep, read timeout, lease expiry or scripted event.
//!
//! Built for the unit tests, and with the `testkit` feature for the fuzzer
//! ([`lock_contention`]); not a stable API.

#![cfg_attr(not(test), allow(dead_code))]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};

use super::lock::{AcquireMutex, HeldMutex, MutexError, MutexOptions, ReleaseMutex};
use super::types::{KeyValue, SortOrder};
use super::watch::EventKind;
use crate::call::Call;
use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind};
use crate::flow::{Flow, Input, Step, StreamFlow, StreamStep};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(value: &Value) -> Vec<u8> {
    value
        .as_str()
        .map(|s| B64.decode(s).expect("base64"))
        .unwrap_or_default()
}

fn int(value: &Value) -> i64 {
    match value {
        Value::String(s) => s.parse().expect("an integer string"),
        Value::Number(n) => n.as_i64().expect("an integer"),
        _ => 0,
    }
}

/// The model of one etcd's key-value store and leases.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) revision: i64,
    pub(crate) kvs: BTreeMap<Vec<u8>, KeyValue>,
    /// Lease → (TTL, expiry).
    pub(crate) leases: BTreeMap<i64, (i64, Instant)>,
    pub(crate) history: Vec<(i64, EventKind, KeyValue)>,
    next_lease: i64,
}

impl Store {
    pub(crate) fn new() -> Self {
        Store {
            revision: 1,
            kvs: BTreeMap::new(),
            leases: BTreeMap::new(),
            history: Vec::new(),
            next_lease: 0x1000,
        }
    }

    pub(crate) fn grant(&mut self, ttl: i64, now: Instant) -> i64 {
        self.next_lease += 1;
        self.leases.insert(
            self.next_lease,
            (ttl, now + Duration::from_secs(ttl as u64)),
        );
        self.next_lease
    }

    pub(crate) fn keep_alive(&mut self, lease: i64, now: Instant) -> Option<i64> {
        let (ttl, expires) = self.leases.get_mut(&lease)?;
        *expires = now + Duration::from_secs(*ttl as u64);
        Some(*ttl)
    }

    /// Ends `lease` now, deleting its keys at one new revision.
    pub(crate) fn revoke(&mut self, lease: i64) {
        if self.leases.remove(&lease).is_none() {
            return;
        }
        let keys: Vec<Vec<u8>> = self
            .kvs
            .values()
            .filter(|kv| kv.lease == lease)
            .map(|kv| kv.key.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        let rev = self.revision + 1;
        for key in keys {
            self.remove(&key, rev);
        }
        self.revision = rev;
    }

    /// Ends every lease whose time is up.
    pub(crate) fn expire(&mut self, now: Instant) {
        let due: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(id, _)| *id)
            .collect();
        for lease in due {
            self.revoke(lease);
        }
    }

    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.leases.values().map(|(_, at)| *at).min()
    }

    fn write(&mut self, key: &[u8], value: &[u8], lease: i64, rev: i64) {
        let kv = match self.kvs.get(key) {
            Some(old) => KeyValue {
                key: key.to_vec(),
                value: value.to_vec(),
                create_revision: old.create_revision,
                mod_revision: rev,
                version: old.version + 1,
                lease,
            },
            None => KeyValue {
                key: key.to_vec(),
                value: value.to_vec(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                lease,
            },
        };
        self.history.push((rev, EventKind::Put, kv.clone()));
        self.kvs.insert(key.to_vec(), kv);
    }

    fn remove(&mut self, key: &[u8], rev: i64) -> bool {
        match self.kvs.remove(key) {
            Some(_) => {
                let gone = KeyValue {
                    key: key.to_vec(),
                    mod_revision: rev,
                    ..KeyValue::default()
                };
                self.history.push((rev, EventKind::Delete, gone));
                true
            }
            None => false,
        }
    }

    /// A plain put (a test's own write); returns its revision.
    pub(crate) fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> i64 {
        let rev = self.revision + 1;
        self.write(key, value, lease, rev);
        self.revision = rev;
        rev
    }

    /// A plain delete (a test's own); returns whether the key existed.
    pub(crate) fn delete(&mut self, key: &[u8]) -> bool {
        let rev = self.revision + 1;
        let existed = self.remove(key, rev);
        if existed {
            self.revision = rev;
        }
        existed
    }

    /// The keys under `prefix`, oldest first.
    pub(crate) fn queue(&self, prefix: &[u8]) -> Vec<KeyValue> {
        let mut kvs: Vec<KeyValue> = self
            .kvs
            .values()
            .filter(|kv| kv.key.starts_with(prefix))
            .cloned()
            .collect();
        kvs.sort_by_key(|kv| kv.create_revision);
        kvs
    }

    fn header(&self) -> Value {
        json!({"cluster_id": "1", "member_id": "2", "revision": self.revision.to_string(), "raft_term": "3"})
    }

    fn kv_json(kv: &KeyValue) -> Value {
        json!({
            "key": b64(&kv.key),
            "value": b64(&kv.value),
            "create_revision": kv.create_revision.to_string(),
            "mod_revision": kv.mod_revision.to_string(),
            "version": kv.version.to_string(),
            "lease": kv.lease.to_string(),
        })
    }

    fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
        match end {
            [] => key == start,
            [0] => key >= start,
            end => key >= start && key < end,
        }
    }

    fn range(&self, request: &Value) -> Value {
        let start = unb64(&request["key"]);
        let end = unb64(&request["range_end"]);
        let max_create = int(&request["max_create_revision"]);
        let mut kvs: Vec<&KeyValue> = self
            .kvs
            .values()
            .filter(|kv| Self::in_range(&kv.key, &start, &end))
            .filter(|kv| max_create == 0 || kv.create_revision <= max_create)
            .collect();
        let count = kvs.len();
        match request["sort_target"].as_str() {
            Some("CREATE") => kvs.sort_by_key(|kv| kv.create_revision),
            None | Some("KEY") => {}
            Some(other) => panic!("sort target {other} not modelled"),
        }
        let order = match request["sort_order"].as_str() {
            Some("DESCEND") => SortOrder::Descend,
            _ => SortOrder::Ascend,
        };
        if order == SortOrder::Descend {
            kvs.reverse();
        }
        let limit = int(&request["limit"]);
        if limit > 0 {
            kvs.truncate(limit as usize);
        }
        json!({
            "header": self.header(),
            "kvs": kvs.into_iter().map(Self::kv_json).collect::<Vec<_>>(),
            "count": count.to_string(),
        })
    }

    fn compare(&self, compare: &Value) -> bool {
        let key = unb64(&compare["key"]);
        let kv = self.kvs.get(&key);
        let (have, want) = match compare["target"].as_str() {
            Some("CREATE") => (
                kv.map_or(0, |kv| kv.create_revision),
                int(&compare["create_revision"]),
            ),
            Some("MOD") => (
                kv.map_or(0, |kv| kv.mod_revision),
                int(&compare["mod_revision"]),
            ),
            Some("VERSION") => (kv.map_or(0, |kv| kv.version), int(&compare["version"])),
            Some("LEASE") => (kv.map_or(0, |kv| kv.lease), int(&compare["lease"])),
            other => panic!("compare target {other:?} not modelled"),
        };
        match compare["result"].as_str() {
            Some("EQUAL") | None => have == want,
            Some("NOT_EQUAL") => have != want,
            Some("GREATER") => have > want,
            Some("LESS") => have < want,
            other => panic!("compare result {other:?}"),
        }
    }

    fn txn(&mut self, request: &Value) -> Value {
        let empty = Vec::new();
        let succeeded = request["compare"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .all(|c| self.compare(c));
        let branch = if succeeded { "success" } else { "failure" };
        let rev = self.revision + 1;
        let mut wrote = false;
        let mut responses = Vec::new();
        for op in request[branch].as_array().unwrap_or(&empty) {
            if let Some(put) = op.get("request_put") {
                self.write(
                    &unb64(&put["key"]),
                    &unb64(&put["value"]),
                    int(&put["lease"]),
                    rev,
                );
                wrote = true;
                responses.push(json!({"response_put": {"header": {}}}));
            } else if let Some(range) = op.get("request_range") {
                let mut answer = self.range(range);
                answer["header"] = json!({});
                responses.push(json!({ "response_range": answer }));
            } else if let Some(delete) = op.get("request_delete_range") {
                let start = unb64(&delete["key"]);
                let end = unb64(&delete["range_end"]);
                let keys: Vec<Vec<u8>> = self
                    .kvs
                    .keys()
                    .filter(|k| Self::in_range(k, &start, &end))
                    .cloned()
                    .collect();
                for key in &keys {
                    self.remove(key, rev);
                }
                wrote |= !keys.is_empty();
                responses.push(json!({"response_delete_range": {"header": {}, "deleted": keys.len().to_string()}}));
            } else {
                panic!("txn op {op} not modelled");
            }
        }
        if wrote {
            self.revision = rev;
        }
        json!({"header": self.header(), "succeeded": succeeded, "responses": responses})
    }

    /// Answers a unary request.
    pub(crate) fn handle(
        &mut self,
        request: &http::Request<Bytes>,
        now: Instant,
    ) -> http::Response<Bytes> {
        let body: Value = serde_json::from_slice(request.body()).expect("a JSON body");
        let answer = match request.uri().path() {
            "/v3/kv/txn" => self.txn(&body),
            "/v3/kv/range" => self.range(&body),
            "/v3/kv/deleterange" => {
                let key = unb64(&body["key"]);
                let deleted = self.delete(&key);
                json!({"header": self.header(), "deleted": if deleted { "1" } else { "0" }})
            }
            "/v3/kv/put" => {
                self.put(
                    &unb64(&body["key"]),
                    &unb64(&body["value"]),
                    int(&body["lease"]),
                );
                json!({"header": self.header()})
            }
            "/v3/lease/revoke" => {
                let lease = int(&body["ID"]);
                if !self.leases.contains_key(&lease) {
                    let error = "etcdserver: requested lease not found";
                    let body = json!({"error": error, "code": 5, "message": error});
                    return http::Response::builder()
                        .status(404)
                        .body(Bytes::from(body.to_string()))
                        .unwrap();
                }
                self.revoke(lease);
                json!({"header": self.header()})
            }
            "/v3/lease/keepalive" => {
                let lease = int(&body["ID"]);
                let result = match self.keep_alive(lease, now) {
                    Some(ttl) => {
                        json!({"header": self.header(), "ID": lease.to_string(), "TTL": ttl.to_string()})
                    }
                    None => json!({"header": self.header(), "ID": lease.to_string()}),
                };
                let line = format!("{}\n", json!({ "result": result }));
                return http::Response::new(Bytes::from(line));
            }
            other => panic!("{other} not modelled"),
        };
        http::Response::new(Bytes::from(answer.to_string()))
    }

    /// Opens a watch stream for a `/v3/watch` request.
    pub(crate) fn open_watch(
        &self,
        request: &http::Request<Bytes>,
        now: Instant,
        timeout: Option<Duration>,
    ) -> OpenWatch {
        assert_eq!(request.uri().path(), "/v3/watch");
        let body: Value = serde_json::from_slice(request.body()).expect("a JSON body");
        let create = &body["create_request"];
        let filters: Vec<&str> = create["filters"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let start = int(&create["start_revision"]);
        OpenWatch {
            key: unb64(&create["key"]),
            end: unb64(&create["range_end"]),
            next: if start == 0 { self.revision + 1 } else { start },
            no_put: filters.contains(&"NOPUT"),
            no_delete: filters.contains(&"NODELETE"),
            created: false,
            ends: timeout.map(|t| now + t),
        }
    }

    /// The lines an open watch has not delivered yet.
    pub(crate) fn watch_data(&self, watch: &mut OpenWatch) -> Vec<u8> {
        let mut out = Vec::new();
        if !watch.created {
            watch.created = true;
            let line = json!({"result": {"header": self.header(), "created": true}});
            out.extend_from_slice(format!("{line}\n").as_bytes());
        }
        let mut batch: Vec<Value> = Vec::new();
        let mut batch_rev = 0;
        let flush = |batch: &mut Vec<Value>, out: &mut Vec<u8>, rev: i64| {
            if !batch.is_empty() {
                let line = json!({"result": {"header": {"revision": rev.to_string()}, "events": std::mem::take(batch)}});
                out.extend_from_slice(format!("{line}\n").as_bytes());
            }
        };
        for (rev, kind, kv) in &self.history {
            if *rev < watch.next || !Self::in_range(&kv.key, &watch.key, &watch.end) {
                continue;
            }
            let skip = match kind {
                EventKind::Put => watch.no_put,
                EventKind::Delete => watch.no_delete,
            };
            if skip {
                continue;
            }
            if *rev != batch_rev {
                flush(&mut batch, &mut out, batch_rev);
                batch_rev = *rev;
            }
            let mut event = json!({ "kv": Self::kv_json(kv) });
            if *kind == EventKind::Delete {
                event["type"] = json!("DELETE");
            }
            batch.push(event);
        }
        flush(&mut batch, &mut out, batch_rev);
        watch.next = self.revision + 1;
        out
    }
}

/// A watch stream the model holds open.
#[derive(Debug)]
pub(crate) struct OpenWatch {
    key: Vec<u8>,
    end: Vec<u8>,
    next: i64,
    no_put: bool,
    no_delete: bool,
    created: bool,
    /// When the open request's timeout ends the stream.
    pub(crate) ends: Option<Instant>,
}

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answered.
    None,
    /// Applied, but the answer is lost (an I/O error).
    LoseAnswer,
}

/// One request a flow sent.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) path: String,
    pub(crate) body: Value,
    pub(crate) timeout: Option<Duration>,
    pub(crate) at: Instant,
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
        self.sent.iter().map(|s| s.path.as_str()).collect()
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
                    let body = serde_json::from_slice(t.request.body()).unwrap_or(Value::Null);
                    let sent = Sent {
                        path: t.request.uri().path().to_owned(),
                        body,
                        timeout: t.timeout,
                        at: now,
                    };
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
                    self.sent.push(Sent {
                        path: t.request.uri().path().to_owned(),
                        body: serde_json::from_slice(t.request.body()).unwrap_or(Value::Null),
                        timeout: t.timeout,
                        at: now,
                    });
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
pub(crate) struct Sim {
    pub(crate) store: Store,
    pub(crate) now: Instant,
    pub(crate) t0: Instant,
    /// Leases kept alive by the simulation (a perfect background keeper).
    pub(crate) kept: Vec<i64>,
}

impl Sim {
    pub(crate) fn new() -> Self {
        let t0 = Instant::now();
        Sim {
            store: Store::new(),
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

// ---------------------------------------------------------------------------
// The lock recipe's property, for the unit test and the fuzzer: mutual
// exclusion under random contention, expiries and lost answers.

/// Chance: the bytes of a tape first (a fuzzer's input), then a xorshift
/// generator seeded from them.
struct Rng {
    state: u64,
    tape: Vec<u8>,
}

impl Rng {
    fn new(tape: &[u8]) -> Rng {
        let seed = tape.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut tape = tape.to_vec();
        tape.reverse();
        Rng {
            state: seed | 1,
            tape,
        }
    }

    fn seeded(seed: u64) -> Rng {
        Rng {
            state: seed | 1,
            tape: Vec::new(),
        }
    }

    fn next(&mut self) -> u64 {
        if let Some(byte) = self.tape.pop() {
            // One tape byte decides a whole draw: a fuzzer steers each choice.
            return u64::from(byte).wrapping_mul(0x0101_0101_0101_0101);
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max))
    }
}

/// Current believers: (key, create revision).
type Holders = Rc<RefCell<Vec<(Vec<u8>, i64)>>>;

struct Contender {
    lease: i64,
    starts: Instant,
    dies: Option<Instant>,
    hold_for: Duration,
    options: Option<MutexOptions>,
    faults: Option<crate::v3::sim::Faults>,
    acquiring: Option<Driver<AcquireMutex>>,
    held: Option<(HeldMutex, Instant)>,
    releasing: Option<Driver<Unary<Call<ReleaseMutex>>>>,
    outcome: Option<Result<bool, String>>,
    holders: Holders,
    last_now: Instant,
}

fn check_exclusion(store: &Store, holders: &Holders) {
    let present = holders
        .borrow()
        .iter()
        .filter(|(key, rev)| {
            store
                .kvs
                .get(key)
                .is_some_and(|kv| kv.create_revision == *rev)
        })
        .count();
    assert!(present <= 1, "{present} holders with their keys present");
}

impl Actor for Contender {
    fn advance(&mut self, store: &mut Store, now: Instant) -> bool {
        self.last_now = now;
        if self.dies.is_none_or(|d| now < d) {
            store.keep_alive(self.lease, now);
        }
        check_exclusion(store, &self.holders);
        if now < self.starts || self.outcome.is_some() {
            return false;
        }
        let mut progressed = false;
        if let Some(options) = self.options.take() {
            let mut driver = Driver::new(AcquireMutex::new("n", self.lease, options));
            driver.pause_on_item = true;
            if let Some(faults) = self.faults.take() {
                driver.faults = faults;
            }
            self.acquiring = Some(driver);
            progressed = true;
        }
        if let Some(driver) = &mut self.acquiring {
            progressed |= driver.advance(store, now);
            if let Some(held) = driver.items.pop() {
                // The lock is ours only if our key is the oldest, and no
                // other believer's key is still there.
                let queue = store.queue(b"n/");
                assert_eq!(
                    queue.first().map(|kv| (&kv.key, kv.create_revision)),
                    Some((&held.key, held.create_revision))
                );
                self.holders
                    .borrow_mut()
                    .push((held.key.clone(), held.create_revision));
                check_exclusion(store, &self.holders);
                self.held = Some((held, now + self.hold_for));
                driver.resume();
                progressed = true;
                progressed |= driver.advance(store, now);
            }
            if let Some(result) = &driver.result {
                match result {
                    Ok(()) => assert!(self.held.is_some()),
                    Err(Error::Mutex(
                        MutexError::Busy { .. }
                        | MutexError::Timeout { .. }
                        | MutexError::SessionExpired { .. },
                    )) => {
                        self.outcome = Some(Err(result.as_ref().unwrap_err().to_string()));
                    }
                    // Every retry of a request lost its answer.
                    Err(Error::Transport(_) | Error::Unavailable(_)) => {
                        self.outcome = Some(Err(result.as_ref().unwrap_err().to_string()));
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
                self.acquiring = None;
            }
        }
        if let Some((held, until)) = &self.held {
            if self.releasing.is_none() && now >= *until {
                let key = held.key.clone();
                self.holders.borrow_mut().retain(|(k, _)| *k != key);
                self.releasing = Some(Driver::new(Unary::new(held.release())));
                progressed = true;
            }
        }
        if let Some(driver) = &mut self.releasing {
            progressed |= driver.advance(store, now);
            if driver.done() {
                self.outcome = Some(Ok(driver.items.first().copied().unwrap_or(false)));
                self.releasing = None;
                self.held = None;
            }
        }
        progressed
    }

    fn wake(&self) -> Option<Instant> {
        let keeper = self
            .dies
            .is_none_or(|d| self.last_now < d)
            .then(|| self.last_now + Duration::from_millis(700));
        let own = [
            (self.last_now < self.starts).then_some(self.starts),
            self.dies.filter(|d| *d > self.last_now),
            self.held
                .as_ref()
                .filter(|_| self.releasing.is_none())
                .map(|(_, until)| *until),
            self.acquiring.as_ref().and_then(|d| d.wake()),
            self.releasing.as_ref().and_then(|d| d.wake()),
        ];
        own.into_iter()
            .flatten()
            .chain(keeper.filter(|_| self.outcome.is_none()))
            .min()
    }
}

/// One run of 2 to 5 contenders for one lock on the simulated etcd, every
/// choice (TTLs, try-locks, deadlines, start times, holding times, deaths
/// of holders, lost answers) drawn from `tape`, then from a generator
/// seeded by it. Panics if two holders ever believe they hold the lock with
/// their keys present, if a holder's key is not the oldest, if a contender
/// never finishes, or if a live session leaves a key behind. Returns the
/// counts of outcomes: acquired, busy, timed out, session expired, failed
/// requests.
pub fn lock_contention(tape: &[u8]) -> [usize; 5] {
    let seed = tape
        .iter()
        .fold(0u64, |h, b| h.rotate_left(8) ^ u64::from(*b));
    let mut rng = Rng::new(tape);
    let mut sim = Sim::new();
    let holders: Holders = Rc::default();
    let n = 2 + rng.below(4) as usize;
    let mut contenders: Vec<Contender> = (0..n)
        .map(|_| {
            let ttl = 2 + rng.below(4) as i64;
            let lease = sim.store.grant(ttl, sim.now);
            let mut options = MutexOptions::new();
            if rng.chance(20) {
                options = options.try_lock();
            }
            if rng.chance(40) {
                options = options.timeout(rng.millis(5000) + Duration::from_millis(100));
            }
            let fault_seed = rng.next() | 1;
            let lossy = rng.chance(30);
            let mut faults = Rng::seeded(fault_seed);
            Contender {
                lease,
                starts: sim.now + rng.millis(3000),
                dies: rng.chance(20).then(|| sim.now + rng.millis(8000)),
                hold_for: rng.millis(3000),
                options: Some(options),
                faults: Some(Box::new(move |_| {
                    if lossy && faults.chance(15) {
                        Fault::LoseAnswer
                    } else {
                        Fault::None
                    }
                })),
                acquiring: None,
                held: None,
                releasing: None,
                outcome: None,
                holders: holders.clone(),
                last_now: sim.now,
            }
        })
        .collect();
    let mut actors: Vec<&mut dyn Actor> =
        contenders.iter_mut().map(|c| c as &mut dyn Actor).collect();
    sim.run_for(Duration::from_secs(120), &mut actors);
    drop(actors);
    for (i, c) in contenders.iter().enumerate() {
        assert!(
            c.outcome.is_some(),
            "seed {seed}: contender {i} never finished"
        );
    }
    // Sessions end: nothing may be left under the prefix but keys of
    // sessions still alive, and those were all released or cleaned up.
    for c in &contenders {
        if c.dies.is_none() {
            assert!(
                store_has_no_key_of(&sim.store, c.lease),
                "seed {seed}: a live session left its key behind: {:?}",
                sim.store.queue(b"n/")
            );
        }
    }
    let mut tally = [0; 5];
    for c in &contenders {
        let slot = match c.outcome.as_ref().unwrap() {
            Ok(_) => 0,
            Err(e) if e.contains("held by another") => 1,
            Err(e) if e.contains("timed out waiting") => 2,
            Err(e) if e.contains("vanished") => 3,
            Err(_) => 4,
        };
        tally[slot] += 1;
    }
    tally
}

fn store_has_no_key_of(store: &Store, lease: i64) -> bool {
    store.kvs.values().all(|kv| kv.lease != lease)
}

// ---------------------------------------------------------------------------
// The election observer's property, for the unit test and the fuzzer.

/// An election observer ([`Observe`](super::election::Observe)) following
/// changes of leadership that `tape` chooses, made straight on the
/// simulated store: candidates joining (a key under the prefix, on a lease
/// of its own), leaders proclaiming new values, keys deleted, sessions left
/// to expire, time passing. After every change, once the observer has
/// caught up: its last item is the current leader (the oldest key under the
/// prefix) with its current value, and the leaders it emits never go back
/// to an older one (create revisions never decrease). Panics otherwise.
/// Returns how many items it emitted.
pub fn observe_leaders(tape: &[u8]) -> usize {
    let mut rng = Rng::new(tape);
    let mut sim = Sim::new();
    let mut observer = Driver::new(super::election::Election::new("e").observe());
    let mut leases: Vec<i64> = Vec::new();
    let (mut emitted, mut last_revision) = (0, 0);
    let mut last_seen: Option<KeyValue> = None;
    let steps = 1 + rng.below(30);
    for step in 0..steps {
        match rng.below(6) {
            0 | 1 => {
                let lease = sim.session(1 + rng.below(5) as i64);
                let key = super::lock::session_key(b"e/", lease);
                sim.store.put(&key, format!("v{step}").as_bytes(), lease);
                leases.push(lease);
            }
            2 => {
                if let Some(leader) = sim.store.queue(b"e/").first().cloned() {
                    sim.store
                        .put(&leader.key, format!("p{step}").as_bytes(), leader.lease);
                }
            }
            3 => {
                let queue = sim.store.queue(b"e/");
                if !queue.is_empty() {
                    let victim = &queue[rng.below(queue.len() as u64) as usize];
                    sim.store.delete(&victim.key);
                }
            }
            4 if !leases.is_empty() => {
                let lease = leases.swap_remove(rng.below(leases.len() as u64) as usize);
                sim.orphan(lease);
            }
            _ => {}
        }
        sim.run_for(rng.millis(4000), &mut [&mut observer]);
        sim.settle(&mut [&mut observer]);
        assert!(
            observer.result.is_none(),
            "the observer ended: {:?}",
            observer.result
        );
        for kv in observer.items.drain(..) {
            assert!(
                kv.create_revision >= last_revision,
                "step {step}: went back to an older leader ({} after {last_revision})",
                kv.create_revision
            );
            last_revision = kv.create_revision;
            emitted += 1;
            last_seen = Some(kv);
        }
        if let Some(leader) = sim.store.queue(b"e/").first() {
            assert_eq!(
                last_seen
                    .as_ref()
                    .map(|kv| (&kv.key, &kv.value, kv.create_revision)),
                Some((&leader.key, &leader.value, leader.create_revision)),
                "step {step}: the observer did not catch up with the leader"
            );
        }
    }
    emitted
}
