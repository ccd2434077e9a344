//! v2 key paths: validation and percent-encoding into the URL path.
//!
//! etcd v2 cleans every request path (Go's `path.Clean`) and answers a path
//! that is not clean with a 301 redirect to the cleaned one, so `a//b`, `a/./b`
//! and `a/../b` name *other* keys. Such keys are refused with
//! [`UsageError::NonCanonicalKey`]. Every other byte of a key is percent-encoded
//! as needed, so keys with spaces, `?`, `#`, `%`, `&`, `+`, `=` or unicode reach
//! the server exactly as given.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::UsageError;

/// Bytes left as they are in a path: RFC 3986 unreserved characters and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Checks `key` and returns the percent-encoded path of it, always starting
/// with `/` (a key given without one gets one, as in python-etcd).
///
/// A single trailing `/` is allowed (`/dir/` names `/dir`).
pub(crate) fn encode_key_path(key: &str) -> Result<String, UsageError> {
    let relative = key.strip_prefix('/').unwrap_or(key);
    let inner = relative.strip_suffix('/').unwrap_or(relative);
    if !relative.is_empty()
        && inner
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(UsageError::NonCanonicalKey {
            key: key.to_owned(),
        });
    }
    let mut path = String::with_capacity(key.len() + 8);
    path.push('/');
    path.extend(utf8_percent_encode(relative, PATH));
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_slash_is_added() {
        assert_eq!(encode_key_path("foo").unwrap(), "/foo");
        assert_eq!(encode_key_path("/foo/bar").unwrap(), "/foo/bar");
        assert_eq!(encode_key_path("").unwrap(), "/");
        assert_eq!(encode_key_path("/").unwrap(), "/");
        assert_eq!(encode_key_path("/dir/").unwrap(), "/dir/");
    }

    #[test]
    fn special_characters_are_encoded() {
        assert_eq!(
            encode_key_path("/a b?c#d%e&f+g=h").unwrap(),
            "/a%20b%3Fc%23d%25e%26f%2Bg%3Dh"
        );
        assert_eq!(
            encode_key_path("/ключ").unwrap(),
            "/%D0%BA%D0%BB%D1%8E%D1%87"
        );
        assert_eq!(encode_key_path("/a.b-c_d~e").unwrap(), "/a.b-c_d~e");
    }

    #[test]
    fn non_canonical_keys_are_refused() {
        for key in ["a//b", "//a", "/a/./b", "/a/../b", "..", "/.", "a//", "//"] {
            assert!(
                matches!(
                    encode_key_path(key),
                    Err(UsageError::NonCanonicalKey { .. })
                ),
                "{key} accepted"
            );
        }
        // Dots inside a name are fine.
        assert!(encode_key_path("/a/.hidden/...").is_ok());
    }
}
