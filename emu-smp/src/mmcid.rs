//! Per-mm concurrency IDs (`mm_cid`), the ownership scheme of kernel/sched/core.c and
//! kernel/sched/sched.h (`mm_cid_schedin`, `mm_cid_from_task`, `mm_cid_from_cpu`,
//! `mm_cid_schedout`, `mm_get_cid`, `mm_cid_converge`, `sched_mm_cid_fork`,
//! `sched_mm_cid_exit`, `mm_update_max_cids`, `mm_cid_fixup_tasks_to_cpus`,
//! `mm_cid_fixup_cpus_to_tasks`), restated in our own words from /work/shared/AXES.md §3
//! and seeds 001 and 003, as emu-check's abstract model (emu-check/src/mmcid.rs) does.
//!
//! What a CID is: a value below `num_possible_cpus()`, unique among the mm's tasks in user
//! mode, that rseq shows the task (`task_mm_cid`). While the mm has few users each task
//! owns one (per-task mode); once it has more users than `max_cids`, each CPU owns one and
//! lends it to whichever task of the mm runs there (per-CPU mode, flag ONCPU). A mode
//! change marks the CIDs in flight TRANSIT; a fixup walk converts the others.
//!
//! This file holds the state and its transitions, with no machine: the kernel model
//! (sched.rs, process.rs) calls them at every context switch under the runqueue lock, at
//! fork and at exit, and charges what the counters say was done.
//!
//! Simplification (said where it matters): a fork's or exit's fixup walk runs as one
//! atomic step here, so no schedule-in observes a transition half done; the live lock
//! of seed 001, which needs a schedule-in between two steps of the walk, cannot happen
//! in the emulator yet (emu-check finds it). An allocation that finds no free CID is
//! reported to the caller (`NoCid`): a schedule-in then spins (see cidsched.rs).

use crate::strategy::MmCidVariant;
use serde::Serialize;

/// `MM_CID_UNSET`: no CID.
pub const UNSET: u32 = 1 << 31;
/// `MM_CID_ONCPU`: the CID is owned by the CPU.
pub const ONCPU: u32 = 1 << 30;
/// `MM_CID_TRANSIT`: the CID is held temporarily during a mode change.
pub const TRANSIT: u32 = 1 << 29;

/// `cid_on_task`: a plain CID owned by a task (no flag).
pub fn on_task(c: u32) -> bool {
    c < TRANSIT
}
/// `cid_on_cpu`: owned by a CPU.
pub fn on_cpu(c: u32) -> bool {
    c & ONCPU != 0 && c & UNSET == 0
}
fn in_transit(c: u32) -> bool {
    c & TRANSIT != 0 && c & UNSET == 0
}
/// `task_mm_cid`: the value rseq shows (flags stripped; UNSET as is).
pub fn value(c: u32) -> u32 {
    if c & UNSET != 0 {
        c
    } else {
        c & !(ONCPU | TRANSIT)
    }
}

/// A task's `mm_cid` (`struct sched_mm_cid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskCid {
    /// The CID with its flags.
    pub cid: u32,
    /// Counted as a user of its mm.
    pub active: bool,
}

impl Default for TaskCid {
    fn default() -> Self {
        TaskCid { cid: UNSET, active: false }
    }
}

/// Another task of the mm, as the one-step walks of the unit tests see it.
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// Its CID.
    pub cid: TaskCid,
    /// The CPU whose `rq->curr` it is, if any.
    pub running_on: Option<usize>,
}

/// The fixup walk a fork leaves to do, one element per step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// No mode change.
    None,
    /// To per-CPU: `mm_cid_fixup_tasks_to_cpus` over the other users.
    TasksToCpus,
    /// Back to per-task: `mm_cid_fixup_cpus_to_tasks` over the CPUs, then the child's CID.
    CpusToTasks,
}

/// No CID was free: `mm_get_cid` would spin here (holding the runqueue lock in
/// schedule-in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoCid;

/// Counters of the scheme, per machine.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct MmCidStats {
    /// Atomic bitmap operations (test-and-set and clear of `mm_cidmask` bits).
    pub bitmap_ops: u64,
    /// Schedule-ins that took a fast path (no bitmap operation, no flag change).
    pub fast_path: u64,
    /// Schedule-ins that took a slow path.
    pub slow_path: u64,
    /// Cycles the schedule-ins took (the pcpu slot's line, bitmap operations and their
    /// line transfers; a spin in mm_get_cid not included).
    pub schedin_cycles: u64,
    /// Mode switches task-to-CPU.
    pub to_percpu: u64,
    /// Mode switches CPU-to-task.
    pub to_pertask: u64,
    /// Schedule-outs that released a TRANSIT CID to the pool.
    pub transit_drops: u64,
    /// Schedule-outs that kept a TRANSIT CID (patch 4).
    pub transit_kept: u64,
    /// Fixup walks run.
    pub fixups: u64,
    /// Tasks and CPUs those walks visited.
    pub fixup_visits: u64,
    /// Convergences of a CID at or above `max_cids` to a lower one.
    pub converged: u64,
    /// Cycles the fixup walks took, all of them.
    pub fixup_cycles_total: u64,
    /// Cycles of the longest fixup walk.
    pub fixup_cycles_max: u64,
    /// Polls of a fork or exit waiting for `mm_cid.mutex` while another walks.
    pub mutex_polls: u64,
    /// Forks and exits that slept on `mm_cid.mutex` because its owner was off its CPU.
    pub mutex_sleeps: u64,
    /// Forks whose child found no free CID in per-task mode: the forking CPU spun in
    /// mm_get_cid (counted once per attempt).
    pub fork_spins: u64,
    /// Fixup walks preempted between two elements (`--preempt full` or `lazy`): the
    /// transition stays half done, mm_cid.mutex held, until the walker runs again.
    pub walks_preempted: u64,
    /// Schedule-ins that found no free CID and spun in mm_get_cid, runqueue lock held:
    /// the first half of seed 001's live lock, and patch 1's "temporary contention on
    /// the CID bitmap".
    pub schedin_spins: u64,
    /// Schedule-ins, during a task-to-CPU fixup walk, of a task the walk had not yet
    /// reached: the window seed 001's trace needs (its step 2), entered.
    pub walk_overtaken: u64,
    /// Cycles of the longest of those spins that ended.
    pub spin_cycles_max: u64,
    /// In a virtual machine, fixup walks during which the host preempted the vCPU the
    /// walk ended on (the window stretched by a host slice or more).
    pub walks_host_preempted: u64,
}

/// The per-mm state (`struct mm_mm_cid` plus `mm_cidmask`).
#[derive(Clone, Debug)]
pub struct MmCid {
    n: u32,
    bitmap: Vec<bool>,
    /// `pcpu[cpu].cid`.
    pub pcpu: Vec<u32>,
    /// Per-CPU mode: the ONCPU bit of the mode word (the `percpu` word as first merged).
    percpu: bool,
    /// The TRANSIT bit of the mode word (the `transit` word as first merged).
    transit: bool,
    /// `max_cids`.
    pub max_cids: u32,
    /// `pcpu_thrs` (0 in per-task mode).
    pub pcpu_thrs: u32,
    /// `users`.
    pub users: u32,
    /// `mm_cpus_allowed`: the union of the users' affinities (it only grows).
    cpus_allowed: Vec<bool>,
    /// A widened affinity asked for a switch back (`update_deferred`).
    pub update_deferred: bool,
    /// The task whose fork or exit holds `mm_cid.mutex` across its fixup walk.
    pub walker: Option<u32>,
}

impl MmCid {
    /// An mm without users on a machine of `n` possible CPUs.
    pub fn new(n: usize) -> MmCid {
        MmCid {
            n: n as u32,
            bitmap: vec![false; n],
            pcpu: vec![UNSET; n],
            percpu: false,
            transit: false,
            max_cids: 0,
            pcpu_thrs: 0,
            users: 0,
            cpus_allowed: vec![false; n],
            update_deferred: false,
            walker: None,
        }
    }

    /// Per-CPU mode.
    pub fn percpu(&self) -> bool {
        self.percpu
    }

    /// The bits set in the bitmap.
    pub fn bits(&self) -> Vec<u32> {
        (0..self.n).filter(|&b| self.bitmap[b as usize]).collect()
    }

    fn nr_cpus_allowed(&self) -> u32 {
        self.cpus_allowed.iter().filter(|&&a| a).count() as u32
    }

    fn opt(&self) -> u32 {
        self.users.min(self.nr_cpus_allowed().max(1))
    }

    /// Thresholds (AXES §3.2): `max_cids = min(opt + opt/4, N)`;
    /// `pcpu_thrs = max(min(opt - opt/4, N/2), 1)` (the `max(.., 1)` only today).
    fn thresholds(&self, v: MmCidVariant) -> (u32, u32) {
        let opt = self.opt();
        let max = (opt + opt / 4).min(self.n);
        let thrs = (opt - opt / 4).min(self.n / 2);
        (max, if v == MmCidVariant::Current { thrs.max(1) } else { thrs })
    }

    /// `mm_update_max_cids`: true if the mode must change (and, then, changes it:
    /// as first merged only the switch back sets `transit`; patch 1 on, both do).
    fn update_max_cids(&mut self, v: MmCidVariant, st: &mut MmCidStats) -> bool {
        let (max, thrs) = self.thresholds(v);
        self.max_cids = max;
        let want = if !self.percpu {
            if self.users > max {
                self.pcpu_thrs = thrs;
            }
            self.users > max
        } else {
            let back = self.users < self.pcpu_thrs;
            if back {
                self.pcpu_thrs = 0;
            }
            !back
        };
        if want == self.percpu {
            return false;
        }
        self.percpu = want;
        self.transit = !want || v.p1();
        if want {
            st.to_percpu += 1;
        } else {
            st.to_pertask += 1;
        }
        true
    }

    fn drop_bit(&mut self, b: u32, st: &mut MmCidStats) {
        if let Some(x) = self.bitmap.get_mut(b as usize) {
            *x = false;
        }
        st.bitmap_ops += 1;
    }

    fn take_below(&mut self, max: u32, st: &mut MmCidStats) -> Option<u32> {
        let b = (0..max.min(self.n)).find(|&b| !self.bitmap[b as usize])?;
        self.bitmap[b as usize] = true;
        st.bitmap_ops += 1;
        Some(b)
    }

    /// `mm_get_cid` without its spin: the lowest free bit below `max_cids`, else below
    /// N. `broken` hands out the lowest bit below `max_cids` without testing it (a
    /// deliberately wrong variant, for the oracle's test).
    fn get_cid(&mut self, st: &mut MmCidStats, broken: bool) -> Result<u32, NoCid> {
        if broken {
            st.bitmap_ops += 1;
            return Ok(0);
        }
        let max = self.max_cids;
        self.take_below(max, st).or_else(|| self.take_below(self.n, st)).ok_or(NoCid)
    }

    /// `mm_cid_converge`: a CID at or above `max_cids` moves below it if a bit is free.
    fn converge(&mut self, orig: u32, st: &mut MmCidStats) -> u32 {
        let max = self.max_cids;
        if value(orig) < max {
            return orig;
        }
        match self.take_below(max, st) {
            Some(b) => {
                self.drop_bit(value(orig), st);
                st.converged += 1;
                b | (orig & ONCPU)
            }
            None => orig,
        }
    }

    /// `mm_cid_schedin` of task `t` on `cpu`, under its runqueue lock. True when the
    /// task's CID changed (rseq's ids are then due).
    pub fn schedin(
        &mut self,
        v: MmCidVariant,
        cpu: usize,
        t: &mut TaskCid,
        st: &mut MmCidStats,
        broken: bool,
    ) -> Result<bool, NoCid> {
        if !t.active || cpu >= self.pcpu.len() {
            return Ok(false);
        }
        let before = t.cid;
        let tr = if self.transit && (v.one_word() || !self.percpu || v.p1()) { TRANSIT } else { 0 };
        let cpu_cid = self.pcpu[cpu];
        let mut tcid = t.cid;
        if !self.percpu {
            // mm_cid_from_task
            if on_task(tcid) && on_task(cpu_cid | tcid) {
                if tcid >= self.max_cids {
                    tcid = self.converge(tcid, st);
                    t.cid = tcid;
                }
                self.pcpu[cpu] = tcid;
                st.fast_path += 1;
                return Ok(t.cid != before);
            }
            st.slow_path += 1;
            if on_cpu(cpu_cid) {
                if on_task(tcid) {
                    self.drop_bit(value(cpu_cid), st);
                    self.pcpu[cpu] = UNSET;
                } else {
                    tcid = value(cpu_cid);
                }
            }
            if !on_task(tcid) && !in_transit(tcid) {
                tcid = self.get_cid(st, broken)?;
            }
            let c = value(tcid) | tr;
            self.pcpu[cpu] = c;
            t.cid = c;
        } else {
            // mm_cid_from_cpu
            let mut cc = cpu_cid;
            if on_cpu(tcid) && on_cpu(cc) {
                if value(cc) >= self.max_cids {
                    cc = self.converge(cc, st);
                    self.pcpu[cpu] = cc;
                }
                t.cid = cc;
                st.fast_path += 1;
                return Ok(t.cid != before);
            }
            st.slow_path += 1;
            if on_task(tcid) {
                if on_cpu(cc) {
                    self.drop_bit(value(tcid), st);
                    t.cid = UNSET;
                } else {
                    cc = value(tcid) | ONCPU;
                }
            }
            if !on_cpu(cc) {
                cc = self.get_cid(st, broken)? | ONCPU;
            }
            let c = if tr != 0 { value(cc) | TRANSIT } else { cc };
            self.pcpu[cpu] = c;
            t.cid = c;
        }
        Ok(t.cid != before)
    }

    /// `mm_cid_schedout` of task `t` leaving `cpu`: a TRANSIT CID goes back to the pool,
    /// or (patch 4) is kept, by the task or the CPU as the mode says, once the
    /// transition is over and it is below `max_cids`.
    pub fn schedout(&mut self, v: MmCidVariant, cpu: usize, t: &mut TaskCid, st: &mut MmCidStats) {
        if !in_transit(t.cid) || cpu >= self.pcpu.len() {
            return;
        }
        let c = value(t.cid);
        if v.p4() && !self.transit && c < self.max_cids {
            let c = if self.percpu { c | ONCPU } else { c };
            self.pcpu[cpu] = c;
            t.cid = c;
            st.transit_kept += 1;
        } else {
            self.drop_bit(c, st);
            t.cid = UNSET;
            if self.pcpu[cpu] & !TRANSIT == c {
                self.pcpu[cpu] = UNSET;
            }
            st.transit_drops += 1;
        }
    }

    /// Whether a bit is free (a spinning `mm_get_cid` would find it).
    pub fn has_free_bit(&self) -> bool {
        self.bitmap.iter().any(|&b| !b)
    }

    /// Widens `mm_cpus_allowed` by an affinity; true if that grew it.
    pub fn allow(&mut self, affinity: &[bool]) -> bool {
        let mut grew = false;
        for (a, &b) in self.cpus_allowed.iter_mut().zip(affinity) {
            if b && !*a {
                *a = true;
                grew = true;
            }
        }
        grew
    }

    /// `sched_mm_cid_fork` of `child` by a task running on `cpu` (`parent`, when the
    /// child shares its mm), with the mm's other users `peers` (the child excluded),
    /// its fixup walk included (as one step).
    #[cfg(test)]
    #[allow(clippy::too_many_arguments)]
    pub fn fork(
        &mut self,
        v: MmCidVariant,
        cpu: usize,
        parent: Option<&mut TaskCid>,
        child: &mut TaskCid,
        peers: &mut [Peer],
        st: &mut MmCidStats,
        broken: bool,
    ) {
        match self.fork_begin(v, cpu, parent, child, st, broken) {
            Walk::None => {}
            Walk::TasksToCpus => self.fixup_tasks_to_cpus(v, peers, st),
            Walk::CpusToTasks => {
                self.fixup_cpus_to_tasks(v, peers, st);
                self.fork_end(child, st, broken);
            }
        }
    }

    /// `sched_mm_cid_fork` up to its fixup walk: the user is added, the mode changes if
    /// it must (the forking task converting its own CID); says which walk is left. A
    /// child that finds no free CID in per-task mode stays without one and takes one at
    /// its first schedule-in (where the spin is modelled); Linux spins in the fork.
    pub fn fork_begin(
        &mut self,
        v: MmCidVariant,
        cpu: usize,
        parent: Option<&mut TaskCid>,
        child: &mut TaskCid,
        st: &mut MmCidStats,
        broken: bool,
    ) -> Walk {
        child.active = true;
        child.cid = UNSET;
        self.users += 1;
        // (both run: a deferred switch the mode change made moot is dropped too)
        let changed = self.update_max_cids(v, st) | self.deferred_switch(v, st);
        let Some(parent) = parent else {
            // The first user.
            if !self.percpu {
                child.cid = self.get_cid(st, broken).unwrap_or(UNSET);
                if let Some(p) = self.pcpu.get_mut(cpu) {
                    *p = child.cid;
                }
            }
            return Walk::None;
        };
        if !changed {
            if !self.percpu {
                child.cid = self.get_cid(st, broken).unwrap_or(UNSET);
            }
            return Walk::None;
        }
        st.fixups += 1;
        if self.percpu {
            // transit_to_cpu (transfer_to_cpu as first merged) for the forking task.
            if on_task(parent.cid) {
                let c = if v.p1() { parent.cid | TRANSIT } else { parent.cid | ONCPU };
                parent.cid = c;
                if let Some(p) = self.pcpu.get_mut(cpu) {
                    *p = c;
                }
            }
            Walk::TasksToCpus
        } else {
            self.exit_handover(v, cpu, parent, st);
            Walk::CpusToTasks
        }
    }

    /// The end of a fork whose walk went CPU-to-task: the child gets its CID (or, with
    /// none free, at its first schedule-in).
    pub fn fork_end(&mut self, child: &mut TaskCid, st: &mut MmCidStats, broken: bool) {
        child.cid = self.get_cid(st, broken).unwrap_or(UNSET);
    }

    /// A switch back that an affinity change deferred, run by the fork or exit that
    /// comes first (`mm_cid_work_fn` otherwise).
    fn deferred_switch(&mut self, v: MmCidVariant, st: &mut MmCidStats) -> bool {
        if !std::mem::take(&mut self.update_deferred) || !self.percpu {
            return false;
        }
        if self.users < self.pcpu_thrs {
            self.pcpu_thrs = 0;
            self.percpu = false;
            self.transit = true;
            st.to_pertask += 1;
            let _ = v;
            return true;
        }
        false
    }

    /// `sched_mm_cid_exit` of `t` (on `cpu`), with the mm's other users `peers`.
    #[cfg(test)]
    pub fn exit(
        &mut self,
        v: MmCidVariant,
        cpu: usize,
        t: &mut TaskCid,
        peers: &mut [Peer],
        st: &mut MmCidStats,
    ) {
        if self.exit_begin(v, cpu, t, st) == Walk::CpusToTasks {
            self.fixup_cpus_to_tasks(v, peers, st);
        }
    }

    /// `sched_mm_cid_exit` of `t` (on `cpu`) up to its fixup walk: the user is removed
    /// and, on a switch back, this CPU's CID handed over or dropped; says which walk is
    /// left (`Walk::CpusToTasks` or none).
    pub fn exit_begin(
        &mut self,
        v: MmCidVariant,
        cpu: usize,
        t: &mut TaskCid,
        st: &mut MmCidStats,
    ) -> Walk {
        if !t.active {
            return Walk::None;
        }
        t.active = false;
        t.cid &= !TRANSIT;
        if on_task(t.cid) {
            self.drop_bit(t.cid, st);
        }
        t.cid = UNSET;
        self.users = self.users.saturating_sub(1);
        if self.users == 0 {
            // The last user: nothing is left to convert; the CPUs' CIDs go with the mm.
            return Walk::None;
        }
        let changed = self.update_max_cids(v, st) | self.deferred_switch(v, st);
        if !changed || self.percpu {
            return Walk::None;
        }
        st.fixups += 1;
        self.exit_handover(v, cpu, t, st);
        Walk::CpusToTasks
    }

    /// What an exit-initiated switch back does with its CPU's CID: hand it to the
    /// exiting task marked TRANSIT (as first merged: dropped at its last schedule-out),
    /// or drop it (patch 3, `mm_drop_cid_on_cpu`).
    fn exit_handover(&mut self, v: MmCidVariant, cpu: usize, t: &mut TaskCid, st: &mut MmCidStats) {
        let Some(&pc) = self.pcpu.get(cpu) else { return };
        if !on_cpu(pc) {
            return;
        }
        if !t.active && v.p3() {
            self.drop_bit(value(pc), st);
            self.pcpu[cpu] = UNSET;
        } else {
            // As first merged for an exit; always for a fork (the forking task runs on).
            t.cid = value(pc) | TRANSIT;
            self.pcpu[cpu] = t.cid;
        }
    }

    /// `mm_cid_fixup_tasks_to_cpus`: every other user owning a task CID hands it to its
    /// CPU in transit if it runs, or drops it; then the transition completes.
    #[cfg(test)]
    fn fixup_tasks_to_cpus(&mut self, v: MmCidVariant, peers: &mut [Peer], st: &mut MmCidStats) {
        for p in peers.iter_mut() {
            self.fixup_task_to_cpu(v, &mut p.cid, p.running_on, st);
        }
        self.complete_transit();
    }

    /// One task of `mm_cid_fixup_tasks_to_cpus`, under its runqueue lock: a task CID of
    /// a task running on `running_on` goes to that CPU in transit (directly CPU-owned as
    /// first merged); a sleeping task's goes back to the pool.
    pub fn fixup_task_to_cpu(
        &mut self,
        v: MmCidVariant,
        t: &mut TaskCid,
        running_on: Option<usize>,
        st: &mut MmCidStats,
    ) {
        st.fixup_visits += 1;
        if !t.active || !on_task(t.cid) {
            return;
        }
        match running_on {
            Some(k) if k < self.pcpu.len() => {
                let c = if v.p1() { t.cid | TRANSIT } else { t.cid | ONCPU };
                t.cid = c;
                self.pcpu[k] = c;
            }
            _ => {
                self.drop_bit(t.cid, st);
                t.cid = UNSET;
            }
        }
    }

    /// `mm_cid_complete_transit`: the walk is over, TRANSIT leaves the mode.
    pub fn complete_transit(&mut self) {
        self.transit = false;
    }

    /// `mm_cid_fixup_cpus_to_tasks`: every CPU owning a CID hands it in transit to the
    /// mm's task it runs, or drops it; then the transition completes.
    #[cfg(test)]
    fn fixup_cpus_to_tasks(&mut self, v: MmCidVariant, peers: &mut [Peer], st: &mut MmCidStats) {
        for k in 0..self.pcpu.len() {
            let curr = peers.iter_mut().find(|p| p.running_on == Some(k) && p.cid.active);
            self.fixup_cpu_to_task(v, k, curr.map(|p| &mut p.cid), st);
        }
        self.complete_transit();
    }

    /// One CPU of `mm_cid_fixup_cpus_to_tasks`, under its runqueue lock (`curr`: the
    /// mm's active task it runs, if any).
    pub fn fixup_cpu_to_task(
        &mut self,
        v: MmCidVariant,
        k: usize,
        curr: Option<&mut TaskCid>,
        st: &mut MmCidStats,
    ) {
        st.fixup_visits += 1;
        let Some(&pc) = self.pcpu.get(k) else { return };
        if on_cpu(pc) {
            match curr {
                Some(t) => {
                    let c = value(pc) | TRANSIT;
                    t.cid = c;
                    self.pcpu[k] = c;
                }
                None => {
                    self.drop_bit(value(pc), st);
                    self.pcpu[k] = UNSET;
                }
            }
        } else if let Some(t) = curr {
            if v == MmCidVariant::Current && on_task(t.cid) {
                t.cid |= TRANSIT;
                self.pcpu[k] = t.cid;
            }
        }
    }

    /// An affinity change that widened `mm_cpus_allowed`: recompute the threshold and,
    /// if the users are now below it, defer a switch back (`mm_update_cpus_allowed`).
    pub fn affinity_widened(&mut self, v: MmCidVariant) {
        let (max, thrs) = self.thresholds(v);
        self.max_cids = max;
        if self.percpu {
            self.pcpu_thrs = thrs;
            if self.users < self.pcpu_thrs {
                self.update_deferred = true;
            }
        }
    }

    /// The state, for an error report: mode, thresholds, bitmap and per-CPU slots.
    pub fn describe(&self) -> String {
        let slots: Vec<String> = self.pcpu.iter().map(|&c| fmt_cid(c)).collect();
        format!(
            "mode {}{}, users {}, max_cids {}, pcpu_thrs {}, bitmap {:?}, pcpu [{}]",
            if self.percpu() { "per-CPU" } else { "per-task" },
            if self.transit { "|TRANSIT" } else { "" },
            self.users,
            self.max_cids,
            self.pcpu_thrs,
            self.bits(),
            slots.join(", ")
        )
    }
}

/// A CID with its flags, as the error reports show it.
pub fn fmt_cid(c: u32) -> String {
    if c & UNSET != 0 {
        return "-".into();
    }
    let mut s = value(c).to_string();
    if c & ONCPU != 0 {
        s.push_str("|ONCPU");
    }
    if c & TRANSIT != 0 {
        s.push_str("|TRANSIT");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use MmCidVariant as V;

    fn mm(n: usize) -> MmCid {
        let mut m = MmCid::new(n);
        m.allow(&vec![true; n]);
        m
    }

    /// Forks `k` threads from a first user on CPU 0; returns the tasks (0 = first).
    fn forked(m: &mut MmCid, v: V, k: usize, st: &mut MmCidStats) -> Vec<TaskCid> {
        let mut ts = vec![TaskCid::default()];
        m.fork(v, 0, None, &mut ts[0], &mut [], st, false);
        for _ in 0..k {
            let mut child = TaskCid::default();
            let mut peers: Vec<Peer> =
                ts[1..].iter().map(|t| Peer { cid: *t, running_on: None }).collect();
            let (first, _) = ts.split_at_mut(1);
            m.fork(v, 0, Some(&mut first[0]), &mut child, &mut peers, st, false);
            for (i, p) in peers.iter().enumerate() {
                ts[i + 1] = p.cid;
            }
            ts.push(child);
        }
        ts
    }

    #[test]
    fn thresholds_follow_axes_3_2() {
        for (n, users, max, thrs) in
            [(4, 5, 4, 2), (8, 9, 8, 4), (16, 17, 16, 8), (256, 257, 256, 128)]
        {
            let mut m = mm(n);
            m.users = users;
            assert_eq!(m.thresholds(V::Current), (max, thrs), "N={n}");
        }
        // Four allowed CPUs of eight: 5 users fit (max_cids 5).
        let mut m = MmCid::new(8);
        m.allow(&[true, true, true, true, false, false, false, false]);
        m.users = 5;
        assert_eq!(m.thresholds(V::Current).0, 5);
        // pcpu_thrs is never 0 today, and may be before.
        let mut m = mm(1);
        m.users = 2;
        assert_eq!(m.thresholds(V::Current).1, 1);
        assert_eq!(m.thresholds(V::Fixed).1, 0);
    }

    #[test]
    fn per_task_cids_are_dense_and_the_fifth_user_switches_to_per_cpu() {
        for v in [V::Afm, V::AfmP1, V::AfmP1P2, V::Fixed, V::Current] {
            let mut st = MmCidStats::default();
            let mut m = mm(4);
            let ts = forked(&mut m, v, 3, &mut st);
            assert_eq!(ts.iter().map(|t| t.cid).collect::<Vec<_>>(), vec![0, 1, 2, 3], "{v:?}");
            assert!(!m.percpu());
            let ts = forked(&mut m, v, 0, &mut st);
            let _ = ts;
            // A fifth user (T0 forks again; the others sleep and drop their CIDs).
            let mut t0 = TaskCid { cid: 0, active: true };
            let mut peers: Vec<Peer> = (1..4)
                .map(|i| Peer { cid: TaskCid { cid: i, active: true }, running_on: None })
                .collect();
            let mut m = mm(4);
            m.users = 4;
            m.max_cids = 4;
            for b in 0..4 {
                m.bitmap[b] = true;
            }
            let mut child = TaskCid::default();
            m.fork(v, 0, Some(&mut t0), &mut child, &mut peers, &mut st, false);
            assert!(m.percpu(), "{v:?}");
            assert_eq!(m.users, 5);
            assert_eq!(m.pcpu_thrs, 2);
            assert!(peers.iter().all(|p| p.cid.cid == UNSET), "{v:?}: sleepers dropped theirs");
            assert_eq!(child.cid, UNSET, "the child gets its CID at its first schedule-in");
            let expect = if v.p1() { TRANSIT } else { ONCPU };
            assert_eq!(t0.cid, expect, "{v:?}");
            assert_eq!(m.bits(), vec![0], "{v:?}");
            assert!(!m.transit);
        }
    }

    #[test]
    fn schedin_fast_and_slow_paths() {
        let v = V::Current;
        let mut st = MmCidStats::default();
        let mut m = mm(4);
        let mut ts = forked(&mut m, v, 1, &mut st);
        // Per-task: T1 runs on CPU 2, whose slot is UNSET: the slow path mirrors its
        // CID there without a bitmap operation; the next time is the fast path.
        let ops = st.bitmap_ops;
        assert_eq!(m.schedin(v, 2, &mut ts[1], &mut st, false), Ok(false));
        assert_eq!((m.pcpu[2], st.slow_path, st.bitmap_ops), (1, 1, ops));
        assert_eq!(m.schedin(v, 2, &mut ts[1], &mut st, false), Ok(false));
        assert_eq!(st.fast_path, 1);
        // Per-CPU: CPU 3 owns nothing; T1 hands its CID to it.
        m.percpu = true;
        assert_eq!(m.schedin(v, 3, &mut ts[1], &mut st, false), Ok(true));
        assert_eq!(ts[1].cid, 1 | ONCPU);
        assert_eq!(m.pcpu[3], 1 | ONCPU);
        // T0 on CPU 3 too: its own CID is dropped, it borrows the CPU's.
        let ops = st.bitmap_ops;
        assert_eq!(m.schedin(v, 3, &mut ts[0], &mut st, false), Ok(true));
        assert_eq!(ts[0].cid, 1 | ONCPU);
        assert_eq!(st.bitmap_ops, ops + 1);
        assert_eq!(m.bits(), vec![1]);
        // Inactive tasks are left alone.
        let mut dead = TaskCid::default();
        assert_eq!(m.schedin(v, 0, &mut dead, &mut st, false), Ok(false));
        assert_eq!(dead.cid, UNSET);
    }

    #[test]
    fn schedout_drops_or_keeps_transit_cids() {
        for (v, kept) in [(V::AfmP1P2, false), (V::Fixed, true)] {
            let mut st = MmCidStats::default();
            let mut m = mm(4);
            m.percpu = true;
            m.max_cids = 4;
            m.bitmap[2] = true;
            m.pcpu[1] = 2 | TRANSIT;
            let mut t = TaskCid { cid: 2 | TRANSIT, active: true };
            m.schedout(v, 1, &mut t, &mut st);
            if kept {
                assert_eq!((t.cid, m.pcpu[1], m.bits()), (2 | ONCPU, 2 | ONCPU, vec![2]));
                assert_eq!(st.transit_kept, 1);
            } else {
                assert_eq!((t.cid, m.pcpu[1], m.bits()), (UNSET, UNSET, vec![]));
                assert_eq!(st.transit_drops, 1);
            }
        }
    }

    #[test]
    fn exits_switch_back_below_the_threshold_and_release_every_bit() {
        for v in [V::Afm, V::Fixed, V::Current] {
            let mut st = MmCidStats::default();
            let mut m = mm(4);
            let mut ts = forked(&mut m, v, 4, &mut st);
            assert!(m.percpu());
            // T0 forked on CPU 0 and leaves it; then each task runs once on its own CPU
            // (four of them), T4 waits.
            m.schedout(v, 0, &mut ts[0], &mut st);
            for (k, t) in ts.iter_mut().enumerate().take(4) {
                m.schedin(v, k, t, &mut st, false).expect("a CID");
                m.schedout(v, k, t, &mut st);
            }
            // Exits down to one user: the switch back happens below pcpu_thrs (2).
            for i in (1..5).rev() {
                let (keep, gone) = ts.split_at_mut(i);
                let mut peers: Vec<Peer> =
                    keep.iter().map(|t| Peer { cid: *t, running_on: None }).collect();
                m.exit(v, i % 4, &mut gone[0], &mut peers, &mut st);
                // Its last schedule-out.
                m.schedout(v, i % 4, &mut gone[0], &mut st);
                for (j, p) in peers.iter().enumerate() {
                    ts[j] = p.cid;
                }
            }
            assert!(!m.percpu(), "{v:?}");
            assert_eq!(m.users, 1);
            let d = m.describe();
            m.schedin(v, 0, &mut ts[0], &mut st, false)
                .unwrap_or_else(|_| panic!("{v:?}: {d} {ts:?}"));
            assert_eq!(value(ts[0].cid), 0);
            let mut peers = [];
            m.exit(v, 0, &mut ts[0], &mut peers, &mut st);
            let owned: Vec<u32> =
                m.pcpu.iter().filter(|&&c| on_cpu(c)).map(|&c| value(c)).collect();
            // Whatever the CPUs still own is all the bitmap holds.
            let mut bits = m.bits();
            bits.retain(|b| !owned.contains(b));
            assert!(bits.is_empty(), "{v:?}: leaked {bits:?}: {}", m.describe());
        }
    }

    #[test]
    fn seed_001s_trace_spins_as_first_merged_and_not_with_patch_1() {
        // AXES.md 3.5: T0..T3 own CIDs 0..3 on 4 CPUs; T0 forks T4 and the mode flips.
        for v in [V::Afm, V::AfmP1] {
            let mut st = MmCidStats::default();
            let mut m = mm(4);
            m.users = 4;
            m.max_cids = 4;
            m.bitmap = vec![true; 4];
            let mut t0 = TaskCid { cid: 0, active: true };
            let mut t1 = TaskCid { cid: 1, active: true };
            let mut t4 = TaskCid::default();
            let w = m.fork_begin(v, 0, Some(&mut t0), &mut t4, &mut st, false);
            assert_eq!(w, Walk::TasksToCpus);
            // Step 2: before the walk reaches T1, T1 schedules in on CPU 1.
            m.schedin(v, 1, &mut t1, &mut st, false).expect("CPU 1 takes T1's CID");
            // Step 3: T1 is preempted and moves to CPU 2.
            m.schedout(v, 1, &mut t1, &mut st);
            // Step 4: T1 schedules in on CPU 2.
            let r = m.schedin(v, 2, &mut t1, &mut st, false);
            if v == V::Afm {
                assert_eq!(t1.cid, 1 | ONCPU);
                assert_eq!(r, Err(NoCid), "spins holding rq 2: {}", m.describe());
            } else {
                assert_eq!(r, Ok(true), "{}", m.describe());
                assert_eq!(t1.cid, 1 | TRANSIT, "bit 1 went back at schedout and came again");
                // The walk skips T1 (not a task CID) and drops sleeping T2's.
                let mut t2 = TaskCid { cid: 2, active: true };
                m.fixup_task_to_cpu(v, &mut t1, Some(2), &mut st);
                m.fixup_task_to_cpu(v, &mut t2, None, &mut st);
                m.complete_transit();
                assert_eq!((t1.cid, t2.cid), (1 | TRANSIT, UNSET));
                assert!(m.has_free_bit());
            }
        }
    }

    #[test]
    fn a_widened_affinity_recomputes_the_thresholds_and_a_deferred_switch_runs_at_the_next_fork() {
        // 8 possible CPUs, 4 allowed: max_cids 5, so 6 users go per-CPU with
        // pcpu_thrs = max(min(4 - 1, 4), 1) = 3.
        let v = V::Current;
        let mut st = MmCidStats::default();
        let mut m = MmCid::new(8);
        m.allow(&[true, true, true, true, false, false, false, false]);
        let ts = forked(&mut m, v, 5, &mut st);
        assert!(m.percpu() && m.pcpu_thrs == 3 && m.max_cids == 5, "{}", m.describe());
        let _ = ts;
        // Two users leave by exit... (users 4, not below 3: still per-CPU).
        let mut gone = TaskCid { cid: UNSET, active: true };
        for _ in 0..2 {
            gone.active = true;
            m.exit(v, 1, &mut gone, &mut [], &mut st);
        }
        assert!(m.percpu() && m.users == 4);
        // ...then every CPU is allowed: opt 4, pcpu_thrs min(4 - 1, 4) = 3 still; with
        // 2 users below it the switch is deferred, and the next fork runs it.
        gone.active = true;
        m.exit(v, 1, &mut gone, &mut [], &mut st);
        gone.active = true;
        m.exit(v, 1, &mut gone, &mut [], &mut st);
        assert!(!m.percpu(), "users 2 < 3 switched back at once: {}", m.describe());
        // Affinity widening in per-CPU mode: 6 users on 4 allowed CPUs, then 8 allowed.
        // The threshold is recomputed from min(users, allowed), so it never exceeds the
        // users and nothing is deferred by the widening alone (as restated in AXES.md
        // 3.2; Linux's mm_update_cpus_allowed was not read for this).
        let mut m = MmCid::new(8);
        m.allow(&[true, true, true, true, false, false, false, false]);
        let _ = forked(&mut m, v, 5, &mut st);
        assert!(m.allow(&[true; 8]));
        m.affinity_widened(v);
        assert_eq!((m.max_cids, m.pcpu_thrs), (7, 4), "{}", m.describe());
        assert!(!m.update_deferred && m.percpu());
        // A deferred switch pending when users are below the threshold runs at the next
        // fork, which then walks the CPUs.
        m.update_deferred = true;
        m.users = 2;
        m.pcpu_thrs = 4;
        let mut parent = TaskCid { cid: ONCPU, active: true };
        let mut child = TaskCid::default();
        let w = m.fork_begin(v, 0, Some(&mut parent), &mut child, &mut st, false);
        assert_eq!(w, Walk::CpusToTasks, "the fork runs the deferred switch");
        assert!(!m.percpu() && !m.update_deferred);
    }

    #[test]
    fn an_exhausted_pool_reports_no_cid_and_a_broken_allocator_duplicates() {
        let v = V::Current;
        let mut st = MmCidStats::default();
        let mut m = mm(2);
        m.percpu = true;
        m.bitmap = vec![true, true];
        m.max_cids = 2;
        let mut t = TaskCid { cid: UNSET, active: true };
        assert_eq!(m.schedin(v, 0, &mut t, &mut st, false), Err(NoCid));
        let mut a = TaskCid { cid: UNSET, active: true };
        m.schedin(v, 1, &mut a, &mut st, true).expect("broken hands out 0");
        assert_eq!(value(a.cid), 0);
        assert!(m.describe().contains("bitmap [0, 1]"));
    }
}
