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

    v3_tour(&client)?;
    Ok(())
}

/// The v3 API through the JSON gateway: KV, transactions, leases, a watch.
fn v3_tour(client: &Client) -> Result<(), etcd_blocking::Error> {
    use etcd_blocking::v3::{Compare, CompareOp, Get, KeyRange, Put, Txn, Watch, WatchItem};

    println!("\n-- etcd v3");
    let v3 = client.v3();
    let put = v3.put("tour3/name", "alpha")?;
    println!("put tour3/name at revision {}", put.header.revision);
    let kv = v3.get("tour3/name")?.expect("just written");
    println!(
        "get tour3/name -> {:?} (create {}, mod {}, version {})",
        kv.value_str().unwrap_or(""),
        kv.create_revision,
        kv.mod_revision,
        kv.version
    );
    let odd: Vec<u8> = b"tour3/\x00\xff odd".to_vec();
    v3.put(odd.clone(), vec![0u8, 255, 10])?;
    println!(
        "binary key and value round-trip: {}",
        v3.get(odd)?.map(|kv| kv.value) == Some(vec![0u8, 255, 10])
    );
    let swapped = v3.txn(
        Txn::new()
            .when([Compare::value("tour3/name", CompareOp::Equal, "alpha")])
            .and_then([Put::new("tour3/name", "beta").into()])
            .or_else([Get::new("tour3/name").into()]),
    )?;
    println!(
        "txn: name == alpha ? set beta -> succeeded {}",
        swapped.succeeded
    );
    let (_, counter) = v3.update_with("tour3/counter", |kv| {
        let n: u64 = kv.and_then(|kv| kv.value_str()?.parse().ok()).unwrap_or(0);
        (n + 1).to_string().into_bytes()
    })?;
    println!(
        "update_with counter -> {}",
        String::from_utf8_lossy(&counter)
    );

    let lease = v3.grant(10)?;
    v3.put_with(Put::new("tour3/session", "up").lease(lease.id))?;
    println!(
        "lease {:x}: {} s left, keys {:?}",
        lease.id,
        v3.time_to_live(lease.id, true)?.ttl,
        v3.time_to_live(lease.id, true)?
            .keys
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
    );
    v3.revoke(lease.id)?;
    println!(
        "revoked: tour3/session is {}",
        if v3.get("tour3/session")?.is_some() {
            "still there"
        } else {
            "gone"
        }
    );

    let start = v3.put("tour3/watched", "1")?.header.revision;
    v3.put("tour3/watched", "2")?;
    v3.delete("tour3/watched")?;
    let watch = Watch::new(KeyRange::prefix("tour3/watched")).start_revision(start);
    let mut seen = 0;
    for item in v3.watch(watch) {
        match item? {
            WatchItem::Created { .. } => println!("watch created (from revision {start})"),
            WatchItem::Events(batch) => {
                for event in &batch.events {
                    seen += 1;
                    println!(
                        "  {:?} {} = {:?} at {}",
                        event.kind,
                        event.kv.key_str().unwrap_or("?"),
                        event.kv.value_str().unwrap_or(""),
                        event.kv.mod_revision
                    );
                }
            }
            other => println!("  {other:?}"),
        }
        if seen >= 3 {
            break;
        }
    }
    let status = v3.status()?;
    println!(
        "status: etcd {}, leader {:x}, db {} bytes",
        status.version, status.leader, status.db_size
    );
    let deleted = v3.delete_prefix("tour3/")?.deleted;
    println!("cleaned up tour3/ ({deleted} keys)");
    Ok(())
}
