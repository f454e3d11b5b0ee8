//! The cost of the HTTP hygiene checks per request, next to the cost of parsing
//! the head they look at (httparse, as ballast's own HTTP/1.1 server does).
//!
//! `classify_*` is the desync classification alone (AWS's `http_desync_guardian`
//! fed the fields httparse read), `shortcut_*` the same verdict as ballast's own
//! server gets it for a head it takes (`desync::classify_taken`, which runs the
//! classifier only when a name resembles a framing field), `check_*` everything
//! `hygiene::check` does on a
//! request that passes (the host, the path, the mode), `parse_*` httparse on the
//! same head. `curl` is a 3-field head (78 bytes), `browser` a 12-field one
//! (about 800 bytes).
//!
//! `cargo bench -p ballast-proxy --bench hygiene -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use ballast_config::DesyncMitigationMode;
use ballast_proxy::hygiene::{self, desync, Policy, Seen};
use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderName, HeaderValue, Request, Version};

const CURL: &str = "GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

const BROWSER: &str = "GET /static/app/main.3f9a2c.js?v=12 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: */*\r\n\
Accept-Language: en-GB,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/products/shoes?size=42&colour=blue\r\n\
Connection: keep-alive\r\n\
Cookie: session=6b1f0e8c2d7a4e5f9a3b1c0d8e7f6a5b; theme=dark; consent=1\r\n\
Sec-Fetch-Dest: script\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Site: same-origin\r\n\
Priority: u=1\r\n\r\n";

fn bench(c: &mut Criterion) {
    for (name, raw) in [("curl", CURL), ("browser", BROWSER)] {
        c.bench_function(&format!("parse_{name}"), |b| {
            b.iter(|| {
                let mut slots = [httparse::EMPTY_HEADER; 100];
                let mut req = httparse::Request::new(&mut slots);
                black_box(req.parse(black_box(raw.as_bytes())).is_ok())
            })
        });
        let mut slots = [httparse::EMPTY_HEADER; 100];
        let mut parsed = httparse::Request::new(&mut slots);
        assert!(parsed.parse(raw.as_bytes()).is_ok());
        c.bench_function(&format!("classify_{name}"), |b| {
            b.iter(|| {
                let v = desync::classify(
                    parsed.method.unwrap_or_default().as_bytes(),
                    Version::HTTP_11,
                    parsed.path.unwrap_or_default().as_bytes(),
                    parsed.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
                );
                black_box(v)
            })
        });
        c.bench_function(&format!("shortcut_{name}"), |b| {
            b.iter(|| {
                let v = desync::classify_taken(
                    parsed.method.unwrap_or_default().as_bytes(),
                    Version::HTTP_11,
                    parsed.path.unwrap_or_default().as_bytes(),
                    parsed.headers.iter().map(|h| (h.name.as_bytes(), h.value)),
                );
                black_box(v)
            })
        });
        let mut req = Request::get(parsed.path.unwrap_or_default())
            .body(())
            .expect("request");
        for h in parsed.headers.iter() {
            req.headers_mut().append(
                HeaderName::from_bytes(h.name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(h.value).expect("value"),
            );
        }
        let policy = Policy {
            mode: DesyncMitigationMode::Defensive,
            drop_invalid_header_fields: false,
        };
        let seen = Seen::Raw(desync::Verdict::COMPLIANT);
        c.bench_function(&format!("check_{name}"), |b| {
            b.iter(|| {
                black_box(
                    hygiene::check(black_box(&mut req), policy, seen)
                        .outcome
                        .is_ok(),
                )
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
