//! Lazy-TLB mm references (../shared/AXES.md §2, seed 004): each CPU's `active_mm`, the
//! mm's `mm_users` and `mm_count`, and what the `--lazy-mm` policy does with them.
//!
//! Modelled after kernel/sched/core.c (`context_switch`, `finish_task_switch`),
//! include/linux/sched/mm.h (`mmgrab_lazy_tlb`, `mmdrop_lazy_tlb`), kernel/exit.c
//! (`exit_mm`) and kernel/fork.c (`mmput`, `mmdrop`, `__mmdrop`, `cleanup_lazy_tlbs`,
//! `do_shoot_lazy_tlb`). context_switch's four cases, on CPU `k`:
//!
//! ```text
//! user   --switch--> kernel : active_mm passes to the kernel thread; mmgrab_lazy_tlb; enter_lazy_tlb
//! kernel --switch--> kernel : active_mm (and its reference, if any) passes on
//! kernel --switch--> user   : switch_mm_irqs_off; finish_task_switch: mmdrop_lazy_tlb(prev active_mm)
//! user   --switch--> user   : switch_mm_irqs_off only
//! ```
//!
//! The idle task is the kernel thread of the model; a task past `exit_mm` runs as one
//! (its `mm` is gone, its `active_mm` stays). Every atomic on `mm_count` is a locked
//! RMW of the mm_count line through the cache model, so CPUs bouncing it pay transfers
//! by distance. The final `__mmdrop` frees the PGD and the mm_struct; the oracle
//! records every CPU still using the mm then (lazily or loaded), and every later
//! switch away from a freed mm (kind `lazy-mm-uaf`).

use crate::kdata::KObj;
use crate::machine::{fp, Machine, INIT_MM};
use crate::stats::Violation;
use crate::strategy::LazyCleanup;
use serde::Serialize;

/// Counters of the lazy-mm mechanism (the `lazy_mm` section of the statistics).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LazyMmStats {
    /// Locked RMWs on `mm_count` (lazy grabs and drops, mmput's mmdrop).
    pub mm_count_atomics: u64,
    /// Their cycles: the locked instruction and the line's transfer.
    pub mm_count_atomic_cycles: u64,
    /// Of those, the cache model's part (the line coming from another CPU or level).
    pub mm_count_transfer_cycles: u64,
    /// Locked RMWs on `mm_users` (clone with CLONE_VM, mmput).
    pub mm_users_atomics: u64,
    /// Context switches from a user task to a kernel thread (idle, an exiting task).
    pub user_to_kernel: u64,
    /// Context switches from a kernel thread to a user task.
    pub kernel_to_user: u64,
    /// Runs of a busy CPU's kworker between two stretches of its user task
    /// (user -> kernel -> user without idle; kthread.rs).
    pub kworker_runs: u64,
    /// Lazy references taken (mmgrab_lazy_tlb under `refcount`).
    pub lazy_grabs: u64,
    /// Lazy drops that were only a full barrier (no reference kept: smp_mb).
    pub lazy_drop_barriers: u64,
    /// Address spaces torn down (exit_mmap).
    pub exit_mmaps: u64,
    /// Final mmdrops (__mmdrop).
    pub final_mmdrops: u64,
    /// Of those, run by a CPU dropping its lazy reference in finish_task_switch.
    pub final_mmdrops_in_switch: u64,
    /// do_shoot_lazy_tlb IPIs sent by cleanup_lazy_tlbs.
    pub shootdown_ipis: u64,
    /// do_shoot_lazy_tlb calls run, on the initiator or in IPI handlers.
    pub shootdown_calls: u64,
    /// Of those, calls that found the mm borrowed and switched the CPU to init_mm.
    pub shootdown_switches: u64,
    /// Cycles of the remote calls in their handlers (each call's share of the
    /// interrupt entry and exit included).
    pub shootdown_victim_cycles: u64,
    /// CPUs borrowing the mm (a kernel thread's active_mm) when its final __mmdrop
    /// began, summed over the final mmdrops: what a shootdown must reach.
    pub lazy_users_at_final_mmdrop: u64,
    /// Cycles of the CPUs running the final __mmdrop from its start to the frees
    /// (the remote reads, the IPIs and the wait for their acks).
    pub cleanup_cycles: u64,
    /// Remote reads of published per-CPU lazy mms (`shootdown-active`).
    pub published_reads: u64,
    /// Torn-down address spaces whose mm_struct and PGD (8 KiB) were freed later,
    /// held by lazy references: the time from exit_mmap to __mmdrop, in cycles.
    pub held_after_exit_cycles_total: u64,
    /// The longest such time, in cycles.
    pub held_after_exit_cycles_max: u64,
    /// Torn-down address spaces still held when the run ended.
    pub held_at_end: u64,
    /// CPUs found using an mm that __mmdrop freed (oracle `lazy-mm-uaf`).
    pub uaf: u64,
}

impl Machine {
    /// The mm half of a context switch on CPU `k` to a task whose mm is `next`
    /// (INIT_MM: a kernel thread), before the task runs.
    pub(crate) fn context_switch_mm(&mut self, k: usize, next: u32) {
        // rcu_note_context_switch: a quiescent state.
        self.rcu_qs(k);
        let cpu = &self.k.cpus[k];
        let (prev_user, prev_active) = (cpu.user_ctx, cpu.active_mm);
        if next == INIT_MM {
            if prev_user {
                // user -> kernel: the kernel thread borrows the mm (lazy TLB).
                self.probes.lazy_mm.user_to_kernel += 1;
                self.k.cpus[k].user_ctx = false;
                self.mmgrab_lazy_tlb(k, prev_active);
            }
            // kernel -> kernel: active_mm, and the reference if any, pass on.
            self.enter_lazy_tlb(k);
            return;
        }
        self.k.cpus[k].user_ctx = true;
        self.k.cpus[k].active_mm = next;
        self.switch_mm_irqs_off(k, next);
        if !prev_user {
            // kernel -> user: finish_task_switch drops the kernel thread's reference.
            self.probes.lazy_mm.kernel_to_user += 1;
            self.mmdrop_lazy_tlb(k, prev_active);
        }
    }

    /// exit_mm on CPU `c` for a task leaving `mm`: it grabs a lazy reference, loses its
    /// mm and runs on as a kernel thread borrowing it (enter_lazy_tlb).
    pub(crate) fn exit_mm(&mut self, c: usize, mm: u32) {
        if self.k.cpus[c].user_ctx && self.k.cpus[c].active_mm == mm {
            self.k.cpus[c].user_ctx = false;
            self.mmgrab_lazy_tlb(c, mm);
        }
        self.enter_lazy_tlb(c);
    }

    /// mmgrab_lazy_tlb on CPU `k` for `mm`, the mm its kernel thread now borrows.
    fn mmgrab_lazy_tlb(&mut self, k: usize, mm: u32) {
        if mm == INIT_MM || !self.k.mms.contains_key(&mm) {
            return;
        }
        if self.k.strategy.lazy_mm.publishes_lazy_mm() {
            // this_cpu_write of the published lazy mm (and, for a hazard pointer, the
            // full barrier that orders it before the mm's use).
            let mut cost = self.kline_access(k, KObj::LazyMm(k), true);
            if self.k.strategy.lazy_mm.publish_barrier() {
                cost += fp(self.profile.insn.locked);
            }
            self.charge(k, cost);
        }
        if self.k.strategy.lazy_mm.refcounts() && !self.k.strategy.broken.skips_lazy_refs() {
            self.mm_count_rmw(k, mm, true);
            self.k.cpus[k].lazy_ref = true;
            self.probes.lazy_mm.lazy_grabs += 1;
            self.check_mm_count(mm);
        }
    }

    /// mmdrop_lazy_tlb (finish_task_switch's mmdrop_lazy_tlb_sched) on CPU `k` for the
    /// mm its kernel thread borrowed: the reference's drop, whose last frees the mm, or
    /// only the full barrier membarrier needs when no reference was taken.
    fn mmdrop_lazy_tlb(&mut self, k: usize, mm: u32) {
        if mm == INIT_MM {
            return;
        }
        if !self.k.mms.contains_key(&mm) {
            // The kernel thread borrowed an mm that __mmdrop freed: the switch away
            // touches freed memory.
            if self.probes.oracle {
                self.lazy_mm_uaf(k, mm);
            }
            self.k.cpus[k].lazy_ref = false;
            return;
        }
        if self.k.strategy.lazy_mm.publishes_lazy_mm() {
            let cost = self.kline_access(k, KObj::LazyMm(k), true);
            self.charge(k, cost);
        }
        if std::mem::take(&mut self.k.cpus[k].lazy_ref) {
            let last = self.mm_count_rmw(k, mm, false);
            self.check_mm_count(mm);
            if last {
                self.probes.lazy_mm.final_mmdrops_in_switch += 1;
                self.probes.lazy_mm.lazy_users_at_final_mmdrop += self.lazy_users(mm);
                // mmdrop_sched -> __mmdrop; cleanup_lazy_tlbs has nothing to do when
                // lazy users hold references.
                self.free_mm_struct(k, mm);
            }
        } else {
            // smp_mb(): x86 implements it as a locked add to the stack (a local line).
            self.charge(k, fp(self.profile.insn.locked));
            self.probes.lazy_mm.lazy_drop_barriers += 1;
        }
    }

    /// The CPUs whose kernel thread borrows `mm`.
    fn lazy_users(&self, mm: u32) -> u64 {
        self.k.cpus.iter().filter(|c| !c.user_ctx && c.active_mm == mm).count() as u64
    }

    /// Debug builds check that under `refcount` mm_count is the lazy references plus
    /// one for the users while there are users (and, past the last mmput, until its
    /// mmdrop), so it reaches zero exactly when the last lazy user leaves.
    fn check_mm_count(&self, mm: u32) {
        if !cfg!(debug_assertions)
            || !self.k.strategy.lazy_mm.refcounts()
            || self.k.strategy.broken.skips_lazy_refs()
        {
            return;
        }
        let Some(m) = self.k.mms.get(&mm) else { return };
        let held = self.k.cpus.iter().filter(|c| c.lazy_ref && c.active_mm == mm).count() as u32;
        let users_ref = m.count.checked_sub(held);
        debug_assert!(
            users_ref == Some(1) || m.users == 0 && users_ref == Some(0),
            "mm {mm}: mm_count {} with {held} lazy references and {} users",
            m.count,
            m.users
        );
        debug_assert_eq!(
            held as u64,
            self.lazy_users(mm),
            "mm {mm}: lazy users without references"
        );
    }

    /// A locked RMW by CPU `k` of `mm`'s mm_count (increment, or decrement when `inc`
    /// is false); true when a decrement reached zero.
    fn mm_count_rmw(&mut self, k: usize, mm: u32, inc: bool) -> bool {
        let line = self.kline_access(k, KObj::MmCount(mm), true);
        let cost = fp(self.profile.insn.locked) + line;
        self.charge(k, cost);
        let st = &mut self.probes.lazy_mm;
        st.mm_count_atomics += 1;
        st.mm_count_atomic_cycles += cost >> 8;
        st.mm_count_transfer_cycles += line >> 8;
        let Some(m) = self.k.mms.get_mut(&mm) else { return false };
        if inc {
            m.count += 1;
            false
        } else {
            debug_assert!(m.count > 0, "mm_count of mm {mm} underflows");
            m.count = m.count.saturating_sub(1);
            m.count == 0
        }
    }

    /// mmget (copy_mm with CLONE_VM) or mmput's decrement on CPU `c`: a locked RMW of
    /// `mm_users` (in the mm_struct's first line); true when mmput dropped the last user.
    pub(crate) fn mm_users_rmw(&mut self, c: usize, mm: u32, inc: bool) -> bool {
        if mm == INIT_MM {
            return false;
        }
        let cost = fp(self.profile.insn.locked) + self.kline_access(c, KObj::MmStruct(mm), true);
        self.charge(c, cost);
        self.probes.lazy_mm.mm_users_atomics += 1;
        let Some(m) = self.k.mms.get_mut(&mm) else { return false };
        if inc {
            m.users += 1;
            false
        } else {
            debug_assert!(m.users > 0, "mm_users of mm {mm} underflows");
            m.users = m.users.saturating_sub(1);
            m.users == 0
        }
    }

    /// exit_mmap happened on CPU `c` at its current time.
    pub(crate) fn note_exit_mmap(&mut self, c: usize, mm: u32) {
        let now = self.now(c);
        if let Some(m) = self.k.mms.get_mut(&mm) {
            m.exited_fp = Some(now);
        }
        self.probes.lazy_mm.exit_mmaps += 1;
    }

    /// mmput's mmdrop on CPU `c` (the reference of all the users); true when it was the
    /// last reference: the caller runs __mmdrop.
    pub(crate) fn mmdrop(&mut self, c: usize, mm: u32) -> bool {
        self.mm_count_rmw(c, mm, false)
    }

    /// cleanup_lazy_tlbs, the start of __mmdrop on CPU `c`: under the shootdown
    /// policies, do_shoot_lazy_tlb on the CPUs that may still borrow `mm`, locally at
    /// once and remotely by cross-CPU calls whose acks the step's end waits for. True
    /// when the hazard-pointer scan is to follow, one step per match
    /// ([`Machine::hazard_scan`]).
    pub(crate) fn cleanup_lazy_tlbs(&mut self, c: usize, mm: u32) -> bool {
        let n = self.hw.cpus.len();
        self.probes.lazy_mm.lazy_users_at_final_mmdrop += self.lazy_users(mm);
        let targets: Vec<usize> = match self.k.strategy.lazy_mm.cleanup() {
            LazyCleanup::Nothing => return false,
            LazyCleanup::HazardScan => return true,
            LazyCleanup::AllCpus => (0..n).collect(),
            LazyCleanup::Cpumask => {
                // on_each_cpu_mask reads mm_cpumask(mm).
                let cost = self.kline_access(c, KObj::MmCpumask(mm), false);
                self.charge(c, cost);
                let Some(m) = self.k.mms.get(&mm) else { return false };
                (0..n).filter(|&t| m.ctx.cpumask.test(t)).collect()
            }
            LazyCleanup::PublishedLazyMm => {
                let mut v = Vec::new();
                for t in 0..n {
                    if t != c {
                        let cost = self.kline_access(c, KObj::LazyMm(t), false);
                        self.charge(c, cost);
                        self.probes.lazy_mm.published_reads += 1;
                    }
                    let cpu = &self.k.cpus[t];
                    if !cpu.user_ctx && cpu.active_mm == mm {
                        v.push(t);
                    }
                }
                v
            }
        };
        if targets.contains(&c) {
            self.do_shoot_lazy_tlb(c, mm);
        }
        let remote: Vec<usize> = targets.into_iter().filter(|&t| t != c).collect();
        if !remote.is_empty() {
            let (_, ipis) = self.shoot_lazy_ipis(c, &remote, mm);
            self.probes.lazy_mm.shootdown_ipis += u64::from(ipis);
        }
        false
    }

    /// One step of hazptr_scan on CPU `c` for `mm` (the hazard-pointer policy): after a
    /// match's do_shoot_lazy_tlb (`check`), the do_check_lazy_tlb call to it; otherwise
    /// the slots from CPU `from` on are read until one holds `mm` (a match on `c` itself
    /// is shot at once), whose do_shoot_lazy_tlb call the step's end waits for. Returns
    /// where the scan goes on (the next CPU, and whether a check is due), or None when
    /// every slot has been read.
    pub(crate) fn hazard_scan(
        &mut self,
        c: usize,
        mm: u32,
        from: usize,
        check: bool,
    ) -> Option<(usize, bool)> {
        if check {
            // smp_call_function_single(do_check_lazy_tlb, wait): a call that only looks.
            let (_, ipis) = self.hazard_check_ipi(c, from - 1);
            self.probes.lazy_mm.shootdown_ipis += u64::from(ipis);
            return Some((from, false));
        }
        for t in from..self.hw.cpus.len() {
            if t != c {
                let cost = self.kline_access(c, KObj::LazyMm(t), false);
                self.charge(c, cost);
                self.probes.lazy_mm.published_reads += 1;
            }
            let cpu = &self.k.cpus[t];
            if cpu.user_ctx || cpu.active_mm != mm {
                continue;
            }
            if t == c {
                self.do_shoot_lazy_tlb(c, mm);
                continue;
            }
            let (_, ipis) = self.shoot_lazy_ipis(c, &[t], mm);
            self.probes.lazy_mm.shootdown_ipis += u64::from(ipis);
            return Some((t + 1, true));
        }
        None
    }

    /// do_shoot_lazy_tlb on CPU `k`: a kernel thread borrowing `mm` switches to init_mm.
    pub(crate) fn do_shoot_lazy_tlb(&mut self, k: usize, mm: u32) {
        self.probes.lazy_mm.shootdown_calls += 1;
        let cpu = &self.k.cpus[k];
        if cpu.user_ctx || cpu.active_mm != mm {
            return;
        }
        self.probes.lazy_mm.shootdown_switches += 1;
        self.k.cpus[k].active_mm = INIT_MM;
        if self.k.strategy.lazy_mm.publishes_lazy_mm() {
            let cost = self.kline_access(k, KObj::LazyMm(k), true);
            self.charge(k, cost);
        }
        if self.k.cpus[k].tlb.loaded_mm != INIT_MM {
            self.switch_mm_irqs_off(k, INIT_MM);
        }
    }

    /// The end of __mmdrop on CPU `c`: the oracle looks for CPUs still using `mm`, then
    /// the PGD (mm_free_pgd), the global ASID (destroy_context) and the mm_struct go.
    pub(crate) fn free_mm_struct(&mut self, c: usize, mm: u32) {
        if self.probes.oracle {
            for k in 0..self.hw.cpus.len() {
                let cpu = &self.k.cpus[k];
                if cpu.active_mm == mm || cpu.tlb.loaded_mm == mm {
                    self.lazy_mm_uaf(k, mm);
                }
            }
        }
        let now = self.now(c);
        self.probes.lazy_mm.final_mmdrops += 1;
        let Some((root, exited)) = self.k.mms.get(&mm).map(|m| (m.root, m.exited_fp)) else {
            return;
        };
        if let Some(t) = exited {
            let held = now.saturating_sub(t) >> 8;
            let st = &mut self.probes.lazy_mm;
            st.held_after_exit_cycles_total += held;
            st.held_after_exit_cycles_max = st.held_after_exit_cycles_max.max(held);
        }
        self.free_global_asid(mm);
        self.k.mms.remove(&mm);
        self.free_pages(c, vec![root]);
        self.k.kdata.free_mm(&mut self.hw.mem.phys, mm, self.hw.cpus.len());
        self.k.locks.forget_mm(mm);
    }

    /// The oracle: CPU `k` uses `mm` after __mmdrop freed it (or as it does).
    fn lazy_mm_uaf(&mut self, k: usize, mm: u32) {
        self.probes.lazy_mm.uaf += 1;
        self.probes.violation_count += 1;
        if self.probes.violations.len() >= crate::machine::VIOLATIONS_KEPT {
            return;
        }
        let time_ns = self.ns_of(self.now(k));
        self.probes.violations.push(Violation {
            core: k,
            address: u64::from(mm),
            kind: "lazy-mm-uaf",
            time_ns,
            strategy: self.k.strategy.label(),
            detail: None,
        });
    }

    /// Address spaces torn down but still held by lazy references, at the end of a run.
    pub(crate) fn lazy_mm_held(&self) -> u64 {
        self.k.mms.values().filter(|m| m.exited_fp.is_some()).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use crate::strategy::{Axis, LazyCleanup, LazyMmPolicy};

    #[test]
    fn only_refcount_counts_and_every_shootdown_cleans_up() {
        for v in LazyMmPolicy::VALUES {
            let p = v.value;
            assert_eq!(p.refcounts(), p.cleanup() == LazyCleanup::Nothing, "{}", v.name);
        }
        assert_eq!(LazyMmPolicy::DEFAULT, LazyMmPolicy::Refcount);
        assert_eq!(LazyMmPolicy::Shootdown.cleanup(), LazyCleanup::Cpumask);
        assert_eq!(LazyMmPolicy::ShootdownAll.cleanup(), LazyCleanup::AllCpus);
        assert!(LazyMmPolicy::ShootdownActive.publishes_lazy_mm());
    }
}
