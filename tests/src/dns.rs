//! A tiny DNS server for the discovery tests: UDP on `127.0.0.1`, a free
//! port, one thread, answering SRV questions from a fixed table.
//!
//! Written from RFC 1035/2782 independently of `etcd_proto::srv`, so the
//! client's encoder and parser are checked against a second implementation
//! rather than against themselves. Answers use a compression pointer to the
//! question for each record's owner, as real servers do; SRV targets are
//! written uncompressed.
//!
//! * a name in the table: NOERROR with its SRV records (none for an empty list);
//! * any other name: NXDOMAIN;
//! * [`DnsServer::unresponsive`]: reads every query and never answers.
//!
//! Every question name received is recorded ([`DnsServer::queries`]). The
//! server stops, and its thread is joined, when it is dropped.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One SRV record: priority, weight, port, target (trailing dot optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower is preferred.
    pub priority: u16,
    /// Among equal priorities, higher is preferred.
    pub weight: u16,
    /// The TCP port.
    pub port: u16,
    /// The host.
    pub target: String,
}

impl Srv {
    /// A record for `target:port`.
    pub fn new(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.to_owned(),
        }
    }
}

/// A DNS server on `127.0.0.1`. See the [module docs](self).
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    queries: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serves `table`: each full SRV name (e.g. `_etcd-client._tcp.example.test`,
    /// matched case-insensitively, trailing dot optional) with its records.
    pub fn start(table: Vec<(&str, Vec<Srv>)>) -> DnsServer {
        let table = table
            .into_iter()
            .map(|(name, records)| (name.trim_end_matches('.').to_ascii_lowercase(), records))
            .collect();
        DnsServer::spawn(Some(table))
    }

    /// A server that receives queries and never answers any.
    pub fn unresponsive() -> DnsServer {
        DnsServer::spawn(None)
    }

    fn spawn(table: Option<Vec<(String, Vec<Srv>)>>) -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the test DNS server");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("set a read timeout");
        let addr = socket.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, queries) = (stop.clone(), queries.clone());
            std::thread::Builder::new()
                .name("test-dns".into())
                .spawn(move || serve(&socket, table.as_deref(), &stop, &queries))
                .expect("spawn the test DNS server")
        };
        DnsServer {
            addr,
            stop,
            queries,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The question names received so far, in order (retries included).
    pub fn queries(&self) -> Vec<String> {
        self.queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    socket: &UdpSocket,
    table: Option<&[(String, Vec<Srv>)]>,
    stop: &AtomicBool,
    queries: &Mutex<Vec<String>>,
) {
    let mut buffer = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = socket.recv_from(&mut buffer) else {
            continue; // the read timeout: check `stop` again
        };
        let Some(query) = Query::parse(&buffer[..n]) else {
            continue;
        };
        queries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(query.name.clone());
        if let Some(table) = table {
            let _ = socket.send_to(&answer(&query, table), peer);
        }
    }
}

/// The one question of a query, and where it ends.
struct Query<'a> {
    datagram: &'a [u8],
    name: String,
    qtype: u16,
    question_end: usize,
}

impl<'a> Query<'a> {
    /// A standard query with one uncompressed question, or `None`.
    fn parse(datagram: &'a [u8]) -> Option<Query<'a>> {
        if datagram.len() < 12 || datagram[2] & 0x80 != 0 || datagram[4..6] != [0, 1] {
            return None;
        }
        let mut labels = Vec::new();
        let mut pos = 12;
        loop {
            let len = usize::from(*datagram.get(pos)?);
            if len == 0 {
                break;
            }
            if len > 63 {
                return None;
            }
            labels
                .push(String::from_utf8_lossy(datagram.get(pos + 1..pos + 1 + len)?).into_owned());
            pos += 1 + len;
        }
        let fixed = datagram.get(pos + 1..pos + 5)?;
        Some(Query {
            datagram,
            name: labels.join("."),
            qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
            question_end: pos + 5,
        })
    }
}

fn answer(query: &Query<'_>, table: &[(String, Vec<Srv>)]) -> Vec<u8> {
    let found = table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&query.name));
    let records: &[Srv] = match found {
        Some((_, records)) if query.qtype == 33 => records,
        _ => &[],
    };
    let rcode = if found.is_some() { 0 } else { 3 };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query.datagram[0..2]); // ID
    out.push(0x84 | (query.datagram[2] & 0x01)); // QR, AA, RD copied
    out.push(0x80 | rcode); // RA, RCODE
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query.datagram[12..query.question_end]);
    for record in records {
        let mut target = Vec::new();
        for label in record.target.split('.').filter(|l| !l.is_empty()) {
            target.push(label.len() as u8);
            target.extend_from_slice(label.as_bytes());
        }
        target.push(0);
        out.extend_from_slice(&[0xC0, 12]); // owner: the question's name
        out.extend_from_slice(&[0, 33, 0, 1]); // SRV, IN
        out.extend_from_slice(&60u32.to_be_bytes()); // TTL
        out.extend_from_slice(&((6 + target.len()) as u16).to_be_bytes());
        out.extend_from_slice(&record.priority.to_be_bytes());
        out.extend_from_slice(&record.weight.to_be_bytes());
        out.extend_from_slice(&record.port.to_be_bytes());
        out.extend_from_slice(&target);
    }
    out
}
