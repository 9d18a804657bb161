//! The scheduler: per-CPU runqueues, wakeup placement (kernel/sched `select_task_rq`,
//! simplified: the previous CPU if idle, else an idle allowed CPU, else the least loaded
//! allowed runqueue), round-robin preemption at the scheduler tick, load balancing at the
//! tick and when a CPU would go idle, and the idle task with idle states chosen by a
//! governor that looks at the next timer. A CPU going idle keeps its mm loaded in lazy
//! TLB mode, as Linux does.

use crate::machine::{fp, Idle, Machine};
use crate::task::State;

impl Machine {
    /// Picks the CPU a runnable task goes to.
    fn select_task_rq(&self, tid: u32) -> usize {
        let Some(t) = self.tasks.get(&tid) else { return 0 };
        let n = self.cores.len();
        let prev = t.last_cpu.min(n - 1);
        let allowed = |k: usize| t.affinity.get(k).copied().unwrap_or(false);
        let idle = |k: usize| self.cores[k].current.is_none() && self.cores[k].waiting == 0;
        if allowed(prev) && idle(prev) {
            return prev;
        }
        // An idle allowed CPU, searching outwards from the previous one.
        if let Some(k) = (1..n).map(|d| (prev + d) % n).find(|&k| allowed(k) && idle(k)) {
            return k;
        }
        (0..n)
            .filter(|&k| allowed(k))
            .min_by_key(|&k| (self.cores[k].runq.len(), k != prev, k))
            .unwrap_or(prev)
    }

    /// Makes `tid` runnable at local time `at`: on an idle CPU it starts at once (that
    /// CPU leaving its idle state), otherwise it waits in a runqueue.
    pub(crate) fn enqueue(&mut self, tid: u32, at: u64, _waker: usize) {
        let k = self.select_task_rq(tid);
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.state = State::Runnable;
        }
        if self.cores[k].current.is_none() && self.cores[k].waiting == 0 {
            self.advance(k, at);
            self.leave_idle(k);
            self.switch_to(k, tid);
        } else {
            self.cores[k].runq.push_back(tid);
        }
    }

    /// Runs `tid` on CPU `k` (which has no current task): the context switch, the
    /// address-space switch, and the task's clock joining the CPU's.
    pub(crate) fn switch_to(&mut self, k: usize, tid: u32) {
        let now = self.cores[k].time_fp;
        let Some(t) = self.tasks.get_mut(&tid) else { return };
        let migrated = t.last_cpu != k;
        let mm = t.mm;
        t.state = State::Running(k);
        t.last_cpu = k;
        t.cpu.time_fp = now;
        t.cpu.tsc_aux = k as u32;
        if migrated || t.cpu.cpuid.query(0, 0) == [0; 4] {
            t.cpu.cpuid = self.profile.cpuid(k as u32, self.cores.len() as u32);
        }
        self.cores[k].current = Some(tid);
        self.cores[k].stats.context_switches += 1;
        if migrated {
            self.cores[k].stats.migrations_in += 1;
        }
        self.charge(k, fp(self.profile.kernel.context_switch_cycles));
        self.switch_mm_irqs_off(k, mm);
        if self.cores[k].next_tick_fp <= now {
            self.cores[k].next_tick_fp = (now / self.tick_fp() + 1) * self.tick_fp();
        }
        if migrated {
            self.rseq_update(k, tid);
        }
        self.trace_task_begin(k, tid);
    }

    /// Takes the current task off CPU `k` (it blocked, exited or was preempted) and
    /// runs the next one, or goes idle.
    pub(crate) fn deschedule(&mut self, k: usize) {
        if let Some(tid) = self.cores[k].current {
            let t = self.now(k);
            self.trace_task_end(k, tid);
            self.cores[k].current = None;
            self.cores[k].time_fp = self.cores[k].time_fp.max(t);
        }
        self.schedule(k);
    }

    /// Picks the next task for CPU `k`, pulling one from a busier CPU if its own
    /// runqueue is empty; otherwise the idle task runs.
    pub(crate) fn schedule(&mut self, k: usize) {
        if self.cores[k].current.is_some() {
            return;
        }
        if let Some(next) = self.cores[k].runq.pop_front() {
            self.switch_to(k, next);
            return;
        }
        // Idle balance: take a waiting task from the busiest runqueue it may leave.
        let busiest = (0..self.cores.len())
            .filter(|&j| j != k)
            .filter_map(|j| {
                let q = &self.cores[j].runq;
                let pos =
                    q.iter().position(|tid| self.tasks.get(tid).is_some_and(|t| t.affinity[k]))?;
                Some((q.len(), std::cmp::Reverse(j), j, pos))
            })
            .max();
        if let Some((_, _, j, pos)) = busiest {
            if let Some(tid) = self.cores[j].runq.remove(pos) {
                self.switch_to(k, tid);
                return;
            }
        }
        self.enter_idle(k);
    }

    /// The idle task starts on CPU `k`: lazy TLB, and an idle state deep enough for the
    /// expected idle time (until the next timer) but not deeper.
    pub(crate) fn enter_idle(&mut self, k: usize) {
        if self.cores[k].idle.is_some() {
            return;
        }
        self.enter_lazy_tlb(k);
        let now = self.cores[k].time_fp;
        let expected = self.next_timer_fp().map_or(u64::MAX, |w| w.saturating_sub(now)) >> 8;
        let states = &self.profile.idle.states;
        let state =
            states.iter().rposition(|s| s.target_residency_cycles <= expected as f64).unwrap_or(0);
        self.cores[k].idle = Some(Idle { since_fp: now, state });
        self.cores[k].stats.idle_entries += 1;
    }

    /// CPU `k` wakes from its idle state (an interrupt or a task arrived).
    pub(crate) fn leave_idle(&mut self, k: usize) {
        if let Some(idle) = self.cores[k].idle.take() {
            let now = self.cores[k].time_fp;
            self.cores[k].stats.idle_cycles += now.saturating_sub(idle.since_fp) >> 8;
            let exit = fp(self.profile.idle.states[idle.state].exit_latency_cycles);
            self.cores[k].time_fp = now + exit;
            self.cores[k].stats.idle_exit_cycles += exit >> 8;
            self.trace_idle(
                k,
                idle.since_fp,
                now,
                &self.profile.idle.states[idle.state].name.clone(),
            );
        }
    }

    /// Earliest pending timer (fp), for the idle governor.
    fn next_timer_fp(&self) -> Option<u64> {
        self.tasks
            .values()
            .filter_map(|t| match &t.state {
                State::Blocked(crate::task::Wait::Sleep { until_ns, .. }) => Some(*until_ns),
                State::Blocked(crate::task::Wait::Futex { until_ns: Some(u), .. }) => Some(*u),
                _ => None,
            })
            .min()
            .map(|ns| self.fp_of_ns(ns))
    }

    /// The scheduler tick on busy CPU `k`: round-robin preemption when others wait, and
    /// pushing a waiting task to an idle CPU.
    pub(crate) fn tick(&mut self, k: usize) {
        self.charge(k, fp(self.profile.kernel.tick_cycles));
        self.cores[k].stats.ticks += 1;
        let now = self.now(k);
        self.cores[k].next_tick_fp = (now / self.tick_fp() + 1) * self.tick_fp();
        // Load balance: a waiting task may run on an idle CPU it is allowed on.
        if let Some(&tid) = self.cores[k].runq.front() {
            let idle = (0..self.cores.len()).find(|&j| {
                self.cores[j].current.is_none()
                    && self.cores[j].waiting == 0
                    && self.tasks.get(&tid).is_some_and(|t| t.affinity[j])
            });
            if let Some(j) = idle {
                self.cores[k].runq.pop_front();
                self.advance(j, now);
                self.leave_idle(j);
                self.switch_to(j, tid);
            }
        }
        if !self.cores[k].runq.is_empty() && self.cores[k].waiting == 0 {
            if let Some(cur) = self.cores[k].current {
                self.cores[k].stats.preemptions += 1;
                if let Some(t) = self.tasks.get_mut(&cur) {
                    t.state = State::Runnable;
                }
                self.trace_task_end(k, cur);
                let t = self.now(k);
                self.cores[k].current = None;
                self.cores[k].time_fp = t;
                self.cores[k].runq.push_back(cur);
                self.schedule(k);
            }
        }
    }
}
