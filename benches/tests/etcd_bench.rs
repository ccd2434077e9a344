//! Smoke test of the end-to-end benchmark: a tiny session of every transport
//! and both workloads against a throwaway etcd, checking that every request
//! succeeds and that the report has its sections. Measures nothing.
//!
//! Needs an etcd binary (`$ETCD_BIN` or `etcd` on PATH, see
//! `scripts/install-etcd.sh`); without one it says so and passes.

use etcd_benches::e2e::args::Options;
use etcd_benches::e2e::report::write_report;
use etcd_benches::e2e::runner::run_benchmark;
use etcd_benches::e2e::transport::TransportKind;
use etcd_benches::e2e::workload::Workload;
use etcd_tests::harness::{EtcdBinary, EtcdServer};

#[test]
fn every_transport_runs_both_workloads() {
    if let Err(e) = EtcdBinary::locate() {
        eprintln!("skipped: {e}");
        return;
    }
    let server = EtcdServer::start();
    let endpoints = vec![server.client_url()];
    for workload in [Workload::Put, Workload::Get] {
        let options = Options {
            endpoints: endpoints.clone(),
            clients: 4,
            total: 200,
            key_space: 50,
            workload,
            rounds: 2,
            warmup: 20,
            ..Options::default()
        };
        let mut lines = Vec::new();
        let report = run_benchmark(&options, &endpoints, Some(server.pid()), &mut |l| {
            lines.push(l)
        })
        .unwrap();
        assert_eq!(lines.iter().filter(|l| l.starts_with("round ")).count(), 8);
        assert!(
            !lines
                .iter()
                .any(|l| l.contains("ERRORS") || l.contains("warning")),
            "{lines:?}"
        );
        let kinds: Vec<_> = report.results.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, TransportKind::ALL);
        for result in &report.results {
            assert_eq!(result.rounds.len(), 2);
            for m in &result.rounds {
                assert_eq!(m.errors.count, 0, "{}: {:?}", result.kind, m.errors.first);
                assert_eq!(m.latencies.count(), 200);
                assert!(m.client_cpu_us_per_op() > 0.0);
                assert!(m.server_cpu_us_per_op().is_some_and(|us| us > 0.0));
            }
        }
        let mut text = Vec::new();
        write_report(&mut text, &report).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(&format!("workload: {workload}, clients: 4, total: 200")));
        assert!(text.contains("| async-std |"), "{text}");
        assert!(text.contains("Latency distribution:"), "{text}");
    }
}
