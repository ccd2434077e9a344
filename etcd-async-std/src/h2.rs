//! Native gRPC's HTTP/2: one multiplexed connection per origin, shared by
//! every gRPC call of the client (clones included), each connection driven
//! by a task of its own on async-std's executor (no tokio runtime: hyper's
//! HTTP/2 uses tokio's I/O traits and channels only).
//!
//! The first call to an origin connects (TCP, then TLS with ALPN `h2`, or
//! HTTP/2 with prior knowledge on plaintext) while later calls wait for it:
//! concurrent calls never open a second connection. A connection that
//! closed (the member went away, a GOAWAY) is replaced at the next call.

use std::collections::HashMap;
use std::future::Future;

use bytes::Bytes;
use etcd_proto::drive::{Exchange, ExchangeFailure};
use etcd_proto::TransportErrorKind;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2::{self, SendRequest};

use crate::failure::Failure;
use crate::pool::{Alpn, Pool};
use crate::rt::FuturesIo;
use crate::stream::Origin;

/// Spawns hyper's HTTP/2 tasks on async-std.
#[derive(Debug, Clone, Copy)]
struct Spawn;

impl<F> hyper::rt::Executor<F> for Spawn
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        async_std::task::spawn(future);
    }
}

/// The HTTP/2 connections, one per origin.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    senders: async_std::sync::Mutex<HashMap<String, SendRequest<Full<Bytes>>>>,
}

impl Connections {
    /// One gRPC exchange on `origin`'s connection: the whole answer (at most
    /// `max_bytes` of body), its trailers merged into its headers.
    pub(crate) async fn exchange(
        &self,
        pool: &Pool,
        origin: &Origin,
        request: http::Request<Bytes>,
        max_bytes: usize,
    ) -> Exchange {
        let mut sender = self.sender(pool, origin).await?;
        let response = sender
            .send_request(request.map(Full::new))
            .await
            .map_err(|e| {
                // A stream reset or a connection lost under it: the call may
                // have reached etcd.
                ExchangeFailure::new(
                    TransportErrorKind::Io,
                    Failure::caused(
                        format!("the HTTP/2 exchange with {} failed", origin.address),
                        e,
                    ),
                )
            })?;
        let (mut parts, body) = response.into_parts();
        let collected = Limited::new(body, max_bytes)
            .collect()
            .await
            .map_err(|e| crate::body_failure(e, max_bytes))?;
        if let Some(trailers) = collected.trailers() {
            parts.headers.extend(trailers.clone());
        }
        Ok(http::Response::from_parts(parts, collected.to_bytes()))
    }

    /// A ready sender on `origin`'s connection, connecting if there is none
    /// (or it closed).
    async fn sender(
        &self,
        pool: &Pool,
        origin: &Origin,
    ) -> Result<SendRequest<Full<Bytes>>, ExchangeFailure> {
        let mut senders = self.senders.lock().await;
        let key = origin.key();
        if let Some(sender) = senders.get(&key) {
            if !sender.is_closed() {
                let mut sender = sender.clone();
                drop(senders);
                if sender.ready().await.is_ok() {
                    return Ok(sender);
                }
                senders = self.senders.lock().await;
            }
        }
        let stream = pool.open(origin, Alpn::H2).await?;
        let (mut sender, connection) = http2::handshake(Spawn, FuturesIo::new(stream))
            .await
            .map_err(|e| {
                ExchangeFailure::new(
                    TransportErrorKind::Connect,
                    Failure::caused(format!("starting HTTP/2 on {} failed", origin.address), e),
                )
            })?;
        async_std::task::spawn(async move {
            // Its errors reach the calls on it through hyper.
            let _ = connection.await;
        });
        senders.insert(key, sender.clone());
        drop(senders);
        sender.ready().await.map_err(|e| {
            ExchangeFailure::new(
                TransportErrorKind::Connect,
                Failure::caused(format!("HTTP/2 on {} closed at once", origin.address), e),
            )
        })?;
        Ok(sender)
    }
}
