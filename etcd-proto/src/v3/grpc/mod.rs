//! etcd's native gRPC encoding of the v3 calls, beside the gateway's JSON
//! (`v3/json.rs`): the same operations, the same public types, another
//! wire.
//!
//! A gRPC call is still one `http::Request`: `POST /etcdserverpb.KV/Range`
//! (the method path at the server root), `content-type: application/grpc`,
//! `te: trailers`, and a body of length-prefixed protobuf messages
//! ([`frame`]). The transport sends it over HTTP/2 (a request's content
//! type tells it which stack to use) and hands back the complete answer
//! with its **trailers merged into the headers**, so that a unary answer
//! stays one `Input::Response`. The status comes from `grpc-status` and
//! `grpc-message` ([`status`]) and maps onto the same [`V3Error`]s as the
//! gateway's messages: etcd sends the same strings on both.
//!
//! The encoding is chosen per cluster ([`V3Encoding`]) and per endpoint: an
//! endpoint with a path prefix (`https://host/etcd`) cannot carry gRPC, whose
//! method paths are absolute, and keeps the gateway.

pub(crate) mod frame;
pub(crate) mod pb;
pub(crate) mod status;

use bytes::Bytes;

use crate::error::{Error, MalformedResponse, UsageError};
use crate::operation::Target;
use crate::v3::V3Error;

/// How v3 calls reach etcd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum V3Encoding {
    /// JSON through etcd's gRPC gateway (`/v3/...`) over HTTP/1.1: every
    /// transport, every endpoint.
    #[default]
    Gateway,
    /// Native gRPC (protobuf over HTTP/2), for the calls that have a gRPC
    /// form; the others, and endpoints with a path prefix, keep the gateway.
    Grpc,
}

/// The content type of every gRPC request and answer.
pub(crate) const CONTENT_TYPE: &str = "application/grpc";

/// True if `headers` are those of a gRPC request or answer.
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(CONTENT_TYPE.as_bytes()))
        || headers.contains_key(status::GRPC_STATUS)
}

/// The unary request of `method` (`/etcdserverpb.KV/Range`) on `target`,
/// with its framed message.
pub(crate) fn request(
    target: &Target<'_>,
    method: &str,
    framed: Bytes,
) -> Result<http::Request<Bytes>, UsageError> {
    let mut request = http::Request::new(framed);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = target.root_uri(method)?;
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    Ok(request)
}

/// The one message of a complete unary answer (trailers merged into its
/// headers): a non-OK `grpc-status` is a typed [`V3Error`]; an answer that
/// is no gRPC answer, carries no status, or holds anything but exactly one
/// well-formed message is malformed output.
pub(crate) fn parse_unary<M: prost::Message + Default>(
    response: &http::Response<Bytes>,
) -> Result<M, Error> {
    let http_status = response.status().as_u16();
    let malformed = |reason: String| -> Error {
        MalformedResponse::new(http_status, reason, response.body()).into()
    };
    match status::read(response.headers()) {
        Some((0, _)) => {}
        Some((code, message)) => return Err(V3Error::new(http_status, code, &message).into()),
        None => return Err(malformed("a gRPC answer without grpc-status".into())),
    }
    if !response.status().is_success() {
        return Err(malformed(format!(
            "a gRPC answer with HTTP status {http_status}"
        )));
    }
    let mut messages = frame::Deframer::new(usize::MAX);
    messages.push(response.body());
    let message = match messages.next() {
        Ok(Some(message)) => message,
        Ok(None) => return Err(malformed("a unary gRPC answer without its message".into())),
        Err(e) => return Err(malformed(e.to_string())),
    };
    if !messages.is_empty() {
        return Err(malformed(
            "a unary gRPC answer with more than one message".into(),
        ));
    }
    M::decode(message).map_err(|e| malformed(format!("v3 protobuf answer: {e}")))
}
