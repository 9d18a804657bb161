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
use crate::machine::{fp, SimError};
use crate::mmcid::{self, Peer, TaskCid};
use crate::stats::Violation;
use crate::strategy::{BrokenPolicy, MmCidVariant};
use crate::task::State;

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
    fn cid_peers(&self, mm: u32, except: &[u32]) -> Vec<Peer> {
        let mut v: Vec<Peer> = self
            .k
            .tasks
            .values()
            .filter(|t| t.mm == mm && t.mm_cid.active && !except.contains(&t.tid))
            .map(|t| Peer {
                tid: t.tid,
                cid: t.mm_cid,
                running_on: match t.state {
                    State::Running(k) if self.k.cpus[k].current == Some(t.tid) => Some(k),
                    _ => None,
                },
            })
            .collect();
        if self.cid_variant() == MmCidVariant::Current {
            v.reverse();
        }
        v
    }

    fn cid_write_back(&mut self, peers: &[Peer]) {
        for p in peers {
            if let Some(t) = self.k.tasks.get_mut(&p.tid) {
                if t.mm_cid.cid != p.cid.cid {
                    t.rseq_notify |= t.rseq.is_some();
                }
                t.mm_cid = p.cid;
            }
        }
    }

    /// `sched_mm_cid_fork` for `child`, created on core `c` by `parent` (None when the
    /// child has an mm of its own: it is its first user).
    pub(crate) fn mm_cid_fork(&mut self, c: usize, parent: Option<u32>, child: u32) {
        let v = self.cid_variant();
        if !v.enabled() {
            return;
        }
        let Some(t) = self.k.tasks.get(&child) else { return };
        let (mm, aff) = (t.mm, t.affinity.clone());
        let mut peers = self.cid_peers(mm, &[child, parent.unwrap_or(child)]);
        let mut pc = parent.and_then(|p| self.k.tasks.get(&p)).map(|t| t.mm_cid);
        let mut cc = TaskCid::default();
        let ops = self.probes.mm_cid.bitmap_ops;
        let visits = self.probes.mm_cid.fixup_visits;
        let broken = self.cid_broken();
        let Some(m) = self.k.mms.get_mut(&mm) else { return };
        m.cid.allow(&aff);
        let st = &mut self.probes.mm_cid;
        let r = m.cid.fork(v, c, pc.as_mut(), &mut cc, &mut peers, st, broken);
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
        self.cid_write_back(&peers);
        self.charge_cid_ops(c, mm, ops);
        self.charge_fixup(c, visits);
        if r.is_err() {
            self.cid_stall(c, mm, child);
        }
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

    /// `sched_mm_cid_exit` for `tid`, exiting on core `c`.
    pub(crate) fn mm_cid_exit(&mut self, c: usize, tid: u32) {
        let v = self.cid_variant();
        let Some(t) = self.k.tasks.get(&tid) else { return };
        if !v.enabled() || !t.mm_cid.active {
            return;
        }
        let (mm, mut tc) = (t.mm, t.mm_cid);
        let mut peers = self.cid_peers(mm, &[tid]);
        let ops = self.probes.mm_cid.bitmap_ops;
        let visits = self.probes.mm_cid.fixup_visits;
        let Some(m) = self.k.mms.get_mut(&mm) else { return };
        m.cid.exit(v, c, &mut tc, &mut peers, &mut self.probes.mm_cid);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.mm_cid = tc;
        }
        self.cid_write_back(&peers);
        self.charge_cid_ops(c, mm, ops);
        self.charge_fixup(c, visits);
    }

    fn charge_fixup(&mut self, c: usize, visits_before: u64) {
        let n = self.probes.mm_cid.fixup_visits - visits_before;
        if n > 0 {
            let cycles = n as f64 * self.profile.kernel.mm_cid_fixup_visit_cycles;
            let st = &mut self.probes.mm_cid;
            st.fixup_cycles_total += cycles as u64;
            st.fixup_cycles_max = st.fixup_cycles_max.max(cycles as u64);
            self.charge(c, fp(cycles));
        }
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
        let ops = self.probes.mm_cid.bitmap_ops;
        let broken = self.cid_broken();
        let Some(m) = self.k.mms.get_mut(&mm) else { return };
        let r = m.cid.schedin(v, k, &mut tc, &mut self.probes.mm_cid, broken);
        let slot = self.kline_access(k, KObj::MmCidPcpu(mm, k), true);
        self.charge(k, slot);
        self.charge_cid_ops(k, mm, ops);
        match r {
            Ok(changed) => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.mm_cid = tc;
                    t.rseq_notify |= changed && t.rseq.is_some();
                }
                self.check_cids(k, mm);
            }
            Err(mmcid::NoCid) => self.cid_stall(k, mm, tid),
        }
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

    /// No CID was free where `mm_get_cid` would spin holding the runqueue lock: as the
    /// walk that could free one runs atomically here, nothing can, and the run stops
    /// with the CID state (Linux would hard-lock).
    fn cid_stall(&mut self, k: usize, mm: u32, tid: u32) {
        let state = self.k.mms.get(&mm).map(|m| m.cid.describe()).unwrap_or_default();
        let tasks: Vec<String> = self
            .k
            .tasks
            .values()
            .filter(|t| t.mm == mm && t.mm_cid.active)
            .map(|t| format!("{}:{}", t.tid, mmcid::fmt_cid(t.mm_cid.cid)))
            .collect();
        self.fail(SimError::MmCidStall {
            cpu: k,
            tid,
            state: format!("{state}; tasks [{}]", tasks.join(", ")),
        });
    }

    /// The mm_cid oracle after a schedule-in on CPU `k` of a task of `mm`: the CIDs of
    /// that mm's tasks current on a CPU are distinct and below the number of CPUs.
    fn check_cids(&mut self, k: usize, mm: u32) {
        let n = self.hw.cpus.len() as u32;
        let mut seen: Vec<(u32, u32)> = Vec::new();
        let mut bad: Option<String> = None;
        for (j, cpu) in self.k.cpus.iter().enumerate() {
            let Some(tid) = cpu.current else { continue };
            let Some(t) = self.k.tasks.get(&tid) else { continue };
            if t.mm != mm || !t.mm_cid.active {
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
