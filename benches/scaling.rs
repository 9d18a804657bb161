//! Core-count scaling benchmark: the shared-region workload (`madvise_shared`, one thread
//! per simulated core, each touching its slice of one region and zapping it with
//! madvise(MADV_DONTNEED)) at 1 to 64 cores. The total work is held constant (the
//! iterations are divided among the threads), so a simulator whose cost grows with
//! guest work, not with cores squared, shows a flat host-seconds-per-instruction column.
//! Prints host wall time (best of N), guest instructions, shootdowns, IPIs, and host
//! seconds per billion guest instructions, and host microseconds per shootdown and per
//! shootdown target (a remote CPU a flush was queued for).
//!
//! Run: `cargo bench --bench scaling` (optionally `-- --quick`, `-- --profile zen3`,
//! `-- --flush invlpgb`).

use std::process::{Command, Stdio};
use std::time::Instant;

/// Iterations of all threads together.
const TOTAL_ITERATIONS: usize = 12_800;
/// Pages in each thread's slice.
const PAGES: &str = "16";

fn arg_after(args: &[String], flag: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let profile = arg_after(&args, "--profile", "skylake-sp");
    let flush = arg_after(&args, "--flush", "ipi");
    let quick = args.iter().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 3 };
    let stats = std::env::temp_dir().join(format!("emu-scaling-{}.json", std::process::id()));
    println!(
        "madvise_shared, {TOTAL_ITERATIONS} iterations in all, {PAGES} pages per thread; \
         profile {profile}, flush {flush}; best of {reps}"
    );
    println!(
        "{:>5} {:>8} {:>11} {:>10} {:>8} {:>8} {:>14} {:>12} {:>12}",
        "cores",
        "host s",
        "guest insns",
        "shootdowns",
        "targets",
        "IPIs",
        "s per 1e9 insn",
        "us per flush",
        "us per target"
    );
    for cores in [1usize, 2, 4, 8, 16, 32, 64] {
        let n = cores.to_string();
        let iters = (TOTAL_ITERATIONS / cores).to_string();
        let mut best = f64::INFINITY;
        for _ in 0..reps {
            let t = Instant::now();
            let st = Command::new(env!("CARGO_BIN_EXE_emu"))
                .args(["run", "--profile", &profile, "--flush", &flush, "--cores", &n, "--stats"])
                .arg(&stats)
                .args(["madvise_shared", &n, PAGES, &iters])
                .stdout(Stdio::null())
                .status()
                .expect("emu run");
            best = best.min(t.elapsed().as_secs_f64());
            assert!(st.success(), "madvise_shared failed on {cores} cores");
        }
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&stats).expect("stats")).expect("json");
        let t = &v["totals"];
        let insns = t["instructions"].as_u64().unwrap_or(0);
        let flushes = t["shootdowns"].as_u64().unwrap_or(0);
        // Remote CPUs a flush was queued for, summed over all shootdowns.
        let targets: u64 = v["shootdowns"]
            .as_array()
            .map(|r| r.iter().map(|x| x["targets"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0);
        println!(
            "{:>5} {:>8.3} {:>11} {:>10} {:>8} {:>8} {:>14.1} {:>12.2} {:>12.2}",
            cores,
            best,
            insns,
            flushes,
            targets,
            t["ipis_sent"].as_u64().unwrap_or(0),
            best / insns.max(1) as f64 * 1e9,
            best / flushes.max(1) as f64 * 1e6,
            if targets > 0 { best / targets as f64 * 1e6 } else { f64::NAN },
        );
    }
    let _ = std::fs::remove_file(&stats);
}
