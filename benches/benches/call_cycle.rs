//! The core's whole share of one request: `Call::new(op)` driven by
//! `drive_blocking` over an in-memory transport that answers every request
//! with a recorded response. Timed per call: building the request (URL, key
//! encoding, headers, body), the flow's steps (endpoint choice, timeout, the
//! cluster-state lock, two clock reads), and parsing the answer into typed
//! output. No socket, no HTTP: what is left of a client's CPU per request in
//! `etcd-bench` beyond this is its HTTP stack, its runtime and the kernel.
//!
//! Groups (one function each), with the recorded answers etcd gives to
//! `etcd-bench`'s workloads (16-byte keys, 100-byte values):
//!
//! - `call_cycle/v2_get`: `v2::Read`, a 200 with one node;
//! - `call_cycle/v2_put`: `v2::Write`, a 200 with the node and `prevNode`;
//! - `call_cycle/v3_put`: `v3::Put`, the gateway's header-only answer;
//! - `call_cycle/v3_range`: `v3::Get`, one key-value, base64.
//!
//! The in-memory transport itself (a response built from the recording per
//! request) is timed on its own as `call_cycle/transport_only`, so it can be
//! subtracted.
//!
//! Run: `cargo bench -p etcd-benches --bench call_cycle -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use etcd_proto::drive::{drive_blocking, Exchange, ExchangeFailure, ResponseBody, Transport};
use etcd_proto::{v2, v3, Call, Cluster, Config, Operation, Transmit, TransportErrorKind};

const KEY: &str = "/bench/k00000001";
const VALUE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl";

const V2_GET: &str = r#"{"action":"get","node":{"key":"/bench/k00000001","value":"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl","modifiedIndex":2205,"createdIndex":2205}}"#;
const V2_PUT: &str = r#"{"action":"set","node":{"key":"/bench/k00000001","value":"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl","modifiedIndex":2206,"createdIndex":2206},"prevNode":{"key":"/bench/k00000001","value":"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijkl","modifiedIndex":2205,"createdIndex":2205}}"#;
const V3_PUT: &str = r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2207","raft_term":"2"}}"#;
const V3_RANGE: &str = r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2207","raft_term":"2"},"kvs":[{"key":"L2JlbmNoL2swMDAwMDAwMQ==","create_revision":"2207","mod_revision":"2207","version":"1","value":"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODlBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWmFiY2RlZmdoaWprbA=="}],"count":"1"}"#;

/// Answers every request with the same recorded response, with the headers
/// etcd sends along (the v2 index headers only for v2).
struct Recorded {
    cluster: Mutex<Cluster>,
    body: Bytes,
    v2_headers: bool,
}

impl Recorded {
    fn new(body: &'static str, v2_headers: bool) -> Recorded {
        let cluster = Config::default()
            .cluster()
            .expect("the default endpoint is valid");
        Recorded {
            cluster: Mutex::new(cluster),
            body: Bytes::from_static(body.as_bytes()),
            v2_headers,
        }
    }

    fn response(&self) -> http::Response<Bytes> {
        let mut response = http::Response::builder()
            .status(200)
            .header("content-type", "application/json");
        if self.v2_headers {
            response = response
                .header("x-etcd-cluster-id", "cdf818194e3a8c32")
                .header("x-etcd-index", "2206")
                .header("x-raft-index", "4410")
                .header("x-raft-term", "2");
        }
        response
            .body(self.body.clone())
            .expect("a valid recorded response")
    }
}

/// Never opened: these operations are unary.
struct NoStream;

impl ResponseBody for NoStream {
    fn next_chunk(
        &mut self,
        _: Option<std::time::Instant>,
    ) -> Result<Option<Bytes>, ExchangeFailure> {
        Ok(None)
    }
}

impl etcd_proto::drive::Entropy for Recorded {
    fn random(&self) -> u64 {
        // std's per-process random hash keys, advanced on every call.
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
    }
}

impl Transport for Recorded {
    type Body = NoStream;

    fn send(&self, transmit: Transmit) -> Exchange {
        black_box(&transmit);
        Ok(self.response())
    }

    fn sleep_until(&self, _deadline: Instant) {}

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        f(&mut self.cluster.lock().expect("not poisoned"))
    }

    fn spawn(&self, _task: impl FnOnce() + Send + 'static) {}

    fn open(
        &self,
        _transmit: Transmit,
    ) -> Result<(http::response::Parts, NoStream), ExchangeFailure> {
        Err(ExchangeFailure::new(
            TransportErrorKind::Io,
            "not a streaming benchmark",
        ))
    }
}

/// Times one whole call of `op()` against `recorded`, after checking that
/// it succeeds (a failing call would be timed on its error path).
fn cycle<O: Operation>(c: &mut Criterion, name: &str, recorded: &Recorded, op: impl Fn() -> O)
where
    O::Output: std::fmt::Debug,
{
    drive_blocking(recorded, Call::new(op())).expect("the recorded answer parses");
    c.bench_function(&format!("call_cycle/{name}"), |b| {
        b.iter(|| drive_blocking(recorded, Call::new(op())).expect("parses"))
    });
}

fn call_cycle(c: &mut Criterion) {
    cycle(c, "v2_get", &Recorded::new(V2_GET, true), || {
        v2::Read::new(KEY)
    });
    cycle(c, "v2_put", &Recorded::new(V2_PUT, true), || {
        v2::Write::new(KEY, VALUE)
    });
    cycle(c, "v3_put", &Recorded::new(V3_PUT, false), || {
        v3::Put::new(KEY, VALUE)
    });
    cycle(c, "v3_range", &Recorded::new(V3_RANGE, false), || {
        v3::Get::new(KEY)
    });
    let recorded = Recorded::new(V2_GET, true);
    c.bench_function("call_cycle/transport_only", |b| {
        b.iter(|| recorded.response())
    });
}

criterion_group!(benches, call_cycle);
criterion_main!(benches);
