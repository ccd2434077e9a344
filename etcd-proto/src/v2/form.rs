//! `application/x-www-form-urlencoded` pairs, for v2 query strings and bodies.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986 unreserved characters is escaped, so `+`, `&`, `=`
/// and newlines in values survive Go's `ParseQuery` exactly.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds `name=value&name=value` with both sides percent-encoded.
#[derive(Debug, Default)]
pub(crate) struct Form {
    encoded: String,
}

impl Form {
    pub(crate) fn new() -> Self {
        Form::default()
    }

    /// Appends `name=value`.
    pub(crate) fn push(&mut self, name: &str, value: &str) -> &mut Self {
        if !self.encoded.is_empty() {
            self.encoded.push('&');
        }
        self.encoded.extend(utf8_percent_encode(name, COMPONENT));
        self.encoded.push('=');
        self.encoded.extend(utf8_percent_encode(value, COMPONENT));
        self
    }

    /// Appends `name=true` when `flag` is set.
    pub(crate) fn flag(&mut self, name: &str, flag: bool) -> &mut Self {
        if flag {
            self.push(name, "true");
        }
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.encoded.is_empty()
    }

    pub(crate) fn into_string(self) -> String {
        self.encoded
    }

    /// `path?pairs`, or just `path` when there are none.
    pub(crate) fn append_to(self, mut path: String) -> String {
        if !self.is_empty() {
            path.push('?');
            path.push_str(&self.encoded);
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_ambiguous() {
        let mut form = Form::new();
        form.push("value", "a b+c&d=e\nf%é")
            .flag("dir", true)
            .flag("x", false);
        assert_eq!(
            form.into_string(),
            "value=a%20b%2Bc%26d%3De%0Af%25%C3%A9&dir=true"
        );
    }
}
