//! DNS SRV discovery's I/O: a connected `std::net::UdpSocket`. The loop and
//! every decision are `etcd-proto`'s (`drive::discover_blocking`, `srv`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use etcd_proto::drive::Datagram;
use etcd_proto::srv;

use crate::Client;

/// A UDP socket connected to the DNS server.
pub(crate) struct Udp(UdpSocket);

impl etcd_proto::drive::Entropy for Udp {
    fn random(&self) -> u64 {
        // std's per-process random hash keys, advanced on every call.
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
    }
}

impl Datagram for Udp {
    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.0.send(bytes).map(drop)
    }

    fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        // A zero read timeout means "block forever" to the OS.
        self.0
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.0.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl Client {
    /// A UDP socket connected to `server`: the kernel drops datagrams from anyone else.
    fn udp_socket(server: SocketAddr) -> io::Result<Udp> {
        let socket = UdpSocket::bind(srv::local_bind_address(server))?;
        socket.connect(server)?;
        Ok(Udp(socket))
    }
}

etcd_proto::discovery_methods!(Client);
