//! The sans-IO core of an etcd client: it builds HTTP requests and parses HTTP
//! responses, and holds every protocol decision, but never does I/O.
//!
//! # Theory of operation
//!
//! **This crate has no sockets, no threads, no clock, no randomness and no
//! async runtime.** Time comes in as an argument (`now: Instant`); chance
//! comes in as seeds and ids the transport draws ([`drive::Entropy`]);
//! everything the outside world says to a machine comes in through one
//! method, `handle(cluster, now, Input)`: a response, a streamed head,
//! chunk or end (with trailers), a failure, or the caller's
//! [`Stop`](Input::Stop). Requests go out as `http::Request<Bytes>` with
//! absolute URIs. A transport crate (`etcd-blocking`, `etcd-tokio`,
//! `etcd-async-std`) owns the HTTP connections and does nothing else.
//!
//! Three layers:
//!
//! 1. **[`Operation`]s** are plain values, one per API call — `v2::Read`,
//!    `v2::Write`, `v2::Delete`, `v2::Members`, … Each is a pure request builder
//!    ([`Operation::build`]) plus a pure response parser ([`Operation::parse`]),
//!    so both sides are testable byte for byte without a server.
//! 2. **[`Flow`]s** are state machines that need one or more exchanges: [`Call`]
//!    runs one operation; `v2::Leader` runs two. A transport drives every flow
//!    with the same loop (below).
//! 3. **[`Cluster`]** is the state flows share: endpoints, the pinned one,
//!    the per-request timeout, credentials.
//!
//! On top, [`drive`] holds the one loop that runs a flow over a transport
//! (blocking or async: a transport supplies only `send`, `open` for streamed
//! responses, `sleep_until`, the clock and its cluster), and
//! [`client_methods!`] gives each transport's client the same convenience
//! methods (`get`, `set`, `mkdir`, `leader`, …), written once.
//!
//! # Driving a flow
//!
//! **Invariant: after [`Step::Transmit`], report that request's outcome
//! (exactly one [`Input::Response`] or [`Input::Failure`], through
//! [`Flow::handle`] or its shorthands `handle_response` and
//! `handle_failure`) before polling again.** A flow has at most one request
//! in flight.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use etcd_proto::{v2, Call, Cluster, Flow, Step};
//!
//! let mut cluster = Cluster::from_urls(&["http://127.0.0.1:2379"]).unwrap();
//! let mut flow = Call::new(v2::Read::new("/config/name"));
//! let node = loop {
//!     match flow.poll(&mut cluster, Instant::now()) {
//!         Step::Transmit(transmit) => {
//!             // A real transport sends `transmit.request` here, within
//!             // `transmit.timeout`. This one answers from a recording.
//!             assert_eq!(transmit.request.uri(), "http://127.0.0.1:2379/v2/keys/config/name");
//!             let response = http::Response::builder()
//!                 .header("X-Etcd-Index", "4")
//!                 .body(Bytes::from_static(
//!                     br#"{"action":"get","node":{"key":"/config/name","value":"bar","modifiedIndex":4,"createdIndex":4}}"#,
//!                 ))
//!                 .unwrap();
//!             flow.handle_response(&mut cluster, Instant::now(), response);
//!         }
//!         Step::Sleep(until) => { /* wait until `until`, then poll again */ let _ = until; }
//!         Step::Done(result) => break result.unwrap().node,
//!     }
//! };
//! assert_eq!(node.value.as_deref(), Some("bar"));
//! ```
//!
//! # Errors
//!
//! [`Error`] separates caller misuse ([`Error::Usage`], nothing was sent),
//! server output that cannot be understood ([`Error::Malformed`]), errors etcd
//! reported ([`Error::Etcd`]) and lost exchanges ([`Error::Transport`], built
//! by transports and always naming the endpoint). Parsers never panic, whatever
//! the status, headers or body bytes.

#![deny(missing_docs)]

mod backoff;
mod call;
mod client_methods;
mod cluster;
mod config;
pub mod drive;
mod endpoint;
mod error;
mod flow;
mod keeper;
mod operation;
mod rounds;
pub mod session;
pub mod srv;
#[cfg(any(test, feature = "testkit"))]
#[doc(hidden)]
pub mod testkit;
#[cfg(feature = "tls")]
pub mod tls;
pub mod v2;
pub mod v3;
mod v3_methods;
mod v3_runtime_methods;

pub use call::Call;
pub use cluster::{Cluster, DEFAULT_IDLE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, MEMBER_SYNC_INTERVAL};
pub use config::{ClientBuilder, Config, FromConfig, DEFAULT_ENDPOINT};
pub use endpoint::Endpoint;
pub use error::{
    ClusterMismatch, Contention, Error, ErrorKind, EtcdError, MalformedResponse, TransportError,
    TransportErrorKind, TtlExpired, Unavailable, UsageError,
};
pub use flow::{ExchangeFailure, Flow, Input, Step, StreamFlow, StreamStep, Transmit};
pub use operation::{Api, Operation, Replay, Target, Wait};

#[doc(hidden)]
pub use serde_json;
