//! `ballast demo --traffic` as a user runs it: on free ports it serves, drives
//! its own traffic, logs one readable line per request on stdout, says which
//! backend misbehaves, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ballast_testkit::Client;

use crate::{BIN, SOON};

/// Lines from a child's pipe, read on a thread of their own.
fn lines(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line for which `keep` is true, within `SOON`; the lines skipped go to `seen`.
fn next_line(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    keep: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + SOON;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if keep(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no such line in time; seen:\n{}", seen.join("\n")),
        }
    }
}

/// `HH:MM:SS.mmm STATUS METHOD PATH -> TARGET DURATION`
fn is_request_line(line: &str) -> bool {
    let w: Vec<&str> = line.split_whitespace().collect();
    w.len() >= 6
        && w[0].len() == 12
        && w[0].as_bytes()[2] == b':'
        && w[1].parse::<u16>().is_ok()
        && w[3].starts_with('/')
        && w[4] == "->"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_with_traffic_serves_logs_lines_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--bind",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--traffic",
            "50",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let out = lines(child.stdout.take().expect("stdout"));
    let err = lines(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    let listening = next_line(&err, &mut seen, |l| l.contains("listening listener=demo"));
    let addr: std::net::SocketAddr = listening
        .split_whitespace()
        .find_map(|w| w.strip_prefix("address="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {listening:?}"));
    let banner = next_line(&err, &mut seen, |l| l.contains("misbehaves now and then"));
    assert!(banner.contains("demo-c"), "{banner}");

    // Its own traffic: request lines appear without anyone else sending.
    let mut skipped = Vec::new();
    for _ in 0..5 {
        let line = next_line(&out, &mut skipped, is_request_line);
        assert!(line.contains(" GET /"), "{line}");
    }
    // A request of ours is served and logged too.
    let r = Client::http1()
        .get(&format!("http://{addr}/from-the-test"))
        .await
        .expect("request");
    assert_eq!(r.status, 200);
    let ours = next_line(&out, &mut skipped, |l| {
        l.contains(" GET /from-the-test -> ")
    });
    assert!(is_request_line(&ours) && ours.contains(" 200 "), "{ours}");

    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + SOON;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "demo did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    // And the traffic stopped with it: nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
