//! A minimal HTTP/1.1 GET over a raw `TcpStream`, for readiness probes and
//! for tests that look at a server without going through the client crates.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A response read by [`http_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Header names (as sent) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Body, de-chunked when sent chunked, decoded lossily as UTF-8.
    pub body: String,
}

impl HttpResponse {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET <path>` on `base_url` (`"http://127.0.0.1:PORT"`) with
/// `Connection: close`, reading the whole response. Short timeouts (2 s to
/// connect, 5 s per read/write); errors are described as strings.
pub fn http_get(base_url: &str, path: &str) -> Result<HttpResponse, String> {
    http_get_timeout(base_url, path, IO_TIMEOUT)
}

/// [`http_get`] with another read/write timeout (connect: at most 2 s).
pub(crate) fn http_get_timeout(
    base_url: &str,
    path: &str,
    io_timeout: Duration,
) -> Result<HttpResponse, String> {
    let authority = base_url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported, got {base_url:?}"))?
        .trim_end_matches('/');
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("bad address {authority:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {authority:?}"))?;
    let fail = |what: &str, e: std::io::Error| format!("GET {base_url}{path}: {what}: {e}");

    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(io_timeout))
        .map_err(|e| fail("connect", e))?;
    stream
        .set_read_timeout(Some(io_timeout))
        .map_err(|e| fail("set timeout", e))?;
    stream
        .set_write_timeout(Some(io_timeout))
        .map_err(|e| fail("set timeout", e))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail("write", e))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| fail("read", e))?;
    parse_response(&raw).map_err(|e| format!("GET {base_url}{path}: {e}"))
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("incomplete response ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut response = HttpResponse {
        status,
        headers,
        body: String::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let decoded;
    if chunked {
        decoded = dechunk(body)?;
        body = &decoded;
    } else if let Some(len) = response
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body = &body[..len.min(body.len())];
    }
    response.body = String::from_utf8_lossy(body).into_owned();
    Ok(response)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| format!("bad chunk size {size_hex:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = data[size..].strip_prefix(b"\r\n").unwrap_or(&data[size..]);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn parses_content_length_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 17\r\nContent-Type: text/plain\r\n\r\n{\"health\":\"true\"}";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.body, "{\"health\":\"true\"}");
    }

    #[test]
    fn parses_chunked_body() {
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, "abcdefg");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_response(b"hello").is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
    }
}
