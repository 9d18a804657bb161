//! Kernel data at physical addresses, so that the cache model sees the lines the kernel
//! model's atomics touch (lock words, per-CPU data, `struct page`s): each object gets a
//! 64-byte line in a frame of guest physical memory reserved for the kernel. Frames are
//! allocated on first use and count toward the guest's memory, like Linux's own.

use emu_mmu::{PhysMem, Pfn};
use std::collections::BTreeMap;

/// Size of a cache line.
const LINE: u64 = 64;
/// Lines per frame.
const PER_FRAME: u64 = 4096 / LINE;

/// A kernel object with a line of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KObj {
    /// The `struct mm_struct` of an address space: line 0 holds `mmap_lock`.
    MmStruct(u32),
    /// The `struct page` (memmap entry) of a frame: its page-table lock when the frame
    /// is a page table.
    Page(u64),
    /// A CPU's runqueue.
    Rq(usize),
    /// A futex hash bucket.
    FutexBucket(u32),
    /// A global kernel variable (index below 64): 0 zone->lock, 1 lru_lock.
    Global(u32),
}

/// The frames holding kernel objects, by (kind, frame index within the kind).
#[derive(Debug, Default)]
pub struct KernelData {
    frames: BTreeMap<(u8, u64), Pfn>,
}

impl KernelData {
    /// The physical address of `obj`'s line (0 if guest memory is exhausted: the object
    /// then shares a line with others, which only the cache model sees).
    pub fn line(&mut self, phys: &mut PhysMem, obj: KObj) -> u64 {
        let (kind, idx, line) = match obj {
            KObj::MmStruct(mm) => (0, u64::from(mm), 0),
            KObj::Page(pfn) => (1, pfn / PER_FRAME, pfn % PER_FRAME),
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
