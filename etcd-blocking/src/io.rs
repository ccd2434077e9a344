//! What this crate adds to ureq's I/O, all for latency and CPU per request
//! (ureq still does all of HTTP/1.1):
//!
//! - [`LiteralFirstResolver`]: an IP literal (`127.0.0.1`, `[::1]`) is its own
//!   address. ureq's default resolver runs every lookup on a fresh thread
//!   whenever a timeout is set, which cost more than the whole HTTP exchange
//!   on loopback.
//! - [`TcpConnector`] and its [`Tcp`] transport, in place of ureq's own TCP
//!   transport. A request on a pooled connection costs one `sendto` and one
//!   `recvfrom` plus one non-blocking peek each time ureq checks the idle
//!   connection (twice: returning it to the pool, taking it out). ureq's
//!   transport spent ten system calls: its liveness check toggled the socket
//!   non-blocking and back around a read (4 `ioctl`s per request), and it set
//!   the socket timeouts before every read and write (2 `setsockopt`s),
//!   because the timeout it is given is what is left of the request's
//!   deadline, a little different every time.
//!
//!   The request head and body also leave in one write, so a small `PUT` is
//!   one TCP segment instead of two (each of which wakes the server).

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, ShutdownHandle,
    Transport,
};
use ureq::{Error, Timeout};

/// Resolves IP literals in place; hands names to ureq's default resolver.
#[derive(Debug, Default)]
pub(crate) struct LiteralFirstResolver {
    names: DefaultResolver,
}

impl Resolver for LiteralFirstResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, Error> {
        let literal = uri.authority().and_then(|authority| {
            let host = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let ip: IpAddr = host.parse().ok()?;
            let default_port = if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            };
            let port = authority.port_u16().unwrap_or(default_port);
            Some(SocketAddr::new(ip, port))
        });
        match literal {
            Some(addr) => {
                let mut addrs = self.empty();
                addrs.push(addr);
                Ok(addrs)
            }
            None => self.names.resolve(uri, config, timeout),
        }
    }
}

/// The error for an `https` endpoint: this crate is built without TLS.
#[derive(Debug)]
pub(crate) struct TlsUnavailable;

impl fmt::Display for TlsUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("https endpoints need TLS, and etcd-blocking is built without it")
    }
}

impl std::error::Error for TlsUnavailable {}

/// The deadline of the next read on a streamed response's connection, set
/// by its [`StreamBody`](crate::StreamBody) before each read: ureq bounds a
/// response as a whole, a watch needs each read bounded by itself.
#[derive(Debug, Default)]
pub(crate) struct ReadDeadline(Mutex<Option<Instant>>);

impl ReadDeadline {
    /// Bounds the next reads by `until` (`None`: no bound of its own).
    pub(crate) fn set(&self, until: Option<Instant>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = until;
    }

    fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

thread_local! {
    /// The read deadline the next connection made on this thread takes.
    static NEXT_CONNECTION_DEADLINE: RefCell<Option<Arc<ReadDeadline>>> =
        const { RefCell::new(None) };
}

/// Runs `f` (one request on an agent that never pools, so it connects
/// anew, on this thread) with `deadline` handed to the connection it makes.
pub(crate) fn with_read_deadline<R>(deadline: Arc<ReadDeadline>, f: impl FnOnce() -> R) -> R {
    NEXT_CONNECTION_DEADLINE.with(|next| *next.borrow_mut() = Some(deadline));
    let result = f();
    NEXT_CONNECTION_DEADLINE.with(|next| next.borrow_mut().take());
    result
}

/// Opens TCP connections as [`Tcp`] transports, with a TLS session on an
/// `https://` endpoint (the `tls` feature).
///
/// A connection made before it in the chain (ureq's CONNECT proxy tunnel,
/// when a proxy is configured) passes through untouched.
#[derive(Debug, Default)]
pub(crate) struct TcpConnector {
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsSettings>,
}

/// How the connector runs a TLS handshake: etcd-proto's configuration and
/// its choice of the name to verify.
#[cfg(feature = "tls")]
#[derive(Debug)]
pub(crate) struct TlsSettings {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) options: etcd_proto::tls::TlsOptions,
}

/// A failed TLS handshake, in words (etcd-proto's reading of it).
#[derive(Debug)]
pub(crate) struct TlsFailure(pub(crate) String);

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsFailure {}

impl<In: Transport> Connector<In> for TcpConnector {
    type Out = Either<In, Tcp>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        if let Some(chained) = chained {
            return Ok(Some(Either::A(chained)));
        }
        #[cfg(not(feature = "tls"))]
        if details.needs_tls() {
            return Err(Error::Other(Box::new(TlsUnavailable)));
        }
        let stream = connect(details)?;
        stream.set_nodelay(true)?;
        let config = details.config;
        #[allow(unused_mut)]
        let mut tcp = Tcp {
            stream: Arc::new(stream),
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
            pending: Vec::new(),
            read_timeout: None,
            write_timeout: None,
            read_deadline: NEXT_CONNECTION_DEADLINE.with(|next| next.borrow_mut().take()),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            scratch: Vec::new(),
        };
        #[cfg(feature = "tls")]
        if details.needs_tls() {
            let Some(settings) = &self.tls else {
                return Err(Error::Other(Box::new(TlsUnavailable)));
            };
            let host = details.uri.host().unwrap_or_default();
            let name = settings
                .options
                .server_name_for(host)
                .map_err(|e| Error::Other(Box::new(TlsFailure(e.to_string()))))?;
            let session = rustls::ClientConnection::new(settings.config.clone(), name)
                .map_err(|e| Error::Other(Box::new(TlsFailure(e.to_string()))))?;
            tcp.tls = Some(Box::new(session));
            tcp.handshake(details.timeout)?;
        }
        // Lets `Agent::shutdown` interrupt I/O on this socket from elsewhere.
        (details.register_shutdown)(Arc::downgrade(&tcp.stream) as Weak<dyn ShutdownHandle>)?;
        Ok(Some(Either::B(tcp)))
    }
}

/// Connects to the first of `details.addrs` that accepts, within the connect
/// timeout. Each address may use an equal share of the time still left, so a
/// silent first address cannot starve the rest.
fn connect(details: &ConnectionDetails) -> Result<TcpStream, Error> {
    let deadline = Deadline::new(details.timeout)?;
    let addrs = &details.addrs;
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate() {
        let attempt = match deadline.left()? {
            Some(left) => {
                let share = left / (addrs.len() - i) as u32;
                TcpStream::connect_timeout(addr, share.max(Duration::from_millis(1)))
            }
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        // A connect timeout is the connect phase's (or the whole call's)
        // timeout, whichever ureq says applies.
        Some(e) if is_timeout(&e) => Error::Timeout(deadline.reason),
        Some(e) => Error::Io(e),
        None => Error::HostNotFound,
    })
}

/// Past this much held output, send it on without waiting for the rest.
const HOLD_LIMIT: usize = 64 * 1024;

/// A TCP connection as a ureq transport.
///
/// Output is held until the client starts waiting for the response, then
/// sent in one write. Socket timeouts are set only when the one in place does
/// not fit the wait at hand (see [`fits`]), so a stream of requests with the
/// same timeout sets them once per connection.
pub(crate) struct Tcp {
    /// In an `Arc` so the [`ShutdownHandle`] registered with the agent can
    /// reach it; all I/O goes through `&TcpStream`.
    stream: Arc<TcpStream>,
    buffers: LazyBuffers,
    /// Request bytes not yet written.
    pending: Vec<u8>,
    /// `SO_RCVTIMEO` as last set; `None`: none (reads block without limit).
    read_timeout: Option<Duration>,
    /// `SO_SNDTIMEO` as last set; `None`: none.
    write_timeout: Option<Duration>,
    /// A streamed response's own bound on each read, if this connection
    /// carries one.
    read_deadline: Option<Arc<ReadDeadline>>,
    /// The TLS session of an `https://` connection: bytes go through it.
    #[cfg(feature = "tls")]
    tls: Option<Box<rustls::ClientConnection>>,
    /// Where the session's plaintext is read to first.
    #[cfg(feature = "tls")]
    scratch: Vec<u8>,
}

impl Tcp {
    /// Writes out everything held.
    fn flush(&mut self, timeout: NextTimeout) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let deadline = Deadline::new(timeout.for_write())?;
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            // Encrypted into the session, then its records written out.
            tls.writer().write_all(&self.pending)?;
            self.pending.clear();
            return self.write_tls(&deadline);
        }
        let mut sent = 0;
        while sent < self.pending.len() {
            let rest = &self.pending[sent..];
            let n = timed(
                &self.stream,
                &mut self.write_timeout,
                TcpStream::set_write_timeout,
                &deadline,
                |mut stream| stream.write(rest),
            )?;
            if n == 0 {
                return Err(Error::Io(io::ErrorKind::WriteZero.into()));
            }
            sent += n;
        }
        self.pending.clear();
        Ok(())
    }
}

/// TLS over the socket: the handshake and the records, with the same
/// socket timeouts as plain reads and writes.
#[cfg(feature = "tls")]
impl Tcp {
    /// Runs the TLS handshake within `timeout` (the connect phase's).
    fn handshake(&mut self, timeout: NextTimeout) -> Result<(), Error> {
        let deadline = Deadline::new(timeout)?;
        while self.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
            self.write_tls(&deadline)?;
            if self.tls.as_ref().is_some_and(|t| t.wants_read()) && self.read_tls(&deadline)? == 0 {
                return Err(handshake_failure(io::Error::from(
                    io::ErrorKind::UnexpectedEof,
                )));
            }
        }
        self.write_tls(&deadline)
    }

    /// Writes every TLS record the session has ready.
    fn write_tls(&mut self, deadline: &Deadline) -> Result<(), Error> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        while tls.wants_write() {
            timed(
                &self.stream,
                &mut self.write_timeout,
                TcpStream::set_write_timeout,
                deadline,
                |mut stream| tls.write_tls(&mut stream),
            )?;
        }
        Ok(())
    }

    /// Reads TLS records into the session (0: the peer closed); a record
    /// that fails (an alert, a bad certificate) is the error.
    fn read_tls(&mut self, deadline: &Deadline) -> Result<usize, Error> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(0);
        };
        let n = timed(
            &self.stream,
            &mut self.read_timeout,
            TcpStream::set_read_timeout,
            deadline,
            |mut stream| tls.read_tls(&mut stream),
        )?;
        if let Err(e) = tls.process_new_packets() {
            // Tell the peer why, if it still listens.
            let _ = self.write_tls(deadline);
            return Err(handshake_failure(io::Error::new(
                io::ErrorKind::InvalidData,
                e,
            )));
        }
        Ok(n)
    }

    /// Plaintext the session has for `input`, reading records as needed.
    fn read_plaintext(&mut self, deadline: &Deadline, input: &mut [u8]) -> Result<usize, Error> {
        loop {
            let Some(tls) = self.tls.as_mut() else {
                return Ok(0);
            };
            match tls.reader().read(input) {
                Ok(n) => return Ok(n),
                // The peer closed without close_notify: the end, as for TCP.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.read_tls(deadline)? == 0 {
                        // EOF on the socket: whatever the session holds is all.
                        let tls = self.tls.as_mut().expect("checked above");
                        return match tls.reader().read(input) {
                            Ok(n) => Ok(n),
                            Err(_) => Ok(0),
                        };
                    }
                    self.write_tls(deadline)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A TLS failure as ureq carries it: etcd-proto's words for it, so the
/// transport can tell it from other I/O errors.
#[cfg(feature = "tls")]
fn handshake_failure(error: io::Error) -> Error {
    let what = etcd_proto::tls::describe_handshake_error(&error)
        .unwrap_or_else(|| format!("TLS failed: {error}"));
    Error::Other(Box::new(TlsFailure(what)))
}

impl Transport for Tcp {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.pending
            .extend_from_slice(&self.buffers.output()[..amount]);
        if self.pending.len() >= HOLD_LIMIT {
            self.flush(timeout)?;
        }
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        // Even with a response already buffered, the request goes out first.
        self.flush(timeout)?;
        if self.buffers.can_use_input() {
            return Ok(true);
        }
        self.await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.flush(timeout)?;
        let mut deadline = Deadline::new(timeout.for_read())?;
        if let Some(until) = self.read_deadline.as_ref().and_then(|d| d.get()) {
            if deadline.at.is_none_or(|at| until < at) {
                deadline = Deadline {
                    at: Some(until),
                    reason: Timeout::RecvBody,
                };
                deadline.left()?;
            }
        }
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            // The session reads into a scratch buffer kept with the
            // connection (the input buffer is borrowed from `self`).
            let mut chunk = std::mem::take(&mut self.scratch);
            chunk.resize(self.buffers.input_append_buf().len(), 0);
            let n = self.read_plaintext(&deadline, &mut chunk);
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    self.scratch = chunk;
                    return Err(e);
                }
            };
            self.buffers.input_append_buf()[..n].copy_from_slice(&chunk[..n]);
            self.scratch = chunk;
            self.buffers.input_appended(n);
            return Ok(n > 0);
        }
        let input = self.buffers.input_append_buf();
        let n = timed(
            &self.stream,
            &mut self.read_timeout,
            TcpStream::set_read_timeout,
            &deadline,
            |mut stream| stream.read(input),
        )?;
        self.buffers.input_appended(n);
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        // Output still held means a request went unanswered: not reusable.
        self.pending.is_empty() && idle_and_open(&self.stream)
    }

    fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }
}

impl fmt::Debug for Tcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tcp")
            .field("peer", &self.stream.peer_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Whether an idle keep-alive connection can carry another request, with one
/// system call: a non-blocking peek. "Would block" is the only good answer:
/// end of stream means the server closed it, an error means it broke, and a
/// byte means the server sent something nobody asked for (the rest of an
/// unread body, or garbage), after which the next response cannot be told
/// apart.
#[cfg(unix)]
fn idle_and_open(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    // SAFETY: `recv` writes at most one byte into `byte`, which outlives the
    // call; the descriptor is open for as long as `stream` is borrowed.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}

/// As the unix one, without a per-call non-blocking flag: toggles the socket.
#[cfg(not(unix))]
fn idle_and_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let peeked = stream.peek(&mut [0]);
    stream.set_nonblocking(false).is_ok()
        && matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// When a wait must end, from ureq's [`NextTimeout`], and what to call it.
struct Deadline {
    /// `None`: no limit.
    at: Option<Instant>,
    reason: Timeout,
}

impl Deadline {
    /// Fails with a timeout if none is left already.
    fn new(timeout: NextTimeout) -> Result<Deadline, Error> {
        let after = timeout.after;
        let deadline = Deadline {
            // Too far off to represent is as good as never.
            at: match after.is_not_happening() {
                true => None,
                false => Instant::now().checked_add(*after),
            },
            reason: timeout.reason,
        };
        if after.is_zero() {
            return Err(deadline.expired());
        }
        Ok(deadline)
    }

    /// The time left (`None`: no limit); a timeout if there is none.
    fn left(&self) -> Result<Option<Duration>, Error> {
        match self.at {
            None => Ok(None),
            Some(at) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Ok(Some(left)),
                _ => Err(self.expired()),
            },
        }
    }

    fn expired(&self) -> Error {
        Error::Timeout(self.reason)
    }
}

/// Sets `SO_RCVTIMEO` or `SO_SNDTIMEO`.
type SetTimeout = fn(&TcpStream, Option<Duration>) -> io::Result<()>;

/// Runs one blocking read or write by `deadline`.
///
/// The socket timeout (`current`) is changed only when it does not [`fits`]
/// the time left; it is then set a little under it, so that the next request
/// with the same timeout, which reaches this point with slightly more or less
/// of it left, still fits. A socket timeout shorter than the time left can
/// end the wait early: then it is set to exactly what is left and the call is
/// retried, as it is after a signal interrupts it.
fn timed<T>(
    stream: &TcpStream,
    current: &mut Option<Duration>,
    set: SetTimeout,
    deadline: &Deadline,
    mut call: impl FnMut(&TcpStream) -> io::Result<T>,
) -> Result<T, Error> {
    let left = deadline.left()?;
    if !fits(*current, left) {
        set_timeout(stream, current, set, left.map(|left| left - left / 8))?;
    }
    loop {
        match call(stream) {
            Ok(done) => return Ok(done),
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                if deadline.at.is_none() {
                    // Without a limit, only a signal handler installed
                    // without SA_RESTART interrupts: it asked for this.
                    return Err(e.into());
                }
                let left = deadline.left()?;
                set_timeout(stream, current, set, left)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether a socket timeout of `current` can stand in for a wait of at most
/// `left`: never longer, and at least half of it (so a slow answer ends the
/// wait early at most once or twice).
fn fits(current: Option<Duration>, left: Option<Duration>) -> bool {
    match (current, left) {
        (None, None) => true,
        (Some(current), Some(left)) => current <= left && current >= left / 2,
        _ => false,
    }
}

fn set_timeout(
    stream: &TcpStream,
    current: &mut Option<Duration>,
    set: SetTimeout,
    timeout: Option<Duration>,
) -> Result<(), Error> {
    match set(stream, timeout) {
        Ok(()) => *current = timeout,
        // macOS refuses to change the timeouts once the peer has closed with
        // request bytes unread; the I/O that follows reports what happened.
        Err(e) if cfg!(target_os = "macos") && e.kind() == io::ErrorKind::InvalidInput => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// How an expired socket timeout shows: `EAGAIN` on unix, `TimedOut` elsewhere.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_socket_timeout_fits_a_wait_it_does_not_outlast_nor_cut_short_by_half() {
        assert!(fits(None, None));
        assert!(!fits(Some(MS), None));
        assert!(!fits(None, Some(MS)));
        assert!(fits(Some(4375 * MS), Some(5000 * MS)));
        assert!(fits(Some(4375 * MS), Some(4999 * MS)));
        assert!(fits(Some(4375 * MS), Some(4375 * MS)));
        assert!(!fits(Some(4376 * MS), Some(4375 * MS)));
        assert!(fits(Some(2500 * MS), Some(5000 * MS)));
        assert!(!fits(Some(2499 * MS), Some(5000 * MS)));
    }

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn an_idle_connection_is_open_until_the_peer_sends_or_closes() {
        let (client, mut server) = pair();
        assert!(idle_and_open(&client));
        server.write_all(b"x").unwrap();
        std::thread::sleep(20 * MS);
        assert!(!idle_and_open(&client), "unasked-for data");
        let mut byte = [0];
        (&client).read_exact(&mut byte).unwrap();
        assert!(idle_and_open(&client), "the peek left the socket blocking");
        drop(server);
        std::thread::sleep(20 * MS);
        assert!(!idle_and_open(&client), "closed by the peer");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_tls_an_https_endpoint_is_refused_and_sends_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        // Refused at build...
        let refused = crate::Client::new(&url).unwrap_err();
        assert!(refused.to_string().contains("etcd-blocking"), "{refused}");
        // ...and an https URL learned later (member discovery) sends nothing.
        let client = crate::Client::new("http://127.0.0.1:1").unwrap();
        let transmit = etcd_proto::Transmit {
            request: http::Request::get(format!("{url}/v2/keys/k"))
                .body(bytes::Bytes::new())
                .unwrap(),
            timeout: Some(Duration::from_secs(1)),
        };
        let failure = etcd_proto::drive::Transport::send(&client, transmit).unwrap_err();
        assert_eq!(failure.kind, etcd_proto::TransportErrorKind::Tls);
        assert!(
            failure.source.to_string().contains("built without"),
            "{}",
            failure.source
        );
        let accepted = listener.accept();
        assert!(accepted.is_err(), "connected: {accepted:?}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_plain_http_server_behind_https_is_a_tls_failure_that_sent_nothing() {
        // A listener that answers the TLS hello with plain HTTP.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let _ = socket.read(&mut [0u8; 1024]);
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let error = crate::Client::new(&url).unwrap().get("/k").unwrap_err();
        let crate::Error::Transport(t) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(t.kind(), etcd_proto::TransportErrorKind::Tls, "{error}");
        assert!(
            t.request_not_sent() && error.to_string().contains("TLS handshake failed"),
            "{error}"
        );
    }

    fn deadline_in(after: Duration) -> Deadline {
        Deadline {
            at: Some(Instant::now() + after),
            reason: Timeout::Global,
        }
    }

    #[test]
    fn a_read_waits_until_the_deadline_and_reports_its_reason() {
        let (client, _server) = pair();
        let mut current = None;
        let started = Instant::now();
        let result = timed(
            &client,
            &mut current,
            TcpStream::set_read_timeout,
            &deadline_in(100 * MS),
            |mut stream| stream.read(&mut [0; 8]),
        );
        let waited = started.elapsed();
        assert!(
            matches!(result, Err(Error::Timeout(Timeout::Global))),
            "{result:?}"
        );
        assert!(waited >= 100 * MS && waited < 1000 * MS, "{waited:?}");
    }

    #[test]
    fn the_socket_timeout_is_kept_across_waits_it_fits() {
        let (client, mut server) = pair();
        let mut current = None;
        server.write_all(b"ab").unwrap();
        let mut set = Vec::new();
        for _ in 0..2 {
            // Each deadline is a little later than the one before.
            let read = timed(
                &client,
                &mut current,
                TcpStream::set_read_timeout,
                &deadline_in(5000 * MS),
                |mut stream| stream.read(&mut [0; 1]),
            );
            assert_eq!(read.unwrap(), 1);
            set.push(current.unwrap());
        }
        assert!(set[0] > 4000 * MS && set[0] < 4400 * MS, "{set:?}");
        assert_eq!(set[0], set[1], "set again");
        let in_place = client.read_timeout().unwrap().unwrap();
        assert!(in_place.abs_diff(set[0]) < 20 * MS, "{in_place:?}");
    }

    #[test]
    fn a_socket_timeout_that_ends_the_wait_early_is_set_to_the_time_left() {
        let (client, mut server) = pair();
        let mut current = Some(50 * MS);
        client.set_read_timeout(current).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(200 * MS);
            server.write_all(b"late").unwrap();
            server
        });
        // 50 ms is too short to fit a 400 ms wait, so it is replaced first.
        let read = timed(
            &client,
            &mut current,
            TcpStream::set_read_timeout,
            &deadline_in(400 * MS),
            |mut stream| stream.read(&mut [0; 8]),
        );
        assert_eq!(read.unwrap(), 4);
        drop(writer.join());

        // One that fits (at least half) but wakes before the answer is there.
        let (client, mut server) = pair();
        let mut current = Some(150 * MS);
        client.set_read_timeout(current).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(200 * MS);
            server.write_all(b"late").unwrap();
            server
        });
        let read = timed(
            &client,
            &mut current,
            TcpStream::set_read_timeout,
            &deadline_in(250 * MS),
            |mut stream| stream.read(&mut [0; 8]),
        );
        assert_eq!(read.unwrap(), 4);
        assert!(current.unwrap() < 150 * MS, "re-armed: {current:?}");
        drop(writer.join());
    }
}
