//! Targets by DNS name, against a DNS server of the test's own on loopback whose
//! answers change: one target per record, new addresses added, vanished ones
//! drained, the last good set kept through failures (and said so), SRV.

use ballast_proxy::HealthState;
use ballast_testkit::dns::{loopback, loopback_backends, DnsServer, Mode};
use ballast_testkit::{eventually, Ballast, Client, Setup};

use crate::retries::metric;
use crate::SOON;

/// Group `web` with `targets` (TOML entries) and its names looked up every 200 ms
/// (the DNS server answers with TTL 0, held at `min_ttl`), asking `dns` only.
struct DnsSetup(String);

fn setup(dns: &DnsServer, targets: &str) -> DnsSetup {
    let mut setup = Setup::new(&[]);
    setup.server_extra = format!("dns_servers = [\"{}\"]", dns.addr);
    setup.group_extra =
        "dns = { min_ttl = \"200ms\", max_ttl = \"2s\" }\nderegistration_delay = \"20s\"\n".into();
    DnsSetup(
        setup
            .toml()
            .replace("targets = []", &format!("targets = [{targets}]")),
    )
}

impl DnsSetup {
    async fn start(&self) -> Ballast {
        let config = ballast_config::Config::from_toml(&self.0)
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n{}", self.0));
        Ballast::start_config(config).await
    }
}

/// The addresses of group `web`'s targets in `state`, sorted.
fn targets(ballast: &Ballast, state: Option<HealthState>) -> Vec<String> {
    let snap = ballast.server.snapshot();
    let mut v: Vec<String> = snap
        .group("web")
        .expect("group web")
        .targets
        .iter()
        .filter(|t| state.is_none_or(|s| t.state() == s))
        .map(|t| t.addr.ip().to_string())
        .collect();
    v.sort();
    v
}

async fn wait_healthy(ballast: &Ballast, ips: &[&str]) {
    eventually(&format!("healthy targets {ips:?}"), SOON, || async {
        targets(ballast, Some(HealthState::Healthy)) == ips
    })
    .await;
}

#[tokio::test]
async fn a_name_with_two_records_is_two_targets_that_both_serve() {
    let dns = DnsServer::start().await;
    dns.set_ttl(0);
    let (port, bs) = loopback_backends(&[2, 3]).await;
    dns.set("app.test", &[loopback(2), loopback(3)]);
    let ballast = setup(
        &dns,
        &format!("{{ address = \"app.test:{port}\", weight = 3 }}"),
    )
    .start()
    .await;
    wait_healthy(&ballast, &["127.0.0.2", "127.0.0.3"]).await;
    let snap = ballast.server.snapshot();
    let group = snap.group("web").expect("group");
    assert!(
        group.targets.iter().all(|t| t.weight() == 3),
        "each takes the entry's weight"
    );
    let client = Client::http1();
    for _ in 0..20 {
        let r = client.get(&ballast.url("/")).await.expect("reply");
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        (bs[0].requests(), bs[1].requests()),
        (10, 10),
        "round robin over both"
    );
    let status = ballast
        .server
        .dns_status("web")
        .expect("a group with a DNS name");
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].name, format!("app.test:{port}"));
    assert_eq!(status[0].addresses.len(), 2);
    assert!(status[0].error.is_none() && status[0].resolved_at.is_some());
    assert_eq!(
        metric(
            &ballast,
            &format!("ballast_dns_targets{{target_group=\"web\",name=\"app.test:{port}\"}}")
        ),
        2
    );
}

#[tokio::test]
async fn a_changed_answer_adds_the_new_address_and_drains_the_vanished_one() {
    let dns = DnsServer::start().await;
    dns.set_ttl(0);
    let (port, bs) = loopback_backends(&[2, 3, 4]).await;
    dns.set("app.test", &[loopback(2), loopback(3)]);
    let ballast = setup(&dns, &format!("{{ address = \"app.test:{port}\" }}"))
        .start()
        .await;
    wait_healthy(&ballast, &["127.0.0.2", "127.0.0.3"]).await;

    // One slow request on each target (round robin); then 127.0.0.3 vanishes.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = ballast.url("/?delay_ms=1500");
            tokio::spawn(async move { Client::http1().get(&url).await })
        })
        .collect();
    let old = ballast
        .server
        .snapshot()
        .group("web")
        .expect("group")
        .targets
        .clone();
    eventually("a request in flight on each target", SOON, || async {
        old.iter().all(|t| t.in_flight() == 1)
    })
    .await;
    dns.set("app.test", &[loopback(2), loopback(4)]);
    eventually("127.0.0.3 draining, 127.0.0.4 added", SOON, || async {
        targets(&ballast, Some(HealthState::Draining)) == ["127.0.0.3"]
            && targets(&ballast, None).contains(&"127.0.0.4".to_string())
    })
    .await;
    let mut served = Vec::new();
    for s in slow {
        let r = s
            .await
            .expect("join")
            .expect("the in-flight request completes");
        assert_eq!(r.status, 200);
        served.push(r.backend());
    }
    served.sort();
    assert_eq!(
        served,
        ["b2", "b3"],
        "the draining target finished its request"
    );
    eventually("127.0.0.3 removed once drained", SOON, || async {
        targets(&ballast, None) == ["127.0.0.2", "127.0.0.4"]
    })
    .await;
    wait_healthy(&ballast, &["127.0.0.2", "127.0.0.4"]).await;
    let before = bs[1].requests();
    let client = Client::http1();
    for _ in 0..20 {
        let r = client.get(&ballast.url("/")).await.expect("reply");
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        bs[1].requests(),
        before,
        "no traffic to the vanished address"
    );
    assert!(bs[2].requests() >= 10, "the new address serves");
}

#[tokio::test]
async fn a_failing_server_keeps_the_last_good_set_and_says_so() {
    let dns = DnsServer::start().await;
    dns.set_ttl(0);
    let (port, bs) = loopback_backends(&[2]).await;
    dns.set("app.test", &[loopback(2)]);
    let ballast = setup(&dns, &format!("{{ address = \"app.test:{port}\" }}"))
        .start()
        .await;
    wait_healthy(&ballast, &["127.0.0.2"]).await;
    let name = format!("app.test:{port}");
    let series = |outcome: &str| {
        format!("ballast_dns_resolutions_total{{target_group=\"web\",name=\"{name}\",outcome=\"{outcome}\"}}")
    };
    let error = || {
        ballast.server.dns_status("web").expect("dns")[0]
            .error
            .clone()
            .unwrap_or_default()
    };
    let client = Client::http1();

    for (mode, outcome) in [
        (Mode::ServFail, "servfail"),
        (Mode::NxDomain, "nxdomain"),
        (Mode::Silent, "timeout"),
    ] {
        dns.set_mode(mode);
        // A timeout takes the resolver's 2 tries of 2 s.
        eventually(
            &format!("a {outcome} counted and shown"),
            SOON * 2,
            || async { metric(&ballast, &series(outcome)) > 0 && error().starts_with(outcome) },
        )
        .await;
        assert_eq!(
            targets(&ballast, None),
            ["127.0.0.2"],
            "the last good set stays"
        );
        assert_eq!(
            metric(
                &ballast,
                &format!("ballast_dns_targets{{target_group=\"web\",name=\"{name}\"}}")
            ),
            1
        );
        let r = client.get(&ballast.url("/")).await.expect("reply");
        assert_eq!(r.status, 200, "traffic flows to the last good set");

        dns.set_mode(Mode::Answer);
        eventually("the error cleared on recovery", SOON, || async {
            ballast.server.dns_status("web").expect("dns")[0]
                .error
                .is_none()
        })
        .await;
    }
    assert!(metric(&ballast, &series("ok")) >= 4);
    assert!(bs[0].requests() >= 3);
}

#[tokio::test]
async fn a_name_that_never_resolved_starts_with_no_target_then_serves() {
    let dns = DnsServer::start().await;
    dns.set_ttl(0);
    let (port, bs) = loopback_backends(&[5]).await;
    let ballast = setup(&dns, &format!("{{ address = \"late.test:{port}\" }}"))
        .start()
        .await;
    eventually("the failed lookup is shown", SOON, || async {
        let status = ballast.server.dns_status("web").expect("dns");
        status[0]
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("nxdomain"))
            && status[0].resolved_at.is_none()
    })
    .await;
    assert!(
        targets(&ballast, None).is_empty(),
        "no target for the name yet"
    );
    let r = Client::http1().get(&ballast.url("/")).await.expect("reply");
    assert_eq!(r.status, 503, "a group without targets");

    dns.set("late.test", &[loopback(5)]);
    wait_healthy(&ballast, &["127.0.0.5"]).await;
    let r = Client::http1().get(&ballast.url("/")).await.expect("reply");
    assert_eq!((r.status.as_u16(), r.backend()), (200, "b5".to_string()));
    assert_eq!(bs[0].requests(), 1);
}

#[tokio::test]
async fn srv_records_of_the_lowest_priority_with_their_ports_and_weights() {
    let dns = DnsServer::start().await;
    dns.set_ttl(0);
    let (port_a, a) = loopback_backends(&[6]).await;
    let (port_b, b) = loopback_backends(&[7]).await;
    let (port_c, c) = loopback_backends(&[8]).await;
    dns.set("a.test", &[loopback(6)]);
    dns.set("b.test", &[loopback(7)]);
    dns.set("c.test", &[loopback(8)]);
    // Static: the SRV records name their ports.
    let (pa, pb, pc): (&'static str, &'static str, &'static str) = ("a.test", "b.test", "c.test");
    dns.set_srv(
        "_http._tcp.app.test",
        &[
            (10, 3, port_a, pa),
            (10, 1, port_b, pb),
            (20, 5, port_c, pc),
        ],
    );
    let ballast = setup(&dns, "{ srv = \"_http._tcp.app.test\" }")
        .start()
        .await;
    wait_healthy(&ballast, &["127.0.0.6", "127.0.0.7"]).await;
    let snap = ballast.server.snapshot();
    let mut weights: Vec<(String, u32)> = snap
        .group("web")
        .expect("group")
        .targets
        .iter()
        .map(|t| (t.addr.to_string(), t.weight()))
        .collect();
    weights.sort();
    assert_eq!(
        weights,
        [
            (format!("127.0.0.6:{port_a}"), 3),
            (format!("127.0.0.7:{port_b}"), 1)
        ],
        "the lowest priority's records, their ports and weights"
    );
    let client = Client::http1();
    for _ in 0..8 {
        let r = client.get(&ballast.url("/")).await.expect("reply");
        assert_eq!(r.status, 200);
    }
    assert!(a[0].requests() > b[0].requests(), "weights count");
    assert_eq!(
        c[0].requests(),
        0,
        "a higher priority is a fallback, unused"
    );
}
