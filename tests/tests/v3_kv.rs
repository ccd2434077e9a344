//! etcd v3 key-value operations, transactions and leases, against a real
//! etcd, on every transport: through the JSON gateway, and on the async
//! clients over native gRPC too.

use etcd_proto::v3::{
    Compare, CompareOp, Delete, Get, KeyRange, Put, SortOrder, SortTarget, Txn, TxnOpResponse,
    V3ErrorKind,
};
use etcd_proto::ErrorKind;

etcd_tests::v3_scenarios! {
    /// The v3 handle owns a clone of its client: each transport's handle
    /// moves into a thread (blocking) or a spawned task (async, so its
    /// futures are `Send + 'static`) and works there.
    fn the_v3_handle_moves_into_threads_and_tasks(client, env) {
        use etcd_tests::TestClient;
        let put = match client {
            TestClient::Blocking(c) => {
                let v3 = c.v3();
                std::thread::spawn(move || v3.put("moved/k", "v").map(|r| r.header.revision))
                    .join()
                    .unwrap()
            }
            TestClient::Tokio { runtime, client } => {
                let v3 = client.v3();
                runtime
                    .block_on(runtime.spawn(async move { v3.put("moved/k", "v").await.map(|r| r.header.revision) }))
                    .unwrap()
            }
            TestClient::AsyncStd(c) => {
                let v3 = c.v3();
                async_std::task::block_on(async_std::task::spawn(async move {
                    v3.put("moved/k", "v").await.map(|r| r.header.revision)
                }))
            }
        };
        let revision = put.unwrap();
        assert_eq!(client.v3().get("moved/k").unwrap().unwrap().mod_revision, revision);
        let _ = env;
    }

    /// A put returns its revision; a get returns the pair with all its metadata.
    fn put_and_get_with_metadata(client, env) {
        let v3 = client.v3();
        let first = v3.put("meta/a", "one").unwrap();
        assert!(first.header.revision > 0);
        assert!(first.prev_kv.is_none());
        let second = v3.put_with(Put::new("meta/a", "two").prev_kv()).unwrap();
        assert_eq!(second.header.revision, first.header.revision + 1);
        let previous = second.prev_kv.expect("prev_kv was asked for");
        assert_eq!(previous.value, b"one");
        let kv = v3.get("meta/a").unwrap().expect("key exists");
        assert_eq!(kv.value, b"two");
        assert_eq!(kv.create_revision, first.header.revision);
        assert_eq!(kv.mod_revision, second.header.revision);
        assert_eq!(kv.version, 2);
        assert_eq!(kv.lease, 0);
        assert!(v3.get("meta/missing").unwrap().is_none());
        let _ = env;
    }

    /// Keys and values are bytes: every byte value round-trips, including
    /// 0x00, 0xFF, newlines and invalid UTF-8, and the empty value.
    fn unusual_bytes_round_trip(client, env) {
        let v3 = client.v3();
        let key: Vec<u8> = b"bytes/\x00\xff\n \xc3\x28?#%&+=".to_vec();
        let value: Vec<u8> = (0u8..=255).collect();
        v3.put(key.clone(), value.clone()).unwrap();
        let kv = v3.get(key.clone()).unwrap().unwrap();
        assert_eq!((kv.key, kv.value), (key.clone(), value));
        v3.put(key.clone(), "").unwrap();
        assert_eq!(v3.get(key).unwrap().unwrap().value, b"");
        let _ = env;
    }

    /// A prefix read returns exactly the prefix: not `/a0`, `/ab` or `/b`
    /// (etcetra's prefix over-matches), and prefixes ending in 0xFF work.
    fn prefix_is_exact(client, env) {
        let v3 = client.v3();
        for key in ["/a/", "/a/x", "/a/y/z", "/a0", "/ab", "/b"] {
            v3.put(key, "v").unwrap();
        }
        let keys: Vec<Vec<u8>> = v3.get_prefix("/a/").unwrap().kvs.into_iter().map(|kv| kv.key).collect();
        assert_eq!(keys, [b"/a/".to_vec(), b"/a/x".to_vec(), b"/a/y/z".to_vec()]);
        v3.put(b"p\xff".to_vec(), "1").unwrap();
        v3.put(b"p\xff\xff\x01".to_vec(), "2").unwrap();
        v3.put("q", "3").unwrap();
        let keys: Vec<Vec<u8>> = v3.get_prefix(b"p\xff".to_vec()).unwrap().kvs.into_iter().map(|kv| kv.key).collect();
        assert_eq!(keys, [b"p\xff".to_vec(), b"p\xff\xff\x01".to_vec()]);
        let _ = env;
    }

    /// Ranges, from-key, all keys, limit, sorting, keys/count only,
    /// revision reads and the revision filters.
    fn range_options(client, env) {
        let v3 = client.v3();
        let mut revisions = Vec::new();
        for i in 0..5 {
            revisions.push(v3.put(format!("r/{i}"), format!("v{i}")).unwrap().header.revision);
        }
        let range = v3.range(Get::new(KeyRange::range("r/1", "r/3"))).unwrap();
        assert_eq!(range.kvs.len(), 2);
        let from = v3.range(Get::new(KeyRange::from_key("r/3"))).unwrap();
        assert_eq!(from.kvs.len(), 2);
        let all = v3.range(Get::new(KeyRange::all()).count_only()).unwrap();
        assert!(all.count >= 5 && all.kvs.is_empty());
        let limited = v3.range(Get::new(KeyRange::prefix("r/")).limit(2)).unwrap();
        assert_eq!((limited.kvs.len(), limited.more, limited.count), (2, true, 5));
        let newest = v3
            .range(Get::new(KeyRange::prefix("r/")).sort(SortTarget::Create, SortOrder::Descend).limit(1))
            .unwrap();
        assert_eq!(newest.kvs[0].key, b"r/4");
        let keys_only = v3.range(Get::new(KeyRange::prefix("r/")).keys_only()).unwrap();
        assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()));
        let old = v3.range(Get::new(KeyRange::prefix("r/")).revision(revisions[1])).unwrap();
        assert_eq!(old.kvs.len(), 2, "two keys existed at the second put's revision");
        let filtered = v3
            .range(Get::new(KeyRange::prefix("r/")).min_mod_revision(revisions[3]))
            .unwrap();
        assert_eq!(filtered.kvs.len(), 2);
        let filtered = v3
            .range(Get::new(KeyRange::prefix("r/")).max_create_revision(revisions[0]))
            .unwrap();
        assert_eq!(filtered.kvs.len(), 1);
        let serializable = v3.range(Get::new("r/0").serializable()).unwrap();
        assert_eq!(serializable.kvs[0].value, b"v0");
        let _ = env;
    }

    /// Deletes count what they removed and return the pairs when asked.
    fn deletes_count_and_return_pairs(client, env) {
        let v3 = client.v3();
        for key in ["d/1", "d/2", "d/3", "e"] {
            v3.put(key, "x").unwrap();
        }
        assert_eq!(v3.delete("nope").unwrap().deleted, 0);
        let one = v3.delete_with(Delete::new("d/1").prev_kv()).unwrap();
        assert_eq!(one.deleted, 1);
        assert_eq!(one.prev_kvs[0].key, b"d/1");
        let rest = v3.delete_prefix("d/").unwrap();
        assert_eq!(rest.deleted, 2);
        assert!(v3.get("e").unwrap().is_some());
        let _ = env;
    }

    /// Compaction makes older revisions unreadable, with a typed error.
    fn compaction_is_a_typed_error(client, env) {
        let v3 = client.v3();
        let old = v3.put("c/k", "1").unwrap().header.revision;
        let new = v3.put("c/k", "2").unwrap().header.revision;
        v3.compact(new).unwrap();
        let error = v3.range(Get::new("c/k").revision(old)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Etcd);
        assert_eq!(error.as_v3().unwrap().kind, V3ErrorKind::Compacted);
        let future = v3.range(Get::new("c/k").revision(new + 100)).unwrap_err();
        assert_eq!(future.as_v3().unwrap().kind, V3ErrorKind::FutureRevision);
        let _ = env;
    }

    /// Every compare target with every operator, checked against the
    /// server (etcetra builds `>` for `<`).
    fn txn_compares_every_target_and_operator(client, env) {
        let v3 = client.v3();
        let lease = v3.grant(60).unwrap().id;
        let put = v3.put_with(Put::new("t/k", "m").lease(lease)).unwrap();
        v3.put("t/k", "m").unwrap(); // version 2, lease dropped …
        v3.put_with(Put::new("t/k", "m").lease(lease)).unwrap(); // … and back: version 3
        let kv = v3.get("t/k").unwrap().unwrap();
        let cases: Vec<(Compare, bool)> = vec![
            (Compare::value("t/k", CompareOp::Equal, "m"), true),
            (Compare::value("t/k", CompareOp::NotEqual, "m"), false),
            (Compare::value("t/k", CompareOp::Greater, "a"), true),
            (Compare::value("t/k", CompareOp::Less, "a"), false),
            (Compare::value("t/k", CompareOp::Less, "z"), true),
            (Compare::version("t/k", CompareOp::Equal, 3), true),
            (Compare::version("t/k", CompareOp::Greater, 3), false),
            (Compare::version("t/k", CompareOp::Less, 4), true),
            (Compare::version("t/k", CompareOp::NotEqual, 3), false),
            (Compare::create_revision("t/k", CompareOp::Equal, put.header.revision), true),
            (Compare::create_revision("t/k", CompareOp::Less, put.header.revision), false),
            (Compare::mod_revision("t/k", CompareOp::Equal, kv.mod_revision), true),
            (Compare::mod_revision("t/k", CompareOp::Greater, kv.mod_revision - 1), true),
            (Compare::mod_revision("t/k", CompareOp::Less, kv.mod_revision), false),
            (Compare::lease("t/k", CompareOp::Equal, lease), true),
            (Compare::lease("t/k", CompareOp::NotEqual, 0), true),
            (Compare::lease("t/k", CompareOp::Greater, lease), false),
            (Compare::lease("t/k", CompareOp::Less, lease + 1), true),
            // A missing key: version 0, and its value compares false even to "".
            (Compare::version("t/missing", CompareOp::Equal, 0), true),
            (Compare::value("t/missing", CompareOp::Equal, ""), false),
        ];
        for (compare, expected) in cases {
            let response = v3.txn(Txn::new().when([compare.clone()])).unwrap();
            assert_eq!(response.succeeded, expected, "{compare:?}");
        }
        // Over a range: every key of the range must satisfy it.
        v3.put("t/r/1", "1").unwrap();
        v3.put("t/r/2", "2").unwrap();
        let all_small = Compare::value(KeyRange::prefix("t/r/"), CompareOp::Less, "3");
        assert!(v3.txn(Txn::new().when([all_small])).unwrap().succeeded);
        let all_one = Compare::value(KeyRange::prefix("t/r/"), CompareOp::Equal, "1");
        assert!(!v3.txn(Txn::new().when([all_one])).unwrap().succeeded);
        let _ = env;
    }

    /// Both branches, every operation kind and a nested txn, with typed results.
    fn txn_branches_and_typed_results(client, env) {
        let v3 = client.v3();
        let create_once = || {
            Txn::new()
                .when([Compare::create_revision("tx/owner", CompareOp::Equal, 0)])
                .and_then([
                    Put::new("tx/owner", "me").into(),
                    Get::new("tx/owner").into(),
                    Txn::new().and_then([Put::new("tx/nested", "n").into()]).into(),
                ])
                .or_else([Get::new("tx/owner").into(), Delete::new("tx/nested").into()])
        };
        let first = v3.txn(create_once()).unwrap();
        assert!(first.succeeded);
        assert_eq!(first.responses.len(), 3);
        assert!(matches!(&first.responses[0], TxnOpResponse::Put(_)));
        match &first.responses[1] {
            TxnOpResponse::Get(range) => assert_eq!(range.kvs[0].value, b"me"),
            other => panic!("{other:?}"),
        }
        match &first.responses[2] {
            TxnOpResponse::Txn(inner) => {
                assert!(inner.succeeded);
                assert!(matches!(inner.responses[0], TxnOpResponse::Put(_)));
            }
            other => panic!("{other:?}"),
        }
        let second = v3.txn(create_once()).unwrap();
        assert!(!second.succeeded);
        match &second.responses[1] {
            TxnOpResponse::Delete(deleted) => assert_eq!(deleted.deleted, 1),
            other => panic!("{other:?}"),
        }
        // The same key twice in one branch: etcd refuses, typed.
        let duplicate = Txn::new().and_then([Put::new("tx/d", "1").into(), Put::new("tx/d", "2").into()]);
        let error = v3.txn(duplicate).unwrap_err();
        assert_eq!(error.as_v3().unwrap().kind, V3ErrorKind::DuplicateKey);
        let _ = env;
    }

    /// etcetra's documented `txn_compare` example: put only if a value matches.
    fn etcetra_txn_compare_example(client, env) {
        let v3 = client.v3();
        v3.put("/etcetra/foo", "bar").unwrap();
        let response = v3
            .txn(
                Txn::new()
                    .when([Compare::value("/etcetra/foo", CompareOp::Equal, "bar")])
                    .and_then([Put::new("/etcetra/baz", "qux").into(), Get::new("/etcetra/foo").into()])
                    .or_else([Get::new("/etcetra/foo").into()]),
            )
            .unwrap();
        assert!(response.succeeded);
        assert_eq!(v3.get("/etcetra/baz").unwrap().unwrap().value, b"qux");
        let _ = env;
    }

    /// Eight concurrent incrementers through update_with end at exactly 400.
    fn update_with_under_contention(client, env) {
        let seen: Vec<u64> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let worker = env.client_for(&env.urls());
                        (0..50)
                            .map(|_| {
                                let (_, written) = worker
                                    .v3()
                                    .update_with("u/counter", |current| {
                                        let n: u64 = current
                                            .map_or(0, |kv| kv.value_str().unwrap().parse().unwrap());
                                        (n + 1).to_string().into_bytes()
                                    })
                                    .unwrap();
                                String::from_utf8(written).unwrap().parse::<u64>().unwrap()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
        });
        let mut seen = seen;
        seen.sort_unstable();
        assert_eq!(seen, (1..=400).collect::<Vec<_>>());
        assert_eq!(client.v3().get("u/counter").unwrap().unwrap().value, b"400");
    }

    /// Grant, attach, time-to-live with keys, list, keep-alive once, revoke.
    fn lease_lifecycle(client, env) {
        let v3 = client.v3();
        let lease = v3.grant(30).unwrap();
        assert!(lease.id != 0);
        assert_eq!(lease.ttl, 30);
        v3.put_with(Put::new("l/a", "1").lease(lease.id)).unwrap();
        v3.put_with(Put::new("l/b", "2").lease(lease.id)).unwrap();
        let ttl = v3.time_to_live(lease.id, true).unwrap();
        assert!(ttl.is_alive() && ttl.ttl <= 30 && ttl.granted_ttl == 30);
        let mut keys = ttl.keys.clone();
        keys.sort();
        assert_eq!(keys, [b"l/a".to_vec(), b"l/b".to_vec()]);
        assert!(v3.leases().unwrap().contains(&lease.id));
        assert_eq!(v3.keep_alive_once(lease.id).unwrap().ttl, 30);
        // ignore_value keeps the value and moves the key to another lease.
        let other = v3.grant(30).unwrap().id;
        v3.put_with(Put::new("l/a", "").ignore_value().lease(other)).unwrap();
        assert_eq!(v3.get("l/a").unwrap().unwrap().value, b"1");
        v3.revoke(lease.id).unwrap();
        assert!(v3.get("l/b").unwrap().is_none(), "revoking deletes the lease's keys");
        assert!(v3.get("l/a").unwrap().is_some(), "l/a moved to the other lease");
        assert!(!v3.time_to_live(lease.id, false).unwrap().is_alive());
        let gone = v3.keep_alive_once(lease.id).unwrap_err();
        assert_eq!(gone.as_v3().unwrap().kind, V3ErrorKind::LeaseNotFound);
        let revoked_twice = v3.revoke(lease.id).unwrap_err();
        assert_eq!(revoked_twice.as_v3().unwrap().kind, V3ErrorKind::LeaseNotFound);
        // ignore_value on a missing key is refused.
        let missing = v3.put_with(Put::new("l/none", "").ignore_value()).unwrap_err();
        assert_eq!(missing.as_v3().unwrap().kind, V3ErrorKind::KeyNotFound);
        let _ = env;
    }

    /// A short lease expires with its keys; a granted ID that is taken is refused.
    fn lease_expiry_and_taken_id(client, env) {
        let v3 = client.v3();
        let lease = v3.grant(1).unwrap();
        assert!(lease.ttl >= 1, "etcd may round a short TTL up");
        v3.put_with(Put::new("x/short", "v").lease(lease.id)).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while v3.get("x/short").unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "the lease never expired");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let taken = client.execute(etcd_proto::v3::LeaseGrant::new(30).id(0x1234)).unwrap();
        assert_eq!(taken.id, 0x1234);
        let again = client.execute(etcd_proto::v3::LeaseGrant::new(30).id(0x1234)).unwrap_err();
        assert_eq!(again.as_v3().unwrap().kind, V3ErrorKind::LeaseExists);
        let _ = env;
    }

    /// A large range read page by page: every key once, in order, every
    /// page at the first page's revision.
    fn pagination_is_one_snapshot(client, env) {
        let v3 = client.v3();
        for i in 0..250 {
            v3.put(format!("pg/{i:04}"), "v").unwrap();
        }
        v3.put("pg0", "outside").unwrap();
        let pages = client.stream_items(
            etcd_proto::v3::Paginate::new(KeyRange::prefix("pg/"), 100),
            10,
            std::time::Duration::from_secs(10),
        );
        let pages: Vec<_> = pages.into_iter().map(|p| p.unwrap()).collect();
        assert_eq!(pages.iter().map(|p| p.kvs.len()).collect::<Vec<_>>(), [100, 100, 50]);
        let revision = pages[0].header.revision;
        assert!(pages.iter().all(|p| p.header.revision == revision));
        let keys: Vec<String> = pages.iter().flat_map(|p| &p.kvs).map(|kv| kv.key_str().unwrap().to_owned()).collect();
        assert_eq!(keys, (0..250).map(|i| format!("pg/{i:04}")).collect::<Vec<_>>());
        let _ = env;
    }

    /// Member list and status describe the single member; /version answers.
    fn member_list_and_status(client, env) {
        let v3 = client.v3();
        let members = v3.member_list().unwrap();
        assert_eq!(members.members.len(), 1);
        assert_eq!(members.members[0].client_urls, env.urls());
        let status = v3.status().unwrap();
        assert_eq!(status.version, env.version());
        assert_eq!(status.leader, members.members[0].id);
        assert!(status.db_size > 0);
        assert_eq!(client.version().unwrap().server, env.version());
    }

    /// The server's lock service: the second locker waits, gets the lock
    /// after the unlock, and the owner key is `<name>/<lease hex>`.
    fn server_lock_service(client, env) {
        let v3 = client.v3();
        let lease = v3.grant(30).unwrap().id;
        let held = v3.server_lock("slock", lease, None).unwrap();
        assert_eq!(held.key, format!("slock/{lease:x}").into_bytes());
        let other_lease = v3.grant(30).unwrap().id;
        let busy = v3
            .server_lock("slock", other_lease, Some(std::time::Duration::from_millis(500)))
            .unwrap_err();
        assert_eq!(busy.kind(), ErrorKind::Transport, "{busy}");
        v3.server_unlock(held.key.clone()).unwrap();
        let next = v3.server_lock("slock", other_lease, Some(std::time::Duration::from_secs(5))).unwrap();
        assert_eq!(next.key, format!("slock/{other_lease:x}").into_bytes());
        let missing_lease = v3.server_lock("slock2", 0x7777, None).unwrap_err();
        assert_eq!(missing_lease.as_v3().unwrap().kind, V3ErrorKind::LeaseNotFound);
        let _ = env;
    }
}
