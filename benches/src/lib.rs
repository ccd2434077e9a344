//! Benchmarks of the etcd client (criterion micro-benchmarks and end-to-end runs).
//!
//! The criterion micro-benchmarks live in `benches/` (run them with
//! `cargo bench -p etcd-benches`); `v2_parse` measures the v2 response parser
//! of `etcd-proto` against an untyped `serde_json::Value` parse of the same
//! bytes.
//!
//! The end-to-end benchmark binary `etcd-bench` (`src/bin/etcd-bench.rs`)
//! runs every transport against a real etcd next to a bare HTTP/1.1
//! baseline; its measurement core lives in [`e2e`].
//!
//! This library also holds what the criterion benchmarks share: generators of
//! realistic response bodies, built deterministically so every run parses the
//! same bytes.

use std::fmt::Write as _;

pub mod e2e;

/// The `X-Etcd-Index` that goes with [`v2_listing_body`]`(dirs, keys_per_dir)`:
/// the largest `createdIndex` or `modifiedIndex` in it.
pub fn v2_listing_etcd_index(dirs: usize, keys_per_dir: usize) -> u64 {
    let creations = (dirs * (keys_per_dir + 1)) as u64;
    let modifications = (dirs * (keys_per_dir / 5)) as u64;
    FIRST_INDEX + creations + modifications
}

/// The first `createdIndex` of a listing (the `/bench` directory itself).
const FIRST_INDEX: u64 = 7;

/// The body of a recursive v2 `GET /v2/keys/bench?recursive=true`, as etcd
/// writes it: `{"action":"get","node":{"key":"/bench","dir":true,"nodes":[…]}}`.
///
/// `/bench` holds `dirs` subdirectories `/bench/dir-000`, `/bench/dir-001`, …,
/// each holding `keys_per_dir` keys `/bench/dir-000/key-000`, … with values of
/// about 100 bytes. The mix aims at what a real v2 store holds:
///
/// - most values are opaque tokens of 96 to 111 ASCII characters;
/// - every 10th value is a small JSON document (service-discovery style), so
///   its quotes arrive JSON-escaped (`\"`) and the parser takes its slow path;
/// - every 8th key has a TTL: `ttl` (seconds left) and `expiration`
///   (RFC 3339 with nanoseconds, as etcd prints it);
/// - every node, directories included, has `createdIndex` and `modifiedIndex`;
///   every 5th key was modified after its creation, so its `modifiedIndex` is larger.
///
/// Fields come in the order etcd's Go encoder writes them (`key`, `value`,
/// `dir`, `expiration`, `ttl`, `nodes`, `modifiedIndex`, `createdIndex`).
/// The output is deterministic: the same arguments give the same bytes.
///
/// ```
/// let body = etcd_benches::v2_listing_body(2, 3);
/// let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
/// assert_eq!(json["node"]["nodes"][1]["nodes"][2]["key"], "/bench/dir-001/key-002");
/// ```
pub fn v2_listing_body(dirs: usize, keys_per_dir: usize) -> Vec<u8> {
    // ~100 bytes of value plus ~90 bytes of key and metadata per key.
    let mut out = String::with_capacity(256 + dirs * (120 + keys_per_dir * 200));
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    // Creations first (each directory, then its keys), modifications after.
    let mut created = FIRST_INDEX;
    let mut modified = FIRST_INDEX + (dirs * (keys_per_dir + 1)) as u64;
    let root_created = created;

    out.push_str(r#"{"action":"get","node":{"key":"/bench","dir":true,"nodes":["#);
    for d in 0..dirs {
        created += 1;
        let dir_created = created;
        if d > 0 {
            out.push(',');
        }
        write!(out, r#"{{"key":"/bench/dir-{d:03}","dir":true,"nodes":["#).unwrap();
        for k in 0..keys_per_dir {
            created += 1;
            let key_modified = if k % 5 == 4 {
                modified += 1;
                modified
            } else {
                created
            };
            if k > 0 {
                out.push(',');
            }
            write!(out, r#"{{"key":"/bench/dir-{d:03}/key-{k:03}","value":"#).unwrap();
            push_json_string(&mut out, &value(&mut rng, d, k));
            if k % 8 == 7 {
                let ttl = 30 + rng.next() % 3570;
                let secs = 10 + ttl % 50;
                let nanos = rng.next() % 1_000_000_000;
                write!(
                    out,
                    r#","expiration":"2026-05-01T12:{:02}:{:02}.{nanos:09}Z","ttl":{ttl}"#,
                    (ttl / 60) % 60,
                    secs % 60,
                )
                .unwrap();
            }
            write!(
                out,
                r#","modifiedIndex":{key_modified},"createdIndex":{created}}}"#
            )
            .unwrap();
        }
        write!(
            out,
            r#"],"modifiedIndex":{dir_created},"createdIndex":{dir_created}}}"#
        )
        .unwrap();
    }
    write!(
        out,
        r#"],"modifiedIndex":{root_created},"createdIndex":{root_created}}}}}"#
    )
    .unwrap();
    out.into_bytes()
}

/// The value of key `k` in directory `d`: about 100 bytes, see [`v2_listing_body`].
fn value(rng: &mut XorShift, d: usize, k: usize) -> String {
    if k % 10 == 3 {
        format!(
            r#"{{"host":"10.{}.{}.{}","port":{},"weight":{},"zone":"eu-west-{}","tags":["primary","v2"],"healthy":true}}"#,
            d % 256,
            k % 256,
            rng.next() % 256,
            1024 + rng.next() % 60_000,
            rng.next() % 100,
            1 + d % 3,
        )
    } else {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let len = 96 + (rng.next() % 16) as usize;
        (0..len)
            .map(|_| ALPHABET[(rng.next() % 64) as usize] as char)
            .collect()
    }
}

/// Appends `s` as a JSON string literal, escaped.
fn push_json_string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap());
}

/// A tiny deterministic generator (xorshift64), so bodies are reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use etcd_proto::v2::{Read, ReadOptions};
    use etcd_proto::Operation;

    #[test]
    fn listing_parses_through_etcd_proto() {
        let body = v2_listing_body(100, 100);
        let response = http::Response::new(Bytes::from(body));
        let parsed = Read::new("/bench")
            .options(ReadOptions::new().recursive(true))
            .parse(response)
            .unwrap();
        let root = parsed.node;
        assert_eq!(root.key, "/bench");
        assert!(root.dir);
        assert_eq!(root.children().count(), 100);
        assert_eq!(root.subtree().count(), 1 + 100 + 100 * 100);
        let leaves: Vec<_> = root.leaves().collect();
        assert_eq!(leaves.len(), 10_000);
        assert_eq!(leaves[0].key, "/bench/dir-000/key-000");
        assert_eq!(leaves[9_999].key, "/bench/dir-099/key-099");
        let max_index = v2_listing_etcd_index(100, 100);
        for leaf in &leaves {
            let len = leaf.value.as_ref().unwrap().len();
            assert!((90..=120).contains(&len), "{}: {len} bytes", leaf.key);
            assert_eq!(leaf.ttl.is_some(), leaf.expiration.is_some());
            assert!(leaf.created_index > 0 && leaf.created_index <= leaf.modified_index);
            assert!(leaf.modified_index <= max_index);
        }
        assert!(leaves.iter().any(|n| n.modified_index == max_index));
        let with_ttl = leaves.iter().filter(|n| n.ttl.is_some()).count();
        assert_eq!(with_ttl, 100 * (100 / 8));
        let json_values = leaves
            .iter()
            .filter(|n| n.value.as_ref().unwrap().starts_with('{'))
            .count();
        assert_eq!(json_values, 100 * 10);
    }

    #[test]
    fn listing_is_deterministic() {
        assert_eq!(v2_listing_body(3, 20), v2_listing_body(3, 20));
        let empty: serde_json::Value = serde_json::from_slice(&v2_listing_body(0, 0)).unwrap();
        assert_eq!(empty["node"]["nodes"], serde_json::json!([]));
    }
}
