//! `emu-smp`: the simulated machine and the Linux model. It composes `emu-core` cores
//! and the `emu-mmu` memory system with a kernel model (ELF loader, tasks, scheduler,
//! system calls, address spaces, signals) and runs static x86-64 Linux programs.

#![allow(clippy::cast_possible_truncation)]

mod apic;
mod cidsched;
mod config;
#[cfg(test)]
mod cost_tests;
mod cpumask;
mod direct;
mod exec;
mod fdtypes;
mod filelock;
mod fs;
mod fswrite;
mod host;
mod itimer;
mod kdata;
mod kthread;
mod lazymm;
mod loader;
mod lock;
mod machine;
mod misc;
mod mm;
mod mmcid;
mod mmpath;
mod path;
mod poll;
mod process;
mod procfs;
pub mod profile;
mod rcu;
pub mod records;
mod rlimit;
mod rng;
mod sched;
mod signal;
mod splice;
mod stats;
pub mod strategy;
mod syscall;
mod sysvshm;
mod task;
pub mod tlbflush;
mod trace;
mod vdso;
mod walker;

pub use config::{ConfigError, RunConfig, MAX_CORES};
pub use host::HostStats;
pub use lazymm::LazyMmStats;
pub use machine::{Machine, Outcome, SimError};
pub use mm::Thp;
pub use profile::{Profile, ProfileError};
pub use records::RecordSink;
pub use stats::{LatencySummary, RunStats, ShootdownRecord, SCHEMA_VERSION};
pub use strategy::{Axis, BrokenPolicy, CpumaskPolicy, FlushTransport, LazyMmPolicy, Strategy};
pub use trace::Trace;

/// The result of a run.
pub struct RunResult {
    /// How the guest ended.
    pub outcome: Outcome,
    /// Statistics.
    pub stats: RunStats,
    /// Chrome trace-event JSON, when tracing was on.
    pub chrome_trace: Option<serde_json::Value>,
    /// ftrace text of tlb:tlb_flush, when tracing was on.
    pub ftrace: Option<String>,
    /// The guest's stdout, when the run captured it (at most 1 MiB kept).
    pub stdout: Vec<u8>,
    /// The guest's stderr, when the run captured it (at most 1 MiB kept).
    pub stderr: Vec<u8>,
    /// Why the records file could not be written, if it could not.
    pub records_error: Option<String>,
}

/// Runs a configuration to completion, on a thread of its own (so that a panic in the
/// simulation ends only this run).
pub fn run(cfg: &RunConfig) -> Result<RunResult, SimError> {
    let cfg = cfg.clone();
    let handle = std::thread::Builder::new()
        .name("emu-sim".into())
        .stack_size(16 << 20)
        .spawn(move || -> Result<RunResult, SimError> {
            let mut m = Machine::new(&cfg)?;
            // A bug in emu ends the run like a simulation error, keeping the statistics
            // gathered up to it (the panic message itself goes to stderr).
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.run()))
                .unwrap_or_else(|p| Outcome::Error(SimError::Internal(panic_text(&*p))));
            let stats = m.stats();
            let ghz = cfg.profile.ghz();
            let chrome_trace = m.trace().map(|t| t.chrome_json(cfg.cores, ghz));
            let ftrace = m.trace().map(Trace::ftrace_text);
            let (stdout, stderr) = m.take_output();
            let records_error = m.records_error();
            Ok(RunResult { outcome, stats, chrome_trace, ftrace, stdout, stderr, records_error })
        })
        .map_err(|e| SimError::OutOfMemory(format!("cannot start the simulation thread: {e}")))?;
    handle.join().unwrap_or_else(|p| Err(SimError::Internal(panic_text(&*p))))
}

/// The message of a panic payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the simulation thread panicked".into())
}
