//! The fuzzing tier, run on every change: hostile inputs go through the `emu_smp` API in
//! this process, each run bounded in guest instructions and memory, and any host panic
//! (an `Internal` error from `emu_smp::run`, a panic escaping it) fails the test with the
//! seed and the mutation that caused it, the input saved for `emu run`.
//!
//! Deterministic: every case's randomness comes from the tier's seed and the case's
//! index (splitmix64), so a failure reproduces from its seed and index alone.
//!
//! - `EMU_FUZZ_SEED=N` changes the seed (default 1);
//! - `EMU_FUZZ_CASES=N` changes the number of cases (default: each test's own);
//! - `EMU_FUZZ_CASE=I` runs only case I (with the seed printed by a failure).
//!
//! Tests: `elf_mutants_never_panic_the_host` (mutated ELF files). A second harness (the
//! guest making random system calls) goes beside it as its own `#[test]`, reusing
//! [`Tier`], [`Rng`] and [`run_guest`].
//!
//! For longer, coverage-guided runs see `fuzz/` and the README's "Fuzzing" section.

use emu_smp::{Outcome, Profile, RecordSink, RunConfig, SimError};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// splitmix64 (Steele, Lea, Flood 2014): the tier's only randomness.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How one case ended, for the tier's summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// The program was refused before it ran (a load error).
    Refused,
    /// The guest exited.
    Exited,
    /// A signal killed the guest.
    Signaled,
    /// The instruction bound stopped it.
    Bounded,
    /// Another simulation error (unsupported instruction, deadlock, out of memory).
    Stopped,
}

/// The settings of one tier, from its defaults and the environment.
struct Tier {
    seed: u64,
    cases: usize,
    only: Option<usize>,
}

impl Tier {
    fn new(default_cases: usize) -> Tier {
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<u64>().ok());
        Tier {
            seed: var("EMU_FUZZ_SEED").unwrap_or(1),
            cases: var("EMU_FUZZ_CASES").map_or(default_cases, |n| n as usize),
            only: var("EMU_FUZZ_CASE").map(|n| n as usize),
        }
    }

    /// The generator of case `i`: independent of every other case.
    fn rng(&self, i: usize) -> Rng {
        let mut r = Rng::new(self.seed ^ (i as u64).wrapping_mul(0xd6e8_feb8_6659_fd93));
        r.next();
        r
    }

    /// Runs `case(i)` for every case on two threads; `case` returns what happened or, on
    /// a host panic, the failure report. Panics listing every failure.
    fn run(&self, name: &str, case: impl Fn(usize) -> Result<Verdict, String> + Sync) {
        let indices: Vec<usize> = match self.only {
            Some(i) => vec![i],
            None => (0..self.cases).collect(),
        };
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        let counts = Mutex::new(std::collections::BTreeMap::<Verdict, usize>::new());
        let t0 = std::time::Instant::now();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = indices.get(k) else { break };
                    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| case(i)))
                        .unwrap_or_else(|p| {
                            Err(format!("panic escaped the harness: {}", text(&*p)))
                        });
                    match outcome {
                        Ok(v) => *counts.lock().expect("counts").entry(v).or_default() += 1,
                        Err(report) => failures.lock().expect("failures").push((i, report)),
                    }
                });
            }
        });
        let counts = counts.into_inner().expect("counts");
        eprintln!(
            "{name}: seed {}, {} cases in {:.1} s: {counts:?}",
            self.seed,
            indices.len(),
            t0.elapsed().as_secs_f64()
        );
        let mut failures = failures.into_inner().expect("failures");
        failures.sort();
        if !failures.is_empty() {
            let shown: Vec<String> = failures
                .iter()
                .take(20)
                .map(|(i, r)| {
                    format!("case {i} (EMU_FUZZ_SEED={} EMU_FUZZ_CASE={i}): {r}", self.seed)
                })
                .collect();
            panic!(
                "{name}: {} of {} cases panicked the host:\n{}",
                failures.len(),
                indices.len(),
                shown.join("\n")
            );
        }
        if self.only.is_none() {
            let ran = indices.len() - counts.get(&Verdict::Refused).copied().unwrap_or(0);
            assert!(
                ran * 5 >= indices.len(),
                "{name}: only {ran} of {} cases got past the loader: the mutations are too blunt",
                indices.len()
            );
        }
    }
}

fn text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

/// Bounds of every guest run: instructions and guest memory.
const MAX_INSNS: u64 = 50_000;
const MEMORY_MIB: u64 = 16;

/// Runs `image` as a guest on `cores` cores with the tier's bounds. `Err` is a host
/// panic: an internal error of the run, or a panic escaping `emu_smp::run`.
fn run_guest(image: Vec<u8>, cores: usize, oracle: bool) -> Result<Verdict, String> {
    let profile = Profile::load("skylake-sp").map_err(|e| format!("profile: {e}"))?;
    let mut cfg =
        RunConfig::new(image.into(), "/fuzz/prog".into(), vec![b"prog".to_vec()], profile);
    cfg.cores = cores;
    cfg.memory_mib = MEMORY_MIB;
    cfg.max_instructions = Some(MAX_INSNS);
    cfg.capture_output = true;
    cfg.records = RecordSink::Drop;
    cfg.oracle = oracle;
    cfg.validate().map_err(|e| format!("config: {e}"))?;
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| emu_smp::run(&cfg)))
        .map_err(|p| format!("emu_smp::run panicked: {}", text(&*p)))?;
    match r {
        Err(SimError::Internal(m)) => Err(format!("internal error while loading: {m}")),
        Err(e @ (SimError::Load(_) | SimError::OutOfMemory(_))) => {
            if std::env::var_os("EMU_FUZZ_VERBOSE").is_some() {
                eprintln!("refused: {e}");
            }
            Ok(Verdict::Refused)
        }
        Err(e) => Err(format!("unexpected error before the run: {e}")),
        Ok(r) => match r.outcome {
            Outcome::Error(SimError::Internal(m)) => Err(format!("internal error in the run: {m}")),
            Outcome::Error(SimError::InstructionLimit(_)) => Ok(Verdict::Bounded),
            Outcome::Error(_) => Ok(Verdict::Stopped),
            Outcome::Exited(_) => Ok(Verdict::Exited),
            Outcome::Signaled { .. } => Ok(Verdict::Signaled),
        },
    }
}

/// Where failing inputs are saved.
fn failure_dir() -> PathBuf {
    std::env::temp_dir().join("emu-fuzz-failures")
}

// ---------------------------------------------------------------------------------------
// ELF mutants
// ---------------------------------------------------------------------------------------

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_GNU_STACK: u32 = 0x6474_e551;
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// A tiny static program: one PT_LOAD of `code` at `base` (its first byte the entry),
/// optionally with a .bss and a PT_GNU_STACK. ET_DYN places it at 0 (a static PIE).
fn tiny_elf(e_type: u16, code: &[u8], bss: u64) -> Vec<u8> {
    let base = if e_type == ET_DYN { 0 } else { 0x40_0000 };
    let phnum = 2u16;
    let code_off = 64 + 56 * u64::from(phnum);
    let mut b = vec![0u8; code_off as usize];
    b[..4].copy_from_slice(b"\x7fELF");
    (b[4], b[5], b[6]) = (2, 1, 1);
    b[16..18].copy_from_slice(&e_type.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&(base + code_off).to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&phnum.to_le_bytes());
    b.extend_from_slice(code);
    let filesz = b.len() as u64;
    let load: [u64; 6] = [0, base, base, filesz, filesz + bss, 0x1000];
    b[64..68].copy_from_slice(&PT_LOAD.to_le_bytes());
    b[68..72].copy_from_slice(&7u32.to_le_bytes());
    for (k, v) in load.iter().enumerate() {
        b[72 + 8 * k..80 + 8 * k].copy_from_slice(&v.to_le_bytes());
    }
    b[120..124].copy_from_slice(&PT_GNU_STACK.to_le_bytes());
    b[124..128].copy_from_slice(&6u32.to_le_bytes());
    b
}

/// The programs mutants start from: hand-made tiny ones (fast, so most cases reach the
/// guest) and real static programs of the workloads crate (glibc, musl, glibc static PIE).
fn bases() -> Vec<(String, Vec<u8>)> {
    // exit_group(0) after touching the stack and the .bss; then a loop of writes.
    let exit0: &[u8] = &[
        0x48, 0x89, 0xe0, // mov rax, rsp
        0x48, 0x8b, 0x00, // mov rax, [rax]
        0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax, 231
        0x31, 0xff, // xor edi, edi
        0x0f, 0x05, // syscall
    ];
    let spin: &[u8] = &[
        0x48, 0x8d, 0x05, 0xf9, 0xff, 0xff, 0xff, // lea rax, [rip - 7]
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (write)
        0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi, 1
        0x48, 0x8d, 0x35, 0xe8, 0xff, 0xff, 0xff, // lea rsi, [rip - 24]
        0xba, 0x08, 0x00, 0x00, 0x00, // mov edx, 8
        0x0f, 0x05, // syscall
        0xeb, 0xdf, // jmp back to the start
    ];
    let mut v = vec![
        ("tiny-exec".to_string(), tiny_elf(ET_EXEC, exit0, 0)),
        ("tiny-exec-bss".to_string(), tiny_elf(ET_EXEC, exit0, 0x3000)),
        ("tiny-pie".to_string(), tiny_elf(ET_DYN, exit0, 0x100)),
        ("tiny-spin".to_string(), tiny_elf(ET_EXEC, spin, 0)),
    ];
    for (name, libc) in [
        ("hello", workloads::Libc::Musl),
        ("hello", workloads::Libc::Glibc),
        ("exitcode", workloads::Libc::GlibcPie),
    ] {
        let p = workloads::find(name, libc).unwrap_or_else(|| panic!("{name} ({libc}) not built"));
        let bytes = workloads::elf_bytes(p).unwrap_or_else(|e| panic!("{name} ({libc}): {e}"));
        v.push((format!("{name}.{libc}"), bytes.into_owned()));
    }
    v
}

/// Values that sit on the edges the loader checks.
const EDGES: &[u64] = &[
    0,
    1,
    2,
    0x38,
    0x40,
    0xfff,
    0x1000,
    0x1001,
    0xffff,
    0x1_0000,
    0x20_0000,
    0x40_0000,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    1 << 46,
    0x5555_5555_4000,
    TASK_SIZE - 0x1000,
    TASK_SIZE - 1,
    TASK_SIZE,
    TASK_SIZE + 1,
    1 << 47,
    1 << 63,
    u64::MAX - 0x1000,
    u64::MAX - 0xfff,
    u64::MAX - 1,
    u64::MAX,
];

/// An image being mutated, with the record of what was done to it.
struct Mutant {
    b: Vec<u8>,
    log: Vec<String>,
}

/// (name, offset, size) of every ELF header field.
const EHDR_FIELDS: &[(&str, usize, usize)] = &[
    ("EI_CLASS", 4, 1),
    ("EI_DATA", 5, 1),
    ("EI_VERSION", 6, 1),
    ("EI_OSABI", 7, 1),
    ("e_type", 16, 2),
    ("e_machine", 18, 2),
    ("e_version", 20, 4),
    ("e_entry", 24, 8),
    ("e_phoff", 32, 8),
    ("e_shoff", 40, 8),
    ("e_flags", 48, 4),
    ("e_ehsize", 52, 2),
    ("e_phentsize", 54, 2),
    ("e_phnum", 56, 2),
    ("e_shentsize", 58, 2),
    ("e_shnum", 60, 2),
    ("e_shstrndx", 62, 2),
];

/// (name, offset within a program header, size) of every program header field.
const PHDR_FIELDS: &[(&str, usize, usize)] = &[
    ("p_type", 0, 4),
    ("p_flags", 4, 4),
    ("p_offset", 8, 8),
    ("p_vaddr", 16, 8),
    ("p_paddr", 24, 8),
    ("p_filesz", 32, 8),
    ("p_memsz", 40, 8),
    ("p_align", 48, 8),
];

impl Mutant {
    fn get(&self, off: usize, size: usize) -> Option<u64> {
        let s = self.b.get(off..off.checked_add(size)?)?;
        let mut a = [0u8; 8];
        a[..size].copy_from_slice(s);
        Some(u64::from_le_bytes(a))
    }

    fn set(&mut self, off: usize, size: usize, v: u64) -> bool {
        let Some(end) = off.checked_add(size) else { return false };
        match self.b.get_mut(off..end) {
            Some(s) => {
                s.copy_from_slice(&v.to_le_bytes()[..size]);
                true
            }
            None => false,
        }
    }

    /// Program headers inside the file: (index, offset).
    fn phdrs(&self) -> Vec<(usize, usize)> {
        let phoff = self.get(32, 8).unwrap_or(0);
        let phnum = self.get(56, 2).unwrap_or(0) as usize;
        (0..phnum.min(64))
            .filter_map(|i| {
                let o = usize::try_from(phoff).ok()?.checked_add(56 * i)?;
                (o.checked_add(56)? <= self.b.len()).then_some((i, o))
            })
            .collect()
    }

    fn loads(&self) -> Vec<(usize, usize)> {
        self.phdrs().into_iter().filter(|&(_, o)| self.get(o, 4) == Some(PT_LOAD.into())).collect()
    }

    /// A value for a field that held `old`: an edge, a neighbour, a flipped bit, or
    /// random.
    fn value(r: &mut Rng, old: u64, size: usize) -> u64 {
        let v = match r.below(6) {
            0 | 1 => *r.pick(EDGES),
            2 => old.wrapping_add(r.below(33)).wrapping_sub(16),
            3 => old ^ (1 << r.below(8 * size as u64)),
            4 => old.wrapping_add(r.below(8) << 12),
            _ => r.next(),
        };
        if size == 8 {
            v
        } else {
            v & ((1u64 << (8 * size)) - 1)
        }
    }

    fn mutate(&mut self, r: &mut Rng) {
        let phdrs = self.phdrs();
        let loads = self.loads();
        match r.below(12) {
            0 | 1 => {
                let &(name, off, size) = r.pick(EHDR_FIELDS);
                let old = self.get(off, size).unwrap_or(0);
                let v = Self::value(r, old, size);
                if self.set(off, size, v) {
                    self.log.push(format!("{name} {old:#x} -> {v:#x}"));
                }
            }
            2..=4 if !phdrs.is_empty() => {
                let &(i, o) = r.pick(&phdrs);
                let &(name, off, size) = r.pick(PHDR_FIELDS);
                let old = self.get(o + off, size).unwrap_or(0);
                let v = if name == "p_type" && r.chance(60) {
                    *r.pick(&[PT_LOAD, PT_INTERP, PT_GNU_STACK, 0, 6, 7, 0x6474_e552]) as u64
                } else {
                    Self::value(r, old, size)
                };
                self.set(o + off, size, v);
                self.log.push(format!("phdr[{i}].{name} {old:#x} -> {v:#x}"));
            }
            5 => {
                // Truncation: inside the header, the program headers, or anywhere.
                let len = self.b.len() as u64;
                let phend = phdrs.last().map_or(64, |&(_, o)| o as u64 + 56);
                let cut = match r.below(3) {
                    0 => r.below(65),
                    1 => r.below(phend + 1),
                    _ => r.below(len + 1),
                };
                self.b.truncate(cut as usize);
                self.log.push(format!("truncate to {cut} bytes"));
            }
            6 if !loads.is_empty() => {
                // A range that wraps past 2^64 or runs past TASK_SIZE.
                let &(i, o) = r.pick(&loads);
                let vaddr = self.get(o + 16, 8).unwrap_or(0);
                let offset = self.get(o + 8, 8).unwrap_or(0);
                let k = r.below(0x3000);
                let (field, at, v) = match r.below(4) {
                    0 => (
                        "p_memsz",
                        40,
                        0u64.wrapping_sub(vaddr).wrapping_add(k).wrapping_sub(0x1000),
                    ),
                    1 => (
                        "p_memsz",
                        40,
                        TASK_SIZE.wrapping_sub(vaddr).wrapping_add(k).wrapping_sub(0x1000),
                    ),
                    2 => (
                        "p_filesz",
                        32,
                        0u64.wrapping_sub(offset).wrapping_add(k).wrapping_sub(0x1000),
                    ),
                    _ => ("p_offset", 8, 0u64.wrapping_sub(k)),
                };
                self.set(o + at, 8, v);
                self.log.push(format!("phdr[{i}].{field} -> {v:#x} (wrapping range)"));
            }
            7 if loads.len() >= 2 || (!loads.is_empty() && !phdrs.is_empty()) => {
                // Overlapping segments: one PT_LOAD copied over another header, or moved
                // onto another's address.
                let &(i, from) = r.pick(&loads);
                let &(j, to) = r.pick(&phdrs);
                if r.chance(50) {
                    let h = self.b[from..from + 56].to_vec();
                    self.b[to..to + 56].copy_from_slice(&h);
                    self.log.push(format!("phdr[{j}] = copy of PT_LOAD phdr[{i}]"));
                } else {
                    let va = self.get(from + 16, 8).unwrap_or(0).wrapping_add(r.below(0x2000));
                    let off = self.get(from + 8, 8).unwrap_or(0);
                    self.set(to, 4, PT_LOAD.into());
                    self.set(to + 16, 8, va);
                    self.set(to + 8, 8, (off & !0xfff) | (va & 0xfff));
                    self.log.push(format!("phdr[{j}] = PT_LOAD overlapping phdr[{i}] at {va:#x}"));
                }
            }
            8 if !loads.is_empty() => {
                let &(i, o) = r.pick(&loads);
                let v = 1u64 << (20 + r.below(44));
                self.set(o + 40, 8, v);
                self.log.push(format!("phdr[{i}].p_memsz -> {v:#x} (huge)"));
            }
            9 => {
                // More program headers than there are: garbage past the table.
                let phnum = self.get(56, 2).unwrap_or(0);
                let v = (phnum + 1 + r.below(8)) & 0xffff;
                self.set(56, 2, v);
                self.log.push(format!("e_phnum {phnum} -> {v}"));
            }
            10 if !phdrs.is_empty() => {
                let &(i, o) = r.pick(&phdrs);
                let len = self.b.len() as u64;
                let (off, size) = (r.below(len + 8), *r.pick(&[0, 1, 2, 8, 4096, 4097]));
                self.set(o, 4, PT_INTERP.into());
                self.set(o + 8, 8, off);
                self.set(o + 32, 8, size);
                self.log.push(format!("phdr[{i}] = PT_INTERP at {off:#x}+{size:#x}"));
            }
            _ => {
                // Random bytes, mostly in the first page.
                let n = 1 + r.below(8);
                let limit = if r.chance(80) { 4096.min(self.b.len()) } else { self.b.len() };
                for _ in 0..n {
                    if limit == 0 {
                        break;
                    }
                    let at = r.below(limit as u64) as usize;
                    let v = r.next() as u8;
                    self.b[at] = v;
                    self.log.push(format!("byte {at:#x} = {v:#04x}"));
                }
            }
        }
    }
}

/// 10,000 mutants of small static programs: header and program-header fields set to
/// edge values, truncations, wrapping ranges, overlapping and duplicated PT_LOADs, huge
/// `p_memsz`, bogus PT_INTERPs, random bytes. Each loads and runs for at most 50,000
/// instructions in 16 MiB (glibc's hello takes 30,000); none may panic the host.
#[test]
fn elf_mutants_never_panic_the_host() {
    let tier = Tier::new(10_000);
    let bases = bases();
    let seed = tier.seed;
    tier.run("elf_mutants", |i| {
        let mut r = tier.rng(i);
        let (name, base) = r.pick(&bases);
        let mut m = Mutant { b: base.clone(), log: Vec::new() };
        // Mostly one mutation, so that many mutants get past the loader and run.
        for _ in 0..*r.pick(&[1, 1, 1, 2, 2, 3, 4]) {
            m.mutate(&mut r);
        }
        let cores = if r.chance(20) { 2 } else { 1 };
        let oracle = r.chance(20);
        let image = m.b.clone();
        run_guest(image, cores, oracle).map_err(|why| {
            let dir = failure_dir();
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("elf-seed{seed}-case{i}"));
            let saved = match std::fs::write(&file, &m.b) {
                Ok(()) => format!(
                    "saved as {}; `emu run --memory {MEMORY_MIB} --max-insns {MAX_INSNS} --cores {cores} --oracle {} {}`",
                    file.display(),
                    if oracle { "on" } else { "off" },
                    file.display()
                ),
                Err(e) => format!("could not save it: {e}"),
            };
            format!("{why}\n  base {name}, mutations: {}\n  {saved}", m.log.join("; "))
        })
    });
}
