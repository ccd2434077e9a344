//! The v3 lock recipe (Go's `concurrency.Mutex`) and sessions, against a
//! real etcd, on every transport: mutual exclusion, try-lock, deadlines,
//! fencing tokens, both hold modes (keep-alive while held, etcetra's hard
//! maximum TTL), session loss, and interplay with etcd's own lock service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use etcd_proto::v3::{Hold, KeyValue, MutexError, MutexOptions};
use etcd_proto::Error;
use etcd_tests::TestClient;

/// The keys queued for lock `name`, oldest first.
fn queue(client: &TestClient, name: &str) -> Vec<KeyValue> {
    let range = etcd_proto::v3::Get::new(etcd_proto::v3::KeyRange::prefix(format!("{name}/")))
        .sort(
            etcd_proto::v3::SortTarget::Create,
            etcd_proto::v3::SortOrder::Ascend,
        );
    client.v3().range(range).unwrap().kvs
}

fn mutex_error(result: Result<impl std::fmt::Debug, Error>) -> MutexError {
    match result {
        Err(Error::Mutex(e)) => e,
        other => panic!("expected a mutex error, got {other:?}"),
    }
}

etcd_tests::v3_scenarios! {
    /// 4 clients x 25 acquisitions, each a non-atomic read-then-write
    /// increment under the lock: the count ends at 100, no two holders ever
    /// overlap, the fencing tokens grow with every acquisition, and nothing
    /// is left behind.
    fn clients_increment_a_counter_under_the_lock(client, env) {
        client.v3().put("lk/counter", "0").unwrap();
        let inside = AtomicBool::new(false);
        let tokens = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let worker = env.client_for(&env.urls());
                    for _ in 0..25 {
                        let lock = worker.v3_lock("counter", MutexOptions::new().ttl(10)).unwrap();
                        assert!(!inside.swap(true, Ordering::SeqCst), "two holders at once");
                        tokens.lock().unwrap().push(lock.held().fencing_token());
                        let kv = worker.v3().get("lk/counter").unwrap().unwrap();
                        let n: u64 = kv.value_str().unwrap().parse().unwrap();
                        worker.v3().put("lk/counter", (n + 1).to_string()).unwrap();
                        inside.store(false, Ordering::SeqCst);
                        assert!(lock.release().unwrap());
                    }
                });
            }
        });
        let kv = client.v3().get("lk/counter").unwrap().unwrap();
        assert_eq!(kv.value_str(), Some("100"));
        let tokens = tokens.into_inner().unwrap();
        assert!(tokens.windows(2).all(|w| w[0] < w[1]), "fencing tokens grow: {tokens:?}");
        assert!(queue(client, "counter").is_empty(), "every key released");
    }

    /// An uncontended lock: the key is `<name>/<lease hex>` on the session's
    /// lease, its create revision is the fencing token, and a release
    /// guarded by it deletes it (a second one finds nothing).
    fn the_lock_key_is_go_s(client, env) {
        let session = client.v3_session(10).unwrap();
        let lock = session.lock("go", MutexOptions::new()).unwrap();
        let held = lock.held().clone();
        assert_eq!(held.key, format!("go/{:x}", session.lease_id()).into_bytes());
        let keys = queue(client, "go");
        assert_eq!(keys.len(), 1);
        assert_eq!((keys[0].lease, keys[0].create_revision), (session.lease_id(), held.fencing_token()));
        assert!(lock.is_held().unwrap());
        assert!(lock.release().unwrap());
        assert!(queue(client, "go").is_empty());
        // Guarded: the same acquisition cannot release a later one.
        let again = session.lock("go", MutexOptions::new()).unwrap();
        assert!(again.held().fencing_token() > held.fencing_token());
        let stale = etcd_proto::v3::ReleaseMutex::new(held.key.clone(), held.create_revision);
        assert!(!client.execute(stale).unwrap());
        assert_eq!(queue(client, "go").len(), 1);
        assert!(again.release().unwrap());
        session.close().unwrap();
        let _ = env;
    }

    /// A try-lock on a held lock fails fast with Busy and leaves no key.
    fn try_lock_on_a_held_lock_is_busy_and_leaves_no_key(client, env) {
        let other = env.client_for(&env.urls());
        let lock = client.v3_lock("held", MutexOptions::new()).unwrap();
        let started = Instant::now();
        assert!(other.v3_try_lock("held", MutexOptions::new()).unwrap().is_none());
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        let error = mutex_error(other.v3_lock("held", MutexOptions::new().try_lock()));
        assert!(matches!(error, MutexError::Busy { ref prefix } if prefix == "held/"), "{error:?}");
        assert_eq!(queue(client, "held").len(), 1, "only the holder's key");
        assert!(lock.release().unwrap());
        let mine = other.v3_try_lock("held", MutexOptions::new()).unwrap().expect("free now");
        assert!(mine.release().unwrap());
        assert!(queue(client, "held").is_empty());
    }

    /// Waiting with a deadline gives up then, with Timeout, and removes its key.
    fn timed_out_waiter_leaves_no_key(client, env) {
        let other = env.client_for(&env.urls());
        let lock = client.v3_lock("slow", MutexOptions::new()).unwrap();
        let started = Instant::now();
        let error = mutex_error(other.v3_lock("slow", MutexOptions::new().timeout(Duration::from_millis(600))));
        let took = started.elapsed();
        assert!(matches!(error, MutexError::Timeout { .. }), "{error:?}");
        assert!(took >= Duration::from_millis(550) && took < Duration::from_secs(3), "{took:?}");
        let keys = queue(client, "slow");
        assert_eq!(keys.len(), 1, "only the holder's key is left: {keys:?}");
        assert_eq!(keys[0].key, lock.held().key);
        assert!(lock.release().unwrap());
    }

    /// etcetra's README example: `with_lock(name, timeout=…)` on a held lock
    /// times out, and leaves neither a key nor its session's lease behind.
    fn with_lock_times_out_and_leaves_nothing(client, env) {
        let other = env.client_for(&env.urls());
        let lock = client.v3_with_lock("mylock", None, None).unwrap();
        let leases = client.v3().leases().unwrap().len();
        let error = mutex_error(other.v3_with_lock("mylock", Some(Duration::from_millis(500)), None));
        assert!(matches!(error, MutexError::Timeout { .. }), "{error:?}");
        assert_eq!(queue(client, "mylock").len(), 1);
        assert_eq!(client.v3().leases().unwrap().len(), leases, "the waiter's session was closed");
        assert!(lock.release().unwrap());
        assert!(queue(client, "mylock").is_empty());
        assert_eq!(client.v3().leases().unwrap().len(), leases - 1, "the holder's session was closed");
        // Free now: with_lock takes it at once.
        let lock = other.v3_with_lock("mylock", Some(Duration::from_secs(1)), None).unwrap();
        assert!(lock.release().unwrap());
    }

    /// etcetra's test_lock_ttl: with a TTL the lock frees itself about TTL
    /// seconds after acquisition while its holder still runs (the lease is
    /// no longer kept alive once acquired).
    fn a_hard_max_ttl_lock_frees_itself_while_the_holder_runs(client, env) {
        let other = env.client_for(&env.urls());
        let holder = client.v3_with_lock("ttl", None, Some(2)).unwrap();
        let acquired = Instant::now();
        assert_eq!(holder.held().hold, Hold::MaxTtl);
        assert!(holder.held().expires.is_some());
        let next = other.v3_with_lock("ttl", Some(Duration::from_secs(10)), None).unwrap();
        let waited = acquired.elapsed();
        assert!(waited >= Duration::from_millis(1500) && waited < Duration::from_millis(3500), "{waited:?}");
        assert!(!holder.is_held().unwrap());
        assert!(!holder.release().unwrap(), "its key was already gone");
        assert!(next.release().unwrap());
    }

    /// etcetra's test_lock_ttl_2: the hard maximum counts from acquisition,
    /// not from when the waiter asked (its lease is kept alive while it waits).
    fn a_hard_max_ttl_counts_from_acquisition(client, env) {
        let (second, third) = (env.client_for(&env.urls()), env.client_for(&env.urls()));
        let first = client.v3_lock("ttl2", MutexOptions::new()).unwrap();
        std::thread::scope(|s| {
            let waiting = s.spawn(|| {
                let lock = second.v3_with_lock("ttl2", Some(Duration::from_secs(20)), Some(2)).unwrap();
                (lock, Instant::now())
            });
            // The waiter waits longer than its TTL before it gets the lock.
            std::thread::sleep(Duration::from_secs(3));
            assert!(first.release().unwrap());
            let (lock, acquired) = waiting.join().unwrap();
            let taken = third.v3_with_lock("ttl2", Some(Duration::from_secs(10)), None).unwrap();
            let held_for = acquired.elapsed();
            assert!(held_for >= Duration::from_millis(1500) && held_for < Duration::from_millis(3500), "{held_for:?}");
            drop(lock);
            assert!(taken.release().unwrap());
        });
    }

    /// A lock held in keep-alive mode outlives three TTLs: the session keeps
    /// renewing its lease.
    fn a_kept_alive_lock_survives_three_ttls(client, env) {
        let other = env.client_for(&env.urls());
        let lock = client.v3_lock("long", MutexOptions::new().ttl(2)).unwrap();
        std::thread::sleep(Duration::from_secs(6));
        assert!(!lock.is_lost());
        assert!(lock.is_held().unwrap());
        assert!(other.v3_try_lock("long", MutexOptions::new()).unwrap().is_none());
        assert!(lock.release().unwrap());
    }

    /// A waiter takes the lock as soon as its predecessor releases it.
    fn a_waiter_takes_over_on_release(client, env) {
        let other = env.client_for(&env.urls());
        let lock = client.v3_lock("handover", MutexOptions::new()).unwrap();
        let first = lock.held().fencing_token();
        std::thread::scope(|s| {
            let waiting = s.spawn(|| {
                let lock = other.v3_lock("handover", MutexOptions::new().timeout(Duration::from_secs(10))).unwrap();
                (lock.held().fencing_token(), Instant::now(), lock.release().unwrap())
            });
            while queue(client, "handover").len() < 2 {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(300));
            let released = Instant::now();
            assert!(lock.release().unwrap());
            let (token, acquired, was_released) = waiting.join().unwrap();
            assert!(token > first);
            assert!(acquired.duration_since(released) < Duration::from_secs(1));
            assert!(was_released);
        });
    }

    /// A session whose lease is revoked behind its back reports the loss
    /// (blocking `wait_lost`, async `lost()`), with a reason; its lock key
    /// is gone and the next contender gets the lock.
    fn a_revoked_session_reports_its_loss(client, env) {
        let other = env.client_for(&env.urls());
        let session = client.v3_session(3).unwrap();
        let lock = session.lock("lost", MutexOptions::new()).unwrap();
        other.v3().revoke(session.lease_id()).unwrap();
        assert!(session.wait_lost(Duration::from_secs(5)), "the loss was reported");
        assert!(session.is_lost() && lock.is_lost());
        let reason = session.lost_reason().unwrap();
        assert!(reason.contains("not found"), "{reason}");
        assert!(!lock.is_held().unwrap());
        let next = other.v3_try_lock("lost", MutexOptions::new()).unwrap().expect("free");
        assert!(next.release().unwrap());
        assert!(!lock.release().unwrap());
        session.close().unwrap();
    }

    /// etcd's own lock service runs the same recipe on the same keys: a lock
    /// held through it excludes ours, and ours excludes it.
    fn the_server_lock_and_ours_exclude_each_other(client, env) {
        let v3 = client.v3();
        let lease = v3.grant(10).unwrap().id;
        let server = v3.server_lock("shared", lease, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(server.key, format!("shared/{lease:x}").into_bytes());
        assert!(client.v3_try_lock("shared", MutexOptions::new()).unwrap().is_none());
        v3.server_unlock(server.key).unwrap();
        let ours = client.v3_lock("shared", MutexOptions::new()).unwrap();
        let error = v3.server_lock("shared", lease, Some(Duration::from_millis(500))).unwrap_err();
        assert!(matches!(error, Error::Transport(_) | Error::Etcd(_)), "{error:?}");
        assert!(ours.release().unwrap());
        v3.revoke(lease).unwrap();
        let _ = env;
    }
}

etcd_tests::v3_scenarios! {
    /// A session adopting an existing lease keeps it alive past its TTL;
    /// closing the session revokes it (its keys go at once).
    fn a_session_adopts_a_lease_and_close_revokes_it(client, env) {
        let lease = client.v3().grant(2).unwrap().id;
        let session = client.v3_session_from_lease(lease).unwrap();
        assert_eq!(session.lease_id(), lease);
        let lock = session.lock("adopted", MutexOptions::new()).unwrap();
        std::thread::sleep(Duration::from_secs(5));
        assert!(client.v3().time_to_live(lease, false).unwrap().is_alive());
        assert!(lock.is_held().unwrap());
        drop(lock);
        session.close().unwrap();
        assert!(!client.v3().time_to_live(lease, false).unwrap().is_alive());
        assert!(queue(client, "adopted").is_empty());
        // A lease that is gone cannot be adopted.
        let error = client.v3_session_from_lease(lease).unwrap_err();
        assert!(error.as_v3().is_some(), "{error:?}");
        let _ = env;
    }

    /// Dropping a guard without releasing: the blocking guard releases the
    /// lock at once; an async guard cannot wait in `Drop`, so its session
    /// stops renewing and the lock frees itself within the TTL.
    fn a_dropped_guard_frees_the_lock(client, env) {
        let other = env.client_for(&env.urls());
        let lock = client.v3_lock("dropped", MutexOptions::new().ttl(2)).unwrap();
        let dropped = Instant::now();
        drop(lock);
        if env.transport == etcd_tests::Transport::Blocking {
            assert!(queue(client, "dropped").is_empty());
        }
        let next = other
            .v3_lock("dropped", MutexOptions::new().timeout(Duration::from_secs(10)))
            .unwrap();
        assert!(dropped.elapsed() < Duration::from_secs(4), "{:?}", dropped.elapsed());
        assert!(next.release().unwrap());
    }
}

etcd_tests::v3_scenarios! {
    /// A waiter whose session's lease is revoked while it waits ends with
    /// SessionExpired as soon as its session reports the loss, on every
    /// transport: an async one at once, a blocking one after the read of
    /// the watch it is blocked in (here at most its 1 s idle timeout). The
    /// holder keeps the lock meanwhile, nothing is left behind, and a lost
    /// session refuses new acquisitions at once.
    fn a_waiter_whose_session_is_revoked_gives_up(client, env) {
        let waiter = env.client_with(&env.urls(), |c| c.idle_timeout = Duration::from_secs(1));
        let lock = client.v3_lock("revoked", MutexOptions::new()).unwrap();
        let session = waiter.v3_session(3).unwrap();
        std::thread::scope(|s| {
            let waiting = s.spawn(|| {
                let outcome = session.lock("revoked", MutexOptions::new().timeout(Duration::from_secs(20)));
                (outcome.map(|l| l.held().clone()), Instant::now())
            });
            while queue(client, "revoked").len() < 2 {
                std::thread::sleep(Duration::from_millis(20));
            }
            let revoked = Instant::now();
            client.v3().revoke(session.lease_id()).unwrap();
            let (outcome, ended) = waiting.join().unwrap();
            let error = mutex_error(outcome);
            assert!(matches!(error, MutexError::SessionExpired { .. }), "{error:?}");
            assert!(ended.duration_since(revoked) < Duration::from_secs(4), "{:?}", ended.duration_since(revoked));
        });
        assert!(session.is_lost());
        let error = mutex_error(session.lock("revoked", MutexOptions::new()));
        assert!(matches!(error, MutexError::SessionExpired { .. }), "{error:?}");
        assert_eq!(queue(client, "revoked").len(), 1, "only the holder's key");
        assert!(lock.release().unwrap());
        assert!(queue(client, "revoked").is_empty());
    }
}
