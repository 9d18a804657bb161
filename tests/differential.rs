//! Differential tests: every program of the workloads' `diff` kind (glibc, glibc
//! static-PIE and musl builds) runs natively and under emu with the same arguments,
//! stdin and environment; stdout, stderr and exit status must be identical.

mod common;

use common::*;
use std::process::Command;
use std::sync::Mutex;

fn compare(
    p: &workloads::Program,
    cores: usize,
    profile: &str,
    extra: &[&str],
) -> Result<(), String> {
    let setup = |cmd: &mut Command| {
        cmd.args(p.default_args)
            .env("EMU_TEST_VAR", "hello")
            .env("EMU_TEST_X", "1")
            .env("GLIBC_TUNABLES", GLIBC_TUNABLES);
    };
    let mut native = Command::new(p.path);
    setup(&mut native);
    let n = run_with_stdin(native, p.stdin.as_bytes());
    let mut e = emu();
    e.args(["run", "--profile", profile, "--cores", &cores.to_string()]).args(extra).arg(p.path);
    setup(&mut e);
    let g = run_with_stdin(e, p.stdin.as_bytes());
    if n.stdout == g.stdout && n.stderr == g.stderr && n.status.code() == g.status.code() {
        // Exit codes of signal deaths: native reports no code, emu 128+signal.
        Ok(())
    } else if n.status.code().is_none() && n.stdout == g.stdout {
        use std::os::unix::process::ExitStatusExt;
        let sig = n.status.signal().unwrap_or(0);
        if g.status.code() == Some(128 + sig) {
            Ok(())
        } else {
            Err(format!("{} {}: native killed by {sig}\nemu: {}", p.name, p.libc, show(&g)))
        }
    } else {
        Err(format!(
            "{} {} on {cores} cores differs\nnative: {}\nemu: {}",
            p.name,
            p.libc,
            show(&n),
            show(&g)
        ))
    }
}

fn run_all(filter: impl Fn(&workloads::Program) -> bool, cores: usize, profile: &str) {
    run_all_with(filter, cores, profile, &[]);
}

fn run_all_with(
    filter: impl Fn(&workloads::Program) -> bool,
    cores: usize,
    profile: &str,
    extra: &[&str],
) {
    let progs: Vec<&workloads::Program> = workloads::programs()
        .iter()
        .filter(|p| p.kind == workloads::Kind::Diff && filter(p))
        .collect();
    assert!(!progs.is_empty());
    let queue = Mutex::new(progs.clone());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(p) = queue.lock().map(|mut q| q.pop()).ok().flatten() else { break };
                if let Err(e) = compare(p, cores, profile, extra) {
                    if let Ok(mut f) = failures.lock() {
                        f.push(e);
                    }
                }
            });
        }
    });
    let f = failures.into_inner().unwrap_or_default();
    assert!(f.is_empty(), "{} of {} programs differ:\n{}", f.len(), progs.len(), f.join("\n\n"));
}

#[test]
fn every_diff_program_matches_native_on_one_core() {
    run_all(|_| true, 1, "skylake-sp");
}

#[test]
fn every_diff_program_matches_native_on_two_cores() {
    run_all(|_| true, 2, "skylake-sp");
}

#[test]
fn every_diff_program_matches_native_on_four_cores() {
    run_all(|_| true, 4, "skylake-sp");
}

#[test]
fn every_diff_program_matches_native_on_eight_cores() {
    run_all(|_| true, 8, "zen3");
}

#[test]
fn every_diff_program_matches_native_under_the_zen3_profile() {
    run_all(|_| true, 1, "zen3");
}

#[test]
fn every_diff_program_matches_native_under_every_lazy_mm_policy() {
    // The default (refcount) runs in every test above.
    for policy in ["shootdown", "shootdown-all", "shootdown-active", "hazard-pointer"] {
        run_all_with(|_| true, 4, "skylake-sp", &["--lazy-mm", policy]);
    }
}

#[test]
fn musl_and_glibc_are_both_built() {
    assert!(workloads::musl_available(), "musl-gcc is required (apt-get install musl-tools)");
    for libc in [workloads::Libc::Glibc, workloads::Libc::GlibcPie, workloads::Libc::Musl] {
        assert!(workloads::find("printf", libc).is_some(), "printf not built for {libc}");
    }
}

#[test]
fn every_diff_program_matches_native_under_every_walker_sync_policy() {
    // The default (implied) runs in every test above; shared futexes run GUP-fast.
    for policy in ["broadcast", "targeted", "none"] {
        run_all_with(|_| true, 4, "zen3", &["--walker-sync", policy]);
    }
}
