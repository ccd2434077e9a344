//! Cluster information, failures of the exchange itself, and unexpected
//! servers, against real etcd on every transport.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use etcd_proto::{Error, ErrorKind, TransportErrorKind};
use etcd_tests::harness::EtcdServer;
use etcd_tests::proxy::TcpProxy;

etcd_tests::scenarios! {
    /// /version reports the server under test.
    fn version_matches_server(client, env) {
        let version = client.version().unwrap();
        assert_eq!(version.server, env.version());
        assert!(version.cluster.starts_with(&env.version()[..4]));
    }

    /// One member: it lists itself, leads, and reports its stats.
    fn single_member_info(client, env) {
        let url = env.server().client_url();
        let members = client.members().unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].client_urls, std::slice::from_ref(&url));
        assert_eq!(client.machines().unwrap(), [url]);
        assert_eq!(client.leader().unwrap(), members[0]);
        let stats = client.stats_self().unwrap();
        assert_eq!(stats.state, "StateLeader");
        assert_eq!(stats.id, members[0].id);
        assert!(client.stats_store().unwrap().contains_key("setsSuccess"));
        assert!(client.stats_leader().unwrap().followers.is_empty());
    }

    /// Three members: members, machines and leader agree, from every member.
    #[cluster(3)]
    fn three_member_cluster_info(client, env) {
        let cluster = env.cluster();
        let members = client.members().unwrap();
        let mut names: Vec<_> = members.iter().map(|m| m.name.clone()).collect();
        names.sort();
        assert_eq!(names, ["m0", "m1", "m2"]);
        let mut machines = client.machines().unwrap();
        machines.sort();
        let mut urls = cluster.client_urls();
        urls.sort();
        assert_eq!(machines, urls);
        for i in 0..3 {
            let via_member = env.client_for(&[cluster.member_client_url(i)]);
            let leader = via_member.leader().unwrap();
            assert!(members.contains(&leader), "leader {leader:?} not among members");
            assert_eq!(via_member.stats_self().unwrap().leader_id, leader.id);
        }
        let leader = client.leader().unwrap();
        let on_leader = env.client_for(&leader.client_urls);
        let stats = on_leader.stats_leader().unwrap();
        assert_eq!(stats.leader, leader.id);
        assert_eq!(stats.followers.len(), 2);
        // A follower refuses leader stats: an error, not a crash.
        let follower = members.iter().find(|m| m.id != leader.id).unwrap();
        let err = env.client_for(&follower.client_urls).stats_leader().unwrap_err();
        assert_ne!(err.kind(), ErrorKind::Transport);
    }

    /// A dead endpoint fails promptly with a transport error naming it.
    fn dead_endpoint_named(client, env) {
        let url = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let dead = env.client_for(std::slice::from_ref(&url));
        let started = Instant::now();
        let err = dead.get("/k").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        match &err {
            Error::Transport(t) => {
                assert_eq!(t.endpoint(), url);
                assert_eq!(t.kind(), TransportErrorKind::Connect);
                assert!(t.request_not_sent());
            }
            other => panic!("expected a transport error, got {other:?}"),
        }
        assert!(err.to_string().contains(&url), "{err}");
    }

    /// A server that accepts but never answers: the per-request timeout fires
    /// and names the endpoint.
    fn silent_server_times_out(client, env) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let silent = env.transport.connect_with(std::slice::from_ref(&url), Duration::from_millis(400));
        let started = Instant::now();
        let err = silent.get("/k").unwrap_err();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(350) && took < Duration::from_secs(5), "{took:?}");
        match &err {
            Error::Transport(t) => {
                assert_eq!(t.kind(), TransportErrorKind::Timeout);
                assert_eq!(t.endpoint(), url);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        drop(listener);
    }

    /// A member killed mid-session: the next request is a transport error naming it.
    fn killed_server_named(client, env) {
        let mut server = EtcdServer::start();
        let url = server.client_url();
        let own = env.client_for(std::slice::from_ref(&url));
        own.set("/k", "v").unwrap();
        server.kill();
        let err = own.get("/k").unwrap_err();
        match err {
            Error::Transport(t) => assert_eq!(t.endpoint(), url),
            other => panic!("expected a transport error, got {other:?}"),
        }
    }

    /// A server without the v2 API answers 404 pages: a malformed-response error
    /// that says what is probably wrong, not "key not found".
    fn v2_disabled_is_reported(client, env) {
        let server = EtcdServer::start_with(&["--enable-v2=false"]);
        let no_v2 = env.client_for(&[server.client_url()]);
        let err = no_v2.get("/k").unwrap_err();
        match &err {
            Error::Malformed(m) => {
                assert_eq!(m.status, 404);
                assert!(m.reason.contains("--enable-v2"), "{m}");
            }
            other => panic!("expected a malformed-response error, got {other:?}"),
        }
        assert!(!err.is_key_not_found());
        // /version still answers.
        assert_eq!(no_v2.version().unwrap().server, env.version());
    }

    /// Sequential requests reuse one keep-alive connection.
    fn keep_alive_reuses_connection(client, env) {
        let proxy = TcpProxy::start(&env.server().client_url());
        let through = env.client_for(&[proxy.url()]);
        for i in 0..50 {
            through.set("/ka/k", i.to_string()).unwrap();
            through.get("/ka/k").unwrap();
        }
        // Errors must not cost the connection either.
        for _ in 0..10 {
            assert!(through.get("/ka/missing").unwrap_err().is_key_not_found());
        }
        // hyper-util's pool sometimes races a fresh connect against a connection
        // on its way back to idle (seen: 1 to 3 connections), so the proof of
        // reuse is "far fewer connections than requests".
        let accepted = proxy.accepted();
        assert!((1..=10).contains(&accepted), "110 sequential requests used {accepted} connections");
    }
}
