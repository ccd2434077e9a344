//! The end-to-end benchmark behind the `etcd-bench` binary: every transport
//! against a real etcd, next to a bare HTTP/1.1 baseline, modelled on etcd's
//! `tools/benchmark` (its flags and its report).
//!
//! - [`args`]: the flags;
//! - [`workload`]: the operations (v2 `put`/`get`, v3 `v3-put`/`v3-range`),
//!   the keys and values;
//! - [`raw_http`]: the `raw` baseline's hand-written HTTP/1.1 connection;
//! - [`transport`]: the [`Driver`](transport::Driver) interface, the `raw`
//!   and `blocking` drivers and the thread worker loop;
//! - [`tokio_driver`], [`async_std_driver`]: the async drivers, on the task
//!   worker loop of [`async_worker`];
//! - [`latency`]: latency recording, percentiles and histogram;
//! - [`cpu`]: CPU time of this process and of the server;
//! - [`runner`]: measured runs, interleaved rounds, the whole session;
//! - [`report`]: the printed report.
//!
//! Run it with
//! `ETCD_BIN=/usr/bin/etcd cargo run --release -p etcd-benches --bin etcd-bench -- --workload put --clients 32`,
//! or for the v3 gateway, sequential and 32 in flight,
//! `… -- --workload v3-put,v3-range --clients 1,32` (`--help` lists the flags).

pub mod args;
pub mod async_std_driver;
pub mod async_worker;
pub mod bare_stack;
pub mod cpu;
pub mod latency;
pub mod raw_http;
pub mod report;
pub mod runner;
pub mod tokio_driver;
pub mod transport;
pub mod workload;
