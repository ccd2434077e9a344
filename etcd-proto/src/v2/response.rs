//! Parsing v2 responses: [`KeysResponse`], the headers in [`ResponseMeta`], and errors.

use bytes::Bytes;
use serde::Deserialize;

use super::error::V2ErrorBody;
use super::node::Node;
use crate::error::{Error, MalformedResponse};

/// What a v2 keys request returned (python-etcd's `EtcdResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysResponse {
    /// What etcd did.
    pub action: Action,
    /// The key or directory acted on (after the action).
    pub node: Node,
    /// The node before the action, when there was one.
    pub prev_node: Option<Node>,
    /// True if the request created the key (HTTP 201).
    pub new_key: bool,
    /// The cluster state headers of the response.
    pub meta: ResponseMeta,
}

/// The cluster state etcd reports in v2 response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    /// `X-Etcd-Index`: the etcd index when the response was made (for a watch,
    /// when the watch *started*).
    pub etcd_index: Option<u64>,
    /// `X-Raft-Index`.
    pub raft_index: Option<u64>,
    /// `X-Raft-Term`: grows with every leader election.
    pub raft_term: Option<u64>,
    /// `X-Etcd-Cluster-Id`.
    pub cluster_id: Option<String>,
}

impl ResponseMeta {
    /// Reads the etcd headers in one pass; absent or unreadable headers are
    /// `None`, and of a repeated header the first counts.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        fn number(value: &http::HeaderValue) -> Option<u64> {
            std::str::from_utf8(value.as_bytes())
                .ok()?
                .trim()
                .parse()
                .ok()
        }
        let mut meta = ResponseMeta::default();
        for (name, value) in headers {
            // Header names are stored lowercase.
            match name.as_str() {
                "x-etcd-index" if meta.etcd_index.is_none() => meta.etcd_index = number(value),
                "x-raft-index" if meta.raft_index.is_none() => meta.raft_index = number(value),
                "x-raft-term" if meta.raft_term.is_none() => meta.raft_term = number(value),
                "x-etcd-cluster-id" if meta.cluster_id.is_none() => {
                    meta.cluster_id = value.to_str().ok().map(str::to_owned)
                }
                _ => {}
            }
        }
        meta
    }
}

/// What a v2 request did to the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// A read.
    Get,
    /// An unconditional write.
    Set,
    /// A create (`prevExist=false`, or an in-order key).
    Create,
    /// An update (`prevExist=true`).
    Update,
    /// A delete.
    Delete,
    /// A write guarded by `prevValue` / `prevIndex`.
    CompareAndSwap,
    /// A delete guarded by `prevValue` / `prevIndex`.
    CompareAndDelete,
    /// A TTL ran out (seen by watchers).
    Expire,
    /// An action this client does not know.
    Other(String),
}

impl Action {
    fn from_name(name: &str) -> Action {
        match name {
            "get" => Action::Get,
            "set" => Action::Set,
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            "compareAndSwap" => Action::CompareAndSwap,
            "compareAndDelete" => Action::CompareAndDelete,
            "expire" => Action::Expire,
            other => Action::Other(other.to_owned()),
        }
    }

    /// The name etcd uses, e.g. `compareAndSwap`.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Get => "get",
            Action::Set => "set",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::CompareAndSwap => "compareAndSwap",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
            Action::Other(name) => name,
        }
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(Action::from_name(&name))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeysBody {
    action: Action,
    #[serde(default)]
    node: Option<Node>,
    #[serde(default)]
    prev_node: Option<Node>,
}

/// Parses the response to any v2 keys request.
pub(crate) fn parse_keys_response(response: http::Response<Bytes>) -> Result<KeysResponse, Error> {
    let (parts, body) = response.into_parts();
    let status = parts.status.as_u16();
    if !parts.status.is_success() {
        return Err(error_response(status, &body));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(MalformedResponse::new(
            status,
            "empty body where a v2 result was expected",
            &body,
        )
        .into());
    }
    let parsed: KeysBody = json(status, &body)?;
    let mut node = parsed.node.unwrap_or_default();
    // A deleted directory comes back without `dir`; its previous state says what it was.
    if let Some(prev) = &parsed.prev_node {
        if prev.dir && node.value.is_none() {
            node.dir = true;
        }
    }
    Ok(KeysResponse {
        action: parsed.action,
        node,
        prev_node: parsed.prev_node,
        new_key: status == 201,
        meta: ResponseMeta::from_headers(&parts.headers),
    })
}

/// Turns a non-2xx response into the error it reports.
pub(crate) fn error_response(status: u16, body: &[u8]) -> Error {
    if let Ok(error) = serde_json::from_slice::<V2ErrorBody>(body) {
        return error.into_error(status).into();
    }
    let reason = match status {
        404 => "HTTP 404 without an etcd error: is the v2 API enabled (--enable-v2) and the version prefix right?".to_owned(),
        300..=399 => format!("unexpected redirect (HTTP {status})"),
        _ => format!("HTTP {status} without an etcd error body"),
    };
    MalformedResponse::new(status, reason, body).into()
}

/// Decodes a JSON body, mapping failures to [`MalformedResponse`].
pub(crate) fn json<'a, T: Deserialize<'a>>(status: u16, body: &'a [u8]) -> Result<T, Error> {
    serde_json::from_slice(body)
        .map_err(|e| MalformedResponse::new(status, format!("invalid JSON: {e}"), body).into())
}
