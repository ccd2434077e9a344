//! A small in-memory model of one etcd's v2 keys store: keys (values,
//! TTLs, created/modified indexes), directories, the etcd index and the
//! event history, with the body shapes of `etcd-samples-3.4.txt`.
//!
//! It answers what the v2 machines send: the in-order `POST` (201
//! `create`), reads (sorted or not, recursive, with `X-Etcd-Index`),
//! `wait=true&waitIndex=N` long polls (at once from history, errorCode 401
//! once history was cleared, or parked until a matching event; see
//! [`Server::wake`]), guarded `PUT … refresh=true` (no watcher event) and
//! `DELETE …?prevValue=` (404/100, 412/101). TTLs run out on the
//! simulation's clock. Third parties act through [`Store::append`],
//! [`Store::set`], [`Store::delete`], [`Store::expire`] and
//! [`Store::clear_history`].

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::sent::Sent;
use super::sim::Server;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub value: String,
    pub created: u64,
    pub modified: u64,
    pub expires: Option<Duration>,
}

#[derive(Debug)]
pub struct Event {
    pub index: u64,
    pub key: String,
    pub body: String,
}

/// A tiny etcd v2 store: keys, directories, the index and the history.
#[derive(Debug)]
pub struct Store {
    pub now: Duration,
    pub index: u64,
    pub keys: BTreeMap<String, Entry>,
    pub dirs: BTreeMap<String, u64>,
    pub history: Vec<Event>,
    /// Events below this index were compacted away (errorCode 401).
    pub first_kept: u64,
    /// Keys whose TTL ran out on the model's clock.
    pub natural_expiries: Vec<String>,
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

/// An answer with etcd's v2 headers.
pub fn respond(status: u16, index: u64, body: &str) -> http::Response<Bytes> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-etcd-cluster-id", "26f366baf1040dbd")
        .header("x-etcd-index", index.to_string())
        .body(Bytes::from(body.to_owned()))
        .unwrap()
}

/// An etcd v2 error answer.
pub fn etcd_error(
    status: u16,
    code: u32,
    message: &str,
    cause: &str,
    index: u64,
) -> http::Response<Bytes> {
    let body = json!({"errorCode": code, "message": message, "cause": cause, "index": index});
    respond(status, index, &format!("{body}\n"))
}

impl Store {
    /// An empty store at etcd index `index` (the next write gets `index + 1`).
    pub fn new(index: u64) -> Store {
        Store {
            now: Duration::ZERO,
            index,
            keys: BTreeMap::new(),
            dirs: BTreeMap::new(),
            history: Vec::new(),
            first_kept: 1,
            natural_expiries: Vec::new(),
        }
    }

    pub fn node(&self, key: &str, e: &Entry) -> Value {
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
    pub fn record(&mut self, key: &str, body: Value) -> String {
        let body = format!("{body}\n");
        self.history.push(Event {
            index: self.index,
            key: key.to_owned(),
            body: body.clone(),
        });
        body
    }

    pub fn make_parents(&mut self, key: &str) {
        let mut dir = parent(key);
        while dir != "/" {
            self.dirs.entry(dir.to_owned()).or_insert(self.index);
            dir = parent(dir);
        }
    }

    pub fn value(&self, key: &str) -> Option<&str> {
        self.keys.get(key).map(|e| e.value.as_str())
    }

    /// The lock order of `dir`: its direct non-directory children, sorted.
    pub fn queue(&self, dir: &str) -> Vec<String> {
        self.keys
            .keys()
            .filter(|k| parent(k) == dir)
            .cloned()
            .collect()
    }

    /// Every key holding `value`.
    pub fn holding(&self, value: &str) -> Vec<String> {
        self.keys
            .iter()
            .filter(|(_, e)| e.value == value)
            .map(|(k, _)| k.clone())
            .collect()
    }

    // --- what third parties do -------------------------------------------

    /// Appends an in-order key (another client queueing).
    pub fn append(&mut self, dir: &str, value: &str, ttl: Option<u64>) -> String {
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
    pub fn set(&mut self, key: &str, value: &str) {
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
    pub fn remove(&mut self, key: &str, action: &str) -> Option<String> {
        let prev = self.keys.remove(key)?;
        self.index += 1;
        let body = json!({
            "action": action,
            "node": {"key": key, "modifiedIndex": self.index, "createdIndex": prev.created},
            "prevNode": self.node(key, &prev),
        });
        Some(self.record(key, body))
    }

    pub fn delete(&mut self, key: &str) -> bool {
        self.remove(key, "delete").is_some()
    }

    pub fn compare_and_delete(&mut self, key: &str) -> bool {
        self.remove(key, "compareAndDelete").is_some()
    }

    /// The key's TTL runs out now.
    pub fn expire(&mut self, key: &str) -> bool {
        self.remove(key, "expire").is_some()
    }

    /// More than 1000 events went by: older indexes answer errorCode 401.
    pub fn clear_history(&mut self) {
        self.first_kept = self.index + 1;
    }

    pub fn next_expiry(&self) -> Option<Duration> {
        self.keys.values().filter_map(|e| e.expires).min()
    }

    /// Moves the clock to `t`, expiring keys on the way.
    pub fn advance_to(&mut self, t: Duration) {
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
    pub fn serve(&mut self, s: &Sent) -> Option<http::Response<Bytes>> {
        match s.kind() {
            "POLL" => self.poll(s, false),
            "POST" => Some(self.append_request(s)),
            "PUT" => Some(self.refresh_request(s)),
            "DELETE" => Some(self.delete_request(s)),
            "GET" | "LIST" | "RESYNC" => Some(self.read_request(s)),
            other => panic!("unexpected {other}"),
        }
    }

    pub fn not_found(&self, key: &str) -> http::Response<Bytes> {
        etcd_error(404, 100, "Key not found", key, self.index)
    }

    pub fn compare_failed(&self, prev: &str, current: &str) -> http::Response<Bytes> {
        let cause = format!("[{prev} != {current}]");
        etcd_error(412, 101, "Compare failed", &cause, self.index)
    }

    pub fn append_request(&mut self, s: &Sent) -> http::Response<Bytes> {
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

    pub fn refresh_request(&mut self, s: &Sent) -> http::Response<Bytes> {
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

    pub fn delete_request(&mut self, s: &Sent) -> http::Response<Bytes> {
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

    pub fn dir_node(&self, dir: &str, created: u64, recursive: bool, sorted: bool) -> Value {
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

    pub fn read_request(&self, s: &Sent) -> http::Response<Bytes> {
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
    pub fn poll(&self, s: &Sent, live: bool) -> Option<http::Response<Bytes>> {
        let from = s.wait_index().expect("a v2 long poll has a waitIndex");
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

impl Server for Store {
    fn serve(&mut self, sent: &Sent) -> Option<http::Response<Bytes>> {
        Store::serve(self, sent)
    }

    fn wake(&mut self, parked: &Sent) -> Option<http::Response<Bytes>> {
        self.poll(parked, true)
    }

    fn next_change(&self) -> Option<Duration> {
        self.next_expiry()
    }

    fn advance_to(&mut self, t: Duration) {
        Store::advance_to(self, t)
    }
}
