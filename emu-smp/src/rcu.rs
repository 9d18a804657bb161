//! A grace-period machine for `--walker-sync rcu` (and `linux`): RCU table freeing
//! (mm/mmu_gather.c `tlb_remove_table` → `tlb_remove_table_rcu` under
//! MMU_GATHER_RCU_TABLE_FREE; kernel/rcu/tree.c).
//!
//! GUP-fast's interrupts-off region is a read-side critical section of the consolidated
//! RCU flavour, so a table freed through `call_rcu` cannot be freed while a walk that
//! could have read its pointer is running. The model:
//! - `call_rcu` queues the tables; with no grace period running one starts at once
//!   (the GP kthread's wake-up is not charged: an estimate left out);
//! - every CPU must then report a quiescent state: at a context switch (idle entry
//!   included) or at a scheduling-clock tick taken in user mode. A CPU idle when the
//!   grace period starts is in an extended quiescent state, which the force-quiescent-
//!   state scan reports `jiffies_till_first_fqs` jiffies in (`rcu_init_geometry`:
//!   RCU_JIFFIES_TILL_FORCE_QS = 1 + (HZ > 250) + (HZ > 500), plus nr_cpu_ids / 256);
//! - a CPU inside GUP-fast takes no tick and no switch, so it reports only after;
//! - when the last CPU reported, the callbacks are ready; they run (the tables are
//!   freed) at the next tick or context switch of any CPU (softirq callback processing,
//!   here not tied to the CPU that queued them), charged to that CPU.
//!
//! Left out: per-node trees and their locks, callbacks queued during a grace period
//! waiting for the next one are modelled, but expedited grace periods, rcu_nocbs and
//! the later FQS scans (every `jiffies_till_next_fqs`) are not, since a CPU is only
//! ever waited for while busy (it reports at its own tick or switch).

use crate::machine::Machine;

/// Tables waiting for a grace period.
#[derive(Clone, Debug)]
pub struct RcuCb {
    tables: Vec<emu_mmu::Pfn>,
    queued_fp: u64,
}

/// The RCU state.
#[derive(Debug, Default)]
pub struct Rcu {
    /// The running grace period: when it began, the CPUs it still waits for, and the
    /// time of its first FQS scan if it waits for CPUs idle at its start.
    gp: Option<(u64, Vec<bool>, Option<u64>)>,
    /// Callbacks of the running grace period.
    cur: Vec<RcuCb>,
    /// Callbacks queued after it began (the next grace period's).
    next: Vec<RcuCb>,
    /// Callbacks whose grace period ended, and when it ended.
    ready: Vec<(u64, RcuCb)>,
    /// Page-table pages queued and not yet freed.
    held: u64,
    /// When the last grace period ended (it may end in a CPU's future: at its FQS
    /// scan); the next one cannot start before.
    last_end: u64,
}

impl Machine {
    /// call_rcu of the page tables `tables` from CPU `c`: they stay allocated until a
    /// grace period has passed; the caller goes on.
    pub(crate) fn call_rcu_tables(&mut self, c: usize, tables: Vec<emu_mmu::Pfn>) {
        let now = self.now(c);
        let r = &mut self.k.rcu;
        r.held += tables.len() as u64;
        let held = r.held;
        let cb = RcuCb { tables, queued_fp: now };
        if r.gp.is_some() {
            r.next.push(cb);
        } else {
            r.cur.push(cb);
            let at = now.max(r.last_end);
            self.rcu_start_gp(at);
        }
        let s = &mut self.probes.walker_sync;
        s.rcu_held_tables_max = s.rcu_held_tables_max.max(held);
    }

    /// A grace period starts at `now`: every online CPU owes a quiescent state; idle
    /// ones are reported by the first FQS scan.
    fn rcu_start_gp(&mut self, now: u64) {
        let n = self.hw.cpus.len();
        let hz = u64::from(self.profile.kernel.hz);
        let first_fqs = 1 + u64::from(hz > 250) + u64::from(hz > 500) + n as u64 / 256;
        let mut need = vec![true; n];
        let mut fqs = None;
        for (k, w) in need.iter_mut().enumerate() {
            if self.k.cpus[k].current.is_none() {
                *w = false;
                fqs = Some(now + first_fqs * self.tick_fp());
            }
        }
        self.k.rcu.gp = Some((now, need, fqs));
        self.probes.walker_sync.grace_periods += 1;
        self.rcu_check_end(now);
    }

    /// CPU `k` passes a quiescent state at its local time: a context switch, or a tick
    /// in user mode. Then the callbacks whose grace period is over run here.
    pub(crate) fn rcu_qs(&mut self, k: usize) {
        let now = self.now(k);
        if let Some((start, need, _)) = &mut self.k.rcu.gp {
            // A CPU whose clock is still before the grace period's start passed this
            // quiescent state before it.
            if now >= *start {
                if let Some(w) = need.get_mut(k) {
                    *w = false;
                }
            }
            self.rcu_check_end(now);
        }
        self.rcu_run_callbacks(k);
    }

    /// The grace period ends once no CPU owes a quiescent state (no earlier than its
    /// FQS scan when it waited for idle CPUs); the next one starts if callbacks wait.
    fn rcu_check_end(&mut self, now: u64) {
        let Some((start, need, fqs)) = &self.k.rcu.gp else { return };
        if need.iter().any(|&w| w) {
            return;
        }
        let end = fqs.map_or(now, |f| f.max(now)).max(*start);
        let len = (end - start) >> 8;
        let s = &mut self.probes.walker_sync;
        s.grace_period_cycles += len;
        s.grace_period_cycles_max = s.grace_period_cycles_max.max(len);
        let r = &mut self.k.rcu;
        r.gp = None;
        r.last_end = end;
        for cb in std::mem::take(&mut r.cur) {
            r.ready.push((end, cb));
        }
        if !r.next.is_empty() {
            r.cur = std::mem::take(&mut r.next);
            self.rcu_start_gp(end);
        }
    }

    /// RCU callback processing on CPU `k`: frees the tables whose grace period ended by
    /// its local time.
    fn rcu_run_callbacks(&mut self, k: usize) {
        let now = self.now(k);
        if !self.k.rcu.ready.iter().any(|(end, _)| *end <= now) {
            return;
        }
        let (due, keep): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.k.rcu.ready).into_iter().partition(|(end, _)| *end <= now);
        self.k.rcu.ready = keep;
        for (_, cb) in due {
            self.k.rcu.held -= cb.tables.len() as u64;
            let waited = (now.saturating_sub(cb.queued_fp)) >> 8;
            let s = &mut self.probes.walker_sync;
            s.rcu_callbacks += 1;
            s.rcu_callback_wait_cycles += waited;
            self.free_tables(k, cb.tables);
        }
    }
}
