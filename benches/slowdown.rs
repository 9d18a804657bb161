//! Slowdown benchmark: each CPU-bound workload runs natively (best of 5) and under emu
//! (best of 2) in the same process run; prints native and emu wall time, the slowdown
//! (emu / native), guest MIPS and host seconds per billion guest instructions.
//!
//! Run: `cargo bench --bench slowdown` (optionally `-- --profile zen3`, `-- --cores 2`,
//! which runs each single-threaded program on a machine of that many cores and so with
//! the coherence directory on, or `-- --quick`).

use std::process::{Command, Stdio};
use std::time::Instant;

/// (program, arguments): sized for about 0.2-1.5 G guest instructions each.
const CASES: &[(&str, &[&str])] = &[
    ("sieve", &["16000000", "2"]),
    ("crc32", &["16777216", "4"]),
    ("sort", &["2000000", "2"]),
    ("sha_like", &["8388608", "3"]),
    ("matmul_int", &["512", "1"]),
];

fn time_native(path: &str, args: &[&str], reps: usize) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            let st =
                Command::new(path).args(args).stdout(Stdio::null()).status().expect("native run");
            assert!(st.success(), "{path} failed natively");
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn time_emu(path: &str, args: &[&str], profile: &str, cores: &str, reps: usize) -> (f64, u64) {
    let stats = std::env::temp_dir().join(format!("emu-bench-{}.json", std::process::id()));
    let mut best = f64::INFINITY;
    let mut insns = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let st = Command::new(env!("CARGO_BIN_EXE_emu"))
            .args(["run", "--no-env", "--profile", profile, "--cores", cores, "--stats"])
            .arg(&stats)
            .arg(path)
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("emu run");
        best = best.min(t.elapsed().as_secs_f64());
        assert!(st.success(), "{path} failed under emu");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&stats).expect("stats")).expect("json");
        insns = v["totals"]["instructions"].as_u64().unwrap_or(0);
    }
    let _ = std::fs::remove_file(&stats);
    (best, insns)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let profile = args
        .iter()
        .position(|a| a == "--profile")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "skylake-sp".into());
    let cores = args
        .iter()
        .position(|a| a == "--cores")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "1".into());
    let quick = args.iter().any(|a| a == "--quick");
    let (nrep, erep) = if quick { (2, 1) } else { (5, 2) };
    println!("profile {profile}, {cores} core(s); native best of {nrep}, emu best of {erep}");
    println!(
        "{:<12} {:>10} {:>10} {:>9} {:>12} {:>10} {:>14}",
        "program", "native s", "emu s", "slowdown", "guest insns", "MIPS", "s per 1e9 insn"
    );
    let mut slow = Vec::new();
    for (name, a) in CASES {
        let Some(p) = workloads::find(name, workloads::Libc::Glibc) else {
            eprintln!("{name}: not built");
            continue;
        };
        let n = time_native(p.path, a, nrep);
        let (e, insns) = time_emu(p.path, a, &profile, &cores, erep);
        let s = e / n;
        slow.push(s);
        println!(
            "{:<12} {:>10.3} {:>10.2} {:>8.1}x {:>12} {:>10.1} {:>14.2}",
            name,
            n,
            e,
            s,
            insns,
            insns as f64 / e / 1e6,
            e / (insns as f64 / 1e9)
        );
    }
    let geo = (slow.iter().map(|s| s.ln()).sum::<f64>() / slow.len().max(1) as f64).exp();
    println!("geometric mean slowdown: {geo:.1}x");
}
