//! An in-process HTTP server for the load generator's tests: HTTP/1.1 and h2c (or
//! either over TLS), counting what it sees, optionally stalling every request for a
//! while (a garbage-collection pause, say) to show coordinated omission.

#![allow(dead_code)] // each test file uses a different part

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::oneshot;
use tokio::time::Instant;

pub const BODY: &[u8] = b"hello from the test server\n";

/// Tests of one binary run at once, on threads of one process. A closed-loop run
/// keeps a core busy for as long as it lasts, which on a 2-core machine delays the
/// timer wake-ups of an open-loop run beside it by milliseconds: enough to make
/// its requests leave late for reasons that have nothing to do with the load
/// generator. Runs that saturate the machine take `shared()` (they may overlap
/// each other); a test that judges timing takes `exclusive()` and runs alone.
static CPU: RwLock<()> = RwLock::new(());

pub fn shared() -> RwLockReadGuard<'static, ()> {
    CPU.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn exclusive() -> RwLockWriteGuard<'static, ()> {
    CPU.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub struct Counts {
    pub requests: AtomicU64,
    pub http2_requests: AtomicU64,
    pub connections: AtomicU64,
}

#[derive(Default, Clone)]
pub struct Options {
    /// Stall every request between `after` and `after + length` since the first one.
    pub stall: Option<(Duration, Duration)>,
    /// Serve TLS with this certificate chain and key (DER).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Called first on the server's thread (the allocation test marks it uncounted).
    pub on_thread_start: Option<fn()>,
}

pub struct Server {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        let scheme = "http";
        format!("{scheme}://{}{path}", self.addr)
    }

    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn start(options: Options) -> Server {
    let counts = Arc::new(Counts::default());
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread_counts = counts.clone();
    let thread = std::thread::spawn(move || {
        if let Some(hook) = options.on_thread_start {
            hook();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addr_tx
                .send(listener.local_addr().expect("addr"))
                .expect("send addr");
            let first = Arc::new(OnceLock::<Instant>::new());
            let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
            loop {
                let (tcp, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => continue,
                    },
                    _ = &mut stop_rx => break,
                };
                let _ = tcp.set_nodelay(true);
                thread_counts.connections.fetch_add(1, Ordering::SeqCst);
                let counts = thread_counts.clone();
                let first = first.clone();
                let stall = options.stall;
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let counts = counts.clone();
                            let first = first.clone();
                            async move {
                                counts.requests.fetch_add(1, Ordering::SeqCst);
                                if req.version() == Version::HTTP_2 {
                                    counts.http2_requests.fetch_add(1, Ordering::SeqCst);
                                }
                                let now = Instant::now();
                                let t0 = *first.get_or_init(|| now);
                                if let Some((after, length)) = stall {
                                    let (from, to) = (t0 + after, t0 + after + length);
                                    if now >= from && now < to {
                                        tokio::time::sleep_until(to).await;
                                    }
                                }
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                    BODY,
                                ))))
                            }
                        });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                    }
                });
            }
        });
    });
    let addr = addr_rx.recv().expect("server address");
    Server {
        addr,
        counts,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

/// Parses `argv` (without the program name) as `ballast bench` would.
pub fn args(argv: &[&str]) -> ballast_loadgen::BenchArgs {
    ballast_loadgen::BenchArgs::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
        .expect("arguments parse")
}

/// A path in the temp directory unique to this process and `name`.
pub fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ballast-loadgen-{}-{name}", std::process::id()))
}
