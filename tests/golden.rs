//! Golden statistics: a small multi-threaded workload (`lazy_mix`: flushes with and
//! without freed page tables, threads sleeping and blocking on mmap_lock, a second
//! process) under every shipped strategy, its whole statistics JSON checked in under
//! tests/snapshots. A change that moves any number fails here with a diff.
//!
//! When a change is meant to move numbers, say which and why in the commit, and bless the
//! new statistics with `INSTA_UPDATE=always cargo test --test golden` (or review them one
//! by one with `cargo insta review`).

mod common;

use common::*;
use serde_json::Value;

/// Every shipped combination: five cpumask policies with IPIs on both profiles, and with
/// INVLPGB on the profile that has it.
fn strategies() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut v = Vec::new();
    for cpumask in ["lazy", "lazy-notrim", "eager", "sticky", "all"] {
        v.push(("skylake-sp", cpumask, "ipi"));
        v.push(("zen3", cpumask, "ipi"));
        v.push(("zen3", cpumask, "invlpgb"));
    }
    v
}

#[test]
fn statistics_of_every_strategy_match_the_golden_files() {
    for (profile, cpumask, flush) in strategies() {
        let dir = scratch(&format!("golden-{profile}-{cpumask}-{flush}"));
        let stats = dir.join("stats.json");
        let o = emu()
            .args(["run", "--no-env", "--cores", "4", "--profile", profile])
            .args(["--cpumask", cpumask, "--flush", flush, "--stats"])
            .arg(&stats)
            .args(["lazy_mix", "2", "1", "1"])
            .output()
            .expect("run emu");
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        let v: Value = serde_json::from_slice(&std::fs::read(&stats).expect("stats written"))
            .expect("stats JSON");
        insta::with_settings!({
            description => "bless with INSTA_UPDATE=always cargo test --test golden",
            omit_expression => true,
        }, {
            insta::assert_json_snapshot!(format!("{profile}-{cpumask}-{flush}"), v, {
                ".config.emu_version" => "[version]",
            });
        });
    }
}
