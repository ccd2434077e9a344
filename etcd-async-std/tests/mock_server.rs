//! The transport against a scripted HTTP server on loopback: keep-alive reuse,
//! cancellation, and how each kind of broken exchange is reported.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use etcd_async_std::{Client, Error};
use etcd_proto::TransportErrorKind;

const BODY: &str =
    r#"{"action":"get","node":{"key":"/k","value":"v","modifiedIndex":4,"createdIndex":4}}"#;

/// What the server does with each request it reads.
#[derive(Clone, Copy)]
enum Script {
    /// Answers with a normal etcd response, keeping the connection open.
    Answer,
    /// Waits this long, then answers.
    AnswerAfter(Duration),
    /// Announces a body of this many bytes and sends it.
    BigBody(usize),
    /// Announces 100 body bytes, sends 10, closes.
    Truncate,
    /// Closes without answering.
    Close,
    /// Never answers.
    Hang,
}

struct Server {
    url: String,
    accepted: Arc<AtomicUsize>,
}

async fn serve(script: Script) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    async_std::task::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            async_std::task::spawn(connection(stream, script));
        }
    });
    Server { url, accepted }
}

async fn connection(mut stream: TcpStream, script: Script) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // Read one request head (these requests have no body).
        while !pending.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        let end = pending.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        pending.drain(..end);
        let respond = |body: &str, length: usize| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Etcd-Index: 4\r\nContent-Length: {length}\r\n\r\n{body}"
            )
        };
        let reply = match script {
            Script::Answer => respond(BODY, BODY.len()),
            Script::AnswerAfter(delay) => {
                async_std::task::sleep(delay).await;
                respond(BODY, BODY.len())
            }
            Script::BigBody(n) => respond(&"x".repeat(n), n),
            Script::Truncate => {
                let _ = stream
                    .write_all(respond("0123456789", 100).as_bytes())
                    .await;
                return;
            }
            Script::Close => return,
            Script::Hang => {
                async_std::task::sleep(Duration::from_secs(3600)).await;
                return;
            }
        };
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn transport_kind(result: Result<impl std::fmt::Debug, Error>) -> (TransportErrorKind, String) {
    match result {
        Err(Error::Transport(e)) => {
            eprintln!("{:?}: {e}", e.kind());
            (e.kind(), e.to_string())
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[async_std::test]
async fn keep_alive_reuses_one_connection() {
    let server = serve(Script::Answer).await;
    let client = Client::new(&server.url).unwrap();
    for _ in 0..20 {
        let got = client.get("/k").await.unwrap();
        assert_eq!(got.node.value.as_deref(), Some("v"));
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

#[async_std::test]
async fn no_idle_connections_means_one_connection_per_request() {
    let server = serve(Script::Answer).await;
    let client = Client::builder()
        .endpoint(&server.url)
        .max_idle_connections(0)
        .build()
        .unwrap();
    for _ in 0..5 {
        client.get("/k").await.unwrap();
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 5);
}

#[async_std::test]
async fn a_cancelled_request_does_not_return_its_connection() {
    let server = serve(Script::AnswerAfter(Duration::from_millis(100))).await;
    let client = Client::new(&server.url).unwrap();
    client.get("/k").await.unwrap();
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
    // Dropped while the server is still thinking: that connection is done for.
    let cancelled = async_std::future::timeout(Duration::from_millis(20), client.get("/k")).await;
    assert!(cancelled.is_err());
    let got = client.get("/k").await.unwrap();
    assert_eq!(got.node.value.as_deref(), Some("v"));
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
    // And the new connection is kept alive as usual.
    client.get("/k").await.unwrap();
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[async_std::test]
async fn a_body_over_the_limit_is_an_http_failure() {
    let server = serve(Script::BigBody(10_000)).await;
    let client = Client::builder()
        .endpoint(&server.url)
        .max_response_bytes(1_000)
        .build()
        .unwrap();
    let (kind, message) = transport_kind(client.get("/k").await);
    assert_eq!(kind, TransportErrorKind::Http, "{message}");
    assert!(message.contains("max_response_bytes"), "{message}");
}

#[async_std::test]
async fn a_truncated_body_is_an_io_failure() {
    // The connection failed mid-answer, as on every transport (see
    // `TransportErrorKind`): the request may have been applied.
    let server = serve(Script::Truncate).await;
    let client = Client::new(&server.url).unwrap();
    let (kind, message) = transport_kind(client.get("/k").await);
    assert_eq!(kind, TransportErrorKind::Io, "{message}");
}

#[async_std::test]
async fn a_connection_closed_without_answer_is_an_io_failure() {
    let server = serve(Script::Close).await;
    let client = Client::new(&server.url).unwrap();
    let (kind, message) = transport_kind(client.get("/k").await);
    assert_eq!(kind, TransportErrorKind::Io, "{message}");
    assert!(message.contains(&server.url), "{message}");
}

#[async_std::test]
async fn a_silent_server_times_out() {
    let server = serve(Script::Hang).await;
    let client = Client::builder()
        .endpoint(&server.url)
        .request_timeout(Some(Duration::from_millis(100)))
        .build()
        .unwrap();
    let started = Instant::now();
    let (kind, message) = transport_kind(client.get("/k").await);
    assert_eq!(kind, TransportErrorKind::Timeout, "{message}");
    assert!(started.elapsed() < Duration::from_secs(2), "{message}");
}

#[async_std::test]
async fn a_refused_connection_is_a_connect_failure() {
    let client = Client::new("http://127.0.0.1:1").unwrap();
    let (kind, message) = transport_kind(client.get("/k").await);
    assert_eq!(kind, TransportErrorKind::Connect, "{message}");
    assert!(message.contains("http://127.0.0.1:1"), "{message}");
}

#[async_std::test]
async fn concurrent_requests_from_clones() {
    let server = serve(Script::AnswerAfter(Duration::from_millis(20))).await;
    let client = Client::new(&server.url).unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            async_std::task::spawn(async move { client.get("/k").await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // One connection per request in flight at once, then all kept.
    let opened = server.accepted.load(Ordering::SeqCst);
    assert!((1..=16).contains(&opened), "{opened}");
    for _ in 0..16 {
        client.get("/k").await.unwrap();
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), opened);
}

#[test]
fn runs_under_smol() {
    smol::block_on(async {
        let server = serve(Script::Answer).await;
        let client = Client::new(&server.url).unwrap();
        for _ in 0..3 {
            let got = client.get("/k").await.unwrap();
            assert_eq!(got.node.value.as_deref(), Some("v"));
        }
        // Also as tasks on smol's own executor.
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let client = client.clone();
                smol::spawn(async move { client.get("/k").await })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().node.value.as_deref(), Some("v"));
        }
        let (kind, _) = transport_kind(Client::new("http://127.0.0.1:1").unwrap().get("/k").await);
        assert_eq!(kind, TransportErrorKind::Connect);
    });
}
