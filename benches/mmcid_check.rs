//! Model-checker throughput: distinct states per host second of `emu check mm-cid`
//! (crate `emu-check`), and the host time to find the live lock of the first-merged code.
//! Each configuration runs `reps` times in this process; the best time is reported (the
//! exploration is deterministic: every run explores the same states).
//!
//! Run: `cargo bench --bench mmcid_check` (optionally `-- --reps 5`, `-- --quick` for the
//! small configurations only).

use emu_check::mmcid::{check, Config, Variant};
use emu_check::Outcome;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let quick = args.iter().any(|a| a == "--quick");
    let base = Config::default();
    let mut rows: Vec<(&str, Config)> = vec![
        ("afm 4/5 SC (live lock)", Config { variant: Variant::Afm, ..base.clone() }),
        (
            "afm+p1 4/5 weak (live lock)",
            Config { variant: Variant::AfmP1, weak_memory: true, ..base.clone() },
        ),
        ("afm+p1 4/5 SC", Config { variant: Variant::AfmP1, ..base.clone() }),
        ("fixed 4/5 SC", Config { variant: Variant::Fixed, ..base.clone() }),
        ("current 4/5 SC", Config { variant: Variant::Current, ..base.clone() }),
    ];
    if !quick {
        rows.push((
            "fixed 4/5 weak",
            Config { variant: Variant::Fixed, weak_memory: true, ..base.clone() },
        ));
        rows.push(("fixed 4/5 SC, 4 exits", Config { variant: Variant::Fixed, exits: 4, ..base }));
    }
    println!(
        "{:<30} {:>10} {:>12} {:>6} {:>10} {:>12}  verdict",
        "model", "states", "transitions", "depth", "best s", "states/s"
    );
    for (name, cfg) in rows {
        let mut best = f64::INFINITY;
        let mut last = None;
        for _ in 0..reps {
            let t0 = Instant::now();
            let r = check(&cfg).expect("valid config");
            best = best.min(t0.elapsed().as_secs_f64());
            last = Some(r);
        }
        let Some(r) = last else { continue };
        let verdict = match &r.outcome {
            Outcome::Holds => "holds".to_string(),
            Outcome::BoundReached => "bound reached".to_string(),
            Outcome::Violation { invariant, depth, .. } => {
                format!("{invariant:?} at depth {depth}")
            }
        };
        println!(
            "{name:<30} {:>10} {:>12} {:>6} {:>10.4} {:>12.0}  {verdict}",
            r.states,
            r.transitions,
            r.depth,
            best,
            r.states as f64 / best
        );
    }
}
