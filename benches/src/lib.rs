//! Benchmarks of the etcd client (criterion micro-benchmarks and end-to-end runs).
