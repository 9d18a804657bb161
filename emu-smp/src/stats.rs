//! Run statistics: one serde tree per run, the source of truth for reports.

use crate::machine::Machine;
use emu_mmu::{CacheStats, CoherenceStats, InvalidationStats, MmuStats, PscStats, TlbArray};
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the stats schema (bumped on incompatible changes).
pub const SCHEMA_VERSION: u32 = 1;

/// Counters of one core's scheduler activity.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CoreStats {
    /// Guest instructions retired on this core.
    pub instructions: u64,
    /// Tasks switched in.
    pub context_switches: u64,
    /// sched_yield calls.
    pub yields: u64,
}

/// Kernel-model counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct KernelStats {
    /// Guest instructions retired, all cores.
    pub instructions: u64,
    /// System calls.
    pub syscalls: u64,
    /// System calls by number.
    pub syscall_counts: BTreeMap<u64, u64>,
    /// Page faults that mapped a new page.
    pub page_faults: u64,
    /// Faults that mapped a 2 MiB page.
    pub huge_page_faults: u64,
    /// Copy-on-write faults.
    pub cow_faults: u64,
    /// Faults caused by stale TLB entries.
    pub spurious_faults: u64,
    /// munmap calls.
    pub munmaps: u64,
    /// madvise(DONTNEED/FREE) calls.
    pub madvise_dontneed: u64,
    /// fork-style clones (new address space).
    pub forks: u64,
    /// clone calls of any kind.
    pub clones: u64,
    /// FUTEX_WAIT calls that blocked.
    pub futex_waits: u64,
    /// Signal handlers invoked.
    pub signals_delivered: u64,
}

/// One TLB array's geometry-independent counters.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct TlbReport {
    /// Lookups.
    pub lookups: u64,
    /// Hits.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// Entries evicted.
    pub evictions: u64,
    /// Entries removed by invalidations.
    pub invalidated: u64,
}

impl TlbReport {
    fn of(a: &TlbArray) -> Self {
        let s = a.stats;
        TlbReport {
            lookups: s.lookups,
            hits: s.hits,
            misses: s.lookups - s.hits,
            evictions: s.evictions,
            invalidated: s.invalidated,
        }
    }
}

/// Per-core report.
#[derive(Clone, Debug, Serialize)]
pub struct CoreReport {
    /// Core number.
    pub core: usize,
    /// Local time at the end, cycles.
    pub cycles: u64,
    /// Scheduler counters.
    #[serde(flatten)]
    pub sched: CoreStats,
    /// L1 instruction TLB.
    pub itlb: TlbReport,
    /// L1 data TLB (4 KiB).
    pub dtlb_4k: TlbReport,
    /// L1 data TLB (2 MiB).
    pub dtlb_2m: TlbReport,
    /// Second-level TLB.
    pub stlb: TlbReport,
    /// Paging-structure caches.
    pub psc: PscReport,
    /// Walks and faults.
    pub mmu: MmuStats,
    /// Invalidations by kind.
    pub invalidations: InvalidationStats,
    /// L1 data cache.
    pub l1d: CacheStats,
    /// L2 cache.
    pub l2: CacheStats,
    /// Cache-line ownership traffic.
    pub coherence: CoherenceStats,
}

/// Paging-structure-cache counters of one core.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PscReport {
    /// PML4-entry cache.
    pub pml4e: PscStats,
    /// PDPT-entry cache.
    pub pdpte: PscStats,
    /// PD-entry cache.
    pub pde: PscStats,
}

/// Totals over the machine.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Guest instructions retired.
    pub instructions: u64,
    /// Simulated cycles: the largest core-local time.
    pub cycles: u64,
    /// Simulated nanoseconds at the profile's frequency.
    pub simulated_ns: u64,
    /// System calls.
    pub syscalls: u64,
    /// Page walks.
    pub page_walks: u64,
}

/// The statistics of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunStats {
    /// Schema version.
    pub schema_version: u32,
    /// emu version.
    pub emu_version: &'static str,
    /// Machine profile name.
    pub profile: String,
    /// Number of cores.
    pub cores: usize,
    /// Totals.
    pub totals: Totals,
    /// Per-core counters.
    pub per_core: Vec<CoreReport>,
    /// Kernel-model counters.
    pub kernel: KernelStats,
    /// Decoded-code cache counters.
    pub code_cache: CodeCacheReport,
    /// Peak guest physical memory in use, KiB.
    pub peak_memory_kib: u64,
    /// Last-level caches, one per LLC domain.
    pub llc: Vec<CacheStats>,
}

/// Decoded-code cache counters.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CodeCacheReport {
    /// Blocks decoded.
    pub blocks_decoded: u64,
    /// Instructions decoded.
    pub insns_decoded: u64,
    /// Blocks discarded.
    pub blocks_invalidated: u64,
}

impl RunStats {
    /// Collects the statistics of a machine.
    pub fn collect(m: &Machine) -> RunStats {
        let per_core: Vec<CoreReport> = m
            .cores
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let mmu = m.mem.core(k);
                CoreReport {
                    core: k,
                    cycles: c.time_fp >> 8,
                    sched: c.stats,
                    itlb: TlbReport::of(&mmu.itlb),
                    dtlb_4k: TlbReport::of(&mmu.dtlb),
                    dtlb_2m: TlbReport::of(&mmu.dtlb2m),
                    stlb: TlbReport::of(&mmu.stlb),
                    psc: PscReport {
                        pml4e: mmu.psc.pml4e.stats,
                        pdpte: mmu.psc.pdpte.stats,
                        pde: mmu.psc.pde.stats,
                    },
                    mmu: mmu.stats,
                    invalidations: mmu.inval,
                    l1d: m.mem.core_caches(k).l1d.stats,
                    l2: m.mem.core_caches(k).l2.stats,
                    coherence: m.mem.core_caches(k).coherence,
                }
            })
            .collect();
        let cycles = per_core.iter().map(|c| c.cycles).max().unwrap_or(0);
        let cs = m.code.stats;
        RunStats {
            schema_version: SCHEMA_VERSION,
            emu_version: env!("CARGO_PKG_VERSION"),
            profile: m.profile.name.clone(),
            cores: m.cores.len(),
            totals: Totals {
                instructions: m.kstats.instructions,
                cycles,
                simulated_ns: m.ns_of(cycles << 8),
                syscalls: m.kstats.syscalls,
                page_walks: per_core.iter().map(|c| c.mmu.walks).sum(),
            },
            per_core,
            kernel: m.kstats.clone(),
            code_cache: CodeCacheReport {
                blocks_decoded: cs.blocks_decoded,
                insns_decoded: cs.insns_decoded,
                blocks_invalidated: cs.blocks_invalidated,
            },
            peak_memory_kib: m.mem.phys.peak_allocated * 4,
            llc: m.mem.caches.llcs.iter().map(|l| l.stats).collect(),
        }
    }
}
