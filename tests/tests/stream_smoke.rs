//! Streamed responses against a real etcd, on every transport: a raw v3
//! watch (`POST /v3/watch`, a never-ending chunked body) driven through
//! `Transport::open` / `AsyncTransport::open` and the stream drivers of
//! `etcd_proto::drive` — chunks arrive as etcd sends them, a stream's
//! timeout bounds it, and dropping a stream closes its connection.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::drive::{FlowStream, StreamIter};
use etcd_proto::{
    Cluster, Error, Input, MalformedResponse, StreamFlow, StreamStep, Transmit, TransportError,
    TransportErrorKind, UsageError,
};
use etcd_tests::TestClient;

/// A v3 watch of one key that emits every chunk of the response body as is.
struct RawWatch {
    key: Vec<u8>,
    /// Bounds the head, and the silence between two chunks.
    timeout: Option<Duration>,
    /// When the next chunk is due, by `timeout`.
    quiet_until: Option<Instant>,
    state: State,
    endpoint: String,
    chunks: VecDeque<Bytes>,
    outcome: Option<Result<(), Error>>,
}

enum State {
    New,
    Opening,
    Streaming,
    Done,
}

impl RawWatch {
    fn new(key: &[u8], timeout: Option<Duration>) -> Self {
        RawWatch {
            key: key.to_vec(),
            timeout,
            quiet_until: None,
            state: State::New,
            endpoint: String::new(),
            chunks: VecDeque::new(),
            outcome: None,
        }
    }

    fn finish(&mut self, outcome: Result<(), Error>) {
        self.state = State::Done;
        self.outcome = Some(outcome);
    }
}

impl StreamFlow for RawWatch {
    type Item = Bytes;

    fn poll(&mut self, cluster: &mut Cluster, _now: Instant) -> StreamStep<Bytes> {
        match self.state {
            State::New => {
                self.endpoint = cluster.pinned().as_str().to_owned();
                let body = format!(r#"{{"create_request":{{"key":"{}"}}}}"#, base64(&self.key));
                let request = http::Request::post(format!("{}/v3/watch", self.endpoint))
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Bytes::from(body))
                    .expect("valid request");
                self.state = State::Opening;
                StreamStep::Open(Transmit {
                    request,
                    timeout: self.timeout,
                })
            }
            State::Opening => StreamStep::End(Err(UsageError::FlowOutOfOrder {
                expected: "the response head before the next poll",
            }
            .into())),
            State::Streaming => match self.chunks.pop_front() {
                Some(chunk) => StreamStep::Emit(chunk),
                None => StreamStep::Read(self.quiet_until),
            },
            State::Done => StreamStep::End(self.outcome.take().unwrap_or(Ok(()))),
        }
    }

    fn handle(&mut self, _: &mut Cluster, now: Instant, input: Input) {
        match input {
            Input::Response(response) => {
                let status = response.status().as_u16();
                self.finish(Err(MalformedResponse::new(
                    status,
                    "a complete response to a streamed request",
                    response.body(),
                )
                .into()));
            }
            Input::Head(head) => {
                self.quiet_until = self.timeout.map(|t| now + t);
                if head.status == http::StatusCode::OK {
                    self.state = State::Streaming;
                } else {
                    let status = head.status.as_u16();
                    self.finish(Err(
                        MalformedResponse::new(status, "watch refused", b"").into()
                    ));
                }
            }
            Input::Data(data) => {
                self.quiet_until = self.timeout.map(|t| now + t);
                self.chunks.push_back(data);
            }
            Input::End(_) | Input::Stop => self.finish(Ok(())),
            Input::Failure(failure) => {
                let error =
                    TransportError::new(self.endpoint.clone(), failure.kind, failure.source);
                self.finish(Err(error.into()));
            }
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = byte(0) << 16 | byte(1) << 8 | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn text(item: &Result<Bytes, Error>) -> String {
    match item {
        Ok(chunk) => String::from_utf8_lossy(chunk).into_owned(),
        Err(e) => panic!("expected a chunk, got {e:?}"),
    }
}

fn assert_created(item: &Result<Bytes, Error>) {
    let line = text(item);
    assert!(line.contains(r#""created":true"#), "{line}");
    assert!(!line.contains("events"), "{line}");
}

/// The server's open v3 watch streams, from its metrics.
fn watch_streams(url: &str) -> u64 {
    let metrics = etcd_tests::harness::http_get(url, "/metrics").expect("GET /metrics");
    metrics
        .body
        .lines()
        .find_map(|line| line.strip_prefix("etcd_debugging_mvcc_watch_stream_total "))
        .expect("the watch stream gauge")
        .trim()
        .parse()
        .expect("a count")
}

fn wait_for_watch_streams(url: &str, expected: u64) {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let now = watch_streams(url);
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < until,
            "the server still has {now} watch streams, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn next<S: futures_core::Stream + Unpin>(
    stream: &mut S,
) -> impl Future<Output = Option<S::Item>> + '_ {
    std::future::poll_fn(move |cx| std::pin::Pin::new(&mut *stream).poll_next(cx))
}

fn put(client: &TestClient, key: &[u8], value: &[u8]) {
    client
        .execute(etcd_proto::v3::Put::new(key, value))
        .expect("v3 put");
}

etcd_tests::scenarios! {
    /// The created line arrives as soon as the watch is open, before any
    /// event; a put made while the stream is open arrives as the next chunk,
    /// at once, on the same open body.
    fn watch_stream_emits_created_then_the_event(client, env) {
        let key = b"/smoke/k1";
        let writer = env.client_for(&env.urls());
        let writing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            put(&writer, b"/smoke/k1", b"v1");
        });
        let started = Instant::now();
        let items = client.stream_items(RawWatch::new(key, None), 2, Duration::from_secs(15));
        let took = started.elapsed();
        writing.join().unwrap();
        assert_eq!(items.len(), 2, "{items:?}");
        assert_created(&items[0]);
        let event = text(&items[1]);
        assert!(event.contains(r#""events""#), "{event}");
        assert!(event.contains(&base64(key)), "{event}");
        assert!(event.contains(&base64(b"v1")), "{event}");
        assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(5), "{took:?}");
    }

    /// `run_stream(_blocking)` returns the first chunk and closes the stream.
    fn first_item_then_closed(client, env) {
        let url = env.server().client_url();
        assert_eq!(watch_streams(&url), 0);
        let first = client.stream_first(RawWatch::new(b"/smoke/first", None));
        assert_created(&first);
        wait_for_watch_streams(&url, 0);
    }

    /// A stream whose reads have a 1 s deadline and no event fails with a
    /// timeout transport error a second after its last data (the created
    /// line), as its last item: every transport bounds each read by itself.
    fn a_read_deadline_ends_a_silent_stream(client, env) {
        let started = Instant::now();
        let flow = RawWatch::new(b"/smoke/idle", Some(Duration::from_secs(1)));
        let mut items = client.stream_items(flow, 5, Duration::from_secs(10));
        let took = started.elapsed();
        assert_eq!(items.len(), 2, "{items:?}");
        assert_created(&items[0]);
        match items.pop() {
            Some(Err(Error::Transport(e))) => assert_eq!(e.kind(), TransportErrorKind::Timeout, "{e}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(3), "{took:?}");
    }

    /// Dropping the transport's stream (between items, or, async, in the
    /// middle of a wait) closes its connection: the server's watch goes
    /// away, and the client goes on working.
    fn dropping_a_stream_closes_its_connection(client, env) {
        let url = env.server().client_url();
        let flow = || RawWatch::new(b"/smoke/dropped", None);
        match client {
            TestClient::Blocking(blocking) => {
                let mut stream = StreamIter::new(blocking, flow());
                assert_created(&stream.next().unwrap());
                assert!(stream.is_open());
                assert_eq!(watch_streams(&url), 1);
                drop(stream);
            }
            TestClient::Tokio { runtime, client: tokio_client } => {
                let mut stream = FlowStream::new(tokio_client.clone(), flow());
                assert_created(&runtime.block_on(next(&mut stream)).unwrap());
                assert!(stream.is_open());
                assert_eq!(watch_streams(&url), 1);
                let waited = runtime.block_on(async {
                    tokio::time::timeout(Duration::from_millis(300), next(&mut stream)).await
                });
                assert!(waited.is_err(), "{waited:?}");
                assert!(stream.flow().is_none(), "the wait is still in flight");
                assert_eq!(watch_streams(&url), 1);
                drop(stream);
            }
            TestClient::AsyncStd(async_client) => {
                let mut stream = FlowStream::new(async_client.clone(), flow());
                assert_created(&async_std::task::block_on(next(&mut stream)).unwrap());
                assert!(stream.is_open());
                assert_eq!(watch_streams(&url), 1);
                let waited = async_std::task::block_on(async {
                    async_std::future::timeout(Duration::from_millis(300), next(&mut stream)).await
                });
                assert!(waited.is_err(), "{waited:?}");
                assert!(stream.flow().is_none(), "the wait is still in flight");
                assert_eq!(watch_streams(&url), 1);
                drop(stream);
            }
        }
        wait_for_watch_streams(&url, 0);
        put(client, b"/smoke/dropped", b"after");
        // Many streams one after the other: none is left open behind.
        for _ in 0..5 {
            assert_created(&client.stream_first(flow()));
        }
        wait_for_watch_streams(&url, 0);
    }
}
