//! etcd's own lock service (`/v3/lock/lock`, `/v3/lock/unlock`): the
//! [Mutex recipe](super::lock) run inside the server, as etcetra's `with_lock` uses it.
//!
//! [`ServerLock`] holds one HTTP request open until the lock is free (the
//! server deletes the waiter's key if that request is dropped) and returns
//! the owner key, `<name>/<lease in hex>`.
//!
//! **The 60-second orphan-lease trap:** called without a lease, the server
//! grants its own 60 s lease and never renews it, so the lock silently
//! frees itself about a minute later, whatever the holder is doing.
//! [`ServerLock::new`] therefore takes a lease: grant one and keep it alive
//! ([`KeepAlive`](super::KeepAlive)) for as long as the lock must be held.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::json::{B64Bytes, ObjectWriter, WireHeader};
use super::kv::HeaderOnly;
use super::types::ResponseHeader;
use super::unary::{Answer, V3Unary};
use crate::error::Error;
use crate::operation::{Replay, Wait};

/// `POST /v3/lock/lock`: waits until the lock `name` is ours, until `deadline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLock {
    name: Vec<u8>,
    lease: i64,
    wait: Wait,
}

impl ServerLock {
    /// Acquires `name`, held by `lease`: the lock ends when the lease does.
    /// Waits without limit; see [`deadline`](Self::deadline).
    pub fn new(name: impl Into<Vec<u8>>, lease: i64) -> Self {
        ServerLock {
            name: name.into(),
            lease,
            wait: Wait::LongPoll(None),
        }
    }

    /// Gives up at `deadline` (a transport `Timeout`; the server then drops our waiter key).
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.wait = Wait::LongPoll(Some(deadline));
        self
    }

    /// Gives up `timeout` after the call starts, as [`deadline`](Self::deadline) does.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.wait = Wait::LongPollFor(timeout);
        self
    }

    /// The lease 0 variant: **the server's own 60 s lease, never renewed**.
    /// Only for callers who want exactly that.
    pub fn with_orphan_lease(name: impl Into<Vec<u8>>) -> Self {
        ServerLock::new(name, 0)
    }
}

/// A lock acquired through the lock service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerLockResponse {
    /// The header; `header.revision` is when the lock became ours.
    pub header: ResponseHeader,
    /// The owner key, `<name>/<lease hex>`: pass it to [`ServerUnlock`], or
    /// use it in a [`Txn`](super::Txn) guard.
    pub key: Vec<u8>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireLockResponse {
    header: WireHeader,
    key: B64Bytes,
}

impl V3Unary for ServerLock {
    type Output = ServerLockResponse;

    fn path(&self) -> &'static str {
        "/v3/lock/lock"
    }

    fn replay(&self) -> Replay {
        Replay::AtMostOnce
    }

    fn wait(&self) -> Wait {
        self.wait
    }

    fn body(&self) -> String {
        ObjectWriter::new()
            .bytes("name", &self.name)
            .int("lease", self.lease)
            .finish()
    }

    fn read(&self, answer: Answer<'_>) -> Result<ServerLockResponse, Error> {
        let wire = answer.json::<WireLockResponse>()?;
        Ok(ServerLockResponse {
            header: wire.header.into(),
            key: wire.key.0,
        })
    }
}

/// `POST /v3/lock/unlock`: releases a lock by its owner key (a missing key is not an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUnlock(pub Vec<u8>);

impl V3Unary for ServerUnlock {
    type Output = ResponseHeader;

    fn path(&self) -> &'static str {
        "/v3/lock/unlock"
    }

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn body(&self) -> String {
        ObjectWriter::new().bytes("key", &self.0).finish()
    }

    fn read(&self, answer: Answer<'_>) -> Result<ResponseHeader, Error> {
        answer.json::<HeaderOnly>().map(|r| r.header.into())
    }
}
