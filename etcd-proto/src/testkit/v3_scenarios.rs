//! Properties of the v3 recipes on the simulated etcd, for the unit tests
//! and the fuzz targets: mutual exclusion of the lock under random
//! contention, expiries and lost answers ([`lock_contention`]), and an
//! election observer that follows every change of leadership
//! ([`observe_leaders`]). Every choice comes from a [`Tape`].

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::chance::Tape;
use super::v3::Store;
use super::world::{Actor, Driver, Fault, Faults, Unary, World};
use crate::call::Call;
use crate::error::Error;
use crate::v3::lock::{AcquireMutex, HeldMutex, MutexError, MutexOptions, ReleaseMutex};
use crate::v3::KeyValue;

/// Current believers: (key, create revision).
type Holders = Rc<RefCell<Vec<(Vec<u8>, i64)>>>;

struct Contender {
    lease: i64,
    starts: Instant,
    dies: Option<Instant>,
    hold_for: Duration,
    options: Option<MutexOptions>,
    faults: Option<Faults>,
    acquiring: Option<Driver<AcquireMutex>>,
    held: Option<(HeldMutex, Instant)>,
    releasing: Option<Driver<Unary<Call<ReleaseMutex>>>>,
    outcome: Option<Result<bool, String>>,
    holders: Holders,
    last_now: Instant,
}

fn check_exclusion(store: &Store, holders: &Holders) {
    let present = holders
        .borrow()
        .iter()
        .filter(|(key, rev)| {
            store
                .kvs
                .get(key)
                .is_some_and(|kv| kv.create_revision == *rev)
        })
        .count();
    assert!(present <= 1, "{present} holders with their keys present");
}

impl Actor for Contender {
    fn advance(&mut self, store: &mut Store, now: Instant) -> bool {
        self.last_now = now;
        if self.dies.is_none_or(|d| now < d) {
            store.keep_alive(self.lease, now);
        }
        check_exclusion(store, &self.holders);
        if now < self.starts || self.outcome.is_some() {
            return false;
        }
        let mut progressed = false;
        if let Some(options) = self.options.take() {
            let mut driver = Driver::new(AcquireMutex::new("n", self.lease, options));
            driver.pause_on_item = true;
            if let Some(faults) = self.faults.take() {
                driver.faults = faults;
            }
            self.acquiring = Some(driver);
            progressed = true;
        }
        if let Some(driver) = &mut self.acquiring {
            progressed |= driver.advance(store, now);
            if let Some(held) = driver.items.pop() {
                // The lock is ours only if our key is the oldest, and no
                // other believer's key is still there.
                let queue = store.queue(b"n/");
                assert_eq!(
                    queue.first().map(|kv| (&kv.key, kv.create_revision)),
                    Some((&held.key, held.create_revision))
                );
                self.holders
                    .borrow_mut()
                    .push((held.key.clone(), held.create_revision));
                check_exclusion(store, &self.holders);
                self.held = Some((held, now + self.hold_for));
                driver.resume();
                progressed = true;
                progressed |= driver.advance(store, now);
            }
            if let Some(result) = &driver.result {
                match result {
                    Ok(()) => assert!(self.held.is_some()),
                    Err(Error::Mutex(
                        MutexError::Busy { .. }
                        | MutexError::Timeout { .. }
                        | MutexError::SessionExpired { .. },
                    )) => {
                        self.outcome = Some(Err(result.as_ref().unwrap_err().to_string()));
                    }
                    // Every retry of a request lost its answer.
                    Err(Error::Transport(_) | Error::Unavailable(_)) => {
                        self.outcome = Some(Err(result.as_ref().unwrap_err().to_string()));
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
                self.acquiring = None;
            }
        }
        if let Some((held, until)) = &self.held {
            if self.releasing.is_none() && now >= *until {
                let key = held.key.clone();
                self.holders.borrow_mut().retain(|(k, _)| *k != key);
                self.releasing = Some(Driver::new(Unary::new(held.release())));
                progressed = true;
            }
        }
        if let Some(driver) = &mut self.releasing {
            progressed |= driver.advance(store, now);
            if driver.done() {
                self.outcome = Some(Ok(driver.items.first().copied().unwrap_or(false)));
                self.releasing = None;
                self.held = None;
            }
        }
        progressed
    }

    fn wake(&self) -> Option<Instant> {
        let keeper = self
            .dies
            .is_none_or(|d| self.last_now < d)
            .then(|| self.last_now + Duration::from_millis(700));
        let own = [
            (self.last_now < self.starts).then_some(self.starts),
            self.dies.filter(|d| *d > self.last_now),
            self.held
                .as_ref()
                .filter(|_| self.releasing.is_none())
                .map(|(_, until)| *until),
            self.acquiring.as_ref().and_then(|d| d.wake()),
            self.releasing.as_ref().and_then(|d| d.wake()),
        ];
        own.into_iter()
            .flatten()
            .chain(keeper.filter(|_| self.outcome.is_none()))
            .min()
    }
}

/// One run of 2 to 5 contenders for one lock on the simulated etcd, every
/// choice (TTLs, try-locks, deadlines, start times, holding times, deaths
/// of holders, lost answers) drawn from `tape`, then from a generator
/// seeded by it. Panics if two holders ever believe they hold the lock with
/// their keys present, if a holder's key is not the oldest, if a contender
/// never finishes, or if a live session leaves a key behind. Returns the
/// counts of outcomes: acquired, busy, timed out, session expired, failed
/// requests.
pub fn lock_contention(tape: &[u8]) -> [usize; 5] {
    let seed = tape
        .iter()
        .fold(0u64, |h, b| h.rotate_left(8) ^ u64::from(*b));
    let mut rng = Tape::steered(tape);
    let mut sim = World::new();
    let holders: Holders = Rc::default();
    let n = 2 + rng.below(4) as usize;
    let mut contenders: Vec<Contender> = (0..n)
        .map(|_| {
            let ttl = 2 + rng.below(4) as i64;
            let lease = sim.store.grant(ttl, sim.now);
            let mut options = MutexOptions::new();
            if rng.chance(20) {
                options = options.try_lock();
            }
            if rng.chance(40) {
                options = options.timeout(rng.millis(5000) + Duration::from_millis(100));
            }
            let fault_seed = rng.draw() | 1;
            let lossy = rng.chance(30);
            let mut faults = Tape::seeded(fault_seed);
            Contender {
                lease,
                starts: sim.now + rng.millis(3000),
                dies: rng.chance(20).then(|| sim.now + rng.millis(8000)),
                hold_for: rng.millis(3000),
                options: Some(options),
                faults: Some(Box::new(move |_| {
                    if lossy && faults.chance(15) {
                        Fault::LoseAnswer
                    } else {
                        Fault::None
                    }
                })),
                acquiring: None,
                held: None,
                releasing: None,
                outcome: None,
                holders: holders.clone(),
                last_now: sim.now,
            }
        })
        .collect();
    let mut actors: Vec<&mut dyn Actor> =
        contenders.iter_mut().map(|c| c as &mut dyn Actor).collect();
    sim.run_for(Duration::from_secs(120), &mut actors);
    drop(actors);
    for (i, c) in contenders.iter().enumerate() {
        assert!(
            c.outcome.is_some(),
            "seed {seed}: contender {i} never finished"
        );
    }
    // Sessions end: nothing may be left under the prefix but keys of
    // sessions still alive, and those were all released or cleaned up.
    for c in &contenders {
        if c.dies.is_none() {
            assert!(
                store_has_no_key_of(&sim.store, c.lease),
                "seed {seed}: a live session left its key behind: {:?}",
                sim.store.queue(b"n/")
            );
        }
    }
    let mut tally = [0; 5];
    for c in &contenders {
        let slot = match c.outcome.as_ref().unwrap() {
            Ok(_) => 0,
            Err(e) if e.contains("held by another") => 1,
            Err(e) if e.contains("timed out waiting") => 2,
            Err(e) if e.contains("vanished") => 3,
            Err(_) => 4,
        };
        tally[slot] += 1;
    }
    tally
}

fn store_has_no_key_of(store: &Store, lease: i64) -> bool {
    store.kvs.values().all(|kv| kv.lease != lease)
}

// ---------------------------------------------------------------------------
// The election observer's property, for the unit test and the fuzzer.

/// An election observer ([`Observe`](crate::v3::election::Observe)) following
/// changes of leadership that `tape` chooses, made straight on the
/// simulated store: candidates joining (a key under the prefix, on a lease
/// of its own), leaders proclaiming new values, keys deleted, sessions left
/// to expire, time passing. After every change, once the observer has
/// caught up: its last item is the current leader (the oldest key under the
/// prefix) with its current value, and the leaders it emits never go back
/// to an older one (create revisions never decrease). Panics otherwise.
/// Returns how many items it emitted.
pub fn observe_leaders(tape: &[u8]) -> usize {
    let mut rng = Tape::steered(tape);
    let mut sim = World::new();
    let mut observer = Driver::new(crate::v3::election::Election::new("e").observe());
    let mut leases: Vec<i64> = Vec::new();
    let (mut emitted, mut last_revision) = (0, 0);
    let mut last_seen: Option<KeyValue> = None;
    let steps = 1 + rng.below(30);
    for step in 0..steps {
        match rng.below(6) {
            0 | 1 => {
                let lease = sim.session(1 + rng.below(5) as i64);
                let key = crate::v3::lock::session_key(b"e/", lease);
                sim.store.put(&key, format!("v{step}").as_bytes(), lease);
                leases.push(lease);
            }
            2 => {
                if let Some(leader) = sim.store.queue(b"e/").first().cloned() {
                    sim.store
                        .put(&leader.key, format!("p{step}").as_bytes(), leader.lease);
                }
            }
            3 => {
                let queue = sim.store.queue(b"e/");
                if !queue.is_empty() {
                    let victim = &queue[rng.below(queue.len() as u64) as usize];
                    sim.store.delete(&victim.key);
                }
            }
            4 if !leases.is_empty() => {
                let lease = leases.swap_remove(rng.below(leases.len() as u64) as usize);
                sim.orphan(lease);
            }
            _ => {}
        }
        sim.run_for(rng.millis(4000), &mut [&mut observer]);
        sim.settle(&mut [&mut observer]);
        assert!(
            observer.result.is_none(),
            "the observer ended: {:?}",
            observer.result
        );
        for kv in observer.items.drain(..) {
            assert!(
                kv.create_revision >= last_revision,
                "step {step}: went back to an older leader ({} after {last_revision})",
                kv.create_revision
            );
            last_revision = kv.create_revision;
            emitted += 1;
            last_seen = Some(kv);
        }
        if let Some(leader) = sim.store.queue(b"e/").first() {
            assert_eq!(
                last_seen
                    .as_ref()
                    .map(|kv| (&kv.key, &kv.value, kv.create_revision)),
                Some((&leader.key, &leader.value, leader.create_revision)),
                "step {step}: the observer did not catch up with the leader"
            );
        }
    }
    emitted
}
