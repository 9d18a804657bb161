//! Host resources a guest can make emu spend stay bounded by the guest's own: each
//! request that once amplified (a writev naming one buffer a thousand times, mappings of
//! a large host file, a mapping of /dev/zero, one read of a whole file, tens of
//! thousands of mappings, touching more memory than the machine has, a dozen processes
//! running one large program) runs under a small
//! guest memory, and emu's peak resident set stays within that memory of what it needs
//! to run a guest that does nothing. The guest must also see what it sees natively.

mod common;

use common::*;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// Guest physical memory of every run, in MiB.
const GUEST_MIB: u64 = 96;

/// Runs `cmd` with stdout discarded; returns its exit code, stderr and peak resident set
/// in KiB (from wait4's rusage).
fn measure(mut cmd: Command) -> (i32, String, u64) {
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).expect("stderr");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 reaps our own child by pid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: status and ru are valid for writes for the duration of the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4");
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    (code, err, ru.ru_maxrss as u64)
}

fn emu_run(bin: &Path, args: &[&str], allow: Option<&Path>) -> Command {
    let mut cmd = emu();
    cmd.args(["run", "--memory", &GUEST_MIB.to_string()]);
    if let Some(a) = allow {
        cmd.arg("--allow-read").arg(a);
    }
    cmd.arg(bin).args(args);
    cmd
}

#[test]
fn amplification_cases_stay_within_the_guests_memory() {
    let dir = scratch("host-resources");
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/amplify.c"),
    )
    .expect("read guest");
    let bin = build_c(&dir, "amplify", &src, &[]);
    let big = dir.join("big");
    let data: Vec<u8> =
        (0..32u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&big, &data).expect("write file");
    drop(data);
    let zero = Path::new("/dev/zero");
    // A 24 MiB program (its data in the file) that sleeps 20 ms, for twelve processes at
    // once: one copy of it, not twelve.
    let big_prog = build_c(
        &dir,
        "bigprog",
        "#include <unistd.h>\nstatic volatile char pad[24 << 20] = {1};\n\
         int main(void) { usleep(20000); return pad[0] - 1; }\n",
        &[],
    );

    // What emu needs to run a guest that does nothing (the program exits at once).
    let (code, err, base) = measure(emu_run(&bin, &["none"], None));
    assert_eq!(code, 2, "{err}");
    let limit = base + 2 * GUEST_MIB * 1024;
    let big_s = big.to_str().unwrap();

    // Cases the native run must agree with, line for line.
    for (args, allow) in [
        (vec!["writev"], None),
        (vec!["filemap", big_s], Some(big.as_path())),
        (vec!["devzero", "/dev/zero"], Some(zero)),
        (vec!["read", big_s], Some(big.as_path())),
        (vec!["exec", big_prog.to_str().unwrap()], Some(big_prog.as_path())),
    ] {
        let (code, err, rss) = measure(emu_run(&bin, &args, allow));
        let mut native = Command::new(&bin);
        native.args(&args);
        let (ncode, nerr, _) = measure(native);
        assert_eq!((code, &err), (ncode, &nerr), "{args:?}: emu and native differ");
        assert!(
            rss <= limit,
            "{args:?}: emu's peak RSS {rss} KiB is past {limit} KiB (idle run {base} KiB + 2 x {GUEST_MIB} MiB)"
        );
    }

    // Mappings until vm.max_map_count: the same errno as natively (the count differs by
    // the vDSO's two mappings emu does not have).
    let (code, err, rss) = measure(emu_run(&bin, &["maps"], None));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("then Cannot allocate memory"), "{err}");
    let n: u64 = err.split_whitespace().nth(1).and_then(|w| w.parse().ok()).expect("count");
    assert!((65_000..=65_530).contains(&n), "{err}");
    assert!(rss <= limit, "maps: peak RSS {rss} KiB is past {limit} KiB");

    // More memory touched than the machine has: emu stops with its own error.
    let (code, err, rss) = measure(emu_run(&bin, &["exhaust"], None));
    assert_eq!(code, 125, "{err}");
    assert!(err.contains(&format!("guest physical memory exhausted ({GUEST_MIB} MiB)")), "{err}");
    assert!(rss <= limit, "exhaust: peak RSS {rss} KiB is past {limit} KiB");
    let _ = std::fs::remove_dir_all(&dir);
}
