//! A real WebSocket echo server for tests (tokio-tungstenite), on 127.0.0.1:0.
//!
//! Test support only. It echoes every text and binary message (fragmented ones
//! arrive reassembled by tungstenite) and answers pings with pongs; it counts the
//! connections it accepted and those that ended.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

pub use tokio_tungstenite;

/// A running echo server.
pub struct WsBackend {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    pub ended: Arc<AtomicUsize>,
}

impl WsBackend {
    pub async fn start() -> WsBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a WebSocket backend");
        let addr = listener.local_addr().expect("local addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let (a, e) = (accepted.clone(), ended.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (a, e) = (a.clone(), e.clone());
                tokio::spawn(async move {
                    if let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await {
                        a.fetch_add(1, Ordering::SeqCst);
                        while let Some(Ok(msg)) = ws.next().await {
                            let echo = match msg {
                                Message::Text(_) | Message::Binary(_) => msg,
                                Message::Close(_) => break,
                                // Pings are answered by tungstenite itself.
                                _ => continue,
                            };
                            if ws.send(echo).await.is_err() {
                                break;
                            }
                        }
                        e.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        WsBackend {
            addr,
            accepted,
            ended,
        }
    }
}
