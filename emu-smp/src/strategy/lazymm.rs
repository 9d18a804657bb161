//! Axis `lazy-mm`: how the mm a kernel thread (idle, an exiting task) borrows as its
//! `active_mm` is kept alive (../shared/AXES.md §2, seed 004).
//!
//! With `refcount` every switch from a user task to a kernel thread takes a reference
//! on `mm_count` and the switch back drops it (`mmgrab_lazy_tlb`, `mmdrop_lazy_tlb`),
//! so the mm_struct and its PGD live until the last CPU borrowing them leaves. The
//! shootdown values take no reference: the final `__mmdrop` (`cleanup_lazy_tlbs`)
//! sends `do_shoot_lazy_tlb` to the CPUs that may still borrow the mm and waits for
//! them, which is only safe if that set covers every such CPU.

use super::{Axis, Value};
use serde::Serialize;

/// Lazy-TLB mm reference scheme (`--lazy-mm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LazyMmPolicy {
    /// CONFIG_MMU_LAZY_TLB_REFCOUNT=y: an mm_count reference per lazy CPU.
    Refcount,
    /// CONFIG_MMU_LAZY_TLB_SHOOTDOWN over mm_cpumask (powerpc's choice).
    Shootdown,
    /// Shootdown to every online CPU.
    ShootdownAll,
    /// Shootdown to the CPUs whose published per-CPU lazy mm is the mm (read remotely).
    ShootdownActive,
    /// One hazard-pointer slot per CPU for its lazy mm; __mmdrop scans the slots and
    /// shoots each match with single calls.
    HazardPointer,
}

impl Axis for LazyMmPolicy {
    const AXIS: &'static str = "lazy-mm";
    const ABOUT: &'static str = "lazy-TLB mm references (active_mm of kernel threads)";
    const DEFAULT: Self = LazyMmPolicy::Refcount;
    const VALUES: &'static [Value<Self>] = &[
        Value {
            value: LazyMmPolicy::Refcount,
            name: "refcount",
            what: "every user->kernel switch takes an mm_count reference on the mm it keeps loaded, the switch back drops it; the last drop frees the mm (x86 today)",
            source: "include/linux/sched/mm.h mmgrab_lazy_tlb/mmdrop_lazy_tlb, kernel/sched/core.c context_switch, CONFIG_MMU_LAZY_TLB_REFCOUNT (seed 004)",
        },
        Value {
            value: LazyMmPolicy::Shootdown,
            name: "shootdown",
            what: "no lazy references (an smp_mb at the drop); the final __mmdrop IPIs mm_cpumask and waits while each CPU still borrowing the mm switches to init_mm",
            source: "kernel/fork.c cleanup_lazy_tlbs, do_shoot_lazy_tlb, CONFIG_MMU_LAZY_TLB_SHOOTDOWN (Nick Piggin, 2023; only powerpc book3s64 selects it)",
        },
        Value {
            value: LazyMmPolicy::ShootdownAll,
            name: "shootdown-all",
            what: "as shootdown, but the final __mmdrop IPIs every online CPU",
            source: "../shared/AXES.md §2.3 option (a): what x86 would need, mm_cpumask not covering lazy users",
        },
        Value {
            value: LazyMmPolicy::ShootdownActive,
            name: "shootdown-active",
            what: "as shootdown, but each CPU publishes the mm it borrows in a per-CPU word; __mmdrop reads every CPU's word and IPIs only those that match",
            source: "kernel/fork.c cleanup_lazy_tlbs comment (publish per-CPU active_mm); Andy Lutomirski, \"x86/mm: Lightweight lazy mm refcounting\" (2020)",
        },
        Value {
            value: LazyMmPolicy::HazardPointer,
            name: "hazard-pointer",
            what: "a hazard-pointer slot per CPU holds the mm it borrows (a store and a full barrier at the switch to a kernel thread); __mmdrop scans every slot and, CPU by CPU, waits for a do_shoot_lazy_tlb and a do_check_lazy_tlb call to each match",
            source: "Mathieu Desnoyers, \"sched+mm: Use hazard pointers to track lazy active mm existence\" (RFC v3 4/4, 2024-10-08: hazptr_scan, remove_lazy_mm_hp)",
        },
    ];
}

impl LazyMmPolicy {
    /// mmgrab_lazy_tlb and mmdrop_lazy_tlb are atomics on `mm_count` (otherwise the drop
    /// is only the full barrier membarrier relies on).
    pub fn refcounts(self) -> bool {
        self == LazyMmPolicy::Refcount
    }

    /// What `cleanup_lazy_tlbs` asks of the final `__mmdrop`.
    pub fn cleanup(self) -> LazyCleanup {
        match self {
            LazyMmPolicy::Refcount => LazyCleanup::Nothing,
            LazyMmPolicy::Shootdown => LazyCleanup::Cpumask,
            LazyMmPolicy::ShootdownAll => LazyCleanup::AllCpus,
            LazyMmPolicy::ShootdownActive => LazyCleanup::PublishedLazyMm,
            LazyMmPolicy::HazardPointer => LazyCleanup::HazardScan,
        }
    }

    /// Each CPU publishes the mm it borrows lazily in a per-CPU word (written at the
    /// switch to a kernel thread and back).
    pub fn publishes_lazy_mm(self) -> bool {
        matches!(self, LazyMmPolicy::ShootdownActive | LazyMmPolicy::HazardPointer)
    }

    /// Publishing is a hazard-pointer acquisition: the store is followed by a full
    /// barrier before the mm may be used.
    pub fn publish_barrier(self) -> bool {
        self == LazyMmPolicy::HazardPointer
    }
}

/// Which CPUs the final `__mmdrop` sends `do_shoot_lazy_tlb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LazyCleanup {
    /// None: lazy users hold references, so none is left at the final drop.
    Nothing,
    /// The mm's mm_cpumask (the initiator runs it itself if its bit is set).
    Cpumask,
    /// Every online CPU.
    AllCpus,
    /// The CPUs whose published lazy mm is this mm (one remote read per CPU).
    PublishedLazyMm,
    /// hazptr_scan: every CPU's slot in turn; each match gets a single call waited for
    /// (do_shoot_lazy_tlb), then another (do_check_lazy_tlb), before the scan goes on.
    HazardScan,
}
