//! A gRPC answer's status: `grpc-status` (0 is OK) and `grpc-message`
//! (percent-encoded), in the trailers, or in the head of a trailers-only
//! answer (a call refused before any message).

/// The status header.
pub(crate) const GRPC_STATUS: &str = "grpc-status";
/// The message header.
pub(crate) const GRPC_MESSAGE: &str = "grpc-message";

/// The status code and its message, if `headers` carry a well-formed status.
pub(crate) fn read(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = std::str::from_utf8(headers.get(GRPC_STATUS)?.as_bytes())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let message = headers
        .get(GRPC_MESSAGE)
        .map(|v| {
            percent_encoding::percent_decode(v.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_percent_encoded_messages_are_read() {
        let mut h = http::HeaderMap::new();
        assert_eq!(read(&h), None);
        h.insert(GRPC_STATUS, "11".parse().unwrap());
        h.insert(
            GRPC_MESSAGE,
            "etcdserver: mvcc: required revision has been compacted%0A"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            read(&h),
            Some((
                11,
                "etcdserver: mvcc: required revision has been compacted\n".into()
            ))
        );
        h.insert(GRPC_STATUS, "x".parse().unwrap());
        assert_eq!(read(&h), None);
    }
}
