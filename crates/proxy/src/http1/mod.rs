//! HTTP/1.1 as ballast speaks it itself: the message syntax and framing rules, as
//! plain functions over buffers, and the errors of a conversation with a target.
//!
//! Data path, used by both sides: ballast's own client towards `http1` targets
//! (`upstream/http1.rs`) and its own server for the common client request
//! (`frontend/http1/`). hyper's client runs every upstream connection in a task of
//! its own and hands requests and responses to it over channels: each proxied
//! request cost two extra task wake-ups and a cross-task hand-off that HAProxy's
//! single event loop does not pay, plus hyper's buffers on every pooled
//! connection. So the connection's own task writes and reads the socket, and what
//! the bytes mean is decided here: heads (`codec.rs`) and chunked bodies
//! (`chunked.rs`). hyper serves every other HTTP/1.1 request, and HTTP/2.
//!
//! May use: nothing else of the crate (a leaf).

pub mod chunked;
pub mod codec;
pub mod hop_by_hop;

/// What can go wrong talking HTTP/1.1 to a target.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The target closed the connection before sending any of the response.
    #[error("connection closed before a response")]
    Closed,
    /// The target closed the connection in the middle of a response.
    #[error("connection closed in the middle of a response")]
    Incomplete,
    #[error("invalid response: {0}")]
    Invalid(&'static str),
    #[error("response head larger than {} bytes", codec::MAX_HEAD)]
    HeadTooLarge,
    /// Reading the client's request body failed (malformed, the client went
    /// away, or too slow): the client's failure, not the target's.
    #[error("request body: {0}")]
    ClientBody(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The connection ended or broke: another connection may well succeed, unlike
    /// a target that answered with something that is not HTTP.
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Error::Closed | Error::Incomplete | Error::Io(_))
    }
}
