//! A server seeded with listening sockets handed over by another process (a
//! binary upgrade): a listener of its config accepts on the matching socket
//! instead of binding, a socket no listener uses is closed, and the sockets it
//! runs on can be handed on again.

use ballast_proxy::{ListeningSocket, Server};
use ballast_testkit::{backends, Client, Setup};

fn listening(name: &str) -> ListeningSocket {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("nonblocking");
    ListeningSocket {
        name: name.to_string(),
        bind: "127.0.0.1:0".parse().expect("addr"),
        local_addr: socket.local_addr().expect("addr"),
        socket,
    }
}

#[tokio::test]
async fn a_listener_accepts_on_the_socket_handed_over_and_the_rest_are_closed() {
    let bs = backends(1).await;
    let config = Setup::new(&bs).config();
    let (public, gone) = (listening("public"), listening("gone"));
    let (addr, gone_addr) = (public.local_addr, gone.local_addr);
    let server = Server::start_inheriting(config, 1, vec![public, gone])
        .await
        .expect("start");
    assert_eq!(
        server.local_addr("public").await,
        Some(addr),
        "not bound anew"
    );
    let r = Client::http1()
        .get(&format!("http://{addr}/"))
        .await
        .expect("served on the inherited socket");
    assert_eq!(r.status, 200);
    assert!(
        tokio::net::TcpStream::connect(gone_addr).await.is_err(),
        "a socket no listener uses is closed"
    );

    // What it runs on can be handed on: the same socket, at the same address.
    let handed = server.listening_sockets().await.expect("copies");
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].name, "public");
    assert_eq!(handed[0].local_addr, addr);
    assert_eq!(handed[0].socket.local_addr().expect("addr"), addr);
    server.shutdown().await;
    // The copy keeps the socket open after the server closed its own.
    let still = tokio::net::TcpStream::connect(addr).await;
    assert!(still.is_ok(), "the handed-over copy still listens");
}
