//! What the benchmark sends: the operation, the keys and the value.
//!
//! Keys are distinct and live under a prefix unique to the run
//! (`/b<6 base-36 chars>/`), so runs against a shared etcd never collide. A
//! key is the prefix followed by a zero-padded index, padded so that the key
//! without its leading `/` is `--key-size` bytes long, e.g.
//! `/b3k9zq0/00001234` for 16 bytes. Requests cycle over the keys in order.
//!
//! Keys and values are plain ASCII alphanumerics, so they need no
//! percent-encoding in a URL path nor in a form body: every transport sends
//! the same bytes. The v3 workloads use the same key strings as v3 keys (etcd
//! keeps the v2 and v3 key spaces apart), sent base64-encoded in the
//! gateway's JSON like every v3 byte string.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The operation every request performs, each run with the clients'
/// `execute(op)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    /// `PUT /v2/keys/<key>` with `value=<val>` (`etcd_proto::v2::Write`).
    Put,
    /// `GET /v2/keys/<key>` (`etcd_proto::v2::Read`); the keys are written first.
    Get,
    /// `POST /v3/kv/put` with `{"key":…,"value":…}` (`etcd_proto::v3::Put`).
    V3Put,
    /// `POST /v3/kv/range` with `{"key":…}`, a linearizable read of one key
    /// (`etcd_proto::v3::Get`); the keys are written first.
    V3Range,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 4] = [
        Workload::Put,
        Workload::Get,
        Workload::V3Put,
        Workload::V3Range,
    ];

    /// The name used in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::V3Put => "v3-put",
            Workload::V3Range => "v3-range",
        }
    }

    /// True for the v3 (JSON gateway) workloads.
    pub fn is_v3(self) -> bool {
        matches!(self, Workload::V3Put | Workload::V3Range)
    }

    /// The write that fills the keys before this workload reads them, if it
    /// reads (the same API's put).
    pub fn needs_keys_written_by(self) -> Option<Workload> {
        match self {
            Workload::Get => Some(Workload::Put),
            Workload::V3Range => Some(Workload::V3Put),
            Workload::Put | Workload::V3Put => None,
        }
    }

    /// Parses a comma-separated list (`put,v3-put`), dropping repeats; `all`
    /// is every workload.
    pub fn parse_list(list: &str) -> Result<Vec<Workload>, String> {
        if list.trim() == "all" {
            return Ok(Workload::ALL.to_vec());
        }
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let w: Workload = name.parse()?;
            if !out.contains(&w) {
                out.push(w);
            }
        }
        if out.is_empty() {
            return Err("no workload given".into());
        }
        Ok(out)
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "put" | "v2-put" => Ok(Workload::Put),
            "get" | "v2-get" => Ok(Workload::Get),
            "v3-put" => Ok(Workload::V3Put),
            "v3-range" | "v3-get" => Ok(Workload::V3Range),
            "all" => Err("\"all\" must be alone in the list".into()),
            other => Err(format!(
                "unknown workload {other:?} (expected put, get, v3-put or v3-range)"
            )),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The keys of a run and the value written to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    /// The directory holding every key, e.g. `/b3k9zq0`.
    pub prefix: String,
    /// The keys, each `prefix/<padded index>`.
    pub keys: Vec<String>,
    /// The value (alphanumerics, `val_size` bytes).
    pub value: String,
}

impl KeySpace {
    /// `count` keys of `key_size` bytes (more when that is too short to hold
    /// the prefix and the index) under `prefix`, and a value of `val_size`
    /// bytes.
    pub fn new(prefix: &str, key_size: usize, count: usize, val_size: usize) -> KeySpace {
        let prefix = format!("/{}", prefix.trim_matches('/'));
        let index_digits = count.saturating_sub(1).max(1).to_string().len();
        // Without the leading '/': "<prefix>/<digits>".
        let fixed = prefix.len(); // prefix minus '/' plus the separator '/'
        let width = key_size.saturating_sub(fixed).max(index_digits);
        let keys = (0..count)
            .map(|i| format!("{prefix}/{i:0width$}"))
            .collect();
        KeySpace {
            prefix,
            keys,
            value: value_of_size(val_size),
        }
    }

    /// The length of each key without its leading `/`.
    pub fn key_size(&self) -> usize {
        self.keys.first().map_or(0, |k| k.len() - 1)
    }
}

/// A prefix unique to this process and moment: `b` and 6 base-36 characters
/// from the pid and the clock.
pub fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32);
    // Mix the bits (splitmix64 finaliser) so near times give unrelated names.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = String::from("b");
    for _ in 0..6 {
        s.push(DIGITS[(x % 36) as usize] as char);
        x /= 36;
    }
    s
}

/// `len` pseudo-random alphanumerics, the same for every run.
pub fn value_of_size(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// Appends the standard, padded base64 of `bytes` (the only form the v3
/// gateway of etcd 3.4 and 3.5 accepts).
pub fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut chunks = bytes.chunks_exact(3);
    for c in &mut chunks {
        let n = u32::from(c[0]) << 16 | u32::from(c[1]) << 8 | u32::from(c[2]);
        out.extend_from_slice(&[
            ALPHABET[(n >> 18) as usize & 63],
            ALPHABET[(n >> 12) as usize & 63],
            ALPHABET[(n >> 6) as usize & 63],
            ALPHABET[n as usize & 63],
        ]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                b'=',
                b'=',
            ]);
        }
        [a, b] => {
            let n = u32::from(a) << 16 | u32::from(b) << 8;
            out.extend_from_slice(&[
                ALPHABET[(n >> 18) as usize & 63],
                ALPHABET[(n >> 12) as usize & 63],
                ALPHABET[(n >> 6) as usize & 63],
                b'=',
            ]);
        }
        _ => {}
    }
}

/// The standard, padded base64 of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    push_base64(&mut out, bytes);
    String::from_utf8(out).expect("base64 is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_requested_size_and_are_distinct() {
        let ks = KeySpace::new("b3k9zq0", 16, 2000, 100);
        assert_eq!(ks.prefix, "/b3k9zq0");
        assert_eq!(ks.keys.len(), 2000);
        assert_eq!(ks.keys[1234], "/b3k9zq0/00001234");
        assert_eq!(ks.key_size(), 16);
        let mut sorted = ks.keys.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 2000);
        assert_eq!(ks.value.len(), 100);
        assert!(ks.value.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn short_key_sizes_grow_to_fit() {
        let ks = KeySpace::new("/p/", 2, 1000, 0);
        assert_eq!(ks.keys[999], "/p/999");
        assert_eq!(ks.keys[7], "/p/007");
        assert_eq!(ks.key_size(), 5);
        assert_eq!(ks.value, "");
        assert_eq!(KeySpace::new("p", 1, 1, 1).keys, vec!["/p/0".to_string()]);
    }

    #[test]
    fn prefixes_are_short_and_url_safe() {
        let p = unique_prefix();
        assert_eq!(p.len(), 7);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn workloads_parse_alone_and_in_lists() {
        assert_eq!("get".parse::<Workload>(), Ok(Workload::Get));
        assert_eq!("v2-put".parse::<Workload>(), Ok(Workload::Put));
        assert!("scan".parse::<Workload>().is_err());
        for w in Workload::ALL {
            assert_eq!(w.name().parse::<Workload>(), Ok(w));
        }
        assert_eq!(
            Workload::parse_list("v3-put, v3-range,v3-put"),
            Ok(vec![Workload::V3Put, Workload::V3Range])
        );
        assert_eq!(Workload::parse_list("all"), Ok(Workload::ALL.to_vec()));
        assert!(Workload::parse_list("put,all").is_err());
        assert!(Workload::parse_list(",").is_err());
        assert!(Workload::parse_list("put,scan").is_err());
        assert_eq!(
            Workload::V3Range.needs_keys_written_by(),
            Some(Workload::V3Put)
        );
        assert_eq!(Workload::Put.needs_keys_written_by(), None);
    }

    #[test]
    fn base64_is_standard_and_padded() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }
}
