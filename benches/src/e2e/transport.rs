//! The transports under test, behind one [`Driver`] interface.
//!
//! A driver owns its client (and connections, and runtime) for the whole
//! benchmark, so keep-alive connections opened during the warm-up are the
//! ones measured. [`Driver::run`] performs one [`Job`]: `clients` workers
//! (threads or tasks) take request numbers from a shared counter until
//! `requests` have been issued; request `i` uses key `i % keys.len()`. Each
//! worker times every request with [`Instant`] and records into its own
//! [`Recorder`]. Nothing else happens inside `run`, so the caller can read the
//! clocks around it.
//!
//! | transport   | what runs the `clients` workers                                   |
//! |-------------|-------------------------------------------------------------------|
//! | `raw`       | threads, each with one [`RawConnection`]: no client library       |
//! | `ureq`      | threads sharing one bare `ureq::Agent` ([`bare_stack`](super::bare_stack)) |
//! | `blocking`  | threads sharing one `Arc<etcd_blocking::Client>`                  |
//! | `hyper`     | tasks on a 2-worker multi-thread runtime, one bare hyper-util client |
//! | `tokio`     | tasks on a 2-worker multi-thread runtime, one `etcd_tokio::Client` |
//! | `async-std` | tasks on async-std's runtime, one `etcd_async_std::Client`         |
//!
//! Each runs over plain HTTP or, given a [`Target`] with a CA, over TLS
//! (rustls in every one): a [`Lane`] is a transport and which of the two.
//!
//! The clients run every workload through `execute(op)` with the
//! `etcd_proto` operation ([`checked`] judges the answer); `raw` writes the
//! same requests by hand: the v2 path and form body, or the v3 gateway's JSON
//! body with base64 key and value.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::latency::Recorder;
use etcd_proto::tls::TlsOptions;
use etcd_proto::{v2, v3};

use super::bare_stack::{judge_status, HyperDriver, UreqDriver};
use super::raw_http::RawConnection;
use super::workload::{base64, push_base64, Workload};

/// One measured (or warm-up) batch of requests.
#[derive(Debug, Clone)]
pub struct Job {
    /// What every request does.
    pub workload: Workload,
    /// The keys, cycled over.
    pub keys: Arc<[String]>,
    /// The value written by puts.
    pub value: Arc<str>,
    /// Requests in flight at once (workers).
    pub clients: usize,
    /// Requests in all.
    pub requests: usize,
}

/// Failed requests of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors {
    /// How many requests failed.
    pub count: u64,
    /// The first failure's message.
    pub first: Option<String>,
}

impl Errors {
    /// Counts one failure.
    pub fn add(&mut self, message: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(message());
        }
    }

    /// Adds another worker's failures.
    pub fn absorb(&mut self, other: Errors) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

/// What one worker measured.
#[derive(Debug, Default)]
pub struct WorkerOutcome {
    /// Latencies of the successful requests.
    pub latencies: Recorder,
    /// The failed requests.
    pub errors: Errors,
}

/// What a whole job measured, every worker's outcome together.
#[derive(Debug, Default)]
pub struct JobOutcome {
    /// One per worker.
    pub latencies: Vec<Recorder>,
    /// All failures.
    pub errors: Errors,
}

impl FromIterator<WorkerOutcome> for JobOutcome {
    fn from_iter<I: IntoIterator<Item = WorkerOutcome>>(iter: I) -> Self {
        let mut out = JobOutcome::default();
        for w in iter {
            out.latencies.push(w.latencies);
            out.errors.absorb(w.errors);
        }
        out
    }
}

/// A transport ready to run jobs. See the [module docs](self).
pub trait Driver {
    /// Runs one job to completion. `Err` only when the job could not run at
    /// all (no connection, say); failed requests are counted in the outcome.
    fn run(&mut self, job: &Job) -> Result<JobOutcome, String>;
}

/// Where a driver connects: the endpoints and, over TLS, the CA their
/// certificates are checked against.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Base URLs: `http://` ones, or `https://` ones with `ca_pem`.
    pub endpoints: Vec<String>,
    /// Over TLS: the CA (PEM) to trust, instead of the system's roots.
    pub ca_pem: Option<String>,
}

impl Target {
    /// Plain HTTP endpoints.
    pub fn plain(endpoints: &[String]) -> Target {
        Target {
            endpoints: endpoints.to_vec(),
            ca_pem: None,
        }
    }

    /// The clients' TLS settings for this target: trust in its CA alone.
    pub fn tls(&self) -> Option<TlsOptions> {
        self.ca_pem.as_ref().map(|pem| {
            TlsOptions::default()
                .ca_pem(pem.clone())
                .system_roots(false)
        })
    }

    /// The endpoints, or the default one when there are none.
    pub fn endpoints_or_default(&self) -> Vec<String> {
        endpoints_or_default(&self.endpoints)
    }
}

/// A transport over plain HTTP or over TLS: one line of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lane {
    /// The transport.
    pub kind: TransportKind,
    /// Over TLS (`https://`).
    pub tls: bool,
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls {
            write!(f, "{}+tls", self.kind)
        } else {
            write!(f, "{}", self.kind)
        }
    }
}

/// The transports this benchmark knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Bare HTTP/1.1 over `std::net::TcpStream`: the baseline.
    Raw,
    /// ureq alone, the same requests as `raw`: the floor of `etcd-blocking`.
    Ureq,
    /// `etcd-blocking` (ureq).
    Blocking,
    /// hyper-util's client alone, the same requests as `raw`: the floor of `etcd-tokio`.
    Hyper,
    /// `etcd-tokio`.
    Tokio,
    /// `etcd-async-std`.
    AsyncStd,
    /// `etcd-tokio` with v3 over native gRPC (HTTP/2); v2 as `tokio`.
    TokioGrpc,
    /// `etcd-async-std` with v3 over native gRPC (HTTP/2); v2 as `async-std`.
    AsyncStdGrpc,
}

impl TransportKind {
    /// Every transport, in report order.
    pub const ALL: [TransportKind; 8] = [
        TransportKind::Raw,
        TransportKind::Ureq,
        TransportKind::Blocking,
        TransportKind::Hyper,
        TransportKind::Tokio,
        TransportKind::AsyncStd,
        TransportKind::TokioGrpc,
        TransportKind::AsyncStdGrpc,
    ];

    /// The name used in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Raw => "raw",
            TransportKind::Ureq => "ureq",
            TransportKind::Blocking => "blocking",
            TransportKind::Hyper => "hyper",
            TransportKind::Tokio => "tokio",
            TransportKind::AsyncStd => "async-std",
            TransportKind::TokioGrpc => "tokio-grpc",
            TransportKind::AsyncStdGrpc => "async-std-grpc",
        }
    }

    /// True for an etcd client; false for a baseline (`raw`, or a bare HTTP
    /// stack), which the targets do not apply to.
    pub fn is_client(self) -> bool {
        matches!(
            self,
            TransportKind::Blocking
                | TransportKind::Tokio
                | TransportKind::AsyncStd
                | TransportKind::TokioGrpc
                | TransportKind::AsyncStdGrpc
        )
    }

    /// A driver for this transport talking to `target` (no I/O yet).
    pub fn driver(self, target: &Target) -> Result<Box<dyn Driver>, String> {
        match self {
            TransportKind::Raw => Ok(Box::new(RawDriver::new(target)?)),
            TransportKind::Ureq => Ok(Box::new(UreqDriver::new(target)?)),
            TransportKind::Blocking => Ok(Box::new(BlockingDriver::new(target)?)),
            TransportKind::Hyper => Ok(Box::new(HyperDriver::new(target)?)),
            TransportKind::Tokio => super::tokio_driver::driver(target, false),
            TransportKind::AsyncStd => super::async_std_driver::driver(target, false),
            TransportKind::TokioGrpc => super::tokio_driver::driver(target, true),
            TransportKind::AsyncStdGrpc => super::async_std_driver::driver(target, true),
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TransportKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        TransportKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown transport {s:?} (expected raw, ureq, blocking, hyper, tokio, async-std, tokio-grpc or async-std-grpc)"
                )
            })
    }
}

/// The loop of one thread worker: take request numbers until `job.requests`
/// are issued, timing `op(key)` for each.
pub fn thread_worker(
    job: &Job,
    next: &AtomicUsize,
    mut op: impl FnMut(&str) -> Result<(), String>,
) -> WorkerOutcome {
    let mut out = WorkerOutcome {
        latencies: Recorder::with_capacity(expected_per_worker(job)),
        errors: Errors::default(),
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= job.requests {
            return out;
        }
        let key = &job.keys[i % job.keys.len()];
        let start = Instant::now();
        let result = op(key);
        let elapsed = start.elapsed();
        match result {
            Ok(()) => out.latencies.record(elapsed),
            Err(e) => out.errors.add(|| e),
        }
    }
}

/// Room to reserve per worker: its fair share and some slack, so recording
/// rarely reallocates while measuring.
pub fn expected_per_worker(job: &Job) -> usize {
    let share = job.requests / job.clients.max(1);
    share + share / 2 + 16
}

/// The endpoints, or the default one when there are none.
pub fn endpoints_or_default(endpoints: &[String]) -> Vec<String> {
    if endpoints.is_empty() {
        vec![etcd_proto::DEFAULT_ENDPOINT.to_owned()]
    } else {
        endpoints.to_vec()
    }
}

/// The `raw` baseline: one [`RawConnection`] per worker thread, worker `w`
/// on endpoint `w % endpoints.len()`. Connections are kept between jobs.
#[derive(Debug)]
pub struct RawDriver {
    endpoints: Vec<String>,
    tls: Option<TlsOptions>,
    connections: Vec<RawConnection>,
}

impl RawDriver {
    /// A driver for `target` (no connection yet).
    pub fn new(target: &Target) -> Result<RawDriver, String> {
        Ok(RawDriver {
            endpoints: target.endpoints_or_default(),
            tls: target.tls(),
            connections: Vec::new(),
        })
    }
}

impl Driver for RawDriver {
    fn run(&mut self, job: &Job) -> Result<JobOutcome, String> {
        while self.connections.len() < job.clients {
            let url = &self.endpoints[self.connections.len() % self.endpoints.len()];
            let conn = match &self.tls {
                None => RawConnection::connect(url),
                Some(tls) => RawConnection::connect_tls(url, tls),
            };
            self.connections
                .push(conn.map_err(|e| format!("{url}: {e}"))?);
        }
        let next = AtomicUsize::new(0);
        // The value is the same in every request: encode it once.
        let value_b64 = base64(job.value.as_bytes());
        Ok(std::thread::scope(|s| {
            let workers: Vec<_> = self.connections[..job.clients]
                .iter_mut()
                .map(|conn| {
                    let (next, value_b64) = (&next, value_b64.as_bytes());
                    s.spawn(move || {
                        let mut scratch = RawScratch::default();
                        thread_worker(job, next, |key| {
                            raw_request(conn, job, key, value_b64, &mut scratch)
                        })
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker panicked"))
                .collect()
        }))
    }
}

/// A raw worker's buffers, reused from one request to the next.
#[derive(Debug, Default)]
struct RawScratch {
    /// A v2 request's path.
    path: String,
    /// A v3 request's key, base64.
    key_b64: Vec<u8>,
}

/// One request of `job.workload` for `key` on `conn`, by hand: the v2 path
/// and form body, or the v3 gateway's JSON body. `value_b64` is the value in
/// base64. Succeeds on the status a successful call has.
fn raw_request(
    conn: &mut RawConnection,
    job: &Job,
    key: &str,
    value_b64: &[u8],
    scratch: &mut RawScratch,
) -> Result<(), String> {
    let workload = job.workload;
    let response = match workload {
        Workload::Put | Workload::Get => {
            let path = &mut scratch.path;
            path.clear();
            path.push_str("/v2/keys");
            path.push_str(key);
            if workload == Workload::Put {
                conn.put_value(path, job.value.as_bytes())
            } else {
                conn.get(path)
            }
        }
        Workload::V3Put | Workload::V3Range => {
            let key_b64 = &mut scratch.key_b64;
            key_b64.clear();
            push_base64(key_b64, key.as_bytes());
            if workload == Workload::V3Put {
                conn.post_json(
                    "/v3/kv/put",
                    &[
                        b"{\"key\":\"",
                        key_b64,
                        b"\",\"value\":\"",
                        value_b64,
                        b"\"}",
                    ],
                )
            } else {
                conn.post_json("/v3/kv/range", &[b"{\"key\":\"", key_b64, b"\"}"])
            }
        }
    }
    .map_err(|e| format!("{workload} {key}: {e}"))?;
    judge_status(workload, key, response.status, response.body)
}

/// What a client call answered, judged: a read of one v3 key must find it
/// (the keys were written first; a v2 read of a missing key fails anyway).
pub trait Checked {
    /// `Err` when the answer, though successful, is not what the workload expects.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl Checked for v2::KeysResponse {}

impl Checked for v3::PutResponse {}

impl Checked for v3::RangeResponse {
    fn check(&self) -> Result<(), String> {
        if self.kvs.is_empty() {
            Err("key not found".into())
        } else {
            Ok(())
        }
    }
}

/// The outcome of one client call as the worker loops count it.
pub fn checked<T: Checked>(result: Result<T, etcd_proto::Error>) -> Result<(), String> {
    result.map_err(|e| e.to_string())?.check()
}

/// `etcd-blocking`: one client shared by every worker thread.
#[derive(Debug)]
pub struct BlockingDriver {
    client: Arc<etcd_blocking::Client>,
}

impl BlockingDriver {
    /// A client for `target` (no I/O yet).
    pub fn new(target: &Target) -> Result<BlockingDriver, String> {
        let mut builder = target
            .endpoints_or_default()
            .into_iter()
            .fold(etcd_blocking::Client::builder(), |b, url| b.endpoint(url));
        if let Some(tls) = target.tls() {
            builder = builder.tls(tls);
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(BlockingDriver {
            client: Arc::new(client),
        })
    }
}

impl Driver for BlockingDriver {
    fn run(&mut self, job: &Job) -> Result<JobOutcome, String> {
        let next = AtomicUsize::new(0);
        let workload = job.workload;
        Ok(std::thread::scope(|s| {
            let workers: Vec<_> = (0..job.clients)
                .map(|_| {
                    let client = Arc::clone(&self.client);
                    let next = &next;
                    s.spawn(move || {
                        thread_worker(job, next, |key| {
                            let value = &*job.value;
                            match workload {
                                Workload::Put => {
                                    checked(client.execute(v2::Write::new(key, value)))
                                }
                                Workload::Get => checked(client.execute(v2::Read::new(key))),
                                Workload::V3Put => {
                                    checked(client.execute(v3::Put::new(key, value)))
                                }
                                Workload::V3Range => checked(client.execute(v3::Get::new(key))),
                            }
                            .map_err(|e| format!("{workload} {key}: {e}"))
                        })
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker panicked"))
                .collect()
        }))
    }
}
