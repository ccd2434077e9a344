//! [`FaultProxy`]: a loopback TCP relay whose behaviour a test switches at
//! any moment, to inject network faults between a client and one etcd
//! member: partitions, stalled or cut responses, resets, refused connects,
//! latency.
//!
//! Every connection gets two relay threads, one per direction. Each reads
//! whatever arrives (with a short timeout, so it sees a new [`Fault`] and the
//! proxy's drop promptly), asks the fault currently set what to do with that
//! chunk, and forwards all, part or none of it, or closes the connection.
//! Bytes a fault drops stay dropped: healing changes what happens from then
//! on, it does not replay anything.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a blocked relay thread waits before looking at the fault and the
/// stop flag again: the latency of a switch for an idle connection.
const TICK: Duration = Duration::from_millis(50);
/// How often the accept loop polls its non-blocking listener.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Longest wait for the upstream to accept a relayed connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// What a [`FaultProxy`] does to traffic. "Server→client" is the direction
/// from the upstream to the proxy's client.
///
/// A connection is "open" once the proxy has accepted it (within a few
/// milliseconds of the connect); one still in the listen backlog when the
/// fault is set counts as new.
///
/// Byte counts (`n`) are per direction of each connection and start when the
/// fault is [set](FaultProxy::set): at 0 for a connection opened later, at
/// the next chunk read for one already open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relay normally.
    None,
    /// A partition: connections are accepted (and relayed upstream) and kept
    /// open, but nothing is forwarded in either direction. Bytes read are
    /// dropped silently; nothing is written, not even a FIN: an end of
    /// stream read meanwhile is held back until the fault allows traffic
    /// again. After healing, bytes flow again on the same connections, but
    /// what was dropped is gone, so the client must notice the silence and
    /// reconnect.
    Blackhole,
    /// Forward the first `n` bytes server→client, then nothing more in that
    /// direction (dropped silently; the connection stays open, and an end of
    /// stream is held back). Client→server keeps flowing, like a server that
    /// hangs in the middle of its answer.
    StallAfter(usize),
    /// Forward the first `n` bytes server→client, then close the connection
    /// with a FIN to both sides (shutdown both ways). The cut happens as soon
    /// as the `n`th byte is forwarded; with `n == 0`, when the server next
    /// sends something.
    CutAfterFin(usize),
    /// Like [`CutAfterFin`](Fault::CutAfterFin), but reset both sides
    /// (SO_LINGER 0, then close) instead. The RST goes out within one tick
    /// (50 ms) of the cut, once both relay threads let go of the sockets.
    CutAfterRst(usize),
    /// New connections are accepted and reset at once, before anything is
    /// read. Open connections are relayed normally.
    ResetOnAccept,
    /// New connections are accepted, never relayed: the proxy reads the
    /// client's first bytes, closes its sending side with a FIN, and drains
    /// (drops) whatever else the client sends until it closes. Open
    /// connections are relayed normally.
    CloseAfterRequest,
    /// Nothing listens: connects get ECONNREFUSED. Setting it closes the
    /// listener and resets every open connection; setting any other fault
    /// listens again on the same port.
    Refuse,
    /// Forward everything, but hold each server→client chunk this long
    /// first. Chunks are delayed one after the other, so a busy connection
    /// also loses throughput (one read buffer, 16 KiB, per delay).
    Delay(Duration),
}

/// A loopback TCP relay to one upstream whose behaviour a test switches with
/// [`set`](FaultProxy::set); every switch applies to open and new
/// connections alike (see [`Fault`] for which faults touch which).
///
/// Dropping it stops listening, closes every connection (FIN) and joins all
/// its threads.
pub struct FaultProxy {
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts relaying a free loopback port to `upstream_url`
    /// (`http://127.0.0.1:PORT`), with no fault set.
    ///
    /// Panics if the upstream is not a loopback address or no port is free.
    pub fn start(upstream_url: &str) -> FaultProxy {
        // Bytes are relayed as they are: TLS passes through untouched.
        let host_port = upstream_url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        let upstream = host_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("fault proxy: bad upstream URL {upstream_url:?}"));
        assert!(
            upstream.ip().is_loopback(),
            "fault proxy: upstream {upstream} is not on loopback"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking fault proxy listener");
        let shared = Arc::new(Shared {
            upstream,
            addr: listener.local_addr().expect("fault proxy address"),
            fault: Mutex::new((Fault::None, 0)),
            net: Mutex::new(Net {
                listener: Some(listener),
                conns: Vec::new(),
            }),
            accepted: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let accept = shared.clone();
        let accept_thread = thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept_loop(&accept))
            .expect("spawn fault proxy accept thread");
        FaultProxy {
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// The proxy's URL, `http://127.0.0.1:PORT`. It stays the same across
    /// [`Fault::Refuse`].
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// Switches to `fault` now, for open and new connections.
    ///
    /// [`Fault::Refuse`] returns once the listener is closed and every open
    /// connection is reset. Leaving it re-binds the same port, retrying for
    /// up to 2 s, and panics if something else took the port meanwhile.
    pub fn set(&self, fault: Fault) {
        {
            let mut current = lock(&self.shared.fault);
            current.0 = fault;
            // A new epoch restarts the byte counts of open connections.
            current.1 += 1;
        }
        let mut net = lock(&self.shared.net);
        if fault == Fault::Refuse {
            net.listener = None;
            drop(net);
            self.reset_all();
        } else if net.listener.is_none() {
            net.listener = Some(rebind(self.shared.addr));
        }
    }

    /// Back to relaying normally: [`set`](FaultProxy::set)`(`[`Fault::None`]`)`.
    pub fn heal(&self) {
        self.set(Fault::None);
    }

    /// How many connections it has accepted so far, whatever the fault did
    /// with them.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Resets (RST) both sides of every open connection now, and returns
    /// once they are closed (at most about a second). Keeps listening.
    pub fn reset_all(&self) {
        let conns = lock(&self.shared.net).conns.clone();
        for conn in conns.iter().filter_map(Weak::upgrade) {
            conn.close(Close::Rst);
        }
        // The RST goes out when the relay threads drop the sockets.
        let deadline = Instant::now() + Duration::from_secs(1);
        while conns.iter().any(|c| c.strong_count() > 0) && Instant::now() < deadline {
            thread::sleep(ACCEPT_POLL);
        }
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url())
            .field("upstream", &self.shared.upstream)
            .field("fault", &lock(&self.shared.fault).0)
            .field("accepted", &self.accepted())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Only the accept thread spawns threads: once it is gone, the list
        // below is complete.
        if let Some(accept) = self.accept_thread.take() {
            let _ = accept.join();
        }
        let conns = {
            let mut net = lock(&self.shared.net);
            net.listener = None;
            std::mem::take(&mut net.conns)
        };
        for conn in conns.iter().filter_map(Weak::upgrade) {
            conn.close(Close::Fin);
        }
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// State shared by the proxy handle and its threads.
struct Shared {
    upstream: SocketAddr,
    /// The proxy's own address, kept across [`Fault::Refuse`].
    addr: SocketAddr,
    /// The fault, and how many times one was set (its epoch).
    fault: Mutex<(Fault, u64)>,
    net: Mutex<Net>,
    accepted: AtomicUsize,
    stopping: AtomicBool,
    /// Every thread spawned for connections, joined on drop.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The listener (none while refusing) and the relayed connections.
struct Net {
    listener: Option<TcpListener>,
    conns: Vec<Weak<Conn>>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn fault(&self) -> (Fault, u64) {
        *lock(&self.fault)
    }

    fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        if let Ok(t) = thread::Builder::new().name("fault-proxy".into()).spawn(f) {
            threads.push(t);
        }
    }
}

/// Accepts connections until the proxy drops, treating each as the fault
/// set at that moment says.
fn accept_loop(shared: &Arc<Shared>) {
    while !shared.stopping() {
        let mut net = lock(&shared.net);
        let accepted = match &net.listener {
            Some(listener) => listener.accept(),
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        let Ok((client, _)) = accepted else {
            drop(net);
            thread::sleep(ACCEPT_POLL);
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        // Some platforms hand out accepted sockets non-blocking like their
        // listener; the relay wants blocking reads with a timeout.
        let _ = client.set_nonblocking(false);
        match shared.fault().0 {
            // `Refuse` only shows here when it was set during this accept.
            Fault::ResetOnAccept | Fault::Refuse => {
                let _ = set_linger_zero(&client);
            }
            Fault::CloseAfterRequest => {
                let shared2 = shared.clone();
                shared.spawn(move || close_after_request(&shared2, &client));
            }
            _ => {
                // Connected under the lock, so that `reset_all` and `Refuse`
                // see every relayed connection.
                let Ok(server) = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT)
                else {
                    continue; // the upstream is down: the client sees a FIN
                };
                let conn = Arc::new(Conn {
                    client,
                    server,
                    closed: AtomicBool::new(false),
                });
                if conn.configure().is_err() {
                    continue;
                }
                net.conns.retain(|c| c.strong_count() > 0);
                net.conns.push(Arc::downgrade(&conn));
                for dir in [Dir::Up, Dir::Down] {
                    let (shared2, conn2) = (shared.clone(), conn.clone());
                    shared.spawn(move || pump(&shared2, &conn2, dir));
                }
            }
        }
    }
}

/// [`Fault::CloseAfterRequest`]: read the request, FIN, drain until the
/// client closes (so that closing does not turn into a reset for unread
/// data).
fn close_after_request(shared: &Shared, client: &TcpStream) {
    let _ = client.set_read_timeout(Some(TICK));
    let mut buf = [0u8; 4096];
    let mut answered = false;
    while !shared.stopping() {
        match (&*client).read(&mut buf) {
            Ok(0) => break,
            Ok(_) if !answered => {
                answered = true;
                let _ = client.shutdown(Shutdown::Write);
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
}

/// One relayed connection. The two relay threads share it; the sockets
/// close when both are done with it.
struct Conn {
    client: TcpStream,
    server: TcpStream,
    /// Set when the connection is cut: the relay threads stop.
    closed: AtomicBool,
}

/// How to close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// Shut both sockets down both ways now: a FIN to each side.
    Fin,
    /// SO_LINGER 0, so that closing the sockets (when the relay threads drop
    /// them) sends a RST to each side.
    Rst,
}

impl Conn {
    fn configure(&self) -> io::Result<()> {
        for s in [&self.client, &self.server] {
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(TICK))?;
            s.set_write_timeout(Some(TICK))?;
        }
        Ok(())
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn close(&self, how: Close) {
        self.closed.store(true, Ordering::SeqCst);
        for s in [&self.client, &self.server] {
            let _ = match how {
                Close::Fin => s.shutdown(Shutdown::Both),
                Close::Rst => set_linger_zero(s),
            };
        }
    }
}

/// A direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// What to do with a chunk read in one direction.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Wait this long first.
    delay: Duration,
    /// Forward this many of its first bytes, drop the rest.
    keep: usize,
    /// Then close the connection.
    cut: Option<Close>,
}

/// One direction's view of the fault: the bytes it forwarded since the
/// fault was set.
struct Budget {
    dir: Dir,
    epoch: u64,
    sent: usize,
}

impl Budget {
    /// The fault now; a new one restarts the count.
    fn fault(&mut self, shared: &Shared) -> Fault {
        let (fault, epoch) = shared.fault();
        if epoch != self.epoch {
            self.epoch = epoch;
            self.sent = 0;
        }
        fault
    }

    /// What to do with `len` bytes just read.
    fn plan(&mut self, shared: &Shared, len: usize) -> Plan {
        let fault = self.fault(shared);
        let sent = self.sent;
        let all = Plan {
            delay: Duration::ZERO,
            keep: len,
            cut: None,
        };
        // Forward what is left of `n`, and close once `n` is reached.
        let cut = |n: usize, how| {
            let keep = len.min(n.saturating_sub(sent));
            let cut = (sent + keep >= n).then_some(how);
            Plan { keep, cut, ..all }
        };
        match (fault, self.dir) {
            (Fault::Blackhole | Fault::Refuse, _) => Plan { keep: 0, ..all },
            (Fault::StallAfter(n), Dir::Down) => Plan {
                keep: len.min(n.saturating_sub(sent)),
                ..all
            },
            (Fault::CutAfterFin(n), Dir::Down) => cut(n, Close::Fin),
            (Fault::CutAfterRst(n), Dir::Down) => cut(n, Close::Rst),
            (Fault::Delay(delay), Dir::Down) => Plan { delay, ..all },
            _ => all,
        }
    }

    /// Whether the fault forwards nothing in this direction now (the end of
    /// the stream must wait).
    fn silent(&mut self, shared: &Shared) -> bool {
        match (self.fault(shared), self.dir) {
            (Fault::Blackhole | Fault::Refuse, _) => true,
            (Fault::StallAfter(n), Dir::Down) => self.sent >= n,
            _ => false,
        }
    }
}

/// Relays one direction of `conn` until it ends or is cut, or the proxy
/// drops.
fn pump(shared: &Shared, conn: &Conn, dir: Dir) {
    let (mut from, to) = match dir {
        Dir::Up => (&conn.client, &conn.server),
        Dir::Down => (&conn.server, &conn.client),
    };
    let mut budget = Budget {
        dir,
        epoch: shared.fault().1,
        sent: 0,
    };
    let mut buf = vec![0u8; 16 * 1024];
    while !conn.is_closed() && !shared.stopping() {
        let len = match from.read(&mut buf) {
            Err(e) if is_timeout(&e) => continue,
            Ok(len) => len,
            Err(_) => 0, // reset: pass it on as an end of stream
        };
        if conn.is_closed() {
            return; // cut meanwhile (a FIN now would precede a RST)
        }
        if len == 0 {
            // End of stream: held back while this direction is silenced,
            // then passed on (or cut, if the fault's count is used up).
            while budget.silent(shared) {
                if !nap(shared, conn, TICK) {
                    return;
                }
            }
            match budget.plan(shared, 0).cut {
                Some(how) => conn.close(how),
                None => {
                    let _ = to.shutdown(Shutdown::Write);
                }
            }
            return;
        }
        let plan = budget.plan(shared, len);
        if !nap(shared, conn, plan.delay) {
            return;
        }
        if send(shared, conn, to, &buf[..plan.keep]).is_err() {
            conn.close(Close::Fin);
            return;
        }
        budget.sent += plan.keep;
        if let Some(how) = plan.cut {
            conn.close(how);
            return;
        }
    }
}

/// Writes all of `data` despite the write timeout; gives up when the
/// connection is cut or the proxy drops.
fn send(shared: &Shared, conn: &Conn, mut to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        if conn.is_closed() || shared.stopping() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        match to.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sleeps `d` in ticks; false if the connection was cut or the proxy is
/// dropping meanwhile.
fn nap(shared: &Shared, conn: &Conn, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if conn.is_closed() || shared.stopping() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(TICK));
    }
}

/// Listens on `addr` again after [`Fault::Refuse`].
fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                listener
                    .set_nonblocking(true)
                    .expect("non-blocking fault proxy listener");
                return listener;
            }
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("fault proxy: cannot listen on {addr} again: {e}"),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SO_LINGER with a zero timeout: closing the socket then sends a RST
/// instead of a FIN. (`TcpStream::set_linger` is unstable; this is the same
/// `setsockopt` call, without a dependency.)
fn set_linger_zero(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    #[repr(C)]
    struct Linger {
        l_onoff: i32,
        l_linger: i32,
    }
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, value: *const Linger, len: u32) -> i32;
    }
    #[cfg(target_os = "linux")]
    const SOL_SOCKET_SO_LINGER: (i32, i32) = (1, 13);
    #[cfg(not(target_os = "linux"))]
    const SOL_SOCKET_SO_LINGER: (i32, i32) = (0xffff, 0x0080); // the BSDs, macOS

    let linger = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let (level, name) = SOL_SOCKET_SO_LINGER;
    // SAFETY: the fd is open for the borrow of `stream`, and `value`/`len`
    // describe a live `struct linger`.
    let rc = unsafe {
        setsockopt(
            stream.as_raw_fd(),
            level,
            name,
            &linger,
            std::mem::size_of::<Linger>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes every connection back; its URL.
    fn echo() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    let mut s = &stream;
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        url
    }

    fn connect(proxy: &FaultProxy) -> TcpStream {
        let addr = proxy.url().trim_start_matches("http://").to_owned();
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    }

    /// Reads until `want` bytes, EOF or an error; the bytes and how it ended.
    fn read_up_to(mut s: &TcpStream, want: usize) -> (Vec<u8>, io::Result<usize>) {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (got, Ok(0)),
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.len() >= want {
                        return (got, Ok(n));
                    }
                }
                Err(e) => return (got, Err(e)),
            }
        }
    }

    fn roundtrip(mut s: &TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).unwrap();
        read_up_to(s, msg.len()).0
    }

    fn kind(r: io::Result<usize>) -> io::ErrorKind {
        r.expect_err("expected an error").kind()
    }

    fn timed_out(r: io::Result<usize>) -> bool {
        matches!(r, Err(e) if is_timeout(&e))
    }

    #[test]
    fn relays_and_counts() {
        let proxy = FaultProxy::start(&echo());
        let a = connect(&proxy);
        assert_eq!(roundtrip(&a, b"ping"), b"ping");
        let b = connect(&proxy);
        assert_eq!(roundtrip(&b, b"pong"), b"pong");
        assert_eq!(proxy.accepted(), 2);
    }

    #[test]
    fn blackhole_is_silent_then_heals() {
        let proxy = FaultProxy::start(&echo());
        let mut a = connect(&proxy);
        assert_eq!(roundtrip(&a, b"one"), b"one");
        proxy.set(Fault::Blackhole);
        a.write_all(b"lost").unwrap();
        let (got, end) = read_up_to(&a, 1);
        assert!(got.is_empty() && timed_out(end), "{got:?}");
        // New connections are accepted, and just as silent.
        let b = connect(&proxy);
        let (got, end) = read_up_to(&b, 1);
        assert!(got.is_empty() && timed_out(end));
        assert_eq!(proxy.accepted(), 2);
        proxy.heal();
        // Still open; what was dropped stays dropped.
        assert_eq!(roundtrip(&a, b"back"), b"back");
    }

    #[test]
    fn stall_after_forwards_a_prefix_then_nothing() {
        let proxy = FaultProxy::start(&echo());
        proxy.set(Fault::StallAfter(3));
        let a = connect(&proxy);
        (&a).write_all(b"hello world").unwrap();
        let (got, end) = read_up_to(&a, 11);
        assert_eq!(got, b"hel");
        assert!(timed_out(end));
        proxy.heal();
        assert_eq!(roundtrip(&a, b"again"), b"again");
    }

    #[test]
    fn cut_after_fin() {
        let proxy = FaultProxy::start(&echo());
        proxy.set(Fault::CutAfterFin(5));
        let a = connect(&proxy);
        (&a).write_all(b"hello world").unwrap();
        let (got, end) = read_up_to(&a, 11);
        assert_eq!(got, b"hello");
        assert_eq!(end.unwrap(), 0, "EOF");
    }

    #[test]
    fn cut_after_rst() {
        let proxy = FaultProxy::start(&echo());
        let a = connect(&proxy);
        assert_eq!(roundtrip(&a, b"first"), b"first");
        // Counted from the switch for an open connection.
        proxy.set(Fault::CutAfterRst(5));
        (&a).write_all(b"hello world").unwrap();
        let (got, end) = read_up_to(&a, 11);
        assert!(b"hello".starts_with(&got), "{got:?}");
        assert_eq!(kind(end), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn refuse_then_listen_again_on_the_same_port() {
        let proxy = FaultProxy::start(&echo());
        let open = connect(&proxy);
        assert_eq!(roundtrip(&open, b"x"), b"x");
        proxy.set(Fault::Refuse);
        let (_, end) = read_up_to(&open, 1);
        assert_eq!(kind(end), io::ErrorKind::ConnectionReset);
        let addr = proxy.url().trim_start_matches("http://").to_owned();
        let err = TcpStream::connect(&addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        proxy.heal();
        assert_eq!(roundtrip(&connect(&proxy), b"y"), b"y");
    }

    #[test]
    fn reset_on_accept_spares_open_connections() {
        let proxy = FaultProxy::start(&echo());
        let open = connect(&proxy);
        assert_eq!(roundtrip(&open, b"open"), b"open");
        proxy.set(Fault::ResetOnAccept);
        let new = connect(&proxy);
        let (got, end) = read_up_to(&new, 1);
        assert!(got.is_empty());
        assert_eq!(kind(end), io::ErrorKind::ConnectionReset);
        assert_eq!(roundtrip(&open, b"still"), b"still");
    }

    #[test]
    fn close_after_request() {
        let proxy = FaultProxy::start(&echo());
        proxy.set(Fault::CloseAfterRequest);
        let a = connect(&proxy);
        (&a).write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (got, end) = read_up_to(&a, 1);
        assert!(got.is_empty());
        assert_eq!(end.unwrap(), 0, "EOF");
    }

    #[test]
    fn delay_holds_each_chunk() {
        let proxy = FaultProxy::start(&echo());
        let a = connect(&proxy);
        proxy.set(Fault::Delay(Duration::from_millis(200)));
        let start = Instant::now();
        assert_eq!(roundtrip(&a, b"slow"), b"slow");
        assert!(start.elapsed() >= Duration::from_millis(200));
        proxy.heal();
        let start = Instant::now();
        assert_eq!(roundtrip(&a, b"fast"), b"fast");
        assert!(start.elapsed() < Duration::from_millis(150));
    }

    #[test]
    fn reset_all_keeps_listening() {
        let proxy = FaultProxy::start(&echo());
        let (a, b) = (connect(&proxy), connect(&proxy));
        assert_eq!(roundtrip(&a, b"a"), b"a");
        assert_eq!(roundtrip(&b, b"b"), b"b");
        proxy.reset_all();
        for s in [&a, &b] {
            assert_eq!(kind(read_up_to(s, 1).1), io::ErrorKind::ConnectionReset);
        }
        assert_eq!(roundtrip(&connect(&proxy), b"c"), b"c");
    }

    #[test]
    fn drop_closes_everything_promptly() {
        let proxy = FaultProxy::start(&echo());
        let a = connect(&proxy);
        assert_eq!(roundtrip(&a, b"open"), b"open");
        proxy.set(Fault::Blackhole);
        let addr = proxy.url().trim_start_matches("http://").to_owned();
        let start = Instant::now();
        drop(proxy);
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(read_up_to(&a, 1).1.unwrap(), 0, "EOF");
        assert!(TcpStream::connect(addr).is_err());
    }
}
