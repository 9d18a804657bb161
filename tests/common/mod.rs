//! Helpers shared by the integration tests: running the `emu` binary and native
//! programs, and building small static test programs with the system compiler.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The emu binary under test.
pub fn emu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_emu"))
}

/// The glibc ifunc choices depend on host CPUID; the native oracle must run the same
/// SSE2 code paths the emulator's CPUID selects.
pub const GLIBC_TUNABLES: &str =
    "glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,\
-FMA,-FMA4,-SSE4_1,-SSE4_2,-SSSE3,-ERMS,-FSRM,-AVX_Fast_Unaligned_Load,-MOVBE,-RTM";

/// Runs a command with `stdin`, capturing stdout and stderr.
pub fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(mut si) = child.stdin.take() {
        // The guest may exit without reading its input.
        let _ = si.write_all(stdin);
    }
    child.wait_with_output().expect("wait")
}

/// A scratch directory unique to one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("emu-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Compiles a C source to a static executable with gcc.
pub fn build_c(dir: &Path, name: &str, src: &str, flags: &[&str]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).expect("write source");
    let out = dir.join(name);
    let st = Command::new("gcc")
        .args(["-O2", "-static"])
        .args(flags)
        .arg(&c)
        .arg("-o")
        .arg(&out)
        .status()
        .expect("run gcc");
    assert!(st.success(), "gcc failed for {name}");
    out
}

/// A readable rendering of a process output for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
