//! The key-value operations: [`Get`] (a range read), [`Put`], [`Delete`] and
//! [`Compact`]. Each is an [`Operation`](crate::Operation) on its own and a step of a [`Txn`](super::Txn).

use bytes::Bytes;
use serde::Deserialize;

use super::grpc::{self, pb};
use super::json::{self, ObjectWriter, WireHeader, WireKeyValue};
use super::types::{KeyRange, KeyValue, ResponseHeader, SortOrder, SortTarget};
use super::unary::{grpc_form, Answer, GrpcForm, V3Unary};
use crate::error::Error;
use crate::operation::Replay;

/// Reads one key, a prefix or a range (`/v3/kv/range`).
///
/// Linearizable by default (the answer reflects every write committed before
/// it); [`serializable`](Self::serializable) reads the answering member's
/// local copy, which may be stale but needs no quorum.
///
/// ```
/// use etcd_proto::v3::{Get, KeyRange, SortOrder, SortTarget};
/// let newest_first = Get::new(KeyRange::prefix("jobs/"))
///     .sort(SortTarget::Create, SortOrder::Descend)
///     .limit(10);
/// # let _ = newest_first;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Get {
    pub(crate) range: KeyRange,
    limit: i64,
    revision: i64,
    sort_order: SortOrder,
    sort_target: SortTarget,
    serializable: bool,
    keys_only: bool,
    count_only: bool,
    min_mod_revision: i64,
    max_mod_revision: i64,
    min_create_revision: i64,
    max_create_revision: i64,
}

impl Get {
    /// Reads `range` (a `&str` or bytes is one key; see [`KeyRange`]).
    pub fn new(range: impl Into<KeyRange>) -> Self {
        Get {
            range: range.into(),
            ..Get::default()
        }
    }

    /// At most `limit` keys (0: no limit); the response's `more` tells if there were more.
    pub fn limit(mut self, limit: i64) -> Self {
        self.limit = limit;
        self
    }

    /// Reads the store as it was at `revision` (0: now). Fails with
    /// `Compacted` if that revision was compacted away.
    pub fn revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }

    /// Sorts the results.
    pub fn sort(mut self, target: SortTarget, order: SortOrder) -> Self {
        self.sort_target = target;
        self.sort_order = order;
        self
    }

    /// Reads the local member's copy without a quorum round (may be stale).
    pub fn serializable(mut self) -> Self {
        self.serializable = true;
        self
    }

    /// Returns keys and metadata without values.
    pub fn keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }

    /// Returns only the count of matching keys.
    pub fn count_only(mut self) -> Self {
        self.count_only = true;
        self
    }

    /// Only keys last modified at or after `revision`.
    pub fn min_mod_revision(mut self, revision: i64) -> Self {
        self.min_mod_revision = revision;
        self
    }

    /// Only keys last modified at or before `revision`.
    pub fn max_mod_revision(mut self, revision: i64) -> Self {
        self.max_mod_revision = revision;
        self
    }

    /// Only keys created at or after `revision`.
    pub fn min_create_revision(mut self, revision: i64) -> Self {
        self.min_create_revision = revision;
        self
    }

    /// Only keys created at or before `revision`.
    pub fn max_create_revision(mut self, revision: i64) -> Self {
        self.max_create_revision = revision;
        self
    }

    /// The keys this reads.
    pub fn range(&self) -> &KeyRange {
        &self.range
    }

    pub(crate) fn to_pb(&self) -> pb::RangeRequest {
        pb::RangeRequest {
            key: self.range.key().to_vec(),
            range_end: self.range.range_end().to_vec(),
            limit: self.limit,
            revision: self.revision,
            sort_order: self.sort_order as i32,
            sort_target: self.sort_target as i32,
            serializable: self.serializable,
            keys_only: self.keys_only,
            count_only: self.count_only,
            min_mod_revision: self.min_mod_revision,
            max_mod_revision: self.max_mod_revision,
            min_create_revision: self.min_create_revision,
            max_create_revision: self.max_create_revision,
        }
    }

    pub(crate) fn to_json(&self) -> String {
        ObjectWriter::new()
            .bytes("key", self.range.key())
            .bytes_nonempty("range_end", self.range.range_end())
            .int("limit", self.limit)
            .int("revision", self.revision)
            .enum_name("sort_order", self.sort_order.proto_name(), "NONE")
            .enum_name("sort_target", self.sort_target.proto_name(), "KEY")
            .flag("serializable", self.serializable)
            .flag("keys_only", self.keys_only)
            .flag("count_only", self.count_only)
            .int("min_mod_revision", self.min_mod_revision)
            .int("max_mod_revision", self.max_mod_revision)
            .int("min_create_revision", self.min_create_revision)
            .int("max_create_revision", self.max_create_revision)
            .finish()
    }
}

/// What a [`Get`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The answer's header; `header.revision` is the revision read.
    pub header: ResponseHeader,
    /// The pairs found, in the requested order.
    pub kvs: Vec<KeyValue>,
    /// True if a limit cut the result short.
    pub more: bool,
    /// How many keys matched (regardless of the limit).
    pub count: i64,
}

impl RangeResponse {
    /// The first pair (the key, for a single-key read).
    pub fn first(&self) -> Option<&KeyValue> {
        self.kvs.first()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct WireRangeResponse {
    header: WireHeader,
    kvs: Vec<WireKeyValue>,
    more: bool,
    count: json::Int,
}

impl From<pb::RangeResponse> for RangeResponse {
    fn from(r: pb::RangeResponse) -> Self {
        RangeResponse {
            header: r.header.into(),
            kvs: r.kvs.into_iter().map(Into::into).collect(),
            more: r.more,
            count: r.count,
        }
    }
}

impl From<pb::PutResponse> for PutResponse {
    fn from(r: pb::PutResponse) -> Self {
        PutResponse {
            header: r.header.into(),
            prev_kv: r.prev_kv.map(Into::into),
        }
    }
}

impl From<pb::DeleteRangeResponse> for DeleteResponse {
    fn from(r: pb::DeleteRangeResponse) -> Self {
        DeleteResponse {
            header: r.header.into(),
            deleted: r.deleted,
            prev_kvs: r.prev_kvs.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<WireRangeResponse> for RangeResponse {
    fn from(r: WireRangeResponse) -> Self {
        RangeResponse {
            header: r.header.into(),
            kvs: json::kvs(r.kvs),
            more: r.more,
            count: r.count.0,
        }
    }
}

impl V3Unary for Get {
    type Output = RangeResponse;

    fn path(&self) -> &'static str {
        "/v3/kv/range"
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn body(&self) -> String {
        self.to_json()
    }

    fn read(&self, answer: Answer<'_>) -> Result<RangeResponse, Error> {
        answer.json::<WireRangeResponse>().map(Into::into)
    }

    fn grpc(&self) -> Option<GrpcForm> {
        grpc_form("/etcdserverpb.KV/Range", &self.to_pb())
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<RangeResponse, Error> {
        grpc::parse_unary::<pb::RangeResponse>(answer).map(Into::into)
    }
}

/// Writes one key (`/v3/kv/put`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Put {
    key: Vec<u8>,
    value: Vec<u8>,
    lease: i64,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
}

impl Put {
    /// Sets `key` to `value` (strings or bytes).
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Put {
            key: key.into(),
            value: value.into(),
            ..Put::default()
        }
    }

    /// Attaches the key to a lease: it is deleted when the lease ends.
    pub fn lease(mut self, lease: i64) -> Self {
        self.lease = lease;
        self
    }

    /// Returns the pair as it was before this write.
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Keeps the current value (e.g. to attach a lease); fails with
    /// `KeyNotFound` on a missing key. The value given is not sent.
    pub fn ignore_value(mut self) -> Self {
        self.ignore_value = true;
        self
    }

    /// Keeps the key's current lease.
    pub fn ignore_lease(mut self) -> Self {
        self.ignore_lease = true;
        self
    }

    /// The key written.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn to_pb(&self) -> pb::PutRequest {
        pb::PutRequest {
            key: self.key.clone(),
            value: if self.ignore_value {
                Vec::new()
            } else {
                self.value.clone()
            },
            lease: self.lease,
            prev_kv: self.prev_kv,
            ignore_value: self.ignore_value,
            ignore_lease: self.ignore_lease,
        }
    }

    pub(crate) fn to_json(&self) -> String {
        let mut writer = ObjectWriter::new();
        writer.bytes("key", &self.key);
        if !self.ignore_value {
            writer.bytes_nonempty("value", &self.value);
        }
        writer
            .int("lease", self.lease)
            .flag("prev_kv", self.prev_kv)
            .flag("ignore_value", self.ignore_value)
            .flag("ignore_lease", self.ignore_lease)
            .finish()
    }
}

/// What a [`Put`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// The header; `header.revision` is the revision of this write.
    pub header: ResponseHeader,
    /// The previous pair, if [`Put::prev_kv`] was asked and the key existed.
    pub prev_kv: Option<KeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct WirePutResponse {
    header: WireHeader,
    prev_kv: Option<WireKeyValue>,
}

impl From<WirePutResponse> for PutResponse {
    fn from(r: WirePutResponse) -> Self {
        PutResponse {
            header: r.header.into(),
            prev_kv: r.prev_kv.map(Into::into),
        }
    }
}

impl V3Unary for Put {
    type Output = PutResponse;

    fn path(&self) -> &'static str {
        "/v3/kv/put"
    }

    fn replay(&self) -> Replay {
        Replay::AtMostOnce
    }

    fn body(&self) -> String {
        self.to_json()
    }

    fn read(&self, answer: Answer<'_>) -> Result<PutResponse, Error> {
        answer.json::<WirePutResponse>().map(Into::into)
    }

    fn grpc(&self) -> Option<GrpcForm> {
        grpc_form("/etcdserverpb.KV/Put", &self.to_pb())
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<PutResponse, Error> {
        grpc::parse_unary::<pb::PutResponse>(answer).map(Into::into)
    }
}

/// Deletes one key, a prefix or a range (`/v3/kv/deleterange`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delete {
    range: KeyRange,
    prev_kv: bool,
}

impl Delete {
    /// Deletes `range` (a `&str` or bytes is one key).
    pub fn new(range: impl Into<KeyRange>) -> Self {
        Delete {
            range: range.into(),
            prev_kv: false,
        }
    }

    /// Returns the deleted pairs.
    pub fn prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// The keys this deletes.
    pub fn range(&self) -> &KeyRange {
        &self.range
    }

    pub(crate) fn to_pb(&self) -> pb::DeleteRangeRequest {
        pb::DeleteRangeRequest {
            key: self.range.key().to_vec(),
            range_end: self.range.range_end().to_vec(),
            prev_kv: self.prev_kv,
        }
    }

    pub(crate) fn to_json(&self) -> String {
        ObjectWriter::new()
            .bytes("key", self.range.key())
            .bytes_nonempty("range_end", self.range.range_end())
            .flag("prev_kv", self.prev_kv)
            .finish()
    }
}

/// What a [`Delete`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteResponse {
    /// The header; `header.revision` is the revision of this delete.
    pub header: ResponseHeader,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted pairs, if [`Delete::prev_kv`] was asked.
    pub prev_kvs: Vec<KeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct WireDeleteResponse {
    header: WireHeader,
    deleted: json::Int,
    prev_kvs: Vec<WireKeyValue>,
}

impl From<WireDeleteResponse> for DeleteResponse {
    fn from(r: WireDeleteResponse) -> Self {
        DeleteResponse {
            header: r.header.into(),
            deleted: r.deleted.0,
            prev_kvs: json::kvs(r.prev_kvs),
        }
    }
}

impl V3Unary for Delete {
    type Output = DeleteResponse;

    fn path(&self) -> &'static str {
        "/v3/kv/deleterange"
    }

    fn replay(&self) -> Replay {
        Replay::AtMostOnce
    }

    fn body(&self) -> String {
        self.to_json()
    }

    fn read(&self, answer: Answer<'_>) -> Result<DeleteResponse, Error> {
        answer.json::<WireDeleteResponse>().map(Into::into)
    }

    fn grpc(&self) -> Option<GrpcForm> {
        grpc_form("/etcdserverpb.KV/DeleteRange", &self.to_pb())
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<DeleteResponse, Error> {
        grpc::parse_unary::<pb::DeleteRangeResponse>(answer).map(Into::into)
    }
}

/// Discards the key-value history before `revision` (`/v3/kv/compaction`).
/// Reads and watches of older revisions then fail with `Compacted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact {
    revision: i64,
    physical: bool,
}

impl Compact {
    /// Compacts up to `revision`.
    pub fn new(revision: i64) -> Self {
        Compact {
            revision,
            physical: false,
        }
    }

    /// Waits until the compaction is physically applied to the backend.
    pub fn physical(mut self) -> Self {
        self.physical = true;
        self
    }
}

impl V3Unary for Compact {
    type Output = ResponseHeader;

    fn path(&self) -> &'static str {
        "/v3/kv/compaction"
    }

    fn replay(&self) -> Replay {
        Replay::AtMostOnce
    }

    fn body(&self) -> String {
        ObjectWriter::new()
            .int("revision", self.revision)
            .flag("physical", self.physical)
            .finish()
    }

    fn read(&self, answer: Answer<'_>) -> Result<ResponseHeader, Error> {
        answer.json::<HeaderOnly>().map(|r| r.header.into())
    }

    fn grpc(&self) -> Option<GrpcForm> {
        let message = pb::CompactionRequest {
            revision: self.revision,
            physical: self.physical,
        };
        grpc_form("/etcdserverpb.KV/Compact", &message)
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<ResponseHeader, Error> {
        let r: pb::HeaderOnly = grpc::parse_unary(answer)?;
        Ok(r.header.into())
    }
}

/// A response that carries only its header.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct HeaderOnly {
    pub(crate) header: WireHeader,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;
    use crate::{Operation, Target};
    use bytes::Bytes;

    fn built<O: Operation>(op: &O) -> (String, String) {
        let endpoint = Endpoint::parse("http://127.0.0.1:2379").unwrap();
        let request = op.build(&Target::new(&endpoint, "/v2")).unwrap();
        (
            request.uri().to_string(),
            String::from_utf8(request.body().to_vec()).unwrap(),
        )
    }

    fn answer(status: u16, body: &str) -> http::Response<Bytes> {
        http::Response::builder()
            .status(status)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn get_encodes_options_and_skips_defaults() {
        let (uri, body) = built(
            &Get::new(KeyRange::prefix("a/"))
                .limit(2)
                .sort(SortTarget::Create, SortOrder::Descend)
                .serializable(),
        );
        assert_eq!(uri, "http://127.0.0.1:2379/v3/kv/range");
        assert_eq!(
            body,
            r#"{"key":"YS8=","range_end":"YTA=","limit":"2","sort_order":"DESCEND","sort_target":"CREATE","serializable":true}"#
        );
    }

    #[test]
    fn range_response_parses_with_defaults_missing() {
        let response = Get::new("foo")
            .parse(answer(
                200,
                r#"{"header":{"cluster_id":"1","member_id":"2","revision":"5","raft_term":"3"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"5","version":"2","value":"YmFy"}],"count":"1"}"#,
            ))
            .unwrap();
        assert_eq!(response.header.revision, 5);
        let kv = response.first().unwrap();
        assert_eq!((kv.key_str(), kv.value_str()), (Some("foo"), Some("bar")));
        assert_eq!(
            (kv.create_revision, kv.mod_revision, kv.version, kv.lease),
            (2, 5, 2, 0)
        );
        let empty = Get::new("x")
            .parse(answer(200, r#"{"header":{"revision":"5"}}"#))
            .unwrap();
        assert!(empty.kvs.is_empty());
        assert_eq!(empty.count, 0);
    }

    #[test]
    fn put_ignore_value_sends_no_value() {
        let (_, body) = built(&Put::new("k", "v").lease(0x10).ignore_value());
        assert_eq!(body, r#"{"key":"aw==","lease":"16","ignore_value":true}"#);
    }

    #[test]
    fn errors_and_garbage_are_told_apart() {
        let error = Get::new("k")
            .parse(answer(
                400,
                r#"{"error":"etcdserver: mvcc: required revision has been compacted","code":11,"message":"etcdserver: mvcc: required revision has been compacted"}"#,
            ))
            .unwrap_err();
        assert_eq!(
            error.as_v3().unwrap().kind,
            super::super::V3ErrorKind::Compacted
        );
        for garbage in [
            "",
            "{",
            "Not Found",
            r#"{"kvs":[{"key":"!!"}]}"#,
            r#"{"count":"x"}"#,
        ] {
            let error = Get::new("k").parse(answer(200, garbage)).unwrap_err();
            assert!(matches!(error, Error::Malformed(_)), "{garbage}: {error}");
        }
    }
}
