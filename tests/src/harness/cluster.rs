//! A cluster of etcd members.

use std::path::PathBuf;

use super::binary::EtcdBinary;
use super::member::{launch, Member};

/// `n` etcd members (`m0`, `m1`, ...) forming one cluster on loopback, v2
/// API enabled, each with its own temp dir. Dropping it kills every member,
/// waits for them and removes their dirs.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    version: String,
    binary: EtcdBinary,
}

impl EtcdCluster {
    /// Starts `members` members and waits until every one answers `/health`
    /// true (so a leader has been elected).
    ///
    /// Panics with a clear message (including the tails of the members'
    /// logs) when no binary is found or the cluster does not become healthy.
    #[track_caller]
    pub fn start(members: usize) -> EtcdCluster {
        Self::start_with(members, &[])
    }

    /// Like [`EtcdCluster::start`], with extra etcd flags for every member.
    #[track_caller]
    pub fn start_with(members: usize, args: &[&str]) -> EtcdCluster {
        let binary = match EtcdBinary::locate() {
            Ok(binary) => binary,
            Err(e) => panic!("{e}"),
        };
        let flags: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let started = match launch(&binary, members, &flags) {
            Ok(started) => started,
            Err(e) => panic!("{e}"),
        };
        EtcdCluster {
            members: started.members,
            version: started.version,
            binary,
        }
    }

    /// Number of members (killed ones included).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a cluster has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Client URLs (`"http://127.0.0.1:PORT"`) in member order.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// TLS client URLs (`"https://127.0.0.1:PORT"`) in member order, for a
    /// cluster started with `--cert-file=` (see
    /// [`TestPki::start_cluster`](crate::tls::TestPki::start_cluster)).
    /// Panics otherwise.
    pub fn tls_urls(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| m.tls_url().expect("a cluster started with --cert-file"))
            .collect()
    }

    /// Client URL of member `i`.
    pub fn member_client_url(&self, i: usize) -> String {
        self.member(i).client_url()
    }

    /// Name of member `i`: `"m0"`, `"m1"`, ...
    pub fn member_name(&self, i: usize) -> String {
        self.member(i).name.clone()
    }

    /// Pid of member `i`.
    pub fn member_pid(&self, i: usize) -> u32 {
        self.member(i).pid()
    }

    /// SIGKILLs member `i` and waits for it to exit. Idempotent.
    pub fn kill_member(&mut self, i: usize) {
        self.member_mut(i).kill();
    }

    /// Server version from member 0's `/version` at start, e.g. `"3.4.23"`.
    pub fn version(&self) -> String {
        self.version.clone()
    }

    /// The binary the members run.
    pub fn binary(&self) -> &EtcdBinary {
        &self.binary
    }

    /// The file holding member `i`'s stdout and stderr.
    pub fn member_log_path(&self, i: usize) -> PathBuf {
        self.member(i).log_path()
    }

    fn member(&self, i: usize) -> &Member {
        let n = self.members.len();
        self.members
            .get(i)
            .unwrap_or_else(|| panic!("member index {i} out of range: the cluster has {n} members"))
    }

    fn member_mut(&mut self, i: usize) -> &mut Member {
        let n = self.members.len();
        self.members
            .get_mut(i)
            .unwrap_or_else(|| panic!("member index {i} out of range: the cluster has {n} members"))
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        // SIGKILL everyone first so that no member spends time logging about
        // its peers going away one by one; each Member's own Drop then waits
        // and removes its dir.
        for m in &mut self.members {
            m.send_kill();
        }
    }
}
