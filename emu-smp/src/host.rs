//! The host under a virtual machine: each simulated CPU is a vCPU, a thread of the host
//! that shares its physical CPU with `vcpus_per_pcpu - 1` other busy vCPU threads
//! (other guests'). The host's fair scheduler gives each of them its base slice in
//! turn, so vCPU `k` runs only in windows `[phase_k + n * period, phase_k + n * period +
//! slice)`, with `period = vcpus_per_pcpu * slice`. Outside its windows the vCPU does
//! nothing: its user code, the next step of its kernel path, its look at a CID freed
//! while it spins, the interrupts that reach it all wait for its next window; the locks
//! it holds across steps stay held (lock-holder preemption) and the IPIs sent to it
//! stay unacknowledged. A kernel step is atomic: one begun in the window ends, so a
//! lock held only within a step is never held across a preemption. Everything that follows
//! from that (a shootdown waiting for a preempted vCPU, a fixup walk stalled in the
//! middle) emerges from the rest of the model.
//!
//! The phases are seeded: where in its host's rotation each vCPU starts is what a
//! real run does not control. A halted vCPU keeps its windows too: the model's host
//! has no idle time to give it sooner (its other threads are always busy), which
//! overstates the wake-up latency of an idle vCPU by at most one rotation.
//!
//! KVM's paravirtual TLB flush (`kvm_flush_tlb_multi` in arch/x86/kernel/kvm.c) reads
//! the same windows: a target that the host preempted while it ran (`preempted` in its
//! steal-time area; a halted vCPU is not "preempted") gets no IPI; the flush is left in
//! its steal-time area (KVM_VCPU_FLUSH_TLB) and the host flushes the whole guest TLB
//! when it next enters the vCPU (`record_steal_time` in arch/x86/kvm/x86.c).

use crate::cpumask::CpuMask;
use crate::kdata::KObj;
use crate::machine::{fp, Machine};
use serde::Serialize;

/// The vCPUs' places in their physical CPUs' rotations, the rotation's shape, and the
/// flushes KVM owes them.
#[derive(Clone, Debug)]
pub(crate) struct HostShare {
    /// The host's slice, in 1/256 cycles.
    slice: u64,
    /// `vcpus_per_pcpu` slices.
    period: u64,
    /// Start of each vCPU's first window (mod `period`), in `0..period`.
    phase: Vec<u64>,
    /// KVM_VCPU_FLUSH_TLB in each vCPU's steal-time area: the host flushes its TLB
    /// when it next enters it.
    flush_pending: Vec<bool>,
    /// Counters.
    pub(crate) stats: HostStats,
}

/// What the host did to the virtual machine (the `host` section of the statistics,
/// present only when its vCPUs share their physical CPUs).
#[derive(Clone, Debug, Default, Serialize)]
pub struct HostStats {
    /// vCPU threads per physical CPU (`host.vcpus_per_pcpu`).
    pub vcpus_per_pcpu: u32,
    /// The host's slice, ns (`host.slice_ns`).
    pub slice_ns: u64,
    /// KVM's paravirtual flush in use (`host.pv_tlb_flush`).
    pub pv_tlb_flush: bool,
    /// Per vCPU: cycles, up to its final clock, in which the host ran other threads on
    /// its physical CPU.
    pub preempted_cycles: Vec<u64>,
    /// Flush targets that were preempted, so got no IPI: KVM_VCPU_FLUSH_TLB was set in
    /// their steal-time area instead (kvm_flush_tlb_multi).
    pub pv_flushes_deferred: u64,
    /// Whole-TLB flushes the host did when entering a vCPU that had such a flush
    /// pending (record_steal_time → kvm_vcpu_flush_tlb_guest).
    pub host_tlb_flushes: u64,
}

impl HostShare {
    /// The rotation of `cpus` vCPUs, each sharing its physical CPU with
    /// `vcpus_per_pcpu - 1` others, slices of `slice_fp`; None on bare metal
    /// (`vcpus_per_pcpu <= 1`: every vCPU always runs).
    pub(crate) fn new(cpus: usize, vcpus_per_pcpu: u32, slice_fp: u64, seed: u64) -> Option<Self> {
        if vcpus_per_pcpu <= 1 || slice_fp == 0 {
            return None;
        }
        let period = slice_fp * u64::from(vcpus_per_pcpu);
        let mut rng = crate::rng::SimRng::new(seed ^ 0x686f_7374_2d76_6370);
        let phase = (0..cpus).map(|_| rng.next_u64() % period).collect();
        Some(HostShare {
            slice: slice_fp,
            period,
            phase,
            flush_pending: vec![false; cpus],
            stats: HostStats::default(),
        })
    }

    /// One rotation of the host's physical CPU, in 1/256 cycles: the longest a vCPU
    /// waits between two of its windows, plus its own window.
    pub(crate) fn period(&self) -> u64 {
        self.period
    }

    /// How far into its rotation vCPU `k` is at time `t` (0: the start of a window).
    fn offset(&self, k: usize, t: u64) -> u64 {
        (t % self.period + self.period - self.phase[k]) % self.period
    }

    /// True when vCPU `k` runs at time `t`.
    pub(crate) fn runs(&self, k: usize, t: u64) -> bool {
        self.offset(k, t) < self.slice
    }

    /// The earliest time at or after `t` at which vCPU `k` runs.
    pub(crate) fn runs_from(&self, k: usize, t: u64) -> u64 {
        let o = self.offset(k, t);
        if o < self.slice {
            t
        } else {
            t.saturating_add(self.period - o)
        }
    }

    /// The end of the window vCPU `k` runs in at `t` (t itself when it does not run).
    pub(crate) fn window_end(&self, k: usize, t: u64) -> u64 {
        let o = self.offset(k, t);
        if o < self.slice {
            t.saturating_add(self.slice - o)
        } else {
            t
        }
    }

    /// Time vCPU `k` has spent preempted by the host before time `t` (steal time).
    pub(crate) fn stolen_by(&self, k: usize, t: u64) -> u64 {
        let (p, s) = (u128::from(self.period), u128::from(self.slice));
        // Run time in [0, x) of a rotation whose windows start at 0, P, 2P, ...
        let ran = |x: u128| x / p * s + (x % p).min(s);
        // Shifted so that vCPU k's windows start at multiples of the period: [0, t)
        // becomes [period - phase, period - phase + t).
        let a = p - u128::from(self.phase[k]);
        let t = u128::from(t);
        (t - (ran(a + t) - ran(a))) as u64
    }
}

impl Machine {
    /// kvm_flush_tlb_multi (arch/x86/kernel/kvm.c), ahead of native_flush_tlb_multi on
    /// CPU `c`: each other CPU of `mask` has its steal-time line read; one the host has
    /// preempted while it ran (not a halted one) gets KVM_VCPU_FLUSH_TLB set there with
    /// a cmpxchg and leaves the mask, so it gets no IPI and the initiator does not
    /// wait for it. Returns the mask left when some vCPU was so skipped (None when the
    /// IPIs go to `mask` as it is: bare metal, no PV flush, or no vCPU preempted).
    pub(crate) fn pv_flush_preempted(&mut self, c: usize, mask: &CpuMask) -> Option<CpuMask> {
        if !self.profile.host.pv_tlb_flush {
            return None;
        }
        let now = self.now(c);
        let mut left: Option<CpuMask> = None;
        let mut cost = 0;
        for t in mask.iter().filter(|&t| t != c) {
            // READ_ONCE(src->preempted)
            cost += self.kline_access(c, KObj::StealTime(t), false);
            let Some(h) = &self.host else { return None };
            let preempted = self.k.cpus[t].current.is_some()
                && !h.runs(t, now)
                // Not already running in its next window (its clock ran ahead).
                && self.hw.cpus[t].time_fp <= h.runs_from(t, now);
            if preempted {
                cost +=
                    fp(self.profile.insn.locked) + self.kline_access(c, KObj::StealTime(t), true);
                if let Some(h) = &mut self.host {
                    h.flush_pending[t] = true;
                    h.stats.pv_flushes_deferred += 1;
                }
                left.get_or_insert_with(|| mask.clone()).clear(t);
            }
        }
        self.charge(c, cost);
        left
    }

    /// The host enters vCPU `k` (its next event, in one of its windows): a flush left in
    /// its steal-time area is done first, on the whole guest TLB, before the vCPU runs
    /// anything (kvm_vcpu_flush_tlb_guest; its cost is the host's, outside the guest's
    /// time).
    pub(crate) fn host_enter(&mut self, k: usize) {
        let Some(h) = &mut self.host else { return };
        if std::mem::take(&mut h.flush_pending[k]) {
            h.stats.host_tlb_flushes += 1;
            self.hw.mem.host_flush(k);
        }
    }

    /// The `host` statistics section (None on bare metal).
    pub(crate) fn host_stats(&self) -> Option<HostStats> {
        let h = self.host.as_ref()?;
        let mut s = h.stats.clone();
        s.vcpus_per_pcpu = self.profile.host.vcpus_per_pcpu;
        s.slice_ns = self.profile.host.slice_ns;
        s.pv_tlb_flush = self.profile.host.pv_tlb_flush;
        s.preempted_cycles =
            (0..self.hw.cpus.len()).map(|k| h.stolen_by(k, self.hw.cpus[k].time_fp) >> 8).collect();
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl HostShare {
        fn test(slice: u64, period: u64, phase: Vec<u64>) -> Self {
            let n = phase.len();
            HostShare {
                slice,
                period,
                phase,
                flush_pending: vec![false; n],
                stats: HostStats::default(),
            }
        }
    }

    #[test]
    fn bare_metal_has_no_rotation() {
        assert!(HostShare::new(4, 1, 1000, 1).is_none());
        assert!(HostShare::new(4, 0, 1000, 1).is_none());
    }

    #[test]
    fn windows_follow_the_rotation() {
        let h = HostShare::test(10, 30, vec![0, 25]);
        // vCPU 0 runs in [0,10), [30,40), ...
        assert!(h.runs(0, 0) && h.runs(0, 9) && !h.runs(0, 10) && !h.runs(0, 29));
        assert!(h.runs(0, 30));
        assert_eq!(h.runs_from(0, 12), 30);
        assert_eq!(h.runs_from(0, 31), 31);
        assert_eq!(h.window_end(0, 31), 40);
        assert_eq!(h.window_end(0, 15), 15);
        // vCPU 1 runs in [25,35), [55,65), ... and [0,5) (the window begun at -5).
        assert!(h.runs(1, 0) && h.runs(1, 4) && !h.runs(1, 5) && h.runs(1, 25));
        assert_eq!(h.runs_from(1, 5), 25);
        assert_eq!(h.window_end(1, 2), 5);
        assert_eq!(h.window_end(1, 30), 35);
    }

    #[test]
    fn steal_time_counts_the_time_outside_the_windows() {
        let h = HostShare::test(10, 30, vec![0, 25]);
        let brute = |k: usize, t: u64| (0..t).filter(|&x| !h.runs(k, x)).count() as u64;
        for k in 0..2 {
            for t in 0..100 {
                assert_eq!(h.stolen_by(k, t), brute(k, t), "vCPU {k} by {t}");
            }
        }
    }

    #[test]
    fn phases_are_seeded_and_within_the_period() {
        let a = HostShare::new(8, 2, 1000, 7).unwrap();
        let b = HostShare::new(8, 2, 1000, 7).unwrap();
        let c = HostShare::new(8, 2, 1000, 8).unwrap();
        assert_eq!(a.phase, b.phase);
        assert_ne!(a.phase, c.phase);
        assert!(a.phase.iter().all(|&p| p < 2000));
    }
}
