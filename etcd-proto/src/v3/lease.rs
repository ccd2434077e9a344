//! Leases: grant, revoke, time-to-live, list, keep-alive once, and
//! [`KeepAlive`], the flow that keeps a lease alive in the background.
//!
//! Keys attached to a lease are deleted when it ends: revoked, or not kept
//! alive within its TTL. Lease calls need no auth token even with auth on.

use bytes::Bytes;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::error::{V3Error, V3ErrorKind};
use super::grpc::{self, pb};
use super::json::{self, ObjectWriter, WireHeader};
use super::kv::HeaderOnly;
use super::types::ResponseHeader;
use super::unary::{grpc_form, Answer, GrpcForm, V3Unary};
use crate::call::Call;
use crate::cluster::Cluster;
use crate::error::{Error, MalformedResponse};
use crate::flow::{Flow, Input, Step};
use crate::operation::Replay;

/// `POST /v3/lease/grant`: a new lease of `ttl` seconds (the server may
/// round a short TTL up: TTL 1 is granted as 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    ttl: i64,
    id: i64,
}

impl LeaseGrant {
    /// A lease of `ttl` seconds, its ID chosen by the server.
    pub fn new(ttl: i64) -> Self {
        LeaseGrant { ttl, id: 0 }
    }

    /// Asks for this ID (fails with `LeaseExists` if it is taken).
    pub fn id(mut self, id: i64) -> Self {
        self.id = id;
        self
    }
}

/// A granted lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseGrantResponse {
    /// The header.
    pub header: ResponseHeader,
    /// The lease ID.
    pub id: i64,
    /// The TTL granted, in seconds.
    pub ttl: i64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireLease {
    header: WireHeader,
    #[serde(rename = "ID")]
    id: json::Int,
    #[serde(rename = "TTL")]
    ttl: json::Int,
    #[serde(rename = "grantedTTL")]
    granted_ttl: json::Int,
    keys: Vec<json::B64Bytes>,
    error: String,
    leases: Vec<WireLeaseId>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireLeaseId {
    #[serde(rename = "ID")]
    id: json::Int,
}

impl V3Unary for LeaseGrant {
    type Output = LeaseGrantResponse;

    fn path(&self) -> &'static str {
        "/v3/lease/grant"
    }

    fn replay(&self) -> Replay {
        Replay::AtMostOnce
    }

    fn body(&self) -> String {
        ObjectWriter::new()
            .int("TTL", self.ttl)
            .int("ID", self.id)
            .finish()
    }

    fn read(&self, answer: Answer<'_>) -> Result<LeaseGrantResponse, Error> {
        let wire = answer.json::<WireLease>()?;
        if !wire.error.is_empty() {
            return Err(V3Error::new(answer.status, 2, &wire.error).into());
        }
        Ok(LeaseGrantResponse {
            header: wire.header.into(),
            id: wire.id.0,
            ttl: wire.ttl.0,
        })
    }

    fn grpc(&self) -> Option<GrpcForm> {
        let message = pb::LeaseGrantRequest {
            ttl: self.ttl,
            id: self.id,
        };
        grpc_form("/etcdserverpb.Lease/LeaseGrant", &message)
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<LeaseGrantResponse, Error> {
        let r: pb::LeaseGrantResponse = grpc::parse_unary(answer)?;
        if !r.error.is_empty() {
            return Err(V3Error::new(answer.status().as_u16(), 2, &r.error).into());
        }
        Ok(LeaseGrantResponse {
            header: r.header.into(),
            id: r.id,
            ttl: r.ttl,
        })
    }
}

/// `POST /v3/lease/revoke`: ends a lease now, deleting its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRevoke(pub i64);

impl V3Unary for LeaseRevoke {
    type Output = ResponseHeader;

    fn path(&self) -> &'static str {
        "/v3/lease/revoke"
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn body(&self) -> String {
        ObjectWriter::new().int("ID", self.0).finish()
    }

    fn read(&self, answer: Answer<'_>) -> Result<ResponseHeader, Error> {
        answer.json::<HeaderOnly>().map(|r| r.header.into())
    }

    fn grpc(&self) -> Option<GrpcForm> {
        grpc_form(
            "/etcdserverpb.Lease/LeaseRevoke",
            &pb::LeaseId { id: self.0 },
        )
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<ResponseHeader, Error> {
        let r: pb::HeaderOnly = grpc::parse_unary(answer)?;
        Ok(r.header.into())
    }
}

/// `POST /v3/lease/timetolive`: a lease's remaining TTL, and optionally its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimeToLive {
    id: i64,
    keys: bool,
}

impl LeaseTimeToLive {
    /// Asks about lease `id`.
    pub fn new(id: i64) -> Self {
        LeaseTimeToLive { id, keys: false }
    }

    /// Also lists the keys attached to it.
    pub fn with_keys(mut self) -> Self {
        self.keys = true;
        self
    }
}

/// A lease's remaining life.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseTimeToLiveResponse {
    /// The header.
    pub header: ResponseHeader,
    /// The lease ID.
    pub id: i64,
    /// Seconds left; **-1 if the lease does not exist** (expired or revoked):
    /// etcd answers 200, not an error.
    pub ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// The attached keys, if asked for.
    pub keys: Vec<Vec<u8>>,
}

impl LeaseTimeToLiveResponse {
    /// True if the lease still exists.
    pub fn is_alive(&self) -> bool {
        self.ttl >= 0
    }
}

impl V3Unary for LeaseTimeToLive {
    type Output = LeaseTimeToLiveResponse;

    fn path(&self) -> &'static str {
        "/v3/lease/timetolive"
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn body(&self) -> String {
        ObjectWriter::new()
            .int("ID", self.id)
            .flag("keys", self.keys)
            .finish()
    }

    fn read(&self, answer: Answer<'_>) -> Result<LeaseTimeToLiveResponse, Error> {
        let wire = answer.json::<WireLease>()?;
        Ok(LeaseTimeToLiveResponse {
            header: wire.header.into(),
            id: wire.id.0,
            ttl: wire.ttl.0,
            granted_ttl: wire.granted_ttl.0,
            keys: wire.keys.into_iter().map(|k| k.0).collect(),
        })
    }

    fn grpc(&self) -> Option<GrpcForm> {
        let message = pb::LeaseTimeToLiveRequest {
            id: self.id,
            keys: self.keys,
        };
        grpc_form("/etcdserverpb.Lease/LeaseTimeToLive", &message)
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<LeaseTimeToLiveResponse, Error> {
        let r: pb::LeaseTimeToLiveResponse = grpc::parse_unary(answer)?;
        Ok(LeaseTimeToLiveResponse {
            header: r.header.into(),
            id: r.id,
            ttl: r.ttl,
            granted_ttl: r.granted_ttl,
            keys: r.keys,
        })
    }
}

/// `POST /v3/lease/leases`: the IDs of every live lease.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseLeases;

impl V3Unary for LeaseLeases {
    type Output = Vec<i64>;

    fn path(&self) -> &'static str {
        "/v3/lease/leases"
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn body(&self) -> String {
        "{}".to_owned()
    }

    fn read(&self, answer: Answer<'_>) -> Result<Vec<i64>, Error> {
        Ok(answer
            .json::<WireLease>()?
            .leases
            .into_iter()
            .map(|l| l.id.0)
            .collect())
    }

    fn grpc(&self) -> Option<GrpcForm> {
        grpc_form("/etcdserverpb.Lease/LeaseLeases", &pb::Empty {})
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<Vec<i64>, Error> {
        let r: pb::LeaseLeasesResponse = grpc::parse_unary(answer)?;
        Ok(r.leases.into_iter().map(|l| l.id).collect())
    }
}

/// One keep-alive (`POST /v3/lease/keepalive` with one request: the server
/// answers one NDJSON line and ends the body).
///
/// A reply without a TTL means the lease is gone: that is returned as a
/// `LeaseNotFound` [`V3Error`], never as a TTL of 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseKeepAliveOnce(pub i64);

/// A lease renewed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseKeepAliveResponse {
    /// The header.
    pub header: ResponseHeader,
    /// The lease ID.
    pub id: i64,
    /// The TTL it was renewed to, in seconds.
    pub ttl: i64,
}

impl V3Unary for LeaseKeepAliveOnce {
    type Output = LeaseKeepAliveResponse;

    fn path(&self) -> &'static str {
        "/v3/lease/keepalive"
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn body(&self) -> String {
        ObjectWriter::new().int("ID", self.0).finish()
    }

    fn read(&self, answer: Answer<'_>) -> Result<LeaseKeepAliveResponse, Error> {
        // The gateway answers with the first line of the keep-alive stream.
        let body = answer.bytes();
        let first = body.split(|b| *b == b'\n').find(|line| !line.is_empty());
        let Some(line) = first else {
            return Err(
                MalformedResponse::new(answer.status, "empty keep-alive stream", body).into(),
            );
        };
        let wire: WireLease = json::parse_stream_line(line)?;
        self.renewed(wire.header.into(), wire.id.0, wire.ttl.0)
    }

    fn grpc(&self) -> Option<GrpcForm> {
        // One message on the bidirectional stream, then the half-close:
        // etcd answers once and ends the stream.
        grpc_form(
            "/etcdserverpb.Lease/LeaseKeepAlive",
            &pb::LeaseId { id: self.0 },
        )
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<LeaseKeepAliveResponse, Error> {
        let r: pb::LeaseKeepAliveResponse = grpc::parse_unary(answer)?;
        self.renewed(r.header.into(), r.id, r.ttl)
    }
}

impl LeaseKeepAliveOnce {
    /// The answer, from either wire: no TTL means the lease is gone.
    fn renewed(
        &self,
        header: ResponseHeader,
        id: i64,
        ttl: i64,
    ) -> Result<LeaseKeepAliveResponse, Error> {
        if ttl <= 0 {
            return Err(Error::from(V3Error {
                status: 200,
                code: 5,
                message: format!(
                    "lease {:x} not found: keep-alive answered without a TTL",
                    self.0
                ),
                kind: V3ErrorKind::LeaseNotFound,
            }));
        }
        Ok(LeaseKeepAliveResponse { header, id, ttl })
    }
}

/// The wait before retrying a failed keep-alive.
pub const KEEPALIVE_RETRY: Duration = Duration::from_millis(500);

/// Until when a lease renewed (or granted) by a request sent at `sent` with
/// `ttl` is surely alive: etcd counts the TTL from no earlier than the send;
/// a margin of a tenth of the TTL (100 ms to 1 s) covers clocks that do not
/// run quite alike, so the holder learns of a loss first.
pub(crate) fn valid_until(sent: Instant, ttl: Duration) -> Instant {
    let margin = (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
    (sent + ttl).checked_sub(margin).unwrap_or(sent)
}

/// Keeps a lease alive until stopped, or until it is lost.
///
/// Sends a keep-alive at once, then every TTL/3 of the TTL last granted
/// (Go's clientv3 rule). A failed keep-alive is retried every
/// [`KEEPALIVE_RETRY`] while the lease may still be alive. The lease counts
/// as alive until its TTL after the last renewal that got through, counted
/// from when that renewal was **sent** (etcd renewed it no earlier), so the
/// holder learns of a loss before etcd can expire the lease. Once that
/// passes with no renewal the flow ends with [`Error::TtlExpired`] (the last
/// failure as its source); if etcd says the lease is gone, with that error:
/// **the lease is lost**, and with it every key attached.
/// [`Input::Stop`] ends it with `Ok(())` at its next poll: it sleeps until
/// the next renewal is due, and is woken by its driver when stopped.
pub struct KeepAlive {
    id: i64,
    call: Option<Call<LeaseKeepAliveOnce>>,
    /// When the keep-alive in flight was sent: etcd renews no earlier.
    sent_at: Option<Instant>,
    next: Option<Instant>,
    /// The TTL last granted.
    ttl: Option<Duration>,
    expires: Option<Instant>,
    last_error: Option<Error>,
    done: Option<Result<(), Error>>,
    ended: bool,
}

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepAlive")
            .field("id", &self.id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl KeepAlive {
    /// Keeps lease `id` alive until told to [`Stop`](Input::Stop).
    pub fn new(id: i64) -> Self {
        KeepAlive {
            id,
            call: None,
            sent_at: None,
            next: None,
            ttl: None,
            expires: None,
            last_error: None,
            done: None,
            ended: false,
        }
    }

    /// The lease was granted (or last renewed) with `ttl` seconds just
    /// before the keep-alive starts: until a renewal gets through, it counts
    /// as valid for `ttl` from the keep-alive's first poll, so failures
    /// before then are retried instead of ending it. `ttl <= 0`: unknown
    /// (the first failure ends it).
    pub fn granted_ttl(mut self, ttl: i64) -> Self {
        if ttl > 0 {
            self.ttl = Some(Duration::from_secs(ttl as u64));
        }
        self
    }

    /// The lease.
    pub fn id(&self) -> i64 {
        self.id
    }

    fn after(&mut self, result: Result<LeaseKeepAliveResponse, Error>, now: Instant) {
        self.call = None;
        match result {
            Ok(renewed) => {
                let ttl = Duration::from_secs(renewed.ttl.max(1) as u64);
                // The lease runs from when etcd renewed it, which is no
                // earlier than the send: counting from there, the holder
                // learns of a loss before anyone else can act on it.
                let renewed_at = self.sent_at.unwrap_or(now);
                self.ttl = Some(ttl);
                self.expires = Some(valid_until(renewed_at, ttl));
                self.next = Some(renewed_at + ttl / 3);
                self.last_error = None;
            }
            Err(e)
                if e.as_v3()
                    .is_some_and(|v| v.kind == V3ErrorKind::LeaseNotFound) =>
            {
                self.done = Some(Err(e));
            }
            // No TTL known yet: nothing says the lease is still alive.
            Err(e) if self.expires.is_none() => self.done = Some(Err(e)),
            // Retried while the lease may be alive; past its expiry, `poll`
            // ends with the TTL running out, this as its cause.
            Err(e) => {
                self.last_error = Some(e);
                self.next = Some(now + KEEPALIVE_RETRY);
            }
        }
    }
}

impl Flow for KeepAlive {
    type Output = ();

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<()> {
        if self.expires.is_none() {
            // The grant was sent a moment ago: the margin covers that moment.
            self.expires = self.ttl.map(|ttl| valid_until(now, ttl));
        }
        loop {
            if self.done.is_some() || self.ended {
                self.ended = true;
                return crate::flow::finished(&mut self.done);
            }
            if let Some(call) = &mut self.call {
                match call.poll(cluster, now) {
                    Step::Done(result) => {
                        self.after(result, now);
                        continue;
                    }
                    other => return other.map_pending(),
                }
            }
            if let Some(expires) = self.expires {
                if now >= expires {
                    let expired = crate::error::TtlExpired {
                        what: format!("lease {:x}", self.id),
                        ttl: self.ttl.unwrap_or_default(),
                        last_error: self.last_error.take().map(Box::new),
                    };
                    self.done = Some(Err(expired.into()));
                    continue;
                }
            }
            match self.next {
                Some(at) if now < at => {
                    // Wake at the renewal time, never past the expiry.
                    return Step::Sleep(self.expires.map_or(at, |e| at.min(e)));
                }
                _ => {
                    // Each keep-alive must end before the lease would.
                    let deadline = self.expires;
                    self.sent_at = Some(now);
                    self.call =
                        Some(Call::new(LeaseKeepAliveOnce(self.id)).with_deadline(deadline));
                }
            }
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match (input, &mut self.call) {
            (Input::Stop, _) => {
                self.call = None;
                self.done.get_or_insert(Ok(()));
            }
            (input, Some(call)) => call.handle(cluster, now, input),
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TransportErrorKind;
    use crate::Operation;
    use bytes::Bytes;

    fn answer(status: u16, body: &str) -> http::Response<Bytes> {
        http::Response::builder()
            .status(status)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn keepalive_without_ttl_is_lease_not_found() {
        let ok = LeaseKeepAliveOnce(4096)
            .parse(answer(
                200,
                "{\"result\":{\"header\":{\"revision\":\"3\"},\"ID\":\"4096\",\"TTL\":\"30\"}}\n",
            ))
            .unwrap();
        assert_eq!((ok.id, ok.ttl), (4096, 30));
        let gone = LeaseKeepAliveOnce(999)
            .parse(answer(200, "{\"result\":{\"header\":{},\"ID\":\"999\"}}\n"))
            .unwrap_err();
        assert_eq!(gone.as_v3().unwrap().kind, V3ErrorKind::LeaseNotFound);
        let broken = LeaseKeepAliveOnce(1).parse(answer(200, "")).unwrap_err();
        assert!(matches!(broken, Error::Malformed(_)));
    }

    #[test]
    fn timetolive_of_unknown_lease_is_minus_one() {
        let r = LeaseTimeToLive::new(5)
            .parse(answer(200, r#"{"header":{},"ID":"5","TTL":"-1"}"#))
            .unwrap();
        assert!(!r.is_alive());
    }

    #[test]
    fn keeper_renews_at_a_third_and_reports_loss() {
        let mut cluster = Cluster::from_urls(&["http://127.0.0.1:2379"]).unwrap();
        let mut keeper = KeepAlive::new(7);
        let t0 = Instant::now();
        let Step::Transmit(_) = keeper.poll(&mut cluster, t0) else {
            panic!()
        };
        keeper.handle_response(
            &mut cluster,
            t0,
            answer(200, "{\"result\":{\"ID\":\"7\",\"TTL\":\"9\"}}\n"),
        );
        // It sleeps until the next keep-alive, due at TTL/3, in one go.
        let mut now = t0;
        let mut sleeps = 0;
        let t1 = loop {
            match keeper.poll(&mut cluster, now) {
                Step::Sleep(at) => {
                    sleeps += 1;
                    now = at;
                }
                Step::Transmit(_) => break now,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(t1, t0 + Duration::from_secs(3));
        assert_eq!(sleeps, 1, "no wake-ups to look at a flag");
        keeper.handle_response(
            &mut cluster,
            t1,
            answer(200, "{\"result\":{\"ID\":\"7\"}}\n"),
        );
        match keeper.poll(&mut cluster, t1) {
            Step::Done(Err(e)) => assert_eq!(e.as_v3().unwrap().kind, V3ErrorKind::LeaseNotFound),
            other => panic!("{other:?}"),
        }
        let mut stopped = KeepAlive::new(7);
        let Step::Transmit(_) = stopped.poll(&mut cluster, t0) else {
            panic!()
        };
        stopped.handle_response(
            &mut cluster,
            t0,
            answer(200, "{\"result\":{\"ID\":\"7\",\"TTL\":\"9\"}}\n"),
        );
        assert!(matches!(stopped.poll(&mut cluster, t0), Step::Sleep(_)));
        stopped.handle(&mut cluster, t0, Input::Stop);
        assert!(matches!(stopped.poll(&mut cluster, t0), Step::Done(Ok(()))));
    }

    #[test]
    fn a_lease_counts_from_the_send_and_its_loss_names_the_ttl() {
        let mut cluster = Cluster::from_urls(&["http://127.0.0.1:2379"]).unwrap();
        let mut keeper = KeepAlive::new(7).granted_ttl(3);
        let t0 = Instant::now();
        let Step::Transmit(_) = keeper.poll(&mut cluster, t0) else {
            panic!()
        };
        // Answered a second later: the lease still runs from the send.
        let answered = t0 + Duration::from_secs(1);
        keeper.handle_response(
            &mut cluster,
            answered,
            answer(200, "{\"result\":{\"ID\":\"7\",\"TTL\":\"3\"}}\n"),
        );
        // From now on every keep-alive fails: retried until the TTL after
        // the send that got through, then lost, naming the TTL.
        let mut now = answered;
        let mut sent = 0;
        let error = loop {
            match keeper.poll(&mut cluster, now) {
                Step::Sleep(at) => now = at,
                Step::Transmit(t) => {
                    sent += 1;
                    assert!(now + t.timeout.unwrap() <= t0 + Duration::from_millis(2_700));
                    keeper.handle_failure(&mut cluster, now, TransportErrorKind::Io, "cut".into());
                }
                Step::Done(result) => break result.unwrap_err(),
            }
        };
        assert_eq!(
            now,
            t0 + Duration::from_millis(2_700),
            "expired by the send (less the margin), not the answer"
        );
        assert!(sent >= 2, "retried: {sent}");
        let Error::TtlExpired(expired) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(expired.ttl, Duration::from_secs(3));
        assert!(error.to_string().contains("TTL (3s) ran out"), "{error}");
        assert!(
            std::error::Error::source(expired).is_some_and(|s| s.to_string().contains("cut")),
            "the last failure is the source: {error}"
        );
    }

    #[test]
    fn a_failure_before_the_first_renewal_is_retried_within_the_granted_ttl() {
        /// Fails every keep-alive; the instant and result the keeper ends with.
        fn run_failing(mut keeper: KeepAlive, t0: Instant) -> (Instant, Error) {
            let mut cluster = Cluster::from_urls(&["http://127.0.0.1:2379"]).unwrap();
            cluster.set_request_timeout(Some(Duration::from_millis(500)));
            let mut now = t0;
            loop {
                match keeper.poll(&mut cluster, now) {
                    Step::Sleep(at) => now = at,
                    Step::Transmit(_) => keeper.handle_failure(
                        &mut cluster,
                        now,
                        TransportErrorKind::Io,
                        "cut".into(),
                    ),
                    Step::Done(result) => return (now, result.unwrap_err()),
                }
            }
        }
        let t0 = Instant::now();
        // Granted 3 s ago at most: retried until then (less a margin), then lost.
        let (at, error) = run_failing(KeepAlive::new(7).granted_ttl(3), t0);
        assert!(matches!(error, Error::TtlExpired(_)), "{error:?}");
        assert_eq!(at, t0 + Duration::from_millis(2_700));
        // Without a known TTL, the first keep-alive that fails is the loss.
        let (at, error) = run_failing(KeepAlive::new(7), t0);
        assert!(matches!(error, Error::Transport(_)), "{error:?}");
        assert!(at <= t0 + Duration::from_millis(500), "{at:?}");
    }
}
