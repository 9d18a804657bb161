//! `emu-smp`: the simulated machine and the Linux model. It composes `emu-core` cores
//! and the `emu-mmu` memory system with a kernel model (ELF loader, tasks, scheduler,
//! system calls, address spaces, signals) and runs static x86-64 Linux programs.

#![allow(clippy::cast_possible_truncation)]

mod config;
mod fs;
mod loader;
mod machine;
mod mm;
mod process;
mod procfs;
pub mod profile;
mod rng;
mod signal;
mod stats;
mod syscall;
mod task;

pub use config::{ConfigError, RunConfig, MAX_CORES};
pub use machine::{Machine, Outcome, SimError};
pub use mm::Thp;
pub use profile::{Profile, ProfileError};
pub use stats::{RunStats, SCHEMA_VERSION};

/// Runs a configuration to completion: the guest's outcome and the run's statistics.
pub fn run(cfg: &RunConfig) -> Result<(Outcome, RunStats), SimError> {
    let mut m = Machine::new(cfg)?;
    let outcome = m.run();
    let stats = m.stats();
    Ok((outcome, stats))
}
