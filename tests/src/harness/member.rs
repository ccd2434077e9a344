//! One etcd member process, and starting a group of them (with retries)
//! until all are healthy.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::binary::EtcdBinary;
use super::http::{http_get, http_get_timeout};
use super::ports::free_port;

/// Attempts (with fresh ports) before giving up on a start.
const MAX_ATTEMPTS: usize = 5;
/// How long one attempt may take to become healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Read timeout of one `/health` probe while waiting for readiness. Short,
/// so that a port that accepts connections but never answers (not our
/// etcd) does not delay noticing that our child has exited; a probe that
/// times out is simply repeated.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// Lines of a member's log quoted in failure messages.
const TAIL_LINES: usize = 40;
/// Prefix of every directory the harness creates.
const DIR_PREFIX: &str = "etcd-tests-";

static SEQ: AtomicU64 = AtomicU64::new(0);

fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Gives `cmd` the current environment minus every `ETCD_*` variable.
///
/// The environment is snapshotted once and installed with `env_clear`, so a
/// variable set concurrently by another thread cannot slip through between
/// listing and spawning.
pub(crate) fn clear_etcd_env(cmd: &mut Command) {
    let keep: Vec<_> = std::env::vars_os()
        .filter(|(k, _)| !k.to_string_lossy().starts_with("ETCD_"))
        .collect();
    cmd.env_clear().envs(keep);
}

/// `/dev/shm` when it is a writable directory, else the system temp dir.
fn base_dir() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            let probe = shm.join(format!(
                "{DIR_PREFIX}probe-{}-{}",
                std::process::id(),
                next_seq()
            ));
            if fs::create_dir(&probe).is_ok() {
                let _ = fs::remove_dir(&probe);
                return shm.to_path_buf();
            }
        }
        std::env::temp_dir()
    })
}

/// Creates a fresh private directory for member `name`.
fn make_member_dir(name: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    loop {
        let dir = base_dir().join(format!(
            "{DIR_PREFIX}{}-{}-{name}",
            std::process::id(),
            next_seq()
        ));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            // Left over by an earlier process that had our pid: pick another.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Once per process: removes member directories left behind by test
/// processes that died without unwinding, SIGKILLing their etcd first when
/// the recorded pid still runs with that directory on its command line.
fn cleanup_stale_once() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !Path::new("/proc/self/cmdline").exists() {
            return; // no procfs: cannot tell dead owners from live ones
        }
        let Ok(entries) = fs::read_dir(base_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
                continue;
            };
            let Some(owner) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
                continue; // ours, or its owner is still alive
            }
            let dir = entry.path();
            if let Some(pid) = fs::read_to_string(dir.join("etcd.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let needle = dir.to_string_lossy();
                if String::from_utf8_lossy(&cmdline).contains(needle.as_ref()) {
                    sigkill(pid);
                }
            }
            let _ = fs::remove_dir_all(&dir);
        }
    });
}

/// SIGKILL for a process that is not our child (an orphan of a dead test
/// process); our own children are stopped through `Child::kill`.
fn sigkill(pid: u32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    const SIGKILL: i32 = 9;
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                kill(pid, SIGKILL);
            }
        }
    }
}

/// Whether the listening socket on 127.0.0.1:`port` belongs to process
/// `pid`. `None` when that cannot be told (no procfs, unreadable fds).
fn owns_listener(pid: u32, port: u16) -> Option<bool> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    // 127.0.0.1 as printed by the kernel (host byte order) on either endianness.
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("7F000001:{port:04X}"),
    ];
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // f[1] local address, f[3] state (0A = LISTEN), f[9] inode
            (f.len() > 9 && wanted.iter().any(|w| w == f[1]) && f[3] == "0A")
                .then(|| f[9].to_string())
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let owned = fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .map(|target| {
                let t = target.to_string_lossy();
                inodes.iter().any(|i| t == format!("socket:[{i}]"))
            })
            .unwrap_or(false)
    });
    Some(owned)
}

/// One running (or killed) etcd member.
#[derive(Debug)]
pub(crate) struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// The port of the TLS client listener, when the member was given a
    /// certificate (`--cert-file=` among its flags).
    pub tls_port: Option<u16>,
    dir: PathBuf,
    child: Child,
    killed: bool,
}

impl Member {
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        binary: &EtcdBinary,
        name: &str,
        client_port: u16,
        peer_port: u16,
        initial_cluster: &str,
        token: &str,
        extra: &[String],
    ) -> Result<Member, String> {
        cleanup_stale_once();
        let dir = make_member_dir(name).map_err(|e| {
            format!(
                "cannot create a member dir under {}: {e}",
                base_dir().display()
            )
        })?;
        let log_path = dir.join("etcd.log");
        let open_log = || -> std::io::Result<(File, File)> {
            let log = File::create(&log_path)?;
            let log2 = log.try_clone()?;
            Ok((log, log2))
        };
        let (stdout, stderr) = match open_log() {
            Ok(files) => files,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(format!("cannot create {}: {e}", log_path.display()));
            }
        };
        // With a certificate, a TLS listener too; the plain one stays for
        // the harness's own readiness checks.
        let tls_port = extra
            .iter()
            .any(|flag| flag.starts_with("--cert-file="))
            .then(free_port);
        let mut client = format!("http://127.0.0.1:{client_port}");
        if let Some(port) = tls_port {
            client.push_str(&format!(",https://127.0.0.1:{port}"));
        }
        let peer = format!("{}://127.0.0.1:{peer_port}", peer_scheme(extra));
        let mut cmd = Command::new(binary.path());
        cmd.arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg("--enable-v2=true")
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .arg("--initial-cluster-state=new")
            .arg(format!("--initial-cluster-token={token}"))
            .arg("--logger=zap")
            .arg("--log-level=warn")
            .args(extra)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        clear_etcd_env(&mut cmd);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(format!("cannot run {}: {e}", binary.path().display()));
            }
        };
        let _ = fs::write(dir.join("etcd.pid"), format!("{}\n", child.id()));
        Ok(Member {
            name: name.to_string(),
            client_port,
            peer_port,
            tls_port,
            dir,
            child,
            killed: false,
        })
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The TLS client URL, when the member has one.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("https://127.0.0.1:{port}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// The last `lines` lines of the member's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read(self.log_path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn describe(&self) -> String {
        format!(
            "--- {} (pid {}, client {}, peer {}) log tail, {} ---\n{}",
            self.name,
            self.pid(),
            self.client_port,
            self.peer_port,
            self.log_path().display(),
            self.log_tail(TAIL_LINES)
        )
    }

    /// Exit status when the process has already exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGKILL (once) without waiting.
    pub fn send_kill(&mut self) {
        if !self.killed {
            self.killed = true;
            let _ = self.child.kill();
        }
    }

    /// SIGKILL and wait for the exit. Idempotent.
    pub fn kill(&mut self) {
        self.send_kill();
        let _ = self.child.wait();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("[etcd-tests harness] {}", self.describe());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `https` when the members talk to each other over TLS
/// (`--peer-cert-file=` among their flags), else `http`.
fn peer_scheme(extra: &[String]) -> &'static str {
    if extra
        .iter()
        .any(|flag| flag.starts_with("--peer-cert-file="))
    {
        "https"
    } else {
        "http"
    }
}

/// Members that all answered `/health` true, and the server version.
#[derive(Debug)]
pub(crate) struct Started {
    pub members: Vec<Member>,
    pub version: String,
}

enum Outcome {
    Ready,
    /// A port was taken by someone else (bind error, or the client port's
    /// listener is not our child's): retry with new ports.
    PortTaken(String),
    /// A member exited for another reason: retried once, in case it was
    /// transient, then fatal (a bad flag fails the same way every time).
    Exited(String),
    /// Not healthy in time: fatal.
    TimedOut(String),
}

/// Starts `n` members (`m0`..) forming one cluster and waits until every one
/// is healthy. Retries with new ports (up to [`MAX_ATTEMPTS`] starts) when a
/// port turns out to be taken by another process.
pub(crate) fn launch(binary: &EtcdBinary, n: usize, extra: &[String]) -> Result<Started, String> {
    assert!(n > 0, "a cluster needs at least one member");
    let what = format!(
        "etcd {} ({}) failed to start {n} member(s)",
        binary.version(),
        binary.path().display()
    );
    let mut earlier = Vec::new();
    let mut exits = 0;
    for attempt in 1..=MAX_ATTEMPTS {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}={}://127.0.0.1:{peer}", peer_scheme(extra)))
            .collect::<Vec<_>>()
            .join(",");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let token = format!("{DIR_PREFIX}{}-{}-{nanos}", std::process::id(), next_seq());
        let mut members = Vec::with_capacity(n);
        for (i, (client, peer)) in ports.iter().enumerate() {
            // On error, `members` drops: the ones already spawned are killed.
            let member = Member::spawn(
                binary,
                &format!("m{i}"),
                *client,
                *peer,
                &initial_cluster,
                &token,
                extra,
            )
            .map_err(|e| format!("{what}: {e}"))?;
            members.push(member);
        }
        let fail = |reason: &str, members: &[Member]| {
            let mut msg = format!("{what} (attempt {attempt} of at most {MAX_ATTEMPTS}): {reason}");
            if !earlier.is_empty() {
                msg.push_str(&format!("\nearlier attempts:\n  {}", earlier.join("\n  ")));
            }
            format!("{msg}\n{}", tails(members))
        };
        let reason = match wait_ready(&mut members) {
            Outcome::Ready => {
                let version = server_version(&members[0].client_url())
                    .map_err(|e| fail(&format!("healthy, but {e}"), &members))?;
                return Ok(Started { members, version });
            }
            Outcome::TimedOut(reason) => return Err(fail(&reason, &members)),
            Outcome::Exited(reason) => {
                exits += 1;
                if exits > 1 || attempt == MAX_ATTEMPTS {
                    return Err(fail(&reason, &members));
                }
                reason
            }
            Outcome::PortTaken(reason) => {
                if attempt == MAX_ATTEMPTS {
                    return Err(fail(&reason, &members));
                }
                reason
            }
        };
        earlier.push(format!("attempt {attempt}: {reason}"));
    }
    unreachable!("the last attempt returns")
}

fn tails(members: &[Member]) -> String {
    members
        .iter()
        .map(Member::describe)
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_ready(members: &mut [Member]) -> Outcome {
    let start = Instant::now();
    let mut healthy = vec![false; members.len()];
    let mut delay = Duration::from_millis(5);
    loop {
        for m in members.iter_mut() {
            if let Some(status) = m.exited() {
                let reason = format!("{} exited ({status}) before becoming healthy", m.name);
                return if log_mentions_bind_error(m) {
                    Outcome::PortTaken(format!("{reason}: address already in use"))
                } else {
                    Outcome::Exited(reason)
                };
            }
        }
        for (m, ok) in members.iter().zip(healthy.iter_mut()) {
            if !*ok {
                *ok = is_healthy(&m.client_url());
            }
        }
        if healthy.iter().all(|ok| *ok) {
            for m in members.iter() {
                if owns_listener(m.pid(), m.client_port) == Some(false) {
                    return Outcome::PortTaken(format!(
                        "port {} of {} answered, but the listener is not our child's",
                        m.client_port, m.name
                    ));
                }
            }
            return Outcome::Ready;
        }
        if start.elapsed() > READY_TIMEOUT {
            let not_ready: Vec<&str> = members
                .iter()
                .zip(&healthy)
                .filter(|(_, ok)| !**ok)
                .map(|(m, _)| m.name.as_str())
                .collect();
            let reason = format!(
                "not healthy after {READY_TIMEOUT:?}: {}",
                not_ready.join(", ")
            );
            return if members.iter().any(log_mentions_bind_error) {
                Outcome::PortTaken(format!("{reason} (address already in use in a log)"))
            } else {
                Outcome::TimedOut(reason)
            };
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

fn log_mentions_bind_error(m: &Member) -> bool {
    fs::read(m.log_path())
        .map(|b| String::from_utf8_lossy(&b).contains("address already in use"))
        .unwrap_or(false)
}

/// `GET /health` answered 200 with `"health":"true"` within
/// [`PROBE_TIMEOUT`].
pub(crate) fn is_healthy(client_url: &str) -> bool {
    http_get_timeout(client_url, "/health", PROBE_TIMEOUT)
        .map(|r| r.status == 200 && r.body.contains(r#""health":"true""#))
        .unwrap_or(false)
}

/// The `etcdserver` field of `GET /version`.
pub(crate) fn server_version(client_url: &str) -> Result<String, String> {
    let r = http_get(client_url, "/version")?;
    if r.status != 200 {
        return Err(format!("/version answered {}: {}", r.status, r.body));
    }
    json_string_field(&r.body, "etcdserver")
        .ok_or_else(|| format!("no etcdserver in /version: {}", r.body))
}

/// The value of `"key":"value"` in a flat JSON object (no escapes handled).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let after_key = &json[json.find(&format!("\"{key}\""))? + key.len() + 2..];
    let after_colon = after_key.trim_start().strip_prefix(':')?.trim_start();
    let value = after_colon.strip_prefix('"')?;
    Some(value[..value.find('"')?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_ownership_is_told_apart() {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(owns_listener(std::process::id(), port), Some(true));
        let mut other = Command::new("sleep").arg("5").spawn().unwrap();
        assert_eq!(owns_listener(other.id(), port), Some(false));
        other.kill().unwrap();
        other.wait().unwrap();
        // (Once `listener` is dropped the answer would be None, but another
        // test may bind the same port right away, so that is not asserted.)
    }

    #[test]
    fn bind_error_is_retryable() {
        let binary = EtcdBinary::locate().unwrap_or_else(|e| panic!("{e}"));
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let client = taken.local_addr().unwrap().port();
        let peer = free_port();
        let cluster = format!("m0=http://127.0.0.1:{peer}");
        let member =
            Member::spawn(&binary, "m0", client, peer, &cluster, "bind-test", &[]).unwrap();
        let dir = member.dir.clone();
        let mut members = vec![member];
        match wait_ready(&mut members) {
            Outcome::PortTaken(reason) => {
                assert!(reason.contains("address already in use"), "{reason}")
            }
            Outcome::Ready => panic!("ready on a taken port"),
            Outcome::Exited(reason) | Outcome::TimedOut(reason) => panic!("{reason}"),
        }
        drop(members);
        assert!(!dir.exists());
    }

    #[test]
    fn reads_json_string_fields() {
        let body = r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#;
        assert_eq!(
            json_string_field(body, "etcdserver").as_deref(),
            Some("3.4.23")
        );
        assert_eq!(
            json_string_field(body, "etcdcluster").as_deref(),
            Some("3.4.0")
        );
        assert_eq!(
            json_string_field(r#"{ "etcdserver" : "3.5.1" }"#, "etcdserver").as_deref(),
            Some("3.5.1")
        );
        assert_eq!(json_string_field(body, "missing"), None);
    }
}
