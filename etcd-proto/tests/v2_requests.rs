//! Golden request tests: for every v2 operation and option, the exact request
//! the core builds (method, full URI, `Content-Type`, body bytes). No server.
//!
//! Request shapes follow the recorded curl exchanges in
//! `/work/shared/docs/etcd-samples-*.txt` (e.g. `PUT /v2/keys/samples/foo -d value=bar`,
//! `GET /v2/keys/samples?recursive=true&sorted=true`) and etcd-wire.md §4b.

use std::time::{Duration, Instant};

use bytes::Bytes;
use etcd_proto::v2::{
    Delete, DeleteOptions, GetVersion, Machines, Members, Node, Pop, Read, ReadOptions,
    StatsLeader, StatsSelf, StatsStore, Ttl, Write, WriteOptions,
};
use etcd_proto::{
    Call, Cluster, Endpoint, Error, ErrorKind, Flow, Operation, Replay, Step, Target, Transmit,
    UsageError, Wait, DEFAULT_REQUEST_TIMEOUT,
};
use proptest::prelude::*;

const EP: &str = "http://127.0.0.1:2379";
const FORM: &str = "application/x-www-form-urlencoded";

// ---------------------------------------------------------------------------
// helpers

fn build<O: Operation>(op: &O) -> http::Request<Bytes> {
    let ep = Endpoint::parse(EP).unwrap();
    op.build(&Target::new(&ep, "/v2"))
        .unwrap_or_else(|e| panic!("build failed: {e}"))
}

fn build_err<O: Operation>(op: &O) -> UsageError {
    let ep = Endpoint::parse(EP).unwrap();
    match op.build(&Target::new(&ep, "/v2")) {
        Ok(request) => panic!("expected a usage error, built {request:?}"),
        Err(e) => e,
    }
}

/// Asserts the whole request: method, URI, `Content-Type` and body bytes.
#[track_caller]
fn assert_request(
    request: &http::Request<Bytes>,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
) {
    assert_eq!(request.method().as_str(), method, "method");
    assert_eq!(request.uri().to_string(), uri, "uri");
    assert_eq!(
        request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap()),
        content_type,
        "content-type"
    );
    assert_eq!(
        std::str::from_utf8(request.body()).unwrap(),
        body,
        "body bytes"
    );
}

/// A GET or DELETE: no body and no `Content-Type`.
#[track_caller]
fn assert_bodyless(request: &http::Request<Bytes>, method: &str, uri: &str) {
    assert_request(request, method, uri, None, "");
    assert!(request.headers().get(http::header::AUTHORIZATION).is_none());
}

/// A form write: `Content-Type: application/x-www-form-urlencoded`.
#[track_caller]
fn assert_form(request: &http::Request<Bytes>, method: &str, uri: &str, body: &str) {
    assert_request(request, method, uri, Some(FORM), body);
}

/// Percent-decoding as Go's `url.QueryUnescape` (`plus_is_space`) or
/// `url.PathUnescape` does it. Panics on a malformed escape: the encoder must
/// never produce one.
fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("short % escape");
                out.push(u8::from_str_radix(hex, 16).expect("bad % escape"));
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("decoded bytes are not UTF-8")
}

/// `application/x-www-form-urlencoded` decoding (Go's `url.ParseQuery`), in order.
fn form_decode(s: &str) -> Vec<(String, String)> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name, true), percent_decode(value, true))
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The decoded key path of a request (`/v2/keys/a%20b` → `/a b`).
fn decoded_key(request: &http::Request<Bytes>) -> String {
    let path = request.uri().path();
    let raw = path.strip_prefix("/v2/keys").expect("not a keys path");
    let as_path = percent_decode(raw, false);
    // Form decoding gives the same result: the encoder never emits a raw `+`.
    assert_eq!(as_path, percent_decode(raw, true));
    as_path
}

fn decoded_query(request: &http::Request<Bytes>) -> Vec<(String, String)> {
    form_decode(request.uri().query().unwrap_or(""))
}

fn decoded_body(request: &http::Request<Bytes>) -> Vec<(String, String)> {
    form_decode(std::str::from_utf8(request.body()).unwrap())
}

/// Polls a fresh `Call` once and returns its `Transmit`.
fn transmit<O: Operation>(cluster: &mut Cluster, op: O) -> Transmit
where
    O::Output: std::fmt::Debug,
{
    let mut call = Call::new(op);
    match call.poll(cluster, Instant::now()) {
        Step::Transmit(t) => t,
        other => panic!("expected a transmit, got {other:?}"),
    }
}

fn node(json: &str) -> Node {
    serde_json::from_str(json).unwrap()
}

// ---------------------------------------------------------------------------
// Read

#[test]
fn read_plain() {
    let r = build(&Read::new("/samples/foo"));
    assert_bodyless(&r, "GET", "http://127.0.0.1:2379/v2/keys/samples/foo");
}

#[test]
fn read_recursive() {
    let r = build(&Read::new("/samples").options(ReadOptions::new().recursive(true)));
    assert_bodyless(
        &r,
        "GET",
        "http://127.0.0.1:2379/v2/keys/samples?recursive=true",
    );
}

#[test]
fn read_sorted() {
    let r = build(&Read::new("/samples").options(ReadOptions::new().sorted(true)));
    assert_bodyless(
        &r,
        "GET",
        "http://127.0.0.1:2379/v2/keys/samples?sorted=true",
    );
}

#[test]
fn quorum_is_sent() {
    let r = build(&Read::new("/samples/foo").options(ReadOptions::new().quorum(true)));
    assert_bodyless(
        &r,
        "GET",
        "http://127.0.0.1:2379/v2/keys/samples/foo?quorum=true",
    );
    assert_eq!(r.uri().query(), Some("quorum=true"));
    assert!(decoded_query(&r).contains(&("quorum".to_owned(), "true".to_owned())));
}

#[test]
fn read_recursive_sorted_as_recorded() {
    // Recorded: curl http://127.0.0.1:23790/v2/keys/samples?recursive=true&sorted=true
    let r = build(&Read::new("/samples").options(ReadOptions::new().recursive(true).sorted(true)));
    assert_bodyless(
        &r,
        "GET",
        "http://127.0.0.1:2379/v2/keys/samples?recursive=true&sorted=true",
    );
}

#[test]
fn read_option_combinations() {
    let cases: [(bool, bool, bool, &str); 8] = [
        (false, false, false, ""),
        (true, false, false, "?recursive=true"),
        (false, true, false, "?sorted=true"),
        (false, false, true, "?quorum=true"),
        (true, true, false, "?recursive=true&sorted=true"),
        (true, false, true, "?recursive=true&quorum=true"),
        (false, true, true, "?sorted=true&quorum=true"),
        (true, true, true, "?recursive=true&sorted=true&quorum=true"),
    ];
    for (recursive, sorted, quorum, query) in cases {
        let options = ReadOptions::new()
            .recursive(recursive)
            .sorted(sorted)
            .quorum(quorum);
        let r = build(&Read::new("/dir").options(options));
        assert_bodyless(
            &r,
            "GET",
            &format!("http://127.0.0.1:2379/v2/keys/dir{query}"),
        );
    }
}

#[test]
fn read_options_can_be_switched_off_again() {
    let options = ReadOptions::new()
        .recursive(true)
        .quorum(true)
        .recursive(false)
        .quorum(false);
    let r = build(&Read::new("/dir").options(options));
    assert_bodyless(&r, "GET", "http://127.0.0.1:2379/v2/keys/dir");
}

#[test]
fn key_without_leading_slash_gets_one() {
    let r = build(&Read::new("samples/foo"));
    assert_bodyless(&r, "GET", "http://127.0.0.1:2379/v2/keys/samples/foo");
    let w = build(&Write::new("samples/foo", "bar"));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/foo",
        "value=bar",
    );
    let d = build(&Delete::new("samples/foo"));
    assert_bodyless(&d, "DELETE", "http://127.0.0.1:2379/v2/keys/samples/foo");
}

#[test]
fn trailing_slash_is_kept() {
    let r = build(&Read::new("/samples/").options(ReadOptions::new().recursive(true)));
    assert_bodyless(
        &r,
        "GET",
        "http://127.0.0.1:2379/v2/keys/samples/?recursive=true",
    );
    let r = build(&Read::new("samples/"));
    assert_bodyless(&r, "GET", "http://127.0.0.1:2379/v2/keys/samples/");
}

#[test]
fn root_key() {
    for key in ["/", ""] {
        let r = build(&Read::new(key));
        assert_bodyless(&r, "GET", "http://127.0.0.1:2379/v2/keys/");
        let r = build(&Read::new(key).options(ReadOptions::new().recursive(true).sorted(true)));
        assert_bodyless(
            &r,
            "GET",
            "http://127.0.0.1:2379/v2/keys/?recursive=true&sorted=true",
        );
    }
}

#[test]
fn dots_inside_names_are_not_segments() {
    let r = build(&Read::new("/a/.hidden/b.c/..."));
    assert_bodyless(&r, "GET", "http://127.0.0.1:2379/v2/keys/a/.hidden/b.c/...");
}

// ---------------------------------------------------------------------------
// Write

#[test]
fn write_set_as_recorded() {
    // Recorded: curl -X PUT http://127.0.0.1:23790/v2/keys/samples/foo -d value=bar
    let w = build(&Write::new("/samples/foo", "bar"));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/foo",
        "value=bar",
    );
}

#[test]
fn write_with_ttl_as_recorded() {
    // Recorded: curl -X PUT http://127.0.0.1:23790/v2/keys/samples/ttl -d value=x -d ttl=5
    let w = build(&Write::new("/samples/ttl", "x").options(WriteOptions::new().ttl(5)));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/ttl",
        "value=x&ttl=5",
    );
    // `ttl_change(Ttl::Seconds)` is the same thing; `Ttl::Unset` sends nothing.
    let w2 = build(
        &Write::new("/samples/ttl", "x").options(WriteOptions::new().ttl_change(Ttl::Seconds(5))),
    );
    assert_eq!(w2.body(), w.body());
    let w3 = build(
        &Write::new("/samples/ttl", "x").options(WriteOptions::new().ttl(5).ttl_change(Ttl::Unset)),
    );
    assert_form(
        &w3,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/ttl",
        "value=x",
    );
}

#[test]
fn write_ttl_zero_is_sent() {
    let w = build(&Write::new("/k", "v").options(WriteOptions::new().ttl(0)));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/k",
        "value=v&ttl=0",
    );
}

#[test]
fn write_ttl_clear_sends_empty_ttl() {
    let w = build(
        &Write::new("/k", "v").options(WriteOptions::new().ttl_change(Ttl::Clear).prev_exist(true)),
    );
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/k",
        "value=v&ttl=&prevExist=true",
    );
    assert_eq!(
        decoded_body(&w),
        pairs(&[("value", "v"), ("ttl", ""), ("prevExist", "true")])
    );
}

#[test]
fn mkdir() {
    let w = build(&Write::mkdir("/samples/d"));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/d",
        "dir=true",
    );
}

#[test]
fn mkdir_with_ttl_and_create_only() {
    let w = build(
        &Write::without_value("/samples/d")
            .options(WriteOptions::new().dir(true).ttl(30).prev_exist(false)),
    );
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/d",
        "ttl=30&dir=true&prevExist=false",
    );
}

#[test]
fn directory_write_with_empty_value_sends_no_value() {
    let w = build(&Write::new("/samples/d", "").options(WriteOptions::new().dir(true)));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/d",
        "dir=true",
    );
}

#[test]
fn append_posts_to_the_directory() {
    let w = build(&Write::append("/queue", "job1"));
    assert_form(
        &w,
        "POST",
        "http://127.0.0.1:2379/v2/keys/queue",
        "value=job1",
    );
    let w = build(&Write::new("/queue", "job2").options(WriteOptions::new().append(true).ttl(60)));
    assert_form(
        &w,
        "POST",
        "http://127.0.0.1:2379/v2/keys/queue",
        "value=job2&ttl=60",
    );
}

#[test]
fn refresh() {
    let w = build(&Write::refresh("/samples/ttl", 30));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/ttl",
        "ttl=30&refresh=true&prevExist=true",
    );
    assert!(!decoded_body(&w).iter().any(|(n, _)| n == "value"));
}

#[test]
fn write_prev_value() {
    let w = build(&Write::new("/k", "two").options(WriteOptions::new().prev_value("one")));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/k",
        "value=two&prevValue=one",
    );
}

#[test]
fn write_prev_index() {
    let w = build(&Write::new("/k", "v").options(WriteOptions::new().prev_index(7)));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/k",
        "value=v&prevIndex=7",
    );
    // prevIndex=0 ("no condition" for etcd) is still sent as given.
    let w = build(&Write::new("/k", "v").options(WriteOptions::new().prev_index(0)));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/k",
        "value=v&prevIndex=0",
    );
}

#[test]
fn write_prev_exist() {
    // Recorded: curl -X PUT http://127.0.0.1:23790/v2/keys/samples/foo?prevExist=false -d value=x
    // (the core sends the condition in the form body, which etcd merges with the query).
    let w = build(&Write::new("/samples/foo", "x").options(WriteOptions::new().prev_exist(false)));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/foo",
        "value=x&prevExist=false",
    );
    let w = build(&Write::new("/samples/foo", "x").options(WriteOptions::new().prev_exist(true)));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/foo",
        "value=x&prevExist=true",
    );
}

#[test]
fn write_no_value_on_success() {
    let w = build(&Write::new("/k", "v").options(WriteOptions::new().no_value_on_success(true)));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/k",
        "value=v&noValueOnSuccess=true",
    );
}

#[test]
fn write_every_option_in_a_fixed_order() {
    let options = WriteOptions::new()
        .no_value_on_success(true)
        .prev_exist(true)
        .prev_index(3)
        .prev_value("p")
        .ttl(10);
    let w = build(&Write::new("/k", "v").options(options));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/k",
        "value=v&ttl=10&prevValue=p&prevIndex=3&prevExist=true&noValueOnSuccess=true",
    );
}

#[test]
fn empty_string_value_is_sent() {
    let w = build(&Write::new("/k", ""));
    assert_form(&w, "PUT", "http://127.0.0.1:2379/v2/keys/k", "value=");
    assert_eq!(decoded_body(&w), pairs(&[("value", "")]));
    // Bytes work as well as strings.
    let w = build(&Write::new("/k", b"bytes".as_slice()));
    assert_form(&w, "PUT", "http://127.0.0.1:2379/v2/keys/k", "value=bytes");
}

#[test]
fn write_without_value_sends_an_empty_form() {
    let w = build(&Write::without_value("/k"));
    assert_form(&w, "PUT", "http://127.0.0.1:2379/v2/keys/k", "");
}

#[test]
fn update_of_a_key() {
    // The recorded node of `PUT /v2/keys/samples/ttl -d value=x -d ttl=5`.
    let n = node(
        r#"{"key":"/samples/ttl","value":"x","expiration":"2026-11-21T05:45:38.614698155Z","ttl":5,"modifiedIndex":5,"createdIndex":5}"#,
    );
    let w = build(&Write::update(&n));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/ttl",
        "value=x&ttl=5&prevIndex=5&prevExist=true",
    );
    assert_eq!(Write::update(&n).replay(), Replay::AtMostOnce);

    // Without a TTL none is sent (and the key becomes/stays permanent).
    let n = node(r#"{"key":"/samples/foo","value":"bar","modifiedIndex":4,"createdIndex":4}"#);
    let w = build(&Write::update(&n));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/foo",
        "value=bar&prevIndex=4&prevExist=true",
    );

    // A value edited by the caller goes out, still guarded by the old index.
    let mut edited = n.clone();
    edited.value = Some("new value".into());
    let w = build(&Write::update(&edited));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/foo",
        "value=new%20value&prevIndex=4&prevExist=true",
    );
}

#[test]
fn update_of_a_directory() {
    let dir = node(
        r#"{"key":"/samples/d","dir":true,"expiration":"2026-11-21T05:46:03.1Z","ttl":30,"modifiedIndex":9,"createdIndex":9}"#,
    );
    let w = build(&Write::update(&dir));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples/d",
        "ttl=30&dir=true&prevExist=true",
    );
    let body = decoded_body(&w);
    assert!(!body.iter().any(|(n, _)| n == "prevIndex" || n == "value"));

    // A directory read with its children, no TTL.
    let dir = node(
        r#"{"key":"/samples","dir":true,"nodes":[{"key":"/samples/foo","value":"bar","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":4,"createdIndex":4}"#,
    );
    let w = build(&Write::update(&dir));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/samples",
        "dir=true&prevExist=true",
    );
}

// ---------------------------------------------------------------------------
// Delete and Pop

#[test]
fn delete_plain() {
    let d = build(&Delete::new("/samples/foo"));
    assert_bodyless(&d, "DELETE", "http://127.0.0.1:2379/v2/keys/samples/foo");
}

#[test]
fn delete_dir() {
    let d = build(&Delete::new("/samples/d").options(DeleteOptions::new().dir(true)));
    assert_bodyless(
        &d,
        "DELETE",
        "http://127.0.0.1:2379/v2/keys/samples/d?dir=true",
    );
}

#[test]
fn delete_recursive() {
    let d = build(&Delete::new("/samples").options(DeleteOptions::new().recursive(true)));
    assert_bodyless(
        &d,
        "DELETE",
        "http://127.0.0.1:2379/v2/keys/samples?recursive=true",
    );
    let d = build(&Delete::new("/samples").options(DeleteOptions::new().dir(true).recursive(true)));
    assert_bodyless(
        &d,
        "DELETE",
        "http://127.0.0.1:2379/v2/keys/samples?dir=true&recursive=true",
    );
}

#[test]
fn delete_prev_value() {
    let d = build(&Delete::new("/samples/foo").options(DeleteOptions::new().prev_value("bar")));
    assert_bodyless(
        &d,
        "DELETE",
        "http://127.0.0.1:2379/v2/keys/samples/foo?prevValue=bar",
    );
}

#[test]
fn delete_prev_index() {
    let d = build(&Delete::new("/samples/foo").options(DeleteOptions::new().prev_index(4)));
    assert_bodyless(
        &d,
        "DELETE",
        "http://127.0.0.1:2379/v2/keys/samples/foo?prevIndex=4",
    );
    let d = build(
        &Delete::new("/samples/foo").options(DeleteOptions::new().prev_index(4).prev_value("bar")),
    );
    assert_bodyless(
        &d,
        "DELETE",
        "http://127.0.0.1:2379/v2/keys/samples/foo?prevValue=bar&prevIndex=4",
    );
}

#[test]
fn delete_condition_cannot_leak_into_the_path() {
    // python-etcd sent `/v2/keys/a?b?prevValue=…`: the key became `a` and the
    // delete unconditional. Here the `?` of the key is escaped.
    let d = build(&Delete::new("/a?b").options(DeleteOptions::new().prev_value("x y")));
    assert_bodyless(
        &d,
        "DELETE",
        "http://127.0.0.1:2379/v2/keys/a%3Fb?prevValue=x%20y",
    );
    assert_eq!(decoded_key(&d), "/a?b");
    assert_eq!(decoded_query(&d), pairs(&[("prevValue", "x y")]));
}

#[test]
fn pop_sends_a_plain_delete() {
    let p = build(&Pop(Delete::new("/samples/foo")));
    assert_bodyless(&p, "DELETE", "http://127.0.0.1:2379/v2/keys/samples/foo");
    let p = build(&Pop(
        Delete::new("/samples/foo").options(DeleteOptions::new().prev_index(6))
    ));
    assert_bodyless(
        &p,
        "DELETE",
        "http://127.0.0.1:2379/v2/keys/samples/foo?prevIndex=6",
    );
}

// ---------------------------------------------------------------------------
// cluster operations

#[test]
fn cluster_operation_requests() {
    assert_bodyless(&build(&GetVersion), "GET", "http://127.0.0.1:2379/version");
    assert_bodyless(
        &build(&Machines),
        "GET",
        "http://127.0.0.1:2379/v2/machines",
    );
    assert_bodyless(&build(&Members), "GET", "http://127.0.0.1:2379/v2/members");
    assert_bodyless(
        &build(&StatsSelf),
        "GET",
        "http://127.0.0.1:2379/v2/stats/self",
    );
    assert_bodyless(
        &build(&StatsLeader),
        "GET",
        "http://127.0.0.1:2379/v2/stats/leader",
    );
    assert_bodyless(
        &build(&StatsStore),
        "GET",
        "http://127.0.0.1:2379/v2/stats/store",
    );
}

// ---------------------------------------------------------------------------
// encoding of keys and values

#[test]
fn special_characters_golden() {
    let w = build(&Write::new("/a b?c#d%e&f+g=h", "a b+c&d=e\nf%é"));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/a%20b%3Fc%23d%25e%26f%2Bg%3Dh",
        "value=a%20b%2Bc%26d%3De%0Af%25%C3%A9",
    );
    let r = build(&Read::new("/ключ/日本").options(ReadOptions::new().quorum(true)));
    assert_bodyless(
        &r,
        "GET",
        "http://127.0.0.1:2379/v2/keys/%D0%BA%D0%BB%D1%8E%D1%87/%E6%97%A5%E6%9C%AC?quorum=true",
    );
    let d = build(&Delete::new("/k").options(DeleteOptions::new().prev_value("1+1=2 & more")));
    assert_bodyless(
        &d,
        "DELETE",
        "http://127.0.0.1:2379/v2/keys/k?prevValue=1%2B1%3D2%20%26%20more",
    );
    // Unreserved characters stay as they are.
    let w = build(&Write::new("/a.b-c_d~e", "A.z-0_9~"));
    assert_form(
        &w,
        "PUT",
        "http://127.0.0.1:2379/v2/keys/a.b-c_d~e",
        "value=A.z-0_9~",
    );
}

const TRICKY: &[&str] = &[
    "plain",
    "with space",
    "  leading and trailing  ",
    "ключ",
    "日本語",
    "emoji 🦀🎉",
    "?",
    "a?b",
    "#",
    "frag#ment",
    "%",
    "%25",
    "100%",
    "%zz",
    "&",
    "a&b=c",
    "+",
    "1+1",
    "=",
    "==",
    "\n",
    "line1\nline2\r\n",
    "tab\there",
    "nul\0byte",
    "quote\"s'and<angle>",
    "semi;colon,comma",
    "back\\slash",
    "[brackets]{braces}|pipe^caret`tick",
    "~-._",
    "é",
    "\u{7f}\u{80}\u{ffff}\u{10ffff}",
];

#[test]
fn tricky_strings_round_trip() {
    for s in TRICKY {
        let key = format!("/dir/{s}");
        let w = build(&Write::new(key.as_str(), s).options(WriteOptions::new().prev_value(*s)));
        assert_eq!(decoded_key(&w), key, "write key {s:?}");
        assert_eq!(
            decoded_body(&w),
            pairs(&[("value", *s), ("prevValue", *s)]),
            "write body {s:?}"
        );
        assert!(w.uri().query().is_none(), "write put a query for {s:?}");

        let r = build(&Read::new(key.as_str()).options(ReadOptions::new().recursive(true)));
        assert_eq!(decoded_key(&r), key, "read key {s:?}");
        assert_eq!(decoded_query(&r), pairs(&[("recursive", "true")]));

        let d = build(&Delete::new(key.as_str()).options(DeleteOptions::new().prev_value(*s)));
        assert_eq!(decoded_key(&d), key, "delete key {s:?}");
        assert_eq!(
            decoded_query(&d),
            pairs(&[("prevValue", *s)]),
            "delete query {s:?}"
        );
    }
}

#[test]
fn encoded_requests_contain_no_ambiguous_bytes() {
    for s in TRICKY {
        let key = format!("/{s}");
        let w = build(&Write::new(key.as_str(), s));
        let path = w.uri().path();
        assert!(
            path.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)),
            "{path}"
        );
        let body = std::str::from_utf8(w.body()).unwrap();
        let value = body.strip_prefix("value=").unwrap();
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
            "{body}"
        );
    }
}

/// A key with no empty, `.` or `..` segment, as given and as it must decode.
fn canonical_key() -> impl Strategy<Value = (String, String)> {
    let segment = "[^/]{1,8}".prop_filter("dot segment", |s| s != "." && s != "..");
    (
        prop::collection::vec(segment, 1..5),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(segments, leading, trailing)| {
            let joined = segments.join("/");
            let slash = if trailing { "/" } else { "" };
            let given = if leading {
                format!("/{joined}{slash}")
            } else {
                format!("{joined}{slash}")
            };
            (given, format!("/{joined}{slash}"))
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_keys_and_values_round_trip(
        (key, expected_path) in canonical_key(),
        value in any::<String>(),
        prev in any::<String>(),
    ) {
        let w = build(&Write::new(key.as_str(), value.as_bytes()).options(WriteOptions::new().prev_value(prev.as_str())));
        prop_assert_eq!(decoded_key(&w), expected_path.clone());
        prop_assert_eq!(decoded_body(&w), pairs(&[("value", value.as_str()), ("prevValue", prev.as_str())]));

        let r = build(&Read::new(key.as_str()).options(ReadOptions::new().sorted(true)));
        prop_assert_eq!(decoded_key(&r), expected_path.clone());
        prop_assert_eq!(decoded_query(&r), pairs(&[("sorted", "true")]));

        let d = build(&Delete::new(key.as_str()).options(DeleteOptions::new().prev_value(prev.as_str())));
        prop_assert_eq!(decoded_key(&d), expected_path);
        prop_assert_eq!(decoded_query(&d), pairs(&[("prevValue", prev.as_str())]));
    }
}

// ---------------------------------------------------------------------------
// usage errors

#[test]
fn non_canonical_keys_are_refused() {
    for key in [
        "a//b", "/a//b", "a/./b", "/a/../b", "//a", "a//", "//", "/.", "..", "/a/.",
    ] {
        let expected = UsageError::NonCanonicalKey {
            key: key.to_owned(),
        };
        assert_eq!(build_err(&Read::new(key)), expected, "read {key}");
        assert_eq!(build_err(&Write::new(key, "v")), expected, "write {key}");
        assert_eq!(build_err(&Write::mkdir(key)), expected, "mkdir {key}");
        assert_eq!(build_err(&Delete::new(key)), expected, "delete {key}");
        assert_eq!(build_err(&Pop(Delete::new(key))), expected, "pop {key}");
    }
}

#[test]
fn directory_with_value_is_refused() {
    let op = Write::new("/d", "v").options(WriteOptions::new().dir(true));
    assert_eq!(build_err(&op), UsageError::DirectoryWithValue);
}

#[test]
fn non_utf8_value_is_refused() {
    let op = Write::new("/k", b"ab\xffcd".as_slice());
    assert_eq!(build_err(&op), UsageError::ValueNotUtf8 { valid_up_to: 2 });
    let op = Write::new("/k", [0xc3u8]); // a truncated 2-byte sequence
    assert_eq!(build_err(&op), UsageError::ValueNotUtf8 { valid_up_to: 0 });
    // Checked before the directory rule.
    let op = Write::new("/d", [0xffu8]).options(WriteOptions::new().dir(true));
    assert_eq!(build_err(&op), UsageError::ValueNotUtf8 { valid_up_to: 0 });
}

#[test]
fn refresh_with_a_value_is_refused() {
    let op =
        Write::new("/k", "v").options(WriteOptions::new().refresh(true).ttl(5).prev_exist(true));
    assert_eq!(build_err(&op), UsageError::RefreshWithValue);
    let op = Write::new("/k", "").options(WriteOptions::new().refresh(true).ttl(5));
    assert_eq!(build_err(&op), UsageError::RefreshWithValue);
}

#[test]
fn refresh_without_ttl_is_refused() {
    let op = Write::without_value("/k").options(WriteOptions::new().refresh(true).prev_exist(true));
    assert_eq!(build_err(&op), UsageError::RefreshWithoutTtl);
    let op = Write::without_value("/k").options(
        WriteOptions::new()
            .refresh(true)
            .ttl_change(Ttl::Clear)
            .prev_exist(true),
    );
    assert_eq!(build_err(&op), UsageError::RefreshWithoutTtl);
}

#[test]
fn usage_errors_end_a_call_without_sending() {
    let mut cluster = Cluster::from_urls(&[EP]).unwrap();
    let mut call = Call::new(Write::new("/d", "v").options(WriteOptions::new().dir(true)));
    match call.poll(&mut cluster, Instant::now()) {
        Step::Done(Err(e)) => {
            assert_eq!(e.kind(), ErrorKind::Usage);
            assert!(matches!(e, Error::Usage(UsageError::DirectoryWithValue)));
        }
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn uri_too_long_is_a_usage_error_not_a_request_elsewhere() {
    // http::Uri holds at most 64 KiB. These used to be sent to the bare
    // endpoint URL (`DELETE http://127.0.0.1:2379`) instead.
    let long_key = format!("/{}", "k".repeat(70_000));
    assert!(matches!(
        build_err(&Read::new(long_key.as_str())),
        UsageError::InvalidRequestUri { .. }
    ));
    assert!(matches!(
        build_err(&Write::new(long_key.as_str(), "v")),
        UsageError::InvalidRequestUri { .. }
    ));
    let op = Delete::new("/k").options(DeleteOptions::new().prev_value("é".repeat(12_000)));
    assert!(matches!(
        build_err(&op),
        UsageError::InvalidRequestUri { .. }
    ));
    // A large value goes in the body and is fine.
    let big = "v".repeat(200_000);
    let w = build(&Write::new("/k", big.as_str()));
    assert_eq!(w.uri().to_string(), "http://127.0.0.1:2379/v2/keys/k");
    assert_eq!(w.body().len(), "value=".len() + big.len());
}

// ---------------------------------------------------------------------------
// Cluster settings: version prefix, base path, auth, timeouts

#[test]
fn version_prefix_and_base_path() {
    let mut cluster = Cluster::from_urls(&["http://h:1/base"]).unwrap();
    cluster.set_version_prefix("/etcd/v2");
    assert_eq!(cluster.version_prefix(), "/etcd/v2");

    let t = transmit(&mut cluster, Read::new("/a b"));
    assert_bodyless(&t.request, "GET", "http://h:1/base/etcd/v2/keys/a%20b");
    let t = transmit(&mut cluster, Write::new("k", "v"));
    assert_form(
        &t.request,
        "PUT",
        "http://h:1/base/etcd/v2/keys/k",
        "value=v",
    );
    let t = transmit(
        &mut cluster,
        Delete::new("/k").options(DeleteOptions::new().recursive(true)),
    );
    assert_bodyless(
        &t.request,
        "DELETE",
        "http://h:1/base/etcd/v2/keys/k?recursive=true",
    );
    let t = transmit(&mut cluster, Members);
    assert_bodyless(&t.request, "GET", "http://h:1/base/etcd/v2/members");
    let t = transmit(&mut cluster, StatsSelf);
    assert_bodyless(&t.request, "GET", "http://h:1/base/etcd/v2/stats/self");
    // /version is outside the v2 prefix but still under the endpoint's base path.
    let t = transmit(&mut cluster, GetVersion);
    assert_bodyless(&t.request, "GET", "http://h:1/base/version");
}

#[test]
fn version_prefix_is_normalised() {
    let mut cluster = Cluster::from_urls(&["http://h:1/base/"]).unwrap();
    for (given, stored) in [
        ("etcd/v2/", "/etcd/v2"),
        ("/etcd/v2/", "/etcd/v2"),
        ("/v2", "/v2"),
        ("", ""),
        ("/", ""),
    ] {
        cluster.set_version_prefix(given);
        assert_eq!(cluster.version_prefix(), stored, "{given:?}");
        let t = transmit(&mut cluster, Read::new("/k"));
        assert_eq!(
            t.request.uri().to_string(),
            format!("http://h:1/base{stored}/keys/k")
        );
    }
}

#[test]
fn default_version_prefix_is_v2() {
    let mut cluster = Cluster::from_urls(&["https://gw.example:8443/etcd"]).unwrap();
    assert_eq!(cluster.version_prefix(), "/v2");
    let t = transmit(&mut cluster, Read::new("/k"));
    assert_eq!(
        t.request.uri().to_string(),
        "https://gw.example:8443/etcd/v2/keys/k"
    );
}

#[test]
fn version_prefix_that_cannot_be_in_a_uri_is_a_usage_error() {
    let mut cluster = Cluster::from_urls(&[EP]).unwrap();
    cluster.set_version_prefix("/etcd v2");
    let mut call = Call::new(Read::new("/k"));
    match call.poll(&mut cluster, Instant::now()) {
        Step::Done(Err(Error::Usage(UsageError::InvalidRequestUri { .. }))) => {}
        other => panic!("expected InvalidRequestUri, got {other:?}"),
    }
}

#[test]
fn basic_auth_is_added_by_the_call() {
    let mut cluster = Cluster::from_urls(&[EP]).unwrap();
    // Without credentials: no header.
    let t = transmit(&mut cluster, Read::new("/v2k"));
    assert!(t
        .request
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_none());

    // The credentials of etcd-samples-extra.txt §5 (`curl -u root:v2rootpw`).
    cluster.set_basic_auth("root", "v2rootpw");
    let t = transmit(&mut cluster, Read::new("/v2k"));
    let auth = t
        .request
        .headers()
        .get(http::header::AUTHORIZATION)
        .unwrap();
    assert_eq!(auth, "Basic cm9vdDp2MnJvb3Rwdw==");
    assert!(auth.is_sensitive());
    assert_eq!(
        t.request.uri().to_string(),
        "http://127.0.0.1:2379/v2/keys/v2k"
    );

    // Every request, writes (keeping their Content-Type) and cluster calls too.
    let t = transmit(&mut cluster, Write::new("/v2k", "1"));
    assert_eq!(
        t.request
            .headers()
            .get(http::header::AUTHORIZATION)
            .unwrap(),
        "Basic cm9vdDp2MnJvb3Rwdw=="
    );
    assert_eq!(
        t.request.headers().get(http::header::CONTENT_TYPE).unwrap(),
        FORM
    );
    assert_eq!(t.request.body().as_ref(), b"value=1");
    let t = transmit(&mut cluster, Members);
    assert_eq!(
        t.request
            .headers()
            .get(http::header::AUTHORIZATION)
            .unwrap(),
        "Basic cm9vdDp2MnJvb3Rwdw=="
    );

    // Non-ASCII credentials are UTF-8 before base64 ("ü:p" → w7w6cA==).
    cluster.set_basic_auth("ü", "p");
    let t = transmit(&mut cluster, Read::new("/k"));
    assert_eq!(
        t.request
            .headers()
            .get(http::header::AUTHORIZATION)
            .unwrap(),
        "Basic w7w6cA=="
    );
}

#[test]
fn replay_classification() {
    let safe: Vec<(&str, Replay)> = vec![
        ("read", Read::new("/k").replay()),
        (
            "read recursive quorum",
            Read::new("/k")
                .options(ReadOptions::new().recursive(true).quorum(true))
                .replay(),
        ),
        ("refresh", Write::refresh("/k", 5).replay()),
        ("version", GetVersion.replay()),
        ("machines", Machines.replay()),
        ("members", Members.replay()),
        ("stats self", StatsSelf.replay()),
        ("stats leader", StatsLeader.replay()),
        ("stats store", StatsStore.replay()),
    ];
    for (name, replay) in safe {
        assert_eq!(replay, Replay::Safe, "{name}");
    }

    // Every write but a plain refresh: applying one twice is observable
    // (two modifiedIndex steps, two watch events).
    let at_most_once: Vec<(&str, Replay)> = vec![
        ("set", Write::new("/k", "v").replay()),
        (
            "set with ttl",
            Write::new("/k", "v")
                .options(WriteOptions::new().ttl(5))
                .replay(),
        ),
        ("mkdir", Write::mkdir("/d").replay()),
        (
            "update-only (prevExist=true)",
            Write::new("/k", "v")
                .options(WriteOptions::new().prev_exist(true))
                .replay(),
        ),
        (
            "prevIndex=0 (no condition)",
            Write::new("/k", "v")
                .options(WriteOptions::new().prev_index(0))
                .replay(),
        ),
        (
            "create (prevExist=false)",
            Write::new("/k", "v")
                .options(WriteOptions::new().prev_exist(false))
                .replay(),
        ),
        (
            "mkdir create-only",
            Write::without_value("/d")
                .options(WriteOptions::new().dir(true).prev_exist(false))
                .replay(),
        ),
        ("append", Write::append("/q", "v").replay()),
        (
            "compare-and-swap on value",
            Write::new("/k", "v")
                .options(WriteOptions::new().prev_value("old"))
                .replay(),
        ),
        (
            "compare-and-swap on index",
            Write::new("/k", "v")
                .options(WriteOptions::new().prev_index(7))
                .replay(),
        ),
        (
            "update(node)",
            Write::update(&node(
                r#"{"key":"/k","value":"v","modifiedIndex":7,"createdIndex":7}"#,
            ))
            .replay(),
        ),
        ("delete", Delete::new("/k").replay()),
        (
            "delete recursive",
            Delete::new("/d")
                .options(DeleteOptions::new().recursive(true))
                .replay(),
        ),
        (
            "compare-and-delete",
            Delete::new("/k")
                .options(DeleteOptions::new().prev_value("v"))
                .replay(),
        ),
        ("pop", Pop(Delete::new("/k")).replay()),
    ];
    for (name, replay) in at_most_once {
        assert_eq!(replay, Replay::AtMostOnce, "{name}");
    }
}

#[test]
fn ordinary_calls_use_the_request_timeout() {
    // With a single endpoint, its one attempt gets the whole budget.
    let mut single = Cluster::from_urls(&[EP]).unwrap();
    assert_eq!(
        transmit(&mut single, Read::new("/k")).timeout,
        Some(DEFAULT_REQUEST_TIMEOUT)
    );
    let mut cluster = Cluster::from_urls(&[EP, "http://127.0.0.2:2379"]).unwrap();
    assert_eq!(cluster.request_timeout(), Some(DEFAULT_REQUEST_TIMEOUT));
    assert_eq!(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs(5));

    fn timeouts(cluster: &mut Cluster) -> Vec<Option<Duration>> {
        vec![
            transmit(cluster, Read::new("/k")).timeout,
            transmit(cluster, Write::new("/k", "v")).timeout,
            transmit(cluster, Delete::new("/k")).timeout,
            transmit(cluster, Pop(Delete::new("/k"))).timeout,
            transmit(cluster, GetVersion).timeout,
            transmit(cluster, Machines).timeout,
            transmit(cluster, Members).timeout,
            transmit(cluster, StatsSelf).timeout,
            transmit(cluster, StatsLeader).timeout,
            transmit(cluster, StatsStore).timeout,
        ]
    }

    // A first attempt with another endpoint left gets a third of the request
    // timeout (at least 500 ms), so the call can still fail over within it.
    for t in timeouts(&mut cluster) {
        assert_eq!(t, cluster.request_timeout().map(|t| t / 3));
    }
    cluster.set_request_timeout(Some(Duration::from_millis(1200)));
    for t in timeouts(&mut cluster) {
        assert_eq!(t, Some(Duration::from_millis(500)));
    }
    cluster.set_request_timeout(Some(Duration::from_millis(300)));
    for t in timeouts(&mut cluster) {
        assert_eq!(t, Some(Duration::from_millis(300)));
    }
    cluster.set_request_timeout(None);
    for t in timeouts(&mut cluster) {
        assert_eq!(t, None);
    }

    assert_eq!(Read::new("/k").wait(), Wait::Request);
    assert_eq!(Write::new("/k", "v").wait(), Wait::Request);
    assert_eq!(Delete::new("/k").wait(), Wait::Request);
}

#[test]
fn call_request_matches_the_operation_build() {
    let mut cluster = Cluster::from_urls(&[EP]).unwrap();
    let op = Write::new("/samples/foo", "bar").options(WriteOptions::new().ttl(5));
    let expected = build(&op);
    let t = transmit(&mut cluster, op);
    assert_eq!(t.request.method(), expected.method());
    assert_eq!(t.request.uri(), expected.uri());
    assert_eq!(t.request.headers(), expected.headers());
    assert_eq!(t.request.body(), expected.body());
}

#[test]
fn call_polled_twice_without_an_outcome_is_out_of_order() {
    let mut cluster = Cluster::from_urls(&[EP]).unwrap();
    let mut call = Call::new(Read::new("/k"));
    let _ = call.poll(&mut cluster, Instant::now());
    match call.poll(&mut cluster, Instant::now()) {
        Step::Done(Err(Error::Usage(UsageError::FlowOutOfOrder { .. }))) => {}
        other => panic!("expected FlowOutOfOrder, got {other:?}"),
    }
}
