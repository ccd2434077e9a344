//! A single etcd member.

use std::path::PathBuf;

use super::binary::EtcdBinary;
use super::member::{launch, Member};

/// Flags that make a lone member elect itself within a few milliseconds.
/// Safe for one member: nobody can take its leadership away.
const SINGLE_MEMBER_FLAGS: [&str; 2] = ["--heartbeat-interval=10", "--election-timeout=100"];

/// One etcd member process (named `m0`) with the v2 API enabled, on free
/// loopback ports, with its own temp dir. Dropping it kills the process,
/// waits for it and removes the dir.
#[derive(Debug)]
pub struct EtcdServer {
    member: Member,
    version: String,
    binary: EtcdBinary,
}

impl EtcdServer {
    /// Starts a server and waits until `/health` is true.
    ///
    /// Panics with a clear message (including the tail of etcd's log) when
    /// no binary is found or the server does not become healthy.
    #[track_caller]
    pub fn start() -> EtcdServer {
        Self::start_with(&[])
    }

    /// Like [`EtcdServer::start`], with extra etcd flags appended after the
    /// harness's own, e.g. `["--auth-token=simple"]`. etcd keeps the last
    /// value of a repeated flag, so these can override the defaults.
    #[track_caller]
    pub fn start_with(args: &[&str]) -> EtcdServer {
        let binary = match EtcdBinary::locate() {
            Ok(binary) => binary,
            Err(e) => panic!("{e}"),
        };
        let flags: Vec<String> = SINGLE_MEMBER_FLAGS
            .iter()
            .chain(args)
            .map(|s| s.to_string())
            .collect();
        let started = match launch(&binary, 1, &flags) {
            Ok(started) => started,
            Err(e) => panic!("{e}"),
        };
        let member = started.members.into_iter().next().expect("one member");
        EtcdServer {
            member,
            version: started.version,
            binary,
        }
    }

    /// `"http://127.0.0.1:PORT"`.
    pub fn client_url(&self) -> String {
        self.member.client_url()
    }

    /// `"https://127.0.0.1:PORT"`: the TLS listener of a server started
    /// with a certificate (`--cert-file=`). Panics otherwise.
    pub fn tls_url(&self) -> String {
        self.member
            .tls_url()
            .expect("a server started with --cert-file")
    }

    /// Server version from `/version`, e.g. `"3.5.1"`.
    pub fn version(&self) -> String {
        self.version.clone()
    }

    /// Pid of the etcd process.
    pub fn pid(&self) -> u32 {
        self.member.pid()
    }

    /// SIGKILLs the process and waits for it to exit. Idempotent; the
    /// directory stays until the server is dropped.
    pub fn kill(&mut self) {
        self.member.kill();
    }

    /// Member name, always `"m0"`.
    pub fn name(&self) -> String {
        self.member.name.clone()
    }

    /// The binary this server runs.
    pub fn binary(&self) -> &EtcdBinary {
        &self.binary
    }

    /// The file holding etcd's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.member.log_path()
    }

    /// The last `lines` lines of etcd's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.member.log_tail(lines)
    }
}
