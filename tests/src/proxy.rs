//! [`TcpProxy`]: a loopback TCP relay that counts the connections it accepts,
//! so tests can see how a client uses connections (keep-alive, pooling).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

/// Relays every connection to an upstream address, byte for byte.
#[derive(Debug)]
pub struct TcpProxy {
    url: String,
    accepted: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl TcpProxy {
    /// Starts relaying a free loopback port to `upstream_url` (`http://host:port`).
    pub fn start(upstream_url: &str) -> TcpProxy {
        let upstream = upstream_url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let (count, stop) = (accepted.clone(), stopping.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                relay(client, server);
            }
        });
        TcpProxy {
            url: format!("http://{addr}"),
            accepted,
            stopping,
            addr,
        }
    }

    /// The proxy's URL.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies both directions until either side closes, each write at once
/// (no Nagle delay: a relay must not add 40 ms to each small answer).
fn relay(client: TcpStream, server: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let pairs = [
        (client.try_clone(), server.try_clone()),
        (server.try_clone(), client.try_clone()),
    ];
    for pair in pairs {
        if let (Ok(mut from), Ok(mut to)) = pair {
            thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = to.shutdown(Shutdown::Write);
            });
        }
    }
}
