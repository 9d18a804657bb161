//! Parameters of the memory system, part of a machine profile.

use crate::tlb::{Replacement, TlbGeometry};
use serde::{Deserialize, Serialize};

/// TLB geometry and translation costs of one core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmuParams {
    /// L1 instruction TLB (4 KiB and 2 MiB pages).
    pub itlb: TlbGeometry,
    /// L1 data TLB for 4 KiB pages.
    pub dtlb_4k: TlbGeometry,
    /// L1 data TLB for 2 MiB pages.
    pub dtlb_2m: TlbGeometry,
    /// Unified second-level TLB (4 KiB and 2 MiB pages).
    pub stlb: TlbGeometry,
    /// Replacement policy of every array.
    pub replacement: Replacement,
    /// Extra cycles of an access that misses L1 and hits the second-level TLB.
    pub stlb_hit_cycles: f64,
    /// Fixed cycles of a page walk, beyond its paging-structure reads.
    pub walk_base_cycles: f64,
    /// Cycles of one paging-structure read (before the cache model exists: an L1/L2 hit).
    pub walk_read_cycles: f64,
    /// Cycles to set an accessed or dirty bit (a locked update of the entry).
    pub ad_update_cycles: f64,
}

impl Default for MmuParams {
    /// Skylake: Intel Optimization Reference Manual table 2-15 (geometry); RMMA 2013 for
    /// the STLB hit (~12 cycles on Haswell, used as an estimate); Nadav Amit 2022 for
    /// dirty-bit setting (over 500 cycles on a clean PTE).
    fn default() -> Self {
        MmuParams {
            itlb: TlbGeometry { entries: 128, ways: 8 },
            dtlb_4k: TlbGeometry { entries: 64, ways: 4 },
            dtlb_2m: TlbGeometry { entries: 32, ways: 4 },
            stlb: TlbGeometry { entries: 1536, ways: 12 },
            replacement: Replacement::Lru,
            stlb_hit_cycles: 9.0,
            walk_base_cycles: 10.0,
            walk_read_cycles: 5.0,
            ad_update_cycles: 500.0,
        }
    }
}
