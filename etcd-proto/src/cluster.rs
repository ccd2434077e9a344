//! [`Cluster`]: what a client knows about the etcd cluster and how it talks to it.

use std::time::{Duration, Instant};

use crate::endpoint::Endpoint;
use crate::error::UsageError;
use crate::operation::Target;
use crate::v2::Member;

/// The default per-request timeout: 5 seconds, as in etcd's Go v2 client.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a long-lived exchange (a watch, an election observation, a
/// lock wait) may stay silent before the client checks the member by
/// re-opening it: 10 seconds. See [`Cluster::set_idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The shortest time between two member-list refreshes.
pub const MEMBER_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The endpoints, the pinned one, and the settings every request shares.
///
/// # Endpoint policy
///
/// One endpoint is *pinned*: every call starts there. A call that fails on an
/// endpoint (a transport error or a 5xx answer) moves the pin to the next
/// endpoint and, if the operation may be replayed, tries the others in turn
/// (see [`Call`](crate::Call)). A success re-pins to the endpoint that answered.
///
/// After a failure, and at most once per [`MEMBER_SYNC_INTERVAL`], the next
/// call first refreshes the endpoint list from `/v2/members` — unless member
/// discovery was turned off. The endpoints the client was built with are
/// always kept, so the list can never drain to empty.
///
/// A transport keeps one `Cluster` per client (behind a lock when requests run
/// concurrently) and lends it to each flow it drives. Flows read it to build
/// requests and update it as endpoints succeed or fail.
#[derive(Debug, Clone)]
pub struct Cluster {
    endpoints: Vec<Endpoint>,
    seeds: Vec<Endpoint>,
    pinned: usize,
    version_prefix: String,
    request_timeout: Option<Duration>,
    idle_timeout: Duration,
    authorization: Option<http::HeaderValue>,
    discover_members: bool,
    sync_due: bool,
    last_sync: Option<Instant>,
    expected_cluster_id: Option<String>,
    allow_redirect: bool,
    v3_auth: V3Auth,
    v3_encoding: crate::v3::V3Encoding,
}

/// v3 credentials and the token they were exchanged for.
#[derive(Clone, Default)]
struct V3Auth {
    credentials: Option<(String, String)>,
    token: Option<http::HeaderValue>,
    /// The server said auth is off: send no token, fetch none.
    disabled: bool,
}

impl std::fmt::Debug for V3Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V3Auth")
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("has_token", &self.token.is_some())
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl Cluster {
    /// A cluster reached through `endpoints` (at least one).
    pub fn new(endpoints: Vec<Endpoint>) -> Result<Cluster, UsageError> {
        if endpoints.is_empty() {
            return Err(UsageError::NoEndpoints);
        }
        let mut unique: Vec<Endpoint> = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            if !unique.contains(&endpoint) {
                unique.push(endpoint);
            }
        }
        Ok(Cluster {
            seeds: unique.clone(),
            endpoints: unique,
            pinned: 0,
            version_prefix: "/v2".to_owned(),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            authorization: None,
            discover_members: true,
            sync_due: false,
            last_sync: None,
            expected_cluster_id: None,
            allow_redirect: false,
            v3_auth: V3Auth::default(),
            v3_encoding: crate::v3::V3Encoding::default(),
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

    /// Sets how long an ordinary call may take, every failover attempt
    /// included (`None`: no limit). Watches are not bound by it: they carry
    /// their own deadline.
    pub fn set_request_timeout(&mut self, timeout: Option<Duration>) {
        self.request_timeout = timeout;
    }

    /// Sets how long a long-lived exchange may stay silent (default
    /// [`DEFAULT_IDLE_TIMEOUT`]; at least 1 ms). A v3 watch or election
    /// observation whose stream says nothing for this long, or a v2 watcher
    /// whose long poll gets no event, re-opens on the same member; the
    /// re-open must answer within the attempt timeout or the member counts
    /// as failed and the exchange moves to the next one, resuming where it
    /// was. A silent or frozen member is therefore left within
    /// `idle_timeout` plus one attempt.
    pub fn set_idle_timeout(&mut self, timeout: Duration) {
        self.idle_timeout = timeout.max(Duration::from_millis(1));
    }

    /// How long a long-lived exchange may stay silent.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How long a long-lived exchange's re-open (its liveness check) may
    /// take: the request timeout, or the idle timeout without one.
    pub(crate) fn probe_timeout(&self) -> Duration {
        self.request_timeout.unwrap_or(self.idle_timeout)
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

    /// Whether to refresh the endpoint list from `/v2/members` after a failure
    /// (default true; python-etcd's `use_proxies=True` is `false` here).
    pub fn set_discover_members(&mut self, on: bool) {
        self.discover_members = on;
    }

    /// Refuse answers whose `X-Etcd-Cluster-Id` is not `id` (python-etcd's
    /// `expected_cluster_id`): they fail with [`Error::ClusterMismatch`](crate::Error::ClusterMismatch).
    pub fn set_expected_cluster_id(&mut self, id: Option<String>) {
        self.expected_cluster_id = id;
    }

    /// Follow HTTP redirects that keep the request's path and query (another
    /// member or proxy); a redirect that would change the path — which etcd uses
    /// to rewrite keys — is always refused. Default false.
    pub fn set_allow_redirect(&mut self, on: bool) {
        self.allow_redirect = on;
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

    /// The cluster ID answers must carry, if one was set.
    pub fn expected_cluster_id(&self) -> Option<&str> {
        self.expected_cluster_id.as_deref()
    }

    pub(crate) fn allow_redirect(&self) -> bool {
        self.allow_redirect
    }

    pub(crate) fn target_on<'a>(&'a self, endpoint: &'a Endpoint) -> Target<'a> {
        Target::new(endpoint, &self.version_prefix)
            .with_grpc(self.v3_encoding == crate::v3::V3Encoding::Grpc)
    }

    /// How v3 calls reach etcd: the JSON gateway (the default) or native
    /// gRPC, which the transport must then be able to send (HTTP/2).
    pub fn set_v3_encoding(&mut self, encoding: crate::v3::V3Encoding) {
        self.v3_encoding = encoding;
    }

    /// How v3 calls reach etcd.
    pub fn v3_encoding(&self) -> crate::v3::V3Encoding {
        self.v3_encoding
    }

    /// Authenticates v3 requests as `user` (etcd v3 auth): the client trades
    /// the password for a token at its first v3 request, sends the token
    /// with every v3 request, and fetches a new one when etcd says it expired.
    pub fn set_v3_credentials(&mut self, user: &str, password: &str) {
        self.v3_auth = V3Auth {
            credentials: Some((user.to_owned(), password.to_owned())),
            ..V3Auth::default()
        };
    }

    /// Uses `token` for v3 requests as it is (no credentials to renew it).
    pub fn set_v3_token(&mut self, token: Option<&str>) {
        self.v3_auth.token =
            token
                .and_then(|t| http::HeaderValue::from_str(t).ok())
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                });
        if self.v3_auth.token.is_some() {
            self.v3_auth.disabled = false;
        }
    }

    /// The v3 user and password, if set.
    pub(crate) fn v3_credentials(&self) -> Option<(&str, &str)> {
        self.v3_auth
            .credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// True if a v3 request should first fetch a token.
    pub(crate) fn v3_token_needed(&self) -> bool {
        self.v3_auth.credentials.is_some() && self.v3_auth.token.is_none() && !self.v3_auth.disabled
    }

    /// The server reported auth as disabled: stop sending and fetching tokens.
    pub(crate) fn v3_auth_disabled(&mut self) {
        self.v3_auth.token = None;
        self.v3_auth.disabled = true;
    }

    /// Forgets the token (etcd rejected it), so the next v3 request fetches a
    /// new one; also forgets a previous "auth is disabled" answer.
    pub(crate) fn v3_token_rejected(&mut self) {
        self.v3_auth.token = None;
        self.v3_auth.disabled = false;
    }

    /// Adds the credentials `api` uses to `request`: the basic-auth header for
    /// v2, the token (bare, as etcd wants it) for v3. Never an empty header:
    /// etcd with auth off refuses any `Authorization`.
    pub(crate) fn authorize(
        &self,
        api: crate::operation::Api,
        request: &mut http::Request<bytes::Bytes>,
    ) {
        use crate::operation::Api;
        let header = match api {
            Api::V2 => self.authorization.as_ref(),
            Api::V3 => self.v3_auth.token.as_ref(),
            Api::V3Login => None,
        };
        if let Some(value) = header {
            // gRPC carries the token as `token` metadata; the gateway in
            // `Authorization`.
            let name = if crate::v3::grpc::is_grpc(request.headers()) {
                http::header::HeaderName::from_static("token")
            } else {
                http::header::AUTHORIZATION
            };
            request.headers_mut().insert(name, value.clone());
        }
    }

    /// `endpoint` answered: pin it.
    pub(crate) fn endpoint_succeeded(&mut self, endpoint: &Endpoint) {
        if let Some(i) = self.endpoints.iter().position(|e| e == endpoint) {
            self.pinned = i;
        }
    }

    /// `endpoint` failed: move the pin past it and ask for a member refresh.
    pub(crate) fn endpoint_failed(&mut self, endpoint: &Endpoint) {
        if self.pinned() == endpoint {
            self.pinned = (self.pinned + 1) % self.endpoints.len();
        }
        if self.discover_members && self.endpoints.len() > 1 {
            self.sync_due = true;
        }
    }

    /// True when the next call should refresh the member list first.
    pub(crate) fn member_sync_due(&self, now: Instant) -> bool {
        self.sync_due
            && self
                .last_sync
                .is_none_or(|last| now.saturating_duration_since(last) >= MEMBER_SYNC_INTERVAL)
    }

    /// A refresh was attempted at `now` (whether or not it worked).
    pub(crate) fn member_sync_attempted(&mut self, now: Instant) {
        self.sync_due = false;
        self.last_sync = Some(now);
    }

    /// Replaces the endpoint list with the members' client URLs, keeping the
    /// seeds and the pinned endpoint. An empty or unusable list changes nothing.
    pub fn apply_members(&mut self, members: &[Member]) {
        self.apply_client_urls(members.iter().flat_map(|m| m.client_urls.iter()));
    }

    /// Replaces the endpoint list with these client URLs (from a v2 or v3
    /// member list), keeping the seeds and the pinned endpoint.
    ///
    /// Only URLs with a scheme some seed has are taken: a member that
    /// advertises both `http://` and `https://` client URLs is reached the
    /// way the caller chose, and a client given `https://` endpoints never
    /// falls back to plaintext because a member list offered it.
    pub fn apply_client_urls<'a>(&mut self, urls: impl Iterator<Item = &'a String>) {
        let seeds = &self.seeds;
        let mut endpoints: Vec<Endpoint> = urls
            .filter_map(|url| Endpoint::parse(url).ok())
            .filter(|e| seeds.iter().any(|seed| seed.scheme() == e.scheme()))
            .collect();
        if endpoints.is_empty() {
            return;
        }
        let pinned = self.pinned().clone();
        for seed in &self.seeds {
            endpoints.push(seed.clone());
        }
        let mut unique: Vec<Endpoint> = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            if !unique.contains(&endpoint) {
                unique.push(endpoint);
            }
        }
        self.pinned = unique.iter().position(|e| *e == pinned).unwrap_or_else(|| {
            unique.push(pinned);
            unique.len() - 1
        });
        self.endpoints = unique;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(urls: &[&str]) -> Member {
        Member {
            id: "1".into(),
            name: "m".into(),
            peer_urls: vec![],
            client_urls: urls.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn failures_rotate_the_pin_and_successes_keep_it() {
        let mut c = Cluster::from_urls(&["http://a:1", "http://b:2", "http://c:3"]).unwrap();
        let a = c.endpoints()[0].clone();
        let b = c.endpoints()[1].clone();
        c.endpoint_failed(&a);
        assert_eq!(c.pinned(), &b);
        c.endpoint_failed(&a); // not pinned any more: no change
        assert_eq!(c.pinned(), &b);
        c.endpoint_succeeded(&a);
        assert_eq!(c.pinned(), &a);
    }

    #[test]
    fn member_lists_never_change_the_seeds_scheme() {
        let mut tls = Cluster::from_urls(&["https://a:2379"]).unwrap();
        tls.apply_members(&[
            member(&["http://a:2378", "https://a:2379"]),
            member(&["http://b:2378", "https://b:2379"]),
            member(&["http://c:2378"]),
        ]);
        let urls: Vec<&str> = tls.endpoints().iter().map(Endpoint::as_str).collect();
        assert_eq!(urls, ["https://a:2379", "https://b:2379"]);
        let mut plain = Cluster::from_urls(&["http://a:2378"]).unwrap();
        plain.apply_members(&[member(&["http://a:2378", "https://a:2379"])]);
        let urls: Vec<&str> = plain.endpoints().iter().map(Endpoint::as_str).collect();
        assert_eq!(urls, ["http://a:2378"]);
    }

    #[test]
    fn member_list_never_drains_and_keeps_seeds_and_pin() {
        let mut c = Cluster::from_urls(&["http://seed:1", "http://b:2"]).unwrap();
        let b = c.endpoints()[1].clone();
        c.endpoint_succeeded(&b);
        c.apply_members(&[]);
        assert_eq!(c.endpoints().len(), 2);
        c.apply_members(&[member(&["http://x:9"]), member(&["not a url"])]);
        let urls: Vec<_> = c.endpoints().iter().map(|e| e.as_str()).collect();
        assert_eq!(urls, ["http://x:9", "http://seed:1", "http://b:2"]);
        assert_eq!(c.pinned(), &b);
    }

    #[test]
    fn member_sync_is_rate_limited_and_can_be_turned_off() {
        let now = Instant::now();
        let mut c = Cluster::from_urls(&["http://a:1", "http://b:2"]).unwrap();
        let a = c.endpoints()[0].clone();
        assert!(!c.member_sync_due(now));
        c.endpoint_failed(&a);
        assert!(c.member_sync_due(now));
        c.member_sync_attempted(now);
        c.endpoint_failed(&a);
        assert!(!c.member_sync_due(now + Duration::from_millis(10)));
        assert!(c.member_sync_due(now + MEMBER_SYNC_INTERVAL));
        c.set_discover_members(false);
        c.member_sync_attempted(now);
        c.endpoint_failed(&a);
        assert!(!c.member_sync_due(now + MEMBER_SYNC_INTERVAL * 2));
    }
}
