//! DNS SRV discovery over a blocking `std::net::UdpSocket`: the I/O for
//! [`etcd_proto::srv::SrvDiscovery`], which makes every decision.

use std::hash::{BuildHasher as _, Hasher as _};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use etcd_proto::srv::{
    self, DiscoveryError, SrvDiscovery, ATTEMPTS_PER_NAME, DEFAULT_TIMEOUT_PER_NAME, MAX_DATAGRAM,
};

use crate::{Client, ClientBuilder, Error};

impl Client {
    /// Finds the cluster advertised in DNS under `domain` and returns a
    /// builder holding its endpoints (add settings, then
    /// [`build`](etcd_proto::ClientBuilder::build)).
    ///
    /// Asks `dns_server` (`None`: the first `nameserver` of
    /// `/etc/resolv.conf`) over UDP for `_etcd-client-ssl._tcp.<domain>`,
    /// then `_etcd-client._tcp.<domain>`; each name gets 2 s, its query
    /// resent once after 1 s without an answer. The rules are those of
    /// [`etcd_proto::srv`]. Fails with [`Error::Discovery`] — naming both
    /// names, what the server answered and the server — when neither name
    /// has records; it **never** falls back to a default endpoint.
    ///
    /// Records under the `-ssl` name give `https://` endpoints, as etcd
    /// advertised them; this client does not speak TLS, so requests to them
    /// fail with a [`TransportErrorKind::Tls`](etcd_proto::TransportErrorKind::Tls)
    /// error.
    ///
    /// ```no_run
    /// let client = etcd_blocking::Client::discover("example.com", None)?
    ///     .request_timeout(Some(std::time::Duration::from_secs(3)))
    ///     .build()?;
    /// # Ok::<(), etcd_blocking::Error>(())
    /// ```
    pub fn discover(domain: &str, dns_server: Option<SocketAddr>) -> Result<ClientBuilder, Error> {
        Client::discover_with_timeout(domain, dns_server, DEFAULT_TIMEOUT_PER_NAME)
    }

    /// [`discover`](Client::discover), waiting `per_name` for each SRV name
    /// (split evenly between its two attempts) instead of 2 s.
    pub fn discover_with_timeout(
        domain: &str,
        dns_server: Option<SocketAddr>,
        per_name: Duration,
    ) -> Result<ClientBuilder, Error> {
        let server = srv::dns_server(domain, dns_server, || {
            std::fs::read_to_string(srv::RESOLV_CONF)
        })?;
        let urls = discover_urls(domain, server, per_name / ATTEMPTS_PER_NAME)
            .map_err(|e| e.with_server(server))?;
        Ok(Client::builder().endpoints(urls))
    }
}

fn discover_urls(
    domain: &str,
    server: SocketAddr,
    per_attempt: Duration,
) -> Result<Vec<String>, DiscoveryError> {
    let io_error = |e: io::Error| DiscoveryError::io(domain, server, &e);
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).map_err(io_error)?;
    // Connected: the kernel drops datagrams from anyone but the server.
    socket.connect(server).map_err(io_error)?;
    let mut discovery = SrvDiscovery::new(domain, query_id());
    let mut buffer = vec![0; MAX_DATAGRAM];
    let mut deadline = Instant::now();
    loop {
        if let Some(result) = discovery.result() {
            return result;
        }
        if let Some(query) = discovery.poll_transmit() {
            socket.send(&query).map_err(io_error)?;
            deadline = Instant::now() + per_attempt;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            discovery.handle_timeout();
            continue;
        }
        socket.set_read_timeout(Some(left)).map_err(io_error)?;
        match socket.recv(&mut buffer) {
            Ok(n) => discovery.handle_datagram(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                discovery.handle_timeout()
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
}

/// A query ID nobody off the path can guess easily: std's per-process random
/// hash keys (advanced on every call) mixed with the time.
fn query_id() -> u16 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u16
}
