//! Transactions (`/v3/kv/txn`): compares, then one branch of operations,
//! atomically; and [`UpdateWith`], the optimistic read-modify-write loop.

use std::time::Instant;

use bytes::Bytes;
use serde::Deserialize;

use super::grpc::{self, pb};
use super::json::{ObjectWriter, WireHeader};
use super::kv::{
    Delete, DeleteResponse, Get, Put, PutResponse, RangeResponse, WireDeleteResponse,
    WirePutResponse, WireRangeResponse,
};
use super::types::{KeyRange, KeyValue, ResponseHeader};
use super::unary::{grpc_form, Answer, GrpcForm, V3Unary};
use crate::call::Call;
use crate::cluster::Cluster;
use crate::error::{Contention, Error, MalformedResponse};
use crate::flow::{Flow, Input, Step};
use crate::operation::Replay;

/// How a [`Compare`] relates the key's field to the given value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `>`: the key's field is greater than the given value.
    Greater,
    /// `<`: the key's field is less than the given value.
    Less,
}

impl CompareOp {
    /// The protobuf enum number (`Compare.CompareResult`).
    fn proto_number(self) -> i32 {
        match self {
            CompareOp::Equal => 0,
            CompareOp::Greater => 1,
            CompareOp::Less => 2,
            CompareOp::NotEqual => 3,
        }
    }

    fn proto_name(self) -> &'static str {
        match self {
            CompareOp::Equal => "EQUAL",
            CompareOp::NotEqual => "NOT_EQUAL",
            CompareOp::Greater => "GREATER",
            CompareOp::Less => "LESS",
        }
    }
}

/// What a [`Compare`] looks at, with the value it compares against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CompareTarget {
    /// The value (bytewise). A missing key never compares true, not even to `""`.
    Value(Vec<u8>),
    /// The version (0: the key does not exist).
    Version(i64),
    /// The create revision (0: the key does not exist).
    CreateRevision(i64),
    /// The mod revision.
    ModRevision(i64),
    /// The attached lease (0: none).
    Lease(i64),
}

/// One condition of a [`Txn`]: a key (or every key of a range) against a value.
///
/// ```
/// use etcd_proto::v3::{Compare, CompareOp};
/// let absent = Compare::version("config", CompareOp::Equal, 0);
/// let unchanged = Compare::mod_revision("config", CompareOp::Equal, 42);
/// let all_small = Compare::value(etcd_proto::v3::KeyRange::prefix("q/"), CompareOp::Less, "5");
/// # let _ = (absent, unchanged, all_small);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Compare {
    range: KeyRange,
    op: CompareOp,
    target: CompareTarget,
}

impl Compare {
    /// Compares `range`'s `target` with `op`.
    pub fn new(range: impl Into<KeyRange>, op: CompareOp, target: CompareTarget) -> Self {
        Compare {
            range: range.into(),
            op,
            target,
        }
    }

    /// Compares the value.
    pub fn value(range: impl Into<KeyRange>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Compare::new(range, op, CompareTarget::Value(value.into()))
    }

    /// Compares the version.
    pub fn version(range: impl Into<KeyRange>, op: CompareOp, version: i64) -> Self {
        Compare::new(range, op, CompareTarget::Version(version))
    }

    /// Compares the create revision.
    pub fn create_revision(range: impl Into<KeyRange>, op: CompareOp, revision: i64) -> Self {
        Compare::new(range, op, CompareTarget::CreateRevision(revision))
    }

    /// Compares the mod revision.
    pub fn mod_revision(range: impl Into<KeyRange>, op: CompareOp, revision: i64) -> Self {
        Compare::new(range, op, CompareTarget::ModRevision(revision))
    }

    /// Compares the lease.
    pub fn lease(range: impl Into<KeyRange>, op: CompareOp, lease: i64) -> Self {
        Compare::new(range, op, CompareTarget::Lease(lease))
    }

    fn to_pb(&self) -> pb::Compare {
        let (target, union) = match &self.target {
            CompareTarget::Version(n) => (0, pb::TargetUnion::Version(*n)),
            CompareTarget::CreateRevision(n) => (1, pb::TargetUnion::CreateRevision(*n)),
            CompareTarget::ModRevision(n) => (2, pb::TargetUnion::ModRevision(*n)),
            CompareTarget::Value(v) => (3, pb::TargetUnion::Value(v.clone())),
            CompareTarget::Lease(n) => (4, pb::TargetUnion::Lease(*n)),
        };
        pb::Compare {
            result: self.op.proto_number(),
            target,
            key: self.range.key().to_vec(),
            target_union: Some(union),
            range_end: self.range.range_end().to_vec(),
        }
    }

    fn to_json(&self) -> String {
        let mut writer = ObjectWriter::new();
        writer.string("result", self.op.proto_name());
        let (name, field) = match &self.target {
            CompareTarget::Value(_) => ("VALUE", "value"),
            CompareTarget::Version(_) => ("VERSION", "version"),
            CompareTarget::CreateRevision(_) => ("CREATE", "create_revision"),
            CompareTarget::ModRevision(_) => ("MOD", "mod_revision"),
            CompareTarget::Lease(_) => ("LEASE", "lease"),
        };
        writer.string("target", name).bytes("key", self.range.key());
        match &self.target {
            // The target value is always written, zero included: it selects
            // the oneof the server compares against.
            CompareTarget::Value(value) => writer.bytes(field, value),
            CompareTarget::Version(n)
            | CompareTarget::CreateRevision(n)
            | CompareTarget::ModRevision(n)
            | CompareTarget::Lease(n) => writer.raw(field, &format!("\"{n}\"")),
        };
        writer
            .bytes_nonempty("range_end", self.range.range_end())
            .finish()
    }
}

/// One operation of a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// A range read.
    Get(Get),
    /// A write.
    Put(Put),
    /// A delete.
    Delete(Delete),
    /// A nested transaction.
    Txn(Txn),
}

impl TxnOp {
    fn to_pb(&self) -> pb::RequestOp {
        let request = match self {
            TxnOp::Get(op) => pb::Request::Range(op.to_pb()),
            TxnOp::Put(op) => pb::Request::Put(op.to_pb()),
            TxnOp::Delete(op) => pb::Request::DeleteRange(op.to_pb()),
            TxnOp::Txn(op) => pb::Request::Txn(op.to_pb()),
        };
        pb::RequestOp {
            request: Some(request),
        }
    }

    fn to_json(&self) -> String {
        let (name, body) = match self {
            TxnOp::Get(op) => ("request_range", op.to_json()),
            TxnOp::Put(op) => ("request_put", op.to_json()),
            TxnOp::Delete(op) => ("request_delete_range", op.to_json()),
            TxnOp::Txn(op) => ("request_txn", op.to_json()),
        };
        ObjectWriter::new().raw(name, &body).finish()
    }

    fn is_read(&self) -> bool {
        match self {
            TxnOp::Get(_) => true,
            TxnOp::Put(_) | TxnOp::Delete(_) => false,
            TxnOp::Txn(txn) => txn.is_read_only(),
        }
    }
}

impl From<Get> for TxnOp {
    fn from(op: Get) -> Self {
        TxnOp::Get(op)
    }
}

impl From<Put> for TxnOp {
    fn from(op: Put) -> Self {
        TxnOp::Put(op)
    }
}

impl From<Delete> for TxnOp {
    fn from(op: Delete) -> Self {
        TxnOp::Delete(op)
    }
}

impl From<Txn> for TxnOp {
    fn from(op: Txn) -> Self {
        TxnOp::Txn(op)
    }
}

/// A transaction: if every compare holds, run `success`, else `failure`.
///
/// ```
/// use etcd_proto::v3::{Compare, CompareOp, Get, Put, Txn};
/// // Create "leader" only if it does not exist; otherwise read who has it.
/// let txn = Txn::new()
///     .when([Compare::create_revision("leader", CompareOp::Equal, 0)])
///     .and_then([Put::new("leader", "me").into()])
///     .or_else([Get::new("leader").into()]);
/// # let _ = txn;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    compare: Vec<Compare>,
    success: Vec<TxnOp>,
    failure: Vec<TxnOp>,
}

impl Txn {
    /// An empty transaction (no compare: the success branch runs).
    pub fn new() -> Self {
        Txn::default()
    }

    /// Adds conditions; all must hold.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compare.extend(compares);
        self
    }

    /// Adds operations run when every condition holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }

    /// Adds operations run when a condition fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }

    fn is_read_only(&self) -> bool {
        self.success.iter().chain(&self.failure).all(TxnOp::is_read)
    }

    pub(crate) fn to_pb(&self) -> pb::TxnRequest {
        pb::TxnRequest {
            compare: self.compare.iter().map(Compare::to_pb).collect(),
            success: self.success.iter().map(TxnOp::to_pb).collect(),
            failure: self.failure.iter().map(TxnOp::to_pb).collect(),
        }
    }

    pub(crate) fn to_json(&self) -> String {
        let mut writer = ObjectWriter::new();
        if !self.compare.is_empty() {
            writer.array("compare", self.compare.iter().map(Compare::to_json));
        }
        if !self.success.is_empty() {
            writer.array("success", self.success.iter().map(TxnOp::to_json));
        }
        if !self.failure.is_empty() {
            writer.array("failure", self.failure.iter().map(TxnOp::to_json));
        }
        writer.finish()
    }
}

/// The result of one operation of the branch that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResponse {
    /// From a [`TxnOp::Get`].
    Get(RangeResponse),
    /// From a [`TxnOp::Put`].
    Put(PutResponse),
    /// From a [`TxnOp::Delete`].
    Delete(DeleteResponse),
    /// From a [`TxnOp::Txn`].
    Txn(TxnResponse),
}

/// What a [`Txn`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// The header; `header.revision` is the revision after the transaction.
    pub header: ResponseHeader,
    /// True if every compare held (the success branch ran).
    pub succeeded: bool,
    /// One result per operation of the branch that ran, in order.
    pub responses: Vec<TxnOpResponse>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireTxnResponse {
    header: WireHeader,
    succeeded: bool,
    responses: Vec<WireResponseOp>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireResponseOp {
    response_range: Option<WireRangeResponse>,
    response_put: Option<WirePutResponse>,
    response_delete_range: Option<WireDeleteResponse>,
    response_txn: Option<WireTxnResponse>,
}

impl TryFrom<WireTxnResponse> for TxnResponse {
    type Error = &'static str;

    fn try_from(r: WireTxnResponse) -> Result<Self, &'static str> {
        let responses = r
            .responses
            .into_iter()
            .map(|op| {
                Ok(match op {
                    WireResponseOp {
                        response_range: Some(x),
                        ..
                    } => TxnOpResponse::Get(x.into()),
                    WireResponseOp {
                        response_put: Some(x),
                        ..
                    } => TxnOpResponse::Put(x.into()),
                    WireResponseOp {
                        response_delete_range: Some(x),
                        ..
                    } => TxnOpResponse::Delete(x.into()),
                    WireResponseOp {
                        response_txn: Some(x),
                        ..
                    } => TxnOpResponse::Txn(x.try_into()?),
                    _ => return Err("a txn response op of no known kind"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(TxnResponse {
            header: r.header.into(),
            succeeded: r.succeeded,
            responses,
        })
    }
}

impl TryFrom<pb::TxnResponse> for TxnResponse {
    type Error = &'static str;

    fn try_from(r: pb::TxnResponse) -> Result<Self, &'static str> {
        let responses = r
            .responses
            .into_iter()
            .map(|op| {
                Ok(match op.response {
                    Some(pb::Response::Range(x)) => TxnOpResponse::Get(x.into()),
                    Some(pb::Response::Put(x)) => TxnOpResponse::Put(x.into()),
                    Some(pb::Response::DeleteRange(x)) => TxnOpResponse::Delete(x.into()),
                    Some(pb::Response::Txn(x)) => TxnOpResponse::Txn(x.try_into()?),
                    None => return Err("a txn response op of no known kind"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(TxnResponse {
            header: r.header.into(),
            succeeded: r.succeeded,
            responses,
        })
    }
}

impl V3Unary for Txn {
    type Output = TxnResponse;

    fn path(&self) -> &'static str {
        "/v3/kv/txn"
    }

    fn replay(&self) -> Replay {
        if self.is_read_only() {
            Replay::Safe
        } else {
            Replay::AtMostOnce
        }
    }

    fn body(&self) -> String {
        self.to_json()
    }

    fn read(&self, answer: Answer<'_>) -> Result<TxnResponse, Error> {
        let wire = answer.json::<WireTxnResponse>()?;
        wire.try_into()
            .map_err(|reason| MalformedResponse::new(answer.status, reason, answer.bytes()).into())
    }

    fn grpc(&self) -> Option<GrpcForm> {
        grpc_form("/etcdserverpb.KV/Txn", &self.to_pb())
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<TxnResponse, Error> {
        let r: pb::TxnResponse = grpc::parse_unary(answer)?;
        r.try_into().map_err(|reason| {
            MalformedResponse::new(answer.status().as_u16(), reason, answer.body()).into()
        })
    }
}

/// Attempts an [`UpdateWith`] makes before giving up.
pub const UPDATE_ATTEMPTS: u32 = 100;

/// Updates one key with a function of its current value, atomically.
///
/// Reads the key, computes the new value, and writes it in a [`Txn`] that
/// holds only if the key's `mod_revision` is still the one read (or, for a
/// missing key, that it is still missing). When another writer got there
/// first, the same transaction's failure branch returns the new current
/// value, so the next attempt needs no extra read; after a short backoff
/// (2 ms doubling to 250 ms, its upper half random: see
/// [`v2::UpdateWith`](crate::v2::UpdateWith)) it tries again, at most [`UPDATE_ATTEMPTS`] times.
/// Returns the successful write's header revision and the value written.
pub struct UpdateWith<F> {
    key: Vec<u8>,
    f: F,
    stage: UpdateStage,
    current: Option<Option<KeyValue>>,
    attempts: u32,
    written: Option<Vec<u8>>,
    backoff: crate::backoff::Backoff,
}

enum UpdateStage {
    Read(Call<Get>),
    Write(Call<Txn>),
    Backoff(Instant),
    Finished(Option<Result<(ResponseHeader, Vec<u8>), Error>>),
}

impl<F> std::fmt::Debug for UpdateWith<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateWith")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<F: FnMut(Option<&KeyValue>) -> Vec<u8>> UpdateWith<F> {
    /// Updates `key` with `f`: current pair (`None`: absent) → new value.
    /// `seed`: random bits for the backoff jitter, drawn by the transport
    /// ([`Entropy::random`](crate::drive::Entropy::random)).
    pub fn new(key: impl Into<Vec<u8>>, f: F, seed: u64) -> Self {
        let key = key.into();
        UpdateWith {
            stage: UpdateStage::Read(Call::new(Get::new(key.clone()))),
            key,
            f,
            current: None,
            attempts: 0,
            written: None,
            backoff: crate::backoff::Backoff::new(seed),
        }
    }

    fn write(&mut self, current: Option<KeyValue>) {
        self.attempts += 1;
        let value = (self.f)(current.as_ref());
        let guard = match &current {
            Some(kv) => Compare::mod_revision(self.key.clone(), CompareOp::Equal, kv.mod_revision),
            None => Compare::create_revision(self.key.clone(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([guard])
            .and_then([Put::new(self.key.clone(), value.clone()).into()])
            .or_else([Get::new(self.key.clone()).into()]);
        self.written = Some(value);
        self.current = Some(current);
        self.stage = UpdateStage::Write(Call::new(txn));
    }

    fn after_write(&mut self, result: Result<TxnResponse, Error>, now: Instant) {
        let response = match result {
            Ok(response) => response,
            Err(e) => return self.stage = UpdateStage::Finished(Some(Err(e))),
        };
        if response.succeeded {
            let value = self.written.take().unwrap_or_default();
            return self.stage = UpdateStage::Finished(Some(Ok((response.header, value))));
        }
        if self.attempts >= UPDATE_ATTEMPTS {
            let error = Contention {
                key: String::from_utf8_lossy(&self.key).into_owned(),
                attempts: self.attempts,
            };
            return self.stage = UpdateStage::Finished(Some(Err(error.into())));
        }
        let current = response.responses.into_iter().find_map(|r| match r {
            TxnOpResponse::Get(range) => Some(range.kvs.into_iter().next()),
            _ => None,
        });
        self.current = Some(current.flatten());
        let pause = self.backoff.pause(self.attempts - 1);
        self.stage = UpdateStage::Backoff(now + pause);
    }
}

impl<F: FnMut(Option<&KeyValue>) -> Vec<u8>> Flow for UpdateWith<F> {
    type Output = (ResponseHeader, Vec<u8>);

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<Self::Output> {
        loop {
            match &mut self.stage {
                UpdateStage::Read(call) => match call.poll(cluster, now) {
                    Step::Done(Ok(range)) => self.write(range.kvs.into_iter().next()),
                    Step::Done(Err(e)) => self.stage = UpdateStage::Finished(Some(Err(e))),
                    other => return other.map_pending(),
                },
                UpdateStage::Write(call) => match call.poll(cluster, now) {
                    Step::Done(result) => self.after_write(result, now),
                    other => return other.map_pending(),
                },
                UpdateStage::Backoff(until) => {
                    if now < *until {
                        return Step::Sleep(*until);
                    }
                    let current = self.current.take().flatten();
                    self.write(current);
                }
                UpdateStage::Finished(result) => return crate::flow::finished(result),
            }
        }
    }

    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input) {
        match (input, &mut self.stage) {
            (Input::Stop, _) => self.stage = UpdateStage::Finished(Some(crate::flow::stopped())),
            (input, UpdateStage::Read(call)) => call.handle(cluster, now, input),
            (input, UpdateStage::Write(call)) => call.handle(cluster, now, input),
            (_, UpdateStage::Backoff(_) | UpdateStage::Finished(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;
    use crate::{Operation, Target};
    use bytes::Bytes;

    #[test]
    fn txn_encodes_compares_and_branches() {
        let txn = Txn::new()
            .when([
                Compare::version("k", CompareOp::Equal, 0),
                Compare::value("k", CompareOp::Less, "b"),
            ])
            .and_then([Put::new("k", "v").into()])
            .or_else([Get::new("k").into(), Txn::new().into()]);
        let endpoint = Endpoint::parse("http://127.0.0.1:2379").unwrap();
        let request = txn.build(&Target::new(&endpoint, "/v2")).unwrap();
        assert_eq!(
            std::str::from_utf8(request.body()).unwrap(),
            concat!(
                r#"{"compare":[{"result":"EQUAL","target":"VERSION","key":"aw==","version":"0"},"#,
                r#"{"result":"LESS","target":"VALUE","key":"aw==","value":"Yg=="}],"#,
                r#""success":[{"request_put":{"key":"aw==","value":"dg=="}}],"#,
                r#""failure":[{"request_range":{"key":"aw=="}},{"request_txn":{}}]}"#
            )
        );
        assert_eq!(Operation::replay(&txn), Replay::AtMostOnce);
        assert_eq!(
            Operation::replay(&Txn::new().or_else([Get::new("k").into()])),
            Replay::Safe
        );
    }

    #[test]
    fn txn_response_parses_typed_results() {
        let body = r#"{"header":{"revision":"9"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"9"}}},{"response_range":{"header":{},"kvs":[{"key":"aw==","mod_revision":"9","value":"dg=="}],"count":"1"}},{"response_delete_range":{"header":{},"deleted":"2"}}]}"#;
        let response = http::Response::new(Bytes::from(body));
        let parsed = Txn::new().parse(response).unwrap();
        assert!(parsed.succeeded);
        assert_eq!(parsed.header.revision, 9);
        assert!(matches!(parsed.responses[0], TxnOpResponse::Put(_)));
        match &parsed.responses[1] {
            TxnOpResponse::Get(r) => assert_eq!(r.kvs[0].value, b"v"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&parsed.responses[2], TxnOpResponse::Delete(d) if d.deleted == 2));
        let failed = Txn::new()
            .parse(http::Response::new(Bytes::from(
                r#"{"header":{"revision":"9"}}"#,
            )))
            .unwrap();
        assert!(!failed.succeeded);
        let unknown = Txn::new().parse(http::Response::new(Bytes::from(r#"{"responses":[{}]}"#)));
        assert!(matches!(unknown, Err(Error::Malformed(_))));
    }
}
