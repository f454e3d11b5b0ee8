//! The client side: listening sockets, accept loops, client connections, their
//! timeouts, parking and draining, and ballast's own HTTP/1.1 server.
//!
//! Data path. `listener.rs` binds and accepts (on every worker, see `runtime/`);
//! `serve.rs` tells the protocol of a new connection apart (HTTP/1.1, h2c, TLS)
//! and serves it, with ballast's own server for the common HTTP/1.1 request
//! (`http1/`) and hyper for the rest; `connection.rs` keeps a connection's
//! header-read and idle timeouts and its part in a drain (`send_timeout.rs`:
//! the send timeout on its writes); `socket.rs` reads and
//! writes a socket before it ever joins tokio's driver; `parking.rs` holds idle
//! keep-alive connections without a task; `http2/` sets the limits of hyper's
//! HTTP/2 server and guards it against the floods h2 does not bound.
//!
//! `inherited.rs` matches the listening sockets another ballast process handed
//! over (a binary upgrade) to the listeners of a config.
//!
//! New connections are admitted (`admit.rs`: a PROXY protocol header read by
//! `proxy_protocol.rs`, the allow/deny lists, the per-client limit) before any
//! of that; the accept loops wait while a listener is at `max_connections`.
//!
//! May use: `admission/`, `forward/` (each request is handed to `forward::handle`), `http1/`,
//! `tls/`, `observe/`, `runtime/` and the snapshot.

mod admit;
pub mod connection;
pub mod http1;
pub mod http2;
pub mod inherited;
pub mod listener;
pub mod parking;
pub mod proxy_protocol;
pub mod send_timeout;
pub mod serve;
pub mod socket;
