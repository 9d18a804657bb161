//! Run statistics: one serde tree per run, the source of truth for reports. The schema
//! is documented in the README ("Statistics"); `schema_version` changes when a field is
//! renamed or removed.

use crate::machine::Machine;
use crate::strategy::Axis;
use crate::tlbflush::Reason;
use emu_mmu::{CacheStats, CoherenceStats, InvalidationStats, MmuStats, PscStats, TlbArray};
use serde::Serialize;
use std::collections::BTreeMap;

/// Version of the stats schema.
pub const SCHEMA_VERSION: u32 = 1;

/// Counters of one core's scheduler and interrupt activity.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct CoreStats {
    /// Guest instructions retired on this core.
    pub instructions: u64,
    /// Tasks switched in.
    pub context_switches: u64,
    /// Address-space switches (switch_mm_irqs_off that changed CR3).
    pub mm_switches: u64,
    /// Tasks that arrived here from another core.
    pub migrations_in: u64,
    /// Tasks preempted at a tick (their slice used up).
    pub preemptions: u64,
    /// Wake-ups of a task that was to preempt this core's running one.
    pub wakeup_preemptions: u64,
    /// Tasks preempted in the middle of a kernel path (`--preempt full` or `lazy`).
    pub kernel_preemptions: u64,
    /// sched_yield calls.
    pub yields: u64,
    /// Scheduler ticks.
    pub ticks: u64,
    /// IPIs this core sent.
    pub ipis_sent: u64,
    /// ICR writes this core made (one per cluster in x2APIC cluster mode).
    pub icr_writes: u64,
    /// IPIs this core received.
    pub ipis_received: u64,
    /// Cycles spent in interrupt handlers (entry, flushes, exit).
    pub irq_cycles: u64,
    /// Cycles spent waiting for flush acks.
    pub ack_wait_cycles: u64,
    /// Times the idle task ran.
    pub idle_entries: u64,
    /// Cycles idle.
    pub idle_cycles: u64,
    /// Cycles spent leaving idle states.
    pub idle_exit_cycles: u64,
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
    /// madvise(MADV_COLLAPSE) calls.
    pub madvise_collapse: u64,
    /// 2 MiB ranges they collapsed into a huge page.
    pub thp_collapsed: u64,
    /// fork-style clones (new address space).
    pub forks: u64,
    /// clone calls of any kind.
    pub clones: u64,
    /// FUTEX_WAIT calls that blocked.
    pub futex_waits: u64,
    /// Signal handlers invoked.
    pub signals_delivered: u64,
    /// flush_tlb_mm_range calls (shootdowns, local ones included).
    pub shootdowns: u64,
    /// Global ASIDs handed out (INVLPGB transport).
    pub global_asids: u64,
    /// Address-space work the kernel paths did (VMAs, PTEs, page-table pages).
    pub mm_work: crate::mm::Work,
    /// Cycles charged for that work.
    pub mm_work_cycles: u64,
    /// Writes of a task's rseq ids at its return to user mode
    /// (__rseq_handle_notify_resume).
    pub rseq_updates: u64,
    /// rseq critical sections aborted (rseq_ip_fixup moved the task to abort_ip).
    pub rseq_aborts: u64,
}

/// One flush_tlb_mm_range call.
#[derive(Clone, Debug, Serialize)]
pub struct ShootdownRecord {
    /// Sequence number.
    pub id: usize,
    /// Initiating core.
    pub initiator: usize,
    /// Address space.
    pub mm: u32,
    /// Kernel path that asked.
    pub reason: Reason,
    /// Simulated start time.
    pub start_ns: u64,
    /// Pages in the range, -1 for a full flush.
    pub pages: i64,
    /// A full flush (range above the 33-page ceiling, or whole mm).
    pub full: bool,
    /// Page tables were freed (lazy CPUs flushed too).
    pub freed_tables: bool,
    /// mm_cpumask weight at the start.
    pub cpumask_weight: u32,
    /// Remote CPUs the flush was queued for.
    pub targets: u32,
    /// Of those, idle at the time.
    pub to_idle: u32,
    /// Of those, in lazy TLB mode.
    pub to_lazy: u32,
    /// IPIs sent (targets whose call queue was empty).
    pub ipis_sent: u32,
    /// ICR writes.
    pub icr_writes: u32,
    /// INVLPGB instructions issued.
    pub invlpgb: u32,
    /// Initiator latency: from the call to its return, waits included (cycles).
    pub latency_cycles: u64,
    /// Remote CPUs that ran the flush.
    pub victims: u32,
    /// Cycles the remote CPUs spent on it (interrupt entry/exit shares, the flush).
    pub victim_cycles: u64,
    /// Longest time from queueing the flush on a target to that target's interrupt
    /// handler starting (IPI delivery, idle-state exit, or an interrupt already being
    /// handled there), cycles.
    pub ipi_delivery_cycles: u64,
    /// Initiator cycles spent waiting for acks (csd_lock_wait).
    pub ack_wait_cycles: u64,
    /// Page walks, on any core, that later brought back a translation this shootdown's
    /// invalidations removed (each removed translation counts at most once).
    pub refills: u64,
}

/// A use of a translation that a completed flush should have removed.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    /// The core.
    pub core: usize,
    /// The virtual address.
    pub address: u64,
    /// "tlb" or "psc" (a stale translation used), "lazy-mm-uaf" (a CPU using an mm that
    /// __mmdrop freed; `address` is then the mm's id), "mm_cid" (two tasks of one mm on
    /// CPUs with one CID, or a CID at or above the number of CPUs; `address` is the mm),
    /// or "walker-uaf" (a lockless walk reading a page-table page retired after it read
    /// the pointer to it).
    pub kind: &'static str,
    /// Simulated time.
    pub time_ns: u64,
    /// The strategy that allowed it.
    pub strategy: String,
    /// What was wrong, when the kind needs saying (mm_cid: which tasks, which CID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Summary of a latency distribution (cycles).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

/// One TLB array's counters.
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

/// Per-core report.
#[derive(Clone, Debug, Serialize)]
pub struct CoreReport {
    /// Core number.
    pub core: usize,
    /// Local time at the end, cycles.
    pub cycles: u64,
    /// Scheduler and interrupt counters.
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
    /// Shootdowns (flush_tlb_mm_range calls).
    pub shootdowns: u64,
    /// IPIs sent.
    pub ipis_sent: u64,
    /// INVLPGB instructions issued.
    pub invlpgb: u64,
    /// Uses of translations a completed flush should have removed.
    pub oracle_violations: u64,
    /// Interrupts and wake-ups queued to arrive before their receiver's last committed
    /// action: the clock invariant says 0.
    pub late_events: u64,
}

/// The configuration a run had.
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// Program path (or catalogue name).
    pub program: String,
    /// Guest argv.
    pub argv: Vec<String>,
    /// Machine profile.
    pub profile: String,
    /// Cores.
    pub cores: usize,
    /// Seed.
    pub seed: u64,
    /// `--cpumask`.
    pub cpumask: &'static str,
    /// `--flush`.
    pub flush: &'static str,
    /// `--lazy-mm`.
    pub lazy_mm: &'static str,
    /// `--mm-cid`.
    pub mm_cid: &'static str,
    /// `--walker-sync`.
    pub walker_sync: &'static str,
    /// `--preempt`.
    pub preempt: &'static str,
    /// Test-only breakage, if any.
    pub broken: Option<&'static str>,
    /// Coherence oracle bookkeeping on.
    pub oracle: bool,
    /// emu version.
    pub emu_version: &'static str,
}

/// The statistics of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunStats {
    /// Schema version.
    pub schema_version: u32,
    /// What ran, how.
    pub config: RunInfo,
    /// Totals.
    pub totals: Totals,
    /// Initiator latency of the shootdowns that involved other CPUs (IPIs or INVLPGB).
    pub shootdown_latency_cycles: LatencySummary,
    /// Their distribution: `[lower bound, count]` of the non-empty buckets of a log-linear
    /// histogram (8 buckets per power of two, so each spans at most 12.5% of its
    /// lower bound), for CDFs when the records are not kept.
    pub shootdown_latency_histogram: Vec<(u64, u64)>,
    /// Initiator latency of all shootdowns, local-only ones included.
    pub all_flush_latency_cycles: LatencySummary,
    /// Sums over the shootdowns that involved other CPUs (all of them, whether or not
    /// the records are kept).
    pub shootdown_totals: crate::records::RecordTotals,
    /// Every shootdown, when the run keeps the records in memory; with `--stats` they
    /// are streamed to disk during the run and spliced in here when the file is written.
    pub shootdowns: Vec<ShootdownRecord>,
    /// mm_cpumask weight over time: (simulated ns, mm, weight) after each change; past
    /// 65,536 samples, evenly thinned (every 2nd, 4th, ... change).
    pub cpumask_weight: Vec<(u64, u32, u32)>,
    /// Oracle violations (the first 10,000; `totals.oracle_violations` counts all).
    pub violations: Vec<Violation>,
    /// Per-core counters.
    pub per_core: Vec<CoreReport>,
    /// Kernel-model counters.
    pub kernel: KernelStats,
    /// Lazy-TLB mm references: mm_count atomics, context-switch kinds, final mmdrops,
    /// their shootdowns, how long torn-down mms stay held.
    pub lazy_mm: crate::lazymm::LazyMmStats,
    /// Per-mm concurrency IDs: bitmap operations, schedule-in paths, mode switches,
    /// TRANSIT drops, fixup walks and their cycles.
    pub mm_cid: crate::mmcid::MmCidStats,
    /// The host under a virtual machine whose vCPUs share their physical CPUs
    /// (`host.vcpus_per_pcpu` above 1): preempted time, paravirtual flushes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<crate::host::HostStats>,
    /// Lockless page-table walkers (GUP-fast) and the sync of page-table retirement
    /// with them (`--walker-sync`).
    pub walker_sync: crate::walker::WalkerSyncStats,
    /// Decoded-code cache counters.
    pub code_cache: CodeCacheReport,
    /// Kernel locks by class: acquisitions, contentions, wait and hold cycles, sleeps.
    pub locks: BTreeMap<crate::lock::LockClass, crate::lock::LockStats>,
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
    /// Collects the statistics of a machine whose records have been written out (`kept`:
    /// those kept in memory).
    pub fn collect(m: &Machine, kept: Vec<ShootdownRecord>) -> RunStats {
        let per_core: Vec<CoreReport> = m
            .probes
            .cpus
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let mmu = m.hw.mem.core(k);
                CoreReport {
                    core: k,
                    cycles: m.now(k) >> 8,
                    sched: *c,
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
                    l1d: m.hw.mem.core_caches(k).l1d.stats,
                    l2: m.hw.mem.core_caches(k).l2.stats,
                    coherence: m.hw.mem.core_caches(k).coherence,
                }
            })
            .collect();
        let cycles = per_core.iter().map(|c| c.cycles).max().unwrap_or(0);
        let cs = m.hw.code.stats;
        let st = m.k.strategy;
        RunStats {
            schema_version: SCHEMA_VERSION,
            config: RunInfo {
                program: m.k.exe_path.clone(),
                argv: m.k.argv.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect(),
                profile: m.profile.name.clone(),
                cores: m.hw.cpus.len(),
                seed: m.seed,
                cpumask: st.cpumask.name(),
                flush: st.flush.name(),
                lazy_mm: st.lazy_mm.name(),
                mm_cid: st.mm_cid.name(),
                walker_sync: st.walker_sync.name(),
                preempt: st.preempt.name(),
                broken: (st.broken != crate::strategy::BrokenPolicy::None)
                    .then(|| st.broken.name()),
                oracle: m.probes.oracle,
                emu_version: env!("CARGO_PKG_VERSION"),
            },
            totals: Totals {
                instructions: m.probes.kstats.instructions,
                cycles,
                simulated_ns: m.ns_of(cycles << 8),
                syscalls: m.probes.kstats.syscalls,
                page_walks: per_core.iter().map(|c| c.mmu.walks).sum(),
                shootdowns: m.probes.kstats.shootdowns,
                ipis_sent: per_core.iter().map(|c| c.sched.ipis_sent).sum(),
                invlpgb: per_core.iter().map(|c| c.invalidations.invlpgb_issued).sum(),
                oracle_violations: m.probes.violation_count,
                late_events: m.probes.late_events,
            },
            shootdown_latency_cycles: m.probes.records.remote_latency.summary(),
            shootdown_latency_histogram: m.probes.records.remote_latency.buckets(8),
            all_flush_latency_cycles: m.probes.records.all_latency.summary(),
            shootdown_totals: m.probes.records.totals.clone(),
            shootdowns: kept,
            cpumask_weight: m.probes.cpumask_samples.kept().to_vec(),
            violations: m.probes.violations.clone(),
            per_core,
            kernel: m.probes.kstats.clone(),
            lazy_mm: crate::lazymm::LazyMmStats {
                held_at_end: m.lazy_mm_held(),
                ..m.probes.lazy_mm.clone()
            },
            mm_cid: m.probes.mm_cid,
            host: m.host_stats(),
            walker_sync: m.probes.walker_sync.clone(),
            code_cache: CodeCacheReport {
                blocks_decoded: cs.blocks_decoded,
                insns_decoded: cs.insns_decoded,
                blocks_invalidated: cs.blocks_invalidated,
            },
            locks: m.k.locks.stats.clone(),
            peak_memory_kib: m.hw.mem.phys.peak_allocated * 4,
            llc: m.hw.mem.caches.llcs.iter().map(|l| l.stats).collect(),
        }
    }
}
