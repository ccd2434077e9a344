//! An async etcd client for tokio: [`etcd_proto`] driven over [`hyper`] 1.
//!
//! # Theory of operation
//!
//! Every call builds a flow from `etcd-proto` and runs it with
//! [`etcd_proto::drive::drive`], which asks this crate for exactly one thing
//! at a time: send a request over a pooled keep-alive HTTP/1.1 connection
//! (hyper-util's connection pool) within the flow's timeout and return the
//! complete response (or the failure), sleep, or tell the time. This crate
//! holds no URL building, no JSON and no protocol decision: only that I/O and
//! the mapping of hyper's errors to [`TransportErrorKind`]s.
//!
//! A [`Client`] is cheap to clone (the pool and the cluster state sit behind
//! an `Arc`) and `Send + Sync`; clones share one pool, so concurrent requests
//! from many tasks run on as many keep-alive connections as they need. Every
//! future it returns is `Send`, so it can be handed to `tokio::spawn`.
//! Dropping a future part-way cancels only that request: its connection is
//! closed rather than reused, and the client stays fully usable.
//!
//! Building a client does no I/O and needs no runtime; requests must run
//! inside a tokio runtime with I/O and time enabled (`#[tokio::main]` or
//! `Builder::enable_all`). Pooled connections belong to the runtime that
//! opened them, so use one client per runtime.
//!
//! A streamed response ([`AsyncTransport::open`], for a
//! [`StreamFlow`](etcd_proto::StreamFlow) such as a v3 watch) gets a
//! connection of its own, outside the pool (hyper's HTTP/1.1 connection over
//! the same connector, driven by a spawned task); the flow's timeout bounds
//! connecting and the head, each read of the body has the deadline the flow
//! gives it (how a watch notices silence), and dropping the [`StreamBody`]
//! aborts that task, closing the connection.
//!
//! `https://` endpoints speak TLS through hyper-rustls, with the rustls
//! configuration etcd-proto builds from the client's settings (the `tls`
//! feature, on by default): pooled and kept alive like plain connections; a
//! failed handshake is [`TransportErrorKind::Tls`], the request not sent.
//! Redirects are never followed.
//!
//! ```no_run
//! use etcd_tokio::Client;
//! use etcd_tokio::v2::{ReadOptions, WriteOptions};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), etcd_tokio::Error> {
//!     let client = Client::new("http://127.0.0.1:2379")?;
//!     client.set("/config/name", "alpha").await?;
//!     client.write("/session", "token", WriteOptions::new().ttl(30)).await?;
//!
//!     // Clones share the connection pool; spawned requests run concurrently.
//!     let other = client.clone();
//!     let task = tokio::spawn(async move { other.get("/config/name").await });
//!     println!("{:?}", task.await.expect("task panicked")?.node.value);
//!
//!     let dir = client
//!         .read("/config", ReadOptions::new().recursive(true).quorum(true))
//!         .await?;
//!     for leaf in dir.node.leaves() {
//!         println!("{} = {:?}", leaf.key, leaf.value);
//!     }
//!     Ok(())
//! }
//! ```

use std::error::Error as StdError;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::drive::{AsyncResponseBody, AsyncTransport, Exchange, ExchangeFailure};
use etcd_proto::{Cluster, Config, FromConfig, Transmit};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Frame;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

mod h2;
mod srv;

pub use etcd_proto::{v2, v3, Endpoint, Error, ErrorKind, TransportError, UsageError};

/// TLS settings ([`tls::TlsOptions`]), for the builder's `tls(...)`.
#[cfg(feature = "tls")]
pub use etcd_proto::tls;

pub use etcd_proto::DEFAULT_ENDPOINT;

/// Settings for a [`Client`]; start from [`Client::builder`].
pub type ClientBuilder = etcd_proto::ClientBuilder<Client>;

/// An async etcd client for tokio. Cheap to clone; see the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// TCP, and TLS on `https://` endpoints (with the `tls` feature).
#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

#[derive(Debug)]
struct Inner {
    http: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    /// Native gRPC: HTTP/2 only (prior knowledge on plaintext, ALPN `h2` on
    /// TLS), one multiplexed connection per member.
    grpc: h2::Connections,
    /// The pool's connector, for the unpooled connections of streamed responses.
    connector: Connector,
    cluster: Mutex<Cluster>,
    max_response_bytes: u64,
}

impl FromConfig for Client {
    fn from_config(config: Config) -> Result<Client, Error> {
        #[cfg(not(feature = "tls"))]
        config.refuse_https("etcd-tokio")?;
        let cluster = config.cluster()?;
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(config.connect_timeout));
        tcp.set_nodelay(true);
        #[cfg(feature = "tls")]
        let (connector, grpc_connector) = {
            // hyper-rustls wants http(s) URIs as they are: `https://` is ours.
            tcp.enforce_http(false);
            let mut tls = (*config.tls_client_config()?).clone();
            // hyper-rustls offers ALPN itself, for the protocols enabled below.
            tls.alpn_protocols.clear();
            let options = config.tls.clone();
            let builder = || {
                let options = options.clone();
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls.clone())
                    .https_or_http()
                    .with_server_name_resolver(move |uri: &http::Uri| {
                        options.server_name_for(uri.host().unwrap_or_default())
                    })
            };
            (
                builder().enable_http1().wrap_connector(tcp.clone()),
                builder().enable_http2().wrap_connector(tcp),
            )
        };
        #[cfg(not(feature = "tls"))]
        let (connector, grpc_connector) = (tcp.clone(), tcp);
        // Neither builds nor spawns anything on a runtime: this works outside one.
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(config.max_idle_connections)
            .build(connector.clone());
        let grpc = h2::Connections::new(grpc_connector, config.http2_keep_alive);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                grpc,
                connector,
                cluster: Mutex::new(cluster),
                max_response_bytes: config.max_response_bytes,
            }),
        })
    }
}

impl Client {
    /// One exchange, without the time limit: the response head, then the
    /// whole body (at most `max_response_bytes` of it).
    /// A gRPC request goes over HTTP/2, its trailers merged into the
    /// answer's headers (the core reads `grpc-status` there).
    async fn exchange(&self, request: http::Request<Bytes>) -> Exchange {
        let response = if etcd_proto::v3::is_grpc(request.headers()) {
            self.inner.grpc.send(request).await?
        } else {
            self.inner
                .http
                .request(request.map(Full::new))
                .await
                .map_err(request_failure)?
        };
        let (mut parts, body) = response.into_parts();
        let limit = self.inner.max_response_bytes;
        let collected = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
            .await
            .map_err(|e| body_failure(e, limit))?;
        if let Some(trailers) = collected.trailers() {
            parts.headers.extend(trailers.clone());
        }
        Ok(http::Response::from_parts(parts, collected.to_bytes()))
    }

    /// Opens a connection of its own (outside the pool) for `request`,
    /// drives it on a spawned task, and returns the response head with its
    /// body still streaming.
    async fn open_stream(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<(http::response::Parts, StreamBody), ExchangeFailure> {
        if etcd_proto::v3::is_grpc(request.headers()) {
            return self.open_grpc(request).await;
        }
        let mut connector = self.inner.connector.clone();
        let io = tower_service::Service::call(&mut connector, request.uri().clone())
            .await
            .map_err(connect_failure)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| failure(TransportErrorKind::Connect, &e))?;
        let mut body = Http1Stream {
            _connection: AbortOnDrop(tokio::spawn(async move {
                // Its errors reach the response (or its body) through hyper.
                let _ = connection.await;
            })),
            sender,
            body: None,
        };
        let response = body
            .sender
            .send_request(origin_form(request).map(Full::new))
            .await
            .map_err(|e| failure(classify(&e), &e))?;
        let (parts, incoming) = response.into_parts();
        body.body = Some(incoming);
        Ok((parts, StreamBody::new(Opened::Http1(body))))
    }

    /// The failure of an exchange that took longer than `limit`. A gRPC
    /// one leaves its member's HTTP/2 connection to the calls already on
    /// it: the next call connects anew, in case this one is dead (pings
    /// close it for good).
    async fn timed_out(&self, limit: Duration, grpc: Option<http::Uri>) -> ExchangeFailure {
        if let Some(uri) = grpc {
            self.inner.grpc.forget(&uri).await;
        }
        timed_out(limit)
    }

    /// Opens a gRPC stream on its member's HTTP/2 connection.
    async fn open_grpc(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<(http::response::Parts, StreamBody), ExchangeFailure> {
        let (response, outgoing) = self.inner.grpc.open(request).await?;
        let (parts, incoming) = response.into_parts();
        Ok((parts, StreamBody::new(Opened::Grpc { outgoing, incoming })))
    }
}

/// The URI of a gRPC request, whose connection a timeout makes suspect.
fn grpc_uri(request: &http::Request<Bytes>) -> Option<http::Uri> {
    etcd_proto::v3::is_grpc(request.headers()).then(|| request.uri().clone())
}

/// Refuses `https://`: built without the `tls` feature.
#[cfg(not(feature = "tls"))]
fn plain_http(request: &http::Request<Bytes>) -> Result<(), ExchangeFailure> {
    if request.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
        return Err(ExchangeFailure::new(
            TransportErrorKind::Tls,
            "https endpoints need TLS: etcd-tokio is built without its `tls` feature",
        ));
    }
    Ok(())
}

/// The request as it goes on the wire of a connection of its own: the
/// origin-form target (path and query) and a `Host` header, as hyper-util's
/// pooled client sends it.
fn origin_form(request: http::Request<Bytes>) -> http::Request<Bytes> {
    let (mut parts, body) = request.into_parts();
    if let Some(authority) = parts.uri.authority() {
        let host = match authority.port() {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_owned(),
        };
        if let Ok(host) = http::HeaderValue::try_from(host) {
            parts.headers.entry(http::header::HOST).or_insert(host);
        }
    }
    let target = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    parts.uri = http::Uri::from(target);
    http::Request::from_parts(parts, body)
}

/// Aborts the task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The streaming body of a response opened with [`AsyncTransport::open`]:
/// on a connection of its own, outside the pool, for the gateway (dropping
/// the body closes the connection: the task driving it is aborted); or a
/// gRPC stream on the member's HTTP/2 connection, which also sends
/// (dropping the body resets the stream, the connection stays).
#[derive(Debug)]
pub struct StreamBody {
    opened: Opened,
    /// The trailers, once the body ended.
    trailers: http::HeaderMap,
}

#[derive(Debug)]
enum Opened {
    Http1(Http1Stream),
    Grpc {
        outgoing: h2::Outgoing,
        incoming: hyper::body::Incoming,
    },
}

/// A response on an HTTP/1.1 connection of its own.
#[derive(Debug)]
struct Http1Stream {
    /// Declared first, so that it drops (and closes the socket) first.
    _connection: AbortOnDrop,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    /// `Some` once the head arrived.
    body: Option<hyper::body::Incoming>,
}

impl StreamBody {
    fn new(opened: Opened) -> Self {
        StreamBody {
            opened,
            trailers: http::HeaderMap::new(),
        }
    }
}

impl AsyncResponseBody for StreamBody {
    async fn next_chunk(
        &mut self,
        until: Option<Instant>,
    ) -> Result<Option<Bytes>, ExchangeFailure> {
        let body = match &mut self.opened {
            Opened::Http1(Http1Stream { body: Some(b), .. }) | Opened::Grpc { incoming: b, .. } => {
                b
            }
            Opened::Http1(_) => return Ok(None),
        };
        loop {
            let frame = match until {
                Some(at) => {
                    tokio::time::timeout_at(tokio::time::Instant::from_std(at), body.frame())
                        .await
                        .map_err(|_| silent_until())?
                }
                None => body.frame().await,
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
                Some(Err(e)) => return Err(failure(classify(&e), &e)),
            }
        }
    }

    fn take_trailers(&mut self) -> http::HeaderMap {
        std::mem::take(&mut self.trailers)
    }

    async fn send_message(&mut self, message: Bytes) -> Result<(), ExchangeFailure> {
        match &self.opened {
            Opened::Grpc { outgoing, .. } => outgoing
                .unbounded_send(Ok(Frame::data(message)))
                .map_err(|_| {
                    ExchangeFailure::new(TransportErrorKind::Io, "the gRPC stream is closed")
                }),
            Opened::Http1(_) => Err(ExchangeFailure::new(
                TransportErrorKind::Http,
                "an HTTP/1.1 request was sent whole: nothing can be sent on it",
            )),
        }
    }
}

impl etcd_proto::drive::Entropy for Client {
    fn random(&self) -> u64 {
        // std's per-process random hash keys, advanced on every call.
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
    }
}

impl AsyncTransport for Client {
    type Body = StreamBody;

    async fn open(
        &self,
        transmit: Transmit,
    ) -> Result<(http::response::Parts, StreamBody), ExchangeFailure> {
        #[cfg(not(feature = "tls"))]
        plain_http(&transmit.request)?;
        let deadline = transmit
            .timeout
            .and_then(|limit| Some((tokio::time::Instant::now().checked_add(limit)?, limit)));
        let grpc = grpc_uri(&transmit.request);
        let opening = self.open_stream(transmit.request);
        match deadline {
            Some((at, limit)) => match tokio::time::timeout_at(at, opening).await {
                Ok(outcome) => outcome,
                Err(_) => Err(self.timed_out(limit, grpc).await),
            },
            None => opening.await,
        }
    }

    async fn send(&self, transmit: Transmit) -> Exchange {
        #[cfg(not(feature = "tls"))]
        plain_http(&transmit.request)?;
        let grpc = grpc_uri(&transmit.request);
        match transmit.timeout {
            Some(limit) => match tokio::time::timeout(limit, self.exchange(transmit.request)).await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(self.timed_out(limit, grpc).await),
            },
            None => self.exchange(transmit.request).await,
        }
    }

    async fn sleep_until(&self, deadline: Instant) {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
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
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        // A lock's keeper: runs on the runtime the client is used from.
        drop(tokio::spawn(task));
    }
}

etcd_proto::transport_client!(Client, async);

/// The exchange did not finish within `limit`.
fn timed_out(limit: Duration) -> ExchangeFailure {
    ExchangeFailure::new(
        TransportErrorKind::Timeout,
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no complete response within {limit:?}"),
        ),
    )
}

/// Nothing of the streamed body arrived by the read's deadline.
fn silent_until() -> ExchangeFailure {
    ExchangeFailure::new(
        TransportErrorKind::Timeout,
        io::Error::new(
            io::ErrorKind::TimedOut,
            "nothing arrived on the streamed response before its read deadline",
        ),
    )
}

/// Sorts a failure to get a response head into the kind the core reasons with.
///
/// hyper-util calls "connect" errors both a connector that could not make
/// the connection and a new connection that closed before it was ready for
/// the request (a hyper error in its cause chain). Only the first is
/// `Connect`; the second is `Io`, as on every transport (see
/// `TransportErrorKind`): a connection was made.
fn request_failure(error: hyper_util::client::legacy::Error) -> ExchangeFailure {
    if let Some(tls) = tls_failure(&error) {
        return tls;
    }
    let connection_made = chain(&error).any(|e| e.is::<hyper::Error>());
    let kind = if error.is_connect() && !connection_made {
        TransportErrorKind::Connect
    } else {
        classify(&error)
    };
    // hyper-util's own message ("client error (Connect)") says less than its cause.
    failure(kind, error.source().unwrap_or(&error))
}

/// A connector's failure for a streamed response: TLS or connect.
fn connect_failure(error: impl Into<Box<dyn StdError + Send + Sync>>) -> ExchangeFailure {
    let error = error.into();
    let error: &(dyn StdError + 'static) = &*error;
    tls_failure(error).unwrap_or_else(|| failure(TransportErrorKind::Connect, error))
}

/// A failed TLS handshake, said in words (etcd-proto's reading of it): the
/// request was not sent.
fn tls_failure(error: &(dyn StdError + 'static)) -> Option<ExchangeFailure> {
    #[cfg(feature = "tls")]
    if let Some(what) = etcd_proto::tls::describe_handshake_error(error) {
        return Some(ExchangeFailure::new(TransportErrorKind::Tls, what));
    }
    let _ = error;
    None
}

/// Sorts a failure to read the response body.
fn body_failure(error: Box<dyn StdError + Send + Sync>, limit: u64) -> ExchangeFailure {
    if error.is::<LengthLimitError>() {
        return ExchangeFailure::new(
            TransportErrorKind::Http,
            format!("the response body is larger than max_response_bytes ({limit} bytes)"),
        );
    }
    failure(classify(&*error), &*error)
}

fn classify(error: &(dyn StdError + 'static)) -> TransportErrorKind {
    for cause in chain(error) {
        if let Some(e) = cause.downcast_ref::<io::Error>() {
            return match e.kind() {
                io::ErrorKind::TimedOut => TransportErrorKind::Timeout,
                _ => TransportErrorKind::Io,
            };
        }
        if let Some(e) = cause.downcast_ref::<hyper::Error>() {
            if e.is_timeout() {
                return TransportErrorKind::Timeout;
            }
            if e.is_parse() || e.is_user() {
                return TransportErrorKind::Http;
            }
        }
        if cause.is::<LengthLimitError>() {
            return TransportErrorKind::Http;
        }
    }
    // Closed or cancelled connections: the request may have been sent.
    TransportErrorKind::Io
}

/// A failure whose message is the whole cause chain, so that the
/// [`TransportError`] built from it says what went wrong ("tcp connect error:
/// Connection refused (os error 111)"). It stays an [`io::Error`] of the same
/// kind when an I/O error caused it.
fn failure(kind: TransportErrorKind, error: &(dyn StdError + 'static)) -> ExchangeFailure {
    let mut message = error.to_string();
    for cause in chain(error).skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    match chain(error).find_map(|cause| cause.downcast_ref::<io::Error>()) {
        Some(e) => ExchangeFailure::new(kind, io::Error::new(e.kind(), message)),
        None => ExchangeFailure::new(kind, message),
    }
}

fn chain<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| e.source())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Compile-time: the client is shareable and its futures can be spawned.
    #[test]
    fn futures_are_send() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<Client>();
        let client = Client::new(DEFAULT_ENDPOINT).unwrap();
        assert_send(&client.get("/k"));
        assert_send(&client.set("/k", "v"));
        assert_send(&client.set("/k", vec![1u8, 2]));
        assert_send(&client.leader());
        assert_send(&client.contains("/k"));
        assert_send(&client.execute(v2::Read::new("/k")));
        assert_send(&client.run(v2::Leader::new()));
    }

    #[allow(dead_code)]
    fn spawnable(client: Client) -> tokio::task::JoinHandle<Result<v2::KeysResponse, Error>> {
        tokio::spawn(async move { client.get("/k").await })
    }

    #[test]
    fn builds_without_a_runtime() {
        let client = Client::builder()
            .endpoint("http://127.0.0.1:2379")
            .max_idle_connections(0)
            .build()
            .unwrap();
        drop(client.clone());
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn transport_error(result: Result<v2::KeysResponse, Error>) -> TransportError {
        match result {
            Err(Error::Transport(e)) => e,
            other => panic!("expected a transport error, got {other:?}"),
        }
    }

    /// One exchange straight through this transport's `send` (no `Call`, so no
    /// failover retry hides the first failure), expected to fail.
    fn send_failure(client: &Client, url: &str) -> ExchangeFailure {
        let request = http::Request::get(format!("{url}/v2/keys/k"))
            .body(Bytes::new())
            .unwrap();
        let transmit = Transmit {
            request,
            timeout: None,
        };
        match runtime().block_on(AsyncTransport::send(client, transmit)) {
            Err(failure) => failure,
            Ok(response) => panic!("expected a failure, got {response:?}"),
        }
    }

    /// A one-shot server: reads the request head, then answers with `reply`
    /// (if any) and keeps the socket open for `hold`.
    fn serve_once(reply: Option<&'static [u8]>, hold: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if let Some(reply) = reply {
                let _ = socket.write_all(reply);
            }
            std::thread::sleep(hold);
        });
        url
    }

    /// Sequential requests reuse one pooled keep-alive connection.
    #[test]
    fn keeps_connections_alive() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nX-Etcd-Index: 4\r\nContent-Length: 83\r\n\r\n\
            {\"action\":\"get\",\"node\":{\"key\":\"/k\",\"value\":\"v\",\"modifiedIndex\":4,\"createdIndex\":4}}";
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(mut socket) = socket else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 1024];
                    loop {
                        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..end + 4);
                            if socket.write_all(REPLY).is_err() {
                                return;
                            }
                            continue;
                        }
                        match socket.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        let client = Client::new(&url).unwrap();
        runtime().block_on(async {
            for _ in 0..5 {
                let got = client.get("/k").await.unwrap();
                assert_eq!(got.node.value.as_deref(), Some("v"));
            }
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn refused_connection_is_connect() {
        let client = Client::new("http://127.0.0.1:1").unwrap();
        let e = transport_error(runtime().block_on(client.get("/k")));
        assert_eq!(e.kind(), TransportErrorKind::Connect);
        assert!(e.request_not_sent());
        let source = e.source().unwrap();
        let io = source.downcast_ref::<io::Error>().unwrap();
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
        let text = e.to_string();
        assert!(text.contains("http://127.0.0.1:1"), "{text}");
        assert!(text.contains("tcp connect error"), "{text}");
    }

    #[test]
    fn slow_response_is_timeout() {
        let url = serve_once(None, Duration::from_secs(2));
        let client = Client::builder()
            .endpoint(&url)
            .request_timeout(Some(Duration::from_millis(200)))
            .build()
            .unwrap();
        let start = Instant::now();
        let e = transport_error(runtime().block_on(client.get("/k")));
        assert_eq!(e.kind(), TransportErrorKind::Timeout, "{e}");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn oversized_body_is_http() {
        let url = serve_once(
            Some(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"),
            Duration::from_millis(500),
        );
        let client = Client::builder()
            .endpoint(&url)
            .max_response_bytes(10)
            .build()
            .unwrap();
        let e = send_failure(&client, &url);
        assert_eq!(e.kind, TransportErrorKind::Http, "{}", e.source);
        assert!(
            e.source
                .to_string()
                .contains("max_response_bytes (10 bytes)"),
            "{}",
            e.source
        );
    }

    #[test]
    fn truncated_body_is_io() {
        let url = serve_once(
            Some(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"action\":"),
            Duration::ZERO,
        );
        let client = Client::new(&url).unwrap();
        let e = send_failure(&client, &url);
        assert_eq!(e.kind, TransportErrorKind::Io, "{}", e.source);
    }

    #[test]
    fn garbage_response_is_http() {
        let url = serve_once(Some(b"SSH-2.0-OpenSSH\r\n\r\n"), Duration::ZERO);
        let client = Client::new(&url).unwrap();
        let e = send_failure(&client, &url);
        assert_eq!(e.kind, TransportErrorKind::Http, "{}", e.source);
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_tls_https_is_refused_at_build_and_a_tls_failure_when_learned_later() {
        let refused = Client::new("https://127.0.0.1:1").unwrap_err();
        assert!(refused.to_string().contains("etcd-tokio"), "{refused}");
        // An https URL learned later (member discovery) sends nothing.
        let client = Client::new("http://127.0.0.1:1").unwrap();
        let e = send_failure(&client, "https://127.0.0.1:1");
        assert_eq!(e.kind, TransportErrorKind::Tls, "{}", e.source);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_plain_http_server_behind_https_is_a_tls_failure_that_sent_nothing() {
        // A listener that answers the TLS hello with plain HTTP.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let _ = socket.read(&mut [0u8; 1024]);
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let client = Client::new(&url).unwrap();
        let e = send_failure(&client, &url);
        assert_eq!(e.kind, TransportErrorKind::Tls, "{}", e.source);
        assert!(
            e.source.to_string().contains("TLS handshake failed"),
            "{}",
            e.source
        );
    }
}
