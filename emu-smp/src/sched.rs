//! The scheduler: per-CPU runqueues of the fair class as EEVDF runs them
//! (kernel/sched/fair.c: vruntime, virtual deadlines, lag kept across sleeps,
//! RUN_TO_PARITY; every task at nice 0), wakeup placement (`select_task_rq`, simplified:
//! the previous CPU if idle, else an idle allowed CPU, else the least loaded allowed
//! runqueue), wake-up preemption (a woken task that pick_eevdf would choose preempts the
//! running one: at once from its own CPU, by a reschedule IPI from another, by the
//! timer's interrupt), preemption at the scheduler tick once the running task's slice is
//! used up, load balancing at the tick and when a CPU would go idle, and the idle task
//! with idle states chosen by a governor that looks at the next timer. A CPU going idle
//! keeps its mm loaded in lazy TLB mode, as Linux does. Not modelled: nice levels and
//! weights, DELAY_DEQUEUE, cgroups, the wake-up list of TTWU_QUEUE.

use crate::lock::{LockKey, LockMode};
use crate::machine::{fp, Idle, KState, Machine};
use crate::task::State;
use std::collections::VecDeque;

impl Machine {
    /// Picks the CPU a runnable task goes to.
    fn select_task_rq(&self, tid: u32) -> usize {
        let Some(t) = self.k.tasks.get(&tid) else { return 0 };
        let cpus = &self.k.cpus;
        pick_cpu(
            t.last_cpu,
            cpus.len(),
            |k| t.affinity.get(k).copied().unwrap_or(false),
            |k| cpus[k].current.is_none() && cpus[k].runq.is_empty(),
            |k| cpus[k].runq.len(),
        )
    }

    /// Makes `tid` runnable at local time `at`. It joins the chosen CPU's runqueue; an
    /// idle CPU is woken and starts leaving its idle state at `at`, and switches to the
    /// task when its own clock reaches the end of the exit latency (an event of its
    /// own, so the task's mm enters mm_cpumask no earlier than that).
    ///
    /// On a busy CPU the woken task is placed (place_entity) and may preempt the running
    /// one (wakeup_preempt_fair): a wake-up from that CPU itself sets its need_resched,
    /// one from another CPU sends it a reschedule IPI, a timer's interrupts it there.
    pub(crate) fn enqueue(&mut self, tid: u32, at: u64, _waker: usize) {
        let k = self.select_task_rq(tid);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.state = State::Runnable;
        }
        self.place_entity(k, tid);
        self.k.cpus[k].runq.push_back(tid);
        self.touch(k);
        if self.k.cpus[k].current.is_none() {
            self.wake_idle_cpu(k, at);
        } else if !self.k.cpus[k].need_resched
            && !self.k.cpus[k].resched_ipi
            && self.wakeup_preempt(k, tid)
        {
            self.probes.cpus[k].wakeup_preemptions += 1;
            match self.acting {
                Some(c) if c == k => self.k.cpus[k].need_resched = true,
                Some(c) => {
                    self.k.cpus[k].resched_ipi = true;
                    self.send_reschedule(c, k);
                }
                None => {
                    self.k.cpus[k].resched_ipi = true;
                    self.local_interrupt(k, at);
                }
            }
        }
    }

    /// The entities on CPU `k`'s fair runqueue: its current task's, then the queued.
    fn rq_entities(&self, k: usize) -> (Option<Entity>, Vec<Entity>) {
        let se = |tid: &u32| self.k.tasks.get(tid).map(|t| t.se);
        let core = &self.k.cpus[k];
        (core.current.as_ref().and_then(se), core.runq.iter().filter_map(se).collect())
    }

    /// V, the average vruntime of CPU `k`'s runqueue, and how many entities it has.
    fn avg_vruntime(&self, k: usize) -> (i64, usize) {
        let (curr, queued) = self.rq_entities(k);
        let all: Vec<i64> = curr.iter().chain(&queued).map(|e| e.vruntime).collect();
        (avg_vruntime(&all, self.k.cpus[k].min_vruntime), all.len())
    }

    /// update_curr: charges the running task's runtime since it was last accounted to
    /// its vruntime, and renews its deadline once it passes it (update_deadline,
    /// which ends RUN_TO_PARITY's protection). True when the deadline was renewed.
    pub(crate) fn update_curr(&mut self, k: usize) -> bool {
        let Some(tid) = self.k.cpus[k].current else { return false };
        let now = self.now(k);
        let delta = now.saturating_sub(self.k.cpus[k].exec_start_fp) as i64;
        self.k.cpus[k].exec_start_fp = now;
        let slice = self.slice_fp;
        let Some(t) = self.k.tasks.get_mut(&tid) else { return false };
        t.se.vruntime += delta;
        let renewed = t.se.vruntime >= t.se.deadline;
        if renewed {
            t.se.deadline = t.se.vruntime + slice;
            t.se.protected = false;
        }
        let v = t.se.vruntime;
        let least = self.k.cpus[k]
            .runq
            .iter()
            .filter_map(|q| self.k.tasks.get(q).map(|t| t.se.vruntime))
            .fold(v, i64::min);
        let core = &mut self.k.cpus[k];
        core.min_vruntime = core.min_vruntime.max(least);
        renewed
    }

    /// place_entity: `tid` joins CPU `k`'s runqueue at the average vruntime less the
    /// lag it left its last runqueue with (a new task with none and half a slice).
    fn place_entity(&mut self, k: usize, tid: u32) {
        self.update_curr(k);
        let (avg, n) = self.avg_vruntime(k);
        let slice = self.slice_fp;
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            let (v, d) = place(avg, n, t.se.vlag, slice, !t.se.placed);
            t.se = Entity { vruntime: v, deadline: d, vlag: 0, protected: false, placed: true };
        }
    }

    /// update_entity_lag as `tid` leaves CPU `k`'s runqueue (it blocks, exits or
    /// migrates); it must still be counted there (running or queued).
    pub(crate) fn leave_runqueue(&mut self, k: usize, tid: u32) {
        let (avg, _) = self.avg_vruntime(k);
        let (slice, tick) = (self.slice_fp, self.tick_fp() as i64);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.se.vlag = leave_lag(avg, t.se.vruntime, slice, tick);
        }
    }

    /// wakeup_preempt_fair: whether queued task `tid` should run instead of CPU `k`'s
    /// current one (pick_eevdf, after update_curr, would choose it).
    fn wakeup_preempt(&mut self, k: usize, tid: u32) -> bool {
        self.update_curr(k);
        let (curr, queued) = self.rq_entities(k);
        let Some(pos) = self.k.cpus[k].runq.iter().position(|&q| q == tid) else { return false };
        pick_eevdf(curr, &queued) == Pick::Queued(pos)
    }

    /// A local interrupt on CPU `k` at `at` (the hrtimer expiring there): taken like an
    /// IPI without a sender; never before what `k` has already committed.
    fn local_interrupt(&mut self, k: usize, at: u64) {
        let arrival = at.max(self.hw.cpus[k].committed_fp);
        self.insert_interrupt(k, arrival, k);
    }

    /// A CPU left with nothing to run (its woken-for task went elsewhere) goes idle.
    pub(crate) fn settle_idle(&mut self, k: usize) {
        let core = &self.k.cpus[k];
        if core.current.is_none() && core.runq.is_empty() {
            self.enter_idle(k);
        }
    }

    /// An idle CPU is told at `at` that it has work: it leaves its idle state then.
    pub(crate) fn wake_idle_cpu(&mut self, k: usize, at: u64) {
        self.note_arrival(k, at);
        self.advance(k, at);
        self.leave_idle(k);
    }

    /// Runs `tid` on CPU `k` (which has no current task): the context switch, the
    /// address-space switch, and the task's clock joining the CPU's.
    pub(crate) fn switch_to(&mut self, k: usize, tid: u32) {
        let now = self.hw.cpus[k].time_fp;
        let Some(t) = self.k.tasks.get_mut(&tid) else { return };
        let migrated = t.last_cpu != k;
        let mm = t.mm;
        t.state = State::Running(k);
        t.last_cpu = k;
        t.cpu.time_fp = now;
        t.cpu.tsc_aux = k as u32;
        t.se.protected = true;
        if migrated || t.cpu.cpuid.query(0, 0) == [0; 4] {
            t.cpu.cpuid = self.profile.cpuid(k as u32, self.hw.cpus.len() as u32);
        }
        self.k.cpus[k].current = Some(tid);
        // set_next_entity: accounting starts, RUN_TO_PARITY protects its slice; the
        // reschedule that led here is done.
        self.k.cpus[k].exec_start_fp = now;
        self.k.cpus[k].need_resched = false;
        self.k.cpus[k].resched_ipi = false;
        self.k.cpus[k].resched_forced = false;
        // A task that slept inside a kernel path resumes it; others return to user mode.
        self.k.cpus[k].kstate = if t.kpath.is_some() { KState::Ready } else { KState::User };
        self.probes.cpus[k].context_switches += 1;
        if migrated {
            self.probes.cpus[k].migrations_in += 1;
        }
        self.charge(k, fp(self.profile.kernel.context_switch_cycles));
        // context_switch: the mm, lazily borrowed or not (lazymm.rs).
        self.context_switch_mm(k, mm);
        // mm_cid_switch_to: after the mm switch, under the runqueue lock.
        self.mm_cid_schedin(k, tid);
        if self.k.cpus[k].next_tick_fp <= now {
            self.k.cpus[k].next_tick_fp = self.next_tick_after(now);
        }
        // rseq_migrate (__set_task_cpu): the ids are rewritten at the return to user.
        if migrated {
            self.rseq_event(tid);
        }
        self.trace_task_begin(k, tid);
        if self.k.cpus[k].kstate == KState::Ready {
            self.trace_kernel_begin(k, || "kernel path (resumed after sleeping)".into());
        }
    }

    /// Takes the current task off CPU `k` (it blocked, exited or was preempted) and
    /// runs the next one, or goes idle.
    pub(crate) fn deschedule(&mut self, k: usize) {
        self.touch(k);
        if let Some(tid) = self.k.cpus[k].current {
            self.update_curr(k);
            if !self.k.tasks.get(&tid).is_some_and(|t| t.state == State::Runnable) {
                self.leave_runqueue(k, tid);
            }
            let t = self.now(k);
            self.trace_task_end(k, tid);
            self.mm_cid_schedout(k, tid);
            // prepare_task_switch: rseq_preempt(prev).
            self.rseq_event(tid);
            self.k.cpus[k].current = None;
            self.k.cpus[k].kstate = KState::User;
            self.hw.cpus[k].time_fp = self.hw.cpus[k].time_fp.max(t);
        }
        self.schedule(k);
    }

    /// Puts `tid`, running on CPU `k` in user mode (or yielding), back at the tail of the
    /// runqueue and runs the next task.
    pub(crate) fn preempt(&mut self, k: usize, tid: u32) {
        self.update_curr(k);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.state = State::Runnable;
        }
        self.trace_task_end(k, tid);
        self.mm_cid_schedout(k, tid);
        self.rseq_event(tid);
        let t = self.now(k);
        self.k.cpus[k].current = None;
        self.k.cpus[k].kstate = KState::User;
        self.hw.cpus[k].time_fp = t;
        self.k.cpus[k].runq.push_back(tid);
        self.schedule(k);
    }

    /// Picks the next task for CPU `k`, pulling one from a busier CPU if its own
    /// runqueue is empty; otherwise the idle task runs.
    pub(crate) fn schedule(&mut self, k: usize) {
        self.touch(k);
        if self.k.cpus[k].current.is_some() {
            return;
        }
        // __schedule takes this CPU's runqueue lock.
        self.lock_here(k, LockKey::Rq(k));
        self.unlock(k, LockKey::Rq(k), LockMode::Write);
        // pick_next_task_fair: pick_eevdf over the queued entities.
        let (_, queued) = self.rq_entities(k);
        if let Pick::Queued(i) = pick_eevdf(None, &queued) {
            if let Some(next) = self.k.cpus[k].runq.remove(i) {
                self.switch_to(k, next);
                return;
            }
        }
        // Idle balance: take a waiting task from the busiest runqueue it may leave. A
        // queue whose CPU is only waking up for its task has nothing waiting.
        let busiest = (0..self.hw.cpus.len())
            .filter(|&j| j != k && self.k.cpus[j].current.is_some())
            .filter_map(|j| {
                let q = &self.k.cpus[j].runq;
                let pos = q
                    .iter()
                    .position(|tid| self.k.tasks.get(tid).is_some_and(|t| t.affinity[k]))?;
                Some((q.len(), std::cmp::Reverse(j), j, pos))
            })
            .max();
        if let Some((_, _, j, pos)) = busiest {
            self.touch(j);
            if let Some(&tid) = self.k.cpus[j].runq.get(pos) {
                self.leave_runqueue(j, tid);
                self.k.cpus[j].runq.remove(pos);
                self.place_entity(k, tid);
                self.switch_to(k, tid);
                return;
            }
        }
        self.enter_idle(k);
    }

    /// The idle task starts on CPU `k`: lazy TLB, and the deepest idle state whose
    /// target residency fits the predicted idle time. The prediction follows the menu
    /// governor (drivers/cpuidle/governors/menu.c): the time to the next timer, capped
    /// by the typical interval of this CPU's recent idle periods when they are regular.
    pub(crate) fn enter_idle(&mut self, k: usize) {
        self.touch(k);
        if self.hw.cpus[k].idle.is_some() {
            return;
        }
        // The switch to the idle task: a kernel thread, borrowing the mm (lazymm.rs).
        self.context_switch_mm(k, crate::machine::INIT_MM);
        let now = self.hw.cpus[k].time_fp;
        let to_timer = self.next_timer().map_or(u64::MAX, |w| w.saturating_sub(now)) >> 8;
        let typical = typical_interval(&self.hw.cpus[k].idle_history, self.profile.ghz());
        let states = &self.profile.idle.states;
        let state = idle_state(states, to_timer.min(typical));
        if states[state].tlb_flushed {
            // cpuidle_enter_state: leave_mm() first, then the hardware drops the TLB.
            self.leave_mm(k);
            self.hw.mem.lose_translations(k);
        }
        // Idle from here (after leave_mm's work, if any).
        let since_fp = self.hw.cpus[k].time_fp;
        self.hw.cpus[k].idle = Some(Idle { since_fp, state });
        self.probes.cpus[k].idle_entries += 1;
    }

    /// CPU `k` wakes from its idle state (an interrupt or a task arrived).
    pub(crate) fn leave_idle(&mut self, k: usize) {
        if let Some(idle) = self.hw.cpus[k].idle.take() {
            let now = self.hw.cpus[k].time_fp;
            // Broadcast invalidations processed while idle cost nothing.
            self.hw.mem.take_tlb_busy(k, now, false);
            let length = now.saturating_sub(idle.since_fp) >> 8;
            self.probes.cpus[k].idle_cycles += length;
            let history = &mut self.hw.cpus[k].idle_history;
            if history.len() == IDLE_HISTORY {
                history.pop_front();
            }
            history.push_back(length);
            let exit = fp(self.profile.idle.states[idle.state].exit_latency_cycles);
            self.hw.cpus[k].time_fp = now + exit;
            self.probes.cpus[k].idle_exit_cycles += exit >> 8;
            self.trace_idle(
                k,
                idle.since_fp,
                now,
                &self.profile.idle.states[idle.state].name.clone(),
            );
        }
    }

    /// The scheduler tick on busy CPU `k`: pushing a waiting task to an idle CPU, and
    /// preemption when the running task's slice is used up and others wait
    /// (task_tick_fair, update_deadline): at once in user mode; in the kernel, at the
    /// next return to user mode, or at the path's next preemption point when the
    /// preemption model allows (`--preempt`, path.rs `kernel_preemption`).
    pub(crate) fn tick(&mut self, k: usize) {
        self.charge(k, fp(self.profile.kernel.tick_cycles));
        self.probes.cpus[k].ticks += 1;
        let now = self.now(k);
        self.k.cpus[k].next_tick_fp = self.next_tick_after(now);
        // sched_tick under PREEMPT_LAZY: a lazy reschedule still pending a tick later
        // becomes a forced one (resched_curr), which preempts kernel code too.
        if self.k.strategy.preempt.tick_upgrades() && self.k.cpus[k].need_resched {
            self.k.cpus[k].resched_forced = true;
        }
        // rcu_sched_clock_irq: a tick taken in user mode is a quiescent state.
        if self.k.cpus[k].kstate == KState::User {
            self.rcu_qs(k);
        } else {
            self.rcu_tick_kernel(k);
        }
        // Deferrable per-CPU work whose time has come (kthread.rs).
        self.kworker_tick(k);
        let now = self.now(k);
        // Load balance: a waiting task may run on an idle CPU it is allowed on.
        if let Some(&tid) = self.k.cpus[k].runq.front() {
            let idle = (0..self.hw.cpus.len()).find(|&j| {
                self.k.cpus[j].current.is_none()
                    && self.k.cpus[j].runq.is_empty()
                    && self.k.tasks.get(&tid).is_some_and(|t| t.affinity[j])
            });
            if let Some(j) = idle {
                self.leave_runqueue(k, tid);
                self.k.cpus[k].runq.pop_front();
                self.place_entity(j, tid);
                self.k.cpus[j].runq.push_back(tid);
                self.touch(j);
                self.wake_idle_cpu(j, now);
            }
        }
        let expired = self.update_curr(k);
        if expired && !self.k.cpus[k].runq.is_empty() {
            if let Some(cur) = self.k.cpus[k].current {
                if self.k.cpus[k].kstate == KState::User {
                    self.probes.cpus[k].preemptions += 1;
                    self.preempt(k, cur);
                } else {
                    self.k.cpus[k].need_resched = true;
                }
            }
        }
    }
}

impl Machine {
    /// getpriority and setpriority (kernel/sys.c): PRIO_PROCESS names one thread (0:
    /// the caller), PRIO_PGRP the process group (emu's guest processes share one),
    /// PRIO_USER a user's tasks (0: the caller's). getpriority returns 20 - the least
    /// nice value found; setpriority clamps the value to -20..=19 and refuses to lower
    /// a task's nice value without CAP_SYS_NICE (EACCES). No task found is ESRCH.
    pub(crate) fn sys_priority(&mut self, tid: u32, which: i32, who: i32, set: Option<i32>) -> i64 {
        use crate::fs::errno::*;
        const PRIO_PROCESS: i32 = 0;
        const PRIO_PGRP: i32 = 1;
        const PRIO_USER: i32 = 2;
        let pgrp = self.k.init_pid;
        let uid = self.k.uid;
        let targets: Vec<u32> = match which {
            PRIO_PROCESS if who == 0 => vec![tid],
            PRIO_PROCESS => self.task_by_pid(who).into_iter().collect(),
            PRIO_PGRP if who == 0 || who as u32 == pgrp => self.live_tasks(),
            PRIO_PGRP => Vec::new(),
            PRIO_USER if who == 0 || who as u32 == uid => self.live_tasks(),
            PRIO_USER => Vec::new(),
            _ => return -EINVAL,
        };
        if targets.is_empty() {
            return -ESRCH;
        }
        let Some(nice) = set else {
            let least = targets
                .iter()
                .filter_map(|t| self.k.tasks.get(t).map(|t| t.nice))
                .min()
                .unwrap_or(0);
            return i64::from(20 - least);
        };
        let nice = nice.clamp(-20, 19);
        let mut err = 0;
        for t in targets {
            if let Some(t) = self.k.tasks.get_mut(&t) {
                if nice < t.nice && uid != 0 {
                    err = -EACCES;
                } else {
                    t.nice = nice;
                }
            }
        }
        err
    }

    /// The tasks that have not exited.
    fn live_tasks(&self) -> Vec<u32> {
        self.k.tasks.values().filter(|t| t.state != State::Zombie).map(|t| t.tid).collect()
    }
}

/// A task's entity in the fair class as EEVDF keeps it (kernel/sched/fair.c, Linux 6.6
/// and later). Every guest task runs at nice 0, so all weights are equal and virtual
/// time runs at the rate of the CPU's clock (1/256 cycles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entity {
    /// Virtual runtime.
    pub vruntime: i64,
    /// Virtual deadline: the vruntime by which its current slice is due.
    pub deadline: i64,
    /// Lag kept from when it last left a runqueue (update_entity_lag), restored by the
    /// next placement.
    pub vlag: i64,
    /// RUN_TO_PARITY: picked, and its deadline not renewed since; a running entity so
    /// marked keeps the CPU while it is eligible.
    pub protected: bool,
    /// Placed on a runqueue at least once (the first placement, from fork, is
    /// ENQUEUE_INITIAL).
    pub placed: bool,
}

/// The fair class's base slice in ns: sysctl_sched_base_slice, 0.75 ms, scaled like the
/// other scheduler tunables by 1 + ilog2(CPUs), counting at most 8 CPUs
/// (SCHED_TUNABLESCALING_LOG, get_update_sysctl_factor in kernel/sched/fair.c).
pub fn base_slice_ns(cpus: usize) -> u64 {
    750_000 * u64::from(1 + cpus.clamp(1, 8).ilog2())
}

/// vruntime_eligible: an entity is eligible when its vruntime is at most the average
/// of the runqueue's (`all`, the running entity included), compared without dividing.
pub(crate) fn eligible(all: &[i64], v: i64) -> bool {
    let Some(&base) = all.iter().min() else { return true };
    let sum: i128 = all.iter().map(|&x| i128::from(x - base)).sum();
    sum >= i128::from(v - base) * all.len() as i128
}

/// avg_vruntime: the average vruntime of the runqueue's entities, rounded down (or
/// `empty` when it has none: cfs_rq->min_vruntime).
pub(crate) fn avg_vruntime(all: &[i64], empty: i64) -> i64 {
    let Some(&base) = all.iter().min() else { return empty };
    let sum: i128 = all.iter().map(|&x| i128::from(x - base)).sum();
    base + sum.div_euclid(all.len() as i128) as i64
}

/// place_entity for a runqueue whose entities have average vruntime `avg` and number
/// `n`: PLACE_LAG keeps the entity's lag, inflated by (n + 1) / n so that adding it
/// leaves that lag in place; PLACE_DEADLINE_INITIAL gives a new task half a slice.
/// Returns (vruntime, deadline).
pub(crate) fn place(avg: i64, n: usize, vlag: i64, slice: i64, initial: bool) -> (i64, i64) {
    let lag = if n > 0 && vlag != 0 {
        (i128::from(vlag) * (n as i128 + 1) / n as i128) as i64
    } else {
        0
    };
    let v = avg - lag;
    (v, v + if initial { slice / 2 } else { slice })
}

/// update_entity_lag: the lag an entity leaves with, V - vruntime, clamped to the
/// larger of two slices and one tick.
pub(crate) fn leave_lag(avg: i64, vruntime: i64, slice: i64, tick: i64) -> i64 {
    let limit = (2 * slice).max(tick);
    (avg - vruntime).clamp(-limit, limit)
}

/// What pick_eevdf chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    /// The running entity keeps the CPU.
    Current,
    /// The queued entity at this index.
    Queued(usize),
    /// Nothing to run.
    Nothing,
}

/// pick_eevdf: a running entity that is still eligible and protected by RUN_TO_PARITY
/// keeps the CPU; otherwise the eligible entity with the earliest deadline (the
/// running one winning ties, then the earliest queued).
pub(crate) fn pick_eevdf(curr: Option<Entity>, queued: &[Entity]) -> Pick {
    let all: Vec<i64> = curr.iter().chain(queued).map(|e| e.vruntime).collect();
    if all.is_empty() {
        return Pick::Nothing;
    }
    let curr = curr.filter(|c| eligible(&all, c.vruntime));
    if let Some(c) = curr {
        if c.protected || queued.is_empty() {
            return Pick::Current;
        }
    }
    let best = queued
        .iter()
        .enumerate()
        .filter(|(_, e)| eligible(&all, e.vruntime))
        .min_by_key(|(i, e)| (e.deadline, *i))
        .map(|(i, e)| (i, e.deadline));
    match (curr, best) {
        (Some(c), Some((_, d))) if c.deadline <= d => Pick::Current,
        (Some(_), None) => Pick::Current,
        (_, Some((i, _))) => Pick::Queued(i),
        // Someone is always eligible; without rounding, the one with the least vruntime.
        (None, None) => queued
            .iter()
            .enumerate()
            .min_by_key(|(i, e)| (e.vruntime, *i))
            .map_or(Pick::Nothing, |(i, _)| Pick::Queued(i)),
    }
}

/// Where the run starts within a tick period, in 1/256 cycles: the first tick falls
/// at this offset (in `1..=tick_fp`), then every `tick_fp`. A program starts at no
/// particular point of its CPU's tick, and the tick decides when slices end, when
/// load balancing runs and when a lazy reschedule is forced, so the seed moves every
/// interleaving a real run's start time would move.
pub(crate) fn tick_phase(tick_fp: u64, seed: u64) -> u64 {
    1 + crate::rng::SimRng::new(seed ^ 0x7469_636b_2d70_6861).next_u64() % tick_fp.max(1)
}

/// Ticks of the grid `phase + n * tick` (n >= 0, `phase` in `1..=tick`) at or before
/// time `t`.
pub(crate) fn ticks_by(t: u64, tick: u64, phase: u64) -> u64 {
    (t + tick - phase) / tick
}

/// select_task_rq, simplified: the previous CPU if it is idle, else the first idle
/// allowed CPU searching upwards from it, else the allowed CPU with the shortest
/// runqueue (the previous one winning ties, then the lowest number).
pub(crate) fn pick_cpu(
    prev: usize,
    n: usize,
    allowed: impl Fn(usize) -> bool,
    idle: impl Fn(usize) -> bool,
    queued: impl Fn(usize) -> usize,
) -> usize {
    let prev = prev.min(n - 1);
    if allowed(prev) && idle(prev) {
        return prev;
    }
    if let Some(k) = (1..n).map(|d| (prev + d) % n).find(|&k| allowed(k) && idle(k)) {
        return k;
    }
    (0..n).filter(|&k| allowed(k)).min_by_key(|&k| (queued(k), k != prev, k)).unwrap_or(prev)
}

/// The menu governor's choice: the deepest state whose target residency fits the
/// expected idle time (cycles), or the shallowest.
pub(crate) fn idle_state(states: &[crate::profile::IdleState], expected: u64) -> usize {
    states.iter().rposition(|s| s.target_residency_cycles <= expected as f64).unwrap_or(0)
}

/// Idle periods the governor remembers (menu.c's INTERVALS).
const IDLE_HISTORY: usize = 8;

/// menu.c's get_typical_interval, in cycles: the mean of the remembered idle periods
/// if they are consistent (standard deviation at most a sixth of the mean, or at most
/// 20 us), discarding the longest ones while at least three quarters remain; unknown
/// (u64::MAX) otherwise or while fewer than all periods are known.
fn typical_interval(history: &VecDeque<u64>, ghz: f64) -> u64 {
    if history.len() < IDLE_HISTORY {
        return u64::MAX;
    }
    let small_spread = 20_000.0 * ghz; // 20 us in cycles
    let mut threshold = u64::MAX;
    loop {
        let kept: Vec<f64> =
            history.iter().filter(|&&d| d <= threshold).map(|&d| d as f64).collect();
        let n = kept.len() as f64;
        let mean = kept.iter().sum::<f64>() / n;
        let variance = kept.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n;
        if mean * mean > 36.0 * variance || variance.sqrt() <= small_spread {
            return mean as u64;
        }
        // Too spread out: drop the longest period and retry, keeping at least 3/4.
        if (kept.len() - 1) * 4 < IDLE_HISTORY * 3 {
            return u64::MAX;
        }
        threshold = (kept.iter().fold(0.0f64, |m, &d| m.max(d)) as u64).saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_phase_is_seeded_and_within_one_period() {
        let tick = 2_100_000 * 256 / 4; // one tick at 2.1 GHz and HZ=250, in 1/256 cycles
        let phases: std::collections::BTreeSet<u64> = (0..64)
            .map(|seed| {
                let p = tick_phase(tick, seed);
                assert!((1..=tick).contains(&p), "seed {seed}: {p}");
                assert_eq!(p, tick_phase(tick, seed));
                p
            })
            .collect();
        assert!(phases.len() > 60, "{} distinct phases", phases.len());
        assert_eq!(tick_phase(1, 9), 1);
    }

    #[test]
    fn ticks_fall_on_the_phase_grid() {
        // Ticks at 3, 13, 23, ...: none before 3, one from 3 to 12, two from 13.
        let counts: Vec<u64> = [0, 2, 3, 12, 13, 22, 23].map(|t| ticks_by(t, 10, 3)).to_vec();
        assert_eq!(counts, [0, 0, 1, 1, 2, 2, 3]);
        // A phase of a whole period is the grid from time 0: jiffies as before.
        assert_eq!([0, 9, 10, 25].map(|t| ticks_by(t, 10, 10)), [0, 0, 1, 2]);
    }

    #[test]
    fn wakeup_placement() {
        let all = |_| true;
        // The previous CPU if idle.
        assert_eq!(pick_cpu(2, 4, all, |k| k == 2 || k == 0, |_| 0), 2);
        // Else an idle one, searching upwards and wrapping.
        assert_eq!(pick_cpu(2, 4, all, |k| k == 0 || k == 1, |_| 0), 0);
        assert_eq!(pick_cpu(2, 4, all, |k| k == 3 || k == 1, |_| 0), 3);
        // Else the shortest allowed queue, the previous CPU winning ties.
        let q = |k: usize| [2, 1, 1, 3][k];
        assert_eq!(pick_cpu(2, 4, all, |_| false, q), 2);
        assert_eq!(pick_cpu(0, 4, all, |_| false, q), 1);
        // Affinity is respected, idle or not.
        assert_eq!(pick_cpu(0, 4, |k| k == 3, |k| k != 3, q), 3);
    }

    #[test]
    fn the_governor_picks_the_deepest_state_that_pays_off() {
        let st = |name: &str, residency: f64| crate::profile::IdleState {
            name: name.into(),
            exit_latency_cycles: residency / 2.0,
            target_residency_cycles: residency,
            tlb_flushed: false,
        };
        let states = [st("C1", 4_000.0), st("C1E", 40_000.0), st("C6", 1_000_000.0)];
        assert_eq!(idle_state(&states, 100), 0);
        assert_eq!(idle_state(&states, 50_000), 1);
        assert_eq!(idle_state(&states, u64::MAX), 2);
    }

    #[test]
    fn typical_interval_needs_a_full_and_consistent_history() {
        let ghz = 2.0;
        let h = |v: &[u64]| v.iter().copied().collect::<VecDeque<u64>>();
        assert_eq!(typical_interval(&h(&[1000; 7]), ghz), u64::MAX);
        assert_eq!(typical_interval(&h(&[1000; 8]), ghz), 1000);
        // One long outlier is dropped; a wide spread is unknown.
        let one_off = [100_000, 100_000, 100_000, 100_000, 100_000, 100_000, 100_000, 9_000_000];
        assert_eq!(typical_interval(&h(&one_off), ghz), 100_000);
        let spread = [
            1_000_000, 5_000_000, 9_000_000, 13_000_000, 17_000_000, 21_000_000, 25_000_000,
            29_000_000,
        ];
        assert_eq!(typical_interval(&h(&spread), ghz), u64::MAX);
    }

    fn e(vruntime: i64, deadline: i64) -> Entity {
        Entity { vruntime, deadline, ..Entity::default() }
    }

    #[test]
    fn base_slice_scales_with_the_log_of_up_to_eight_cpus() {
        assert_eq!(base_slice_ns(1), 750_000);
        assert_eq!(base_slice_ns(2), 1_500_000);
        assert_eq!(base_slice_ns(4), 2_250_000);
        assert_eq!(base_slice_ns(8), 3_000_000);
        assert_eq!(base_slice_ns(104), 3_000_000);
    }

    #[test]
    fn eligibility_and_the_average_are_relative_to_the_runqueue() {
        assert!(eligible(&[0, 100], 0));
        assert!(eligible(&[0, 100], 50));
        assert!(!eligible(&[0, 100], 51));
        assert!(eligible(&[], 7));
        assert_eq!(avg_vruntime(&[0, 101], 9), 50);
        assert_eq!(avg_vruntime(&[-3, 0], 9), -2);
        assert_eq!(avg_vruntime(&[], 9), 9);
    }

    #[test]
    fn placement_keeps_lag_and_gives_new_tasks_half_a_slice() {
        // Alone on the runqueue: no lag to keep.
        assert_eq!(place(1000, 0, 300, 60, false), (1000, 1060));
        // Owed 300 with one other entity: placed 600 before the average, so that the
        // new average leaves it exactly 300 behind.
        assert_eq!(place(1000, 1, 300, 60, false), (400, 460));
        assert_eq!(place(1000, 3, 0, 60, true), (1000, 1030));
        // The lag it leaves with is clamped to two slices or a tick.
        assert_eq!(leave_lag(1000, 0, 60, 200), 200);
        assert_eq!(leave_lag(1000, 0, 300, 200), 600);
        assert_eq!(leave_lag(0, 1000, 60, 200), -200);
    }

    #[test]
    fn pick_eevdf_runs_eligible_earliest_deadlines_and_protects_the_running_slice() {
        // A sleeper placed behind a task that has run keeps the eligible side of the
        // average: it preempts an unprotected current.
        let cur = e(1000, 1500);
        assert_eq!(pick_eevdf(Some(cur), &[e(400, 460)]), Pick::Queued(0));
        // RUN_TO_PARITY: still eligible and protected, it keeps the CPU.
        let prot = Entity { protected: true, ..e(500, 1500) };
        assert_eq!(pick_eevdf(Some(prot), &[e(600, 700)]), Pick::Current);
        // Protection does not save an ineligible entity.
        let far = Entity { protected: true, ..cur };
        assert_eq!(pick_eevdf(Some(far), &[e(400, 2000)]), Pick::Queued(0));
        // Among the eligible, the earliest deadline; the ineligible wait.
        assert_eq!(pick_eevdf(None, &[e(0, 900), e(10, 100), e(5000, 50)]), Pick::Queued(1));
        // The running entity wins a tie.
        assert_eq!(pick_eevdf(Some(e(0, 100)), &[e(0, 100)]), Pick::Current);
        assert_eq!(pick_eevdf(None, &[]), Pick::Nothing);
        assert_eq!(pick_eevdf(Some(cur), &[]), Pick::Current);
    }
}
