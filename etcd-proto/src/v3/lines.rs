//! Incremental NDJSON framing for streamed gateway responses (watch,
//! election observe, …): a [`LineSplitter`] is fed the body's chunks as
//! they arrive and hands back complete lines.
//!
//! A TCP read can cut a line anywhere or join several, and the gateway's
//! final `{"error":…}` object has no trailing newline (etcd-wire §3d), so:
//!
//! - chunks are buffered until a `\n` completes a line;
//! - a line longer than the maximum is an error as soon as that is known
//!   (its newline need not have arrived): buffering is always bounded;
//! - at the end of the body, [`LineSplitter::finish`] hands back a non-empty
//!   remainder, which the caller parses like any line.
//!
//! Lines are returned without their `\n` (and without a `\r` before it);
//! blank lines carry nothing and are skipped. The splitter knows nothing of
//! what the lines hold.

use bytes::{Bytes, BytesMut};

use crate::error::{Error, MalformedResponse};

/// Splits a streamed body into lines; see the [module docs](self).
pub(crate) struct LineSplitter {
    buf: BytesMut,
    /// How many bytes at the start of `buf` are known to hold no `\n`.
    scanned: usize,
    max_line: usize,
}

impl std::fmt::Debug for LineSplitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineSplitter")
            .field("buffered", &self.buf.len())
            .field("max_line", &self.max_line)
            .finish()
    }
}

impl LineSplitter {
    /// A splitter refusing lines longer than `max_line` bytes (newline excluded).
    pub(crate) fn new(max_line: usize) -> Self {
        LineSplitter {
            buf: BytesMut::new(),
            scanned: 0,
            max_line,
        }
    }

    /// Appends the next chunk of the body.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line, `None` if more bytes are needed, or
    /// [`Error::Malformed`] if the line being read is over the maximum.
    /// After an error the splitter holds nothing.
    pub(crate) fn next_line(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let found = self.buf[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| self.scanned + i);
            let Some(newline) = found else {
                self.scanned = self.buf.len();
                if self.buf.len() > self.max_line {
                    return Err(self.too_long());
                }
                return Ok(None);
            };
            let mut line = self.buf.split_to(newline + 1);
            self.scanned = 0;
            line.truncate(newline);
            if line.last() == Some(&b'\r') {
                line.truncate(newline - 1);
            }
            if line.len() > self.max_line {
                self.buf = line;
                return Err(self.too_long());
            }
            if !is_blank(&line) {
                return Ok(Some(line.freeze()));
            }
        }
    }

    /// At the end of the body: the last line if it had no newline (`None` if
    /// nothing but blanks is left), or an error if it is over the maximum.
    /// Complete lines must have been taken with [`next_line`](Self::next_line)
    /// first; any left are returned joined, as one line.
    pub(crate) fn finish(&mut self) -> Result<Option<Bytes>, Error> {
        let mut rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        if rest.last() == Some(&b'\r') {
            rest.truncate(rest.len() - 1);
        }
        if rest.len() > self.max_line {
            self.buf = rest;
            return Err(self.too_long());
        }
        Ok((!is_blank(&rest)).then(|| rest.freeze()))
    }

    /// Forgets everything buffered (a new body starts).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.scanned = 0;
    }

    /// How many bytes are buffered.
    #[allow(dead_code)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The error for an over-long line; empties the buffer.
    fn too_long(&mut self) -> Error {
        let error = MalformedResponse::new(
            200,
            format!("stream line longer than {} bytes", self.max_line),
            &self.buf[..self.buf.len().min(200)],
        );
        self.clear();
        error.into()
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_lines(splitter: &mut LineSplitter) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(line) = splitter.next_line().unwrap() {
            out.push(line.to_vec());
        }
        out
    }

    #[test]
    fn lines_cut_and_joined_anywhere() {
        let mut s = LineSplitter::new(100);
        s.push(b"{\"a\":1}\n{\"b\"");
        assert_eq!(all_lines(&mut s), vec![b"{\"a\":1}".to_vec()]);
        s.push(b":2}\r\n\n  \n{\"c\":3}\n{\"err");
        assert_eq!(
            all_lines(&mut s),
            vec![b"{\"b\":2}".to_vec(), b"{\"c\":3}".to_vec()]
        );
        s.push(b"or\":{}}");
        assert_eq!(all_lines(&mut s), Vec::<Vec<u8>>::new());
        assert_eq!(s.finish().unwrap().as_deref(), Some(&b"{\"error\":{}}"[..]));
        assert_eq!(s.finish().unwrap(), None);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn over_long_lines_fail_before_their_newline() {
        let mut s = LineSplitter::new(8);
        s.push(b"12345678\n");
        assert_eq!(s.next_line().unwrap().as_deref(), Some(&b"12345678"[..]));
        s.push(b"12345");
        assert_eq!(s.next_line().unwrap(), None);
        s.push(b"6789");
        let error = s.next_line().unwrap_err();
        assert!(matches!(error, Error::Malformed(_)), "{error:?}");
        assert_eq!(s.buffered(), 0);
        // Over the limit with its newline in the same chunk.
        s.push(b"123456789\nok\n");
        assert!(s.next_line().is_err());
        // At the end of the body.
        s.push(b"123456789");
        assert!(s.next_line().is_err());
        s.push(b"ok\n12345678");
        assert_eq!(s.next_line().unwrap().as_deref(), Some(&b"ok"[..]));
        assert_eq!(s.next_line().unwrap(), None);
        assert_eq!(s.finish().unwrap().as_deref(), Some(&b"12345678"[..]));
    }

    #[test]
    fn a_long_line_in_many_small_chunks_is_scanned_once() {
        let mut s = LineSplitter::new(1 << 20);
        for _ in 0..100_000 {
            s.push(b"x");
            assert_eq!(s.next_line().unwrap(), None);
        }
        s.push(b"\n");
        assert_eq!(s.next_line().unwrap().map(|l| l.len()), Some(100_000));
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_lines(
            lines in proptest::collection::vec("[a-z{}\":,]{0,20}", 0..10),
            cuts in proptest::collection::vec(0usize..300, 0..10),
            final_newline in any::<bool>(),
        ) {
            let mut body = lines.join("\n");
            if final_newline { body.push('\n'); }
            let expected: Vec<Vec<u8>> = lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            let mut s = LineSplitter::new(64);
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([body.len()]) {
                s.push(&body.as_bytes()[from..cut]);
                from = cut;
                got.extend(all_lines(&mut s));
            }
            if let Some(last) = s.finish().unwrap() { got.push(last.to_vec()); }
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..20),
            max in 0usize..40,
        ) {
            let mut s = LineSplitter::new(max);
            for chunk in &chunks {
                s.push(chunk);
                while let Ok(Some(line)) = s.next_line() {
                    prop_assert!(line.len() <= max);
                }
                prop_assert!(s.buffered() <= max);
            }
            let _ = s.finish();
        }
    }
}
