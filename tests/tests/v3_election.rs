//! v3 leader election (Go's `concurrency.Election`) against a real etcd, on
//! every transport: campaign, leader, observe, proclaim, resign.

use std::time::{Duration, Instant};

use etcd_proto::v3::{MutexError, MutexOptions};
use etcd_proto::Error;

fn leader_value(client: &etcd_tests::TestClient, name: &str) -> Option<String> {
    client
        .v3_leader(name)
        .unwrap()
        .map(|kv| String::from_utf8(kv.value).unwrap())
}

etcd_tests::v3_scenarios! {
    /// Two campaigners: the first leads, the second waits; an observer sees
    /// the first's value, its proclaimed new value, then — once it resigns —
    /// the second's; `leader` agrees at every step.
    fn two_campaigners_proclaim_and_resign(client, env) {
        let (second, watcher) = (env.client_for(&env.urls()), env.client_for(&env.urls()));
        assert_eq!(leader_value(client, "vote"), None);
        let observer = watcher.v3_observe("vote");
        let mut first = client.v3_campaign("vote", "alpha", MutexOptions::new()).unwrap();
        assert!(first.is_leader().unwrap());
        assert!(observer.wait_for(1, Duration::from_secs(5)), "{:?}", observer.values());
        assert_eq!(leader_value(client, "vote").as_deref(), Some("alpha"));
        std::thread::scope(|s| {
            let campaigning = s.spawn(|| {
                let lead = second.v3_campaign("vote", "beta", MutexOptions::new().timeout(Duration::from_secs(20))).unwrap();
                (lead, Instant::now())
            });
            std::thread::sleep(Duration::from_millis(500));
            assert!(!campaigning.is_finished(), "the second waits while the first leads");
            first.proclaim("alpha-2").unwrap();
            assert_eq!(first.leadership().value, b"alpha-2");
            assert!(observer.wait_for(2, Duration::from_secs(5)), "{:?}", observer.values());
            assert_eq!(leader_value(client, "vote").as_deref(), Some("alpha-2"));
            let resigned = Instant::now();
            assert!(first.resign().unwrap());
            let (lead, led) = campaigning.join().unwrap();
            assert!(led.duration_since(resigned) < Duration::from_secs(2));
            assert_eq!(lead.leadership().value, b"beta");
            assert!(observer.wait_for(3, Duration::from_secs(5)), "{:?}", observer.values());
            assert_eq!(leader_value(client, "vote").as_deref(), Some("beta"));
            assert!(lead.resign().unwrap());
        });
        assert_eq!(
            observer.values(),
            [Ok("alpha".to_owned()), Ok("alpha-2".to_owned()), Ok("beta".to_owned())]
        );
        assert_eq!(leader_value(client, "vote"), None);
    }

    /// A leader whose session ends loses the election: the waiting candidate
    /// takes over, and the old leader's proclaim fails with NotHeld.
    fn a_leader_whose_session_ends_is_replaced(client, env) {
        let second = env.client_for(&env.urls());
        let mut first = client.v3_campaign("term", "one", MutexOptions::new().ttl(5)).unwrap();
        std::thread::scope(|s| {
            let campaigning = s.spawn(|| second.v3_campaign("term", "two", MutexOptions::new()).unwrap());
            std::thread::sleep(Duration::from_millis(300));
            client.v3().revoke(first.leadership().lease).unwrap();
            let lead = campaigning.join().unwrap();
            assert_eq!(leader_value(client, "term").as_deref(), Some("two"));
            let error = first.proclaim("stale").unwrap_err();
            assert!(matches!(error, Error::Mutex(MutexError::NotHeld { .. })), "{error:?}");
            assert!(lead.resign().unwrap());
        });
        assert!(!first.resign().unwrap_or(false));
    }

    /// A campaign with a deadline against a leader gives up with Timeout and
    /// leaves no key.
    fn a_campaign_times_out_and_leaves_no_key(client, env) {
        let second = env.client_for(&env.urls());
        let first = client.v3_campaign("slow", "one", MutexOptions::new()).unwrap();
        let error = second
            .v3_campaign("slow", "two", MutexOptions::new().timeout(Duration::from_millis(500)))
            .unwrap_err();
        assert!(matches!(error, Error::Mutex(MutexError::Timeout { .. })), "{error:?}");
        let keys = client.v3().get_prefix("slow/").unwrap().kvs;
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key, first.leadership().key);
        assert!(first.resign().unwrap());
    }
}
