//! The scheduler: per-CPU runqueues, wakeup placement (kernel/sched `select_task_rq`,
//! simplified: the previous CPU if idle, else an idle allowed CPU, else the least loaded
//! allowed runqueue), round-robin preemption at the scheduler tick, load balancing at the
//! tick and when a CPU would go idle, and the idle task with idle states chosen by a
//! governor that looks at the next timer. A CPU going idle keeps its mm loaded in lazy
//! TLB mode, as Linux does.

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
    pub(crate) fn enqueue(&mut self, tid: u32, at: u64, _waker: usize) {
        let k = self.select_task_rq(tid);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.state = State::Runnable;
        }
        self.k.cpus[k].runq.push_back(tid);
        self.touch(k);
        if self.k.cpus[k].current.is_none() {
            self.wake_idle_cpu(k, at);
        }
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
        if migrated || t.cpu.cpuid.query(0, 0) == [0; 4] {
            t.cpu.cpuid = self.profile.cpuid(k as u32, self.hw.cpus.len() as u32);
        }
        self.k.cpus[k].current = Some(tid);
        // A task that slept inside a kernel path resumes it; others return to user mode.
        self.k.cpus[k].kstate = if t.kpath.is_some() { KState::Ready } else { KState::User };
        self.probes.cpus[k].context_switches += 1;
        if migrated {
            self.probes.cpus[k].migrations_in += 1;
        }
        self.charge(k, fp(self.profile.kernel.context_switch_cycles));
        self.switch_mm_irqs_off(k, mm);
        if self.k.cpus[k].next_tick_fp <= now {
            self.k.cpus[k].next_tick_fp = (now / self.tick_fp() + 1) * self.tick_fp();
        }
        if migrated {
            self.rseq_update(k, tid);
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
            let t = self.now(k);
            self.trace_task_end(k, tid);
            self.k.cpus[k].current = None;
            self.k.cpus[k].kstate = KState::User;
            self.hw.cpus[k].time_fp = self.hw.cpus[k].time_fp.max(t);
        }
        self.schedule(k);
    }

    /// Puts `tid`, running on CPU `k` in user mode (or yielding), back at the tail of the
    /// runqueue and runs the next task.
    pub(crate) fn preempt(&mut self, k: usize, tid: u32) {
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.state = State::Runnable;
        }
        self.trace_task_end(k, tid);
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
        if let Some(next) = self.k.cpus[k].runq.pop_front() {
            self.switch_to(k, next);
            return;
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
            if let Some(tid) = self.k.cpus[j].runq.remove(pos) {
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
        self.enter_lazy_tlb(k);
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
    /// round-robin preemption when others wait: at once in user mode, at the next return
    /// to user mode in the kernel (which is not preemptible).
    pub(crate) fn tick(&mut self, k: usize) {
        self.charge(k, fp(self.profile.kernel.tick_cycles));
        self.probes.cpus[k].ticks += 1;
        let now = self.now(k);
        self.k.cpus[k].next_tick_fp = (now / self.tick_fp() + 1) * self.tick_fp();
        // Load balance: a waiting task may run on an idle CPU it is allowed on.
        if let Some(&tid) = self.k.cpus[k].runq.front() {
            let idle = (0..self.hw.cpus.len()).find(|&j| {
                self.k.cpus[j].current.is_none()
                    && self.k.cpus[j].runq.is_empty()
                    && self.k.tasks.get(&tid).is_some_and(|t| t.affinity[j])
            });
            if let Some(j) = idle {
                self.k.cpus[k].runq.pop_front();
                self.k.cpus[j].runq.push_back(tid);
                self.touch(j);
                self.wake_idle_cpu(j, now);
            }
        }
        if !self.k.cpus[k].runq.is_empty() {
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
}
