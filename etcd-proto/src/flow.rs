//! [`Flow`]: the one interface every transport drives.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind};

/// A sans-IO state machine that needs HTTP exchanges to reach its result.
///
/// # Driving a flow
///
/// A transport runs every flow with the same loop:
///
/// 1. call [`poll`](Flow::poll) with the current time;
/// 2. on [`Step::Transmit`], send the request (honouring its timeout), then
///    report the outcome with exactly one of [`handle_response`](Flow::handle_response)
///    (any complete HTTP response, whatever its status) or
///    [`handle_failure`](Flow::handle_failure) (no complete response), and go to 1;
/// 3. on [`Step::Sleep`], wait until that instant, and go to 1;
/// 4. on [`Step::Done`], stop: the flow is finished.
///
/// **Invariant: at most one request is in flight per flow.** A flow never
/// returns a second `Transmit` before the first one's outcome was reported.
/// Flows never read the clock: every method that needs time takes `now`.
pub trait Flow {
    /// The result of the whole flow.
    type Output;

    /// What to do next.
    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<Self::Output>;

    /// The complete response to the last [`Step::Transmit`].
    fn handle_response(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
        response: http::Response<Bytes>,
    );

    /// The last [`Step::Transmit`] got no complete response.
    fn handle_failure(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
        kind: TransportErrorKind,
        source: Box<dyn std::error::Error + Send + Sync>,
    );
}

/// What a flow wants its driver to do next.
#[derive(Debug)]
#[must_use]
pub enum Step<T> {
    /// Send this request and report its outcome.
    Transmit(Transmit),
    /// Nothing to do before this instant; poll again then.
    Sleep(Instant),
    /// The flow is finished.
    Done(Result<T, Error>),
}

/// A request to send, with how long to wait for its response.
#[derive(Debug)]
pub struct Transmit {
    /// The request, with an absolute URI.
    pub request: http::Request<Bytes>,
    /// How long to wait for the complete response; `None` means no limit.
    pub timeout: Option<Duration>,
}

/// The `Done` step of a finished flow: its result the first time, then
/// [`UsageError::FlowOutOfOrder`] for a driver that polls again.
pub(crate) fn finished<T>(result: &mut Option<Result<T, Error>>) -> Step<T> {
    Step::Done(result.take().unwrap_or_else(|| {
        Err(crate::error::UsageError::FlowOutOfOrder {
            expected: "no poll after Done",
        }
        .into())
    }))
}
