//! One request a flow sent, decoded once for every model, script and test.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

/// One request a flow asked for, as the simulated etcd sees it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: http::Method,
    /// The whole URI, scheme and authority included.
    pub uri: String,
    /// For `/v2/keys` requests: the key after `/v2/keys`, percent-decoded
    /// (empty otherwise).
    pub key: String,
    /// The query's pairs, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// A form body's pairs, percent-decoded, in order (empty otherwise).
    pub form: Vec<(String, String)>,
    pub body: Bytes,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    /// The transmit's timeout.
    pub timeout: Option<Duration>,
    /// Virtual time when it was sent, since the simulation began.
    pub at: Duration,
    /// The flow opened it as a stream (`Open`): its answer's body is read
    /// piece by piece.
    pub stream: bool,
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `a=1&b=2`, percent-decoded (`+` stays `+`: etcd's forms encode spaces).
pub(crate) fn pairs(s: &str) -> Vec<(String, String)> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn header(request: &http::Request<Bytes>, name: http::header::HeaderName) -> Option<String> {
    request
        .headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

impl Sent {
    /// Decodes `request`, sent at `at` with `timeout`.
    pub fn new(request: &http::Request<Bytes>, timeout: Option<Duration>, at: Duration) -> Sent {
        let content_type = header(request, http::header::CONTENT_TYPE);
        let body = request.body().clone();
        let is_form = content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        Sent {
            method: request.method().clone(),
            uri: request.uri().to_string(),
            key: request
                .uri()
                .path()
                .strip_prefix("/v2/keys")
                .map(decode)
                .unwrap_or_default(),
            query: request.uri().query().map(pairs).unwrap_or_default(),
            form: if is_form {
                pairs(&String::from_utf8_lossy(&body))
            } else {
                Vec::new()
            },
            body,
            content_type,
            authorization: header(request, http::header::AUTHORIZATION),
            timeout,
            at,
            stream: false,
        }
    }

    /// The body as JSON (`Null` if it is none).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// `scheme://authority`.
    pub fn host(&self) -> &str {
        let after_scheme = self.uri.find("://").map_or(0, |i| i + 3);
        let end = self.uri[after_scheme..]
            .find('/')
            .map_or(self.uri.len(), |i| i + after_scheme);
        &self.uri[..end]
    }

    /// The path and query, without scheme and authority.
    pub fn target(&self) -> &str {
        &self.uri[self.host().len()..]
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        let t = self.target();
        t.split('?').next().unwrap_or(t)
    }

    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        find(&self.query, name)
    }

    /// A form field.
    pub fn field(&self, name: &str) -> Option<&str> {
        find(&self.form, name)
    }

    /// When the request's own timeout runs out.
    pub fn ends(&self) -> Option<Duration> {
        self.timeout.map(|t| self.at + t)
    }

    /// A v2 long poll (`wait=true`).
    pub fn is_poll(&self) -> bool {
        self.param("wait") == Some("true")
    }

    /// A v2 long poll's `waitIndex`.
    pub fn wait_index(&self) -> Option<u64> {
        self.param("waitIndex")
            .map(|v| v.parse().expect("numeric waitIndex"))
    }

    /// The anchoring read of a v2 watch from now: a plain `GET` of the key,
    /// with no query at all (a resync read has `sorted` and `quorum`).
    pub fn is_anchor(&self) -> bool {
        self.method == http::Method::GET
            && self.path().starts_with("/v2/keys")
            && self.query.is_empty()
    }

    /// The member check before a v2 renewal: a quorum read of the key, with
    /// `quorum=true` and nothing else (a resync read is also `sorted`).
    pub fn is_check(&self) -> bool {
        self.method == http::Method::GET
            && self.path().starts_with("/v2/keys")
            && self.query.len() == 1
            && self.param("quorum") == Some("true")
    }

    /// What a v2 keys request is, in a word.
    pub fn kind(&self) -> &'static str {
        match self.method.as_str() {
            "POST" => "POST",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            "GET" if self.is_poll() => "POLL",
            "GET" if self.param("recursive") == Some("true") => "RESYNC",
            "GET" if self.param("sorted") == Some("true") => "LIST",
            _ => "GET",
        }
    }
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `pairs` as owned, sorted pairs, for order-free comparison.
pub fn sorted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    pairs.sort();
    pairs
}
