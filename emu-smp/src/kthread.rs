//! Per-CPU kernel threads: `kworker/N`, which runs the CPU's deferrable per-CPU work
//! (vmstat_update, queued every `sysctl_stat_interval` by mm/vmstat.c), so that a busy
//! CPU switches from its user task to a kernel thread and back without going idle, as
//! in Linux; each such round trip takes and drops a lazy mm reference under
//! `--lazy-mm refcount` (lazymm.rs).
//!
//! ```text
//! user task --tick, work due--> kworker/N (user -> kernel: lazy TLB, mmgrab_lazy_tlb)
//! kworker/N --work done-------> user task (kernel -> user: switch_mm, mmdrop_lazy_tlb)
//! ```
//!
//! Simplification: the kworker is not a task of the runqueues; it runs at the tick
//! that finds its work due (the work is deferrable: an idle CPU is not woken for it,
//! and a CPU in a kernel path runs it at a later tick), and its time is charged to the
//! CPU between the two switches.

use crate::machine::{fp, KState, Machine, INIT_MM};

impl Machine {
    /// At a tick of busy CPU `k`: the kworker's work, if due, runs now when the current
    /// task is in user mode (else at its return to user mode).
    pub(crate) fn kworker_tick(&mut self, k: usize) {
        if self.k.cpus[k].kstate == KState::User {
            self.kworker_run_if_due(k);
        }
    }

    /// On CPU `k`, whose current task is about to run user code: if its kworker's work
    /// is due (its timer fired while the CPU was busy), switch to the kworker, run the
    /// work and switch back.
    pub(crate) fn kworker_run_if_due(&mut self, k: usize) {
        let ms = self.profile.kernel.vm_stat_interval_ms;
        if ms <= 0.0 {
            return;
        }
        let interval = self.fp_of_ns((ms * 1e6) as u64).max(1);
        let now = self.now(k);
        if self.k.cpus[k].next_kwork_fp == 0 {
            // The work is first queued when the CPU first runs a task (vmstat's
            // shepherd queues it on busy CPUs).
            self.k.cpus[k].next_kwork_fp = now + interval;
            return;
        }
        if now < self.k.cpus[k].next_kwork_fp {
            return;
        }
        let Some(tid) = self.k.cpus[k].current else { return };
        let Some(mm) = self.k.tasks.get(&tid).map(|t| t.mm) else { return };
        self.k.cpus[k].next_kwork_fp = now + interval;
        let switch = fp(self.profile.kernel.context_switch_cycles);
        // __schedule to kworker/k: a kernel thread borrowing the task's mm.
        self.charge(k, switch);
        self.probes.cpus[k].context_switches += 1;
        self.context_switch_mm(k, INIT_MM);
        self.charge(k, fp(self.profile.kernel.kworker_work_cycles));
        // The work done, the kworker sleeps and the task runs again.
        self.charge(k, switch);
        self.probes.cpus[k].context_switches += 1;
        self.context_switch_mm(k, mm);
        self.probes.lazy_mm.kworker_runs += 1;
        let end = self.now(k);
        self.trace_span(k, "kworker: vmstat_update", now, end);
    }
}
