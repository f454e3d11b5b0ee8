//! The access log's formats, its writer and log rotation.

use super::*;

#[test]
fn rfc3339_dates() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    assert_eq!(
        crate::observe::rfc3339::millis(t),
        "2023-11-14T22:13:20.123Z"
    );
    let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
    assert_eq!(
        crate::observe::rfc3339::millis(leap),
        "2000-02-29T00:00:00.000Z"
    );
    // The access log's own formatter agrees, day by day over four centuries.
    for day in (0..146_097u64).step_by(7) {
        let t =
            SystemTime::UNIX_EPOCH + Duration::from_millis((day * 86_400 + 45_296) * 1000 + 789);
        let bytes = crate::observe::rfc3339::millis_bytes(t);
        assert_eq!(
            std::str::from_utf8(&bytes),
            Ok(crate::observe::rfc3339::millis(t).as_str())
        );
    }
}

fn record(status: u16, target: Option<SocketAddr>) -> AccessRecord {
    AccessRecord {
        time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        listener: "demo".into(),
        client: SocketAddr::from(([127, 0, 0, 1], 5000)),
        target_group: Some("demo".into()),
        target,
        method: http::Method::GET,
        path: "/hello".into(),
        status,
        target_status: Some(status),
        request_processing_time: target.map(|_| Duration::from_micros(100)),
        target_processing_time: target.map(|_| Duration::from_micros(1200)),
        response_processing_time: target.map(|_| Duration::from_micros(500)),
        bytes_in: 0,
        bytes_out: 10,
        user_agent: None,
        request_id: None,
        error_reason: target.is_none().then_some("no_healthy_target"),
        desync_classification: None,
        desync_reason: None,
        rule_priority: None,
        tls_protocol: None,
        tls_cipher: None,
        complete: true,
    }
}

fn terminal_line(r: &AccessRecord) -> String {
    let mut out = Vec::new();
    format::terminal(r, &mut out);
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn terminal_lines_read_at_a_glance() {
    let target = SocketAddr::from(([127, 0, 0, 1], 40001));
    assert_eq!(
        terminal_line(&record(200, Some(target))),
        "22:13:20.123 200 GET /hello -> 127.0.0.1:40001 1.8ms"
    );
    assert_eq!(
        terminal_line(&record(503, None)),
        "22:13:20.123 503 GET /hello -> - - (no_healthy_target)"
    );
}

/// Lines before the reopen stay in the renamed file, later ones go to a new
/// file at the path.
#[tokio::test]
async fn reopen_moves_later_lines_to_a_new_file() {
    let dir = std::env::temp_dir().join(format!("ballast-reopen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("access.log");
    let _ = std::fs::remove_file(&path);
    let log = AccessLog::start(&AccessLogConfig::File(path.clone()))
        .expect("open")
        .expect("a file log");
    let lines = |p: &std::path::Path| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    log.send(&record(200, None));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lines(&path) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "first line never written"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rotated = dir.join("access.log.1");
    std::fs::rename(&path, &rotated).expect("rename");
    log.reopen();
    // The writer opens the new file (empty) when it takes the request.
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "never reopened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    log.send(&record(201, None));
    while lines(&path) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "no new file after reopen"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(std::fs::read_to_string(&path)
        .expect("new")
        .contains("\"status\":201"));
    let old = std::fs::read_to_string(&rotated).expect("old");
    assert_eq!(old.lines().count(), 1);
    assert!(old.contains("\"status\":200"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The JSON line is the contract (SPEC §10): every field, in this order, nulls
/// included, floats as serde_json writes them.
#[test]
fn json_lines_keep_the_contract() {
    let target = SocketAddr::from(([127, 0, 0, 1], 40001));
    let mut r = record(200, Some(target));
    r.user_agent = Some(http::HeaderValue::from_static("curl/8 \"quoted\""));
    r.request_id = Some(http::HeaderValue::from_static("abc-1"));
    r.tls_protocol = Some("TLSv1.3");
    let mut out = Vec::new();
    format::json(&r, &mut out);
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        concat!(
            r#"{"time":"2023-11-14T22:13:20.123Z","listener":"demo","client":"127.0.0.1:5000","#,
            r#""target_group":"demo","target":"127.0.0.1:40001","method":"GET","path":"/hello","#,
            r#""status":200,"target_status":200,"request_processing_time":0.0001,"#,
            r#""target_processing_time":0.0012,"response_processing_time":0.0005,"bytes_in":0,"#,
            r#""bytes_out":10,"user_agent":"curl/8 \"quoted\"","request_id":"abc-1","#,
            r#""error_reason":null,"desync_classification":null,"desync_reason":null,"#,
            r#""rule_priority":null,"tls_protocol":"TLSv1.3","tls_cipher":null,"complete":true}"#
        )
    );
}

/// Many batches' worth of lines, from two threads (two workers' slots at
/// most: both off the worker threads, so both use slot 0 here), all written
/// once `flush` returns, each whole.
#[tokio::test]
async fn every_line_is_written_whole_by_flush() {
    let dir = std::env::temp_dir().join(format!("ballast-batches-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("access.log");
    let _ = std::fs::remove_file(&path);
    let log = Arc::new(
        AccessLog::start(&AccessLogConfig::File(path.clone()))
            .expect("open")
            .expect("a file log"),
    );
    let before = dropped();
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            std::thread::spawn(move || {
                for _ in 0..3_000 {
                    log.send(&record(200, None));
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    log.flush().await;
    let text = std::fs::read_to_string(&path).expect("log");
    let lost = dropped() - before;
    assert_eq!(text.lines().count() as u64 + lost, 6_000);
    assert!(lost < 6_000, "the writer wrote nothing");
    assert!(text.lines().all(|l| l.starts_with('{') && l.ends_with('}')));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The hand-written JSON reads back as the values it was given, with strings
/// escaped and numbers written exactly as serde_json writes them.
#[test]
fn json_lines_read_back_as_their_values() {
    let strings = [
        "plain",
        "",
        "quote \" backslash \\ slash /",
        "control \u{1} \n \t \r \u{1f}",
        "unicode é ✓ 😀",
        "<script>\u{7f}",
    ];
    let durations = [
        0,
        100,
        9_999,
        10_000,
        123_456,
        100_000_000,
        1_500_000_000,
        12_345_678_900_001,
    ]
    .map(Duration::from_nanos);
    let addresses: [SocketAddr; 3] = [
        "10.255.0.1:65535".parse().expect("v4"),
        "[::1]:8080".parse().expect("v6"),
        "[2001:db8::1%3]:1".parse().expect("v6 with scope"),
    ];
    for (i, text) in strings.iter().enumerate() {
        let d = durations[i % durations.len()];
        let mut r = record(200, Some(addresses[i % 3]));
        r.client = addresses[(i + 1) % 3];
        r.path = (*text).to_string();
        r.listener = Arc::from(*text);
        r.target_group = Some(Arc::from(*text));
        r.error_reason = None;
        r.request_processing_time = Some(d);
        r.bytes_in = u64::MAX;
        r.rule_priority = Some(u32::MAX);
        r.complete = i % 2 == 0;
        let mut out = Vec::new();
        format::json(&r, &mut out);
        let line = String::from_utf8(out).expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["path"], *text);
        assert_eq!(v["listener"], *text);
        assert_eq!(v["target_group"], *text);
        assert_eq!(v["client"], r.client.to_string());
        assert_eq!(v["target"], addresses[i % 3].to_string());
        assert_eq!(v["bytes_in"], u64::MAX);
        assert_eq!(v["rule_priority"], u32::MAX);
        assert_eq!(v["complete"], i % 2 == 0);
        assert_eq!(v["error_reason"], serde_json::Value::Null);
        let expected_float = serde_json::to_string(&d.as_secs_f64()).expect("float");
        assert!(
            line.contains(&format!("\"request_processing_time\":{expected_float},")),
            "{line}"
        );
        let escaped = serde_json::to_string(text).expect("string");
        assert!(line.contains(&format!("\"path\":{escaped},")), "{line}");
    }
}

/// The word-at-a-time check finds each byte that needs an escape at every
/// position, and nothing else (bytes 0x20..=0xff but the quote and backslash).
#[test]
fn escapes_are_found_anywhere() {
    for len in 0..24 {
        for at in 0..len {
            for bad in (0u8..0x20).chain([b'"', b'\\']) {
                let mut bytes = vec![b'a'; len];
                bytes[at] = bad;
                assert!(format::needs_escape(&bytes), "{bad:#x} at {at} of {len}");
            }
            for fine in (0x20u8..=0xff).filter(|b| *b != b'"' && *b != b'\\') {
                let mut bytes = vec![b'z'; len];
                bytes[at] = fine;
                assert!(!format::needs_escape(&bytes), "{fine:#x} at {at} of {len}");
            }
        }
    }
}

/// The time cached per second reads as the full formatter writes it, within a
/// second and across seconds, days and years.
#[test]
fn cached_times_match_the_formatter() {
    let start = 1_703_980_799_000u64; // 2023-12-30T23:59:59.000Z
    for ms in (0..200_000_000u64).step_by(86_399_937).chain(0..2_500) {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(start + ms);
        assert_eq!(
            format::time(t),
            crate::observe::rfc3339::millis_bytes(t),
            "{}",
            crate::observe::rfc3339::millis(t)
        );
    }
}

/// Durations written digit by digit read exactly as serde_json writes their
/// `as_secs_f64`: every nanosecond count around the 10 µs switch to the fast
/// path, and a spread of values up to a second and past it.
#[test]
fn durations_read_as_serde_json_writes_their_seconds() {
    let around_switch = 9_000..12_000u64;
    let spread = (0..1_000_000u64).map(|i| i * 1_009 + i % 7);
    let past_a_second = (0..2_000u64).map(|i| 999_000_000 + i * 997_331);
    for nanos in around_switch.chain(spread).chain(past_a_second) {
        let d = Duration::from_nanos(nanos);
        let mut out = Vec::new();
        format::seconds(&mut out, Some(d));
        let expected = serde_json::to_string(&d.as_secs_f64()).expect("float");
        assert_eq!(
            std::str::from_utf8(&out),
            Ok(expected.as_str()),
            "{nanos} ns"
        );
    }
}

/// IPv4 addresses written digit by digit read as `SocketAddr` displays them.
#[test]
fn addresses_read_as_they_display() {
    for a in [
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "10.0.100.9:80",
        "1.22.103.40:8080",
        "[::ffff:1.2.3.4]:1",
    ] {
        let a: SocketAddr = a.parse().expect("address");
        let mut r = record(200, Some(a));
        r.client = a;
        let mut out = Vec::new();
        format::json(&r, &mut out);
        let line = String::from_utf8(out).expect("utf-8");
        assert!(line.contains(&format!("\"client\":\"{a}\",")), "{line}");
        assert!(line.contains(&format!("\"target\":\"{a}\",")), "{line}");
    }
}
