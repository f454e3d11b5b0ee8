//! GCRA in the table: the accuracy figure on an injected clock, exactness
//! under contention from many threads, the bound on memory, and who loses state
//! at the bound.

use super::*;
use std::sync::Arc;

const MS: u64 = 1_000_000 / TICK_NS;
const SECOND: u64 = 1000 * MS;

fn per_second(rate: u32, burst: u32, max_keys: u32) -> Table {
    Table::new(Gcra::new(Duration::from_secs(1) / rate, burst), max_keys)
}

fn admitted(t: &Table, key: u64, now: u64) -> bool {
    matches!(t.take(key, now), Take::Admitted { .. })
}

#[test]
fn offered_500_a_second_for_10_s_at_100_a_second_admits_rate_times_time_plus_burst() {
    let t = per_second(100, 200, 1024);
    let start = 10 * SECOND;
    // 500/s: one request every 2 ms, for 10 s (the last at 9.998 s).
    let n = (0..5000)
        .filter(|i| admitted(&t, 42, start + i * 2 * MS))
        .count() as f64;
    let expected = 100.0 * 10.0 + 200.0;
    assert!(
        (n - expected).abs() <= expected * 0.01,
        "admitted {n}, expected {expected} ± 1%"
    );
}

#[test]
fn a_full_bucket_admits_the_burst_then_one_per_interval() {
    let t = per_second(10, 3, 64);
    let now = SECOND;
    for left in [2, 1, 0] {
        assert_eq!(t.take(1, now), Take::Admitted { remaining: left });
    }
    let Take::Limited { wait } = t.take(1, now) else {
        panic!("the fourth at once is over the burst");
    };
    assert_eq!(wait, Duration::from_millis(100));
    assert!(!admitted(&t, 1, now + 99 * MS));
    assert!(admitted(&t, 1, now + 100 * MS));
    // Another key has its own bucket.
    assert!(admitted(&t, 2, now));
    // Idle for long enough, the bucket is full again (and no fuller).
    let later = now + 10 * SECOND;
    assert_eq!(t.take(1, later), Take::Admitted { remaining: 2 });
}

#[test]
fn many_threads_on_one_key_get_exactly_the_burst() {
    // The clock stands still, so exactly `burst` may pass however the eight
    // threads interleave; a lost update would let more through.
    let t = Arc::new(per_second(1, 1000, 64));
    let now = SECOND;
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || (0..5000).filter(|_| admitted(&t, 7, now)).count())
        })
        .collect();
    let total: usize = threads.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(total, 1000);
}

#[test]
fn many_threads_with_a_moving_clock_stay_within_the_rate() {
    // Eight threads share one key for 2 simulated seconds at 1000/s with a
    // burst of 10, each at its own pace (so the clock they show the table goes
    // back and forth): 2010 at most may pass, and about every interval is taken.
    let t = Arc::new(per_second(1000, 10, 64));
    let threads: Vec<_> = (0..8u64)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                (0..20_000u64)
                    .filter(|k| admitted(&t, 9, SECOND + (k * 100 + i) * (MS / 1000)))
                    .count()
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|h| h.join().expect("thread")).sum();
    assert!((1990..=2010).contains(&total), "{total}");
}

#[test]
fn memory_is_bounded_whatever_the_number_of_keys() {
    let t = per_second(1, 5, 64);
    assert_eq!(t.capacity(), 64);
    for key in 1..200_000u64 {
        t.take(key.wrapping_mul(0x9e37_79b9_7f4a_7c15), SECOND);
    }
    assert_eq!(t.keys(), 64);
    assert_eq!(t.capacity(), 64);
    // Every key still holds a place's worth of debt: each takeover lost state.
    assert!(t.evictions() > 190_000, "{}", t.evictions());
}

#[test]
fn an_idle_key_gives_way_for_free_and_a_busy_one_closest_to_full_first() {
    // One bucket of four slots (keys chosen to share it).
    let t = per_second(1, 10, 4);
    let now = SECOND;
    // Keys 1..=4 take 1, 2, 3 and 4 places.
    for key in 1..=4u64 {
        for _ in 0..key {
            assert!(admitted(&t, key, now));
        }
    }
    // A fifth key: every slot is busy; key 1 (closest to full) is evicted.
    assert!(admitted(&t, 5, now));
    assert_eq!(t.evictions(), 1);
    // Key 4 kept its state: 6 places left, not 10.
    assert_eq!(t.take(4, now), Take::Admitted { remaining: 5 });
    // Key 1 comes back to a full bucket (it lost its one place of debt).
    assert_eq!(t.take(1, now), Take::Admitted { remaining: 9 });
    assert_eq!(t.evictions(), 2);
    // Much later every bucket is full again: taking over the four slots loses
    // nothing.
    let later = now + 60 * SECOND;
    for key in 10..14u64 {
        assert!(admitted(&t, key, later));
    }
    assert_eq!(t.evictions(), 2);
    assert_eq!(t.keys(), 4);
}

#[test]
fn the_clock_counts_in_ticks_from_the_first_limit() {
    start_clock();
    let a = Instant::now();
    let b = a + Duration::from_millis(3);
    assert_eq!(ticks(b) - ticks(a), 3 * MS);
}
