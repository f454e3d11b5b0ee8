//! Integration tests of the backend over real sockets on `127.0.0.1:0`, driven by
//! hyper's own client connections (HTTP/1.1 and h2c prior knowledge).
//!
//! Nothing here sleeps to wait for an event it could await: where the only signal is a
//! counter on the handle, `support::eventually` polls it against a generous deadline,
//! so the tests stay reliable on a loaded two-core machine.

mod echo;
mod lifecycle;
mod steer;
mod support;
