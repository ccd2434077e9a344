//! The v2 lock recipe (python-etcd's lock: in-order keys under the lock
//! directory, each waiter watching its predecessor, a keeper refreshing the
//! TTL) with 2 to 6 contenders against the simulated v2 lock directory of
//! the machine tests (`etcd_proto::testkit::v2_lock_arena`), every
//! choice fuzzer-chosen: blocking or not, deadlines, hard-maximum holds,
//! TTLs, start times, then a tape of TTL expiries, third-party deletions
//! and writes, compactions, transient failures and scheduling. Invariants
//! (the arena's, checked after every step): at most one contender holds
//! the lock at any time (fenced by its key's index), every one ends, and
//! none that failed, timed out or found the lock busy leaves a key behind.
#![no_main]
use std::time::Duration;

use etcd_proto::testkit::v2_lock_arena::{Arena, Plan};
use etcd_proto::testkit::Tape;
use libfuzzer_sys::fuzz_target;

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fuzz_target!(|data: &[u8]| {
    let mut at = 0;
    let mut next = || {
        let byte = data.get(at).copied().unwrap_or(0);
        at += 1;
        u64::from(byte)
    };
    let contenders = 2 + next() % 5;
    let plans = (0..contenders)
        .map(|_| {
            let shape = next();
            let timeout = (shape % 5 < 2).then(|| millis(300 + next() * 58));
            Plan {
                blocking: shape % 5 != 0,
                timeout,
                max: shape & 0x10 != 0,
                ttl: 1 + next() % 5,
                start: millis(next() * 12),
            }
        })
        .collect();
    let fault_percent = next() % 21;
    let disturb_percent = next() % 16;
    let rest = data.get(at..).unwrap_or_default();
    let tape = Tape::quiet(
        rest.chunks(2)
            .take(2_000)
            .map(|pair| u64::from(u16::from_le_bytes([pair[0], *pair.get(1).unwrap_or(&0)]))),
    );
    Arena::new(plans, tape, fault_percent, disturb_percent).run();
});
