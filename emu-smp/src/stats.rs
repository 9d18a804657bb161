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
    /// Tasks preempted at a tick.
    pub preemptions: u64,
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
    /// "tlb" or "psc".
    pub kind: &'static str,
    /// Simulated time.
    pub time_ns: u64,
    /// The strategy that allowed it.
    pub strategy: String,
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

impl LatencySummary {
    /// The summary of a set of samples (nearest-rank percentiles).
    pub fn of(samples: &[u64]) -> Self {
        if samples.is_empty() {
            return LatencySummary::default();
        }
        let mut v = samples.to_vec();
        v.sort_unstable();
        let n = v.len();
        let pct = |p: f64| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        LatencySummary {
            count: n as u64,
            mean: v.iter().map(|&x| x as f64).sum::<f64>() / n as f64,
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            max: v[n - 1],
        }
    }
}

/// Lower bound of the log-linear bucket holding `v`: the top four significant bits.
fn bucket_floor(v: u64) -> u64 {
    if v < 16 {
        return v;
    }
    let shift = 63 - v.leading_zeros() - 3;
    (v >> shift) << shift
}

/// The non-empty buckets of a log-linear histogram of `samples`, in increasing order.
pub fn latency_histogram(samples: &[u64]) -> Vec<(u64, u64)> {
    let mut h = BTreeMap::new();
    for &v in samples {
        *h.entry(bucket_floor(v)).or_insert(0u64) += 1;
    }
    h.into_iter().collect()
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
    /// Every shootdown.
    pub shootdowns: Vec<ShootdownRecord>,
    /// mm_cpumask weight over time: (simulated ns, mm, weight) after each change.
    pub cpumask_weight: Vec<(u64, u32, u32)>,
    /// Oracle violations.
    pub violations: Vec<Violation>,
    /// Per-core counters.
    pub per_core: Vec<CoreReport>,
    /// Kernel-model counters.
    pub kernel: KernelStats,
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
                    cycles: m.now(k) >> 8,
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
        let remote: Vec<u64> = m
            .records
            .all()
            .iter()
            .filter(|s| s.targets > 0 || s.invlpgb > 0)
            .map(|s| s.latency_cycles)
            .collect();
        let all: Vec<u64> = m.records.all().iter().map(|s| s.latency_cycles).collect();
        let st = m.strategy;
        RunStats {
            schema_version: SCHEMA_VERSION,
            config: RunInfo {
                program: m.exe_path.clone(),
                argv: m.argv.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect(),
                profile: m.profile.name.clone(),
                cores: m.cores.len(),
                seed: m.seed,
                cpumask: st.cpumask.name(),
                flush: st.flush.name(),
                broken: (st.broken != crate::strategy::BrokenPolicy::None)
                    .then(|| st.broken.name()),
                oracle: m.oracle,
                emu_version: env!("CARGO_PKG_VERSION"),
            },
            totals: Totals {
                instructions: m.kstats.instructions,
                cycles,
                simulated_ns: m.ns_of(cycles << 8),
                syscalls: m.kstats.syscalls,
                page_walks: per_core.iter().map(|c| c.mmu.walks).sum(),
                shootdowns: m.kstats.shootdowns,
                ipis_sent: per_core.iter().map(|c| c.sched.ipis_sent).sum(),
                invlpgb: per_core.iter().map(|c| c.invalidations.invlpgb_issued).sum(),
                oracle_violations: m.violations.len() as u64,
                late_events: m.late_events,
            },
            shootdown_latency_cycles: LatencySummary::of(&remote),
            shootdown_latency_histogram: latency_histogram(&remote),
            all_flush_latency_cycles: LatencySummary::of(&all),
            shootdowns: m.records.all().to_vec(),
            cpumask_weight: m.cpumask_samples.clone(),
            violations: m.violations.clone(),
            per_core,
            kernel: m.kstats.clone(),
            code_cache: CodeCacheReport {
                blocks_decoded: cs.blocks_decoded,
                insns_decoded: cs.insns_decoded,
                blocks_invalidated: cs.blocks_invalidated,
            },
            locks: m.locks.stats.clone(),
            peak_memory_kib: m.mem.phys.peak_allocated * 4,
            llc: m.mem.caches.llcs.iter().map(|l| l.stats).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        let s = LatencySummary::of(&v);
        assert_eq!((s.count, s.p50, s.p90, s.p99, s.max), (100, 50, 90, 99, 100));
        assert!((s.mean - 50.5).abs() < 1e-9);
        assert_eq!(LatencySummary::of(&[]).count, 0);
    }

    #[test]
    fn histogram_buckets_are_log_linear() {
        // Below 16 each value is its own bucket; above, 8 buckets per octave.
        assert_eq!(bucket_floor(15), 15);
        assert_eq!(bucket_floor(16), 16);
        assert_eq!(bucket_floor(17), 16);
        assert_eq!(bucket_floor(18), 18);
        assert_eq!(bucket_floor(1000), 960);
        assert_eq!(bucket_floor(1023), 960);
        assert_eq!(bucket_floor(1024), 1024);
        for v in [17u64, 999, 123_456, u64::MAX] {
            let f = bucket_floor(v);
            assert!(f <= v && (v - f) as f64 <= f as f64 / 8.0, "{v} -> {f}");
        }
        let h = latency_histogram(&[5, 5, 1000, 1010, 1030, 3]);
        assert_eq!(h, vec![(3, 1), (5, 2), (960, 2), (1024, 1)]);
    }
}
