//! v3 watches (`etcd_proto::v3::Watch`) against a real etcd, on every
//! transport: the created confirmation, live and replayed events, prev_kv
//! and filters, compaction, endpoints that do not listen, auth tokens that
//! expire, and a member killed under an open watch.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_proto::v3::{Compact, Delete, EventKind, KeyRange, Put, V3ErrorKind, Watch, WatchItem};
use etcd_proto::{Cluster, Error, StreamFlow, StreamStep};
use etcd_tests::auth::{auth_server, client_as};
use etcd_tests::harness::EtcdServer;
use etcd_tests::TestClient;

/// A watch that ends cleanly once `stop` is true of an item it emitted, so
/// a scenario can collect exactly what it waits for.
struct Until {
    watch: Watch,
    stop: Box<dyn FnMut(&WatchItem) -> bool + Send>,
    stopped: bool,
    /// How many streams the watch opened.
    opens: Arc<AtomicUsize>,
}

impl Until {
    fn new(watch: Watch, stop: impl FnMut(&WatchItem) -> bool + Send + 'static) -> Self {
        Until {
            watch,
            stop: Box::new(stop),
            stopped: false,
            opens: Arc::default(),
        }
    }

    /// Until `n` events were emitted in all.
    fn events(watch: Watch, n: usize) -> Self {
        let mut seen = 0;
        Until::new(watch, move |item| {
            if let WatchItem::Events(batch) = item {
                seen += batch.events.len();
            }
            seen >= n
        })
    }
}

impl StreamFlow for Until {
    type Item = WatchItem;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> StreamStep<WatchItem> {
        if self.stopped {
            return StreamStep::End(Ok(()));
        }
        match self.watch.poll(cluster, now) {
            StreamStep::Emit(item) => {
                self.stopped = (self.stop)(&item);
                StreamStep::Emit(item)
            }
            StreamStep::Open(transmit) => {
                self.opens.fetch_add(1, Ordering::Relaxed);
                StreamStep::Open(transmit)
            }
            other => other,
        }
    }

    fn handle(&mut self, c: &mut Cluster, now: Instant, input: etcd_proto::Input) {
        self.watch.handle(c, now, input)
    }
}

/// One event, flattened: kind, key, value, mod revision, previous value.
type Seen = (EventKind, String, String, i64, Option<String>);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The items, every one `Ok`.
fn ok_items(items: Vec<Result<WatchItem, Error>>) -> Vec<WatchItem> {
    items
        .into_iter()
        .map(|item| item.unwrap_or_else(|e| panic!("the watch failed: {e}")))
        .collect()
}

/// Every event of `items`, in order.
fn events(items: &[WatchItem]) -> Vec<Seen> {
    items
        .iter()
        .flat_map(|item| match item {
            WatchItem::Events(batch) => batch
                .events
                .iter()
                .map(|e| {
                    (
                        e.kind,
                        text(&e.kv.key),
                        text(&e.kv.value),
                        e.kv.mod_revision,
                        e.prev_kv.as_ref().map(|p| text(&p.value)),
                    )
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn put(client: &TestClient, key: &str, value: &str) -> i64 {
    client
        .execute(Put::new(key, value))
        .expect("v3 put")
        .header
        .revision
}

fn delete(client: &TestClient, key: &str) -> i64 {
    client
        .execute(Delete::new(key))
        .expect("v3 delete")
        .header
        .revision
}

/// A loopback URL nothing listens on.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

etcd_tests::v3_scenarios! {
    /// A prefix watch from now: `Created` comes first, at the server's
    /// revision when it confirmed the watch; then each put and delete under
    /// the prefix (and nothing outside it), one server batch per write, with
    /// the write's revision.
    fn created_then_each_change_under_the_prefix(client, env) {
        let before = put(client, "/w1/unrelated", "x");
        let writer = env.client_for(&env.urls());
        let writing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            let a1 = put(&writer, "/w1/a/1", "one");
            let a2 = put(&writer, "/w1/a/2", "two");
            put(&writer, "/w1/b", "outside");
            let gone = delete(&writer, "/w1/a/1");
            (a1, a2, gone)
        });
        let watch = Watch::new(KeyRange::prefix("/w1/a/"));
        assert_eq!(watch.next_revision(), 0);
        let items = ok_items(client.stream_items(Until::events(watch, 3), 10, Duration::from_secs(15)));
        let (a1, a2, gone) = writing.join().unwrap();
        assert_eq!(items[0], WatchItem::Created { revision: before }, "{items:?}");
        assert_eq!(
            events(&items),
            vec![
                (EventKind::Put, "/w1/a/1".into(), "one".into(), a1, None),
                (EventKind::Put, "/w1/a/2".into(), "two".into(), a2, None),
                (EventKind::Delete, "/w1/a/1".into(), String::new(), gone, None),
            ]
        );
        // Live writes come one batch each, headed by their own revision.
        for item in &items[1..] {
            let WatchItem::Events(batch) = item else { panic!("{items:?}") };
            assert_eq!(batch.events.len(), 1, "{batch:?}");
            assert_eq!(batch.header.revision, batch.events[0].kv.mod_revision);
        }
        assert!(!items.iter().skip(1).any(|i| matches!(i, WatchItem::Created { .. })));
    }

    /// With `progress_notify`, an idle watch gets `Progress { revision }`
    /// items (here every second: the server runs with
    /// `--experimental-watch-progress-notify-interval=1s`), each at the
    /// store's current revision.
    fn idle_watch_gets_progress_notifications(client, env) {
        let server = EtcdServer::start_with(&["--experimental-watch-progress-notify-interval=1s"]);
        let watcher = env.client_for(&[server.client_url()]);
        let current = put(&watcher, "/wp/other", "x");
        let mut progress = 0;
        let watch = Watch::new(KeyRange::prefix("/wp/quiet/")).progress_notify();
        let until = Until::new(watch, move |item| {
            progress += usize::from(matches!(item, WatchItem::Progress { .. }));
            progress >= 2
        });
        let items = ok_items(watcher.stream_items(until, 10, Duration::from_secs(15)));
        assert!(matches!(items[0], WatchItem::Created { .. }), "{items:?}");
        let progresses: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                WatchItem::Progress { revision } => Some(*revision),
                _ => None,
            })
            .collect();
        assert_eq!(progresses, [current, current], "{items:?}");
        let _ = client;
    }

    /// `start_revision` replays the history (the server sends it as soon as
    /// the watch is created), then live events follow in order.
    fn start_revision_replays_history(client, env) {
        let revisions: Vec<i64> = (0..10).map(|i| put(client, &format!("/w2/k{i}"), &i.to_string())).collect();
        put(client, "/w2-not-under", "x");
        let watch = Watch::new(KeyRange::prefix("/w2/")).start_revision(revisions[3]);
        assert_eq!(watch.next_revision(), revisions[3]);
        let items = ok_items(client.stream_items(Until::events(watch, 7), 20, Duration::from_secs(15)));
        assert!(matches!(items[0], WatchItem::Created { .. }), "{items:?}");
        let seen = events(&items);
        let expected: Vec<Seen> = (3..10)
            .map(|i| (EventKind::Put, format!("/w2/k{i}"), i.to_string(), revisions[i], None))
            .collect();
        assert_eq!(seen, expected);
        let batches = items.iter().filter(|i| matches!(i, WatchItem::Events(_))).count();
        eprintln!("{}: 7 replayed events came in {batches} batch(es)", env.version());
    }

    /// `prev_kv` carries each key's previous value (none after a delete);
    /// the NOPUT and NODELETE filters leave puts or deletes out.
    fn prev_kv_and_filters(client, env) {
        let v1 = put(client, "/w3/k", "v1");
        let v2 = put(client, "/w3/k", "v2");
        let gone = delete(client, "/w3/k");
        let v3 = put(client, "/w3/k", "v3");

        let watch = Watch::new("/w3/k").start_revision(v2).prev_kv();
        let items = ok_items(client.stream_items(Until::events(watch, 3), 10, Duration::from_secs(10)));
        assert_eq!(
            events(&items),
            vec![
                (EventKind::Put, "/w3/k".into(), "v2".into(), v2, Some("v1".into())),
                (EventKind::Delete, "/w3/k".into(), String::new(), gone, Some("v2".into())),
                (EventKind::Put, "/w3/k".into(), "v3".into(), v3, None),
            ]
        );

        let no_put = Watch::new("/w3/k").start_revision(v1).no_put();
        let items = ok_items(client.stream_items(Until::events(no_put, 1), 10, Duration::from_secs(10)));
        assert_eq!(events(&items), vec![(EventKind::Delete, "/w3/k".into(), String::new(), gone, None)]);

        let no_delete = Watch::new("/w3/k").start_revision(v1).no_delete();
        let items = ok_items(client.stream_items(Until::events(no_delete, 3), 10, Duration::from_secs(10)));
        let revisions: Vec<i64> = events(&items).into_iter().map(|e| e.3).collect();
        assert_eq!(revisions, [v1, v2, v3]);
    }

    /// A watch from a compacted revision: the server confirms it, then
    /// cancels it with the compact revision. The watch yields `Compacted`
    /// as its last item and ends cleanly, at once.
    fn a_compacted_start_ends_with_compacted(client, env) {
        let first = put(client, "/w4/k", "1");
        put(client, "/w4/k", "2");
        let last = put(client, "/w4/k", "3");
        client.execute(Compact::new(last).physical()).expect("compact");
        let started = Instant::now();
        let items = client.stream_items(Watch::new("/w4/k").start_revision(first), 10, Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        let items = ok_items(items);
        assert_eq!(
            items,
            vec![
                WatchItem::Created { revision: last },
                WatchItem::Compacted { compact_revision: last },
            ]
        );
    }

    /// With no endpoint listening, the watch does not spin: it ends at once
    /// with an error naming every endpoint.
    fn no_endpoint_listening_ends_naming_each(client, env) {
        let urls = vec![dead_url(), dead_url(), dead_url()];
        let dead = env.client_for(&urls);
        let started = Instant::now();
        let mut items = dead.stream_items(Watch::new("/w5/k"), 5, Duration::from_secs(20));
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(items.len(), 1, "{items:?}");
        let error = items.pop().unwrap().unwrap_err();
        let Error::Unavailable(unavailable) = &error else { panic!("{error:?}") };
        assert_eq!(unavailable.failures.len(), 3);
        for url in &urls {
            assert!(error.to_string().contains(url.as_str()), "{error}");
        }
    }

    /// With auth on: a watch sent with an expired token is refused by etcd
    /// (3.4: `invalid auth token`, 3.5: `permission denied`); the watch
    /// fetches a new token once and goes on. A watch the user may not read
    /// ends with `permission denied` after that one retry.
    fn expired_token_is_renewed_and_a_forbidden_watch_ends(client, env) {
        let (server, _anonymous) = auth_server(env);
        let app = client_as(env, &server, "app", "apppw");
        let before = app.execute(Put::new("app/w", "before")).unwrap().header.revision;
        std::thread::sleep(Duration::from_secs(4)); // the 2 s token expires
        let writer = client_as(env, &server, "app", "apppw");
        let writing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            put(&writer, "app/w", "after")
        });
        let watch = Until::events(Watch::new("app/w"), 1);
        let opens = watch.opens.clone();
        let items = ok_items(app.stream_items(watch, 5, Duration::from_secs(15)));
        let after = writing.join().unwrap();
        assert_eq!(opens.load(Ordering::Relaxed), 2, "refused once, then renewed");
        assert_eq!(items[0], WatchItem::Created { revision: before }, "{items:?}");
        assert_eq!(events(&items), vec![(EventKind::Put, "app/w".into(), "after".into(), after, None)]);

        let started = Instant::now();
        let forbidden = Until::new(Watch::new("other/w"), |_| false);
        let opens = forbidden.opens.clone();
        let mut items = app.stream_items(forbidden, 5, Duration::from_secs(15));
        assert_eq!(opens.load(Ordering::Relaxed), 2, "one token renewal, no loop");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(items.len(), 1, "{items:?}");
        let error = items.pop().unwrap().unwrap_err();
        let v3 = error.as_v3().unwrap_or_else(|| panic!("{error:?}"));
        assert_eq!(v3.kind, V3ErrorKind::PermissionDenied, "{v3}");
        let _ = client;
    }

    /// A watch on a 3-member cluster, connected to member 0, while writers
    /// write paced keys and member 0 is killed: the watch resumes on another
    /// member by itself and delivers every acknowledged write exactly once,
    /// in revision order, after a single `Created`.
    #[cluster(3)]
    fn a_watch_survives_killing_its_member(client, env) {
        let urls = env.urls();
        let start = put(client, "/fo/start", "");
        let kill_at = Instant::now() + Duration::from_millis(700);
        let stop_at = kill_at + Duration::from_secs(4);
        let opens = Arc::new(AtomicUsize::new(0));
        let (acked, items, errors) = std::thread::scope(|s| {
            let watching = s.spawn(|| {
                // Pinned to member 0, the first URL.
                let watcher = env.transport.connect(&urls);
                let watch = Watch::new(KeyRange::prefix("/fo/")).start_revision(start + 1);
                let mut until_done = Until::new(watch, |item| {
                    matches!(item, WatchItem::Events(b) if b.events.iter().any(|e| e.kv.key == b"/fo/done"))
                });
                until_done.opens = opens.clone();
                watcher.stream_items(until_done, usize::MAX, Duration::from_secs(60))
            });
            let writers: Vec<_> = (0..2)
                .map(|w| {
                    let urls = urls.clone();
                    s.spawn(move || {
                        let writer = env.transport.connect(&urls);
                        let (mut acked, mut errors) = (Vec::new(), 0);
                        let mut i = 0;
                        while Instant::now() < stop_at {
                            let (key, value) = (format!("/fo/w{w}/{i:05}"), format!("v{w}.{i}"));
                            match writer.execute(Put::new(key.as_str(), value.as_str())) {
                                Ok(r) => acked.push((key, value, r.header.revision)),
                                Err(_) => errors += 1,
                            }
                            i += 1;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        (acked, errors)
                    })
                })
                .collect();
            std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
            env.kill_member(0);
            let mut acked = Vec::new();
            let mut errors = 0;
            for writer in writers {
                let (a, e) = writer.join().unwrap();
                acked.extend(a);
                errors += e;
            }
            put(&env.client_for(&urls[1..]), "/fo/done", "");
            (acked, watching.join().unwrap(), errors)
        });
        let items = ok_items(items);
        let opens = opens.load(Ordering::Relaxed);
        assert!(opens >= 2, "the watch never lost its member ({opens} stream)");
        assert!(matches!(items[0], WatchItem::Created { .. }), "{:?}", items.first());
        assert_eq!(items.iter().filter(|i| matches!(i, WatchItem::Created { .. })).count(), 1);
        let seen = events(&items);
        assert_eq!(seen.last().map(|e| e.1.as_str()), Some("/fo/done"));
        assert!(seen.windows(2).all(|w| w[0].3 < w[1].3), "an event was seen twice or out of order");
        assert!(acked.len() > 40, "only {} writes got through ({errors} failed)", acked.len());
        let by_revision: std::collections::HashMap<i64, (String, String)> =
            seen.into_iter().map(|e| (e.3, (e.1, e.2))).collect();
        for (key, value, revision) in &acked {
            assert_eq!(
                by_revision.get(revision),
                Some(&(key.clone(), value.clone())),
                "the watch missed {key} at revision {revision}"
            );
        }
        eprintln!(
            "{}: {} acknowledged writes, {errors} failed, all seen once; {opens} streams opened",
            env.version(),
            acked.len()
        );
    }
}
