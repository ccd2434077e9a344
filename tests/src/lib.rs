//! Test support for the etcd client crates, and the conformance suite.
//!
//! - [`harness`] starts real etcd processes (single servers and clusters) on
//!   loopback for the conformance tests.
//! - [`conformance`] runs one scenario source on every transport: see
//!   [`scenarios!`].
//! - [`tls`] makes a throwaway CA and certificates, and starts TLS servers.
//! - [`proxy`] relays and counts TCP connections, to observe connection reuse.
//! - [`fault`] relays TCP with switchable faults (partitions, stalls, cuts,
//!   resets, refused connects, latency), for fault-injection tests.
//! - [`dns`] is a tiny DNS server answering SRV questions, and [`discovery`]
//!   runs each transport's DNS SRV discovery against it.
//!
//! The scenarios live in `tests/tests/*.rs`, one file per area.

pub mod auth;
pub mod conformance;
pub mod discovery;
pub mod dns;
pub mod fault;
pub mod harness;
pub mod proxy;
pub mod tls;

pub use conformance::{run_scenario, Env, Setup, TestClient, TestLock, Topology, Transport};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
