//! Native gRPC's HTTP/2: one multiplexed connection per origin, shared by
//! every gRPC call of the client (clones included), driven by a spawned
//! task. The first call to an origin connects (TCP, then TLS with ALPN
//! `h2`, or prior knowledge on plaintext) while later calls wait for it,
//! so concurrent calls never open a second connection (hyper-util's pool
//! can race a second one under load); a connection that closed is
//! replaced at the next call.

use std::collections::HashMap;

use bytes::Bytes;
use etcd_proto::drive::ExchangeFailure;
use etcd_proto::TransportErrorKind;
use http_body_util::Full;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::{classify, connect_failure, failure, Connector};

/// The HTTP/2 connections, one per origin (`scheme://authority`).
#[derive(Debug)]
pub(crate) struct Connections {
    connector: Connector,
    senders: tokio::sync::Mutex<HashMap<String, SendRequest<Full<Bytes>>>>,
}

impl Connections {
    /// Connections made through `connector` (ALPN `h2` on TLS).
    pub(crate) fn new(connector: Connector) -> Self {
        Connections {
            connector,
            senders: tokio::sync::Mutex::default(),
        }
    }

    /// The response head to `request` on its origin's connection, the body
    /// still to read.
    pub(crate) async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<hyper::body::Incoming>, ExchangeFailure> {
        let mut sender = self.sender(request.uri()).await?;
        sender
            .send_request(request.map(Full::new))
            .await
            .map_err(|e| failure(classify(&e), &e))
    }

    /// A ready sender on `uri`'s origin, connecting if there is none (or it closed).
    async fn sender(&self, uri: &http::Uri) -> Result<SendRequest<Full<Bytes>>, ExchangeFailure> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str())
        );
        let mut senders = self.senders.lock().await;
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
        let mut connector = self.connector.clone();
        let io = tower_service::Service::call(&mut connector, uri.clone())
            .await
            .map_err(connect_failure)?;
        let (mut sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| failure(TransportErrorKind::Connect, &e))?;
        tokio::spawn(async move {
            // Its errors reach the calls on it through hyper.
            let _ = connection.await;
        });
        senders.insert(key, sender.clone());
        drop(senders);
        sender
            .ready()
            .await
            .map_err(|e| failure(TransportErrorKind::Connect, &e))?;
        Ok(sender)
    }
}
