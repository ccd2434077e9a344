//! v2 watches against a real etcd, on every transport: one-shot and
//! continuous, history replay, falling behind etcd's 1000-event window,
//! directory events, hidden keys.

use std::time::{Duration, Instant};

use etcd_proto::v2::{Action, ReadOptions, WatchEvent, WatchOptions, WriteOptions};
use etcd_proto::{Error, TransportErrorKind};

/// Runs `writes` on another client after `delay`, while the caller watches.
fn write_later(
    env: &etcd_tests::Env,
    delay: Duration,
    writes: impl FnOnce(&etcd_tests::TestClient) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let writer = env.client_for(&env.urls());
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        writes(&writer);
    })
}

fn changed(item: Result<WatchEvent, Error>) -> etcd_proto::v2::KeysResponse {
    match item {
        Ok(WatchEvent::Changed(event)) => event,
        other => panic!("expected a change, got {other:?}"),
    }
}

etcd_tests::scenarios! {
    /// A one-shot watch from now waits (unbounded by default) for the next change.
    fn one_shot_watch_waits_for_the_next_change(client, env) {
        client.set("/w1/k", "before").unwrap();
        let writer = write_later(env, Duration::from_millis(300), |w| {
            w.set("/w1/k", "after").unwrap();
        });
        let event = client.watch("/w1/k", WatchOptions::new()).unwrap();
        assert_eq!(event.node.value.as_deref(), Some("after"));
        assert_eq!(event.prev_node.unwrap().value.as_deref(), Some("before"));
        writer.join().unwrap();
    }

    /// A watch from an index replays etcd's history.
    fn one_shot_watch_replays_history(client, env) {
        let indexes: Vec<u64> = ["a", "b", "c"]
            .iter()
            .map(|v| client.set("/w2/k", v).unwrap().node.modified_index)
            .collect();
        for (index, value) in indexes.iter().zip(["a", "b", "c"]) {
            let event = client.watch("/w2/k", WatchOptions::new().from_index(*index)).unwrap();
            assert_eq!(event.node.value.as_deref(), Some(value));
            assert_eq!(event.node.modified_index, *index);
        }
    }

    /// A one-shot watch with a timeout gives up then, with a timeout error.
    fn one_shot_watch_timeout(client, env) {
        let started = Instant::now();
        let error = client.watch("/w3/idle", WatchOptions::new().timeout(Duration::from_millis(400))).unwrap_err();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(350) && took < Duration::from_secs(3), "{took:?}");
        match error {
            Error::Transport(t) => assert_eq!(t.kind(), TransportErrorKind::Timeout),
            other => panic!("{other:?}"),
        }
    }

    /// Idle long polls are renewed transparently; the event still arrives.
    fn idle_polls_are_renewed(client, env) {
        let writer = write_later(env, Duration::from_millis(900), |w| {
            w.set("/w4/k", "late").unwrap();
        });
        let mut events = client.watch_events("/w4/k", WatchOptions::new().poll_interval(Duration::from_millis(200)));
        let event = changed(events.next().unwrap());
        assert_eq!(event.node.value.as_deref(), Some("late"));
        writer.join().unwrap();
    }

    /// Every event of 2,000 writes arrives exactly once, in order.
    fn every_event_of_2000_writes_once_in_order(client, env) {
        let start = client.set("/w5/start", "").unwrap().node.modified_index;
        let writer = write_later(env, Duration::ZERO, |w| {
            for i in 0..2000 {
                w.set(&format!("/w5/k{}", i % 7), i.to_string()).unwrap();
            }
        });
        let mut seen = Vec::with_capacity(2000);
        let mut last_index = start;
        for item in client.watch_events("/w5", WatchOptions::new().recursive(true).from_index(start + 1)) {
            let event = changed(item);
            assert!(event.node.modified_index > last_index, "out of order or repeated");
            last_index = event.node.modified_index;
            seen.push(event.node.value.unwrap());
            if seen.len() == 2000 {
                break;
            }
        }
        writer.join().unwrap();
        let expected: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
        assert_eq!(seen, expected);
    }

    /// A watcher more than 1,000 events behind gets an explicit resync with the
    /// fresh state, then continues without loss.
    fn falling_behind_resyncs_then_continues(client, env) {
        let from = client.set("/w6/k0", "first").unwrap().node.modified_index;
        for i in 0..1100 {
            client.set(&format!("/w6/k{}", i % 3), format!("v{i}")).unwrap();
        }
        let mut events = client.watch_events("/w6", WatchOptions::new().recursive(true).from_index(from + 1));
        let resync = match events.next().unwrap() {
            Ok(WatchEvent::Resynced(r)) => r,
            other => panic!("expected a resync, got {other:?}"),
        };
        assert_eq!(resync.cleared.code.number(), 401);
        let snapshot = resync.snapshot.expect("the directory exists");
        let values: Vec<_> = snapshot.node.leaves().map(|n| n.value.clone().unwrap()).collect();
        assert_eq!(values, ["v1098", "v1099", "v1097"], "the fresh state of /w6/k0..k2");
        assert_eq!(resync.next_index, snapshot.meta.etcd_index.unwrap() + 1);
        let writer = write_later(env, Duration::from_millis(100), |w| {
            for i in 0..10 {
                w.set("/w6/after", i.to_string()).unwrap();
            }
        });
        let after: Vec<_> = (0..10).map(|_| changed(events.next().unwrap()).node.value.unwrap()).collect();
        assert_eq!(after, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
        writer.join().unwrap();
    }

    /// A recursive watch on a directory sees create, update, delete and expire.
    fn directory_watch_sees_every_kind_of_event(client, env) {
        client.mkdir("/w7").unwrap();
        let from = client.get("/w7").unwrap().meta.etcd_index.unwrap() + 1;
        client.create("/w7/a", "1").unwrap();
        client.write("/w7/a", "2", WriteOptions::new().prev_exist(true)).unwrap();
        client.delete("/w7/a").unwrap();
        client.write("/w7/t", "ttl", WriteOptions::new().ttl(1)).unwrap();
        let mut actions = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        for item in client.watch_events("/w7", WatchOptions::new().recursive(true).from_index(from)) {
            let event = changed(item);
            actions.push((event.action.clone(), event.node.key.clone()));
            if event.action == Action::Expire || Instant::now() > deadline {
                break;
            }
        }
        assert_eq!(
            actions,
            [
                (Action::Create, "/w7/a".to_owned()),
                (Action::Update, "/w7/a".to_owned()),
                (Action::Delete, "/w7/a".to_owned()),
                (Action::Set, "/w7/t".to_owned()),
                (Action::Expire, "/w7/t".to_owned()),
            ]
        );
    }

    /// Hidden keys: a live recursive watch does not report them; a watch from
    /// a past index does (etcd's own behaviour).
    fn hidden_keys_in_watches(client, env) {
        client.mkdir("/w8").unwrap();
        let writer = write_later(env, Duration::from_millis(300), |w| {
            w.set("/w8/_hidden", "h").unwrap();
            w.set("/w8/visible", "v").unwrap();
        });
        let live = client.watch("/w8", WatchOptions::new().recursive(true)).unwrap();
        assert_eq!(live.node.key, "/w8/visible");
        writer.join().unwrap();
        let hidden_index = client.get("/w8/_hidden").unwrap().node.modified_index;
        let past = client
            .watch("/w8", WatchOptions::new().recursive(true).from_index(hidden_index))
            .unwrap();
        assert_eq!(past.node.key, "/w8/_hidden");
        // And a read of the directory still hides it.
        let listed = client.read("/w8", ReadOptions::new().recursive(true)).unwrap().node;
        assert_eq!(listed.children().count(), 1);
    }

    /// A one-shot watch from an index outside the history fails with 401
    /// (it does not resync: it was asked for that index).
    fn one_shot_watch_of_cleared_history_is_an_error(client, env) {
        let from = client.set("/w9/k", "0").unwrap().node.modified_index;
        for i in 0..1010 {
            client.set("/w9/other", i.to_string()).unwrap();
        }
        let error = client.watch("/w9/k", WatchOptions::new().from_index(from)).unwrap_err();
        let v2 = error.as_v2().unwrap();
        assert_eq!((v2.code.number(), v2.status), (401, 400));
    }
}
