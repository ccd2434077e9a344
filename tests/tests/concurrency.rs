//! Many requests through one client at once, and requests abandoned part-way.

use std::time::Duration;

use etcd_proto::v2::{Read, Write};
use etcd_tests::fault::{Fault, FaultProxy};

etcd_tests::scenarios! {
    /// 64 concurrent writes through one client all land and read back
    /// (tasks on the async clients, threads on the blocking one).
    fn concurrent_writes_land(client, env) {
        let writes: Vec<_> = (0..64)
            .map(|i| Write::new(format!("/conc/k{i:02}"), format!("value {i} ü&=")))
            .collect();
        for result in client.concurrently(writes) {
            assert!(result.unwrap().new_key);
        }
        let reads: Vec<_> = (0..64).map(|i| Read::new(format!("/conc/k{i:02}"))).collect();
        for (i, result) in client.concurrently(reads).into_iter().enumerate() {
            assert_eq!(result.unwrap().node.value, Some(format!("value {i} ü&=")));
        }
        let listed = client.get("/conc").unwrap().node;
        assert_eq!(listed.children().count(), 64);
    }

    /// Requests dropped part-way (while connecting, sending or reading) leave the
    /// client fully usable: later requests get their own answers, and the pool
    /// is not poisoned with half-used connections. Dropped after random short
    /// times (which on a fast machine may all come too late), then for sure:
    /// while the proxy holds the answer back, and while it has sent only part
    /// of the head.
    #[async_only]
    fn cancelled_requests_do_not_poison_the_pool(client, env) {
        let proxy = FaultProxy::start(&env.server().client_url());
        let through = env.client_for(&[proxy.url()]);
        for i in 0..8 {
            through.set(&format!("/cancel/k{i}"), format!("v{i}")).unwrap();
        }
        let mut dropped = 0;
        for round in 0..120u64 {
            let after = Duration::from_micros(round * 25 % 2_000);
            if !through.cancel_after(Read::new(format!("/cancel/k{}", round % 8)), after) {
                dropped += 1;
            }
        }
        for fault in [Fault::Blackhole, Fault::StallAfter(20)] {
            proxy.set(fault);
            let read = Read::new("/cancel/k0");
            assert!(!through.cancel_after(read, Duration::from_millis(200)), "no answer can get through");
            proxy.heal();
            dropped += 1;
        }
        assert!(dropped >= 2);
        for round in 0..80 {
            let key = format!("/cancel/k{}", round % 8);
            let got = through.get(&key).unwrap().node.value;
            assert_eq!(got, Some(format!("v{}", round % 8)), "answer for {key}");
        }
        // Concurrency still works after the cancellations.
        let reads: Vec<_> = (0..32).map(|i| Read::new(format!("/cancel/k{}", i % 8))).collect();
        for (i, r) in through.concurrently(reads).into_iter().enumerate() {
            assert_eq!(r.unwrap().node.value, Some(format!("v{}", i % 8)));
        }
    }
}
