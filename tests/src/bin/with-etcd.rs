//! Runs a command next to a throwaway etcd server.
//!
//! `with-etcd COMMAND [ARGS…]` starts one etcd member (v2 enabled, free
//! loopback port, temporary data dir) with the test harness, runs the command
//! with the server's URL appended as its last argument and in `ETCD_ENDPOINT`,
//! then stops the server and exits with the command's status.

use std::process::{exit, Command};

use etcd_tests::harness::EtcdServer;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: with-etcd COMMAND [ARGS...]");
        exit(2);
    };
    let server = EtcdServer::start();
    let url = server.client_url();
    eprintln!(
        "with-etcd: etcd {} listening on {url} (pid {})",
        server.version(),
        server.pid()
    );
    let status = Command::new(&program)
        .args(args)
        .arg(&url)
        .env("ETCD_ENDPOINT", &url)
        .status();
    drop(server);
    eprintln!("with-etcd: server stopped");
    match status {
        Ok(status) => exit(status.code().unwrap_or(1)),
        Err(e) => {
            eprintln!("with-etcd: cannot run {program}: {e}");
            exit(1);
        }
    }
}
