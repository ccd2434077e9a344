//! One scenario source, every transport: the conformance suite's plumbing.
//!
//! A scenario is a function `fn(&TestClient, &Env)`. The [`scenarios!`](crate::scenarios)
//! macro turns each into a module holding one `#[test]` per transport, so
//! `cargo test` lists `set_and_get::blocking`, `set_and_get::tokio`,
//! `set_and_get::async_std`, and a failure names both the scenario and the
//! transport. [`TestClient`] runs operations on whichever client the test was
//! generated for (an async client on its own runtime), and gets the very same
//! convenience methods as the real clients from `etcd_proto::client_methods!`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use etcd_proto::drive::BlockingRun;
use etcd_proto::v2::{WatchEvent, WatchOptions};
use etcd_proto::{Config, Error, Flow, FromConfig, Operation};

use etcd_proto::tls::TlsOptions;

use crate::harness::{EtcdCluster, EtcdServer};
use crate::tls::TestPki;

/// The transports under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `etcd-blocking` (ureq).
    Blocking,
    /// `etcd-tokio` (hyper on tokio).
    Tokio,
    /// `etcd-async-std` (hyper on async-std).
    AsyncStd,
    /// `etcd-tokio` with v3 over native gRPC (HTTP/2).
    TokioGrpc,
    /// `etcd-async-std` with v3 over native gRPC (HTTP/2).
    AsyncStdGrpc,
}

impl Transport {
    /// A client of this transport built from `config`.
    pub fn connect_config(self, config: Config) -> TestClient {
        self.try_connect_config(config).expect("valid config")
    }

    /// A client of this transport built from `config`, or the error its
    /// `build()` gave.
    pub fn try_connect_config(self, mut config: Config) -> Result<TestClient, Error> {
        if self.grpc() {
            config.v3_encoding = etcd_proto::v3::V3Encoding::Grpc;
        }
        Ok(match self.runtime() {
            Transport::Blocking => TestClient::Blocking(FromConfig::from_config(config)?),
            Transport::Tokio => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                TestClient::Tokio {
                    runtime: Arc::new(runtime),
                    client: FromConfig::from_config(config)?,
                }
            }
            Transport::AsyncStd => TestClient::AsyncStd(FromConfig::from_config(config)?),
            Transport::TokioGrpc | Transport::AsyncStdGrpc => unreachable!("a runtime"),
        })
    }

    /// True if v3 goes over native gRPC.
    pub fn grpc(self) -> bool {
        matches!(self, Transport::TokioGrpc | Transport::AsyncStdGrpc)
    }

    /// The client crate, whatever the encoding: `Blocking`, `Tokio` or `AsyncStd`.
    pub fn runtime(self) -> Transport {
        match self {
            Transport::TokioGrpc => Transport::Tokio,
            Transport::AsyncStdGrpc => Transport::AsyncStd,
            other => other,
        }
    }

    /// A client of this transport for `urls`, with `request_timeout`.
    pub fn connect_with(self, urls: &[String], request_timeout: Duration) -> TestClient {
        self.connect_config(Config {
            endpoints: urls.to_vec(),
            request_timeout: Some(request_timeout),
            ..Config::default()
        })
    }

    /// A client of this transport for `urls`, with a 10 s request timeout.
    pub fn connect(self, urls: &[String]) -> TestClient {
        self.connect_with(urls, Duration::from_secs(10))
    }
}

/// A client of one transport, with the common client API.
// One per test: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TestClient {
    /// See [`Transport::Blocking`].
    Blocking(etcd_blocking::Client),
    /// See [`Transport::Tokio`]; runs on its own multi-thread runtime.
    Tokio {
        /// The runtime the client's futures run on.
        runtime: Arc<tokio::runtime::Runtime>,
        /// The client.
        client: etcd_tokio::Client,
    },
    /// See [`Transport::AsyncStd`].
    AsyncStd(etcd_async_std::Client),
}

impl TestClient {
    /// Runs one operation on the underlying client.
    pub fn execute<O: Operation + Send>(&self, op: O) -> Result<O::Output, Error>
    where
        O::Output: Send,
    {
        match self {
            TestClient::Blocking(client) => client.execute(op),
            TestClient::Tokio { runtime, client } => runtime.block_on(client.execute(op)),
            TestClient::AsyncStd(client) => async_std::task::block_on(client.execute(op)),
        }
    }

    /// Drives a flow on the underlying client.
    pub fn run<F: Flow + Send>(&self, flow: F) -> Result<F::Output, Error>
    where
        F::Output: Send,
    {
        match self {
            TestClient::Blocking(client) => client.run(flow),
            TestClient::Tokio { runtime, client } => runtime.block_on(client.run(flow)),
            TestClient::AsyncStd(client) => async_std::task::block_on(client.run(flow)),
        }
    }

    /// Runs every operation at once through this one client: threads for the
    /// blocking client, spawned tasks for the async ones. Results in order.
    pub fn concurrently<O>(&self, ops: Vec<O>) -> Vec<Result<O::Output, Error>>
    where
        O: Operation + Send + 'static,
        O::Output: Send + 'static,
    {
        match self {
            TestClient::Blocking(client) => std::thread::scope(|s| {
                let handles: Vec<_> = ops
                    .into_iter()
                    .map(|op| s.spawn(move || client.execute(op)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("request thread"))
                    .collect()
            }),
            TestClient::Tokio { runtime, client } => runtime.block_on(async {
                let handles: Vec<_> = ops
                    .into_iter()
                    .map(|op| {
                        let client = client.clone();
                        tokio::spawn(async move { client.execute(op).await })
                    })
                    .collect();
                let mut results = Vec::new();
                for h in handles {
                    results.push(h.await.expect("request task"));
                }
                results
            }),
            TestClient::AsyncStd(client) => async_std::task::block_on(async {
                let handles: Vec<_> = ops
                    .into_iter()
                    .map(|op| {
                        let client = client.clone();
                        async_std::task::spawn(async move { client.execute(op).await })
                    })
                    .collect();
                let mut results = Vec::new();
                for h in handles {
                    results.push(h.await);
                }
                results
            }),
        }
    }

    /// Starts `op` and drops it after `after`, cancelling it part-way if it
    /// has not finished. Returns whether it finished in time. Async clients only.
    pub fn cancel_after<O>(&self, op: O, after: Duration) -> bool
    where
        O: Operation + Send,
        O::Output: Send,
    {
        match self {
            TestClient::Blocking(_) => panic!("a blocking call cannot be cancelled"),
            TestClient::Tokio { runtime, client } => runtime.block_on(async {
                tokio::time::timeout(after, client.execute(op))
                    .await
                    .is_ok()
            }),
            TestClient::AsyncStd(client) => async_std::task::block_on(async {
                async_std::future::timeout(after, client.execute(op))
                    .await
                    .is_ok()
            }),
        }
    }

    /// Runs a future to completion on this client's runtime (or the current
    /// thread for the blocking client).
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        match self {
            TestClient::Tokio { runtime, .. } => runtime.block_on(future),
            TestClient::Blocking(_) | TestClient::AsyncStd(_) => async_std::task::block_on(future),
        }
    }
}

/// Chance as the transport under test draws it.
impl etcd_proto::drive::Entropy for TestClient {
    fn random(&self) -> u64 {
        match self {
            TestClient::Blocking(client) => client.random(),
            TestClient::Tokio { client, .. } => client.random(),
            TestClient::AsyncStd(client) => client.random(),
        }
    }
}

etcd_proto::client_methods!(TestClient);
etcd_proto::v3_methods!(TestClient);

impl BlockingRun for TestClient {
    /// Only the blocking client runs arbitrary (possibly non-`Send`) flows
    /// here; tests watch async clients through [`TestClient::watch_events`].
    fn run_flow<F: Flow>(&self, flow: F) -> Result<F::Output, Error> {
        match self {
            TestClient::Blocking(client) => client.run_flow(flow),
            _ => panic!("use watch_events() for async transports"),
        }
    }
}

impl TestClient {
    /// The transport's own continuous watcher, as a blocking iterator: the
    /// blocking client's `Iterator`, or the async clients' `Stream` polled on
    /// their runtime.
    pub fn watch_events<'a>(
        &'a self,
        key: &str,
        options: WatchOptions,
    ) -> Box<dyn Iterator<Item = Result<WatchEvent, Error>> + 'a> {
        fn next<S: futures_core::Stream + Unpin>(
            stream: &mut S,
        ) -> impl Future<Output = Option<S::Item>> + '_ {
            std::future::poll_fn(move |cx| std::pin::Pin::new(&mut *stream).poll_next(cx))
        }
        match self {
            TestClient::Blocking(client) => Box::new(client.watcher(key, options)),
            TestClient::Tokio { runtime, client } => {
                let mut stream = client.watcher(key, options);
                Box::new(std::iter::from_fn(move || {
                    runtime.block_on(next(&mut stream))
                }))
            }
            TestClient::AsyncStd(client) => {
                let mut stream = client.watcher(key, options);
                Box::new(std::iter::from_fn(move || {
                    async_std::task::block_on(next(&mut stream))
                }))
            }
        }
    }
}

/// Sends every item of `flow`, driven by an async client's own stream, to
/// `items`, until nobody waits for them any more.
async fn forward<T, F>(client: T, flow: F, items: std::sync::mpsc::Sender<Result<F::Item, Error>>)
where
    T: etcd_proto::drive::AsyncTransport + Clone + Send + Sync + 'static,
    F: etcd_proto::StreamFlow + Send + 'static,
    F::Item: Send,
{
    let mut stream = etcd_proto::drive::FlowStream::new(client, flow);
    while let Some(item) = std::future::poll_fn(|cx| {
        futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
    })
    .await
    {
        if items.send(item).is_err() {
            return;
        }
    }
}

impl TestClient {
    /// Runs a [`StreamFlow`](etcd_proto::StreamFlow) to its first item through the transport's
    /// stream driver ([`run_stream_blocking`](etcd_proto::drive::run_stream_blocking)
    /// or [`run_stream`](etcd_proto::drive::run_stream)); the stream is
    /// closed on return.
    pub fn stream_first<F: etcd_proto::StreamFlow + Send + 'static>(
        &self,
        flow: F,
    ) -> Result<F::Item, Error> {
        match self {
            TestClient::Blocking(client) => etcd_proto::drive::run_stream_blocking(client, flow),
            TestClient::Tokio { runtime, client } => {
                runtime.block_on(etcd_proto::drive::run_stream(client, flow))
            }
            TestClient::AsyncStd(client) => {
                async_std::task::block_on(etcd_proto::drive::run_stream(client, flow))
            }
        }
    }

    /// Drives a [`StreamFlow`](etcd_proto::StreamFlow) through the
    /// transport's own stream, handing each item (with when it arrived) to
    /// `keep_going` until it says stop, the stream ends, or `deadline` (from
    /// now) passes. Warnings (`Err` items that are not the last) are handed
    /// on like any item.
    pub fn stream_until<F: etcd_proto::StreamFlow + Send + 'static>(
        &self,
        flow: F,
        deadline: Duration,
        mut keep_going: impl FnMut(std::time::Instant, Result<F::Item, Error>) -> bool,
    ) where
        F::Item: Send + 'static,
    {
        let (items, received) = std::sync::mpsc::channel();
        let until = std::time::Instant::now() + deadline;
        // The reader runs on its own thread (a task for the async clients)
        // and stops at the first item nobody waits for any more.
        let reader: Box<dyn FnOnce() + Send> = match self {
            TestClient::Blocking(client) => {
                let client = client.clone();
                Box::new(move || {
                    for item in etcd_proto::drive::StreamIter::new(&client, flow) {
                        if items.send(item).is_err() {
                            return;
                        }
                    }
                })
            }
            TestClient::Tokio { runtime, client } => {
                let (runtime, client) = (runtime.clone(), client.clone());
                Box::new(move || runtime.block_on(forward(client, flow, items)))
            }
            TestClient::AsyncStd(client) => {
                let client = client.clone();
                Box::new(move || async_std::task::block_on(forward(client, flow, items)))
            }
        };
        std::thread::spawn(reader);
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            match received.recv_timeout(left) {
                Ok(item) => {
                    if !keep_going(std::time::Instant::now(), item) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// Drives a [`StreamFlow`](etcd_proto::StreamFlow) through the transport's own stream
    /// ([`StreamIter`](etcd_proto::drive::StreamIter) or
    /// [`FlowStream`](etcd_proto::drive::FlowStream)) and collects its first
    /// `n` items, fewer if it ends first (an `End(Err)` is the last item) or
    /// if `deadline` (from now) passes. The stream is closed on return — on
    /// the blocking transport, whose reads cannot be interrupted, as soon as
    /// the reader thread's read in progress returns.
    pub fn stream_items<F: etcd_proto::StreamFlow + Send + 'static>(
        &self,
        flow: F,
        n: usize,
        deadline: Duration,
    ) -> Vec<Result<F::Item, Error>>
    where
        F::Item: Send + 'static,
    {
        fn next_item<S: futures_core::Stream + Unpin>(
            stream: &mut S,
        ) -> impl Future<Output = Option<S::Item>> + '_ {
            std::future::poll_fn(move |cx| std::pin::Pin::new(&mut *stream).poll_next(cx))
        }
        let until = std::time::Instant::now() + deadline;
        match self {
            TestClient::Blocking(client) => {
                let client = client.clone();
                let (items, received) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    // Stops (closing the stream) after n items, at the end,
                    // or at the first item nobody waits for any more.
                    for item in etcd_proto::drive::StreamIter::new(&client, flow).take(n) {
                        if items.send(item).is_err() {
                            return;
                        }
                    }
                });
                let mut got = Vec::new();
                while got.len() < n {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    match received.recv_timeout(left) {
                        Ok(item) => got.push(item),
                        Err(_) => break,
                    }
                }
                got
            }
            TestClient::Tokio { runtime, client } => runtime.block_on(async {
                let mut stream = etcd_proto::drive::FlowStream::new(client.clone(), flow);
                let mut got = Vec::new();
                let until = tokio::time::Instant::from_std(until);
                while got.len() < n {
                    match tokio::time::timeout_at(until, next_item(&mut stream)).await {
                        Ok(Some(item)) => got.push(item),
                        Ok(None) | Err(_) => break,
                    }
                }
                got
            }),
            TestClient::AsyncStd(client) => async_std::task::block_on(async {
                let mut stream = etcd_proto::drive::FlowStream::new(client.clone(), flow);
                let mut got = Vec::new();
                while got.len() < n {
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    match async_std::future::timeout(left, next_item(&mut stream)).await {
                        Ok(Some(item)) => got.push(item),
                        Ok(None) | Err(_) => break,
                    }
                }
                got
            }),
        }
    }
}

/// What a scenario runs against.
pub enum Topology {
    /// One member.
    Single(EtcdServer),
    /// Three members.
    Cluster(EtcdCluster),
}

/// The servers a scenario asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// One member, plain HTTP.
    Single,
    /// `n` members, plain HTTP.
    Cluster(usize),
    /// `n` members talking to each other over TLS, serving clients over TLS
    /// with client certificates required; the client connects to the TLS
    /// URLs, trusting the test CA and presenting a certificate it signed.
    TlsCluster(usize),
}

/// The servers and facts a scenario may use.
pub struct Env {
    /// The servers.
    pub topology: Topology,
    /// The transport under test.
    pub transport: Transport,
    /// The CA of a [`Setup::TlsCluster`], and the options its clients use.
    pub pki: Option<(TestPki, TlsOptions)>,
}

impl Env {
    /// The server's version, e.g. `3.5.1`.
    pub fn version(&self) -> String {
        match &self.topology {
            Topology::Single(s) => s.version(),
            Topology::Cluster(c) => c.version(),
        }
    }

    /// True when the server is etcd 3.4.x.
    pub fn is_3_4(&self) -> bool {
        self.version().starts_with("3.4.")
    }

    /// Every client URL (the TLS ones on a [`Setup::TlsCluster`]).
    pub fn urls(&self) -> Vec<String> {
        match &self.topology {
            Topology::Single(s) => vec![s.client_url()],
            Topology::Cluster(c) if self.pki.is_some() => c.tls_urls(),
            Topology::Cluster(c) => c.client_urls(),
        }
    }

    /// The TLS options of this env's clients: the default ones, or on a
    /// [`Setup::TlsCluster`] trust in its CA and a client certificate.
    pub fn tls(&self) -> TlsOptions {
        self.pki
            .as_ref()
            .map(|(_, tls)| tls.clone())
            .unwrap_or_default()
    }

    /// The single server. Panics on a cluster.
    pub fn server(&self) -> &EtcdServer {
        match &self.topology {
            Topology::Single(s) => s,
            Topology::Cluster(_) => panic!("scenario needs a single server"),
        }
    }

    /// Kills member `i` of the cluster (SIGKILL by pid; the harness reaps it).
    pub fn kill_member(&self, i: usize) {
        let pid = self.cluster().member_pid(i);
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -KILL {pid} failed");
    }

    /// Freezes member `i` (SIGSTOP by pid): its sockets stay open but it
    /// answers nothing. Teardown still works on a frozen member: the harness
    /// stops members with SIGKILL, which ends stopped processes too.
    pub fn freeze_member(&self, i: usize) {
        let pid = self.cluster().member_pid(i);
        let status = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -STOP {pid} failed");
    }

    /// Thaws member `i` (SIGCONT) after [`freeze_member`](Env::freeze_member).
    pub fn thaw_member(&self, i: usize) {
        let pid = self.cluster().member_pid(i);
        let status = std::process::Command::new("kill")
            .args(["-CONT", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -CONT {pid} failed");
    }

    /// The cluster. Panics on a single server.
    pub fn cluster(&self) -> &EtcdCluster {
        match &self.topology {
            Topology::Cluster(c) => c,
            Topology::Single(_) => panic!("scenario needs a cluster"),
        }
    }

    /// A new client of the transport under test, to `urls`, with a 10 s
    /// request timeout and [`Env::tls`].
    pub fn client_for(&self, urls: &[String]) -> TestClient {
        self.client_with(urls, |_| {})
    }

    /// [`client_for`](Self::client_for), its settings changed by `tweak`.
    pub fn client_with(&self, urls: &[String], tweak: impl FnOnce(&mut Config)) -> TestClient {
        let mut config = Config {
            endpoints: urls.to_vec(),
            request_timeout: Some(Duration::from_secs(10)),
            tls: self.tls(),
            ..Config::default()
        };
        tweak(&mut config);
        self.transport.connect_config(config)
    }
}

/// Starts the servers for a scenario, connects the transport, runs it.
///
/// Cluster scenarios run one at a time per test process: three members
/// each, plus their clients, on a 2-core machine would otherwise starve each
/// other's elections.
pub fn run_scenario(transport: Transport, setup: Setup, scenario: fn(&TestClient, &Env)) {
    static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = (setup != Setup::Single).then(|| {
        ONE_CLUSTER_AT_A_TIME
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    });
    let (topology, pki) = match setup {
        Setup::Single => (Topology::Single(EtcdServer::start()), None),
        Setup::Cluster(n) => (Topology::Cluster(EtcdCluster::start(n)), None),
        Setup::TlsCluster(n) => {
            let pki = TestPki::new("cluster");
            let cert = pki.server(&["127.0.0.1", "localhost"], false);
            let cluster = pki.start_cluster(n, &cert, true);
            let identity = pki.client("etcd-tests client");
            let tls = pki
                .trust()
                .identity_pem(identity.cert_pem, identity.key_pem);
            (Topology::Cluster(cluster), Some((pki, tls)))
        }
    };
    let env = Env {
        topology,
        transport,
        pki,
    };
    let client = env.client_for(&env.urls());
    scenario(&client, &env);
}

/// Declares scenarios, each run once per transport.
///
/// A scenario may be marked `#[cluster(3)]` (it gets a 3-member cluster),
/// `#[tls_cluster(3)]` (a 3-member cluster secured by TLS, see
/// [`Setup::TlsCluster`]),
/// `#[async_only]` (it runs on the async transports only) or
/// `#[only(tokio)]` (it runs on the transports named).
///
/// ```ignore
/// etcd_tests::scenarios! {
///     /// Doc for the scenario.
///     fn set_and_get(client, env) { client.set("/k", "v").unwrap(); }
///     #[cluster(3)]
///     fn members(client, env) { assert_eq!(client.members().unwrap().len(), 3); }
/// }
/// ```
#[macro_export]
macro_rules! scenarios {
    () => {};
    ($(#[doc = $doc:literal])* #[cluster($n:literal)] fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one ($crate::Setup::Cluster($n)), [blocking tokio async_std], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    ($(#[doc = $doc:literal])* #[tls_cluster($n:literal)] fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one ($crate::Setup::TlsCluster($n)), [blocking tokio async_std], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    ($(#[doc = $doc:literal])* #[only($($transport:ident)*)] fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one ($crate::Setup::Single), [$($transport)*], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    ($(#[doc = $doc:literal])* #[async_only] fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one ($crate::Setup::Single), [tokio async_std], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    ($(#[doc = $doc:literal])* fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one ($crate::Setup::Single), [blocking tokio async_std], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    // v3 scenarios (`v3_scenarios!`): also on both async clients over gRPC.
    (@v3) => {};
    (@v3 $(#[doc = $doc:literal])* #[cluster($n:literal)] fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one ($crate::Setup::Cluster($n)), [blocking tokio async_std tokio_grpc async_std_grpc], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!(@v3 $($rest)*);
    };
    (@v3 $(#[doc = $doc:literal])* #[async_only] fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one ($crate::Setup::Single), [tokio async_std tokio_grpc async_std_grpc], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!(@v3 $($rest)*);
    };
    (@v3 $(#[doc = $doc:literal])* fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one ($crate::Setup::Single), [blocking tokio async_std tokio_grpc async_std_grpc], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!(@v3 $($rest)*);
    };
    (@v3 $(#[$($attr:tt)*])* fn $name:ident $args:tt $body:block $($rest:tt)*) => {
        $crate::scenarios!($(#[$($attr)*])* fn $name $args $body);
        $crate::scenarios!(@v3 $($rest)*);
    };
    (@one $setup:tt, [$($transport:ident)*], [$($doc:literal)*], $name:ident, $client:ident, $env:ident, $body:block) => {
        $(#[doc = $doc])*
        #[allow(unused_variables)]
        fn $name($client: &$crate::TestClient, $env: &$crate::Env) $body

        mod $name {
            $(
                #[test]
                fn $transport() {
                    $crate::run_scenario($crate::scenarios!(@transport $transport), $setup, super::$name);
                }
            )*
        }
    };
    (@transport blocking) => { $crate::Transport::Blocking };
    (@transport tokio) => { $crate::Transport::Tokio };
    (@transport async_std) => { $crate::Transport::AsyncStd };
    (@transport tokio_grpc) => { $crate::Transport::TokioGrpc };
    (@transport async_std_grpc) => { $crate::Transport::AsyncStdGrpc };
}

/// [`scenarios!`] for v3 scenarios: the ordinary, `#[cluster(n)]` and
/// `#[async_only]` ones also run on etcd-tokio and etcd-async-std over native gRPC
/// (`::tokio_grpc`, `::async_std_grpc`); the others as `scenarios!` runs them.
#[macro_export]
macro_rules! v3_scenarios {
    ($($t:tt)*) => { $crate::scenarios!(@v3 $($t)*); };
}

/// A lock held through one transport's own lock API.
#[derive(Debug)]
pub enum TestLock<'a> {
    /// `etcd_blocking::Client::lock`.
    Blocking(etcd_proto::drive::LockGuard<etcd_blocking::Client>),
    /// `etcd_tokio::Client::lock`, on its runtime.
    Tokio(
        &'a tokio::runtime::Runtime,
        etcd_proto::drive::AsyncLockGuard<etcd_tokio::Client>,
    ),
    /// `etcd_async_std::Client::lock`.
    AsyncStd(etcd_proto::drive::AsyncLockGuard<etcd_async_std::Client>),
}

impl TestLock<'_> {
    /// The lock's key, uuid and fencing token.
    pub fn held(&self) -> &etcd_proto::v2::HeldLock {
        match self {
            TestLock::Blocking(g) => g.lock(),
            TestLock::Tokio(_, g) => g.lock(),
            TestLock::AsyncStd(g) => g.lock(),
        }
    }

    /// Asks etcd whether the lock is still ours.
    pub fn is_acquired(&self) -> Result<bool, Error> {
        match self {
            TestLock::Blocking(g) => g.is_acquired(),
            TestLock::Tokio(rt, g) => rt.block_on(g.is_acquired()),
            TestLock::AsyncStd(g) => async_std::task::block_on(g.is_acquired()),
        }
    }

    /// True once the guard knows the lock is lost.
    pub fn is_lost(&self) -> bool {
        match self {
            TestLock::Blocking(g) => g.is_lost(),
            TestLock::Tokio(_, g) => g.is_lost(),
            TestLock::AsyncStd(g) => g.is_lost(),
        }
    }

    /// Why the lock was lost.
    pub fn lost_reason(&self) -> Option<String> {
        match self {
            TestLock::Blocking(g) => g.lost_reason(),
            TestLock::Tokio(_, g) => g.lost_reason(),
            TestLock::AsyncStd(g) => g.lost_reason(),
        }
    }

    /// Releases it; `Ok(false)` if our key was already gone.
    pub fn release(self) -> Result<bool, Error> {
        match self {
            TestLock::Blocking(g) => g.release(),
            TestLock::Tokio(rt, g) => rt.block_on(g.release()),
            TestLock::AsyncStd(g) => async_std::task::block_on(g.release()),
        }
    }
}

impl TestClient {
    /// Acquires a lock through the transport's own API.
    pub fn acquire(
        &self,
        name: &str,
        options: etcd_proto::v2::LockOptions,
    ) -> Result<TestLock<'_>, Error> {
        Ok(match self {
            TestClient::Blocking(client) => TestLock::Blocking(client.lock(name, options)?),
            TestClient::Tokio { runtime, client } => {
                TestLock::Tokio(runtime, runtime.block_on(client.lock(name, options))?)
            }
            TestClient::AsyncStd(client) => {
                TestLock::AsyncStd(async_std::task::block_on(client.lock(name, options))?)
            }
        })
    }

    /// Runs `body` holding the lock, then releases it.
    pub fn with_lock<R>(
        &self,
        name: &str,
        options: etcd_proto::v2::LockOptions,
        body: impl FnOnce() -> R,
    ) -> Result<R, Error> {
        let lock = self.acquire(name, options)?;
        let result = body();
        lock.release()?;
        Ok(result)
    }

    /// One non-blocking attempt through the transport's `try_lock`; releases
    /// at once if it got the lock. True if it got it.
    pub fn try_lock_now(&self, name: &str, options: etcd_proto::v2::LockOptions) -> bool {
        let got = match self {
            TestClient::Blocking(client) => client
                .try_lock(name, options)
                .unwrap()
                .map(TestLock::Blocking),
            TestClient::Tokio { runtime, client } => runtime
                .block_on(client.try_lock(name, options))
                .unwrap()
                .map(|g| TestLock::Tokio(runtime, g)),
            TestClient::AsyncStd(client) => {
                async_std::task::block_on(client.try_lock(name, options))
                    .unwrap()
                    .map(TestLock::AsyncStd)
            }
        };
        match got {
            Some(lock) => {
                lock.release().unwrap();
                true
            }
            None => false,
        }
    }
}

/// A v3 lock (the Mutex recipe) held through one transport's own API.
#[derive(Debug)]
pub enum TestMutex<'a> {
    /// `etcd_blocking::Client::v3().lock` and friends.
    Blocking(etcd_proto::session::MutexGuard<etcd_blocking::Client>),
    /// `etcd_tokio::Client::v3().lock`, on its runtime.
    Tokio(
        &'a tokio::runtime::Runtime,
        etcd_proto::session::AsyncMutexGuard<etcd_tokio::Client>,
    ),
    /// `etcd_async_std::Client::v3().lock`.
    AsyncStd(etcd_proto::session::AsyncMutexGuard<etcd_async_std::Client>),
}

impl TestMutex<'_> {
    /// The lock: key, fencing token, lease.
    pub fn held(&self) -> &etcd_proto::v3::HeldMutex {
        match self {
            TestMutex::Blocking(g) => g.held(),
            TestMutex::Tokio(_, g) => g.held(),
            TestMutex::AsyncStd(g) => g.held(),
        }
    }

    /// True once the session's keep-alive found the lease gone.
    pub fn is_lost(&self) -> bool {
        match self {
            TestMutex::Blocking(g) => g.is_lost(),
            TestMutex::Tokio(_, g) => g.is_lost(),
            TestMutex::AsyncStd(g) => g.is_lost(),
        }
    }

    /// Asks etcd whether the lock is still ours.
    pub fn is_held(&self) -> Result<bool, Error> {
        match self {
            TestMutex::Blocking(g) => g.is_held(),
            TestMutex::Tokio(rt, g) => rt.block_on(g.is_held()),
            TestMutex::AsyncStd(g) => async_std::task::block_on(g.is_held()),
        }
    }

    /// Releases it; `Ok(false)` if our key was already gone.
    pub fn release(self) -> Result<bool, Error> {
        match self {
            TestMutex::Blocking(g) => g.release(),
            TestMutex::Tokio(rt, g) => rt.block_on(g.release()),
            TestMutex::AsyncStd(g) => async_std::task::block_on(g.release()),
        }
    }
}

/// Leadership in a v3 election held through one transport's own API.
#[derive(Debug)]
pub enum TestLeader<'a> {
    /// `etcd_blocking::Client::v3().campaign`.
    Blocking(etcd_proto::session::LeaderGuard<etcd_blocking::Client>),
    /// `etcd_tokio::Client::v3().campaign`, on its runtime.
    Tokio(
        &'a tokio::runtime::Runtime,
        etcd_proto::session::AsyncLeaderGuard<etcd_tokio::Client>,
    ),
    /// `etcd_async_std::Client::v3().campaign`.
    AsyncStd(etcd_proto::session::AsyncLeaderGuard<etcd_async_std::Client>),
}

impl TestLeader<'_> {
    /// Our leadership: key, value, create revision, lease.
    pub fn leadership(&self) -> &etcd_proto::v3::Leadership {
        match self {
            TestLeader::Blocking(g) => g.leadership(),
            TestLeader::Tokio(_, g) => g.leadership(),
            TestLeader::AsyncStd(g) => g.leadership(),
        }
    }

    /// Asks etcd whether we still lead.
    pub fn is_leader(&self) -> Result<bool, Error> {
        match self {
            TestLeader::Blocking(g) => g.is_leader(),
            TestLeader::Tokio(rt, g) => rt.block_on(g.is_leader()),
            TestLeader::AsyncStd(g) => async_std::task::block_on(g.is_leader()),
        }
    }

    /// Proclaims a new value.
    pub fn proclaim(&mut self, value: &str) -> Result<etcd_proto::v3::ResponseHeader, Error> {
        match self {
            TestLeader::Blocking(g) => g.proclaim(value),
            TestLeader::Tokio(rt, g) => rt.block_on(g.proclaim(value)),
            TestLeader::AsyncStd(g) => async_std::task::block_on(g.proclaim(value)),
        }
    }

    /// Resigns; `Ok(false)` if our key was already gone.
    pub fn resign(self) -> Result<bool, Error> {
        match self {
            TestLeader::Blocking(g) => g.resign(),
            TestLeader::Tokio(rt, g) => rt.block_on(g.resign()),
            TestLeader::AsyncStd(g) => async_std::task::block_on(g.resign()),
        }
    }
}

/// A v3 session (a lease kept alive in the background) of one transport.
#[derive(Debug)]
pub enum TestSession<'a> {
    /// `etcd_blocking::Client::v3().session`.
    Blocking(etcd_proto::session::Session<etcd_blocking::Client>),
    /// `etcd_tokio::Client::v3().session`, on its runtime.
    Tokio(
        &'a tokio::runtime::Runtime,
        etcd_proto::session::AsyncSession<etcd_tokio::Client>,
    ),
    /// `etcd_async_std::Client::v3().session`.
    AsyncStd(etcd_proto::session::AsyncSession<etcd_async_std::Client>),
}

impl TestSession<'_> {
    /// The lease.
    pub fn lease_id(&self) -> i64 {
        match self {
            TestSession::Blocking(s) => s.lease_id(),
            TestSession::Tokio(_, s) => s.lease_id(),
            TestSession::AsyncStd(s) => s.lease_id(),
        }
    }

    /// True once the keep-alive found the lease gone.
    pub fn is_lost(&self) -> bool {
        match self {
            TestSession::Blocking(s) => s.is_lost(),
            TestSession::Tokio(_, s) => s.is_lost(),
            TestSession::AsyncStd(s) => s.is_lost(),
        }
    }

    /// Why the lease was lost, if it was.
    pub fn lost_reason(&self) -> Option<String> {
        match self {
            TestSession::Blocking(s) => s.lost_reason(),
            TestSession::Tokio(_, s) => s.lost_reason(),
            TestSession::AsyncStd(s) => s.lost_reason(),
        }
    }

    /// Waits for the loss report: `wait_lost` on the blocking session, the
    /// `lost()` future on the async ones. True if it came within `timeout`.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        match self {
            TestSession::Blocking(s) => s.wait_lost(Some(timeout)),
            TestSession::Tokio(rt, s) => {
                rt.block_on(async { tokio::time::timeout(timeout, s.lost()).await.is_ok() })
            }
            TestSession::AsyncStd(s) => async_std::task::block_on(async {
                async_std::future::timeout(timeout, s.lost()).await.is_ok()
            }),
        }
    }

    /// Acquires a lock in this session.
    pub fn lock(
        &self,
        name: &str,
        options: etcd_proto::v3::MutexOptions,
    ) -> Result<TestMutex<'_>, Error> {
        Ok(match self {
            TestSession::Blocking(s) => TestMutex::Blocking(s.lock(name, options)?),
            TestSession::Tokio(rt, s) => TestMutex::Tokio(rt, rt.block_on(s.lock(name, options))?),
            TestSession::AsyncStd(s) => {
                TestMutex::AsyncStd(async_std::task::block_on(s.lock(name, options))?)
            }
        })
    }

    /// Closes it: stops the keep-alive and revokes the lease.
    pub fn close(self) -> Result<(), Error> {
        match self {
            TestSession::Blocking(s) => s.close(),
            TestSession::Tokio(rt, s) => rt.block_on(s.close()),
            TestSession::AsyncStd(s) => async_std::task::block_on(s.close()),
        }
    }
}

/// An election observed in the background through the transport's own
/// `observe` (an iterator on a thread, or a stream on a task); the leaders
/// seen so far are collected. Dropping it stops the observation (a blocked
/// blocking read ends at the next event).
#[derive(Debug)]
pub struct TestObserver {
    seen: Arc<std::sync::Mutex<Vec<Result<etcd_proto::v3::KeyValue, String>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestObserver {
    /// Every leader seen so far (values as UTF-8), errors as `Err`.
    pub fn values(&self) -> Vec<Result<String, String>> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_ref()
                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
                    .map_err(Clone::clone)
            })
            .collect()
    }

    /// Waits until `n` leaders were seen (true) or `timeout` passes.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < until {
            if self.seen.lock().unwrap().len() >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.seen.lock().unwrap().len() >= n
    }
}

impl Drop for TestObserver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl TestClient {
    /// A v3 session of `ttl` seconds through the transport's `v3().session`.
    pub fn v3_session(&self, ttl: i64) -> Result<TestSession<'_>, Error> {
        Ok(match self {
            TestClient::Blocking(client) => TestSession::Blocking(client.v3().session(ttl)?),
            TestClient::Tokio { runtime, client } => {
                TestSession::Tokio(runtime, runtime.block_on(client.v3().session(ttl))?)
            }
            TestClient::AsyncStd(client) => {
                TestSession::AsyncStd(async_std::task::block_on(client.v3().session(ttl))?)
            }
        })
    }

    /// A v3 session keeping the existing lease `lease` alive, through the
    /// transport's `v3().session_from_lease`.
    pub fn v3_session_from_lease(&self, lease: i64) -> Result<TestSession<'_>, Error> {
        Ok(match self {
            TestClient::Blocking(client) => {
                TestSession::Blocking(client.v3().session_from_lease(lease)?)
            }
            TestClient::Tokio { runtime, client } => TestSession::Tokio(
                runtime,
                runtime.block_on(client.v3().session_from_lease(lease))?,
            ),
            TestClient::AsyncStd(client) => TestSession::AsyncStd(async_std::task::block_on(
                client.v3().session_from_lease(lease),
            )?),
        })
    }

    /// Acquires a v3 lock through the transport's `v3().lock`.
    pub fn v3_lock(
        &self,
        name: &str,
        options: etcd_proto::v3::MutexOptions,
    ) -> Result<TestMutex<'_>, Error> {
        Ok(match self {
            TestClient::Blocking(client) => TestMutex::Blocking(client.v3().lock(name, options)?),
            TestClient::Tokio { runtime, client } => {
                TestMutex::Tokio(runtime, runtime.block_on(client.v3().lock(name, options))?)
            }
            TestClient::AsyncStd(client) => {
                TestMutex::AsyncStd(async_std::task::block_on(client.v3().lock(name, options))?)
            }
        })
    }

    /// One look at a v3 lock through the transport's `v3().try_lock`.
    pub fn v3_try_lock(
        &self,
        name: &str,
        options: etcd_proto::v3::MutexOptions,
    ) -> Result<Option<TestMutex<'_>>, Error> {
        Ok(match self {
            TestClient::Blocking(client) => client
                .v3()
                .try_lock(name, options)?
                .map(TestMutex::Blocking),
            TestClient::Tokio { runtime, client } => runtime
                .block_on(client.v3().try_lock(name, options))?
                .map(|g| TestMutex::Tokio(runtime, g)),
            TestClient::AsyncStd(client) => {
                async_std::task::block_on(client.v3().try_lock(name, options))?
                    .map(TestMutex::AsyncStd)
            }
        })
    }

    /// etcetra's `with_lock(name, timeout, ttl)` through the transport's `v3().with_lock`.
    pub fn v3_with_lock(
        &self,
        name: &str,
        timeout: Option<Duration>,
        ttl: Option<i64>,
    ) -> Result<TestMutex<'_>, Error> {
        Ok(match self {
            TestClient::Blocking(client) => {
                TestMutex::Blocking(client.v3().with_lock(name, timeout, ttl)?)
            }
            TestClient::Tokio { runtime, client } => TestMutex::Tokio(
                runtime,
                runtime.block_on(client.v3().with_lock(name, timeout, ttl))?,
            ),
            TestClient::AsyncStd(client) => TestMutex::AsyncStd(async_std::task::block_on(
                client.v3().with_lock(name, timeout, ttl),
            )?),
        })
    }

    /// Campaigns through the transport's `v3().campaign`.
    pub fn v3_campaign(
        &self,
        name: &str,
        value: &str,
        options: etcd_proto::v3::MutexOptions,
    ) -> Result<TestLeader<'_>, Error> {
        Ok(match self {
            TestClient::Blocking(client) => {
                TestLeader::Blocking(client.v3().campaign(name, value, options)?)
            }
            TestClient::Tokio { runtime, client } => TestLeader::Tokio(
                runtime,
                runtime.block_on(client.v3().campaign(name, value, options))?,
            ),
            TestClient::AsyncStd(client) => TestLeader::AsyncStd(async_std::task::block_on(
                client.v3().campaign(name, value, options),
            )?),
        })
    }

    /// The election's leader through the transport's `v3().leader`.
    pub fn v3_leader(&self, name: &str) -> Result<Option<etcd_proto::v3::KeyValue>, Error> {
        match self {
            TestClient::Blocking(client) => client.v3().leader(name),
            TestClient::Tokio { runtime, client } => runtime.block_on(client.v3().leader(name)),
            TestClient::AsyncStd(client) => async_std::task::block_on(client.v3().leader(name)),
        }
    }

    /// Observes an election in the background through the transport's `v3().observe`.
    pub fn v3_observe(&self, name: &str) -> TestObserver {
        fn next<S: futures_core::Stream + Unpin>(
            stream: &mut S,
        ) -> impl Future<Output = Option<S::Item>> + '_ {
            std::future::poll_fn(move |cx| std::pin::Pin::new(&mut *stream).poll_next(cx))
        }
        let seen: Arc<std::sync::Mutex<Vec<_>>> = Arc::default();
        let stop: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (log, stopped, name) = (seen.clone(), stop.clone(), name.to_owned());
        let record = move |item: Result<etcd_proto::v3::KeyValue, Error>| {
            log.lock().unwrap().push(item.map_err(|e| e.to_string()));
            !stopped.load(std::sync::atomic::Ordering::SeqCst)
        };
        let task = match self {
            TestClient::Blocking(client) => {
                let client = client.clone();
                std::thread::spawn(move || {
                    for item in client.v3().observe(name) {
                        if !record(item) {
                            return;
                        }
                    }
                });
                None
            }
            TestClient::Tokio { runtime, client } => {
                let client = client.clone();
                Some(runtime.spawn(async move {
                    let mut stream = client.v3().observe(name);
                    while let Some(item) = next(&mut stream).await {
                        if !record(item) {
                            return;
                        }
                    }
                }))
            }
            TestClient::AsyncStd(client) => {
                let client = client.clone();
                drop(async_std::task::spawn(async move {
                    let mut stream = client.v3().observe(name);
                    while let Some(item) = next(&mut stream).await {
                        if !record(item) {
                            return;
                        }
                    }
                }));
                None
            }
        };
        TestObserver { seen, stop, task }
    }
}
