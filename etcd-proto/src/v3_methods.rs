//! The v3 convenience API every client offers, written once.
//!
//! [`v3_methods!`](crate::v3_methods) gives a client type a `v3()` method
//! returning a small handle, `V3`, whose methods (`get`, `put`, `txn`,
//! `grant`, …) build a [`v3`](crate::v3) operation or flow and run it through
//! the client's own `execute` / `run`. Blocking and async clients get the
//! same names; async ones are `async fn`s.
//!
//! Anything the handle does not cover is one `client.execute(op)` away:
//! every [`v3`](crate::v3) operation is a value with all of etcd's options.

/// Defines `v3()` on a client type and the `V3` handle with the v3 methods.
///
/// `v3_methods!(Client)` for a blocking client, `v3_methods!(Client, async)`
/// for an async one. The client must have `execute` and `run` as
/// [`transport_client!`](crate::transport_client) defines them.
#[macro_export]
macro_rules! v3_methods {
    ($client:ty $(, $asyncness:tt)?) => {
        impl $client {
            /// The etcd v3 API (through the JSON gateway, on by default in
            /// every etcd 3.x): `client.v3().put("k", "v")`.
            pub fn v3(&self) -> V3 {
                V3 {
                    client: self.clone(),
                }
            }
        }

        /// The etcd v3 API of a client; see [`etcd_proto::v3`] for every
        /// operation and its options. Get one with `client.v3()`. It owns a
        /// clone of the client (a cheap handle on the same connections and
        /// cluster state), so it can be kept, cloned and moved into a
        /// thread or a task.
        #[derive(Debug, Clone)]
        pub struct V3 {
            client: $client,
        }

        impl V3 {
            /// The client this handle runs on.
            pub fn client(&self) -> &$client {
                &self.client
            }

            /// Reads one key; `None` if it does not exist. Linearizable.
            pub $($asyncness)? fn get(
                &self,
                key: impl Into<Vec<u8>>,
            ) -> Result<Option<$crate::v3::KeyValue>, $crate::Error> {
                let op = $crate::v3::Get::new(key.into());
                let response = $crate::__finish!($($asyncness)?; self.client.execute(op))?;
                Ok(response.kvs.into_iter().next())
            }

            /// Reads every key under `prefix`, in key order.
            pub $($asyncness)? fn get_prefix(
                &self,
                prefix: impl Into<Vec<u8>>,
            ) -> Result<$crate::v3::RangeResponse, $crate::Error> {
                let op = $crate::v3::Get::new($crate::v3::KeyRange::prefix(prefix));
                $crate::__finish!($($asyncness)?; self.client.execute(op))
            }

            /// Reads with every option: a range, limit, revision, filters,
            /// sorting, keys or count only, serializable.
            pub $($asyncness)? fn range(
                &self,
                op: $crate::v3::Get,
            ) -> Result<$crate::v3::RangeResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute(op))
            }

            /// Writes a key; the header's revision is the write's.
            pub $($asyncness)? fn put(
                &self,
                key: impl Into<Vec<u8>>,
                value: impl Into<Vec<u8>>,
            ) -> Result<$crate::v3::PutResponse, $crate::Error> {
                let op = $crate::v3::Put::new(key, value);
                $crate::__finish!($($asyncness)?; self.client.execute(op))
            }

            /// Writes with options: lease, prev_kv, ignore_value, ignore_lease.
            pub $($asyncness)? fn put_with(
                &self,
                op: $crate::v3::Put,
            ) -> Result<$crate::v3::PutResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute(op))
            }

            /// Deletes one key; the result counts what was deleted (0 or 1).
            pub $($asyncness)? fn delete(
                &self,
                key: impl Into<Vec<u8>>,
            ) -> Result<$crate::v3::DeleteResponse, $crate::Error> {
                let op = $crate::v3::Delete::new(key.into());
                $crate::__finish!($($asyncness)?; self.client.execute(op))
            }

            /// Deletes every key under `prefix`.
            pub $($asyncness)? fn delete_prefix(
                &self,
                prefix: impl Into<Vec<u8>>,
            ) -> Result<$crate::v3::DeleteResponse, $crate::Error> {
                let op = $crate::v3::Delete::new($crate::v3::KeyRange::prefix(prefix));
                $crate::__finish!($($asyncness)?; self.client.execute(op))
            }

            /// Deletes with options: any range, prev_kv.
            pub $($asyncness)? fn delete_with(
                &self,
                op: $crate::v3::Delete,
            ) -> Result<$crate::v3::DeleteResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute(op))
            }

            /// Runs a transaction.
            pub $($asyncness)? fn txn(
                &self,
                txn: $crate::v3::Txn,
            ) -> Result<$crate::v3::TxnResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute(txn))
            }

            /// Updates a key with `f` (current pair, `None` if absent → new
            /// value) atomically, retrying when another writer got there
            /// first; see [`UpdateWith`]($crate::v3::UpdateWith). Returns the
            /// write's header and the value written.
            pub $($asyncness)? fn update_with<F>(
                &self,
                key: impl Into<Vec<u8>>,
                f: F,
            ) -> Result<($crate::v3::ResponseHeader, Vec<u8>), $crate::Error>
            where
                F: FnMut(Option<&$crate::v3::KeyValue>) -> Vec<u8> + Send,
            {
                $crate::__finish!($($asyncness)?; self.client.run($crate::v3::UpdateWith::new(key, f, $crate::drive::Entropy::random(&self.client))))
            }

            /// Discards history before `revision`.
            pub $($asyncness)? fn compact(
                &self,
                revision: i64,
            ) -> Result<$crate::v3::ResponseHeader, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute($crate::v3::Compact::new(revision)))
            }

            /// Grants a lease of `ttl` seconds.
            pub $($asyncness)? fn grant(
                &self,
                ttl: i64,
            ) -> Result<$crate::v3::LeaseGrantResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute($crate::v3::LeaseGrant::new(ttl)))
            }

            /// Revokes a lease, deleting its keys.
            pub $($asyncness)? fn revoke(
                &self,
                lease: i64,
            ) -> Result<$crate::v3::ResponseHeader, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute($crate::v3::LeaseRevoke(lease)))
            }

            /// A lease's remaining TTL (-1: gone) and, if `keys`, its keys.
            pub $($asyncness)? fn time_to_live(
                &self,
                lease: i64,
                keys: bool,
            ) -> Result<$crate::v3::LeaseTimeToLiveResponse, $crate::Error> {
                let mut op = $crate::v3::LeaseTimeToLive::new(lease);
                if keys {
                    op = op.with_keys();
                }
                $crate::__finish!($($asyncness)?; self.client.execute(op))
            }

            /// The IDs of every live lease.
            pub $($asyncness)? fn leases(&self) -> Result<Vec<i64>, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute($crate::v3::LeaseLeases))
            }

            /// Renews a lease once; a lease that is gone is a `LeaseNotFound` error.
            pub $($asyncness)? fn keep_alive_once(
                &self,
                lease: i64,
            ) -> Result<$crate::v3::LeaseKeepAliveResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute($crate::v3::LeaseKeepAliveOnce(lease)))
            }

            /// The cluster's members.
            pub $($asyncness)? fn member_list(
                &self,
            ) -> Result<$crate::v3::MemberListResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute($crate::v3::MemberList))
            }

            /// The answering member's status: version, leader, DB size, raft indexes.
            pub $($asyncness)? fn status(&self) -> Result<$crate::v3::StatusResponse, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute($crate::v3::Status))
            }

            /// Acquires etcd's server-side lock `name` held by `lease` (see
            /// [`ServerLock`]($crate::v3::ServerLock) for the 60 s trap of
            /// lease 0), waiting at most `timeout`. Returns the owner key.
            pub $($asyncness)? fn server_lock(
                &self,
                name: impl Into<Vec<u8>>,
                lease: i64,
                timeout: Option<std::time::Duration>,
            ) -> Result<$crate::v3::ServerLockResponse, $crate::Error> {
                let mut op = $crate::v3::ServerLock::new(name, lease);
                if let Some(timeout) = timeout {
                    op = op.timeout(timeout);
                }
                $crate::__finish!($($asyncness)?; self.client.execute(op))
            }

            /// Releases a server-side lock by its owner key.
            pub $($asyncness)? fn server_unlock(
                &self,
                key: impl Into<Vec<u8>>,
            ) -> Result<$crate::v3::ResponseHeader, $crate::Error> {
                $crate::__finish!($($asyncness)?; self.client.execute($crate::v3::ServerUnlock(key.into())))
            }
        }
    };
}
