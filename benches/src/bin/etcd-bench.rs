//! `etcd-bench`: end-to-end benchmark of the etcd clients (v2 keys API and
//! v3 JSON gateway) against a real etcd, after etcd's `tools/benchmark`. See
//! `--help` and [`etcd_benches::e2e`].
//!
//! ```text
//! ETCD_BIN=/usr/bin/etcd cargo run --release -p etcd-benches --bin etcd-bench -- \
//!     --workload put --clients 32 --total 5000
//! ETCD_BIN=/usr/bin/etcd cargo run --release -p etcd-benches --bin etcd-bench -- \
//!     --workload v3-put,v3-range --clients 1,32 --total 10000
//! ```

use std::process::ExitCode;

use etcd_benches::e2e::args::{Command, Options, USAGE};
use etcd_benches::e2e::report::write_report;
use etcd_benches::e2e::runner::run_benchmark;
use etcd_tests::harness::EtcdServer;

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
    // Without endpoints, a throwaway server (dropping it kills it).
    let server = options.endpoints.is_empty().then(|| {
        eprintln!("starting a throwaway etcd...");
        EtcdServer::start()
    });
    let endpoints = match &server {
        Some(server) => vec![server.client_url()],
        None => options.endpoints.clone(),
    };
    let mut progress = |line: String| eprintln!("{line}");
    let report = run_benchmark(
        &options,
        &endpoints,
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
