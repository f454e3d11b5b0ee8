//! Forwarding: one client request, start to finish.
//!
//! Data path. `handler.rs` reads top to bottom: route, rewrite the head, pick a
//! target, send, stream the response back. Around it: the client connection as its
//! requests see it (`context.rs`), the bodies that carry a request to its target
//! and a response back with the guards that must live as long as it
//! (`body.rs`), the safe-retry rules (`retry.rs`), sticky sessions to a target
//! (`sticky.rs`), what each attempt leaves behind
//! (`attempt.rs`), one attempt on an HTTP/1.1 target (`http1.rs`) and HTTP/2
//! towards targets (`http2.rs`), WebSocket upgrades and
//! their tunnels (`upgrade.rs`, `tunnel.rs`), the forwarded headers
//! (`headers.rs`), and ballast's own errors with their one mapping to a status
//! (`error.rs`), in the gRPC form for gRPC clients (`grpc.rs`).
//!
//! May use: `admission/`, `hygiene/`, `routing/`, `resilience/`, `upstream/`, `http1/`, `tls/`, `observe/`, `runtime/` and
//! the snapshot. Not `frontend/`, which calls in here.

pub mod attempt;
pub mod body;
pub mod context;
pub mod error;
pub mod grpc;
mod handler;
pub mod headers;
mod http1;
pub mod http2;
pub mod retry;
pub mod sticky;
pub mod tunnel;
pub mod upgrade;

pub use context::ConnCtx;
pub use handler::handle;
