//! [`Operation`]: one HTTP exchange as a pure request builder plus a pure response parser.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::endpoint::Endpoint;
use crate::error::{Error, UsageError};

/// One etcd API call: builds its HTTP request and parses the response, with no I/O.
///
/// Operations are plain values (`v2::Read`, `v2::Write`, …). A transport never
/// calls these methods directly: it drives a [`Call`](crate::Call), which picks
/// the endpoint, adds credentials and applies timeouts.
pub trait Operation {
    /// What a successful response parses into.
    type Output;

    /// Builds the request against `target`. Fails only on caller misuse.
    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError>;

    /// Parses a complete response. Never panics, whatever the bytes.
    fn parse(&self, response: http::Response<Bytes>) -> Result<Self::Output, Error>;

    /// Whether the request may be sent again after a failure that may have
    /// reached the server. Every operation states it: there is no default,
    /// so a new write cannot inherit "safe to replay" by omission.
    fn replay(&self) -> Replay;

    /// How long the response may take.
    fn wait(&self) -> Wait {
        Wait::Request
    }

    /// Which etcd API the request belongs to; it decides the credentials
    /// sent. Every operation states it: there is no default.
    fn api(&self) -> Api;
}

/// The etcd API an operation speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The v2 keys API and the server-root endpoints: HTTP basic credentials.
    V2,
    /// The v3 JSON gateway (`/v3/...`): an auth token, fetched and renewed by the call.
    V3,
    /// A v3 request that must carry no token (authenticating itself).
    V3Login,
}

/// Whether an operation may be retried after it may already have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Reads: sending it twice does no harm.
    Safe,
    /// Creates, in-order appends, deletes and compare-and-swaps: at most once.
    AtMostOnce,
}

/// How long the response to an operation may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// An ordinary request: the client's per-request timeout applies.
    Request,
    /// A long poll (a watch): wait until the deadline, or forever with `None`.
    LongPoll(Option<Instant>),
    /// A long poll that may last this long from when its call starts (the
    /// call turns it into a deadline at its first poll: no clock is read).
    LongPollFor(Duration),
}

/// Where an operation's request goes: the endpoint and the API prefixes.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) version_prefix: &'a str,
    /// v3 calls go as native gRPC where they can.
    pub(crate) grpc: bool,
}

impl<'a> Target<'a> {
    /// A target on `endpoint` with the v2 API under `version_prefix` (normally `/v2`).
    pub fn new(endpoint: &'a Endpoint, version_prefix: &'a str) -> Self {
        Target {
            endpoint,
            version_prefix,
            grpc: false,
        }
    }

    /// The same target, with v3 calls sent as native gRPC where they can
    /// be ([`V3Encoding::Grpc`](crate::v3::V3Encoding::Grpc)); an endpoint
    /// with a path prefix keeps the gateway: gRPC cannot address it.
    pub fn with_grpc(mut self, grpc: bool) -> Self {
        self.grpc = grpc && self.endpoint.base_path().is_empty();
        self
    }

    /// True if v3 calls to this target go as native gRPC where they can.
    pub fn speaks_grpc(&self) -> bool {
        self.grpc
    }

    /// The endpoint the request goes to.
    pub fn endpoint(&self) -> &Endpoint {
        self.endpoint
    }

    /// The absolute URI of a path under the v2 prefix (`/keys/a` → `…/v2/keys/a`).
    ///
    /// Fails with [`UsageError::InvalidRequestUri`] if the URI cannot be formed
    /// (longer than 64 KiB, or a version prefix with characters a URI cannot hold).
    pub fn v2_uri(&self, path_and_query: &str) -> Result<http::Uri, UsageError> {
        let mut full = String::with_capacity(self.version_prefix.len() + path_and_query.len());
        full.push_str(self.version_prefix);
        full.push_str(path_and_query);
        self.endpoint.uri(&full)
    }

    /// The absolute URI of a path at the server root (`/version`); fails as [`v2_uri`](Self::v2_uri) does.
    pub fn root_uri(&self, path_and_query: &str) -> Result<http::Uri, UsageError> {
        self.endpoint.uri(path_and_query)
    }
}

/// A request with no body.
pub(crate) fn empty_request(method: http::Method, uri: http::Uri) -> http::Request<Bytes> {
    let mut request = http::Request::new(Bytes::new());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    request
}

/// A request with an `application/x-www-form-urlencoded` body.
pub(crate) fn form_request(
    method: http::Method,
    uri: http::Uri,
    form: String,
) -> http::Request<Bytes> {
    let mut request = http::Request::new(Bytes::from(form));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    request
}
