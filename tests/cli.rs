//! The command line as a user meets it: running catalogue workloads and third-party
//! programs, exit codes, error messages on bad input, and deterministic statistics.

mod common;

use common::*;

#[test]
fn runs_a_catalogue_workload_by_name() {
    let o = emu().args(["run", "hello", "x"]).output().expect("run");
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("hello from emu"), "{}", show(&o));
    let o = emu().args(["run", "--musl", "hello"]).output().expect("run");
    assert!(o.status.success(), "{}", show(&o));
}

#[test]
fn lists_workloads_and_profiles() {
    let o = emu().args(["list", "workloads"]).output().expect("run");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("hello") && s.contains("ptrchase"), "{s}");
    let o = emu().args(["list", "profiles"]).output().expect("run");
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("skylake-sp") && s.contains("zen3"), "{s}");
}

/// busybox-static from the distribution: a real, third-party static program.
#[test]
fn busybox_matches_native() {
    let bb = std::path::Path::new("/bin/busybox");
    assert!(bb.exists(), "/bin/busybox missing: apt-get install busybox-static (.ci/run does)");
    let dir = scratch("busybox");
    let file = dir.join("data.txt");
    std::fs::write(&file, "pear\napple\nfig\napple\n").expect("write");
    let f = file.to_str().unwrap_or_default();
    let cases: Vec<Vec<&str>> = vec![
        vec!["echo", "hello", "world"],
        vec!["seq", "1", "7"],
        vec!["expr", "6", "*", "7"],
        vec!["factor", "1234567890"],
        vec!["sort", f],
        vec!["uniq", "-c", f],
        vec!["sha256sum", f],
        vec!["md5sum", f],
        vec!["wc", f],
        vec!["od", "-x", f],
        vec!["cat", f],
        vec!["awk", "BEGIN { s = 0; for (i = 1; i <= 100; i++) s += i * i; print s }"],
        vec!["dc", "-e", "2 100 ^ p"],
        vec!["sed", "-n", "s/p/P/gp", f],
        vec!["printf", "%08.3f|%x\\n", "3.14159", "255"],
    ];
    let dirarg = dir.to_str().unwrap_or_default();
    for args in cases {
        let n = std::process::Command::new(bb).args(&args).output().expect("native");
        let e =
            emu().args(["run", "--allow-read", dirarg]).arg(bb).args(&args).output().expect("emu");
        assert_eq!(
            (n.status.code(), &n.stdout, &n.stderr),
            (e.status.code(), &e.stdout, &e.stderr),
            "busybox {args:?}\nnative: {}\nemu: {}",
            show(&n),
            show(&e)
        );
    }
}

#[test]
fn host_files_are_readable_only_when_allowed() {
    let dir = scratch("allow");
    let file = dir.join("secret.txt");
    std::fs::write(&file, "top secret\n").expect("write");
    let bb = "/bin/busybox";
    let o = emu().args(["run", bb, "cat"]).arg(&file).output().expect("run");
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Permission denied"), "{}", show(&o));
    let o = emu()
        .args(["run", "--allow-read"])
        .arg(&dir)
        .args([bb, "cat"])
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(o.stdout, b"top secret\n", "{}", show(&o));
    // A path leaving the allowed directory through `..` is refused whether or not it
    // exists: the errno does not reveal the host's files.
    for outside in ["../../etc/passwd", "../../no-such-file-anywhere"] {
        let o = emu()
            .args(["run", "--allow-read"])
            .arg(&dir)
            .args([bb, "cat"])
            .arg(dir.join(outside))
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("Permission denied"), "{outside}: {}", show(&o));
    }
    // The directories leading to an allowed one can be looked at (realpath walks them).
    let o = emu()
        .args(["run", "--allow-read"])
        .arg(&dir)
        .args([bb, "realpath"])
        .arg(dir.join("./secret.txt"))
        .output()
        .expect("run");
    let want = format!("{}\n", std::fs::canonicalize(&file).expect("canonical").display());
    assert_eq!(String::from_utf8_lossy(&o.stdout), want, "{}", show(&o));
}

#[test]
fn bad_input_gives_precise_errors_and_nonzero_exits() {
    let dir = scratch("badinput");
    // Not an ELF.
    let text = dir.join("text");
    std::fs::write(&text, "#!/bin/sh\necho hi\n").expect("write");
    let o = emu().args(["run"]).arg(&text).output().expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("emu: "), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a valid ELF"), "{}", show(&o));
    // Truncated ELF.
    let bb = std::fs::read("/bin/busybox").unwrap_or_default();
    let trunc = dir.join("trunc");
    std::fs::write(&trunc, &bb[..bb.len().min(200)]).expect("write");
    let o = emu().args(["run"]).arg(&trunc).output().expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    // A 32-bit ELF header.
    let mut elf32 = bb[..64.min(bb.len())].to_vec();
    elf32[4] = 1;
    let e32 = dir.join("elf32");
    std::fs::write(&e32, &elf32).expect("write");
    let o = emu().args(["run"]).arg(&e32).output().expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    // Dynamically linked.
    let o = emu().args(["run", "/bin/ls"]).output().expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("dynamically linked"), "{}", show(&o));
    // Missing file, unknown workload, bad flags, bad profile.
    for args in [
        vec!["run", "/no/such/file"],
        vec!["run", "no-such-workload"],
        vec!["run", "--cores", "0", "hello"],
        vec!["run", "--bogus-flag", "hello"],
        vec!["run", "--profile", "no-such-profile", "hello"],
        vec!["run", "--memory", "1", "hello"],
    ] {
        let o = emu().args(&args).output().expect("run");
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("emu: ") || err.contains("error:"), "{args:?}: {}", show(&o));
        assert!(o.stdout.is_empty());
    }
    let o = emu().args(["frobnicate"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn guest_faults_are_reported_like_signals() {
    let dir = scratch("faults");
    let segv = build_c(&dir, "segv", "int main(void){volatile int *p=(int*)16; return *p;}", &[]);
    let o = emu().arg("run").arg(&segv).output().expect("run");
    assert_eq!(o.status.code(), Some(139), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("SIGSEGV") && err.contains("address 0x10") && err.contains("rip 0x"),
        "{err}"
    );
    let ill = build_c(&dir, "ill", "int main(void){__builtin_trap();}", &[]);
    let o = emu().arg("run").arg(&ill).output().expect("run");
    assert_eq!(o.status.code(), Some(132), "{}", show(&o));
    let fpe =
        build_c(&dir, "fpe", "int main(int c,char**v){volatile int z=c-1; return 10/z;}", &[]);
    let o = emu().arg("run").arg(&fpe).output().expect("run");
    assert_eq!(o.status.code(), Some(136), "{}", show(&o));
}

#[test]
fn signal_handlers_run_and_return() {
    let dir = scratch("sighandler");
    let src = r#"
#include <signal.h>
#include <stdio.h>
#include <setjmp.h>
static sigjmp_buf env;
static volatile int hits;
static void on_usr1(int s) { hits += s; }
static void on_segv(int s) { (void)s; siglongjmp(env, 7); }
int main(void) {
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1); raise(SIGUSR1);
    struct sigaction sa = {0}; sa.sa_handler = on_segv; sigaction(SIGSEGV, &sa, 0);
    int r = sigsetjmp(env, 1);
    if (r == 0) { volatile int *p = (int *)8; *p = 1; }
    printf("hits=%d jumped=%d\n", hits, r);
    return 0;
}"#;
    let bin = build_c(&dir, "sig", src, &[]);
    let n = std::process::Command::new(&bin).output().expect("native");
    let e = emu().arg("run").arg(&bin).output().expect("emu");
    assert_eq!(n.stdout, e.stdout, "{}", show(&e));
    assert_eq!(e.status.code(), Some(0), "{}", show(&e));
}

#[test]
fn unsupported_instruction_stops_with_rip_bytes_and_disassembly() {
    let dir = scratch("unsupported");
    // SYSENTER from 64-bit code: Linux would take it into its 32-bit compat entry,
    // which emu does not model.
    let src = "int main(void){ __asm__ volatile(\"sysenter\"); return 0; }";
    let bin = build_c(&dir, "sysenter", src, &[]);
    let stats = dir.join("stats.json");
    let o = emu().arg("run").arg("--stats").arg(&stats).arg(&bin).output().expect("run");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unsupported instruction at rip 0x"), "{err}");
    assert!(err.contains("0f 34") && err.contains("sysenter"), "{err}");
    // Partial results are kept.
    let s = std::fs::read_to_string(&stats).expect("stats written despite the error");
    assert!(s.contains("\"instructions\""), "{s}");
}

#[test]
fn an_instruction_cpuid_hides_raises_sigill() {
    // AVX is not in emu's CPUID: the instruction is #UD, as on a CPU without AVX.
    let dir = scratch("avx");
    let src = "int main(void){ __asm__ volatile(\"vaddps %xmm0, %xmm1, %xmm2\"); return 0; }";
    let bin = build_c(&dir, "avx", src, &[]);
    let o = emu().arg("run").arg(&bin).output().expect("run");
    assert_eq!(o.status.code(), Some(128 + 4), "{}", show(&o));
}

#[test]
fn unknown_syscall_returns_enosys_with_one_warning() {
    let dir = scratch("enosys");
    let src = r#"
#include <unistd.h>
#include <sys/syscall.h>
#include <errno.h>
#include <stdio.h>
int main(void){ long a = syscall(999), b = syscall(999);
 printf("%ld %ld %d\n", a, b, errno == ENOSYS); return 0; }"#;
    let bin = build_c(&dir, "enosys", src, &[]);
    let o = emu().arg("run").arg(&bin).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "-1 -1 1\n", "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("emu: unsupported system call 999").count(), 1, "{err}");
}

#[test]
fn stats_are_byte_identical_for_identical_runs() {
    let dir = scratch("determinism");
    let run = |name: &str| {
        let path = dir.join(name);
        let o = emu()
            .args(["run", "--stats"])
            .arg(&path)
            .args(["--seed", "7", "hello", "a"])
            .output()
            .expect("run");
        assert!(o.status.success(), "{}", show(&o));
        std::fs::read(&path).expect("stats")
    };
    let a = run("a.json");
    let b = run("b.json");
    assert_eq!(a, b);
    let v: serde_json::Value = serde_json::from_slice(&a).expect("json");
    assert!(v["totals"]["instructions"].as_u64().unwrap_or(0) > 10_000);
    assert!(v["totals"]["cycles"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn guest_sees_simulated_time_and_seeded_randomness() {
    let dir = scratch("time");
    let src = r#"
#include <stdio.h>
#include <time.h>
#include <sys/random.h>
int main(void){ struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
 volatile unsigned long x = 0; for (unsigned long i = 0; i < 1000000; i++) x += i;
 clock_gettime(CLOCK_MONOTONIC, &b);
 unsigned long r; getrandom(&r, sizeof r, 0);
 printf("%ld %lx\n", (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec), r); return 0; }"#;
    let bin = build_c(&dir, "time", src, &[]);
    let out = |seed: &str| {
        let o = emu().args(["run", "--seed", seed]).arg(&bin).output().expect("run");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (a, b, c) = (out("1"), out("1"), out("2"));
    assert_eq!(a, b, "same seed, same output");
    assert_ne!(a.split(' ').nth(1), c.split(' ').nth(1), "seed changes getrandom");
    let ns: u64 = a.split(' ').next().and_then(|s| s.parse().ok()).unwrap_or(0);
    assert!(ns > 100_000 && ns < 100_000_000, "elapsed simulated ns {ns}");
}

/// The musl build of `hello` (small, static, non-PIE) and its PT_LOAD program headers'
/// offsets in the file.
fn musl_hello() -> (Vec<u8>, Vec<usize>) {
    let p = workloads::find("hello", workloads::Libc::Musl).expect("hello built with musl-gcc");
    let b = workloads::elf_bytes(p).expect("hello").into_owned();
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let phoff = u64::from_le_bytes(b[32..40].try_into().expect("8 bytes")) as usize;
    let loads = (0..u16_at(56))
        .map(|i| phoff + 56 * i)
        .filter(|&o| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes")) == 1)
        .collect();
    (b, loads)
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Writes `bytes` as an executable file and runs it natively (an execve error is an
/// `Err`) and under emu.
fn run_both(dir: &std::path::Path, name: &str, bytes: &[u8]) -> (std::io::Result<Output>, Output) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // ETXTBSY: a child another test thread forked meanwhile may still hold the file's
    // write descriptor until its own exec closes it; the file is fine, try again.
    let mut native = std::process::Command::new(&path).output();
    for _ in 0..50 {
        if !matches!(&native, Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        native = std::process::Command::new(&path).output();
    }
    let e = emu().args(["run", "--memory", "64"]).arg(&path).output().expect("emu");
    (native, e)
}

use std::os::unix::process::ExitStatusExt;
use std::process::Output;

/// ELF files the kernel runs that a full ELF parser rejects: section headers are never
/// read, and program headers may repeat or overlap (later PT_LOADs map over earlier ones).
#[test]
fn elf_files_linux_runs_run() {
    let dir = scratch("elf-runs");
    let (hello, loads) = musl_hello();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut b = hello.clone();
    put_u64(&mut b, 40, 1 << 40); // e_shoff far past the end of the file
    cases.push(("shoff", b));
    let mut b = hello.clone();
    b[60..62].copy_from_slice(&0xffffu16.to_le_bytes()); // e_shnum
    b[62..64].copy_from_slice(&0xfff0u16.to_le_bytes()); // e_shstrndx
    cases.push(("shnum", b));
    // The text PT_LOAD duplicated over the program header after the last PT_LOAD.
    let mut b = hello.clone();
    let (text, after) = (loads[1], loads[loads.len() - 1] + 56);
    let copy = b[text..text + 56].to_vec();
    b[after..after + 56].copy_from_slice(&copy);
    cases.push(("dup-load", b));
    for (name, bytes) in cases {
        let (n, e) = run_both(&dir, name, &bytes);
        let n = n.expect("execve succeeds natively");
        assert_eq!(n.status.code(), Some(0), "{name} natively: {}", show(&n));
        assert_eq!((e.status.code(), &e.stdout), (Some(0), &n.stdout), "{name}: {}", show(&e));
    }
}

/// ELF files whose execve fails in Linux fail in emu with a precise error and exit 1,
/// never a host panic (the wrapping .bss once panicked inside the loader).
#[test]
fn elf_files_linux_refuses_are_precise_errors() {
    let dir = scratch("elf-refused");
    let (hello, loads) = musl_hello();
    let last = *loads.last().expect("a PT_LOAD");
    let vaddr = get_u64(&hello, last + 16);
    let mut cases: Vec<(&str, Vec<u8>, &[&str])> = Vec::new();
    let mut b = hello.clone();
    put_u64(&mut b, last + 40, 0u64.wrapping_sub(vaddr + 5)); // p_memsz: end wraps
    cases.push(("wrap", b, &["wraps past the top", "ENOMEM", "SIGSEGV"]));
    let mut b = hello.clone();
    put_u64(&mut b, last + 40, 1 << 46); // a 64 TiB .bss: more than RAM
    cases.push(("huge-bss", b, &["exceed the guest's 64 MiB", "ENOMEM"]));
    let mut b = hello.clone();
    put_u64(&mut b, last + 32, get_u64(&hello, last + 40) + 1); // p_filesz > p_memsz
    cases.push(("filesz", b, &["p_filesz is larger than p_memsz", "EINVAL"]));
    cases.push(("truncated", hello[..5000].to_vec(), &["cannot be zeroed", "EFAULT"]));
    cases.push(("short-header", hello[..40].to_vec(), &["e_phentsize is 0", "ENOEXEC"]));
    let mut b = hello.clone();
    b[54] = 32; // e_phentsize
    cases.push(("phentsize", b, &["e_phentsize is 32", "ENOEXEC"]));
    let mut b = hello.clone();
    b[56..58].copy_from_slice(&1171u16.to_le_bytes()); // e_phnum: more than 64 KiB
    cases.push(("phnum", b, &["1171 program headers", "ENOEXEC"]));
    let mut b = hello.clone();
    b[56..58].copy_from_slice(&1170u16.to_le_bytes()); // e_phnum: past the end of the file
    cases.push(("phnum-eof", b, &["runs past the end of the file", "ENOEXEC"]));
    let mut b = hello.clone();
    put_u64(&mut b, 24, 1 << 63); // e_entry
    cases.push(("entry", b, &["entry point", "EINVAL"]));
    for (name, bytes, want) in cases {
        let (n, e) = run_both(&dir, name, &bytes);
        // Natively: execve fails (ENOEXEC), or fails after the point of no return and
        // the process is killed by SIGSEGV.
        if let Ok(n) = &n {
            assert_eq!(n.status.signal(), Some(11), "{name} natively: {}", show(n));
        }
        assert_eq!(e.status.code(), Some(1), "{name}: {}", show(&e));
        let err = String::from_utf8_lossy(&e.stderr);
        assert!(err.starts_with("emu: ") && !err.contains("internal error"), "{name}: {err}");
        for w in want {
            assert!(err.contains(w), "{name}: no `{w}` in {err}");
        }
        assert!(e.stdout.is_empty(), "{name}: {}", show(&e));
    }
}

/// A guest that needs more memory than --memory ends with the guest-memory error (and
/// the host buffer stays within the limit: see emu-mmu's phys tests).
#[test]
fn exhausting_guest_memory_is_reported() {
    let o = emu().args(["run", "--memory", "16", "madvise_shared", "1", "8192", "1"]).output();
    let o = o.expect("run");
    assert_eq!(o.status.code(), Some(125), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("guest physical memory exhausted (16 MiB)"),
        "{}",
        show(&o)
    );
}

/// `emu check mm-cid`: the seed's live lock as first merged (exit 4, shortest trace), none
/// with patch 1 (exit 0), the bound (exit 3), a bad variant (exit 1).
#[test]
fn check_mm_cid_verdicts_and_exit_codes() {
    let check = |args: &[&str]| {
        let o = emu().args(["check", "mm-cid"]).args(args).output().expect("run");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        (o, out)
    };
    let (o, out) = check(&["--cpus", "4", "--threads", "5", "--variant", "afm"]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    assert!(out.contains("VIOLATION of I4 live lock"), "{out}");
    assert!(out.contains("shortest trace (4 steps)"), "{out}");
    assert!(out.contains("spins in mm_get_cid holding rq2"), "{out}");
    assert!(out.contains("bitmap={0,1,2,3}"), "{out}");

    let (o, out) = check(&["--cpus", "3", "--threads", "4", "--variant", "afm+p1"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(out.contains("all invariants hold"), "{out}");

    let (o, _) = check(&["--variant", "afm+p1", "--weak-memory", "--quiet"]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));

    let (o, out) = check(&["--variant", "fixed", "--max-states", "100"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    assert!(out.contains("bound reached"), "{out}");

    let (o, _) = check(&["--variant", "p5"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown --variant"), "{}", show(&o));
}

#[test]
fn writing_calls_fail_as_on_a_read_only_file_system() {
    let dir = scratch("rofs");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("sub")).expect("mkdir");
    std::fs::write(root.join("file"), "hi\n").expect("write");
    std::os::unix::fs::symlink("file", root.join("link")).expect("symlink");
    std::os::unix::fs::symlink("nowhere", root.join("dangling")).expect("symlink");
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/rofs.c"),
    )
    .expect("read rofs.c");
    let bin = build_c(&dir, "rofs", &src, &[]);
    let o =
        emu().args(["run", "--allow-read"]).arg(&root).arg(&bin).arg(&root).output().expect("run");
    let want = include_str!("guests/rofs.expected");
    assert_eq!(String::from_utf8_lossy(&o.stdout), want, "{}", show(&o));
    assert!(o.stderr.is_empty(), "no warnings: {}", show(&o));
    // Nothing changed on the host.
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["dangling", "file", "link", "sub"]);
    assert_eq!(std::fs::read_to_string(root.join("file")).expect("read"), "hi\n");
}

#[test]
fn directory_listings_come_in_the_hosts_order() {
    let dir = scratch("getdents");
    let root = dir.join("list");
    std::fs::create_dir_all(root.join("subdir")).expect("mkdir");
    for i in 0..60 {
        std::fs::write(root.join(format!("f{i:02}-{}", 60 - i)), "x").expect("write");
    }
    let src = r#"
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
int main(int c, char **v) {
    DIR *d = opendir(v[1]);
    struct stat s;
    stat(v[1], &s);
    for (struct dirent *e; (e = readdir(d));)
        printf("%s %d %d\n", e->d_name, e->d_type, e->d_name[0] == '.' && e->d_name[1] == 0
               ? e->d_ino == s.st_ino : 1);
    return 0;
}"#;
    let bin = build_c(&dir, "ls", src, &[]);
    let native = std::process::Command::new(&bin).arg(&root).output().expect("run");
    let o =
        emu().args(["run", "--allow-read"]).arg(&root).arg(&bin).arg(&root).output().expect("run");
    assert_eq!(o.stdout, native.stdout, "{}", show(&o));
    let mut sorted: Vec<&[u8]> = native.stdout.split(|&b| b == b'\n').collect();
    sorted.sort();
    let unsorted: Vec<&[u8]> = native.stdout.split(|&b| b == b'\n').collect();
    if sorted != unsorted {
        eprintln!("the host lists this directory out of name order, as it should be tested");
    }
}

#[test]
fn xgetbv_without_osxsave_is_an_invalid_opcode() {
    let dir = scratch("xgetbv");
    let src = r#"
#include <stdio.h>
int main(void) {
    unsigned a, b, c, d, lo, hi;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    printf("osxsave %u\n", (c >> 27) & 1);
    fflush(stdout);
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    printf("xgetbv returned %u\n", lo);
    return 0;
}"#;
    let bin = build_c(&dir, "xgetbv", src, &[]);
    let o = emu().arg("run").arg(&bin).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "osxsave 0\n", "{}", show(&o));
    assert_eq!(o.status.code(), Some(128 + 4), "SIGILL: {}", show(&o));
}

/// The validation command on its smallest configuration: every experiment runs and its
/// row carries the published figure, emu's figure and their ratio.
#[test]
fn validate_quick_reproduces_each_published_experiment() {
    let out = scratch("validate").join("table.md");
    let o = emu().args(["validate", "--quick", "--out"]).arg(&out).output().expect("run");
    assert!(o.status.success(), "{}", show(&o));
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(std::fs::read_to_string(&out).expect("table written"), table);
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| will-it-scale")).collect();
    assert_eq!(rows.len(), 3, "{table}");
    for r in rows {
        let cells: Vec<&str> = r.split('|').map(str::trim).collect();
        let ratio: f64 = cells[6].parse().expect("a ratio");
        let emu: f64 = cells[5].replace(',', "").parse().expect("emu's figure");
        assert!(emu > 0.0 && ratio > 0.0, "{r}");
    }
    // The same run twice gives the same figures (simulated time only).
    let again = emu().args(["validate", "--quick"]).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&again.stdout), table);
}

/// An execve of an ELF file that fails after the point of no return kills the process
/// with SIGSEGV, as natively; one refused before it returns its errno to the caller.
/// busybox sh runs them and reports what it saw.
#[test]
fn execve_of_a_refused_elf_file_is_linux_s_error_or_sigsegv() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("exec-refused");
    let (hello, loads) = musl_hello();
    let last = *loads.last().expect("a PT_LOAD");
    let vaddr = get_u64(&hello, last + 16);
    let mut files: Vec<(&str, Vec<u8>)> = vec![("hello", hello.clone())];
    let mut b = hello.clone();
    put_u64(&mut b, last + 40, 0u64.wrapping_sub(vaddr + 5)); // p_memsz: end wraps
    files.push(("wrap", b));
    let mut b = hello.clone();
    put_u64(&mut b, last + 32, get_u64(&hello, last + 40) + 1); // p_filesz > p_memsz
    files.push(("filesz", b));
    let mut b = hello.clone();
    put_u64(&mut b, 24, 1 << 63); // e_entry
    files.push(("entry", b));
    let mut b = hello.clone();
    b[54] = 32; // e_phentsize: ENOEXEC before the point of no return
    files.push(("phentsize", b));
    for (name, bytes) in &files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // exec from a C program: the shells would run an ENOEXEC file as a script.
    let src = r#"#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        fflush(stdout);
        pid_t p = fork();
        if (p == 0) {
            char *av[] = {argv[i], NULL};
            execv(argv[i], av);
            printf("%s: execve: %s\n", argv[i], strerror(errno));
            return 100;
        }
        int st;
        waitpid(p, &st, 0);
        if (WIFSIGNALED(st)) printf("%s: killed by signal %d\n", argv[i], WTERMSIG(st));
        else printf("%s: exit %d\n", argv[i], WEXITSTATUS(st));
    }
    return 0;
}
"#;
    let runner = build_c(&dir, "runner", src, &[]);
    let names: Vec<String> = files.iter().map(|(n, _)| format!("./{n}")).collect();
    let n = std::process::Command::new(&runner).args(&names).current_dir(&dir).output();
    let n = n.expect("run natively");
    let e = emu()
        .args(["run", "--allow-read"])
        .arg(&dir)
        .arg(&runner)
        .args(&names)
        .current_dir(&dir)
        .output()
        .expect("emu");
    assert_eq!((&n.stdout, n.status.code()), (&e.stdout, e.status.code()), "{}", show(&e));
    let out = String::from_utf8_lossy(&e.stdout);
    assert!(out.contains("./wrap: killed by signal 11"), "{out}");
    assert!(out.contains("./phentsize: execve: Exec format error"), "{out}");
}
