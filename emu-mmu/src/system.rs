//! The memory system of a machine: physical memory plus, per core, the translation state
//! (CR3 root, PCID) and TLB hierarchy. It implements [`GuestMem`] for the core currently
//! selected with [`MemSystem::select`], so every guest access translates through that
//! core's TLBs and, on a miss, the page walker: there is no host-side shortcut.

use crate::params::MmuParams;
use crate::phys::PhysMem;
use crate::tlb::{Flush, Holds, TlbArray, TlbEntry, PERM_D, PERM_U, PERM_W, PERM_X};
use crate::walker::{walk, Walk};
use emu_core::{Access, GuestMem, PageFault};
use serde::Serialize;

/// Translation counters of one core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MmuStats {
    /// Page walks started.
    pub walks: u64,
    /// Paging-structure entries read by walks.
    pub walk_reads: u64,
    /// Cycles spent in walks.
    pub walk_cycles: u64,
    /// Walks that ended in a page fault.
    pub walk_faults: u64,
    /// Accessed/dirty bits set by walks.
    pub ad_updates: u64,
    /// Accesses that hit a TLB entry without sufficient permission (the entry is dropped
    /// and a page fault raised, as the processor does: SDM vol. 3 §4.10.4.2).
    pub stale_permission_faults: u64,
    /// Invalidation requests applied to this core.
    pub flushes: u64,
    /// TLB entries those requests removed.
    pub flushed_entries: u64,
}

/// Translation state and TLBs of one core.
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
    /// Counters.
    pub stats: MmuStats,
}

impl CoreMmu {
    fn new(p: &MmuParams) -> Self {
        CoreMmu {
            root: 0,
            pcid: 0,
            itlb: TlbArray::new(p.itlb, Holds::Both, p.replacement),
            dtlb: TlbArray::new(p.dtlb_4k, Holds::Small, p.replacement),
            dtlb2m: TlbArray::new(p.dtlb_2m, Holds::Huge, p.replacement),
            stlb: TlbArray::new(p.stlb, Holds::Both, p.replacement),
            stats: MmuStats::default(),
        }
    }

    /// Applies an invalidation to every TLB array of this core.
    pub fn flush(&mut self, f: &Flush) -> u64 {
        let n = self.itlb.flush(f) + self.dtlb.flush(f) + self.dtlb2m.flush(f) + self.stlb.flush(f);
        self.stats.flushes += 1;
        self.stats.flushed_entries += n;
        n
    }
}

/// Physical memory and the per-core MMUs.
pub struct MemSystem {
    /// Guest physical memory.
    pub phys: PhysMem,
    cores: Vec<CoreMmu>,
    cur: usize,
    stall_fp: u64,
    params: MmuParams,
    stlb_fp: u64,
    walk_base_fp: u64,
    walk_read_fp: u64,
    ad_fp: u64,
}

fn fp(c: f64) -> u64 {
    (c * 256.0).round().max(0.0) as u64
}

impl MemSystem {
    /// A memory system for `cores` cores with `limit_mib` MiB of physical memory.
    pub fn new(cores: usize, limit_mib: u64, params: MmuParams) -> Self {
        MemSystem {
            phys: PhysMem::new(limit_mib),
            cores: (0..cores).map(|_| CoreMmu::new(&params)).collect(),
            cur: 0,
            stall_fp: 0,
            stlb_fp: fp(params.stlb_hit_cycles),
            walk_base_fp: fp(params.walk_base_cycles),
            walk_read_fp: fp(params.walk_read_cycles),
            ad_fp: fp(params.ad_update_cycles),
            params,
        }
    }

    /// Guest physical memory size limit in bytes.
    pub fn phys_limit_bytes(&self) -> u64 {
        self.phys.limit_bytes()
    }

    /// The parameters.
    pub fn params(&self) -> &MmuParams {
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

    /// One core's MMU, mutable.
    pub fn core_mut(&mut self, core: usize) -> &mut CoreMmu {
        &mut self.cores[core]
    }

    /// Number of cores.
    pub fn num_cores(&self) -> usize {
        self.cores.len()
    }

    /// MOV to CR3 with PCIDs enabled: loads `root` and `pcid`; without `noflush`, the
    /// new PCID's non-global translations are removed (SDM vol. 3 §4.10.4.1).
    pub fn write_cr3(&mut self, core: usize, root: u64, pcid: u16, noflush: bool) {
        let c = &mut self.cores[core];
        c.root = root;
        c.pcid = pcid;
        if !noflush {
            c.flush(&Flush::Pcid(pcid));
        }
    }

    /// Applies an invalidation on one core.
    pub fn flush(&mut self, core: usize, f: &Flush) -> u64 {
        self.cores[core].flush(f)
    }

    /// Drains the stall cycles charged on behalf of the selected core.
    pub fn take_stall_fp(&mut self) -> u64 {
        std::mem::take(&mut self.stall_fp)
    }

    #[inline(always)]
    fn ok_for(e: &TlbEntry, access: Access) -> bool {
        e.perms & PERM_U != 0
            && match access {
                Access::Read => true,
                Access::Write => e.perms & (PERM_W | PERM_D) == (PERM_W | PERM_D),
                Access::Exec => e.perms & PERM_X != 0,
            }
    }

    /// Translates through the selected core's data TLBs.
    #[inline(always)]
    fn xlate(&mut self, va: u64, access: Access) -> Result<u64, PageFault> {
        let c = &mut self.cores[self.cur];
        let l1 = c.dtlb.lookup(va, c.pcid);
        if let Some(e) = l1 {
            if Self::ok_for(&e, access) {
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
        if let Some(e) = hit {
            if Self::ok_for(&e, access) {
                return Ok(e.pa | (va & ((1u64 << if e.huge { 21 } else { 12 }) - 1)));
            }
            let needs_dirty = access == Access::Write && e.perms & PERM_W != 0;
            if !needs_dirty {
                // A cached translation forbids the access: fault, dropping the entry.
                let c = &mut self.cores[cur];
                c.flush(&Flush::PagePcid { pcid, va });
                c.flush(&Flush::Page { pcid, va });
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
            gen: 0,
            pte_pa: w.pte_pa,
        };
        self.cores[cur].stlb.insert(e);
        self.fill_l1(e, access);
        Ok(w.page_pa | (va & ((1u64 << if w.huge { 21 } else { 12 }) - 1)))
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

    fn walk(&mut self, va: u64, access: Access) -> Result<Walk, PageFault> {
        let root = self.cores[self.cur].root;
        let r = walk(&mut self.phys, root, va, access, 4, 0);
        let c = &mut self.cores[self.cur];
        c.stats.walks += 1;
        let cost = match &r {
            Ok(w) => {
                c.stats.walk_reads += u64::from(w.reads);
                c.stats.ad_updates += u64::from(w.ad_updates);
                self.walk_base_fp
                    + self.walk_read_fp * u64::from(w.reads)
                    + self.ad_fp * u64::from(w.ad_updates)
            }
            Err(_) => {
                c.stats.walk_faults += 1;
                self.walk_base_fp + self.walk_read_fp * 4
            }
        };
        c.stats.walk_cycles += cost >> 8;
        self.stall_fp += cost;
        r
    }

    /// Translates for an instruction fetch through the selected core's ITLB.
    fn xlate_exec(&mut self, va: u64) -> Result<u64, PageFault> {
        let c = &mut self.cores[self.cur];
        let l1 = c.itlb.lookup(va, c.pcid);
        if let Some(e) = l1 {
            if Self::ok_for(&e, Access::Exec) {
                return Ok(e.pa | (va & ((1u64 << if e.huge { 21 } else { 12 }) - 1)));
            }
        }
        self.xlate_slow(va, Access::Exec, l1)
    }

    #[inline(always)]
    fn read_n<const N: usize>(&mut self, va: u64) -> Result<[u8; N], PageFault> {
        let mut b = [0u8; N];
        if (va & 0xfff) as usize <= 4096 - N {
            let pa = self.xlate(va, Access::Read)?;
            b.copy_from_slice(self.phys.slice(pa, N));
        } else {
            let split = 4096 - (va & 0xfff) as usize;
            let pa0 = self.xlate(va, Access::Read)?;
            let pa1 = self.xlate(va.wrapping_add(split as u64), Access::Read)?;
            b[..split].copy_from_slice(self.phys.slice(pa0, split));
            b[split..].copy_from_slice(self.phys.slice(pa1, N - split));
        }
        Ok(b)
    }

    #[inline(always)]
    fn write_n<const N: usize>(&mut self, va: u64, b: [u8; N]) -> Result<(), PageFault> {
        if (va & 0xfff) as usize <= 4096 - N {
            let pa = self.xlate(va, Access::Write)?;
            self.phys.slice_mut(pa, N).copy_from_slice(&b);
        } else {
            let split = 4096 - (va & 0xfff) as usize;
            let pa0 = self.xlate(va, Access::Write)?;
            let pa1 = self.xlate(va.wrapping_add(split as u64), Access::Write)?;
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
        let pa = self.xlate(va, Access::Read)?;
        Ok(self.phys.slice(pa, 1)[0])
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pte::{PageTables, P, RW, US};

    fn setup() -> (MemSystem, u64) {
        let mut m = MemSystem::new(1, 64, MmuParams::default());
        let root = m.phys.alloc().unwrap();
        let mut created = Vec::new();
        for k in 0..2u64 {
            let page = m.phys.alloc().unwrap();
            let e = PageTables::entry(&mut m.phys, root, 0x1000 * (k + 1), 1, true, &mut created)
                .unwrap()
                .unwrap();
            m.phys.write_u64(e, page.addr() | P | RW | US);
        }
        m.write_cr3(0, root.addr(), 1, false);
        (m, root.addr())
    }

    #[test]
    fn accesses_translate_and_cross_pages() {
        let (mut m, _) = setup();
        m.write_u64(0x1ffc, 0x1122_3344_5566_7788).unwrap();
        assert_eq!(m.read_u64(0x1ffc).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(m.read_u32(0x2000).unwrap(), 0x1122_3344);
        let f = m.read_u8(0x5000).unwrap_err();
        assert!(!f.protection);
        assert!(m.core(0).stats.walks >= 2);
        assert!(m.core(0).dtlb.stats.hits > 0);
    }

    #[test]
    fn cr3_write_without_noflush_drops_only_that_pcids_non_global_entries() {
        let (mut m, root) = setup();
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
    }
}
