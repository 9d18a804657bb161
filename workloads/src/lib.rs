//! Guest programs for the emulator: C sources under `c/`, compiled by
//! `build.rs` into static x86-64 ELF binaries, and the catalogue naming them.
//!
//! Three kinds of program exist (see [`Kind`]):
//!
//! - **catalogue** (`c/catalogue/`): workloads a user runs by name
//!   (`emu run NAME`), each stressing one TLB-shootdown pattern. Their
//!   binaries are embedded in this crate, so the `emu` binary is
//!   self-contained.
//! - **diff** (`c/diff/`): differential tests. Run natively and under the
//!   emulator, their stdout, stderr and exit status must be identical. They
//!   print only host-independent values (never addresses, times or PIDs).
//! - **bench** (`c/bench/`): CPU-bound programs, about 0.5-1 s natively.
//!
//! Every program is built for glibc ([`Libc::Glibc`]) and, where `musl-gcc`
//! was found at build time, for musl ([`Libc::Musl`]); diff programs are also
//! built as glibc static-PIE ([`Libc::GlibcPie`]).
//!
//! A note for differential testing: static glibc picks string and libm
//! implementations at startup from CPUID (ifuncs), so the native oracle runs
//! the AVX2/EVEX/FMA variants on a modern host while the emulator, whose
//! CPUID hides AVX, runs the SSE2 ones. The diff programs fold only
//! implementation-independent results, and their outputs were checked to be
//! the same with `GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,...`. A
//! harness that wants the oracle on the very same code paths can run the
//! native side with such a tunable.
//!
//! ```no_run
//! let hello = workloads::find("hello", workloads::Libc::Glibc).expect("built");
//! let elf = workloads::elf_bytes(hello)?;
//! assert_eq!(&elf[..4], b"\x7fELF");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// The C library a program was linked against, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Libc {
    /// glibc, `gcc -O2 -static`: a non-PIE static executable (`ET_EXEC`).
    Glibc,
    /// glibc, `gcc -O2 -static-pie -fPIE`: a self-relocating static PIE
    /// (`ET_DYN` without `PT_INTERP`). Built for diff programs only.
    GlibcPie,
    /// musl, `musl-gcc -O2 -static`: a non-PIE static executable.
    Musl,
}

impl Libc {
    /// Every variant, in sort order.
    pub const ALL: [Libc; 3] = [Libc::Glibc, Libc::GlibcPie, Libc::Musl];

    /// The tag used in names and file suffixes: `glibc`, `glibc-pie`, `musl`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Libc::Glibc => "glibc",
            Libc::GlibcPie => "glibc-pie",
            Libc::Musl => "musl",
        }
    }
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`Libc`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownLibc(pub String);

impl fmt::Display for UnknownLibc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown libc {:?} (expected glibc, glibc-pie or musl)", self.0)
    }
}

impl std::error::Error for UnknownLibc {}

impl FromStr for Libc {
    type Err = UnknownLibc;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Libc::ALL.into_iter().find(|l| l.as_str() == s).ok_or_else(|| UnknownLibc(s.to_string()))
    }
}

/// What a program is for; the directory under `c/` it lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A named workload for `emu run NAME` (`c/catalogue/`).
    Catalogue,
    /// A differential test: native and emulated output must match (`c/diff/`).
    Diff,
    /// A CPU-bound benchmark (`c/bench/`).
    Bench,
}

impl Kind {
    /// The directory name: `catalogue`, `diff` or `bench`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Catalogue => "catalogue",
            Kind::Diff => "diff",
            Kind::Bench => "bench",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One built binary: a C program compiled for one [`Libc`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    /// The C file's stem, unique across kinds (`hello`, `strings`, ...).
    pub name: &'static str,
    /// Catalogue, diff or bench.
    pub kind: Kind,
    /// The C library it was linked with.
    pub libc: Libc,
    /// Absolute path of the binary in the build's `OUT_DIR`.
    pub path: &'static str,
    /// One line saying what the program stresses (`// emu-desc:`).
    pub description: &'static str,
    /// Arguments for a short default run, without argv\[0\] (`// emu-args:`).
    pub default_args: &'static [&'static str],
    /// What to feed on stdin in tests, often empty (`// emu-stdin:`).
    pub stdin: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// Every built program, sorted by (kind, name, libc).
#[must_use]
pub fn programs() -> &'static [Program] {
    &PROGRAMS
}

/// The program called `name` built for `libc`, if it was built.
#[must_use]
pub fn find(name: &str, libc: Libc) -> Option<&'static Program> {
    PROGRAMS.iter().find(|p| p.name == name && p.libc == libc)
}

/// The catalogue programs (every libc), in table order.
pub fn catalogue() -> impl Iterator<Item = &'static Program> {
    PROGRAMS.iter().filter(|p| p.kind == Kind::Catalogue)
}

/// The ELF image of `p`.
///
/// Catalogue programs are embedded in the crate and never touch the file
/// system; other kinds are read from [`Program::path`], which exists as
/// long as the build directory does.
///
/// # Errors
///
/// The error of reading [`Program::path`], for programs not embedded.
pub fn elf_bytes(p: &Program) -> std::io::Result<Cow<'static, [u8]>> {
    let embedded = PROGRAMS
        .iter()
        .zip(EMBEDDED.iter())
        .find(|(q, _)| q.kind == p.kind && q.name == p.name && q.libc == p.libc)
        .and_then(|(_, bytes)| *bytes);
    match embedded {
        Some(bytes) => Ok(Cow::Borrowed(bytes)),
        None => std::fs::read(p.path).map(Cow::Owned),
    }
}

/// Whether `musl-gcc` was found at build time (so musl variants exist).
#[must_use]
pub fn musl_available() -> bool {
    MUSL_AVAILABLE
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[off..off + 8]);
        u64::from_le_bytes(a)
    }

    /// Checks the ELF header and program headers of a static x86-64 binary.
    fn check_static_elf(p: &Program, b: &[u8]) {
        let what = format!("{} ({})", p.name, p.libc);
        assert!(b.len() > 64, "{what}: too short");
        assert_eq!(&b[..4], b"\x7fELF", "{what}: ELF magic");
        assert_eq!(b[4], 2, "{what}: ELFCLASS64");
        assert_eq!(b[5], 1, "{what}: little endian");
        assert_eq!(u16_at(b, 18), 0x3e, "{what}: EM_X86_64");
        let e_type = u16_at(b, 16);
        let want_type = if p.libc == Libc::GlibcPie { 3 } else { 2 };
        assert_eq!(e_type, want_type, "{what}: e_type (2 = EXEC, 3 = DYN/PIE)");
        let phoff = usize::try_from(u64_at(b, 32)).expect("e_phoff fits usize");
        let phentsize = usize::from(u16_at(b, 54));
        let phnum = usize::from(u16_at(b, 56));
        assert!(phentsize >= 56 && phnum > 0, "{what}: program headers");
        assert!(phoff + phentsize * phnum <= b.len(), "{what}: program headers in file");
        let mut loads = 0;
        for i in 0..phnum {
            let p_type = u32_at(b, phoff + i * phentsize);
            assert_ne!(p_type, 3, "{what}: PT_INTERP present, not static");
            loads += usize::from(p_type == 1);
        }
        assert!(loads > 0, "{what}: no PT_LOAD");
    }

    #[test]
    fn every_program_is_a_static_x86_64_elf() {
        assert!(!programs().is_empty());
        for p in programs() {
            let bytes = std::fs::read(p.path).unwrap_or_else(|e| panic!("{}: {e}", p.path));
            check_static_elf(p, &bytes);
            let via_api = elf_bytes(p).unwrap_or_else(|e| panic!("{}: {e}", p.path));
            assert!(via_api[..] == bytes[..], "{}: elf_bytes differs from the file", p.name);
            assert_eq!(matches!(via_api, Cow::Borrowed(_)), p.kind == Kind::Catalogue);
        }
    }

    #[test]
    fn table_is_sorted_unique_and_complete() {
        let all = programs();
        for w in all.windows(2) {
            let key = |p: &Program| (p.kind, p.name, p.libc);
            assert!(key(&w[0]) < key(&w[1]), "not sorted/unique: {:?} then {:?}", w[0], w[1]);
        }
        for p in all {
            assert!(!p.description.is_empty() && !p.description.contains('\n'), "{}", p.name);
            assert!(std::path::Path::new(p.path).is_absolute(), "{}", p.path);
            // Every program exists for glibc; musl too when available.
            assert!(find(p.name, Libc::Glibc).is_some(), "{} has no glibc build", p.name);
            if p.kind == Kind::Diff {
                assert!(find(p.name, Libc::GlibcPie).is_some(), "{} has no PIE build", p.name);
            } else {
                assert!(p.libc != Libc::GlibcPie, "{}: PIE only for diff programs", p.name);
            }
            // A source may ask for glibc alone (`// emu-libc: glibc`, e.g. for glibc's
            // rseq registration).
            let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("c")
                .join(p.kind.as_str())
                .join(format!("{}.c", p.name));
            let text = std::fs::read_to_string(&src).expect("the program's source");
            let glibc_only = text.lines().any(|l| l.trim() == "// emu-libc: glibc");
            if musl_available() && !glibc_only {
                assert!(find(p.name, Libc::Musl).is_some(), "{} has no musl build", p.name);
            }
            if glibc_only {
                assert!(find(p.name, Libc::Musl).is_none(), "{} is glibc-only", p.name);
            }
        }
    }

    #[test]
    fn find_and_catalogue() {
        let hello = find("hello", Libc::Glibc).expect("hello is built");
        assert_eq!(hello.kind, Kind::Catalogue);
        assert_eq!(hello.libc, Libc::Glibc);
        assert!(find("hello", Libc::GlibcPie).is_none());
        assert!(find("no-such-program", Libc::Glibc).is_none());
        for p in programs() {
            assert_eq!(find(p.name, p.libc), Some(p));
        }
        let names: Vec<_> = catalogue().map(|p| p.name).collect();
        for want in ["hello", "ptrchase", "mmap_churn", "madvise_shared", "mprotect_flip"] {
            assert!(names.contains(&want), "catalogue lacks {want}");
        }
        assert!(catalogue().all(|p| p.kind == Kind::Catalogue));
        assert_eq!(find("strings", Libc::Glibc).map(|p| p.kind), Some(Kind::Diff));
        assert_eq!(find("sieve", Libc::Glibc).map(|p| p.kind), Some(Kind::Bench));
        let stdio = find("stdio", Libc::Glibc).expect("stdio is built");
        assert!(stdio.stdin.contains('\n') && !stdio.stdin.contains("\\n"));
    }

    #[test]
    fn libc_and_kind_names() {
        for l in Libc::ALL {
            assert_eq!(l.to_string().parse::<Libc>(), Ok(l));
        }
        assert_eq!(Libc::GlibcPie.to_string(), "glibc-pie");
        assert!("uclibc".parse::<Libc>().is_err());
        assert_eq!(Kind::Catalogue.to_string(), "catalogue");
        assert!(Kind::Catalogue < Kind::Diff && Kind::Diff < Kind::Bench);
        assert!(Libc::Glibc < Libc::GlibcPie && Libc::GlibcPie < Libc::Musl);
    }

    /// Runs a program natively with its default args and stdin, as a
    /// differential test's oracle would.
    fn run_native(p: &Program) -> (Vec<u8>, Vec<u8>, Option<i32>) {
        let mut child = Command::new(p.path)
            .args(p.default_args)
            .env("EMU_TEST_VAR", "value from the test")
            .env("EMU_TEST_OTHER", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", p.path));
        let mut stdin = child.stdin.take().expect("stdin piped");
        stdin.write_all(p.stdin.as_bytes()).expect("write stdin");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        (out.stdout, out.stderr, out.status.code())
    }

    #[test]
    fn hello_runs_natively() {
        let hello = find("hello", Libc::Glibc).expect("hello is built");
        let (out, err, code) = run_native(hello);
        assert_eq!(String::from_utf8_lossy(&out), "hello from emu, world! argc=2\n");
        assert!(err.is_empty());
        assert_eq!(code, Some(0));
    }

    /// Every diff program, run natively twice, gives the same stdout,
    /// stderr and exit status: the property the differential tests rely on.
    #[test]
    fn diff_programs_are_deterministic_natively() {
        for p in programs().iter().filter(|p| p.kind == Kind::Diff) {
            let first = run_native(p);
            let second = run_native(p);
            assert!(first == second, "{} ({}) differs between two native runs", p.name, p.libc);
            assert!(!first.0.is_empty(), "{} ({}) printed nothing", p.name, p.libc);
        }
        let exit = find("exitcode", Libc::Glibc).expect("exitcode is built");
        assert_eq!(run_native(exit).2, Some(42));
        let abort = find("abort", Libc::Glibc).expect("abort is built");
        assert_eq!(run_native(abort).2, None, "abort dies by a signal");
    }
}
