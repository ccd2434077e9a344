//! Native gRPC's HTTP/2: one multiplexed connection per origin, shared by
//! every gRPC call of the client (clones included), each connection driven
//! by a task of its own on async-std's executor (no tokio runtime: hyper's
//! HTTP/2 uses tokio's I/O traits and channels only).
//!
//! The first call to an origin connects (TCP, then TLS with ALPN `h2`, or
//! HTTP/2 with prior knowledge on plaintext) while later calls wait for it:
//! concurrent calls never open a second connection. A connection that
//! closed (the member went away, a GOAWAY, a ping unanswered) is replaced
//! at the next call.
//!
//! A unary call's request body is its one message; a stream's (a watch, a
//! keep-alive) stays open, fed through a channel by
//! [`send_message`](etcd_proto::drive::AsyncResponseBody::send_message).
//! Pings wait on async-io's timers (the reactor under async-std and smol).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::drive::{Exchange, ExchangeFailure};
use etcd_proto::TransportErrorKind;
use http_body_util::{BodyExt, Either, Full, Limited, StreamBody};
use hyper::body::Frame;
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

/// hyper's timer for HTTP/2 pings, on async-io.
#[derive(Debug, Clone, Copy)]
struct Timer;

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Delay(async_io::Timer::after(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Delay(async_io::Timer::at(deadline)))
    }
}

/// One of hyper's sleeps.
struct Delay(async_io::Timer);

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl hyper::rt::Sleep for Delay {}

/// The messages still to send on an open stream.
pub(crate) type Outgoing = futures_channel::mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

/// A gRPC request body: one message, or a stream of them.
type Body = Either<
    Full<Bytes>,
    StreamBody<futures_channel::mpsc::UnboundedReceiver<Result<Frame<Bytes>, Infallible>>>,
>;

/// The HTTP/2 connections, one per origin.
#[derive(Debug)]
pub(crate) struct Connections {
    /// Pings: `(interval, timeout)`.
    keep_alive: Option<(Duration, Duration)>,
    senders: async_std::sync::Mutex<HashMap<String, SendRequest<Body>>>,
}

impl Connections {
    /// No connection yet; pings as `keep_alive` says.
    pub(crate) fn new(keep_alive: Option<(Duration, Duration)>) -> Self {
        Connections {
            keep_alive,
            senders: async_std::sync::Mutex::default(),
        }
    }

    /// One gRPC exchange on `origin`'s connection: the whole answer (at most
    /// `max_bytes` of body), its trailers merged into its headers.
    pub(crate) async fn exchange(
        &self,
        pool: &Pool,
        origin: &Origin,
        request: http::Request<Bytes>,
        max_bytes: usize,
    ) -> Exchange {
        let request = request.map(|b| Either::Left(Full::new(b)));
        let response = self.request(pool, origin, request).await?;
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

    /// Opens a stream on `origin`'s connection: `request`'s body is its
    /// first message, and the returned sender feeds the rest; dropping the
    /// sender half-closes it.
    pub(crate) async fn open(
        &self,
        pool: &Pool,
        origin: &Origin,
        request: http::Request<Bytes>,
    ) -> Result<(http::Response<hyper::body::Incoming>, Outgoing), ExchangeFailure> {
        let (outgoing, messages) = futures_channel::mpsc::unbounded();
        let (parts, first) = request.into_parts();
        // An unbounded channel just made: this cannot fail.
        let _ = outgoing.unbounded_send(Ok(Frame::data(first)));
        let request = http::Request::from_parts(parts, Either::Right(StreamBody::new(messages)));
        Ok((self.request(pool, origin, request).await?, outgoing))
    }

    /// The response head to `request` on `origin`'s connection.
    async fn request(
        &self,
        pool: &Pool,
        origin: &Origin,
        request: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, ExchangeFailure> {
        let mut sender = self.sender(pool, origin).await?;
        sender.send_request(request).await.map_err(|e| {
            // A stream reset or a connection lost under it: the call may
            // have reached etcd.
            ExchangeFailure::new(
                TransportErrorKind::Io,
                Failure::caused(
                    format!("the HTTP/2 exchange with {} failed", origin.address),
                    e,
                ),
            )
        })
    }

    /// Leaves `origin`'s connection to the calls on it: the next call
    /// connects anew.
    pub(crate) async fn forget(&self, origin: &Origin) {
        self.senders.lock().await.remove(&origin.key());
    }

    /// A ready sender on `origin`'s connection, connecting if there is none
    /// (or it closed).
    async fn sender(
        &self,
        pool: &Pool,
        origin: &Origin,
    ) -> Result<SendRequest<Body>, ExchangeFailure> {
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
        let mut builder = http2::Builder::new(Spawn);
        if let Some((interval, timeout)) = self.keep_alive {
            builder
                .timer(Timer)
                .keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(false);
        }
        let (mut sender, connection) =
            builder
                .handshake(FuturesIo::new(stream))
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
