//! An election observer (Go's `Election.Observe`) on the simulated etcd,
//! following fuzzer-chosen changes of leadership: candidates joining,
//! leaders proclaiming, keys deleted, sessions expiring, time passing.
//! Invariants: once caught up, the observer's last item is the current
//! leader with its current value, and it never goes back to an older
//! leader; it never ends by itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tape = &data[..data.len().min(512)];
    etcd_proto::testkit::v3_scenarios::observe_leaders(tape);
});
