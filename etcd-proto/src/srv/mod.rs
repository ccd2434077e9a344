//! DNS SRV discovery of an etcd cluster's client URLs, sans-IO.
//!
//! etcd advertises its client URLs under two SRV names of a domain (as
//! `etcd --discovery-srv` and etcd's Go client read them):
//!
//! | SRV name | URLs |
//! |---|---|
//! | `_etcd-client-ssl._tcp.<domain>` | `https://target:port` |
//! | `_etcd-client._tcp.<domain>` | `http://target:port` |
//!
//! [`SrvDiscovery`] asks for the `-ssl` name first. Records there win and the
//! plain name is never asked (no mixing of schemes, so a plain `http://`
//! record can never stand in for an advertised TLS endpoint). If the `-ssl`
//! name has no usable record — NXDOMAIN, an empty answer, another response
//! code, or no answer in time — the plain name is asked next. If that has
//! none either, discovery **fails** with a [`DiscoveryError`] naming both names
//! and what the server said for each. There is no default endpoint and no
//! fallback to `localhost`: a client that cannot find its cluster says so
//! instead of talking to whatever listens on `127.0.0.1:2379` (python-etcd
//! #198, #276).
//!
//! Each name is asked up to [`ATTEMPTS_PER_NAME`] times (the same query is
//! resent once on a timeout); a transport waits
//! [`DEFAULT_TIMEOUT_PER_NAME`]` / ATTEMPTS_PER_NAME` for each attempt by
//! default. Only DNS over UDP is spoken, without EDNS: an answer with the
//! TC (truncated) flag set is an error, not a partial list.
//!
//! URLs are sorted by priority (lowest first), then by weight (highest
//! first), answer order breaking ties; a target's trailing dot is removed and
//! records whose target is `.` ("no service here", RFC 2782) are skipped. The
//! URLs name the targets as advertised: A/AAAA records from the additional
//! section are parsed and kept in [`SrvRecord::addresses`], but not
//! substituted for the host names (TLS certificates name hosts).
//!
//! Three files, one concern each: this one holds the discovery machine,
//! `message` the DNS codec (the query sent, the answers parsed),
//! `resolv` which server to ask. Everything is re-exported here.
//!
//! # Driving discovery
//!
//! [`SrvDiscovery`] holds every decision; a transport owns one UDP socket
//! (connected to the DNS server) and a clock, and loops:
//!
//! 1. if [`result`](SrvDiscovery::result) is `Some`, stop;
//! 2. send what [`poll_transmit`](SrvDiscovery::poll_transmit) returns, if
//!    anything, and start a timer of one attempt's length;
//! 3. hand every datagram that arrives before the timer fires to
//!    [`handle_datagram`](SrvDiscovery::handle_datagram) (strays are ignored:
//!    the timer keeps running), or call
//!    [`handle_timeout`](SrvDiscovery::handle_timeout) when it fires.
//!
//! ```
//! use etcd_proto::srv::{DiscoveryFailure, NameAnswer, Rcode, SrvDiscovery};
//!
//! let mut discovery = SrvDiscovery::new("example.test", 0x1234);
//! let query = discovery.poll_transmit().unwrap();
//! assert_eq!(discovery.current_name(), Some("_etcd-client-ssl._tcp.example.test"));
//! // The server answers NXDOMAIN: the query echoed back with QR set, RCODE 3.
//! let mut nxdomain = query.clone();
//! nxdomain[2] |= 0x80;
//! nxdomain[3] |= 3;
//! discovery.handle_datagram(&nxdomain);
//! // Next, the plain name; its two attempts go unanswered.
//! let _query = discovery.poll_transmit().unwrap();
//! assert_eq!(discovery.current_name(), Some("_etcd-client._tcp.example.test"));
//! discovery.handle_timeout();
//! let _resent = discovery.poll_transmit().unwrap();
//! discovery.handle_timeout();
//! let error = discovery.result().unwrap().unwrap_err();
//! let DiscoveryFailure::NotFound { tried } = error.reason() else { panic!() };
//! assert_eq!(tried[0].answer, NameAnswer::Answered(Rcode::NXDOMAIN));
//! assert_eq!(tried[1].answer, NameAnswer::NoResponse { attempts: 2 });
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

mod message;
mod resolv;

pub use message::*;
pub use resolv::*;

/// The DNS port, used for `nameserver` entries of `/etc/resolv.conf`.
pub const DNS_PORT: u16 = 53;

/// Where transports read the system's DNS server from.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// How long a transport waits for each SRV name by default, all attempts
/// together.
pub const DEFAULT_TIMEOUT_PER_NAME: Duration = Duration::from_secs(2);

/// How many times each SRV name is asked before moving on: the query is
/// resent once when no answer came in time.
pub const ATTEMPTS_PER_NAME: u32 = 2;

/// The service labels asked, in order, with the URL scheme each stands for.
pub const SERVICES: [(&str, &str); 2] = [
    ("_etcd-client-ssl._tcp", "https"),
    ("_etcd-client._tcp", "http"),
];

/// The largest datagram worth reading: DNS over UDP without EDNS carries at
/// most 512 bytes, but a receive buffer this size never cuts a reply short.
pub const MAX_DATAGRAM: usize = 4096;

// ---------------------------------------------------------------------------
// the state machine

/// What the DNS server said about one SRV name, when it gave no usable record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameAnswer {
    /// An answer with this response code and no usable SRV record (NOERROR:
    /// the name exists but has no SRV record, or only `.` targets).
    Answered(Rcode),
    /// No answer came, after this many attempts.
    NoResponse {
        /// How many times the query was sent.
        attempts: u32,
    },
}

impl fmt::Display for NameAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameAnswer::Answered(Rcode::NOERROR) => f.write_str("NOERROR, no SRV records"),
            NameAnswer::Answered(rcode) => rcode.fmt(f),
            NameAnswer::NoResponse { attempts } => {
                write!(f, "no answer after {attempts} attempts")
            }
        }
    }
}

/// One SRV name asked, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameOutcome {
    /// The full name, e.g. `_etcd-client._tcp.example.com`.
    pub name: String,
    /// What the server said.
    pub answer: NameAnswer,
}

/// Why SRV discovery failed, without the context [`DiscoveryError`] adds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoveryFailure {
    /// The domain cannot be put into a DNS question.
    InvalidDomain {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Neither SRV name has a usable record: each name asked, in order, with
    /// the server's response code (or that it never answered).
    NotFound {
        /// Both names, `-ssl` first.
        tried: Vec<NameOutcome>,
    },
    /// The answer did not fit a UDP datagram (TC flag). Only DNS over UDP is
    /// spoken, so the full list cannot be read; a partial one is not used.
    Truncated {
        /// The SRV name whose answer was truncated.
        name: String,
    },
    /// The answer to our query was not a well-formed DNS message, or an SRV
    /// target is not a host name.
    Malformed {
        /// The SRV name asked.
        name: String,
        /// What was wrong.
        error: MalformedDns,
    },
    /// No DNS server to ask: none given, and none found in the resolver
    /// configuration.
    NoServer {
        /// Why none was found.
        reason: String,
    },
    /// The socket failed (set by transports), e.g. the server's port is
    /// closed (ICMP port unreachable).
    Io {
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// The I/O error's message.
        message: String,
    },
}

impl fmt::Display for DiscoveryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryFailure::InvalidDomain { reason } => write!(f, "invalid domain: {reason}"),
            DiscoveryFailure::NotFound { tried } => {
                f.write_str("no etcd SRV records")?;
                for (i, outcome) in tried.iter().enumerate() {
                    let sep = if i == 0 { " (" } else { "; " };
                    write!(f, "{sep}{}: {}", outcome.name, outcome.answer)?;
                }
                if !tried.is_empty() {
                    f.write_str(")")?;
                }
                Ok(())
            }
            DiscoveryFailure::Truncated { name } => write!(
                f,
                "the answer for {name} was truncated (TC flag): only DNS over UDP is \
                 supported, so the full record list cannot be read"
            ),
            DiscoveryFailure::Malformed { name, error } => {
                write!(f, "malformed answer for {name}: {error}")
            }
            DiscoveryFailure::NoServer { reason } => write!(f, "no DNS server to ask: {reason}"),
            DiscoveryFailure::Io { message, .. } => write!(f, "DNS socket error: {message}"),
        }
    }
}

/// DNS SRV discovery found no endpoint. No default endpoint is ever used in
/// its place. Its message names the domain, the DNS server (when the
/// transport set it) and the reason, e.g. `etcd DNS SRV discovery for
/// example.com via DNS server 10.0.0.2:53 failed: no etcd SRV records
/// (_etcd-client-ssl._tcp.example.com: NXDOMAIN; _etcd-client._tcp.example.com:
/// NOERROR, no SRV records)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryError {
    domain: String,
    server: Option<SocketAddr>,
    reason: DiscoveryFailure,
}

impl DiscoveryError {
    /// Discovery for `domain` failed for `reason`.
    pub fn new(domain: impl Into<String>, reason: DiscoveryFailure) -> Self {
        DiscoveryError {
            domain: domain.into(),
            server: None,
            reason,
        }
    }

    /// A socket error talking to `server`.
    pub fn io(domain: impl Into<String>, server: SocketAddr, error: &std::io::Error) -> Self {
        let reason = DiscoveryFailure::Io {
            kind: error.kind(),
            message: error.to_string(),
        };
        DiscoveryError::new(domain, reason).with_server(server)
    }

    /// The same error, naming the DNS server that was asked.
    pub fn with_server(mut self, server: SocketAddr) -> Self {
        self.server = Some(server);
        self
    }

    /// The domain whose cluster was looked for.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The DNS server asked, if known.
    pub fn server(&self) -> Option<SocketAddr> {
        self.server
    }

    /// What went wrong.
    pub fn reason(&self) -> &DiscoveryFailure {
        &self.reason
    }
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "etcd DNS SRV discovery for {:?}", self.domain)?;
        if let Some(server) = self.server {
            write!(f, " via DNS server {server}")?;
        }
        write!(f, " failed: {}", self.reason)
    }
}

impl std::error::Error for DiscoveryError {}

/// The SRV discovery state machine: asks for `_etcd-client-ssl._tcp.<domain>`,
/// then `_etcd-client._tcp.<domain>`, and yields endpoint URLs or a
/// [`DiscoveryError`]. See the [module docs](self) for the rules and the loop
/// that drives it.
///
/// Both names are asked with the caller's query ID; an answer counts only if
/// it carries that ID, is a response to a standard query, and (when it
/// echoes a question) echoes the name being asked. Anything else is ignored
/// and discovery keeps waiting.
#[derive(Debug, Clone)]
pub struct SrvDiscovery {
    domain: String,
    query_id: u16,
    names: Vec<String>,
    queries: Vec<Vec<u8>>,
    current: usize,
    attempts: u32,
    transmit_due: bool,
    tried: Vec<NameOutcome>,
    records: Vec<SrvRecord>,
    outcome: Option<Result<Vec<String>, DiscoveryError>>,
}

impl SrvDiscovery {
    /// Discovery of the cluster advertised under `domain` (e.g.
    /// `example.com`; a trailing dot is optional), asking with query ID
    /// `query_id` — pick it at random: it is what tells a real answer from
    /// a forged one. An invalid domain makes [`result`](Self::result) an
    /// error at once, without any query.
    pub fn new(domain: &str, query_id: u16) -> Self {
        let bare = domain.strip_suffix('.').unwrap_or(domain);
        let names: Vec<String> = SERVICES
            .iter()
            .map(|(service, _)| format!("{service}.{bare}"))
            .collect();
        let queries: Result<Vec<_>, _> = if bare.is_empty() {
            Err(NameError {
                name: domain.to_owned(),
                reason: "the domain is empty",
            })
        } else {
            names
                .iter()
                .map(|name| encode_srv_query(query_id, name))
                .collect()
        };
        let (queries, outcome) = match queries {
            Ok(queries) => (queries, None),
            Err(e) => {
                let reason = DiscoveryFailure::InvalidDomain { reason: e.reason };
                (Vec::new(), Some(Err(DiscoveryError::new(bare, reason))))
            }
        };
        SrvDiscovery {
            domain: bare.to_owned(),
            query_id,
            names,
            queries,
            current: 0,
            attempts: 0,
            transmit_due: true,
            tried: Vec::new(),
            records: Vec::new(),
            outcome,
        }
    }

    /// The next datagram to send to the DNS server, if one is due: the first
    /// query, a resend after a timeout, or the query for the next name.
    /// Each datagram is returned once; after sending it, wait for an answer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.outcome.is_some() || !self.transmit_due {
            return None;
        }
        self.transmit_due = false;
        self.attempts += 1;
        self.queries.get(self.current).cloned()
    }

    /// A datagram arrived from the DNS server. Strays (too short, another
    /// query ID, not a response, another question) are ignored.
    pub fn handle_datagram(&mut self, datagram: &[u8]) {
        if self.outcome.is_some() || self.attempts == 0 {
            return;
        }
        let Some(header) = Header::parse(datagram) else {
            return;
        };
        if header.id != self.query_id || !header.is_response() || header.opcode() != 0 {
            return;
        }
        let name = self.names[self.current].clone();
        let message = match parse_message(datagram) {
            Ok(message) => message,
            Err(error) => return self.fail(DiscoveryFailure::Malformed { name, error }),
        };
        if let Some(question) = message.questions.first() {
            let ours = question.name.eq_ignore_ascii_case(&name)
                && question.qtype == TYPE_SRV
                && question.qclass == CLASS_IN;
            if !ours {
                return;
            }
        }
        if header.truncated() {
            return self.fail(DiscoveryFailure::Truncated { name });
        }
        if header.rcode() != Rcode::NOERROR {
            return self.next_name(NameAnswer::Answered(header.rcode()));
        }
        let owners = alias_chain(&name, &message.cnames);
        let mut records: Vec<SrvRecord> = message
            .srv
            .into_iter()
            .filter(|r| owners.iter().any(|o| o.eq_ignore_ascii_case(&r.owner)))
            .filter(|r| !r.target.is_empty())
            .collect();
        if records.iter().any(|r| r.target.contains('\\')) {
            let error = MalformedDns {
                reason: "an SRV target is not a host name",
                offset: HEADER_LEN,
            };
            return self.fail(DiscoveryFailure::Malformed { name, error });
        }
        if records.is_empty() {
            return self.next_name(NameAnswer::Answered(Rcode::NOERROR));
        }
        records.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| b.weight.cmp(&a.weight))
        });
        let scheme = SERVICES[self.current].1;
        let mut urls: Vec<String> = Vec::with_capacity(records.len());
        for record in &records {
            let url = format!("{scheme}://{}:{}", record.target, record.port);
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        self.records = records;
        self.outcome = Some(Ok(urls));
    }

    /// No answer came in time for the last datagram sent: resend it (up to
    /// [`ATTEMPTS_PER_NAME`] attempts), then move to the next name, or fail.
    pub fn handle_timeout(&mut self) {
        if self.outcome.is_some() || self.attempts == 0 || self.transmit_due {
            return;
        }
        if self.attempts < ATTEMPTS_PER_NAME {
            self.transmit_due = true;
        } else {
            let attempts = self.attempts;
            self.next_name(NameAnswer::NoResponse { attempts });
        }
    }

    /// The outcome once known: the endpoint URLs (`https://` for the `-ssl`
    /// name, `http://` for the plain one, best first), or why there are none.
    pub fn result(&self) -> Option<Result<Vec<String>, DiscoveryError>> {
        self.outcome.clone()
    }

    /// The SRV records behind a successful result, in URL order (with any
    /// addresses the additional section gave for their targets).
    pub fn records(&self) -> &[SrvRecord] {
        &self.records
    }

    /// The SRV name being asked now, until the outcome is known.
    pub fn current_name(&self) -> Option<&str> {
        match self.outcome {
            Some(_) => None,
            None => self.names.get(self.current).map(String::as_str),
        }
    }

    /// The domain, without a trailing dot.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    fn next_name(&mut self, answer: NameAnswer) {
        self.tried.push(NameOutcome {
            name: self.names[self.current].clone(),
            answer,
        });
        if self.current + 1 < self.names.len() {
            self.current += 1;
            self.attempts = 0;
            self.transmit_due = true;
        } else {
            let tried = std::mem::take(&mut self.tried);
            self.fail(DiscoveryFailure::NotFound { tried });
        }
    }

    fn fail(&mut self, reason: DiscoveryFailure) {
        self.outcome = Some(Err(DiscoveryError::new(self.domain.clone(), reason)));
    }
}

/// `name` and the names it is an alias of, following the answer's CNAMEs.
fn alias_chain(name: &str, cnames: &[(String, String)]) -> Vec<String> {
    let mut chain = vec![name.to_owned()];
    for _ in 0..MAX_CNAME_CHAIN {
        let last = &chain[chain.len() - 1];
        let Some((_, target)) = cnames
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(last))
        else {
            break;
        };
        if chain.iter().any(|n| n.eq_ignore_ascii_case(target)) {
            break;
        }
        chain.push(target.clone());
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::message::read_name;
    use super::*;
    use std::net::{IpAddr, SocketAddrV6};

    const SSL: &str = "_etcd-client-ssl._tcp.example.test";
    const PLAIN: &str = "_etcd-client._tcp.example.test";

    /// Builds a response to `query` by hand: the question echoed, then
    /// `answer`, `authority` and `additional` records already encoded.
    struct Reply {
        bytes: Vec<u8>,
    }

    impl Reply {
        fn to(query: &[u8], rcode: u8) -> Reply {
            let mut bytes = query.to_vec();
            bytes[2] |= 0x80; // QR
            bytes[3] = 0x80 | rcode; // RA, RCODE
            Reply { bytes }
        }

        fn count(&mut self, index: usize) {
            let at = 4 + 2 * index;
            let n = u16::from_be_bytes([self.bytes[at], self.bytes[at + 1]]) + 1;
            self.bytes[at..at + 2].copy_from_slice(&n.to_be_bytes());
        }

        /// An answer-section record owned by the question name (pointer to 12).
        fn srv(mut self, priority: u16, weight: u16, port: u16, target: &[u8]) -> Reply {
            self.count(1);
            let mut rdata = Vec::new();
            rdata.extend_from_slice(&priority.to_be_bytes());
            rdata.extend_from_slice(&weight.to_be_bytes());
            rdata.extend_from_slice(&port.to_be_bytes());
            rdata.extend_from_slice(target);
            self.record(&[0xC0, 12], TYPE_SRV, &rdata);
            self
        }

        fn record(&mut self, owner: &[u8], rtype: u16, rdata: &[u8]) {
            self.bytes.extend_from_slice(owner);
            self.bytes.extend_from_slice(&rtype.to_be_bytes());
            self.bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
            self.bytes.extend_from_slice(&300u32.to_be_bytes());
            self.bytes
                .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            self.bytes.extend_from_slice(rdata);
        }

        fn additional(mut self, owner: &[u8], rtype: u16, rdata: &[u8]) -> Reply {
            self.count(3);
            self.record(owner, rtype, rdata);
            self
        }
    }

    /// `name` in wire format, uncompressed.
    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    fn ok_urls(d: &SrvDiscovery) -> Vec<String> {
        d.result().expect("done").expect("success")
    }

    fn err_reason(d: &SrvDiscovery) -> DiscoveryFailure {
        d.result()
            .expect("done")
            .expect_err("failure")
            .reason()
            .clone()
    }

    #[test]
    fn query_is_byte_exact() {
        let q = encode_srv_query(0xBEEF, "_etcd-client._tcp.ex.test.").unwrap();
        let mut expected = vec![0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x0c_etcd-client\x04_tcp\x02ex\x04test\x00");
        expected.extend_from_slice(&[0, 33, 0, 1]);
        assert_eq!(q, expected);
        let parsed = parse_message(&q).unwrap();
        assert!(!parsed.header.is_response());
        assert!(parsed.header.recursion_desired());
        assert_eq!(parsed.questions[0].name, "_etcd-client._tcp.ex.test");
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", ".", "a..b", "a b", "ex\u{e9}.test", &"x".repeat(64)] {
            assert!(encode_srv_query(1, name).is_err(), "{name:?}");
        }
        let long = vec!["abcdefghi"; 26].join("."); // 260 bytes on the wire
        assert!(encode_srv_query(1, &long).is_err());
        let d = SrvDiscovery::new("bad domain", 1);
        assert!(matches!(
            err_reason(&d),
            DiscoveryFailure::InvalidDomain { .. }
        ));
        let mut d = SrvDiscovery::new("", 1);
        assert_eq!(d.poll_transmit(), None);
        assert!(matches!(
            err_reason(&d),
            DiscoveryFailure::InvalidDomain { .. }
        ));
    }

    #[test]
    fn ssl_records_win_sorted_with_dots_removed() {
        let mut d = SrvDiscovery::new("example.test.", 7);
        let q = d.poll_transmit().unwrap();
        assert_eq!(parse_message(&q).unwrap().questions[0].name, SSL);
        let reply = Reply::to(&q, 0)
            .srv(20, 0, 2379, &wire("c.example.test."))
            .srv(10, 1, 2380, &wire("b.example.test."))
            .srv(10, 5, 2381, &wire("a.example.test."))
            .srv(10, 5, 2381, &wire("a.example.test.")); // duplicate
        d.handle_datagram(&reply.bytes);
        assert_eq!(
            ok_urls(&d),
            [
                "https://a.example.test:2381",
                "https://b.example.test:2380",
                "https://c.example.test:2379"
            ]
        );
        assert_eq!(d.records().len(), 4);
        assert_eq!(d.poll_transmit(), None, "the plain name is never asked");
    }

    #[test]
    fn nxdomain_then_plain_records() {
        let mut d = SrvDiscovery::new("example.test", 7);
        let q = d.poll_transmit().unwrap();
        d.handle_datagram(&Reply::to(&q, 3).bytes);
        assert_eq!(d.current_name(), Some(PLAIN));
        let q2 = d.poll_transmit().unwrap();
        assert_eq!(parse_message(&q2).unwrap().questions[0].name, PLAIN);
        // Target compressed: "etcd" + pointer to "example.test" in the question.
        let suffix = 12 + 1 + "_etcd-client".len() + 1 + "_tcp".len();
        let target = [&[4u8][..], b"etcd", &[0xC0, suffix as u8]].concat();
        let reply = Reply::to(&q2, 0)
            .srv(0, 0, 4001, &target)
            .additional(&target, TYPE_A, &[10, 0, 0, 1])
            .additional(&[0xC0, 12], TYPE_A, &[10, 0, 0, 9])
            .additional(
                &target,
                TYPE_AAAA,
                &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            );
        d.handle_datagram(&reply.bytes);
        assert_eq!(ok_urls(&d), ["http://etcd.example.test:4001"]);
        assert_eq!(
            d.records()[0].addresses,
            [
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn both_empty_names_both_names_and_codes() {
        let mut d = SrvDiscovery::new("example.test", 7);
        let q = d.poll_transmit().unwrap();
        d.handle_datagram(&Reply::to(&q, 0).srv(0, 0, 1, &[0]).bytes); // "." only
        let q = d.poll_transmit().unwrap();
        d.handle_datagram(&Reply::to(&q, 3).bytes);
        let DiscoveryFailure::NotFound { tried } = err_reason(&d) else {
            panic!()
        };
        assert_eq!(
            tried,
            [
                NameOutcome {
                    name: SSL.into(),
                    answer: NameAnswer::Answered(Rcode::NOERROR)
                },
                NameOutcome {
                    name: PLAIN.into(),
                    answer: NameAnswer::Answered(Rcode::NXDOMAIN)
                },
            ]
        );
        let error = d
            .result()
            .unwrap()
            .unwrap_err()
            .with_server("10.0.0.2:53".parse().unwrap());
        assert_eq!(
            error.to_string(),
            "etcd DNS SRV discovery for \"example.test\" via DNS server 10.0.0.2:53 failed: \
             no etcd SRV records (_etcd-client-ssl._tcp.example.test: NOERROR, no SRV records; \
             _etcd-client._tcp.example.test: NXDOMAIN)"
        );
        assert_eq!(d.poll_transmit(), None);
    }

    #[test]
    fn timeouts_resend_once_then_move_on_then_fail() {
        let mut d = SrvDiscovery::new("example.test", 7);
        let first = d.poll_transmit().unwrap();
        assert_eq!(d.poll_transmit(), None, "one datagram per attempt");
        d.handle_timeout();
        assert_eq!(d.poll_transmit().unwrap(), first, "resent as is");
        d.handle_timeout();
        assert_eq!(d.current_name(), Some(PLAIN));
        d.poll_transmit().unwrap();
        d.handle_timeout();
        d.poll_transmit().unwrap();
        assert!(d.result().is_none());
        d.handle_timeout();
        let error = d.result().unwrap().unwrap_err();
        assert!(
            error.to_string().contains("no answer after 2 attempts"),
            "{error}"
        );
        assert!(error.to_string().contains(SSL) && error.to_string().contains(PLAIN));
    }

    #[test]
    fn strays_are_ignored() {
        let mut d = SrvDiscovery::new("example.test", 7);
        let q = d.poll_transmit().unwrap();
        let good = Reply::to(&q, 0).srv(0, 0, 1, &wire("h.")).bytes;
        let mut wrong_id = good.clone();
        wrong_id[1] ^= 1;
        let mut wrong_question = good.clone();
        wrong_question[14] = b'X'; // inside "_etcd-client-ssl"
        for stray in [&b""[..], &[0u8; 11], &q, &wrong_id, &wrong_question] {
            d.handle_datagram(stray);
            assert!(d.result().is_none(), "{stray:?}");
            assert_eq!(d.poll_transmit(), None);
        }
        d.handle_datagram(&good);
        assert_eq!(ok_urls(&d), ["https://h:1"]);
    }

    #[test]
    fn truncated_is_an_error_not_a_fallback() {
        let mut d = SrvDiscovery::new("example.test", 7);
        let q = d.poll_transmit().unwrap();
        let mut reply = Reply::to(&q, 0).bytes;
        reply[2] |= 0x02;
        d.handle_datagram(&reply);
        let DiscoveryFailure::Truncated { name } = err_reason(&d) else {
            panic!()
        };
        assert_eq!(name, SSL);
        let message = d.result().unwrap().unwrap_err().to_string();
        assert!(message.contains("only DNS over UDP"), "{message}");
    }

    #[test]
    fn servfail_and_cname_chains() {
        let mut d = SrvDiscovery::new("example.test", 7);
        let q = d.poll_transmit().unwrap();
        d.handle_datagram(&Reply::to(&q, 2).bytes);
        let q = d.poll_transmit().unwrap();
        // The plain name is an alias of "srv.example.test", which holds the record.
        let mut reply = Reply::to(&q, 0);
        reply.count(1);
        reply.record(&[0xC0, 12], TYPE_CNAME, &wire("srv.example.test"));
        let alias_at = reply.bytes.len() - wire("srv.example.test").len();
        reply.count(1);
        let rdata = [&[0, 1, 0, 1, 0x09, 0x29][..], &wire("m1.example.test")].concat();
        reply.record(&[0xC0, alias_at as u8], TYPE_SRV, &rdata);
        // An SRV record of an unrelated owner is not ours.
        reply.count(1);
        let rdata = [&[0, 0, 0, 0, 0, 1][..], &wire("evil.test")].concat();
        reply.record(&wire("other.test"), TYPE_SRV, &rdata);
        d.handle_datagram(&reply.bytes);
        assert_eq!(ok_urls(&d), ["http://m1.example.test:2345"]);
    }

    #[test]
    fn malformed_answers_fail_loudly() {
        let q = SrvDiscovery::new("example.test", 7)
            .poll_transmit()
            .unwrap();
        let good = Reply::to(&q, 0).srv(0, 0, 1, &wire("h")).bytes;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("cut short", good[..good.len() - 3].to_vec()),
            (
                "pointer past the end",
                Reply::to(&q, 0).srv(0, 0, 1, &[0xC0, 0xFF]).bytes,
            ),
            ("self pointer", {
                let mut r = Reply::to(&q, 0);
                r.count(1);
                let at = r.bytes.len();
                r.record(&[0xC0, at as u8], TYPE_SRV, &[0; 7]);
                r.bytes
            }),
            (
                "reserved label",
                Reply::to(&q, 0).srv(0, 0, 1, &[0x40, 0]).bytes,
            ),
            (
                "target not a host",
                Reply::to(&q, 0).srv(0, 0, 1, &wire("a/b")).bytes,
            ),
            ("short SRV", {
                let mut r = Reply::to(&q, 0);
                r.count(1);
                r.record(&[0xC0, 12], TYPE_SRV, &[0, 0, 0]);
                r.bytes
            }),
            ("target overruns rdata", {
                let mut r = Reply::to(&q, 0).srv(0, 0, 1, &wire("h"));
                let n = r.bytes.len();
                r.bytes[n - 10] -= 1; // rdlength one short
                r.bytes
            }),
            (
                "bad A",
                Reply::to(&q, 0)
                    .srv(0, 0, 1, &wire("h"))
                    .additional(&wire("h"), TYPE_A, &[1, 2, 3])
                    .bytes,
            ),
        ];
        for (what, bytes) in cases {
            let mut d = SrvDiscovery::new("example.test", 7);
            d.poll_transmit();
            d.handle_datagram(&bytes);
            assert!(
                matches!(err_reason(&d), DiscoveryFailure::Malformed { .. }),
                "{what}: {:?}",
                d.result()
            );
        }
    }

    #[test]
    fn names_longer_than_255_are_refused() {
        // A chain of pointers to 63-byte labels building a 320-byte name.
        let mut msg = vec![0u8; 12];
        let label_at = msg.len();
        msg.push(63);
        msg.extend_from_slice(&[b'a'; 63]);
        msg.push(0);
        let mut prev = label_at;
        for _ in 0..4 {
            let at = msg.len();
            msg.push(63);
            msg.extend_from_slice(&[b'b'; 63]);
            msg.extend_from_slice(&[0xC0 | (prev >> 8) as u8, prev as u8]);
            prev = at;
        }
        let error = read_name(&msg, prev).unwrap_err();
        assert_eq!(error.reason, "name longer than 255 bytes");
    }

    #[test]
    fn resolv_conf_forms() {
        let conf = "; comment\n#nameserver 9.9.9.9\noptions edns0\nnameserver   bogus\n\
                    nameserver 192.0.2.1 # trailing\nnameserver 192.0.2.2\n";
        assert_eq!(
            nameserver_from_resolv_conf(conf),
            "192.0.2.1:53".parse().ok()
        );
        assert_eq!(
            nameserver_from_resolv_conf("nameserver fe80::1%eth0\nnameserver 2001:db8::1\n"),
            "[2001:db8::1]:53".parse().ok()
        );
        assert_eq!(
            nameserver_from_resolv_conf("nameserver fe80::1%3"),
            Some(SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().unwrap(),
                53,
                0,
                3
            )))
        );
        assert_eq!(nameserver_from_resolv_conf("nameserver\n"), None);
        assert_eq!(nameserver_from_resolv_conf(""), None);
    }

    #[test]
    fn dns_server_choice() {
        let given = "127.0.0.1:5353".parse().unwrap();
        let never = || -> std::io::Result<String> { panic!("read without need") };
        assert_eq!(dns_server("d", Some(given), never).unwrap(), given);
        let from_file = dns_server("d", None, || Ok("nameserver 10.1.1.1".into()));
        assert_eq!(from_file.unwrap(), "10.1.1.1:53".parse().unwrap());
        let none = dns_server("d", None, || Ok(String::new())).unwrap_err();
        assert!(matches!(none.reason(), DiscoveryFailure::NoServer { .. }));
        let unreadable = dns_server("d", None, || Err(std::io::ErrorKind::NotFound.into()));
        assert!(unreadable.unwrap_err().to_string().contains(RESOLV_CONF));
    }
}
