//! Which DNS server to ask: the system's (`/etc/resolv.conf`) or the
//! caller's, and the local address to bind for it. The only file read of
//! the core happens here, at the transport's request.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use super::{DiscoveryError, DiscoveryFailure, DNS_PORT, RESOLV_CONF};

// ---------------------------------------------------------------------------
// the resolver to ask

/// The first usable `nameserver` of `/etc/resolv.conf`-format text, on port
/// 53. Comments (`#`, `;`) and other options are skipped; an IPv6 address may
/// carry a numeric zone (`fe80::1%2`), while a named one (`%eth0`) cannot be
/// resolved without I/O and that entry is skipped.
///
/// ```
/// use etcd_proto::srv::nameserver_from_resolv_conf;
/// let conf = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n";
/// assert_eq!(nameserver_from_resolv_conf(conf), Some("10.0.0.2:53".parse().unwrap()));
/// assert_eq!(nameserver_from_resolv_conf("search example.com\n"), None);
/// ```
pub fn nameserver_from_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|line| {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        parse_nameserver(words.next()?)
    })
}

fn parse_nameserver(word: &str) -> Option<SocketAddr> {
    let (address, zone) = match word.split_once('%') {
        Some((address, zone)) => (address, Some(zone)),
        None => (word, None),
    };
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) if zone.is_none() => Some(SocketAddr::from((v4, DNS_PORT))),
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) => {
            let scope = match zone {
                Some(zone) => zone.parse().ok()?,
                None => 0,
            };
            Some(SocketAddr::V6(SocketAddrV6::new(v6, DNS_PORT, 0, scope)))
        }
    }
}

/// The DNS server to ask for `domain`: `given` if set, else the first
/// nameserver of the resolver configuration, which `read_resolv_conf` reads
/// (only called when needed; transports pass a read of [`RESOLV_CONF`]).
pub fn dns_server(
    domain: &str,
    given: Option<SocketAddr>,
    read_resolv_conf: impl FnOnce() -> std::io::Result<String>,
) -> Result<SocketAddr, DiscoveryError> {
    if let Some(server) = given {
        return Ok(server);
    }
    let no_server = |reason: String| {
        DiscoveryError::new(
            domain.strip_suffix('.').unwrap_or(domain),
            DiscoveryFailure::NoServer { reason },
        )
    };
    match read_resolv_conf() {
        Ok(text) => nameserver_from_resolv_conf(&text)
            .ok_or_else(|| no_server(format!("no usable nameserver line in {RESOLV_CONF}"))),
        Err(e) => Err(no_server(format!("cannot read {RESOLV_CONF}: {e}"))),
    }
}

/// The local address to bind a UDP socket to for talking to `server`: any
/// address of the same family, any port.
pub fn local_bind_address(server: SocketAddr) -> SocketAddr {
    match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}
