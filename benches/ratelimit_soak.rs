//! Soak of the rate limiter with many distinct users: throughput of checks, keys held, and the
//! process's resident memory before and after idle keys are forgotten.
//!
//!     cargo bench --bench ratelimit_soak -- [USERS]        (default 1,000,000)

use std::time::{Duration, Instant};

use simtest::ratelimit::{Budgets, LimitKey, Limited, RateLimits};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    let users: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let limits = RateLimits::new(Budgets::default());
    let keys: Vec<LimitKey> = (0..users)
        .map(|i| LimitKey::of(&[&format!("org-{}", i % 1000), &format!("user-{i}")]))
        .collect();
    let base = rss_mib();

    let started = Instant::now();
    let mut refused = 0usize;
    for key in &keys {
        // Each user lists twice and searches once.
        for action in [
            Limited::ListUnitTests,
            Limited::ListUnitTests,
            Limited::SearchUnitTests,
        ] {
            if limits
                .check(action, *key)
                .and_then(|d| d.retry_after_secs)
                .is_some()
            {
                refused += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    let checks = users * 3;
    println!("users: {users}, checks: {checks}, refused: {refused}");
    println!(
        "throughput: {:.0} checks/s ({:.0} ns per check, one thread)",
        checks as f64 / elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / checks as f64
    );
    println!(
        "keys held: {}, RSS above start: {:.1} MiB",
        limits.tracked_keys(),
        rss_mib() - base
    );

    // A search budget of 50/min refills one request every 1.2 s; a few seconds later every key is full
    // again and indistinguishable from a new one.
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    limits.forget_idle();
    println!(
        "after forget_idle ({:.0} ms): keys held: {}, RSS above start: {:.1} MiB",
        started.elapsed().as_secs_f64() * 1000.0,
        limits.tracked_keys(),
        rss_mib() - base
    );
}
