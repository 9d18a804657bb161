//! Data caches: per-core L1D and L2, one shared last-level cache per LLC domain (a
//! socket on Intel, a CCX on AMD), and a directory of which cores hold each line, so a
//! line that several cores write pays a transfer latency that depends on their distance
//! (same LLC domain, same socket, other socket). Only presence and timing are modelled:
//! data always lives in `PhysMem`.
//!
//! Protocol (MESI-like, invalidation based): a read miss in a core's private caches takes
//! the line from another core's cache if one holds it modified, else from the LLC, else
//! from memory; a write needs the line exclusively, so other copies are invalidated and a
//! modified copy elsewhere is transferred first. The L2 is inclusive of the L1D; the LLC
//! is a victim-filled shared cache without inclusion.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// log2 of the line size.
pub const LINE_SHIFT: u32 = 6;

/// Geometry and latency of one cache level.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheGeometry {
    /// Capacity in KiB.
    pub size_kib: u32,
    /// Associativity.
    pub ways: u32,
    /// Load-to-use latency of a hit at this level, cycles.
    pub latency_cycles: f64,
}

/// Cache hierarchy and topology parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheParams {
    /// Per-core L1 data cache.
    pub l1d: CacheGeometry,
    /// Per-core unified L2.
    pub l2: CacheGeometry,
    /// Shared last-level cache of one LLC domain.
    pub llc: CacheGeometry,
    /// Cores sharing one LLC.
    pub cores_per_llc: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// DRAM latency, cycles.
    pub memory_latency_cycles: f64,
    /// Line transfer between cores of one LLC domain, cycles.
    pub transfer_same_llc_cycles: f64,
    /// Line transfer between LLC domains of one socket, cycles.
    pub transfer_same_socket_cycles: f64,
    /// Line transfer between sockets, cycles.
    pub transfer_cross_socket_cycles: f64,
}

/// Counters of one cache array.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Accesses.
    pub accesses: u64,
    /// Hits.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// Lines evicted.
    pub evictions: u64,
}

/// Coherence counters of one core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CoherenceStats {
    /// Lines received from another core's cache.
    pub transfers_in: u64,
    /// Copies in other cores invalidated by this core's writes.
    pub invalidations_sent: u64,
    /// Lines of this core invalidated by other cores' writes.
    pub invalidations_received: u64,
}

/// One set-associative LRU cache array of line addresses. Each set is one contiguous
/// block of host memory: `ways` 32-bit tags (line address + 1; 0 = invalid; guest
/// memory is limited to 128 GiB so lines fit) followed by the ways' recency order as
/// bytes, most recent first. Keeping a set in one small block matters: the modelled LLC
/// is megabytes of metadata and the simulator's own cache misses dominate otherwise.
#[derive(Clone, Debug)]
pub struct CacheArray {
    sets: usize,
    /// `sets - 1` when the set count is a power of two (then indexing is a mask).
    mask: Option<usize>,
    ways: usize,
    /// Bytes per set block.
    stride: usize,
    blocks: Vec<u8>,
    /// Exclusive (modified or sole-owner) state per way; used by the L2.
    excl: Vec<bool>,
    /// Counters.
    pub stats: CacheStats,
}

impl CacheArray {
    /// An empty array of `size_kib` KiB and `ways` ways (64-byte lines); at most 255 ways.
    pub fn new(g: CacheGeometry) -> Self {
        let lines = (g.size_kib as usize * 1024) >> LINE_SHIFT;
        let ways = g.ways.clamp(1, 255) as usize;
        let sets = (lines / ways).max(1);
        let stride = (5 * ways + 7) & !7;
        let mut blocks = vec![0u8; sets * stride];
        for set in blocks.chunks_mut(stride) {
            for (j, b) in set[4 * ways..5 * ways].iter_mut().enumerate() {
                *b = j as u8;
            }
        }
        CacheArray {
            sets,
            mask: sets.is_power_of_two().then(|| sets - 1),
            ways,
            stride,
            blocks,
            excl: vec![false; sets * ways],
            stats: CacheStats::default(),
        }
    }

    /// Set index of a line.
    #[inline(always)]
    pub fn set_of(&self, line: u64) -> usize {
        match self.mask {
            Some(m) => line as usize & m,
            None => line as usize % self.sets,
        }
    }

    #[inline(always)]
    fn tag(&self, base: usize, k: usize) -> u32 {
        let o = base + 4 * k;
        u32::from_le_bytes([
            self.blocks[o],
            self.blocks[o + 1],
            self.blocks[o + 2],
            self.blocks[o + 3],
        ])
    }

    #[inline(always)]
    fn set_tag(&mut self, base: usize, k: usize, t: u32) {
        let o = base + 4 * k;
        self.blocks[o..o + 4].copy_from_slice(&t.to_le_bytes());
    }

    /// The tags of the set at `base`.
    #[inline(always)]
    fn tags(&self, base: usize) -> &[u8] {
        &self.blocks[base..base + 4 * self.ways]
    }

    /// The way holding `line` in the set at `base`.
    #[inline(always)]
    fn find(&self, base: usize, line: u64) -> Option<usize> {
        let t = ((line + 1) as u32).to_le_bytes();
        self.tags(base).chunks_exact(4).position(|c| c == t)
    }

    /// Makes way `k` the most recent of its set.
    #[inline(always)]
    fn touch(&mut self, base: usize, k: usize) {
        let ord = base + 4 * self.ways;
        let w = self.ways;
        let order = &mut self.blocks[ord..ord + w];
        // Move k to the front, shifting the more recent ways back by one (a short byte
        // loop: these sets are at most 16 ways, a memmove call would cost more).
        let mut prev = k as u8;
        for x in order.iter_mut() {
            let cur = *x;
            *x = prev;
            if cur as usize == k {
                return;
            }
            prev = cur;
        }
    }

    /// Looks a line up, refreshing its recency on a hit.
    #[inline(always)]
    pub fn lookup(&mut self, line: u64) -> bool {
        self.stats.accesses += 1;
        let base = self.set_of(line) * self.stride;
        match self.find(base, line) {
            Some(k) => {
                self.touch(base, k);
                self.stats.hits += 1;
                true
            }
            None => {
                self.stats.misses += 1;
                false
            }
        }
    }

    /// Looks a line up; on a miss inserts it. `Ok` on a hit, `Err(evicted)` on a miss.
    /// One pass over the set either way.
    #[inline(always)]
    pub fn lookup_or_insert(&mut self, line: u64) -> Result<(), Option<u64>> {
        self.stats.accesses += 1;
        let set = self.set_of(line);
        let base = set * self.stride;
        let tb = ((line + 1) as u32).to_le_bytes();
        let mut free = None;
        for (k, c) in self.tags(base).chunks_exact(4).enumerate() {
            if c == tb {
                self.touch(base, k);
                self.stats.hits += 1;
                return Ok(());
            }
            if c == [0; 4] && free.is_none() {
                free = Some(k);
            }
        }
        self.stats.misses += 1;
        let k = free.unwrap_or_else(|| self.blocks[base + 5 * self.ways - 1] as usize);
        let old = self.tag(base, k);
        self.set_tag(base, k, (line + 1) as u32);
        self.touch(base, k);
        self.excl[set * self.ways + k] = false;
        if old != 0 {
            self.stats.evictions += 1;
            Err(Some(u64::from(old) - 1))
        } else {
            Err(None)
        }
    }

    /// True if present, without touching recency or counters.
    pub fn contains(&self, line: u64) -> bool {
        self.find(self.set_of(line) * self.stride, line).is_some()
    }

    /// The way a new line takes: an invalid one, else the least recently used.
    #[inline(always)]
    fn victim(&self, base: usize) -> usize {
        self.tags(base)
            .chunks_exact(4)
            .position(|c| c == [0; 4])
            .unwrap_or_else(|| self.blocks[base + 5 * self.ways - 1] as usize)
    }

    /// Inserts a line (not present), returning the evicted line if any.
    pub fn insert(&mut self, line: u64) -> Option<u64> {
        let set = self.set_of(line);
        let base = set * self.stride;
        let k = self.victim(base);
        let old = self.tag(base, k);
        self.set_tag(base, k, (line + 1) as u32);
        self.touch(base, k);
        self.excl[set * self.ways + k] = false;
        if old != 0 {
            self.stats.evictions += 1;
            Some(u64::from(old) - 1)
        } else {
            None
        }
    }

    /// Inserts a line unless present (without refreshing it), in one pass over the set.
    pub fn insert_absent(&mut self, line: u64) {
        let set = self.set_of(line);
        let base = set * self.stride;
        let t = (line + 1) as u32;
        let tb = t.to_le_bytes();
        let mut free = None;
        for (k, c) in self.tags(base).chunks_exact(4).enumerate() {
            if c == tb {
                return;
            }
            if c == [0; 4] && free.is_none() {
                free = Some(k);
            }
        }
        let k = free.unwrap_or_else(|| self.blocks[base + 5 * self.ways - 1] as usize);
        if self.tag(base, k) != 0 {
            self.stats.evictions += 1;
        }
        self.set_tag(base, k, t);
        self.touch(base, k);
        self.excl[set * self.ways + k] = false;
    }

    /// True when the line is present and held exclusively.
    pub fn is_excl(&self, line: u64) -> bool {
        let set = self.set_of(line);
        self.find(set * self.stride, line).is_some_and(|k| self.excl[set * self.ways + k])
    }

    /// Sets the exclusive state of a present line.
    pub fn set_excl(&mut self, line: u64, on: bool) {
        let set = self.set_of(line);
        if let Some(k) = self.find(set * self.stride, line) {
            self.excl[set * self.ways + k] = on;
        }
    }

    /// Removes a line; true if it was present.
    pub fn remove(&mut self, line: u64) -> bool {
        let base = self.set_of(line) * self.stride;
        match self.find(base, line) {
            Some(k) => {
                self.set_tag(base, k, 0);
                true
            }
            None => false,
        }
    }
}

/// Who holds a line in private caches.
#[derive(Clone, Debug, Default)]
struct DirEntry {
    /// Cores whose L2 holds the line.
    sharers: Vec<u16>,
    /// The core holding it modified/exclusive, if any.
    owner: Option<u16>,
}

/// The private caches of one core.
#[derive(Clone, Debug)]
pub struct CoreCaches {
    /// L1 data cache.
    pub l1d: CacheArray,
    /// L2.
    pub l2: CacheArray,
    /// Coherence counters.
    pub coherence: CoherenceStats,
    /// The two most recently accessed lines (most recent first) and whether this core
    /// holds each exclusively. Invariant: both are in the L1, in different L1 sets, and
    /// each is the most recently used line of its set, so a repeated access to one is an
    /// L1 hit whose recency update would change nothing: it is answered here.
    last: [(u64, bool); 2],
}

const NO_LINE: (u64, bool) = (u64::MAX, false);

impl CoreCaches {
    /// Records `line` as the most recent access (see `last`).
    #[inline(always)]
    fn remember(&mut self, line: u64, excl: bool) {
        if self.last[0].0 != u64::MAX && self.l1d.set_of(self.last[0].0) != self.l1d.set_of(line) {
            self.last[1] = self.last[0];
        } else if self.last[1].0 != u64::MAX
            && self.l1d.set_of(self.last[1].0) == self.l1d.set_of(line)
        {
            self.last[1] = NO_LINE;
        }
        self.last[0] = (line, excl);
    }

    /// Forgets a line that left the L1 or lost exclusivity.
    fn forget(&mut self, line: u64) {
        for l in &mut self.last {
            if l.0 == line {
                *l = NO_LINE;
            }
        }
    }
}

/// The caches of a machine.
#[derive(Clone, Debug)]
pub struct CacheSystem {
    /// Per-core private caches.
    pub cores: Vec<CoreCaches>,
    /// Shared caches, one per LLC domain.
    pub llcs: Vec<CacheArray>,
    dir: FxHashMap<u64, DirEntry>,
    llc_of: Vec<usize>,
    socket_of: Vec<usize>,
    /// Extra cycles (fixed point 1/256) over an L1 hit.
    l2_fp: u64,
    llc_fp: u64,
    mem_fp: u64,
    xfer_llc_fp: u64,
    xfer_socket_fp: u64,
    xfer_cross_fp: u64,
    coherent: bool,
}

fn fp(c: f64) -> u64 {
    (c.max(0.0) * 256.0).round() as u64
}

impl CacheSystem {
    /// Caches for `n` cores.
    pub fn new(n: usize, p: &CacheParams) -> Self {
        let per_llc = p.cores_per_llc.max(1) as usize;
        let per_socket = p.cores_per_socket.max(1) as usize;
        let l1 = p.l1d.latency_cycles;
        CacheSystem {
            cores: (0..n)
                .map(|_| CoreCaches {
                    l1d: CacheArray::new(p.l1d),
                    l2: CacheArray::new(p.l2),
                    coherence: CoherenceStats::default(),
                    last: [NO_LINE; 2],
                })
                .collect(),
            llcs: (0..n.div_ceil(per_llc)).map(|_| CacheArray::new(p.llc)).collect(),
            dir: FxHashMap::default(),
            llc_of: (0..n).map(|c| c / per_llc).collect(),
            socket_of: (0..n).map(|c| c / per_socket).collect(),
            l2_fp: fp(p.l2.latency_cycles - l1),
            llc_fp: fp(p.llc.latency_cycles - l1),
            mem_fp: fp(p.memory_latency_cycles - l1),
            xfer_llc_fp: fp(p.transfer_same_llc_cycles - l1),
            xfer_socket_fp: fp(p.transfer_same_socket_cycles - l1),
            xfer_cross_fp: fp(p.transfer_cross_socket_cycles - l1),
            coherent: n > 1,
        }
    }

    /// Latency (1/256 cycles beyond an L1 hit) of moving a line from core `from`'s caches
    /// to core `to`'s.
    pub fn transfer_fp(&self, from: usize, to: usize) -> u64 {
        if self.llc_of[from] == self.llc_of[to] {
            self.xfer_llc_fp
        } else if self.socket_of[from] == self.socket_of[to] {
            self.xfer_socket_fp
        } else {
            self.xfer_cross_fp
        }
    }

    /// An access by core `c` to physical address `pa`; returns the stall beyond an L1
    /// hit, in 1/256 cycles.
    #[inline(always)]
    pub fn access(&mut self, c: usize, pa: u64, write: bool) -> u64 {
        let line = pa >> LINE_SHIFT;
        let coherent = self.coherent;
        let cc = &mut self.cores[c];
        let [a, b] = cc.last;
        if a.0 == line && (a.1 || !write || !coherent) {
            cc.l1d.stats.accesses += 1;
            cc.l1d.stats.hits += 1;
            return 0;
        }
        if b.0 == line && (b.1 || !write || !coherent) {
            cc.l1d.stats.accesses += 1;
            cc.l1d.stats.hits += 1;
            cc.last = [b, a];
            return 0;
        }
        self.access_slow(c, line, write)
    }

    /// A miss of the last-line shortcut with a single core: no coherence, and each level
    /// looked up and filled in one pass.
    #[inline(never)]
    fn access_alone(&mut self, c: usize, line: u64) -> u64 {
        let mut stall = 0;
        if self.cores[c].l1d.lookup_or_insert(line).is_err() {
            match self.cores[c].l2.lookup_or_insert(line) {
                Ok(()) => stall += self.l2_fp,
                Err(ev) => {
                    let d = self.llc_of[c];
                    if let Some(ev) = ev {
                        // Inclusive L2: the victim leaves the L1 too, and goes to the LLC.
                        self.cores[c].l1d.remove(ev);
                        self.cores[c].forget(ev);
                        self.llcs[d].insert_absent(ev);
                    }
                    stall += match self.llcs[d].lookup_or_insert(line) {
                        Ok(()) => self.llc_fp,
                        Err(_) => self.mem_fp,
                    };
                }
            }
        }
        self.cores[c].remember(line, true);
        stall
    }

    #[inline(never)]
    fn access_slow(&mut self, c: usize, line: u64, write: bool) -> u64 {
        if !self.coherent {
            return self.access_alone(c, line);
        }
        let mut stall = 0;
        let in_l1 = self.cores[c].l1d.lookup(line);
        let in_l2 = in_l1 || self.cores[c].l2.lookup(line);
        if !in_l1 && in_l2 {
            stall += self.l2_fp;
        }
        if !self.coherent {
            if !in_l2 {
                stall += self.llc_or_memory(c, line);
                self.fill_private(c, line);
            } else if !in_l1 {
                self.cores[c].l1d.insert(line);
            }
            self.cores[c].remember(line, true);
            return stall;
        }
        let excl = in_l2 && self.cores[c].l2.is_excl(line);
        if in_l2 && (excl || !write) {
            // A private hit that needs no change of coherence state.
            if !in_l1 {
                self.cores[c].l1d.insert(line);
            }
            self.cores[c].remember(line, excl);
            return stall;
        }
        let cu = c as u16;
        let (owner, others) = {
            let e = self.dir.entry(line).or_default();
            (
                e.owner.filter(|&o| o != cu),
                e.sharers.iter().copied().filter(|&s| s != cu).collect::<Vec<u16>>(),
            )
        };
        if write {
            if let Some(o) = owner {
                // Fetch the modified copy.
                stall = stall.max(self.transfer_fp(o as usize, c));
                self.cores[c].coherence.transfers_in += 1;
            } else if !in_l2 {
                stall += self.llc_or_memory(c, line);
            } else if !others.is_empty() {
                // Upgrade a shared line: the invalidation round trip to the farthest sharer.
                let far =
                    others.iter().map(|&o| self.transfer_fp(o as usize, c)).max().unwrap_or(0);
                stall = stall.max(far);
            }
            for &o in &others {
                self.drop_private(o as usize, line);
                self.cores[o as usize].coherence.invalidations_received += 1;
            }
            self.cores[c].coherence.invalidations_sent += others.len() as u64;
            let e = self.dir.entry(line).or_default();
            e.sharers.clear();
            e.sharers.push(cu);
            e.owner = Some(cu);
        } else {
            if let Some(o) = owner {
                // Read a line another core modified: transferred, both keep it shared.
                stall += self.transfer_fp(o as usize, c);
                self.cores[c].coherence.transfers_in += 1;
                self.cores[o as usize].l2.set_excl(line, false);
                self.cores[o as usize].forget(line);
            } else {
                stall += self.llc_or_memory(c, line);
            }
            let e = self.dir.entry(line).or_default();
            e.owner = None;
            if !e.sharers.contains(&cu) {
                e.sharers.push(cu);
            }
        }
        if !in_l2 {
            self.fill_private(c, line);
        } else if !in_l1 {
            self.cores[c].l1d.insert(line);
        }
        self.cores[c].l2.set_excl(line, write);
        self.cores[c].remember(line, write);
        stall
    }

    fn llc_or_memory(&mut self, c: usize, line: u64) -> u64 {
        let d = self.llc_of[c];
        if self.llcs[d].lookup(line) {
            self.llc_fp
        } else {
            self.llcs[d].insert(line);
            self.mem_fp
        }
    }

    fn fill_private(&mut self, c: usize, line: u64) {
        if let Some(ev) = self.cores[c].l2.insert(line) {
            // Inclusive L2: the victim leaves the L1 too, and goes to the LLC.
            self.cores[c].l1d.remove(ev);
            self.cores[c].forget(ev);
            let d = self.llc_of[c];
            self.llcs[d].insert_absent(ev);
            if self.coherent {
                let cu = c as u16;
                if let Some(e) = self.dir.get_mut(&ev) {
                    e.sharers.retain(|&s| s != cu);
                    if e.owner == Some(cu) {
                        e.owner = None;
                    }
                    if e.sharers.is_empty() {
                        self.dir.remove(&ev);
                    }
                }
            }
        }
        self.cores[c].l1d.insert(line);
    }

    fn drop_private(&mut self, c: usize, line: u64) {
        let cc = &mut self.cores[c];
        cc.l1d.remove(line);
        cc.l2.remove(line);
        cc.forget(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CacheParams {
        CacheParams {
            l1d: CacheGeometry { size_kib: 32, ways: 8, latency_cycles: 4.0 },
            l2: CacheGeometry { size_kib: 1024, ways: 16, latency_cycles: 14.0 },
            llc: CacheGeometry { size_kib: 22528, ways: 11, latency_cycles: 50.0 },
            cores_per_llc: 4,
            cores_per_socket: 4,
            memory_latency_cycles: 200.0,
            transfer_same_llc_cycles: 100.0,
            transfer_same_socket_cycles: 100.0,
            transfer_cross_socket_cycles: 280.0,
        }
    }

    #[test]
    fn levels_and_latencies() {
        let mut cs = CacheSystem::new(1, &params());
        assert_eq!(cs.access(0, 0x1000, false) >> 8, 196, "cold miss goes to memory");
        assert_eq!(cs.access(0, 0x1008, false), 0, "same line hits L1");
        // Evict 0x1000 from L1 (8 ways, 64 sets): 8 more lines in the same set.
        for k in 1..=8u64 {
            cs.access(0, 0x1000 + k * 64 * 64, false);
        }
        assert_eq!(cs.access(0, 0x1000, false) >> 8, 10, "L2 hit");
    }

    #[test]
    fn lru_order_within_a_set() {
        let mut a = CacheArray::new(CacheGeometry { size_kib: 1, ways: 4, latency_cycles: 1.0 });
        // 16 lines, 4 sets: lines 0, 4, 8, 12, 16 share set 0.
        for l in [0u64, 4, 8, 12] {
            a.insert(l);
        }
        assert!(a.lookup(0));
        assert_eq!(a.insert(16), Some(4), "least recently used goes first");
        assert!(a.lookup(8) && a.lookup(12) && a.lookup(16) && !a.lookup(4));
        assert_eq!(a.insert(20), Some(0));
    }

    #[test]
    fn writes_by_several_cores_pay_transfers() {
        let mut cs = CacheSystem::new(8, &params());
        cs.access(0, 0x40, true);
        let t = cs.access(1, 0x40, true);
        assert_eq!(t >> 8, 96, "same-socket transfer of a modified line");
        let t = cs.access(5, 0x40, true);
        assert_eq!(t >> 8, 276, "cross-socket transfer");
        assert_eq!(cs.cores[1].coherence.invalidations_received, 1);
        // Core 1 lost the line: reading it again transfers it back.
        let t = cs.access(1, 0x40, false);
        assert_eq!(t >> 8, 276);
        assert_eq!(cs.access(1, 0x40, false), 0);
    }
}
