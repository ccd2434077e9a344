//! The v3 data model, free of any wire encoding: keys and values are bytes,
//! revisions are `i64` as in etcd's protobuf.

use std::fmt;

/// Every v3 answer's header: which cluster and member answered, at what
/// store revision and raft term.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ResponseHeader {
    /// The cluster's ID.
    pub cluster_id: u64,
    /// The answering member's ID.
    pub member_id: u64,
    /// The key-value store's revision when the request was applied.
    pub revision: i64,
    /// The raft term.
    pub raft_term: u64,
}

/// One key and its value, with the metadata etcd keeps.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The revision of the key's last creation.
    pub create_revision: i64,
    /// The revision of the key's last modification.
    pub mod_revision: i64,
    /// How many times the key was written since its creation (1 after a create).
    pub version: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

impl KeyValue {
    /// The key as UTF-8, or `None` if it is not.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }

    /// The value as UTF-8, or `None` if it is not.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

impl fmt::Debug for KeyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValue")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("value", &String::from_utf8_lossy(&self.value))
            .field("create_revision", &self.create_revision)
            .field("mod_revision", &self.mod_revision)
            .field("version", &self.version)
            .field("lease", &self.lease)
            .finish()
    }
}

/// A set of keys: one key, a prefix, a half-open range, or everything.
///
/// ```
/// use etcd_proto::v3::KeyRange;
/// assert_eq!(KeyRange::prefix("a/").range_end(), b"a0");
/// assert_eq!(KeyRange::prefix(b"a\xff").range_end(), b"b");
/// assert_eq!(KeyRange::prefix(b"\xff\xff").range_end(), b"\0");
/// assert_eq!(KeyRange::all().key(), b"\0");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyRange {
    key: Vec<u8>,
    range_end: Vec<u8>,
}

impl KeyRange {
    /// Exactly `key`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The exclusive end (`""`: just the key; `"\0"`: to the end of the keyspace).
    pub fn range_end(&self) -> &[u8] {
        &self.range_end
    }

    /// One key.
    pub fn single(key: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            key: key.into(),
            range_end: Vec::new(),
        }
    }

    /// Every key starting with `prefix`: the end is the prefix with its last
    /// byte below 0xFF incremented and what follows dropped. An empty or
    /// all-0xFF prefix reaches the end of the keyspace.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key: Vec<u8> = prefix.into();
        if key.is_empty() {
            return KeyRange::all();
        }
        KeyRange {
            range_end: prefix_end(&key),
            key,
        }
    }

    /// The half-open range `[start, end)`.
    pub fn range(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            key: start.into(),
            range_end: end.into(),
        }
    }

    /// `start` and every key after it.
    pub fn from_key(start: impl Into<Vec<u8>>) -> Self {
        KeyRange {
            key: start.into(),
            range_end: vec![0],
        }
    }

    /// Every key.
    pub fn all() -> Self {
        KeyRange {
            key: vec![0],
            range_end: vec![0],
        }
    }

    /// True if `key` is in this set.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => key == self.key.as_slice(),
            [0] => key >= self.key.as_slice(),
            end => key >= self.key.as_slice() && key < end,
        }
    }
}

impl fmt::Debug for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRange")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("range_end", &String::from_utf8_lossy(&self.range_end))
            .finish()
    }
}

impl From<&str> for KeyRange {
    fn from(key: &str) -> Self {
        KeyRange::single(key)
    }
}

impl From<&[u8]> for KeyRange {
    fn from(key: &[u8]) -> Self {
        KeyRange::single(key)
    }
}

impl From<String> for KeyRange {
    fn from(key: String) -> Self {
        KeyRange::single(key)
    }
}

impl From<Vec<u8>> for KeyRange {
    fn from(key: Vec<u8>) -> Self {
        KeyRange::single(key)
    }
}

/// The end of the range holding every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The order of a range's results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// The server's order (by key).
    #[default]
    None,
    /// Ascending.
    Ascend,
    /// Descending.
    Descend,
}

impl SortOrder {
    pub(crate) fn proto_name(self) -> &'static str {
        match self {
            SortOrder::None => "NONE",
            SortOrder::Ascend => "ASCEND",
            SortOrder::Descend => "DESCEND",
        }
    }
}

/// What a range's results are sorted by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value.
    Value,
}

impl SortTarget {
    pub(crate) fn proto_name(self) -> &'static str {
        match self {
            SortTarget::Key => "KEY",
            SortTarget::Version => "VERSION",
            SortTarget::Create => "CREATE",
            SortTarget::Mod => "MOD",
            SortTarget::Value => "VALUE",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
        let r = KeyRange::prefix("/a/");
        assert!(r.contains(b"/a/x"));
        assert!(!r.contains(b"/a0"));
        assert!(!r.contains(b"/ab"));
        let r = KeyRange::prefix(b"k\xff".to_vec());
        assert!(r.contains(b"k\xff\xff\x01"));
        assert!(!r.contains(b"l"));
    }
}
