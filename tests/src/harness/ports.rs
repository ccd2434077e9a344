//! Free loopback ports, never handed out twice within this process.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};

/// A port that was free on 127.0.0.1 a moment ago and that this process has
/// not handed out before. The probe listener is closed before returning, so
/// another process may still take the port; callers retry on bind errors.
pub(crate) fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(Default::default);
    for _ in 0..1000 {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr of a bound listener: {e}"))
            .port();
        drop(listener);
        if handed_out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(port)
        {
            return port;
        }
    }
    panic!("could not find a loopback port not handed out before after 1000 tries");
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn ports_are_unique_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..50).map(|_| super::free_port()).collect::<Vec<_>>()))
            .collect();
        let mut all = HashSet::new();
        for t in threads {
            for p in t.join().unwrap() {
                assert!(p != 0);
                assert!(all.insert(p), "port {p} handed out twice");
            }
        }
    }
}
