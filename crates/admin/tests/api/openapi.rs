//! The OpenAPI document parses as OpenAPI 3 and lists exactly the router's routes.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use ballast_admin::{OPENAPI, ROUTES};
use ballast_testkit::{backends, Setup};

use crate::Admin;

fn documented() -> BTreeSet<(String, String)> {
    let doc: openapiv3::OpenAPI = serde_json::from_str(OPENAPI).expect("valid OpenAPI 3 document");
    assert!(doc.openapi.starts_with("3."), "{}", doc.openapi);
    let mut ops = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let item = item.as_item().expect("no $ref path items");
        for (method, _op) in item.iter() {
            ops.insert((method.to_uppercase(), path.clone()));
        }
    }
    ops
}

#[test]
fn openapi_lists_exactly_the_routes() {
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.as_str().to_string(), p.to_string()))
        .collect();
    let documented = documented();
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes not in openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "openapi.json documents routes that do not exist: {extra:?}"
    );
}

#[test]
fn every_schema_reference_resolves() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("json");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema ref");
        assert!(schemas.contains_key(name), "dangling $ref {r}");
    }
}

fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Every route of the table is served by the router (not 404/405), and the
/// router answers nothing else.
#[tokio::test]
async fn the_router_serves_every_route_and_nothing_else() {
    let bs = backends(1).await;
    let admin = Admin::start(&Setup::new(&bs)).await;
    let target = bs[0].addr().to_string();
    for (method, path, _) in ROUTES {
        let path = path.replace("{name}", "web").replace("{address}", &target);
        let (status, body) = admin.raw(method.clone(), &path, None, None).await;
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {status} {body}"
        );
    }
    let (status, body) = admin.raw(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("\"error\""), "{body}");
}
