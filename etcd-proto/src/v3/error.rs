//! The v3 error table: what etcd's messages mean, and whether a retry is safe.
//!
//! The gateway maps gRPC codes to HTTP statuses, but the mapping changed
//! between versions (FailedPrecondition is 412 on 3.4 and 400 on 3.5), so
//! errors are classified by their **message**, the one stable key
//! (etcd-wire §3e; etcd's `rpctypes/error.go`).

use std::fmt;

/// What an etcd v3 error means, read from its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum V3ErrorKind {
    /// `mvcc: required revision has been compacted`.
    Compacted,
    /// `mvcc: required revision is a future revision`.
    FutureRevision,
    /// `requested lease not found`.
    LeaseNotFound,
    /// `lease already exists` (granting an ID in use).
    LeaseExists,
    /// `invalid auth token`: expired, unknown or malformed.
    InvalidAuthToken,
    /// `revision of auth store is old`: the token predates an auth change.
    AuthOldRevision,
    /// `user name is empty`: auth is on and no token was sent.
    UserEmpty,
    /// `authentication failed, invalid user ID or password`.
    AuthFailed,
    /// `authentication is not enabled`.
    AuthNotEnabled,
    /// `permission denied`.
    PermissionDenied,
    /// `no leader`.
    NoLeader,
    /// `leader changed`.
    LeaderChanged,
    /// `request timed out` (and its variants): the request may have been applied.
    Timeout,
    /// `context deadline exceeded`: a write without a leader; may have been applied.
    DeadlineExceeded,
    /// `too many requests`.
    TooManyRequests,
    /// `request is too large`, or gRPC's `received message larger than max`.
    RequestTooLarge,
    /// `too many operations in txn request`.
    TooManyOps,
    /// `duplicate key given in txn request`.
    DuplicateKey,
    /// `mvcc: database space exceeded`.
    NoSpace,
    /// `key not found` (a put with `ignore_value` on a missing key).
    KeyNotFound,
    /// `key is not provided`.
    EmptyKey,
    /// Any other message.
    Other,
}

impl V3ErrorKind {
    /// Classifies an error message.
    pub fn from_message(message: &str) -> Self {
        const TABLE: &[(&str, V3ErrorKind)] = &[
            (
                "required revision has been compacted",
                V3ErrorKind::Compacted,
            ),
            (
                "required revision is a future revision",
                V3ErrorKind::FutureRevision,
            ),
            ("requested lease not found", V3ErrorKind::LeaseNotFound),
            ("lease already exists", V3ErrorKind::LeaseExists),
            ("invalid auth token", V3ErrorKind::InvalidAuthToken),
            (
                "revision of auth store is old",
                V3ErrorKind::AuthOldRevision,
            ),
            ("user name is empty", V3ErrorKind::UserEmpty),
            ("authentication failed", V3ErrorKind::AuthFailed),
            ("authentication is not enabled", V3ErrorKind::AuthNotEnabled),
            ("permission denied", V3ErrorKind::PermissionDenied),
            ("no leader", V3ErrorKind::NoLeader),
            ("leader changed", V3ErrorKind::LeaderChanged),
            ("request timed out", V3ErrorKind::Timeout),
            ("context deadline exceeded", V3ErrorKind::DeadlineExceeded),
            ("too many requests", V3ErrorKind::TooManyRequests),
            ("request is too large", V3ErrorKind::RequestTooLarge),
            (
                "received message larger than max",
                V3ErrorKind::RequestTooLarge,
            ),
            (
                "too many operations in txn request",
                V3ErrorKind::TooManyOps,
            ),
            (
                "duplicate key given in txn request",
                V3ErrorKind::DuplicateKey,
            ),
            ("database space exceeded", V3ErrorKind::NoSpace),
            ("key not found", V3ErrorKind::KeyNotFound),
            ("key is not provided", V3ErrorKind::EmptyKey),
        ];
        TABLE
            .iter()
            .find(|(text, _)| message.contains(text))
            .map_or(V3ErrorKind::Other, |(_, kind)| *kind)
    }
}

/// An error the v3 gateway reported: HTTP status, gRPC code, message, and
/// the meaning read from the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V3Error {
    /// The HTTP status of the answer (for a stream error, the one it names).
    pub status: u16,
    /// The gRPC status code (3 InvalidArgument, 14 Unavailable, …).
    pub code: u32,
    /// etcd's message, e.g. `etcdserver: requested lease not found`.
    pub message: String,
    /// What the message means.
    pub kind: V3ErrorKind,
}

impl V3Error {
    /// An error from its parts; the kind is read from `message`.
    pub fn new(status: u16, code: u32, message: &str) -> Self {
        V3Error {
            status,
            code,
            message: message.to_owned(),
            kind: V3ErrorKind::from_message(message),
        }
    }

    /// True if the server certainly did not apply the request and the same
    /// request may succeed later: no leader, leader changed, too many
    /// requests, or an auth token to renew. A `Timeout` or
    /// `DeadlineExceeded` write may have been applied: not safe.
    pub fn retry_safe(&self) -> bool {
        matches!(
            self.kind,
            V3ErrorKind::NoLeader
                | V3ErrorKind::LeaderChanged
                | V3ErrorKind::TooManyRequests
                | V3ErrorKind::InvalidAuthToken
                | V3ErrorKind::AuthOldRevision
        )
    }

    /// True if the cause is passing (an election, a slow raft, overload):
    /// worth another attempt, on another member, for a request that may be replayed.
    pub fn is_transient(&self) -> bool {
        self.retry_safe()
            || matches!(
                self.kind,
                V3ErrorKind::Timeout | V3ErrorKind::DeadlineExceeded
            )
            || self.code == 14
    }

    /// True if a fresh auth token may cure it.
    pub fn needs_new_token(&self) -> bool {
        matches!(
            self.kind,
            V3ErrorKind::InvalidAuthToken | V3ErrorKind::AuthOldRevision | V3ErrorKind::UserEmpty
        )
    }
}

impl fmt::Display for V3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (gRPC code {}, HTTP {})",
            self.message, self.code, self.status
        )
    }
}

impl std::error::Error for V3Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_classify() {
        let cases = [
            (
                "etcdserver: mvcc: required revision has been compacted",
                V3ErrorKind::Compacted,
            ),
            (
                "etcdserver: requested lease not found",
                V3ErrorKind::LeaseNotFound,
            ),
            ("etcdserver: no leader", V3ErrorKind::NoLeader),
            (
                "etcdserver: request timed out, possibly due to previous leader failure",
                V3ErrorKind::Timeout,
            ),
            (
                "grpc: received message larger than max (2097162 vs. 2097152)",
                V3ErrorKind::RequestTooLarge,
            ),
            ("something new", V3ErrorKind::Other),
        ];
        for (message, kind) in cases {
            assert_eq!(V3ErrorKind::from_message(message), kind, "{message}");
        }
        assert!(V3Error::new(503, 14, "etcdserver: no leader").retry_safe());
        assert!(!V3Error::new(503, 14, "etcdserver: request timed out").retry_safe());
        assert!(V3Error::new(503, 14, "etcdserver: request timed out").is_transient());
    }
}
