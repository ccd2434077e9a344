//! [`Cluster`]: what a client knows about the etcd cluster and how it talks to it.

use std::time::Duration;

use crate::endpoint::Endpoint;
use crate::error::UsageError;
use crate::operation::Target;

/// The default per-request timeout: 5 seconds, as in etcd's Go v2 client.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The endpoints, the pinned one, and the settings every request shares.
///
/// A transport keeps one `Cluster` per client (behind a lock when requests run
/// concurrently) and lends it to each flow it drives. Flows read it to build
/// requests and update it as endpoints succeed or fail.
#[derive(Debug, Clone)]
pub struct Cluster {
    endpoints: Vec<Endpoint>,
    pinned: usize,
    version_prefix: String,
    request_timeout: Option<Duration>,
    authorization: Option<http::HeaderValue>,
}

impl Cluster {
    /// A cluster reached through `endpoints` (at least one).
    pub fn new(endpoints: Vec<Endpoint>) -> Result<Cluster, UsageError> {
        if endpoints.is_empty() {
            return Err(UsageError::NoEndpoints);
        }
        Ok(Cluster {
            endpoints,
            pinned: 0,
            version_prefix: "/v2".to_owned(),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            authorization: None,
        })
    }

    /// A cluster reached through endpoint URLs such as `http://127.0.0.1:2379`.
    pub fn from_urls<S: AsRef<str>>(urls: &[S]) -> Result<Cluster, UsageError> {
        let endpoints = urls
            .iter()
            .map(|u| Endpoint::parse(u.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Cluster::new(endpoints)
    }

    /// Sets the path under which the v2 API lives (default `/v2`; python-etcd's
    /// `version_prefix`), for etcd behind a proxy such as `https://host/etcd/v2`.
    pub fn set_version_prefix(&mut self, prefix: &str) {
        let trimmed = prefix.trim_end_matches('/');
        self.version_prefix = if trimmed.starts_with('/') || trimmed.is_empty() {
            trimmed.to_owned()
        } else {
            format!("/{trimmed}")
        };
    }

    /// Sets how long an ordinary request may take (`None`: no limit). Watches
    /// are not bound by it: they carry their own deadline.
    pub fn set_request_timeout(&mut self, timeout: Option<Duration>) {
        self.request_timeout = timeout;
    }

    /// Sends HTTP basic credentials with every request (etcd v2 auth).
    pub fn set_basic_auth(&mut self, user: &str, password: &str) {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.authorization = http::HeaderValue::from_str(&format!("Basic {token}"))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
    }

    /// Every endpoint, in order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The endpoint requests currently go to.
    pub fn pinned(&self) -> &Endpoint {
        &self.endpoints[self.pinned]
    }

    /// The v2 API prefix.
    pub fn version_prefix(&self) -> &str {
        &self.version_prefix
    }

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }

    pub(crate) fn target(&self) -> Target<'_> {
        Target::new(self.pinned(), &self.version_prefix)
    }

    pub(crate) fn authorization(&self) -> Option<&http::HeaderValue> {
        self.authorization.as_ref()
    }
}
