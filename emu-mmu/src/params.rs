//! Parameters of the memory system, part of a machine profile.

use crate::cache::CacheParams;
use crate::tlb::{Replacement, TlbGeometry};
use serde::{Deserialize, Serialize};

/// TLB and paging-structure-cache geometry, walk and invalidation costs of one core.
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
    /// Replacement policy of every TLB array.
    pub replacement: Replacement,
    /// PML4-entry paging-structure cache.
    pub psc_pml4e: TlbGeometry,
    /// PDPT-entry paging-structure cache.
    pub psc_pdpte: TlbGeometry,
    /// PD-entry paging-structure cache.
    pub psc_pde: TlbGeometry,
    /// Extra cycles of an access that misses L1 and hits the second-level TLB.
    pub stlb_hit_cycles: f64,
    /// Fixed cycles of starting a page walk, beyond its paging-structure reads (each read
    /// costs what the cache model says).
    pub walk_base_cycles: f64,
    /// Cycles to set an accessed or dirty bit (a locked update of the entry).
    pub ad_update_cycles: f64,
    /// INVLPG.
    pub invlpg_cycles: f64,
    /// INVPCID (any type).
    pub invpcid_cycles: f64,
    /// MOV to CR3 (the write itself; refills are charged as they happen).
    pub cr3_write_cycles: f64,
    /// Issuing one INVLPGB (the issuing core's own cost; the broadcast is asynchronous).
    pub invlpgb_cycles: f64,
    /// The TLBSYNC instruction itself, beyond waiting for the broadcasts to complete.
    pub tlbsync_cycles: f64,
    /// A broadcast's trip between a core and its socket's fabric, one way.
    pub invlpgb_hop_cycles: f64,
    /// The fabric's spacing between probes to successive core complexes (CCXs, the cores
    /// of one LLC) of its socket; broadcasts queue behind one another at this rate.
    pub invlpgb_ccx_cycles: f64,
    /// A broadcast's trip between two sockets' fabrics, one way.
    pub invlpgb_socket_cycles: f64,
    /// A receiving core's time to look one broadcast up in its TLBs and paging-structure
    /// caches (taken from what it runs; its lookups of successive broadcasts queue).
    pub invlpgb_receive_cycles: f64,
}

/// All memory-system parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct MemParams {
    /// Translation.
    pub mmu: MmuParams,
    /// Data caches and topology.
    pub cache: CacheParams,
}
