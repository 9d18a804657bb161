//! The hardware page walker (Intel SDM vol. 3 §4.5): reads the four levels of real page
//! tables from guest physical memory, combines permissions across levels, checks the
//! access, and sets accessed and dirty bits as the processor does (§4.8).

use crate::phys::PhysMem;
use crate::pte::{canonical, index, A, ADDR, D, G, NX, P, PS, RW, US};
use crate::tlb::{PERM_D, PERM_U, PERM_W, PERM_X};
use emu_core::{Access, PageFault};

/// A completed walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    /// Physical address of the mapped page.
    pub page_pa: u64,
    /// The page is 2 MiB.
    pub huge: bool,
    /// Effective `PERM_*` bits.
    pub perms: u8,
    /// The leaf is global.
    pub global: bool,
    /// Physical address of the leaf entry.
    pub pte_pa: u64,
    /// Paging-structure entries read.
    pub reads: u32,
    /// Entries whose A or D bit the walk set.
    pub ad_updates: u32,
}

/// The levels a walk would start at for `va` given which upper levels a
/// paging-structure cache supplies: `start_level` 4 reads the PML4 entry first.
pub fn walk(
    phys: &mut PhysMem,
    root_pa: u64,
    va: u64,
    access: Access,
    start_level: u8,
    start_table: u64,
) -> Result<Walk, PageFault> {
    let fault = |protection| PageFault { addr: va, access, protection };
    if !canonical(va) {
        return Err(fault(false));
    }
    let mut table = if start_level == 4 { root_pa } else { start_table };
    let (mut w, mut u, mut x) = (true, true, true);
    let mut reads = 0;
    let mut ad = 0;
    let mut level = start_level;
    loop {
        let epa = table + 8 * index(va, level);
        let e = phys.read_u64(epa);
        reads += 1;
        if e & P == 0 {
            return Err(fault(false));
        }
        w &= e & RW != 0;
        u &= e & US != 0;
        x &= e & NX == 0;
        let leaf = level == 1 || (level == 2 && e & PS != 0);
        if level == 3 && e & PS != 0 {
            // 1 GiB pages are never created by the kernel model.
            return Err(fault(false));
        }
        if leaf {
            let ok = u
                && match access {
                    Access::Read => true,
                    Access::Write => w,
                    Access::Exec => x,
                };
            if !ok {
                return Err(fault(true));
            }
            let mut ne = e | A;
            if access == Access::Write {
                ne |= D;
            }
            if ne != e {
                phys.write_u64(epa, ne);
                ad += 1;
            }
            let huge = level == 2;
            let mask = if huge { ADDR & !((1 << 21) - 1) } else { ADDR };
            let mut perms = PERM_U;
            if w {
                perms |= PERM_W;
            }
            if x {
                perms |= PERM_X;
            }
            if ne & D != 0 {
                perms |= PERM_D;
            }
            return Ok(Walk {
                page_pa: ne & mask,
                huge,
                perms,
                global: ne & G != 0,
                pte_pa: epa,
                reads,
                ad_updates: ad,
            });
        }
        if e & A == 0 {
            phys.write_u64(epa, e | A);
            ad += 1;
        }
        table = e & ADDR;
        level -= 1;
    }
}

/// Physical address of the table at `level` (3 = PDPT, 2 = PD, 1 = PT) for `va`, found
/// by reading the entries above it without side effects; None if not present.
pub fn table_at(phys: &PhysMem, root_pa: u64, va: u64, level: u8) -> Option<u64> {
    let mut table = root_pa;
    let mut l = 4;
    while l > level {
        let e = phys.read_u64(table + 8 * index(va, l));
        if e & P == 0 || e & PS != 0 {
            return None;
        }
        table = e & ADDR;
        l -= 1;
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pte::PageTables;

    #[test]
    fn walk_sets_accessed_and_dirty_and_checks_permissions() {
        let mut phys = PhysMem::new(16);
        let root = phys.alloc().unwrap();
        let page = phys.alloc().unwrap();
        let mut created = Vec::new();
        let e = PageTables::entry(&mut phys, root, 0x1000, 1, true, &mut created).unwrap().unwrap();
        phys.write_u64(e, page.addr() | P | US | NX);
        let w = walk(&mut phys, root.addr(), 0x1234, Access::Read, 4, 0).unwrap();
        assert_eq!(w.page_pa, page.addr());
        assert_eq!(w.reads, 4);
        assert_eq!(w.perms & PERM_W, 0);
        assert_ne!(phys.read_u64(e) & A, 0);
        assert_eq!(phys.read_u64(e) & D, 0);
        let f = walk(&mut phys, root.addr(), 0x1234, Access::Write, 4, 0).unwrap_err();
        assert!(f.protection);
        let f = walk(&mut phys, root.addr(), 0x1234, Access::Exec, 4, 0).unwrap_err();
        assert!(f.protection);
        phys.write_u64(e, page.addr() | P | US | RW);
        walk(&mut phys, root.addr(), 0x1234, Access::Write, 4, 0).unwrap();
        assert_ne!(phys.read_u64(e) & D, 0);
        let f = walk(&mut phys, root.addr(), 0x9000_0000, Access::Read, 4, 0).unwrap_err();
        assert!(!f.protection);
    }
}
