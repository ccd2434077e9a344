//! What the fuzz targets share: a reader of the fuzzer's bytes, the answers
//! a fuzzed etcd gives (recorded shapes with fuzzer-chosen numbers, or raw
//! fuzzer bytes), and [`drive_flow`] / [`drive_stream`], which run a
//! [`Flow`] or a [`StreamFlow`] against those answers on the testkit's
//! virtual-time driver (`etcd_proto::testkit::Sim`), the same one every
//! machine test uses.
//!
//! That driver obeys the flow contracts exactly as a transport must (one
//! exchange in flight, the body of a streamed answer read only while the
//! flow asks for it), so anything a target finds is the core's.

use std::time::Duration;

use bytes::Bytes;
use etcd_proto::testkit::{Chunk, Reply, Sent, Server, Sim};
use etcd_proto::{Cluster, Flow, StreamFlow, TransportErrorKind};

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

/// How the fuzzed etcd answers a flow's requests.
pub trait Answers {
    /// The complete answer to `sent`, or a transport failure.
    fn answer(
        &mut self,
        input: &mut Input<'_>,
        sent: &Sent,
    ) -> Result<http::Response<Bytes>, TransportErrorKind>;

    /// The head of the streamed answer to `sent` (its body comes from
    /// [`chunk`](Self::chunk)), or a failure. Unary flows never ask.
    fn head(
        &mut self,
        _input: &mut Input<'_>,
        sent: &Sent,
    ) -> Result<http::response::Parts, TransportErrorKind> {
        panic!("a unary flow opened a stream: {sent:?}")
    }

    /// The next chunk of the open body: `Ok(Some)`, its clean end
    /// `Ok(None)`, or a failure.
    fn chunk(&mut self, _input: &mut Input<'_>) -> Result<Option<Bytes>, TransportErrorKind> {
        Ok(None)
    }
}

/// What [`drive_flow`] saw.
pub struct FlowRun<T> {
    /// The flow's result, if it finished within the step budget.
    pub result: Option<Result<T, etcd_proto::Error>>,
    /// Every request it sent, with what came back (`Err`: a failure).
    pub exchanges: Vec<(Sent, Result<u16, TransportErrorKind>)>,
}

/// Most requests a driver sends before giving up on a flow.
pub const MAX_STEPS: usize = 400;

/// The fuzzed etcd as the testkit's model: the answers and the fuzzer's
/// bytes they are drawn from.
struct Fuzzed<'x, 'a> {
    input: &'x mut Input<'a>,
    answers: &'x mut dyn Answers,
    /// What each request got.
    outcomes: Vec<Result<u16, TransportErrorKind>>,
    /// Stop as soon as the fuzzer's bytes are spent (a stream never ends
    /// by itself); a unary flow is given room to finish first.
    stream: bool,
}

impl Server for Fuzzed<'_, '_> {
    fn serve(&mut self, sent: &Sent) -> Option<http::Response<Bytes>> {
        panic!("the fuzzed etcd answers through the hook: {sent:?}")
    }

    fn read(&mut self, _stream: &Sent) -> Chunk {
        let after = Duration::from_millis(self.input.byte() as u64 * 20);
        match self.answers.chunk(self.input) {
            Ok(Some(data)) => Chunk::Data(after, data),
            Ok(None) => Chunk::End(after),
            Err(kind) => Chunk::Fail(after, kind),
        }
    }
}

/// One request's fate: a fuzzer-chosen delay, then the answer or failure.
fn reply(fuzzed: &mut Fuzzed<'_, '_>, sent: &Sent) -> Reply {
    if let Some(timeout) = sent.timeout {
        assert!(
            timeout <= Duration::from_secs(3600),
            "absurd timeout {timeout:?}"
        );
    }
    let room = if fuzzed.stream { 0 } else { MAX_STEPS / 2 };
    if fuzzed.input.is_empty() && fuzzed.outcomes.len() >= room {
        return Reply::Stop;
    }
    let scale = if sent.stream { 1 } else { 10 };
    let after = Duration::from_millis(fuzzed.input.byte() as u64 * scale);
    let answer = if sent.stream {
        fuzzed
            .answers
            .head(fuzzed.input, sent)
            .map(|head| http::Response::from_parts(head, Bytes::new()))
    } else {
        fuzzed.answers.answer(fuzzed.input, sent)
    };
    fuzzed
        .outcomes
        .push(answer.as_ref().map(|r| r.status().as_u16()).map_err(|k| *k));
    match answer {
        Ok(response) => Reply::Answer(after, response),
        Err(kind) => Reply::Fail(after, kind),
    }
}

/// A simulation of `cluster` in front of the fuzzed etcd.
fn sim<'x, 'a>(
    cluster: &mut Cluster,
    input: &'x mut Input<'a>,
    answers: &'x mut dyn Answers,
    stream: bool,
) -> Sim<'static, Fuzzed<'x, 'a>> {
    let fuzzed = Fuzzed {
        input,
        answers,
        outcomes: Vec::new(),
        stream,
    };
    let mut sim = Sim::with_model(&ENDPOINTS, fuzzed);
    std::mem::swap(&mut sim.cluster, cluster);
    sim.limit(MAX_STEPS);
    sim
}

/// Runs `flow` to its end (or [`MAX_STEPS`] requests) on virtual time,
/// answering each request with `answers` after a fuzzer-chosen delay.
pub fn drive_flow<F: Flow>(
    flow: &mut F,
    cluster: &mut Cluster,
    input: &mut Input<'_>,
    answers: &mut dyn Answers,
) -> FlowRun<F::Output> {
    let mut sim = sim(cluster, input, answers, false);
    let result = sim.drive_with(flow, &mut |sent, fuzzed| reply(fuzzed, sent));
    std::mem::swap(&mut sim.cluster, cluster);
    let outcomes = std::mem::take(&mut sim.model.outcomes);
    FlowRun {
        result,
        exchanges: sim.sent.into_iter().zip(outcomes).collect(),
    }
}

/// Runs a stream flow to its end (or [`MAX_STEPS`] requests), handing
/// each emitted item to `emitted`; heads and chunks of streamed answers
/// come from `answers`, each after a fuzzer-chosen delay.
pub fn drive_stream<F: StreamFlow>(
    flow: &mut F,
    cluster: &mut Cluster,
    input: &mut Input<'_>,
    answers: &mut dyn Answers,
    emitted: impl FnMut(F::Item),
) -> Option<Result<(), etcd_proto::Error>> {
    let mut sim = sim(cluster, input, answers, true);
    let result = sim.drive_stream_with(flow, &mut |sent, fuzzed| reply(fuzzed, sent), emitted);
    std::mem::swap(&mut sim.cluster, cluster);
    result
}
