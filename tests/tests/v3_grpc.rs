//! etcd v3 over native gRPC (HTTP/2) on the async clients, against a real
//! etcd: what only gRPC does. Every v3 scenario elsewhere also runs over
//! gRPC (`::tokio_grpc`, `::async_std_grpc`).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use etcd_proto::drive::{drive, AsyncTransport, FlowStream};
use etcd_proto::v3::{Compact, Compare, CompareOp, Get, Put, Txn, V3ErrorKind, Watch, WatchItem};
use etcd_proto::{Call, Error, ErrorKind};
use etcd_tests::proxy::TcpProxy;
use etcd_tests::TestClient;
use futures_util::StreamExt;

/// The value of the gauge `name` on `url`'s `/metrics` (0 if absent).
fn gauge(url: &str, name: &str) -> f64 {
    let address = url.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(address).expect("metrics");
    write!(socket, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut text = String::new();
    socket.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// 100 watches of one key each, from one client; each round drops 10 of
/// them and writes every key: each remaining watch gets exactly its key's
/// new value, and the server's watcher count falls by 10 (a dropped watch
/// is cancelled on the server, its stream reset, the connection kept).
async fn a_hundred_watches<T: AsyncTransport + Clone + Send + 'static>(
    client: T,
    metrics_url: String,
) -> Vec<f64> {
    let start = drive(&client, Call::new(Put::new("hundred/start", "")))
        .await
        .unwrap()
        .header
        .revision;
    let base = gauge(&metrics_url, "etcd_debugging_mvcc_watcher_total");
    let mut watches: Vec<Option<FlowStream<T, Watch>>> = (0..100)
        .map(|i| {
            let watch = Watch::new(format!("hundred/{i:03}")).start_revision(start + 1);
            Some(FlowStream::new(client.clone(), watch))
        })
        .collect();
    for watch in watches.iter_mut().flatten() {
        let first = watch.next().await;
        assert!(
            matches!(first, Some(Ok(WatchItem::Created { .. }))),
            "{first:?}"
        );
    }
    let mut counts = vec![gauge(&metrics_url, "etcd_debugging_mvcc_watcher_total") - base];
    for round in 0..10 {
        for dropped in &mut watches[round * 10..round * 10 + 10] {
            *dropped = None;
        }
        let value = format!("round {round}");
        for i in 0..100 {
            let key = format!("hundred/{i:03}");
            drive(&client, Call::new(Put::new(key, value.as_bytes())))
                .await
                .unwrap();
        }
        for (i, watch) in watches.iter_mut().enumerate() {
            let Some(watch) = watch else { continue };
            match watch.next().await {
                Some(Ok(WatchItem::Events(batch))) => {
                    assert_eq!(batch.events.len(), 1, "watch {i}: {batch:?}");
                    assert_eq!(batch.events[0].kv.value, value.as_bytes(), "watch {i}");
                }
                other => panic!("watch {i}, round {round}: {other:?}"),
            }
        }
        // The server forgets the dropped watches (within a moment).
        let want = (90 - round * 10) as f64;
        let until = Instant::now() + Duration::from_secs(5);
        let mut now = gauge(&metrics_url, "etcd_debugging_mvcc_watcher_total") - base;
        while now > want && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            now = gauge(&metrics_url, "etcd_debugging_mvcc_watcher_total") - base;
        }
        counts.push(now);
    }
    counts
}

etcd_tests::scenarios! {
    /// 1,000 concurrent calls on one client (and its clones) go over one
    /// TCP connection to the member: HTTP/2 multiplexes them.
    #[only(tokio_grpc async_std_grpc)]
    fn a_thousand_concurrent_calls_share_one_connection(client, env) {
        let proxy = TcpProxy::start(&env.urls()[0]);
        let client = env.client_for(&[proxy.url()]);
        let results: Vec<Result<i64, Error>> = match &client {
            TestClient::Tokio { runtime, client } => runtime.block_on(async {
                let tasks: Vec<_> = (0..1000)
                    .map(|i| {
                        let v3 = client.v3();
                        tokio::spawn(async move {
                            v3.put(format!("many/{i:04}"), "v").await.map(|r| r.header.revision)
                        })
                    })
                    .collect();
                let mut out = Vec::new();
                for task in tasks {
                    out.push(task.await.unwrap());
                }
                out
            }),
            TestClient::AsyncStd(client) => async_std::task::block_on(async {
                let tasks: Vec<_> = (0..1000)
                    .map(|i| {
                        let v3 = client.v3();
                        async_std::task::spawn(async move {
                            v3.put(format!("many/{i:04}"), "v").await.map(|r| r.header.revision)
                        })
                    })
                    .collect();
                let mut out = Vec::new();
                for task in tasks {
                    out.push(task.await);
                }
                out
            }),
            TestClient::Blocking(_) => unreachable!("gRPC is for the async clients"),
        };
        let mut revisions: Vec<i64> = results.into_iter().map(|r| r.unwrap()).collect();
        revisions.sort_unstable();
        revisions.dedup();
        assert_eq!(revisions.len(), 1000, "every put applied once");
        let v3 = client.v3();
        let listed = v3.get_prefix("many/").unwrap();
        assert_eq!(listed.count, 1000);
        // Every other unary call with a gRPC form rides the same connection.
        let cas = Txn::new()
            .when([Compare::version("many/0000", CompareOp::Equal, 1)])
            .and_then([Put::new("many/0000", "w").into()]);
        assert!(v3.txn(cas).unwrap().succeeded);
        let lease = v3.grant(30).unwrap().id;
        assert!(v3.leases().unwrap().contains(&lease));
        assert!(v3.time_to_live(lease, false).unwrap().ttl > 0);
        v3.revoke(lease).unwrap();
        assert!(!v3.member_list().unwrap().members.is_empty());
        assert!(!v3.status().unwrap().version.is_empty());
        assert_eq!(v3.delete_prefix("many/").unwrap().deleted, 1000);
        assert_eq!(proxy.accepted(), 1, "one HTTP/2 connection carried every call");
    }

    /// 100 watches share the client's one connection to the member, and
    /// each is cancelled on its own (dropped) while the others keep
    /// delivering, exactly once each.
    #[only(tokio_grpc async_std_grpc)]
    fn a_hundred_watches_on_one_connection_cancel_one_by_one(client, env) {
        let proxy = TcpProxy::start(&env.urls()[0]);
        let client = env.client_for(&[proxy.url()]);
        let metrics = env.urls()[0].clone();
        let counts = match &client {
            TestClient::Tokio { runtime, client } => {
                runtime.block_on(a_hundred_watches(client.clone(), metrics))
            }
            TestClient::AsyncStd(client) => {
                async_std::task::block_on(a_hundred_watches(client.clone(), metrics))
            }
            TestClient::Blocking(_) => unreachable!("gRPC is for the async clients"),
        };
        let want: Vec<f64> = (0..=10).map(|r| f64::from(100 - r * 10)).collect();
        assert_eq!(counts, want, "the server's watchers, round by round");
        assert_eq!(proxy.accepted(), 1, "one HTTP/2 connection carried 100 watches and 1,000 puts");
    }

    /// An answer larger than `max_response_bytes` is a clear error naming
    /// the bound, not a cut answer.
    #[only(tokio_grpc async_std_grpc)]
    fn an_answer_above_the_bound_is_a_clear_error(client, env) {
        client.v3().put("big/k", vec![b'x'; 64 * 1024]).unwrap();
        let small = env.client_with(&env.urls(), |c| c.max_response_bytes = 16 * 1024);
        let error = small.v3().get("big/k").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transport, "{error:?}");
        assert!(error.to_string().contains("max_response_bytes"), "{error}");
        // Small answers still pass on the same client.
        small.v3().put("big/small", "v").unwrap();
        assert_eq!(small.v3().get("big/small").unwrap().unwrap().value, b"v");
    }

    /// etcd's status travels in gRPC trailers: a read of a compacted
    /// revision and a request without a key are the same typed errors as
    /// over the gateway.
    #[only(tokio_grpc async_std_grpc)]
    fn statuses_map_onto_the_gateways_typed_errors(client, env) {
        let v3 = client.v3();
        let first = v3.put("st/k", "1").unwrap().header.revision;
        let second = v3.put("st/k", "2").unwrap().header.revision;
        client.execute(Compact::new(second)).unwrap();
        let error = v3.range(Get::new("st/k").revision(first)).unwrap_err();
        let e = error.as_v3().unwrap_or_else(|| panic!("{error:?}"));
        assert_eq!(e.kind, V3ErrorKind::Compacted, "{e:?}");
        assert_eq!(e.code, 11, "OutOfRange");
        let error = v3.put("", "v").unwrap_err();
        let e = error.as_v3().unwrap_or_else(|| panic!("{error:?}"));
        assert_eq!(e.kind, V3ErrorKind::EmptyKey, "{e:?}");
        assert_eq!(e.code, 3, "InvalidArgument");
    }
}

etcd_tests::scenarios! {
    /// etcd-blocking (ureq, HTTP/1.1) cannot speak gRPC: it says so at
    /// `build()`, naming what can.
    #[only(blocking)]
    fn the_blocking_client_refuses_grpc_at_build(client, env) {
        let refused = env.transport.try_connect_config(etcd_proto::Config {
            endpoints: env.urls(),
            v3_encoding: etcd_proto::v3::V3Encoding::Grpc,
            ..etcd_proto::Config::default()
        });
        match refused {
            Err(Error::Usage(e @ etcd_proto::UsageError::GrpcUnsupported { .. })) => {
                assert!(e.to_string().contains("etcd-tokio"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}

etcd_tests::scenarios! {
    /// Over TLS, gRPC negotiates `h2` by ALPN, with a client certificate
    /// (mTLS), still on one connection for concurrent calls; a certificate
    /// the client does not trust is refused as a TLS error that sent
    /// nothing, as over HTTP/1.1.
    #[only(tokio_grpc async_std_grpc)]
    fn grpc_over_mutual_tls(client, env) {
        use etcd_proto::tls::TlsOptions;
        use etcd_proto::TransportErrorKind;
        let pki = etcd_tests::tls::TestPki::new("grpc");
        let server = pki.start_server(&pki.server(&["127.0.0.1"], false), true, &[]);
        let identity = pki.client("grpc client");
        let trusted = TlsOptions::default()
            .ca_pem(pki.ca_pem.clone())
            .system_roots(false)
            .identity_pem(identity.cert_pem, identity.key_pem);
        let proxy = etcd_tests::fault::FaultProxy::start(&server.tls_url());
        let through = proxy.url().replace("http://", "https://");
        let tls = |tls: TlsOptions| {
            env.transport.connect_config(etcd_proto::Config {
                endpoints: vec![through.clone()],
                tls,
                ..etcd_proto::Config::default()
            })
        };
        let c = tls(trusted);
        for i in 0..20 {
            c.v3().put(format!("tls/{i}"), "v").unwrap();
        }
        assert_eq!(c.v3().get_prefix("tls/").unwrap().count, 20);
        assert_eq!(proxy.accepted(), 1, "one h2 connection over TLS");
        let untrusted = tls(TlsOptions::default().system_roots(true));
        match untrusted.v3().put("tls/x", "1").unwrap_err() {
            Error::Transport(t) => {
                assert_eq!(t.kind(), TransportErrorKind::Tls, "{t}");
                assert!(t.request_not_sent(), "{t}");
            }
            other => panic!("{other:?}"),
        }
    }
}

etcd_tests::scenarios! {
    /// With `--client-cert-auth` and auth on, a gRPC call without a token
    /// runs as the user its client certificate names (the CN): no password
    /// anywhere. The gateway cannot do this (it refuses such a certificate
    /// while auth is on), so it is gRPC only.
    #[only(tokio_grpc async_std_grpc)]
    fn a_client_certificates_common_name_is_its_v3_identity(client, env) {
        use etcd_proto::tls::TlsOptions;
        let pki = etcd_tests::tls::TestPki::new("cn");
        let server = pki.start_server(&pki.server(&["127.0.0.1"], false), true, &["--auth-token=simple"]);
        let as_cert = |identity: etcd_tests::tls::Issued| {
            env.transport.connect_config(etcd_proto::Config {
                endpoints: vec![server.tls_url()],
                tls: TlsOptions::default()
                    .ca_pem(pki.ca_pem.clone())
                    .system_roots(false)
                    .identity_pem(identity.cert_pem, identity.key_pem),
                ..etcd_proto::Config::default()
            })
        };
        let admin = as_cert(pki.client_without_name());
        for step in etcd_tests::auth::auth_setup() {
            admin.execute(step).expect("v3 auth setup");
        }
        let app = as_cert(pki.client("app"));
        app.v3().put("app/x", "1").unwrap();
        assert_eq!(app.v3().get("app/x").unwrap().unwrap().value, b"1");
        let denied = app.v3().put("other/x", "1").unwrap_err();
        assert_eq!(denied.as_v3().map(|e| e.kind), Some(V3ErrorKind::PermissionDenied), "{denied}");
        let root = as_cert(pki.client("root"));
        root.v3().put("other/x", "1").unwrap();
        assert_eq!(root.v3().get("app/x").unwrap().unwrap().value, b"1");
    }
}
