//! The one loop that runs a [`Flow`] over a transport, written once for every
//! client: blocking ([`drive_blocking`]) and async ([`drive`]).
//!
//! A transport implements [`Transport`] or [`AsyncTransport`]: one HTTP
//! exchange, a way to wait, the clock and access to its shared [`Cluster`].
//! These functions do the rest. They read the clock only through the
//! transport and spawn nothing, so this module stays free of any runtime.

use std::future::Future;
use std::time::Instant;

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind};
use crate::flow::{Flow, Step, Transmit};

/// Why an exchange produced no complete response.
#[derive(Debug)]
pub struct ExchangeFailure {
    /// What kind of failure it was.
    pub kind: TransportErrorKind,
    /// The transport's own error.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl ExchangeFailure {
    /// A failure of `kind` caused by `source`.
    pub fn new(
        kind: TransportErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ExchangeFailure {
            kind,
            source: source.into(),
        }
    }
}

/// The outcome of one exchange.
pub type Exchange = Result<http::Response<Bytes>, ExchangeFailure>;

/// What a blocking transport provides.
pub trait Transport {
    /// Sends the request and reads the complete response, within `transmit.timeout`.
    fn send(&self, transmit: Transmit) -> Exchange;
    /// Blocks until `deadline`.
    fn sleep_until(&self, deadline: Instant);
    /// The current time.
    fn now(&self) -> Instant;
    /// Runs `f` with exclusive access to the client's cluster state.
    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R;
}

/// What an async transport provides.
pub trait AsyncTransport: Sync {
    /// Sends the request and reads the complete response, within `transmit.timeout`.
    fn send(&self, transmit: Transmit) -> impl Future<Output = Exchange> + Send;
    /// Completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;
    /// The current time.
    fn now(&self) -> Instant;
    /// Runs `f` with exclusive access to the client's cluster state. Never
    /// held across an `.await`.
    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R;
}

/// Runs `flow` to completion on a blocking transport.
pub fn drive_blocking<T: Transport, F: Flow>(
    transport: &T,
    mut flow: F,
) -> Result<F::Output, Error> {
    loop {
        let step = transport.with_cluster(|c| flow.poll(c, transport.now()));
        match step {
            Step::Transmit(transmit) => {
                let outcome = transport.send(transmit);
                transport.with_cluster(|c| report(&mut flow, c, transport.now(), outcome));
            }
            Step::Sleep(deadline) => transport.sleep_until(deadline),
            Step::Done(result) => return result,
        }
    }
}

/// Runs `flow` to completion on an async transport. The future is `Send`
/// when the flow is.
pub async fn drive<T: AsyncTransport, F: Flow + Send>(
    transport: &T,
    mut flow: F,
) -> Result<F::Output, Error> {
    loop {
        let step = transport.with_cluster(|c| flow.poll(c, transport.now()));
        match step {
            Step::Transmit(transmit) => {
                let outcome = transport.send(transmit).await;
                transport.with_cluster(|c| report(&mut flow, c, transport.now(), outcome));
            }
            Step::Sleep(deadline) => transport.sleep_until(deadline).await,
            Step::Done(result) => return result,
        }
    }
}

fn report<F: Flow>(flow: &mut F, cluster: &mut Cluster, now: Instant, outcome: Exchange) {
    match outcome {
        Ok(response) => flow.handle_response(cluster, now, response),
        Err(failure) => flow.handle_failure(cluster, now, failure.kind, failure.source),
    }
}
