//! The v3 lock recipe (Go's Mutex: a key per session, each waiter watching
//! the newest older key) with 2 to 5 contenders on the simulated etcd, every
//! choice fuzzer-chosen: TTLs, try-locks, deadlines, start and holding
//! times, holders whose sessions die, lost answers. Invariants (checked at
//! every step of virtual time by the simulator): never two believers with
//! their keys present (mutual exclusion, fenced by create revisions), a
//! holder's key is the oldest, every contender finishes, and no live
//! session leaves a key behind.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Past a few hundred bytes the simulator draws from its own generator.
    let tape = &data[..data.len().min(512)];
    etcd_proto::testkit::v3_scenarios::lock_contention(tape);
});
