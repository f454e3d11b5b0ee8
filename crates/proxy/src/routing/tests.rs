//! The router: priority order across the host index and the host-less list, and
//! each condition kind.

use super::*;
use ballast_config::Config;

/// The rules of a one-listener config whose rules are given as TOML.
fn rules(toml_rules: &str) -> Vec<RuleConfig> {
    let text = format!(
        "[[listeners]]\nname = \"l\"\nbind = \"127.0.0.1:0\"\ndefault_action = {{ type = \"forward\", target_group = \"g\" }}\n{toml_rules}\n[[target_groups]]\nname = \"g\"\ntargets = []\n"
    );
    let c = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    c.listeners[0].rules.clone()
}

fn rule(priority: u32, conditions: &str) -> String {
    format!("[[listeners.rules]]\npriority = {priority}\nconditions = [{conditions}]\naction = {{ type = \"fixed_response\", status = 200 }}\n")
}

struct Req {
    method: Method,
    host: Option<String>,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    client: IpAddr,
}

fn req(host: &str, path_and_query: &str) -> Req {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path_and_query.to_string(), None),
    };
    Req {
        method: Method::GET,
        host: Some(host.to_string()),
        path,
        query,
        headers: HeaderMap::new(),
        client: [192, 0, 2, 1].into(),
    }
}

impl Req {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            method: &self.method,
            host: self.host.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            client: self.client,
        }
    }
}

fn priority(router: &Router, r: &Req) -> Option<u32> {
    router.route(&r.view()).map(|m| m.priority)
}

#[test]
fn lowest_priority_wins_across_index_and_rest() {
    let router = Router::new(&rules(
        &[
            rule(30, r#"{ host = "a.example.com" }"#),
            rule(20, r#"{ path = "/x/*" }"#),
            rule(10, r#"{ host = "*.example.com" }, { path = "/x/y" }"#),
            rule(40, r#"{ host = ["b.example.com", "a.example.com"] }"#),
        ]
        .concat(),
    ));
    assert_eq!(priority(&router, &req("a.example.com", "/x/y")), Some(10));
    assert_eq!(priority(&router, &req("a.example.com", "/x/z")), Some(20));
    assert_eq!(priority(&router, &req("a.example.com", "/")), Some(30));
    assert_eq!(priority(&router, &req("b.example.com", "/")), Some(40));
    assert_eq!(priority(&router, &req("c.example.com", "/")), None);
    assert_eq!(
        priority(&router, &req("example.com", "/x/y")),
        Some(20),
        "*. needs a label"
    );
    let m = router
        .route(&req("a.example.com", "/").view())
        .expect("match");
    assert_eq!(m.index, 2, "position in priority order");
}

#[test]
fn host_is_case_insensitive_without_port_or_trailing_dot() {
    let router = Router::new(&rules(&rule(1, r#"{ host = "Api.Example.com" }"#)));
    for h in [
        "api.example.com",
        "API.EXAMPLE.COM:8443",
        "api.example.com.",
    ] {
        assert_eq!(priority(&router, &req(h, "/")), Some(1), "{h}");
    }
    assert_eq!(priority(&router, &req("api.example.co", "/")), None);
    let mut no_host = req("x", "/");
    no_host.host = None;
    assert_eq!(priority(&router, &no_host), None);
}

#[test]
fn wildcards_anywhere_in_a_host_still_match() {
    let router = Router::new(&rules(&rule(1, r#"{ host = "api-?.ex*.com" }"#)));
    assert_eq!(priority(&router, &req("api-1.example.com", "/")), Some(1));
    assert_eq!(priority(&router, &req("api-12.example.com", "/")), None);
    let deep = Router::new(&rules(&rule(1, r#"{ host = "*.example.com" }"#)));
    assert_eq!(priority(&deep, &req("a.b.c.example.com", "/")), Some(1));
}

#[test]
fn path_is_matched_normalised() {
    let router = Router::new(&rules(&rule(1, r#"{ path = ["/admin", "/admin/*"] }"#)));
    for p in [
        "/admin",
        "/a/../admin",
        "/%61dmin/x",
        "//admin",
        "/x/%2e%2e/admin",
        "/static/..;/admin",
    ] {
        assert_eq!(priority(&router, &req("h", p)), Some(1), "{p}");
    }
    assert_eq!(
        priority(&router, &req("h", "/Admin")),
        None,
        "paths are case-sensitive"
    );
    assert_eq!(priority(&router, &req("h", "/administrator")), None);
}

#[test]
fn header_method_query_and_source_ip() {
    let router = Router::new(&rules(
        &[
            rule(
                1,
                r#"{ header = { name = "X-Env", values = ["dev*", "qa"] } }"#,
            ),
            rule(2, r#"{ method = ["DELETE", "PUT"] }"#),
            rule(
                3,
                r#"{ query = [{ key = "debug", value = "t*" }, { value = "magic" }] }"#,
            ),
            rule(4, r#"{ source_ip = ["10.0.0.0/8", "2001:db8::/32"] }"#),
        ]
        .concat(),
    ));
    let mut r = req("h", "/");
    r.headers.insert("x-env", "Develop".parse().expect("value"));
    assert_eq!(priority(&router, &r), Some(1));
    r.headers.insert("x-env", "prod".parse().expect("value"));
    r.headers.append("x-env", "QA".parse().expect("value"));
    assert_eq!(
        priority(&router, &r),
        Some(1),
        "any value of a repeated header"
    );

    let mut r = req("h", "/");
    r.method = Method::PUT;
    assert_eq!(priority(&router, &r), Some(2));

    for q in [
        "debug=true",
        "a=1&DEBUG=T",
        "x=magic",
        "x=%6dagic",
        "debug=t+x",
    ] {
        assert_eq!(
            priority(&router, &req("h", &format!("/?{q}"))),
            Some(3),
            "{q}"
        );
    }
    for q in ["debug=false", "debug", "magic=x", ""] {
        assert_eq!(priority(&router, &req("h", &format!("/?{q}"))), None, "{q}");
    }

    let mut r = req("h", "/");
    for (ip, want) in [
        ("10.2.3.4", Some(4)),
        ("11.0.0.1", None),
        ("2001:db8::5", Some(4)),
        ("::ffff:10.0.0.1", Some(4)),
        ("2001:db9::1", None),
    ] {
        r.client = ip.parse().expect("ip");
        assert_eq!(priority(&router, &r), want, "{ip}");
    }
}

#[test]
fn all_conditions_must_hold() {
    let router = Router::new(&rules(&rule(
        5,
        r#"{ host = "a.com" }, { path = "/p/*" }, { method = ["POST"] }"#,
    )));
    let mut r = req("a.com", "/p/1");
    assert_eq!(priority(&router, &r), None, "GET is not POST");
    r.method = Method::POST;
    assert_eq!(priority(&router, &r), Some(5));
    r.path = "/q/1".into();
    assert_eq!(priority(&router, &r), None);
}

#[test]
fn many_rules_index_by_host() {
    let text: String = (1..=1000)
        .map(|i| {
            rule(
                i,
                &format!(r#"{{ host = "svc{i}.example.com" }}, {{ path = "/api/v{i}/*" }}"#),
            )
        })
        .collect();
    let router = Router::new(&rules(&text));
    assert_eq!(router.len(), 1000);
    assert_eq!(router.rest.len(), 0);
    assert_eq!(
        priority(&router, &req("svc997.example.com", "/api/v997/x")),
        Some(997)
    );
    assert_eq!(
        priority(&router, &req("svc997.example.com", "/api/v996/x")),
        None
    );
}

#[test]
fn host_less_rules_index_by_first_path_segment() {
    let text: String = (1..=300)
        .map(|i| rule(i, &format!(r#"{{ path = ["/api{i}/*", "/exact{i}"] }}"#)))
        .chain([
            rule(400, r#"{ path = "/api7*" }"#),
            rule(401, r#"{ path = "*.json" }"#),
            rule(402, r#"{ path = "/a?i7/x" }"#),
        ])
        .collect();
    let router = Router::new(&rules(&text));
    assert_eq!(
        router.rest.len(),
        3,
        "only patterns without a literal first segment"
    );
    assert_eq!(priority(&router, &req("h", "/api7/x")), Some(7));
    assert_eq!(priority(&router, &req("h", "/exact300")), Some(300));
    assert_eq!(
        priority(&router, &req("h", "/x/../api9/y")),
        Some(9),
        "normalised first"
    );
    assert_eq!(priority(&router, &req("h", "/api77")), Some(400));
    assert_eq!(priority(&router, &req("h", "/api7")), Some(400));
    assert_eq!(priority(&router, &req("h", "/api5/x.json")), Some(5));
    assert_eq!(priority(&router, &req("h", "/other/x.json")), Some(401));
    assert_eq!(priority(&router, &req("h", "/abi7/x")), Some(402));
    assert_eq!(priority(&router, &req("h", "/exact301")), None);
    assert_eq!(first_segment(b"/"), b"");
    assert_eq!(first_segment(b"/a"), b"a");
}

#[test]
fn host_name_strips_port() {
    assert_eq!(host_name("a.com:80"), "a.com");
    assert_eq!(host_name("[::1]:80"), "[::1]");
    assert_eq!(host_name("a.com"), "a.com");
    let mut buf = [0; MAX_HOST];
    assert_eq!(host_key("A.Com.:1", &mut buf), Some("a.com"));
    assert_eq!(host_key(&"a".repeat(300), &mut buf), None);
}
