//! [`Flow`]: the one interface every transport drives, and [`Call`], the flow
//! that runs a single [`Operation`].

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cluster::Cluster;
use crate::error::{Error, TransportError, TransportErrorKind, UsageError};
use crate::operation::{Operation, Wait};

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

/// The flow that runs one [`Operation`]: build, send, parse.
#[derive(Debug)]
pub struct Call<O: Operation> {
    op: O,
    state: CallState<O::Output>,
}

#[derive(Debug)]
enum CallState<T> {
    Ready,
    InFlight { endpoint: String },
    Finished(Option<Result<T, Error>>),
}

impl<O: Operation> Call<O> {
    /// A call that will run `op`.
    pub fn new(op: O) -> Self {
        Call {
            op,
            state: CallState::Ready,
        }
    }

    fn finish(&mut self, result: Result<O::Output, Error>) {
        self.state = CallState::Finished(Some(result));
    }
}

impl<O: Operation> Flow for Call<O> {
    type Output = O::Output;

    fn poll(&mut self, cluster: &mut Cluster, now: Instant) -> Step<O::Output> {
        match &mut self.state {
            CallState::Ready => {}
            CallState::InFlight { .. } => {
                return Step::Done(Err(UsageError::FlowOutOfOrder {
                    expected: "the outcome of the last transmit",
                }
                .into()))
            }
            CallState::Finished(result) => {
                return Step::Done(result.take().unwrap_or_else(|| {
                    Err(UsageError::FlowOutOfOrder {
                        expected: "no poll after Done",
                    }
                    .into())
                }))
            }
        }
        let mut request = match self.op.build(&cluster.target()) {
            Ok(request) => request,
            Err(e) => return Step::Done(Err(e.into())),
        };
        if let Some(auth) = cluster.authorization() {
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, auth.clone());
        }
        let timeout = match self.op.wait() {
            Wait::Request => cluster.request_timeout(),
            Wait::LongPoll(deadline) => deadline.map(|d| d.saturating_duration_since(now)),
        };
        self.state = CallState::InFlight {
            endpoint: cluster.pinned().as_str().to_owned(),
        };
        Step::Transmit(Transmit { request, timeout })
    }

    fn handle_response(
        &mut self,
        _cluster: &mut Cluster,
        _now: Instant,
        response: http::Response<Bytes>,
    ) {
        let result = self.op.parse(response);
        self.finish(result);
    }

    fn handle_failure(
        &mut self,
        _cluster: &mut Cluster,
        _now: Instant,
        kind: TransportErrorKind,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) {
        let endpoint = match &self.state {
            CallState::InFlight { endpoint } => endpoint.clone(),
            _ => String::from("(no request in flight)"),
        };
        self.finish(Err(TransportError::new(endpoint, kind, source).into()));
    }
}
