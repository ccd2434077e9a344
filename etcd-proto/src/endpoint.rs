//! Endpoint URLs: where a client sends its requests.

use std::fmt;

use crate::error::UsageError;

/// One etcd client URL, such as `http://127.0.0.1:2379` or
/// `https://gateway.example/etcd` (etcd served under a path).
///
/// The scheme must be `http` or `https`; a URL without a port keeps the
/// scheme's default. Any path becomes a base that every request is sent under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    base_path: String,
    display: String,
}

impl Endpoint {
    /// Parses an endpoint URL.
    ///
    /// ```
    /// let ep = etcd_proto::Endpoint::parse("http://127.0.0.1:2379").unwrap();
    /// assert_eq!(ep.as_str(), "http://127.0.0.1:2379");
    /// assert!(etcd_proto::Endpoint::parse("127.0.0.1:2379").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Endpoint, UsageError> {
        let invalid = |reason| invalid_redacted(url, reason);
        let uri: http::Uri = url
            .parse()
            .map_err(|_| invalid_redacted(url, "not a valid URL"))?;
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // Never sent, never shown: the password would end up in logs.
            return Err(invalid_redacted(
                url,
                "credentials in the URL are not accepted (they would be shown wherever the endpoint is); use basic_auth(user, password) or v3_credentials(user, password)",
            ));
        }
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| invalid("missing scheme (use http:// or https://)"))?;
        if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
            return Err(invalid("scheme must be http or https"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid("missing host"))?;
        if uri.query().is_some() {
            return Err(invalid("an endpoint cannot have a query"));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let display = format!("{scheme}://{authority}{base_path}");
        Ok(Endpoint {
            scheme,
            authority,
            base_path,
            display,
        })
    }

    /// The endpoint as a normalized URL string (no trailing slash).
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &http::uri::Scheme {
        &self.scheme
    }

    /// `host:port`.
    pub fn authority(&self) -> &http::uri::Authority {
        &self.authority
    }

    /// The path every request is sent under (empty, or e.g. `/etcd`).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The absolute URI of `path_and_query` (which starts with `/`) on this endpoint.
    ///
    /// Fails, rather than sending the request elsewhere, when the URI is too long
    /// for `http::Uri` (64 KiB) or contains characters a URI cannot hold.
    pub(crate) fn uri(&self, path_and_query: &str) -> Result<http::Uri, UsageError> {
        let mut full = String::with_capacity(self.display.len() + path_and_query.len());
        full.push_str(&self.display);
        full.push_str(path_and_query);
        full.parse()
            .map_err(|e: http::uri::InvalidUri| UsageError::InvalidRequestUri {
                reason: e.to_string(),
            })
    }
}

/// An [`UsageError::InvalidEndpoint`] for `url` with any `user:password@`
/// part replaced by `***@`, so that the error never shows a secret.
fn invalid_redacted(url: &str, reason: &'static str) -> UsageError {
    let shown = match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let host_start = scheme_end + 3;
            // Only an `@` before the path is userinfo.
            let path_start = url[host_start..]
                .find('/')
                .map_or(url.len(), |i| host_start + i);
            if at < path_start {
                format!("{}***{}", &url[..host_start], &url[at..])
            } else {
                url.to_owned()
            }
        }
        _ => url.to_owned(),
    };
    UsageError::InvalidEndpoint { url: shown, reason }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl std::str::FromStr for Endpoint {
    type Err = UsageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_base_path_and_port() {
        let ep = Endpoint::parse("https://gw.example:8443/etcd/").unwrap();
        assert_eq!(ep.as_str(), "https://gw.example:8443/etcd");
        assert_eq!(
            ep.uri("/v2/keys/a").unwrap().to_string(),
            "https://gw.example:8443/etcd/v2/keys/a"
        );
    }

    #[test]
    fn ipv6_literal() {
        let ep = Endpoint::parse("http://[::1]:2379").unwrap();
        assert_eq!(
            ep.uri("/version").unwrap().to_string(),
            "http://[::1]:2379/version"
        );
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_shown() {
        for url in [
            "http://root:s3cret@127.0.0.1:2379",
            "https://root:s3cret@gw.example/etcd",
            "http://:s3cret@127.0.0.1:2379",
        ] {
            let error = Endpoint::parse(url).unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("***@"), "{shown}");
            assert!(shown.contains("basic_auth"), "{shown}");
        }
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in ["", "127.0.0.1:2379", "ftp://x", "http://", "http://h/?q=1"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
