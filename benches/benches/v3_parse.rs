//! The v3 range answer, both encodings: a 10,000-key answer (100-byte
//! values) parsed by `etcd_proto::v3::Get` as the gateway's JSON and as
//! native gRPC's protobuf, each beside its untyped baseline on the same
//! bytes: `serde_json::Value` for JSON, a bare prost decode (the bench's own
//! message declarations, no conversion into public types) for protobuf.
//!
//! Groups `v3_parse/range_10k_json` (`etcd_proto`, `serde_json_value`) and
//! `v3_parse/range_10k_protobuf` (`etcd_proto`, `bare_prost`), with byte
//! throughput. Each iteration gets a fresh `http::Response` (a `Bytes`
//! clone and a header-map clone) in untimed setup.
//!
//! Run: `cargo bench -p etcd-benches --bench v3_parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use etcd_proto::v3::{Get, KeyRange};
use etcd_proto::Operation;
use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use prost::Message;

const KEYS: usize = 10_000;

#[derive(Clone, PartialEq, Message)]
struct Header {
    #[prost(uint64, tag = "1")]
    cluster_id: u64,
    #[prost(uint64, tag = "2")]
    member_id: u64,
    #[prost(int64, tag = "3")]
    revision: i64,
    #[prost(uint64, tag = "4")]
    raft_term: u64,
}

#[derive(Clone, PartialEq, Message)]
struct Kv {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(int64, tag = "2")]
    create_revision: i64,
    #[prost(int64, tag = "3")]
    mod_revision: i64,
    #[prost(int64, tag = "4")]
    version: i64,
    #[prost(bytes = "vec", tag = "5")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct RangeResponse {
    #[prost(message, optional, tag = "1")]
    header: Option<Header>,
    #[prost(message, repeated, tag = "2")]
    kvs: Vec<Kv>,
    #[prost(int64, tag = "4")]
    count: i64,
}

/// The answer's content, once.
fn answer() -> RangeResponse {
    RangeResponse {
        header: Some(Header {
            cluster_id: 14_841_639_068_965_178_418,
            member_id: 10_276_657_743_932_975_437,
            revision: KEYS as i64 + 1,
            raft_term: 2,
        }),
        kvs: (0..KEYS)
            .map(|i| Kv {
                key: format!("bench/{i:05}").into_bytes(),
                create_revision: i as i64 + 2,
                mod_revision: i as i64 + 2,
                version: 1,
                value: vec![b'v'; 100],
            })
            .collect(),
        count: KEYS as i64,
    }
}

/// The gateway's JSON of `r` (int64 as strings, bytes as base64).
fn json_body(r: &RangeResponse) -> Bytes {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let h = r.header.clone().unwrap_or_default();
    let kvs: Vec<String> = r
        .kvs
        .iter()
        .map(|kv| {
            format!(
                r#"{{"key":"{}","create_revision":"{}","mod_revision":"{}","version":"{}","value":"{}"}}"#,
                b64(&kv.key),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                b64(&kv.value)
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"header":{{"cluster_id":"{}","member_id":"{}","revision":"{}","raft_term":"{}"}},"kvs":[{}],"count":"{}"}}"#,
        h.cluster_id,
        h.member_id,
        h.revision,
        h.raft_term,
        kvs.join(","),
        r.count
    ))
}

/// gRPC's framed message of `r`.
fn grpc_body(r: &RangeResponse) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + r.encoded_len());
    out.put_u8(0);
    out.put_u32(r.encoded_len() as u32);
    r.encode(&mut out).expect("room");
    out.freeze()
}

struct Recorded {
    headers: HeaderMap,
    body: Bytes,
}

impl Recorded {
    fn response(&self) -> http::Response<Bytes> {
        let mut response = http::Response::new(self.body.clone());
        *response.headers_mut() = self.headers.clone();
        response
    }
}

fn v3_parse(c: &mut Criterion) {
    let content = answer();
    let get = Get::new(KeyRange::prefix("bench/"));
    let mut json_headers = HeaderMap::new();
    json_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let json = Recorded {
        headers: json_headers,
        body: json_body(&content),
    };
    let mut grpc_headers = HeaderMap::new();
    grpc_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    grpc_headers.insert("grpc-status", HeaderValue::from_static("0"));
    let grpc = Recorded {
        headers: grpc_headers,
        body: grpc_body(&content),
    };
    // Both parse, to the same answer, before anything is timed.
    let from_json = get.parse(json.response()).expect("JSON parses");
    let from_grpc = get.parse(grpc.response()).expect("protobuf parses");
    assert_eq!(from_json.kvs.len(), KEYS);
    assert_eq!(from_json, from_grpc);

    let mut group = c.benchmark_group("v3_parse/range_10k_json");
    group.throughput(Throughput::Bytes(json.body.len() as u64));
    group.bench_function("etcd_proto", |b| {
        b.iter_batched(
            || json.response(),
            |r| get.parse(r).expect("parses"),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("serde_json_value", |b| {
        b.iter_batched(
            || json.body.clone(),
            |body| serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("parses"),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("v3_parse/range_10k_protobuf");
    group.throughput(Throughput::Bytes(grpc.body.len() as u64));
    group.bench_function("etcd_proto", |b| {
        b.iter_batched(
            || grpc.response(),
            |r| get.parse(r).expect("parses"),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("bare_prost", |b| {
        b.iter_batched(
            || grpc.body.slice(5..),
            |body| RangeResponse::decode(black_box(body)).expect("decodes"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, v3_parse);
criterion_main!(benches);
