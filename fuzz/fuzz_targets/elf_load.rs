//! libFuzzer target: the input is a program image; emu loads it and runs it on one core
//! with 16 MiB of guest memory for at most 20,000 instructions, as the fuzzing tier in
//! tests/fuzz.rs runs its mutants. Any panic in emu is a finding: libfuzzer-sys aborts on
//! panics (even those `emu_smp::run` would catch and report as internal errors), and the
//! input is saved as a crash artifact. See the README's "Fuzzing" section.
//!
//! With `EMU_FUZZ_WRITE_SEEDS=DIR` in the environment it writes the seed corpus (the
//! catalogue workloads' static binaries, musl and glibc) into DIR and exits instead.

#![no_main]

use emu_smp::{Outcome, Profile, RecordSink, RunConfig, SimError};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn profile() -> &'static Profile {
    static P: OnceLock<Profile> = OnceLock::new();
    P.get_or_init(|| Profile::load("skylake-sp").expect("the built-in profile loads"))
}

/// Writes the catalogue workloads' binaries into `dir`.
fn write_seeds(dir: &std::path::Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let mut n = 0;
    for p in workloads::catalogue() {
        std::fs::write(dir.join(format!("{}.{}", p.name, p.libc)), workloads::elf_bytes(p)?)?;
        n += 1;
    }
    Ok(n)
}

fuzz_target!(init: {
    if let Some(dir) = std::env::var_os("EMU_FUZZ_WRITE_SEEDS") {
        let dir = std::path::PathBuf::from(dir);
        match write_seeds(&dir) {
            Ok(n) => {
                println!("elf_load: {n} seed programs written to {}", dir.display());
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("elf_load: cannot write the seeds to {}: {e}", dir.display());
                std::process::exit(1);
            }
        }
    }
}, |data: &[u8]| {
    let mut cfg =
        RunConfig::new(data.into(), "/fuzz/prog".into(), vec![b"prog".to_vec()], profile().clone());
    cfg.memory_mib = 16;
    cfg.max_instructions = Some(20_000);
    cfg.capture_output = true;
    cfg.records = RecordSink::Drop;
    match emu_smp::run(&cfg) {
        Err(SimError::Internal(m)) => panic!("internal error while loading: {m}"),
        Ok(r) => {
            if let Outcome::Error(SimError::Internal(m)) = r.outcome {
                panic!("internal error in the run: {m}");
            }
        }
        Err(_) => {}
    }
});
