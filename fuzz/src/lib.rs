//! What the fuzz targets share: a reader of the fuzzer's bytes, the answers
//! a fake etcd gives (recorded shapes with fuzzer-chosen numbers, or raw
//! fuzzer bytes), and drivers that run a [`Flow`] or a [`StreamFlow`]
//! against those answers on virtual time.
//!
//! The drivers obey the flow contracts exactly as a transport must (one
//! exchange in flight, the body of a streamed answer read only while the
//! flow asks for it), so anything a target finds is the core's.

use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::{Cluster, Flow, Step, StreamFlow, StreamStep, TransportErrorKind};

/// The fuzzer's bytes, read front to back; once they run out every read
/// gives zeros, so a driver always reaches an end.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// True once every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }

    /// A small number, 0..=65535.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// Up to `max` raw bytes (how many: the next byte decides).
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = (self.byte() as usize).min(max).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Every byte left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// One of `items`.
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.below(items.len())]
    }

    /// An HTTP status etcd or something in between might answer with.
    pub fn status(&mut self) -> u16 {
        let any = 100 + self.byte() as u16 % 500;
        *self.pick(&[
            200, 200, 200, 201, 400, 401, 403, 404, 412, 500, 503, 307, any,
        ])
    }

    /// A transport failure kind.
    pub fn failure_kind(&mut self) -> TransportErrorKind {
        *self.pick(&[
            TransportErrorKind::Connect,
            TransportErrorKind::Tls,
            TransportErrorKind::Timeout,
            TransportErrorKind::Io,
            TransportErrorKind::Http,
        ])
    }
}

/// A fake transport failure's source.
#[derive(Debug)]
pub struct FuzzFailure;

impl std::fmt::Display for FuzzFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fuzzed failure")
    }
}

impl std::error::Error for FuzzFailure {}

/// An HTTP response with `status`, `body` and etcd's usual headers (their
/// values fuzzer-chosen when `input` says so).
pub fn response(input: &mut Input<'_>, status: u16, body: Vec<u8>) -> http::Response<Bytes> {
    let mut builder = http::Response::builder().status(status);
    if input.byte().is_multiple_of(2) {
        builder = builder.header("x-etcd-index", input.u16().to_string());
    }
    if input.byte().is_multiple_of(4) {
        builder = builder.header("x-etcd-cluster-id", format!("{:x}", input.u16()));
    }
    if status == 307 {
        builder = builder.header("location", "http://127.0.0.1:2/v2/keys/x");
    }
    builder
        .body(Bytes::from(body))
        .unwrap_or_else(|_| http::Response::new(Bytes::new()))
}

/// Endpoints of the fake cluster.
pub const ENDPOINTS: [&str; 3] = [
    "http://127.0.0.1:2379",
    "http://127.0.0.1:22379",
    "http://127.0.0.1:32379",
];

/// A cluster of [`ENDPOINTS`].
pub fn cluster() -> Cluster {
    Cluster::from_urls(&ENDPOINTS).expect("valid endpoints")
}

/// How a driver answers one request of a flow.
pub trait Answers {
    /// The complete answer to `request`, or a transport failure.
    fn answer(
        &mut self,
        input: &mut Input<'_>,
        request: &http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, TransportErrorKind>;
}

/// What [`drive_flow`] saw.
pub struct FlowRun<T> {
    /// The flow's result, if it finished within the step budget.
    pub result: Option<Result<T, etcd_proto::Error>>,
    /// Every request it sent, with what came back (`Err`: a failure).
    pub exchanges: Vec<(http::Request<Bytes>, Result<u16, TransportErrorKind>)>,
}

/// Most steps a driver takes before giving up on a flow (a flow that
/// neither finishes nor waits for time to pass would spin forever).
pub const MAX_STEPS: usize = 400;

/// Runs `flow` to its end (or [`MAX_STEPS`]) on virtual time, answering
/// each request with `answers`. Sleeps jump the clock; the fuzzer may push
/// it further.
pub fn drive_flow<F: Flow>(
    flow: &mut F,
    cluster: &mut Cluster,
    input: &mut Input<'_>,
    answers: &mut dyn Answers,
) -> FlowRun<F::Output> {
    let mut now = Instant::now();
    let mut run = FlowRun {
        result: None,
        exchanges: Vec::new(),
    };
    for _ in 0..MAX_STEPS {
        match flow.poll(cluster, now) {
            Step::Done(result) => {
                run.result = Some(result);
                return run;
            }
            Step::Sleep(until) => now = now.max(until),
            Step::Transmit(transmit) => {
                if let Some(timeout) = transmit.timeout {
                    assert!(
                        timeout <= Duration::from_secs(3600),
                        "absurd timeout {timeout:?}"
                    );
                }
                now += Duration::from_millis(input.byte() as u64 * 10);
                let answer = answers.answer(input, &transmit.request);
                run.exchanges.push((
                    transmit.request,
                    answer.as_ref().map(|r| r.status().as_u16()).map_err(|k| *k),
                ));
                match answer {
                    Ok(response) => flow.handle_response(cluster, now, response),
                    Err(kind) => flow.handle_failure(cluster, now, kind, Box::new(FuzzFailure)),
                }
            }
        }
        if input.is_empty() && run.exchanges.len() > MAX_STEPS / 2 {
            break;
        }
    }
    run
}

/// How a driver answers a stream flow: unary requests as [`Answers`], and
/// the head and chunks of a streamed answer.
pub trait StreamAnswers: Answers {
    /// The head of the streamed answer to `request`, or a failure.
    fn head(
        &mut self,
        input: &mut Input<'_>,
        request: &http::Request<Bytes>,
    ) -> Result<http::response::Parts, TransportErrorKind>;

    /// The next chunk of the open body: `Ok(Some)`, its clean end
    /// `Ok(None)`, or a failure.
    fn chunk(&mut self, input: &mut Input<'_>) -> Result<Option<Bytes>, TransportErrorKind>;
}

/// Runs a stream flow to its end (or [`MAX_STEPS`]), handing each emitted
/// item to `emitted`, and checks the stream contract on the way: the body
/// is read only while open.
pub fn drive_stream<F: StreamFlow>(
    flow: &mut F,
    cluster: &mut Cluster,
    input: &mut Input<'_>,
    answers: &mut dyn StreamAnswers,
    mut emitted: impl FnMut(F::Item),
) -> Option<Result<(), etcd_proto::Error>> {
    let mut now = Instant::now();
    let mut open = false;
    for _ in 0..MAX_STEPS {
        let step = flow.poll(cluster, now);
        if !matches!(
            step,
            StreamStep::Read(_) | StreamStep::Send(_) | StreamStep::Emit(_) | StreamStep::Warn(_)
        ) {
            // The driver closes the body before acting on any other step.
            open = false;
        }
        match step {
            StreamStep::End(result) => return Some(result),
            StreamStep::Emit(item) => emitted(item),
            StreamStep::Warn(_) => {}
            StreamStep::Send(_) => panic!("a flow sent on a gateway stream"),
            StreamStep::Sleep(until) => now = now.max(until),
            StreamStep::Transmit(transmit) => {
                now += Duration::from_millis(input.byte() as u64 * 10);
                match answers.answer(input, &transmit.request) {
                    Ok(response) => flow.handle_response(cluster, now, response),
                    Err(kind) => flow.handle_failure(cluster, now, kind, Box::new(FuzzFailure)),
                }
            }
            StreamStep::Open(transmit) => {
                now += Duration::from_millis(input.byte() as u64);
                match answers.head(input, &transmit.request) {
                    Ok(head) => {
                        open = true;
                        flow.handle_head(cluster, now, head);
                    }
                    Err(kind) => flow.handle_failure(cluster, now, kind, Box::new(FuzzFailure)),
                }
            }
            StreamStep::Read(until) => {
                assert!(open, "Read with no open body");
                now += Duration::from_millis(input.byte() as u64 * 20);
                if until.is_some_and(|u| now >= u) {
                    open = false;
                    flow.handle_failure(
                        cluster,
                        now,
                        TransportErrorKind::Timeout,
                        Box::new(FuzzFailure),
                    );
                    continue;
                }
                match answers.chunk(input) {
                    Ok(Some(data)) => flow.handle_data(cluster, now, data),
                    Ok(None) => {
                        open = false;
                        flow.handle_end(cluster, now)
                    }
                    Err(kind) => {
                        open = false;
                        flow.handle_failure(cluster, now, kind, Box::new(FuzzFailure))
                    }
                }
            }
        }
        if input.is_empty() {
            return None;
        }
    }
    None
}
