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

use super::json::{self, ObjectWriter, WireHeader};
use crate::error::{Error, UsageError};
use crate::operation::{Api, Operation, Target};

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

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
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

/// Parses an authenticate answer into its token.
pub(crate) fn parse_token(response: http::Response<Bytes>) -> Result<String, Error> {
    json::parse_unary::<WireAuthenticateResponse>(response.status(), response.body())
        .map(|r| r.token)
}
