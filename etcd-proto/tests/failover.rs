//! Endpoint failover in `Call`, driven in virtual time with scripted answers.

use std::time::Duration;

use bytes::Bytes;
use etcd_proto::testkit::{Reply, Sent, Sim};
use etcd_proto::v2::{Read, Write, WriteOptions};
use etcd_proto::{Call, Cluster, Error, ErrorKind, Operation, TransportErrorKind};

const A: &str = "http://10.0.0.1:2379";
const B: &str = "http://10.0.0.2:2379";
const C: &str = "http://10.0.0.3:2379";

const GET_BODY: &str =
    r#"{"action":"get","node":{"key":"/k","value":"v","modifiedIndex":4,"createdIndex":4}}"#;
const SET_BODY: &str =
    r#"{"action":"set","node":{"key":"/k","value":"v","modifiedIndex":5,"createdIndex":5}}"#;
const TIMED_OUT: &str = r#"{"errorCode":300,"message":"Raft Internal Error","cause":"etcdserver: request timed out","index":0}"#;

/// What an endpoint does with a request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok(&'static str),
    Status(u16, &'static str),
    Fail(TransportErrorKind),
}

/// Drives `op` on `cluster` through the testkit; `answer` decides each
/// attempt from its URI. Sleeps move virtual time; a failure costs `cost`
/// of virtual time (at most the attempt's timeout).
fn run<O: Operation>(
    cluster: &mut Cluster,
    op: O,
    cost: Duration,
    mut answer: impl FnMut(&str) -> Answer,
) -> (Vec<Sent>, Result<O::Output, Error>, Duration) {
    let mut sim = Sim::scripted(&[A]);
    std::mem::swap(&mut sim.cluster, cluster);
    let result = sim.drive_with(&mut Call::new(op), &mut |sent, _| {
        let response = |status: u16, body: &str| {
            let mut r = http::Response::new(Bytes::from(body.to_owned()));
            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
            if status == 200 {
                r.headers_mut()
                    .insert("x-etcd-cluster-id", "c1".parse().unwrap());
            }
            r
        };
        match answer(&sent.uri) {
            Answer::Ok(body) => Reply::Answer(Duration::ZERO, response(200, body)),
            Answer::Status(status, body) => Reply::Answer(Duration::ZERO, response(status, body)),
            Answer::Fail(kind) => Reply::Fail(cost.min(sent.timeout.unwrap_or(cost)), kind),
        }
    });
    std::mem::swap(&mut sim.cluster, cluster);
    let result = result.expect("the call ends");
    let took = sim.elapsed();
    (sim.sent, result, took)
}

fn cluster3() -> Cluster {
    let mut c = Cluster::from_urls(&[A, B, C]).unwrap();
    c.set_discover_members(false);
    c
}

fn host(uri: &str) -> &str {
    &uri[..uri[7..].find('/').map_or(uri.len(), |i| i + 7)]
}

#[test]
fn a_refused_endpoint_fails_over_and_the_pin_follows() {
    let mut cluster = cluster3();
    let (sent, result, _) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |uri| {
        if uri.starts_with(A) {
            Answer::Fail(TransportErrorKind::Connect)
        } else {
            Answer::Ok(GET_BODY)
        }
    });
    assert_eq!(result.unwrap().node.value.as_deref(), Some("v"));
    let hosts: Vec<_> = sent.iter().map(|s| host(&s.uri)).collect();
    assert_eq!(hosts, [A, B]);
    assert_eq!(cluster.pinned().as_str(), B);
    // The next call starts at B.
    let (sent, _, _) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |_| {
        Answer::Ok(GET_BODY)
    });
    assert_eq!(host(&sent[0].uri), B);
}

#[test]
fn all_endpoints_refusing_fails_at_once_naming_each() {
    let mut cluster = cluster3();
    let (sent, result, took) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |_| {
        Answer::Fail(TransportErrorKind::Connect)
    });
    assert_eq!(
        sent.len(),
        3,
        "one try each, no rounds: nothing is listening"
    );
    assert_eq!(took, Duration::ZERO);
    let error = result.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    let Error::Unavailable(unavailable) = &error else {
        panic!("{error:?}")
    };
    let named: Vec<_> = unavailable
        .failures
        .iter()
        .map(|(e, _)| e.as_str())
        .collect();
    assert_eq!(named, [A, B, C]);
    let shown = error.to_string();
    for endpoint in [A, B, C] {
        assert!(shown.contains(endpoint), "{shown}");
    }
}

#[test]
fn a_single_dead_endpoint_gives_its_own_transport_error() {
    let mut cluster = Cluster::from_urls(&[A]).unwrap();
    let (_, result, _) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |_| {
        Answer::Fail(TransportErrorKind::Connect)
    });
    match result.unwrap_err() {
        Error::Transport(t) => assert_eq!(t.endpoint(), A),
        other => panic!("{other:?}"),
    }
}

#[test]
fn at_most_once_writes_are_not_replayed_after_a_maybe_sent_failure() {
    let creates = [
        Write::new("/k", "v").options(WriteOptions::new().prev_exist(false)),
        Write::append("/q", "v"),
        Write::new("/k", "v").options(WriteOptions::new().prev_value("old")),
        Write::new("/k", "v").options(WriteOptions::new().prev_index(7)),
    ];
    for op in creates {
        let mut cluster = cluster3();
        let (sent, result, _) = run(&mut cluster, op.clone(), Duration::from_millis(10), |_| {
            Answer::Fail(TransportErrorKind::Io)
        });
        assert_eq!(sent.len(), 1, "{op:?} was replayed");
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Transport);
        assert_eq!(cluster.pinned().as_str(), B, "the pin moves on anyway");
    }
    // A delete too.
    let mut cluster = cluster3();
    let (sent, _, _) = run(
        &mut cluster,
        etcd_proto::v2::Delete::new("/k"),
        Duration::ZERO,
        |_| Answer::Fail(TransportErrorKind::Timeout),
    );
    assert_eq!(sent.len(), 1);
}

#[test]
fn at_most_once_writes_do_fail_over_when_nothing_was_sent() {
    let mut cluster = cluster3();
    let op = Write::new("/k", "v").options(WriteOptions::new().prev_exist(false));
    let (sent, result, _) = run(&mut cluster, op, Duration::ZERO, |uri| {
        if uri.starts_with(A) {
            Answer::Fail(TransportErrorKind::Connect)
        } else {
            Answer::Ok(SET_BODY)
        }
    });
    assert_eq!(sent.len(), 2);
    assert!(result.is_ok());
}

#[test]
fn idempotent_requests_ride_out_a_busy_cluster_within_the_request_timeout() {
    let mut cluster = cluster3();
    cluster.set_request_timeout(Some(Duration::from_secs(2)));
    let mut calls = 0;
    // Everyone is electing a leader for the first 7 attempts. (A read: a
    // plain write is at most once, and a raft timeout may have applied it.)
    let (sent, result, took) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |_| {
        calls += 1;
        if calls <= 7 {
            Answer::Status(500, TIMED_OUT)
        } else {
            Answer::Ok(SET_BODY)
        }
    });
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(sent.len(), 8);
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn the_request_timeout_bounds_the_whole_call() {
    let mut cluster = cluster3();
    let budget = Duration::from_secs(3);
    cluster.set_request_timeout(Some(budget));
    let (sent, result, took) = run(
        &mut cluster,
        Read::new("/k"),
        Duration::from_millis(700),
        |_| Answer::Fail(TransportErrorKind::Timeout),
    );
    assert!(matches!(result.unwrap_err(), Error::Unavailable(_)));
    assert!(took <= budget, "{took:?}");
    // Every attempt ends by the deadline, and none gets more than a third of
    // it: every member may still answer (none refused a connection).
    for s in &sent {
        assert!(s.at + s.timeout.unwrap() <= budget, "{s:?}");
        assert!(s.timeout.unwrap() <= budget / 3, "{s:?}");
    }
    assert!(
        sent.len() > 3,
        "it went round more than once: {}",
        sent.len()
    );
}

#[test]
fn with_every_other_endpoint_refusing_an_attempt_gets_the_whole_budget() {
    let mut cluster = cluster3();
    let budget = Duration::from_secs(3);
    cluster.set_request_timeout(Some(budget));
    let (sent, result, _) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |uri| {
        if uri.starts_with(C) {
            Answer::Ok(SET_BODY)
        } else {
            Answer::Fail(TransportErrorKind::Connect)
        }
    });
    assert!(result.is_ok(), "{result:?}");
    // A and B refused: C, the only member left that may answer, gets it all.
    assert_eq!(sent.len(), 3);
    assert!(sent[0].timeout.unwrap() <= budget / 3);
    assert_eq!(sent[2].timeout, Some(budget));
}

#[test]
fn a_deterministic_5xx_is_not_retried_in_rounds() {
    // etcd 3.5 answers a directory prevExist update with 500 / errorCode 300 "Not a file".
    const NOT_A_FILE: &str = r#"{"errorCode":300,"message":"Raft Internal Error","cause":"nodePath /1/d : Not a file ()","index":0}"#;
    let mut cluster = Cluster::from_urls(&[A]).unwrap();
    let (sent, result, _) = run(&mut cluster, Write::mkdir("/d"), Duration::ZERO, |_| {
        Answer::Status(500, NOT_A_FILE)
    });
    assert_eq!(sent.len(), 1);
    assert_eq!(result.unwrap_err().as_v2().unwrap().code.number(), 300);
}

#[test]
fn members_are_refreshed_after_a_failover() {
    const MEMBERS: &str = r#"{"members":[{"id":"1","name":"m1","peerURLs":[],"clientURLs":["http://10.0.0.9:2379"]},{"id":"2","name":"m2","peerURLs":[],"clientURLs":["http://10.0.0.2:2379"]}]}"#;
    let mut cluster = Cluster::from_urls(&[A, B]).unwrap();
    let (sent, result, _) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |uri| {
        if uri.starts_with(A) {
            Answer::Fail(TransportErrorKind::Connect)
        } else if uri.ends_with("/v2/members") {
            Answer::Ok(MEMBERS)
        } else {
            Answer::Ok(GET_BODY)
        }
    });
    assert!(result.is_ok());
    // A refused; the list is refreshed from the next endpoint; the read goes there.
    let uris: Vec<_> = sent.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            format!("{A}/v2/keys/k"),
            format!("{B}/v2/members"),
            format!("{B}/v2/keys/k")
        ]
    );
    let urls: Vec<_> = cluster.endpoints().iter().map(|e| e.as_str()).collect();
    assert_eq!(
        urls,
        ["http://10.0.0.9:2379", B, A],
        "advertised URLs, then the seeds"
    );
    assert_eq!(cluster.pinned().as_str(), B, "the pin survives the refresh");
    // No refresh on the next call: nothing failed.
    let (sent, _, _) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |_| {
        Answer::Ok(GET_BODY)
    });
    assert_eq!(sent.len(), 1);
}

#[test]
fn a_foreign_cluster_is_refused() {
    let mut cluster = Cluster::from_urls(&[A]).unwrap();
    cluster.set_expected_cluster_id(Some("other".into()));
    let (_, result, _) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |_| {
        Answer::Ok(GET_BODY)
    });
    match result.unwrap_err() {
        Error::ClusterMismatch(m) => {
            assert_eq!(
                (m.endpoint.as_str(), m.expected.as_str(), m.found.as_str()),
                (A, "other", "c1")
            );
        }
        other => panic!("{other:?}"),
    }
    cluster.set_expected_cluster_id(Some("c1".into()));
    let (_, result, _) = run(&mut cluster, Read::new("/k"), Duration::ZERO, |_| {
        Answer::Ok(GET_BODY)
    });
    assert!(result.is_ok());
}

#[test]
fn redirects_are_followed_only_when_allowed_and_path_preserving() {
    fn redirect_to(location: &'static str) -> impl FnMut(&str) -> Answer {
        move |uri| {
            if uri.starts_with(A) {
                Answer::Status(307, location)
            } else {
                Answer::Ok(GET_BODY)
            }
        }
    }
    // Scripted 307s carry their Location in the body here; build them by hand instead.
    let redirect = |status: u16, location: String| {
        let mut r = http::Response::new(Bytes::new());
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
        r.headers_mut()
            .insert("location", location.parse().unwrap());
        Reply::Answer(Duration::ZERO, r)
    };
    let mut sim = Sim::scripted(&[A]);
    sim.cluster.set_allow_redirect(true);
    let mut replies = vec![redirect(307, format!("{B}/v2/keys/k"))].into_iter();
    let followed = sim.drive_with(&mut Call::new(Read::new("/k")), &mut |_, _| {
        replies.next().unwrap_or(Reply::Stop)
    });
    assert!(followed.is_none());
    assert_eq!(sim.sent[1].uri, format!("{B}/v2/keys/k"), "followed");

    // A redirect to another path (how etcd rewrites `a//b`) is never followed.
    let result = sim.script(
        Call::new(Read::new("/k")),
        vec![redirect(301, format!("{B}/v2/keys/other"))],
    );
    let Err(Error::Malformed(m)) = result else {
        panic!("followed: {result:?}")
    };
    assert_eq!(m.status, 301);
    let mut cluster = sim.cluster;

    // Not allowed: not followed.
    cluster.set_allow_redirect(false);
    let (_, result, _) = run(
        &mut cluster,
        Read::new("/k"),
        Duration::ZERO,
        redirect_to("ignored"),
    );
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Malformed);
}
