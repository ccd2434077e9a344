//! The error this crate puts inside an `ExchangeFailure`.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong during one exchange, in words, with the underlying error
/// (an `io::Error`, a `hyper::Error`, …) as its source.
///
/// `Display` shows the whole chain of causes, because `TransportError`
/// shows only its source's `Display`; `source()` still returns the cause so
/// it can be downcast.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    source: Option<BoxError>,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn caused(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Failure {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        let mut cause = self
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static));
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

impl StdError for Failure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}
