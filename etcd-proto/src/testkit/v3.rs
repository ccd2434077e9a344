//! A small in-memory model of one etcd's v3 store behind the JSON gateway.
//!
//! It keeps keys (create/mod revisions, versions, leases), leases (TTL,
//! expiry on the virtual clock) and the event history; it answers
//! `kv/txn`, `kv/range`, `kv/deleterange`, `kv/put`, `lease/keepalive`,
//! `lease/revoke`, and streams `watch` lines (`created`, then one line per
//! revision of matching events).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::v3::watch::EventKind;
use crate::v3::{KeyValue, SortOrder};

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
    /// When the simulation began: requests are stamped relative to it.
    pub(crate) epoch: Instant,
}

impl Store {
    pub(crate) fn new() -> Self {
        Store {
            revision: 1,
            kvs: BTreeMap::new(),
            leases: BTreeMap::new(),
            history: Vec::new(),
            next_lease: 0x1000,
            epoch: Instant::now(),
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
