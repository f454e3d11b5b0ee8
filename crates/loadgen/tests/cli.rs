//! The stand-alone binary as a user meets it: one-line errors and exit codes, and
//! output free of control characters when it is not on a terminal.

mod common;

use std::process::{Command, Output};

use common::{start, Options};

fn bench(argv: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast-loadgen"))
        .args(argv)
        .output()
        .expect("the binary runs")
}

fn has_control_characters(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
}

#[test]
fn an_unreachable_host_fails_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let out = bench(&["-d", "1s", &url]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: cannot connect to"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_input_fails_with_a_reason() {
    for argv in [
        &["-c", "0", "http://127.0.0.1:1/"][..],
        &["--rate", "-5", "http://127.0.0.1:1/"],
        &["--rate", "0", "http://127.0.0.1:1/"],
        &["http//no-scheme"],
        &["--no-such-flag", "http://127.0.0.1:1/"],
        &["--body", "/nonexistent/file", "http://127.0.0.1:1/"],
    ] {
        let out = bench(argv);
        assert!(!out.status.success(), "{argv:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: "), "{argv:?}: {stderr}");
    }
}

#[test]
fn off_a_terminal_the_output_has_no_control_characters() {
    let server = start(Options::default());
    let url = server.url("/");
    let out = bench(&["-c", "2", "-d", "600ms", "--threads", "1", &url]);
    assert!(out.status.success());
    assert!(
        !has_control_characters(&out.stdout),
        "{:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        out.stderr.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Requests") && text.contains("Latency"),
        "{text}"
    );

    let out = bench(&["-c", "2", "-n", "20", "--json", "--threads", "1", &url]);
    assert!(out.status.success());
    assert!(!has_control_characters(&out.stdout));
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(json["requests"], 20);
}
