//! python-etcd's lock recipe, fixed, against a real etcd on every transport.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_proto::v2::{Hold, LockError, LockOptions, ReadOptions};
use etcd_proto::Error;

/// The keys queued for lock `name` (under the default prefix).
fn queue(client: &etcd_tests::TestClient, name: &str) -> Vec<String> {
    match client.read(&format!("/_locks/{name}"), ReadOptions::new().sorted(true)) {
        Ok(listing) => listing.node.children().map(|n| n.key.clone()).collect(),
        Err(e) if e.is_key_not_found() => Vec::new(),
        Err(e) => panic!("{e}"),
    }
}

etcd_tests::scenarios! {
    /// 8 clients x 100 acquisitions, each doing a non-atomic read-then-write
    /// increment under the lock: the count ends at 800 and no two holders
    /// ever overlap.
    fn eight_clients_increment_under_the_lock(client, env) {
        client.set("/lk/counter", "0").unwrap();
        let inside = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let worker = env.client_for(&env.urls());
                    for _ in 0..100 {
                        worker
                            .with_lock("counter", LockOptions::new().ttl(10), || {
                                assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                                let n: u64 = worker.get("/lk/counter").unwrap().node.value.unwrap().parse().unwrap();
                                worker.set("/lk/counter", (n + 1).to_string()).unwrap();
                                inside.store(false, Ordering::SeqCst);
                            })
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(client.get("/lk/counter").unwrap().node.value.as_deref(), Some("800"));
        assert!(queue(client, "counter").is_empty(), "every key released");
    }

    /// A non-blocking attempt on a held lock fails fast and leaves no key behind.
    fn try_lock_on_a_held_lock_fails_fast(client, env) {
        let other = env.client_for(&env.urls());
        let (_, busy, took) = client
            .with_lock("held", LockOptions::new(), || {
                let started = Instant::now();
                let busy = other.try_lock_now("held", LockOptions::new());
                (queue(client, "held"), busy, started.elapsed())
            })
            .unwrap();
        assert!(!busy, "the lock was taken twice");
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert!(queue(client, "held").is_empty());
    }

    /// Waiting with a deadline gives up then and removes its own key.
    fn timed_out_waiter_cleans_up(client, env) {
        let other = env.client_for(&env.urls());
        let (error, took, keys) = client
            .with_lock("slow", LockOptions::new(), || {
                let started = Instant::now();
                let error = other
                    .with_lock("slow", LockOptions::new().timeout(Duration::from_millis(600)), || ())
                    .unwrap_err();
                (error, started.elapsed(), queue(client, "slow"))
            })
            .unwrap();
        assert!(matches!(error, Error::Lock(LockError::TimedOut { .. })), "{error:?}");
        assert!(took >= Duration::from_millis(550) && took < Duration::from_secs(3), "{took:?}");
        assert_eq!(keys.len(), 1, "only the holder's key is left: {keys:?}");
    }

    /// A holder whose process is killed frees the lock once its TTL passes.
    fn killed_holder_frees_the_lock_after_its_ttl(client, env) {
        let mut holder = Command::new(env!("CARGO_BIN_EXE_lock-holder"))
            .args([env.urls()[0].as_str(), "orphan", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("acquired "), "{line}");
        holder.kill().unwrap();
        holder.wait().unwrap();
        let killed = Instant::now();
        client.with_lock("orphan", LockOptions::new().timeout(Duration::from_secs(10)), || ()).unwrap();
        let waited = killed.elapsed();
        assert!(waited <= Duration::from_secs(4), "freed only after {waited:?}");
    }

    /// While a waiter waits, its own key vanishing is noticed at once.
    fn waiter_notices_its_own_key_vanishing(client, env) {
        let waiter = env.client_for(&env.urls());
        let deleter = env.client_for(&env.urls());
        let outcome = client
            .with_lock("vanish", LockOptions::new(), || {
                std::thread::scope(|s| {
                    let waiting = s.spawn(|| waiter.with_lock("vanish", LockOptions::new(), || ()));
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while queue(&deleter, "vanish").len() < 2 {
                        assert!(Instant::now() < deadline, "the waiter never queued");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let theirs = queue(&deleter, "vanish")[1].clone();
                    let deleted = Instant::now();
                    deleter.delete(&theirs).unwrap();
                    let outcome = waiting.join().unwrap();
                    (outcome, deleted.elapsed())
                })
            })
            .unwrap();
        let (outcome, took) = outcome;
        assert!(matches!(outcome, Err(Error::Lock(LockError::Expired { .. }))), "{outcome:?}");
        assert!(took < Duration::from_secs(2), "noticed after {took:?}");
    }

    /// A waiter that falls out of etcd's event history while waiting (1,100
    /// unrelated writes) resyncs and still gets the lock when it is freed.
    fn waiter_survives_history_being_cleared(client, env) {
        let waiter = env.client_for(&env.urls());
        let writer = env.client_for(&env.urls());
        let holder = client.acquire("busy-history", LockOptions::new()).unwrap();
        std::thread::scope(|s| {
            let waiting = s.spawn(|| {
                let options = LockOptions::new().ttl(3).timeout(Duration::from_secs(20));
                waiter.with_lock("busy-history", options, || true)
            });
            std::thread::sleep(Duration::from_millis(300));
            for i in 0..1100 {
                writer.set("/lk/noise", i.to_string()).unwrap();
            }
            // The waiter renews its poll (every second with a 3 s TTL) into the
            // cleared history, resyncs, and goes on waiting.
            std::thread::sleep(Duration::from_millis(1500));
            assert!(holder.release().unwrap());
            assert!(waiting.join().unwrap().unwrap(), "the waiter got the lock");
        });
    }

    /// The hard-maximum TTL frees the lock even while "held".
    fn hard_maximum_hold_expires(client, env) {
        let other = env.client_for(&env.urls());
        let took = client
            .with_lock("max", LockOptions::new().ttl(1).hold(Hold::MaxTtl), || {
                let started = Instant::now();
                other.with_lock("max", LockOptions::new().timeout(Duration::from_secs(10)), || ()).unwrap();
                started.elapsed()
            })
            .unwrap();
        assert!(took <= Duration::from_secs(4), "{took:?}");
    }

    /// Fencing tokens grow; a lock can be re-adopted by its uuid; release is
    /// guarded by ownership.
    fn fencing_adoption_and_guarded_release(client, env) {
        let other = env.client_for(&env.urls());
        let first = client.acquire("fence", LockOptions::new()).unwrap();
        let first_token = first.held().index;
        assert!(first.is_acquired().unwrap());
        assert!(first.release().unwrap());
        let second = client.acquire("fence", LockOptions::new()).unwrap();
        assert!(second.held().index > first_token, "fencing tokens grow");

        // Re-adopt by uuid (a restarted process).
        let adopted = other
            .acquire("fence", LockOptions::new().adopt(second.held().uuid.clone()))
            .unwrap();
        assert_eq!(adopted.held().key, second.held().key);

        // Someone deletes our key; a third client takes the lock; our release
        // must not touch theirs.
        client.delete(&second.held().key).unwrap();
        let third = other.acquire("fence", LockOptions::new()).unwrap();
        assert!(!second.release().unwrap(), "release is guarded by the uuid");
        assert!(!adopted.release().unwrap());
        assert!(third.is_acquired().unwrap());
        assert!(third.release().unwrap());
        // Adopting a uuid nobody holds is a typed error.
        let missing = client.acquire("fence", LockOptions::new().adopt("nobody")).unwrap_err();
        assert!(matches!(missing, Error::Lock(LockError::NotFound { .. })), "{missing:?}");
    }
}
