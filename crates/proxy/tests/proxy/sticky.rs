//! Sticky sessions to a target (`stickiness` on a target group): a client with
//! ballast's cookie stays on its target; a cookie ballast did not issue, for this
//! group and key and still in date, is ignored and replaced; a target that goes
//! away moves its clients once; the key survives a restart and can be shared.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ballast_config::resilience::{Stickiness, StickinessKind};
use ballast_config::Config;
use ballast_proxy::{HealthState, Sticky, StickyKey};
use ballast_testkit::pki::{Ca, TempDir};
use ballast_testkit::tls::{HttpsConn, TlsClient};
use ballast_testkit::ws::tokio_tungstenite::connect_async;
use ballast_testkit::ws::tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use ballast_testkit::ws::WsBackend;
use ballast_testkit::{backends, eventually, BackendHandle, Ballast, Client, Reply, Setup};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::SOON;

const LB: &str = "stickiness = { type = \"lb_cookie\", duration = \"1h\" }\n";
const APP: &str =
    "stickiness = { type = \"app_cookie\", cookie_name = \"SESSIONID\", duration = \"1h\" }\n";
const KEY: &str = "0123456789abcdef0123456789abcdef-test-key";
const NAME: &str = "ballast-target-web";

/// A config for `bs` with `group` lines, its key in `dir` (a key file when
/// `key_file`, else the state directory's own).
fn config(bs: &[BackendHandle], group: &str, dir: &TempDir, key_file: bool) -> Config {
    let mut setup = Setup::new(bs);
    setup.group_extra = group.into();
    let mut c = setup.config();
    c.state.dir = dir.path.clone();
    if key_file {
        c.server.stickiness_key_file = Some(dir.write("sticky.key", KEY));
    }
    c
}

async fn start(config: Config) -> Ballast {
    let ballast = Ballast::start_config(config).await;
    ballast.all_healthy().await;
    ballast
}

/// `GET /path`, with `cookies` as the `Cookie` field when given.
async fn get(client: &Client, ballast: &Ballast, path: &str, cookies: Option<&str>) -> Reply {
    let mut req = Request::get(ballast.url(path));
    if let Some(c) = cookies {
        req = req.header("cookie", c);
    }
    let reply = client
        .send(req.body(Full::<Bytes>::default()).expect("request"))
        .await
        .expect("response");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply
}

/// The `Set-Cookie` line for `name`, if the response has one.
fn set_cookie(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The `name=value` pair of ballast's cookie in a response.
fn pair(reply: &Reply) -> String {
    let line = set_cookie(reply, NAME).expect("ballast's cookie is set");
    line.split(';').next().expect("pair").to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `n` requests with `cookie`; the backends that served them, and how many
/// responses set ballast's cookie.
async fn spread(
    client: &Client,
    b: &Ballast,
    cookie: &str,
    n: usize,
) -> (HashMap<String, usize>, usize) {
    let mut served: HashMap<String, usize> = HashMap::new();
    let mut issued = 0;
    for _ in 0..n {
        let r = get(client, b, "/", Some(cookie)).await;
        *served.entry(r.backend()).or_default() += 1;
        issued += usize::from(set_cookie(&r, NAME).is_some());
    }
    (served, issued)
}

#[tokio::test]
async fn an_lb_cookie_keeps_each_client_on_its_target() {
    let bs = backends(3).await;
    let dir = TempDir::new("sticky-lb");
    let b = start(config(&bs, LB, &dir, true)).await;
    let client = Client::http1();
    // Three clients without a cookie are balanced (round robin) and each gets one.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let r = get(&client, &b, "/", None).await;
        let line = set_cookie(&r, NAME).expect("cookie issued");
        assert!(
            line.ends_with("; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax"),
            "{line}"
        );
        assert!(!line.contains("127.0.0.1"), "{line}");
        clients.push((pair(&r), r.backend()));
    }
    let mut first: Vec<_> = clients.iter().map(|(_, b)| b.clone()).collect();
    first.sort();
    assert_eq!(first, ["b0", "b1", "b2"]);
    // 100 requests each, interleaved: every one on its own target, no new cookie.
    for _ in 0..100 {
        for (cookie, backend) in &clients {
            let r = get(&client, &b, "/", Some(&format!("a=1; {cookie}; z=2"))).await;
            assert_eq!(&r.backend(), backend);
            assert_eq!(set_cookie(&r, NAME), None, "a fresh cookie is not reissued");
        }
    }
}

#[tokio::test]
async fn an_app_cookie_starts_with_the_applications_session() {
    let bs = backends(3).await;
    let dir = TempDir::new("sticky-app");
    let b = start(config(&bs, APP, &dir, true)).await;
    let client = Client::http1();
    // No session yet: no cookie of ballast's either.
    let r = get(&client, &b, "/", None).await;
    assert_eq!(set_cookie(&r, NAME), None);
    // The application opens a session: ballast's cookie comes beside it.
    let r = get(&client, &b, "/login?set_cookie=SESSIONID=abc", None).await;
    assert_eq!(
        set_cookie(&r, "SESSIONID").as_deref(),
        Some("SESSIONID=abc")
    );
    let target = r.backend();
    let cookies = format!("SESSIONID=abc; {}", pair(&r));
    let (served, issued) = spread(&client, &b, &cookies, 100).await;
    assert_eq!(served, HashMap::from([(target.clone(), 100)]));
    assert_eq!(issued, 0);
    // The application renews its session: ballast's cookie is renewed with it,
    // naming the same target.
    let r = get(&client, &b, "/?set_cookie=SESSIONID=def", Some(&cookies)).await;
    assert_eq!(r.backend(), target);
    let renewed = format!("SESSIONID=def; {}", pair(&r));
    let (served, _) = spread(&client, &b, &renewed, 20).await;
    assert_eq!(served, HashMap::from([(target, 20)]));
}

/// Cookies ballast did not issue for this group and key, or issued but expired:
/// each is ignored (round robin goes on over all three targets) and replaced.
#[tokio::test]
async fn forged_tampered_foreign_and_expired_cookies_are_ignored() {
    let bs = backends(3).await;
    let dir = TempDir::new("sticky-forged");
    let b = start(config(&bs, LB, &dir, true)).await;
    let client = Client::http1();
    let r = get(&client, &b, "/", None).await;
    let good = pair(&r);
    let value = good.strip_prefix(&format!("{NAME}=")).expect("value");
    let addrs: Vec<SocketAddr> = bs.iter().map(|b| b.addr()).collect();
    let stickiness = Stickiness {
        kind: StickinessKind::LbCookie,
        duration: Duration::from_secs(3600),
    };
    let ours = Sticky::new(&stickiness, "web", Arc::new(StickyKey::new(KEY.as_bytes())));
    let theirs = Sticky::new(
        &stickiness,
        "web",
        Arc::new(StickyKey::new(b"another key, 32 bytes or more, yes")),
    );
    // A value of the right shape naming b1 by its index, with a made-up tag.
    let mut made_up = ours.value(1, addrs[1], now() + 3600).into_bytes();
    made_up[20..].fill(b'A');
    // The issued value with one character of its tag changed.
    let mut tampered = value.as_bytes().to_vec();
    tampered[30] = if tampered[30] == b'x' { b'y' } else { b'x' };
    let cases = [
        ("made up", String::from_utf8(made_up).expect("ascii")),
        ("tampered", String::from_utf8(tampered).expect("ascii")),
        ("another key", theirs.value(1, addrs[1], now() + 3600)),
        ("another group", {
            let other = Sticky::new(&stickiness, "api", Arc::new(StickyKey::new(KEY.as_bytes())));
            other.value(1, addrs[1], now() + 3600)
        }),
        ("expired", ours.value(1, addrs[1], now() - 1)),
        ("junk", "not-a-cookie".to_string()),
    ];
    // Ours, unexpired, is honoured: the crafting is right.
    let (served, issued) = spread(
        &client,
        &b,
        &format!("{NAME}={}", ours.value(1, addrs[1], now() + 3600)),
        10,
    )
    .await;
    assert_eq!(
        (served, issued),
        (HashMap::from([("b1".to_string(), 10)]), 0)
    );
    for (what, value) in cases {
        let (served, issued) = spread(&client, &b, &format!("{NAME}={value}"), 30).await;
        assert_eq!(
            served.len(),
            3,
            "{what}: balanced as without a cookie: {served:?}"
        );
        assert!(served.values().all(|&n| n >= 5), "{what}: {served:?}");
        assert_eq!(issued, 30, "{what}: a new cookie with every response");
    }
}

/// The client's target is killed: its next request moves (a retry after the
/// connect failure) and the cookie is reset to where it was served, which it then
/// keeps. That target fails its health checks: the client moves once more.
#[tokio::test]
async fn a_target_going_away_moves_the_client_once() {
    let bs = backends(3).await;
    let dir = TempDir::new("sticky-move");
    let b = start(config(&bs, LB, &dir, true)).await;
    let client = Client::http1();
    let by_name = |name: &str| bs.iter().find(|b| b.name() == name).expect("backend");
    let r = get(&client, &b, "/", None).await;
    let (mut cookie, first) = (pair(&r), r.backend());
    let (served, _) = spread(&client, &b, &cookie, 20).await;
    assert_eq!(served, HashMap::from([(first.clone(), 20)]));

    by_name(&first).kill();
    let r = get(&client, &b, "/", Some(&cookie)).await;
    let second = r.backend();
    assert_ne!(second, first);
    cookie = pair(&r);
    let (served, issued) = spread(&client, &b, &cookie, 50).await;
    assert_eq!((served, issued), (HashMap::from([(second.clone(), 50)]), 0));

    by_name(&second).set_healthy(false);
    let addr = by_name(&second).addr();
    let server = b.server.clone();
    eventually("the second target unhealthy", SOON, || {
        let server = server.clone();
        async move {
            let snap = server.snapshot();
            let g = snap.group("web").expect("group");
            g.targets
                .iter()
                .any(|t| t.addr == addr && t.state() == HealthState::Unhealthy)
        }
    })
    .await;
    let r = get(&client, &b, "/", Some(&cookie)).await;
    let third = r.backend();
    assert!(third != first && third != second, "{third}");
    let (served, issued) = spread(&client, &b, &pair(&r), 50).await;
    assert_eq!((served, issued), (HashMap::from([(third, 50)]), 0));
}

#[tokio::test]
async fn the_cookie_is_secure_on_https_listeners() {
    let bs = backends(2).await;
    let dir = TempDir::new("sticky-https");
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["localhost"]);
    let mut setup = Setup::new(&bs);
    setup.group_extra = LB.into();
    setup.listener_extra = format!(
        "protocol = \"https\"\ncertificates = [{}]",
        leaf.toml(&dir, "site")
    );
    let mut c = setup.config();
    c.state.dir = dir.path.clone();
    let b = start(c).await;
    let tls = TlsClient::new(&ca)
        .connect(b.addr, "localhost")
        .await
        .expect("handshake");
    let mut conn = HttpsConn::new(tls).await;
    let r = conn.get("/", &[]).await.expect("response");
    let line = set_cookie(&r, NAME).expect("cookie");
    assert!(line.ends_with("; HttpOnly; SameSite=Lax; Secure"), "{line}");
    // The key was made in the state directory.
    assert!(dir.path.join("stickiness.key").exists());
}

/// Without a key file the key is kept in `state.dir`: a ballast started again on
/// it honours the first one's cookies, and so does another node given that file
/// as its `stickiness_key_file`. A node with a key of its own does not.
#[tokio::test]
async fn the_key_survives_a_restart_and_a_fleet_shares_it() {
    let bs = backends(3).await;
    let dir = TempDir::new("sticky-fleet");
    let first = start(config(&bs, LB, &dir, false)).await;
    let client = Client::http1();
    let r = get(&client, &first, "/", None).await;
    let (cookie, target) = (pair(&r), r.backend());
    let again = start(config(&bs, LB, &dir, false)).await;
    let (served, issued) = spread(&client, &again, &cookie, 20).await;
    assert_eq!((served, issued), (HashMap::from([(target.clone(), 20)]), 0));

    let shared = TempDir::new("sticky-fleet-node");
    let key = std::fs::read_to_string(dir.path.join("stickiness.key")).expect("key");
    let mut c = config(&bs, LB, &shared, false);
    c.server.stickiness_key_file = Some(shared.write("fleet.key", &key));
    let node = start(c).await;
    let (served, issued) = spread(&client, &node, &cookie, 20).await;
    assert_eq!((served, issued), (HashMap::from([(target, 20)]), 0));

    let own = TempDir::new("sticky-fleet-own");
    let stranger = start(config(&bs, LB, &own, true)).await;
    let (served, issued) = spread(&client, &stranger, &cookie, 30).await;
    assert_eq!((served.len(), issued), (3, 30), "{served:?}");
    assert!(
        !own.path.join("stickiness.key").exists(),
        "a key file in the config: nothing in state.dir"
    );
}

/// WebSocket upgrades are sticky too: the 101 carries the cookie, and upgrades
/// bringing it reach the same server.
#[tokio::test]
async fn websocket_upgrades_follow_the_cookie() {
    let servers = [
        WsBackend::start().await,
        WsBackend::start().await,
        WsBackend::start().await,
    ];
    let dir = TempDir::new("sticky-ws");
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    // The servers answer no HTTP health check: the group fails open to all three.
    let mut setup = Setup::with_targets(&addrs);
    setup.group_extra = LB.into();
    let mut c = setup.config();
    c.state.dir = dir.path.clone();
    let b = Ballast::start_config(c).await;
    let url = format!("ws://{}/", b.addr);
    let (_ws, response) = connect_async(&url).await.expect("upgrade");
    let line = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie on the 101")
        .to_string();
    let cookie = line.split(';').next().expect("pair").to_string();
    let accepted = || -> Vec<usize> {
        servers
            .iter()
            .map(|s| s.accepted.load(std::sync::atomic::Ordering::SeqCst))
            .collect()
    };
    // A server counts a connection once its handshake ends, just after the 101.
    eventually("the first upgrade counted", SOON, || async {
        accepted().iter().sum::<usize>() == 1
    })
    .await;
    let server = accepted().iter().position(|&n| n == 1).expect("one server");
    for _ in 0..10 {
        let mut req = url.as_str().into_client_request().expect("request");
        req.headers_mut()
            .insert("cookie", cookie.parse().expect("header"));
        let (_ws, response) = connect_async(req).await.expect("upgrade");
        assert!(response.headers().get("set-cookie").is_none());
    }
    let mut expected = vec![0; 3];
    expected[server] = 11;
    eventually("every upgrade counted", SOON, || async {
        accepted().iter().sum::<usize>() == 11
    })
    .await;
    assert_eq!(accepted(), expected);
}
