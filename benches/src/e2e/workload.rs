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
//! the same bytes.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The operation every request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `PUT /v2/keys/<key>` with `value=<val>` (the client's `set`).
    Put,
    /// `GET /v2/keys/<key>` (the client's `get`); the keys are written first.
    Get,
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "put" => Ok(Workload::Put),
            "get" => Ok(Workload::Get),
            other => Err(format!("unknown workload {other:?} (expected put or get)")),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Put => "put",
            Workload::Get => "get",
        })
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
        assert_eq!("get".parse::<Workload>(), Ok(Workload::Get));
        assert!("scan".parse::<Workload>().is_err());
    }
}
