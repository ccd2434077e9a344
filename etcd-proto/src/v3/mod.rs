//! etcd v3 through its JSON gateway (`POST /v3/...` over HTTP/1.1), on by
//! default in every etcd 3.x.
//!
//! The types here ([`KeyValue`], [`RangeResponse`], [`Compare`], …) know
//! nothing of JSON: the gateway's encoding (base64 bytes, 64-bit integers as
//! strings, omitted defaults) lives in one private module, so a binary gRPC
//! encoding could be added beside it.
//!
//! - [`kv`]: [`Get`] (range reads), [`Put`], [`Delete`], [`Compact`].
//! - [`KeyRange`]: one key, a prefix (with the correct end, 0xFF bytes
//!   included), a range, from a key onward, or every key.
//! - [`V3Error`] / [`V3ErrorKind`]: errors classified by etcd's message, each
//!   able to say whether a retry is safe.

pub mod auth;
pub mod election;
mod error;
pub(crate) mod grpc;
mod json;
pub mod kv;
pub mod lease;
mod lines;
pub mod lock;
pub mod maintenance;
pub mod paginate;
pub mod server_lock;
pub mod txn;
mod types;
mod unary;
pub mod watch;

pub use auth::{AuthAdmin, AuthQuery, Authenticate, Permission, RolePermission};
pub use election::{Campaign, Election, GetLeader, Leadership, Observe};
pub use error::{V3Error, V3ErrorKind};
pub use grpc::{is_grpc, V3Encoding};
pub use kv::{Compact, Delete, DeleteResponse, Get, Put, PutResponse, RangeResponse};
pub use lease::{
    KeepAlive, LeaseGrant, LeaseGrantResponse, LeaseKeepAliveOnce, LeaseKeepAliveResponse,
    LeaseLeases, LeaseRevoke, LeaseTimeToLive, LeaseTimeToLiveResponse,
};
pub use lock::{AcquireMutex, CheckOwner, HeldMutex, Hold, MutexError, MutexOptions, ReleaseMutex};
pub use maintenance::{Member, MemberList, MemberListResponse, Status, StatusResponse};
pub use paginate::Paginate;
pub use server_lock::{ServerLock, ServerLockResponse, ServerUnlock};
pub use txn::{
    Compare, CompareOp, CompareTarget, Txn, TxnOp, TxnOpResponse, TxnResponse, UpdateWith,
};
pub use types::{prefix_end, KeyRange, KeyValue, ResponseHeader, SortOrder, SortTarget};
pub use watch::{Event, EventKind, Watch, WatchBatch, WatchItem};
