//! v2 auth administration (`/v2/auth/...`, python-etcd's `etcd.auth`):
//! users, roles and their key-path permissions, and the switch itself.
//!
//! v2 auth is separate from v3 auth: its own users, passwords and switch
//! (etcd-wire §4f). Requests carry the client's basic credentials
//! ([`Cluster::set_basic_auth`](crate::Cluster::set_basic_auth)).
//!
//! - [`AuthChange`]: every change (enable, disable; add, delete, change the
//!   password of, grant or revoke roles to a user; add, delete, grant or
//!   revoke a path permission of a role). None is re-sent after it may have
//!   arrived: applied twice, a change is observable.
//! - [`AuthRead`]: the reads — whether auth is on, the users, one user, the
//!   roles, one role.
//!
//! The v2 auth API answers errors with a message only (`{"message":"auth:
//! User alice does not exist."}`): the [`V2Error`]'s code is
//! taken from the status (404 → `KeyNotFound`, 401 or 403 → `Unauthorized`,
//! 409 → `NodeExist`).
//!
//! ```
//! use etcd_proto::v2::auth::{AuthChange, AuthRead};
//! use etcd_proto::v3::Permission;
//! let steps = [
//!     AuthChange::user_add("root", "secret"),
//!     AuthChange::role_add("app"),
//!     AuthChange::role_grant("app", "/app/*", Permission::ReadWrite),
//!     AuthChange::user_add("alice", "pw"),
//!     AuthChange::user_grant("alice", &["app"]),
//!     AuthChange::enable(),
//! ];
//! let (_, _) = (steps, AuthRead::users());
//! ```

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::json;

use super::error::{V2Error, V2ErrorCode};
use crate::error::{Error, MalformedResponse, UsageError};
use crate::operation::{empty_request, Api, Operation, Replay, Target};
use crate::v3::Permission;

/// A v2 user: its name and the names of its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's name.
    pub name: String,
    /// Its roles' names.
    pub roles: Vec<String>,
}

/// A v2 role: the key paths it may read and write (`/app/*` is a prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role's name.
    pub name: String,
    /// Paths it may read.
    pub read: Vec<String>,
    /// Paths it may write.
    pub write: Vec<String>,
}

/// One change to v2 auth; see the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthChange {
    method: http::Method,
    path: String,
    body: Option<String>,
}

impl std::fmt::Debug for AuthChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may hold a password.
        f.debug_struct("AuthChange")
            .field("method", &self.method)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// `/auth/users/<name>` or `/auth/roles/<name>`, the name encoded.
fn named(kind: &str, name: &str) -> String {
    format!(
        "/auth/{kind}/{}",
        utf8_percent_encode(name, NON_ALPHANUMERIC)
    )
}

/// The `{"kv":{"read":[…],"write":[…]}}` of a permission on `path`.
fn permission(path: &str, permission: Permission) -> serde_json::Value {
    let (read, write) = match permission {
        Permission::Read => (vec![path], vec![]),
        Permission::Write => (vec![], vec![path]),
        Permission::ReadWrite => (vec![path], vec![path]),
    };
    json!({"kv": {"read": read, "write": write}})
}

impl AuthChange {
    fn put(path: String, body: serde_json::Value) -> Self {
        AuthChange {
            method: http::Method::PUT,
            path,
            body: Some(body.to_string()),
        }
    }

    fn delete(path: String) -> Self {
        AuthChange {
            method: http::Method::DELETE,
            path,
            body: None,
        }
    }

    /// Turns v2 auth on (a `root` user must exist). The `guest` role still
    /// lets anonymous requests through until its permissions are revoked.
    pub fn enable() -> Self {
        AuthChange {
            method: http::Method::PUT,
            path: "/auth/enable".to_owned(),
            body: None,
        }
    }

    /// Turns v2 auth off (as `root`).
    pub fn disable() -> Self {
        Self::delete("/auth/enable".to_owned())
    }

    /// Adds a user (`root` gets the `root` role).
    pub fn user_add(name: &str, password: &str) -> Self {
        Self::put(
            named("users", name),
            json!({"user": name, "password": password}),
        )
    }

    /// Changes a user's password.
    pub fn user_change_password(name: &str, password: &str) -> Self {
        Self::user_add(name, password)
    }

    /// Gives a user these roles.
    pub fn user_grant(name: &str, roles: &[&str]) -> Self {
        Self::put(named("users", name), json!({"user": name, "grant": roles}))
    }

    /// Takes these roles from a user.
    pub fn user_revoke(name: &str, roles: &[&str]) -> Self {
        Self::put(named("users", name), json!({"user": name, "revoke": roles}))
    }

    /// Deletes a user.
    pub fn user_delete(name: &str) -> Self {
        Self::delete(named("users", name))
    }

    /// Adds a role with no permission.
    pub fn role_add(name: &str) -> Self {
        Self::put(
            named("roles", name),
            json!({"role": name, "permissions": {"kv": {"read": [], "write": []}}}),
        )
    }

    /// Lets `role` read, write or both on `path` (`/app/*` for a prefix).
    pub fn role_grant(role: &str, path: &str, access: Permission) -> Self {
        Self::put(
            named("roles", role),
            json!({"role": role, "grant": permission(path, access)}),
        )
    }

    /// Takes that permission away again.
    pub fn role_revoke(role: &str, path: &str, access: Permission) -> Self {
        Self::put(
            named("roles", role),
            json!({"role": role, "revoke": permission(path, access)}),
        )
    }

    /// Deletes a role.
    pub fn role_delete(name: &str) -> Self {
        Self::delete(named("roles", name))
    }
}

impl Operation for AuthChange {
    type Output = ();

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        let uri = target.v2_uri(&self.path)?;
        let mut request = empty_request(self.method.clone(), uri);
        if let Some(body) = &self.body {
            *request.body_mut() = Bytes::from(body.clone());
            request.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
        }
        Ok(request)
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<(), Error> {
        check(&response).map(|_| ())
    }

    fn replay(&self) -> Replay {
        Replay::AtMostOnce
    }
}

/// A read of v2 auth; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct AuthRead<T> {
    path: String,
    read: fn(&[u8]) -> Result<T, serde_json::Error>,
}

/// A user as the API sends it: its roles are names (after a change) or
/// whole role objects (on a read).
#[derive(Deserialize)]
struct WireUser {
    user: String,
    #[serde(default)]
    roles: Option<Vec<WireRoleRef>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireRoleRef {
    Name(String),
    Role { role: String },
}

#[derive(Deserialize)]
struct WireRole {
    role: String,
    #[serde(default)]
    permissions: WirePermissions,
}

#[derive(Deserialize, Default)]
struct WirePermissions {
    #[serde(default)]
    kv: WireKv,
}

#[derive(Deserialize, Default)]
struct WireKv {
    #[serde(default)]
    read: Option<Vec<String>>,
    #[serde(default)]
    write: Option<Vec<String>>,
}

impl From<WireUser> for User {
    fn from(w: WireUser) -> Self {
        let roles = w.roles.unwrap_or_default().into_iter().map(|r| match r {
            WireRoleRef::Name(name) | WireRoleRef::Role { role: name } => name,
        });
        User {
            name: w.user,
            roles: roles.collect(),
        }
    }
}

impl From<WireRole> for Role {
    fn from(w: WireRole) -> Self {
        Role {
            name: w.role,
            read: w.permissions.kv.read.unwrap_or_default(),
            write: w.permissions.kv.write.unwrap_or_default(),
        }
    }
}

impl AuthRead<bool> {
    /// Whether v2 auth is on.
    pub fn enabled() -> Self {
        #[derive(Deserialize)]
        struct Enabled {
            enabled: bool,
        }
        AuthRead {
            path: "/auth/enable".to_owned(),
            read: |body| serde_json::from_slice::<Enabled>(body).map(|e| e.enabled),
        }
    }
}

impl AuthRead<Vec<User>> {
    /// Every user, with its roles.
    pub fn users() -> Self {
        #[derive(Deserialize)]
        struct Users {
            users: Option<Vec<WireUser>>,
        }
        AuthRead {
            path: "/auth/users".to_owned(),
            read: |body| {
                serde_json::from_slice::<Users>(body).map(|u| {
                    u.users
                        .unwrap_or_default()
                        .into_iter()
                        .map(User::from)
                        .collect()
                })
            },
        }
    }
}

impl AuthRead<User> {
    /// One user; a missing one is an etcd error with code `KeyNotFound`.
    pub fn user(name: &str) -> Self {
        AuthRead {
            path: named("users", name),
            read: |body| serde_json::from_slice::<WireUser>(body).map(User::from),
        }
    }
}

impl AuthRead<Vec<Role>> {
    /// Every role, with its permissions.
    pub fn roles() -> Self {
        #[derive(Deserialize)]
        struct Roles {
            roles: Option<Vec<WireRole>>,
        }
        AuthRead {
            path: "/auth/roles".to_owned(),
            read: |body| {
                serde_json::from_slice::<Roles>(body).map(|r| {
                    r.roles
                        .unwrap_or_default()
                        .into_iter()
                        .map(Role::from)
                        .collect()
                })
            },
        }
    }
}

impl AuthRead<Role> {
    /// One role; a missing one is an etcd error with code `KeyNotFound`.
    pub fn role(name: &str) -> Self {
        AuthRead {
            path: named("roles", name),
            read: |body| serde_json::from_slice::<WireRole>(body).map(Role::from),
        }
    }
}

impl<T> Operation for AuthRead<T> {
    type Output = T;

    fn replay(&self) -> Replay {
        Replay::Safe
    }

    fn api(&self) -> Api {
        Api::V2
    }

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        Ok(empty_request(http::Method::GET, target.v2_uri(&self.path)?))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<T, Error> {
        let status = check(&response)?;
        (self.read)(response.body()).map_err(|e| {
            MalformedResponse::new(status, format!("v2 auth answer: {e}"), response.body()).into()
        })
    }
}

/// The status of a successful answer, or the error the API answered with.
fn check(response: &http::Response<Bytes>) -> Result<u16, Error> {
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(status);
    }
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let Ok(Message { message }) = serde_json::from_slice(response.body()) else {
        return Err(MalformedResponse::new(
            status,
            "v2 auth error without a message",
            response.body(),
        )
        .into());
    };
    let code = match status {
        404 => V2ErrorCode::KeyNotFound,
        401 | 403 => V2ErrorCode::Unauthorized,
        409 => V2ErrorCode::NodeExist,
        _ => V2ErrorCode::from_number(0),
    };
    Err(V2Error {
        code,
        message,
        cause: None,
        index: 0,
        status,
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;

    fn answer(status: u16, body: &str) -> http::Response<Bytes> {
        http::Response::builder()
            .status(status)
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn requests_and_answers() {
        let endpoint = Endpoint::parse("http://127.0.0.1:2379").unwrap();
        let target = Target::new(&endpoint, "/v2");
        let request = AuthChange::user_add("a b", "pw").build(&target).unwrap();
        assert_eq!(request.uri(), "http://127.0.0.1:2379/v2/auth/users/a%20b");
        assert_eq!(request.method(), http::Method::PUT);
        assert_eq!(request.body(), r#"{"password":"pw","user":"a b"}"#);
        assert!(!format!("{:?}", AuthChange::user_add("a", "s3cret")).contains("s3cret"));
        let users = AuthRead::users()
            .parse(answer(200, r#"{"users":[{"user":"alice","roles":[{"role":"rw","permissions":{"kv":{"read":["/app/*"],"write":["/app/*"]}}}]}]}"#))
            .unwrap();
        assert_eq!(
            users,
            [User {
                name: "alice".into(),
                roles: vec!["rw".into()]
            }]
        );
        assert!(AuthRead::users()
            .parse(answer(200, r#"{"users":null}"#))
            .unwrap()
            .is_empty());
        let role = AuthRead::role("rw")
            .parse(answer(
                200,
                r#"{"role":"rw","permissions":{"kv":{"read":["/app/*","/other"],"write":[]}}}"#,
            ))
            .unwrap();
        assert_eq!((role.read.len(), role.write.len()), (2, 0));
        let missing = AuthRead::user("nobody")
            .parse(answer(
                404,
                r#"{"message":"auth: User nobody does not exist."}"#,
            ))
            .unwrap_err();
        assert!(missing.is_key_not_found(), "{missing:?}");
        let garbage = AuthRead::enabled()
            .parse(answer(200, "<html>"))
            .unwrap_err();
        assert!(matches!(garbage, Error::Malformed(_)));
    }
}
