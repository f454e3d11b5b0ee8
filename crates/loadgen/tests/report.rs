//! The reports of a real run: the JSON document has the documented keys and agrees
//! with the text report; the plot is well-formed SVG.

mod common;

use ballast_loadgen::{measure, plot, report};
use common::{args, start, temp_path, Options};

#[test]
fn json_has_the_documented_keys_and_agrees_with_the_text() {
    let server = start(Options::default());
    let url = server.url("/");
    let s = measure(&args(&[
        "-c",
        "3",
        "--rate",
        "300",
        "-n",
        "150",
        "--threads",
        "1",
        &url,
    ]))
    .expect("run");
    let json: serde_json::Value =
        serde_json::from_str(&report::json(&s).expect("json")).expect("parses");
    for key in [
        "requests",
        "duration_s",
        "rps",
        "bytes",
        "status",
        "errors",
        "latency_ms",
        "late",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    for key in ["connect", "timeout", "reset", "other"] {
        assert!(json["errors"][key].is_u64(), "missing errors.{key}");
    }
    let text = report::text(&s);
    let line = |label: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label} line in\n{text}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    let num = |s: &str| s.trim_end_matches(',').parse::<f64>().expect("number");

    let requests = line("Requests");
    assert_eq!(json["requests"].as_u64(), Some(150));
    assert_eq!(num(&requests[1]), 150.0);
    assert!((num(&requests[3]) - json["duration_s"].as_f64().unwrap_or(-1.0)).abs() < 0.001);
    assert!((num(&requests[6]) - json["rps"].as_f64().unwrap_or(-1.0)).abs() < 0.051);
    assert_eq!(
        num(&line("Body")[1]),
        json["bytes"].as_f64().unwrap_or(-1.0)
    );
    assert_eq!(line("Status")[1..], ["200:".to_owned(), "150".to_owned()]);
    assert_eq!(json["status"]["200"].as_u64(), Some(150));
    assert_eq!(num(&line("Late")[1]), json["late"].as_f64().unwrap_or(-1.0));
    let errors = line("Errors");
    for (i, key) in ["connect", "timeout", "reset", "read", "other"]
        .iter()
        .enumerate()
    {
        assert_eq!(errors[1 + 2 * i], *key);
        assert_eq!(
            num(&errors[2 + 2 * i]),
            json["errors"][key].as_f64().unwrap_or(-1.0)
        );
    }
    let latency = line("(ms)");
    for (i, key) in ["p50", "p90", "p99", "p999", "p9999", "max"]
        .iter()
        .enumerate()
    {
        let from_json = json["latency_ms"][key].as_f64().unwrap_or(-1.0);
        assert!((num(&latency[1 + i]) - from_json).abs() < 0.0006, "{key}");
    }
}

#[test]
fn plot_is_well_formed_svg_with_both_panels() {
    let server = start(Options::default());
    let url = server.url("/");
    let s = measure(&args(&["-c", "2", "-d", "1500ms", "--threads", "1", &url])).expect("run");
    let path = temp_path("plot.svg");
    plot::write(&s, &path).expect("plot");
    let svg = std::fs::read_to_string(&path).expect("read plot");
    let _ = std::fs::remove_file(&path);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    for needle in [
        "Latency per second",
        "Throughput per second",
        "time (s)",
        "requests/s",
        "p50",
        "p99",
        "max",
        "Latency by percentile",
        "percentile",
        "90%",
    ] {
        assert!(
            texts.iter().any(|t| t.contains(needle)),
            "no {needle:?} in the SVG"
        );
    }
    let lines = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "polyline")
        .count();
    assert!(lines >= 6, "{lines} series lines");
}

/// The log axis labels 1-2-5 values, never two at almost the same height.
#[test]
fn the_latency_axis_labels_are_few_and_apart() {
    let server = start(Options::default());
    let s = measure(&args(&[
        "-c",
        "2",
        "-n",
        "300",
        "--threads",
        "1",
        &server.url("/"),
    ]))
    .expect("run");
    let path = temp_path("axis.svg");
    plot::write(&s, &path).expect("plot");
    let svg = std::fs::read_to_string(&path).expect("read plot");
    let _ = std::fs::remove_file(&path);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    // The y labels of the first panel: right-aligned texts left of its axis.
    let mut ys: Vec<(f64, String)> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "text" && n.attribute("text-anchor") == Some("end"))
        .filter_map(|n| {
            let y: f64 = n.attribute("y")?.parse().ok()?;
            (y < 380.0).then(|| (y, n.text().unwrap_or_default().trim().to_owned()))
        })
        .collect();
    ys.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(ys.len() >= 2, "{ys:?}");
    for pair in ys.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= 16.0, "labels overlap: {ys:?}");
    }
    for (_, label) in &ys {
        let first = label.trim_start_matches(['0', '.']).chars().next();
        assert!(matches!(first, Some('1' | '2' | '5')), "not 1-2-5: {ys:?}");
    }
}

/// One connection and one thread are said in the singular.
#[test]
fn the_report_says_1_connection_and_1_thread() {
    let server = start(Options::default());
    let s = measure(&args(&[
        "-c",
        "1",
        "-n",
        "20",
        "--threads",
        "1",
        &server.url("/"),
    ]))
    .expect("run");
    let text = report::text(&s);
    assert!(
        text.contains("1 connection, HTTP/1.1, 1 thread, closed loop, 20 requests"),
        "{text}"
    );
    let s = measure(&args(&[
        "-c",
        "2",
        "-n",
        "1",
        "--threads",
        "2",
        &server.url("/"),
    ]))
    .expect("run");
    assert!(
        s.description
            .starts_with("2 connections, HTTP/1.1, 2 threads, closed loop, 1 request"),
        "{}",
        s.description
    );
}
