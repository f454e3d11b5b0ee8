//! Slow start: a target that joins a group with healthy targets ramps up over
//! `slow_start`; the first healthy targets take their full share at once.

use std::collections::HashMap;
use std::time::Duration;

use ballast_testkit::{backends, eventually, Ballast, Client, Setup};

use crate::SOON;

/// Five targets, one added by a reload once four are healthy: halfway through its
/// 30 s ramp it gets about half a fair share (effective weights 0.5 against four of
/// 1: 0.5 / 4.5 of the requests, against 1/5 when fair), and the four started
/// together never ramped.
#[tokio::test]
async fn a_new_target_ramps_up_and_the_first_ones_do_not() {
    let bs = backends(5).await;
    let mut setup = Setup::new(&bs[..4]);
    setup.group_extra = "slow_start = \"30s\"\n".into();
    let ballast = Ballast::start(&setup).await;
    ballast.all_healthy().await;
    let snapshot = ballast.server.snapshot();
    let group = snapshot.group("web").expect("group");
    assert!(
        group.targets.iter().all(|t| t.ramp_elapsed().is_none()),
        "the first healthy targets take their full share at once"
    );
    drop(snapshot);

    let mut setup = Setup::new(&bs);
    setup.group_extra = "slow_start = \"30s\"\n".into();
    ballast.server.apply(setup.config()).await.expect("apply");
    let new = bs[4].addr();
    let server = ballast.server.clone();
    let ramp_started = move || {
        let snapshot = server.snapshot();
        let group = snapshot.group("web").expect("group");
        let t = group
            .targets
            .iter()
            .find(|t| t.addr == new)
            .expect("new target");
        t.ramp_elapsed()
    };
    eventually("the new target healthy and ramping", SOON, || async {
        ramp_started().is_some()
    })
    .await;
    let elapsed = ramp_started().expect("ramping");
    let begin = tokio::time::Instant::now() + Duration::from_millis(13_500).saturating_sub(elapsed);
    tokio::time::sleep_until(begin).await;

    // 13.5 s to 16.5 s into the ramp: factors 0.45 to 0.55, 0.5 on average.
    let client = Client::http1();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let end = begin + Duration::from_secs(3);
    let mut total = 0;
    while tokio::time::Instant::now() < end {
        let r = client.get(&ballast.url("/")).await.expect("response");
        assert_eq!(r.status, 200);
        *counts.entry(r.backend()).or_default() += 1;
        total += 1;
    }
    assert!(total >= 300, "{total} requests in 3 s");
    let new_name = bs[4].name().to_string();
    let share = *counts.get(&new_name).unwrap_or(&0) as f64 / total as f64;
    let of_fair = share / (1.0 / 5.0);
    // 0.5 / 4.5 of the requests is 0.56 of a fair share.
    eprintln!("halfway: {of_fair:.2} of a fair share over {total} requests ({counts:?})");
    assert!(
        (0.35..=0.65).contains(&of_fair),
        "new target got {of_fair:.2} of a fair share ({counts:?})"
    );
    // The API says the same.
    let snapshot = ballast.server.snapshot();
    let t = snapshot
        .group("web")
        .expect("group")
        .targets
        .iter()
        .find(|t| t.addr == new)
        .expect("new target")
        .clone();
    let factor = t.slow_start_factor();
    assert!((400..=750).contains(&factor), "factor {factor}");
}
