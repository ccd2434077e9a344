//! v3 authentication: trading a user and password for a token.
//!
//! A client given credentials ([`Cluster::set_v3_credentials`](crate::Cluster::set_v3_credentials))
//! needs nothing from this module: every [`Call`](crate::Call) of a v3
//! operation fetches the token first, sends it bare in `Authorization`, and
//! on `invalid auth token`, `revision of auth store is old` or `user name is
//! empty` fetches a new one **once** and replays the request (it was refused,
//! so it took no effect). A wrong password fails at once, never loops. An
//! `authentication is not enabled` answer turns token sending off.

use bytes::Bytes;
use serde::Deserialize;

use super::grpc::{self, pb};
use super::json::{self, B64Bytes, ObjectWriter, WireHeader};
use super::unary::{Answer, V3Unary};
use super::KeyRange;
use crate::cluster::Cluster;
use crate::error::{Error, UsageError};
use crate::operation::{Api, Operation, Replay, Target};

/// `POST /v3/auth/authenticate`: a new token for `name` (every call gives a new one).
#[derive(Clone, PartialEq, Eq)]
pub struct Authenticate {
    name: String,
    password: String,
}

impl std::fmt::Debug for Authenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Authenticate {
    /// Authenticates `name` with `password`.
    pub fn new(name: &str, password: &str) -> Self {
        Authenticate {
            name: name.to_owned(),
            password: password.to_owned(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WireAuthenticateResponse {
    #[allow(dead_code)]
    header: WireHeader,
    token: String,
}

impl Operation for Authenticate {
    type Output = String;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        if target.speaks_grpc() {
            let message = pb::AuthenticateRequest {
                name: self.name.clone(),
                password: self.password.clone(),
            };
            let body = grpc::frame::encode(&message);
            return grpc::request(target, "/etcdserverpb.Auth/Authenticate", body);
        }
        let body = ObjectWriter::new()
            .string("name", &self.name)
            .string("password", &self.password)
            .finish();
        Ok(json::post(target.root_uri("/v3/auth/authenticate")?, body))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<String, Error> {
        parse_token(response)
    }

    fn api(&self) -> Api {
        Api::V3Login
    }
}

/// The token renewal every v3 exchange shares ([`Call`](crate::Call) and
/// the v3 [`Watch`](super::Watch)): the token fetch to send first, if the
/// cluster has credentials and no usable token.
pub(crate) fn token_fetch(cluster: &Cluster) -> Option<Authenticate> {
    if !cluster.v3_token_needed() {
        return None;
    }
    let (user, password) = cluster.v3_credentials()?;
    Some(Authenticate::new(user, password))
}

/// A request refused for its token took no effect: drops the token so the
/// next attempt fetches a fresh one, once in a row (`renewed` remembers;
/// the exchange clears it when a request gets through). False when there
/// are no credentials to renew with, or the renewal was just tried.
pub(crate) fn renew_token(cluster: &mut Cluster, renewed: &mut bool) -> bool {
    if cluster.v3_credentials().is_none() || *renewed {
        return false;
    }
    *renewed = true;
    cluster.v3_token_rejected();
    true
}

/// Parses an authenticate answer into its token.
pub(crate) fn parse_token(response: http::Response<Bytes>) -> Result<String, Error> {
    if grpc::is_grpc(response.headers()) {
        return grpc::parse_unary::<pb::AuthenticateResponse>(&response).map(|r| r.token);
    }
    json::parse_unary::<WireAuthenticateResponse>(response.status(), response.body())
        .map(|r| r.token)
}

/// The kind of access a role grants on a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Reads.
    Read,
    /// Writes.
    Write,
    /// Reads and writes.
    ReadWrite,
}

/// One auth administration call (`/v3/auth/...`): enable or disable auth,
/// manage users and roles. Each answers with a header only.
///
/// ```
/// use etcd_proto::v3::{auth::{AuthAdmin, Permission}, KeyRange};
/// let steps = [
///     AuthAdmin::user_add("root", "secret"),
///     AuthAdmin::role_add("root"),
///     AuthAdmin::user_grant_role("root", "root"),
///     AuthAdmin::role_add("app"),
///     AuthAdmin::role_grant_permission("app", &KeyRange::prefix("app/"), Permission::ReadWrite),
///     AuthAdmin::enable(),
/// ];
/// # let _ = steps;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AuthAdmin {
    path: &'static str,
    body: String,
}

impl std::fmt::Debug for AuthAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may hold a password.
        f.debug_struct("AuthAdmin")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AuthAdmin {
    fn new(path: &'static str, body: String) -> Self {
        AuthAdmin { path, body }
    }

    /// Turns auth on (a `root` user with the `root` role must exist).
    pub fn enable() -> Self {
        AuthAdmin::new("/v3/auth/enable", "{}".to_owned())
    }

    /// Turns auth off.
    pub fn disable() -> Self {
        AuthAdmin::new("/v3/auth/disable", "{}".to_owned())
    }

    /// Adds a user.
    pub fn user_add(name: &str, password: &str) -> Self {
        let body = ObjectWriter::new()
            .string("name", name)
            .string("password", password)
            .finish();
        AuthAdmin::new("/v3/auth/user/add", body)
    }

    /// Deletes a user.
    pub fn user_delete(name: &str) -> Self {
        AuthAdmin::new(
            "/v3/auth/user/delete",
            ObjectWriter::new().string("name", name).finish(),
        )
    }

    /// Changes a user's password.
    pub fn user_change_password(name: &str, password: &str) -> Self {
        let body = ObjectWriter::new()
            .string("name", name)
            .string("password", password)
            .finish();
        AuthAdmin::new("/v3/auth/user/changepw", body)
    }

    /// Gives a user a role.
    pub fn user_grant_role(user: &str, role: &str) -> Self {
        let body = ObjectWriter::new()
            .string("user", user)
            .string("role", role)
            .finish();
        AuthAdmin::new("/v3/auth/user/grant", body)
    }

    /// Takes a role away from a user.
    pub fn user_revoke_role(user: &str, role: &str) -> Self {
        let body = ObjectWriter::new()
            .string("name", user)
            .string("role", role)
            .finish();
        AuthAdmin::new("/v3/auth/user/revoke", body)
    }

    /// Adds a role.
    pub fn role_add(name: &str) -> Self {
        AuthAdmin::new(
            "/v3/auth/role/add",
            ObjectWriter::new().string("name", name).finish(),
        )
    }

    /// Deletes a role.
    pub fn role_delete(name: &str) -> Self {
        AuthAdmin::new(
            "/v3/auth/role/delete",
            ObjectWriter::new().string("role", name).finish(),
        )
    }

    /// Lets `role` access `range`.
    pub fn role_grant_permission(
        role: &str,
        range: &super::KeyRange,
        permission: Permission,
    ) -> Self {
        let kind = match permission {
            Permission::Read => "READ",
            Permission::Write => "WRITE",
            Permission::ReadWrite => "READWRITE",
        };
        let perm = ObjectWriter::new()
            .string("permType", kind)
            .bytes("key", range.key())
            .bytes_nonempty("range_end", range.range_end())
            .finish();
        let body = ObjectWriter::new()
            .string("name", role)
            .raw("perm", &perm)
            .finish();
        AuthAdmin::new("/v3/auth/role/grant", body)
    }

    /// Takes `role`'s permission on exactly `range` away (the range as it
    /// was granted).
    pub fn role_revoke_permission(role: &str, range: &KeyRange) -> Self {
        let body = ObjectWriter::new()
            .string("role", role)
            .bytes("key", range.key())
            .bytes_nonempty("range_end", range.range_end())
            .finish();
        AuthAdmin::new("/v3/auth/role/revoke", body)
    }
}

impl V3Unary for AuthAdmin {
    type Output = super::ResponseHeader;

    fn path(&self) -> &'static str {
        self.path
    }

    /// A change to users or roles applied twice is observable (the second
    /// add fails with "already exists"): never re-sent after it may have
    /// arrived.
    fn replay(&self) -> Replay {
        Replay::AtMostOnce
    }

    fn body(&self) -> String {
        self.body.clone()
    }

    fn read(&self, answer: Answer<'_>) -> Result<super::ResponseHeader, Error> {
        answer
            .json::<super::kv::HeaderOnly>()
            .map(|r| r.header.into())
    }
}

/// One permission of a role, as [`AuthQuery::role_permissions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolePermission {
    /// What the role may do…
    pub permission: Permission,
    /// …on these keys.
    pub range: KeyRange,
}

/// A read of the auth store (`/v3/auth/{user,role}/{get,list}`): who has
/// which roles, and what each role may do.
///
/// ```
/// use etcd_proto::v3::auth::AuthQuery;
/// let queries = (AuthQuery::users(), AuthQuery::user_roles("app"), AuthQuery::roles(), AuthQuery::role_permissions("app"));
/// # let _ = queries;
/// ```
#[derive(Debug, Clone)]
pub struct AuthQuery<T> {
    path: &'static str,
    body: String,
    read: fn(WireAuthRead) -> T,
}

/// Every answer of the auth store's reads, each field absent unless asked.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct WireAuthRead {
    #[allow(dead_code)]
    header: WireHeader,
    users: Vec<String>,
    roles: Vec<String>,
    perm: Vec<WirePermission>,
}

/// `authpb.Permission`: `permType` absent means `READ`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WirePermission {
    #[serde(rename = "permType")]
    perm_type: String,
    key: B64Bytes,
    range_end: B64Bytes,
}

impl AuthQuery<Vec<String>> {
    /// Every user's name (`/v3/auth/user/list`).
    pub fn users() -> Self {
        AuthQuery {
            path: "/v3/auth/user/list",
            body: "{}".to_owned(),
            read: |r| r.users,
        }
    }

    /// The roles of `user` (`/v3/auth/user/get`); a missing user is etcd's
    /// `user name not found`.
    pub fn user_roles(user: &str) -> Self {
        AuthQuery {
            path: "/v3/auth/user/get",
            body: ObjectWriter::new().string("name", user).finish(),
            read: |r| r.roles,
        }
    }

    /// Every role's name (`/v3/auth/role/list`).
    pub fn roles() -> Self {
        AuthQuery {
            path: "/v3/auth/role/list",
            body: "{}".to_owned(),
            read: |r| r.roles,
        }
    }
}

impl AuthQuery<Vec<RolePermission>> {
    /// What `role` may do (`/v3/auth/role/get`); a missing role is etcd's
    /// `role name not found`.
    pub fn role_permissions(role: &str) -> Self {
        AuthQuery {
            path: "/v3/auth/role/get",
            body: ObjectWriter::new().string("role", role).finish(),
            read: |r| {
                r.perm
                    .into_iter()
                    .map(|p| RolePermission {
                        permission: match p.perm_type.as_str() {
                            "WRITE" => Permission::Write,
                            "READWRITE" => Permission::ReadWrite,
                            _ => Permission::Read,
                        },
                        range: KeyRange::range(p.key.0, p.range_end.0),
                    })
                    .collect()
            },
        }
    }
}

impl<T> Operation for AuthQuery<T> {
    type Output = T;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        Ok(json::post(target.root_uri(self.path)?, self.body.clone()))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<T, Error> {
        json::parse_unary::<WireAuthRead>(response.status(), response.body()).map(self.read)
    }

    fn api(&self) -> Api {
        Api::V3
    }
}
