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
        let invalid = |reason| UsageError::InvalidEndpoint {
            url: url.to_owned(),
            reason,
        };
        let uri: http::Uri = url.parse().map_err(|_| invalid("not a valid URL"))?;
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
    fn rejects_bad_urls() {
        for bad in ["", "127.0.0.1:2379", "ftp://x", "http://", "http://h/?q=1"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
