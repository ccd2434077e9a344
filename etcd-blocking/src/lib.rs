//! A blocking etcd client: [`etcd_proto`] driven over [`ureq`].
//!
//! # Theory of operation
//!
//! Every call builds a flow from `etcd-proto` and runs it with
//! [`etcd_proto::drive::drive_blocking`], which asks this crate for exactly
//! one thing at a time: send a request over a pooled keep-alive ureq
//! connection within the flow's timeout and return the complete response (or
//! the failure), sleep, or tell the time. This crate holds no URL building, no
//! JSON and no protocol decision: only that I/O and the mapping of ureq's
//! errors to [`TransportErrorKind`]s. `https://` endpoints run a rustls
//! session over the crate's own TCP transport, with the configuration
//! etcd-proto builds from the client's settings (the `tls` feature, on by
//! default), pooled and kept alive like plain connections.
//!
//! A [`Client`] is `Send + Sync`: share it between threads behind an `Arc`;
//! each thread's requests run on their own pooled connection.
//!
//! A streamed response ([`Transport::open`], for a
//! [`StreamFlow`](etcd_proto::StreamFlow) such as a v3 watch) gets a fresh
//! connection of its own, never pooled; its [`StreamBody`] hands over each
//! read's bytes as they arrive, the flow's timeout bounds the response head
//! (ureq's `timeout_recv_response`), each read of the body has the deadline
//! the flow gives it (set on the connection itself: ureq has no per-read
//! timeout), and dropping the body closes the connection.
//!
//! ```no_run
//! use etcd_blocking::Client;
//! use etcd_blocking::v2::{ReadOptions, WriteOptions};
//!
//! let client = Client::new("http://127.0.0.1:2379")?;
//! client.set("/config/name", "alpha")?;
//! client.write("/session", "token", WriteOptions::new().ttl(30))?;
//! let dir = client.read("/config", ReadOptions::new().recursive(true).quorum(true))?;
//! for leaf in dir.node.leaves() {
//!     println!("{} = {:?}", leaf.key, leaf.value);
//! }
//! # Ok::<(), etcd_blocking::Error>(())
//! ```

mod io;
mod srv;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::drive::{Exchange, ExchangeFailure, ResponseBody, Transport};
use etcd_proto::{Cluster, Config, FromConfig, Transmit};
use ureq::unversioned::transport::{ConnectProxyConnector, Connector as _};

pub use etcd_proto::{v2, v3, Endpoint, Error, ErrorKind, TransportError, UsageError};

/// TLS settings ([`tls::TlsOptions`]), for the builder's `tls(...)`.
#[cfg(feature = "tls")]
pub use etcd_proto::tls;

pub use etcd_proto::DEFAULT_ENDPOINT;

/// Settings for a [`Client`]; start from [`Client::builder`].
pub type ClientBuilder = etcd_proto::ClientBuilder<Client>;

/// A blocking etcd client. See the [crate docs](crate). Cloning is cheap: a
/// clone shares the connection pool and the cluster state.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    /// The same settings as `agent`, but no pool: every streamed response
    /// gets a fresh connection, which closes with its body.
    stream_agent: ureq::Agent,
    cluster: Arc<Mutex<Cluster>>,
    max_response_bytes: u64,
    /// The agents' own global timeout: a request with this timeout needs no
    /// settings of its own.
    request_timeout: Option<Duration>,
}

impl FromConfig for Client {
    fn from_config(config: Config) -> Result<Client, Error> {
        #[cfg(not(feature = "tls"))]
        config.refuse_https("etcd-blocking")?;
        // ureq speaks HTTP/1.1: v3 goes through the gateway.
        config.refuse_grpc("etcd-blocking")?;
        let cluster = config.cluster()?;
        #[cfg(feature = "tls")]
        let tls_config = config.tls_client_config()?;
        let agent = |max_idle_connections| {
            let agent_config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(config.connect_timeout))
                .timeout_global(config.request_timeout)
                .max_idle_connections(max_idle_connections)
                .max_idle_connections_per_host(max_idle_connections)
                .build();
            // ureq's chain with our own TCP transport (leaner), which also
            // runs TLS on https:// endpoints: a CONNECT tunnel if a proxy is
            // configured, else TCP.
            let tcp = io::TcpConnector {
                #[cfg(feature = "tls")]
                tls: Some(io::TlsSettings {
                    config: tls_config.clone(),
                    options: config.tls.clone(),
                }),
            };
            let connector = ConnectProxyConnector::default().chain(tcp);
            ureq::Agent::with_parts(agent_config, connector, io::LiteralFirstResolver::default())
        };
        Ok(Client {
            agent: agent(config.max_idle_connections),
            stream_agent: agent(0),
            cluster: Arc::new(Mutex::new(cluster)),
            max_response_bytes: config.max_response_bytes,
            request_timeout: config.request_timeout,
        })
    }
}

impl Client {
    /// Sends `transmit` on `agent` and returns the response as soon as its
    /// head arrived; `bound` says what `transmit.timeout` bounds.
    fn send_on(
        &self,
        agent: &ureq::Agent,
        transmit: Transmit,
        bound: Bound,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let (parts, body) = transmit.request.into_parts();
        if body.is_empty() {
            let request = http::Request::from_parts(parts, ());
            self.run_within(agent, request, transmit.timeout, bound)
        } else {
            let request = http::Request::from_parts(parts, body.as_ref());
            self.run_within(agent, request, transmit.timeout, bound)
        }
    }

    /// Runs `request` on `agent` within `timeout`. The usual timeout of a
    /// whole exchange is the agent's own; any other takes a copy of the
    /// agent's settings for this one request.
    fn run_within<B: ureq::AsSendBody>(
        &self,
        agent: &ureq::Agent,
        request: http::Request<B>,
        timeout: Option<Duration>,
        bound: Bound,
    ) -> Result<http::Response<ureq::Body>, ureq::Error> {
        let configure = match bound {
            Bound::Whole if timeout == self.request_timeout => return agent.run(request),
            Bound::Whole => agent.configure_request(request).timeout_global(timeout),
            Bound::Head => agent
                .configure_request(request)
                .timeout_global(None)
                .timeout_recv_response(timeout),
        };
        agent.run(configure.build())
    }
}

/// What a request's timeout bounds.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// The whole exchange, reading the body included (ureq's global timeout).
    Whole,
    /// The response head (a streamed response: each read of its body is
    /// bounded by itself).
    Head,
}

/// The streaming body of a response opened with [`Transport::open`], on a
/// connection of its own: dropping it closes the connection.
pub struct StreamBody {
    reader: ureq::BodyReader<'static>,
    buffer: Box<[u8]>,
    /// Bounds each read on the body's connection.
    read_deadline: Arc<io::ReadDeadline>,
}

impl std::fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBody").finish_non_exhaustive()
    }
}

/// The most one read of a streamed body returns.
const STREAM_CHUNK: usize = 16 * 1024;

impl ResponseBody for StreamBody {
    fn next_chunk(&mut self, until: Option<Instant>) -> Result<Option<Bytes>, ExchangeFailure> {
        use std::io::Read as _;
        self.read_deadline.set(until);
        loop {
            // One read returns whatever arrived: it waits for the next bytes,
            // never to fill the buffer.
            match self.reader.read(&mut self.buffer) {
                Ok(0) => return Ok(None),
                Ok(n) => return Ok(Some(Bytes::copy_from_slice(&self.buffer[..n]))),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // ureq hands its own errors (a timeout, say) back wrapped in an io::Error.
                Err(e) => {
                    return Err(failure_within(
                        ureq::Error::from(e),
                        "nothing arrived on the streamed response before its read deadline",
                    ))
                }
            }
        }
    }
}

impl etcd_proto::drive::Entropy for Client {
    fn random(&self) -> u64 {
        // std's per-process random hash keys, advanced on every call.
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
    }
}

impl Transport for Client {
    type Body = StreamBody;

    fn open(
        &self,
        transmit: Transmit,
    ) -> Result<(http::response::Parts, StreamBody), ExchangeFailure> {
        let read_deadline = Arc::new(io::ReadDeadline::default());
        let limit = transmit.timeout;
        let (parts, body) = io::with_read_deadline(read_deadline.clone(), || {
            self.send_on(&self.stream_agent, transmit, Bound::Head)
        })
        .map_err(|e| failure_within(e, &format!("no response head within {limit:?}")))?
        .into_parts();
        let body = StreamBody {
            reader: body.into_reader(),
            buffer: vec![0; STREAM_CHUNK].into_boxed_slice(),
            read_deadline,
        };
        Ok((parts, body))
    }

    fn send(&self, transmit: Transmit) -> Exchange {
        let within = match transmit.timeout {
            Some(limit) => format!("no complete response within {limit:?}"),
            None => "no complete response".to_owned(),
        };
        let response = self.send_on(&self.agent, transmit, Bound::Whole);
        let (parts, mut body) = response
            .map_err(|e| failure_within(e, &within))?
            .into_parts();
        let bytes = body
            .with_config()
            .limit(self.max_response_bytes)
            .read_to_vec()
            .map_err(|e| failure_within(e, &within))?;
        Ok(http::Response::from_parts(parts, Bytes::from(bytes)))
    }

    fn sleep_until(&self, deadline: Instant) {
        // Parked, not slept: a wake (a keep-alive stopped) ends it early.
        std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        // The cluster state stays consistent between calls, so a panic elsewhere cannot corrupt it.
        f(&mut self
            .cluster
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn spawn(&self, task: impl FnOnce() + Send + 'static) {
        // A lock's TTL keeper.
        drop(std::thread::spawn(task));
    }
}

etcd_proto::transport_client!(Client);

/// Sorts a ureq error into the kind the core reasons with.
/// [`failure`], saying `what_timed_out` for a timeout: ureq's own text
/// ("timeout: global") names neither the wait nor its length.
fn failure_within(error: ureq::Error, what_timed_out: &str) -> ExchangeFailure {
    let failure = failure(error);
    if failure.kind != TransportErrorKind::Timeout {
        return failure;
    }
    ExchangeFailure::new(
        TransportErrorKind::Timeout,
        std::io::Error::new(std::io::ErrorKind::TimedOut, what_timed_out.to_owned()),
    )
}

fn failure(error: ureq::Error) -> ExchangeFailure {
    use ureq::{Error as E, Timeout as T};
    let kind = match &error {
        E::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            TransportErrorKind::Connect
        }
        E::ConnectionFailed | E::HostNotFound => TransportErrorKind::Connect,
        E::Timeout(T::Connect | T::Resolve) => TransportErrorKind::Connect,
        E::Timeout(_) => TransportErrorKind::Timeout,
        E::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => TransportErrorKind::Timeout,
        E::Protocol(_) | E::BodyExceedsLimit(_) | E::LargeResponseHeader(..) => {
            TransportErrorKind::Http
        }
        E::Tls(_) | E::TlsRequired => TransportErrorKind::Tls,
        E::Other(e) if e.is::<io::TlsUnavailable>() || e.is::<io::TlsFailure>() => {
            TransportErrorKind::Tls
        }
        _ => TransportErrorKind::Io,
    };
    ExchangeFailure::new(kind, error)
}
