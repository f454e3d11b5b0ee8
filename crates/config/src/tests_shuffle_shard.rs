//! Config of issue 21 §4: a target group's `shuffle_shard`, each valid form read
//! and round-tripped, each misuse rejected with its path, line and column.

use super::tests::VALID;
use super::*;
use crate::shuffle_shard::*;
use crate::test_fixture::assert_error;

const ANCHOR: &str = "connect_timeout = \"500ms\"";

/// VALID (whose first group has 2 targets) with `line` added to its first group.
fn with(line: &str) -> String {
    VALID.replace(ANCHOR, &format!("{ANCHOR}\n{line}"))
}

fn added_line() -> u32 {
    let at = VALID.find(ANCHOR).expect("anchor");
    VALID[..at].matches('\n').count() as u32 + 2
}

#[test]
fn every_form_is_read_and_round_trips() {
    let c = Config::from_toml(&with(
        "shuffle_shard = { key = { header = \"X-Tenant\" }, size = 2 }",
    ))
    .expect("valid");
    let shard = c.target_groups[0].shuffle_shard.clone().expect("shard");
    assert_eq!(
        shard,
        ShuffleShard {
            key: ShardKey::Header("x-tenant".into()),
            size: 2,
            fail_open: true,
        }
    );
    let json = serde_json::to_value(&c).expect("serialize");
    assert_eq!(
        json["target_groups"][0]["shuffle_shard"]["key"]["header"],
        "x-tenant"
    );
    assert_eq!(Config::from_json(&json).expect("reads back"), c);

    let c = Config::from_toml(&with(
        "shuffle_shard = { key = \"client_ip\", size = 1, fail_open = false }",
    ))
    .expect("valid");
    let shard = c.target_groups[0].shuffle_shard.clone().expect("shard");
    assert_eq!(
        (shard.key, shard.size, shard.fail_open),
        (ShardKey::ClientIp, 1, false)
    );
    let json = serde_json::to_value(&c).expect("serialize");
    assert_eq!(
        json["target_groups"][0]["shuffle_shard"]["key"],
        "client_ip"
    );
    assert_eq!(Config::from_json(&json).expect("reads back"), c);
}

#[test]
fn off_by_default() {
    let c = Config::from_toml(VALID).expect("valid");
    assert!(c.target_groups[0].shuffle_shard.is_none());
    let json = serde_json::to_value(&c).expect("serialize");
    assert!(json["target_groups"][0].get("shuffle_shard").is_none());
}

#[test]
fn misuse_is_rejected_with_path_line_and_column() {
    let line = added_line();
    let p = "target_groups[0].shuffle_shard";
    let cases = [
        (
            "shuffle_shard = { key = { header = \"X-Tenant\" }, size = 3 }",
            format!("{p}.size"),
            "larger than the group, which has 2",
        ),
        (
            "shuffle_shard = { key = { header = \"X-Tenant\" }, size = 0 }",
            format!("{p}.size"),
            "allowed: 1 to 16",
        ),
        (
            "shuffle_shard = { key = { header = \"X-Tenant\" }, size = 17 }",
            format!("{p}.size"),
            "allowed: 1 to 16",
        ),
        (
            "shuffle_shard = { key = { header = \"X-Tenant\" } }",
            format!("{p}.size"),
            "missing required field `size`",
        ),
        (
            "shuffle_shard = { size = 2 }",
            format!("{p}.key"),
            "missing required field `key`",
        ),
        (
            "shuffle_shard = { key = \"tenant\", size = 2 }",
            format!("{p}.key"),
            "unknown shard key \"tenant\"",
        ),
        (
            "shuffle_shard = { key = 7, size = 2 }",
            format!("{p}.key"),
            "expected a shard key, found an integer",
        ),
        (
            "shuffle_shard = { key = { header = \"X Tenant\" }, size = 2 }",
            format!("{p}.key.header"),
            "invalid header name",
        ),
        (
            "shuffle_shard = { key = { cookie = \"t\" }, size = 2 }",
            format!("{p}.key.cookie"),
            "unknown field `cookie`",
        ),
        (
            "shuffle_shard = { key = \"client_ip\", size = 2, fail_open = \"no\" }",
            format!("{p}.fail_open"),
            "expected true or false",
        ),
        (
            "shuffle_shard = { key = \"client_ip\", size = 2, sise = 2 }",
            format!("{p}.sise"),
            "did you mean `size`?",
        ),
        ("shuffle_shard = 2", p.to_string(), "expected a table"),
    ];
    for (added, path, needle) in cases {
        let errs = Config::from_toml(&with(added)).expect_err(added);
        assert_error(&errs, &path, line, needle);
        let e = errs.iter().find(|e| e.path == path).expect("the error");
        assert!(e.column.is_some_and(|c| c > 1), "{added}: {e:?}");
    }
}

/// The admin API's form (JSON, no positions) goes through the same checks: a
/// group whose targets are cut below its shard size is refused.
#[test]
fn json_is_checked_the_same() {
    let c = Config::from_toml(&with(
        "shuffle_shard = { key = { header = \"X-Tenant\" }, size = 2 }",
    ))
    .expect("valid");
    let mut json = serde_json::to_value(&c).expect("serialize");
    let targets = json["target_groups"][0]["targets"]
        .as_array_mut()
        .expect("targets");
    targets.pop();
    let errs = Config::from_json(&json).expect_err("one target, shards of 2");
    assert!(
        errs.iter()
            .any(|e| e.path == "target_groups[0].shuffle_shard.size"
                && e.message.contains("which has 1")),
        "{errs}"
    );
}
