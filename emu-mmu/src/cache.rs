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

/// One set-associative LRU cache array of line addresses.
#[derive(Clone, Debug)]
pub struct CacheArray {
    sets: usize,
    ways: usize,
    /// Line address + 1 (0 = invalid).
    tags: Vec<u64>,
    stamps: Vec<u64>,
    /// Exclusive (modified or sole-owner) state per slot; used by the L2.
    excl: Vec<bool>,
    clock: u64,
    /// Counters.
    pub stats: CacheStats,
}

impl CacheArray {
    /// An empty array of `size_kib` KiB and `ways` ways (64-byte lines).
    pub fn new(g: CacheGeometry) -> Self {
        let lines = (g.size_kib as usize * 1024) >> LINE_SHIFT;
        let ways = g.ways.max(1) as usize;
        let sets = (lines / ways).max(1);
        CacheArray {
            sets,
            ways,
            tags: vec![0; sets * ways],
            stamps: vec![0; sets * ways],
            excl: vec![false; sets * ways],
            clock: 0,
            stats: CacheStats::default(),
        }
    }

    #[inline(always)]
    fn base(&self, line: u64) -> usize {
        (line as usize % self.sets) * self.ways
    }

    /// Looks a line up, refreshing its recency on a hit.
    #[inline(always)]
    pub fn lookup(&mut self, line: u64) -> bool {
        self.stats.accesses += 1;
        let b = self.base(line);
        for k in b..b + self.ways {
            if self.tags[k] == line + 1 {
                self.clock += 1;
                self.stamps[k] = self.clock;
                self.stats.hits += 1;
                return true;
            }
        }
        self.stats.misses += 1;
        false
    }

    /// True if present, without touching recency or counters.
    pub fn contains(&self, line: u64) -> bool {
        let b = self.base(line);
        self.tags[b..b + self.ways].contains(&(line + 1))
    }

    /// Inserts a line (not present), returning the evicted line if any.
    pub fn insert(&mut self, line: u64) -> Option<u64> {
        let b = self.base(line);
        self.clock += 1;
        let slot = (b..b + self.ways).find(|&k| self.tags[k] == 0);
        let k = slot.unwrap_or_else(|| (b..b + self.ways).min_by_key(|&k| self.stamps[k]).unwrap_or(b));
        let ev = if self.tags[k] != 0 {
            self.stats.evictions += 1;
            Some(self.tags[k] - 1)
        } else {
            None
        };
        self.tags[k] = line + 1;
        self.stamps[k] = self.clock;
        self.excl[k] = false;
        ev
    }

    fn slot(&self, line: u64) -> Option<usize> {
        let b = self.base(line);
        (b..b + self.ways).find(|&k| self.tags[k] == line + 1)
    }

    /// True when the line is present and held exclusively.
    pub fn is_excl(&self, line: u64) -> bool {
        self.slot(line).is_some_and(|k| self.excl[k])
    }

    /// Sets the exclusive state of a present line.
    pub fn set_excl(&mut self, line: u64, on: bool) {
        if let Some(k) = self.slot(line) {
            self.excl[k] = on;
        }
    }

    /// Removes a line; true if it was present.
    pub fn remove(&mut self, line: u64) -> bool {
        let b = self.base(line);
        for k in b..b + self.ways {
            if self.tags[k] == line + 1 {
                self.tags[k] = 0;
                return true;
            }
        }
        false
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
    /// The line of the last access and whether this core holds it exclusively: repeated
    /// accesses to it are L1 hits with no change of state (a pure speed-up).
    last: (u64, bool),
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
                    last: (u64::MAX, false),
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

    fn transfer_fp(&self, from: usize, to: usize) -> u64 {
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
        let cc = &mut self.cores[c];
        if cc.last.0 == line && (cc.last.1 || !write) {
            cc.l1d.stats.accesses += 1;
            cc.l1d.stats.hits += 1;
            return 0;
        }
        self.access_slow(c, line, write)
    }

    #[inline(never)]
    fn access_slow(&mut self, c: usize, line: u64, write: bool) -> u64 {
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
            self.cores[c].last = (line, true);
            return stall;
        }
        let excl = in_l2 && self.cores[c].l2.is_excl(line);
        if in_l2 && (excl || !write) {
            // A private hit that needs no change of coherence state.
            if !in_l1 {
                self.cores[c].l1d.insert(line);
            }
            self.cores[c].last = (line, excl);
            return stall;
        }
        let cu = c as u16;
        let (owner, others) = {
            let e = self.dir.entry(line).or_default();
            (e.owner.filter(|&o| o != cu), e.sharers.iter().copied().filter(|&s| s != cu).collect::<Vec<u16>>())
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
                let far = others.iter().map(|&o| self.transfer_fp(o as usize, c)).max().unwrap_or(0);
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
                if self.cores[o as usize].last.0 == line {
                    self.cores[o as usize].last.1 = false;
                }
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
        self.cores[c].last = (line, write);
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
            if self.cores[c].last.0 == ev {
                self.cores[c].last = (u64::MAX, false);
            }
            let d = self.llc_of[c];
            if !self.llcs[d].contains(ev) {
                self.llcs[d].insert(ev);
            }
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
        if cc.last.0 == line {
            cc.last = (u64::MAX, false);
        }
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
