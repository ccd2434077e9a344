//! Native gRPC's HTTP/2: one multiplexed connection per origin, shared by
//! every gRPC call and stream of the client (clones included), driven by a
//! spawned task. The first call to an origin connects (TCP, then TLS with
//! ALPN `h2`, or prior knowledge on plaintext) while later calls wait for
//! it, so concurrent calls never open a second connection (hyper-util's
//! pool can race a second one under load); a connection that closed (its
//! peer went away, or a ping went unanswered) is replaced at the next call.
//!
//! A unary call's request body is its one message; a stream's (a watch, a
//! keep-alive) stays open, fed through a channel by
//! [`send_message`](etcd_proto::drive::AsyncResponseBody::send_message).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use etcd_proto::drive::ExchangeFailure;
use etcd_proto::TransportErrorKind;
use http_body_util::{Either, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::{classify, connect_failure, failure, Connector};

/// The messages still to send on an open stream.
pub(crate) type Outgoing = futures_channel::mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

/// A gRPC request body: one message, or a stream of them.
type Body = Either<
    Full<Bytes>,
    StreamBody<futures_channel::mpsc::UnboundedReceiver<Result<Frame<Bytes>, Infallible>>>,
>;

/// The HTTP/2 connections, one per origin (`scheme://authority`).
#[derive(Debug)]
pub(crate) struct Connections {
    connector: Connector,
    /// Pings: `(interval, timeout)`.
    keep_alive: Option<(Duration, Duration)>,
    senders: tokio::sync::Mutex<HashMap<String, SendRequest<Body>>>,
}

impl Connections {
    /// Connections made through `connector` (ALPN `h2` on TLS), pinging as
    /// `keep_alive` says.
    pub(crate) fn new(connector: Connector, keep_alive: Option<(Duration, Duration)>) -> Self {
        Connections {
            connector,
            keep_alive,
            senders: tokio::sync::Mutex::default(),
        }
    }

    /// The response head to the unary `request` on its origin's
    /// connection, the body still to read.
    pub(crate) async fn send(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<hyper::body::Incoming>, ExchangeFailure> {
        self.request(request.map(|b| Either::Left(Full::new(b))))
            .await
    }

    /// Opens a stream: `request`'s body is its first message, and the
    /// returned sender feeds the rest; dropping the sender half-closes it.
    pub(crate) async fn open(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<(http::Response<hyper::body::Incoming>, Outgoing), ExchangeFailure> {
        let (outgoing, messages) = futures_channel::mpsc::unbounded();
        let (parts, first) = request.into_parts();
        // An unbounded channel just made: this cannot fail.
        let _ = outgoing.unbounded_send(Ok(Frame::data(first)));
        let request = http::Request::from_parts(parts, Either::Right(StreamBody::new(messages)));
        Ok((self.request(request).await?, outgoing))
    }

    async fn request(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, ExchangeFailure> {
        let mut sender = self.sender(request.uri()).await?;
        sender
            .send_request(request)
            .await
            .map_err(|e| failure(classify(&e), &e))
    }

    /// Leaves `uri`'s connection to the calls on it: the next call connects anew.
    pub(crate) async fn forget(&self, uri: &http::Uri) {
        self.senders.lock().await.remove(&origin(uri));
    }

    /// A ready sender on `uri`'s origin, connecting if there is none (or it closed).
    async fn sender(&self, uri: &http::Uri) -> Result<SendRequest<Body>, ExchangeFailure> {
        let key = origin(uri);
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
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        if let Some((interval, timeout)) = self.keep_alive {
            builder
                .keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(false);
        }
        let (mut sender, connection) = builder
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

/// `uri`'s origin, the key of its connection: `scheme://authority`.
fn origin(uri: &http::Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("", |a| a.as_str())
    )
}
