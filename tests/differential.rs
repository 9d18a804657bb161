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

#[test]
fn odirect_reads_of_a_host_file_match_native() {
    // diff/odirect.c given a host file: emu reads it through an O_DIRECT host
    // descriptor (so the file system's alignment rules are the host's) and, where that
    // file system does block direct I/O, pins the guest's pages with GUP-fast first.
    let dir = scratch("odirect");
    let data = dir.join("data.bin");
    let bytes: Vec<u8> =
        (0..2_200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(&data, &bytes).expect("data file");
    for libc in [workloads::Libc::Glibc, workloads::Libc::Musl] {
        let p = workloads::find("odirect", libc).expect("odirect built");
        let n = Command::new(p.path).arg(&data).output().expect("run natively");
        let stats = dir.join("stats.json");
        let g = emu()
            .args(["run", "--cores", "2", "--stats"])
            .arg(&stats)
            .arg("--allow-read")
            .arg(&data)
            .arg(p.path)
            .arg(&data)
            .output()
            .expect("run emu");
        assert!(
            n.stdout == g.stdout && n.status.code() == g.status.code(),
            "{libc}: native {}\nemu {}",
            show(&n),
            show(&g)
        );
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&stats).expect("stats")).expect("JSON");
        let pins = v["walker_sync"]["gup_fast_walks"].as_u64().unwrap_or(0);
        // Block file systems pin; tmpfs buffers O_DIRECT reads.
        let dio = String::from_utf8_lossy(&n.stdout).contains("8 KiB at 0  ") && !on_tmpfs(&data);
        // Nine pin calls: seven reads, the read-only buffer's, and 1 MiB + 512 in two.
        assert_eq!(pins, if dio { 9 } else { 0 }, "{libc}: {}", v["walker_sync"]);
    }
}

#[test]
fn the_working_directory_matches_native() {
    // diff/chdir.c given a directory with f.txt and sub/: chdir, fchdir and getcwd, paths
    // relative to the working directory, a thread's chdir seen by the process
    // (CLONE_FS) and a forked child's not, on one and on four cores.
    let dir = scratch("chdir");
    std::fs::create_dir_all(dir.join("sub")).expect("sub");
    std::fs::write(dir.join("f.txt"), "hello\n").expect("f.txt");
    let mut failures = Vec::new();
    for libc in [workloads::Libc::Glibc, workloads::Libc::GlibcPie, workloads::Libc::Musl] {
        let Some(p) = workloads::find("chdir", libc) else { continue };
        let n = Command::new(p.path).arg(&dir).output().expect("run natively");
        assert!(String::from_utf8_lossy(&n.stdout).contains("after the thread: sub\n"));
        for cores in ["1", "4"] {
            let g = emu()
                .args(["run", "--cores", cores, "--allow-read"])
                .arg(&dir)
                .arg(p.path)
                .arg(&dir)
                .output()
                .expect("run emu");
            if n.stdout != g.stdout || n.status.code() != g.status.code() {
                failures.push(format!(
                    "{libc} on {cores}\nnative: {}\nemu: {}",
                    show(&n),
                    show(&g)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Whether `p` lies on tmpfs (statfs's f_type is TMPFS_MAGIC).
fn on_tmpfs(p: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a valid C string and `st` a statfs buffer the call fills.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == 0x0102_1994 }
}

/// The files diff/exec_basic.c execs, in a scratch directory of their own for `prog`
/// (its `#!` scripts name `prog` as their interpreter).
fn exec_scratch(prog: &std::path::Path, tag: &str) -> std::path::PathBuf {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let dir = scratch(&format!("exec-{tag}"));
    let file = |name: &str, body: String, mode: u32| {
        let p = dir.join(name);
        std::fs::write(&p, body).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let prog = prog.display();
    let d = dir.display();
    file("noexec.txt", "hi\n".into(), 0o644);
    file("text", "echo hi\n".into(), 0o755);
    file("empty", String::new(), 0o755);
    file("noint", format!("#!{d}/nointerp\n"), 0o755);
    file("emptyint", "#!\n".into(), 0o755);
    file("script", format!("#!{prog} script-arg\n"), 0o755);
    file("nest1", format!("#!{prog} script-arg\n"), 0o755);
    for k in 2..=6 {
        file(&format!("nest{k}"), format!("#!{d}/nest{}\n", k - 1), 0o755);
    }
    symlink("loop2", dir.join("loop")).expect("symlink");
    symlink("loop", dir.join("loop2")).expect("symlink");
    symlink(format!("{prog}"), dir.join("link")).expect("symlink");
    dir
}

#[test]
fn exec_programs_match_native() {
    // diff/exec_basic.c and diff/exec_thread.c given their scratch directory, with
    // the program and the directory readable (execve opens them as open does).
    let mut failures = Vec::new();
    for name in ["exec_basic", "exec_thread"] {
        for libc in [workloads::Libc::Glibc, workloads::Libc::GlibcPie, workloads::Libc::Musl] {
            let Some(p) = workloads::find(name, libc) else { continue };
            let prog = std::fs::canonicalize(p.path).expect("program path");
            let dir = exec_scratch(&prog, &format!("{name}-{libc}"));
            let n = Command::new(&prog).arg(&dir).env("GLIBC_TUNABLES", GLIBC_TUNABLES).output();
            let n = n.expect("run natively");
            for (cores, lazy) in
                [(1, "refcount"), (4, "refcount"), (4, "shootdown"), (2, "hazard-pointer")]
            {
                let g = emu()
                    .args(["run", "--cores", &cores.to_string(), "--lazy-mm", lazy])
                    .args(["--mm-cid", "current", "--allow-read"])
                    .arg(&dir)
                    .arg("--allow-read")
                    .arg(&prog)
                    .arg(&prog)
                    .arg(&dir)
                    .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
                    .output()
                    .expect("run emu");
                if n.stdout != g.stdout
                    || n.stderr != g.stderr
                    || n.status.code() != g.status.code()
                {
                    failures.push(format!(
                        "{name} {libc} on {cores} cores, --lazy-mm {lazy}\nnative: {}\nemu: {}",
                        show(&n),
                        show(&g)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn an_exec_loop_stops_at_the_instruction_limit() {
    // A program that execs itself for ever: each exec frees the old address space, and
    // --max-insns ends the run.
    let dir = scratch("exec-loop");
    let src = r#"
#include <unistd.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    (void)argc;
    char *av[] = {argv[0], NULL};
    execv("/proc/self/exe", av);
    return 1;
}
"#;
    let prog = common::build_c(&dir, "loop", src, &[]);
    let g = emu()
        .args(["run", "--max-insns", "3000000", "--allow-read"])
        .arg(&prog)
        .arg(&prog)
        .output()
        .expect("run emu");
    let err = String::from_utf8_lossy(&g.stderr);
    assert!(err.contains("instruction limit"), "{}", show(&g));
}
