//! A v3 put (at most once) and a v3 get (safe to replay) as calls over
//! three endpoints, against fuzzer-chosen answers: successes, etcd errors
//! that say "not applied" (no leader) or "maybe applied" (request timed
//! out), garbage, redirects and transport failures. Invariants: no panic;
//! the call ends; a put is never sent again after an outcome that may have
//! reached etcd (a timeout, a cut connection, garbage, a 5xx that is not a
//! refusal); a success is only reported for a request that got a 2xx.
#![no_main]

use bytes::Bytes;
use etcd_proto::testkit::Sent;
use etcd_proto::{v3, Call, TransportErrorKind};
use etcd_proto_fuzz::{cluster, drive_flow, response, Answers, Input};
use libfuzzer_sys::fuzz_target;

const NO_LEADER: &str =
    r#"{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}"#;
const TIMED_OUT: &str = r#"{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}"#;

/// The fake cluster's answers; it checks at-most-once as it goes.
struct Members {
    /// A put got an answer (or a failure) that may mean etcd applied it.
    put_may_have_landed: bool,
}

impl Answers for Members {
    fn answer(
        &mut self,
        input: &mut Input<'_>,
        sent: &Sent,
    ) -> Result<http::Response<Bytes>, TransportErrorKind> {
        let path = sent.path().to_owned();
        let is_put = path == "/v3/kv/put";
        assert!(
            !(is_put && self.put_may_have_landed),
            "a put was sent again after an outcome that may have applied it"
        );
        if input.byte().is_multiple_of(3) {
            let kind = input.failure_kind();
            let not_sent = matches!(kind, TransportErrorKind::Connect | TransportErrorKind::Tls);
            self.put_may_have_landed |= is_put && !not_sent;
            return Err(kind);
        }
        let (status, body, refusal) = match input.below(7) {
            0 => (
                200,
                if path.ends_with("/range") {
                    r#"{"header":{"revision":"7"},"kvs":[{"key":"aw==","value":"dg==","mod_revision":"7"}],"count":"1"}"#.to_owned()
                } else {
                    r#"{"header":{"revision":"7"}}"#.to_owned()
                },
                false,
            ),
            1 => (503, NO_LEADER.to_owned(), true),
            2 => (503, TIMED_OUT.to_owned(), false),
            3 => (
                200,
                r#"{"header":{},"members":[{"ID":"1","clientURLs":["http://127.0.0.1:2379"]}]}"#
                    .to_owned(),
                false,
            ),
            4 => (307, String::new(), true),
            _ => (
                input.status(),
                String::from_utf8_lossy(input.bytes(96)).into_owned(),
                false,
            ),
        };
        self.put_may_have_landed |= is_put && !refusal;
        Ok(response(input, status, body.into_bytes()))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mut cluster = cluster();
    let mut members = Members {
        put_may_have_landed: false,
    };
    if input.byte().is_multiple_of(2) {
        let mut call = Call::new(v3::Put::new("k", "v"));
        let run = drive_flow(&mut call, &mut cluster, &mut input, &mut members);
        if let Some(Ok(_)) = run.result {
            assert!(
                run.exchanges
                    .iter()
                    .any(|(_, o)| matches!(o, Ok(s) if (200..300).contains(s))),
                "success without a 2xx"
            );
        }
        assert!(
            run.result.is_some() || input.is_empty(),
            "the call did not end"
        );
    } else {
        let mut call = Call::new(v3::Get::new("k"));
        let run = drive_flow(&mut call, &mut cluster, &mut input, &mut members);
        assert!(
            run.result.is_some() || input.is_empty(),
            "the call did not end"
        );
    }
});
