//! An async etcd client: [`etcd_proto`] driven over hyper 1 on async-std,
//! with no tokio anywhere in its dependency tree.
//!
//! # Theory of operation
//!
//! Every call builds a flow from `etcd-proto` and runs it with
//! [`etcd_proto::drive::drive`], which asks this crate for exactly one thing
//! at a time: send a request over a pooled keep-alive HTTP/1.1 connection
//! within the flow's timeout and return the complete response (or the
//! failure), sleep, or tell the time. This crate holds no URL building, no
//! JSON and no protocol decision: only that I/O, the split of the core's
//! absolute request URI into the address to connect to and the origin-form
//! target (plus `Host` header) that goes on the wire, and the mapping of I/O
//! and hyper errors to [`TransportErrorKind`]s.
//!
//! The I/O is hyper's low-level HTTP/1.1 client (`hyper::client::conn::http1`)
//! over async-std's `TcpStream` (TCP_NODELAY set). No task is spawned: each
//! connection is driven by the task using it, so a request is written and
//! its response read within the caller's own task, whatever executor runs
//! it. Connections are kept alive, up to `max_idle_connections` idle ones
//! per endpoint; nobody polls an idle connection, and one that the server
//! closed meanwhile is noticed, and replaced, when it is next checked out.
//! A connection goes back to the pool only after its response was read to
//! the end: an exchange that fails, times out or is cancelled (its future
//! dropped) closes its connection, so dropping a request future at any
//! point is safe and never leaves a half-used connection behind for the
//! next request.
//!
//! A streamed response ([`AsyncTransport::open`], for a
//! [`StreamFlow`](etcd_proto::StreamFlow) such as a v3 watch) gets a fresh
//! connection of its own, never pooled, driven by the task reading its
//! [`StreamBody`]; dropping the body closes the connection.
//!
//! Timeouts: the flow's timeout (the builder's `request_timeout`, or a
//! watch's deadline) bounds the whole exchange, connecting included (for a
//! streamed response, up to its head; each read of its body has the
//! deadline the flow gives it); `connect_timeout`
//! bounds each TCP connect. A client's time limits all wait on one shared
//! timer, armed for the earliest of them, so a request does not register a
//! timer of its own with the reactor (each registration costs async-io
//! system calls and a reactor wake-up). `https://` endpoints speak TLS
//! (futures-rustls, with etcd-proto's rustls configuration; the `tls`
//! feature, on by default), pooled per origin like plain connections; the
//! handshake runs within the connect timeout.
//!
//! A [`Client`] is cheap to clone (it is an `Arc` inside) and `Send + Sync`;
//! clones share the connection pool and the cluster state, and every future
//! it returns is `Send`, so clones can be moved into spawned tasks.
//!
//! # Runtimes: async-std and smol
//!
//! async-std is discontinued upstream in favour of smol. This crate still
//! uses async-std, but all it relies on (sockets and timers) is built on
//! async-io, the reactor smol uses too, and it runs every connection in the
//! caller's task. So the client **works under smol too**:
//! `smol::block_on(client.get(..))` and tasks spawned with `smol::spawn`
//! drive it fine (both are tested). The one thing that still runs on
//! async-std's own executor (which starts its threads on first use) is
//! resolving an endpoint's host name; IP-address endpoints skip it.
//!
//! No tokio runtime is needed or used. hyper 1 itself depends on the `tokio`
//! crate with only its `sync` feature (hyper's internal channels), so
//! `tokio` appears in the dependency tree, but no tokio runtime, reactor,
//! timer or socket is compiled in.
//!
//! ```no_run
//! use etcd_async_std::Client;
//! use etcd_async_std::v2::{ReadOptions, WriteOptions};
//!
//! #[async_std::main]
//! async fn main() -> Result<(), etcd_async_std::Error> {
//!     let client = Client::new("http://127.0.0.1:2379")?;
//!     client.set("/config/name", "alpha").await?;
//!     client.write("/session", "token", WriteOptions::new().ttl(30)).await?;
//!     let dir = client
//!         .read("/config", ReadOptions::new().recursive(true).quorum(true))
//!         .await?;
//!     for leaf in dir.node.leaves() {
//!         println!("{} = {:?}", leaf.key, leaf.value);
//!     }
//!
//!     // Clones share the pool; every future is Send.
//!     let other = client.clone();
//!     let task = async_std::task::spawn(async move { other.get("/config/name").await });
//!     println!("{:?}", task.await?.node.value);
//!     Ok(())
//! }
//! ```

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::drive::{AsyncTransport, Exchange, ExchangeFailure};
use etcd_proto::{Cluster, Config, FromConfig, Transmit};
use http_body_util::{Full, LengthLimitError};

mod conn;
mod deadline;
mod failure;
mod h2;
mod pool;
mod rt;
mod srv;
mod stream;

use conn::ExchangeError;
use deadline::Deadlines;
use failure::Failure;
use pool::Pool;

pub use etcd_proto::{v2, v3, Endpoint, Error, ErrorKind, TransportError, UsageError};

/// TLS settings ([`tls::TlsOptions`]), for the builder's `tls(...)`.
#[cfg(feature = "tls")]
pub use etcd_proto::tls;

pub use etcd_proto::DEFAULT_ENDPOINT;

/// Settings for a [`Client`]; start from [`Client::builder`].
pub type ClientBuilder = etcd_proto::ClientBuilder<Client>;

/// An async etcd client. Cheap to clone; clones share connections and
/// cluster state. See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cluster: Mutex<Cluster>,
    pool: Pool,
    /// Native gRPC's HTTP/2 connections, one per member.
    h2: h2::Connections,
    /// The time limits of every exchange and stream read, on one timer.
    deadlines: Deadlines,
    max_response_bytes: usize,
}

impl FromConfig for Client {
    fn from_config(config: Config) -> Result<Client, Error> {
        #[cfg(not(feature = "tls"))]
        config.refuse_https("etcd-async-std")?;
        let cluster = config.cluster()?;
        let pool = Pool::new(config.max_idle_connections, config.connect_timeout);
        #[cfg(feature = "tls")]
        let pool = {
            let tls = config.tls_client_config()?;
            let mut h2 = (*tls).clone();
            h2.alpn_protocols = vec![b"h2".to_vec()];
            pool.with_tls(pool::Tls {
                connector: futures_rustls::TlsConnector::from(tls),
                h2_connector: futures_rustls::TlsConnector::from(Arc::new(h2)),
                options: config.tls.clone(),
            })
        };
        Ok(Client {
            inner: Arc::new(Inner {
                cluster: Mutex::new(cluster),
                pool,
                h2: h2::Connections::new(config.http2_keep_alive),
                deadlines: Deadlines::default(),
                max_response_bytes: usize::try_from(config.max_response_bytes)
                    .unwrap_or(usize::MAX),
            }),
        })
    }
}

impl etcd_proto::drive::Entropy for Client {
    fn random(&self) -> u64 {
        // std's per-process random hash keys, advanced on every call.
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
    }
}

impl AsyncTransport for Client {
    fn send(&self, transmit: Transmit) -> impl Future<Output = Exchange> + Send {
        let Transmit { request, timeout } = transmit;
        async move {
            // Set once the request is handed to a connection: a deadline that
            // passes before then means the request was certainly not sent.
            let sent = AtomicBool::new(false);
            let grpc = grpc_uri(&request);
            let exchange = pin!(self.inner.exchange(request, &sent));
            let Some(limit) = timeout else {
                return exchange.await;
            };
            match self.inner.deadlines.within(limit, exchange).await {
                Ok(outcome) => outcome,
                Err(_elapsed) => {
                    self.inner.forget(grpc).await;
                    Err(deadline_passed(limit, sent.load(Ordering::Acquire)))
                }
            }
        }
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send {
        async_std::task::sleep(deadline.saturating_duration_since(Instant::now()))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        // The cluster state stays consistent between calls, so a panic elsewhere cannot corrupt it.
        f(&mut self
            .inner
            .cluster
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        // A lock's keeper: runs on async-std's executor, whoever polls the client.
        drop(async_std::task::spawn(task));
    }

    type Body = StreamBody;

    fn open(
        &self,
        transmit: Transmit,
    ) -> impl Future<Output = Result<(http::response::Parts, StreamBody), ExchangeFailure>> + Send
    {
        let Transmit { request, timeout } = transmit;
        async move {
            // As for `send`: a deadline passing before the request was handed
            // to a connection means it was certainly not sent.
            let sent = AtomicBool::new(false);
            let grpc = grpc_uri(&request);
            let opening = pin!(self.inner.open(request, &sent));
            match timeout {
                None => opening.await,
                Some(limit) => match self.inner.deadlines.within(limit, opening).await {
                    Ok(outcome) => outcome,
                    Err(_elapsed) => {
                        self.inner.forget(grpc).await;
                        Err(deadline_passed(limit, sent.load(Ordering::Acquire)))
                    }
                },
            }
        }
    }
}

/// The streaming body of a response opened with [`AsyncTransport::open`]:
/// for the gateway, on a connection of its own (never pooled), driven by
/// the task reading the body, as every HTTP/1.1 connection of this crate
/// is, and closed at once when the body is dropped; for gRPC, a stream on
/// the member's HTTP/2 connection, which also sends (dropping the body
/// resets the stream; the connection stays).
pub struct StreamBody {
    opened: Opened,
    /// The client's timer, which each read's deadline waits on.
    deadlines: Deadlines,
    /// The trailers, once the body ended.
    trailers: http::HeaderMap,
}

enum Opened {
    Http1 {
        conn: Box<conn::Conn>,
        body: hyper::body::Incoming,
    },
    Grpc {
        outgoing: h2::Outgoing,
        body: hyper::body::Incoming,
    },
}

impl std::fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBody").finish_non_exhaustive()
    }
}

impl etcd_proto::drive::AsyncResponseBody for StreamBody {
    async fn next_chunk(
        &mut self,
        until: Option<Instant>,
    ) -> Result<Option<Bytes>, ExchangeFailure> {
        loop {
            let opened = &mut self.opened;
            let reading = async move {
                match opened {
                    Opened::Http1 { conn, body } => conn.next_frame(body).await,
                    Opened::Grpc { body, .. } => http_body_util::BodyExt::frame(body).await,
                }
            };
            let frame =
                match until {
                    None => reading.await,
                    Some(at) => match self.deadlines.until(Some(at), pin!(reading)).await {
                        Ok(frame) => frame,
                        Err(_elapsed) => return Err(ExchangeFailure::new(
                            TransportErrorKind::Timeout,
                            Failure::new(
                                "nothing arrived on the streamed response before its read deadline",
                            ),
                        )),
                    },
                };
            match frame {
                None => return Ok(None),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => return Ok(Some(data)),
                    Ok(_) => {}
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.trailers.extend(trailers);
                        }
                    }
                },
                Some(Err(e)) => return Err(read_failure(Box::new(e))),
            }
        }
    }

    fn take_trailers(&mut self) -> http::HeaderMap {
        std::mem::take(&mut self.trailers)
    }

    async fn send_message(&mut self, message: Bytes) -> Result<(), ExchangeFailure> {
        match &self.opened {
            Opened::Grpc { outgoing, .. } => outgoing
                .unbounded_send(Ok(hyper::body::Frame::data(message)))
                .map_err(|_| {
                    ExchangeFailure::new(
                        TransportErrorKind::Io,
                        Failure::new("the gRPC stream is closed"),
                    )
                }),
            Opened::Http1 { .. } => Err(ExchangeFailure::new(
                TransportErrorKind::Http,
                Failure::new("an HTTP/1.1 request was sent whole: nothing can be sent on it"),
            )),
        }
    }
}

etcd_proto::transport_client!(Client, async);

impl Inner {
    /// One exchange: a pooled connection, the request, the whole response.
    async fn exchange(&self, request: http::Request<Bytes>, sent: &AtomicBool) -> Exchange {
        if etcd_proto::v3::is_grpc(request.headers()) {
            // HTTP/2 takes the absolute URI (its :scheme and :authority).
            let (_, origin) = origin_form(request.clone())?;
            sent.store(true, Ordering::Release);
            return self
                .h2
                .exchange(&self.pool, &origin, request, self.max_response_bytes)
                .await;
        }
        let (request, authority) = origin_form(request)?;
        let lease = self.pool.checkout(&authority).await?;
        sent.store(true, Ordering::Release);
        let reused = lease.reused();
        lease
            .exchange(request, self.max_response_bytes)
            .await
            .map_err(|e| self.exchange_failure(e, reused))
    }

    /// A streamed response: a fresh connection of its own, the request, the
    /// response head. The body is left to read, and owns the connection.
    async fn open(
        &self,
        request: http::Request<Bytes>,
        sent: &AtomicBool,
    ) -> Result<(http::response::Parts, StreamBody), ExchangeFailure> {
        if etcd_proto::v3::is_grpc(request.headers()) {
            // HTTP/2 takes the absolute URI (its :scheme and :authority).
            let (_, origin) = origin_form(request.clone())?;
            sent.store(true, Ordering::Release);
            let (response, outgoing) = self.h2.open(&self.pool, &origin, request).await?;
            let (parts, body) = response.into_parts();
            return Ok((parts, self.stream_body(Opened::Grpc { outgoing, body })));
        }
        let (request, authority) = origin_form(request)?;
        let mut conn = self.pool.connect(&authority).await?;
        sent.store(true, Ordering::Release);
        let response = conn
            .open(request)
            .await
            .map_err(|e| self.exchange_failure(e, false))?;
        let (parts, body) = response.into_parts();
        Ok((
            parts,
            self.stream_body(Opened::Http1 {
                conn: Box::new(conn),
                body,
            }),
        ))
    }

    /// After a gRPC exchange to `grpc` took too long: its member's HTTP/2
    /// connection is left to the calls already on it, and the next call
    /// connects anew, in case this one is dead (pings close it for good).
    async fn forget(&self, grpc: Option<http::Uri>) {
        let Some(uri) = grpc else { return };
        let mut request = http::Request::new(Bytes::new());
        *request.uri_mut() = uri;
        if let Ok((_, origin)) = origin_form(request) {
            self.h2.forget(&origin).await;
        }
    }

    fn stream_body(&self, opened: Opened) -> StreamBody {
        StreamBody {
            opened,
            deadlines: self.deadlines.clone(),
            trailers: http::HeaderMap::new(),
        }
    }

    fn exchange_failure(&self, error: ExchangeError, reused: bool) -> ExchangeFailure {
        match error {
            ExchangeError::Head { error, unsent } => head_failure(error, unsent, reused),
            ExchangeError::Body(e) => self.body_failure(e),
        }
    }

    fn body_failure(&self, error: Box<dyn std::error::Error + Send + Sync>) -> ExchangeFailure {
        body_failure(error, self.max_response_bytes)
    }
}

/// The URI of a gRPC request, whose connection a timeout makes suspect.
fn grpc_uri(request: &http::Request<Bytes>) -> Option<http::Uri> {
    etcd_proto::v3::is_grpc(request.headers()).then(|| request.uri().clone())
}

/// A response body that could not be read whole: above `max_bytes`
/// (`max_response_bytes`), or cut off.
fn body_failure(
    error: Box<dyn std::error::Error + Send + Sync>,
    max_bytes: usize,
) -> ExchangeFailure {
    if error.is::<LengthLimitError>() {
        return ExchangeFailure::new(
            TransportErrorKind::Http,
            Failure::new(format!(
                "the response body is larger than max_response_bytes ({max_bytes} bytes)"
            )),
        );
    }
    read_failure(error)
}

/// A failure to read the response body (other than its size limit). A body
/// cut short is the connection failing (`Io`), as on every transport; only
/// bytes that are not HTTP are `Http`.
fn read_failure(error: Box<dyn std::error::Error + Send + Sync>) -> ExchangeFailure {
    let kind = match error.downcast_ref::<hyper::Error>() {
        Some(e) if !truncated(e) && (e.is_parse() || e.is_user()) => TransportErrorKind::Http,
        _ => TransportErrorKind::Io,
    };
    ExchangeFailure::new(
        kind,
        Failure::caused("reading the response body failed", error),
    )
}

/// Splits the core's absolute request URI into the `host:port` to connect to
/// and the origin-form request (path and query only, plus a `Host` header)
/// that hyper's HTTP/1.1 connection writes as is.
fn origin_form(
    request: http::Request<Bytes>,
) -> Result<(http::Request<Full<Bytes>>, stream::Origin), ExchangeFailure> {
    let (mut parts, body) = request.into_parts();
    let not_sendable =
        |kind, message: String| Err(ExchangeFailure::new(kind, Failure::new(message)));
    let tls = match parts.uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return not_sendable(
                TransportErrorKind::Connect,
                format!(
                    "cannot send to {:?}: not an absolute http:// URI",
                    parts.uri
                ),
            )
        }
    };
    let Some(authority) = parts.uri.authority() else {
        return not_sendable(
            TransportErrorKind::Connect,
            format!("cannot send to {:?}: no host", parts.uri),
        );
    };
    let host = authority.host();
    let default_port = if tls { 443 } else { 80 };
    let origin = stream::Origin {
        address: format!("{host}:{}", authority.port_u16().unwrap_or(default_port)),
        tls_host: tls.then(|| host.to_owned()),
    };
    let host_header = match authority.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let host_header = match http::HeaderValue::try_from(host_header) {
        Ok(value) => value,
        Err(e) => {
            return not_sendable(
                TransportErrorKind::Connect,
                format!("cannot send to {:?}: bad host: {e}", parts.uri),
            )
        }
    };
    let mut target = http::uri::Parts::default();
    target.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    parts.uri = match http::Uri::from_parts(target) {
        Ok(uri) => uri,
        Err(e) => {
            return not_sendable(
                TransportErrorKind::Connect,
                format!("cannot send to {:?}: {e}", parts.uri),
            )
        }
    };
    parts
        .headers
        .entry(http::header::HOST)
        .or_insert(host_header);
    Ok((http::Request::from_parts(parts, Full::new(body)), origin))
}

/// The deadline for the whole exchange passed.
fn deadline_passed(limit: Duration, sent: bool) -> ExchangeFailure {
    if sent {
        ExchangeFailure::new(
            TransportErrorKind::Timeout,
            Failure::new(format!("no complete response within {limit:?}")),
        )
    } else {
        ExchangeFailure::new(
            TransportErrorKind::Connect,
            Failure::new(format!(
                "no connection within the request timeout ({limit:?}); the request was not sent"
            )),
        )
    }
}

/// No response head arrived. Only an idle pooled connection that hyper
/// hands the request back from counts as "not sent" (`Connect`): a stale
/// keep-alive connection, closed by the server while idle. A new connection
/// that closes is `Io`, as on every transport, whether or not hyper had
/// written the request yet: the others cannot tell, and the same fault must
/// give the same kind everywhere (see `TransportErrorKind`).
fn head_failure(error: hyper::Error, unsent: bool, reused: bool) -> ExchangeFailure {
    if unsent && reused {
        ExchangeFailure::new(
            TransportErrorKind::Connect,
            Failure::caused(
                "the idle keep-alive connection closed before the request was sent",
                error,
            ),
        )
    } else if unsent {
        ExchangeFailure::new(
            TransportErrorKind::Io,
            Failure::caused("the new connection closed before any answer", error),
        )
    } else {
        ExchangeFailure::new(
            head_kind(&error),
            Failure::caused("no response (request may have been sent)", error),
        )
    }
}

/// The kind of a hyper error met before the response head arrived.
fn head_kind(error: &hyper::Error) -> TransportErrorKind {
    if error.is_parse() || error.is_parse_status() || error.is_user() {
        TransportErrorKind::Http
    } else {
        TransportErrorKind::Io
    }
}

/// True if the connection ended before the body's announced end.
fn truncated(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() {
        return true;
    }
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::UnexpectedEof;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(uri: &str) -> (http::Request<Full<Bytes>>, stream::Origin) {
        let request = http::Request::get(uri).body(Bytes::new()).unwrap();
        origin_form(request).unwrap()
    }

    #[test]
    fn origin_form_keeps_path_and_query_and_sets_host() {
        let (request, origin) = split("http://127.0.0.1:2379/v2/keys/a%3F%23?recursive=true&x=%2B");
        assert_eq!(origin.address, "127.0.0.1:2379");
        assert_eq!(origin.tls_host, None);
        assert_eq!(request.uri(), "/v2/keys/a%3F%23?recursive=true&x=%2B");
        assert!(request.uri().scheme().is_none() && request.uri().authority().is_none());
        assert_eq!(request.headers()[http::header::HOST], "127.0.0.1:2379");
    }

    #[test]
    fn origin_form_defaults_port_and_path() {
        let (request, origin) = split("http://etcd.local");
        assert_eq!(origin.address, "etcd.local:80");
        let (_, tls) = split("https://etcd.local");
        assert_eq!(
            (tls.address.as_str(), tls.tls_host.as_deref()),
            ("etcd.local:443", Some("etcd.local"))
        );
        assert_eq!(request.uri(), "/");
        assert_eq!(request.headers()[http::header::HOST], "etcd.local");
    }

    #[test]
    fn origin_form_ipv6_and_userinfo() {
        let (request, origin) = split("http://user:pw@[::1]:4001/v2/members");
        assert_eq!(origin.address, "[::1]:4001");
        assert_eq!(request.headers()[http::header::HOST], "[::1]:4001");
        assert_eq!(request.uri(), "/v2/members");
    }

    #[test]
    fn origin_form_keeps_a_given_host_header() {
        let request = http::Request::get("http://127.0.0.1:2379/v2/keys")
            .header(http::header::HOST, "proxy.example")
            .body(Bytes::new())
            .unwrap();
        let (request, _) = origin_form(request).unwrap();
        assert_eq!(request.headers()[http::header::HOST], "proxy.example");
    }

    #[async_std::test]
    async fn a_plain_http_server_behind_https_is_a_tls_failure_that_sent_nothing() {
        // A listener that answers the TLS hello with plain HTTP.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut socket, _) = listener.accept().unwrap();
            let _ = socket.read(&mut [0u8; 1024]);
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let error = Client::new(&url).unwrap().get("/k").await.unwrap_err();
        let etcd_proto::Error::Transport(t) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(t.kind(), TransportErrorKind::Tls, "{error}");
        assert!(
            t.request_not_sent() && error.to_string().contains("TLS handshake failed"),
            "{error}"
        );
    }

    #[test]
    fn client_and_futures_are_send_and_sync() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let client = Client::new("http://127.0.0.1:1").unwrap();
        send_sync(&client);
        send(&client.get("/a"));
        send(&client.set("/a", "b"));
        send(&client.leader());
    }

    #[test]
    fn building_does_no_io() {
        // Port 1 refuses connections; building must not try.
        let client = Client::builder()
            .endpoint("http://127.0.0.1:1")
            .connect_timeout(Duration::from_millis(1))
            .build();
        assert!(client.is_ok());
    }
}
