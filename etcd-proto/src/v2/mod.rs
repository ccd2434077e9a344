//! The etcd v2 keys API (`/v2/keys`), as python-etcd speaks it.
//!
//! etcd serves v2 only with `--enable-v2` (off by default since 3.4) and not at
//! all from 3.6: this module is for clusters and programs still on v2.
//!
//! - [`keys`]: the operations on keys — [`Read`], [`Write`], [`Delete`], [`Pop`].
//! - [`cluster`]: version, machines, members, leader, stats.
//! - [`auth`]: v2 auth administration (users, roles, the switch).
//! - [`watch`]: long polls with index tracking and resync ([`Watch`]).
//! - [`update`]: the optimistic read-modify-write loop ([`UpdateWith`]).
//! - [`lock`]: python-etcd's lock recipe, fixed ([`AcquireLock`]).
//! - [`Node`] and [`KeysResponse`]: what comes back, with tree walks.
//! - [`V2Error`] / [`V2ErrorCode`]: the error table.

pub mod auth;
pub mod cluster;
mod error;
mod form;
mod key;
pub mod keys;
pub mod lock;
mod node;
mod response;
pub mod update;
pub mod watch;

pub use cluster::{
    FollowerCounts, GetVersion, Leader, LeaderStats, Machines, Member, Members, SelfStats,
    StatsLeader, StatsSelf, StatsStore, VersionInfo,
};
pub use error::{V2Error, V2ErrorCode};
pub use keys::{Delete, DeleteOptions, Pop, Read, ReadOptions, Ttl, Write, WriteOptions};
pub use lock::{AcquireLock, HeldLock, Hold, KeepLock, LockError, LockOptions};
pub use node::{Node, Subtree};
pub use response::{Action, KeysResponse, ResponseMeta};
pub use update::UpdateWith;
pub use watch::{NextEvent, Resync, WaitForEvent, Watch, WatchEvent, WatchOnce, WatchOptions};
