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
//! `-- --flush invlpgb`, and `-- --baseline PATH` to time another emu binary, such as an
//! older build, interleaved with this one).

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

/// One timed configuration: best wall time of `reps` runs, and the statistics of the last.
struct Row {
    best: f64,
    insns: u64,
    flushes: u64,
    targets: u64,
    ipis: u64,
}

/// Runs `bin` on `cores` cores once; returns the wall time and the statistics.
fn run_once(
    bin: &str,
    profile: &str,
    flush: &str,
    cores: usize,
    stats: &std::path::Path,
) -> (f64, serde_json::Value) {
    let n = cores.to_string();
    let iters = (TOTAL_ITERATIONS / cores).to_string();
    let t = Instant::now();
    let st = Command::new(bin)
        .args(["run", "--profile", profile, "--flush", flush, "--cores", &n, "--stats"])
        .arg(stats)
        .args(["madvise_shared", &n, PAGES, &iters])
        .stdout(Stdio::null())
        .status()
        .expect("emu run");
    let secs = t.elapsed().as_secs_f64();
    assert!(st.success(), "{bin}: madvise_shared failed on {cores} cores");
    let v = serde_json::from_slice(&std::fs::read(stats).expect("stats")).expect("json");
    (secs, v)
}

fn row(best: f64, v: &serde_json::Value) -> Row {
    let t = &v["totals"];
    // Remote CPUs a flush was queued for, summed over all shootdowns: the run's totals,
    // or the records in statistics from before the totals existed.
    let targets = v["shootdown_totals"]["targets"].as_u64().unwrap_or_else(|| {
        v["shootdowns"]
            .as_array()
            .map(|r| r.iter().map(|x| x["targets"].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    });
    Row {
        best,
        insns: t["instructions"].as_u64().unwrap_or(0),
        flushes: t["shootdowns"].as_u64().unwrap_or(0),
        targets,
        ipis: t["ipis_sent"].as_u64().unwrap_or(0),
    }
}

fn print_row(label: &str, cores: usize, r: &Row) {
    println!(
        "{:>8} {:>5} {:>8.3} {:>11} {:>10} {:>8} {:>8} {:>14.1} {:>12.2} {:>12.2}",
        label,
        cores,
        r.best,
        r.insns,
        r.flushes,
        r.targets,
        r.ipis,
        r.best / r.insns.max(1) as f64 * 1e9,
        r.best / r.flushes.max(1) as f64 * 1e6,
        if r.targets > 0 { r.best / r.targets as f64 * 1e6 } else { f64::NAN },
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let profile = arg_after(&args, "--profile", "skylake-sp");
    let flush = arg_after(&args, "--flush", "ipi");
    let baseline = arg_after(&args, "--baseline", "");
    let quick = args.iter().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 3 };
    let stats = std::env::temp_dir().join(format!("emu-scaling-{}.json", std::process::id()));
    let now = env!("CARGO_BIN_EXE_emu");
    println!(
        "madvise_shared, {TOTAL_ITERATIONS} iterations in all, {PAGES} pages per thread; \
         profile {profile}, flush {flush}; best of {reps}{}",
        if baseline.is_empty() {
            String::new()
        } else {
            format!(", baseline {baseline} interleaved")
        }
    );
    println!(
        "{:>8} {:>5} {:>8} {:>11} {:>10} {:>8} {:>8} {:>14} {:>12} {:>12}",
        "build",
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
        let mut bins = vec![("now", now.to_string())];
        if !baseline.is_empty() {
            bins.insert(0, ("before", baseline.clone()));
        }
        let mut best = vec![f64::INFINITY; bins.len()];
        let mut last = vec![serde_json::Value::Null; bins.len()];
        for _ in 0..reps {
            for (i, (_, bin)) in bins.iter().enumerate() {
                let (secs, v) = run_once(bin, &profile, &flush, cores, &stats);
                best[i] = best[i].min(secs);
                last[i] = v;
            }
        }
        for (i, (label, _)) in bins.iter().enumerate() {
            print_row(label, cores, &row(best[i], &last[i]));
        }
    }
    let _ = std::fs::remove_file(&stats);
}
