//! x86-64 4-level page-table entries (Intel SDM vol. 3 §4.5, tables 4-14 to 4-20) and
//! the software operations the kernel model uses to build and tear down tables in guest
//! physical memory. The hardware walk is in `walker.rs`.

use crate::phys::{OutOfMemory, Pfn, PhysMem};

/// Present.
pub const P: u64 = 1 << 0;
/// Writable.
pub const RW: u64 = 1 << 1;
/// User-accessible.
pub const US: u64 = 1 << 2;
/// Accessed.
pub const A: u64 = 1 << 5;
/// Dirty (leaf entries).
pub const D: u64 = 1 << 6;
/// Page size: the PDE maps a 2 MiB page.
pub const PS: u64 = 1 << 7;
/// Global (leaf entries).
pub const G: u64 = 1 << 8;
/// Software bit (ignored by hardware, SDM table 4-19): the kernel model's copy-on-write
/// marker.
pub const SW_COW: u64 = 1 << 9;
/// Execute-disable.
pub const NX: u64 = 1 << 63;
/// Physical-address bits of an entry.
pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Entries that intermediate tables carry: the leaf decides the real permissions.
pub const TABLE_FLAGS: u64 = P | RW | US;

/// Index of `va` in the table at `level` (4 = PML4 ... 1 = PT).
#[inline(always)]
pub fn index(va: u64, level: u8) -> u64 {
    (va >> (12 + 9 * (u32::from(level) - 1))) & 511
}

/// True when `va` is canonical for 4-level paging (bits 63:47 all equal).
#[inline(always)]
pub fn canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

/// Size of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageSize {
    /// 4 KiB.
    Size4K,
    /// 2 MiB.
    Size2M,
}

impl PageSize {
    /// log2 of the size.
    pub fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
        }
    }
    /// Size in bytes.
    pub fn bytes(self) -> u64 {
        1 << self.shift()
    }
    /// Level of the leaf entry (1 = PTE, 2 = PDE).
    pub fn leaf_level(self) -> u8 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
        }
    }
}

/// A leaf entry found by a software walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Physical address of the entry.
    pub pte_pa: u64,
    /// The entry.
    pub pte: u64,
    /// What it maps.
    pub size: PageSize,
}

/// Software access to the page tables rooted at one PML4 frame.
pub struct PageTables;

impl PageTables {
    /// Physical address of the entry for `va` at `level`, creating missing intermediate
    /// tables when `alloc` (new tables are counted into `created`). Fails with `Ok(None)`
    /// when a table is missing and `alloc` is false, or a larger page is in the way.
    pub fn entry(
        phys: &mut PhysMem,
        root: Pfn,
        va: u64,
        level: u8,
        alloc: bool,
        created: &mut Vec<Pfn>,
    ) -> Result<Option<u64>, OutOfMemory> {
        let mut table = root.addr();
        let mut l = 4u8;
        while l > level {
            let epa = table + 8 * index(va, l);
            let e = phys.read_u64(epa);
            if e & P == 0 {
                if !alloc {
                    return Ok(None);
                }
                let t = phys.alloc()?;
                created.push(t);
                phys.write_u64(epa, t.addr() | TABLE_FLAGS);
                table = t.addr();
            } else if e & PS != 0 {
                return Ok(None);
            } else {
                table = e & ADDR;
            }
            l -= 1;
        }
        Ok(Some(table + 8 * index(va, level)))
    }

    /// The leaf entry mapping `va`, if present.
    pub fn leaf(phys: &PhysMem, root: Pfn, va: u64) -> Option<Leaf> {
        let mut table = root.addr();
        for l in (1..=4u8).rev() {
            let epa = table + 8 * index(va, l);
            let e = phys.read_u64(epa);
            if e & P == 0 {
                return None;
            }
            if l == 1 {
                return Some(Leaf { pte_pa: epa, pte: e, size: PageSize::Size4K });
            }
            if l == 2 && e & PS != 0 {
                return Some(Leaf { pte_pa: epa, pte: e, size: PageSize::Size2M });
            }
            table = e & ADDR;
        }
        None
    }

    /// The chain of table frames (PML4 excluded) leading to `va`'s level-`level` entry:
    /// [PDPT, PD, PT] truncated where missing.
    pub fn path(phys: &PhysMem, root: Pfn, va: u64) -> Vec<(u8, Pfn, u64)> {
        let mut out = Vec::new();
        let mut table = root.addr();
        for l in (2..=4u8).rev() {
            let epa = table + 8 * index(va, l);
            let e = phys.read_u64(epa);
            if e & P == 0 || e & PS != 0 {
                break;
            }
            table = e & ADDR;
            out.push((l - 1, Pfn(table >> 12), epa));
        }
        out
    }

    /// True when every entry of the table frame is non-present.
    pub fn table_empty(phys: &PhysMem, table: Pfn) -> bool {
        phys.slice(table.addr(), 4096).chunks_exact(8).all(|c| c[0] & 1 == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_and_find_4k_and_2m() {
        let mut phys = PhysMem::new(16);
        let root = phys.alloc().unwrap();
        let mut created = Vec::new();
        let page = phys.alloc().unwrap();
        let e =
            PageTables::entry(&mut phys, root, 0x40_1000, 1, true, &mut created).unwrap().unwrap();
        phys.write_u64(e, page.addr() | P | RW | US);
        assert_eq!(created.len(), 3);
        let leaf = PageTables::leaf(&phys, root, 0x40_1abc).unwrap();
        assert_eq!(leaf.pte & ADDR, page.addr());
        assert_eq!(leaf.size, PageSize::Size4K);
        let e2 = PageTables::entry(&mut phys, root, 0x8000_0000, 2, true, &mut created)
            .unwrap()
            .unwrap();
        phys.write_u64(e2, 0x20_0000 | P | RW | US | PS);
        let leaf = PageTables::leaf(&phys, root, 0x8001_2345).unwrap();
        assert_eq!(leaf.size, PageSize::Size2M);
        assert!(PageTables::leaf(&phys, root, 0x50_0000).is_none());
        assert_eq!(index(0x7fff_ffff_f000, 4), 255);
        assert!(canonical(0xffff_8000_0000_0000) && !canonical(0x8000_0000_0000));
    }
}
