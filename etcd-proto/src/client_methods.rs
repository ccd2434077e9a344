//! The convenience methods every client offers, written once.
//!
//! A transport crate defines `execute` (run one [`Operation`](crate::Operation))
//! and `run` (drive any [`Flow`](crate::Flow)) on its client, blocking or
//! `async`, then invokes [`client_methods!`](crate::client_methods) to get
//! `get`, `set`, `mkdir`, `leader`, … with the same names, arguments and
//! behaviour everywhere.

/// Defines the convenience methods on a client type.
///
/// `client_methods!(Client)` makes blocking methods; `client_methods!(Client, async)`
/// makes `async` ones. The type must have
/// `execute<O: Operation>(&self, op: O) -> Result<O::Output, Error>` and
/// `run<F: Flow>(&self, flow: F) -> Result<F::Output, Error>` (both `async` in
/// the second form).
#[macro_export]
macro_rules! client_methods {
    ($client:ty $(, $asyncness:tt)?) => {
        impl $client {
            /// Reads a key or directory (python-etcd: `get(key)`).
            pub $($asyncness)? fn get(&self, key: &str) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::Read::new(key)))
            }

            /// Reads with options: recursive, sorted, quorum (python-etcd: `read(key, …)`).
            pub $($asyncness)? fn read(
                &self,
                key: &str,
                options: $crate::v2::ReadOptions,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::Read::new(key).options(options)))
            }

            /// True if the key exists (python-etcd: `key in client`).
            pub $($asyncness)? fn contains(&self, key: &str) -> Result<bool, $crate::Error> {
                match $crate::__finish!($($asyncness)?; self.get(key)) {
                    Ok(_) => Ok(true),
                    Err(e) if e.is_key_not_found() => Ok(false),
                    Err(e) => Err(e),
                }
            }

            /// Sets a key to a value, making it permanent (python-etcd: `set(key, value)`).
            pub $($asyncness)? fn set(
                &self,
                key: &str,
                value: impl AsRef<[u8]>,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                let op = $crate::v2::Write::new(key, value);
                $crate::__finish!($($asyncness)?; self.execute(op))
            }

            /// Writes with options: ttl, dir, append, refresh, prevValue, prevIndex,
            /// prevExist (python-etcd: `write(key, value, …)`).
            pub $($asyncness)? fn write(
                &self,
                key: &str,
                value: impl AsRef<[u8]>,
                options: $crate::v2::WriteOptions,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                let op = $crate::v2::Write::new(key, value).options(options);
                $crate::__finish!($($asyncness)?; self.execute(op))
            }

            /// Creates a key that must not exist yet (`prevExist=false`).
            pub $($asyncness)? fn create(
                &self,
                key: &str,
                value: impl AsRef<[u8]>,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                let op = $crate::v2::Write::new(key, value)
                    .options($crate::v2::WriteOptions::new().prev_exist(false));
                $crate::__finish!($($asyncness)?; self.execute(op))
            }

            /// Appends an in-order key to a directory; the result's key is the new
            /// name (python-etcd: `write(dir, value, append=True)`).
            pub $($asyncness)? fn append(
                &self,
                dir: &str,
                value: impl AsRef<[u8]>,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                let op = $crate::v2::Write::append(dir, value);
                $crate::__finish!($($asyncness)?; self.execute(op))
            }

            /// Creates a directory (python-etcd: `write(key, None, dir=True)`).
            pub $($asyncness)? fn mkdir(&self, key: &str) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::Write::mkdir(key)))
            }

            /// Sets `key` to `value` only if it currently holds `prev_value`
            /// (python-etcd: `test_and_set`); errorCode 101 otherwise.
            pub $($asyncness)? fn test_and_set(
                &self,
                key: &str,
                value: impl AsRef<[u8]>,
                prev_value: &str,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                let op = $crate::v2::Write::new(key, value)
                    .options($crate::v2::WriteOptions::new().prev_value(prev_value));
                $crate::__finish!($($asyncness)?; self.execute(op))
            }

            /// Writes back a node read earlier, only if nobody changed it since
            /// (python-etcd: `update(result)`).
            pub $($asyncness)? fn update(
                &self,
                node: &$crate::v2::Node,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::Write::update(node)))
            }

            /// Updates a key with `f` (current value, `None` if absent → new value),
            /// atomically: read, write only if unchanged since (`prevIndex`), and
            /// on a lost race start over after a short backoff, up to
            /// 100 attempts. Returns the successful write.
            pub $($asyncness)? fn update_with<F>(&self, key: &str, f: F) -> Result<$crate::v2::KeysResponse, $crate::Error>
            where
                F: FnMut(Option<&str>) -> String + Send,
            {
                $crate::__finish!($($asyncness)?; self.run($crate::v2::UpdateWith::new(key, f, $crate::drive::Entropy::random(self))))
            }

            /// Resets a key's TTL without changing its value or notifying watchers
            /// (python-etcd: `refresh(key, ttl)`).
            pub $($asyncness)? fn refresh(
                &self,
                key: &str,
                ttl: u64,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::Write::refresh(key, ttl)))
            }

            /// Deletes a key (python-etcd: `delete(key)`).
            pub $($asyncness)? fn delete(&self, key: &str) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::Delete::new(key)))
            }

            /// Deletes with options: dir, recursive, prevValue, prevIndex
            /// (python-etcd: `delete(key, …)`).
            pub $($asyncness)? fn delete_with(
                &self,
                key: &str,
                options: $crate::v2::DeleteOptions,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                let op = $crate::v2::Delete::new(key).options(options);
                $crate::__finish!($($asyncness)?; self.execute(op))
            }

            /// Deletes a key and returns what it held (python-etcd: `pop(key)`).
            pub $($asyncness)? fn pop(&self, key: &str) -> Result<$crate::v2::Node, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::Pop($crate::v2::Delete::new(key))))
            }

            /// Waits for the next change of a key (or, recursively, under it), from
            /// now or from an index; unbounded unless `options` set a timeout
            /// (python-etcd: `watch(key, index=, recursive=, timeout=)`).
            pub $($asyncness)? fn watch(
                &self,
                key: &str,
                options: $crate::v2::WatchOptions,
            ) -> Result<$crate::v2::KeysResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.run($crate::v2::Watch::new(key, options).once()))
            }

            $crate::__watcher_method!($($asyncness)?);

            /// Server and cluster versions (python-etcd: `version`, `cluster_version`).
            pub $($asyncness)? fn version(&self) -> Result<$crate::v2::VersionInfo, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::GetVersion))
            }

            /// The members' client URLs (python-etcd: `machines`).
            pub $($asyncness)? fn machines(&self) -> Result<Vec<String>, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::Machines))
            }

            /// The cluster's members (python-etcd: `members`).
            pub $($asyncness)? fn members(&self) -> Result<Vec<$crate::v2::Member>, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::Members))
            }

            /// The current leader (python-etcd: `leader`).
            pub $($asyncness)? fn leader(&self) -> Result<$crate::v2::Member, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.run($crate::v2::Leader::new()))
            }

            /// The answering member's statistics (python-etcd: `stats`).
            pub $($asyncness)? fn stats_self(&self) -> Result<$crate::v2::SelfStats, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::StatsSelf))
            }

            /// The leader's follower statistics (python-etcd: `leader_stats`).
            pub $($asyncness)? fn stats_leader(&self) -> Result<$crate::v2::LeaderStats, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::StatsLeader))
            }

            /// The v2 store's counters (python-etcd: `store_stats`).
            pub $($asyncness)? fn stats_store(
                &self,
            ) -> Result<std::collections::BTreeMap<String, $crate::serde_json::Value>, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.execute($crate::v2::StatsStore))
            }
        }
    };
}

/// Completes a call made inside [`client_methods!`]: `.await` it for async clients.
#[doc(hidden)]
#[macro_export]
macro_rules! __finish {
    (async; $call:expr) => {
        $call.await
    };
    (; $call:expr) => {
        $call
    };
}

/// The continuous watch method: an `Iterator` on blocking clients, a `Stream`
/// on async ones.
#[doc(hidden)]
#[macro_export]
macro_rules! __watcher_method {
    () => {
        /// Watches a key (or, recursively, under it) continuously, tracking the
        /// index itself; see [`Watch`]($crate::v2::Watch) for the guarantees.
        /// An iterator that never ends (python-etcd: `eternal_watch`).
        pub fn watcher(
            &self,
            key: &str,
            options: $crate::v2::WatchOptions,
        ) -> $crate::drive::Watcher<Self> {
            $crate::drive::Watcher::new(self.clone(), $crate::v2::Watch::new(key, options))
        }
    };
    (async) => {
        /// Watches a key (or, recursively, under it) continuously, tracking the
        /// index itself; see [`Watch`]($crate::v2::Watch) for the guarantees.
        /// A stream that never ends; drop it to stop (aio-etcd: `eternal_watch`).
        pub fn watcher(
            &self,
            key: &str,
            options: $crate::v2::WatchOptions,
        ) -> $crate::drive::WatchStream<Self> {
            $crate::drive::WatchStream::new(self.clone(), $crate::v2::Watch::new(key, options))
        }
    };
}

/// Defines `lock` and `try_lock` on a client type whose transport can spawn a
/// lock's TTL keeper: `lock_methods!(Client)` (blocking, guard released on
/// drop) or `lock_methods!(Client, async)` (guard released with `.release().await`).
#[macro_export]
macro_rules! lock_methods {
    ($client:ty $(, $asyncness:tt)?) => {
        impl $client {
            /// Acquires the lock `name` (python-etcd's `Lock(client, name).acquire()`):
            /// blocking unless `options` say otherwise, with an optional deadline;
            /// the guard exposes the lock key and its fencing token. See
            /// [`etcd_proto::v2::lock`] for the recipe and its guarantees.
            pub $($asyncness)? fn lock(
                &self,
                name: &str,
                options: $crate::v2::LockOptions,
            ) -> Result<$crate::__lock_guard!($($asyncness)?), $crate::Error> {
                $crate::__finish!($($asyncness)?; <$crate::__lock_guard!($($asyncness)?)>::acquire(self, name, options))
            }

            /// One non-blocking attempt at the lock `name`: `Ok(None)` if another
            /// client holds it (our queue key is removed again).
            pub $($asyncness)? fn try_lock(
                &self,
                name: &str,
                options: $crate::v2::LockOptions,
            ) -> Result<Option<$crate::__lock_guard!($($asyncness)?)>, $crate::Error> {
                let attempt = <$crate::__lock_guard!($($asyncness)?)>::acquire(self, name, options.blocking(false));
                match $crate::__finish!($($asyncness)?; attempt) {
                    Ok(guard) => Ok(Some(guard)),
                    Err($crate::Error::Lock($crate::v2::LockError::Busy { .. })) => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    };
}

/// The guard type of [`lock_methods!`] for each kind of client.
#[doc(hidden)]
#[macro_export]
macro_rules! __lock_guard {
    () => { $crate::drive::LockGuard<Self> };
    (async) => { $crate::drive::AsyncLockGuard<Self> };
}

/// Defines `discover` and `discover_with_timeout` (DNS SRV discovery,
/// python-etcd's `srv_domain`) on a client type that has
/// `fn udp_socket(server: SocketAddr) -> io::Result<impl Datagram>` (or an
/// `async` one returning `impl AsyncDatagram`).
#[macro_export]
macro_rules! discovery_methods {
    ($client:ty $(, $asyncness:tt)?) => {
        impl $client {
            /// Finds the cluster advertised in DNS under `domain` and returns a
            /// builder holding its endpoints (add settings, then `build()`).
            ///
            /// Asks `dns_server` (`None`: the first `nameserver` of
            /// `/etc/resolv.conf`) over UDP for `_etcd-client-ssl._tcp.<domain>`,
            /// then `_etcd-client._tcp.<domain>`; each name gets 2 s, its query
            /// resent once after 1 s without an answer (rules in
            /// [`etcd_proto::srv`]). Fails with `Error::Discovery` — naming both
            /// names, what the server answered and the server — when neither has
            /// records; it **never** falls back to a default endpoint. Records
            /// under the `-ssl` name give `https://` endpoints, as advertised;
            /// these clients do not speak TLS, so requests to them fail with a
            /// `Tls` transport error.
            pub $($asyncness)? fn discover(
                domain: &str,
                dns_server: Option<std::net::SocketAddr>,
            ) -> Result<$crate::ClientBuilder<Self>, $crate::Error> {
                $crate::__finish!($($asyncness)?; Self::discover_with_timeout(domain, dns_server, $crate::srv::DEFAULT_TIMEOUT_PER_NAME))
            }

            /// [`discover`](Self::discover), waiting `per_name` for each SRV name
            /// (split evenly between its attempts) instead of 2 s.
            pub $($asyncness)? fn discover_with_timeout(
                domain: &str,
                dns_server: Option<std::net::SocketAddr>,
                per_name: std::time::Duration,
            ) -> Result<$crate::ClientBuilder<Self>, $crate::Error> {
                let server = $crate::srv::dns_server(domain, dns_server, || {
                    std::fs::read_to_string($crate::srv::RESOLV_CONF)
                })?;
                let io_error = |e: std::io::Error| $crate::srv::DiscoveryError::io(domain, server, &e);
                let socket = $crate::__finish!($($asyncness)?; Self::udp_socket(server)).map_err(io_error)?;
                let per_attempt = per_name / $crate::srv::ATTEMPTS_PER_NAME;
                let urls = $crate::__discover!($($asyncness)?; &socket, domain, server, per_attempt)
                    .map_err(|e| e.with_server(server))?;
                Ok(<$crate::ClientBuilder<Self>>::default().endpoints(urls))
            }
        }
    };
}

/// The discovery loop for each kind of client.
#[doc(hidden)]
#[macro_export]
macro_rules! __discover {
    (; $($args:expr),*) => { $crate::drive::discover_blocking($($args),*) };
    (async; $($args:expr),*) => { $crate::drive::discover($($args),*).await };
}

/// The names a client crate gives everything its users receive, so that no
/// user has to depend on `etcd-proto` to name a guard, a stream or an error
/// kind. The same names in every crate: `Session`, `MutexGuard`,
/// `LeaderGuard`, `LockGuard`, `Watcher` (v2), `WatchItems`, `Pages` and
/// `Observations` (v3), and the error types. Invoked by
/// [`transport_client!`]; `client_types!(Client)` for a blocking client,
/// `client_types!(Client, async)` for an async one.
#[doc(hidden)]
#[macro_export]
macro_rules! client_types {
    ($client:ty) => {
        /// A v2 lock held by this client ([`Client::lock`]); released on drop.
        pub type LockGuard = $crate::drive::LockGuard<$client>;
        /// A v2 watch as an iterator of events ([`Client::watcher`]).
        pub type Watcher = $crate::drive::Watcher<$client>;
        /// A v3 session: a lease kept alive in the background ([`V3::session`]).
        pub type Session = $crate::session::Session<$client>;
        /// A v3 mutex held by a session ([`V3::lock`]).
        pub type MutexGuard = $crate::session::MutexGuard<$client>;
        /// A v3 election won by a session ([`V3::campaign`]).
        pub type LeaderGuard = $crate::session::LeaderGuard<$client>;
        /// A v3 watch as an iterator of items ([`V3::watch`]).
        pub type WatchItems = $crate::drive::StreamIter<$client, $crate::v3::Watch>;
        /// A v3 range read page by page ([`V3::paginate`]).
        pub type Pages = $crate::drive::StreamIter<$client, $crate::v3::Paginate>;
        /// An election's leaders as they change ([`V3::observe`]).
        pub type Observations = $crate::drive::StreamIter<$client, $crate::v3::Observe>;
        $crate::client_types!(@errors);
    };
    ($client:ty, async) => {
        /// A v2 lock held by this client ([`Client::lock`]); released on drop.
        pub type LockGuard = $crate::drive::AsyncLockGuard<$client>;
        /// A v2 watch as a stream of events ([`Client::watcher`]).
        pub type Watcher = $crate::drive::WatchStream<$client>;
        /// A v3 session: a lease kept alive in the background ([`V3::session`]).
        pub type Session = $crate::session::AsyncSession<$client>;
        /// A v3 mutex held by a session ([`V3::lock`]).
        pub type MutexGuard = $crate::session::AsyncMutexGuard<$client>;
        /// A v3 election won by a session ([`V3::campaign`]).
        pub type LeaderGuard = $crate::session::AsyncLeaderGuard<$client>;
        /// A v3 watch as a stream of items ([`V3::watch`]).
        pub type WatchItems = $crate::drive::FlowStream<$client, $crate::v3::Watch>;
        /// A v3 range read page by page, as a stream ([`V3::paginate`]).
        pub type Pages = $crate::drive::FlowStream<$client, $crate::v3::Paginate>;
        /// An election's leaders as they change, as a stream ([`V3::observe`]).
        pub type Observations = $crate::drive::FlowStream<$client, $crate::v3::Observe>;
        $crate::client_types!(@errors);
    };
    (@errors) => {
        pub use $crate::srv::DiscoveryError;
        pub use $crate::{
            ClusterMismatch, Contention, EtcdError, MalformedResponse, TransportErrorKind,
            TtlExpired, Unavailable,
        };
    };
}

/// Everything a transport's client offers beyond its I/O, in one line:
/// `new`, `builder`, `execute`, `run`, then [`client_methods!`] and
/// [`lock_methods!`]. `transport_client!(Client)` for a blocking client
/// (which implements [`Transport`](crate::drive::Transport)),
/// `transport_client!(Client, async)` for an async one
/// ([`AsyncTransport`](crate::drive::AsyncTransport)).
#[macro_export]
macro_rules! transport_client {
    ($client:ty) => {
        impl $client {
            /// A client for one endpoint URL, with default settings.
            pub fn new(url: &str) -> Result<Self, $crate::Error> {
                Self::builder().endpoint(url).build()
            }

            /// Settings for a client.
            pub fn builder() -> $crate::ClientBuilder<Self> {
                <$crate::ClientBuilder<Self>>::default()
            }

            /// Runs one operation from `etcd_proto` (any of `v2`'s, or your own).
            pub fn execute<O: $crate::Operation>(&self, op: O) -> Result<O::Output, $crate::Error> {
                self.run($crate::Call::new(op))
            }

            /// Drives any flow to completion.
            pub fn run<F: $crate::Flow>(&self, flow: F) -> Result<F::Output, $crate::Error> {
                $crate::drive::drive_blocking(self, flow)
            }
        }
        $crate::client_methods!($client);
        $crate::lock_methods!($client);
        $crate::v3_methods!($client);
        $crate::v3_runtime_methods!($client);
        $crate::client_types!($client);
    };
    ($client:ty, async) => {
        impl $client {
            /// A client for one endpoint URL, with default settings.
            pub fn new(url: &str) -> Result<Self, $crate::Error> {
                Self::builder().endpoint(url).build()
            }

            /// Settings for a client.
            pub fn builder() -> $crate::ClientBuilder<Self> {
                <$crate::ClientBuilder<Self>>::default()
            }

            /// Runs one operation from `etcd_proto` (any of `v2`'s, or your own).
            pub async fn execute<O: $crate::Operation + Send>(
                &self,
                op: O,
            ) -> Result<O::Output, $crate::Error>
            where
                O::Output: Send,
            {
                self.run($crate::Call::new(op)).await
            }

            /// Drives any flow to completion.
            pub async fn run<F: $crate::Flow + Send>(
                &self,
                flow: F,
            ) -> Result<F::Output, $crate::Error>
            where
                F::Output: Send,
            {
                $crate::drive::drive(self, flow).await
            }
        }
        $crate::client_methods!($client, async);
        $crate::lock_methods!($client, async);
        $crate::v3_methods!($client, async);
        $crate::v3_runtime_methods!($client, async);
        $crate::client_types!($client, async);
    };
}
