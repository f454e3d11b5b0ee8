//! `GET /api/v1/listeners` (issue 22): listeners with their rules and hits after
//! real requests, the same hits in `ballast_rule_hits_total`, and a TLS
//! listener's certificate as testkit's `pki` made it.

use ballast_testkit::pki::{Ca, TempDir};
use ballast_testkit::{backends, Client, Setup};

use crate::Admin;

#[tokio::test]
async fn rules_count_their_hits_and_certificates_show_names_and_expiry() {
    let bs = backends(1).await;
    let dir = TempDir::new("listeners-api");
    let ca = Ca::new("Listeners CA");
    let cert = ca
        .server(&["www.example.test", "api.example.test"])
        .toml(&dir, "site");
    let mut setup = Setup::new(&bs);
    setup.listener_extra = "[[listeners.rules]]\npriority = 10\nconditions = [{ path = \"/rule/*\" }]\naction = { type = \"forward\", target_group = \"web\" }\n\n[[listeners.rules]]\npriority = 20\nconditions = [{ method = [\"DELETE\"] }]\naction = { type = \"fixed_response\", status = 405 }\n".to_string();
    setup.extra = format!(
        "[[listeners]]\nname = \"secure\"\nbind = \"127.0.0.2:0\"\nprotocol = \"https\"\ncertificates = [{cert}]\ndefault_action = {{ type = \"forward\", target_group = \"web\" }}\n"
    );
    let admin = Admin::start(&setup).await;
    admin.ballast.all_healthy().await;
    let client = Client::http1();
    for path in ["/rule/a", "/rule/b", "/rule/c", "/", "/other"] {
        let r = client.get(&admin.ballast.url(path)).await.expect("reply");
        assert_eq!(r.status, 200);
    }

    let body = admin.get("/api/v1/listeners").await;
    assert_eq!(body["version"], 1);
    let listeners = body["listeners"].as_array().expect("listeners");
    assert_eq!(listeners.len(), 2, "{body}");
    let public = &listeners[0];
    assert_eq!(public["name"], "public");
    assert_eq!(public["bind"], "127.0.0.1:0");
    assert_eq!(public["local_addr"], admin.ballast.addr.to_string());
    assert_eq!(public["protocol"], "http");
    assert_eq!(public["rules"][0]["priority"], 10);
    assert_eq!(public["rules"][0]["conditions"], "path /rule/*");
    assert_eq!(public["rules"][0]["action"], "forward to web");
    assert_eq!(public["rules"][0]["hits"], 3, "{public}");
    assert_eq!(public["rules"][1]["priority"], 20);
    assert_eq!(public["rules"][1]["action"], "respond 405");
    assert_eq!(public["rules"][1]["hits"], 0);
    assert_eq!(public["default_hits"], 2);
    assert_eq!(public["certificates"], serde_json::json!([]));

    let metrics = admin.ballast.server.metrics_text();
    for line in [
        "ballast_rule_hits_total{listener=\"public\",rule=\"10\"} 3\n",
        "ballast_rule_hits_total{listener=\"public\",rule=\"20\"} 0\n",
        "ballast_rule_hits_total{listener=\"public\",rule=\"default\"} 2\n",
        "ballast_rule_hits_total{listener=\"secure\",rule=\"default\"} 0\n",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }

    let secure = &listeners[1];
    assert_eq!(secure["protocol"], "https");
    let certs = secure["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 1, "{secure}");
    let c = &certs[0];
    assert!(
        c["file"].as_str().is_some_and(|f| f.ends_with("site.pem")),
        "{c}"
    );
    assert_eq!(c["subject"], "CN=server");
    assert_eq!(
        c["names"],
        serde_json::json!(["www.example.test", "api.example.test"])
    );
    // rcgen's default validity ends in 4096.
    assert_eq!(c["not_after"], "4096-01-01T00:00:00Z");
    let days = c["days_to_expiry"].as_i64().expect("days");
    assert!((750_000..760_000).contains(&days), "{days}");
}
