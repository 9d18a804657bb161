//! Paging-structure caches (Intel SDM vol. 3 §4.10.3): per-core caches of PML4 entries,
//! PDPT entries and (non-leaf) PD entries, tagged by PCID, that let a walk skip the upper
//! levels. They hold the physical address of the next table and the permissions
//! accumulated so far. Invalidation rules (§4.10.4.1): INVLPG, INVPCID and MOV to CR3
//! drop every entry of the affected PCID(s) regardless of address; INVLPGB drops the
//! entries covering its range unless it asks for final translations only.

use crate::tlb::{Flush, TlbGeometry};
use serde::Serialize;

/// One cached paging-structure entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct PscEntry {
    /// Virtual address bits above this level's span (va >> shift).
    pub tag: u64,
    /// PCID it was filled under.
    pub pcid: u16,
    /// Valid.
    pub valid: bool,
    /// Physical address of the next-level table.
    pub table: u64,
    /// `PERM_*` bits accumulated over the levels above and this one.
    pub perms: u8,
    /// Physical address of the entry itself (for the coherence oracle).
    pub entry_pa: u64,
    /// Page-table generation when filled (coherence oracle).
    pub gen: u64,
    /// Coherence oracle: survived a flush that should have removed it.
    pub stale: bool,
    stamp: u64,
}

/// Counters of one paging-structure cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PscStats {
    /// Lookups.
    pub lookups: u64,
    /// Hits.
    pub hits: u64,
    /// Entries removed by invalidations.
    pub invalidated: u64,
}

/// One level's cache.
#[derive(Clone, Debug)]
pub struct PscArray {
    shift: u32,
    sets: usize,
    ways: usize,
    entries: Vec<PscEntry>,
    clock: u64,
    /// Counters.
    pub stats: PscStats,
}

impl PscArray {
    fn new(g: TlbGeometry, shift: u32) -> Self {
        let ways = g.ways.max(1) as usize;
        let sets = (g.entries as usize / ways).max(1);
        PscArray {
            shift,
            sets,
            ways,
            entries: vec![PscEntry::default(); sets * ways],
            clock: 0,
            stats: PscStats::default(),
        }
    }

    fn lookup(&mut self, va: u64, pcid: u16) -> Option<PscEntry> {
        self.stats.lookups += 1;
        let tag = va >> self.shift;
        let b = (tag as usize % self.sets) * self.ways;
        for k in b..b + self.ways {
            let e = &self.entries[k];
            if e.valid && e.tag == tag && e.pcid == pcid {
                self.stats.hits += 1;
                self.clock += 1;
                self.entries[k].stamp = self.clock;
                return Some(self.entries[k]);
            }
        }
        None
    }

    fn insert(&mut self, mut e: PscEntry) {
        self.clock += 1;
        e.stamp = self.clock;
        e.valid = true;
        let b = (e.tag as usize % self.sets) * self.ways;
        let k = (b..b + self.ways)
            .find(|&k| {
                self.entries[k].valid
                    && self.entries[k].tag == e.tag
                    && self.entries[k].pcid == e.pcid
            })
            .or_else(|| (b..b + self.ways).find(|&k| !self.entries[k].valid))
            .unwrap_or_else(|| {
                (b..b + self.ways).min_by_key(|&k| self.entries[k].stamp).unwrap_or(b)
            });
        self.entries[k] = e;
    }

    fn flush(&mut self, f: &Flush) -> u64 {
        let shift = self.shift;
        let mut n = 0;
        for e in self.entries.iter_mut().filter(|e| e.valid) {
            let hit = match *f {
                Flush::Page { pcid, .. } | Flush::PagePcid { pcid, .. } | Flush::Pcid(pcid) => {
                    e.pcid == pcid
                }
                Flush::All | Flush::AllNonGlobal => true,
                Flush::Range { pcid, va, pages, stride_2m, final_only, .. } => {
                    if final_only || e.pcid != pcid {
                        false
                    } else {
                        let stride = if stride_2m { 1u64 << 21 } else { 1 << 12 };
                        let end = va.saturating_add(pages.saturating_mul(stride));
                        let lo = e.tag << shift;
                        let hi = lo.saturating_add(1u64 << shift);
                        lo < end && hi > va
                    }
                }
            };
            if hit {
                e.valid = false;
                n += 1;
            }
        }
        self.stats.invalidated += n;
        n
    }

    /// Valid entries (for tests and the oracle).
    pub fn valid_entries(&self) -> impl Iterator<Item = &PscEntry> {
        self.entries.iter().filter(|e| e.valid)
    }
}

/// Where a walk may start, from the paging-structure caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkStart {
    /// The entry used was marked stale by the coherence oracle.
    pub stale: bool,
    /// Level of the first entry to read (4 = PML4 ... 1 = PT).
    pub level: u8,
    /// Physical address of the table at that level.
    pub table: u64,
    /// Permissions accumulated above it.
    pub perms: u8,
}

/// The three paging-structure caches of one core.
#[derive(Clone, Debug)]
pub struct Psc {
    /// PML4E cache (maps va[47:39] to a PDPT).
    pub pml4e: PscArray,
    /// PDPTE cache (maps va[47:30] to a PD).
    pub pdpte: PscArray,
    /// PDE cache (maps va[47:21] to a PT).
    pub pde: PscArray,
}

impl Psc {
    /// Empty caches of the given geometries.
    pub fn new(pml4e: TlbGeometry, pdpte: TlbGeometry, pde: TlbGeometry) -> Self {
        Psc {
            pml4e: PscArray::new(pml4e, 39),
            pdpte: PscArray::new(pdpte, 30),
            pde: PscArray::new(pde, 21),
        }
    }

    /// The deepest cached level for `va`: the walk skips the levels above it.
    pub fn lookup(&mut self, va: u64, pcid: u16) -> Option<WalkStart> {
        if let Some(e) = self.pde.lookup(va, pcid) {
            return Some(WalkStart { stale: e.stale, level: 1, table: e.table, perms: e.perms });
        }
        if let Some(e) = self.pdpte.lookup(va, pcid) {
            return Some(WalkStart { stale: e.stale, level: 2, table: e.table, perms: e.perms });
        }
        self.pml4e.lookup(va, pcid).map(|e| WalkStart {
            stale: e.stale,
            level: 3,
            table: e.table,
            perms: e.perms,
        })
    }

    /// Caches a non-leaf entry read at `level` (4, 3 or 2) that points to `table`.
    #[allow(clippy::too_many_arguments)]
    pub fn fill(
        &mut self,
        level: u8,
        va: u64,
        pcid: u16,
        table: u64,
        perms: u8,
        entry_pa: u64,
        gen: u64,
    ) {
        let arr = match level {
            4 => &mut self.pml4e,
            3 => &mut self.pdpte,
            2 => &mut self.pde,
            _ => return,
        };
        let tag = va >> arr.shift;
        arr.insert(PscEntry {
            tag,
            pcid,
            valid: true,
            table,
            perms,
            entry_pa,
            gen,
            stale: false,
            stamp: 0,
        });
    }

    /// Coherence oracle: marks entries of `pcid` that `stale(entry)` says are stale.
    pub fn mark_stale(&mut self, pcid: u16, stale: impl Fn(&PscEntry) -> bool) -> u64 {
        let mut n = 0;
        for arr in [&mut self.pml4e, &mut self.pdpte, &mut self.pde] {
            for e in arr.entries.iter_mut() {
                if e.valid && !e.stale && e.pcid == pcid && stale(e) {
                    e.stale = true;
                    n += 1;
                }
            }
        }
        n
    }

    /// Clears the oracle marks of the entries covering `va` under `pcid`.
    pub fn unmark_stale(&mut self, va: u64, pcid: u16) {
        for arr in [&mut self.pml4e, &mut self.pdpte, &mut self.pde] {
            let tag = va >> arr.shift;
            for e in arr.entries.iter_mut() {
                if e.valid && e.tag == tag && e.pcid == pcid {
                    e.stale = false;
                }
            }
        }
    }

    /// Applies an invalidation; returns how many entries it removed.
    pub fn flush(&mut self, f: &Flush) -> u64 {
        self.pml4e.flush(f) + self.pdpte.flush(f) + self.pde.flush(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psc() -> Psc {
        let g = |n| TlbGeometry { entries: n, ways: n };
        Psc::new(g(2), g(4), g(32))
    }

    #[test]
    fn deepest_level_wins_and_pcid_tags() {
        let mut p = psc();
        p.fill(4, 0x7f00_0000_0000, 1, 0x1000, 7, 0, 0);
        assert_eq!(p.lookup(0x7f00_1234_5678, 1).map(|s| s.level), Some(3));
        p.fill(2, 0x7f00_0020_0000, 1, 0x3000, 7, 0, 0);
        assert_eq!(
            p.lookup(0x7f00_0020_1000, 1),
            Some(WalkStart { stale: false, level: 1, table: 0x3000, perms: 7 })
        );
        assert_eq!(p.lookup(0x7f00_0020_1000, 2), None, "other PCID misses");
    }

    #[test]
    fn invalidation_rules() {
        let mut p = psc();
        p.fill(2, 0x20_0000, 1, 0x3000, 7, 0, 0);
        p.fill(2, 0x40_0000, 2, 0x4000, 7, 0, 0);
        // INVLPG drops every entry of the current PCID, whatever the address.
        p.flush(&Flush::Page { pcid: 1, va: 0x9999_0000 });
        assert!(p.lookup(0x20_0000, 1).is_none());
        assert!(p.lookup(0x40_0000, 2).is_some());
        // INVLPGB for final translations only keeps the paging-structure caches.
        let r = Flush::Range {
            pcid: 2,
            va: 0x40_0000,
            pages: 1,
            stride_2m: false,
            globals: false,
            final_only: true,
        };
        p.flush(&r);
        assert!(p.lookup(0x40_0000, 2).is_some());
        let r = Flush::Range {
            pcid: 2,
            va: 0x40_0000,
            pages: 1,
            stride_2m: false,
            globals: false,
            final_only: false,
        };
        p.flush(&r);
        assert!(p.lookup(0x40_0000, 2).is_none());
        p.fill(3, 0x4000_0000, 5, 0x5000, 7, 0, 0);
        p.flush(&Flush::AllNonGlobal);
        assert!(p.lookup(0x4000_0000, 5).is_none(), "PSC entries are never global");
    }
}
