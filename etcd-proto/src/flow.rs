//! [`Flow`]: the one interface every transport drives.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::error::{Error, TransportErrorKind};

/// Everything that reaches a flow from outside, through its one
/// [`handle`](Flow::handle) method: what came of the step it asked for, or
/// the caller's stop. A composite flow passes an input to the stage it is
/// running in one line.
///
/// | input | answers |
/// |---|---|
/// | [`Response`](Input::Response) | a `Transmit`: the complete response, whatever its status |
/// | [`Head`](Input::Head) | an `Open`: status and headers; the body stays open |
/// | [`Data`](Input::Data) | a `Read`: the next chunk of the open body |
/// | [`End`](Input::End) | a `Read`: the open body ended cleanly, with its trailers |
/// | [`Failure`](Input::Failure) | a `Transmit`, `Open`, `Read` or `Send` that got no (complete) answer |
/// | [`Stop`](Input::Stop) | nothing: the caller is done with the flow |
#[derive(Debug)]
pub enum Input {
    /// The complete response to the last `Transmit`.
    Response(http::Response<Bytes>),
    /// The status and headers of the response to the last `Open`.
    Head(http::response::Parts),
    /// The next chunk of the open response body.
    Data(Bytes),
    /// The open response body ended cleanly. The trailers that came after
    /// it (gRPC's `grpc-status` over HTTP/2); empty over HTTP/1.1.
    End(http::HeaderMap),
    /// The last exchange step got no (complete) answer.
    Failure(ExchangeFailure),
    /// The caller is done with the flow (a keep-alive's lease or lock is
    /// let go, a watch is no longer wanted): **stopping is an input, never a
    /// flag the flow polls.** A flow that runs until told (a keep-alive, a
    /// watch, an observation) ends cleanly at its next poll; any other flow
    /// ends with [`UsageError::Stopped`](crate::UsageError::Stopped), whatever it was doing left as if
    /// the flow had been dropped. Drivers give `Stop` only between
    /// exchanges, never with one in flight.
    Stop,
}

impl Input {
    /// A [`Failure`](Input::Failure) of `kind`, caused by `source`.
    pub fn failure(
        kind: TransportErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Input {
        Input::Failure(ExchangeFailure::new(kind, source))
    }
}

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

/// A sans-IO state machine that needs HTTP exchanges to reach its result.
///
/// # Driving a flow
///
/// A transport runs every flow with the same loop:
///
/// 1. call [`poll`](Flow::poll) with the current time;
/// 2. on [`Step::Transmit`], send the request (honouring its timeout), then
///    report the outcome with [`handle`](Flow::handle): exactly one
///    [`Input::Response`] (any complete HTTP response, whatever its status)
///    or [`Input::Failure`] (no complete response), and go to 1;
/// 3. on [`Step::Sleep`], wait until that instant (or until the caller
///    stops the flow: then [`Input::Stop`]), and go to 1;
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

    /// The one way in: what came of the last step, or the caller's stop.
    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input);

    /// Shorthand for [`handle`](Self::handle) with [`Input::Response`].
    fn handle_response(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
        response: http::Response<Bytes>,
    ) {
        self.handle(cluster, now, Input::Response(response));
    }

    /// Shorthand for [`handle`](Self::handle) with [`Input::Failure`].
    fn handle_failure(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
        kind: TransportErrorKind,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) {
        self.handle(cluster, now, Input::failure(kind, source));
    }
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

/// The result of a flow told to [`Stop`](Input::Stop) before it finished.
pub(crate) fn stopped<T>() -> Result<T, Error> {
    Err(crate::error::UsageError::Stopped.into())
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
/// Its inputs are a [`Flow`]'s, through the same [`handle`](StreamFlow::handle).
///
/// # Driving a stream flow
///
/// 1. call [`poll`](StreamFlow::poll) with the current time;
/// 2. on [`StreamStep::Transmit`], exchange the request as for a [`Flow`]
///    and report it with [`Input::Response`] or [`Input::Failure`];
/// 3. on [`StreamStep::Open`], send the request and report the response
///    head with [`Input::Head`] (or a failure); its body stays open. The
///    open request's `timeout` bounds connecting and the head only;
/// 4. on [`StreamStep::Read`], read the open body's next chunk and report it
///    with [`Input::Data`], its clean end with [`Input::End`], or a failure.
///    If nothing arrives by the step's instant, report a
///    [`Timeout`](TransportErrorKind::Timeout) failure: this is how a flow
///    notices a connection gone silent;
/// 5. on [`StreamStep::Send`], write the message on the open request's body
///    (a stream that sends as well as receives: gRPC over HTTP/2) and go to
///    1; a transport that cannot (HTTP/1.1: the request was sent whole)
///    reports a failure. No flow sends on the JSON gateway;
/// 6. on [`StreamStep::Emit`], hand the item to the caller; on
///    [`StreamStep::Warn`], hand the error to the caller and go on;
/// 7. on [`StreamStep::Sleep`], wait (or give [`Input::Stop`] when the
///    caller stops); on [`StreamStep::End`], stop.
///
/// **The open stream stays open only while `poll` answers `Read`, `Send`,
/// `Emit` or `Warn`.** Any other step means the flow is done with it: the
/// driver closes it (drops its connection) before acting on the step.
/// Dropping the flow's driver closes it too. At most one exchange is in
/// flight.
pub trait StreamFlow {
    /// What the flow emits.
    type Item;

    /// What to do next.
    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> StreamStep<Self::Item>;

    /// The one way in: what came of the last step, or the caller's stop.
    fn handle(&mut self, cluster: &mut Cluster, now: Instant, input: Input);

    /// Shorthand for [`handle`](Self::handle) with [`Input::Response`].
    fn handle_response(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
        response: http::Response<Bytes>,
    ) {
        self.handle(cluster, now, Input::Response(response));
    }

    /// Shorthand for [`handle`](Self::handle) with [`Input::Head`].
    fn handle_head(&mut self, cluster: &mut Cluster, now: Instant, head: http::response::Parts) {
        self.handle(cluster, now, Input::Head(head));
    }

    /// Shorthand for [`handle`](Self::handle) with [`Input::Data`].
    fn handle_data(&mut self, cluster: &mut Cluster, now: Instant, data: Bytes) {
        self.handle(cluster, now, Input::Data(data));
    }

    /// Shorthand for [`handle`](Self::handle) with [`Input::End`] and no trailers.
    fn handle_end(&mut self, cluster: &mut Cluster, now: Instant) {
        self.handle(cluster, now, Input::End(http::HeaderMap::new()));
    }

    /// Shorthand for [`handle`](Self::handle) with [`Input::Failure`].
    fn handle_failure(
        &mut self,
        cluster: &mut Cluster,
        now: Instant,
        kind: TransportErrorKind,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) {
        self.handle(cluster, now, Input::failure(kind, source));
    }
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
    /// Write this message on the open request's body, then poll again.
    Send(Bytes),
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
    /// `Send`, `Sleep`) or its warning, to pass on as is; `Err` with its `Emit` or
    /// `End`, for the outer flow to act on.
    // The `Err` side is a step to act on, not an error: its size is fine.
    #[allow(clippy::result_large_err)]
    pub fn pass_on<U>(self) -> Result<StreamStep<U>, StreamStep<T>> {
        match self {
            StreamStep::Transmit(t) => Ok(StreamStep::Transmit(t)),
            StreamStep::Open(t) => Ok(StreamStep::Open(t)),
            StreamStep::Read(until) => Ok(StreamStep::Read(until)),
            StreamStep::Send(message) => Ok(StreamStep::Send(message)),
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
