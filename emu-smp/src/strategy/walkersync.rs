//! Axis `walker-sync`: how the kernel makes sure no lockless page-table walker (GUP-fast,
//! which walks with interrupts off and no lock) still reads a page-table page being
//! freed (../shared/AXES.md §1, seed 002).
//!
//! Every value frees the tables of an mmu_gather once its TLB flush has completed
//! (tlb_finish_mmu); they differ in what must happen between the flush's completion
//! and the free. The flush itself, when it went out as IPIs with `freed_tables`, cannot
//! complete while a walker of the mm has interrupts off; a broadcast invalidation
//! (INVLPGB for an mm with a global ASID) sends no IPI and holds no walker back.
//!
//! `linux` is what x86 does today: `MMU_GATHER_RCU_TABLE_FREE`, the tables of
//! munmap/brk/mremap/exit batches freed through `call_rcu` (rcu.rs), and the PTE table a
//! THP collapse reuses synced with tlb_remove_table_sync_one's broadcast (hugetlb PMD
//! unsharing, the other reuse, is not modelled).

use super::{Axis, Value};
use serde::Serialize;

/// Page-table retirement sync (`--walker-sync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WalkerSync {
    /// What x86 does today: `rcu` for freed tables, `broadcast` for a reused one.
    Linux,
    /// Free through call_rcu: the tables stay allocated until a grace period ends; a
    /// reused table waits in synchronize_rcu.
    Rcu,
    /// Extra sync only when the flush did not interrupt every CPU that could walk.
    Implied,
    /// IPI every other online CPU with an empty function and wait, then free.
    Broadcast,
    /// Scan the per-CPU walk trackers, IPI the CPUs walking the mm and wait, then free.
    Targeted,
    /// Free when the flush completes, nothing more.
    None,
}

impl Axis for WalkerSync {
    const AXIS: &'static str = "walker-sync";
    const ABOUT: &'static str = "sync of page-table retirement with lockless walkers (GUP-fast)";
    const DEFAULT: Self = WalkerSync::Linux;
    const VALUES: &'static [Value<Self>] = &[
        Value {
            value: WalkerSync::Linux,
            name: "linux",
            what: "upstream x86 today: MMU_GATHER_RCU_TABLE_FREE is selected unconditionally, so the page tables of munmap/brk/mremap/exit batches are freed by call_rcu after the TLB flush (the flush IPI is not relied on), as `rcu`; the PTE table a THP collapse (MADV_COLLAPSE) reuses is synced with tlb_remove_table_sync_one, as `broadcast`",
            source: "mm/mmu_gather.c tlb_remove_table, tlb_remove_table_rcu, tlb_remove_table_free, tlb_remove_table_sync_one; mm/khugepaged.c collapse_huge_page; arch/x86/Kconfig select MMU_GATHER_RCU_TABLE_FREE (unconditional since Rik van Riel's INVLPGB series, 2025; before, `if PARAVIRT`); ../shared/AXES.md §1.3",
        },
        Value {
            value: WalkerSync::Rcu,
            name: "rcu",
            what: "after the flush, call_rcu: the tables stay allocated until every CPU has passed a quiescent state (context switch, idle, a user-mode tick, a kernel-mode tick under preemptible RCU; idle CPUs reported by the GP kthread's force-quiescent-state scans), then RCU callback processing on the freeing CPU frees them at its next tick or switch; the freer never waits. A THP collapse's reused PTE table instead waits in synchronize_rcu: the collapsing task sleeps a grace period (PeterZ's 'replace table_sync_one() with rcu_sync()' in seed 002's review)",
            source: "kernel/rcu/tree.c (rcu_init_geometry: jiffies_till_first_fqs = RCU_JIFFIES_TILL_FORCE_QS + nr_cpu_ids / RCU_JIFFIES_FQS_DIV, rcu_sched_clock_irq, rcu_note_context_switch, synchronize_rcu, rcu_normal_wake_from_gp); kernel/rcu/tree_plugin.h rcu_flavor_sched_clock_irq; mm/mmu_gather.c tlb_remove_table_rcu",
        },
        Value {
            value: WalkerSync::Implied,
            name: "implied",
            what: "decided per flush: no extra sync when the freed_tables flush went out as IPIs to the whole mm_cpumask (a walker with interrupts off holds its ack back); otherwise (a global ASID's INVLPGB, no IPI) fall back to broadcast. This is bare-metal x86 before MMU_GATHER_RCU_TABLE_FREE became unconditional (it relied on the flush IPI), made safe under INVLPGB. x86 today frees through RCU (`linux`)",
            source: "Lance Yang, \"skip redundant sync IPIs when TLB flush sent them\" v5-v10 (tlb_table_flush_implies_ipi_broadcast, 2026); arch/x86/mm/tlb.c native_flush_tlb_multi (freed_tables IPIs lazy CPUs too); arch/x86/Kconfig MMU_GATHER_RCU_TABLE_FREE (once `if PARAVIRT`, unconditional since Rik van Riel's INVLPGB series, 2025)",
        },
        Value {
            value: WalkerSync::Broadcast,
            name: "broadcast",
            what: "after the flush, an IPI with an empty function to every online CPU but the caller, waiting for all of them (idle CPUs are woken), then the free",
            source: "mm/mmu_gather.c tlb_remove_table_sync_one: smp_call_function(tlb_remove_table_smp_sync, NULL, 1)",
        },
        Value {
            value: WalkerSync::Targeted,
            name: "targeted",
            what: "every GUP-fast writes its CPU's tracker line (xchg of the mm at the start, a release store of NULL at the end); after the flush the freer runs a full barrier, reads every online CPU's tracker and IPIs and waits for only the CPUs walking this mm",
            source: "Lance Yang, \"mm: targeted IPIs for lockless page-table walkers\" v4 (2026-02-02, seed 002): pt_walk_lockless_start/end, tlb_remove_table_sync_mm; PeterZ's review (xchg)",
        },
        Value {
            value: WalkerSync::None,
            name: "none",
            what: "free the tables when the flush completes, with no extra sync: unsafe where the flush sent no IPI to a walking CPU (INVLPGB with a global ASID), which the walker-uaf oracle reports",
            source: "../shared/AXES.md §1.4; the pre-2025 bare-metal x86 design under INVLPGB, why Rik van Riel made MMU_GATHER_RCU_TABLE_FREE unconditional",
        },
    ];
}

/// What a freer must do after the flush of freed tables completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncAction {
    /// Free at once.
    Free,
    /// IPI every other online CPU and wait.
    Broadcast,
    /// Scan the trackers and IPI the walkers of the mm.
    Targeted,
    /// call_rcu: free after a grace period, without waiting.
    Rcu,
    /// synchronize_rcu: the caller sleeps until a grace period has passed, then reuses.
    SyncRcu,
}

impl WalkerSync {
    /// GUP-fast writes the per-CPU tracker (xchg at the start, release store at the end).
    pub fn tracks_walkers(self) -> bool {
        self == WalkerSync::Targeted
    }

    /// What to do once a flush with freed tables completed; `flush_ipid_all` says the
    /// flush reached every CPU of the mm's cpumask through an IPI it waited for, `reuse`
    /// that the table is reused rather than freed (a THP collapse deposits it), which
    /// RCU freeing cannot cover: `rcu` then waits in synchronize_rcu, and `linux` uses
    /// tlb_remove_table_sync_one's broadcast.
    pub fn after_flush(self, flush_ipid_all: bool, reuse: bool) -> SyncAction {
        match self {
            WalkerSync::None => SyncAction::Free,
            WalkerSync::Implied if flush_ipid_all => SyncAction::Free,
            WalkerSync::Implied | WalkerSync::Broadcast => SyncAction::Broadcast,
            WalkerSync::Targeted => SyncAction::Targeted,
            WalkerSync::Linux if reuse => SyncAction::Broadcast,
            WalkerSync::Rcu if reuse => SyncAction::SyncRcu,
            WalkerSync::Linux | WalkerSync::Rcu => SyncAction::Rcu,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_syncs_only_when_the_flush_did_not_ipi_everyone() {
        for reuse in [false, true] {
            assert_eq!(WalkerSync::Implied.after_flush(true, reuse), SyncAction::Free);
            assert_eq!(WalkerSync::Implied.after_flush(false, reuse), SyncAction::Broadcast);
            assert_eq!(WalkerSync::Broadcast.after_flush(true, reuse), SyncAction::Broadcast);
            assert_eq!(WalkerSync::Targeted.after_flush(true, reuse), SyncAction::Targeted);
            assert_eq!(WalkerSync::None.after_flush(false, reuse), SyncAction::Free);
        }
        assert_eq!(WalkerSync::Linux.after_flush(true, false), SyncAction::Rcu);
        assert_eq!(WalkerSync::Rcu.after_flush(false, false), SyncAction::Rcu);
        // A reused table (THP collapse): x86 broadcasts; RCU must wait synchronously.
        assert_eq!(WalkerSync::Linux.after_flush(true, true), SyncAction::Broadcast);
        assert_eq!(WalkerSync::Rcu.after_flush(true, true), SyncAction::SyncRcu);
        assert!(WalkerSync::Targeted.tracks_walkers() && !WalkerSync::Broadcast.tracks_walkers());
    }
}
