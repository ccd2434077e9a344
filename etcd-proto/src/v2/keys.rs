//! The v2 keys operations: [`Read`], [`Write`], [`Delete`] and [`Pop`].
//!
//! Each is a plain value built with chained setters, and an [`Operation`]:
//! a pure request builder plus a pure response parser, as in etcd's Go v2 client.
//!
//! | request | method | where the options go |
//! |---|---|---|
//! | read | `GET /v2/keys/<key>` | query: `recursive`, `sorted`, `quorum` |
//! | write | `PUT /v2/keys/<key>` (`POST` to append) | form body: `value`, `ttl`, `dir`, `refresh`, `prevValue`, `prevIndex`, `prevExist`, `noValueOnSuccess` |
//! | delete | `DELETE /v2/keys/<key>` | query: `dir`, `recursive`, `prevValue`, `prevIndex` |

use bytes::Bytes;

use super::form::Form;
use super::key::encode_key_path;
use super::node::Node;
use super::response::{parse_keys_response, KeysResponse};
use crate::error::{Error, MalformedResponse, UsageError};
use crate::operation::{empty_request, form_request, Api, Operation, Replay, Target};

/// Options of a read (python-etcd's `read(key, recursive=, sorted=, quorum=)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    recursive: bool,
    sorted: bool,
    quorum: bool,
}

impl ReadOptions {
    /// No options: a local read of one key or one level of a directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Return the whole subtree of a directory.
    pub fn recursive(mut self, on: bool) -> Self {
        self.recursive = on;
        self
    }

    /// Sort the children of directories by key.
    pub fn sorted(mut self, on: bool) -> Self {
        self.sorted = on;
        self
    }

    /// A linearizable read, served through the leader and raft (`quorum=true`).
    pub fn quorum(mut self, on: bool) -> Self {
        self.quorum = on;
        self
    }
}

/// Read a key or directory.
///
/// ```
/// use etcd_proto::{v2::{Read, ReadOptions}, Endpoint, Operation, Target};
/// let ep = Endpoint::parse("http://127.0.0.1:2379").unwrap();
/// let request = Read::new("/dir")
///     .options(ReadOptions::new().recursive(true).quorum(true))
///     .build(&Target::new(&ep, "/v2"))
///     .unwrap();
/// assert_eq!(request.uri(), "http://127.0.0.1:2379/v2/keys/dir?recursive=true&quorum=true");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    key: String,
    options: ReadOptions,
}

impl Read {
    /// Read `key` with default options.
    pub fn new(key: impl Into<String>) -> Self {
        Read {
            key: key.into(),
            options: ReadOptions::default(),
        }
    }

    /// Replaces the options.
    pub fn options(mut self, options: ReadOptions) -> Self {
        self.options = options;
        self
    }
}

impl Operation for Read {
    type Output = KeysResponse;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        let mut query = Form::new();
        query
            .flag("recursive", self.options.recursive)
            .flag("sorted", self.options.sorted)
            .flag("quorum", self.options.quorum);
        let path = query.append_to(keys_path(&self.key)?);
        Ok(empty_request(http::Method::GET, target.v2_uri(&path)?))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<KeysResponse, Error> {
        parse_keys_response(response)
    }
}

/// What a write does to the key's TTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ttl {
    /// Send no TTL: a plain set makes the key permanent.
    #[default]
    Unset,
    /// Expire the key this many seconds from now.
    Seconds(u64),
    /// Remove an existing TTL (an empty `ttl=`, together with `prevExist=true`).
    Clear,
}

/// Options of a write (python-etcd's `write(key, value, ttl=, dir=, append=, prevValue=, …)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOptions {
    ttl: Ttl,
    dir: bool,
    append: bool,
    refresh: bool,
    prev_value: Option<String>,
    prev_index: Option<u64>,
    prev_exist: Option<bool>,
    no_value_on_success: bool,
}

impl WriteOptions {
    /// No options: an unconditional set of a permanent key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Expire the key after `seconds`.
    pub fn ttl(mut self, seconds: u64) -> Self {
        self.ttl = Ttl::Seconds(seconds);
        self
    }

    /// Set how the TTL changes (see [`Ttl`]).
    pub fn ttl_change(mut self, ttl: Ttl) -> Self {
        self.ttl = ttl;
        self
    }

    /// Write a directory (it cannot have a value).
    pub fn dir(mut self, on: bool) -> Self {
        self.dir = on;
        self
    }

    /// Create an in-order key under the directory named by the key (`POST`).
    pub fn append(mut self, on: bool) -> Self {
        self.append = on;
        self
    }

    /// Only bump the TTL, without a value and without notifying watchers (etcd ≥ 2.3).
    pub fn refresh(mut self, on: bool) -> Self {
        self.refresh = on;
        self
    }

    /// Only write if the current value is `value` (compare-and-swap).
    pub fn prev_value(mut self, value: impl Into<String>) -> Self {
        self.prev_value = Some(value.into());
        self
    }

    /// Only write if the key was last modified at `index` (0 means no condition).
    pub fn prev_index(mut self, index: u64) -> Self {
        self.prev_index = Some(index);
        self
    }

    /// Only write if the key exists (`true`: update) or does not (`false`: create).
    pub fn prev_exist(mut self, exists: bool) -> Self {
        self.prev_exist = Some(exists);
        self
    }

    /// Ask etcd to answer a successful write with only the action.
    pub fn no_value_on_success(mut self, on: bool) -> Self {
        self.no_value_on_success = on;
        self
    }
}

/// Write a key or directory.
///
/// ```
/// use etcd_proto::{v2::{Write, WriteOptions}, Endpoint, Operation, Target};
/// let ep = Endpoint::parse("http://127.0.0.1:2379").unwrap();
/// let request = Write::new("/k", "a&b=c")
///     .options(WriteOptions::new().ttl(30).prev_exist(false))
///     .build(&Target::new(&ep, "/v2"))
///     .unwrap();
/// assert_eq!(request.method(), "PUT");
/// assert_eq!(request.body().as_ref(), b"value=a%26b%3Dc&ttl=30&prevExist=false");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    key: String,
    value: Option<Vec<u8>>,
    options: WriteOptions,
}

impl Write {
    /// Set `key` to `value` (bytes, which must be UTF-8 for etcd v2).
    pub fn new(key: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        Write {
            key: key.into(),
            value: Some(value.as_ref().to_vec()),
            options: WriteOptions::default(),
        }
    }

    /// A write that sends no value (a directory, a refresh, or an empty key).
    pub fn without_value(key: impl Into<String>) -> Self {
        Write {
            key: key.into(),
            value: None,
            options: WriteOptions::default(),
        }
    }

    /// Create the directory `key` (python-etcd: `write(key, None, dir=True)`).
    pub fn mkdir(key: impl Into<String>) -> Self {
        Write::without_value(key).options(WriteOptions::new().dir(true))
    }

    /// Append an in-order key holding `value` to the directory `dir`.
    pub fn append(dir: impl Into<String>, value: impl AsRef<[u8]>) -> Self {
        Write::new(dir, value).options(WriteOptions::new().append(true))
    }

    /// Reset the TTL of an existing key without notifying watchers.
    pub fn refresh(key: impl Into<String>, ttl: u64) -> Self {
        Write::without_value(key)
            .options(WriteOptions::new().ttl(ttl).refresh(true).prev_exist(true))
    }

    /// Write `node`'s value and TTL back, only if nobody changed it since it was
    /// read (python-etcd's `update(result)`): `prevExist=true` and, for a key,
    /// `prevIndex` = its `modifiedIndex`. Directories get no `prevIndex` (etcd
    /// refuses it on a directory).
    pub fn update(node: &Node) -> Self {
        let mut options = WriteOptions::new().prev_exist(true).dir(node.dir);
        if let Some(ttl) = node.ttl {
            options = options.ttl(ttl.max(0) as u64);
        }
        if !node.dir {
            options = options.prev_index(node.modified_index);
        }
        let write = match (&node.value, node.dir) {
            (Some(value), false) => Write::new(node.key.clone(), value),
            _ => Write::without_value(node.key.clone()),
        };
        write.options(options)
    }

    /// Replaces the options.
    pub fn options(mut self, options: WriteOptions) -> Self {
        self.options = options;
        self
    }

    fn check(&self) -> Result<Option<&str>, UsageError> {
        let o = &self.options;
        let value = match &self.value {
            None => None,
            Some(bytes) => {
                Some(
                    std::str::from_utf8(bytes).map_err(|e| UsageError::ValueNotUtf8 {
                        valid_up_to: e.valid_up_to(),
                    })?,
                )
            }
        };
        if o.dir && value.is_some_and(|v| !v.is_empty()) {
            return Err(UsageError::DirectoryWithValue);
        }
        if o.refresh && value.is_some() {
            return Err(UsageError::RefreshWithValue);
        }
        if o.refresh && !matches!(o.ttl, Ttl::Seconds(_)) {
            return Err(UsageError::RefreshWithoutTtl);
        }
        Ok(if o.dir { None } else { value })
    }
}

impl Operation for Write {
    type Output = KeysResponse;

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        let value = self.check()?;
        let o = &self.options;
        let mut form = Form::new();
        if let Some(value) = value {
            form.push("value", value);
        }
        match o.ttl {
            Ttl::Unset => {}
            Ttl::Seconds(s) => {
                form.push("ttl", &s.to_string());
            }
            Ttl::Clear => {
                form.push("ttl", "");
            }
        }
        form.flag("dir", o.dir).flag("refresh", o.refresh);
        if let Some(prev) = &o.prev_value {
            form.push("prevValue", prev);
        }
        if let Some(index) = o.prev_index {
            form.push("prevIndex", &index.to_string());
        }
        if let Some(exists) = o.prev_exist {
            form.push("prevExist", if exists { "true" } else { "false" });
        }
        form.flag("noValueOnSuccess", o.no_value_on_success);
        let method = if o.append {
            http::Method::POST
        } else {
            http::Method::PUT
        };
        let uri = target.v2_uri(&keys_path(&self.key)?)?;
        Ok(form_request(method, uri, form.into_string()))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<KeysResponse, Error> {
        parse_keys_response(response)
    }

    /// At most once, except a plain refresh. A write applied twice is
    /// observable even when it stores the same value: two `modifiedIndex`
    /// steps and two watch events. A refresh (`refresh=true` with no
    /// `prevValue`/`prevIndex`) only re-arms the TTL and notifies no watcher,
    /// so sending it again is harmless.
    fn replay(&self) -> Replay {
        let o = &self.options;
        if o.refresh && !o.append && o.prev_value.is_none() && o.prev_index.is_none_or(|i| i == 0) {
            Replay::Safe
        } else {
            Replay::AtMostOnce
        }
    }
}

/// Options of a delete (python-etcd's `delete(key, recursive=, dir=, prevValue=, prevIndex=)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    dir: bool,
    recursive: bool,
    prev_value: Option<String>,
    prev_index: Option<u64>,
}

impl DeleteOptions {
    /// No options: delete one key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Delete an empty directory.
    pub fn dir(mut self, on: bool) -> Self {
        self.dir = on;
        self
    }

    /// Delete a directory and everything under it.
    pub fn recursive(mut self, on: bool) -> Self {
        self.recursive = on;
        self
    }

    /// Only delete if the value is `value` (compare-and-delete).
    pub fn prev_value(mut self, value: impl Into<String>) -> Self {
        self.prev_value = Some(value.into());
        self
    }

    /// Only delete if the key was last modified at `index`.
    pub fn prev_index(mut self, index: u64) -> Self {
        self.prev_index = Some(index);
        self
    }
}

/// Delete a key or directory.
///
/// ```
/// use etcd_proto::{v2::{Delete, DeleteOptions}, Endpoint, Operation, Target};
/// let ep = Endpoint::parse("http://127.0.0.1:2379").unwrap();
/// let request = Delete::new("/a?b")
///     .options(DeleteOptions::new().prev_value("x y"))
///     .build(&Target::new(&ep, "/v2"))
///     .unwrap();
/// // The `?` stays in the key: the condition cannot leak into the path.
/// assert_eq!(request.uri(), "http://127.0.0.1:2379/v2/keys/a%3Fb?prevValue=x%20y");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    key: String,
    options: DeleteOptions,
}

impl Delete {
    /// Delete `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Delete {
            key: key.into(),
            options: DeleteOptions::default(),
        }
    }

    /// Replaces the options.
    pub fn options(mut self, options: DeleteOptions) -> Self {
        self.options = options;
        self
    }
}

impl Operation for Delete {
    type Output = KeysResponse;

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        let o = &self.options;
        let mut query = Form::new();
        query.flag("dir", o.dir).flag("recursive", o.recursive);
        if let Some(prev) = &o.prev_value {
            query.push("prevValue", prev);
        }
        if let Some(index) = o.prev_index {
            query.push("prevIndex", &index.to_string());
        }
        let path = query.append_to(keys_path(&self.key)?);
        Ok(empty_request(http::Method::DELETE, target.v2_uri(&path)?))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<KeysResponse, Error> {
        parse_keys_response(response)
    }

    fn replay(&self) -> Replay {
        Replay::AtMostOnce
    }
}

/// Delete a key and return what it held (python-etcd's `pop`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop(pub Delete);

impl Operation for Pop {
    type Output = Node;

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        self.0.build(target)
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<Node, Error> {
        let status = response.status().as_u16();
        let deleted = self.0.parse(response)?;
        deleted.prev_node.ok_or_else(|| {
            MalformedResponse::new(status, "delete response without prevNode", b"").into()
        })
    }

    fn replay(&self) -> Replay {
        self.0.replay()
    }
}

/// `/keys<encoded key>`.
pub(crate) fn keys_path(key: &str) -> Result<String, UsageError> {
    let encoded = encode_key_path(key)?;
    let mut path = String::with_capacity(5 + encoded.len());
    path.push_str("/keys");
    path.push_str(&encoded);
    Ok(path)
}
