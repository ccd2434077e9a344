//! The optimistic read-modify-write loop against a real etcd, on every transport.

use etcd_proto::ErrorKind;

etcd_tests::scenarios! {
    /// Eight concurrent incrementers, 100 increments each, end at exactly 800,
    /// and every increment saw a distinct value.
    fn eight_incrementers_reach_800(client, env) {
        let results: Vec<Vec<u64>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let worker = env.client_for(&env.urls());
                        (0..100)
                            .map(|_| {
                                let written = worker
                                    .update_with("/upd/counter", |current| {
                                        let n: u64 = current.map_or(0, |v| v.parse().unwrap());
                                        (n + 1).to_string()
                                    })
                                    .unwrap();
                                written.node.value.unwrap().parse().unwrap()
                            })
                            .collect()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(client.get("/upd/counter").unwrap().node.value.as_deref(), Some("800"));
        let mut all: Vec<u64> = results.into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, (1..=800).collect::<Vec<_>>(), "no increment was lost or doubled");
    }

    /// A missing key is created through the same function; a directory is refused.
    fn update_with_creates_and_refuses_directories(client, env) {
        let created = client.update_with("/upd/new", |current| {
            assert_eq!(current, None);
            "fresh".to_owned()
        }).unwrap();
        assert!(created.new_key);
        let appended = client.update_with("/upd/new", |current| format!("{}+1", current.unwrap())).unwrap();
        assert_eq!(appended.node.value.as_deref(), Some("fresh+1"));
        client.mkdir("/upd/dir").unwrap();
        let error = client.update_with("/upd/dir", |_| "x".to_owned()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Usage);
    }
}
