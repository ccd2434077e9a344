//! gRPC's length-prefixed messages: one byte of compression flag (always
//! 0: this client never asks for compression), four bytes of big-endian
//! length, then the protobuf bytes.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The prefix of every message.
pub(crate) const PREFIX: usize = 5;

/// `message`, framed.
pub(crate) fn encode(message: &impl prost::Message) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(PREFIX + len);
    out.put_u8(0);
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message
        .encode(&mut out)
        .expect("a BytesMut with room for the whole message");
    out.freeze()
}

/// Why a body does not split into messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A compressed message: never asked for.
    Compressed,
    /// A message longer than the bound.
    TooLarge { len: usize, max: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Compressed => f.write_str("a compressed gRPC message (none was asked for)"),
            FrameError::TooLarge { len, max } => write!(
                f,
                "a gRPC message of {len} bytes, above the bound of {max} bytes"
            ),
        }
    }
}

/// Splits a body, pushed in pieces of any size, into its messages; holds
/// at most one message (bounded by `max`) and one prefix.
#[derive(Debug)]
pub(crate) struct Deframer {
    buffer: BytesMut,
    max: usize,
}

impl Deframer {
    /// A deframer refusing messages longer than `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Deframer {
            buffer: BytesMut::new(),
            max,
        }
    }

    /// The next piece of the body.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// Forgets what is held (a stream closed mid-message).
    pub(crate) fn clear(&mut self) {
        self.buffer.clear();
    }

    /// True if no byte of a message is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// The next whole message, `None` until one is complete.
    pub(crate) fn next(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buffer.len() < PREFIX {
            return Ok(None);
        }
        if self.buffer[0] != 0 {
            return Err(FrameError::Compressed);
        }
        let len = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if self.buffer.len() < PREFIX + len {
            return Ok(None);
        }
        self.buffer.advance(PREFIX);
        Ok(Some(self.buffer.split_to(len).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_anywhere_come_out_whole_and_bounded() {
        let a = encode(&crate::v3::grpc::pb::LeaseId { id: 7 });
        let b = encode(&crate::v3::grpc::pb::LeaseId { id: 300 });
        let body = [a.as_ref(), b.as_ref()].concat();
        for cut in 0..body.len() {
            let mut d = Deframer::new(64);
            d.push(&body[..cut]);
            let mut out = Vec::new();
            while let Some(m) = d.next().unwrap() {
                out.push(m);
            }
            d.push(&body[cut..]);
            while let Some(m) = d.next().unwrap() {
                out.push(m);
            }
            assert_eq!(out, [a.slice(PREFIX..), b.slice(PREFIX..)]);
            assert!(d.is_empty());
        }
        let mut d = Deframer::new(1);
        d.push(&b);
        assert_eq!(d.next(), Err(FrameError::TooLarge { len: 3, max: 1 }));
        let mut d = Deframer::new(64);
        d.push(&[1, 0, 0, 0, 0]);
        assert_eq!(d.next(), Err(FrameError::Compressed));
    }
}
