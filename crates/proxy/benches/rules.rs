//! Rule matching cost per request with 10, 100 and 1,000 rules.
//!
//! Each rule has a host and a path condition (`svc<i>.example.com`, `/api/v<i>/*`),
//! the shape most rule sets have. `match_last` asks for the rule with the highest
//! priority number (the last one a linear walk would reach); `no_match` for a host
//! no rule names. `path_only_*` has rules without hosts (`/svc<i>/*`), which the
//! router files under their first path segment instead. (Host-less rules that all
//! share one first segment, or start with a wildcard, are tried in turn: about 7 ns
//! a rule.)
//!
//! `cargo bench -p ballast-proxy --bench rules -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use ballast_config::{Config, RuleConfig};
use ballast_proxy::routing::{RequestView, Router};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, Method};

fn rules(n: u32, with_host: bool) -> Vec<RuleConfig> {
    let mut text = String::from(
        "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\ndefault_action = { type = \"forward\", target_group = \"g\" }\n",
    );
    for i in 1..=n {
        let conditions = if with_host {
            format!("{{ host = \"svc{i}.example.com\" }}, {{ path = \"/api/v{i}/*\" }}")
        } else {
            format!("{{ path = \"/svc{i}/*\" }}")
        };
        text.push_str(&format!(
            "[[listeners.rules]]\npriority = {i}\nconditions = [{conditions}]\naction = {{ type = \"forward\", target_group = \"g\" }}\n"
        ));
    }
    text.push_str("[[target_groups]]\nname = \"g\"\ntargets = []\n");
    match Config::from_toml(&text) {
        Ok(c) => c.listeners[0].rules.clone(),
        Err(e) => panic!("bench config: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let view = |host: &'static str, path: &'static str| RequestView {
        method: &Method::GET,
        host: Some(host),
        path,
        query: None,
        headers: &headers,
        client: [192, 0, 2, 1].into(),
    };
    let mut group = c.benchmark_group("rules");
    for n in [10u32, 100, 1000] {
        let last_host: &'static str = Box::leak(format!("svc{n}.example.com:443").into_boxed_str());
        let last_path: &'static str = Box::leak(format!("/api/v{n}/users/42").into_boxed_str());
        let hosted = Router::new(&rules(n, true));
        let hit = view(last_host, last_path);
        assert_eq!(hosted.route(&hit).map(|m| m.priority), Some(n));
        group.bench_with_input(BenchmarkId::new("match_last", n), &hit, |b, req| {
            b.iter(|| hosted.route(black_box(req)))
        });
        let miss = view("unknown.example.org", "/nothing/here");
        assert_eq!(hosted.route(&miss), None);
        group.bench_with_input(BenchmarkId::new("no_match", n), &miss, |b, req| {
            b.iter(|| hosted.route(black_box(req)))
        });
        let pathed = Router::new(&rules(n, false));
        group.bench_with_input(
            BenchmarkId::new("path_only_match_last", n),
            &hit,
            |b, req| b.iter(|| pathed.route(black_box(req))),
        );
        group.bench_with_input(
            BenchmarkId::new("path_only_no_match", n),
            &miss,
            |b, req| b.iter(|| pathed.route(black_box(req))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
