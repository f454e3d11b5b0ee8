//! Listener rules through a running ballast: each condition kind, priority order,
//! the default action, weighted forwards and stickiness, redirects (and attempts to
//! turn them into open redirects), fixed responses, and path tricks that try to
//! dodge a rule.

use std::collections::HashMap;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ballast_testkit::{backend, group_toml, BackendHandle, Ballast, Client, Reply, Setup};

/// A ballast whose default group `web` has one backend `web0`, with extra groups
/// (each one backend named after it) and `rules` as `[[listeners.rules]]` TOML.
struct Rig {
    ballast: Ballast,
    client: Client,
    _backends: Vec<BackendHandle>,
}

async fn rig(groups: &[&str], rules: &str) -> Rig {
    let web = backend("web0").await;
    let mut setup = Setup::new(std::slice::from_ref(&web));
    setup.listener_extra = rules.to_string();
    let mut backends = vec![web];
    for g in groups {
        let b = backend(g).await;
        setup
            .extra
            .push_str(&group_toml(g, std::slice::from_ref(&b)));
        backends.push(b);
    }
    Rig {
        ballast: Ballast::start(&setup).await,
        client: Client::http1(),
        _backends: backends,
    }
}

impl Rig {
    async fn send(
        &self,
        method: Method,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(self.ballast.url(path))
            .header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::new())).expect("request");
        self.client.send(req).await.expect("response")
    }

    async fn get(&self, host: &str, path: &str) -> Reply {
        self.send(Method::GET, host, path, &[]).await
    }

    /// Which backend answered (`web0` for the default action).
    async fn who(&self, host: &str, path: &str) -> String {
        let r = self.get(host, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.backend()
    }
}

fn rule(priority: u32, conditions: &str, action: &str) -> String {
    format!("[[listeners.rules]]\npriority = {priority}\nconditions = [{conditions}]\naction = {action}\n")
}

fn forward(group: &str) -> String {
    format!("{{ type = \"forward\", target_group = \"{group}\" }}")
}

#[tokio::test]
async fn host_exact_wildcard_case_and_port() {
    let rules = [
        rule(1, r#"{ host = "api.example.com" }"#, &forward("api")),
        rule(2, r#"{ host = "*.example.com" }"#, &forward("wild")),
    ]
    .concat();
    let rig = rig(&["api", "wild"], &rules).await;
    assert_eq!(rig.who("api.example.com", "/").await, "api");
    assert_eq!(rig.who("API.Example.COM:8080", "/").await, "api");
    assert_eq!(rig.who("www.example.com", "/").await, "wild");
    assert_eq!(rig.who("a.b.example.com", "/").await, "wild");
    assert_eq!(rig.who("example.com", "/").await, "web0");
    assert_eq!(rig.who("api.example.org", "/").await, "web0");
    assert_eq!(rig.who("api.example.com.evil.org", "/").await, "web0");
}

#[tokio::test]
async fn path_globs_and_the_original_path_is_forwarded() {
    let rules = [
        rule(1, r#"{ path = ["/api/v?/*", "*.json"] }"#, &forward("api")),
        rule(2, r#"{ path = "/internal/*" }"#, &forward("internal")),
    ]
    .concat();
    let rig = rig(&["api", "internal"], &rules).await;
    assert_eq!(rig.who("h", "/api/v1/users").await, "api");
    assert_eq!(rig.who("h", "/data/x.json").await, "api");
    assert_eq!(rig.who("h", "/api/v10/users").await, "web0");
    assert_eq!(
        rig.who("h", "/API/v1/users").await,
        "web0",
        "paths are case-sensitive"
    );
    // Matched on the normalised path, forwarded exactly as sent.
    let r = rig.get("h", "/x/../internal/a%2Fb?q=1").await;
    assert_eq!(r.backend(), "internal");
    assert_eq!(r.json()["path"], "/x/../internal/a%2Fb");
    assert_eq!(r.json()["query"], "q=1");
}

#[tokio::test]
async fn path_tricks_cannot_dodge_a_rule() {
    let rules = rule(
        1,
        r#"{ path = ["/admin", "/admin/*"] }"#,
        r#"{ type = "fixed_response", status = 403, body = "forbidden" }"#,
    );
    let rig = rig(&[], &rules).await;
    for p in [
        "/admin",
        "/admin/users",
        "/a/../admin",
        "/public/../admin/x",
        "//admin",
        "/%61dmin",
        "/%2e%2e/admin",
        "/x/%2E%2E/admin/",
        "/%2Fadmin",
        "/x%2F..%2Fadmin",
        "/static/..;/admin",
        "/./admin",
        "/admin/./x/..",
    ] {
        let r = rig.get("h", p).await;
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (403, "forbidden"),
            "{p}"
        );
    }
    for p in ["/administrator", "/Admin", "/%252e%252e/admin", "/public"] {
        assert_eq!(rig.who("h", p).await, "web0", "{p}");
    }
}

#[tokio::test]
async fn header_method_and_query() {
    let rules = [
        rule(
            1,
            r#"{ header = { name = "X-Canary", values = ["yes", "tr*"] } }"#,
            &forward("hdr"),
        ),
        rule(2, r#"{ method = ["DELETE", "PATCH"] }"#, &forward("mth")),
        rule(
            3,
            r#"{ query = [{ key = "v", value = "2*" }, { value = "beta" }] }"#,
            &forward("qry"),
        ),
    ]
    .concat();
    let rig = rig(&["hdr", "mth", "qry"], &rules).await;
    let with = |v: &'static str| [("x-canary", v)];
    assert_eq!(
        rig.send(Method::GET, "h", "/", &with("YES"))
            .await
            .backend(),
        "hdr"
    );
    assert_eq!(
        rig.send(Method::GET, "h", "/", &with("true"))
            .await
            .backend(),
        "hdr"
    );
    assert_eq!(
        rig.send(Method::GET, "h", "/", &with("no")).await.backend(),
        "web0"
    );
    assert_eq!(
        rig.send(Method::DELETE, "h", "/", &[]).await.backend(),
        "mth"
    );
    assert_eq!(
        rig.send(Method::PATCH, "h", "/", &[]).await.backend(),
        "mth"
    );
    assert_eq!(
        rig.send(Method::POST, "h", "/", &[]).await.backend(),
        "web0"
    );
    assert_eq!(rig.who("h", "/?a=1&v=2.1").await, "qry");
    assert_eq!(rig.who("h", "/?x=beta").await, "qry");
    assert_eq!(
        rig.who("h", "/?x=b%65ta").await,
        "qry",
        "decoded before matching"
    );
    assert_eq!(rig.who("h", "/?v=1").await, "web0");
    assert_eq!(rig.who("h", "/?beta=x").await, "web0");
    assert_eq!(rig.who("h", "/").await, "web0");
}

#[tokio::test]
async fn source_ip() {
    let rules = [
        rule(
            1,
            r#"{ source_ip = ["10.0.0.0/8", "2001:db8::/32"] }"#,
            &forward("far"),
        ),
        rule(2, r#"{ source_ip = "127.0.0.0/8" }"#, &forward("local")),
    ]
    .concat();
    let rig = rig(&["far", "local"], &rules).await;
    assert_eq!(rig.who("h", "/").await, "local");
    // X-Forwarded-For is a claim, not the source address.
    let r = rig
        .send(Method::GET, "h", "/", &[("x-forwarded-for", "10.1.1.1")])
        .await;
    assert_eq!(r.backend(), "local");
}

#[tokio::test]
async fn lowest_priority_wins_whatever_the_file_order() {
    let rules = [
        rule(30, r#"{ path = "/x/*" }"#, &forward("thirty")),
        rule(
            10,
            r#"{ host = "a.test" }, { path = "/x/y" }"#,
            &forward("ten"),
        ),
        rule(20, r#"{ host = "a.test" }"#, &forward("twenty")),
    ]
    .concat();
    let rig = rig(&["ten", "twenty", "thirty"], &rules).await;
    assert_eq!(rig.who("a.test", "/x/y").await, "ten");
    assert_eq!(rig.who("a.test", "/x/z").await, "twenty");
    assert_eq!(rig.who("b.test", "/x/z").await, "thirty");
    assert_eq!(rig.who("b.test", "/y").await, "web0");
}

#[tokio::test]
async fn default_action_can_be_a_fixed_response() {
    let web = backend("web0").await;
    let mut setup = Setup::new(std::slice::from_ref(&web));
    setup.listener_extra = rule(1, r#"{ path = "/app/*" }"#, &forward("web"));
    let text = setup.toml().replacen(
        "default_action = { type = \"forward\", target_group = \"web\" }",
        "default_action = { type = \"fixed_response\", status = 404, content_type = \"application/json\", body = '{\"error\":\"no route\"}' }",
        1,
    );
    let config = ballast_config::Config::from_toml(&text).expect("valid");
    let ballast = Ballast::start_config(config).await;
    let client = Client::http1();
    let r = client.get(&ballast.url("/other")).await.expect("response");
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.json()["error"], "no route");
    assert_eq!(web.requests(), 0, "no target involved");
    let r = client.get(&ballast.url("/app/1")).await.expect("response");
    assert_eq!(r.backend(), "web0");
}

#[tokio::test]
async fn fixed_response_defaults_to_text_plain() {
    let rules = rule(
        1,
        r#"{ method = ["DELETE"] }"#,
        r#"{ type = "fixed_response", status = 503, body = "maintenance" }"#,
    );
    let rig = rig(&[], &rules).await;
    let r = rig.send(Method::DELETE, "h", "/x", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["content-type"], "text/plain");
    assert_eq!(r.text(), "maintenance");
    assert!(
        r.headers.get("retry-after").is_none(),
        "the operator's response, as written"
    );
}

/// Requests to the two groups `a` (weight 3) and `b` (weight 1).
async fn weighted(sticky: bool) -> Rig {
    let stickiness = if sticky {
        r#", stickiness = { enabled = true, duration = "1h" }"#
    } else {
        ""
    };
    let action = format!(
        r#"{{ type = "forward", target_groups = [{{ name = "a", weight = 3 }}, {{ name = "b", weight = 1 }}, {{ name = "off", weight = 0 }}]{stickiness} }}"#
    );
    rig(&["a", "b", "off"], &rule(1, r#"{ path = "/*" }"#, &action)).await
}

#[tokio::test]
async fn weighted_split_follows_weights() {
    let rig = weighted(false).await;
    let n = 2000;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..n {
        let r = rig.get("h", "/").await;
        assert!(
            r.headers.get("set-cookie").is_none(),
            "no stickiness, no cookie"
        );
        *counts.entry(r.backend()).or_default() += 1;
    }
    let share = counts.get("a").copied().unwrap_or(0) as f64 / n as f64;
    // Binomial sd at p = 0.75, n = 2000 is about 1 point: 5 points is far outside chance.
    assert!(
        (share - 0.75).abs() < 0.05,
        "a share {share:.3}: {counts:?}"
    );
    assert_eq!(
        counts.get("off"),
        None,
        "weight 0 takes nothing: {counts:?}"
    );
    assert_eq!(counts.get("web0"), None);
}

#[tokio::test]
async fn stickiness_keeps_a_client_on_its_group() {
    let rig = weighted(true).await;
    let r = rig.get("h", "/").await;
    let cookie = r.headers["set-cookie"].to_str().expect("ascii").to_string();
    let group = r.backend();
    assert_eq!(
        cookie,
        format!("ballast-tg={group}; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax")
    );
    for want in ["a", "b"] {
        let jar = format!("other=1; ballast-tg={want}");
        for _ in 0..30 {
            let r = rig
                .send(Method::GET, "h", "/", &[("cookie", jar.as_str())])
                .await;
            assert_eq!(r.backend(), want);
            assert!(r.headers["set-cookie"]
                .to_str()
                .expect("ascii")
                .starts_with(&format!("ballast-tg={want};")));
        }
    }
    // A cookie for a group this action does not have, or one at weight 0, is ignored.
    for stale in ["ballast-tg=web", "ballast-tg=off", "ballast-tg="] {
        let mut seen = HashMap::new();
        for _ in 0..40 {
            let r = rig.send(Method::GET, "h", "/", &[("cookie", stale)]).await;
            *seen.entry(r.backend()).or_insert(0) += 1;
        }
        assert!(
            seen.keys().all(|k| k == "a" || k == "b"),
            "{stale}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn redirect_templates() {
    let rules = [
        rule(1, r#"{ path = "/old/*" }"#, r##"{ type = "redirect", status = 301, location = "https://#{host}/new#{path}?#{query}" }"##),
        rule(2, r#"{ path = "/rel/*" }"#, r##"{ type = "redirect", status = 302, location = "/#{path}" }"##),
        rule(3, r#"{ path = "/port/*" }"#, r##"{ type = "redirect", status = 308, location = "#{protocol}://#{host}:#{port}/p" }"##),
        rule(4, r#"{ path = "/fixed/*" }"#, r##"{ type = "redirect", status = 307, location = "https://example.net/landing" }"##),
    ]
    .concat();
    let rig = rig(&[], &rules).await;
    let loc = |r: &Reply| r.headers["location"].to_str().expect("ascii").to_string();

    let r = rig
        .get("Shop.Example.com:8080", "/old/item?id=7&x=%20")
        .await;
    assert_eq!(r.status, 301);
    assert_eq!(loc(&r), "https://shop.example.com/new/old/item?id=7&x=%20");
    let r = rig.get("h", "/old/x").await;
    assert_eq!(
        loc(&r),
        "https://h/new/old/x",
        "an empty query takes its `?` along"
    );

    let r = rig.get("h", "/rel/a/b").await;
    assert_eq!((r.status.as_u16(), loc(&r)), (302, "/rel/a/b".to_string()));

    let r = rig.get("h", "/port/x").await;
    assert_eq!(
        loc(&r),
        format!("http://h:{}/p", rig.ballast.addr.port()),
        "the listener's port, not the client's"
    );

    let r = rig.get("evil.com", "/fixed/x").await;
    assert_eq!(
        (r.status.as_u16(), loc(&r)),
        (307, "https://example.net/landing".to_string())
    );
}

#[tokio::test]
async fn redirects_cannot_be_turned_into_open_redirects() {
    let rules = [
        rule(1, r#"{ host = "rel.test" }"#, r##"{ type = "redirect", status = 302, location = "/#{path}" }"##),
        rule(2, r#"{ host = "*" }"#, r##"{ type = "redirect", status = 302, location = "https://#{host}/x#{path}?#{query}" }"##),
    ]
    .concat();
    let rig = rig(&[], &rules).await;
    let loc = |r: &Reply| r.headers["location"].to_str().expect("ascii").to_string();
    // A path that would make the relative redirect protocol-relative (`//evil.com`).
    for (p, want) in [
        ("/go//evil.com", "/go/evil.com"),
        ("/go/..//evil.com", "/evil.com"),
        ("/go/../%2F%2Fevil.com", "/evil.com"),
        ("/go/../%5C%5Cevil.com", "/evil.com"),
        ("/go/%2e%2e/%2e%2e//evil.com/", "/evil.com/"),
    ] {
        let r = rig.get("rel.test", p).await;
        assert_eq!((r.status.as_u16(), loc(&r)), (302, want.to_string()), "{p}");
    }
    // An encoded CR/LF in the path is refused before any rule (`invalid_path`):
    // no header can be injected.
    let r = rig.get("rel.test", "/go%0D%0ASet-Cookie:%20owned=1").await;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (400, "400 Bad Request: invalid_path\n".to_string())
    );
    assert!(r.headers.get("location").is_none());
    assert!(r.headers.get("set-cookie").is_none());
    let r = rig.get("a.com", "/q?u=%0d%0a").await;
    assert_eq!(loc(&r), "https://a.com/x/q?u=%0d%0a");
    // A Host that tries to carry a path, user info or another authority is refused.
    for host in ["evil.com/x", "a.com@evil.com", "a.com\\@evil.com", "a b"] {
        let r = rig.get(host, "/").await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (400, "400 Bad Request: invalid_host\n".to_string()),
            "{host}"
        );
        assert!(r.headers.get("location").is_none());
    }
    // A raw CR in the request line never gets as far as a rule.
    let mut s = TcpStream::connect(rig.ballast.addr).await.expect("connect");
    s.write_all(b"GET /go\r\nLocation: //evil.com HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(crate::SOON, s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(!text.contains("evil.com"), "{text}");
    assert!(
        text.starts_with("HTTP/1.1 400") || text.is_empty(),
        "{text}"
    );
}

#[tokio::test]
async fn source_ip_over_ipv6() {
    let web = backend("web0").await;
    let (v6, v4) = (backend("v6").await, backend("v4").await);
    let mut setup = Setup::new(std::slice::from_ref(&web));
    setup.bind = "[::1]:0".to_string();
    setup.listener_extra = [
        rule(
            1,
            r#"{ source_ip = ["2001:db8::/32", "::1/128"] }"#,
            &forward("v6"),
        ),
        rule(2, r#"{ source_ip = "127.0.0.0/8" }"#, &forward("v4")),
    ]
    .concat();
    setup.extra =
        group_toml("v6", std::slice::from_ref(&v6)) + &group_toml("v4", std::slice::from_ref(&v4));
    let ballast = Ballast::start(&setup).await;
    assert!(ballast.addr.is_ipv6(), "{}", ballast.addr);
    let r = Client::http1()
        .get(&ballast.url("/"))
        .await
        .expect("request over ::1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.backend(),
        "v6",
        "a client on ::1 matches ::1/128, not 127.0.0.0/8"
    );
    assert_eq!(r.json()["headers"]["x-forwarded-for"], "::1");
}
