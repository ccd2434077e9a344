//! One scenario source, every transport: the conformance suite's plumbing.
//!
//! A scenario is a function `fn(&TestClient, &Env)`. The [`scenarios!`](crate::scenarios)
//! macro turns each into a module holding one `#[test]` per transport, so
//! `cargo test` lists `set_and_get::blocking`, … and a failure names both the
//! scenario and the transport. [`TestClient`] runs operations on whichever
//! client the test was generated for, and gets the very same convenience
//! methods as the real clients from `etcd_proto::client_methods!`.

use std::time::Duration;

use etcd_proto::{Call, Error, Flow, Operation};

use crate::harness::{EtcdCluster, EtcdServer};

/// The transports under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `etcd-blocking` (ureq).
    Blocking,
}

impl Transport {
    /// A client of this transport for `urls`, with `request_timeout`.
    pub fn connect_with(self, urls: &[String], request_timeout: Duration) -> TestClient {
        match self {
            Transport::Blocking => {
                let builder = urls
                    .iter()
                    .fold(etcd_blocking::Client::builder(), |b, url| b.endpoint(url));
                TestClient::Blocking(
                    builder
                        .request_timeout(Some(request_timeout))
                        .build()
                        .expect("valid endpoint"),
                )
            }
        }
    }

    /// A client of this transport for `urls`, with a 10 s request timeout.
    pub fn connect(self, urls: &[String]) -> TestClient {
        self.connect_with(urls, Duration::from_secs(10))
    }
}

/// A client of one transport, with the common client API.
#[derive(Debug)]
pub enum TestClient {
    /// See [`Transport::Blocking`].
    Blocking(etcd_blocking::Client),
}

impl TestClient {
    /// Runs one operation on the underlying client.
    pub fn execute<O: Operation + Send>(&self, op: O) -> Result<O::Output, Error>
    where
        O::Output: Send,
    {
        match self {
            TestClient::Blocking(client) => client.execute(op),
        }
    }

    /// Drives a flow on the underlying client.
    pub fn run<F: Flow + Send>(&self, flow: F) -> Result<F::Output, Error>
    where
        F::Output: Send,
    {
        match self {
            TestClient::Blocking(client) => client.run(flow),
        }
    }

    /// Runs `op` through a plain [`Call`].
    pub fn call<O: Operation + Send>(&self, op: O) -> Result<O::Output, Error>
    where
        O::Output: Send,
    {
        self.run(Call::new(op))
    }
}

etcd_proto::client_methods!(TestClient);

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
pub fn run_scenario(transport: Transport, cluster_size: usize, scenario: fn(&TestClient, &Env)) {
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
        $crate::scenarios!(@one $n, [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    ($(#[doc = $doc:literal])* fn $name:ident($client:ident, $env:ident) $body:block $($rest:tt)*) => {
        $crate::scenarios!(@one 1, [$($doc)*], $name, $client, $env, $body);
        $crate::scenarios!($($rest)*);
    };
    (@one $n:literal, [$($doc:literal)*], $name:ident, $client:ident, $env:ident, $body:block) => {
        $(#[doc = $doc])*
        #[allow(unused_variables)]
        fn $name($client: &$crate::TestClient, $env: &$crate::Env) $body

        mod $name {
            #[test]
            fn blocking() {
                $crate::run_scenario($crate::Transport::Blocking, $n, super::$name);
            }
        }
    };
}
