//! `emu-check`: bounded, exhaustive model checkers for kernel mechanisms whose races are
//! too rare to meet in a simulation run.
//!
//! The one checker today is [`mmcid`]: the per-mm concurrency-ID (mm_cid) ownership
//! scheme of `kernel/sched/core.c` and `kernel/sched/sched.h` (`mm_cid_schedin`,
//! `mm_cid_schedout`, `sched_mm_cid_fork`, `sched_mm_cid_exit`, the fixup walks), as first
//! merged and with each of the four fixes of January 2026. It explores every interleaving
//! of fork, exit, schedule-in, schedule-out, migration and the fixup walk steps
//! breadth-first, so the first violation found has a shortest trace.
//!
//! The crate knows nothing of the emulator: it depends on no other `emu` crate, and the
//! command line (`emu check mm-cid`) is a thin wrapper over [`mmcid::check`].

mod explore;
pub mod mmcid;

pub use explore::{Outcome, Report};
