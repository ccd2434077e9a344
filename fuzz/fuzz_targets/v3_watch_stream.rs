//! The v3 watch machine against a fake gateway whose stream lines are
//! recorded shapes with fuzzer-chosen revisions (or raw bytes), split into
//! chunks at fuzzer-chosen points, with failures, clean ends, silences and
//! error heads. Invariants: no panic; `Created` at most once and first; no
//! event below the start revision; within a batch revisions never go back,
//! and each batch starts above the previous one's last (every event once,
//! in order, across every re-open).
#![no_main]

use bytes::Bytes;
use etcd_proto::testkit::Sent;
use etcd_proto::v3::{KeyRange, Watch, WatchItem};
use etcd_proto::TransportErrorKind;
use etcd_proto_fuzz::{cluster, drive_stream, response, Answers, Input};
use libfuzzer_sys::fuzz_target;

struct Gateway {
    /// The store's revision as the fake knows it.
    revision: i64,
    /// Bytes of a line not yet handed out.
    pending: Vec<u8>,
}

impl Gateway {
    fn line(&mut self, input: &mut Input<'_>) -> Vec<u8> {
        // Mostly forward, sometimes (a confused server) back.
        let step = input.byte() as i64 % 8 - 1;
        self.revision = (self.revision + step).max(1);
        let r = self.revision;
        let text = match input.below(9) {
            0 => format!(r#"{{"result":{{"header":{{"revision":"{r}"}},"created":true}}}}"#),
            1..=3 => {
                let n = 1 + input.below(3);
                let events: Vec<String> = (0..n)
                    .map(|i| {
                        let m = r + i as i64 * (input.byte() as i64 % 2);
                        self.revision = self.revision.max(m);
                        format!(r#"{{"kv":{{"key":"ay9h","create_revision":"{m}","mod_revision":"{m}","version":"1","value":"MQ=="}}}}"#)
                    })
                    .collect();
                format!(r#"{{"result":{{"header":{{"revision":"{}"}},"events":[{}]}}}}"#, self.revision, events.join(","))
            }
            4 => format!(r#"{{"result":{{"header":{{"revision":"{r}"}}}}}}"#),
            5 => format!(r#"{{"result":{{"header":{{"revision":"{r}"}},"compact_revision":"{}","canceled":true}}}}"#, r / 2 + 1),
            6 => r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#.to_owned(),
            7 => r#"{"result":{"header":{"revision":"1"},"canceled":true,"cancel_reason":"etcdserver: permission denied"}}"#.to_owned(),
            _ => String::from_utf8_lossy(input.bytes(64)).into_owned(),
        };
        let mut bytes = text.into_bytes();
        bytes.push(b'\n');
        bytes
    }
}

impl Answers for Gateway {
    fn answer(
        &mut self,
        input: &mut Input<'_>,
        _sent: &Sent,
    ) -> Result<http::Response<Bytes>, TransportErrorKind> {
        if input.byte().is_multiple_of(4) {
            return Err(input.failure_kind());
        }
        let status = input.status();
        let body = input.bytes(128).to_vec();
        Ok(response(input, status, body))
    }

    fn head(
        &mut self,
        input: &mut Input<'_>,
        _sent: &Sent,
    ) -> Result<http::response::Parts, TransportErrorKind> {
        self.pending.clear();
        match input.below(8) {
            0 => Err(input.failure_kind()),
            1 => Ok(response(input, 503, Vec::new()).into_parts().0),
            2 => Ok(response(input, 401, Vec::new()).into_parts().0),
            _ => Ok(response(input, 200, Vec::new()).into_parts().0),
        }
    }

    fn chunk(&mut self, input: &mut Input<'_>) -> Result<Option<Bytes>, TransportErrorKind> {
        match input.below(16) {
            0 => return Err(input.failure_kind()),
            1 => return Ok(None),
            _ => {}
        }
        if self.pending.is_empty() {
            self.pending = self.line(input);
        }
        let cut = 1 + input.below(self.pending.len());
        let chunk: Vec<u8> = self.pending.drain(..cut).collect();
        Ok(Some(Bytes::from(chunk)))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let start = 1 + input.byte() as i64;
    let mut watch = Watch::new(KeyRange::prefix("k/")).start_revision(start);
    let mut gateway = Gateway {
        revision: start,
        pending: Vec::new(),
    };
    let mut cluster = cluster();
    let mut created = 0;
    let mut items = 0;
    let mut last: Option<i64> = None;
    drive_stream(&mut watch, &mut cluster, &mut input, &mut gateway, |item| {
        items += 1;
        match item {
            WatchItem::Created { .. } => {
                created += 1;
                assert!(created == 1 && items == 1, "Created twice or not first");
            }
            WatchItem::Events(batch) => {
                assert!(!batch.events.is_empty(), "an empty batch");
                let first = batch.events[0].kv.mod_revision;
                assert!(
                    first >= start,
                    "event {first} below the start revision {start}"
                );
                if let Some(last) = last {
                    assert!(
                        first > last,
                        "event {first} after {last}: repeated or out of order"
                    );
                }
                for pair in batch.events.windows(2) {
                    assert!(
                        pair[0].kv.mod_revision <= pair[1].kv.mod_revision,
                        "a batch goes back"
                    );
                }
                last = batch.events.last().map(|e| e.kv.mod_revision);
            }
            _ => {}
        }
    });
});
