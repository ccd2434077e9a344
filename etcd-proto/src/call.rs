//! [`Call`]: the flow that runs one [`Operation`], failing over between endpoints.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::endpoint::Endpoint;
use crate::error::{
    ClusterMismatch, Error, MalformedResponse, TransportError, TransportErrorKind, UsageError,
};
use crate::flow::{Flow, Input, Step, Transmit};
use crate::operation::{Api, Operation, Replay, Wait};
use crate::rounds::Rounds;
use crate::v2::Members;
use crate::v3::{Authenticate, MemberList, V3ErrorKind};

/// Rounds over every endpoint a call makes when it has no deadline.
const MAX_ROUNDS_WITHOUT_DEADLINE: u32 = 3;
/// Redirects followed at most per call.
const MAX_REDIRECTS: u32 = 3;
/// One attempt of an ordinary request gets this share of the request timeout…
const ATTEMPT_SHARE: u32 = 3;
/// …but never less than this (or what is left, if less).
const MIN_ATTEMPT: Duration = Duration::from_millis(500);
/// v3 token fetches at most per call: the first, and one after a rejection.
const MAX_LOGINS: u32 = 2;

/// The flow that runs one [`Operation`]: build, send, parse, failing over
/// between endpoints.
///
/// # Failover rules
///
/// - The first attempt goes to the pinned endpoint, later ones to each other
///   endpoint in turn. A success re-pins to the endpoint that answered.
/// - A transport failure or a 5xx answer counts against the endpoint.
/// - An operation that is not safe to replay ([`Replay::AtMostOnce`]: every
///   write but a v2 refresh, since applying one twice shows as two index
///   steps and two watch events) is tried on another endpoint only if the
///   request certainly never left (no connection was made). Otherwise its
///   first failure is returned as is: it may have taken effect
///   ([`Error::may_have_been_applied`]).
/// - When every endpoint failed and at least one of them seemed alive but busy
///   (a timeout, a broken connection, an election in progress), another round
///   starts after a short backoff. If every endpoint refused connections, the
///   call fails at once with [`Error::Unavailable`], naming each endpoint.
/// - **The whole call, every attempt included, ends by the request timeout**
///   (or the operation's own long-poll deadline). While another endpoint is
///   left to try this round, one attempt of an ordinary request gets at most
///   a third of the request timeout (at least 500 ms): a write sent during a
///   leader election is dropped by raft and would hang until etcd's own 7 s
///   timeout, so the call gives up on that attempt early enough to try
///   again once there is a leader. **With nowhere else to go** (a single
///   endpoint, or every other one refused a connection during the call)
///   **an attempt gets all the time that remains**, so a slow but healthy
///   member answering in 0.7× the timeout still succeeds. Without any
///   deadline, a call makes at most three rounds.
/// - A member-list refresh the [`Cluster`] asks for runs first, as one
///   `GET /v2/members` (v2 calls) or `POST /v3/cluster/member/list` (v3
///   calls), capped like an attempt. Its failure counts against the member
///   that failed it (which the call then skips this round) and is named in
///   the call's error if the call fails; an error never names an endpoint
///   that was not contacted.
/// - Answers whose `X-Etcd-Cluster-Id` is not the expected one fail with
///   [`Error::ClusterMismatch`]. Redirects are followed only when allowed and
///   only when they keep the request's path and query.
/// - **v3 auth:** with credentials set and no token yet, a v3 call first
///   authenticates; a request refused with `invalid auth token`,
///   `revision of auth store is old` or `user name is empty` is replayed
///   once after a fresh token (it took no effect, so even a write may be).
///   A wrong password ends the call with that error.
///
/// # States
///
/// ```text
///             ┌──────────── response / failure ─────────────┐
///             ▼                                             │
///  new ──▶ Ready ──member list due──▶ Syncing ──────────────┤
///          │  ▲  ──v3 token needed──▶ LoggingIn ────────────┤ (wrong password: Finished)
///          │  │  ──attempt─────────▶ InFlight ──────────────┘ retry elsewhere, redirect,
///          │  │                        │                      stale token
///          │  └─ at `until` ─ Backoff ◀┤ round exhausted, time left
///          │                           │
///          └──▶ Finished ◀─────────────┘ answered; or given up (deadline,
///               (result once)            a write that may have applied)
/// ```
#[derive(Debug)]
pub struct Call<O: Operation> {
    op: O,
    state: State<O::Output>,
    deadline: Option<Instant>,
    deadline_cap: Option<Instant>,
    attempt_cap: Option<Duration>,
    started: bool,
    rounds: Rounds,
    /// Endpoints that refused a connection during this call.
    refused: Vec<Endpoint>,
    redirect: Option<Endpoint>,
    redirects: u32,
    logins: u32,
    replayed_for_token: bool,
}

#[derive(Debug)]
enum State<T> {
    Ready,
    Syncing(Endpoint),
    LoggingIn(Endpoint),
    InFlight(Endpoint),
    Backoff(Instant),
    Finished(Option<Result<T, Error>>),
}

impl<O: Operation> Call<O> {
    /// A call that will run `op`.
    pub fn new(op: O) -> Self {
        Call {
            op,
            state: State::Ready,
            deadline: None,
            deadline_cap: None,
            attempt_cap: None,
            started: false,
            rounds: Rounds::default(),
            refused: Vec::new(),
            redirect: None,
            redirects: 0,
            logins: 0,
            replayed_for_token: false,
        }
    }

    /// Ends the call by `deadline` at the latest, whatever its own timeout
    /// (a step of a longer flow with a deadline of its own).
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline_cap = deadline;
        self
    }

    fn finish(&mut self, result: Result<O::Output, Error>) {
        self.state = State::Finished(Some(result));
    }

    /// After a failure: try elsewhere if that is safe, else stop with `error`.
    fn after_failure(&mut self, endpoint: &Endpoint, error: Error, may_have_taken_effect: bool) {
        if may_have_taken_effect && self.op.replay() == Replay::AtMostOnce {
            self.finish(Err(error));
        } else {
            self.rounds.record(endpoint, error);
            self.state = State::Ready;
        }
    }

    fn next_endpoint(&self, cluster: &Cluster) -> Option<Endpoint> {
        if let Some(target) = &self.redirect {
            return Some(target.clone());
        }
        self.rounds.next_untried(cluster)
    }

    /// What is left of the call's time.
    fn timeout(&self, now: Instant) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since(now))
    }

    /// The timeout of an attempt on `endpoint`: capped while any other
    /// endpoint may still answer (it has not refused a connection during
    /// this call), so that an attempt lost in a leader election leaves time
    /// to try again once there is a leader; the whole remaining budget when
    /// there is nowhere else to go (a single endpoint, or all others
    /// refused), so that a slow but healthy member still answers in time.
    fn attempt_timeout(
        &self,
        cluster: &Cluster,
        endpoint: &Endpoint,
        now: Instant,
    ) -> Option<Duration> {
        let elsewhere = cluster
            .endpoints()
            .iter()
            .any(|e| e != endpoint && !self.refused.contains(e));
        match (self.timeout(now), self.attempt_cap) {
            (Some(left), Some(cap)) if elsewhere => Some(left.min(cap)),
            (left, _) => left,
        }
    }

    fn out_of_time(&self, now: Instant) -> bool {
        match self.deadline {
            Some(deadline) => now >= deadline,
            None => self.rounds.round + 1 >= MAX_ROUNDS_WITHOUT_DEADLINE,
        }
    }

    fn with_auth(
        cluster: &Cluster,
        api: Api,
        mut request: http::Request<Bytes>,
    ) -> http::Request<Bytes> {
        cluster.authorize(api, &mut request);
        request
    }

    /// The token fetch to send before the operation, if it needs one.
    fn login(&mut self, cluster: &Cluster) -> Option<Authenticate> {
        if self.op.api() != Api::V3 || self.logins >= MAX_LOGINS {
            return None;
        }
        let login = crate::v3::auth::token_fetch(cluster)?;
        self.logins += 1;
        Some(login)
    }

    /// The token fetch failed on `endpoint` without an answer from etcd's auth.
    fn login_failed(&mut self, cluster: &mut Cluster, endpoint: Endpoint, error: Error) {
        cluster.endpoint_failed(&endpoint);
        self.rounds.record(&endpoint, error);
        self.rounds.tried(&endpoint);
        self.state = State::Ready;
    }

    /// Starts the next attempt, a backoff, or the end.
    fn start_attempt(&mut self, cluster: &mut Cluster, now: Instant) -> Option<Step<O::Output>> {
        if self.deadline.is_some_and(|d| now >= d) {
            // No time left: never send a request with a zero timeout.
            if self.rounds.no_failures() {
                let error = TransportError::new(
                    cluster.pinned().as_str(),
                    TransportErrorKind::Timeout,
                    "the deadline passed before any request was sent",
                );
                self.rounds.record(&cluster.pinned().clone(), error.into());
            }
            let error = self.rounds.give_up();
            self.finish(Err(error));
            return None;
        }
        if cluster.member_sync_due(now) && self.redirect.is_none() {
            cluster.member_sync_attempted(now);
            let endpoint = cluster.pinned().clone();
            // v3 calls sync through the v3 member list: a v3-only server
            // (no --enable-v2, or etcd 3.6) has no /v2/members.
            let sync = match self.op.api() {
                Api::V2 => Members.build(&cluster.target_on(&endpoint)),
                Api::V3 | Api::V3Login => MemberList.build(&cluster.target_on(&endpoint)),
            };
            if let Ok(request) = sync {
                let request = Self::with_auth(cluster, self.op.api(), request);
                // Capped like an attempt (a long poll's by the request
                // timeout): a dead pinned member must not use up the call's
                // budget before the call itself is sent.
                let cap = self.attempt_cap.unwrap_or(cluster.probe_timeout());
                let timeout = Some(self.timeout(now).map_or(cap, |left| left.min(cap)));
                self.state = State::Syncing(endpoint);
                return Some(Step::Transmit(Transmit { request, timeout }));
            }
        }
        let Some(endpoint) = self.next_endpoint(cluster) else {
            // Every endpoint failed this round.
            if self.rounds.busy && !self.out_of_time(now) {
                let backoff = Duration::from_millis(50 << self.rounds.round.min(4));
                let until = now + backoff;
                if self.deadline.is_none_or(|d| until < d) {
                    self.state = State::Backoff(until);
                    return None;
                }
            }
            let error = self.rounds.give_up();
            self.finish(Err(error));
            return None;
        };
        if let Some(login) = self.login(cluster) {
            let request = match login.build(&cluster.target_on(&endpoint)) {
                Ok(request) => request,
                Err(e) => {
                    self.finish(Err(e.into()));
                    return None;
                }
            };
            let timeout = self.attempt_timeout(cluster, &endpoint, now);
            self.state = State::LoggingIn(endpoint);
            return Some(Step::Transmit(Transmit { request, timeout }));
        }
        let request = match self.op.build(&cluster.target_on(&endpoint)) {
            Ok(request) => Self::with_auth(cluster, self.op.api(), request),
            Err(e) => {
                self.finish(Err(e.into()));
                return None;
            }
        };
        self.redirect = None;
        let timeout = self.attempt_timeout(cluster, &endpoint, now);
        self.rounds.tried(&endpoint);
        self.state = State::InFlight(endpoint);
        Some(Step::Transmit(Transmit { request, timeout }))
    }

    /// The redirect target, if `response` is a redirect this call may follow.
    fn redirect_target(
        &self,
        cluster: &Cluster,
        sent_to: &Endpoint,
        response: &http::Response<Bytes>,
    ) -> Option<Endpoint> {
        if !response.status().is_redirection()
            || !cluster.allow_redirect()
            || self.redirects >= MAX_REDIRECTS
        {
            return None;
        }
        let location: http::Uri = response
            .headers()
            .get(http::header::LOCATION)?
            .to_str()
            .ok()?
            .parse()
            .ok()?;
        let original = self.op.build(&cluster.target_on(sent_to)).ok()?;
        let same_path = location.path_and_query().map(|p| p.as_str())
            == original.uri().path_and_query().map(|p| p.as_str());
        if !same_path {
            return None;
        }
        let (scheme, authority) = (location.scheme_str()?, location.authority()?);
        // The endpoint's base path is part of the request path: keep it.
        Endpoint::parse(&format!("{scheme}://{authority}{}", sent_to.base_path())).ok()
    }
}

impl<O: Operation> Flow for Call<O> {
    type Output = O::Output;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<O::Output> {
        if !self.started {
            self.started = true;
            (self.deadline, self.attempt_cap) = match self.op.wait() {
                Wait::Request => (
                    cluster.request_timeout().map(|t| now + t),
                    cluster
                        .request_timeout()
                        .map(|t| (t / ATTEMPT_SHARE).max(MIN_ATTEMPT)),
                ),
                Wait::LongPoll(deadline) => (deadline, None),
                Wait::LongPollFor(wait) => (Some(now + wait), None),
            };
            if let Some(cap) = self.deadline_cap {
                self.deadline = Some(self.deadline.map_or(cap, |d| d.min(cap)));
            }
        }
        loop {
            match &mut self.state {
                State::Finished(result) => return crate::flow::finished(result),
                State::InFlight(_) | State::Syncing(_) | State::LoggingIn(_) => {
                    return Step::Done(Err(UsageError::FlowOutOfOrder {
                        expected: "the outcome of the last transmit",
                    }
                    .into()))
                }
                State::Backoff(until) => {
                    if now < *until {
                        return Step::Sleep(*until);
                    }
                    self.state = State::Ready;
                    self.rounds.next_round();
                }
                State::Ready => {
                    if let Some(step) = self.start_attempt(cluster, now) {
                        return step;
                    }
                }
            }
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match input {
            Input::Response(response) => self.on_response(cluster, response),
            Input::Failure(failure) => self.on_failure(cluster, now, failure.kind, failure.source),
            Input::Stop => self.finish(crate::flow::stopped()),
            // A call never opens a stream: nothing of one can reach it.
            Input::Head(_) | Input::Data(_) | Input::End(_) => {}
        }
    }
}

/// The outcomes of an exchange, as [`Flow::handle`] passes them on.
impl<O: Operation> Call<O> {
    fn on_response(&mut self, cluster: &mut Cluster, response: http::Response<Bytes>) {
        let endpoint = match std::mem::replace(&mut self.state, State::Ready) {
            State::Syncing(_) => {
                // An endpoint that answers is alive, even if its list is unusable.
                if self.op.api() == Api::V2 {
                    if let Ok(members) = Members.parse(response) {
                        cluster.apply_members(&members);
                    }
                } else if let Ok(list) = MemberList.parse(response) {
                    cluster
                        .apply_client_urls(list.members.iter().flat_map(|m| m.client_urls.iter()));
                }
                return;
            }
            State::LoggingIn(endpoint) => {
                match crate::v3::auth::parse_token(response) {
                    Ok(token) => cluster.set_v3_token(Some(&token)),
                    Err(e) => match e.as_v3().map(|v| v.kind) {
                        Some(V3ErrorKind::AuthNotEnabled) => cluster.v3_auth_disabled(),
                        Some(V3ErrorKind::AuthFailed) => self.finish(Err(e)),
                        _ => {
                            self.rounds.busy |= e.is_transient();
                            self.login_failed(cluster, endpoint, e);
                        }
                    },
                }
                return;
            }
            State::InFlight(endpoint) => endpoint,
            other => {
                self.state = other;
                return;
            }
        };
        if let Some(expected) = cluster.expected_cluster_id() {
            let found = response
                .headers()
                .get("x-etcd-cluster-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if found != expected {
                let error = Error::ClusterMismatch(ClusterMismatch {
                    endpoint: endpoint.as_str().to_owned(),
                    expected: expected.to_owned(),
                    found: found.to_owned(),
                });
                cluster.endpoint_failed(&endpoint);
                // The wrong cluster may have acted on it.
                self.after_failure(&endpoint, error, true);
                return;
            }
        }
        if let Some(target) = self.redirect_target(cluster, &endpoint, &response) {
            self.redirects += 1;
            self.redirect = Some(target);
            // A redirect is not a failure: the same round goes on.
            self.rounds.untry_last();
            return;
        }
        if response.status().is_server_error() {
            let status = response.status().as_u16();
            let error = match self.op.parse(response) {
                Err(e) => e,
                Ok(_) => {
                    MalformedResponse::new(status, "server error status with a success body", b"")
                        .into()
                }
            };
            self.rounds.busy |= error.is_transient();
            cluster.endpoint_failed(&endpoint);
            // etcd refused it before proposing it (no leader, say): no effect.
            let took_effect = !error.as_v3().is_some_and(|e| e.retry_safe());
            self.after_failure(&endpoint, error, took_effect);
            return;
        }
        cluster.endpoint_succeeded(&endpoint);
        let result = self.op.parse(response);
        if let Err(error) = &result {
            let stale_token = error.as_v3().is_some_and(|e| e.needs_new_token());
            if stale_token && crate::v3::auth::renew_token(cluster, &mut self.replayed_for_token) {
                // Refused for its token, so it took no effect: fetch a new
                // one and send it again, to the same endpoint.
                self.rounds.untry_last();
                return;
            }
        }
        self.finish(result);
    }

    fn on_failure(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
        kind: TransportErrorKind,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) {
        match std::mem::replace(&mut self.state, State::Ready) {
            State::Syncing(endpoint) => {
                // Recorded against the member that failed it, which this
                // round's attempt then skips.
                self.rounds.busy |= kind != TransportErrorKind::Connect;
                let error = TransportError::new(endpoint.as_str(), kind, source);
                cluster.endpoint_failed(&endpoint);
                self.rounds.record(&endpoint, error.into());
                self.rounds.tried(&endpoint);
            }
            State::LoggingIn(endpoint) => {
                self.rounds.busy |= kind != TransportErrorKind::Connect;
                let error = TransportError::new(endpoint.as_str(), kind, source);
                self.login_failed(cluster, endpoint, error.into());
            }
            State::InFlight(endpoint) => {
                if kind == TransportErrorKind::Connect && !self.refused.contains(&endpoint) {
                    self.refused.push(endpoint.clone());
                }
                let error = TransportError::new(endpoint.as_str(), kind, source);
                let not_sent = error.request_not_sent();
                // A long poll that reached its own deadline: nothing is wrong
                // with the endpoint, and there is no time left to try another.
                if kind == TransportErrorKind::Timeout
                    && matches!(self.op.wait(), Wait::LongPoll(_) | Wait::LongPollFor(_))
                    && self.deadline.is_some_and(|d| now >= d)
                {
                    self.rounds.record(&endpoint, error.into());
                    let error = self.rounds.give_up();
                    self.finish(Err(error));
                    return;
                }
                // A timeout or a broken exchange: the member may be alive but busy.
                self.rounds.busy |= matches!(
                    kind,
                    TransportErrorKind::Timeout | TransportErrorKind::Io | TransportErrorKind::Http
                );
                cluster.endpoint_failed(&endpoint);
                self.after_failure(&endpoint, error.into(), !not_sent);
            }
            other => self.state = other,
        }
    }
}
