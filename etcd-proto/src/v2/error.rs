//! The v2 error table: every `errorCode` etcd's v2 API reports.
//!
//! An error body is `{"errorCode":N,"message":"…","cause":"…","index":N}`.
//! Note that errorCode 401 (history cleared) arrives with HTTP status 400,
//! and HTTP 401 carries errorCode 110: the code, not the status, is the key.

use std::fmt;

use serde::Deserialize;

/// A v2 `errorCode`, by name. Codes this table does not know are kept as [`V2ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum V2ErrorCode {
    /// 100: the key does not exist.
    KeyNotFound,
    /// 101: a `prevValue` / `prevIndex` condition did not hold.
    CompareFailed,
    /// 102: the key is a directory where a file was needed.
    NotFile,
    /// 103: no more peers.
    NoMorePeer,
    /// 104: the key is a file where a directory was needed.
    NotDir,
    /// 105: the key already exists (`prevExist=false`).
    NodeExist,
    /// 106: the key is reserved for etcd's own use.
    KeyIsPreserved,
    /// 107: the root is read only.
    RootReadOnly,
    /// 108: the directory is not empty.
    DirNotEmpty,
    /// 109: a peer with that address exists.
    ExistingPeerAddr,
    /// 110: the request requires authentication (or the credentials lack permission).
    Unauthorized,
    /// 200: a value is required.
    ValueRequired,
    /// 201: `prevValue` is required.
    PrevValueRequired,
    /// 202: the TTL is not a number.
    TtlNaN,
    /// 203: the index is not a number.
    IndexNaN,
    /// 204: a value or a TTL is required.
    ValueOrTtlRequired,
    /// 205: the timeout is not a number.
    TimeoutNaN,
    /// 206: a name is required.
    NameRequired,
    /// 207: an index or a value is required.
    IndexOrValueRequired,
    /// 208: index and value cannot both be given.
    IndexValueMutex,
    /// 209: a field is invalid.
    InvalidField,
    /// 210: the form is invalid.
    InvalidForm,
    /// 211: a refresh cannot carry a value.
    RefreshValue,
    /// 212: a refresh needs a TTL.
    RefreshTtlRequired,
    /// 300: raft internal error (also: a write while the cluster has no leader).
    RaftInternal,
    /// 301: a leader election is in progress.
    LeaderElect,
    /// 400: the watcher was cleared by a recovery; watch again.
    WatcherCleared,
    /// 401: the requested index is older than the 1000 events etcd keeps.
    EventIndexCleared,
    /// 500: client internal error.
    ClientInternal,
    /// A code not in this table.
    Other(u32),
}

impl V2ErrorCode {
    /// The code for a number.
    pub fn from_number(code: u32) -> Self {
        use V2ErrorCode::*;
        match code {
            100 => KeyNotFound,
            101 => CompareFailed,
            102 => NotFile,
            103 => NoMorePeer,
            104 => NotDir,
            105 => NodeExist,
            106 => KeyIsPreserved,
            107 => RootReadOnly,
            108 => DirNotEmpty,
            109 => ExistingPeerAddr,
            110 => Unauthorized,
            200 => ValueRequired,
            201 => PrevValueRequired,
            202 => TtlNaN,
            203 => IndexNaN,
            204 => ValueOrTtlRequired,
            205 => TimeoutNaN,
            206 => NameRequired,
            207 => IndexOrValueRequired,
            208 => IndexValueMutex,
            209 => InvalidField,
            210 => InvalidForm,
            211 => RefreshValue,
            212 => RefreshTtlRequired,
            300 => RaftInternal,
            301 => LeaderElect,
            400 => WatcherCleared,
            401 => EventIndexCleared,
            500 => ClientInternal,
            other => Other(other),
        }
    }

    /// The number etcd uses for this code.
    pub fn number(self) -> u32 {
        use V2ErrorCode::*;
        match self {
            KeyNotFound => 100,
            CompareFailed => 101,
            NotFile => 102,
            NoMorePeer => 103,
            NotDir => 104,
            NodeExist => 105,
            KeyIsPreserved => 106,
            RootReadOnly => 107,
            DirNotEmpty => 108,
            ExistingPeerAddr => 109,
            Unauthorized => 110,
            ValueRequired => 200,
            PrevValueRequired => 201,
            TtlNaN => 202,
            IndexNaN => 203,
            ValueOrTtlRequired => 204,
            TimeoutNaN => 205,
            NameRequired => 206,
            IndexOrValueRequired => 207,
            IndexValueMutex => 208,
            InvalidField => 209,
            InvalidForm => 210,
            RefreshValue => 211,
            RefreshTtlRequired => 212,
            RaftInternal => 300,
            LeaderElect => 301,
            WatcherCleared => 400,
            EventIndexCleared => 401,
            ClientInternal => 500,
            Other(n) => n,
        }
    }
}

/// An error reported by the v2 API, with everything etcd said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Error {
    /// The `errorCode`.
    pub code: V2ErrorCode,
    /// etcd's message, e.g. `Key not found`.
    pub message: String,
    /// What it applied to, e.g. the key, or `[two != one]` for a failed compare.
    pub cause: Option<String>,
    /// The etcd index when the error happened.
    pub index: u64,
    /// The HTTP status it came with.
    pub status: u16,
}

impl fmt::Display for V2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errorCode {}", self.message, self.code.number())?;
        if let Some(cause) = &self.cause {
            write!(f, ", cause {cause:?}")?;
        }
        write!(f, ", index {})", self.index)
    }
}

impl std::error::Error for V2Error {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct V2ErrorBody {
    error_code: u32,
    #[serde(default)]
    message: String,
    #[serde(default)]
    cause: Option<String>,
    #[serde(default)]
    index: u64,
}

impl V2ErrorBody {
    pub(crate) fn into_error(self, status: u16) -> V2Error {
        V2Error {
            code: V2ErrorCode::from_number(self.error_code),
            message: self.message,
            cause: self.cause.filter(|c| !c.is_empty()),
            index: self.index,
            status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for n in (100..=110)
            .chain(200..=212)
            .chain([300, 301, 400, 401, 500, 999])
        {
            assert_eq!(V2ErrorCode::from_number(n).number(), n);
        }
    }
}
