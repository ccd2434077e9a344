//! The bare baseline: one persistent HTTP/1.1 connection, no client library.
//!
//! A [`RawConnection`] is a `std::net::TcpStream` (with `TCP_NODELAY`) that
//! writes hand-built requests and reads the responses with the least work
//! HTTP/1.1 allows: the status line, the header block up to `CRLFCRLF`
//! (looking only at `Content-Length` and `Connection: close`), then exactly
//! `Content-Length` bytes of body, which is handed back unparsed. Both
//! buffers are allocated once and reused, so a request costs one `write`
//! and usually one `read` system call.
//!
//! It speaks just enough HTTP for etcd's v2 API and the v3 gateway's unary
//! calls, whose replies carry `Content-Length` (every v2 reply; every
//! successful v3 one); a chunked reply (such as a v3 error from etcd 3.4) is
//! reported as an error. A reply with
//! `Connection: close` (or a connection the server closed while idle) makes
//! the next request reconnect.
//!
//! [`RawConnection::connect_tls`] speaks the same over rustls (a
//! `rustls::StreamOwned` on the socket, configured by
//! [`etcd_proto::tls::TlsOptions`] as the clients are): the floor of TLS
//! itself, with no HTTP library around it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use etcd_proto::tls::TlsOptions;
use rustls::pki_types::ServerName;

/// How long connecting, one write or one read may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Initial size of the read buffer; it grows for larger responses.
const READ_BUFFER: usize = 16 * 1024;

/// A response read by a [`RawConnection`]: its status and unparsed body,
/// borrowed from the connection's buffer until the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawResponse<'a> {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The body, exactly `Content-Length` bytes.
    pub body: &'a [u8],
}

/// The byte stream under a [`RawConnection`].
#[derive(Debug)]
enum RawStream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for RawStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RawStream::Plain(s) => s.read(buf),
            RawStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for RawStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            RawStream::Plain(s) => s.write(buf),
            RawStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            RawStream::Plain(s) => s.flush(),
            RawStream::Tls(s) => s.flush(),
        }
    }
}

/// What a TLS connection is made with.
#[derive(Debug, Clone)]
struct RawTls {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

/// One keep-alive HTTP/1.1 connection to an etcd endpoint. See the
/// [module docs](self).
#[derive(Debug)]
pub struct RawConnection {
    addr: SocketAddr,
    /// `host:port` for the `Host` header.
    authority: String,
    tls: Option<RawTls>,
    stream: Option<RawStream>,
    /// The request being built.
    request: Vec<u8>,
    /// Bytes read; `buf[..filled]` is valid.
    buf: Vec<u8>,
    filled: usize,
    /// Bytes of `buf` belonging to the previous response, dropped before the
    /// next one is read.
    consumed: usize,
}

impl RawConnection {
    /// Connects to `base_url` (`http://host:port`, no path).
    pub fn connect(base_url: &str) -> io::Result<RawConnection> {
        let authority = base_url
            .strip_prefix("http://")
            .ok_or_else(|| invalid_input(format!("{base_url}: only http:// URLs are supported")))?;
        RawConnection::open(base_url, authority, None)
    }

    /// Connects to `base_url` (`https://host:port`, no path) over TLS
    /// configured by `tls`; the handshake is made at once.
    pub fn connect_tls(base_url: &str, tls: &TlsOptions) -> io::Result<RawConnection> {
        let authority = base_url
            .strip_prefix("https://")
            .ok_or_else(|| invalid_input(format!("{base_url}: TLS needs an https:// URL")))?;
        let host = authority
            .trim_end_matches('/')
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h);
        let config = tls
            .client_config()
            .map_err(|e| invalid_input(e.to_string()))?;
        let name = tls
            .server_name_for(host)
            .map_err(|e| invalid_input(e.to_string()))?;
        RawConnection::open(base_url, authority, Some(RawTls { config, name }))
    }

    fn open(base_url: &str, authority: &str, tls: Option<RawTls>) -> io::Result<RawConnection> {
        let authority = authority.trim_end_matches('/');
        if authority.contains('/') {
            return Err(invalid_input(format!(
                "{base_url}: a path is not supported"
            )));
        }
        let addr = authority
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| invalid_input(format!("{base_url}: no address")))?;
        let mut conn = RawConnection {
            addr,
            authority: authority.to_owned(),
            tls,
            stream: None,
            request: Vec::with_capacity(512),
            buf: vec![0; READ_BUFFER],
            filled: 0,
            consumed: 0,
        };
        conn.reconnect()?;
        Ok(conn)
    }

    /// `PUT <path>` with the form body `value=<value>`; `value` must already
    /// be form-encoded (plain alphanumerics are).
    pub fn put_value(&mut self, path: &str, value: &[u8]) -> io::Result<RawResponse<'_>> {
        self.send(
            "PUT",
            path,
            Some((b"application/x-www-form-urlencoded", &[b"value=", value])),
        )
    }

    /// `POST <path>` with a JSON body (the concatenation of `body`), as the
    /// v3 gateway takes it.
    pub fn post_json(&mut self, path: &str, body: &[&[u8]]) -> io::Result<RawResponse<'_>> {
        self.send("POST", path, Some((b"application/json", body)))
    }

    /// `GET <path>`.
    pub fn get(&mut self, path: &str) -> io::Result<RawResponse<'_>> {
        self.send("GET", path, None)
    }

    /// `DELETE <path>` (a query string may be part of `path`).
    pub fn delete(&mut self, path: &str) -> io::Result<RawResponse<'_>> {
        self.send("DELETE", path, None)
    }

    /// Sends `method path` with an optional body (content type, then the
    /// body's pieces, concatenated) and reads the response.
    ///
    /// When sending on a reused connection fails, or it turns out to have been
    /// closed by the server before any byte of the response arrived, the
    /// request is sent once more on a new connection.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&[u8], &[&[u8]])>,
    ) -> io::Result<RawResponse<'_>> {
        self.build_request(method, path, body);
        let fresh = self.stream.is_none();
        if fresh {
            self.reconnect()?;
        }
        let sent = match self.exchange() {
            Err(e) if !fresh && is_stale_connection(&e) => {
                self.reconnect().and_then(|()| self.exchange())
            }
            other => other,
        };
        if let Err(e) = sent {
            self.stream = None;
            return Err(e);
        }
        self.read_response()
    }

    /// (Re)connects, dropping whatever was buffered.
    fn reconnect(&mut self) -> io::Result<()> {
        self.stream = None;
        self.filled = 0;
        self.consumed = 0;
        let stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        self.stream = Some(match &self.tls {
            None => RawStream::Plain(stream),
            Some(tls) => {
                let session = rustls::ClientConnection::new(tls.config.clone(), tls.name.clone())
                    .map_err(io::Error::other)?;
                let mut tls = rustls::StreamOwned::new(session, stream);
                // Handshake now, so that a request never pays for it.
                while tls.conn.is_handshaking() {
                    tls.conn.complete_io(&mut tls.sock)?;
                }
                RawStream::Tls(Box::new(tls))
            }
        });
        Ok(())
    }

    /// Writes the request into `self.request`, no allocation once it has grown.
    fn build_request(&mut self, method: &str, path: &str, body: Option<(&[u8], &[&[u8]])>) {
        let r = &mut self.request;
        r.clear();
        r.extend_from_slice(method.as_bytes());
        r.push(b' ');
        r.extend_from_slice(path.as_bytes());
        r.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        r.extend_from_slice(self.authority.as_bytes());
        r.extend_from_slice(b"\r\n");
        if let Some((content_type, pieces)) = body {
            let len: usize = pieces.iter().map(|p| p.len()).sum();
            r.extend_from_slice(b"Content-Type: ");
            r.extend_from_slice(content_type);
            r.extend_from_slice(b"\r\nContent-Length: ");
            push_decimal(r, len);
            r.extend_from_slice(b"\r\n\r\n");
            for p in pieces {
                r.extend_from_slice(p);
            }
        } else {
            r.extend_from_slice(b"\r\n");
        }
    }

    /// Writes the request and waits for the first bytes of the response.
    fn exchange(&mut self) -> io::Result<()> {
        // Drop the previous response; keep anything the server sent after it.
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        let stream = self.stream.as_mut().expect("connected");
        stream.write_all(&self.request)?;
        if self.filled == 0 {
            self.fill()?;
        }
        Ok(())
    }

    /// Reads the response whose first bytes are in the buffer.
    fn read_response(&mut self) -> io::Result<RawResponse<'_>> {
        let result = self.read_response_inner();
        if result.is_err() {
            // The stream is out of step now: never reuse it.
            self.stream = None;
        }
        let (status, body_start, body_end, close) = result?;
        self.consumed = body_end;
        if close {
            self.stream = None;
        }
        Ok(RawResponse {
            status,
            body: &self.buf[body_start..body_end],
        })
    }

    /// Returns (status, body start, body end, connection closes).
    fn read_response_inner(&mut self) -> io::Result<(u16, usize, usize, bool)> {
        let mut scanned = 0;
        let head_end = loop {
            if let Some(i) = find_head_end(&self.buf[..self.filled], scanned) {
                break i;
            }
            scanned = self.filled.saturating_sub(3);
            self.fill()?;
        };
        let head = parse_head(&self.buf[..head_end])?;
        let body_end = head_end + head.content_length;
        while self.filled < body_end {
            self.fill()?;
        }
        Ok((head.status, head_end, body_end, head.close))
    }

    /// Reads more bytes into the buffer, growing it when full.
    fn fill(&mut self) -> io::Result<()> {
        if self.filled == self.buf.len() {
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        let stream = self.stream.as_mut().expect("connected");
        let n = loop {
            match stream.read(&mut self.buf[self.filled..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        self.filled += n;
        Ok(())
    }
}

/// What the header block says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: usize,
    close: bool,
}

/// Parses the status line and the headers this client needs. `head` ends
/// with the blank line.
fn parse_head(head: &[u8]) -> io::Result<Head> {
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let status_line = lines.next().unwrap_or_default();
    // "HTTP/1.1 200 OK"
    let mut parts = status_line.splitn(3, |&b| b == b' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.starts_with(b"HTTP/1.") || code.len() != 3 {
        return Err(invalid_data(format!(
            "bad status line {:?}",
            String::from_utf8_lossy(status_line)
        )));
    }
    let status = parse_decimal(code).ok_or_else(|| invalid_data("bad status code".into()))? as u16;
    let mut content_length = None;
    let mut close = version == b"HTTP/1.0";
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim_spaces(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            content_length = Some(
                parse_decimal(value).ok_or_else(|| invalid_data("bad Content-Length".into()))?,
            );
        } else if name.eq_ignore_ascii_case(b"connection") {
            close = value.eq_ignore_ascii_case(b"close");
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(invalid_data(
                "chunked responses are not supported by the raw client".into(),
            ));
        }
    }
    let content_length = match content_length {
        Some(n) => n,
        None if status == 204 || status == 304 || (100..200).contains(&status) => 0,
        None => return Err(invalid_data("response without Content-Length".into())),
    };
    Ok(Head {
        status,
        content_length,
        close,
    })
}

/// The index just past the first `\r\n\r\n` in `buf`, searching from `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_decimal(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 18 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, &d| n * 10 + usize::from(d - b'0')))
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Errors that mean a reused keep-alive connection had been closed by the
/// server (so the request may be sent again on a fresh one).
fn is_stale_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

fn invalid_input(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn heads_are_parsed() {
        let head = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\
                     X-Etcd-Index: 7\r\ncontent-length:  42 \r\nDate: x\r\n\r\n";
        assert_eq!(
            parse_head(head).unwrap(),
            Head {
                status: 201,
                content_length: 42,
                close: false
            }
        );
        let close = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
        assert_eq!(
            parse_head(close).unwrap(),
            Head {
                status: 204,
                content_length: 0,
                close: true
            }
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn decimals_round_trip() {
        for n in [0usize, 7, 10, 100, 65_535, 123_456_789] {
            let mut v = Vec::new();
            push_decimal(&mut v, n);
            assert_eq!(parse_decimal(&v), Some(n));
        }
        assert_eq!(parse_decimal(b"1a"), None);
        assert_eq!(parse_decimal(b""), None);
    }

    #[test]
    fn head_end_is_found_across_reads() {
        assert_eq!(find_head_end(b"a\r\n\r\nbody", 0), Some(5));
        assert_eq!(find_head_end(b"a\r\n\r\nbody", 1), Some(5));
        assert_eq!(find_head_end(b"a\r\n\r\nbody", 2), None);
        assert_eq!(find_head_end(b"a\r\n\r", 0), None);
        assert_eq!(find_head_end(b"ab", 5), None);
    }

    /// A server that answers every request on one connection, in pieces,
    /// then closes after the last one.
    #[test]
    fn keep_alive_exchanges_and_reconnect() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut requests = Vec::new();
            for round in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                let answers = if round == 0 { 2 } else { 1 };
                for i in 0..answers {
                    // Read one request: head, then its Content-Length body.
                    loop {
                        if let Some(end) = find_head_end(&seen, 0) {
                            let head = String::from_utf8_lossy(&seen[..end]).to_string();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("Content-Length: "))
                                .map_or(0, |v| v.trim().parse().unwrap());
                            if seen.len() >= end + len {
                                requests
                                    .push(String::from_utf8_lossy(&seen[..end + len]).to_string());
                                seen.drain(..end + len);
                                break;
                            }
                        }
                        let n = s.read(&mut buf).unwrap();
                        seen.extend_from_slice(&buf[..n]);
                    }
                    let body = format!("{{\"n\":{i}}}");
                    let reply = format!(
                        "HTTP/1.1 20{i} X\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let (a, b) = reply.as_bytes().split_at(10);
                    s.write_all(a).unwrap();
                    s.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                    s.write_all(b).unwrap();
                }
                // Dropping `s` closes the connection: the client must reconnect.
            }
            requests
        });
        let mut c = RawConnection::connect(&url).unwrap();
        let r = c.put_value("/v2/keys/a", b"xyz").unwrap();
        assert_eq!((r.status, r.body), (200, &b"{\"n\":0}"[..]));
        let r = c
            .post_json("/v3/kv/range", &[b"{\"key\":\"", b"YQ==", b"\"}"])
            .unwrap();
        assert_eq!((r.status, r.body), (201, &b"{\"n\":1}"[..]));
        std::thread::sleep(Duration::from_millis(50));
        let r = c.get("/v2/keys/b").unwrap();
        assert_eq!((r.status, r.body), (200, &b"{\"n\":0}"[..]));
        let requests = server.join().unwrap();
        assert_eq!(requests.len(), 3);
        assert!(requests[0].starts_with("PUT /v2/keys/a HTTP/1.1\r\nHost: 127.0.0.1:"));
        assert!(requests[0].contains(
            "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\nvalue=xyz"
        ));
        assert!(requests[1].starts_with("POST /v3/kv/range HTTP/1.1\r\n"));
        assert!(requests[1].ends_with(
            "\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"key\":\"YQ==\"}"
        ));
        assert!(requests[2].starts_with("GET /v2/keys/b HTTP/1.1\r\n"));
    }
}
