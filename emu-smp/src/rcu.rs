//! A grace-period machine for `--walker-sync rcu` (and `linux`): RCU table freeing
//! (mm/mmu_gather.c `tlb_remove_table` → `tlb_remove_table_rcu` under
//! MMU_GATHER_RCU_TABLE_FREE) and `synchronize_rcu` (kernel/rcu/tree.c).
//!
//! GUP-fast's interrupts-off region is a read-side critical section of the consolidated
//! RCU flavour, so a table freed through `call_rcu` cannot be freed while a walk that
//! could have read its pointer is running. The model:
//! - `call_rcu` and `synchronize_rcu` queue a callback on the calling CPU; with no grace
//!   period running, one starts at once and the caller pays the wake-up of the GP
//!   kthread (`rcu_gp_kthread_wake`; the kthread's own run time is not modelled). A
//!   callback queued while a grace period runs waits for the next one;
//! - every CPU must then report a quiescent state: at a context switch (idle entry
//!   included), at a scheduling-clock tick taken in user mode (`rcu_sched_clock_irq`,
//!   `rcu_note_context_switch`), and under preemptible RCU (`kernel.preempt_rcu`, the
//!   distribution kernels' choice) at a tick taken in the kernel with no spinlock held.
//!   A CPU that is idle is in an extended quiescent state, which the GP kthread's
//!   force-quiescent-state scans report: the first `jiffies_till_first_fqs` jiffies in,
//!   then every `jiffies_till_next_fqs` (`rcu_init_geometry`: both
//!   RCU_JIFFIES_TILL_FORCE_QS = 1 + (HZ > 250) + (HZ > 500), plus nr_cpu_ids / 256),
//!   timed events of the machine;
//! - a CPU that stays in the kernel is asked for an urgent quiescent state once the
//!   grace period is `jiffies_to_sched_qs` old (`adjust_jiffies_till_sched_qs`: the
//!   third FQS scan, at least HZ / 10 + nr_cpu_ids / 256 jiffies;
//!   `rcu_watching_snap_recheck` sets `rcu_urgent_qs`): its next tick sets need_resched
//!   and the reschedule reports it (here: at that tick);
//! - a CPU inside GUP-fast takes no tick and no switch, so it reports only after;
//! - when the last CPU reported, the grace period's callbacks are ready. They run on the
//!   CPU that queued them (softirq callback processing), at its next tick or context
//!   switch, charged to it; a CPU idle at that point keeps its tick for them
//!   (`rcu_needs_cpu`), so they run at its next jiffy, uncharged. A `synchronize_rcu`
//!   waiter is woken by the GP kthread at the end of the grace period on machines of at
//!   most 16 CPUs (`rcu_normal_wake_from_gp`'s default, WAKE_FROM_GP_CPU_THRESHOLD), and
//!   by its `wakeme_after_rcu` callback on larger ones.
//!
//! Left out: per-node trees and their locks, expedited grace periods, rcu_nocbs, the
//! resched IPIs of stalls (`jiffies_resched`, seconds in), callback batching limits.

use crate::machine::{fp, Machine};
use crate::task::{State, Wait};

/// What a callback does when its grace period is over.
#[derive(Clone, Debug)]
pub enum RcuWork {
    /// Free page-table pages (`tlb_remove_table_rcu`).
    Tables(Vec<emu_mmu::Pfn>),
    /// Wake a task blocked in `synchronize_rcu` (`wakeme_after_rcu`).
    Wake(u32),
}

/// A queued RCU callback.
#[derive(Clone, Debug)]
pub struct RcuCb {
    work: RcuWork,
    /// The CPU that queued it, which invokes it.
    cpu: usize,
    queued_fp: u64,
}

/// A grace period in progress.
#[derive(Clone, Debug)]
struct Gp {
    /// When it began (1/256 cycles).
    start: u64,
    /// The CPUs it still waits for.
    need: Vec<bool>,
    /// The latest time a CPU reported at (its own clock), so far.
    end_at: u64,
    /// The GP kthread's next force-quiescent-state scan.
    next_fqs: u64,
}

/// The RCU state.
#[derive(Debug, Default)]
pub struct Rcu {
    /// The running grace period.
    gp: Option<Gp>,
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

/// At most this many CPUs, `synchronize_rcu` waiters are woken by the GP kthread at the
/// end of the grace period (kernel/rcu/tree.c WAKE_FROM_GP_CPU_THRESHOLD).
const WAKE_FROM_GP_CPU_THRESHOLD: usize = 16;

impl Machine {
    /// call_rcu of the page tables `tables` from CPU `c`: they stay allocated until a
    /// grace period has passed; the caller goes on.
    pub(crate) fn call_rcu_tables(&mut self, c: usize, tables: Vec<emu_mmu::Pfn>) {
        self.k.rcu.held += tables.len() as u64;
        let held = self.k.rcu.held;
        let s = &mut self.probes.walker_sync;
        s.rcu_held_tables_max = s.rcu_held_tables_max.max(held);
        self.rcu_queue(c, RcuWork::Tables(tables));
    }

    /// synchronize_rcu from task `tid` on CPU `c`: a callback that wakes it after a full
    /// grace period. The caller then sleeps uninterruptibly in `Wait::Rcu`
    /// (wait_rcu_gp).
    pub(crate) fn synchronize_rcu(&mut self, c: usize, tid: u32) {
        self.probes.walker_sync.synchronize_rcu += 1;
        self.rcu_queue(c, RcuWork::Wake(tid));
    }

    /// Queues a callback on CPU `c`, starting a grace period if none runs.
    fn rcu_queue(&mut self, c: usize, work: RcuWork) {
        let now = self.now(c);
        let cb = RcuCb { work, cpu: c, queued_fp: now };
        let r = &mut self.k.rcu;
        if r.gp.is_some() {
            r.next.push(cb);
        } else {
            r.cur.push(cb);
            // rcu_start_this_gp wakes the GP kthread.
            self.charge(c, fp(self.profile.kernel.wakeup_cycles));
            let at = self.now(c).max(self.k.rcu.last_end);
            self.rcu_start_gp(at);
        }
    }

    /// `jiffies_till_first_fqs` (= `jiffies_till_next_fqs`) on this machine.
    fn rcu_fqs_jiffies(&self) -> u64 {
        let hz = u64::from(self.profile.kernel.hz);
        1 + u64::from(hz > 250) + u64::from(hz > 500) + self.hw.cpus.len() as u64 / 256
    }

    /// `jiffies_to_sched_qs`: how old a grace period is before holdouts are asked for
    /// an urgent quiescent state.
    fn rcu_sched_qs_jiffies(&self) -> u64 {
        let hz = u64::from(self.profile.kernel.hz);
        let fqs = self.rcu_fqs_jiffies();
        (3 * fqs).max(hz / 10 + self.hw.cpus.len() as u64 / 256)
    }

    /// A grace period starts at `now`: every online CPU owes a quiescent state; the
    /// first FQS scan is `jiffies_till_first_fqs` away.
    fn rcu_start_gp(&mut self, now: u64) {
        let n = self.hw.cpus.len();
        let next_fqs = now + self.rcu_fqs_jiffies() * self.tick_fp();
        self.k.rcu.gp = Some(Gp { start: now, need: vec![true; n], end_at: now, next_fqs });
        self.probes.walker_sync.grace_periods += 1;
    }

    /// When the GP kthread's next FQS scan is due, if a grace period is running (the
    /// machine's event loop runs it then).
    pub(crate) fn rcu_next_fqs(&self) -> Option<u64> {
        self.k.rcu.gp.as_ref().map(|g| g.next_fqs)
    }

    /// The FQS scan now due (rcu_gp_fqs → force_qs_rnp with rcu_watching_snap_recheck):
    /// every CPU still owed that has been idle since the scan time at the latest is in
    /// an extended quiescent state and is reported; the next scan is
    /// `jiffies_till_next_fqs` later. True when it reported a CPU.
    pub(crate) fn rcu_fqs(&mut self) -> bool {
        let step = self.rcu_fqs_jiffies() * self.tick_fp();
        let Some(gp) = &mut self.k.rcu.gp else { return false };
        let s = gp.next_fqs;
        gp.next_fqs = s + step;
        let mut reported = false;
        for (j, w) in gp.need.iter_mut().enumerate() {
            let idle = self.k.cpus[j].current.is_none()
                && self.hw.cpus[j].idle.as_ref().is_some_and(|i| i.since_fp <= s);
            if *w && idle {
                *w = false;
                gp.end_at = gp.end_at.max(s);
                reported = true;
            }
        }
        self.probes.walker_sync.rcu_fqs_scans += 1;
        self.rcu_check_end();
        reported
    }

    /// CPU `k` passes a quiescent state at its local time: a context switch, or a tick
    /// in user mode. Then the callbacks whose grace period is over run here.
    pub(crate) fn rcu_qs(&mut self, k: usize) {
        let now = self.now(k);
        if let Some(gp) = &mut self.k.rcu.gp {
            // A CPU whose clock is still before the grace period's start passed this
            // quiescent state before it (if it goes idle, an FQS scan reports it).
            if now >= gp.start {
                if let Some(w) = gp.need.get_mut(k) {
                    if *w {
                        *w = false;
                        gp.end_at = gp.end_at.max(now);
                    }
                }
            }
            self.rcu_check_end();
        }
        self.rcu_run_callbacks(k);
    }

    /// The scheduling-clock tick on CPU `k`, taken in the kernel. Under preemptible RCU
    /// (`kernel.preempt_rcu`, rcu_flavor_sched_clock_irq in kernel/rcu/tree_plugin.h) it
    /// is a quiescent state unless the CPU holds a spinlock; otherwise it is one only
    /// once the grace period is old enough that this CPU was asked for an urgent one.
    pub(crate) fn rcu_tick_kernel(&mut self, k: usize) {
        let now = self.now(k);
        let Some(gp) = &self.k.rcu.gp else {
            self.rcu_run_callbacks(k);
            return;
        };
        let owes = gp.need.get(k).copied().unwrap_or(false);
        if owes && self.profile.kernel.preempt_rcu && !self.k.locks.holds_spinlock(k) {
            self.rcu_qs(k);
        } else if owes && now >= gp.start + self.rcu_sched_qs_jiffies() * self.tick_fp() {
            self.probes.walker_sync.rcu_urgent_qs += 1;
            self.rcu_qs(k);
        } else {
            self.rcu_run_callbacks(k);
        }
    }

    /// The grace period ends once no CPU owes a quiescent state, at the latest report;
    /// the next one starts if callbacks wait.
    fn rcu_check_end(&mut self) {
        let Some(gp) = &self.k.rcu.gp else { return };
        if gp.need.iter().any(|&w| w) {
            return;
        }
        let end = gp.end_at.max(gp.start);
        let len = (end - gp.start) >> 8;
        let s = &mut self.probes.walker_sync;
        s.grace_periods_ended += 1;
        s.grace_period_cycles += len;
        s.grace_period_cycles_max = s.grace_period_cycles_max.max(len);
        let r = &mut self.k.rcu;
        r.gp = None;
        r.last_end = end;
        let direct_wake = self.hw.cpus.len() <= WAKE_FROM_GP_CPU_THRESHOLD;
        for cb in std::mem::take(&mut self.k.rcu.cur) {
            match cb.work {
                RcuWork::Wake(tid) if direct_wake => self.rcu_wake(tid, end),
                _ if self.k.cpus[cb.cpu].current.is_none() => {
                    // The CPU is idle: its tick, kept for the callbacks, runs them at
                    // its next jiffy.
                    let at = self.next_tick_after(end);
                    self.rcu_invoke(cb.cpu, cb, at, false);
                }
                _ => self.k.rcu.ready.push((end, cb)),
            }
        }
        if !self.k.rcu.next.is_empty() {
            let r = &mut self.k.rcu;
            r.cur = std::mem::take(&mut r.next);
            self.rcu_start_gp(end);
        }
    }

    /// RCU callback processing on CPU `k`: the callbacks it queued whose grace period
    /// ended by its local time (and those of CPUs gone idle since).
    fn rcu_run_callbacks(&mut self, k: usize) {
        let now = self.now(k);
        let cpus = &self.k.cpus;
        let mine = |cb: &RcuCb| cb.cpu == k || cpus[cb.cpu].current.is_none();
        if !self.k.rcu.ready.iter().any(|(end, cb)| *end <= now && mine(cb)) {
            return;
        }
        let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.k.rcu.ready)
            .into_iter()
            .partition(|(end, cb)| *end <= now && mine(cb));
        self.k.rcu.ready = keep;
        for (_, cb) in due {
            let charged = cb.cpu == k;
            self.rcu_invoke(k, cb, now, charged);
        }
    }

    /// Invokes callback `cb` on CPU `k` at time `at` (charged to `k` when `charged`).
    fn rcu_invoke(&mut self, k: usize, cb: RcuCb, at: u64, charged: bool) {
        match cb.work {
            RcuWork::Tables(tables) => {
                self.k.rcu.held -= tables.len() as u64;
                let waited = at.saturating_sub(cb.queued_fp) >> 8;
                let s = &mut self.probes.walker_sync;
                s.rcu_callbacks += 1;
                s.rcu_callback_wait_cycles += waited;
                // Uncharged: the queuing CPU is idle, and frees charge an idle CPU
                // nothing.
                self.free_tables(if charged { k } else { cb.cpu }, tables);
            }
            RcuWork::Wake(tid) => {
                if charged {
                    self.charge(k, fp(self.profile.kernel.wakeup_cycles));
                }
                self.rcu_wake(tid, at.max(self.now(k)));
            }
        }
    }

    /// The `synchronize_rcu` waiter `tid` is woken at `at`.
    fn rcu_wake(&mut self, tid: u32, at: u64) {
        let Some(t) = self.k.tasks.get(&tid) else { return };
        let State::Blocked(Wait::Rcu { since_fp }) = t.state else { return };
        let waited = at.saturating_sub(since_fp) >> 8;
        let s = &mut self.probes.walker_sync;
        s.synchronize_rcu_cycles += waited;
        s.synchronize_rcu_cycles_max = s.synchronize_rcu_cycles_max.max(waited);
        self.wake(tid, 0, at);
    }
}
