//! The v2 watcher (event after event, renewals, failover, resync after the
//! history was cleared) against fuzzer-chosen answers: recorded event
//! shapes with fuzzer-chosen indexes, "event index cleared", long polls
//! that end empty, garbage and failures. Invariants: no panic; the
//! position never moves back (no event is asked for twice), an event at or
//! past it moves it just past the event; a resync never moves it back.
#![no_main]

use bytes::Bytes;
use etcd_proto::testkit::Sent;
use etcd_proto::v2::{Watch, WatchEvent, WatchOptions};
use etcd_proto::TransportErrorKind;
use etcd_proto_fuzz::{cluster, drive_flow, response, Answers, Input};
use libfuzzer_sys::fuzz_target;

struct Keys {
    index: u64,
}

impl Answers for Keys {
    fn answer(
        &mut self,
        input: &mut Input<'_>,
        sent: &Sent,
    ) -> Result<http::Response<Bytes>, TransportErrorKind> {
        if input.byte().is_multiple_of(5) {
            return Err(input.failure_kind());
        }
        let waiting = sent.is_poll();
        // Mostly forward, sometimes (a confused server) back.
        self.index = (self.index + input.byte() as u64 % 6)
            .saturating_sub(1)
            .max(1);
        let i = self.index;
        let (status, body) = match input.below(7) {
            0..=2 if waiting => (
                200,
                format!(
                    r#"{{"action":"set","node":{{"key":"/w/a","value":"v","modifiedIndex":{i},"createdIndex":{i}}}}}"#
                ),
            ),
            0..=2 => (
                200,
                format!(
                    r#"{{"action":"get","node":{{"key":"/w","dir":true,"nodes":[{{"key":"/w/a","value":"v","modifiedIndex":{i},"createdIndex":{i}}}],"modifiedIndex":1,"createdIndex":1}}}}"#
                ),
            ),
            3 => (
                400,
                format!(
                    r#"{{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [{}/1]","index":{}}}"#,
                    i + 1000,
                    i + 1000
                ),
            ),
            4 => (200, String::new()),
            5 => (
                404,
                format!(
                    r#"{{"errorCode":100,"message":"Key not found","cause":"/w","index":{i}}}"#
                ),
            ),
            _ => (
                input.status(),
                String::from_utf8_lossy(input.bytes(96)).into_owned(),
            ),
        };
        Ok(response(input, status, body.into_bytes()))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let from = 1 + input.byte() as u64;
    let options = WatchOptions::new().recursive(true).from_index(from);
    let mut watch = Watch::new("/w", options);
    let mut keys = Keys { index: from };
    let mut cluster = cluster();
    for _ in 0..16 {
        let asked = watch.next_index();
        let mut flow = watch.next_event();
        let run = drive_flow(&mut flow, &mut cluster, &mut input, &mut keys);
        let Some(Ok((next, result))) = run.result else {
            return;
        };
        match result {
            Ok(WatchEvent::Changed(event)) => {
                // An event below the position (which etcd never sends) is
                // handed out as it came; the position never moves back, and
                // an event at or past it moves it just past the event.
                let index = event.node.modified_index;
                match (asked, next.next_index()) {
                    (Some(asked), Some(now)) if index >= asked => {
                        assert_eq!(
                            now,
                            index.saturating_add(1),
                            "the position did not follow {index}"
                        )
                    }
                    (Some(asked), Some(now)) => {
                        assert_eq!(now, asked, "the position moved on {index}")
                    }
                    (Some(_), None) => panic!("the position was lost"),
                    (None, _) => {}
                }
            }
            Ok(WatchEvent::Resynced(resync)) => {
                if let (Some(asked), Some(now)) = (asked, next.next_index()) {
                    assert!(now >= asked, "a resync moved the watch back");
                }
                let _ = resync;
            }
            Err(_) => {}
        }
        watch = next;
        if input.is_empty() {
            return;
        }
    }
});
