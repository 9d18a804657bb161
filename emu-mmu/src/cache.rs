//! Data caches: per-core L1D and L2, one shared last-level cache per LLC domain (a
//! socket on Intel, a CCX on AMD), and a directory of which cores may hold each line
//! (checked against their L2s when it matters), so a line that several cores write pays
//! a transfer latency that depends on their distance (same LLC domain, same socket,
//! other socket). Only presence and timing are modelled:
//! data always lives in `PhysMem`.
//!
//! Protocol (MESI-like, invalidation based): a read miss in a core's private caches takes
//! the line from another core's cache if one holds it modified, else from the LLC, else
//! from memory; a write needs the line exclusively, so other copies are invalidated and a
//! modified copy elsewhere is transferred first. The L2 is inclusive of the L1D; the LLC
//! is a victim-filled shared cache without inclusion.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

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

/// Tag word of padding ways (never a line's tag: guest memory is at most 128 GiB, so
/// tags stay below 2^31 + 2; never free).
const PAD_TAG: u32 = u32::MAX;

/// One set-associative LRU cache array of line addresses. Each set is one contiguous
/// block of host memory: the ways' 32-bit tags (line address + 1; 0 = invalid; guest
/// memory is limited to 128 GiB so lines fit), padded with `PAD_TAG` to a multiple of
/// four, followed by the ways' recency order as bytes, most recent first, padded to a
/// multiple of 16. Keeping a set in one small block matters: the modelled LLC is
/// megabytes of metadata. The padding lets a set be searched four tags at a time and an
/// order of up to 16 ways be updated in one vector operation (SSE2, which every x86-64
/// host has); a miss walks every way of three or four sets, and a way-at-a-time search
/// with its exit mispredicted dominated the simulator's time on cache-missing programs.
#[derive(Clone, Debug)]
pub struct CacheArray {
    sets: usize,
    /// `sets - 1` when the set count is a power of two (then indexing is a mask).
    mask: Option<usize>,
    ways: usize,
    /// Tag words per set (`ways` rounded up to a multiple of 4).
    tag_words: usize,
    /// Bytes per set block.
    stride: usize,
    blocks: Vec<u8>,
    /// Exclusive (modified or sole-owner) state per way, when tracked (the L1D and L2
    /// of a machine with several cores; the L1D mirrors the L2); empty otherwise.
    excl: Vec<bool>,
    /// Counters.
    pub stats: CacheStats,
}

/// Most ways a cache array supports (the search returns a 64-bit mask of ways).
pub const MAX_WAYS: u32 = 64;

impl CacheArray {
    /// An empty array of `size_kib` KiB and `ways` ways (64-byte lines); `ways` is at
    /// most `MAX_WAYS` (profiles are checked against it).
    pub fn new(g: CacheGeometry) -> Self {
        let lines = (g.size_kib as usize * 1024) >> LINE_SHIFT;
        let ways = g.ways.clamp(1, MAX_WAYS) as usize;
        let sets = (lines / ways).max(1);
        let tag_words = ways.next_multiple_of(4);
        let stride = 4 * tag_words + ways.next_multiple_of(16);
        let mut blocks = vec![0u8; sets * stride];
        for set in blocks.chunks_mut(stride) {
            for pad in set[4 * ways..4 * tag_words].chunks_exact_mut(4) {
                pad.copy_from_slice(&PAD_TAG.to_le_bytes());
            }
            for (j, b) in set[4 * tag_words..].iter_mut().enumerate() {
                *b = if j < ways { j as u8 } else { u8::MAX };
            }
        }
        CacheArray {
            sets,
            mask: sets.is_power_of_two().then(|| sets - 1),
            ways,
            tag_words,
            stride,
            blocks,
            excl: Vec::new(),
            stats: CacheStats::default(),
        }
    }

    /// `new`, tracking the exclusive state of each line (`state`, `set_excl`) if
    /// `tracked` (the private caches of a machine with several cores).
    pub fn with_exclusive(g: CacheGeometry, tracked: bool) -> Self {
        let mut a = Self::new(g);
        if tracked {
            a.excl = vec![false; a.sets * a.ways];
        }
        a
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

    /// Asks the host to bring the metadata of `line`'s set into its caches: a big
    /// array (the LLC) is megabytes, and a miss looks up two of its sets back to back.
    #[inline(always)]
    pub fn prefetch(&self, line: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::*;
            let p = self.blocks[self.set_of(line) * self.stride..].as_ptr();
            // SAFETY: a prefetch never faults and has no architectural effect.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = line;
    }

    /// Masks of the ways of the set at `base` whose tag is `t` and of the free ways.
    #[inline(always)]
    fn search(&self, base: usize, t: u32) -> (u64, u64) {
        let tags = &self.blocks[base..base + 4 * self.tag_words];
        let (mut hit, mut free) = (0u64, 0u64);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of the x86-64 baseline; each chunk is 16 readable bytes
        // and the unaligned load has no alignment requirement.
        unsafe {
            use core::arch::x86_64::*;
            let want = _mm_set1_epi32(t as i32);
            let zero = _mm_setzero_si128();
            for (i, c) in tags.chunks_exact(16).enumerate() {
                let v = _mm_loadu_si128(c.as_ptr().cast());
                let h = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(v, want))) as u64;
                let f = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(v, zero))) as u64;
                hit |= h << (4 * i);
                free |= f << (4 * i);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        for (k, c) in tags.chunks_exact(4).enumerate() {
            let w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            hit |= u64::from(w == t) << k;
            free |= u64::from(w == 0) << k;
        }
        (hit, free)
    }

    /// The way holding `line` in the set at `base`.
    #[inline(always)]
    fn find(&self, base: usize, line: u64) -> Option<usize> {
        let (hit, _) = self.search(base, (line + 1) as u32);
        (hit != 0).then(|| hit.trailing_zeros() as usize)
    }

    /// The least recently used way of the set at `base`.
    #[inline(always)]
    fn lru(&self, base: usize) -> usize {
        self.blocks[base + 4 * self.tag_words + self.ways - 1] as usize
    }

    /// Makes way `k` the most recent of its set.
    #[inline(always)]
    fn touch(&mut self, base: usize, k: usize) {
        let ord = base + 4 * self.tag_words;
        #[cfg(target_arch = "x86_64")]
        if self.ways <= 16 {
            use core::arch::x86_64::*;
            let live = (1u32 << self.ways) - 1;
            let order = &mut self.blocks[ord..ord + 16];
            // SAFETY: SSE2 is part of the x86-64 baseline; `order` is 16 readable and
            // writable bytes and the unaligned load and store need no alignment.
            unsafe {
                let v = _mm_loadu_si128(order.as_ptr().cast());
                // The position p of k in the order: bytes 0..=p move back by one and k
                // goes to the front; bytes after p stay.
                let at = _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(k as i8))) as u32;
                let p = (at & live).trailing_zeros().min(15);
                let shifted = _mm_or_si128(_mm_slli_si128::<1>(v), _mm_cvtsi32_si128(k as i32));
                let iota = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
                let moved = _mm_cmpgt_epi8(_mm_set1_epi8(p as i8 + 1), iota);
                let r = _mm_or_si128(_mm_and_si128(moved, shifted), _mm_andnot_si128(moved, v));
                _mm_storeu_si128(order.as_mut_ptr().cast(), r);
            }
            return;
        }
        let w = self.ways;
        let order = &mut self.blocks[ord..ord + w];
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

    /// Puts `line` in way `k` (the way a miss chose) as the most recent; the line it
    /// replaces, if any.
    #[inline(always)]
    fn fill(&mut self, set: usize, base: usize, k: usize, line: u64) -> Option<u64> {
        debug_assert!(k < self.ways);
        let old = self.tag(base, k);
        self.set_tag(base, k, (line + 1) as u32);
        self.touch(base, k);
        if !self.excl.is_empty() {
            self.excl[set * self.ways + k] = false;
        }
        (old != 0).then(|| {
            self.stats.evictions += 1;
            u64::from(old) - 1
        })
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
    /// One search of the set either way.
    #[inline(always)]
    pub fn lookup_or_insert(&mut self, line: u64) -> Result<(), Option<u64>> {
        self.stats.accesses += 1;
        let set = self.set_of(line);
        let base = set * self.stride;
        let (hit, free) = self.search(base, (line + 1) as u32);
        if hit != 0 {
            self.touch(base, hit.trailing_zeros() as usize);
            self.stats.hits += 1;
            return Ok(());
        }
        self.stats.misses += 1;
        let k = if free != 0 { free.trailing_zeros() as usize } else { self.lru(base) };
        Err(self.fill(set, base, k, line))
    }

    /// The line an insertion of `line` would evict (none when `line` is present or a
    /// way is free), without changing anything.
    #[inline(always)]
    pub fn victim_if_absent(&self, line: u64) -> Option<u64> {
        let base = self.set_of(line) * self.stride;
        let (hit, free) = self.search(base, (line + 1) as u32);
        if hit != 0 || free != 0 {
            return None;
        }
        Some(u64::from(self.tag(base, self.lru(base))) - 1)
    }

    /// `lookup` that also answers whether the line is held exclusively (false when that
    /// is not tracked): `Some(exclusive)` on a hit.
    #[inline(always)]
    pub fn lookup_excl(&mut self, line: u64) -> Option<bool> {
        self.stats.accesses += 1;
        let set = self.set_of(line);
        let base = set * self.stride;
        match self.find(base, line) {
            Some(k) => {
                self.touch(base, k);
                self.stats.hits += 1;
                Some(!self.excl.is_empty() && self.excl[set * self.ways + k])
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// `lookup_excl` that inserts a missing line in state `excl`: `Ok(exclusive)` on a
    /// hit, `Err(evicted)` on a miss. One search of the set either way.
    #[inline(always)]
    pub fn lookup_excl_or_insert(&mut self, line: u64, excl: bool) -> Result<bool, Option<u64>> {
        self.stats.accesses += 1;
        let set = self.set_of(line);
        let base = set * self.stride;
        let (hit, free) = self.search(base, (line + 1) as u32);
        if hit != 0 {
            let k = hit.trailing_zeros() as usize;
            self.touch(base, k);
            self.stats.hits += 1;
            return Ok(!self.excl.is_empty() && self.excl[set * self.ways + k]);
        }
        self.stats.misses += 1;
        let k = if free != 0 { free.trailing_zeros() as usize } else { self.lru(base) };
        let ev = self.fill(set, base, k, line);
        if !self.excl.is_empty() {
            self.excl[set * self.ways + k] = excl;
        }
        Err(ev)
    }

    /// Inserts a line (not present) in state `excl`.
    #[inline(always)]
    pub fn insert_excl(&mut self, line: u64, excl: bool) {
        let set = self.set_of(line);
        let base = set * self.stride;
        let (_, free) = self.search(base, 0);
        let k = if free != 0 { free.trailing_zeros() as usize } else { self.lru(base) };
        self.fill(set, base, k, line);
        if !self.excl.is_empty() {
            self.excl[set * self.ways + k] = excl;
        }
    }

    /// True if present, without touching recency or counters.
    pub fn contains(&self, line: u64) -> bool {
        self.find(self.set_of(line) * self.stride, line).is_some()
    }

    /// Inserts a line (not present), returning the evicted line if any.
    pub fn insert(&mut self, line: u64) -> Option<u64> {
        let set = self.set_of(line);
        let base = set * self.stride;
        let (_, free) = self.search(base, 0);
        let k = if free != 0 { free.trailing_zeros() as usize } else { self.lru(base) };
        self.fill(set, base, k, line)
    }

    /// Inserts a line unless present (without refreshing it), in one search of the set.
    pub fn insert_absent(&mut self, line: u64) {
        let set = self.set_of(line);
        let base = set * self.stride;
        let (hit, free) = self.search(base, (line + 1) as u32);
        if hit == 0 {
            let k = if free != 0 { free.trailing_zeros() as usize } else { self.lru(base) };
            self.fill(set, base, k, line);
        }
    }

    /// `Some(exclusive)` if the line is present, without touching recency or counters.
    #[inline(always)]
    pub fn state(&self, line: u64) -> Option<bool> {
        let set = self.set_of(line);
        let k = self.find(set * self.stride, line)?;
        Some(!self.excl.is_empty() && self.excl[set * self.ways + k])
    }

    /// Sets the exclusive state of a present line (when tracked).
    pub fn set_excl(&mut self, line: u64, on: bool) {
        let set = self.set_of(line);
        if self.excl.is_empty() {
            return;
        }
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

/// Cores that hold (or, in a directory entry, may hold) a line: a handful at most in
/// the common case, kept inline.
type Sharers = SmallVec<[u16; 6]>;

/// Where a core's private caches had a line when an access reached the directory.
#[derive(Clone, Copy, Debug)]
enum Private {
    /// In the L1 (and so the L2).
    L1,
    /// In the L2 only.
    L2,
    /// Nowhere: the L2 lookup inserted it, evicting the line given.
    Filled(Option<u64>),
}

/// Cores that may hold a line: its directory entry lists up to three inline.
const INLINE_CANDIDATES: usize = 3;

/// Directory entry of one line: the cores whose L2 may hold it. The list is a superset
/// of the holders (a core that evicted the line stays listed until the next access
/// that needs the line's holders checks each candidate's L2 and prunes it).
#[derive(Clone, Copy, Debug, Default)]
struct DirLine {
    count: u16,
    ids: [u16; INLINE_CANDIDATES],
}

/// Which cores' private caches may hold each line: a flat array indexed by physical
/// line number (8 bytes per 64-byte line, up to the highest line of a shared page, so
/// at most an eighth of the guest memory in use), so finding a
/// line's candidates is one indexed load whose locality follows the guest's own. The
/// truth (present, and exclusive or not) lives in the candidates' L2 arrays. Keeping
/// the list exact would mean updating the entry of every line an L2 evicts, a host
/// cache miss per simulated miss (and a hash map here cost two). Lines listing more
/// than three cores (page tables walked by every core of an mm, shared counters) keep
/// their list in a side map.
#[derive(Clone, Debug, Default)]
struct Directory {
    /// Per 4 KiB page: the one core that has cached its lines, `UNTOUCHED` or `SHARED`.
    /// A page private to one core (most data of most programs) keeps no line entries.
    pages: Vec<u16>,
    lines: Vec<DirLine>,
    many: FxHashMap<u64, Sharers>,
}

/// `Directory::pages` value of a page no core has cached.
const UNTOUCHED: u16 = u16::MAX;
/// `Directory::pages` value of a page whose lines more than one core has cached.
const SHARED: u16 = u16::MAX - 1;

impl Directory {
    /// True if the page holding `line` has only ever been cached by core `c` (its lines
    /// need no directory entries then). The first other core to cache one of its lines
    /// makes it shared for good, listing `c` as a candidate holder of each of its lines.
    #[inline(always)]
    fn private_to(&mut self, line: u64, c: u16) -> bool {
        let page = (line >> (12 - LINE_SHIFT)) as usize;
        if page >= self.pages.len() {
            self.pages.resize((page + 1).next_multiple_of(1 << 8), UNTOUCHED);
        }
        match self.pages[page] {
            p if p == c => true,
            UNTOUCHED => {
                self.pages[page] = c;
                true
            }
            SHARED => false,
            first => {
                self.pages[page] = SHARED;
                let l0 = (page as u64) << (12 - LINE_SHIFT);
                for l in l0..l0 + (1 << (12 - LINE_SHIFT)) {
                    self.set(l, &[first]);
                }
                false
            }
        }
    }

    /// The cores that may hold `line`.
    #[inline(always)]
    fn candidates(&self, line: u64) -> Sharers {
        match self.lines.get(line as usize) {
            None => Sharers::new(),
            Some(d) if d.count as usize <= INLINE_CANDIDATES => {
                SmallVec::from_slice(&d.ids[..d.count as usize])
            }
            Some(_) => self.many.get(&line).cloned().unwrap_or_default(),
        }
    }

    /// Replaces the candidates of `line`.
    #[inline(always)]
    fn set(&mut self, line: u64, ids: &[u16]) {
        let i = line as usize;
        if i >= self.lines.len() {
            // Grow in 1 MiB steps of covered memory.
            self.lines.resize((i + 1).next_multiple_of(1 << 14), DirLine::default());
        }
        let d = &mut self.lines[i];
        if d.count as usize > INLINE_CANDIDATES {
            self.many.remove(&line);
        }
        d.count = ids.len() as u16;
        if ids.len() <= INLINE_CANDIDATES {
            d.ids[..ids.len()].copy_from_slice(ids);
        } else {
            self.many.insert(line, SmallVec::from_slice(ids));
        }
    }

    /// True when `line` lists two or more candidates: then no core holds it exclusively
    /// (only a write makes a line exclusive, and a write leaves its writer the sole
    /// candidate; every later reader joins the list).
    fn shared_by_several(&self, line: u64) -> bool {
        self.lines.get(line as usize).is_some_and(|d| d.count >= 2)
    }

    /// Adds core `c` to the candidates of `line` (which has some).
    fn add(&mut self, line: u64, c: u16) {
        let Some(d) = self.lines.get_mut(line as usize) else { return };
        let n = d.count as usize;
        if n <= INLINE_CANDIDATES {
            if d.ids[..n].contains(&c) {
                return;
            }
            if n < INLINE_CANDIDATES {
                d.ids[n] = c;
            } else {
                let mut v: Sharers = SmallVec::from_slice(&d.ids);
                v.push(c);
                self.many.insert(line, v);
            }
            d.count += 1;
        } else {
            let v = self.many.entry(line).or_default();
            if !v.contains(&c) {
                v.push(c);
                d.count = v.len() as u16;
            }
        }
    }
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
    dir: Directory,
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
        assert!(n < usize::from(SHARED), "core ids must stay below the directory's markers");
        let per_llc = p.cores_per_llc.max(1) as usize;
        let per_socket = p.cores_per_socket.max(1) as usize;
        let l1 = p.l1d.latency_cycles;
        CacheSystem {
            cores: (0..n)
                .map(|_| CoreCaches {
                    l1d: CacheArray::with_exclusive(p.l1d, n > 1),
                    l2: CacheArray::with_exclusive(p.l2, n > 1),
                    coherence: CoherenceStats::default(),
                    last: [NO_LINE; 2],
                })
                .collect(),
            llcs: (0..n.div_ceil(per_llc)).map(|_| CacheArray::new(p.llc)).collect(),
            dir: Directory::default(),
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
            let d = self.llc_of[c];
            if let Some(ev) = self.cores[c].l2.victim_if_absent(line) {
                self.llcs[d].prefetch(ev);
            }
            self.llcs[d].prefetch(line);
            match self.cores[c].l2.lookup_or_insert(line) {
                Ok(()) => stall += self.l2_fp,
                Err(ev) => {
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

    /// A miss of the last-line shortcut with several cores. Each private cache is
    /// searched once on the way in; a line missing from the L2 is inserted by that
    /// search (in the state this access leaves it in), and the LLC sets of the line and
    /// of the L2's victim are prefetched while the directory is consulted.
    #[inline(never)]
    fn access_slow(&mut self, c: usize, line: u64, write: bool) -> u64 {
        if !self.coherent {
            return self.access_alone(c, line);
        }
        let cc = &mut self.cores[c];
        if let Some(excl) = cc.l1d.lookup_excl(line) {
            if excl || !write {
                cc.remember(line, excl);
                return 0;
            }
            return self.coherent_miss(c, line, write, Private::L1, 0);
        }
        match cc.l2.lookup_excl_or_insert(line, write) {
            Ok(excl) => {
                if excl || !write {
                    // A private hit that needs no change of coherence state.
                    cc.l1d.insert_excl(line, excl);
                    cc.remember(line, excl);
                    return self.l2_fp;
                }
                self.coherent_miss(c, line, write, Private::L2, self.l2_fp)
            }
            Err(ev) => {
                let d = self.llc_of[c];
                if let Some(ev) = ev {
                    self.llcs[d].prefetch(ev);
                }
                self.llcs[d].prefetch(line);
                self.coherent_miss(c, line, write, Private::Filled(ev), 0)
            }
        }
    }

    /// The part of an access that needs the directory: a private miss, or a write to a
    /// line held shared. `stall` is what the private lookups cost so far.
    fn coherent_miss(
        &mut self,
        c: usize,
        line: u64,
        write: bool,
        had: Private,
        mut stall: u64,
    ) -> u64 {
        let in_l2 = !matches!(had, Private::Filled(_));
        // Who holds the line (checking each candidate's L2), then its holders after this
        // access: the writer alone, or the readers and this core.
        let cu = c as u16;
        let mut others = Sharers::new();
        let mut owner = None;
        let private = self.dir.private_to(line, cu);
        if !private && !write && self.dir.shared_by_several(line) {
            // A read of a line several cores share: nobody holds it exclusively, so
            // there is no owner to find; the reader joins the candidates (stale ones are
            // pruned by the next write, which checks each). This keeps a line read by
            // every core (a flush request, an mm's tlb_gen) from costing a check of
            // every sharer's L2 at each read.
            self.dir.add(line, cu);
        } else if !private {
            others = self.dir.candidates(line);
            others.retain(|o| {
                *o != cu
                    && match self.cores[*o as usize].l2.state(line) {
                        Some(excl) => {
                            if excl {
                                owner = Some(*o);
                            }
                            true
                        }
                        None => false,
                    }
            });
            if write {
                self.dir.set(line, &[cu]);
            } else {
                let mut now = others.clone();
                now.push(cu);
                self.dir.set(line, &now);
            }
        }
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
        } else if let Some(o) = owner {
            // Read a line another core modified: transferred, both keep it shared.
            stall += self.transfer_fp(o as usize, c);
            self.cores[c].coherence.transfers_in += 1;
            let oc = &mut self.cores[o as usize];
            oc.l2.set_excl(line, false);
            oc.l1d.set_excl(line, false);
            oc.forget(line);
        } else {
            stall += self.llc_or_memory(c, line);
        }
        match had {
            Private::L1 => {
                self.cores[c].l2.set_excl(line, write);
                self.cores[c].l1d.set_excl(line, write);
            }
            Private::L2 => {
                self.cores[c].l2.set_excl(line, write);
                self.cores[c].l1d.insert_excl(line, write);
            }
            Private::Filled(ev) => {
                if let Some(ev) = ev {
                    // Inclusive L2: the victim leaves the L1 too, and goes to the LLC.
                    self.cores[c].l1d.remove(ev);
                    self.cores[c].forget(ev);
                    let d = self.llc_of[c];
                    self.llcs[d].insert_absent(ev);
                }
                self.cores[c].l1d.insert_excl(line, write);
            }
        }
        self.cores[c].remember(line, write);
        stall
    }

    fn llc_or_memory(&mut self, c: usize, line: u64) -> u64 {
        let d = self.llc_of[c];
        match self.llcs[d].lookup_or_insert(line) {
            Ok(()) => self.llc_fp,
            Err(_) => self.mem_fp,
        }
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
    fn a_write_invalidates_every_reader_however_many() {
        let mut cs = CacheSystem::new(8, &params());
        // Core 0 has the page to itself first; then six more cores read the line (more
        // than the directory lists inline), and core 7 writes it.
        cs.access(0, 0x2000, false);
        for c in 1..7 {
            cs.access(c, 0x2000, false);
        }
        assert_eq!(cs.access(7, 0x2000, true) >> 8, 46, "clean copy from core 7's LLC");
        assert_eq!(cs.cores[7].coherence.invalidations_sent, 7);
        for c in 0..7 {
            assert_eq!(cs.cores[c].coherence.invalidations_received, 1, "core {c}");
            assert!(!cs.cores[c].l2.contains(0x2000 >> LINE_SHIFT), "core {c}");
        }
        // Another line of the page, cached by core 0 while the page was private, is still
        // found there now that the page is shared: core 1's write invalidates it.
        cs.access(0, 0x2040, true);
        cs.access(1, 0x2040, true);
        assert!(!cs.cores[0].l2.contains(0x2040 >> LINE_SHIFT));
        assert_eq!(cs.cores[1].coherence.transfers_in, 1, "modified copy moved from core 0");
    }

    #[test]
    fn evicted_holders_are_not_invalidated() {
        let mut cs = CacheSystem::new(2, &params());
        cs.access(0, 0x40, false);
        cs.access(1, 0x40, false);
        // Core 0 evicts the line from its L2 (16 ways, 1024 sets).
        for k in 1..=16u64 {
            cs.access(0, 0x40 + k * 1024 * 64, false);
        }
        assert!(!cs.cores[0].l2.contains(1));
        cs.access(1, 0x40, true);
        assert_eq!(cs.cores[1].coherence.invalidations_sent, 0, "core 0 no longer holds it");
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
