//! The skeleton every v3 unary call shares, written once: a `POST` of a
//! JSON body to its gateway path, a 2xx JSON answer parsed into its wire
//! shape (an error body into a typed [`Error`]), then turned into the
//! caller's type. An operation states only what is its own: path, replay
//! class, body and conversion; its [`Operation`] impl comes from here.
//! Every v3 unary operation is a [`GatewayCall`] but `Authenticate`, which
//! must go without a token ([`Api::V3Login`]). (When the native gRPC
//! encoding lands, this is the one place that chooses it.)

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::json;
use crate::error::{Error, UsageError};
use crate::operation::{Api, Operation, Replay, Target, Wait};

/// A v3 unary call through the JSON gateway. (`pub` in a private module:
/// sealed, nameable only inside the crate.)
pub trait GatewayCall {
    /// What the caller gets.
    type Output;

    /// The gateway path (`/v3/kv/range`).
    fn path(&self) -> &'static str;

    /// Whether it may be sent again after a failure that may have reached
    /// the server: every call states it, there is no default.
    fn replay(&self) -> Replay;

    /// How long the answer may take.
    fn wait(&self) -> Wait {
        Wait::Request
    }

    /// The request's JSON body.
    fn body(&self) -> String;

    /// The caller's value from a 2xx answer.
    fn read(&self, answer: Answer<'_>) -> Result<Self::Output, Error>;
}

/// A 2xx gateway answer, for [`GatewayCall::read`].
pub struct Answer<'a> {
    pub(crate) status: u16,
    body: &'a [u8],
}

impl Answer<'_> {
    /// The answer's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.body
    }

    /// The answer's JSON, in the shape `W`.
    pub(crate) fn json<W: DeserializeOwned>(&self) -> Result<W, Error> {
        let status = http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::OK);
        json::parse_unary(status, self.body)
    }
}

impl<C: GatewayCall> Operation for C {
    type Output = C::Output;

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        Ok(json::post(target.root_uri(self.path())?, self.body()))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<C::Output, Error> {
        if !response.status().is_success() {
            return Err(json::error_body(
                response.status().as_u16(),
                response.body(),
            ));
        }
        self.read(Answer {
            status: response.status().as_u16(),
            body: response.body(),
        })
    }

    fn replay(&self) -> Replay {
        GatewayCall::replay(self)
    }

    fn wait(&self) -> Wait {
        GatewayCall::wait(self)
    }

    fn api(&self) -> Api {
        Api::V3
    }
}
