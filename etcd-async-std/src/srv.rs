//! DNS SRV discovery's I/O: a connected `async_std::net::UdpSocket` and async-std's
//! timer. The loop and every decision are `etcd-proto`'s (`drive::discover`,
//! `srv`). Runs under async-std or smol alike (async-io underneath).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_std::net::UdpSocket;
use etcd_proto::drive::AsyncDatagram;
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

impl AsyncDatagram for Udp {
    async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.0.send(bytes).await.map(drop)
    }

    async fn recv_timeout(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        match async_std::future::timeout(timeout, self.0.recv(buf)).await {
            Ok(received) => received.map(Some),
            Err(_elapsed) => Ok(None),
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

impl Client {
    /// A UDP socket connected to `server`: the kernel drops datagrams from anyone else.
    async fn udp_socket(server: SocketAddr) -> io::Result<Udp> {
        let socket = UdpSocket::bind(srv::local_bind_address(server)).await?;
        socket.connect(server).await?;
        Ok(Udp(socket))
    }
}

etcd_proto::discovery_methods!(Client, async);
