//! Keep-alive HTTP/1.1 connections, kept idle per endpoint authority.
//!
//! A connection is taken out of the pool for exactly one exchange, as a
//! [`Lease`]. It goes back only through [`Lease::complete`], called after the
//! response body was read to its end; a lease dropped any other way (an
//! error, a timeout, the caller dropping the request future) closes its
//! connection. So a cancelled exchange can never leave a half-used
//! connection in the pool.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_std::net::TcpStream;
use bytes::Bytes;
use etcd_proto::drive::ExchangeFailure;
use etcd_proto::TransportErrorKind;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::rt::Executor;

use crate::failure::Failure;
use crate::rt::{AsyncStdExecutor, FuturesIo};

/// The sending half of one HTTP/1.1 connection.
pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// Idle connections per authority (`host:port`).
#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Sender>>>,
    max_idle: usize,
    connect_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(max_idle: usize, connect_timeout: Duration) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
            connect_timeout,
        }
    }

    /// A connection to `authority` that is ready for a request: an idle one
    /// if one is still open, else a new one.
    pub(crate) async fn checkout(&self, authority: &str) -> Result<Lease<'_>, ExchangeFailure> {
        while let Some(mut sender) = self.take_idle(authority) {
            if sender.is_closed() {
                continue;
            }
            // Usually ready at once; a connection whose previous response just
            // ended may need its driver task to run first. Err: it closed.
            if sender.ready().await.is_ok() {
                return Ok(self.lease(authority, sender, true));
            }
        }
        let sender = self.connect(authority).await?;
        Ok(self.lease(authority, sender, false))
    }

    fn lease(&self, authority: &str, sender: Sender, reused: bool) -> Lease<'_> {
        Lease {
            pool: self,
            authority: authority.to_owned(),
            sender: Some(sender),
            reused,
            complete: false,
        }
    }

    /// Pops the most recently used idle connection (the lock is released
    /// before the caller awaits anything).
    fn take_idle(&self, authority: &str) -> Option<Sender> {
        self.lock().get_mut(authority)?.pop()
    }

    fn put_idle(&self, authority: String, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(authority).or_default();
        list.retain(|s| !s.is_closed());
        if list.len() < self.max_idle {
            list.push(sender);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Sender>>> {
        // Every update leaves the map consistent, so a panic elsewhere cannot corrupt it.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a TCP connection (within the connect timeout), hands it to hyper
    /// and spawns the task that drives it.
    async fn connect(&self, authority: &str) -> Result<Sender, ExchangeFailure> {
        let connecting = TcpStream::connect(authority);
        let stream = match async_std::future::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                return Err(ExchangeFailure::new(
                    TransportErrorKind::Connect,
                    Failure::caused(format!("connecting to {authority} failed"), e),
                ))
            }
            Err(_elapsed) => {
                return Err(ExchangeFailure::new(
                    TransportErrorKind::Connect,
                    Failure::new(format!(
                        "connecting to {authority} took longer than the connect timeout ({:?})",
                        self.connect_timeout
                    )),
                ))
            }
        };
        // Requests are small and latency-bound: send each one at once. Failing
        // to set the option costs latency only, so it is not an error.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(FuturesIo::new(stream))
            .await
            .map_err(|e| {
                ExchangeFailure::new(
                    TransportErrorKind::Connect,
                    Failure::caused(format!("starting HTTP/1.1 on {authority} failed"), e),
                )
            })?;
        AsyncStdExecutor.execute(async move {
            // The exchange sees this connection's errors through its sender.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

/// One connection, borrowed from the pool for one exchange.
pub(crate) struct Lease<'p> {
    pool: &'p Pool,
    authority: String,
    sender: Option<Sender>,
    reused: bool,
    complete: bool,
}

impl Lease<'_> {
    /// The connection's sender.
    pub(crate) fn sender(&mut self) -> &mut Sender {
        self.sender
            .as_mut()
            .expect("a lease holds its sender until dropped")
    }

    /// True if the connection served an earlier exchange.
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    /// The exchange read its whole response: the connection may serve the
    /// next one. The only way a connection returns to the pool.
    pub(crate) fn complete(mut self) {
        self.complete = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            if self.complete {
                self.pool
                    .put_idle(std::mem::take(&mut self.authority), sender);
            }
            // Otherwise the sender drops here, and with it the connection.
        }
    }
}

impl fmt::Debug for Lease<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("authority", &self.authority)
            .field("reused", &self.reused)
            .field("complete", &self.complete)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Pool {
        fn idle_count(&self, authority: &str) -> usize {
            self.lock().get(authority).map_or(0, Vec::len)
        }
    }

    /// A listener that accepts connections and keeps them open, silent.
    async fn listener() -> String {
        let listener = async_std::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        async_std::task::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        authority
    }

    #[async_std::test]
    async fn only_a_completed_lease_returns_its_connection() {
        let authority = listener().await;
        let pool = Pool::new(4, Duration::from_secs(1));

        let lease = pool.checkout(&authority).await.unwrap();
        assert!(!lease.reused());
        drop(lease); // an error, a timeout or a cancellation looks like this
        assert_eq!(pool.idle_count(&authority), 0);

        let lease = pool.checkout(&authority).await.unwrap();
        assert!(!lease.reused());
        lease.complete();
        assert_eq!(pool.idle_count(&authority), 1);

        let lease = pool.checkout(&authority).await.unwrap();
        assert!(lease.reused());
        assert_eq!(pool.idle_count(&authority), 0);
        drop(lease);
        assert_eq!(pool.idle_count(&authority), 0);
    }

    #[async_std::test]
    async fn idle_connections_are_capped_per_authority() {
        let authority = listener().await;
        let pool = Pool::new(2, Duration::from_secs(1));
        let mut leases = Vec::new();
        for _ in 0..3 {
            leases.push(pool.checkout(&authority).await.unwrap());
        }
        for lease in leases {
            lease.complete();
        }
        assert_eq!(pool.idle_count(&authority), 2);
    }
}
