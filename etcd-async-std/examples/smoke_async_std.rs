//! A smoke test of the async-std client against a real etcd with v2 enabled.
//!
//! Takes the endpoint URL as its last argument. With a throwaway server:
//! `ETCD_BIN=/usr/bin/etcd cargo run -q -p etcd-tests --bin with-etcd -- cargo run -q -p etcd-async-std --example smoke_async_std --`
//!
//! Covers: set/get/delete; a key full of URL-special and non-ASCII
//! characters; 64 concurrent writes through clones of one client; 200
//! request futures dropped mid-flight followed by 100 requests that must all
//! succeed; a dead endpoint failing fast; and the same set/get under smol's
//! executor. Exits non-zero on the first failed check.

use std::time::{Duration, Instant};

use etcd_async_std::v2::{DeleteOptions, ReadOptions};
use etcd_async_std::{Client, Error};
use etcd_proto::TransportErrorKind;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}

const ROOT: &str = "/smoke-async-std";

fn main() {
    let url = std::env::args()
        .next_back()
        .filter(|a| a.starts_with("http"))
        .unwrap_or_else(|| etcd_async_std::DEFAULT_ENDPOINT.to_owned());
    let outcome = async_std::task::block_on(on_async_std(&url)).and_then(|()| on_smol(&url));
    match outcome {
        Ok(()) => println!("smoke: all checks passed against {url}"),
        Err(e) => {
            eprintln!("smoke: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

async fn on_async_std(url: &str) -> Result<()> {
    let client = Client::new(url)?;
    let version = client.version().await?;
    println!("connected to {url}: etcd {}", version.server);

    // set / get / delete
    let key = format!("{ROOT}/plain");
    let set = client.set(&key, "one").await?;
    check!(
        set.node.value.as_deref() == Some("one"),
        "set returned {set:?}"
    );
    let got = client.get(&key).await?;
    check!(
        got.node.value.as_deref() == Some("one"),
        "get returned {got:?}"
    );
    client.delete(&key).await?;
    match client.get(&key).await {
        Err(e) if e.is_key_not_found() => {}
        other => return Err(format!("get after delete: {other:?}").into()),
    }
    println!("ok  set/get/delete {key}");

    // odd characters in the key and value
    let odd = format!("{ROOT}/odd ?#%&+= key/ключ/鍵/🚀");
    let value = "a value ?#%&+= with\nnewline and ü";
    client.set(&odd, value).await?;
    let got = client.get(&odd).await?;
    check!(
        got.node.key == odd && got.node.value.as_deref() == Some(value),
        "odd key came back as {:?} = {:?}",
        got.node.key,
        got.node.value
    );
    println!("ok  odd key {odd:?} round-trips");

    // 64 concurrent sets through clones of one client
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            async_std::task::spawn(async move {
                client
                    .set(&format!("{ROOT}/concurrent/{i:02}"), format!("value {i}"))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed();
    for i in 0..64 {
        let got = client.get(&format!("{ROOT}/concurrent/{i:02}")).await?;
        check!(
            got.node.value.as_deref() == Some(format!("value {i}").as_str()),
            "concurrent key {i} read back {:?}",
            got.node.value
        );
    }
    let dir = client
        .read(
            &format!("{ROOT}/concurrent"),
            ReadOptions::new().recursive(true),
        )
        .await?;
    check!(
        dir.node.leaves().count() == 64,
        "{} concurrent keys listed",
        dir.node.leaves().count()
    );
    println!("ok  64 concurrent sets landed ({elapsed:?}) and read back");

    // request futures dropped mid-flight must not poison the pool: every
    // later response must be the one for its own request
    let keys: Vec<String> = (0..8).map(|i| format!("{ROOT}/cancel/{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        client.set(key, format!("steady {i}")).await?;
    }
    let (mut finished, mut dropped) = (0, 0);
    for i in 0..200 {
        let get = client.get(&keys[i % keys.len()]);
        match async_std::future::timeout(Duration::from_micros(50), get).await {
            Ok(result) => {
                result?;
                finished += 1;
            }
            Err(_) => dropped += 1,
        }
    }
    // Then drop requests at staggered points (connecting, sending, waiting
    // for the head, mid-body of a larger recursive read).
    let (mut staggered_finished, mut staggered_dropped) = (0, 0);
    let dir = format!("{ROOT}/concurrent");
    for i in 0..200u64 {
        let read = client.read(&dir, ReadOptions::new().recursive(true));
        match async_std::future::timeout(Duration::from_micros(i * 10), read).await {
            Ok(result) => {
                check!(result?.node.leaves().count() == 64, "short listing");
                staggered_finished += 1;
            }
            Err(_) => staggered_dropped += 1,
        }
    }
    let started = Instant::now();
    for i in 0..100 {
        let key = &keys[i % keys.len()];
        let got = client
            .get(key)
            .await
            .map_err(|e| format!("request {i} after the cancellations: {e}"))?;
        let expected = format!("steady {}", i % keys.len());
        check!(
            got.node.key == *key && got.node.value.as_deref() == Some(expected.as_str()),
            "request {i} after the cancellations read {} = {:?}",
            got.node.key,
            got.node.value
        );
    }
    println!(
        "ok  200 gets under a 50 µs timeout ({dropped} dropped mid-flight, {finished} finished), \
         200 reads under 0-2 ms timeouts ({staggered_dropped} dropped, {staggered_finished} finished), \
         then 100 gets all succeeded with their own answers ({:?})",
        started.elapsed()
    );

    // a dead endpoint fails fast, naming the endpoint
    let dead = Client::new("http://127.0.0.1:1")?;
    let started = Instant::now();
    match dead.get("/anything").await {
        Err(Error::Transport(e)) => {
            let elapsed = started.elapsed();
            check!(
                e.endpoint().contains("127.0.0.1:1") && e.to_string().contains("127.0.0.1:1"),
                "the error does not name the endpoint: {e}"
            );
            check!(
                e.kind() == TransportErrorKind::Connect,
                "kind {:?}: {e}",
                e.kind()
            );
            check!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
            println!("ok  dead endpoint failed in {elapsed:?}: {e}");
        }
        other => return Err(format!("dead endpoint: {other:?}").into()),
    }

    client
        .delete_with(ROOT, DeleteOptions::new().recursive(true))
        .await?;
    Ok(())
}

/// The same client code, driven by smol's executor instead of async-std's.
fn on_smol(url: &str) -> Result<()> {
    let client = Client::new(url)?;
    smol::block_on(async {
        let key = format!("{ROOT}-smol/key");
        client.set(&key, "from smol").await?;
        let got = client.get(&key).await?;
        check!(
            got.node.value.as_deref() == Some("from smol"),
            "smol get read {:?}",
            got.node.value
        );
        client
            .delete_with(
                &format!("{ROOT}-smol"),
                DeleteOptions::new().recursive(true),
            )
            .await?;
        println!("ok  set/get under smol::block_on");
        Ok(())
    })
}
