//! The simulated etcd every machine test and fuzz target runs against: one
//! testkit, on virtual time, with message loss and faults. Not a stable
//! API (enabled by the `testkit` feature, for the tests and the fuzzer).
//!
//! - [`Sent`]: one request a flow sent, decoded once (method, URI, v2 key,
//!   query, form, JSON body, headers, timeout, when).
//! - [`Sim`]: one flow, one [`Cluster`](crate::Cluster), one model, one
//!   virtual clock. A hook decides each request's fate ([`Reply`]: served
//!   by the model, late, replaced, lost, timed out); a timeline of
//!   third-party actions and the model's own TTLs move with the clock; a
//!   stop can be given at any virtual time. Scripted tests use `()` as the
//!   model and answer everything from the hook.
//! - [`v2::Store`] and `v3::Store`: the v2 keys store and the v3 store
//!   behind the JSON gateway, with the semantics the machines rely on.
//! - `world`: many actors (lock contenders, election observers) on one v3
//!   store and one clock.
//! - [`Tape`]: every random choice, from a fuzzer's bytes or a seed.
//! - The properties the fuzz targets and property tests share:
//!   [`v2_lock_arena::Arena`], [`v3_scenarios::lock_contention`],
//!   [`v3_scenarios::observe_leaders`].

#![allow(missing_docs)]
#![cfg_attr(not(test), allow(dead_code))]

mod chance;
mod sent;
mod sim;
pub mod v2;
pub mod v2_lock_arena;
pub mod v3;
pub mod v3_scenarios;
pub(crate) mod world;

pub use chance::Tape;
pub use sent::{sorted, Sent};
pub use sim::{Chunk, Reply, Server, Sim};
