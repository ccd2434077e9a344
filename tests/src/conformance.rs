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

use crate::harness::{EtcdCluster, EtcdServer};

/// The transports under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `etcd-blocking` (ureq).
    Blocking,
    /// `etcd-tokio` (hyper on tokio).
    Tokio,
    /// `etcd-async-std` (hyper on async-std).
    AsyncStd,
}

impl Transport {
    /// A client of this transport built from `config`.
    pub fn connect_config(self, config: Config) -> TestClient {
        match self {
            Transport::Blocking => {
                TestClient::Blocking(FromConfig::from_config(config).expect("valid config"))
            }
            Transport::Tokio => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                TestClient::Tokio {
                    runtime: Arc::new(runtime),
                    client: FromConfig::from_config(config).expect("valid config"),
                }
            }
            Transport::AsyncStd => {
                TestClient::AsyncStd(FromConfig::from_config(config).expect("valid config"))
            }
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
#[derive(Debug)]
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

/// The servers and facts a scenario may use.
pub struct Env {
    /// The servers.
    pub topology: Topology,
    /// The transport under test.
    pub transport: Transport,
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

    /// Every client URL.
    pub fn urls(&self) -> Vec<String> {
        match &self.topology {
            Topology::Single(s) => vec![s.client_url()],
            Topology::Cluster(c) => c.client_urls(),
        }
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

    /// The cluster. Panics on a single server.
    pub fn cluster(&self) -> &EtcdCluster {
        match &self.topology {
            Topology::Cluster(c) => c,
            Topology::Single(_) => panic!("scenario needs a cluster"),
        }
    }

    /// A new client of the transport under test, to `urls`.
    pub fn client_for(&self, urls: &[String]) -> TestClient {
        self.transport.connect(urls)
    }
}

/// Starts the servers for a scenario, connects the transport, runs it.
///
/// Cluster scenarios run one at a time per test process: three members
/// each, plus their clients, on a 2-core machine would otherwise starve each
/// other's elections.
pub fn run_scenario(transport: Transport, cluster_size: usize, scenario: fn(&TestClient, &Env)) {
    static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = (cluster_size > 1).then(|| {
        ONE_CLUSTER_AT_A_TIME
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    });
    let topology = if cluster_size <= 1 {
        Topology::Single(EtcdServer::start())
    } else {
        Topology::Cluster(EtcdCluster::start(cluster_size))
    };
    let env = Env {
        topology,
        transport,
    };
    let client = transport.connect(&env.urls());
    scenario(&client, &env);
}

/// Declares scenarios, each run once per transport.
///
/// A scenario may be marked `#[cluster(3)]` (it gets a 3-member cluster) or
/// `#[async_only]` (it runs on the async transports only).
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
        $crate::scenarios!(@one $n, [blocking tokio async_std], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    ($(#[doc = $doc:literal])* #[async_only] fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one 1, [tokio async_std], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    ($(#[doc = $doc:literal])* fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one 1, [blocking tokio async_std], [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    (@one $n:literal, [$($transport:ident)*], [$($doc:literal)*], $name:ident, $client:ident, $env:ident, $body:block) => {
        $(#[doc = $doc])*
        #[allow(unused_variables)]
        fn $name($client: &$crate::TestClient, $env: &$crate::Env) $body

        mod $name {
            $(
                #[test]
                fn $transport() {
                    $crate::run_scenario($crate::scenarios!(@transport $transport), $n, super::$name);
                }
            )*
        }
    };
    (@transport blocking) => { $crate::Transport::Blocking };
    (@transport tokio) => { $crate::Transport::Tokio };
    (@transport async_std) => { $crate::Transport::AsyncStd };
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
