//! DNS SRV discovery on every transport, against a local test DNS server
//! (`etcd_tests::dns`) and real etcd: the endpoints found, the `-ssl` name
//! winning, failover across discovered members, and loud failures — never a
//! fallback to `127.0.0.1:2379`.

use std::io::ErrorKind as IoErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use etcd_proto::srv::{DiscoveryFailure, NameAnswer, Rcode};
use etcd_proto::v2::ReadOptions;
use etcd_proto::{Error, ErrorKind};
use etcd_tests::discovery::discover_config;
use etcd_tests::dns::{DnsServer, Srv};

const DOMAIN: &str = "example.test";
const SSL: &str = "_etcd-client-ssl._tcp.example.test";
const PLAIN: &str = "_etcd-client._tcp.example.test";

/// The port of `http://127.0.0.1:PORT`.
fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// The discovery error inside `error`, checking its kind.
fn discovery_error(error: &Error) -> &etcd_proto::srv::DiscoveryError {
    assert_eq!(error.kind(), ErrorKind::Discovery, "{error:?}");
    match error {
        Error::Discovery(e) => e,
        other => panic!("{other:?}"),
    }
}

etcd_tests::scenarios! {
    /// `_etcd-client._tcp` alone points at the server: the discovered client
    /// sets and gets a key there, after asking for the `-ssl` name first.
    fn discovered_plain_endpoint_works(client, env) {
        let url = env.server().client_url();
        let dns = DnsServer::start(vec![(PLAIN, vec![Srv::new(0, 0, port_of(&url), "127.0.0.1.")])]);
        let config = discover_config(env.transport, DOMAIN, dns.addr()).unwrap();
        assert_eq!(config.endpoints, [url]);
        let found = env.transport.connect_config(config);
        found.set("/srv/plain", "found").unwrap();
        assert_eq!(found.get("/srv/plain").unwrap().node.value.as_deref(), Some("found"));
        assert_eq!(dns.queries(), [SSL, PLAIN]);
    }

    /// Records under the `-ssl` name win: https URLs, by priority then
    /// weight (highest first), and the plain name is never asked.
    fn ssl_records_win(client, env) {
        let dns = DnsServer::start(vec![
            (SSL, vec![
                Srv::new(10, 10, 2380, "b.example.test."),
                Srv::new(0, 0, 2379, "a.example.test."),
                Srv::new(10, 90, 2381, "c.example.test"),
            ]),
            (PLAIN, vec![Srv::new(0, 0, 2379, "127.0.0.1.")]),
        ]);
        let config = discover_config(env.transport, DOMAIN, dns.addr()).unwrap();
        assert_eq!(
            config.endpoints,
            [
                "https://a.example.test:2379",
                "https://c.example.test:2381",
                "https://b.example.test:2380",
            ]
        );
        assert_eq!(dns.queries(), [SSL]);
    }

    /// Three members advertised by three SRV records: the discovered client
    /// works, and keeps working when the member it uses first is killed.
    #[cluster(3)]
    fn discovered_cluster_fails_over(client, env) {
        let urls = env.urls();
        let records = urls
            .iter()
            .enumerate()
            .map(|(i, url)| Srv::new(i as u16, 0, port_of(url), "127.0.0.1"))
            .collect();
        let dns = DnsServer::start(vec![(PLAIN, records)]);
        let config = discover_config(env.transport, DOMAIN, dns.addr()).unwrap();
        assert_eq!(config.endpoints, urls);
        let found = env.transport.connect_config(config);
        found.set("/srv/cluster", "before").unwrap();
        env.kill_member(0);
        let read = found.read("/srv/cluster", ReadOptions::new().quorum(true)).unwrap();
        assert_eq!(read.node.value.as_deref(), Some("before"));
        found.set("/srv/cluster", "after").unwrap();
    }

    /// No records under either name: a typed error naming both names and
    /// the server's answers, and nothing ever connects to 127.0.0.1:2379.
    fn no_records_is_an_error_not_localhost(client, env) {
        let default_port = TcpListener::bind("127.0.0.1:2379").ok();
        if let Some(listener) = &default_port {
            listener.set_nonblocking(true).unwrap();
        }

        let nxdomain = DnsServer::start(vec![]);
        let error = discover_config(env.transport, DOMAIN, nxdomain.addr()).unwrap_err();
        let discovery = discovery_error(&error);
        assert_eq!(discovery.server(), Some(nxdomain.addr()));
        let DiscoveryFailure::NotFound { tried } = discovery.reason() else { panic!("{error:?}") };
        let names: Vec<_> = tried.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, [SSL, PLAIN]);
        assert!(tried.iter().all(|t| t.answer == NameAnswer::Answered(Rcode::NXDOMAIN)));
        let message = error.to_string();
        for part in [SSL, PLAIN, "NXDOMAIN", &nxdomain.addr().to_string()] {
            assert!(message.contains(part), "{part:?} missing from {message}");
        }

        let empty = DnsServer::start(vec![(SSL, vec![]), (PLAIN, vec![])]);
        let error = discover_config(env.transport, DOMAIN, empty.addr()).unwrap_err();
        assert!(error.to_string().contains("NOERROR, no SRV records"), "{error}");
        assert_eq!(empty.queries(), [SSL, PLAIN]);

        if let Some(listener) = default_port {
            match listener.accept() {
                Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
                other => panic!("something connected to 127.0.0.1:2379: {other:?}"),
            }
        }
    }

    /// A DNS server that never answers: each name is asked twice, then a
    /// prompt error naming the server.
    fn silent_dns_server_times_out(client, env) {
        let dns = DnsServer::unresponsive();
        let started = Instant::now();
        let error = discover_config(env.transport, DOMAIN, dns.addr()).unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        assert!(elapsed >= Duration::from_millis(3900), "gave up after {elapsed:?}");
        assert_eq!(discovery_error(&error).server(), Some(dns.addr()));
        let message = error.to_string();
        assert!(message.contains(&dns.addr().to_string()), "{message}");
        assert!(message.contains("no answer after 2 attempts"), "{message}");
        assert_eq!(dns.queries(), [SSL, SSL, PLAIN, PLAIN]);
    }

    /// Nothing listening on the DNS port: the ICMP "port unreachable" fails
    /// discovery at once, naming the server.
    fn closed_dns_port_fails_fast(client, env) {
        let addr = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let started = Instant::now();
        let error = discover_config(env.transport, DOMAIN, addr).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        let discovery = discovery_error(&error);
        assert!(
            matches!(discovery.reason(), DiscoveryFailure::Io { kind: IoErrorKind::ConnectionRefused, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }
}
