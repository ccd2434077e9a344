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

/// A sans-IO state machine that may hold one **streamed** response open
/// (a v3 watch, an election observation) and emits items as they arrive.
///
/// # Driving a stream flow
///
/// 1. call [`poll`](StreamFlow::poll) with the current time;
/// 2. on [`StreamStep::Transmit`], exchange the request as for a [`Flow`]
///    and report it with [`handle_response`](StreamFlow::handle_response)
///    or [`handle_failure`](StreamFlow::handle_failure);
/// 3. on [`StreamStep::Open`], send the request and report the response
///    head with [`handle_head`](StreamFlow::handle_head) (or a failure);
///    its body stays open. The open request's `timeout` bounds connecting
///    and the head only;
/// 4. on [`StreamStep::Read`], read the open body's next chunk and report it
///    with [`handle_data`](StreamFlow::handle_data), its clean end with
///    [`handle_end`](StreamFlow::handle_end), or a failure. If nothing
///    arrives by the step's instant, report a
///    [`Timeout`](TransportErrorKind::Timeout) failure: this is how a flow
///    notices a connection gone silent;
/// 5. on [`StreamStep::Emit`], hand the item to the caller; on
///    [`StreamStep::Warn`], hand the error to the caller and go on;
/// 6. on [`StreamStep::Sleep`], wait; on [`StreamStep::End`], stop.
///
/// **The open stream stays open only while `poll` answers `Read`, `Emit`
/// or `Warn`.** Any other step means the flow is done with it: the driver
/// closes it (drops its connection) before acting on the step. Dropping the
/// flow's driver closes it too. At most one exchange is in flight.
pub trait StreamFlow {
    /// What the flow emits.
    type Item;

    /// What to do next.
    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> StreamStep<Self::Item>;

    /// The complete response to the last [`StreamStep::Transmit`].
    fn handle_response(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
        response: http::Response<Bytes>,
    );

    /// The status and headers of the response to the last [`StreamStep::Open`].
    fn handle_head(&mut self, cluster: &mut Cluster, now: Instant, head: http::response::Parts);

    /// The next chunk of the open response body.
    fn handle_data(&mut self, cluster: &mut Cluster, now: Instant, data: Bytes);

    /// The open response body ended cleanly.
    fn handle_end(&mut self, cluster: &mut Cluster, now: Instant);

    /// The last `Transmit`, `Open` or `Read` failed.
    fn handle_failure(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
        kind: TransportErrorKind,
        source: Box<dyn std::error::Error + Send + Sync>,
    );
}

/// What a [`StreamFlow`] wants its driver to do next.
#[derive(Debug)]
#[must_use]
pub enum StreamStep<T> {
    /// Send this request and report its complete response.
    Transmit(Transmit),
    /// Send this request, report the response head, and keep its body open.
    /// The timeout bounds connecting and the head, not the body.
    Open(Transmit),
    /// Read the next chunk of the open body; if none arrives by this instant
    /// (`None`: no limit), report a [`Timeout`](TransportErrorKind::Timeout)
    /// failure.
    Read(Option<Instant>),
    /// Nothing to do before this instant; poll again then.
    Sleep(Instant),
    /// An item for the caller; poll again for more.
    Emit(T),
    /// An error for the caller that does not end the flow (a watch that can
    /// reach no member says so, and keeps trying); poll again for more.
    Warn(Error),
    /// The flow is finished.
    End(Result<(), Error>),
}

/// The `End` step of a finished stream flow: its result the first time,
/// then [`UsageError::FlowOutOfOrder`](crate::UsageError::FlowOutOfOrder).
pub(crate) fn stream_finished<T>(result: &mut Option<Result<(), Error>>) -> StreamStep<T> {
    StreamStep::End(result.take().unwrap_or_else(|| {
        Err(crate::error::UsageError::FlowOutOfOrder {
            expected: "no poll after End",
        }
        .into())
    }))
}

impl<T> StreamStep<T> {
    /// Lifts a [`Flow`]'s step into a stream flow's, for a stream flow that
    /// runs a unary flow as one of its stages: `Ok(result)` when the inner
    /// flow is done, `Err(step)` to pass its request or sleep on.
    // The `Err` side is a step to pass on, not an error: its size is fine.
    #[allow(clippy::result_large_err)]
    pub fn from_flow<U>(step: Step<U>) -> Result<Result<U, Error>, StreamStep<T>> {
        match step {
            Step::Transmit(transmit) => Err(StreamStep::Transmit(transmit)),
            Step::Sleep(until) => Err(StreamStep::Sleep(until)),
            Step::Done(result) => Ok(result),
        }
    }
}

impl<T> StreamStep<T> {
    /// For a stream flow that runs another as one of its stages: `Ok` with
    /// the inner flow's work for the driver (`Transmit`, `Open`, `Read`,
    /// `Sleep`) or its warning, to pass on as is; `Err` with its `Emit` or
    /// `End`, for the outer flow to act on.
    // The `Err` side is a step to act on, not an error: its size is fine.
    #[allow(clippy::result_large_err)]
    pub fn pass_on<U>(self) -> Result<StreamStep<U>, StreamStep<T>> {
        match self {
            StreamStep::Transmit(t) => Ok(StreamStep::Transmit(t)),
            StreamStep::Open(t) => Ok(StreamStep::Open(t)),
            StreamStep::Read(until) => Ok(StreamStep::Read(until)),
            StreamStep::Sleep(until) => Ok(StreamStep::Sleep(until)),
            StreamStep::Warn(error) => Ok(StreamStep::Warn(error)),
            other @ (StreamStep::Emit(_) | StreamStep::End(_)) => Err(other),
        }
    }
}

impl<T> Step<T> {
    /// Passes an inner flow's `Transmit` or `Sleep` on as an outer flow's
    /// step. For a `Done` the caller should have matched first; it becomes
    /// [`UsageError::FlowOutOfOrder`](crate::UsageError::FlowOutOfOrder).
    pub fn map_pending<U>(self) -> Step<U> {
        match self {
            Step::Transmit(transmit) => Step::Transmit(transmit),
            Step::Sleep(until) => Step::Sleep(until),
            Step::Done(_) => Step::Done(Err(crate::error::UsageError::FlowOutOfOrder {
                expected: "a pending step",
            }
            .into())),
        }
    }
}
