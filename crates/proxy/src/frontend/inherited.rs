//! Listening sockets handed over by another ballast process (a binary upgrade,
//! SIGUSR2), and the rule that matches them to the listeners of a config.
//!
//! Control path. At a binary upgrade the running process passes every listening
//! socket to the new one (over a Unix socket, `ballast/src/upgrade.rs`); the new
//! process seeds its [`Server`](crate::Server) with them, and each listener of its
//! config whose address matches one takes it instead of binding. Both processes
//! then hold the same kernel socket: connections waiting in its accept queue are
//! accepted by whichever process calls `accept` first, and none is lost when the
//! old process closes its copy. A socket no listener takes is closed once the
//! first config is applied (its listener was removed from the config).

use std::net::SocketAddr;

/// A listening socket with the name and address of the listener that bound it.
#[derive(Debug)]
pub struct ListeningSocket {
    pub name: String,
    /// The configured address (port 0 stays 0).
    pub bind: SocketAddr,
    /// The address actually bound.
    pub local_addr: SocketAddr,
    pub socket: std::net::TcpListener,
}

/// The sockets handed over and not yet taken.
#[derive(Debug, Default)]
pub struct Inherited {
    sockets: Vec<ListeningSocket>,
}

impl Inherited {
    pub fn new(sockets: Vec<ListeningSocket>) -> Self {
        Inherited { sockets }
    }

    /// Take the socket for listener `name` configured at `bind`: one bound at the
    /// same address (a port-0 address only by the same listener, since each
    /// port-0 listener got a port of its own), or one whose bound address is
    /// `bind` (a config pinned to the port a port-0 listener got).
    pub fn take(&mut self, name: &str, bind: SocketAddr) -> Option<std::net::TcpListener> {
        let at = self.sockets.iter().position(|s| {
            (s.bind == bind && (bind.port() != 0 || s.name == name)) || s.local_addr == bind
        })?;
        Some(self.sockets.swap_remove(at).socket)
    }

    /// Put back a socket taken by an apply that failed.
    pub fn give_back(&mut self, socket: ListeningSocket) {
        self.sockets.push(socket);
    }

    /// The sockets no listener took.
    pub fn rest(&mut self) -> Vec<ListeningSocket> {
        std::mem::take(&mut self.sockets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(name: &str, bind: &str) -> ListeningSocket {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        ListeningSocket {
            name: name.to_string(),
            bind: bind.parse().expect("addr"),
            local_addr: socket.local_addr().expect("addr"),
            socket,
        }
    }

    #[test]
    fn a_listener_takes_the_socket_at_its_address_and_port_0_only_its_own() {
        let a = socket("a", "127.0.0.1:0");
        let a_local = a.local_addr;
        let fixed = socket("web", "127.0.0.1:8443");
        let mut inherited = Inherited::new(vec![a, fixed, socket("gone", "127.0.0.1:0")]);
        // Another listener at port 0 gets a port of its own.
        assert!(inherited
            .take("b", "127.0.0.1:0".parse().unwrap())
            .is_none());
        let taken = inherited.take("a", "127.0.0.1:0".parse().unwrap());
        assert_eq!(taken.unwrap().local_addr().unwrap(), a_local);
        // A fixed address is the same socket whatever the listener is now named.
        assert!(inherited
            .take("renamed", "127.0.0.1:8443".parse().unwrap())
            .is_some());
        let rest = inherited.rest();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].name, "gone");
    }

    #[test]
    fn a_config_pinned_to_the_port_it_got_takes_that_socket() {
        let a = socket("a", "127.0.0.1:0");
        let local = a.local_addr;
        let mut inherited = Inherited::new(vec![a]);
        assert!(inherited.take("other", local).is_some());
    }
}
