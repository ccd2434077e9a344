//! A smoke test of the tokio client against a running etcd with v2 enabled:
//! basic keys, odd bytes, concurrency through one shared pool, cancellation
//! and a dead endpoint. Exits non-zero on the first thing that is wrong.
//!
//! With a throwaway server (the launcher appends the URL):
//! `cargo run -p etcd-tests --bin with-etcd -- cargo run -p etcd-tokio --example smoke_tokio --`;
//! by hand: `cargo run -p etcd-tokio --example smoke_tokio -- http://127.0.0.1:2379`.

use std::time::{Duration, Instant};

use etcd_tokio::{Client, Error};

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn check(ok: bool, what: impl std::fmt::Display) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(format!("FAILED: {what}").into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let url = std::env::args()
        .skip(1)
        .last()
        .or_else(|| std::env::var("ETCD_ENDPOINT").ok())
        .unwrap_or_else(|| etcd_tokio::DEFAULT_ENDPOINT.to_owned());
    let client = Client::new(&url)?;
    let version = client.version().await?;
    println!("connected to {url}: etcd {}", version.server);

    // set / get / delete
    client.set("/smoke/plain", "hello").await?;
    let got = client.get("/smoke/plain").await?;
    check(got.node.value.as_deref() == Some("hello"), "get after set")?;
    client.delete("/smoke/plain").await?;
    let gone = client.get("/smoke/plain").await;
    check(
        matches!(&gone, Err(e) if e.is_key_not_found()),
        format!("get after delete: {gone:?}"),
    )?;
    println!("ok   set/get/delete");

    // a key and value with reserved characters and unicode
    let odd = "/smoke/odd key?#%&+= ключ ü 日本";
    let value = "a=b&c+d %20 # ? ключ\nline two";
    client.set(odd, value).await?;
    let got = client.get(odd).await?;
    check(
        got.node.key == odd,
        format!("odd key came back as {:?}", got.node.key),
    )?;
    check(
        got.node.value.as_deref() == Some(value),
        "odd value round trip",
    )?;
    println!("ok   odd key {odd:?} round-trips");

    // 64 concurrent sets through clones of one client
    let start = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .set(&format!("/smoke/many/{i}"), format!("v{i}"))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let set_time = start.elapsed();
    for i in 0..64 {
        let got = client.get(&format!("/smoke/many/{i}")).await?;
        check(
            got.node.value.as_deref() == Some(format!("v{i}").as_str()),
            format!("/smoke/many/{i} read back {:?}", got.node.value),
        )?;
    }
    println!("ok   64 concurrent sets landed and read back ({set_time:?})");

    // request futures dropped mid-flight, then normal use
    let mut cancelled = 0;
    for _ in 0..200 {
        match tokio::time::timeout(Duration::from_micros(50), client.get("/smoke/many/0")).await {
            Err(_) => cancelled += 1,
            Ok(result) => {
                result?;
            }
        }
    }
    // tokio's timer has millisecond resolution, so most of those 50µs races
    // are won by the request; also drop futures after 0..20 polls.
    let mut dropped_after_polls = 0;
    for i in 0..200 {
        let request = client.get("/smoke/many/1");
        let give_up = async {
            for _ in 0..i % 20 {
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            biased;
            result = request => {
                result?;
            }
            () = give_up => dropped_after_polls += 1,
        }
    }
    for i in 0..100 {
        let got = client.get(&format!("/smoke/many/{}", i % 64)).await?;
        check(got.node.value.is_some(), "request after cancellations")?;
    }
    println!(
        "ok   200 requests raced against 50µs ({cancelled} dropped mid-flight), 200 raced against 0..20 polls \
         ({dropped_after_polls} dropped), then 100 normal requests all succeeded"
    );

    // a dead endpoint fails fast, naming itself
    let dead = Client::new("http://127.0.0.1:1")?;
    let start = Instant::now();
    let result = dead.get("/smoke/plain").await;
    let took = start.elapsed();
    match result {
        Err(Error::Transport(e)) => {
            check(
                e.endpoint().contains("127.0.0.1:1"),
                format!("endpoint {:?}", e.endpoint()),
            )?;
            check(e.request_not_sent(), format!("kind {:?}", e.kind()))?;
            check(took < Duration::from_secs(1), format!("took {took:?}"))?;
            println!("ok   dead endpoint failed in {took:?}: {e}");
        }
        other => check(false, format!("dead endpoint gave {other:?}"))?,
    }

    client
        .delete_with(
            "/smoke",
            etcd_tokio::v2::DeleteOptions::new().recursive(true),
        )
        .await?;
    println!("smoke: all checks passed");
    Ok(())
}
