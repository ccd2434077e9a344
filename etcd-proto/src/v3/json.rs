//! The JSON gateway's encoding, in one place: how v3 messages become request
//! bodies and how response bodies become the encoding-free types of [`super`].
//!
//! The gateway's rules (etcd-wire §3c): bytes are standard padded base64,
//! 64-bit integers are strings on output (numbers or strings are accepted on
//! input), fields holding their default value are omitted, output names are
//! the proto names (`create_revision`). Every decoder here treats a missing
//! field as its default and never panics.

use std::borrow::Cow;
use std::fmt::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::error::V3Error;
use super::types::{KeyValue, ResponseHeader};
use crate::error::{Error, MalformedResponse};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Writes one JSON object field by field, skipping defaults as the gateway does.
#[derive(Debug, Default)]
pub(crate) struct ObjectWriter {
    out: String,
}

impl ObjectWriter {
    pub(crate) fn new() -> Self {
        ObjectWriter {
            out: String::from("{"),
        }
    }

    fn name(&mut self, name: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        self.out.push('"');
        self.out.push_str(name);
        self.out.push_str("\":");
    }

    /// A bytes field, base64-encoded; always written (an empty key is meaningful).
    pub(crate) fn bytes(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.name(name);
        self.out.push('"');
        B64.encode_string(value, &mut self.out);
        self.out.push('"');
        self
    }

    /// A bytes field, skipped when empty.
    pub(crate) fn bytes_nonempty(&mut self, name: &str, value: &[u8]) -> &mut Self {
        if !value.is_empty() {
            self.bytes(name, value);
        }
        self
    }

    /// A 64-bit integer as a JSON string, skipped when 0.
    pub(crate) fn int(&mut self, name: &str, value: i64) -> &mut Self {
        if value != 0 {
            self.name(name);
            let _ = write!(self.out, "\"{value}\"");
        }
        self
    }

    /// A `true` flag; `false` is the default and is skipped.
    pub(crate) fn flag(&mut self, name: &str, value: bool) -> &mut Self {
        if value {
            self.name(name);
            self.out.push_str("true");
        }
        self
    }

    /// An enum by its proto name, skipped when it is the default.
    pub(crate) fn enum_name(&mut self, name: &str, value: &str, default: &str) -> &mut Self {
        if value != default {
            self.string(name, value);
        }
        self
    }

    /// A string field (JSON-escaped).
    pub(crate) fn string(&mut self, name: &str, value: &str) -> &mut Self {
        self.name(name);
        // Writing a str to a String cannot fail.
        self.out
            .push_str(&serde_json::to_string(value).unwrap_or_default());
        self
    }

    /// A field whose value is already-encoded JSON.
    pub(crate) fn raw(&mut self, name: &str, json: &str) -> &mut Self {
        self.name(name);
        self.out.push_str(json);
        self
    }

    /// A JSON array of already-encoded values.
    pub(crate) fn array<I: IntoIterator<Item = String>>(
        &mut self,
        name: &str,
        items: I,
    ) -> &mut Self {
        self.name(name);
        self.out.push('[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(&item);
        }
        self.out.push(']');
        self
    }

    pub(crate) fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.out);
        out.push('}');
        out
    }
}

/// A `POST` of a JSON body to a gateway path.
pub(crate) fn post(uri: http::Uri, body: String) -> http::Request<Bytes> {
    let mut request = http::Request::new(Bytes::from(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    request
}

/// Parses a unary gateway response: a JSON error body becomes
/// [`Error::Etcd`] (classified by its message), anything else that is not a
/// 2xx JSON object of shape `T` becomes [`Error::Malformed`].
pub(crate) fn parse_unary<'a, T: Deserialize<'a>>(
    status: http::StatusCode,
    body: &'a [u8],
) -> Result<T, Error> {
    if !status.is_success() {
        return Err(error_body(status.as_u16(), body));
    }
    serde_json::from_slice(body).map_err(|e| {
        MalformedResponse::new(status.as_u16(), format!("v3 response: {e}"), body).into()
    })
}

/// The error a non-2xx gateway answer carries. Every body shape is read
/// (3.4/3.5: `{"error","code","message"}`, 3.6: `{"code","message","details"}`,
/// and a stream endpoint's `{"error":{"grpc_code","http_code","message"}}`),
/// in any field order; a body that is no etcd error (a `404 Not Found` page)
/// is malformed output.
pub(crate) fn error_body(status: u16, body: &[u8]) -> Error {
    if let Ok(StreamLine::<serde::de::IgnoredAny> {
        error: Some(error), ..
    }) = serde_json::from_slice(body)
    {
        return error.into_error();
    }
    #[derive(Deserialize)]
    struct Body<'a> {
        #[serde(default, borrow)]
        error: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        message: Option<Cow<'a, str>>,
        #[serde(default)]
        code: Option<u32>,
    }
    match serde_json::from_slice::<Body<'_>>(body) {
        Ok(parsed) if parsed.message.is_some() || parsed.error.is_some() => {
            let message = parsed.message.or(parsed.error).unwrap_or_default();
            V3Error::new(status, parsed.code.unwrap_or(2), &message).into()
        }
        // etcd's gateway refuses a client certificate with a common name
        // while auth is on (it cannot pass the CN on as the user), in plain text.
        _ if body.starts_with(b"CommonName of client sending a request against gateway") => {
            MalformedResponse::new(
                status,
                "etcd's JSON gateway refuses client certificates that carry a common name while auth is on: use a certificate without one (and v3 credentials)",
                body,
            )
            .into()
        }
        _ => MalformedResponse::new(status, "not an etcd v3 error body", body).into(),
    }
}

/// One line of a gateway stream: `{"result": …}` or `{"error": {…}}`.
#[derive(Deserialize)]
pub(crate) struct StreamLine<T> {
    #[serde(default = "Option::default")]
    pub(crate) result: Option<T>,
    #[serde(default)]
    pub(crate) error: Option<StreamError>,
}

/// A stream's error object (not a `google.rpc.Status`: etcd-wire §3d).
#[derive(Deserialize)]
pub(crate) struct StreamError {
    #[serde(default)]
    grpc_code: Option<u32>,
    #[serde(default)]
    http_code: Option<u16>,
    #[serde(default)]
    message: String,
}

impl StreamError {
    pub(crate) fn into_error(self) -> Error {
        V3Error::new(
            self.http_code.unwrap_or(500),
            self.grpc_code.unwrap_or(2),
            &self.message,
        )
        .into()
    }
}

/// Parses one stream line into its result, its error, or a malformed-output error.
pub(crate) fn parse_stream_line<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, Error> {
    match serde_json::from_slice::<StreamLine<T>>(line) {
        Ok(StreamLine {
            result: Some(result),
            ..
        }) => Ok(result),
        Ok(StreamLine {
            error: Some(error), ..
        }) => Err(error.into_error()),
        Ok(_) => {
            Err(MalformedResponse::new(200, "stream line without result or error", line).into())
        }
        Err(e) => Err(MalformedResponse::new(200, format!("v3 stream line: {e}"), line).into()),
    }
}

// ---- decoding helpers ------------------------------------------------------

/// A base64 bytes field as the gateway sends it.
#[derive(Debug, Default, Clone)]
pub(crate) struct B64Bytes(pub(crate) Vec<u8>);

impl<'de> Deserialize<'de> for B64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text: Cow<'de, str> = Deserialize::deserialize(d)?;
        B64.decode(text.as_bytes())
            .map(B64Bytes)
            .map_err(|e| de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// A 64-bit integer sent as a string (or, leniently, as a number).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Int(pub(crate) i64);

/// An unsigned 64-bit integer sent as a string (or a number).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Uint(pub(crate) u64);

struct IntVisitor<T>(std::marker::PhantomData<T>);

impl<T: std::str::FromStr + TryFrom<i64> + TryFrom<u64>> Visitor<'_> for IntVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a 64-bit integer or a string holding one")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse()
            .map_err(|_| E::custom(format!("not an integer: {v:?}")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom("integer out of range"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom("integer out of range"))
    }
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor::<i64>(std::marker::PhantomData))
            .map(Int)
    }
}

impl<'de> Deserialize<'de> for Uint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor::<u64>(std::marker::PhantomData))
            .map(Uint)
    }
}

/// `ResponseHeader` on the wire.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireHeader {
    cluster_id: Uint,
    member_id: Uint,
    revision: Int,
    raft_term: Uint,
}

impl From<WireHeader> for ResponseHeader {
    fn from(h: WireHeader) -> Self {
        ResponseHeader {
            cluster_id: h.cluster_id.0,
            member_id: h.member_id.0,
            revision: h.revision.0,
            raft_term: h.raft_term.0,
        }
    }
}

/// `KeyValue` on the wire.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireKeyValue {
    key: B64Bytes,
    create_revision: Int,
    mod_revision: Int,
    version: Int,
    value: B64Bytes,
    lease: Int,
}

impl From<WireKeyValue> for KeyValue {
    fn from(kv: WireKeyValue) -> Self {
        KeyValue {
            key: kv.key.0,
            create_revision: kv.create_revision.0,
            mod_revision: kv.mod_revision.0,
            version: kv.version.0,
            value: kv.value.0,
            lease: kv.lease.0,
        }
    }
}

/// Converts a list of wire pairs.
pub(crate) fn kvs(list: Vec<WireKeyValue>) -> Vec<KeyValue> {
    list.into_iter().map(KeyValue::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_skips_defaults_and_encodes_bytes() {
        let body = ObjectWriter::new()
            .bytes("key", b"foo")
            .bytes_nonempty("range_end", b"")
            .int("limit", 0)
            .int("revision", 7)
            .flag("keys_only", false)
            .flag("serializable", true)
            .finish();
        assert_eq!(body, r#"{"key":"Zm9v","revision":"7","serializable":true}"#);
    }

    #[test]
    fn integers_accept_strings_and_numbers() {
        let h: WireHeader = serde_json::from_str(
            r#"{"cluster_id":"18446744073709551615","revision":12,"raft_term":"3"}"#,
        )
        .unwrap();
        let h = ResponseHeader::from(h);
        assert_eq!(h.cluster_id, u64::MAX);
        assert_eq!(h.revision, 12);
        assert_eq!(h.member_id, 0);
    }

    #[test]
    fn error_bodies_of_every_version_are_read() {
        for body in [
            &br#"{"error":"etcdserver: invalid auth token","code":16,"message":"etcdserver: invalid auth token"}"#[..],
            br#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#,
            br#"{"code":16,"message":"etcdserver: invalid auth token","details":[]}"#,
        ] {
            let error = error_body(401, body);
            let v3 = error.as_v3().expect("a v3 error");
            assert_eq!(v3.kind, super::super::V3ErrorKind::InvalidAuthToken);
        }
        assert!(matches!(error_body(404, b"Not Found"), Error::Malformed(_)));
    }
}
