//! Endpoint rounds, written once for [`Call`](crate::Call) and the v3
//! [`Watch`](crate::v3::Watch): which endpoints an exchange has tried in
//! this round (starting from the pinned one), whether any of them seemed
//! alive but busy (a round of only refused connections is not worth
//! repeating), each endpoint's latest failure (what the error names when
//! every endpoint failed), and how many rounds have passed.

use crate::cluster::Cluster;
use crate::endpoint::Endpoint;
use crate::error::{Error, Unavailable};

/// One exchange's tour of the cluster; see the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Rounds {
    /// Rounds completed.
    pub(crate) round: u32,
    tried: Vec<Endpoint>,
    /// Some endpoint tried this round accepted a connection, or answered
    /// "not now" (no leader, overloaded).
    pub(crate) busy: bool,
    failures: Vec<(String, Error)>,
}

impl Rounds {
    /// The first endpoint from the pinned one not tried this round.
    pub(crate) fn next_untried(&self, cluster: &Cluster) -> Option<Endpoint> {
        let endpoints = cluster.endpoints();
        let start = endpoints
            .iter()
            .position(|e| e == cluster.pinned())
            .unwrap_or(0);
        (0..endpoints.len())
            .map(|i| &endpoints[(start + i) % endpoints.len()])
            .find(|e| !self.tried.contains(e))
            .cloned()
    }

    /// `endpoint` was tried this round.
    pub(crate) fn tried(&mut self, endpoint: &Endpoint) {
        if !self.tried.contains(endpoint) {
            self.tried.push(endpoint.clone());
        }
    }

    /// The last try does not count (a redirect followed, a request replayed
    /// after a fresh token: the same round goes on).
    pub(crate) fn untry_last(&mut self) {
        self.tried.pop();
    }

    /// Every endpoint of the cluster was tried this round.
    pub(crate) fn round_over(&self, cluster: &Cluster) -> bool {
        cluster.endpoints().iter().all(|e| self.tried.contains(e))
    }

    /// Starts the next round: every endpoint may be tried again.
    pub(crate) fn next_round(&mut self) {
        self.round += 1;
        self.tried.clear();
        self.busy = false;
    }

    /// Remembers `error` as `endpoint`'s latest failure.
    pub(crate) fn record(&mut self, endpoint: &Endpoint, error: Error) {
        let name = endpoint.as_str();
        match self.failures.iter_mut().find(|(e, _)| e == name) {
            Some(slot) => slot.1 = error,
            None => self.failures.push((name.to_owned(), error)),
        }
    }

    /// True if no failure was recorded.
    pub(crate) fn no_failures(&self) -> bool {
        self.failures.is_empty()
    }

    /// Every endpoint's latest failure, as one [`Error::Unavailable`]
    /// (taken: the next round starts with none).
    pub(crate) fn unavailable(&mut self) -> Error {
        let failures = std::mem::take(&mut self.failures);
        Error::Unavailable(Unavailable { failures })
    }

    /// The error to end with: the one failure itself if only one endpoint
    /// failed, else [`unavailable`](Self::unavailable).
    pub(crate) fn give_up(&mut self) -> Error {
        if self.failures.len() == 1 {
            return self.failures.remove(0).1;
        }
        self.unavailable()
    }
}
