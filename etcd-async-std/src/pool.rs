//! Keep-alive HTTP/1.1 connections, kept idle per endpoint authority.
//!
//! A connection ([`Conn`]: hyper's sender together with its driver) is taken
//! out of the pool for exactly one exchange, as a [`Lease`], and is driven by
//! the task running that exchange. It goes back only through
//! [`Lease::complete`], once the response body was read to its end; a lease
//! dropped any other way (an error, a timeout, the caller dropping the
//! request future) drops the sender and the driver, which closes the
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
use hyper::client::conn::http1;

use crate::conn::{Conn, ExchangeError};
use crate::failure::Failure;
use crate::rt::FuturesIo;
use crate::stream::{Origin, Stream};

/// Idle connections per origin (`host:port`, or `https://host:port`).
pub(crate) struct Pool {
    idle: Mutex<HashMap<String, Vec<Conn>>>,
    max_idle: usize,
    connect_timeout: Duration,
    /// TLS for `https://` origins.
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

/// How the pool runs a TLS handshake: etcd-proto's configuration, and its
/// choice of the name to verify.
#[cfg(feature = "tls")]
pub(crate) struct Tls {
    /// ALPN `http/1.1`.
    pub(crate) connector: futures_rustls::TlsConnector,
    /// ALPN `h2`, for native gRPC.
    pub(crate) h2_connector: futures_rustls::TlsConnector,
    pub(crate) options: etcd_proto::tls::TlsOptions,
}

/// The protocol a new connection is for (its TLS ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// HTTP/1.1: the gateway and v2.
    Http1,
    /// HTTP/2: native gRPC.
    H2,
}

impl Pool {
    pub(crate) fn new(max_idle: usize, connect_timeout: Duration) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
            connect_timeout,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Speaks TLS to `https://` origins.
    #[cfg(feature = "tls")]
    pub(crate) fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// A connection to `origin` that is ready for a request: an idle one
    /// if one is still open, else a new one.
    pub(crate) async fn checkout(&self, origin: &Origin) -> Result<Lease<'_>, ExchangeFailure> {
        let authority = &origin.key();
        while let Some(mut conn) = self.take_idle(authority) {
            if conn.ready().await {
                return Ok(self.lease(authority, conn, true));
            }
            // It closed while idle: it drops here; try the next one.
        }
        let conn = self.connect(origin).await?;
        Ok(self.lease(authority, conn, false))
    }

    fn lease(&self, authority: &str, conn: Conn, reused: bool) -> Lease<'_> {
        Lease {
            pool: self,
            authority: authority.to_owned(),
            conn: Some(conn),
            reused,
            complete: false,
        }
    }

    /// Pops the most recently used idle connection (the lock is released
    /// before the caller awaits anything).
    fn take_idle(&self, authority: &str) -> Option<Conn> {
        self.lock().get_mut(authority)?.pop()
    }

    fn put_idle(&self, authority: String, mut conn: Conn) {
        if !conn.is_open() {
            return;
        }
        conn.park();
        let mut idle = self.lock();
        let list = idle.entry(authority).or_default();
        list.retain(Conn::is_open);
        if list.len() < self.max_idle {
            list.push(conn);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Conn>>> {
        // Every update leaves the map consistent, so a panic elsewhere cannot corrupt it.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a TCP connection (within the connect timeout) and hands it to
    /// hyper. Nothing is spawned: the lease (or, for a streamed response,
    /// its body) drives the connection.
    pub(crate) async fn connect(&self, origin: &Origin) -> Result<Conn, ExchangeFailure> {
        let authority = origin.address.as_str();
        let stream = self.open(origin, Alpn::Http1).await?;
        let (sender, connection) = http1::handshake(FuturesIo::new(stream))
            .await
            .map_err(|e| {
                ExchangeFailure::new(
                    TransportErrorKind::Connect,
                    Failure::caused(format!("starting HTTP/1.1 on {authority} failed"), e),
                )
            })?;
        Ok(Conn::new(sender, connection))
    }

    /// A new stream to `origin` (within the connect timeout), TLS with
    /// `alpn` on `https://`.
    pub(crate) async fn open(
        &self,
        origin: &Origin,
        alpn: Alpn,
    ) -> Result<Stream, ExchangeFailure> {
        let authority = origin.address.as_str();
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
        self.secure(origin, stream, alpn).await
    }
}

impl Pool {
    /// The TLS handshake of an `https://` origin, within the connect timeout;
    /// a plain origin's stream as it is.
    async fn secure(
        &self,
        origin: &Origin,
        stream: TcpStream,
        alpn: Alpn,
    ) -> Result<Stream, ExchangeFailure> {
        let Some(host) = &origin.tls_host else {
            return Ok(Stream::Plain(stream));
        };
        let refused =
            |message: String| ExchangeFailure::new(TransportErrorKind::Tls, Failure::new(message));
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let name = tls
                .options
                .server_name_for(host)
                .map_err(|e| refused(e.to_string()))?;
            let connector = match alpn {
                Alpn::Http1 => &tls.connector,
                Alpn::H2 => &tls.h2_connector,
            };
            let handshake = connector.connect(name, stream);
            return match async_std::future::timeout(self.connect_timeout, handshake).await {
                Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
                Ok(Err(e)) => Err(refused(
                    etcd_proto::tls::describe_handshake_error(&e)
                        .unwrap_or_else(|| format!("TLS handshake with {host} failed: {e}")),
                )),
                Err(_elapsed) => Err(refused(format!(
                    "the TLS handshake with {host} took longer than the connect timeout ({:?})",
                    self.connect_timeout
                ))),
            };
        }
        let _ = alpn;
        drop(stream);
        Err(refused(format!(
            "{host} needs TLS: etcd-async-std is built without its `tls` feature"
        )))
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("max_idle", &self.max_idle)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// One connection, borrowed from the pool for one exchange.
pub(crate) struct Lease<'p> {
    pool: &'p Pool,
    authority: String,
    /// Always `Some` until dropped.
    conn: Option<Conn>,
    reused: bool,
    complete: bool,
}

impl Lease<'_> {
    /// True if the connection served an earlier exchange.
    pub(crate) fn reused(&self) -> bool {
        self.reused
    }

    /// Sends `request` and reads the whole response, its body up to
    /// `max_body` bytes, driving the connection in this task meanwhile.
    /// Succeeding, the lease completes: the connection goes back to the
    /// pool. Failing or dropped before the end, the connection closes.
    pub(crate) async fn exchange(
        mut self,
        request: http::Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<http::Response<Bytes>, ExchangeError> {
        let response = self
            .conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
            .exchange(request, max_body)
            .await?;
        // The body was read to its end: only now may the connection serve another request.
        self.complete();
        Ok(response)
    }

    /// The exchange read its whole response: the connection may serve the
    /// next one. The only way a connection returns to the pool.
    fn complete(mut self) {
        self.complete = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.complete {
                self.pool
                    .put_idle(std::mem::take(&mut self.authority), conn);
            }
            // Otherwise the sender and the driver drop here, and with them
            // the connection.
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
    use async_std::io::{ReadExt, WriteExt};
    use async_std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    impl Pool {
        fn idle_count(&self, authority: &str) -> usize {
            self.lock().get(authority).map_or(0, Vec::len)
        }
    }

    /// A listener that accepts connections and keeps them open, silent.
    async fn listener() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        async_std::task::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        authority
    }

    /// What the scripted server does after reading a request head.
    #[derive(Clone, Copy)]
    enum After {
        /// Answers, then closes the connection a moment later.
        AnswerThenClose,
        /// Never answers; counts the connections it saw closed by the client.
        Hang,
    }

    /// A server that handles each connection by `after`; the counter is the
    /// number of connections the client closed while the server waited.
    async fn server(after: After) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let closed = Arc::new(AtomicUsize::new(0));
        let counter = closed.clone();
        async_std::task::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                async_std::task::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    match after {
                        After::AnswerThenClose => {
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                .await;
                            async_std::task::sleep(Duration::from_millis(30)).await;
                        }
                        After::Hang => {
                            if let Ok(0) = stream.read(&mut buf).await {
                                counter.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                });
            }
        });
        (authority, closed)
    }

    /// A plain-TCP origin.
    fn plain(authority: &str) -> Origin {
        Origin {
            address: authority.to_owned(),
            tls_host: None,
        }
    }

    fn get(authority: &str) -> http::Request<Full<Bytes>> {
        http::Request::get("/")
            .header(http::header::HOST, authority)
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    #[async_std::test]
    async fn only_a_completed_lease_returns_its_connection() {
        let authority = listener().await;
        let pool = Pool::new(4, Duration::from_secs(1));

        let lease = pool.checkout(&plain(&authority)).await.unwrap();
        assert!(!lease.reused());
        drop(lease); // an error, a timeout or a cancellation looks like this
        assert_eq!(pool.idle_count(&authority), 0);

        let lease = pool.checkout(&plain(&authority)).await.unwrap();
        assert!(!lease.reused());
        lease.complete();
        assert_eq!(pool.idle_count(&authority), 1);

        let lease = pool.checkout(&plain(&authority)).await.unwrap();
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
            leases.push(pool.checkout(&plain(&authority)).await.unwrap());
        }
        for lease in leases {
            lease.complete();
        }
        assert_eq!(pool.idle_count(&authority), 2);
    }

    #[async_std::test]
    async fn a_cancelled_exchange_closes_its_connection_at_once() {
        let (authority, closed) = server(After::Hang).await;
        let pool = Pool::new(4, Duration::from_secs(1));
        let lease = pool.checkout(&plain(&authority)).await.unwrap();
        let exchange = lease.exchange(get(&authority), 1024);
        // The request is sent, the response never comes: the deadline drops
        // the exchange, lease and connection with it.
        let timed_out = async_std::future::timeout(Duration::from_millis(100), exchange).await;
        assert!(timed_out.is_err());
        assert_eq!(pool.idle_count(&authority), 0);
        for _ in 0..100 {
            if closed.load(Ordering::SeqCst) == 1 {
                return;
            }
            async_std::task::sleep(Duration::from_millis(10)).await;
        }
        panic!("the server never saw the connection close");
    }

    #[async_std::test]
    async fn a_connection_closed_while_idle_is_not_reused() {
        let (authority, _) = server(After::AnswerThenClose).await;
        let pool = Pool::new(4, Duration::from_secs(1));
        let lease = pool.checkout(&plain(&authority)).await.unwrap();
        let response = lease.exchange(get(&authority), 1024).await.ok().unwrap();
        assert_eq!(response.body().as_ref(), b"ok");
        // Nobody drives the idle connection: it is still in the pool after
        // the server closed it, until a checkout polls its driver.
        assert_eq!(pool.idle_count(&authority), 1);
        async_std::task::sleep(Duration::from_millis(100)).await;
        let lease = pool.checkout(&plain(&authority)).await.unwrap();
        assert!(!lease.reused());
        assert_eq!(pool.idle_count(&authority), 0);
    }

    #[test]
    fn an_exchange_needs_no_other_task() {
        // A server on its own thread, blocking I/O: no executor anywhere
        // but the single-threaded `block_on` below.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            for _ in 0..3 {
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).unwrap();
                    assert!(n > 0);
                    head.extend_from_slice(&buf[..n]);
                }
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .unwrap();
            }
        });
        let pool = Pool::new(4, Duration::from_secs(1));
        smol::block_on(async {
            for i in 0..3 {
                let lease = pool.checkout(&plain(&authority)).await.unwrap();
                assert_eq!(lease.reused(), i > 0);
                let response = lease.exchange(get(&authority), 1024).await.ok().unwrap();
                assert_eq!(response.body().as_ref(), b"ok");
            }
        });
    }
}
