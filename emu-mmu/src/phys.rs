//! Guest physical memory: 4 KiB frames in one growable host buffer, a frame allocator
//! with reference counts (for copy-on-write sharing), and the bookkeeping that tells
//! the decoded-code cache when a frame holding code is written or released.

use thiserror::Error;

/// Size of a base page.
pub const PAGE_SIZE: u64 = 4096;

/// A physical frame number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(pub u64);

impl Pfn {
    /// Physical address of the frame's first byte.
    #[inline]
    pub fn addr(self) -> u64 {
        self.0 << 12
    }
}

/// Physical memory is exhausted.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("guest physical memory exhausted ({limit_mib} MiB)")]
pub struct OutOfMemory {
    /// The configured limit.
    pub limit_mib: u64,
}

/// The coherence oracle's log of page-table changes: a generation number that every
/// change of a paging-structure entry (a clear, a permission downgrade, a remap) bumps,
/// and the generation of the last change of each entry.
#[derive(Debug, Default)]
pub struct PteLog {
    gen: u64,
    changed: rustc_hash::FxHashMap<u64, u64>,
}

/// Guest physical memory.
pub struct PhysMem {
    ram: Vec<u8>,
    refcount: Vec<u32>,
    free: Vec<u64>,
    /// Frames whose decoded instructions are cached somewhere.
    code: Vec<bool>,
    invalidated: Vec<u64>,
    limit_frames: u64,
    /// Frames currently allocated.
    pub allocated: u64,
    /// Most frames ever allocated at once.
    pub peak_allocated: u64,
    /// Page-table change log of the coherence oracle, when enabled.
    pub pte_log: Option<PteLog>,
}

impl PhysMem {
    /// Empty memory that may grow to `limit_mib` MiB. Frame 0 is reserved so that a zero
    /// physical address never names a valid frame.
    pub fn new(limit_mib: u64) -> Self {
        PhysMem {
            ram: vec![0; PAGE_SIZE as usize],
            refcount: vec![1],
            free: Vec::new(),
            code: vec![false],
            invalidated: Vec::new(),
            limit_frames: limit_mib * 256,
            allocated: 0,
            peak_allocated: 0,
            pte_log: None,
        }
    }

    /// Turns the coherence oracle's bookkeeping on.
    pub fn enable_oracle(&mut self) {
        self.pte_log = Some(PteLog::default());
    }

    /// The oracle's current page-table generation (0 when off). TLB and paging-structure
    /// entries remember it when filled.
    #[inline(always)]
    pub fn oracle_gen(&self) -> u64 {
        self.pte_log.as_ref().map_or(0, |l| l.gen)
    }

    /// Records that the paging-structure entry at `pte_pa` changed in a way that makes
    /// cached copies of it wrong (cleared, downgraded or pointed elsewhere).
    pub fn pte_changed(&mut self, pte_pa: u64) {
        if let Some(l) = &mut self.pte_log {
            l.gen += 1;
            l.changed.insert(pte_pa, l.gen);
        }
    }

    /// True when an entry filled at generation `filled` from `pte_pa` is stale as of
    /// generation `upto`: the entry changed after the fill and no later than `upto`.
    pub fn is_stale(&self, pte_pa: u64, filled: u64, upto: u64) -> bool {
        self.pte_log
            .as_ref()
            .and_then(|l| l.changed.get(&pte_pa))
            .is_some_and(|&g| g > filled && g <= upto)
    }

    /// The size limit in bytes.
    pub fn limit_bytes(&self) -> u64 {
        self.limit_frames * PAGE_SIZE
    }

    fn exhausted(&self) -> OutOfMemory {
        OutOfMemory { limit_mib: self.limit_frames / 256 }
    }

    /// Makes the host buffer hold at least `frames` frames (frame 0 included). It grows
    /// geometrically so that growth is amortised, but never past the limit (frames
    /// `0..=limit_frames`): `Vec`'s own amortised growth would double the capacity at the
    /// last step and ask the host for twice the guest's memory. A host that cannot
    /// provide the memory is reported as guest memory exhaustion, not an abort.
    fn grow_to(&mut self, frames: u64) -> Result<(), OutOfMemory> {
        let need = frames.saturating_mul(PAGE_SIZE);
        let have = self.ram.len() as u64;
        if need <= have {
            return Ok(());
        }
        let cap = self.limit_frames.saturating_add(1).saturating_mul(PAGE_SIZE);
        let target = have.saturating_mul(2).max(need).min(cap).max(need);
        let target = usize::try_from(target).map_err(|_| self.exhausted())?;
        // Exactly `target`: `resize` alone would let `Vec` double its capacity.
        self.ram.try_reserve_exact(target - self.ram.len()).map_err(|_| self.exhausted())?;
        self.ram.resize(target, 0);
        Ok(())
    }

    /// Allocates a zeroed frame with reference count 1.
    pub fn alloc(&mut self) -> Result<Pfn, OutOfMemory> {
        let pfn = if let Some(p) = self.free.pop() {
            let a = (p * PAGE_SIZE) as usize;
            self.ram[a..a + PAGE_SIZE as usize].fill(0);
            p
        } else {
            let p = self.refcount.len() as u64;
            if p > self.limit_frames {
                return Err(self.exhausted());
            }
            self.grow_to(p + 1)?;
            self.refcount.push(0);
            self.code.push(false);
            p
        };
        self.refcount[pfn as usize] = 1;
        self.allocated += 1;
        self.peak_allocated = self.peak_allocated.max(self.allocated);
        Ok(Pfn(pfn))
    }

    /// Allocates 512 contiguous zeroed frames aligned to 2 MiB, each with reference count
    /// 1, for a huge page. Returns the first frame.
    pub fn alloc_huge(&mut self) -> Result<Pfn, OutOfMemory> {
        let first = self.refcount.len() as u64;
        let aligned = (first + 511) & !511;
        if aligned + 512 > self.limit_frames + 1 {
            return Err(self.exhausted());
        }
        self.grow_to(aligned + 512)?;
        // Frames skipped for alignment become ordinary free frames.
        for p in first..aligned {
            self.refcount.push(0);
            self.code.push(false);
            self.free.push(p);
        }
        for _ in 0..512 {
            self.refcount.push(1);
            self.code.push(false);
        }
        self.allocated += 512;
        self.peak_allocated = self.peak_allocated.max(self.allocated);
        Ok(Pfn(aligned))
    }

    /// Adds a reference to a frame (it is shared by one more mapping).
    pub fn get(&mut self, pfn: Pfn) {
        self.refcount[pfn.0 as usize] += 1;
    }

    /// Drops a reference; the frame is freed when none remain. Returns true if freed.
    pub fn put(&mut self, pfn: Pfn) -> bool {
        let rc = &mut self.refcount[pfn.0 as usize];
        debug_assert!(*rc > 0, "put of a free frame {pfn:?}");
        *rc -= 1;
        if *rc == 0 {
            if self.code[pfn.0 as usize] {
                self.code[pfn.0 as usize] = false;
                self.invalidated.push(pfn.0);
            }
            self.free.push(pfn.0);
            self.allocated -= 1;
            true
        } else {
            false
        }
    }

    /// References held on a frame.
    pub fn refs(&self, pfn: Pfn) -> u32 {
        self.refcount[pfn.0 as usize]
    }

    /// Reads a little-endian u64 at a physical address (8-byte aligned within a frame).
    #[inline(always)]
    pub fn read_u64(&self, pa: u64) -> u64 {
        let a = pa as usize;
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.ram[a..a + 8]);
        u64::from_le_bytes(b)
    }

    /// Writes a little-endian u64 at a physical address.
    #[inline(always)]
    pub fn write_u64(&mut self, pa: u64, v: u64) {
        let a = pa as usize;
        self.ram[a..a + 8].copy_from_slice(&v.to_le_bytes());
        self.note_write(pa);
    }

    /// The bytes of `len` starting at `pa` (must not cross a frame).
    #[inline(always)]
    pub fn slice(&self, pa: u64, len: usize) -> &[u8] {
        &self.ram[pa as usize..pa as usize + len]
    }

    /// Mutable bytes of `len` starting at `pa` (must not cross a frame).
    #[inline(always)]
    pub fn slice_mut(&mut self, pa: u64, len: usize) -> &mut [u8] {
        self.note_write(pa);
        &mut self.ram[pa as usize..pa as usize + len]
    }

    /// Copies one whole frame to another.
    pub fn copy_frame(&mut self, from: Pfn, to: Pfn) {
        let (f, t) = (from.addr() as usize, to.addr() as usize);
        self.ram.copy_within(f..f + PAGE_SIZE as usize, t);
        self.note_write(to.addr());
    }

    #[inline(always)]
    fn note_write(&mut self, pa: u64) {
        let f = (pa >> 12) as usize;
        if self.code[f] {
            self.code[f] = false;
            self.invalidated.push(f as u64);
        }
    }

    /// Marks the frame holding `pa` as holding decoded code.
    pub fn mark_code(&mut self, pa: u64) {
        self.code[(pa >> 12) as usize] = true;
    }

    /// True when code frames changed since the last [`PhysMem::take_invalidated`].
    #[inline(always)]
    pub fn has_invalidated(&self) -> bool {
        !self.invalidated.is_empty()
    }

    /// Drains the frames whose decoded code is stale.
    pub fn take_invalidated(&mut self, out: &mut Vec<u64>) {
        out.append(&mut self.invalidated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_reuse_zeroes() {
        let mut p = PhysMem::new(16);
        let a = p.alloc().unwrap();
        assert_ne!(a.0, 0);
        p.write_u64(a.addr() + 8, 0xdead);
        assert!(p.put(a));
        let b = p.alloc().unwrap();
        assert_eq!(a, b);
        assert_eq!(p.read_u64(b.addr() + 8), 0);
    }

    #[test]
    fn huge_allocations_are_aligned_and_contiguous() {
        let mut p = PhysMem::new(16);
        p.alloc().unwrap();
        let h = p.alloc_huge().unwrap();
        assert_eq!(h.0 % 512, 0);
        assert_eq!(p.refs(Pfn(h.0 + 511)), 1);
        // The alignment gap is reused by small allocations.
        let s = p.alloc().unwrap();
        assert!(s.0 < h.0);
    }

    #[test]
    fn refcounts_and_limit() {
        let mut p = PhysMem::new(1);
        let a = p.alloc().unwrap();
        p.get(a);
        assert!(!p.put(a));
        assert!(p.put(a));
        let mut n = 0;
        while p.alloc().is_ok() {
            n += 1;
        }
        assert_eq!(n, 256);
    }

    #[test]
    fn the_host_buffer_never_grows_past_the_limit() {
        // 16 MiB: the buffer doubles 4 KiB, 8 KiB, ... 16 MiB, then needs one more frame
        // for frame 4096 (frame 0 is reserved). It must stop at 4097 frames, not double
        // to 32 MiB (at 4 GiB that would ask the host for 8 GiB).
        let mut p = PhysMem::new(16);
        let cap = (16 * 256 + 1) * PAGE_SIZE as usize;
        let mut n = 0;
        while p.alloc().is_ok() {
            n += 1;
            assert!(p.ram.capacity() <= cap, "{} bytes after {n} frames", p.ram.capacity());
        }
        assert_eq!(n, 16 * 256);
        assert_eq!(p.alloc(), Err(OutOfMemory { limit_mib: 16 }));
        assert_eq!(p.ram.len(), cap);
        // Huge pages too: 2 MiB allocations up to the limit, bounded the same way.
        let mut h = PhysMem::new(16);
        let mut huge = 0;
        while h.alloc_huge().is_ok() {
            huge += 1;
            assert!(h.ram.capacity() <= cap, "{} bytes after {huge} huge pages", h.ram.capacity());
        }
        assert_eq!(huge, 7, "frame 0 keeps the first 2 MiB from being a huge page");
        assert_eq!(h.alloc_huge(), Err(OutOfMemory { limit_mib: 16 }));
    }

    #[test]
    fn code_frame_writes_are_reported() {
        let mut p = PhysMem::new(1);
        let a = p.alloc().unwrap();
        p.mark_code(a.addr());
        assert!(!p.has_invalidated());
        p.slice_mut(a.addr() + 100, 4).copy_from_slice(&[1, 2, 3, 4]);
        assert!(p.has_invalidated());
        let mut v = Vec::new();
        p.take_invalidated(&mut v);
        assert_eq!(v, vec![a.0]);
    }
}
