//! The response body: either a small finished buffer or `N` filler bytes.
//!
//! Data path. `bytes=N` must cost the same memory for 10 KB and 10 GB, so filler is
//! served as `Bytes::from_static` slices of one static 64 KiB buffer: no allocation and
//! no copy per chunk. The exact size hint lets hyper frame it with `content-length`.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

const CHUNK: usize = 64 * 1024;

/// What filler bodies are made of: printable, so a `curl` of one does not wreck a terminal.
static FILLER: [u8; CHUNK] = [b'x'; CHUNK];

#[derive(Debug)]
pub(crate) enum Payload {
    /// A whole body in memory (the echo, short texts); `None` once sent.
    Full(Option<Bytes>),
    /// `remaining` filler bytes still to send.
    Filler { remaining: u64 },
}

impl Payload {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self::Full((!bytes.is_empty()).then_some(bytes))
    }

    pub(crate) fn empty() -> Self {
        Self::Full(None)
    }

    pub(crate) fn filler(len: u64) -> Self {
        Self::Filler { remaining: len }
    }

    /// Bytes left to send.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Self::Full(bytes) => bytes.as_ref().map_or(0, |b| b.len() as u64),
            Self::Filler { remaining } => *remaining,
        }
    }
}

impl Body for Payload {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.get_mut() {
            Self::Full(bytes) => bytes.take(),
            Self::Filler { remaining: 0 } => None,
            Self::Filler { remaining } => {
                let n = usize::try_from(*remaining).map_or(CHUNK, |r| r.min(CHUNK));
                *remaining -= n as u64;
                Some(Bytes::from_static(&FILLER[..n]))
            }
        };
        Poll::Ready(frame.map(|data| Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.len() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn filler_is_exact_and_chunked() {
        let mut body = Payload::filler(CHUNK as u64 * 2 + 5);
        let mut sizes = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.map(Frame::into_data).ok().and_then(Result::ok);
            sizes.push(data.map_or(0, |d| d.len()));
        }
        assert_eq!(sizes, [CHUNK, CHUNK, 5]);
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn empty_bodies_end_at_once() {
        assert!(Payload::filler(0).is_end_stream());
        assert!(Payload::full(Bytes::new()).is_end_stream());
        assert!(Payload::empty().frame().await.is_none());
    }
}
