//! The four kinds of failure, kept apart so a caller can tell whose fault it was.
//!
//! | kind | whose fault | example |
//! |---|---|---|
//! | [`Error::Usage`] | the caller's: the request was never sent | a value on a directory write |
//! | [`Error::Malformed`] | the server's output could not be understood | truncated JSON, a 404 page where JSON was due |
//! | [`Error::Etcd`] | etcd understood the request and refused it | v2 errorCode 100 "Key not found" |
//! | [`Error::Transport`] | the bytes never made the round trip | connection refused by `http://127.0.0.1:2379` |
//! | [`Error::Discovery`] | DNS SRV discovery found no cluster (no default is used) | NXDOMAIN for both SRV names |
//!
//! The core never produces [`Error::Transport`] by itself: transports build a
//! [`TransportError`] (naming the endpoint) and hand it to the flow they drive.

use std::fmt;

use crate::v2::V2Error;

/// Any failure of an etcd operation.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The caller asked for something that cannot be sent; nothing reached the server.
    Usage(UsageError),
    /// The server answered with bytes this client cannot interpret.
    Malformed(MalformedResponse),
    /// etcd understood the request and reported an error.
    Etcd(EtcdError),
    /// The request or its response was lost on the way (connect, I/O, timeout).
    Transport(TransportError),
    /// Every endpoint failed; each one's last error is kept.
    Unavailable(Unavailable),
    /// An endpoint answered for a different cluster than the one expected.
    ClusterMismatch(ClusterMismatch),
    /// DNS SRV discovery found no endpoint (see [`srv`](crate::srv)): no
    /// client was built and nothing was sent to etcd.
    Discovery(crate::srv::DiscoveryError),
    /// A lock was lost, not found, or not acquired in time.
    Lock(crate::v2::LockError),
    /// A v3 lock or election (the Mutex recipe) was busy, timed out, lost
    /// its session, or is no longer held.
    Mutex(crate::v3::MutexError),
    /// An optimistic update lost the race to other writers every time it tried.
    Contention(Contention),
    /// A TTL ran out before a renewal got through (a v2 lock key, a v3
    /// lease): what it kept must be taken as gone, and another client may
    /// already hold the lock.
    TtlExpired(TtlExpired),
}

/// A TTL ran out with no successful renewal since: the holder learns of the
/// loss no later than etcd can expire it (renewals count from the moment
/// they were sent).
#[derive(Debug)]
pub struct TtlExpired {
    /// What expired: `lock key /_locks/n/13`, `lease 694d77aa9e1e5e15`.
    pub what: String,
    /// The TTL that ran out.
    pub ttl: std::time::Duration,
    /// Why the last renewal failed, if one was tried.
    pub last_error: Option<Box<Error>>,
}

impl fmt::Display for TtlExpired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: its TTL ({:?}) ran out without a successful renewal",
            self.what, self.ttl
        )?;
        if let Some(last) = &self.last_error {
            write!(f, " (last renewal: {last})")?;
        }
        Ok(())
    }
}

impl std::error::Error for TtlExpired {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.last_error
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An optimistic read-modify-write gave up: every attempt found the key
/// changed by another writer between its read and its write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contention {
    /// The key.
    pub key: String,
    /// How many writes were attempted.
    pub attempts: u32,
}

impl fmt::Display for Contention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up updating {:?}: other writers changed it before each of {} attempts",
            self.key, self.attempts
        )
    }
}

impl std::error::Error for Contention {}

/// The broad class of an [`Error`], for matching without destructuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`Error::Usage`].
    Usage,
    /// See [`Error::Malformed`].
    Malformed,
    /// See [`Error::Etcd`].
    Etcd,
    /// See [`Error::Transport`] and [`Error::Unavailable`].
    Transport,
    /// See [`Error::ClusterMismatch`].
    ClusterMismatch,
    /// See [`Error::Discovery`].
    Discovery,
    /// See [`Error::Lock`] (v2), [`Error::Mutex`] (v3) and [`Error::TtlExpired`].
    Lock,
    /// See [`Error::Contention`].
    Contention,
}

impl Error {
    /// The broad class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) => ErrorKind::Usage,
            Error::Malformed(_) => ErrorKind::Malformed,
            Error::Etcd(_) => ErrorKind::Etcd,
            Error::Transport(_) | Error::Unavailable(_) => ErrorKind::Transport,
            Error::ClusterMismatch(_) => ErrorKind::ClusterMismatch,
            Error::Discovery(_) => ErrorKind::Discovery,
            Error::Lock(_) | Error::Mutex(_) | Error::TtlExpired(_) => ErrorKind::Lock,
            Error::Contention(_) => ErrorKind::Contention,
        }
    }

    /// The v3 error etcd reported, if this is one.
    pub fn as_v3(&self) -> Option<&crate::v3::V3Error> {
        match self {
            Error::Etcd(EtcdError::V3(e)) => Some(e),
            _ => None,
        }
    }

    /// The etcd v2 error, if etcd reported one.
    pub fn as_v2(&self) -> Option<&V2Error> {
        match self {
            Error::Etcd(EtcdError::V2(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether the request may have reached etcd and taken effect: `false`
    /// only when it certainly did not (it was never sent, nothing answered
    /// it, or etcd refused it before proposing it). A write that fails with
    /// `true` may or may not have been applied: read before writing again.
    ///
    /// | error | may have been applied |
    /// |---|---|
    /// | [`Error::Usage`], [`Error::Discovery`], [`Error::Contention`] | no |
    /// | [`Error::Transport`] of kind `Connect` or `Tls` | no |
    /// | [`Error::Transport`] of kind `Timeout`, `Io` or `Http` | **yes** |
    /// | [`Error::Etcd`]: a raft or request timeout (v2 errorCode 300 "timed out", v3 `request timed out`, …) | **yes** |
    /// | [`Error::Etcd`]: any other refusal (key not found, compare failed, no leader, …) | no |
    /// | [`Error::Malformed`], [`Error::ClusterMismatch`] | **yes** (something answered it) |
    /// | [`Error::Unavailable`] | if any endpoint's failure may have |
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            Error::Usage(_) | Error::Discovery(_) | Error::Contention(_) => false,
            Error::Transport(t) => !t.request_not_sent(),
            Error::Unavailable(u) => u.failures.iter().any(|(_, e)| e.may_have_been_applied()),
            Error::Etcd(EtcdError::V3(e)) => e.is_transient() && !e.retry_safe(),
            Error::Etcd(EtcdError::V2(e)) => {
                e.code == crate::v2::V2ErrorCode::RaftInternal
                    && e.cause.as_deref().is_some_and(|c| c.contains("timed out"))
            }
            Error::Malformed(_) | Error::ClusterMismatch(_) => true,
            Error::Lock(_) | Error::Mutex(_) | Error::TtlExpired(_) => false,
        }
    }

    /// True for errors that say "not now" rather than "never": an election,
    /// a raft timeout, overload, a proxy or a member in trouble answering a
    /// 5xx without an etcd error body. Worth another attempt, on another
    /// member, for a request that may be replayed. This is the one table of
    /// transient errors, v2 and v3; calls and watches both go by it.
    ///
    /// | error | transient |
    /// |---|---|
    /// | v3: no leader, leader changed, too many requests, token to renew, request timed out, deadline exceeded, any gRPC code 14 (unavailable) | yes |
    /// | v2: errorCode 301 (leader election); 300 (raft internal) whose cause says timed out, leader or stopped | yes |
    /// | [`Error::Malformed`] (a 5xx without an etcd body, or bytes that do not parse) | yes |
    /// | anything else | no |
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Etcd(EtcdError::V3(e)) => e.is_transient(),
            Error::Etcd(EtcdError::V2(e)) => match e.code {
                crate::v2::V2ErrorCode::LeaderElect => true,
                crate::v2::V2ErrorCode::RaftInternal => e.cause.as_deref().is_some_and(|c| {
                    c.contains("timed out") || c.contains("leader") || c.contains("stopped")
                }),
                _ => false,
            },
            Error::Malformed(_) => true,
            _ => false,
        }
    }

    /// True if etcd reported v2 errorCode 100 (key not found).
    pub fn is_key_not_found(&self) -> bool {
        self.as_v2()
            .is_some_and(|e| e.code == crate::v2::V2ErrorCode::KeyNotFound)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(e) => write!(f, "invalid request: {e}"),
            Error::Malformed(e) => write!(f, "malformed response: {e}"),
            Error::Etcd(e) => write!(f, "etcd error: {e}"),
            Error::Transport(e) => write!(f, "transport error: {e}"),
            Error::Unavailable(e) => e.fmt(f),
            Error::ClusterMismatch(e) => e.fmt(f),
            Error::Discovery(e) => e.fmt(f),
            Error::Lock(e) => e.fmt(f),
            Error::Mutex(e) => e.fmt(f),
            Error::Contention(e) => e.fmt(f),
            Error::TtlExpired(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Usage(e) => Some(e),
            Error::Malformed(e) => Some(e),
            Error::Etcd(e) => Some(e),
            Error::Transport(e) => Some(e),
            Error::Unavailable(e) => Some(e),
            Error::ClusterMismatch(e) => Some(e),
            Error::Discovery(e) => Some(e),
            Error::Lock(e) => Some(e),
            Error::Mutex(e) => Some(e),
            Error::Contention(e) => Some(e),
            Error::TtlExpired(e) => Some(e),
        }
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        Error::Usage(e)
    }
}
impl From<MalformedResponse> for Error {
    fn from(e: MalformedResponse) -> Self {
        Error::Malformed(e)
    }
}
impl From<TtlExpired> for Error {
    fn from(e: TtlExpired) -> Self {
        Error::TtlExpired(e)
    }
}
impl From<Contention> for Error {
    fn from(e: Contention) -> Self {
        Error::Contention(e)
    }
}

impl From<crate::v3::V3Error> for Error {
    fn from(e: crate::v3::V3Error) -> Self {
        Error::Etcd(EtcdError::V3(e))
    }
}

impl From<V2Error> for Error {
    fn from(e: V2Error) -> Self {
        Error::Etcd(EtcdError::V2(e))
    }
}
impl From<crate::v2::LockError> for Error {
    fn from(e: crate::v2::LockError) -> Self {
        Error::Lock(e)
    }
}
impl From<crate::v3::MutexError> for Error {
    fn from(e: crate::v3::MutexError) -> Self {
        Error::Mutex(e)
    }
}
impl From<crate::srv::DiscoveryError> for Error {
    fn from(e: crate::srv::DiscoveryError) -> Self {
        Error::Discovery(e)
    }
}
impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}

/// The caller asked for something that cannot be sent. Nothing reached the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// The key has an empty, `.` or `..` segment (`a//b`, `a/./b`). etcd v2 would
    /// redirect such a path to a *different* key, so it is refused instead.
    NonCanonicalKey {
        /// The key as given.
        key: String,
    },
    /// A directory cannot hold a value.
    DirectoryWithValue,
    /// A read-modify-write of a directory: it has no value to update.
    DirectoryHasNoValue {
        /// The directory.
        key: String,
    },
    /// A refresh only bumps the TTL; it cannot carry a value.
    RefreshWithValue,
    /// A refresh needs a TTL.
    RefreshWithoutTtl,
    /// etcd v2 values are JSON strings: they must be valid UTF-8.
    ValueNotUtf8 {
        /// Byte offset of the first invalid sequence.
        valid_up_to: usize,
    },
    /// An endpoint URL could not be used.
    InvalidEndpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The request URI could not be formed: longer than the 64 KiB an
    /// `http::Uri` can hold (a huge key or `prevValue`), or a version prefix with
    /// characters a URI cannot hold. Nothing was sent.
    InvalidRequestUri {
        /// Why the URI was refused.
        reason: String,
    },
    /// The client was configured with no endpoint at all.
    NoEndpoints,
    /// The TLS settings cannot be used (unreadable PEM, no trusted CA).
    InvalidTls {
        /// What is wrong with them.
        reason: String,
    },
    /// An `https://` endpoint was given to a client built without TLS.
    TlsUnsupported {
        /// The endpoint.
        endpoint: String,
        /// The client crate, e.g. `etcd-blocking`.
        client: &'static str,
    },
    /// Native gRPC was asked of a client whose transport has no HTTP/2.
    GrpcUnsupported {
        /// The client crate, e.g. `etcd-blocking`.
        client: &'static str,
    },
    /// A flow was driven out of order (a bug in the transport driving it).
    FlowOutOfOrder {
        /// What the flow expected instead.
        expected: &'static str,
    },
    /// The flow was told to stop ([`Input::Stop`](crate::Input::Stop))
    /// before it reached its result: what it was doing is left as if it
    /// had been dropped.
    Stopped,
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::NonCanonicalKey { key } => write!(
                f,
                "key {key:?} has an empty, '.' or '..' segment; etcd v2 would store it under a different, cleaned key"
            ),
            UsageError::DirectoryWithValue => f.write_str("cannot create a directory with a value"),
            UsageError::DirectoryHasNoValue { key } => {
                write!(f, "{key} is a directory: it has no value to update")
            }
            UsageError::RefreshWithValue => f.write_str("a refresh cannot change the value"),
            UsageError::RefreshWithoutTtl => f.write_str("a refresh needs a TTL"),
            UsageError::ValueNotUtf8 { valid_up_to } => write!(
                f,
                "etcd v2 values must be UTF-8 (invalid byte at offset {valid_up_to})"
            ),
            UsageError::InvalidEndpoint { url, reason } => {
                write!(f, "invalid endpoint {url:?}: {reason}")
            }
            UsageError::InvalidRequestUri { reason } => {
                write!(f, "cannot form the request URI: {reason}")
            }
            UsageError::NoEndpoints => f.write_str("no endpoint configured"),
            UsageError::InvalidTls { reason } => write!(f, "unusable TLS settings: {reason}"),
            UsageError::TlsUnsupported { endpoint, client } => write!(
                f,
                "{endpoint} needs TLS, and {client} does not speak TLS yet: use an http:// endpoint (or a TLS-terminating proxy in front of etcd)"
            ),
            UsageError::GrpcUnsupported { client } => write!(
                f,
                "{client} speaks HTTP/1.1 only, so v3 goes through etcd's JSON gateway: native gRPC needs an async client (etcd-tokio or etcd-async-std)"
            ),
            UsageError::FlowOutOfOrder { expected } => {
                write!(f, "flow driven out of order: expected {expected}")
            }
            UsageError::Stopped => f.write_str("stopped before it finished"),
        }
    }
}

impl std::error::Error for UsageError {}

/// The server answered with something this client cannot interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedResponse {
    /// The HTTP status of the response.
    pub status: u16,
    /// What was wrong.
    pub reason: String,
    /// The start of the body (at most 200 bytes, lossily decoded), for diagnosis.
    pub body_excerpt: String,
}

impl MalformedResponse {
    /// A malformed-response error for `status`, `reason` and the offending `body`.
    pub fn new(status: u16, reason: impl Into<String>, body: &[u8]) -> Self {
        let end = body.len().min(200);
        MalformedResponse {
            status,
            reason: reason.into(),
            body_excerpt: String::from_utf8_lossy(&body[..end]).into_owned(),
        }
    }
}

impl fmt::Display for MalformedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.reason)?;
        if !self.body_excerpt.is_empty() {
            write!(f, " (body starts {:?})", self.body_excerpt)?;
        }
        Ok(())
    }
}

impl std::error::Error for MalformedResponse {}

/// An error etcd reported, by API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EtcdError {
    /// An error of the v2 keys API (`{"errorCode": …}`).
    V2(V2Error),
    /// An error of the v3 gateway (`{"error", "code", "message"}`).
    V3(crate::v3::V3Error),
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtcdError::V2(e) => e.fmt(f),
            EtcdError::V3(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EtcdError {}

/// What went wrong on the way to or from the server: one failure model for
/// every transport. A transport reports what it observed; the core decides
/// what it means for retries and failover ([`TransportError::request_not_sent`]).
///
/// | observed fault | kind | request may have been sent |
/// |---|---|---|
/// | connection refused, unreachable, name not resolved, connect timeout | `Connect` | no |
/// | connection reset while connecting (before the socket reported it made) | `Connect` | no |
/// | no connection before the request's deadline | `Connect` | no |
/// | an idle pooled connection found closed before the request was written | `Connect` | no |
/// | connection accepted, then closed (FIN) or reset (RST) before the whole answer | `Io` | yes |
/// | the answer cut short in its head or its body (FIN or RST) | `Io` | yes |
/// | connected, then nothing (or not all) arrived by the deadline (a blackhole, a stall, a frozen member) | `Timeout` | yes |
/// | a streamed response silent past its read deadline | `Timeout` | yes |
/// | bytes that are not HTTP, a head or body over the size limit | `Http` | yes |
/// | a TLS handshake that failed | `Tls` | no |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// No connection was made, or the HTTP stack knows the request was not
    /// written: the request was certainly not sent.
    Connect,
    /// A deadline passed after the connection was made, before the response
    /// (or the next chunk of a streamed one) arrived.
    Timeout,
    /// The connection closed or broke after it was made, before the whole
    /// response arrived: the request may have been sent.
    Io,
    /// The server's bytes are not valid HTTP, or exceed a size limit.
    Http,
    /// TLS failed.
    Tls,
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure to complete the HTTP exchange with one endpoint.
#[derive(Debug)]
pub struct TransportError {
    endpoint: String,
    kind: TransportErrorKind,
    source: Option<BoxError>,
}

impl TransportError {
    /// A transport failure talking to `endpoint`.
    pub fn new(
        endpoint: impl Into<String>,
        kind: TransportErrorKind,
        source: impl Into<BoxError>,
    ) -> Self {
        TransportError {
            endpoint: endpoint.into(),
            kind,
            source: Some(source.into()),
        }
    }

    /// The endpoint that failed, e.g. `http://127.0.0.1:2379`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What kind of failure it was.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// True if the request certainly never reached the server (no connection,
    /// or no TLS session, was ever made).
    pub fn request_not_sent(&self) -> bool {
        matches!(
            self.kind,
            TransportErrorKind::Connect | TransportErrorKind::Tls
        )
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TransportErrorKind::Connect => "cannot connect to",
            TransportErrorKind::Timeout => "timed out waiting for",
            TransportErrorKind::Io => "connection failed with",
            TransportErrorKind::Http => "broken HTTP exchange with",
            TransportErrorKind::Tls => "TLS failed with",
        };
        write!(f, "{what} {}", self.endpoint)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        if self.request_not_sent() {
            f.write_str(" (the request was not sent)")
        } else {
            f.write_str(" (the request may have reached etcd)")
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Every endpoint failed. Holds each endpoint's last error, in endpoint order.
#[derive(Debug)]
pub struct Unavailable {
    /// `(endpoint, its last error)` for every endpoint tried.
    pub failures: Vec<(String, Error)>,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "all {} endpoints failed", self.failures.len())?;
        for (endpoint, error) in &self.failures {
            write!(f, "; {endpoint}: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unavailable {}

/// An endpoint belongs to another cluster than the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMismatch {
    /// The endpoint that answered.
    pub endpoint: String,
    /// The cluster ID the client was configured to expect.
    pub expected: String,
    /// The `X-Etcd-Cluster-Id` it answered with (empty if none).
    pub found: String,
}

impl fmt::Display for ClusterMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} belongs to cluster {:?}, not the expected {:?}",
            self.endpoint, self.found, self.expected
        )
    }
}

impl std::error::Error for ClusterMismatch {}
