//! Leader election: Go's `concurrency.Election`, on the [lock recipe](super::lock).
//!
//! # Theory of operation
//!
//! An election named `n` is a lock under `n/` whose keys hold the
//! candidates' values: the oldest key (lowest `create_revision`) is the
//! leader, and its value is what the leader proclaims. Go's `Election`,
//! `etcdctl elect` and etcd's own election service use the same keys.
//!
//! - [`Election::campaign`] queues a key holding our value and waits to
//!   become leader ([`Campaign`], the lock's [`AcquireMutex`] with a value:
//!   the same deadline, try and cleanup rules). A session whose key already
//!   exists with another value proclaims ours on it first, as Go does.
//! - [`Leadership::proclaim`] sets a new value on our key, only while the
//!   key is still this campaign's ([`MutexError::NotHeld`](super::MutexError::NotHeld) otherwise).
//! - [`Leadership::resign`] deletes our key the same guarded way: the next
//!   candidate becomes leader.
//! - [`Election::leader`] reads the current leader's key and value, if any.
//! - [`Election::observe`] ([`Observe`]) emits the leader's key-value each
//!   time it changes: a new leader, or a new value proclaimed. It reads the
//!   leader, watches its key (puts: new values; its delete: read again),
//!   and with no leader watches the prefix for the first candidate's put.

use std::collections::VecDeque;
use std::time::Instant;

use super::kv::Get;
use super::lock::{
    lock_prefix, owner_get, AcquireMutex, CheckOwner, GuardedPut, HeldMutex, MutexOptions,
    ReleaseMutex,
};
use super::types::{KeyRange, KeyValue, ResponseHeader};
use super::unary::Derived;
use super::watch::{EventKind, Watch, WatchItem};
use super::{Compare, CompareOp, RangeResponse};
use crate::call::Call;
use crate::cluster::Cluster;
use crate::error::Error;
use crate::flow::{Flow, Input, StreamFlow, StreamStep};
use crate::operation::Replay;

/// An election: its keys live under `<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Election {
    prefix: Vec<u8>,
}

impl Election {
    /// The election `name` (keys under `<name>/`).
    pub fn new(name: impl Into<Vec<u8>>) -> Self {
        Election {
            prefix: lock_prefix(name),
        }
    }

    /// The prefix, `<name>/`.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Campaigns for leadership with `value`, for the session `lease`: the
    /// flow emits the [`Leadership`] once we lead. `options` give the
    /// deadline, try (one look: [`MutexError::Busy`](super::MutexError::Busy) if another leads) and
    /// the hold mode, as for a lock.
    pub fn campaign(
        &self,
        lease: i64,
        value: impl Into<Vec<u8>>,
        options: MutexOptions,
    ) -> Campaign {
        Campaign(AcquireMutex::with_prefix(
            self.prefix.clone(),
            lease,
            value.into(),
            true,
            options,
        ))
    }

    /// The flow that reads the current leader (`None`: nobody campaigns).
    pub fn leader(&self) -> Call<GetLeader> {
        Call::new(GetLeader::new(self.prefix.clone()))
    }

    /// The stream flow that emits the leader each time it changes.
    pub fn observe(&self) -> Observe {
        Observe::new(self.prefix.clone())
    }
}

/// Leadership this session holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// The election's prefix, `<name>/`.
    pub prefix: Vec<u8>,
    /// Our key, `<name>/<lease hex>`.
    pub key: Vec<u8>,
    /// The value our key holds (what we proclaimed last).
    pub value: Vec<u8>,
    /// Our key's `create_revision`: a fencing token for this term.
    pub create_revision: i64,
    /// The session lease our key is attached to.
    pub lease: i64,
    /// The header of the read that made us leader.
    pub header: ResponseHeader,
}

impl Leadership {
    fn from_held(held: HeldMutex, value: Vec<u8>) -> Self {
        Leadership {
            prefix: held.prefix,
            key: held.key,
            value,
            create_revision: held.create_revision,
            lease: held.lease,
            header: held.header,
        }
    }

    /// The flow that sets a new value on our key, only while it is still
    /// this campaign's ([`MutexError::NotHeld`](super::MutexError::NotHeld) otherwise). Returns the
    /// write's header; keep `value` up to date yourself (the guards do).
    pub fn proclaim(&self, value: impl Into<Vec<u8>>) -> Call<GuardedPut> {
        Call::new(GuardedPut::new(
            self.key.clone(),
            self.create_revision,
            value.into(),
            self.lease,
        ))
    }

    /// The flow that resigns: deletes our key only while it is still this
    /// campaign's. `Ok(false)`: it was already gone.
    pub fn resign(&self) -> Call<ReleaseMutex> {
        Call::new(ReleaseMutex::new(self.key.clone(), self.create_revision))
    }

    /// The flow that asks whether we still lead.
    pub fn check(&self) -> Call<CheckOwner> {
        Call::new(CheckOwner::new(
            self.prefix.clone(),
            self.key.clone(),
            self.create_revision,
        ))
    }

    /// A compare that holds only while we still lead (to write as leader only).
    pub fn owner_compare(&self) -> Compare {
        Compare::create_revision(self.key.clone(), CompareOp::Equal, self.create_revision)
    }
}

/// One campaign: a [`StreamFlow`] that emits the [`Leadership`] once we
/// lead, then ends; see [`Election::campaign`] and the lock's
/// [`AcquireMutex`] for its rules.
#[derive(Debug)]
pub struct Campaign(AcquireMutex);

impl Campaign {
    /// Our key.
    pub fn key(&self) -> &[u8] {
        self.0.key()
    }

    /// The election's prefix.
    pub fn prefix(&self) -> &[u8] {
        self.0.prefix()
    }
}

impl StreamFlow for Campaign {
    type Item = Leadership;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> StreamStep<Leadership> {
        match self.0.poll(cluster, now).pass_on() {
            Ok(step) => step,
            Err(StreamStep::Emit(held)) => {
                StreamStep::Emit(Leadership::from_held(held, self.0.value().to_vec()))
            }
            Err(StreamStep::End(result)) => StreamStep::End(result),
            Err(_) => StreamStep::End(Err(crate::error::UsageError::FlowOutOfOrder {
                expected: "an Emit or End from pass_on",
            }
            .into())),
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        self.0.handle(cluster, now, input);
    }
}

/// Reads an election's leader: its prefix's oldest key. `None`: no leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetLeader {
    prefix: Vec<u8>,
}

impl GetLeader {
    /// The leader of the election whose prefix is `prefix` (`<name>/`).
    pub fn new(prefix: Vec<u8>) -> Self {
        GetLeader { prefix }
    }
}

impl Derived for GetLeader {
    type Base = Get;
    type Output = Option<KeyValue>;

    fn base(&self) -> Get {
        owner_get(&self.prefix)
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn finish(&self, response: super::RangeResponse) -> Result<Option<KeyValue>, Error> {
        Ok(response.kvs.into_iter().next())
    }
}

#[derive(Debug)]
enum ObserveStage {
    /// Reading the leader.
    Reading(Box<Call<Get>>),
    /// No leader: waiting for the first candidate's put on the prefix.
    Waiting(Box<Watch>),
    /// Following the leader's key: puts are new values, its delete ends the term.
    Following(Box<Watch>),
    Done(Option<Result<(), Error>>),
}

/// Observes an election: a [`StreamFlow`] emitting the leader's key-value
/// each time it changes (a new leader, or a value proclaimed). It never ends
/// by itself except with an error (a failed read, a watch that gave up);
/// drop it to stop.
#[derive(Debug)]
pub struct Observe {
    prefix: Vec<u8>,
    stage: ObserveStage,
    queue: VecDeque<KeyValue>,
    /// The last emitted leader key and its mod revision.
    last: Option<(Vec<u8>, i64)>,
}

impl Observe {
    /// Observes the election whose prefix is `prefix` (`<name>/`).
    pub fn new(prefix: Vec<u8>) -> Self {
        let stage = ObserveStage::Reading(Box::new(Call::new(owner_get(&prefix))));
        Observe {
            prefix,
            stage,
            queue: VecDeque::new(),
            last: None,
        }
    }

    fn read(&self) -> ObserveStage {
        ObserveStage::Reading(Box::new(Call::new(owner_get(&self.prefix))))
    }

    /// Queues `kv` unless it was the last one emitted.
    fn leader(&mut self, kv: KeyValue) {
        let id = (kv.key.clone(), kv.mod_revision);
        if self.last.as_ref() != Some(&id) {
            self.last = Some(id);
            self.queue.push_back(kv);
        }
    }

    fn follow(&mut self, kv: KeyValue) -> ObserveStage {
        let watch = Watch::new(kv.key.clone()).start_revision(kv.mod_revision + 1);
        self.leader(kv);
        ObserveStage::Following(Box::new(watch))
    }

    fn after_read(&mut self, result: Result<RangeResponse, Error>) -> ObserveStage {
        match result {
            Ok(range) => {
                let revision = range.header.revision;
                match range.kvs.into_iter().next() {
                    Some(kv) => self.follow(kv),
                    None => ObserveStage::Waiting(Box::new(
                        Watch::new(KeyRange::prefix(self.prefix.clone()))
                            .start_revision(revision + 1)
                            .no_delete(),
                    )),
                }
            }
            Err(e) => ObserveStage::Done(Some(Err(e))),
        }
    }
}

impl StreamFlow for Observe {
    type Item = KeyValue;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> StreamStep<KeyValue> {
        loop {
            if let Some(kv) = self.queue.pop_front() {
                return StreamStep::Emit(kv);
            }
            let next = match &mut self.stage {
                ObserveStage::Reading(call) => match StreamStep::from_flow(call.poll(cluster, now))
                {
                    Ok(result) => self.after_read(result),
                    Err(step) => return step,
                },
                ObserveStage::Waiting(watch) => match watch.poll(cluster, now) {
                    StreamStep::Emit(WatchItem::Events(batch)) => {
                        let first = batch.events.into_iter().find(|e| e.kind == EventKind::Put);
                        match first {
                            Some(event) => self.follow(event.kv),
                            None => continue,
                        }
                    }
                    StreamStep::Emit(WatchItem::Compacted { .. }) | StreamStep::End(Ok(())) => {
                        self.read()
                    }
                    StreamStep::Emit(_) => continue,
                    StreamStep::End(Err(e)) => ObserveStage::Done(Some(Err(e))),
                    step => match step.pass_on() {
                        Ok(step) => return step,
                        Err(_) => continue,
                    },
                },
                ObserveStage::Following(watch) => match watch.poll(cluster, now) {
                    StreamStep::Emit(WatchItem::Events(batch)) => {
                        let mut deleted = false;
                        for event in batch.events {
                            match event.kind {
                                EventKind::Put => self.leader(event.kv),
                                EventKind::Delete => {
                                    deleted = true;
                                    break;
                                }
                            }
                        }
                        if deleted {
                            self.read()
                        } else {
                            continue;
                        }
                    }
                    StreamStep::Emit(WatchItem::Compacted { .. }) | StreamStep::End(Ok(())) => {
                        self.read()
                    }
                    StreamStep::Emit(_) => continue,
                    StreamStep::End(Err(e)) => ObserveStage::Done(Some(Err(e))),
                    step => match step.pass_on() {
                        Ok(step) => return step,
                        Err(_) => continue,
                    },
                },
                ObserveStage::Done(result) => return crate::flow::stream_finished(result),
            };
            self.stage = next;
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match (input, &mut self.stage) {
            // Observing runs until told: stopped, it ends cleanly.
            (Input::Stop, _) => self.stage = ObserveStage::Done(Some(Ok(()))),
            (input, ObserveStage::Reading(call)) => call.handle(cluster, now, input),
            (input, ObserveStage::Waiting(w) | ObserveStage::Following(w)) => {
                w.handle(cluster, now, input)
            }
            (_, ObserveStage::Done(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::lock::{session_key, MutexError};
    use super::*;
    use crate::testkit::world::{Driver, Unary, World};

    fn campaign(lease: i64, value: &str) -> Driver<Campaign> {
        Driver::new(Election::new("e").campaign(lease, value, MutexOptions::new()))
    }

    fn leader(sim: &mut World) -> Option<KeyValue> {
        let mut d = Driver::new(Unary::new(Election::new("e").leader()));
        sim.settle(&mut [&mut d]);
        d.items.pop().expect("an answer")
    }

    fn values(observed: &[KeyValue]) -> Vec<String> {
        observed
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
            .collect()
    }

    #[test]
    fn campaign_leads_proclaims_and_resigns() {
        let mut sim = World::new();
        let (la, lb) = (sim.session(10), sim.session(10));
        assert_eq!(leader(&mut sim), None);
        let mut a = campaign(la, "alpha");
        sim.settle(&mut [&mut a]);
        assert!(matches!(a.result, Some(Ok(()))), "{:?}", a.result);
        let lead = a.items.pop().unwrap();
        assert_eq!(
            (lead.key.as_slice(), lead.value.as_slice()),
            (session_key(b"e/", la).as_slice(), &b"alpha"[..])
        );
        assert_eq!(leader(&mut sim).unwrap().value, b"alpha");

        let mut b = campaign(lb, "beta");
        sim.run_for(Duration::from_secs(5), &mut [&mut b]);
        assert!(!b.done(), "B waits while A leads");

        let mut p = Driver::new(Unary::new(lead.proclaim("alpha-2")));
        sim.settle(&mut [&mut p]);
        assert!(matches!(p.result, Some(Ok(()))), "{:?}", p.result);
        let kv = leader(&mut sim).unwrap();
        assert_eq!(
            (kv.value.as_slice(), kv.create_revision),
            (&b"alpha-2"[..], lead.create_revision)
        );
        assert!(!b.done(), "a proclaim is a put: B still waits");

        let mut r = Driver::new(Unary::new(lead.resign()));
        sim.settle(&mut [&mut r, &mut b]);
        assert_eq!(r.items, [true]);
        assert!(matches!(b.result, Some(Ok(()))), "{:?}", b.result);
        assert_eq!(b.items[0].value, b"beta");
        assert_eq!(leader(&mut sim).unwrap().value, b"beta");

        // A's leadership is over: its guarded writes fail or find nothing.
        let mut p = Driver::new(Unary::new(lead.proclaim("late")));
        sim.settle(&mut [&mut p]);
        assert!(
            matches!(p.error(), Some(Error::Mutex(MutexError::NotHeld { .. }))),
            "{:?}",
            p.result
        );
        let mut r = Driver::new(Unary::new(lead.resign()));
        sim.settle(&mut [&mut r]);
        assert_eq!(r.items, [false]);
        assert_eq!(leader(&mut sim).unwrap().value, b"beta");
    }

    #[test]
    fn a_session_that_campaigned_before_proclaims_its_new_value() {
        let mut sim = World::new();
        let la = sim.session(10);
        let key = session_key(b"e/", la);
        sim.store.put(&key, b"old", la);
        let created = sim.store.kvs[&key].create_revision;
        let mut a = campaign(la, "new");
        sim.settle(&mut [&mut a]);
        assert!(matches!(a.result, Some(Ok(()))), "{:?}", a.result);
        assert_eq!(a.paths()[..2], ["/v3/kv/txn", "/v3/kv/txn"]);
        let lead = &a.items[0];
        assert_eq!(
            (lead.create_revision, lead.value.as_slice()),
            (created, &b"new"[..])
        );
        assert_eq!(sim.store.kvs[&key].value, b"new");
    }

    #[test]
    fn a_try_campaign_against_a_leader_is_busy() {
        let mut sim = World::new();
        let (la, lb) = (sim.session(10), sim.session(10));
        let mut a = campaign(la, "a");
        sim.settle(&mut [&mut a]);
        let mut b =
            Driver::new(Election::new("e").campaign(lb, "b", MutexOptions::new().try_lock()));
        sim.settle(&mut [&mut b]);
        assert!(
            matches!(b.error(), Some(Error::Mutex(MutexError::Busy { .. }))),
            "{:?}",
            b.result
        );
        assert_eq!(sim.store.queue(b"e/").len(), 1);
    }

    #[test]
    fn observe_keeps_up_with_random_changes_of_leadership() {
        let mut emitted = 0;
        for seed in 0u64..200 {
            let tape = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes();
            emitted += crate::testkit::v3_scenarios::observe_leaders(&tape);
        }
        assert!(emitted > 200, "the runs change leaders: {emitted}");
    }

    #[test]
    fn observe_follows_every_change_of_leader_and_value() {
        let mut sim = World::new();
        let (la, lb) = (sim.session(10), sim.session(3));
        let mut o = Driver::new(Election::new("e").observe());
        sim.run_for(Duration::from_secs(1), &mut [&mut o]);
        assert!(o.items.is_empty(), "no leader yet");
        assert!(o.watching());

        let mut a = campaign(la, "a1");
        let mut b = campaign(lb, "b1");
        sim.settle(&mut [&mut a, &mut o]);
        sim.settle(&mut [&mut b, &mut o]);
        let lead = a.items.pop().unwrap();
        assert_eq!(values(&o.items), ["a1"]);

        let mut p = Driver::new(Unary::new(lead.proclaim("a2")));
        sim.settle(&mut [&mut p, &mut o]);
        assert_eq!(values(&o.items), ["a1", "a2"]);

        // Unrelated writes under the prefix and B's queueing change nothing.
        sim.store.put(b"e/zz", b"noise", 0);
        sim.store.delete(b"e/zz");
        sim.settle(&mut [&mut o]);
        assert_eq!(values(&o.items), ["a1", "a2"]);

        let mut r = Driver::new(Unary::new(lead.resign()));
        sim.settle(&mut [&mut r, &mut b, &mut o]);
        assert_eq!(values(&o.items), ["a1", "a2", "b1"]);
        assert_eq!(o.items[2].key, session_key(b"e/", lb));

        // B's session expires: no leader; the next campaigner is observed.
        sim.orphan(lb);
        sim.run_for(Duration::from_secs(5), &mut [&mut o]);
        assert!(sim.store.queue(b"e/").is_empty());
        let mut c = campaign(la, "c1");
        sim.settle(&mut [&mut c, &mut o]);
        assert_eq!(values(&o.items), ["a1", "a2", "b1", "c1"]);
        assert!(!o.done(), "observing never ends by itself");
    }
}
