//! Smoke test of the end-to-end benchmark: a tiny session of every transport
//! and every workload (v2 and v3), sequential and concurrent, over plain HTTP
//! and TLS, against a throwaway etcd, checking that every request succeeds and that the report
//! has its sections. Measures nothing.
//!
//! Needs an etcd binary (`$ETCD_BIN` or `etcd` on PATH, see
//! `scripts/install-etcd.sh`); without one it says so and passes.

use etcd_benches::e2e::args::Options;
use etcd_benches::e2e::report::write_report;
use etcd_benches::e2e::runner::run_benchmark;
use etcd_benches::e2e::transport::{Lane, Target, TransportKind};
use etcd_benches::e2e::workload::Workload;
use etcd_tests::harness::EtcdBinary;
use etcd_tests::tls::TestPki;

#[test]
fn every_transport_runs_every_workload() {
    if let Err(e) = EtcdBinary::locate() {
        eprintln!("skipped: {e}");
        return;
    }
    let pki = TestPki::new("bench-smoke");
    let server = pki.start_server(&pki.server(&["127.0.0.1"], false), false, &[]);
    let endpoints = vec![server.client_url()];
    let tls = Target {
        endpoints: vec![server.tls_url()],
        ca_pem: Some(pki.ca_pem.clone()),
    };
    let options = Options {
        endpoints: endpoints.clone(),
        clients: vec![1, 4],
        total: 200,
        key_space: 50,
        workloads: Workload::ALL.to_vec(),
        rounds: 2,
        warmup: 20,
        tls: true,
        ..Options::default()
    };
    let mut lines = Vec::new();
    let report = run_benchmark(
        &options,
        &endpoints,
        Some(&tls),
        Some(server.pid()),
        &mut |l| lines.push(l),
    )
    .unwrap();
    // 4 workloads × 2 client counts × 2 rounds × 6 transports × plain and TLS.
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("round ")).count(),
        4 * 2 * 2 * TransportKind::ALL.len() * 2
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("ERRORS") || l.contains("warning")),
        "{lines:?}"
    );
    let cases: Vec<_> = report
        .cases
        .iter()
        .map(|c| (c.workload, c.clients))
        .collect();
    assert_eq!(
        cases,
        Workload::ALL
            .iter()
            .flat_map(|&w| [(w, 1), (w, 4)])
            .collect::<Vec<_>>()
    );
    for case in &report.cases {
        let lanes: Vec<_> = case.results.iter().map(|r| r.lane).collect();
        let expected: Vec<_> = [false, true]
            .into_iter()
            .flat_map(|tls| TransportKind::ALL.map(|kind| Lane { kind, tls }))
            .collect();
        assert_eq!(lanes, expected);
        for result in &case.results {
            let who = format!("{} ×{} {}", case.workload, case.clients, result.lane);
            assert_eq!(result.rounds.len(), 2);
            for m in &result.rounds {
                assert_eq!(m.errors.count, 0, "{who}: {:?}", m.errors.first);
                assert_eq!(m.latencies.count(), 200, "{who}");
                assert!(m.client_cpu_us_per_op() > 0.0, "{who}");
                assert!(m.server_cpu_us_per_op().is_some_and(|us| us > 0.0), "{who}");
            }
        }
    }
    let mut text = Vec::new();
    write_report(&mut text, &report).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("workloads: put,get,v3-put,v3-range, clients: 1,4, total: 200"),
        "{text}"
    );
    assert!(
        text.contains("######## v3-range, 4 in flight ########"),
        "{text}"
    );
    assert!(text.contains("| v3-put | 1 | async-std |"), "{text}");
    assert!(text.contains("| v3-range | 4 | raw |"), "{text}");
    assert!(text.contains("| v3-range | 4 | async-std+tls |"), "{text}");
    assert!(text.contains("=== TLS against plain HTTP"), "{text}");
    assert!(text.contains("| put | 1 | blocking | "), "{text}");
    assert!(text.contains("Latency distribution:"), "{text}");
}
