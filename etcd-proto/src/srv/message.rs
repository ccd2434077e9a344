//! DNS messages, as SRV discovery needs them: the query it sends
//! ([`encode_srv_query`]) and the answers it reads ([`parse_message`]:
//! header, question, SRV, A, AAAA and CNAME records, compression pointers
//! followed with a hop limit). Pure functions over bytes; never panics on
//! what a server sends.
//!
//! # Why not hickory-proto
//!
//! hickory-proto encodes and parses DNS messages without I/O, and was
//! weighed as this codec's replacement (December 2026, 0.26.3). It is not
//! used, for these measured reasons:
//!
//! - **Toolchain**: 0.26 needs Rust 1.88; the workspace promises 1.85. The
//!   last release that builds on 1.85, 0.25.2, carries RUSTSEC-2026-0119
//!   (quadratic name compression) and pulls async-trait and futures even
//!   with default features off.
//! - **Weight**: with default features off, 0.26.3 brings 49 crates, about
//!   38 of them new to this workspace (the ICU / idna / url chain, tracing,
//!   thiserror, and `rand`, dead code without `std`), to replace 450 lines
//!   that only need SRV, A, AAAA and CNAME.
//! - **Behaviour**: it parses every record of every section by type, so
//!   one odd record anywhere (an OPT, an SVCB, an empty record) fails the
//!   whole answer, where this codec skips the types discovery does not use;
//!   its errors carry no byte offset; and name validation, the CNAME chain
//!   and the header check would stay here anyway.
//!
//! Worth revisiting when discovery needs EDNS(0), TCP fallback or more
//! record types. The codec is fuzzed (`fuzz/fuzz_targets/dns_message.rs`).

use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_CNAME: u16 = 5;
pub(crate) const TYPE_AAAA: u16 = 28;
pub(crate) const TYPE_SRV: u16 = 33;
pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const HEADER_LEN: usize = 12;
/// Compression pointers followed within one name before giving up (a loop).
pub(crate) const MAX_POINTER_HOPS: usize = 32;
/// CNAMEs followed from the question name to the SRV records' owner.
pub(crate) const MAX_CNAME_CHAIN: usize = 8;

// ---------------------------------------------------------------------------
// messages: encoding

/// A name that cannot be put into a DNS question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot ask DNS for {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for NameError {}

/// The query datagram asking for the SRV records (class IN) of `name`, with
/// query ID `id` and the RD (recursion desired) flag set. A trailing dot on
/// `name` is optional. Labels are limited to ASCII letters, digits, `-` and
/// `_` (internationalised names must be given in their `xn--` form).
pub fn encode_srv_query(id: u16, name: &str) -> Result<Vec<u8>, NameError> {
    let invalid = |reason| NameError {
        name: name.to_owned(),
        reason,
    };
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err(invalid("the name is empty"));
    }
    let mut query = Vec::with_capacity(HEADER_LEN + bare.len() + 6);
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&0x0100u16.to_be_bytes()); // a standard query, RD
    query.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(invalid("it has an empty label"));
        }
        if label.len() > 63 {
            return Err(invalid("a label is longer than 63 bytes"));
        }
        if !label.bytes().all(is_plain_label_byte) {
            return Err(invalid(
                "labels may hold only ASCII letters, digits, '-' and '_'",
            ));
        }
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    if query.len() - HEADER_LEN > 255 {
        return Err(invalid("it is longer than 255 bytes"));
    }
    query.extend_from_slice(&TYPE_SRV.to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(query)
}

fn is_plain_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

// ---------------------------------------------------------------------------
// messages: parsing

/// A DNS response code (the header's 4-bit RCODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rcode(pub u8);

impl Rcode {
    /// No error.
    pub const NOERROR: Rcode = Rcode(0);
    /// The server could not interpret the query.
    pub const FORMERR: Rcode = Rcode(1);
    /// The server failed (often: it could not reach the authoritative servers).
    pub const SERVFAIL: Rcode = Rcode(2);
    /// The name does not exist.
    pub const NXDOMAIN: Rcode = Rcode(3);
    /// The server does not support this kind of query.
    pub const NOTIMP: Rcode = Rcode(4);
    /// The server refused to answer.
    pub const REFUSED: Rcode = Rcode(5);
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            n => return write!(f, "RCODE {n}"),
        };
        f.write_str(name)
    }
}

/// The fixed 12-byte header of a DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The query ID, echoed by the answer.
    pub id: u16,
    /// The flags word (QR, opcode, AA, TC, RD, RA, RCODE).
    pub flags: u16,
    /// Entries in the question section.
    pub qdcount: u16,
    /// Records in the answer section.
    pub ancount: u16,
    /// Records in the authority section.
    pub nscount: u16,
    /// Records in the additional section.
    pub arcount: u16,
}

impl Header {
    /// The header of `message`, or `None` if it is shorter than 12 bytes.
    pub fn parse(message: &[u8]) -> Option<Header> {
        let word = |i: usize| Some(u16::from_be_bytes([*message.get(i)?, *message.get(i + 1)?]));
        Some(Header {
            id: word(0)?,
            flags: word(2)?,
            qdcount: word(4)?,
            ancount: word(6)?,
            nscount: word(8)?,
            arcount: word(10)?,
        })
    }

    /// QR: the message is a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// The opcode (0: a standard query).
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xF) as u8
    }

    /// TC: the message was truncated to fit the datagram.
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }

    /// RD: recursion desired.
    pub fn recursion_desired(&self) -> bool {
        self.flags & 0x0100 != 0
    }

    /// The response code.
    pub fn rcode(&self) -> Rcode {
        Rcode((self.flags & 0xF) as u8)
    }
}

/// An entry of the question section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name asked about, without a trailing dot (see [`Message`] on names).
    pub name: String,
    /// The record type asked for (33: SRV).
    pub qtype: u16,
    /// The class (1: IN).
    pub qclass: u16,
}

/// One SRV record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// The name the record belongs to.
    pub owner: String,
    /// Lower is preferred.
    pub priority: u16,
    /// Among equal priorities, higher is chosen more often.
    pub weight: u16,
    /// The TCP port.
    pub port: u16,
    /// The host, without a trailing dot; empty for the root (`.`, "no service").
    pub target: String,
    /// The target's addresses from A/AAAA records of the additional section,
    /// if the server sent any.
    pub addresses: Vec<IpAddr>,
}

/// The parts of a DNS message SRV discovery reads.
///
/// Names are returned without a trailing dot, labels joined by `.`; a label
/// byte other than an ASCII letter, digit, `-` or `_` is written as `\DDD`
/// (decimal, as in zone files), so a name holding a `\` is no host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The question section.
    pub questions: Vec<Question>,
    /// The SRV records (class IN) of the answer section, in order.
    pub srv: Vec<SrvRecord>,
    /// The CNAME records (class IN) of the answer section: `(alias, canonical name)`.
    pub cnames: Vec<(String, String)>,
    /// The A and AAAA records (class IN) of the additional section: `(owner, address)`.
    pub addresses: Vec<(String, IpAddr)>,
}

/// A datagram that is not a well-formed DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedDns {
    /// What is wrong.
    pub reason: &'static str,
    /// The byte offset where it was found.
    pub offset: usize,
}

impl fmt::Display for MalformedDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.reason, self.offset)
    }
}

impl std::error::Error for MalformedDns {}

fn malformed<T>(reason: &'static str, offset: usize) -> Result<T, MalformedDns> {
    Err(MalformedDns { reason, offset })
}

/// Parses a DNS message: the header, the question section, SRV and CNAME
/// records of the answer section, and A/AAAA records of the additional
/// section; other records are skipped. Follows name compression pointers
/// (at most 32 per name, so a pointer loop is an error) and never panics,
/// whatever the bytes. Bytes after the last record are ignored.
pub fn parse_message(message: &[u8]) -> Result<Message, MalformedDns> {
    let Some(header) = Header::parse(message) else {
        return malformed("shorter than a DNS header", 0);
    };
    let mut pos = HEADER_LEN;
    let mut questions = Vec::new();
    for _ in 0..header.qdcount {
        let (name, next) = read_name(message, pos)?;
        let Some(fixed) = message.get(next..next + 4) else {
            return malformed("question runs past the end", next);
        };
        questions.push(Question {
            name,
            qtype: u16::from_be_bytes([fixed[0], fixed[1]]),
            qclass: u16::from_be_bytes([fixed[2], fixed[3]]),
        });
        pos = next + 4;
    }
    let mut srv = Vec::new();
    let mut cnames = Vec::new();
    for _ in 0..header.ancount {
        let (record, next) = read_record(message, pos)?;
        match (record.rtype, record.class) {
            (TYPE_SRV, CLASS_IN) => srv.push(read_srv(message, &record)?),
            (TYPE_CNAME, CLASS_IN) => {
                let target = read_name_filling(message, &record, record.rdata_start)?;
                cnames.push((record.owner, target));
            }
            _ => {}
        }
        pos = next;
    }
    for _ in 0..header.nscount {
        pos = read_record(message, pos)?.1;
    }
    let mut addresses = Vec::new();
    for _ in 0..header.arcount {
        let (record, next) = read_record(message, pos)?;
        let rdata = record.rdata(message);
        let address = match (record.rtype, record.class) {
            (TYPE_A, CLASS_IN) => match <[u8; 4]>::try_from(rdata) {
                Ok(octets) => Some(IpAddr::V4(Ipv4Addr::from(octets))),
                Err(_) => return malformed("an A record is not 4 bytes", record.rdata_start),
            },
            (TYPE_AAAA, CLASS_IN) => match <[u8; 16]>::try_from(rdata) {
                Ok(octets) => Some(IpAddr::V6(Ipv6Addr::from(octets))),
                Err(_) => return malformed("an AAAA record is not 16 bytes", record.rdata_start),
            },
            _ => None,
        };
        if let Some(address) = address {
            addresses.push((record.owner, address));
        }
        pos = next;
    }
    for record in &mut srv {
        record.addresses = addresses
            .iter()
            .filter(|(owner, _)| owner.eq_ignore_ascii_case(&record.target))
            .map(|(_, address)| *address)
            .collect();
    }
    Ok(Message {
        header,
        questions,
        srv,
        cnames,
        addresses,
    })
}

/// A resource record's fixed fields; its data is `rdata_start..rdata_end`.
struct RawRecord {
    owner: String,
    rtype: u16,
    class: u16,
    rdata_start: usize,
    rdata_end: usize,
}

impl RawRecord {
    fn rdata<'m>(&self, message: &'m [u8]) -> &'m [u8] {
        message.get(self.rdata_start..self.rdata_end).unwrap_or(&[])
    }
}

fn read_record(message: &[u8], pos: usize) -> Result<(RawRecord, usize), MalformedDns> {
    let (owner, next) = read_name(message, pos)?;
    let Some(fixed) = message.get(next..next + 10) else {
        return malformed("record header runs past the end", next);
    };
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let class = u16::from_be_bytes([fixed[2], fixed[3]]);
    // fixed[4..8] is the TTL, which discovery has no use for.
    let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let rdata_start = next + 10;
    let rdata_end = rdata_start + rdlength;
    if rdata_end > message.len() {
        return malformed("record data runs past the end", rdata_start);
    }
    let record = RawRecord {
        owner,
        rtype,
        class,
        rdata_start,
        rdata_end,
    };
    Ok((record, rdata_end))
}

fn read_srv(message: &[u8], record: &RawRecord) -> Result<SrvRecord, MalformedDns> {
    let rdata = record.rdata(message);
    if rdata.len() < 7 {
        return malformed("an SRV record is shorter than 7 bytes", record.rdata_start);
    }
    let field = |i: usize| u16::from_be_bytes([rdata[i], rdata[i + 1]]);
    let target = read_name_filling(message, record, record.rdata_start + 6)?;
    Ok(SrvRecord {
        owner: record.owner.clone(),
        priority: field(0),
        weight: field(2),
        port: field(4),
        target,
        addresses: Vec::new(),
    })
}

/// Reads a name at `start` that must end exactly where `record`'s data ends.
fn read_name_filling(
    message: &[u8],
    record: &RawRecord,
    start: usize,
) -> Result<String, MalformedDns> {
    let (name, end) = read_name(message, start)?;
    if end != record.rdata_end {
        return malformed("a name does not fill its record's data", start);
    }
    Ok(name)
}

/// Reads the (possibly compressed) name at `start`. Returns it and the offset
/// just past it where it starts (past its first pointer, if any).
pub(crate) fn read_name(message: &[u8], start: usize) -> Result<(String, usize), MalformedDns> {
    let mut name = String::new();
    let mut pos = start;
    let mut end = None;
    let mut hops = 0;
    let mut wire_length = 1;
    // Every turn either ends the name, adds at least 2 bytes to `wire_length`
    // (at most 255), or follows a pointer (at most MAX_POINTER_HOPS): bounded.
    loop {
        let Some(&length) = message.get(pos) else {
            return malformed("name runs past the end", pos);
        };
        match length & 0xC0 {
            0x00 if length == 0 => return Ok((name, end.unwrap_or(pos + 1))),
            0x00 => {
                let length = usize::from(length);
                let Some(label) = message.get(pos + 1..pos + 1 + length) else {
                    return malformed("label runs past the end", pos);
                };
                wire_length += 1 + length;
                if wire_length > 255 {
                    return malformed("name longer than 255 bytes", start);
                }
                if !name.is_empty() {
                    name.push('.');
                }
                for &b in label {
                    if is_plain_label_byte(b) {
                        name.push(char::from(b));
                    } else {
                        let _ = write!(name, "\\{b:03}");
                    }
                }
                pos += 1 + length;
            }
            0xC0 => {
                let Some(&low) = message.get(pos + 1) else {
                    return malformed("compression pointer runs past the end", pos);
                };
                end.get_or_insert(pos + 2);
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return malformed("too many compression pointers (a loop?)", pos);
                }
                pos = (usize::from(length & 0x3F) << 8) | usize::from(low);
            }
            _ => return malformed("reserved label type", pos),
        }
    }
}
