//! Takes a lock and holds it until killed: `lock-holder URL NAME TTL`.
//! Prints `acquired <key>` once it holds the lock. The lock tests SIGKILL it
//! to show that a dead holder's lock frees itself when its TTL runs out.

use etcd_proto::v2::LockOptions;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, name, ttl] = args.as_slice() else {
        eprintln!("usage: lock-holder URL NAME TTL");
        std::process::exit(2);
    };
    let client = etcd_blocking::Client::new(url).expect("endpoint");
    let ttl: u64 = ttl.parse().expect("ttl in seconds");
    let guard = client
        .lock(name, LockOptions::new().ttl(ttl))
        .expect("lock");
    println!("acquired {}", guard.lock().key);
    loop {
        std::thread::park();
    }
}
