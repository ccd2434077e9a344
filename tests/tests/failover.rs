//! Endpoint failover against real clusters: members killed mid-stream, dead
//! endpoints, member discovery, and answers from the wrong cluster.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use etcd_proto::v2::{ReadOptions, WatchEvent, WatchOptions};
use etcd_proto::{Config, Error, ErrorKind};

/// What one writer saw: the writes acknowledged, its longest wait between
/// two acknowledgements, and how many writes failed.
struct WriterReport {
    acked: Vec<(String, String)>,
    longest_gap: Duration,
    errors: usize,
}

/// A loopback URL nothing listens on.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

etcd_tests::scenarios! {
    /// Four clients write while the member they use is killed: they carry on
    /// within a few seconds, every acknowledged write is readable afterwards,
    /// and a watcher on the same keys (through the same dying member first)
    /// sees every event once, in order. (The writers pace themselves, 10 ms
    /// apart: v2 delivers one event per long poll, so unpaced writers can push
    /// a watcher past etcd's 1000-event history during the failover, where it
    /// would correctly resync instead.)
    #[cluster(3)]
    fn writers_and_a_watcher_survive_a_killed_member(client, env) {
        let urls = env.urls();
        let start_index = client.set("/fo/start", "").unwrap().node.modified_index;
        let kill_at = Instant::now() + Duration::from_millis(700);
        let stop_at = kill_at + Duration::from_secs(4);
        let (results, watched) = std::thread::scope(|s| {
            let watching = s.spawn(|| {
                let watcher = env.transport.connect(&urls);
                let mut events = Vec::new();
                let options = WatchOptions::new().recursive(true).from_index(start_index + 1);
                for item in watcher.watch_events("/fo", options) {
                    match item {
                        Ok(WatchEvent::Changed(event)) => {
                            if event.node.key == "/fo/done" {
                                break;
                            }
                            events.push((event.node.modified_index, event.node.key, event.node.value));
                        }
                        Ok(WatchEvent::Resynced(r)) => panic!("the watcher fell behind: {r:?}"),
                        // Every endpoint failed for a moment: go on from the same index.
                        Err(_) => {}
                    }
                }
                events
            });
            let writers: Vec<_> = (0..4)
                .map(|w| {
                    let urls = urls.clone();
                    s.spawn(move || {
                        let writer = env.transport.connect(&urls);
                        let mut acked = Vec::new();
                        let mut errors = 0;
                        let mut last_ack = Instant::now();
                        let mut longest_gap = Duration::ZERO;
                        let mut i = 0;
                        while Instant::now() < stop_at {
                            let (key, value) = (format!("/fo/w{w}/{i:05}"), format!("v{w}.{i}"));
                            match writer.set(&key, &value) {
                                Ok(_) => {
                                    longest_gap = longest_gap.max(last_ack.elapsed());
                                    last_ack = Instant::now();
                                    acked.push((key, value));
                                }
                                Err(_) => errors += 1,
                            }
                            i += 1;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        WriterReport { acked, longest_gap, errors }
                    })
                })
                .collect();
            std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
            env.kill_member(0);
            let results: Vec<WriterReport> = writers.into_iter().map(|h| h.join().unwrap()).collect();
            env.client_for(&urls[1..]).set("/fo/done", "").unwrap();
            (results, watching.join().unwrap())
        });
        let survivors = env.client_for(&urls[1..]);
        // The watcher saw each event once, in order.
        assert!(watched.windows(2).all(|w| w[0].0 < w[1].0), "an event was seen twice or out of order");
        let seen: std::collections::HashSet<(String, Option<String>)> =
            watched.into_iter().map(|(_, key, value)| (key, value)).collect();
        for WriterReport { acked, longest_gap, errors } in results {
            assert!(longest_gap < Duration::from_secs(6), "a writer stalled for {longest_gap:?}");
            assert!(acked.len() > 20, "a writer got only {} writes through", acked.len());
            assert!(errors <= 3, "{errors} writes failed outright");
            for (key, value) in acked {
                let node = survivors.read(&key, ReadOptions::new().quorum(true)).unwrap().node;
                assert_eq!(node.value.as_deref(), Some(value.as_str()), "acknowledged {key} lost");
                assert!(seen.contains(&(key.clone(), Some(value))), "the watcher missed {key}");
            }
        }
    }

    /// With every endpoint dead, the error names each of them, promptly.
    fn all_dead_endpoints_are_named(client, env) {
        let urls = vec![dead_url(), dead_url(), dead_url()];
        let dead = env.client_for(&urls);
        let started = Instant::now();
        let error = dead.get("/k").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(error.kind(), ErrorKind::Transport);
        let Error::Unavailable(unavailable) = &error else { panic!("{error:?}") };
        assert_eq!(unavailable.failures.len(), 3);
        for url in &urls {
            assert!(error.to_string().contains(url.as_str()), "{error}");
        }
    }

    /// A dead endpoint first in the list costs one refused connection.
    fn a_dead_first_endpoint_is_skipped(client, env) {
        let mut urls = vec![dead_url()];
        urls.extend(env.urls());
        let c = env.client_for(&urls);
        c.set("/skip/k", "v").unwrap();
        assert_eq!(c.get("/skip/k").unwrap().node.value.as_deref(), Some("v"));
    }

    /// Given one live member (and a dead endpoint), the client learns the
    /// others from /v2/members and keeps working when that member dies; told to
    /// use only its endpoints, it does not.
    #[cluster(3)]
    fn members_are_discovered_unless_told_not_to(client, env) {
        let seeds = vec![dead_url(), env.cluster().member_client_url(0)];
        let discovering = env.transport.connect_config(Config { endpoints: seeds.clone(), ..Config::default() });
        let fixed = env.transport.connect_config(Config {
            endpoints: seeds,
            discover_members: false,
            ..Config::default()
        });
        discovering.set("/disc/k", "1").unwrap();
        fixed.set("/disc/k", "2").unwrap();
        env.kill_member(0);
        std::thread::sleep(Duration::from_millis(200));
        let read = discovering.read("/disc/k", ReadOptions::new().quorum(true)).unwrap();
        assert_eq!(read.node.value.as_deref(), Some("2"));
        let error = fixed.get("/disc/k").unwrap_err();
        assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    }

    /// An expected cluster ID guards against answers from another cluster.
    fn expected_cluster_id_is_enforced(client, env) {
        let real = client.set("/cid/k", "v").unwrap().meta.cluster_id.unwrap();
        let guarded = env.transport.connect_config(Config {
            endpoints: env.urls(),
            expected_cluster_id: Some(real),
            ..Config::default()
        });
        assert_eq!(guarded.get("/cid/k").unwrap().node.value.as_deref(), Some("v"));
        let wrong = env.transport.connect_config(Config {
            endpoints: env.urls(),
            expected_cluster_id: Some("0123456789abcdef".into()),
            ..Config::default()
        });
        match wrong.get("/cid/k").unwrap_err() {
            Error::ClusterMismatch(m) => assert_eq!(m.expected, "0123456789abcdef"),
            other => panic!("{other:?}"),
        }
    }
}
