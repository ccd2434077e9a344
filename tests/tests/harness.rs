//! Smoke tests for the harness itself: real etcd processes, raw HTTP.

use std::time::{Duration, Instant};

use etcd_tests::harness::{etcd_minor_version, http_get, EtcdBinary, EtcdCluster, EtcdServer};

fn healthy(url: &str) -> bool {
    http_get(url, "/health")
        .map(|r| r.status == 200 && r.body.contains(r#""health":"true""#))
        .unwrap_or(false)
}

fn pid_alive(pid: u32) -> bool {
    // A killed and reaped child has no /proc entry any more.
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn single_server_reports_the_binary_version() {
    let binary = EtcdBinary::locate().unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let mut server = EtcdServer::start();
    eprintln!(
        "etcd {}: single server ready in {:?}",
        binary.version(),
        t.elapsed()
    );

    let url = server.client_url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let r = http_get(&url, "/version").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.body
            .contains(&format!(r#""etcdserver":"{}""#, binary.version())),
        "/version {:?} does not match binary version {}",
        r.body,
        binary.version()
    );
    assert_eq!(server.version(), binary.version());
    assert!(binary
        .version()
        .starts_with(&format!("{}.", etcd_minor_version())));
    assert!(healthy(&url));

    let pid = server.pid();
    let log = server.log_path();
    assert!(log.exists());
    server.kill();
    server.kill(); // idempotent
    assert!(!pid_alive(pid), "pid {pid} still running after kill");
    assert!(
        http_get(&url, "/health").is_err(),
        "killed server still answers"
    );
    drop(server);
    assert!(!log.exists(), "data dir not removed on drop");
}

#[test]
fn cluster_survives_losing_one_member() {
    let t = Instant::now();
    let mut cluster = EtcdCluster::start(3);
    eprintln!(
        "etcd {}: 3-member cluster ready in {:?}",
        cluster.version(),
        t.elapsed()
    );

    let urls = cluster.client_urls();
    assert_eq!(urls.len(), 3);
    for (i, url) in urls.iter().enumerate() {
        assert_eq!(url, &cluster.member_client_url(i));
        assert_eq!(cluster.member_name(i), format!("m{i}"));
        assert!(healthy(url), "member {i} ({url}) not healthy");
    }
    let members = http_get(&urls[0], "/v2/members").unwrap();
    for i in 0..3 {
        assert!(
            members.body.contains(&format!(r#""name":"m{i}""#)),
            "{}",
            members.body
        );
    }

    let killed_pid = cluster.member_pid(1);
    cluster.kill_member(1);
    cluster.kill_member(1); // idempotent
    assert!(!pid_alive(killed_pid));
    assert!(
        http_get(&urls[1], "/health").is_err(),
        "killed member still answers"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if healthy(&urls[0]) && healthy(&urls[2]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "members 0 and 2 not both healthy within 10s of killing member 1"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn etcd_variables_do_not_reach_the_child() {
    // etcd reads ETCD_* variables as flags and refuses to start when one
    // conflicts with a command-line flag, so a leak would fail the start.
    // The variable stays set on purpose: tests running concurrently in this
    // process then exercise the same path.
    std::env::set_var("ETCD_NAME", "bogus");
    let server = EtcdServer::start();
    let r = http_get(&server.client_url(), "/v2/stats/self").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains(r#""name":"m0""#), "{}", r.body);
    assert!(
        !server.log_tail(1000).contains("ETCD_"),
        "{}",
        server.log_tail(1000)
    );
}

#[test]
fn parallel_servers_get_distinct_ports() {
    let servers: Vec<EtcdServer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(EtcdServer::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut urls: Vec<String> = servers.iter().map(EtcdServer::client_url).collect();
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), 3);
    for s in &servers {
        assert!(healthy(&s.client_url()));
    }
}

#[test]
fn extra_flags_are_passed() {
    let server = EtcdServer::start_with(&["--max-request-bytes=2097152", "--auth-token=simple"]);
    assert!(healthy(&server.client_url()));
}

#[test]
#[should_panic(expected = "failed to start")]
fn bad_flags_panic_with_the_log() {
    let _server = EtcdServer::start_with(&["--no-such-flag"]);
}
