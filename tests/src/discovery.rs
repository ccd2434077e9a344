//! DNS SRV discovery through each transport's own `Client::discover`, for
//! the discovery scenarios (`tests/tests/v2_discovery.rs`).

use std::net::SocketAddr;

use etcd_proto::{Config, Error};

use crate::conformance::{TestClient, Transport};

/// Runs `transport`'s `Client::discover(domain, Some(dns_server))` (on a
/// runtime of its own for the async clients) and returns the settings of
/// the builder it produced: the discovered endpoints, default otherwise.
pub fn discover_config(
    transport: Transport,
    domain: &str,
    dns_server: SocketAddr,
) -> Result<Config, Error> {
    let server = Some(dns_server);
    match transport.runtime() {
        Transport::Blocking => {
            etcd_blocking::Client::discover(domain, server).map(|b| b.config().clone())
        }
        Transport::Tokio => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime
                .block_on(etcd_tokio::Client::discover(domain, server))
                .map(|b| b.config().clone())
        }
        Transport::AsyncStd => {
            async_std::task::block_on(etcd_async_std::Client::discover(domain, server))
                .map(|b| b.config().clone())
        }
        Transport::TokioGrpc | Transport::AsyncStdGrpc => unreachable!("a runtime"),
    }
}

/// A [`TestClient`] of `transport` built from what discovery found.
pub fn discover(
    transport: Transport,
    domain: &str,
    dns_server: SocketAddr,
) -> Result<TestClient, Error> {
    discover_config(transport, domain, dns_server).map(|config| transport.connect_config(config))
}
