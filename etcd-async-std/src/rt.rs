//! The glue between hyper's I/O traits and async-std: an adapter over any
//! futures-io stream. No executor: hyper's HTTP/1.1 client connections need
//! none, and this crate drives each connection in the task that uses it.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use hyper::rt::ReadBufCursor;

/// Lets hyper read and write any `futures_io::AsyncRead + AsyncWrite` stream,
/// such as async-std's `TcpStream`.
#[derive(Debug)]
pub(crate) struct FuturesIo<T> {
    inner: T,
}

impl<T> FuturesIo<T> {
    pub(crate) fn new(inner: T) -> Self {
        FuturesIo { inner }
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for FuturesIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // futures-io reads into initialised memory only: zero what hyper has
        // not initialised yet (hyper tracks how much that is).
        let unfilled = buf.initialize_unfilled();
        let capacity = unfilled.len();
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, unfilled))?;
        if n > capacity {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("reader claimed {n} bytes read into a {capacity}-byte buffer"),
            )));
        }
        // SAFETY: `initialize_unfilled` initialised all `capacity` bytes of the
        // unfilled part, and `n <= capacity` was checked above.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for FuturesIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    // `is_write_vectored` stays false: futures-io cannot say whether a stream
    // really writes vectors, so hyper flattens each request's head and body
    // into one buffer — one write for a typical etcd request.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}
