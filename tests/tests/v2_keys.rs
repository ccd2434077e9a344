//! The v2 keys API against a real etcd, on every transport: python-etcd's
//! integration scenarios plus the bytes that must survive.

use std::time::Duration;

use etcd_proto::v2::{Action, DeleteOptions, ReadOptions, Ttl, V2ErrorCode, Write, WriteOptions};
use etcd_proto::{Error, ErrorKind, UsageError};

/// The v2 error code of a failed call, or a panic naming what came instead.
fn code<T: std::fmt::Debug>(result: Result<T, Error>) -> V2ErrorCode {
    match result {
        Err(e) => e
            .as_v2()
            .map(|e| e.code)
            .unwrap_or_else(|| panic!("not a v2 error: {e:?}")),
        Ok(v) => panic!("expected an etcd error, got {v:?}"),
    }
}

etcd_tests::scenarios! {
    /// `build()` refuses credentials in an endpoint URL, saying why and
    /// showing no secret.
    fn build_refuses_credentials_in_the_url(client, env) {
        let refused = |url: &str| {
            let config = etcd_proto::Config {
                endpoints: vec![env.urls()[0].clone(), url.to_owned()],
                ..etcd_proto::Config::default()
            };
            match env.transport.try_connect_config(config) {
                Err(e) => e,
                Ok(_) => panic!("{url} accepted"),
            }
        };
        let host = env.urls()[0].trim_start_matches("http://").to_owned();
        let with_password = refused(&format!("http://root:s3cret@{host}"));
        let shown = format!("{with_password} {with_password:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("basic_auth"), "{shown}");
    }

    /// set, get and delete, with actions, the created flag and the headers.
    fn set_get_delete(client, env) {
        let created = client.set("/basic/k", "v1").unwrap();
        assert_eq!(created.action, Action::Set);
        assert!(created.new_key);
        assert_eq!(created.node.key, "/basic/k");
        assert!(created.prev_node.is_none());
        let meta = &created.meta;
        assert!(meta.etcd_index.is_some() && meta.raft_index.is_some() && meta.raft_term.is_some());
        assert!(meta.cluster_id.as_deref().is_some_and(|id| !id.is_empty()));

        let replaced = client.set("/basic/k", "v2").unwrap();
        assert!(!replaced.new_key);
        assert_eq!(replaced.prev_node.unwrap().value.as_deref(), Some("v1"));

        let got = client.get("/basic/k").unwrap();
        assert_eq!(got.action, Action::Get);
        assert_eq!(got.node.value.as_deref(), Some("v2"));
        assert_eq!(got.node.modified_index, replaced.node.modified_index);
        assert!(client.contains("/basic/k").unwrap());

        let deleted = client.delete("/basic/k").unwrap();
        assert_eq!(deleted.action, Action::Delete);
        assert_eq!(deleted.prev_node.unwrap().value.as_deref(), Some("v2"));
        assert!(!client.contains("/basic/k").unwrap());
    }

    /// A missing key is errorCode 100 with the key as cause.
    fn key_not_found(client, env) {
        let err = client.get("/missing/key").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Etcd);
        assert!(err.is_key_not_found());
        let v2 = err.as_v2().unwrap();
        assert_eq!(v2.status, 404);
        // etcd names the first missing path component.
        assert_eq!(v2.cause.as_deref(), Some("/missing"));
        assert!(v2.index > 0);
        assert_eq!(code(client.delete("/missing/key")), V2ErrorCode::KeyNotFound);
    }

    /// test_and_set succeeds on the right previous value and fails (101) otherwise.
    fn compare_and_swap(client, env) {
        client.set("/cas/k", "one").unwrap();
        let swapped = client.test_and_set("/cas/k", "two", "one").unwrap();
        assert_eq!(swapped.action, Action::CompareAndSwap);
        let err = client.test_and_set("/cas/k", "three", "one").unwrap_err();
        let v2 = err.as_v2().unwrap();
        assert_eq!(v2.code, V2ErrorCode::CompareFailed);
        assert_eq!(v2.status, 412);
        assert_eq!(v2.cause.as_deref(), Some("[one != two]"));
        assert_eq!(client.get("/cas/k").unwrap().node.value.as_deref(), Some("two"));

        // prevIndex
        let index = client.get("/cas/k").unwrap().node.modified_index;
        client.write("/cas/k", "by-index", WriteOptions::new().prev_index(index)).unwrap();
        assert_eq!(code(client.write("/cas/k", "stale", WriteOptions::new().prev_index(index))), V2ErrorCode::CompareFailed);
        // prevExist
        assert_eq!(code(client.write("/cas/none", "x", WriteOptions::new().prev_exist(true))), V2ErrorCode::KeyNotFound);
        assert_eq!(code(client.write("/cas/k", "x", WriteOptions::new().prev_exist(false))), V2ErrorCode::NodeExist);
        assert_eq!(client.write("/cas/k", "upd", WriteOptions::new().prev_exist(true)).unwrap().action, Action::Update);
    }

    /// create() is create-only: the second one fails with 105.
    fn create_only(client, env) {
        let first = client.create("/create/k", "first").unwrap();
        assert_eq!(first.action, Action::Create);
        assert!(first.new_key);
        assert_eq!(code(client.create("/create/k", "second")), V2ErrorCode::NodeExist);
        assert_eq!(client.get("/create/k").unwrap().node.value.as_deref(), Some("first"));
    }

    /// update(node) writes back a fresh read; a stale node is refused with 101.
    fn update_from_read(client, env) {
        client.write("/upd/k", "v1", WriteOptions::new().ttl(600)).unwrap();
        let mut node = client.get("/upd/k").unwrap().node;
        node.value = Some("v2".into());
        let updated = client.update(&node).unwrap();
        assert_eq!(updated.node.value.as_deref(), Some("v2"));
        assert!(updated.node.ttl.is_some(), "update keeps the TTL");
        node.value = Some("v3".into());
        let err = client.update(&node).unwrap_err();
        assert_eq!(err.as_v2().unwrap().code, V2ErrorCode::CompareFailed);
        assert_eq!(client.get("/upd/k").unwrap().node.value.as_deref(), Some("v2"));
    }

    /// TTLs: reported, expiring, removable, refreshable.
    fn ttl_expire_clear_refresh(client, env) {
        let r = client.write("/ttl/k", "v", WriteOptions::new().ttl(100)).unwrap();
        assert!(r.node.ttl.is_some_and(|t| (99..=100).contains(&t)));
        assert!(r.node.expiration.is_some());

        let refreshed = client.refresh("/ttl/k", 300).unwrap();
        assert!(refreshed.node.ttl.is_some_and(|t| t > 200));
        assert_eq!(client.get("/ttl/k").unwrap().node.value.as_deref(), Some("v"), "refresh keeps the value");

        let cleared = client
            .write("/ttl/k", "v", WriteOptions::new().ttl_change(Ttl::Clear).prev_exist(true))
            .unwrap();
        assert_eq!(cleared.node.ttl, None);
        assert_eq!(client.get("/ttl/k").unwrap().node.expiration, None);

        client.write("/ttl/short", "v", WriteOptions::new().ttl(1)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while client.contains("/ttl/short").unwrap() {
            assert!(std::time::Instant::now() < deadline, "a TTL-1 key did not expire in 5 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(code(client.refresh("/ttl/none", 10)), V2ErrorCode::KeyNotFound);
    }

    /// Directory TTL: created with a TTL; updating it with prevExist=true works on
    /// 3.4 and fails with errorCode 300 ("Not a file") on 3.5.
    fn directory_ttl(client, env) {
        let dir = client.execute(Write::mkdir("/dttl/d").options(WriteOptions::new().dir(true).ttl(30))).unwrap();
        assert!(dir.node.dir);
        assert!(dir.node.ttl.is_some_and(|t| t <= 30));

        let update = client.execute(
            Write::mkdir("/dttl/d").options(WriteOptions::new().dir(true).ttl(31).prev_exist(true)),
        );
        let via_update = |node: &etcd_proto::v2::Node| {
            let mut node = node.clone();
            node.ttl = Some(120);
            client.update(&node)
        };
        if env.is_3_4() {
            assert!(update.unwrap().node.ttl.is_some_and(|t| t > 30));
            let node = client.get("/dttl/d").unwrap().node;
            assert!(via_update(&node).unwrap().node.ttl.is_some_and(|t| t > 100));
        } else {
            let err = update.unwrap_err().as_v2().cloned().unwrap();
            assert_eq!((err.code, err.status), (V2ErrorCode::RaftInternal, 500));
            // 3.5.1 says "nodePath /1/dttl/d : Not a file ()".
            assert!(err.cause.as_deref().is_some_and(|c| c.contains("Not a file")), "{err:?}");
            let node = client.get("/dttl/d").unwrap().node;
            assert_eq!(code(via_update(&node)), V2ErrorCode::RaftInternal);
        }
    }

    /// mkdir twice: 102 Not a file; with prevExist=false: 105.
    fn mkdir_twice(client, env) {
        let made = client.mkdir("/mk/d").unwrap();
        assert!(made.node.dir && made.new_key);
        assert_eq!(code(client.mkdir("/mk/d")), V2ErrorCode::NotFile);
        let create_dir = Write::mkdir("/mk/d").options(WriteOptions::new().dir(true).prev_exist(false));
        assert_eq!(code(client.execute(create_dir)), V2ErrorCode::NodeExist);
    }

    /// A value is refused on a directory: by etcd (102) for an existing one, by
    /// the client (nothing sent) for a directory write that carries a value.
    fn value_on_directory_refused(client, env) {
        client.mkdir("/vd/d").unwrap();
        assert_eq!(code(client.set("/vd/d", "x")), V2ErrorCode::NotFile);
        let err = client.write("/vd/new", "x", WriteOptions::new().dir(true)).unwrap_err();
        assert!(matches!(err, Error::Usage(UsageError::DirectoryWithValue)), "{err:?}");
        assert!(!client.contains("/vd/new").unwrap(), "a refused write must send nothing");
    }

    /// In-order keys are zero-padded, increasing, and list in insertion order when sorted.
    fn in_order_keys(client, env) {
        let values = ["first", "second", "third", "fourth", "fifth"];
        let mut keys = Vec::new();
        for v in values {
            let r = client.append("/queue", v).unwrap();
            assert_eq!(r.action, Action::Create);
            let name = r.node.name().to_owned();
            assert_eq!(name.len(), 20, "zero-padded to 20 digits: {name}");
            assert!(name.bytes().all(|b| b.is_ascii_digit()));
            keys.push(r.node.key);
        }
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let listed = client.read("/queue", ReadOptions::new().sorted(true)).unwrap();
        let got: Vec<_> = listed.node.children().map(|n| n.value.clone().unwrap()).collect();
        assert_eq!(got, values);
        let listed_keys: Vec<_> = listed.node.children().map(|n| n.key.clone()).collect();
        assert_eq!(listed_keys, keys);
    }

    /// A recursive listing carries the whole tree; walks see what they should.
    fn recursive_listing(client, env) {
        client.set("/tree/a", "1").unwrap();
        client.set("/tree/sub/b", "2").unwrap();
        client.set("/tree/sub/deeper/c", "3").unwrap();
        client.mkdir("/tree/empty").unwrap();

        let flat = client.get("/tree").unwrap().node;
        assert!(flat.dir);
        let sub = flat.children().find(|n| n.key == "/tree/sub").unwrap();
        assert!(sub.dir && sub.nodes.is_empty(), "a plain read does not descend");

        let tree = client.read("/tree", ReadOptions::new().recursive(true).sorted(true)).unwrap().node;
        let children: Vec<_> = tree.children().map(|n| n.key.as_str()).collect();
        assert_eq!(children, ["/tree/a", "/tree/empty", "/tree/sub"]);
        let leaves: Vec<_> = tree.leaves().map(|n| n.key.as_str()).collect();
        assert_eq!(leaves, ["/tree/a", "/tree/sub/b", "/tree/sub/deeper/c"]);
        assert_eq!(tree.subtree().count(), 7);

        let empty = client.get("/tree/empty").unwrap().node;
        assert!(empty.dir);
        assert_eq!(empty.leaves().count(), 0, "an empty directory has no leaves");

        let quorum = client.read("/tree", ReadOptions::new().recursive(true).sorted(true).quorum(true)).unwrap();
        assert_eq!(quorum.node.leaves().count(), 3);
    }

    /// Deleting: a non-empty directory is refused (108), a directory needs dir=true
    /// (102), recursive removes a subtree, and conditions guard deletes.
    fn delete_directories_and_conditions(client, env) {
        client.set("/del/d/k", "v").unwrap();
        assert_eq!(code(client.delete("/del/d")), V2ErrorCode::NotFile);
        assert_eq!(code(client.delete_with("/del/d", DeleteOptions::new().dir(true))), V2ErrorCode::DirNotEmpty);
        client.mkdir("/del/empty").unwrap();
        let gone = client.delete_with("/del/empty", DeleteOptions::new().dir(true)).unwrap();
        assert!(gone.node.dir);
        let all = client.delete_with("/del/d", DeleteOptions::new().recursive(true)).unwrap();
        assert_eq!(all.action, Action::Delete);
        assert!(!client.contains("/del/d/k").unwrap());

        client.set("/del/c", "keep").unwrap();
        let wrong = client.delete_with("/del/c", DeleteOptions::new().prev_value("other"));
        assert_eq!(code(wrong), V2ErrorCode::CompareFailed);
        let index = client.get("/del/c").unwrap().node.modified_index;
        assert_eq!(code(client.delete_with("/del/c", DeleteOptions::new().prev_index(index + 100))), V2ErrorCode::CompareFailed);
        let cad = client.delete_with("/del/c", DeleteOptions::new().prev_value("keep").prev_index(index)).unwrap();
        assert_eq!(cad.action, Action::CompareAndDelete);
        assert!(!client.contains("/del/c").unwrap());
    }

    /// pop returns the deleted node.
    fn pop_returns_deleted(client, env) {
        client.set("/pop/k", "payload").unwrap();
        let node = client.pop("/pop/k").unwrap();
        assert_eq!((node.key.as_str(), node.value.as_deref()), ("/pop/k", Some("payload")));
        assert!(!client.contains("/pop/k").unwrap());
        assert_eq!(code(client.pop("/pop/k")), V2ErrorCode::KeyNotFound);
    }

    /// Keys and values with every troublesome character round-trip exactly,
    /// through get, listing and conditional writes.
    fn special_characters_round_trip(client, env) {
        let keys = [
            "/sc/with space", "/sc/ünïcödé 键", "/sc/q?mark", "/sc/hash#tag", "/sc/100%",
            "/sc/%2F", "/sc/a&b", "/sc/a+b", "/sc/a=b", "/sc/trailing space ", "/sc/.dot",
            "/sc/emoji😀", "/sc/tab\there",
        ];
        let values = ["line1\nline2", "a&b=c", "ünïcödé 键 😀", "", "+ %2B %", "  spaces  ", "{\"json\": true}"];
        for (i, key) in keys.iter().enumerate() {
            let value = values[i % values.len()];
            let set = client.set(key, value).unwrap();
            assert_eq!(set.node.key, *key);
            let got = client.get(key).unwrap().node;
            assert_eq!(got.key, *key);
            assert_eq!(got.value.as_deref(), Some(value), "value of {key:?}");
            // The value also works as a compare condition, and the key in a conditional
            // delete; etcd refuses an empty prevValue outright (errorCode 201).
            if value.is_empty() {
                let err = client.test_and_set(key, "next", value).unwrap_err();
                assert_eq!(err.as_v2().unwrap().code, V2ErrorCode::PrevValueRequired);
                client.set(key, "next").unwrap();
            } else {
                client.test_and_set(key, "next", value).unwrap();
            }
            client.delete_with(key, DeleteOptions::new().prev_value("next")).unwrap();
            assert!(!client.contains(key).unwrap());
            client.set(key, value).unwrap();
        }
        let listed = client.read("/sc", ReadOptions::new().sorted(true)).unwrap().node;
        let mut expected: Vec<_> = keys.to_vec();
        expected.sort();
        let got: Vec<_> = listed.children().map(|n| n.key.as_str()).collect();
        assert_eq!(got, expected);
        // Every value survives too, including the empty one.
        assert_eq!(client.get("/sc/ünïcödé 键").unwrap().node.value.as_deref(), Some(values[1]));
    }

    /// Keys with `//`, `.` or `..` segments would be redirected by etcd to a
    /// different key: the client refuses them and sends nothing.
    fn non_canonical_keys_refused(client, env) {
        for key in ["/nc/a//b", "/nc/./b", "/nc/x/../b", "nc//"] {
            let err = client.set(key, "v").unwrap_err();
            assert!(matches!(err, Error::Usage(UsageError::NonCanonicalKey { .. })), "{key}: {err:?}");
        }
        assert!(!client.contains("/nc/a/b").unwrap());
        assert!(!client.contains("/nc/b").unwrap());
    }

    /// Values must be UTF-8 for v2: other bytes are refused before sending.
    fn non_utf8_value_refused(client, env) {
        let err = client.set("/bytes/k", [0x66, 0x6f, 0xff, 0x00]).unwrap_err();
        assert!(matches!(err, Error::Usage(UsageError::ValueNotUtf8 { valid_up_to: 2 })), "{err:?}");
        assert!(!client.contains("/bytes/k").unwrap());
        // NUL and control characters are valid UTF-8 and survive.
        client.set("/bytes/ctl", "a\u{0}b\u{7}").unwrap();
        assert_eq!(client.get("/bytes/ctl").unwrap().node.value.as_deref(), Some("a\u{0}b\u{7}"));
    }

    /// Hidden keys (`_name`) are readable but not listed.
    fn hidden_keys_not_listed(client, env) {
        client.set("/hid/_secret", "s").unwrap();
        client.set("/hid/open", "o").unwrap();
        let listed = client.read("/hid", ReadOptions::new().recursive(true)).unwrap().node;
        let names: Vec<_> = listed.children().map(|n| n.name()).collect();
        assert_eq!(names, ["open"]);
        assert_eq!(client.get("/hid/_secret").unwrap().node.value.as_deref(), Some("s"));
    }

    /// noValueOnSuccess: etcd answers a successful write with only the action.
    fn no_value_on_success(client, env) {
        let r = client.write("/nv/k", "v", WriteOptions::new().no_value_on_success(true)).unwrap();
        assert_eq!(r.action, Action::Set);
        assert_eq!(r.node.value, None);
        assert_eq!(client.get("/nv/k").unwrap().node.value.as_deref(), Some("v"));
    }
}
