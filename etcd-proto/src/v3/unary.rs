//! The skeleton every v3 unary call shares, written once, and the one
//! place that chooses its encoding. On the gateway: a `POST` of a JSON body
//! to its gateway path, a 2xx JSON answer parsed into its wire shape (an
//! error body into a typed [`Error`]). Over gRPC (when the target speaks it
//! and the call has a gRPC form): its method and protobuf message, the
//! answer's one message decoded (a non-OK status into the same typed
//! errors). Either way the answer becomes the same public type. An
//! operation states only what is its own: paths, replay class, bodies and
//! conversions; its [`Operation`] impl comes from here. Every v3 unary
//! operation is a [`V3Unary`] but `Authenticate`, which must go without a
//! token ([`Api::V3Login`]).

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::{grpc, json};
use crate::error::{Error, MalformedResponse, UsageError};
use crate::operation::{Api, Operation, Replay, Target, Wait};

/// A v3 unary call through the JSON gateway. (`pub` in a private module:
/// sealed, nameable only inside the crate.)
pub trait V3Unary {
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

    /// The gRPC method and framed request, if the call has a gRPC form
    /// ([`grpc_form`]); without one it takes the gateway on every client.
    fn grpc(&self) -> Option<GrpcForm> {
        None
    }

    /// The caller's value from a complete gRPC answer (trailers merged
    /// into its headers): see [`grpc::parse_unary`].
    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<Self::Output, Error> {
        Err(MalformedResponse::new(
            answer.status().as_u16(),
            "a gRPC answer to a call sent through the gateway",
            answer.body(),
        )
        .into())
    }
}

/// A call's gRPC form: its method path and its framed request message.
pub struct GrpcForm {
    pub(crate) method: &'static str,
    pub(crate) body: Bytes,
}

/// The gRPC form of a call to `method` with `message`.
pub(crate) fn grpc_form(method: &'static str, message: &impl prost::Message) -> Option<GrpcForm> {
    Some(GrpcForm {
        method,
        body: grpc::frame::encode(message),
    })
}

/// A 2xx gateway answer, for [`V3Unary::read`].
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

/// A v3 call that sends another call's request (a txn, a range read) and
/// reads its answer its own way: the lock and election helpers. It states
/// its base call, its replay class and the last step; paths, bodies and
/// both encodings come from the base.
pub trait Derived {
    /// The call whose request this sends.
    type Base: V3Unary;
    /// What the caller gets.
    type Output;

    /// The base call.
    fn base(&self) -> Self::Base;

    /// Whether it may be sent again after a failure that may have reached
    /// the server: stated here, not inherited from the base.
    fn replay(&self) -> Replay;

    /// The caller's value from the base call's.
    fn finish(&self, base: <Self::Base as V3Unary>::Output) -> Result<Self::Output, Error>;
}

impl<D: Derived> V3Unary for D {
    type Output = D::Output;

    fn path(&self) -> &'static str {
        self.base().path()
    }

    fn replay(&self) -> Replay {
        Derived::replay(self)
    }

    fn wait(&self) -> Wait {
        V3Unary::wait(&self.base())
    }

    fn body(&self) -> String {
        self.base().body()
    }

    fn read(&self, answer: Answer<'_>) -> Result<D::Output, Error> {
        self.finish(self.base().read(answer)?)
    }

    fn grpc(&self) -> Option<GrpcForm> {
        self.base().grpc()
    }

    fn read_grpc(&self, answer: &http::Response<Bytes>) -> Result<D::Output, Error> {
        self.finish(self.base().read_grpc(answer)?)
    }
}

impl<C: V3Unary> Operation for C {
    type Output = C::Output;

    fn build(&self, target: &Target<'_>) -> Result<http::Request<Bytes>, UsageError> {
        if target.speaks_grpc() {
            if let Some(form) = self.grpc() {
                return grpc::request(target, form.method, form.body);
            }
        }
        Ok(json::post(target.root_uri(self.path())?, self.body()))
    }

    fn parse(&self, response: http::Response<Bytes>) -> Result<C::Output, Error> {
        if grpc::is_grpc(response.headers()) {
            return self.read_grpc(&response);
        }
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
        V3Unary::replay(self)
    }

    fn wait(&self) -> Wait {
        V3Unary::wait(self)
    }

    fn api(&self) -> Api {
        Api::V3
    }
}
