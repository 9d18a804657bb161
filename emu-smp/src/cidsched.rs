//! The machine's side of per-mm concurrency IDs (`crate::mmcid`): `mm_cid_schedin` and
//! `mm_cid_schedout` at every context switch under the runqueue lock (sched.rs
//! `switch_to`, `deschedule`, `preempt`), `sched_mm_cid_fork` at clone and
//! `sched_mm_cid_exit` at do_exit, with what they cost: each atomic bitmap operation
//! is a locked RMW of the mm's `mm_cidmask` line (which follows `cpu_bitmap` in the
//! mm_struct, so it shares the mm_cpumask's line for up to 256 CPUs) and each
//! schedule-in reads and writes this CPU's `pcpu` slot (a line per CPU per mm). The
//! mm_cid oracle runs after every schedule-in: two tasks of one mm in user mode at once
//! with one CID, or a CID at or above the number of possible CPUs, is a violation.

use crate::kdata::KObj;
use crate::lock::{LockKey, LockMode};
use crate::machine::{fp, KState, SimError};
use crate::mmcid::{self, TaskCid, Walk};
use crate::path::{KPath, Next};
use crate::stats::Violation;
use crate::strategy::{BrokenPolicy, MmCidVariant};
use crate::task::State;

/// What a task that wants `mm_cid.mutex` does ([`crate::machine::Machine::cid_mutex_contend`]).
#[derive(Debug)]
pub(crate) enum MutexWait {
    /// Nobody else holds it.
    Free,
    /// Its owner runs: spin one poll.
    Spin,
    /// Its owner is off CPU: sleep with this wait.
    Sleep(crate::task::Wait),
}

/// A fork's fixup walk in progress (the forking task's kernel path).
#[derive(Clone, Debug)]
pub struct CidWalk {
    /// The address space.
    mm: u32,
    /// The new task, runnable once the walk ends.
    child: u32,
    /// Task-to-CPU (the targets are tasks) or CPU-to-task (the targets are CPUs).
    to_cpus: bool,
    /// Tasks or CPUs to visit, in the walk's order.
    targets: Vec<u32>,
    /// The next to visit.
    next: usize,
    /// The runqueue lock taken for it after waiting, if any.
    held: Option<usize>,
    /// The walk has got to element `next` (its cost is paid; the lock comes next).
    reached: bool,
    /// When the walk began.
    start_fp: u64,
    /// The fork was a vfork: the parent sleeps until the child execs or exits.
    pub(crate) vfork: bool,
    /// The walk is an exit's (it goes on with do_exit); else a fork's.
    exiting: bool,
    /// A fork waiting for `mm_cid.mutex` before it registers the child (its parent).
    pending: Option<u32>,
    /// A fork in per-task mode whose child found no free CID: mm_get_cid spins (under
    /// mm_cid.lock, the mutex held) until one is free.
    need_cid: bool,
    /// Where an exit's walk goes on: None for do_exit, else execve's path
    /// (`sched_mm_cid_before_execve` is an exit from the old mm).
    pub(crate) resume: Option<Box<KPath>>,
}

impl CidWalk {
    /// A preemption point: not while mm_get_cid spins for a child (under mm_cid.lock,
    /// a raw spinlock, when the mode did not change).
    pub(crate) fn preemptible(&self) -> bool {
        !self.need_cid
    }

    /// A walk of `mm` for `child` (0 for an exit) with nothing to visit, begun at
    /// `start_fp`.
    fn new(mm: u32, child: u32, start_fp: u64) -> CidWalk {
        CidWalk {
            mm,
            child,
            to_cpus: false,
            targets: Vec::new(),
            next: 0,
            held: None,
            reached: false,
            start_fp,
            vfork: false,
            exiting: false,
            pending: None,
            need_cid: false,
            resume: None,
        }
    }
}

impl crate::machine::Machine {
    fn cid_variant(&self) -> MmCidVariant {
        self.k.strategy.mm_cid
    }

    fn cid_broken(&self) -> bool {
        self.k.strategy.broken == BrokenPolicy::MmCidReuse
    }

    /// Charges core `c` for the bitmap operations done since `ops_before`.
    fn charge_cid_ops(&mut self, c: usize, mm: u32, ops_before: u64) {
        let ops = self.probes.mm_cid.bitmap_ops - ops_before;
        for _ in 0..ops {
            let cost = fp(self.profile.kernel.mm_cid_bitmap_op_cycles)
                + self.kline_access(c, KObj::MmCpumask(mm), true);
            self.charge(c, cost);
        }
    }

    /// The mm's other users, as a fixup walk visits them: ascending thread ids
    /// (`for_other_threads`) before today's tree, the user list (newest first) today.
    fn cid_users(&self, mm: u32, except: &[u32]) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .k
            .tasks
            .values()
            .filter(|t| t.mm == mm && t.mm_cid.active && !except.contains(&t.tid))
            .map(|t| t.tid)
            .collect();
        if self.cid_variant() == MmCidVariant::Current {
            v.reverse();
        }
        v
    }

    /// `sched_mm_cid_fork` for `child`, created on core `c` by `parent` (None when the
    /// child has an mm of its own: it is its first user). When the mode changes, the
    /// fixup walk is left to do, as the forking task's kernel path (`CidWalk`): the
    /// child becomes runnable when it ends. Returns that walk.
    pub(crate) fn mm_cid_fork(
        &mut self,
        c: usize,
        parent: Option<u32>,
        child: u32,
    ) -> Option<CidWalk> {
        let v = self.cid_variant();
        if !v.enabled() {
            return None;
        }
        let t = self.k.tasks.get(&child)?;
        let (mm, aff) = (t.mm, t.affinity.clone());
        if self.k.mms.get(&mm).is_some_and(|m| m.cid.walker.is_some()) {
            // mm_cid.mutex is held by another fork's or exit's walk: wait for it (the
            // child stays invisible meanwhile).
            return Some(CidWalk { pending: parent, ..CidWalk::new(mm, child, self.now(c)) });
        }
        let mut pc = parent.and_then(|p| self.k.tasks.get(&p)).map(|t| t.mm_cid);
        let mut cc = TaskCid::default();
        let ops = self.probes.mm_cid.bitmap_ops;
        let broken = self.cid_broken();
        let m = self.k.mms.get_mut(&mm)?;
        m.cid.allow(&aff);
        let walk = m.cid.fork_begin(v, c, pc.as_mut(), &mut cc, &mut self.probes.mm_cid, broken);
        if let (Some(p), Some(pcid)) = (parent, pc) {
            if let Some(t) = self.k.tasks.get_mut(&p) {
                t.rseq_notify |= t.mm_cid.cid != pcid.cid && t.rseq.is_some();
                t.mm_cid = pcid;
            }
        }
        if let Some(t) = self.k.tasks.get_mut(&child) {
            t.mm_cid = cc;
            t.cid_mm = mm;
        }
        self.charge_cid_ops(c, mm, ops);
        if walk == Walk::None {
            let spin = !broken
                && cc.active
                && cc.cid == mmcid::UNSET
                && self.k.mms.get(&mm).is_some_and(|m| !m.cid.percpu());
            if !spin {
                return None;
            }
            // Per-task mode and no free bit: mm_get_cid spins for the child, the mutex
            // held.
            if let Some(m) = self.k.mms.get_mut(&mm) {
                m.cid.walker = Some(parent.unwrap_or(child));
            }
            return Some(CidWalk { need_cid: true, ..CidWalk::new(mm, child, self.now(c)) });
        }
        let targets: Vec<u32> = match walk {
            Walk::None => return None,
            Walk::TasksToCpus => self.cid_users(mm, &[child, parent.unwrap_or(child)]),
            Walk::CpusToTasks => (0..self.hw.cpus.len() as u32).collect(),
        };
        if let Some(m) = self.k.mms.get_mut(&mm) {
            m.cid.walker = Some(parent.unwrap_or(child));
        }
        Some(CidWalk {
            to_cpus: walk == Walk::TasksToCpus,
            targets,
            ..CidWalk::new(mm, child, self.now(c))
        })
    }

    /// Whether `tid`, on core `c`, must wait for `mm_cid.mutex` of `mm`, held by another
    /// fork's or exit's walk (kernel/locking/mutex.c `__mutex_lock_common`): while the
    /// owner runs, the waiter spins on it (mutex_optimistic_spin), one poll per step;
    /// once the owner is off its CPU (preempted in its walk, `--preempt full` or `lazy`),
    /// the waiter sleeps uninterruptibly until the owner releases it
    /// ([`Self::cid_mutex_unlock`]).
    pub(crate) fn cid_mutex_contend(&mut self, c: usize, tid: u32, mm: u32) -> MutexWait {
        let Some(owner) = self.k.mms.get(&mm).and_then(|m| m.cid.walker) else {
            return MutexWait::Free;
        };
        if owner == tid {
            return MutexWait::Free;
        }
        let running =
            self.k.tasks.get(&owner).is_some_and(|t| matches!(t.state, State::Running(_)));
        if running {
            self.charge(c, fp(self.profile.kernel.mutex_spin_poll_cycles));
            self.probes.mm_cid.mutex_polls += 1;
            return MutexWait::Spin;
        }
        self.probes.mm_cid.mutex_sleeps += 1;
        MutexWait::Sleep(crate::task::Wait::CidMutex { mm, since_fp: self.now(c) })
    }

    /// Before sched_mm_cid_exit (do_exit's, or execve's for its old mm), `tid` waits for
    /// `mm_cid.mutex` ([`Self::cid_mutex_contend`]); a task that is no user of its mm's
    /// CIDs does not.
    pub(crate) fn cid_mutex_wait(&mut self, c: usize, tid: u32) -> MutexWait {
        let Some(t) = self.k.tasks.get(&tid) else { return MutexWait::Free };
        if !t.mm_cid.active {
            return MutexWait::Free;
        }
        let mm = t.mm;
        self.cid_mutex_contend(c, tid, mm)
    }

    /// What a step of `tid` returns while it waits for `mm_cid.mutex` as `w` says (not
    /// `Free`), its path going on at `cont` afterwards: one more poll, or a sleep.
    pub(crate) fn cid_mutex_park(&mut self, tid: u32, w: MutexWait, cont: KPath) -> Next {
        match w {
            MutexWait::Sleep(wait) => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.kpath = Some(cont);
                }
                Next::Block(wait)
            }
            MutexWait::Free | MutexWait::Spin => Next::Then(cont),
        }
    }

    /// mutex_unlock of `mm`'s `mm_cid.mutex` by core `c`: the tasks asleep on it are
    /// woken, first sleeper first, and each looks again. (Linux wakes the first waiter
    /// and hands the lock on at each unlock; in emu only a walk holds the mutex across
    /// steps, so a woken fork or exit with no walk to do never unlocks, and waking one
    /// alone could leave the others asleep.)
    fn cid_mutex_unlock(&mut self, c: usize, mm: u32) {
        use crate::task::Wait;
        if let Some(m) = self.k.mms.get_mut(&mm) {
            m.cid.walker = None;
        }
        let mut sleepers: Vec<(u64, u32)> = self
            .k
            .tasks
            .values()
            .filter_map(|t| match t.state {
                State::Blocked(Wait::CidMutex { mm: m, since_fp }) if m == mm => {
                    Some((since_fp, t.tid))
                }
                _ => None,
            })
            .collect();
        sleepers.sort_unstable();
        for (_, tid) in sleepers {
            self.charge(c, fp(self.profile.kernel.wakeup_cycles));
            let at = self.now(c);
            self.wake(tid, 0, at);
        }
    }

    /// One step of a fork's or exit's fixup walk on core `c` (task `tid` forking): the next task
    /// or CPU under its runqueue lock (task_rq_lock or raw_spin_rq_lock). A lock held
    /// across steps (a CPU spinning in mm_get_cid holds its own) is waited for, spinning,
    /// before the step; a task that moved meanwhile is looked up again.
    pub(crate) fn cid_walk_step(&mut self, c: usize, tid: u32, mut w: CidWalk) -> Next {
        if let Some(parent) = w.pending {
            // Waiting for mm_cid.mutex while its owner walks, then register.
            let wait = self.cid_mutex_contend(c, tid, w.mm);
            if !matches!(wait, MutexWait::Free) {
                return self.cid_mutex_park(tid, wait, KPath::CidWalk(Box::new(w)));
            }
            let vfork = w.vfork;
            return match self.mm_cid_fork(c, Some(parent), w.child) {
                Some(mut nw) => {
                    nw.vfork = vfork;
                    Next::Then(KPath::CidWalk(Box::new(nw)))
                }
                None => self.cid_fork_done(c, tid, w.child, vfork),
            };
        }
        if w.need_cid {
            return self.cid_fork_spin(c, tid, w);
        }
        if let Some(j) = w.held.take() {
            let done = self.cid_visit(c, &w, j);
            self.unlock(c, LockKey::Rq(j), LockMode::Write);
            if done {
                w.next += 1;
                w.reached = false;
            }
            return Next::Then(KPath::CidWalk(Box::new(w)));
        }
        let Some(&target) = w.targets.get(w.next) else {
            return self.cid_walk_end(c, tid, w);
        };
        if !w.reached {
            // Getting to the element (the list walk, task_rq_lock's loads): other CPUs
            // run meanwhile, and may schedule the mm's tasks in the new mode.
            w.reached = true;
            let cycles = self.profile.kernel.mm_cid_fixup_visit_cycles;
            self.charge(c, fp(cycles));
            return Next::Then(KPath::CidWalk(Box::new(w)));
        }
        let j = if w.to_cpus { self.task_rq(target) } else { target as usize };
        if self.k.locks.busy(LockKey::Rq(j)) {
            w.held = Some(j);
            return Next::Lock(LockKey::Rq(j), LockMode::Write, KPath::CidWalk(Box::new(w)));
        }
        self.lock_here(c, LockKey::Rq(j));
        if self.cid_visit(c, &w, j) {
            w.next += 1;
            w.reached = false;
        }
        self.unlock(c, LockKey::Rq(j), LockMode::Write);
        Next::Then(KPath::CidWalk(Box::new(w)))
    }

    /// The runqueue a task belongs to: the CPU it runs on or is queued on, else the last
    /// it ran on.
    fn task_rq(&self, tid: u32) -> usize {
        let Some(t) = self.k.tasks.get(&tid) else { return 0 };
        if let State::Running(k) = t.state {
            return k;
        }
        (0..self.hw.cpus.len()).find(|&k| self.k.cpus[k].runq.contains(&tid)).unwrap_or(t.last_cpu)
    }

    /// Visits walk element `w.next` holding runqueue lock `j`; false when the task is
    /// no longer on that runqueue (task_rq_lock then tries again).
    fn cid_visit(&mut self, c: usize, w: &CidWalk, j: usize) -> bool {
        let v = self.cid_variant();
        let ops = self.probes.mm_cid.bitmap_ops;
        let Some(&target) = w.targets.get(w.next) else { return true };
        let mm = w.mm;

        if w.to_cpus {
            if self.task_rq(target) != j {
                return false;
            }
            let Some(t) = self.k.tasks.get(&target) else { return true };
            let running = matches!(t.state, State::Running(k) if k == j)
                && self.k.cpus[j].current == Some(target);
            let mut tc = t.mm_cid;
            if t.mm == mm {
                if let Some(m) = self.k.mms.get_mut(&mm) {
                    m.cid.fixup_task_to_cpu(
                        v,
                        &mut tc,
                        running.then_some(j),
                        &mut self.probes.mm_cid,
                    );
                }
            }
            self.cid_set(target, tc);
        } else {
            let curr = self.k.cpus[j]
                .current
                .filter(|t| self.k.tasks.get(t).is_some_and(|t| t.mm == mm && t.mm_cid.active));
            let mut tc = curr.and_then(|t| self.k.tasks.get(&t)).map(|t| t.mm_cid);
            if let Some(m) = self.k.mms.get_mut(&mm) {
                m.cid.fixup_cpu_to_task(v, j, tc.as_mut(), &mut self.probes.mm_cid);
            }
            if let (Some(t), Some(tc)) = (curr, tc) {
                self.cid_set(t, tc);
            }
        }
        self.charge_cid_ops(c, mm, ops);
        if self.probes.mm_cid.bitmap_ops > ops {
            self.cid_retry_spinners(c, mm);
        }
        true
    }

    fn cid_set(&mut self, tid: u32, tc: TaskCid) {
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.rseq_notify |= t.mm_cid.cid != tc.cid && t.rseq.is_some();
            t.mm_cid = tc;
        }
    }

    /// The end of the walk: the transition completes (`mm_cid_complete_transit`), a
    /// switch back gives the child its CID, the child becomes runnable and the fork
    /// returns its id.
    fn cid_walk_end(&mut self, c: usize, tid: u32, w: CidWalk) -> Next {
        if w.exiting {
            if let Some(m) = self.k.mms.get_mut(&w.mm) {
                m.cid.complete_transit();
            }
            self.cid_mutex_unlock(c, w.mm);
            self.note_walk(c, w.start_fp);
            return Next::Then(w.resume.map_or(KPath::Exit(crate::path::ExitStep::Start), |p| *p));
        }
        if let Some(m) = self.k.mms.get_mut(&w.mm) {
            m.cid.complete_transit();
        }
        self.note_walk(c, w.start_fp);
        if w.to_cpus {
            self.cid_mutex_unlock(c, w.mm);
            return self.cid_fork_done(c, tid, w.child, w.vfork);
        }
        // A switch back: the child's CID comes from mm_get_cid, the mutex still held.
        let mut w = w;
        w.need_cid = true;
        self.cid_fork_spin(c, tid, w)
    }

    /// mm_get_cid for a fork's child in per-task mode, on core `c`, `mm_cid.mutex` held:
    /// with a bit free the child takes it, the mutex is released and the fork ends;
    /// otherwise the core spins until a CID is released (`KState::CidSpin`), and tries
    /// again.
    fn cid_fork_spin(&mut self, c: usize, tid: u32, w: CidWalk) -> Next {
        let broken = self.cid_broken();
        let mut cc = self.k.tasks.get(&w.child).map(|t| t.mm_cid).unwrap_or_default();
        let ops = self.probes.mm_cid.bitmap_ops;
        if let Some(m) = self.k.mms.get_mut(&w.mm) {
            m.cid.fork_end(&mut cc, &mut self.probes.mm_cid, broken);
        }
        self.charge_cid_ops(c, w.mm, ops);
        if cc.cid == mmcid::UNSET && cc.active && !broken {
            self.probes.mm_cid.fork_spins += 1;
            let mm = w.mm;
            return Next::CidSpin(mm, KPath::CidWalk(Box::new(w)));
        }
        self.cid_set(w.child, cc);
        self.cid_mutex_unlock(c, w.mm);
        self.cid_fork_done(c, tid, w.child, w.vfork)
    }

    /// The end of a clone that registered its child after a wait or a walk: the child
    /// becomes runnable and the clone returns its id.
    fn cid_fork_done(&mut self, c: usize, tid: u32, child: u32, vfork: bool) -> Next {
        let at = self.now(c);
        self.enqueue(child, at, c);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.cpu.gpr[0] = u64::from(child);
        }
        if vfork {
            return Next::Block(crate::task::Wait::Vfork(child));
        }
        self.user_or_gone(c, tid)
    }

    /// `mm_update_cpus_allowed` after `tid`'s affinity became `aff`: a widened
    /// `mm_cpus_allowed` recomputes the thresholds and may defer a switch back, which
    /// the next fork or exit runs (the irq_work and workqueue are not modelled).
    pub(crate) fn mm_cid_affinity(&mut self, tid: u32, aff: &[bool]) {
        let v = self.cid_variant();
        let Some(mm) = self.k.tasks.get(&tid).filter(|t| t.mm_cid.active).map(|t| t.mm) else {
            return;
        };
        if let Some(m) = self.k.mms.get_mut(&mm).filter(|_| v.enabled()) {
            if m.cid.allow(aff) {
                m.cid.affinity_widened(v);
            }
        }
    }

    /// `sched_mm_cid_exit` for `tid`, exiting on core `c`: returns the fixup walk over
    /// the CPUs a switch back leaves to do (as the exiting task's kernel path).
    pub(crate) fn mm_cid_exit(&mut self, c: usize, tid: u32) -> Option<CidWalk> {
        let v = self.cid_variant();
        let t = self.k.tasks.get(&tid)?;
        if !v.enabled() || !t.mm_cid.active {
            return None;
        }
        let (mm, mut tc) = (t.mm, t.mm_cid);
        let ops = self.probes.mm_cid.bitmap_ops;
        let m = self.k.mms.get_mut(&mm)?;
        let walk = m.cid.exit_begin(v, c, &mut tc, &mut self.probes.mm_cid);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.mm_cid = tc;
        }
        self.charge_cid_ops(c, mm, ops);
        if self.probes.mm_cid.bitmap_ops > ops {
            self.cid_retry_spinners(c, mm);
        }
        if walk == Walk::CpusToTasks {
            if let Some(m) = self.k.mms.get_mut(&mm) {
                m.cid.walker = Some(tid);
            }
        }
        (walk == Walk::CpusToTasks).then(|| CidWalk {
            targets: (0..self.hw.cpus.len() as u32).collect(),
            exiting: true,
            ..CidWalk::new(mm, 0, self.now(c))
        })
    }

    /// Records the duration of a walk that began at `start_fp` and ends now on `c`.
    fn note_walk(&mut self, c: usize, start_fp: u64) {
        let now = self.now(c);
        let took = now.saturating_sub(start_fp) >> 8;
        if self.host.as_ref().is_some_and(|h| h.stolen_by(c, now) > h.stolen_by(c, start_fp)) {
            self.probes.mm_cid.walks_host_preempted += 1;
        }
        let st = &mut self.probes.mm_cid;
        st.fixup_cycles_total += took;
        st.fixup_cycles_max = st.fixup_cycles_max.max(took);
    }

    /// `mm_cid_schedin` of `tid` on CPU `k` (from switch_to, after the mm switch, under
    /// the runqueue lock). A changed CID makes rseq's ids due.
    pub(crate) fn mm_cid_schedin(&mut self, k: usize, tid: u32) {
        let v = self.cid_variant();
        let Some(t) = self.k.tasks.get(&tid) else { return };
        let (mm, mut tc) = (t.mm, t.mm_cid);
        if !v.enabled() {
            // CONFIG_SCHED_MM_CID=n: the CPU number (a changed one is a migration).
            return;
        }
        if !tc.active {
            return;
        }
        if self.cid_walk_ahead_of(mm, tid) {
            self.probes.mm_cid.walk_overtaken += 1;
        }
        let ops = self.probes.mm_cid.bitmap_ops;
        let broken = self.cid_broken();
        let start = self.now(k);
        let Some(m) = self.k.mms.get_mut(&mm) else { return };
        let r = m.cid.schedin(v, k, &mut tc, &mut self.probes.mm_cid, broken);
        let slot = self.kline_access(k, KObj::MmCidPcpu(mm, k), true);
        self.charge(k, slot);
        self.charge_cid_ops(k, mm, ops);
        self.probes.mm_cid.schedin_cycles += (self.now(k) - start) >> 8;
        if r.is_ok() && self.probes.mm_cid.bitmap_ops > ops {
            // A slow path that dropped a CID (the CPU's or the task's) may free a spinner.
            self.cid_retry_spinners(k, mm);
        }
        match r {
            Ok(changed) => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.mm_cid = tc;
                    t.rseq_notify |= changed && t.rseq.is_some();
                }
                self.check_cids(k, mm);
            }
            Err(mmcid::NoCid) => {
                // mm_get_cid spins with the runqueue lock still held (and interrupts
                // off): the lock stays taken until a CID is free.
                let ready = self.k.cpus[k].kstate == KState::Ready;
                self.lock_here(k, LockKey::Rq(k));
                let since_fp = self.now(k);
                self.probes.mm_cid.schedin_spins += 1;
                self.k.cpus[k].kstate =
                    KState::CidSpin { mm, since_fp, ready, fork: false, retry_fp: u64::MAX };
                self.k.cid_spinners += 1;
                self.touch(k);
            }
        }
    }

    /// Whether a task-to-CPU fixup walk of `mm` is under way and has not yet reached
    /// task `tid`.
    fn cid_walk_ahead_of(&self, mm: u32, tid: u32) -> bool {
        let Some(walker) = self.k.mms.get(&mm).and_then(|m| m.cid.walker) else { return false };
        self.k.tasks.get(&walker).is_some_and(|t| match &t.kpath {
            Some(KPath::CidWalk(w)) => {
                w.mm == mm && w.to_cpus && w.targets.get(w.next..).is_some_and(|r| r.contains(&tid))
            }
            _ => false,
        })
    }

    /// A CID of `mm` was released by core `c`: CPUs spinning in mm_get_cid for it try
    /// again (lowest CPU first), and one that gets a CID finishes its schedule-in,
    /// releases its runqueue lock and goes on.
    pub(crate) fn cid_retry_spinners(&mut self, c: usize, mm: u32) {
        if self.k.cid_spinners == 0 {
            return;
        }
        let at = self.now(c);
        for j in 0..self.hw.cpus.len() {
            let KState::CidSpin { mm: m, .. } = self.k.cpus[j].kstate else { continue };
            if m != mm {
                continue;
            }
            if self.host.as_ref().is_some_and(|h| !h.runs(j, at)) {
                // The host has this vCPU preempted: it sees the free bit (if it is still
                // free) only when it runs again.
                if let KState::CidSpin { retry_fp, .. } = &mut self.k.cpus[j].kstate {
                    *retry_fp = (*retry_fp).min(at);
                }
                self.touch(j);
                continue;
            }
            self.cid_retry(j, mm, at);
        }
    }

    /// CPU `j`, spinning in mm_get_cid for address space `mm`, looks at the bitmap again
    /// at time `at`: with a free bit, its schedule-in completes (or its fork's next step
    /// takes the bit) and it goes on from `at`.
    pub(crate) fn cid_retry(&mut self, j: usize, mm: u32, at: u64) {
        let v = self.cid_variant();
        let broken = self.cid_broken();
        let KState::CidSpin { mm: m, ready, fork, since_fp, .. } = self.k.cpus[j].kstate else {
            return;
        };
        let Some(tid) = self.k.cpus[j].current else { return };
        if m != mm || !self.k.mms.get(&mm).is_some_and(|m| m.cid.has_free_bit()) {
            return;
        }
        if fork {
            // The fork's next step takes the bit (or spins again if another took it).
            self.advance(j, at);
            self.k.cid_spinners -= 1;
            self.k.cpus[j].kstate = KState::Ready;
            self.touch(j);
            return;
        }
        let Some(mut tc) = self.k.tasks.get(&tid).map(|t| t.mm_cid) else { return };
        let Some(mc) = self.k.mms.get_mut(&mm) else { return };
        if mc.cid.schedin(v, j, &mut tc, &mut self.probes.mm_cid, broken).is_err() {
            return;
        }
        self.advance(j, at);
        let spun = self.now(j).saturating_sub(since_fp) >> 8;
        let st = &mut self.probes.mm_cid;
        st.spin_cycles_max = st.spin_cycles_max.max(spun);
        self.k.cid_spinners -= 1;
        self.k.cpus[j].kstate = if ready { KState::Ready } else { KState::User };
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.mm_cid = tc;
            t.rseq_notify |= t.rseq.is_some();
        }
        self.unlock(j, LockKey::Rq(j), LockMode::Write);
        self.touch(j);
        self.check_cids(j, mm);
    }

    /// The hard-lockup watchdog, before the event at `t` runs: a CPU that has spun in
    /// mm_get_cid for the threshold, or spins while nothing else can happen, ends the
    /// run with the CID state. True when it fired.
    pub(crate) fn cid_watchdog(&mut self, t: u64) -> bool {
        // In a virtual machine, the CPU that would free a CID may be preempted by the
        // host for up to a rotation: that is a wait, not a live lock.
        let thresh = self.fp_of_ns((self.profile.kernel.watchdog_thresh_ms * 1e6) as u64)
            + self.host.as_ref().map_or(0, |h| h.period());
        let mut first = u64::MAX;
        let mut cpus = Vec::new();
        let mut mm = 0;
        for j in 0..self.hw.cpus.len() {
            if let KState::CidSpin { mm: m, since_fp, .. } = self.k.cpus[j].kstate {
                first = first.min(since_fp);
                mm = m;
                let tid = self.k.cpus[j].current.unwrap_or(0);
                cpus.push(format!("CPU {j} (task {tid})"));
            }
        }
        if first == u64::MAX || (t != u64::MAX && t < first.saturating_add(thresh)) {
            return false;
        }
        let now = if t == u64::MAX { first.saturating_add(thresh) } else { t };
        let waiting: Vec<String> = (0..self.hw.cpus.len())
            .filter_map(|j| match self.k.cpus[j].kstate {
                KState::Spin { key, .. } => Some(format!("CPU {j} spins on {key:?}")),
                _ => None,
            })
            .collect();
        let walk = self
            .k
            .tasks
            .values()
            .find_map(|t| match &t.kpath {
                Some(KPath::CidWalk(w)) if w.mm == mm => {
                    Some(format!("task {}'s fixup walk at {} of {:?}", t.tid, w.next, w.targets))
                }
                _ => None,
            })
            .unwrap_or_else(|| "no fixup walk".into());
        let state = self.k.mms.get(&mm).map(|m| m.cid.describe()).unwrap_or_default();
        let tasks: Vec<String> = self
            .k
            .tasks
            .values()
            .filter(|t| t.mm == mm && t.mm_cid.active)
            .map(|t| format!("{}:{}", t.tid, mmcid::fmt_cid(t.mm_cid.cid)))
            .collect();
        let spun_ns = self.ns_of(now.saturating_sub(first));
        self.fail(SimError::MmCidLivelock {
            cpus: cpus.join(", "),
            spun_ns,
            state: format!(
                "{state}; tasks [{}]; {walk}; {}",
                tasks.join(", "),
                if waiting.is_empty() {
                    "no CPU waits on a lock".into()
                } else {
                    waiting.join(", ")
                }
            ),
        });
        true
    }

    /// `mm_cid_schedout` of `tid` leaving CPU `k`.
    pub(crate) fn mm_cid_schedout(&mut self, k: usize, tid: u32) {
        let v = self.cid_variant();
        let Some(t) = self.k.tasks.get(&tid) else { return };
        let (mm, mut tc) = (t.cid_mm, t.mm_cid);
        if !v.enabled() || tc.cid & mmcid::TRANSIT == 0 || tc.cid & mmcid::UNSET != 0 {
            return;
        }
        let ops = self.probes.mm_cid.bitmap_ops;
        let Some(m) = self.k.mms.get_mut(&mm) else { return };
        m.cid.schedout(v, k, &mut tc, &mut self.probes.mm_cid);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.rseq_notify |= t.mm_cid.cid != tc.cid && t.rseq.is_some();
            t.mm_cid = tc;
        }
        self.charge_cid_ops(k, mm, ops);
        if self.probes.mm_cid.bitmap_ops > ops {
            self.cid_retry_spinners(k, mm);
        }
    }

    /// The CID rseq shows `tid` on CPU `c`.
    pub(crate) fn mm_cid(&self, tid: u32, c: usize) -> u32 {
        if !self.cid_variant().enabled() {
            return c as u32;
        }
        let Some(t) = self.k.tasks.get(&tid) else { return 0 };
        let v = mmcid::value(t.mm_cid.cid);
        // An unset CID shows as 0 (rseq's mm_cid is never UNSET for a running task).
        if v & mmcid::UNSET != 0 {
            0
        } else {
            v
        }
    }

    /// The mm_cid oracle after a schedule-in on CPU `k` of a task of `mm`: the CIDs of
    /// that mm's tasks current on a CPU (past their schedule-in) are distinct and below
    /// the number of CPUs.
    fn check_cids(&mut self, k: usize, mm: u32) {
        let n = self.hw.cpus.len() as u32;
        let mut seen: Vec<(u32, u32)> = Vec::new();
        let mut bad: Option<String> = None;
        for (j, cpu) in self.k.cpus.iter().enumerate() {
            let Some(tid) = cpu.current else { continue };
            let Some(t) = self.k.tasks.get(&tid) else { continue };
            // A CPU still spinning in mm_get_cid has not given its task a CID yet.
            if t.mm != mm || !t.mm_cid.active || matches!(cpu.kstate, KState::CidSpin { .. }) {
                continue;
            }
            let v = mmcid::value(t.mm_cid.cid);
            if v >= n {
                bad = Some(format!("task {tid} on CPU {j} has CID {v} of {n} CPUs"));
            } else if let Some((o, _)) = seen.iter().find(|(_, c)| *c == v) {
                bad = Some(format!("tasks {o} and {tid} share CID {v}"));
            }
            seen.push((tid, v));
        }
        let Some(what) = bad else { return };
        self.probes.violation_count += 1;
        if self.probes.violations.len() < crate::machine::VIOLATIONS_KEPT {
            let ns = self.ns_of(self.now(k));
            self.probes.violations.push(Violation {
                core: k,
                address: u64::from(mm),
                kind: "mm_cid",
                time_ns: ns,
                strategy: self.k.strategy.label(),
                detail: Some(what),
            });
        }
    }
}
