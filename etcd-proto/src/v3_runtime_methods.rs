//! The v3 methods that need the transport's own driving, written once:
//! streams (watch, paging) and background work (keep-alive sessions, locks,
//! elections). [`v3_runtime_methods!`](crate::v3_runtime_methods) adds them
//! to the `V3` handle of [`v3_methods!`](crate::v3_methods).

/// Adds the streaming and background v3 methods to a client's `V3` handle:
/// `v3_runtime_methods!(Client)` (iterators, threads) or
/// `v3_runtime_methods!(Client, async)` (streams, tasks).
#[macro_export]
macro_rules! v3_runtime_methods {
    ($client:ty) => {
        impl V3 {
            /// Watches a key, prefix or range; see [`Watch`]($crate::v3::Watch)
            /// for the options and guarantees. An iterator of
            /// [`WatchItem`]($crate::v3::WatchItem)s that resumes by itself
            /// after a dropped connection; dropping it closes the watch's connection.
            pub fn watch(
                &self,
                watch: $crate::v3::Watch,
            ) -> $crate::drive::StreamIter<$client, $crate::v3::Watch> {
                $crate::drive::StreamIter::new(self.client.clone(), watch)
            }

            /// Reads a large range page by page, all pages at one revision;
            /// see [`Paginate`]($crate::v3::Paginate).
            pub fn paginate(
                &self,
                range: impl Into<$crate::v3::KeyRange>,
                page_size: i64,
            ) -> $crate::drive::StreamIter<$client, $crate::v3::Paginate> {
                $crate::drive::StreamIter::new(
                    self.client.clone(),
                    $crate::v3::Paginate::new(range, page_size),
                )
            }
        }

        impl V3 {
            /// A session: a lease of `ttl` seconds kept alive by a background
            /// thread until closed or dropped (dropping the last handle revokes
            /// it); see [`session`]($crate::session).
            pub fn session(
                &self,
                ttl: i64,
            ) -> Result<$crate::session::Session<$client>, $crate::Error> {
                $crate::session::Session::new(&self.client, ttl)
            }

            /// A session keeping the existing lease `lease` alive.
            pub fn session_from_lease(
                &self,
                lease: i64,
            ) -> Result<$crate::session::Session<$client>, $crate::Error> {
                $crate::session::Session::from_lease(&self.client, lease)
            }

            /// Acquires the v3 lock `name` (Go's `concurrency.Mutex`; see
            /// [`lock`]($crate::v3::lock)) on a session of its own, granted
            /// with `options`' TTL. The guard exposes the key and fencing
            /// token and releases the lock (and closes its session) on drop.
            /// For a session of your own: `session.lock(name, options)`.
            pub fn lock(
                &self,
                name: impl Into<Vec<u8>>,
                options: $crate::v3::MutexOptions,
            ) -> Result<$crate::session::MutexGuard<$client>, $crate::Error> {
                $crate::session::MutexGuard::acquire_with_own_session(&self.client, name, options)
            }

            /// One look at the v3 lock `name`: `Ok(None)` if another session
            /// holds it (our key and session are removed again).
            pub fn try_lock(
                &self,
                name: impl Into<Vec<u8>>,
                options: $crate::v3::MutexOptions,
            ) -> Result<Option<$crate::session::MutexGuard<$client>>, $crate::Error> {
                match $crate::session::MutexGuard::acquire_with_own_session(
                    &self.client,
                    name,
                    options.try_lock(),
                ) {
                    Ok(guard) => Ok(Some(guard)),
                    Err($crate::Error::Mutex($crate::v3::MutexError::Busy { .. })) => Ok(None),
                    Err(e) => Err(e),
                }
            }

            /// etcetra's `with_lock(name, timeout, ttl)`: waits at most
            /// `timeout`; `ttl: None` holds until released, `Some(ttl)` frees
            /// the lock by itself about `ttl` seconds after acquisition (a
            /// hard maximum). See [`MutexGuard::with_lock`]($crate::session::MutexGuard::with_lock).
            pub fn with_lock(
                &self,
                name: impl Into<Vec<u8>>,
                timeout: Option<std::time::Duration>,
                ttl: Option<i64>,
            ) -> Result<$crate::session::MutexGuard<$client>, $crate::Error> {
                $crate::session::MutexGuard::with_lock(&self.client, name, timeout, ttl)
            }

            /// Campaigns in the election `name` with `value` on a session of
            /// its own and waits to lead (Go's `concurrency.Election`; see
            /// [`election`]($crate::v3::election)). The guard proclaims new
            /// values and resigns on drop.
            pub fn campaign(
                &self,
                name: impl Into<Vec<u8>>,
                value: impl Into<Vec<u8>>,
                options: $crate::v3::MutexOptions,
            ) -> Result<$crate::session::LeaderGuard<$client>, $crate::Error> {
                $crate::session::LeaderGuard::campaign_with_own_session(
                    &self.client,
                    name,
                    value,
                    options,
                )
            }

            /// The current leader of the election `name`; `None` if nobody campaigns.
            pub fn leader(
                &self,
                name: impl Into<Vec<u8>>,
            ) -> Result<Option<$crate::v3::KeyValue>, $crate::Error> {
                $crate::drive::drive_blocking(
                    &self.client,
                    $crate::v3::Election::new(name).leader(),
                )
            }

            /// The leader of the election `name` each time it changes (a new
            /// leader or a new value), as an iterator; see
            /// [`Observe`]($crate::v3::Observe).
            pub fn observe(
                &self,
                name: impl Into<Vec<u8>>,
            ) -> $crate::drive::StreamIter<$client, $crate::v3::Observe> {
                $crate::drive::StreamIter::new(
                    self.client.clone(),
                    $crate::v3::Election::new(name).observe(),
                )
            }
        }
    };
    ($client:ty, async) => {
        impl V3 {
            /// Watches a key, prefix or range; see [`Watch`]($crate::v3::Watch)
            /// for the options and guarantees. A `Stream` of
            /// [`WatchItem`]($crate::v3::WatchItem)s that resumes by itself
            /// after a dropped connection; dropping it closes the watch's connection.
            pub fn watch(
                &self,
                watch: $crate::v3::Watch,
            ) -> $crate::drive::FlowStream<$client, $crate::v3::Watch> {
                $crate::drive::FlowStream::new(self.client.clone(), watch)
            }

            /// Reads a large range page by page, all pages at one revision;
            /// see [`Paginate`]($crate::v3::Paginate).
            pub fn paginate(
                &self,
                range: impl Into<$crate::v3::KeyRange>,
                page_size: i64,
            ) -> $crate::drive::FlowStream<$client, $crate::v3::Paginate> {
                $crate::drive::FlowStream::new(
                    self.client.clone(),
                    $crate::v3::Paginate::new(range, page_size),
                )
            }
        }

        impl V3 {
            /// A session: a lease of `ttl` seconds kept alive by a background
            /// task until closed (`close().await`); see [`session`]($crate::session).
            pub async fn session(
                &self,
                ttl: i64,
            ) -> Result<$crate::session::AsyncSession<$client>, $crate::Error> {
                $crate::session::AsyncSession::new(&self.client, ttl).await
            }

            /// A session keeping the existing lease `lease` alive.
            pub async fn session_from_lease(
                &self,
                lease: i64,
            ) -> Result<$crate::session::AsyncSession<$client>, $crate::Error> {
                $crate::session::AsyncSession::from_lease(&self.client, lease).await
            }

            /// Acquires the v3 lock `name` (Go's `concurrency.Mutex`; see
            /// [`lock`]($crate::v3::lock)) on a session of its own, granted
            /// with `options`' TTL. Release it with `release().await` (which
            /// also closes its session). For a session of your own:
            /// `session.lock(name, options).await`.
            pub async fn lock(
                &self,
                name: impl Into<Vec<u8>>,
                options: $crate::v3::MutexOptions,
            ) -> Result<$crate::session::AsyncMutexGuard<$client>, $crate::Error> {
                $crate::session::AsyncMutexGuard::acquire_with_own_session(
                    &self.client,
                    name,
                    options,
                )
                .await
            }

            /// One look at the v3 lock `name`: `Ok(None)` if another session
            /// holds it (our key and session are removed again).
            pub async fn try_lock(
                &self,
                name: impl Into<Vec<u8>>,
                options: $crate::v3::MutexOptions,
            ) -> Result<Option<$crate::session::AsyncMutexGuard<$client>>, $crate::Error> {
                match $crate::session::AsyncMutexGuard::acquire_with_own_session(
                    &self.client,
                    name,
                    options.try_lock(),
                )
                .await
                {
                    Ok(guard) => Ok(Some(guard)),
                    Err($crate::Error::Mutex($crate::v3::MutexError::Busy { .. })) => Ok(None),
                    Err(e) => Err(e),
                }
            }

            /// etcetra's `with_lock(name, timeout, ttl)`: waits at most
            /// `timeout`; `ttl: None` holds until released, `Some(ttl)` frees
            /// the lock by itself about `ttl` seconds after acquisition (a
            /// hard maximum). Release with `release().await`.
            pub async fn with_lock(
                &self,
                name: impl Into<Vec<u8>>,
                timeout: Option<std::time::Duration>,
                ttl: Option<i64>,
            ) -> Result<$crate::session::AsyncMutexGuard<$client>, $crate::Error> {
                $crate::session::AsyncMutexGuard::with_lock(&self.client, name, timeout, ttl).await
            }

            /// Campaigns in the election `name` with `value` on a session of
            /// its own and waits to lead (Go's `concurrency.Election`; see
            /// [`election`]($crate::v3::election)). Resign with `resign().await`.
            pub async fn campaign(
                &self,
                name: impl Into<Vec<u8>>,
                value: impl Into<Vec<u8>>,
                options: $crate::v3::MutexOptions,
            ) -> Result<$crate::session::AsyncLeaderGuard<$client>, $crate::Error> {
                $crate::session::AsyncLeaderGuard::campaign_with_own_session(
                    &self.client,
                    name,
                    value,
                    options,
                )
                .await
            }

            /// The current leader of the election `name`; `None` if nobody campaigns.
            pub async fn leader(
                &self,
                name: impl Into<Vec<u8>>,
            ) -> Result<Option<$crate::v3::KeyValue>, $crate::Error> {
                $crate::drive::drive(&self.client, $crate::v3::Election::new(name).leader()).await
            }

            /// The leader of the election `name` each time it changes (a new
            /// leader or a new value), as a `Stream`; see
            /// [`Observe`]($crate::v3::Observe).
            pub fn observe(
                &self,
                name: impl Into<Vec<u8>>,
            ) -> $crate::drive::FlowStream<$client, $crate::v3::Observe> {
                $crate::drive::FlowStream::new(
                    self.client.clone(),
                    $crate::v3::Election::new(name).observe(),
                )
            }
        }
    };
}
