//! The v2 lock recipe (`etcd_proto::v2::lock`) — `AcquireLock`, `RefreshLock`,
//! `ReleaseLock`, `CheckLock` and `KeepLock` — driven in virtual time against
//! a small in-memory model of an etcd v2 lock directory.
//!
//! The model keeps keys (values, TTLs, created/modified indexes), the etcd
//! index and the event history, and answers what the recipe sends, with the
//! body shapes of `etcd-samples-3.4.txt`: the in-order `POST` (201 `create`),
//! the sorted quorum listing (with `X-Etcd-Index`), recursive
//! `wait=true&waitIndex=N` long polls (at once from history, errorCode 401
//! once history was cleared, or parked until a matching event or the
//! request's own timeout), guarded `PUT … refresh=true` (no watcher event)
//! and `DELETE …?prevValue=` (404/100, 412/101). `now` moves only on
//! `Step::Sleep`, on parked polls and on scripted slow answers; TTLs run out
//! on that clock. Faults (lost answers, refused connections, canned answers,
//! compaction) are scripted per request. No server, no clock, no threads.
//!
//! Case counts are kept small; set `PROPTEST_CASES=2000` for a longer run.

use etcd_proto::v2::lock::uuid_from;
use etcd_proto::v2::KeepLock;
use etcd_proto::ErrorKind;
use proptest::prelude::*;

use std::time::Duration;

use etcd_proto::testkit::v2::{etcd_error, Store};
use etcd_proto::testkit::v2_lock_arena::{Arena, Plan, DIR};
use etcd_proto::testkit::{Reply, Sent, Sim, Tape};
use etcd_proto::v2::{AcquireLock, HeldLock, Hold, LockError, LockOptions};
use etcd_proto::{Error, TransportErrorKind};

const A: &str = "http://127.0.0.1:23790";

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// One endpoint, no member discovery, a store at index 11 (the first
/// write is index 12, as in the brief's example).
fn lock_sim() -> Sim<'static, Store> {
    Sim::with_model(&[A], Store::new(11))
}

/// The in-order key etcd makes at `index` in the lock directory.
fn key(index: u64) -> String {
    format!("{DIR}/{index:020}")
}

fn kinds(sent: &[Sent]) -> Vec<&'static str> {
    sent.iter().map(Sent::kind).collect()
}

fn of_kind<'a>(sent: &'a [Sent], kind: &str) -> Vec<&'a Sent> {
    sent.iter().filter(|s| s.kind() == kind).collect()
}

/// The form or query as sorted pairs, for order-free comparison.
fn sorted_pairs(pairs: &[(String, String)]) -> Vec<(String, String)> {
    let mut pairs = pairs.to_vec();
    pairs.sort();
    pairs
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    etcd_proto::testkit::sorted(pairs)
}

/// The exact form of a guarded refresh.
fn refresh_form(uuid: &str, ttl: u64) -> Vec<(String, String)> {
    owned(&[
        ("ttl", &ttl.to_string()),
        ("refresh", "true"),
        ("prevExist", "true"),
        ("prevValue", uuid),
    ])
}

fn lock_error<T: std::fmt::Debug>(result: Result<T, Error>) -> LockError {
    match result {
        Err(Error::Lock(e)) => e,
        other => panic!("expected a lock error, got {other:?}"),
    }
}

fn expired(k: &str) -> LockError {
    LockError::Expired { key: k.to_owned() }
}

/// A lock of `DIR` as this test file's flows hold it.
fn held(k: &str, uuid: &str, index: u64, ttl: u64) -> HeldLock {
    HeldLock {
        path: DIR.to_owned(),
        key: k.to_owned(),
        uuid: uuid.to_owned(),
        index,
        ttl,
        hold: Hold::KeepAlive,
    }
}

/// Removes a key from the model, `true` if it was there.
type Remove = fn(&mut Store, &str) -> bool;

/// The three ways a key leaves the directory, as etcd reports them.
const GONE: [(&str, Remove); 3] = [
    ("delete", Store::delete),
    ("expire", Store::expire),
    ("compareAndDelete", Store::compare_and_delete),
];

// ---------------------------------------------------------------------------
// 1. uncontended acquisition

#[test]
fn uncontended_acquisition_appends_our_uuid_then_lists_once() {
    let mut sim = lock_sim();
    let mut flow = AcquireLock::new("n", LockOptions::new(), 2);
    let uuid = flow.uuid().to_owned();
    assert_eq!(flow.path(), DIR);
    let lock = sim
        .run(&mut flow)
        .unwrap()
        .expect("an uncontended lock is held");

    assert_eq!(kinds(&sim.sent), ["POST", "LIST"]);
    let post = &sim.sent[0];
    assert_eq!(post.uri, format!("{A}/v2/keys/_locks/n"));
    assert_eq!(
        post.form,
        [("value".into(), uuid.clone()), ("ttl".into(), "60".into())]
    );
    assert_eq!(
        post.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    let list = &sim.sent[1];
    assert_eq!(
        list.uri,
        format!("{A}/v2/keys/_locks/n?sorted=true&quorum=true")
    );
    assert!(list.form.is_empty());

    assert_eq!(lock, held(&key(12), &uuid, 12, 60));
    assert_eq!(lock.refresh_interval(), secs(20));
    assert_eq!(sim.elapsed(), Duration::ZERO);
    assert_eq!(sim.model.value(&key(12)), Some(uuid.as_str()));
    assert_eq!(sim.model.keys[&key(12)].expires, Some(secs(60)));
}

#[test]
fn options_shape_the_path_and_ttl() {
    let mut sim = lock_sim();
    let mut flow = AcquireLock::new("/jobs", LockOptions::new().prefix("/locks/").ttl(0), 3);
    assert_eq!(flow.path(), "/locks/jobs");
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(sim.sent[0].uri, format!("{A}/v2/keys/locks/jobs"));
    assert_eq!(
        sim.sent[0].field("ttl"),
        Some("1"),
        "the TTL is at least 1 s"
    );
    assert_eq!(lock.key, format!("/locks/jobs/{:020}", 12));
    assert_eq!(lock.ttl, 1);
    assert_eq!(lock.refresh_interval(), millis(333));
    assert_eq!(LockOptions::new().ttl(7).ttl_seconds(), 7);
    assert_eq!(LockOptions::new().hold_mode(), Hold::KeepAlive);
}

#[test]
fn every_acquisition_queues_with_a_fresh_uuid() {
    let a = AcquireLock::new("n", LockOptions::new(), 4);
    let b = AcquireLock::new("n", LockOptions::new(), 5);
    assert_ne!(a.uuid(), b.uuid());
    for uuid in [a.uuid().to_owned(), uuid_from(0xfeed)] {
        assert_eq!(uuid.len(), 32, "{uuid}");
        assert!(uuid
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}

#[test]
fn a_hard_maximum_lock_refreshes_once_at_acquisition() {
    let mut sim = lock_sim();
    // The listing is answered 5 s late: the TTL must count from acquisition.
    sim.hook(|sent, _| match sent.kind() {
        "LIST" => Reply::Slow(secs(5)),
        _ => Reply::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(30).hold(Hold::MaxTtl), 6);
    let uuid = flow.uuid().to_owned();
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "PUT"]);
    let put = &sim.sent[2];
    assert_eq!(
        put.uri,
        format!("{A}/v2/keys{}", key(12)),
        "no query: {}",
        put.uri
    );
    assert_eq!(sorted_pairs(&put.form), refresh_form(&uuid, 30));
    assert_eq!(put.at, secs(5));
    assert_eq!(sim.model.keys[&key(12)].expires, Some(secs(35)));
    assert_eq!(
        lock,
        HeldLock {
            hold: Hold::MaxTtl,
            ..held(&key(12), &uuid, 12, 30)
        }
    );
}

#[test]
fn a_hard_maximum_refresh_that_finds_the_key_gone_is_expired() {
    for (code, status) in [(100, 404), (101, 412)] {
        let mut sim = lock_sim();
        sim.hook(move |sent, model| match sent.kind() {
            "PUT" => Reply::Answer(
                Duration::ZERO,
                etcd_error(status, code, "gone", &sent.key, model.index),
            ),
            _ => Reply::Serve,
        });
        let mut flow = AcquireLock::new("n", LockOptions::new().hold(Hold::MaxTtl), 7);
        assert_eq!(lock_error(sim.run(&mut flow)), expired(&key(12)));
        assert_eq!(
            kinds(&sim.sent),
            ["POST", "LIST", "PUT"],
            "no cleanup of a lost key"
        );
    }
}

// ---------------------------------------------------------------------------
// 2. contended acquisition

#[test]
fn a_waiter_watches_from_the_listing_and_only_its_predecessor_leaving_counts() {
    for (action, gone) in GONE {
        let mut sim = lock_sim();
        let pred = sim.model.append(DIR, "other", Some(60)); // 12
        let p = pred.clone();
        sim.at(secs(1), |m| m.set(&format!("{DIR}/sub/x"), "1")); // 14: under the directory
        sim.at(secs(2), |m| m.set("/elsewhere", "1")); // 15: not under it, never delivered
        sim.at(secs(3), |m| {
            m.append(DIR, "late", Some(60)); // 16: a later key
        });
        sim.at(secs(4), |m| {
            m.delete(&key(16)); // 17: a later key leaving
        });
        sim.at(secs(5), move |m| m.set(&p, "changed")); // 18: the predecessor, not gone
        let p = pred.clone();
        sim.at(secs(6), move |m| {
            assert!(gone(m, &p)); // 19
        });
        let mut flow = AcquireLock::new("n", LockOptions::new(), 8);
        let uuid = flow.uuid().to_owned();
        let lock = sim.run(&mut flow).unwrap().expect("acquired");
        assert_eq!(lock, held(&key(13), &uuid, 13, 60), "{action}");
        assert_eq!(
            kinds(&sim.sent),
            ["POST", "LIST", "POLL", "POLL", "POLL", "POLL", "POLL", "LIST"],
            "{action}"
        );
        let polls = of_kind(&sim.sent, "POLL");
        let from: Vec<u64> = polls.iter().map(|p| p.wait_index().unwrap()).collect();
        // The listing said X-Etcd-Index 13; then each event's index + 1.
        assert_eq!(from, [14, 15, 17, 18, 19], "{action}");
        assert_eq!(
            polls[0].uri,
            format!("{A}/v2/keys/_locks/n?wait=true&recursive=true&waitIndex=14")
        );
        for poll in &polls {
            // Every wait lasts the idle timeout (10 s), which ends it before
            // the first refresh (a third of 60 s).
            assert_eq!(poll.timeout, Some(secs(10)), "{poll:?}");
        }
        assert_eq!(
            sim.sent[7].at,
            secs(6),
            "re-listed when the predecessor left"
        );
        assert_eq!(sim.elapsed(), secs(6));
    }
}

#[test]
fn in_a_three_deep_queue_only_the_direct_predecessor_matters() {
    // The first in line leaves first: nothing to do yet.
    let mut sim = lock_sim();
    let first = sim.model.append(DIR, "first", Some(60)); // 12
    let second = sim.model.append(DIR, "second", Some(60)); // 13
    sim.at(secs(1), move |m| {
        m.delete(&first); // 15
    });
    sim.at(secs(2), move |m| {
        m.delete(&second); // 16
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 9);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(14));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "POLL", "LIST"]);
    assert_eq!(sim.sent[4].at, secs(2));

    // The direct predecessor leaves first: re-list, then wait for the first.
    let mut sim = lock_sim();
    let first = sim.model.append(DIR, "first", Some(60)); // 12
    let second = sim.model.append(DIR, "second", Some(60)); // 13
    sim.at(secs(1), move |m| {
        m.delete(&second); // 15
    });
    sim.at(secs(2), move |m| {
        m.expire(&first); // 16
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 10);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(14));
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "LIST", "POLL", "LIST"]
    );
    let polls = of_kind(&sim.sent, "POLL");
    assert_eq!(polls[0].wait_index().unwrap(), 15);
    assert_eq!(
        polls[1].wait_index().unwrap(),
        16,
        "from the second listing's index + 1"
    );
    assert_eq!(polls[1].at, secs(1));
    assert_eq!(sim.elapsed(), secs(2));
}

// ---------------------------------------------------------------------------
// 3. our own key vanishing

#[test]
fn our_key_vanishing_while_waiting_is_expired_at_once() {
    for (action, gone) in GONE {
        let mut sim = lock_sim();
        sim.model.append(DIR, "other", Some(60)); // 12
        sim.at(secs(1), move |m| {
            assert!(gone(m, &key(13)));
        });
        let mut flow = AcquireLock::new("n", LockOptions::new(), 11);
        assert_eq!(
            lock_error(sim.run(&mut flow)),
            expired(&key(13)),
            "{action}"
        );
        // No listing, and no cleanup of a key that is gone.
        assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL"], "{action}");
        assert_eq!(sim.elapsed(), secs(1));
    }
}

#[test]
fn our_key_missing_from_a_listing_is_expired() {
    let mut sim = lock_sim();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    sim.at(secs(1), move |m| {
        m.delete(&pred); // 14: the poll wakes on this
        m.expire(&key(13)); // 15: gone before the listing
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 12);
    assert_eq!(lock_error(sim.run(&mut flow)), expired(&key(13)));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "LIST"]);
}

/// `CheckLock` holds a lock only while its first key *holds our uuid*;
/// `AcquireLock` matches our key by name alone. A key whose value was
/// replaced while we waited is acquired as ours when it comes first, so
/// the flow hands out a lock that `check()` at once says is not held (and
/// that `release()` cannot release).
#[test]
fn a_key_overwritten_while_waiting_is_not_acquired() {
    let mut sim = lock_sim();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    sim.at(millis(1_500), |m| m.set(&key(13), "thief")); // not ours any more
    sim.at(millis(1_700), move |m| {
        m.delete(&pred);
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 13);
    let result = sim.run(&mut flow);
    if let Ok(Some(lock)) = &result {
        assert!(
            sim.run(&mut lock.check()).unwrap(),
            "acquired {lock:?}, but the key holds {:?}",
            sim.model.value(&lock.key)
        );
    }
    assert_eq!(lock_error(result), expired(&key(13)));
}

// ---------------------------------------------------------------------------
// 4. refreshes while waiting

#[test]
fn a_waiting_key_is_refreshed_every_third_of_its_ttl() {
    let mut sim = lock_sim();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    sim.at(millis(10_500), move |m| {
        m.delete(&pred);
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3), 14);
    let uuid = flow.uuid().to_owned();
    let lock = sim.run(&mut flow).unwrap().expect("acquired after 10.5 s");
    assert_eq!(lock.index, 13);
    let puts = of_kind(&sim.sent, "PUT");
    let at: Vec<Duration> = puts.iter().map(|p| p.at).collect();
    assert_eq!(at, (1..=10).map(secs).collect::<Vec<_>>());
    for put in &puts {
        assert_eq!(put.uri, format!("{A}/v2/keys{}", key(13)));
        assert_eq!(sorted_pairs(&put.form), refresh_form(&uuid, 3));
    }
    // Every wait ends by the next refresh; refreshes wake no watcher, so the
    // watch goes on from the same index.
    let polls = of_kind(&sim.sent, "POLL");
    assert_eq!(polls.len(), 11);
    for poll in &polls {
        assert_eq!(poll.wait_index().unwrap(), 14);
        let next_second = secs(poll.at.as_secs() + 1);
        assert!(poll.ends().unwrap() <= next_second, "{poll:?}");
    }
    assert_eq!(sim.sent.last().unwrap().kind(), "LIST");
    assert_eq!(sim.elapsed(), millis(10_500));
    // Without the refreshes it would have expired at 3 s.
    assert_eq!(sim.model.keys[&key(13)].expires, Some(secs(13)));
    assert!(sim.model.natural_expiries.is_empty());
}

#[test]
fn a_refresh_finding_our_key_replaced_is_expired() {
    let mut sim = lock_sim();
    sim.model.append(DIR, "other", Some(60)); // 12
    sim.at(millis(1_500), |m| m.set(&key(13), "thief")); // 15, after the refresh at 1 s (14)
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3), 15);
    assert_eq!(lock_error(sim.run(&mut flow)), expired(&key(13)));
    // The set is an event on our key, but not its end: skipped; the next
    // refresh (412, errorCode 101) tells. The key is not ours: no cleanup.
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "PUT", "POLL", "POLL", "PUT"]
    );
    assert_eq!(sim.sent[6].at, secs(2));
    assert_eq!(sim.model.value(&key(13)), Some("thief"));
}

#[test]
fn a_refresh_finding_our_key_gone_is_expired() {
    let mut sim = lock_sim();
    sim.model.append(DIR, "other", Some(60)); // 12
    let mut puts = 0;
    sim.hook(move |sent, model| {
        if sent.kind() == "PUT" {
            puts += 1;
            if puts == 2 {
                return Reply::Answer(
                    Duration::ZERO,
                    etcd_error(404, 100, "Key not found", &sent.key, model.index),
                );
            }
        }
        Reply::Serve
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3), 16);
    assert_eq!(lock_error(sim.run(&mut flow)), expired(&key(13)));
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "PUT", "POLL", "PUT"]
    );
    assert_eq!(sim.elapsed(), secs(2));
}

#[test]
fn an_acquisition_failing_for_another_reason_removes_its_key() {
    // The one endpoint refuses the refresh: the flow gives up with that error,
    // deleting its key (guarded by its uuid) on the way out.
    let mut sim = lock_sim();
    sim.model.append(DIR, "other", Some(60)); // 12
    let mut refused = false;
    sim.hook(move |sent, _| match sent.kind() {
        "PUT" if !refused => {
            refused = true;
            Reply::lost(false, TransportErrorKind::Connect)
        }
        _ => Reply::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3), 17);
    let uuid = flow.uuid().to_owned();
    let error = sim.run(&mut flow).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:?}");
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "PUT", "DELETE"]);
    let delete = &sim.sent[4];
    assert_eq!(delete.param("prevValue"), Some(uuid.as_str()));
    assert!(sim.model.holding(&uuid).is_empty());

    // So does a watch that fails outright.
    let mut sim = lock_sim();
    sim.model.append(DIR, "other", Some(60));
    sim.hook(|sent, _| match sent.kind() {
        "POLL" => Reply::lost(false, TransportErrorKind::Connect),
        _ => Reply::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 18);
    let uuid = flow.uuid().to_owned();
    assert_eq!(sim.run(&mut flow).unwrap_err().kind(), ErrorKind::Transport);
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "DELETE"]);
    assert!(sim.model.holding(&uuid).is_empty());
}

// ---------------------------------------------------------------------------
// 5. the deadline

#[test]
fn at_the_deadline_our_key_is_deleted_and_the_wait_times_out() {
    let mut sim = lock_sim();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12, never leaves
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3).timeout(millis(2_500)), 19);
    let uuid = flow.uuid().to_owned();
    assert_eq!(
        lock_error(sim.run(&mut flow)),
        LockError::TimedOut { path: DIR.into() }
    );
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "PUT", "POLL", "PUT", "POLL", "DELETE"]
    );
    let (cleanup, before) = sim.sent.split_last().unwrap();
    assert_eq!(cleanup.at, millis(2_500));
    assert_eq!(
        cleanup.uri,
        format!("{A}/v2/keys{}?prevValue={uuid}", key(13))
    );
    for sent in before {
        assert!(sent.at < millis(2_500), "{sent:?}");
    }
    for poll in of_kind(&sim.sent, "POLL") {
        assert!(poll.ends().unwrap() <= millis(2_500), "{poll:?}");
    }
    assert_eq!(sim.elapsed(), millis(2_500));
    assert!(sim.model.holding(&uuid).is_empty());
    assert_eq!(sim.model.queue(DIR), [pred]);
}

#[test]
fn a_deadline_without_refreshes_due_cuts_the_wait_short() {
    let mut sim = lock_sim();
    sim.model.append(DIR, "other", Some(60));
    let mut flow = AcquireLock::new("n", LockOptions::new().timeout(millis(700)), 20);
    assert!(matches!(
        lock_error(sim.run(&mut flow)),
        LockError::TimedOut { .. }
    ));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "DELETE"]);
    assert_eq!(sim.sent[2].ends(), Some(millis(700)));
    assert_eq!(sim.sent[3].at, millis(700));
}

/// The deadline is meant to bound the whole acquisition, and a waiter that
/// times out sends nothing but its cleanup after it. But `AcquireLock` runs
/// its append, listing and refresh `Call`s without `Call::with_deadline`:
/// each gets the request timeout (5 s, a third of it per attempt), so a slow
/// append overruns a 1 s deadline, and the flow then lists and appends again
/// after it, never reporting `TimedOut`.
#[test]
fn a_hanging_append_does_not_outlive_the_deadline() {
    let mut sim = lock_sim();
    sim.hook(|sent, _| match sent.kind() {
        "POST" => Reply::hang(false),
        _ => Reply::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().timeout(secs(1)), 21);
    let result = sim.run(&mut flow);
    for sent in &sim.sent {
        if sent.at < secs(1) {
            assert!(
                sent.ends().unwrap() <= secs(1),
                "waits past the deadline: {sent:?}"
            );
        } else {
            // Only cleanup: finding a key the append may have made, deleting it.
            assert!(
                ["LIST", "DELETE"].contains(&sent.kind()),
                "sent after the deadline: {sent:?}"
            );
        }
    }
    assert!(matches!(lock_error(result), LockError::TimedOut { .. }));
}

/// The same with a refresh that hangs while waiting.
#[test]
fn a_hanging_refresh_does_not_outlive_the_deadline() {
    let mut sim = lock_sim();
    sim.model.append(DIR, "other", Some(60));
    sim.hook(|sent, _| match sent.kind() {
        "PUT" => Reply::hang(false),
        _ => Reply::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().ttl(3).timeout(millis(2_500)), 22);
    let result = sim.run(&mut flow);
    for sent in &sim.sent {
        assert!(
            sent.at <= millis(2_500)
                && (sent.kind() == "DELETE" || sent.ends().unwrap() <= millis(2_500)),
            "past the deadline: {sent:?}"
        );
    }
    assert!(matches!(lock_error(result), LockError::TimedOut { .. }));
}

// ---------------------------------------------------------------------------
// 6. non-blocking attempts

#[test]
fn a_non_blocking_attempt_on_a_held_lock_removes_its_key_and_returns_none() {
    let mut sim = lock_sim();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    let mut flow = AcquireLock::new("n", LockOptions::new().blocking(false), 23);
    let uuid = flow.uuid().to_owned();
    assert_eq!(sim.run(&mut flow).unwrap(), None);
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "DELETE"]);
    assert_eq!(
        sim.sent[2].uri,
        format!("{A}/v2/keys{}?prevValue={uuid}", key(13))
    );
    assert_eq!(sim.model.queue(DIR), [pred]);
    assert_eq!(sim.elapsed(), Duration::ZERO);
}

#[test]
fn a_non_blocking_attempt_on_a_free_lock_holds_it() {
    let mut sim = lock_sim();
    let mut flow = AcquireLock::new("n", LockOptions::new().blocking(false), 24);
    let lock = sim.run(&mut flow).unwrap().expect("free");
    assert_eq!(lock.key, key(12));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST"]);
}

// ---------------------------------------------------------------------------
// 7. history cleared while waiting

#[test]
fn history_cleared_while_waiting_resyncs_into_a_fresh_listing() {
    let mut sim = lock_sim();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    let mut polls = 0;
    sim.hook(move |sent, model| {
        if sent.kind() == "POLL" {
            polls += 1;
            if polls == 1 {
                for i in 0..3 {
                    model.set(&format!("/busy/{i}"), "x"); // 14, 15, 16
                }
                model.clear_history();
            }
        }
        Reply::Serve
    });
    sim.at(secs(1), move |m| {
        m.delete(&pred); // 17
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 25);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(13));
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POLL", "RESYNC", "LIST", "POLL", "LIST"]
    );
    assert_eq!(
        sim.sent[3].uri,
        format!("{A}/v2/keys/_locks/n?recursive=true&sorted=true&quorum=true")
    );
    let polls = of_kind(&sim.sent, "POLL");
    assert_eq!(polls[0].wait_index().unwrap(), 14);
    assert_eq!(
        polls[1].wait_index().unwrap(),
        17,
        "from the fresh listing's index + 1"
    );
    assert_eq!(sim.sent[6].at, secs(1));
}

#[test]
fn a_predecessor_leaving_in_the_compacted_window_is_not_missed() {
    let mut sim = lock_sim();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    let mut polls = 0;
    sim.hook(move |sent, model| {
        if sent.kind() == "POLL" {
            polls += 1;
            assert_eq!(polls, 1, "no second poll: the lock is free");
            model.delete(&pred); // 14, compacted away below
            model.clear_history();
        }
        Reply::Serve
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 26);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(13));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "RESYNC", "LIST"]);
}

// ---------------------------------------------------------------------------
// 8. lost append answers

#[test]
fn a_lost_append_answer_is_found_by_uuid_and_not_appended_again() {
    for fault in ["io", "hang"] {
        let mut sim = lock_sim();
        let mut first = true;
        sim.hook(move |sent, _| match sent.kind() {
            "POST" if first => {
                first = false;
                match fault {
                    "io" => Reply::lost(true, TransportErrorKind::Io),
                    _ => Reply::hang(true),
                }
            }
            _ => Reply::Serve,
        });
        let mut flow = AcquireLock::new("n", LockOptions::new(), 27);
        let uuid = flow.uuid().to_owned();
        let lock = sim.run(&mut flow).unwrap().expect("held");
        assert_eq!(lock, held(&key(12), &uuid, 12, 60), "{fault}");
        assert_eq!(kinds(&sim.sent), ["POST", "LIST"], "{fault}");
        assert_eq!(sim.model.holding(&uuid), [key(12)]);
    }
}

#[test]
fn a_lost_append_answer_behind_a_holder_still_waits_its_turn() {
    let mut sim = lock_sim();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    let mut first = true;
    sim.hook(move |sent, _| match sent.kind() {
        "POST" if first => {
            first = false;
            Reply::lost(true, TransportErrorKind::Io)
        }
        _ => Reply::Serve,
    });
    sim.at(secs(1), move |m| {
        m.delete(&pred);
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 28);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!((lock.key.as_str(), lock.index), (key(13).as_str(), 13));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POLL", "LIST"]);
}

#[test]
fn an_append_that_never_happened_is_made_again_a_few_times_at_most() {
    // Once.
    let mut sim = lock_sim();
    let mut first = true;
    sim.hook(move |sent, _| match sent.kind() {
        "POST" if first => {
            first = false;
            Reply::lost(false, TransportErrorKind::Io)
        }
        _ => Reply::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 29);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock.key, key(12));
    assert_eq!(kinds(&sim.sent), ["POST", "LIST", "POST", "LIST"]);

    // Always: three appends, each answer looked for by uuid, then the error;
    // nothing left behind.
    let mut sim = lock_sim();
    sim.hook(|sent, _| match sent.kind() {
        "POST" => Reply::lost(false, TransportErrorKind::Io),
        _ => Reply::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 30);
    let error = sim.run(&mut flow).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error:?}");
    assert_eq!(
        kinds(&sim.sent),
        ["POST", "LIST", "POST", "LIST", "POST", "LIST"]
    );
    assert!(sim.model.keys.is_empty());
}

/// The module docs promise that a lost append answer is looked for before
/// anything else happens. After the third append, though, a lost answer ends
/// the flow with the transport error at once: no listing, no cleanup, so a
/// key that append did make stays queued — and blocks every later contender —
/// until its TTL runs out.
#[test]
fn a_lost_answer_to_the_last_append_leaves_nothing_behind() {
    let mut sim = lock_sim();
    let mut posts = 0;
    sim.hook(move |sent, _| match sent.kind() {
        "POST" => {
            posts += 1;
            Reply::lost(posts == 3, TransportErrorKind::Io)
        }
        _ => Reply::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 31);
    let uuid = flow.uuid().to_owned();
    let result = sim.run(&mut flow);
    assert!(
        sim.model.holding(&uuid).is_empty() || matches!(result, Ok(Some(_))),
        "{result:?} left {:?} queued; sent {:?}",
        sim.model.holding(&uuid),
        kinds(&sim.sent)
    );
}

/// The same for an append etcd answers with 500 "etcdserver: request timed
/// out": the proposal may still be committed (here it was), but the flow
/// treats the answer as final and returns it without a listing, so the key
/// it made stays queued until its TTL runs out.
#[test]
fn an_append_that_timed_out_in_raft_leaves_nothing_behind() {
    let mut sim = lock_sim();
    let mut first = true;
    sim.hook(move |sent, model| match sent.kind() {
        "POST" if first => {
            first = false;
            let _ = model.serve(sent);
            let cause = "etcdserver: request timed out";
            Reply::Answer(
                Duration::ZERO,
                etcd_error(500, 300, "Raft Internal Error", cause, 0),
            )
        }
        _ => Reply::Serve,
    });
    let mut flow = AcquireLock::new("n", LockOptions::new(), 32);
    let uuid = flow.uuid().to_owned();
    let result = sim.run(&mut flow);
    assert!(
        sim.model.holding(&uuid).is_empty() || matches!(result, Ok(Some(_))),
        "{result:?} left {:?} queued; sent {:?}",
        sim.model.holding(&uuid),
        kinds(&sim.sent)
    );
}

// ---------------------------------------------------------------------------
// 9. adopting a lock after a restart

#[test]
fn adopting_finds_the_key_by_uuid_without_appending() {
    let mut sim = lock_sim();
    let mine = sim.model.append(DIR, "u-1", Some(60)); // 12
    let mut flow = AcquireLock::new("n", LockOptions::new().adopt("u-1"), 33);
    assert_eq!(flow.uuid(), "u-1");
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!(lock, held(&mine, "u-1", 12, 60));
    assert_eq!(kinds(&sim.sent), ["LIST"]);
}

#[test]
fn adopting_a_key_that_is_not_first_waits_for_it() {
    let mut sim = lock_sim();
    let pred = sim.model.append(DIR, "other", Some(60)); // 12
    sim.model.append(DIR, "u-1", Some(60)); // 13
    sim.at(secs(1), move |m| {
        m.delete(&pred);
    });
    let mut flow = AcquireLock::new("n", LockOptions::new().adopt("u-1"), 34);
    let lock = sim.run(&mut flow).unwrap().unwrap();
    assert_eq!((lock.key.as_str(), lock.index), (key(13).as_str(), 13));
    assert_eq!(kinds(&sim.sent), ["LIST", "POLL", "LIST"]);
}

#[test]
fn adopting_a_missing_key_is_not_found_without_appending() {
    // Another key in the directory.
    let mut sim = lock_sim();
    sim.model.append(DIR, "other", Some(60));
    let mut flow = AcquireLock::new("n", LockOptions::new().adopt("u-1"), 35);
    assert_eq!(
        lock_error(sim.run(&mut flow)),
        LockError::NotFound { uuid: "u-1".into() }
    );
    assert_eq!(kinds(&sim.sent), ["LIST"]);
    assert_eq!(sim.model.keys.len(), 1);

    // No directory at all (404).
    let mut sim = lock_sim();
    let mut flow = AcquireLock::new("n", LockOptions::new().adopt("u-1"), 36);
    assert!(matches!(
        lock_error(sim.run(&mut flow)),
        LockError::NotFound { .. }
    ));
    assert_eq!(kinds(&sim.sent), ["LIST"]);
    assert!(sim.model.keys.is_empty());
}

// ---------------------------------------------------------------------------
// 10. release, check, refresh

#[test]
fn release_deletes_only_our_key() {
    // A uuid that needs escaping, to be sure the guard is sent intact.
    let uuid = "u 1/&=+";
    let mut sim = lock_sim();
    let mine = sim.model.append(DIR, uuid, Some(60)); // 12
    let theirs = sim.model.append(DIR, "other", Some(60)); // 13
    let lock = held(&mine, uuid, 12, 60);
    assert!(sim.run(&mut lock.release()).unwrap());
    let delete = &sim.sent[0];
    assert_eq!(delete.method, http::Method::DELETE);
    assert_eq!(
        delete.uri,
        format!("{A}/v2/keys{mine}?prevValue=u%201%2F%26%3D%2B")
    );
    assert_eq!(delete.param("prevValue"), Some(uuid));
    assert!(delete.form.is_empty());
    assert_eq!(sim.model.queue(DIR), [theirs.as_str()]);

    // Already gone: 404, errorCode 100.
    assert!(!sim.run(&mut lock.release()).unwrap());
    // Not ours: 412, errorCode 101; the key stays.
    assert!(!sim.run(&mut held(&theirs, uuid, 13, 60).release()).unwrap());
    assert_eq!(sim.model.queue(DIR), [theirs]);
    assert_eq!(kinds(&sim.sent), ["DELETE", "DELETE", "DELETE"]);
}

#[test]
fn check_is_true_only_while_our_key_is_first_and_ours() {
    let mut sim = lock_sim();
    let first = sim.model.append(DIR, "u-1", Some(60)); // 12
    let second = sim.model.append(DIR, "u-2", Some(60)); // 13
    let one = held(&first, "u-1", 12, 60);
    let two = held(&second, "u-2", 13, 60);
    assert!(sim.run(&mut one.check()).unwrap());
    assert!(!sim.run(&mut two.check()).unwrap(), "not first");
    assert_eq!(
        sim.sent[0].uri,
        format!("{A}/v2/keys/_locks/n?sorted=true&quorum=true")
    );
    sim.model.delete(&first);
    assert!(!sim.run(&mut one.check()).unwrap(), "gone");
    assert!(sim.run(&mut two.check()).unwrap(), "first now");
    sim.model.set(&second, "u-3");
    assert!(!sim.run(&mut two.check()).unwrap(), "first, but not ours");
    let elsewhere = HeldLock {
        path: "/_locks/none".into(),
        ..one.clone()
    };
    assert!(!sim.run(&mut elsewhere.check()).unwrap(), "no directory");
    assert_eq!(kinds(&sim.sent), ["LIST"; 6]);
    assert_eq!(sim.model.keys.len(), 1, "a check changes nothing");
}

#[test]
fn refresh_sends_a_guarded_ttl_only_form() {
    let mut sim = lock_sim();
    let mine = sim.model.append(DIR, "u-1", Some(5)); // 12
    let lock = held(&mine, "u-1", 12, 5);
    sim.advance(sim.now + secs(4));
    sim.run(&mut lock.refresh()).unwrap();
    let put = &sim.sent[0];
    assert_eq!(put.method, http::Method::PUT);
    assert_eq!(
        put.uri,
        format!("{A}/v2/keys{mine}"),
        "everything in the form"
    );
    assert_eq!(
        put.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(sorted_pairs(&put.form), refresh_form("u-1", 5));
    assert_eq!(put.field("value"), None);
    assert_eq!(sim.model.keys[&mine].expires, Some(secs(9)));
    assert_eq!(sim.model.keys[&mine].modified, 13);

    // Replaced: 412, errorCode 101.
    sim.model.set(&mine, "u-2");
    assert_eq!(lock_error(sim.run(&mut lock.refresh())), expired(&mine));
    // Gone: 404, errorCode 100.
    sim.model.delete(&mine);
    assert_eq!(lock_error(sim.run(&mut lock.refresh())), expired(&mine));
}

#[test]
fn release_and_refresh_are_retried_after_a_lost_answer() {
    // Guarded by the uuid, both are safe to send twice.
    let mut sim = lock_sim();
    let mine = sim.model.append(DIR, "u-1", Some(5));
    let lock = held(&mine, "u-1", 12, 5);
    let mut calls = 0;
    sim.hook(move |_, _| {
        calls += 1;
        if calls % 2 == 1 {
            Reply::lost(true, TransportErrorKind::Io)
        } else {
            Reply::Serve
        }
    });
    sim.run(&mut lock.refresh()).unwrap();
    assert_eq!(kinds(&sim.sent), ["PUT", "PUT"]);
    // The retried delete finds nothing: it says so.
    assert!(!sim.run(&mut lock.release()).unwrap());
    assert_eq!(kinds(&sim.sent), ["PUT", "PUT", "DELETE", "DELETE"]);
    assert!(sim.model.keys.is_empty());
}

// ---------------------------------------------------------------------------
// 11. the keeper

fn keeper_sim(ttl: u64) -> (Sim<'static, Store>, HeldLock) {
    let mut sim = lock_sim();
    let mine = sim.model.append(DIR, "u-1", Some(ttl));
    (sim, held(&mine, "u-1", 12, ttl))
}

#[test]
fn the_keeper_refreshes_every_third_of_the_ttl_until_stopped() {
    let (mut sim, lock) = keeper_sim(3);
    sim.stop_at(millis(3_550));
    sim.run(&mut KeepLock::new(lock.clone())).unwrap();
    let puts = of_kind(&sim.sent, "PUT");
    let at: Vec<Duration> = puts.iter().map(|p| p.at).collect();
    assert_eq!(at, [secs(1), secs(2), secs(3)]);
    for put in &puts {
        assert_eq!(sorted_pairs(&put.form), refresh_form("u-1", 3));
    }
    // It wakes only to refresh, or when stopped: no flag to look at.
    let slept: Vec<_> = sim.sleeps.iter().map(|(at, _)| *at).collect();
    assert_eq!(slept, [Duration::ZERO, secs(1), secs(2), secs(3)]);
    assert_eq!(sim.elapsed(), millis(3_550), "the stop woke it at once");
    assert!(
        sim.model.keys.contains_key(&lock.key),
        "kept alive past its TTL"
    );
}

#[test]
fn a_keeper_stopped_before_it_starts_sends_nothing() {
    let (mut sim, lock) = keeper_sim(3);
    sim.stop_at(Duration::ZERO);
    sim.run(&mut KeepLock::new(lock)).unwrap();
    assert!(sim.sent.is_empty());
    assert_eq!(sim.elapsed(), Duration::ZERO);
}

#[test]
fn the_keeper_ends_with_expired_when_the_key_is_lost() {
    for replaced in [false, true] {
        let (mut sim, lock) = keeper_sim(3);
        let k = lock.key.clone();
        sim.at(millis(1_500), move |m| {
            if replaced {
                m.set(&k, "thief");
            } else {
                m.delete(&k);
            }
        });
        let result = sim.run(&mut KeepLock::new(lock.clone()));
        assert_eq!(
            lock_error(result),
            expired(&lock.key),
            "replaced: {replaced}"
        );
        assert_eq!(kinds(&sim.sent), ["PUT", "PUT"]);
        assert_eq!(sim.elapsed(), secs(2));
    }
}

#[test]
fn the_keeper_keeps_going_after_a_transport_failure() {
    let (mut sim, lock) = keeper_sim(3);
    let mut first = true;
    sim.hook(move |sent, _| match sent.kind() {
        "PUT" if first => {
            first = false;
            Reply::lost(false, TransportErrorKind::Connect)
        }
        _ => Reply::Serve,
    });
    sim.stop_at(millis(2_550));
    sim.run(&mut KeepLock::new(lock.clone())).unwrap();
    let at: Vec<Duration> = sim.sent.iter().map(|p| p.at).collect();
    assert_eq!(
        at,
        [secs(1), millis(1_500), millis(2_500)],
        "the failed refresh is retried 500 ms later, not at once; the next one TTL/3 after it"
    );
    assert_eq!(sim.model.keys[&lock.key].expires, Some(millis(5_500)));
}

/// A holder that cannot refresh (a partition: every refresh hangs) ends
/// with the TTL named in its error before etcd can expire the key, so it
/// learns of the loss before anyone else can take the lock.
#[test]
fn a_keeper_that_cannot_refresh_reports_the_loss_before_the_key_expires() {
    let (mut sim, lock) = keeper_sim(3);
    sim.hook(|_, _| Reply::hang(false));
    let error = sim.run(&mut KeepLock::new(lock.clone())).unwrap_err();
    let Error::TtlExpired(expired) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(expired.ttl, secs(3));
    assert!(expired.what.contains(&lock.key), "{error}");
    assert!(
        expired.last_error.is_some(),
        "the last failure is its source: {error}"
    );
    // The key was last written at 0 s (the acquisition), so etcd expires it
    // at 3 s at the earliest; the keeper gave up before, by its margin.
    let expires = sim.model.keys[&lock.key].expires.unwrap();
    assert!(
        sim.elapsed() < expires,
        "{:?} before {expires:?}",
        sim.elapsed()
    );
    assert!(
        sim.elapsed() >= millis(1_700),
        "not before it had to: {:?}",
        sim.elapsed()
    );
    // Every refresh tried ended by the validity.
    for put in of_kind(&sim.sent, "PUT") {
        assert!(put.at + put.timeout.unwrap() <= sim.elapsed(), "{put:?}");
    }
}

/// A refresh that got through moves the validity to its send time + TTL.
#[test]
fn a_refresh_that_got_through_extends_the_validity_from_when_it_was_sent() {
    let (mut sim, lock) = keeper_sim(3);
    let mut n = 0;
    sim.hook(move |sent, _| {
        if sent.kind() == "PUT" {
            n += 1;
            if n > 1 {
                return Reply::hang(false);
            }
        }
        Reply::Serve
    });
    let error = sim.run(&mut KeepLock::new(lock.clone())).unwrap_err();
    assert!(matches!(error, Error::TtlExpired(_)), "{error:?}");
    // The one refresh, sent at 1 s, keeps the key until 4 s; the keeper
    // gives up 300 ms (a tenth of the TTL) before.
    assert_eq!(sim.model.keys[&lock.key].expires, Some(secs(4)));
    assert_eq!(sim.elapsed(), millis(3_700));
}

/// A stop while a failing refresh is being retried (the refresh call sleeps
/// between its attempts) ends the keeper then, not after the retries.
#[test]
fn a_stopped_keeper_does_not_keep_retrying_a_failing_refresh() {
    let (mut sim, lock) = keeper_sim(3);
    sim.hook(|_, _| Reply::lost(false, TransportErrorKind::Io));
    sim.stop_at(millis(1_200));
    sim.run(&mut KeepLock::new(lock)).unwrap();
    assert_eq!(sim.elapsed(), millis(1_200), "stopped at once");
}

// ---------------------------------------------------------------------------
// 12. several contenders against one model

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        prop::bool::weighted(0.8),
        prop::option::weighted(0.4, 300u64..15_000),
        any::<bool>(),
        1u64..=5,
        0u64..3_000,
    )
        .prop_map(|(blocking, timeout, max, ttl, start)| Plan {
            blocking,
            timeout: timeout.map(millis),
            max,
            ttl,
            start: millis(start),
        })
}

proptest! {
    #![proptest_config(config(512))]

    /// Contenders driven round-robin against one model, with random TTL
    /// expiries, third-party deletions and writes, compactions and transient
    /// transport failures: at most one holds the lock at any time, every one
    /// ends, and none that failed, timed out or found the lock busy leaves a
    /// key behind.
    #[test]
    fn contenders_exclude_each_other_and_clean_up(
        plans in prop::collection::vec(plan(), 2..=6),
        tape in prop::collection::vec(any::<u16>(), 0..2_000),
        fault_percent in 0u64..=20,
        disturb_percent in 0u64..=15,
    ) {
        let mut arena = Arena::new(plans, Tape::quiet(tape.into_iter().map(u64::from)), fault_percent, disturb_percent);
        arena.run();
    }
}

/// The arena itself: quiet runs end with every contender served in turn.
#[test]
fn contenders_without_disturbance_take_turns() {
    let plans = (0..4)
        .map(|i| Plan {
            blocking: true,
            timeout: None,
            max: i % 2 == 0,
            ttl: 2,
            start: millis(i * 10),
        })
        .collect();
    let mut arena = Arena::new(plans, Tape::quiet([]), 0, 0);
    arena.run();
    assert_eq!(arena.outcomes, ["held"; 4]);
}
