//! Fuzzing tier, system calls: a guest makes random system calls with edge-case
//! arguments (tests/guests/syscall_fuzz.c), under many seeds, in-process through the
//! emu_smp library with an instruction bound and a small guest memory. Whatever the guest
//! gets back, emu itself must not panic, hang or blow up: every run ends with the guest's
//! exit, a guest signal, or a simulation error other than an internal one. At least
//! 10,000 calls are made in all; a failure names the seed to rerun.

mod common;

use common::*;
use std::sync::Arc;

#[test]
fn ten_thousand_random_system_calls_never_break_emu() {
    let dir = scratch("syscall-fuzz");
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/syscall_fuzz.c"),
    )
    .expect("read guest");
    let bin = build_c(&dir, "syscall_fuzz", &src, &[]);
    let elf: Arc<[u8]> = std::fs::read(&bin).expect("read ELF").into();
    let profile = emu_smp::Profile::load("skylake-sp").expect("profile");
    let (runs, per_run) = (200u64, 100);
    let mut calls = 0;
    for seed in 1..=runs {
        let argv = vec![
            b"syscall_fuzz".to_vec(),
            seed.to_string().into_bytes(),
            per_run.to_string().into_bytes(),
        ];
        let mut cfg = emu_smp::RunConfig::new(
            elf.clone(),
            "/fuzz/syscall_fuzz".into(),
            argv,
            profile.clone(),
        );
        cfg.cores = 2;
        cfg.seed = seed;
        cfg.memory_mib = 256;
        cfg.max_instructions = Some(50_000_000);
        cfg.capture_output = true;
        cfg.records = emu_smp::RecordSink::Drop;
        cfg.validate().expect("config");
        let r = emu_smp::run(&cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        if let emu_smp::Outcome::Error(emu_smp::SimError::Internal(m)) = &r.outcome {
            panic!("seed {seed}: emu panicked: {m}");
        }
        let out = String::from_utf8_lossy(&r.stdout);
        calls += out.lines().filter(|l| l.contains(' ')).count();
    }
    eprintln!("{calls} random system calls in {runs} runs");
    assert!(calls >= 10_000, "only {calls} system calls were made");
}
