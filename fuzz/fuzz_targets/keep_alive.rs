//! A v3 lease keep-alive against fuzzer-chosen answers (renewals with
//! fuzzer TTLs, "lease not found", garbage, failures, slow answers) and
//! time jumps, sometimes stopped. Invariant: no panic, and while the flow
//! runs the lease is really alive: never past the last successful
//! renewal's send time plus the TTL it was granted (etcd renewed it no
//! earlier), so a lock holder learns of a loss before etcd can act on it.
#![no_main]

use std::time::{Duration, Instant};

use etcd_proto::v3::KeepAlive;
use etcd_proto::{Flow, Step};
use etcd_proto_fuzz::{cluster, response, FuzzFailure, Input, MAX_STEPS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let granted = input.below(8) as i64;
    let mut flow = KeepAlive::new(7).granted_ttl(granted);
    let mut cluster = cluster();
    let start = Instant::now();
    let mut now = start;
    // Until when the lease is surely alive, as etcd would see it.
    let mut alive_until = (granted > 0).then(|| start + Duration::from_secs(granted as u64));
    for _ in 0..MAX_STEPS {
        // A stop comes between exchanges; the next poll ends the flow.
        let stopped = input.byte() == 0xff;
        if stopped {
            flow.handle(&mut cluster, now, etcd_proto::Input::Stop);
        }
        let step = flow.poll(&mut cluster, now);
        if stopped {
            assert!(
                matches!(step, Step::Done(Ok(()))),
                "a stopped keep-alive goes on: {step:?}"
            );
        }
        if !matches!(step, Step::Done(_)) {
            if let Some(until) = alive_until {
                assert!(
                    now < until,
                    "the keep-alive still runs {:?} past the lease's end",
                    now - until
                );
            }
        }
        match step {
            Step::Done(_) => return,
            Step::Sleep(until) => {
                assert!(until >= now, "a sleep into the past");
                now = until + Duration::from_millis(input.byte() as u64 * 4);
            }
            Step::Transmit(transmit) => {
                let sent = now;
                // A failed call may sync the member list first: only an
                // answered renewal moves the lease's end.
                let renewal = transmit.request.uri().path().ends_with("/lease/keepalive");
                now += Duration::from_millis(input.byte() as u64 * 25);
                if let Some(timeout) = transmit.timeout {
                    now = now.min(sent + timeout);
                }
                match input.below(6) {
                    0 => flow.handle_failure(
                        &mut cluster,
                        now,
                        input.failure_kind(),
                        Box::new(FuzzFailure),
                    ),
                    1 => {
                        let body = input.bytes(64).to_vec();
                        let status = input.status();
                        flow.handle_response(&mut cluster, now, response(&mut input, status, body))
                    }
                    2 => {
                        let body = br#"{"result":{"header":{"revision":"3"},"ID":"7"}}"#.to_vec();
                        flow.handle_response(&mut cluster, now, response(&mut input, 200, body))
                    }
                    _ if renewal => {
                        let ttl = 1 + input.below(6) as u64;
                        let body = format!(
                            r#"{{"result":{{"header":{{"revision":"3"}},"ID":"7","TTL":"{ttl}"}}}}"#
                        );
                        alive_until = Some(sent + Duration::from_secs(ttl));
                        flow.handle_response(
                            &mut cluster,
                            now,
                            response(&mut input, 200, body.into_bytes()),
                        )
                    }
                    _ => {
                        let body = br#"{"header":{"revision":"3"},"members":[]}"#.to_vec();
                        flow.handle_response(&mut cluster, now, response(&mut input, 200, body))
                    }
                }
            }
        }
        if input.is_empty() {
            return;
        }
    }
});
