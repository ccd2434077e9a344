//! The v2 response parser: `etcd_proto::v2::Read::parse` against the untyped
//! `serde_json::from_slice::<serde_json::Value>` a naive client does on the same bytes.
//!
//! Groups (each with the functions `etcd_proto` and `serde_json_value`):
//!
//! - `v2_parse/single_get`: a recorded single-key GET response;
//! - `v2_parse/recursive_10k`: a recursive listing of `/bench`, 100 directories
//!   of 100 keys each (10,000 keys, ~100-byte values), with byte throughput.
//!
//! The parser consumes its `http::Response<Bytes>`, so each iteration gets a
//! fresh one: a cheap `Bytes` clone (a reference count) plus a clone of the
//! header map. That construction happens in `iter_batched`'s setup and is not
//! timed; the group `v2_parse/setup` times it on its own. `iter_batched` also
//! drops each output after the timer stops, so neither side pays for freeing
//! its tree. The baseline goes through `iter_batched` too (its setup is a
//! `Bytes` clone), so both sides are timed the same way.
//!
//! Run: `cargo bench -p etcd-benches --bench v2_parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etcd_proto::v2::{Read, ReadOptions};
use etcd_proto::Operation;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};

/// etcd's answer to `GET /v2/keys/samples/foo` (the v2 API docs' example).
const SINGLE_GET_BODY: &[u8] =
    br#"{"action":"get","node":{"key":"/samples/foo","value":"bar","modifiedIndex":4,"createdIndex":4}}"#;

const CLUSTER_ID: &str = "cdf818194e3a8c32";

/// A response body with the headers etcd sends with it; [`Recorded::response`]
/// makes a fresh `http::Response` of it.
struct Recorded {
    headers: HeaderMap,
    body: Bytes,
}

impl Recorded {
    fn new(body: Bytes, etcd_index: u64, raft_index: u64) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("x-etcd-cluster-id", HeaderValue::from_static(CLUSTER_ID));
        headers.insert("x-etcd-index", HeaderValue::from(etcd_index));
        headers.insert("x-raft-index", HeaderValue::from(raft_index));
        headers.insert("x-raft-term", HeaderValue::from_static("2"));
        Recorded { headers, body }
    }

    fn response(&self) -> http::Response<Bytes> {
        let mut response = http::Response::new(self.body.clone());
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// Parses `recorded` once, outside any timing, and checks the result, so a
/// parser that fails (and would be timed on its error path) stops the run.
fn check(read: &Read, recorded: &Recorded, keys: usize) {
    let parsed = read
        .parse(recorded.response())
        .expect("the recorded response parses");
    assert_eq!(parsed.node.leaves().count(), keys);
    assert_eq!(parsed.meta.cluster_id.as_deref(), Some(CLUSTER_ID));
    assert!(parsed.meta.etcd_index.is_some() && parsed.meta.raft_term == Some(2));
    let value: serde_json::Value =
        serde_json::from_slice(&recorded.body).expect("the recorded body is JSON");
    assert_eq!(value["action"], "get");
}

/// The two functions of one group: `etcd_proto` and `serde_json_value`.
fn compare(
    c: &mut Criterion,
    name: &str,
    read: &Read,
    recorded: &Recorded,
    batch: BatchSize,
    throughput: bool,
) {
    let mut group = c.benchmark_group(format!("v2_parse/{name}"));
    if throughput {
        group.throughput(Throughput::Bytes(recorded.body.len() as u64));
    }
    group.bench_function("etcd_proto", |b| {
        b.iter_batched(
            || recorded.response(),
            |response| read.parse(response).expect("parses"),
            batch,
        )
    });
    group.bench_function("serde_json_value", |b| {
        b.iter_batched(
            || recorded.body.clone(),
            |body| serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("parses"),
            batch,
        )
    });
    group.finish();
}

fn v2_parse(c: &mut Criterion) {
    let single = Recorded::new(Bytes::from_static(SINGLE_GET_BODY), 4, 5031);
    let single_read = Read::new("/samples/foo");
    check(&single_read, &single, 1);

    let (dirs, keys_per_dir) = (100, 100);
    let listing = Recorded::new(
        Bytes::from(etcd_benches::v2_listing_body(dirs, keys_per_dir)),
        etcd_benches::v2_listing_etcd_index(dirs, keys_per_dir),
        150_219,
    );
    let listing_read = Read::new("/bench").options(ReadOptions::new().recursive(true));
    check(&listing_read, &listing, dirs * keys_per_dir);

    compare(
        c,
        "single_get",
        &single_read,
        &single,
        BatchSize::SmallInput,
        false,
    );
    // One output is a tree of ~10,000 nodes (a few MB): keep only one alive at a time.
    compare(
        c,
        "recursive_10k",
        &listing_read,
        &listing,
        BatchSize::PerIteration,
        true,
    );

    // What the untimed setup costs: a fresh response of a recording.
    let mut group = c.benchmark_group("v2_parse/setup");
    group.bench_function("build_response", |b| b.iter(|| single.response()));
    group.finish();
}

criterion_group!(benches, v2_parse);
criterion_main!(benches);
