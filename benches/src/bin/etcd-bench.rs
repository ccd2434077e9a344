//! `etcd-bench`: end-to-end benchmark of the etcd clients (v2 keys API and
//! v3 JSON gateway) against a real etcd, after etcd's `tools/benchmark`. See
//! `--help` and [`etcd_benches::e2e`].
//!
//! ```text
//! ETCD_BIN=/usr/bin/etcd cargo run --release -p etcd-benches --bin etcd-bench -- \
//!     --workload put --clients 32 --total 5000
//! ETCD_BIN=/usr/bin/etcd cargo run --release -p etcd-benches --bin etcd-bench -- \
//!     --workload v3-put,v3-range --clients 1,32 --total 10000
//! ETCD_BIN=/usr/bin/etcd cargo run --release -p etcd-benches --bin etcd-bench -- \
//!     --workload v3-put,v3-range --clients 1,32 --tls
//! ```

use std::process::ExitCode;

use etcd_benches::e2e::args::{Command, Options, USAGE};
use etcd_benches::e2e::report::write_report;
use etcd_benches::e2e::runner::run_benchmark;
use etcd_benches::e2e::transport::Target;
use etcd_tests::harness::EtcdServer;
use etcd_tests::tls::TestPki;

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("etcd-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Without endpoints, a throwaway server (dropping it kills it); with
    // --tls, it serves TLS too, with a certificate from a CA made here.
    let pki = options.tls.then(|| TestPki::new("bench"));
    let server = options.endpoints.is_empty().then(|| {
        eprintln!("starting a throwaway etcd...");
        match &pki {
            Some(pki) => {
                pki.start_server(&pki.server(&["127.0.0.1", "localhost"], false), false, &[])
            }
            None => EtcdServer::start(),
        }
    });
    let endpoints = match &server {
        Some(server) => vec![server.client_url()],
        None => options.endpoints.clone(),
    };
    let tls = pki
        .as_ref()
        .zip(server.as_ref())
        .map(|(pki, server)| Target {
            endpoints: vec![server.tls_url()],
            ca_pem: Some(pki.ca_pem.clone()),
        });
    let mut progress = |line: String| eprintln!("{line}");
    let report = run_benchmark(
        &options,
        &endpoints,
        tls.as_ref(),
        server.as_ref().map(EtcdServer::pid),
        &mut progress,
    );
    drop(server);
    match report {
        Ok(report) => {
            let stdout = std::io::stdout();
            if let Err(e) = write_report(&mut stdout.lock(), &report) {
                eprintln!("etcd-bench: writing the report: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("etcd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
