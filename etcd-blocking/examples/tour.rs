//! A tour of the blocking client against a running etcd with v2 enabled.
//!
//! `scripts/tour.sh` starts a throwaway server and runs this with its URL;
//! by hand: `cargo run -p etcd-blocking --example tour -- http://127.0.0.1:2379`.

use std::time::Duration;

use etcd_blocking::v2::{DeleteOptions, ReadOptions, WriteOptions};
use etcd_blocking::{Client, Error};

fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("ETCD_ENDPOINT").ok())
        .unwrap_or_else(|| etcd_blocking::DEFAULT_ENDPOINT.to_owned());
    let client = Client::new(&url)?;

    let version = client.version()?;
    println!(
        "connected to {url}: etcd {} (cluster {})",
        version.server, version.cluster
    );

    println!("\n-- keys");
    let set = client.set("/tour/greeting", "hello, world")?;
    println!(
        "set    {} = {:?} (created: {}, index {})",
        set.node.key,
        set.node.value.as_deref().unwrap_or(""),
        set.new_key,
        set.node.modified_index
    );
    let got = client.get("/tour/greeting")?;
    println!(
        "get    {} = {:?}",
        got.node.key,
        got.node.value.as_deref().unwrap_or("")
    );
    let odd = "/tour/odd key?#%&+=ключ";
    client.set(odd, "line one\nline two & more = ü")?;
    println!(
        "odd    {:?} round-trips as {:?}",
        odd,
        client.get(odd)?.node.value.unwrap_or_default()
    );
    match client.get("/tour/a//b") {
        Err(Error::Usage(e)) => println!("refused {:?}: {e}", "/tour/a//b"),
        other => println!("unexpected: {other:?}"),
    }
    match client.get("/tour/missing") {
        Err(e) if e.is_key_not_found() => println!("get    /tour/missing -> key not found ({e})"),
        other => println!("unexpected: {other:?}"),
    }

    println!("\n-- compare-and-swap");
    client.test_and_set("/tour/greeting", "hello, etcd", "hello, world")?;
    println!("test_and_set with the right previous value: ok");
    let stale = client
        .test_and_set("/tour/greeting", "nope", "hello, world")
        .unwrap_err();
    println!("test_and_set with a stale previous value: {stale}");
    let mut node = client.get("/tour/greeting")?.node;
    node.value = Some("updated through update()".into());
    client.update(&node)?;
    println!("update(node) read at index {}: ok", node.modified_index);
    let again = client.update(&node).unwrap_err();
    println!("update(node) again with the same, now stale node: {again}");
    let created = client.create("/tour/once", "first")?;
    println!("create /tour/once: {:?}", created.action);
    println!(
        "create /tour/once again: {}",
        client.create("/tour/once", "second").unwrap_err()
    );

    println!("\n-- TTL");
    let ttl = client.write("/tour/session", "token", WriteOptions::new().ttl(2))?;
    println!(
        "write with ttl=2: expires {}",
        ttl.node.expiration.unwrap_or_default()
    );
    client.refresh("/tour/session", 30)?;
    println!(
        "refresh to ttl=30: ttl now {:?}",
        client.get("/tour/session")?.node.ttl
    );
    client.write("/tour/short", "gone soon", WriteOptions::new().ttl(1))?;
    std::thread::sleep(Duration::from_millis(2500));
    println!(
        "a key with ttl=1, 2.5 s later: exists = {}",
        client.contains("/tour/short")?
    );

    println!("\n-- directories");
    client.mkdir("/tour/dir")?;
    println!(
        "mkdir /tour/dir; mkdir again: {}",
        client.mkdir("/tour/dir").unwrap_err()
    );
    for job in ["build", "test", "deploy"] {
        let queued = client.append("/tour/queue", job)?;
        println!("append {job:<6} -> {}", queued.node.key);
    }
    let queue = client.read("/tour/queue", ReadOptions::new().sorted(true))?;
    let jobs: Vec<_> = queue
        .node
        .children()
        .filter_map(|n| n.value.clone())
        .collect();
    println!("queue in order: {jobs:?}");
    let tree = client.read(
        "/tour",
        ReadOptions::new().recursive(true).sorted(true).quorum(true),
    )?;
    println!(
        "recursive, sorted, quorum read of /tour: {} nodes, {} leaves:",
        tree.node.subtree().count(),
        tree.node.leaves().count()
    );
    for leaf in tree.node.leaves() {
        println!("  {} = {:?}", leaf.key, leaf.value.as_deref().unwrap_or(""));
    }
    println!(
        "empty /tour/dir has {} leaves",
        client.get("/tour/dir")?.node.leaves().count()
    );
    println!(
        "delete non-empty /tour as a dir: {}",
        client
            .delete_with("/tour", DeleteOptions::new().dir(true))
            .unwrap_err()
    );
    let popped = client.pop("/tour/greeting")?;
    println!(
        "pop /tour/greeting -> {:?}",
        popped.value.unwrap_or_default()
    );

    println!("\n-- cluster");
    for member in client.members()? {
        println!(
            "member {} {} clients {:?}",
            member.id, member.name, member.client_urls
        );
    }
    println!("leader: {}", client.leader()?.name);
    println!("machines: {:?}", client.machines()?);

    client.delete_with("/tour", DeleteOptions::new().recursive(true))?;
    println!("\ncleaned up /tour");
    Ok(())
}
