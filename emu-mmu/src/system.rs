//! The memory system of a machine: physical memory, the data caches, and per core the
//! translation state (CR3 root, PCID), TLB hierarchy and paging-structure caches. It
//! implements [`GuestMem`] for the core selected with [`MemSystem::select`], so every
//! guest access translates through that core's TLBs (and, on a miss, the page walker)
//! and is timed by the cache model: there is no host-side shortcut.
//!
//! Invalidation operations ([`MemSystem::invlpg`], [`MemSystem::invpcid`],
//! [`MemSystem::write_cr3`], [`MemSystem::invlpgb`], [`MemSystem::tlbsync`]) apply the
//! architectural rules and return their cost; completion contract: when one returns, the
//! named translations are gone from the named cores' TLBs and paging-structure caches.

use crate::cache::{CacheSystem, CoreCaches};
use crate::fabric::{Fabric, FabricParams};
use crate::params::{MemParams, MmuParams};
use crate::phys::PhysMem;
use crate::psc::Psc;
use crate::tlb::{Flush, Holds, TlbArray, TlbEntry, PERM_D, PERM_STALE, PERM_U, PERM_W, PERM_X};
use crate::walker::{walk, Walk, WalkTrace};
use emu_core::{Access, GuestMem, PageFault};
use rustc_hash::FxHashMap;
use serde::Serialize;

/// Translation counters of one core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MmuStats {
    /// Page walks started.
    pub walks: u64,
    /// Paging-structure entries read by walks, by level (index 0 = PT ... 3 = PML4).
    pub walk_reads: [u64; 4],
    /// Cycles of those reads, by level.
    pub walk_read_cycles: [u64; 4],
    /// Cycles spent in walks in all.
    pub walk_cycles: u64,
    /// Walks that ended in a page fault.
    pub walk_faults: u64,
    /// Accessed/dirty bits set by walks.
    pub ad_updates: u64,
    /// Accesses that hit a TLB entry without sufficient permission (the entry is dropped
    /// and a page fault raised, as the processor does: SDM vol. 3 §4.10.4.2).
    pub stale_permission_faults: u64,
}

/// Invalidation counters of one core, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InvalidationStats {
    /// INVLPG executed.
    pub invlpg: u64,
    /// INVPCID executed, by type 0..3.
    pub invpcid: [u64; 4],
    /// MOV to CR3 without NOFLUSH.
    pub cr3_flush: u64,
    /// MOV to CR3 with NOFLUSH.
    pub cr3_noflush: u64,
    /// INVLPGB issued by this core.
    pub invlpgb_issued: u64,
    /// INVLPGB broadcasts applied to this core.
    pub invlpgb_received: u64,
    /// TLBSYNC executed.
    pub tlbsync: u64,
    /// Cycles TLBSYNC waited for this core's broadcasts to complete everywhere.
    pub tlbsync_wait_cycles: u64,
    /// Cycles this core's translation pipeline spent on broadcasts while it ran.
    pub invlpgb_receive_cycles: u64,
    /// Deep idle states entered that lost the TLB contents.
    pub power_losses: u64,
    /// TLB entries removed by all of the above.
    pub tlb_entries: u64,
    /// Paging-structure-cache entries removed by all of the above.
    pub psc_entries: u64,
}

/// The most recent L1 TLB hit of one kind (data or fetch), as a 4 KiB translation.
/// A repeated hit on it is answered here: it is the most recently used entry of its set,
/// so skipping the array changes no replacement decision; only the counters are bumped.
/// Cleared by every invalidation, CR3 write and slow-path translation.
#[derive(Clone, Copy, Debug)]
struct LastHit {
    vpn: u64,
    pa: u64,
    perms: u8,
    huge: bool,
}

const NO_HIT: LastHit = LastHit { vpn: u64::MAX, pa: 0, perms: 0, huge: false };

/// Translation state, TLBs and paging-structure caches of one core.
#[derive(Clone, Debug)]
pub struct CoreMmu {
    /// Physical address of the PML4 (CR3 bits 51:12).
    pub root: u64,
    /// Current PCID (CR3 bits 11:0).
    pub pcid: u16,
    /// L1 instruction TLB.
    pub itlb: TlbArray,
    /// L1 data TLB, 4 KiB pages.
    pub dtlb: TlbArray,
    /// L1 data TLB, 2 MiB pages.
    pub dtlb2m: TlbArray,
    /// Second-level TLB.
    pub stlb: TlbArray,
    /// Paging-structure caches.
    pub psc: Psc,
    /// Walk counters.
    pub stats: MmuStats,
    /// Invalidation counters.
    pub inval: InvalidationStats,
    last_data: LastHit,
    last_fetch: LastHit,
    /// Translations removed by a tagged invalidation and not yet walked again: (PCID,
    /// page base) to the tag (see [`MemSystem::set_flush_tag`]).
    dropped: FxHashMap<(u16, u64), u32>,
}

/// Most dropped translations remembered per core for refill attribution; beyond it the
/// oldest knowledge is discarded (the count then undercounts, never overcounts).
const MAX_DROPPED: usize = 1 << 16;

impl CoreMmu {
    fn new(p: &MmuParams) -> Self {
        CoreMmu {
            root: 0,
            pcid: 0,
            itlb: TlbArray::new(p.itlb, Holds::Both, p.replacement),
            dtlb: TlbArray::new(p.dtlb_4k, Holds::Small, p.replacement),
            dtlb2m: TlbArray::new(p.dtlb_2m, Holds::Huge, p.replacement),
            stlb: TlbArray::new(p.stlb, Holds::Both, p.replacement),
            psc: Psc::new(p.psc_pml4e, p.psc_pdpte, p.psc_pde),
            stats: MmuStats::default(),
            inval: InvalidationStats::default(),
            last_data: NO_HIT,
            last_fetch: NO_HIT,
            dropped: FxHashMap::default(),
        }
    }

    /// Applies an invalidation to every TLB array and the paging-structure caches.
    fn apply(&mut self, f: &Flush, tag: Option<u32>) {
        self.last_data = NO_HIT;
        self.last_fetch = NO_HIT;
        let n = if let Some(tag) = tag {
            if self.dropped.len() >= MAX_DROPPED {
                self.dropped.clear();
            }
            let d = &mut self.dropped;
            let mut note = |e: &TlbEntry| {
                let shift = if e.huge { 21 } else { 12 };
                d.insert((e.pcid, e.vpn << shift), tag);
            };
            self.itlb.flush_with(f, &mut note)
                + self.dtlb.flush_with(f, &mut note)
                + self.dtlb2m.flush_with(f, &mut note)
                + self.stlb.flush_with(f, &mut note)
        } else {
            self.itlb.flush(f) + self.dtlb.flush(f) + self.dtlb2m.flush(f) + self.stlb.flush(f)
        };
        self.inval.tlb_entries += n;
        self.inval.psc_entries += self.psc.flush(f);
    }
}

/// A use of a translation the coherence oracle had marked stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StaleUse {
    /// The core.
    pub core: usize,
    /// The virtual address translated.
    pub va: u64,
    /// "tlb" for a TLB entry, "psc" for a paging-structure-cache entry.
    pub kind: &'static str,
}

/// Physical memory, caches and the per-core MMUs.
pub struct MemSystem {
    /// Guest physical memory.
    pub phys: PhysMem,
    /// Data caches.
    pub caches: CacheSystem,
    cores: Vec<CoreMmu>,
    cur: usize,
    stall_fp: u64,
    params: MemParams,
    stlb_fp: u64,
    walk_base_fp: u64,
    l1_fp: u64,
    ad_fp: u64,
    stale_uses: Vec<StaleUse>,
    flush_tag: Option<u32>,
    refills: Vec<(usize, u32)>,
    fabric: Fabric,
    /// Per core: when its outstanding INVLPGBs will have completed everywhere.
    invlpgb_done: Vec<u64>,
    /// Per core: broadcast lookups not yet charged to what it runs, (start, end), oldest
    /// first.
    tlb_busy: Vec<std::collections::VecDeque<(u64, u64)>>,
}

/// Most uncharged broadcast lookups remembered per core; older ones are merged.
const MAX_TLB_BUSY: usize = 256;

fn fp(c: f64) -> u64 {
    (c * 256.0).round().max(0.0) as u64
}

/// Fixed-point cycles to whole cycles.
pub fn cycles_of(fp: u64) -> u64 {
    fp >> 8
}

impl MemSystem {
    /// A memory system for `cores` cores with `limit_mib` MiB of physical memory.
    pub fn new(cores: usize, limit_mib: u64, params: MemParams) -> Self {
        let m = &params.mmu;
        let fabric = FabricParams {
            hop: fp(m.invlpgb_hop_cycles),
            per_ccx: fp(m.invlpgb_ccx_cycles),
            socket: fp(m.invlpgb_socket_cycles),
            receive: fp(m.invlpgb_receive_cycles),
        };
        let per_llc = params.cache.cores_per_llc as usize;
        let per_socket = params.cache.cores_per_socket as usize;
        MemSystem {
            phys: PhysMem::new(limit_mib),
            caches: CacheSystem::new(cores, &params.cache),
            cores: (0..cores).map(|_| CoreMmu::new(&params.mmu)).collect(),
            cur: 0,
            stall_fp: 0,
            stlb_fp: fp(params.mmu.stlb_hit_cycles),
            walk_base_fp: fp(params.mmu.walk_base_cycles),
            l1_fp: fp(params.cache.l1d.latency_cycles),
            ad_fp: fp(params.mmu.ad_update_cycles),
            params,
            stale_uses: Vec::new(),
            flush_tag: None,
            refills: Vec::new(),
            fabric: Fabric::new(cores, per_llc, per_socket, fabric),
            invlpgb_done: vec![0; cores],
            tlb_busy: vec![std::collections::VecDeque::new(); cores],
        }
    }

    /// Coherence oracle: on `core`, marks the TLB and paging-structure-cache entries of
    /// `pcid` over `[start, end)` whose page-table entries changed after they were filled
    /// and no later than generation `upto`. A later use of a marked entry is reported by
    /// [`MemSystem::take_stale_uses`]. Returns how many entries were marked.
    pub fn oracle_mark(&mut self, core: usize, pcid: u16, start: u64, end: u64, upto: u64) -> u64 {
        let phys = &self.phys;
        let c = &mut self.cores[core];
        let tlb = |e: &TlbEntry| phys.is_stale(e.pte_pa, e.gen, upto);
        let mut n = c.itlb.mark_stale(pcid, start, end, tlb)
            + c.dtlb.mark_stale(pcid, start, end, tlb)
            + c.dtlb2m.mark_stale(pcid, start, end, tlb)
            + c.stlb.mark_stale(pcid, start, end, tlb);
        n += c.psc.mark_stale(pcid, |e| phys.is_stale(e.entry_pa, e.gen, upto));
        if n > 0 {
            c.last_data = NO_HIT;
            c.last_fetch = NO_HIT;
        }
        n
    }

    /// Drains the uses of stale translations seen since the last call.
    pub fn take_stale_uses(&mut self) -> Vec<StaleUse> {
        std::mem::take(&mut self.stale_uses)
    }

    /// True when there are stale uses to report.
    pub fn has_stale_uses(&self) -> bool {
        !self.stale_uses.is_empty()
    }

    /// Guest physical memory size limit in bytes.
    pub fn phys_limit_bytes(&self) -> u64 {
        self.phys.limit_bytes()
    }

    /// The parameters.
    pub fn params(&self) -> &MemParams {
        &self.params
    }

    /// Makes `core` the one whose accesses [`GuestMem`] performs.
    #[inline]
    pub fn select(&mut self, core: usize) {
        self.cur = core;
    }

    /// The selected core.
    pub fn selected(&self) -> usize {
        self.cur
    }

    /// One core's MMU.
    pub fn core(&self, core: usize) -> &CoreMmu {
        &self.cores[core]
    }

    /// One core's private caches.
    pub fn core_caches(&self, core: usize) -> &CoreCaches {
        &self.caches.cores[core]
    }

    /// Number of cores.
    pub fn num_cores(&self) -> usize {
        self.cores.len()
    }

    /// MOV to CR3 with PCIDs enabled: loads `root` and `pcid`; without `noflush`, the
    /// new PCID's non-global translations and paging-structure-cache entries are
    /// removed (SDM vol. 3 §4.10.4.1). Returns the cost (1/256 cycles).
    pub fn write_cr3(&mut self, core: usize, root: u64, pcid: u16, noflush: bool) -> u64 {
        let c = &mut self.cores[core];
        c.root = root;
        c.pcid = pcid;
        c.last_data = NO_HIT;
        c.last_fetch = NO_HIT;
        if noflush {
            c.inval.cr3_noflush += 1;
        } else {
            c.inval.cr3_flush += 1;
            c.apply(&Flush::Pcid(pcid), self.flush_tag);
        }
        fp(self.params.mmu.cr3_write_cycles)
    }

    /// INVLPG on `core`: translations of `va` for the current PCID and global ones, and
    /// every paging-structure-cache entry of the current PCID. Returns the cost.
    pub fn invlpg(&mut self, core: usize, va: u64) -> u64 {
        let c = &mut self.cores[core];
        c.inval.invlpg += 1;
        let pcid = c.pcid;
        c.apply(&Flush::Page { pcid, va }, self.flush_tag);
        fp(self.params.mmu.invlpg_cycles)
    }

    /// INVPCID of `kind` 0 (address), 1 (single context), 2 (all, with globals) or 3
    /// (all, without globals) on `core`. Returns the cost.
    pub fn invpcid(&mut self, core: usize, kind: u8, pcid: u16, va: u64) -> u64 {
        let f = match kind {
            0 => Flush::PagePcid { pcid, va },
            1 => Flush::Pcid(pcid),
            2 => Flush::All,
            _ => Flush::AllNonGlobal,
        };
        let c = &mut self.cores[core];
        c.inval.invpcid[(kind & 3) as usize] += 1;
        c.apply(&f, self.flush_tag);
        fp(self.params.mmu.invpcid_cycles)
    }

    /// INVLPGB from `issuer` at its time `now` (fixed point): applies `f` (a
    /// `Flush::Range`, `Flush::Pcid` or `Flush::All*`) to every core's TLBs and
    /// paging-structure caches at once, and times the broadcast through the fabric
    /// ([`crate::fabric`]): the receivers' lookups are booked (see
    /// [`MemSystem::take_tlb_busy`]) and the completion is what [`MemSystem::tlbsync`]
    /// waits for. Returns the issuing cost.
    pub fn invlpgb(&mut self, issuer: usize, f: &Flush, now: u64) -> u64 {
        self.cores[issuer].inval.invlpgb_issued += 1;
        for c in &mut self.cores {
            c.inval.invlpgb_received += 1;
            c.apply(f, self.flush_tag);
        }
        let b = self.fabric.broadcast(issuer, now);
        self.invlpgb_done[issuer] = self.invlpgb_done[issuer].max(b.done);
        for (k, span) in b.busy.into_iter().enumerate() {
            let q = &mut self.tlb_busy[k];
            if q.len() >= MAX_TLB_BUSY {
                // Merge the two oldest: the total is kept, the timing coarsened.
                let (s0, e0) = q.pop_front().unwrap_or_default();
                if let Some(x) = q.front_mut() {
                    *x = (s0, x.1 + (e0 - s0));
                }
            }
            q.push_back(span);
        }
        fp(self.params.mmu.invlpgb_cycles)
    }

    /// The broadcast lookups core `k`'s translation pipeline has started by its time
    /// `now`, if it was running code: their cycles (fixed point), which the caller adds
    /// to what the core runs. `running` false (the core was idle) drops them unpaid.
    pub fn take_tlb_busy(&mut self, k: usize, now: u64, running: bool) -> u64 {
        let q = &mut self.tlb_busy[k];
        let mut cost = 0;
        while let Some(&(s, e)) = q.front() {
            if s > now {
                break;
            }
            q.pop_front();
            if running {
                cost += e - s;
            }
        }
        self.cores[k].inval.invlpgb_receive_cycles += cost >> 8;
        cost
    }

    /// The core enters a power state that loses its TLBs and paging-structure caches.
    pub fn lose_translations(&mut self, core: usize) {
        let c = &mut self.cores[core];
        c.inval.power_losses += 1;
        c.apply(&Flush::All, None);
        // What it walks for next is refilled because of the power state, not because of
        // an earlier shootdown.
        c.dropped.clear();
    }

    /// A hypervisor's flush of everything the core's TLBs and paging-structure caches
    /// hold (KVM's kvm_vcpu_flush_tlb_guest on entering a vCPU), outside the guest's
    /// instruction stream and its counters.
    pub fn host_flush(&mut self, core: usize) {
        self.cores[core].apply(&Flush::All, None);
    }

    /// TLBSYNC on `issuer` at its time `now`: returns the cost of the instruction and
    /// of waiting until its broadcasts have completed on every core.
    pub fn tlbsync(&mut self, issuer: usize, now: u64) -> u64 {
        let wait = self.invlpgb_done[issuer].saturating_sub(now);
        let c = &mut self.cores[issuer].inval;
        c.tlbsync += 1;
        c.tlbsync_wait_cycles += wait >> 8;
        wait + fp(self.params.mmu.tlbsync_cycles)
    }

    /// Tags the invalidations that follow (until set to `None`) so that later walks
    /// refilling a translation they removed are attributed to the tag (a shootdown).
    pub fn set_flush_tag(&mut self, tag: Option<u32>) {
        self.flush_tag = tag;
    }

    /// Drains the (core, tag) pairs of walks that refilled a translation removed by a
    /// tagged invalidation.
    pub fn take_refills(&mut self) -> Vec<(usize, u32)> {
        std::mem::take(&mut self.refills)
    }

    /// True when refills are waiting to be drained.
    pub fn has_refills(&self) -> bool {
        !self.refills.is_empty()
    }

    /// Drains the stall cycles charged on behalf of the selected core.
    pub fn take_stall_fp(&mut self) -> u64 {
        std::mem::take(&mut self.stall_fp)
    }

    #[inline(always)]
    fn ok_perms(perms: u8, access: Access) -> bool {
        perms & PERM_U != 0
            && match access {
                Access::Read => true,
                Access::Write => perms & (PERM_W | PERM_D) == (PERM_W | PERM_D),
                Access::Exec => perms & PERM_X != 0,
            }
    }

    #[inline(always)]
    fn ok_for(e: &TlbEntry, access: Access) -> bool {
        Self::ok_perms(e.perms, access)
    }

    /// The 4 KiB physical page of `va` under entry `e`.
    #[inline(always)]
    fn page_of(e: &TlbEntry, va: u64) -> u64 {
        if e.huge {
            e.pa | (va & 0x1f_f000)
        } else {
            e.pa
        }
    }

    /// Translates through the selected core's data TLBs.
    #[inline(always)]
    fn xlate(&mut self, va: u64, access: Access) -> Result<u64, PageFault> {
        let c = &mut self.cores[self.cur];
        let last = c.last_data;
        if last.vpn == va >> 12 && Self::ok_perms(last.perms, access) {
            c.dtlb.stats.lookups += 1;
            if last.huge {
                c.dtlb2m.stats.lookups += 1;
                c.dtlb2m.stats.hits += 1;
            } else {
                c.dtlb.stats.hits += 1;
            }
            return Ok(last.pa | (va & 0xfff));
        }
        let l1 = c.dtlb.lookup(va, c.pcid);
        if let Some(e) = l1 {
            if Self::ok_for(&e, access) {
                c.last_data = LastHit { vpn: va >> 12, pa: e.pa, perms: e.perms, huge: false };
                return Ok(e.pa | (va & 0xfff));
            }
        }
        self.xlate_slow(va, access, l1)
    }

    #[inline(never)]
    fn xlate_slow(
        &mut self,
        va: u64,
        access: Access,
        l1: Option<TlbEntry>,
    ) -> Result<u64, PageFault> {
        let cur = self.cur;
        let c = &mut self.cores[cur];
        let pcid = c.pcid;
        c.last_data = NO_HIT;
        c.last_fetch = NO_HIT;
        // `l1` is what the fast path found in the L1 array it probed (ITLB for fetches,
        // the 4K DTLB for data); data accesses also probe the 2M DTLB.
        let l1_hit = match (l1, access) {
            (Some(e), _) => Some(e),
            (None, Access::Exec) => None,
            (None, _) => c.dtlb2m.lookup(va, pcid),
        };
        let hit = match l1_hit {
            Some(e) => Some(e),
            None => {
                let s = c.stlb.lookup(va, pcid);
                if let Some(e) = s {
                    self.stall_fp += self.stlb_fp;
                    if Self::ok_for(&e, access) {
                        self.fill_l1(e, access);
                    }
                }
                s
            }
        };
        let hit = hit.map(|mut e| {
            if e.perms & PERM_STALE != 0 {
                // The hardware would use this translation: it does, and the oracle notes it.
                self.stale_uses.push(StaleUse { core: cur, va, kind: "tlb" });
                let c = &mut self.cores[cur];
                for a in [&mut c.itlb, &mut c.dtlb, &mut c.dtlb2m, &mut c.stlb] {
                    a.unmark_stale(va, pcid);
                }
                e.perms = (e.perms | PERM_U) & !PERM_STALE;
            }
            e
        });
        if let Some(e) = hit {
            if Self::ok_for(&e, access) {
                self.note_last(&e, va, access);
                return Ok(e.pa | (va & ((1u64 << if e.huge { 21 } else { 12 }) - 1)));
            }
            let needs_dirty = access == Access::Write && e.perms & PERM_W != 0;
            if !needs_dirty {
                // A cached translation forbids the access: fault, dropping the entry.
                let c = &mut self.cores[cur];
                c.apply(&Flush::PagePcid { pcid, va }, None);
                c.apply(&Flush::Page { pcid, va }, None);
                c.stats.stale_permission_faults += 1;
                return Err(PageFault { addr: va, access, protection: true });
            }
        }
        let w = self.walk(va, access)?;
        let e = TlbEntry {
            vpn: va >> if w.huge { 21 } else { 12 },
            pcid,
            valid: true,
            global: w.global,
            huge: w.huge,
            perms: w.perms,
            pa: w.page_pa,
            stamp: 0,
            gen: self.phys.oracle_gen(),
            pte_pa: w.pte_pa,
        };
        self.cores[cur].stlb.insert(e);
        self.fill_l1(e, access);
        self.note_last(&e, va, access);
        Ok(w.page_pa | (va & ((1u64 << if w.huge { 21 } else { 12 }) - 1)))
    }

    /// Remembers the L1 entry that just answered (it is now its set's most recent).
    fn note_last(&mut self, e: &TlbEntry, va: u64, access: Access) {
        let c = &mut self.cores[self.cur];
        let hit = LastHit { vpn: va >> 12, pa: Self::page_of(e, va), perms: e.perms, huge: e.huge };
        if access == Access::Exec {
            c.last_fetch = hit;
        } else {
            c.last_data = hit;
        }
    }

    fn fill_l1(&mut self, e: TlbEntry, access: Access) {
        let c = &mut self.cores[self.cur];
        match (access, e.huge) {
            (Access::Exec, _) => {
                c.itlb.insert(e);
            }
            (_, false) => {
                c.dtlb.insert(e);
            }
            (_, true) => {
                c.dtlb2m.insert(e);
            }
        }
    }

    /// A page walk on the selected core, started from its paging-structure caches; each
    /// entry read or updated is charged through the cache model.
    fn walk(&mut self, va: u64, access: Access) -> Result<Walk, PageFault> {
        let cur = self.cur;
        let (root, pcid) = (self.cores[cur].root, self.cores[cur].pcid);
        let start = self.cores[cur].psc.lookup(va, pcid);
        if start.is_some_and(|s| s.stale) {
            self.stale_uses.push(StaleUse { core: cur, va, kind: "psc" });
            self.cores[cur].psc.unmark_stale(va, pcid);
        }
        let mut t = WalkTrace::default();
        let r = walk(&mut self.phys, root, va, access, start, &mut t);
        let mut cost = self.walk_base_fp;
        for &(level, pa) in &t.reads[..t.nreads] {
            let c = self.l1_fp + self.caches.access(cur, pa, false);
            let s = &mut self.cores[cur].stats;
            s.walk_reads[(level - 1) as usize] += 1;
            s.walk_read_cycles[(level - 1) as usize] += c >> 8;
            cost += c;
        }
        for &pa in &t.ad[..t.nad] {
            cost += self.ad_fp + self.caches.access(cur, pa, true);
        }
        let gen = self.phys.oracle_gen();
        let c = &mut self.cores[cur];
        for &(level, entry_pa, table, perms) in &t.tables[..t.ntables] {
            c.psc.fill(level, va, pcid, table, perms, entry_pa, gen);
        }
        c.stats.walks += 1;
        if !c.dropped.is_empty() && r.is_ok() {
            let tag = c
                .dropped
                .remove(&(pcid, va & !0xfff))
                .or_else(|| c.dropped.remove(&(pcid, va & !0x1f_ffff)));
            if let Some(tag) = tag {
                self.refills.push((cur, tag));
            }
        }
        c.stats.ad_updates += t.nad as u64;
        if r.is_err() {
            c.stats.walk_faults += 1;
        }
        c.stats.walk_cycles += cost >> 8;
        self.stall_fp += cost;
        r
    }

    /// Translates for an instruction fetch through the selected core's ITLB.
    #[inline(always)]
    fn xlate_exec(&mut self, va: u64) -> Result<u64, PageFault> {
        let c = &mut self.cores[self.cur];
        let last = c.last_fetch;
        if last.vpn == va >> 12 {
            c.itlb.stats.lookups += 1;
            c.itlb.stats.hits += 1;
            return Ok(last.pa | (va & 0xfff));
        }
        let l1 = c.itlb.lookup(va, c.pcid);
        if let Some(e) = l1 {
            if Self::ok_for(&e, Access::Exec) {
                c.last_fetch = LastHit {
                    vpn: va >> 12,
                    pa: Self::page_of(&e, va),
                    perms: e.perms,
                    huge: e.huge,
                };
                return Ok(e.pa | (va & ((1u64 << if e.huge { 21 } else { 12 }) - 1)));
            }
        }
        self.xlate_slow(va, Access::Exec, l1)
    }

    /// Charges the data-cache access(es) of an N-byte access at `pa`.
    #[inline(always)]
    fn touch(&mut self, pa: u64, n: usize, write: bool) {
        self.stall_fp += self.caches.access(self.cur, pa, write);
        if (pa & 63) as usize + n > 64 {
            self.stall_fp += self.caches.access(self.cur, pa + n as u64 - 1, write);
        }
    }

    #[inline(always)]
    fn read_n<const N: usize>(&mut self, va: u64) -> Result<[u8; N], PageFault> {
        let mut b = [0u8; N];
        if (va & 0xfff) as usize <= 4096 - N {
            let pa = self.xlate(va, Access::Read)?;
            self.touch(pa, N, false);
            b.copy_from_slice(self.phys.slice(pa, N));
        } else {
            let split = 4096 - (va & 0xfff) as usize;
            let pa0 = self.xlate(va, Access::Read)?;
            let pa1 = self.xlate(va.wrapping_add(split as u64), Access::Read)?;
            self.touch(pa0, split, false);
            self.touch(pa1, N - split, false);
            b[..split].copy_from_slice(self.phys.slice(pa0, split));
            b[split..].copy_from_slice(self.phys.slice(pa1, N - split));
        }
        Ok(b)
    }

    #[inline(always)]
    fn write_n<const N: usize>(&mut self, va: u64, b: [u8; N]) -> Result<(), PageFault> {
        if (va & 0xfff) as usize <= 4096 - N {
            let pa = self.xlate(va, Access::Write)?;
            self.touch(pa, N, true);
            self.phys.slice_mut(pa, N).copy_from_slice(&b);
        } else {
            let split = 4096 - (va & 0xfff) as usize;
            let pa0 = self.xlate(va, Access::Write)?;
            let pa1 = self.xlate(va.wrapping_add(split as u64), Access::Write)?;
            self.touch(pa0, split, true);
            self.touch(pa1, N - split, true);
            self.phys.slice_mut(pa0, split).copy_from_slice(&b[..split]);
            self.phys.slice_mut(pa1, N - split).copy_from_slice(&b[split..]);
        }
        Ok(())
    }

    /// Copies guest virtual memory of the selected core into `buf` (a kernel copy from
    /// user space), through its TLBs.
    pub fn read_virt(&mut self, va: u64, buf: &mut [u8]) -> Result<(), PageFault> {
        let mut done = 0;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let n = (4096 - (a & 0xfff) as usize).min(buf.len() - done);
            let pa = self.xlate(a, Access::Read)?;
            buf[done..done + n].copy_from_slice(self.phys.slice(pa, n));
            done += n;
        }
        Ok(())
    }

    /// Copies `buf` into guest virtual memory of the selected core (a kernel copy to user
    /// space). Pages are translated before anything is written.
    pub fn write_virt(&mut self, va: u64, buf: &[u8]) -> Result<(), PageFault> {
        let mut a = va & !0xfff;
        let end = va.wrapping_add(buf.len() as u64);
        while a < end {
            self.xlate(a.max(va), Access::Write)?;
            a += 4096;
        }
        let mut done = 0;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let n = (4096 - (a & 0xfff) as usize).min(buf.len() - done);
            let pa = self.xlate(a, Access::Write)?;
            self.phys.slice_mut(pa, n).copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }
}

impl GuestMem for MemSystem {
    #[inline(always)]
    fn read_u8(&mut self, va: u64) -> Result<u8, PageFault> {
        self.read_n::<1>(va).map(|b| b[0])
    }
    #[inline(always)]
    fn read_u16(&mut self, va: u64) -> Result<u16, PageFault> {
        self.read_n::<2>(va).map(u16::from_le_bytes)
    }
    #[inline(always)]
    fn read_u32(&mut self, va: u64) -> Result<u32, PageFault> {
        self.read_n::<4>(va).map(u32::from_le_bytes)
    }
    #[inline(always)]
    fn read_u64(&mut self, va: u64) -> Result<u64, PageFault> {
        self.read_n::<8>(va).map(u64::from_le_bytes)
    }
    #[inline(always)]
    fn read_u128(&mut self, va: u64) -> Result<u128, PageFault> {
        self.read_n::<16>(va).map(u128::from_le_bytes)
    }
    #[inline(always)]
    fn write_u8(&mut self, va: u64, v: u8) -> Result<(), PageFault> {
        self.write_n::<1>(va, [v])
    }
    #[inline(always)]
    fn write_u16(&mut self, va: u64, v: u16) -> Result<(), PageFault> {
        self.write_n::<2>(va, v.to_le_bytes())
    }
    #[inline(always)]
    fn write_u32(&mut self, va: u64, v: u32) -> Result<(), PageFault> {
        self.write_n::<4>(va, v.to_le_bytes())
    }
    #[inline(always)]
    fn write_u64(&mut self, va: u64, v: u64) -> Result<(), PageFault> {
        self.write_n::<8>(va, v.to_le_bytes())
    }
    #[inline(always)]
    fn write_u128(&mut self, va: u64, v: u128) -> Result<(), PageFault> {
        self.write_n::<16>(va, v.to_le_bytes())
    }
    fn probe_write(&mut self, va: u64) -> Result<(), PageFault> {
        self.xlate(va, Access::Write).map(|_| ())
    }
    #[inline(always)]
    fn fetch_translate(&mut self, va: u64) -> Result<u64, PageFault> {
        self.xlate_exec(va)
    }
    fn read_code_phys(&mut self, pa: u64, buf: &mut [u8]) -> usize {
        let n = buf.len().min((4096 - (pa & 0xfff)) as usize);
        buf[..n].copy_from_slice(self.phys.slice(pa, n));
        n
    }
    fn mark_code_page(&mut self, pa: u64) {
        self.phys.mark_code(pa);
    }
    #[inline(always)]
    fn code_invalidations_pending(&self) -> bool {
        self.phys.has_invalidated()
    }
    fn take_code_invalidations(&mut self, out: &mut Vec<u64>) {
        self.phys.take_invalidated(out);
    }
    #[inline(always)]
    fn take_stall(&mut self) -> u64 {
        std::mem::take(&mut self.stall_fp)
    }
    #[inline(always)]
    fn pending_stall(&self) -> u64 {
        self.stall_fp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheGeometry, CacheParams};
    use crate::pte::{PageTables, P, RW, US};
    use crate::tlb::{Replacement, TlbGeometry};

    pub(crate) fn params() -> MemParams {
        let g = |entries, ways| TlbGeometry { entries, ways };
        MemParams {
            mmu: MmuParams {
                itlb: g(128, 8),
                dtlb_4k: g(64, 4),
                dtlb_2m: g(32, 4),
                stlb: g(1536, 12),
                replacement: Replacement::Lru,
                psc_pml4e: g(2, 2),
                psc_pdpte: g(4, 4),
                psc_pde: g(32, 4),
                stlb_hit_cycles: 9.0,
                walk_base_cycles: 10.0,
                ad_update_cycles: 500.0,
                invlpg_cycles: 200.0,
                invpcid_cycles: 350.0,
                cr3_write_cycles: 96.0,
                invlpgb_cycles: 100.0,
                tlbsync_cycles: 50.0,
                invlpgb_hop_cycles: 100.0,
                invlpgb_ccx_cycles: 20.0,
                invlpgb_socket_cycles: 200.0,
                invlpgb_receive_cycles: 80.0,
            },
            cache: CacheParams {
                l1d: CacheGeometry { size_kib: 32, ways: 8, latency_cycles: 4.0 },
                l2: CacheGeometry { size_kib: 1024, ways: 16, latency_cycles: 14.0 },
                llc: CacheGeometry { size_kib: 22528, ways: 11, latency_cycles: 50.0 },
                cores_per_llc: 16,
                cores_per_socket: 16,
                memory_latency_cycles: 190.0,
                transfer_same_llc_cycles: 100.0,
                transfer_same_socket_cycles: 100.0,
                transfer_cross_socket_cycles: 280.0,
            },
        }
    }

    fn setup(cores: usize) -> (MemSystem, u64) {
        let mut m = MemSystem::new(cores, 64, params());
        let root = m.phys.alloc().unwrap();
        let mut created = Vec::new();
        for k in 0..2u64 {
            let page = m.phys.alloc().unwrap();
            let e = PageTables::entry(&mut m.phys, root, 0x1000 * (k + 1), 1, true, &mut created)
                .unwrap()
                .unwrap();
            m.phys.write_u64(e, page.addr() | P | RW | US);
        }
        for c in 0..cores {
            m.write_cr3(c, root.addr(), 1, false);
        }
        (m, root.addr())
    }

    #[test]
    fn accesses_translate_and_cross_pages() {
        let (mut m, _) = setup(1);
        m.write_u64(0x1ffc, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.read_u64(0x1ffc).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(m.read_u32(0x2000).unwrap(), 0x1122_3344);
        let f = m.read_u8(0x5000).unwrap_err();
        assert!(!f.protection);
        assert!(m.core(0).stats.walks >= 2);
        assert!(m.core(0).dtlb.stats.hits > 0);
    }

    #[test]
    fn second_walk_in_the_same_region_starts_from_the_pde_cache() {
        let (mut m, _) = setup(1);
        m.read_u8(0x1000).unwrap();
        let reads: u64 = m.core(0).stats.walk_reads.iter().sum();
        assert_eq!(reads, 4);
        m.read_u8(0x2000).unwrap();
        let reads2: u64 = m.core(0).stats.walk_reads.iter().sum();
        assert_eq!(reads2 - reads, 1, "PDE-cache hit: only the PTE is read");
        assert_eq!(m.core(0).psc.pde.stats.hits, 1);
    }

    #[test]
    fn cr3_write_without_noflush_drops_only_that_pcids_non_global_entries() {
        let (mut m, root) = setup(1);
        m.read_u8(0x1000).unwrap();
        m.write_cr3(0, root, 2, false);
        m.read_u8(0x1000).unwrap(); // fills under PCID 2
        m.write_cr3(0, root, 1, true);
        let walks = m.core(0).stats.walks;
        m.read_u8(0x1000).unwrap();
        assert_eq!(m.core(0).stats.walks, walks, "PCID 1 entry survived the switch");
        m.write_cr3(0, root, 1, false);
        m.read_u8(0x1000).unwrap();
        assert_eq!(m.core(0).stats.walks, walks + 1, "non-NOFLUSH CR3 write dropped PCID 1");
        assert_eq!(m.core(0).inval.cr3_flush, 3);
        assert_eq!(m.core(0).inval.cr3_noflush, 1);
    }

    #[test]
    fn invlpg_removes_the_address_and_all_psc_entries_of_the_pcid() {
        let (mut m, _) = setup(1);
        m.read_u8(0x1000).unwrap();
        m.read_u8(0x2000).unwrap();
        assert!(m.core(0).psc.pde.valid_entries().count() > 0);
        m.invlpg(0, 0x1000);
        assert_eq!(m.core(0).psc.pde.valid_entries().count(), 0);
        let walks = m.core(0).stats.walks;
        m.read_u8(0x2000).unwrap();
        assert_eq!(m.core(0).stats.walks, walks, "other address still cached");
        m.read_u8(0x1000).unwrap();
        assert_eq!(m.core(0).stats.walks, walks + 1);
    }

    #[test]
    fn invlpgb_reaches_every_core_and_invpcid_types_apply_locally() {
        let (mut m, _) = setup(4);
        for c in 0..4 {
            m.select(c);
            m.read_u8(0x1000).unwrap();
        }
        let r = Flush::Range {
            pcid: 1,
            va: 0x1000,
            pages: 1,
            stride_2m: false,
            globals: false,
            final_only: false,
        };
        let issue = m.invlpgb(0, &r, 1000 << 8);
        assert_eq!(issue, 100 << 8);
        for c in 0..4 {
            assert!(m.core(c).dtlb.valid_entries().all(|e| e.vpn != 1), "core {c}");
            assert_eq!(m.core(c).inval.invlpgb_received, 1);
        }
        m.select(2);
        m.read_u8(0x2000).unwrap();
        m.invpcid(2, 1, 1, 0);
        assert_eq!(m.core(2).dtlb.valid_entries().count(), 0);
        assert_eq!(m.core(2).inval.invpcid, [0, 1, 0, 0]);
        // One CCX: hop, probe, hop, lookup, and two hops back after 1000.
        let done = 1000 + 100 + 20 + 100 + 80 + 200;
        assert_eq!(m.tlbsync(0, 1100 << 8), (done - 1100 + 50) << 8);
        assert_eq!(m.core(0).inval.tlbsync_wait_cycles, done - 1100);
        // Nothing outstanding: the instruction alone.
        assert_eq!(m.tlbsync(0, done << 8), 50 << 8);
    }

    #[test]
    fn broadcast_lookups_are_charged_to_receivers_that_run_when_they_start() {
        let (mut m, _) = setup(4);
        m.invlpgb(0, &Flush::Pcid(1), 0);
        m.invlpgb(1, &Flush::Pcid(1), 0);
        // The lookups start at hop + probe + hop = 220 cycles, the second queued behind
        // the first on every core.
        assert_eq!(m.take_tlb_busy(2, 219 << 8, true), 0);
        assert_eq!(m.take_tlb_busy(2, 220 << 8, true), 80 << 8);
        assert_eq!(m.take_tlb_busy(2, 10_000 << 8, true), 80 << 8);
        assert_eq!(m.core(2).inval.invlpgb_receive_cycles, 160);
        // An idle core absorbs them.
        assert_eq!(m.take_tlb_busy(3, 10_000 << 8, false), 0);
        assert_eq!(m.take_tlb_busy(3, 20_000 << 8, true), 0);
        assert_eq!(m.core(3).inval.invlpgb_receive_cycles, 0);
    }

    #[test]
    fn data_accesses_and_walks_go_through_the_caches() {
        let (mut m, _) = setup(2);
        m.write_u64(0x1000, 1).unwrap();
        let c0 = m.core_caches(0).l1d.stats;
        assert!(c0.accesses >= 5, "4 walk reads and the data access");
        m.select(1);
        m.write_u64(0x1000, 2).unwrap();
        // The data line, and the page-table lines whose A/D bits core 0 set, move over.
        assert!(m.core_caches(1).coherence.transfers_in >= 2, "{:?}", m.core_caches(1).coherence);
        // Core 1's write took the data line (and the PTE line whose D bit it set).
        assert!(m.core_caches(0).coherence.invalidations_received >= 1);
    }
}

#[cfg(test)]
mod oracle_tests {
    use super::tests_support::*;
    use super::*;
    use crate::pte::{PageTables, P, RW, US};

    #[test]
    fn a_use_of_an_entry_that_survived_its_flush_is_reported() {
        let (mut m, _root) = setup_pub(2);
        m.phys.enable_oracle();
        // Both cores cache 0x1000.
        for c in 0..2 {
            m.select(c);
            m.read_u8(0x1000).unwrap();
        }
        // The kernel clears the PTE.
        let leaf =
            PageTables::leaf(&m.phys, crate::phys::Pfn(m.core(0).root >> 12), 0x1000).unwrap();
        m.phys.write_u64(leaf.pte_pa, 0);
        m.phys.pte_changed(leaf.pte_pa);
        let upto = m.phys.oracle_gen();
        // Core 0 flushes; core 1 is (wrongly) skipped.
        m.invlpg(0, 0x1000);
        assert_eq!(m.oracle_mark(0, 1, 0x1000, 0x2000, upto), 0, "flushed core: nothing stale");
        assert_eq!(m.oracle_mark(1, 1, 0x1000, 0x2000, upto), 2, "the DTLB and STLB entries");
        m.select(1);
        assert!(m.read_u8(0x1000).is_ok(), "the stale translation is used, as hardware would");
        let uses = m.take_stale_uses();
        assert_eq!(uses, vec![StaleUse { core: 1, va: 0x1000, kind: "tlb" }]);
        m.read_u8(0x1000).unwrap();
        assert!(m.take_stale_uses().is_empty(), "reported once");
        let _ = (P, RW, US);
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::pte::{PageTables, P, RW, US};

    /// A memory system with two mapped pages at 0x1000 and 0x2000, PCID 1 on every core.
    pub(crate) fn setup_pub(cores: usize) -> (MemSystem, u64) {
        let mut m = MemSystem::new(cores, 64, super::tests::params());
        let root = m.phys.alloc().unwrap();
        let mut created = Vec::new();
        for k in 0..2u64 {
            let page = m.phys.alloc().unwrap();
            let e = PageTables::entry(&mut m.phys, root, 0x1000 * (k + 1), 1, true, &mut created)
                .unwrap()
                .unwrap();
            m.phys.write_u64(e, page.addr() | P | RW | US);
        }
        for c in 0..cores {
            m.write_cr3(c, root.addr(), 1, false);
        }
        (m, root.addr())
    }
}
