//! Fault injection against real etcd, on every transport: a TCP fault proxy
//! of the harness's own ([`FaultProxy`]: blackhole, stall, cut with FIN or
//! RST, refuse, reset, delay) between a client and its member, and members
//! frozen with SIGSTOP. Each scenario checks what a caller loses: events
//! lost or repeated, writes applied twice, a lock held by two, and how long
//! the client takes to notice. Detection bounds are small here (1 s idle
//! timeout, 1.5 s request timeout) to keep the suite fast.
//!
//! Each scenario prints one `fault-report:` line (transport, fault, what was
//! seen) for the closing table of the failure-handling work.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_proto::v2::{LockOptions, WatchEvent, WatchOptions};
use etcd_proto::v3::{Get, KeyRange, MutexOptions, Put, Watch, WatchItem};
use etcd_proto::{Config, Error, TransportErrorKind};
use etcd_tests::fault::{Fault, FaultProxy};
use etcd_tests::{Env, TestClient};

/// How long a long-lived exchange may stay silent in these scenarios.
const IDLE: Duration = Duration::from_secs(1);
/// The request timeout of these scenarios' clients.
const REQUEST: Duration = Duration::from_millis(1500);

/// A client of the transport under test with small detection bounds.
fn fast_client(env: &Env, urls: &[String]) -> TestClient {
    env.transport.connect_config(Config {
        endpoints: urls.to_vec(),
        request_timeout: Some(REQUEST),
        idle_timeout: IDLE,
        discover_members: false,
        ..Config::default()
    })
}

fn report(env: &Env, fault: &str, what: std::fmt::Arguments<'_>) {
    eprintln!(
        "fault-report: etcd {} | {:?} | {fault} | {what}",
        env.version(),
        env.transport
    );
}

/// Events per key of a v3 watch, and the revisions in arrival order.
#[derive(Default)]
struct Seen {
    per_key: BTreeMap<String, usize>,
    revisions: Vec<i64>,
    warnings: usize,
    last_event_at: Option<Instant>,
    /// When the first event after `heal_at` arrived.
    first_after_heal: Option<Instant>,
}

/// Writes `n` keys `<prefix><i>` (v3 puts, 100 ms apart) through `writer`,
/// calling `at(i)` before each; a failed put is retried only if the key is
/// not there (it may have been applied).
fn write_v3_keys(writer: &TestClient, prefix: &str, n: usize, mut at: impl FnMut(usize)) {
    for i in 0..n {
        at(i);
        let key = format!("{prefix}{i:03}");
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            match writer.execute(Put::new(key.as_bytes(), "v")) {
                Ok(_) => break,
                Err(_) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(100));
                    let there = writer
                        .execute(Get::new(key.as_bytes()))
                        .map(|r| !r.kvs.is_empty())
                        .unwrap_or(false);
                    if there {
                        break;
                    }
                }
                Err(e) => panic!("writer gave up on {key}: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A v3 watch of `prefix` through `watcher` while `writer` writes 40 keys
/// and `fault` is applied to `proxy` from the 5th write to the 30th (2.5 s);
/// every key must arrive exactly once, in revision order.
fn v3_watch_rides_out(env: &Env, writer: &TestClient, fault: Fault, name: &str) {
    const N: usize = 40;
    let proxy = FaultProxy::start(&env.urls()[0]);
    let watcher = fast_client(env, &[proxy.url()]);
    let prefix = format!("faults/{name}/");
    let start = writer
        .execute(Put::new(format!("{prefix}start"), ""))
        .unwrap()
        .header
        .revision;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let heal_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    std::thread::scope(|s| {
        let (seen, heal_mark) = (seen.clone(), heal_at.clone());
        let watch = Watch::new(KeyRange::prefix(prefix.clone())).start_revision(start + 1);
        let last = format!("{prefix}{:03}", N - 1);
        let watching = s.spawn(move || {
            watcher.stream_until(watch, Duration::from_secs(40), |at, item| {
                let mut seen = seen.lock().unwrap();
                match item {
                    Ok(WatchItem::Events(batch)) => {
                        let mut done = false;
                        for event in batch.events {
                            let key = String::from_utf8_lossy(&event.kv.key).into_owned();
                            seen.revisions.push(event.kv.mod_revision);
                            *seen.per_key.entry(key.clone()).or_default() += 1;
                            done |= key == last;
                        }
                        seen.last_event_at = Some(at);
                        let healed = *heal_mark.lock().unwrap();
                        if healed.is_some() && seen.first_after_heal.is_none() {
                            seen.first_after_heal = Some(at);
                        }
                        !done
                    }
                    Ok(_) => true,
                    // A round over every endpoint failed: the watch says so
                    // and goes on.
                    Err(_) => {
                        seen.warnings += 1;
                        true
                    }
                }
            });
        });
        write_v3_keys(writer, &prefix, N, |i| {
            if i == 5 {
                proxy.set(fault);
            }
            if i == 30 {
                proxy.heal();
                *heal_at.lock().unwrap() = Some(Instant::now());
            }
        });
        watching.join().unwrap();
    });
    let seen = seen.lock().unwrap();
    let healed = heal_at.lock().unwrap().expect("healed");
    let recovery = seen
        .first_after_heal
        .map(|at| at.saturating_duration_since(healed));
    report(
        env,
        &format!("v3 watch, {fault:?} 2.5 s"),
        format_args!(
            "{} of {N} keys, {} duplicated, recovery after heal {recovery:?}, {} warnings",
            seen.per_key.len(),
            seen.per_key.values().filter(|n| **n > 1).count(),
            seen.warnings
        ),
    );
    assert_eq!(
        seen.per_key.len(),
        N,
        "every key arrived: {:?}",
        seen.per_key
    );
    assert!(
        seen.per_key.values().all(|n| *n == 1),
        "none twice: {:?}",
        seen.per_key
    );
    assert!(
        seen.revisions.windows(2).all(|w| w[0] < w[1]),
        "in order: {:?}",
        seen.revisions
    );
    // Detection: one idle timeout, one re-open, and the reconnect backoff.
    let bound = IDLE + REQUEST + Duration::from_secs(2) + Duration::from_secs(1);
    assert!(
        recovery.is_some_and(|r| r <= bound),
        "recovered within {bound:?}: {recovery:?}"
    );
}

/// When a fault was healed, and when the first event after it arrived.
type HealedAt = (Instant, Option<Instant>);

/// A v2 watcher of `dir` through a proxy that blackholes from the 5th write
/// to the 30th: every key arrives exactly once.
fn v2_watch_rides_out(env: &Env, writer: &TestClient, fault: Fault, name: &str) {
    const N: usize = 40;
    let proxy = FaultProxy::start(&env.urls()[0]);
    let watcher = fast_client(env, &[proxy.url()]);
    let dir = format!("/faults/{name}");
    let start = writer
        .set(&format!("{dir}/start"), "")
        .unwrap()
        .node
        .modified_index;
    let per_key: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let errors = Arc::new(Mutex::new(0usize));
    // When the fault was healed, and when the first event after it came.
    let healed: Arc<Mutex<Option<HealedAt>>> = Arc::default();
    std::thread::scope(|s| {
        let (per_key, errors, heal_mark) = (per_key.clone(), errors.clone(), healed.clone());
        let last = format!("{dir}/{:03}", N - 1);
        let dir_watched = dir.clone();
        let watching = s.spawn(move || {
            let options = WatchOptions::new().recursive(true).from_index(start + 1);
            let until = Instant::now() + Duration::from_secs(40);
            for item in watcher.watch_events(&dir_watched, options) {
                match item {
                    Ok(WatchEvent::Changed(event)) => {
                        *per_key
                            .lock()
                            .unwrap()
                            .entry(event.node.key.clone())
                            .or_default() += 1;
                        if let Some((_, first @ None)) = &mut *heal_mark.lock().unwrap() {
                            *first = Some(Instant::now());
                        }
                        if event.node.key == last {
                            return;
                        }
                    }
                    Ok(WatchEvent::Resynced(r)) => panic!("fell out of history: {r:?}"),
                    Err(_) => *errors.lock().unwrap() += 1,
                }
                if Instant::now() > until {
                    return;
                }
            }
        });
        for i in 0..N {
            if i == 5 {
                proxy.set(fault);
            }
            if i == 30 {
                proxy.heal();
                *healed.lock().unwrap() = Some((Instant::now(), None));
            }
            writer.set(&format!("{dir}/{i:03}"), "v").unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        watching.join().unwrap();
    });
    let per_key = per_key.lock().unwrap();
    let (healed_at, first) = healed.lock().unwrap().expect("healed");
    let recovery = first.map(|f| f.saturating_duration_since(healed_at));
    report(
        env,
        &format!("v2 watcher, {fault:?} 2.5 s"),
        format_args!(
            "{} of {N} keys, {} duplicated, recovery after heal {recovery:?}, {} errors yielded",
            per_key.len(),
            per_key.values().filter(|n| **n > 1).count(),
            errors.lock().unwrap()
        ),
    );
    assert_eq!(per_key.len(), N, "every key arrived: {per_key:?}");
    assert!(per_key.values().all(|n| *n == 1), "none twice: {per_key:?}");
    let bound = IDLE + REQUEST + Duration::from_secs(2);
    assert!(
        recovery.is_some_and(|r| r <= bound),
        "recovered within {bound:?}: {recovery:?}"
    );
}

/// The kind of transport error a v2 read (of a 4 KiB value: a cut at
/// 1000 bytes falls in the body) gets through a proxy with `fault`, and the
/// error's text.
fn kind_under(env: &Env, fault: Fault) -> (Option<TransportErrorKind>, String) {
    let direct = fast_client(env, &env.urls());
    direct.set("/faults/kind", "x".repeat(4096)).unwrap();
    let proxy = FaultProxy::start(&env.urls()[0]);
    proxy.set(fault);
    let client = fast_client(env, &[proxy.url()]);
    let result = client.get("/faults/kind");
    drop(proxy);
    match result {
        Err(Error::Transport(t)) => (Some(t.kind()), t.to_string()),
        Err(Error::Unavailable(u)) => match u.failures.first() {
            Some((_, Error::Transport(t))) => (Some(t.kind()), t.to_string()),
            other => (None, format!("{other:?}")),
        },
        other => (None, format!("{other:?}")),
    }
}

/// Blackholes `proxy` (the lock holder's only way to etcd), then has
/// another client acquire the same lock (`acquire_other`, blocking until it
/// has it) while watching `is_lost`: the holder must know first. The loss
/// reason (`reason`) is returned for the scenario to check.
fn holder_learns_first(
    env: &Env,
    proxy: &FaultProxy,
    api: &str,
    is_lost: impl Fn() -> bool,
    acquire_other: impl FnOnce() + Send,
    reason: impl Fn() -> Option<String>,
) -> Option<String> {
    proxy.set(Fault::Blackhole);
    let cut_at = Instant::now();
    let (lost_at, acquired_at) = std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            acquire_other();
            Instant::now()
        });
        let mut lost_at = None;
        while lost_at.is_none() && cut_at.elapsed() < Duration::from_secs(20) {
            if is_lost() {
                lost_at = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (lost_at, waiting.join().unwrap())
    });
    let reason = reason();
    report(
        env,
        &format!("{api} lock holder blackholed, TTL 3 s"),
        format_args!(
            "holder knew after {:?}, other acquired after {:?}; reason {reason:?}",
            lost_at.map(|l| l - cut_at),
            acquired_at - cut_at
        ),
    );
    let lost_at = lost_at.expect("the holder learned of the loss");
    assert!(lost_at < acquired_at, "the holder learns first");
    reason
}

etcd_tests::scenarios! {
    /// A v2 watcher behind a blackhole checks its member at each idle
    /// renewal and resumes from the last index + 1 after the heal.
    fn v2_watcher_rides_out_a_blackhole(client, env) {
        v2_watch_rides_out(env, client, Fault::Blackhole, "v2-blackhole");
    }

    /// The same for a stall.
    fn v2_watcher_rides_out_a_stall(client, env) {
        v2_watch_rides_out(env, client, Fault::StallAfter(0), "v2-stall");
    }

    /// An election observer behind a blackhole (its watch gone silent)
    /// notices, re-opens after the heal, and reports the leader's values
    /// proclaimed meanwhile: the last one arrives, nothing is repeated.
    fn an_observer_rides_out_a_blackhole(client, env) {
        let proxy = FaultProxy::start(&env.urls()[0]);
        let watcher = fast_client(env, &[proxy.url()]);
        let observer = watcher.v3_observe("faults-vote");
        let mut leader = client.v3_campaign("faults-vote", "v0", MutexOptions::new()).unwrap();
        assert!(observer.wait_for(1, Duration::from_secs(5)), "{:?}", observer.values());
        proxy.set(Fault::Blackhole);
        for i in 1..=5 {
            leader.proclaim(&format!("v{i}")).unwrap();
            std::thread::sleep(Duration::from_millis(500));
        }
        proxy.heal();
        let healed = Instant::now();
        let bound = IDLE + REQUEST + Duration::from_secs(3);
        let mut recovered = None;
        while healed.elapsed() < bound + Duration::from_secs(2) {
            let values = observer.values();
            if values.iter().any(|v| v.as_deref() == Ok("v5")) {
                recovered = Some(healed.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let values: Vec<String> = observer.values().into_iter().flatten().collect();
        report(env, "election observe, Blackhole 2.5 s", format_args!("saw {values:?}, v5 {recovered:?} after the heal"));
        assert!(recovered.is_some_and(|r| r <= bound), "recovered within {bound:?}: {recovered:?}");
        let mut deduped = values.clone();
        deduped.dedup();
        assert_eq!(deduped, values, "no value reported twice in a row");
        leader.resign().unwrap();
    }

    /// A member answering in 0.7 × the request timeout is slow but healthy:
    /// with nowhere else to go, every call gets the whole budget and succeeds.
    fn a_slow_single_member_still_answers(client, env) {
        let proxy = FaultProxy::start(&env.urls()[0]);
        let slow = fast_client(env, &[proxy.url()]);
        proxy.set(Fault::Delay(REQUEST.mul_f32(0.7)));
        let started = Instant::now();
        slow.set("/faults/slow", "1").unwrap();
        assert_eq!(slow.get("/faults/slow").unwrap().node.value.as_deref(), Some("1"));
        slow.execute(Put::new("faults/slow", "1")).unwrap();
        assert_eq!(slow.execute(Get::new("faults/slow")).unwrap().kvs.len(), 1);
        report(env, "Delay(0.7 × timeout)", format_args!("4 calls ok in {:?}", started.elapsed()));
    }

    /// An answer cut short after the request reached etcd: the error is a
    /// transport `Io` error naming the endpoint that says the write may have
    /// been applied, and it was.
    fn a_write_cut_mid_answer_says_it_may_have_been_applied(client, env) {
        let proxy = FaultProxy::start(&env.urls()[0]);
        let cut = fast_client(env, &[proxy.url()]);
        for (i, fault) in [Fault::CutAfterFin(20), Fault::CutAfterRst(20)].into_iter().enumerate() {
            proxy.set(fault);
            let key = format!("faults/cut/{i}");
            let error = cut.execute(Put::new(key.as_bytes(), "v")).unwrap_err();
            assert!(error.may_have_been_applied(), "{error}");
            let Error::Transport(t) = &error else { panic!("{error:?}") };
            assert_eq!(t.kind(), TransportErrorKind::Io, "{fault:?}: {error}");
            assert_eq!(t.endpoint(), proxy.url());
            let text = error.to_string();
            assert!(text.contains(&proxy.url()) && text.contains("may have reached etcd"), "{text}");
            // v2 too.
            let error = cut.set(&format!("/{key}"), "v").unwrap_err();
            assert!(error.may_have_been_applied(), "{error}");
            proxy.heal();
            assert_eq!(client.execute(Get::new(key.as_bytes())).unwrap().kvs.len(), 1, "applied");
            report(env, &format!("{fault:?} on a write"), format_args!("{error}"));
        }
    }

    /// One failure model: the same fault gives the same error kind on every
    /// transport (the table in `TransportErrorKind`'s docs).
    fn the_same_fault_is_the_same_error_kind_on_every_transport(client, env) {
        let expected = [
            (Fault::Refuse, TransportErrorKind::Connect),
            (Fault::CloseAfterRequest, TransportErrorKind::Io),
            // Closed (FIN) or reset (RST) once etcd answers, before any byte
            // of the answer: the request was sent.
            (Fault::CutAfterFin(0), TransportErrorKind::Io),
            (Fault::CutAfterRst(0), TransportErrorKind::Io),
            (Fault::CutAfterFin(10), TransportErrorKind::Io),
            (Fault::CutAfterRst(10), TransportErrorKind::Io),
            (Fault::CutAfterFin(1000), TransportErrorKind::Io),
            (Fault::CutAfterRst(1000), TransportErrorKind::Io),
            (Fault::Blackhole, TransportErrorKind::Timeout),
            (Fault::StallAfter(10), TransportErrorKind::Timeout),
        ];
        let mut seen = Vec::new();
        for (fault, want) in expected {
            let (got, text) = kind_under(env, fault);
            seen.push(format!("{fault:?} → {got:?}"));
            assert_eq!(got, Some(want), "{fault:?}: {text}; so far: {seen:?}");
        }
        // Reset at once on accept: a race, on every transport alike. An
        // RST that beats the socket's connect completion fails the connect
        // itself (nothing was written: `Connect`); one after the request was
        // written is `Io`. Either way the kind tells the truth about sending.
        let (got, text) = kind_under(env, Fault::ResetOnAccept);
        seen.push(format!("ResetOnAccept → {got:?}"));
        match got {
            Some(TransportErrorKind::Connect) => assert!(text.contains("reset"), "{text}"),
            Some(TransportErrorKind::Io) => {}
            other => panic!("ResetOnAccept: {other:?}: {text}"),
        }
        report(env, "error kinds", format_args!("{}", seen.join(", ")));
    }

    /// 100 writes whose first endpoint drops them (a blackhole: nothing
    /// arrives) or answers nothing (a stall: applied, answer lost): none is
    /// applied twice, and a write that failed says it may have been applied.
    #[cluster(3)]
    fn writes_through_a_dead_first_endpoint_are_never_applied_twice(client, env) {
        let urls = env.urls();
        let mut outcomes = Vec::new();
        for (phase, fault) in [Fault::Blackhole, Fault::StallAfter(0)].into_iter().enumerate() {
            let proxy = FaultProxy::start(&urls[0]);
            proxy.set(fault);
            let writer = fast_client(env, &[proxy.url(), urls[1].clone(), urls[2].clone()]);
            let (mut failed, mut unsure) = (0, 0);
            for i in 0..50 {
                let (v2, v3) = (format!("/faults/once/{phase}/{i}"), format!("faults/once/{phase}/{i}"));
                for result in [writer.set(&v2, "v").map(|_| ()), writer.execute(Put::new(v3.as_bytes(), "v")).map(|_| ())] {
                    if let Err(e) = result {
                        failed += 1;
                        unsure += usize::from(e.may_have_been_applied());
                    }
                }
            }
            drop(proxy);
            // Applied at most once: a key written twice would show a second
            // modification (v2) or version 2 (v3).
            for i in 0..50 {
                if let Ok(read) = client.get(&format!("/faults/once/{phase}/{i}")) {
                    assert_eq!(read.node.created_index, read.node.modified_index, "v2 key {i} applied twice");
                }
                let read = client.execute(Get::new(format!("faults/once/{phase}/{i}"))).unwrap();
                for kv in read.kvs {
                    assert_eq!(kv.version, 1, "v3 key {i} applied twice");
                }
            }
            assert!(failed <= 2, "only the first write of each API meets the dead endpoint: {failed}");
            assert_eq!(failed, unsure, "a failure after sending says it may have been applied");
            outcomes.push(format!("{fault:?}: {failed} failed (all may-have-applied), 0 applied twice"));
        }
        report(env, "100 writes, first endpoint dead", format_args!("{}", outcomes.join("; ")));
    }

    /// A v2 lock holder cut off from etcd learns it lost the lock before
    /// another client can acquire it: never two holders.
    fn a_partitioned_v2_lock_holder_learns_first(client, env) {
        let proxy = FaultProxy::start(&env.urls()[0]);
        let holder = fast_client(env, &[proxy.url()]);
        let guard = holder.acquire("faults-v2", LockOptions::new().ttl(3)).unwrap();
        let other = fast_client(env, &env.urls());
        let reason = holder_learns_first(env, &proxy, "v2", || guard.is_lost(), || {
            let options = LockOptions::new().ttl(3).timeout(Duration::from_secs(20));
            drop(other.acquire("faults-v2", options).expect("acquired once the key expired"));
        }, || guard.lost_reason());
        assert!(reason.is_some_and(|r| r.contains("TTL")), "the reason names the TTL");
        proxy.heal();
        assert_eq!(guard.release().ok(), Some(false), "the key is not ours any more");
    }

    /// The same for a v3 lock: the session reports the loss before the
    /// lease expires, and names the TTL.
    fn a_partitioned_v3_lock_holder_learns_first(client, env) {
        let proxy = FaultProxy::start(&env.urls()[0]);
        let holder = fast_client(env, &[proxy.url()]);
        let session = holder.v3_session(3).unwrap();
        let mutex = session.lock("faults-v3", MutexOptions::new()).unwrap();
        let other = fast_client(env, &env.urls());
        let reason = holder_learns_first(env, &proxy, "v3", || mutex.is_lost(), || {
            let options = MutexOptions::new().timeout(Duration::from_secs(20));
            drop(other.v3_lock("faults-v3", options).expect("acquired once the lease expired"));
        }, || session.lost_reason());
        assert!(reason.is_some_and(|r| r.contains("TTL")), "the reason names the TTL");
        proxy.heal();
    }
}

// The v3 watch's faults, also over native gRPC (where a silent stream is
// asked for progress on itself, and HTTP/2 pings watch the connection).
etcd_tests::v3_scenarios! {
    /// A v3 watch behind a connection that goes silent (a blackhole: the
    /// member is unreachable, connections hang) notices within the idle
    /// timeout, keeps re-opening, says when no member answers, and resumes
    /// after the heal from the last revision + 1: nothing lost or repeated.
    fn v3_watch_rides_out_a_blackhole(client, env) {
        v3_watch_rides_out(env, client, Fault::Blackhole, "v3-blackhole");
    }

    /// The same for a stall: the request goes through, the answer stops.
    fn v3_watch_rides_out_a_stall(client, env) {
        v3_watch_rides_out(env, client, Fault::StallAfter(0), "v3-stall");
    }

    /// A member frozen with SIGSTOP (its sockets stay open, it answers
    /// nothing): a v3 watch and a v2 watcher on it move to the healthy
    /// members and lose nothing; calls go on.
    #[cluster(3)]
    fn a_frozen_member_is_left_for_healthy_ones(client, env) {
        const N: usize = 30;
        let urls = env.urls();
        let watcher = fast_client(env, &urls);
        let healthy = fast_client(env, &[urls[1].clone(), urls[2].clone()]);
        let start = healthy.execute(Put::new("faults/frozen/start", "")).unwrap().header.revision;
        let v2_start = healthy.set("/faults/frozen/start", "").unwrap().node.modified_index;
        let v3_seen: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let v2_seen: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let frozen_at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let moved_after: Arc<Mutex<Option<Duration>>> = Arc::default();
        let calls_failed = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (seen, frozen, moved) = (v3_seen.clone(), frozen_at.clone(), moved_after.clone());
            let watch = Watch::new(KeyRange::prefix("faults/frozen/")).start_revision(start + 1);
            let watcher3 = &watcher;
            s.spawn(move || {
                watcher3.stream_until(watch, Duration::from_secs(60), |at, item| {
                    if let Ok(WatchItem::Events(batch)) = item {
                        let mut seen = seen.lock().unwrap();
                        for event in batch.events {
                            let key = String::from_utf8_lossy(&event.kv.key).into_owned();
                            *seen.entry(key).or_default() += 1;
                        }
                        if let (Some(f), mut m) = (*frozen.lock().unwrap(), moved.lock().unwrap()) {
                            m.get_or_insert(at.saturating_duration_since(f));
                        }
                        return seen.len() < N;
                    }
                    true
                });
            });
            let seen2 = v2_seen.clone();
            let watcher2 = &watcher;
            s.spawn(move || {
                let options = WatchOptions::new().recursive(true).from_index(v2_start + 1);
                let until = Instant::now() + Duration::from_secs(60);
                for item in watcher2.watch_events("/faults/frozen", options) {
                    if let Ok(WatchEvent::Changed(event)) = item {
                        let mut seen = seen2.lock().unwrap();
                        *seen.entry(event.node.key).or_default() += 1;
                        if seen.len() >= N {
                            return;
                        }
                    }
                    if Instant::now() > until {
                        return;
                    }
                }
            });
            // Let both watches open on member 0 (the pinned one) first.
            std::thread::sleep(Duration::from_millis(500));
            env.freeze_member(0);
            *frozen_at.lock().unwrap() = Some(Instant::now());
            for i in 0..N {
                let key = format!("faults/frozen/{i:03}");
                write_v3_keys(&healthy, &key, 1, |_| {});
                let v2 = format!("/faults/frozen/{i:03}");
                let until = Instant::now() + Duration::from_secs(20);
                while healthy.set(&v2, "v").is_err() {
                    assert!(Instant::now() < until, "v2 writes resume");
                    std::thread::sleep(Duration::from_millis(100));
                }
                // The watchers' own client keeps working on the others.
                if i == N / 2 && watcher.get("/faults/frozen/start").is_err() {
                    calls_failed.store(true, Ordering::SeqCst);
                }
            }
        });
        env.thaw_member(0);
        let v3 = v3_seen.lock().unwrap();
        let v2 = v2_seen.lock().unwrap();
        report(
            env,
            "member 0 frozen (SIGSTOP)",
            format_args!(
                "v3 watch {} of {N} keys ({} twice), first event {:?} after the freeze; v2 watcher {} of {N} ({} twice)",
                v3.len(),
                v3.values().filter(|n| **n > 1).count(),
                moved_after.lock().unwrap(),
                v2.len(),
                v2.values().filter(|n| **n > 1).count()
            ),
        );
        // The v3 keys are `faults/frozen/NNN000` (one key per write_v3_keys call).
        assert_eq!(v3.len(), N, "v3: {v3:?}");
        assert!(v3.values().all(|n| *n == 1), "v3: {v3:?}");
        assert_eq!(v2.len(), N, "v2: {v2:?}");
        assert!(v2.values().all(|n| *n == 1), "v2: {v2:?}");
        assert!(!calls_failed.load(Ordering::SeqCst), "calls went on");
    }
}
