//! Client settings, and the builder every transport's client shares.

use std::marker::PhantomData;
use std::time::Duration;

use crate::cluster::{Cluster, DEFAULT_IDLE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
use crate::error::{Error, UsageError};

/// The endpoint used when none is given.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";

/// HTTP/2 pings on a busy gRPC connection go out this often by default…
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);
/// …and the connection is dropped if one is not answered within this.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest ping interval: etcd's server closes a connection that
/// pings more often than every 5 s (its keep-alive enforcement policy).
pub const MIN_PING_INTERVAL: Duration = Duration::from_secs(6);

/// Everything a client is configured with. Transports read the connection
/// settings; [`Config::cluster`] turns the rest into the core's state.
///
/// Its `Debug` shows user names, never passwords.
#[derive(Clone)]
pub struct Config {
    /// Endpoint URLs; empty means [`DEFAULT_ENDPOINT`].
    pub endpoints: Vec<String>,
    /// The v2 API path (default `/v2`).
    pub version_prefix: Option<String>,
    /// How long an ordinary request may take (default 5 s; `None`: no limit).
    pub request_timeout: Option<Duration>,
    /// How long a watch, an election observation or a lock wait may stay
    /// silent before the client checks its member (default 10 s; see
    /// [`Cluster::set_idle_timeout`]).
    pub idle_timeout: Duration,
    /// How long connecting may take (default 3 s).
    pub connect_timeout: Duration,
    /// HTTP basic credentials for etcd v2 auth.
    pub basic_auth: Option<(String, String)>,
    /// User and password for etcd v3 auth (traded for a token, renewed as needed).
    pub v3_credentials: Option<(String, String)>,
    /// How many idle keep-alive connections to keep per endpoint (default 64).
    pub max_idle_connections: usize,
    /// The largest response body accepted (default 512 MiB).
    pub max_response_bytes: u64,
    /// Refresh the endpoint list from `/v2/members` after a failure (default true).
    pub discover_members: bool,
    /// The `X-Etcd-Cluster-Id` every answer must carry, if set.
    pub expected_cluster_id: Option<String>,
    /// Follow redirects that keep the request path (default false).
    pub allow_redirect: bool,
    /// How v3 calls reach etcd (default: the JSON gateway).
    pub v3_encoding: crate::v3::V3Encoding,
    /// HTTP/2 pings on a gRPC connection while a call or stream is open on
    /// it: `(interval, timeout)`, default (10 s, 5 s); `None`: no pings.
    /// A connection whose ping goes unanswered for `timeout` is closed, and
    /// every call and watch on it fails over. See
    /// [`ClientBuilder::http2_keep_alive`].
    pub http2_keep_alive: Option<(Duration, Duration)>,
    /// How to speak TLS to `https://` endpoints.
    #[cfg(feature = "tls")]
    pub tls: crate::tls::TlsOptions,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = |c: &Option<(String, String)>| c.as_ref().map(|(user, _)| format!("{user}:***"));
        let mut f = f.debug_struct("Config");
        f.field("endpoints", &self.endpoints)
            .field("version_prefix", &self.version_prefix)
            .field("request_timeout", &self.request_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("basic_auth", &user(&self.basic_auth))
            .field("v3_credentials", &user(&self.v3_credentials))
            .field("max_idle_connections", &self.max_idle_connections)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("discover_members", &self.discover_members)
            .field("expected_cluster_id", &self.expected_cluster_id)
            .field("allow_redirect", &self.allow_redirect)
            .field("v3_encoding", &self.v3_encoding)
            .field("http2_keep_alive", &self.http2_keep_alive);
        #[cfg(feature = "tls")]
        f.field("tls", &self.tls);
        f.finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoints: Vec::new(),
            version_prefix: None,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            connect_timeout: Duration::from_secs(3),
            basic_auth: None,
            v3_credentials: None,
            max_idle_connections: 64,
            max_response_bytes: 512 * 1024 * 1024,
            discover_members: true,
            expected_cluster_id: None,
            allow_redirect: false,
            v3_encoding: crate::v3::V3Encoding::Gateway,
            http2_keep_alive: Some((DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT)),
            #[cfg(feature = "tls")]
            tls: crate::tls::TlsOptions::default(),
        }
    }
}

impl Config {
    /// The TLS configuration every connection of the client uses, checked
    /// at build time: unusable PEM fails here, not at the first request.
    /// With no trusted CA at all (no system roots) while nothing asked for
    /// TLS (no `https://` endpoint, default settings), every handshake of
    /// an https endpoint learned later fails, sending nothing.
    #[cfg(feature = "tls")]
    pub fn tls_client_config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, UsageError> {
        let asked = self.tls != crate::tls::TlsOptions::default()
            || self.endpoints.iter().any(|url| {
                crate::Endpoint::parse(url).is_ok_and(|e| *e.scheme() == http::uri::Scheme::HTTPS)
            });
        self.tls.build(!asked)
    }

    /// Refuses `https://` endpoints for a client that cannot speak TLS
    /// (`client`: its crate's name), at build time rather than at every
    /// request. Endpoints learned later (member discovery, DNS SRV) still
    /// fail per request, as a TLS error that sent nothing.
    pub fn refuse_https(&self, client: &'static str) -> Result<(), UsageError> {
        let https = self
            .endpoints
            .iter()
            .filter_map(|url| crate::Endpoint::parse(url).ok())
            .find(|e| *e.scheme() == http::uri::Scheme::HTTPS);
        match https {
            Some(endpoint) => Err(UsageError::TlsUnsupported {
                endpoint: endpoint.as_str().to_owned(),
                client,
            }),
            None => Ok(()),
        }
    }

    /// Refuses native gRPC for a client whose transport has no HTTP/2
    /// (`client`: its crate's name), at build time.
    pub fn refuse_grpc(&self, client: &'static str) -> Result<(), UsageError> {
        if self.v3_encoding == crate::v3::V3Encoding::Grpc {
            return Err(UsageError::GrpcUnsupported { client });
        }
        Ok(())
    }

    /// The core state for these settings. Fails only on a bad endpoint URL.
    pub fn cluster(&self) -> Result<Cluster, Error> {
        let mut cluster = if self.endpoints.is_empty() {
            Cluster::from_urls(&[DEFAULT_ENDPOINT])?
        } else {
            Cluster::from_urls(&self.endpoints)?
        };
        if let Some(prefix) = &self.version_prefix {
            cluster.set_version_prefix(prefix);
        }
        cluster.set_request_timeout(self.request_timeout);
        cluster.set_idle_timeout(self.idle_timeout);
        if let Some((user, password)) = &self.basic_auth {
            cluster.set_basic_auth(user, password);
        }
        if let Some((user, password)) = &self.v3_credentials {
            cluster.set_v3_credentials(user, password);
        }
        cluster.set_discover_members(self.discover_members);
        cluster.set_expected_cluster_id(self.expected_cluster_id.clone());
        cluster.set_allow_redirect(self.allow_redirect);
        cluster.set_v3_encoding(self.v3_encoding);
        Ok(cluster)
    }

    #[cfg(test)]
    fn with_secrets() -> Config {
        Config {
            basic_auth: Some(("root".into(), "v2-s3cret".into())),
            v3_credentials: Some(("app".into(), "v3-s3cret".into())),
            ..Config::default()
        }
    }
}

/// A client type that can be built from a [`Config`].
pub trait FromConfig: Sized {
    /// Builds the client. No I/O happens here.
    fn from_config(config: Config) -> Result<Self, Error>;
}

/// Settings for a client of any transport; each transport's
/// `Client::builder()` returns one.
#[derive(Debug, Clone)]
pub struct ClientBuilder<C> {
    config: Config,
    client: PhantomData<fn() -> C>,
}

impl<C: FromConfig> Default for ClientBuilder<C> {
    fn default() -> Self {
        ClientBuilder {
            config: Config::default(),
            client: PhantomData,
        }
    }
}

impl<C: FromConfig> ClientBuilder<C> {
    /// Adds an endpoint URL such as `http://127.0.0.1:2379` (default: that one).
    /// With several, calls fail over between them (see [`Call`](crate::Call)).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.config.endpoints.push(url.into());
        self
    }

    /// Adds several endpoint URLs.
    pub fn endpoints<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.config
            .endpoints
            .extend(urls.into_iter().map(Into::into));
        self
    }

    /// Whether to refresh the endpoint list from `/v2/members` after a failure
    /// (default true). `false` uses only the given endpoints (python-etcd's
    /// `use_proxies=True`).
    pub fn discover_members(mut self, on: bool) -> Self {
        self.config.discover_members = on;
        self
    }

    /// Refuse answers from any cluster but `id` (the `X-Etcd-Cluster-Id`
    /// header; python-etcd's `expected_cluster_id`).
    pub fn expected_cluster_id(mut self, id: impl Into<String>) -> Self {
        self.config.expected_cluster_id = Some(id.into());
        self
    }

    /// Follow HTTP redirects that keep the request's path and query
    /// (python-etcd's `allow_redirect`; default false). Redirects that change
    /// the path are never followed: etcd uses them to rewrite keys.
    pub fn allow_redirect(mut self, on: bool) -> Self {
        self.config.allow_redirect = on;
        self
    }

    /// How to speak TLS to `https://` endpoints (default: the system's
    /// roots, every certificate verified). See [`TlsOptions`](crate::tls::TlsOptions).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, options: crate::tls::TlsOptions) -> Self {
        self.config.tls = options;
        self
    }

    /// Also trusts the CA certificates of this PEM bundle (python-etcd's `ca_cert`).
    #[cfg(feature = "tls")]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config.tls = self.config.tls.ca_pem(pem);
        self
    }

    /// Presents this client certificate chain and private key, PEM
    /// (python-etcd's `cert=(cert, key)`; etcd's `--client-cert-auth`).
    #[cfg(feature = "tls")]
    pub fn client_identity_pem(
        mut self,
        certificate_chain: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.config.tls = self.config.tls.identity_pem(certificate_chain, key);
        self
    }

    /// The path of the v2 API (default `/v2`; python-etcd's `version_prefix`),
    /// for etcd behind a proxy path.
    pub fn version_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.version_prefix = Some(prefix.into());
        self
    }

    /// How long an ordinary call may take, connecting and every failover
    /// attempt included (default 5 s; `None`: no limit). Watches carry their
    /// own deadline instead.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// How long a long-lived exchange (a watch, an election observation, a
    /// lock wait) may stay silent before the client checks its member by
    /// re-opening it, resuming without loss (default 10 s). A frozen or
    /// partitioned member is left within this plus one request timeout.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// How long connecting may take (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// HTTP basic credentials for etcd v2 auth.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.basic_auth = Some((user.into(), password.into()));
        self
    }

    /// User and password for etcd v3 auth: the client trades them for a
    /// token at its first v3 request and fetches a new token whenever etcd
    /// says the old one expired (see [`v3::auth`](crate::v3::auth)).
    pub fn v3_credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.v3_credentials = Some((user.into(), password.into()));
        self
    }

    /// How v3 calls reach etcd: the JSON gateway over HTTP/1.1 (the
    /// default), or native gRPC over HTTP/2 ([`V3Encoding::Grpc`](crate::v3::V3Encoding::Grpc)), which
    /// the async clients speak (etcd-blocking refuses it at `build()`).
    /// Over gRPC, the calls that have no gRPC form yet, and endpoints with
    /// a path prefix, keep the gateway.
    pub fn v3_encoding(mut self, encoding: crate::v3::V3Encoding) -> Self {
        self.config.v3_encoding = encoding;
        self
    }

    /// HTTP/2 pings on each gRPC connection while a call or a stream (a
    /// watch, a keep-alive) is open on it: one after `interval` without a
    /// frame from the member, and the connection is closed if the ping is
    /// not answered within `timeout`; its calls and watches then fail over.
    /// A frozen or partitioned member is so noticed within `interval +
    /// timeout` (default 10 s + 5 s). `interval` is raised to 6 s at least:
    /// etcd closes connections that ping more often than every 5 s. No ping
    /// goes out on an idle connection, which etcd would also refuse. For
    /// the gateway (HTTP/1.1) the watch's own checks apply (see
    /// [`idle_timeout`](Self::idle_timeout)).
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.http2_keep_alive = Some((interval.max(MIN_PING_INTERVAL), timeout));
        self
    }

    /// No HTTP/2 pings (see [`http2_keep_alive`](Self::http2_keep_alive)).
    pub fn no_http2_keep_alive(mut self) -> Self {
        self.config.http2_keep_alive = None;
        self
    }

    /// How many idle keep-alive connections to keep per endpoint (default 64).
    pub fn max_idle_connections(mut self, n: usize) -> Self {
        self.config.max_idle_connections = n;
        self
    }

    /// The largest response body accepted (default 512 MiB).
    pub fn max_response_bytes(mut self, n: u64) -> Self {
        self.config.max_response_bytes = n;
        self
    }

    /// The settings so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Builds the client. Fails only on a bad endpoint URL; no I/O happens here.
    pub fn build(self) -> Result<C, Error> {
        C::from_config(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_password_in_debug() {
        let config = Config::with_secrets();
        let shown = format!(
            "{config:?} {:?} {:?}",
            config.cluster().unwrap(),
            ClientBuilder::<NoClient>::default().basic_auth("root", "v2-s3cret")
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("root") && shown.contains("app"), "{shown}");
    }

    #[derive(Debug)]
    struct NoClient;

    impl FromConfig for NoClient {
        fn from_config(_: Config) -> Result<Self, Error> {
            Ok(NoClient)
        }
    }
}
