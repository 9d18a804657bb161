//! Translation lookaside buffers: set-associative arrays of translations keyed by
//! (PCID, virtual page), with global entries that match every PCID (Intel SDM vol. 3
//! §4.10.2 and §4.10.1), and the invalidation operations of §4.10.4 expressed as typed
//! [`Flush`] requests.

use serde::{Deserialize, Serialize};

/// Permission bit in [`TlbEntry::perms`]: writes allowed.
pub const PERM_W: u8 = 1;
/// Permission bit: user-mode accesses allowed.
pub const PERM_U: u8 = 2;
/// Permission bit: instruction fetch allowed (NX clear).
pub const PERM_X: u8 = 4;
/// The entry was filled from a PTE whose dirty bit is set, so a write needs no walk.
pub const PERM_D: u8 = 8;
/// Coherence oracle: the entry survived a flush that should have removed it. Marked
/// entries also lose `PERM_U`, so every use takes the slow path and is reported.
pub const PERM_STALE: u8 = 16;

/// One cached translation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbEntry {
    /// Virtual page number in units of this entry's page size.
    pub vpn: u64,
    /// PCID the entry was filled under.
    pub pcid: u16,
    /// Valid.
    pub valid: bool,
    /// Global: matches any PCID.
    pub global: bool,
    /// Maps a 2 MiB page.
    pub huge: bool,
    /// `PERM_*` bits.
    pub perms: u8,
    /// Physical address of the page.
    pub pa: u64,
    /// Replacement stamp (larger is more recent).
    pub stamp: u64,
    /// Generation of the leaf PTE when the entry was filled (coherence oracle).
    pub gen: u64,
    /// Physical address of the leaf PTE it came from (coherence oracle).
    pub pte_pa: u64,
}

impl TlbEntry {
    #[inline(always)]
    fn shift(&self) -> u32 {
        if self.huge {
            21
        } else {
            12
        }
    }
    /// True when the entry translates `va`.
    #[inline(always)]
    pub fn covers(&self, va: u64) -> bool {
        self.valid && self.vpn == va >> self.shift()
    }
}

/// Replacement policy within a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Replacement {
    /// Least recently used.
    Lru,
    /// First in, first out (fill order).
    Fifo,
}

/// Geometry of one TLB array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlbGeometry {
    /// Total entries.
    pub entries: u32,
    /// Associativity (entries per set); equal to `entries` for fully associative.
    pub ways: u32,
}

/// Which translations an array holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// 4 KiB pages only.
    Small,
    /// 2 MiB pages only.
    Huge,
    /// Both, each indexed by its own page number.
    Both,
}

/// A typed invalidation request (SDM vol. 3 §4.10.4.1; AMD APM vol. 3 "INVLPGB").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// INVLPG: translations of `va` for `pcid`, and global translations of `va`.
    Page {
        /// The current PCID.
        pcid: u16,
        /// Address whose page is invalidated.
        va: u64,
    },
    /// INVPCID type 0: translations of `va` for `pcid`, except global ones.
    PagePcid {
        /// PCID.
        pcid: u16,
        /// Address.
        va: u64,
    },
    /// INVPCID type 1, or MOV to CR3 without NOFLUSH: all non-global translations of `pcid`.
    Pcid(u16),
    /// INVPCID type 2: every translation, global or not.
    All,
    /// INVPCID type 3: every non-global translation.
    AllNonGlobal,
    /// INVLPGB with a PCID and a range: `pages` pages from `va` with 4 KiB or 2 MiB stride;
    /// global translations too when `globals`.
    Range {
        /// PCID.
        pcid: u16,
        /// First address.
        va: u64,
        /// Number of pages.
        pages: u64,
        /// Stride is 2 MiB instead of 4 KiB.
        stride_2m: bool,
        /// Also remove global translations.
        globals: bool,
        /// Leave the paging-structure caches alone (INVLPGB "final translation only").
        final_only: bool,
    },
}

impl Flush {
    /// True when this request removes `e`.
    #[inline]
    pub fn hits(&self, e: &TlbEntry) -> bool {
        if !e.valid {
            return false;
        }
        match *self {
            Flush::Page { pcid, va } => e.covers(va) && (e.global || e.pcid == pcid),
            Flush::PagePcid { pcid, va } => e.covers(va) && !e.global && e.pcid == pcid,
            Flush::Pcid(p) => !e.global && e.pcid == p,
            Flush::All => true,
            Flush::AllNonGlobal => !e.global,
            Flush::Range { pcid, va, pages, stride_2m, globals, .. } => {
                if e.global && !globals {
                    return false;
                }
                if !e.global && e.pcid != pcid {
                    return false;
                }
                let stride = if stride_2m { 1u64 << 21 } else { 1 << 12 };
                let end = va.saturating_add(pages.saturating_mul(stride));
                // The entry's page overlaps [va, end) at a stride point.
                let lo = e.vpn << e.shift();
                let hi = lo + (1u64 << e.shift());
                if hi <= va || lo >= end {
                    return false;
                }
                if stride_2m || e.huge {
                    true
                } else {
                    (lo - va) % stride == 0
                }
            }
        }
    }
}

/// Counters of one array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TlbArrayStats {
    /// Lookups.
    pub lookups: u64,
    /// Lookups that hit.
    pub hits: u64,
    /// Valid entries evicted to make room.
    pub evictions: u64,
    /// Entries removed by invalidations.
    pub invalidated: u64,
}

/// One set-associative TLB array.
#[derive(Clone, Debug)]
pub struct TlbArray {
    sets: usize,
    ways: usize,
    holds: Holds,
    policy: Replacement,
    entries: Vec<TlbEntry>,
    /// Bit k set while `entries[k]` is valid: full-array invalidations and oracle scans
    /// visit only the valid entries (an array is mostly empty after flushes).
    valid_bits: Vec<u64>,
    clock: u64,
    /// Counters.
    pub stats: TlbArrayStats,
}

impl TlbArray {
    /// An empty array. `entries` must be a multiple of `ways`, and the set count a power
    /// of two (validated by the profile).
    pub fn new(g: TlbGeometry, holds: Holds, policy: Replacement) -> Self {
        let ways = g.ways.max(1) as usize;
        let sets = (g.entries as usize / ways).max(1);
        TlbArray {
            sets,
            ways,
            holds,
            policy,
            entries: vec![TlbEntry::default(); sets * ways],
            valid_bits: vec![0; (sets * ways).div_ceil(64)],
            clock: 0,
            stats: TlbArrayStats::default(),
        }
    }

    /// Number of sets.
    pub fn sets(&self) -> usize {
        self.sets
    }

    #[inline(always)]
    fn set_of(&self, vpn: u64) -> usize {
        (vpn as usize) & (self.sets - 1)
    }

    /// Looks up `va` under `pcid`; on a hit returns the entry and refreshes its recency.
    #[inline(always)]
    pub fn lookup(&mut self, va: u64, pcid: u16) -> Option<TlbEntry> {
        self.stats.lookups += 1;
        if self.holds != Holds::Huge {
            if let Some(e) = self.probe(va >> 12, pcid, false) {
                return Some(e);
            }
        }
        if self.holds != Holds::Small {
            if let Some(e) = self.probe(va >> 21, pcid, true) {
                return Some(e);
            }
        }
        None
    }

    #[inline(always)]
    fn probe(&mut self, vpn: u64, pcid: u16, huge: bool) -> Option<TlbEntry> {
        let base = self.set_of(vpn) * self.ways;
        for k in base..base + self.ways {
            let e = &self.entries[k];
            if e.valid && e.vpn == vpn && e.huge == huge && (e.global || e.pcid == pcid) {
                self.stats.hits += 1;
                if self.policy == Replacement::Lru {
                    self.clock += 1;
                    self.entries[k].stamp = self.clock;
                }
                return Some(self.entries[k]);
            }
        }
        None
    }

    /// Inserts a translation, replacing a matching entry, else an invalid one, else the
    /// victim chosen by the replacement policy. Returns the evicted valid entry.
    pub fn insert(&mut self, mut e: TlbEntry) -> Option<TlbEntry> {
        self.clock += 1;
        e.stamp = self.clock;
        e.valid = true;
        let base = self.set_of(e.vpn) * self.ways;
        // One pass: a matching entry wins, then the first invalid one, then the oldest.
        let (mut same, mut free, mut oldest) = (None, None, base);
        for k in base..base + self.ways {
            let x = &self.entries[k];
            if !x.valid {
                if free.is_none() {
                    free = Some(k);
                }
                continue;
            }
            if x.vpn == e.vpn && x.huge == e.huge && (x.global || x.pcid == e.pcid) {
                same = Some(k);
                break;
            }
            if x.stamp < self.entries[oldest].stamp || !self.entries[oldest].valid {
                oldest = k;
            }
        }
        let (k, evicted) = match same.or(free) {
            Some(k) => (k, None),
            None => {
                self.stats.evictions += 1;
                (oldest, Some(self.entries[oldest]))
            }
        };
        self.entries[k] = e;
        self.valid_bits[k / 64] |= 1 << (k % 64);
        evicted
    }

    /// Calls `f` on each valid entry (by index, in index order); an entry `f` returns
    /// false for is invalidated.
    #[inline]
    fn retain_valid(&mut self, mut f: impl FnMut(&mut TlbEntry) -> bool) {
        for w in 0..self.valid_bits.len() {
            let mut bits = self.valid_bits[w];
            while bits != 0 {
                let k = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if !f(&mut self.entries[k]) {
                    self.entries[k].valid = false;
                    self.valid_bits[w] &= !(1 << (k % 64));
                }
            }
        }
    }

    /// Invalidates `entries[k]`.
    #[inline]
    fn kill_at(&mut self, k: usize) {
        self.entries[k].valid = false;
        self.valid_bits[k / 64] &= !(1 << (k % 64));
    }

    /// Applies an invalidation; returns how many entries it removed.
    pub fn flush(&mut self, f: &Flush) -> u64 {
        self.flush_with(f, |_| {})
    }

    /// Applies an invalidation, showing each removed entry to `removed`; returns how
    /// many entries it removed.
    pub fn flush_with(&mut self, f: &Flush, mut removed: impl FnMut(&TlbEntry)) -> u64 {
        let mut n = 0;
        match *f {
            Flush::Page { va, .. } | Flush::PagePcid { va, .. } => {
                // Only the sets that can hold va (per page size) need scanning.
                for (shift, huge) in [(12u32, false), (21, true)] {
                    let allowed = match self.holds {
                        Holds::Small => !huge,
                        Holds::Huge => huge,
                        Holds::Both => true,
                    };
                    if !allowed {
                        continue;
                    }
                    let base = self.set_of(va >> shift) * self.ways;
                    for k in base..base + self.ways {
                        if f.hits(&self.entries[k]) {
                            removed(&self.entries[k]);
                            self.kill_at(k);
                            n += 1;
                        }
                    }
                }
            }
            Flush::Range { va, pages, stride_2m: false, .. } if (pages as usize) < self.sets => {
                // A short 4 KiB-stride range: only the sets its pages map to.
                let ways = self.ways;
                for set in self.sets_of_range(va, va.saturating_add(pages << 12)) {
                    for k in set * ways..(set + 1) * ways {
                        if f.hits(&self.entries[k]) {
                            removed(&self.entries[k]);
                            self.kill_at(k);
                            n += 1;
                        }
                    }
                }
            }
            _ => self.retain_valid(|e| {
                if f.hits(e) {
                    removed(e);
                    n += 1;
                    false
                } else {
                    true
                }
            }),
        }
        self.stats.invalidated += n;
        n
    }

    /// Valid entries (for tests and the oracle).
    pub fn valid_entries(&self) -> impl Iterator<Item = &TlbEntry> {
        self.entries.iter().filter(|e| e.valid)
    }

    /// Coherence oracle: marks entries under `pcid` overlapping `[start, end)` that
    /// `stale(entry)` says are stale. Returns how many were marked.
    pub fn mark_stale(
        &mut self,
        pcid: u16,
        start: u64,
        end: u64,
        stale: impl Fn(&TlbEntry) -> bool,
    ) -> u64 {
        let mut n = 0;
        let mut visit = |e: &mut TlbEntry| {
            if !e.valid || e.global || e.pcid != pcid || e.perms & PERM_STALE != 0 {
                return;
            }
            let shift = if e.huge { 21 } else { 12 };
            let lo = e.vpn << shift;
            let hi = lo + (1u64 << shift);
            if hi <= start || lo >= end || !stale(e) {
                return;
            }
            e.perms = (e.perms | PERM_STALE) & !PERM_U;
            n += 1;
        };
        let pages = (end.saturating_sub(start)) >> 12;
        if pages as usize >= self.sets {
            self.retain_valid(|e| {
                visit(e);
                true
            });
            return n;
        }
        let ways = self.ways;
        for set in self.sets_of_range(start, end) {
            self.entries[set * ways..(set + 1) * ways].iter_mut().for_each(&mut visit);
        }
        n
    }

    /// The sets that can hold a translation of `[start, end)`: those its 4 KiB pages and
    /// its 2 MiB pages map to (as far as this array holds each size), without repeats.
    fn sets_of_range(&self, start: u64, end: u64) -> smallvec::SmallVec<[usize; 40]> {
        let mut sets = smallvec::SmallVec::<[usize; 40]>::new();
        if self.holds != Holds::Huge {
            sets.extend((start >> 12..end.div_ceil(1 << 12)).map(|v| self.set_of(v)));
        }
        if self.holds != Holds::Small {
            sets.extend((start >> 21..end.div_ceil(1 << 21)).map(|v| self.set_of(v)));
        }
        sets.sort_unstable();
        sets.dedup();
        sets
    }

    /// Clears the oracle's mark of the entry for `va` under `pcid` (after reporting it).
    pub fn unmark_stale(&mut self, va: u64, pcid: u16) {
        self.retain_valid(|e| {
            if e.covers(va) && (e.global || e.pcid == pcid) && e.perms & PERM_STALE != 0 {
                e.perms = (e.perms | PERM_U) & !PERM_STALE;
            }
            true
        });
    }

    /// Marks the entry for `va` under `pcid` as dirty-known (after a walk set D).
    pub fn set_dirty(&mut self, va: u64, pcid: u16) {
        self.retain_valid(|e| {
            if e.covers(va) && (e.global || e.pcid == pcid) {
                e.perms |= PERM_D;
            }
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(va: u64, pcid: u16, global: bool) -> TlbEntry {
        TlbEntry {
            vpn: va >> 12,
            pcid,
            global,
            perms: PERM_W | PERM_U,
            pa: 0x1000,
            ..Default::default()
        }
    }

    fn arr(entries: u32, ways: u32) -> TlbArray {
        TlbArray::new(TlbGeometry { entries, ways }, Holds::Small, Replacement::Lru)
    }

    #[test]
    fn pcid_tagging_and_globals() {
        let mut t = arr(64, 4);
        t.insert(ent(0x1000, 1, false));
        t.insert(ent(0x2000, 1, true));
        assert!(t.lookup(0x1000, 1).is_some());
        assert!(t.lookup(0x1000, 2).is_none());
        assert!(t.lookup(0x2fff, 7).is_some(), "global entries match any PCID");
    }

    #[test]
    fn lru_replacement_within_a_set() {
        let mut t = arr(8, 2); // 4 sets of 2
        let a = 0x0000; // set 0
        let b = 0x4000; // vpn 4 -> set 0
        let c = 0x8000; // vpn 8 -> set 0
        t.insert(ent(a, 0, false));
        t.insert(ent(b, 0, false));
        assert!(t.lookup(a, 0).is_some()); // a most recent, b is LRU
        let ev = t.insert(ent(c, 0, false)).unwrap();
        assert_eq!(ev.vpn, b >> 12);
        assert!(t.lookup(a, 0).is_some() && t.lookup(c, 0).is_some() && t.lookup(b, 0).is_none());
    }

    #[test]
    fn fifo_replacement_ignores_hits() {
        let mut t =
            TlbArray::new(TlbGeometry { entries: 2, ways: 2 }, Holds::Small, Replacement::Fifo);
        t.insert(ent(0x1000, 0, false));
        t.insert(ent(0x2000, 0, false));
        assert!(t.lookup(0x1000, 0).is_some());
        let ev = t.insert(ent(0x3000, 0, false)).unwrap();
        assert_eq!(ev.vpn, 1, "FIFO evicts the oldest fill even if recently used");
    }

    #[test]
    fn invlpg_removes_globals_and_current_pcid_only() {
        let mut t = arr(64, 4);
        t.insert(ent(0x5000, 1, false));
        t.insert(ent(0x5000, 2, false));
        t.insert(ent(0x6000, 3, true));
        t.flush(&Flush::Page { pcid: 1, va: 0x5123 });
        assert!(t.lookup(0x5000, 1).is_none());
        assert!(t.lookup(0x5000, 2).is_some(), "other PCIDs keep their entry");
        t.flush(&Flush::Page { pcid: 1, va: 0x6000 });
        assert!(t.lookup(0x6000, 3).is_none(), "INVLPG removes the address's global entry");
    }

    #[test]
    fn invpcid_types() {
        let mut t = arr(64, 4);
        t.insert(ent(0x1000, 1, false));
        t.insert(ent(0x2000, 1, true));
        t.insert(ent(0x3000, 2, false));
        t.flush(&Flush::PagePcid { pcid: 1, va: 0x2000 });
        assert!(t.lookup(0x2000, 1).is_some(), "type 0 keeps globals");
        t.flush(&Flush::Pcid(1));
        assert!(t.lookup(0x1000, 1).is_none() && t.lookup(0x2000, 1).is_some());
        assert!(t.lookup(0x3000, 2).is_some());
        t.flush(&Flush::AllNonGlobal);
        assert!(t.lookup(0x3000, 2).is_none() && t.lookup(0x2000, 9).is_some());
        t.flush(&Flush::All);
        assert!(t.lookup(0x2000, 9).is_none());
    }

    #[test]
    fn range_with_stride() {
        let mut t = arr(64, 4);
        for k in 0..8u64 {
            t.insert(ent(0x10_0000 + k * 0x1000, 4, false));
        }
        t.flush(&Flush::Range {
            pcid: 4,
            va: 0x10_2000,
            pages: 3,
            stride_2m: false,
            globals: false,
            final_only: false,
        });
        let left: Vec<u64> =
            (0..8u64).filter(|k| t.lookup(0x10_0000 + k * 0x1000, 4).is_some()).collect();
        assert_eq!(left, vec![0, 1, 5, 6, 7]);
    }

    #[test]
    fn mark_stale_over_a_short_range_equals_a_full_scan() {
        // Entries spread over many sets, huge ones too; the range probe must mark exactly
        // what scanning every entry marks.
        let fill = || {
            let mut t =
                TlbArray::new(TlbGeometry { entries: 64, ways: 4 }, Holds::Both, Replacement::Lru);
            for k in 0..48u64 {
                let mut e = ent(0x7000_0000 + k * 0x3000, 1, false);
                if k % 7 == 0 {
                    e.huge = true;
                    e.vpn = (0x7000_0000 + k * 0x20_0000) >> 21;
                }
                t.insert(e);
            }
            t
        };
        let marked = |t: &TlbArray| -> Vec<u64> {
            let mut v: Vec<u64> =
                t.valid_entries().filter(|e| e.perms & PERM_STALE != 0).map(|e| e.vpn).collect();
            v.sort_unstable();
            v
        };
        for (start, end) in [
            (0x7000_3000u64, 0x7001_0000u64),
            (0x70e0_1000, 0x70e0_5000),
            (0x7000_0000, 0x7000_1000),
        ] {
            let mut probe = fill();
            let n = probe.mark_stale(1, start, end, |_| true);
            let mut scan = fill();
            // A range as wide as the array takes the full scan.
            let m = scan.mark_stale(1, 0, u64::MAX, |e| {
                let shift = if e.huge { 21 } else { 12 };
                let lo = e.vpn << shift;
                lo < end && lo + (1 << shift) > start
            });
            assert_eq!(n, m, "{start:#x}..{end:#x}");
            assert_eq!(marked(&probe), marked(&scan), "{start:#x}..{end:#x}");
            assert!(n > 0, "{start:#x}..{end:#x} marked nothing");
        }
    }

    #[test]
    fn short_range_flush_equals_a_full_scan() {
        let fill = || {
            let mut t =
                TlbArray::new(TlbGeometry { entries: 64, ways: 4 }, Holds::Both, Replacement::Lru);
            for k in 0..48u64 {
                let mut e = ent(0x7000_0000 + k * 0x3000, 1, k % 11 == 0);
                if k % 7 == 0 {
                    e.huge = true;
                    e.vpn = (0x7000_0000 + k * 0x20_0000) >> 21;
                }
                t.insert(e);
            }
            t
        };
        let left = |t: &TlbArray| -> Vec<(u64, bool)> {
            let mut v: Vec<(u64, bool)> = t.valid_entries().map(|e| (e.vpn, e.huge)).collect();
            v.sort_unstable();
            v
        };
        for (va, pages, globals) in
            [(0x7000_3000u64, 9u64, false), (0x70e0_1000, 4, true), (0x7000_0000, 1, true)]
        {
            let f =
                Flush::Range { pcid: 1, va, pages, stride_2m: false, globals, final_only: false };
            let mut probe = fill();
            let n = probe.flush(&f);
            // The same entries removed by testing every entry.
            let mut scan = fill();
            let mut m = 0;
            for e in scan.entries.iter_mut() {
                if f.hits(e) {
                    e.valid = false;
                    m += 1;
                }
            }
            assert_eq!(n, m, "{va:#x}+{pages}");
            assert_eq!(left(&probe), left(&scan), "{va:#x}+{pages}");
            assert!(n > 0, "{va:#x}+{pages} removed nothing");
        }
    }
}
