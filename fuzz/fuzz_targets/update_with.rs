//! python-etcd's read-modify-write loop (`update_with`) against fuzzer-
//! chosen answers: reads of a value that others keep changing, lost races
//! (412), a key that disappears, garbage and failures. Invariants: no
//! panic; every write is a compare-and-swap on exactly what was last read
//! (`prevIndex` of that read, or `prevExist=false` after "not found") with
//! the function applied to that value, so no update is ever lost; it ends.
#![no_main]

use bytes::Bytes;
use etcd_proto::testkit::Sent;
use etcd_proto::v2::UpdateWith;
use etcd_proto::TransportErrorKind;
use etcd_proto_fuzz::{cluster, drive_flow, response, Answers, Input};
use libfuzzer_sys::fuzz_target;

/// The fake key: what the last read said.
struct Key {
    last_read: Option<Option<(String, u64)>>,
    writes: usize,
}

impl Answers for Key {
    fn answer(
        &mut self,
        input: &mut Input<'_>,
        sent: &Sent,
    ) -> Result<http::Response<Bytes>, TransportErrorKind> {
        if sent.path() != "/v2/keys/k" {
            // A failed call syncs the member list: not a read of the key.
            let body = br#"{"members":[]}"#.to_vec();
            return Ok(response(input, 200, body));
        }
        if sent.method == http::Method::PUT {
            self.writes += 1;
            let form = String::from_utf8_lossy(&sent.body).into_owned();
            let query = sent
                .target()
                .split_once('?')
                .map_or("", |(_, q)| q)
                .to_owned();
            let all = format!("{form}&{query}");
            let field = |name: &str| {
                all.split('&')
                    .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                    .map(str::to_owned)
            };
            match &self.last_read {
                Some(Some((value, index))) => {
                    assert_eq!(
                        field("prevIndex"),
                        Some(index.to_string()),
                        "a write not guarded by the read: {all}"
                    );
                    assert_eq!(
                        field("value"),
                        Some(format!("{value}x")),
                        "a write not made from the read: {all}"
                    );
                }
                Some(None) => {
                    assert_eq!(
                        field("prevExist").as_deref(),
                        Some("false"),
                        "a create that could overwrite: {all}"
                    );
                    assert_eq!(field("value").as_deref(), Some("x"), "{all}");
                }
                None => panic!("a write before any read: {all}"),
            }
        }
        if input.byte().is_multiple_of(6) {
            return Err(input.failure_kind());
        }
        let index = 1 + input.byte() as u64;
        let (status, body) = if sent.method == http::Method::GET {
            match input.below(5) {
                0 => {
                    self.last_read = Some(None);
                    (
                        404,
                        format!(
                            r#"{{"errorCode":100,"message":"Key not found","cause":"/k","index":{index}}}"#
                        ),
                    )
                }
                1 => (
                    input.status(),
                    String::from_utf8_lossy(input.bytes(64)).into_owned(),
                ),
                _ => {
                    let value: String = (0..input.below(4))
                        .map(|_| *input.pick(&['a', 'b', '7']))
                        .collect();
                    let body = format!(
                        r#"{{"action":"get","node":{{"key":"/k","value":"{value}","modifiedIndex":{index},"createdIndex":1}}}}"#
                    );
                    self.last_read = Some(Some((value, index)));
                    (200, body)
                }
            }
        } else {
            match input.below(4) {
                0 => (
                    200,
                    format!(
                        r#"{{"action":"compareAndSwap","node":{{"key":"/k","value":"v","modifiedIndex":{index},"createdIndex":1}}}}"#
                    ),
                ),
                1 => (
                    412,
                    format!(
                        r#"{{"errorCode":101,"message":"Compare failed","cause":"[1 != 2]","index":{index}}}"#
                    ),
                ),
                2 => (
                    404,
                    format!(
                        r#"{{"errorCode":100,"message":"Key not found","cause":"/k","index":{index}}}"#
                    ),
                ),
                _ => (
                    input.status(),
                    String::from_utf8_lossy(input.bytes(64)).into_owned(),
                ),
            }
        };
        Ok(response(input, status, body.into_bytes()))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let attempts = 1 + input.below(5) as u32;
    let seed = input.u16() as u64;
    let mut flow = UpdateWith::new(
        "/k",
        |current: Option<&str>| format!("{}x", current.unwrap_or("")),
        seed,
    )
    .max_attempts(attempts);
    let mut key = Key {
        last_read: None,
        writes: 0,
    };
    let mut cluster = cluster();
    let run = drive_flow(&mut flow, &mut cluster, &mut input, &mut key);
    assert!(
        run.result.is_some() || input.is_empty(),
        "update_with did not end"
    );
});
