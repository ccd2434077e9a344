//! TLS against real etcd servers with certificates made at test time
//! (rcgen): trust, names, expiry, client certificates, the verification
//! opt-out, and TLS with auth.

use std::time::Duration;

use etcd_proto::tls::TlsOptions;
use etcd_proto::v2::auth::{AuthChange, AuthRead};
use etcd_proto::v2::V2ErrorCode;
use etcd_proto::v3::{KeyRange, MutexOptions, Permission, V3ErrorKind, Watch, WatchItem};
use etcd_proto::{Config, Error, TransportErrorKind};
use etcd_tests::auth::auth_setup;
use etcd_tests::discovery::discover_config;
use etcd_tests::dns::{DnsServer, Srv};
use etcd_tests::fault::{Fault, FaultProxy};
use etcd_tests::tls::TestPki;
use etcd_tests::{Env, TestClient};

/// A client of the transport under test to `url` with `tls`.
fn tls_client(env: &Env, url: &str, tls: TlsOptions) -> TestClient {
    env.transport.connect_config(Config {
        endpoints: vec![url.to_owned()],
        request_timeout: Some(Duration::from_secs(5)),
        tls,
        ..Config::default()
    })
}

/// The TLS transport error a v3 put through `client` gets, and its text.
fn tls_error(client: &TestClient) -> String {
    match client.v3().put("tls/x", "1").unwrap_err() {
        Error::Transport(t) => {
            assert_eq!(t.kind(), TransportErrorKind::Tls, "{t}");
            assert!(t.request_not_sent(), "{t}");
            t.to_string()
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

etcd_tests::scenarios! {
    /// With the right CA: KV, a watch stream and v2 over TLS; the same
    /// server is refused, with a reason, under an unknown CA, a wrong name
    /// or an expired certificate; the name override and the explicit
    /// opt-out work, the opt-out only when set.
    fn tls_trust_names_and_expiry(client, env) {
        let pki = TestPki::new("trust");
        let server = pki.start_server(&pki.server(&["127.0.0.1", "localhost"], false), false, &[]);
        let url = server.tls_url();
        let trusted = TlsOptions::default().ca_pem(pki.ca_pem.clone()).system_roots(false);
        let c = tls_client(env, &url, trusted.clone());
        c.v3().put("tls/k", "v").unwrap();
        assert_eq!(c.v3().get("tls/k").unwrap().unwrap().value, b"v");
        c.set("/tls/v2", "v2").unwrap();
        let items = c.stream_items(Watch::new(KeyRange::prefix("tls/")), 1, Duration::from_secs(5));
        assert!(matches!(items.first(), Some(Ok(WatchItem::Created { .. }))), "{items:?}");
        // By name: localhost is in the certificate.
        let by_name = url.replace("127.0.0.1", "localhost");
        tls_client(env, &by_name, trusted.clone()).v3().put("tls/k", "byname").unwrap();

        let unknown = tls_error(&tls_client(env, &url, TlsOptions::default().ca_pem(TestPki::new("other").ca_pem.clone()).system_roots(false)));
        assert!(unknown.contains("unknown issuer") && unknown.contains(&url), "{unknown}");
        let system_only = tls_error(&tls_client(env, &url, TlsOptions::default()));
        assert!(system_only.contains("unknown issuer"), "{system_only}");

        let wrong = pki.start_server(&pki.server(&["etcd.example"], false), false, &[]);
        let mismatch = tls_error(&tls_client(env, &wrong.tls_url(), trusted.clone()));
        assert!(mismatch.contains("does not name this host"), "{mismatch}");
        tls_client(env, &wrong.tls_url(), trusted.clone().server_name("etcd.example"))
            .v3()
            .put("tls/k", "override")
            .unwrap();

        let old = pki.start_server(&pki.server(&["127.0.0.1"], true), false, &[]);
        let expired = tls_error(&tls_client(env, &old.tls_url(), trusted.clone()));
        assert!(expired.contains("expired"), "{expired}");
        tls_client(env, &old.tls_url(), TlsOptions::default().danger_accept_invalid_certificates())
            .v3()
            .put("tls/k", "insecure")
            .unwrap();
        let _ = client;
    }

    /// etcd with `--client-cert-auth`: without a client certificate the
    /// handshake is refused and says so; with one signed by its CA, every
    /// call works; a bad PEM is refused at build.
    fn tls_client_certificates(client, env) {
        let pki = TestPki::new("mtls");
        let server = pki.start_server(&pki.server(&["127.0.0.1"], false), true, &[]);
        let trusted = TlsOptions::default().ca_pem(pki.ca_pem.clone()).system_roots(false);
        let anonymous = tls_client(env, &server.tls_url(), trusted.clone());
        // In TLS 1.3 the server's refusal may come after the client saw the
        // handshake through: then the first request meets a closed
        // connection instead of the handshake's alert.
        match anonymous.v3().put("tls/x", "1").unwrap_err() {
            Error::Transport(t) if t.kind() == TransportErrorKind::Tls => {
                assert!(t.to_string().contains("client certificate"), "{t}")
            }
            Error::Transport(t) => assert_eq!(t.kind(), TransportErrorKind::Io, "{t}"),
            other => panic!("{other:?}"),
        }
        let identity = pki.client("root");
        let mtls = tls_client(env, &server.tls_url(), trusted.clone().identity_pem(identity.cert_pem.clone(), identity.key_pem.clone()));
        mtls.v3().put("tls/m", "1").unwrap();
        assert_eq!(mtls.v3().get("tls/m").unwrap().unwrap().value, b"1");
        let bad = env.transport.try_connect_config(Config {
            endpoints: vec![server.tls_url()],
            tls: trusted.identity_pem("not a pem", "nor this"),
            ..Config::default()
        });
        assert!(matches!(bad, Err(Error::Usage(etcd_proto::UsageError::InvalidTls { .. }))), "{bad:?}");
        let _ = client;
    }

    /// TLS connections are pooled and kept alive like plain ones (one
    /// handshake for many calls), a lock works over TLS, and a call fails
    /// over from a TLS endpoint that refuses to one that answers.
    fn tls_pooling_locks_and_failover(client, env) {
        let pki = TestPki::new("pool");
        let server = pki.start_server(&pki.server(&["127.0.0.1"], false), false, &[]);
        let trusted = TlsOptions::default().ca_pem(pki.ca_pem.clone()).system_roots(false);
        let counting = FaultProxy::start(&server.tls_url());
        let through = counting.url().replace("http://", "https://");
        let c = tls_client(env, &through, trusted.clone());
        for i in 0..20 {
            c.v3().put("tls/pool", i.to_string()).unwrap();
        }
        // hyper-util's pool sometimes races a fresh connect against a
        // connection on its way back to idle (as over plain HTTP: see
        // v2_cluster's keep-alive scenario), more often on a loaded
        // machine (6 of 20 seen once in CI), so reuse shows as far fewer
        // connections (handshakes) than calls: at most half.
        let accepted = counting.accepted();
        assert!((1..=10).contains(&accepted), "20 sequential calls used {accepted} TLS connections");
        let guard = c.v3_lock("tls-lock", MutexOptions::new()).unwrap();
        assert!(guard.is_held().unwrap());
        guard.release().unwrap();

        let refusing = FaultProxy::start(&server.tls_url());
        refusing.set(Fault::Refuse);
        let both = env.transport.connect_config(Config {
            endpoints: vec![refusing.url().replace("http://", "https://"), server.tls_url()],
            request_timeout: Some(Duration::from_secs(5)),
            discover_members: false,
            tls: trusted,
            ..Config::default()
        });
        both.v3().put("tls/failover", "1").unwrap();
        assert_eq!(both.v3().get("tls/failover").unwrap().unwrap().value, b"1");
        let _ = client;
    }

    /// Records under `_etcd-client-ssl._tcp` give `https://` endpoints,
    /// verified against the configured trust (and refused without it).
    fn tls_endpoints_discovered_by_srv(client, env) {
        let pki = TestPki::new("srv");
        let server = pki.start_server(&pki.server(&["127.0.0.1"], false), false, &[]);
        let port: u16 = server.tls_url().rsplit(':').next().unwrap().parse().unwrap();
        let dns = DnsServer::start(vec![(
            "_etcd-client-ssl._tcp.example.test",
            vec![Srv::new(0, 0, port, "127.0.0.1.")],
        )]);
        let mut config = discover_config(env.transport, "example.test", dns.addr()).unwrap();
        assert_eq!(config.endpoints, [server.tls_url()]);
        let untrusted = env.transport.connect_config(config.clone());
        assert!(tls_error(&untrusted).contains("unknown issuer"));
        config.tls = TlsOptions::default().ca_pem(pki.ca_pem.clone()).system_roots(false);
        let trusted = env.transport.connect_config(config);
        trusted.v3().put("tls/srv", "found").unwrap();
        let _ = client;
    }

    /// v3 token auth and v2 basic auth over TLS with client certificates
    /// required: credentials are checked as over plain HTTP. (A certificate
    /// with a common name is refused by etcd's gateway once auth is on, with
    /// a message that says what to do.)
    fn tls_with_v3_and_v2_auth(client, env) {
        let pki = TestPki::new("auth");
        let server = pki.start_server(&pki.server(&["127.0.0.1"], false), true, &["--auth-token=simple"]);
        // No common name: etcd's gateway refuses one while auth is on.
        let identity = pki.client_without_name();
        let tls = TlsOptions::default()
            .ca_pem(pki.ca_pem.clone())
            .system_roots(false)
            .identity_pem(identity.cert_pem.clone(), identity.key_pem.clone());
        let as_user = |v3: Option<(&str, &str)>, v2: Option<(&str, &str)>| {
            env.transport.connect_config(Config {
                endpoints: vec![server.tls_url()],
                request_timeout: Some(Duration::from_secs(5)),
                tls: tls.clone(),
                v3_credentials: v3.map(|(u, p)| (u.to_owned(), p.to_owned())),
                basic_auth: v2.map(|(u, p)| (u.to_owned(), p.to_owned())),
                ..Config::default()
            })
        };
        let admin = as_user(None, None);
        for step in auth_setup() {
            admin.execute(step).expect("v3 auth setup over TLS");
        }
        let app = as_user(Some(("app", "apppw")), None);
        app.v3().put("app/x", "1").unwrap();
        let named = pki.client("app");
        let with_cn = env.transport.connect_config(Config {
            endpoints: vec![server.tls_url()],
            v3_credentials: Some(("app".to_owned(), "apppw".to_owned())),
            tls: TlsOptions::default()
                .ca_pem(pki.ca_pem.clone())
                .system_roots(false)
                .identity_pem(named.cert_pem.clone(), named.key_pem.clone()),
            ..Config::default()
        });
        let refused = with_cn.v3().put("app/x", "2").unwrap_err();
        assert!(refused.to_string().contains("without one"), "{refused}");
        let denied = app.v3().put("other/x", "1").unwrap_err();
        assert_eq!(denied.as_v3().unwrap().kind, V3ErrorKind::PermissionDenied, "{denied}");
        let wrong = as_user(Some(("app", "nope")), None).v3().put("app/x", "2").unwrap_err();
        assert_eq!(wrong.as_v3().unwrap().kind, V3ErrorKind::AuthFailed, "{wrong}");

        // v2 auth, separate from v3, over the same TLS listener.
        admin.execute(AuthChange::user_add("root", "v2rootpw")).unwrap();
        admin.execute(AuthChange::enable()).unwrap();
        let root2 = as_user(None, Some(("root", "v2rootpw")));
        root2.execute(AuthChange::role_revoke("guest", "/*", Permission::ReadWrite)).unwrap();
        assert!(root2.execute(AuthRead::enabled()).unwrap());
        root2.set("/tls/v2", "1").unwrap();
        // Refused: etcd 3.4 and 3.5 answer an anonymous v2 request over
        // mTLS with v2 auth on by dropping the connection (observed), which
        // the client reports as a broken exchange, not as a success.
        let anonymous = as_user(None, None).set("/tls/v2", "2").unwrap_err();
        let unauthorized = anonymous.as_v2().map(|e| e.code) == Some(V2ErrorCode::Unauthorized);
        let dropped = matches!(&anonymous, Error::Transport(t) if t.kind() == TransportErrorKind::Io);
        assert!(unauthorized || dropped, "{anonymous}");
        assert_eq!(root2.get("/tls/v2").unwrap().node.value.as_deref(), Some("1"), "not written");
        let _ = client;
    }

    /// A 3-member cluster secured as Kubernetes secures its etcd: members
    /// talk to each other over TLS, each checking the other's certificate,
    /// and clients need a certificate too. KV, a watch stream and a lock
    /// over TLS; then member 0, the one the client, the watch and the
    /// lock's keep-alive use, is killed: calls fail over to the other TLS
    /// members, the watch resumes there and sees every write once, in
    /// order, and the lock stays held and is released.
    #[tls_cluster(3)]
    fn tls_cluster_fails_over_across_tls_members(client, env) {
        let urls = env.urls();
        assert!(urls.iter().all(|u| u.starts_with("https://")), "{urls:?}");
        let members = client.v3().member_list().unwrap().members;
        assert_eq!(members.len(), 3);
        for member in &members {
            assert!(member.peer_urls.iter().all(|u| u.starts_with("https://")), "{member:?}");
        }
        let start = client.v3().put("tlsc/start", "").unwrap().header.revision;
        let guard = client.v3_lock("tlsc-lock", MutexOptions::new()).unwrap();
        let watch = Watch::new(KeyRange::prefix("tlsc/k/")).start_revision(start + 1);
        let (written, seen) = std::thread::scope(|s| {
            let watching = s.spawn(|| {
                let watcher = env.client_for(&urls);
                let mut seen = Vec::new();
                watcher.stream_until(watch, Duration::from_secs(60), |_, item| {
                    if let Ok(WatchItem::Events(batch)) = item {
                        for event in batch.events {
                            let key = String::from_utf8_lossy(&event.kv.key).into_owned();
                            seen.push((event.kv.mod_revision, key));
                        }
                    }
                    !seen.iter().any(|(_, key)| key == "tlsc/k/done")
                });
                seen
            });
            let (mut written, mut failed) = (Vec::new(), Vec::new());
            for i in 0..20 {
                if i == 10 {
                    env.kill_member(0);
                }
                let key = format!("tlsc/k/{i:02}");
                match client.v3().put(key.as_str(), "v") {
                    Ok(put) => written.push((put.header.revision, key)),
                    Err(e) => failed.push(e),
                }
            }
            // The kill may cut a call on its connection, and a write sent to
            // a follower while the dead leader is replaced may go unanswered
            // for longer than an attempt: at-most-once, these fail and say
            // the write may have happened. No more than that fails.
            assert!(failed.len() <= 3, "{failed:?}");
            assert!(failed.iter().all(Error::may_have_been_applied), "{failed:?}");
            client.v3().put("tlsc/k/done", "").unwrap();
            (written, watching.join().unwrap())
        });
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "an event was seen twice or out of order: {seen:?}");
        for entry in &written {
            assert!(seen.contains(entry), "the watch missed {entry:?}: {seen:?}");
        }
        assert_eq!(client.v3().get("tlsc/k/19").unwrap().unwrap().value, b"v");
        assert!(guard.is_held().unwrap(), "the lock was lost when its member died");
        assert!(guard.release().unwrap());
    }
}
