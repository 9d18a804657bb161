//! The hardware page walker (Intel SDM vol. 3 §4.5): reads the levels of real page
//! tables from guest physical memory, starting at the deepest level the paging-structure
//! caches supply, combines permissions across levels, checks the access, and sets
//! accessed and dirty bits as the processor does (§4.8). The walk records every entry it
//! read or updated so the caller can charge each through the cache model.

use crate::phys::PhysMem;
use crate::psc::WalkStart;
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
}

/// What a walk touched.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkTrace {
    /// (level, entry address) of each paging-structure read, in order.
    pub reads: [(u8, u64); 4],
    /// Number of reads.
    pub nreads: usize,
    /// Entries whose A or D bit was set.
    pub ad: [u64; 4],
    /// Number of A/D updates.
    pub nad: usize,
    /// Non-leaf entries read: (level, entry address, next table, permissions so far),
    /// for filling the paging-structure caches.
    pub tables: [(u8, u64, u64, u8); 3],
    /// Number of non-leaf entries.
    pub ntables: usize,
}

fn perms_of(w: bool, u: bool, x: bool) -> u8 {
    (if w { PERM_W } else { 0 }) | (if u { PERM_U } else { 0 }) | (if x { PERM_X } else { 0 })
}

/// Walks the tables rooted at `root_pa` for `va`, from `start` if given.
pub fn walk(
    phys: &mut PhysMem,
    root_pa: u64,
    va: u64,
    access: Access,
    start: Option<WalkStart>,
    t: &mut WalkTrace,
) -> Result<Walk, PageFault> {
    let fault = |protection| PageFault { addr: va, access, protection };
    if !canonical(va) {
        return Err(fault(false));
    }
    let (mut level, mut table, p0) = match start {
        Some(s) => (s.level, s.table, s.perms),
        None => (4, root_pa, PERM_W | PERM_U | PERM_X),
    };
    let (mut w, mut u, mut x) = (p0 & PERM_W != 0, p0 & PERM_U != 0, p0 & PERM_X != 0);
    loop {
        let epa = table + 8 * index(va, level);
        let e = phys.read_u64(epa);
        t.reads[t.nreads] = (level, epa);
        t.nreads += 1;
        if e & P == 0 {
            return Err(fault(false));
        }
        w &= e & RW != 0;
        u &= e & US != 0;
        x &= e & NX == 0;
        if level == 3 && e & PS != 0 {
            // 1 GiB pages are never created by the kernel model.
            return Err(fault(false));
        }
        if level == 1 || (level == 2 && e & PS != 0) {
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
                t.ad[t.nad] = epa;
                t.nad += 1;
            }
            let huge = level == 2;
            let mask = if huge { ADDR & !((1 << 21) - 1) } else { ADDR };
            let mut perms = perms_of(w, u, x);
            if ne & D != 0 {
                perms |= PERM_D;
            }
            return Ok(Walk { page_pa: ne & mask, huge, perms, global: ne & G != 0, pte_pa: epa });
        }
        if e & A == 0 {
            phys.write_u64(epa, e | A);
            t.ad[t.nad] = epa;
            t.nad += 1;
        }
        table = e & ADDR;
        t.tables[t.ntables] = (level, epa, table, perms_of(w, u, x));
        t.ntables += 1;
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
        let mut t = WalkTrace::default();
        let w = walk(&mut phys, root.addr(), 0x1234, Access::Read, None, &mut t).unwrap();
        assert_eq!(w.page_pa, page.addr());
        assert_eq!(t.nreads, 4);
        assert_eq!(t.ntables, 3);
        assert_eq!(t.nad, 4, "A set on all four levels");
        assert_eq!(w.perms & PERM_W, 0);
        assert_ne!(phys.read_u64(e) & A, 0);
        assert_eq!(phys.read_u64(e) & D, 0);
        let mut t = WalkTrace::default();
        let f = walk(&mut phys, root.addr(), 0x1234, Access::Write, None, &mut t).unwrap_err();
        assert!(f.protection);
        let f = walk(&mut phys, root.addr(), 0x1234, Access::Exec, None, &mut WalkTrace::default())
            .unwrap_err();
        assert!(f.protection);
        phys.write_u64(e, page.addr() | P | US | RW);
        let mut t = WalkTrace::default();
        walk(&mut phys, root.addr(), 0x1234, Access::Write, None, &mut t).unwrap();
        assert_ne!(phys.read_u64(e) & D, 0);
        assert_eq!(t.nad, 1, "only the leaf's D bit changed");
        let f = walk(
            &mut phys,
            root.addr(),
            0x9000_0000,
            Access::Read,
            None,
            &mut WalkTrace::default(),
        )
        .unwrap_err();
        assert!(!f.protection);
    }

    #[test]
    fn walk_from_a_cached_pde_reads_one_entry() {
        let mut phys = PhysMem::new(16);
        let root = phys.alloc().unwrap();
        let page = phys.alloc().unwrap();
        let mut created = Vec::new();
        let e =
            PageTables::entry(&mut phys, root, 0x40_1000, 1, true, &mut created).unwrap().unwrap();
        phys.write_u64(e, page.addr() | P | US | RW);
        let pt = table_at(&phys, root.addr(), 0x40_1000, 1).unwrap();
        let start =
            WalkStart { stale: false, level: 1, table: pt, perms: PERM_W | PERM_U | PERM_X };
        let mut t = WalkTrace::default();
        let w = walk(&mut phys, root.addr(), 0x40_1000, Access::Read, Some(start), &mut t).unwrap();
        assert_eq!((w.page_pa, t.nreads), (page.addr(), 1));
    }
}
