//! Kernel data at physical addresses, so that the cache model sees the lines the kernel
//! model's atomics touch (lock words, per-CPU data): each object gets a 64-byte line in
//! a frame of guest physical memory reserved for the kernel, counted in the guest's
//! memory like Linux's own. The global objects (runqueues, the futex hash table, zone
//! and LRU locks) are reserved at boot, as Linux allocates them; an `mm_struct` frame is
//! allocated with its address space.
//!
//! Linux keeps a page-table page's split lock in its `struct page`; a full memmap would
//! cost 1/64 of guest memory in host memory, so the model folds the `struct page`s of an
//! mm's page tables onto the 63 lines that follow its `mm_struct` line: two tables whose
//! frame numbers agree modulo 63 share a line (their locks stay distinct; only the cache
//! model sees one line).

use emu_mmu::{Pfn, PhysMem};

/// Size of a cache line.
const LINE: u64 = 64;
/// Lines per frame.
const PER_FRAME: u64 = 4096 / LINE;

/// A kernel object with a line of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KObj {
    /// The `struct mm_struct` of an address space: line 0 holds `mmap_lock`.
    MmStruct(u32),
    /// A CPU's runqueue.
    Rq(usize),
    /// A futex hash bucket.
    FutexBucket(u32),
    /// A global kernel variable (index below 64): 0 zone->lock, 1 lru_lock.
    Global(u32),
    /// The `struct page` of page-table frame `pfn` of address space `mm`.
    PageTable(u32, u64),
}

/// The frames holding kernel objects, by (kind, frame index within the kind).
#[derive(Debug, Default)]
pub struct KernelData {
    frames: rustc_hash::FxHashMap<(u8, u64), Pfn>,
}

impl KernelData {
    /// Reserves the boot-time objects of a machine of `cpus` CPUs whose futex hash table
    /// has `buckets` buckets.
    pub fn boot(phys: &mut PhysMem, cpus: usize, buckets: u32) -> Self {
        let mut k = KernelData::default();
        k.line(phys, KObj::Global(0));
        for c in (0..cpus).step_by(PER_FRAME as usize) {
            k.line(phys, KObj::Rq(c));
        }
        for b in (0..buckets).step_by(PER_FRAME as usize) {
            k.line(phys, KObj::FutexBucket(b));
        }
        k
    }

    /// The physical address of `obj`'s line (0 if guest memory is exhausted: the object
    /// then shares a line with others, which only the cache model sees).
    pub fn line(&mut self, phys: &mut PhysMem, obj: KObj) -> u64 {
        let (kind, idx, line) = match obj {
            KObj::MmStruct(mm) => (0, u64::from(mm), 0),
            KObj::PageTable(mm, pfn) => (0, u64::from(mm), 1 + pfn % (PER_FRAME - 1)),
            KObj::Rq(cpu) => (2, cpu as u64 / PER_FRAME, cpu as u64 % PER_FRAME),
            KObj::FutexBucket(b) => (3, u64::from(b) / PER_FRAME, u64::from(b) % PER_FRAME),
            KObj::Global(n) => (4, 0, u64::from(n) % PER_FRAME),
        };
        let frame = match self.frames.get(&(kind, idx)) {
            Some(f) => *f,
            None => match phys.alloc() {
                Ok(f) => {
                    self.frames.insert((kind, idx), f);
                    f
                }
                Err(_) => return 0,
            },
        };
        frame.addr() + line * LINE
    }

    /// Frees the `mm_struct` of a dead address space.
    pub fn free_mm(&mut self, phys: &mut PhysMem, mm: u32) {
        if let Some(f) = self.frames.remove(&(0, u64::from(mm))) {
            phys.put(f);
        }
    }
}
