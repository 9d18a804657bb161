//! Kernel data at physical addresses, so that the cache model sees the lines the kernel
//! model's atomics touch (lock words, per-CPU data): each object gets a 64-byte line in
//! a frame of guest physical memory reserved for the kernel, counted in the guest's
//! memory like Linux's own. The global objects (runqueues, the futex hash table, zone
//! and LRU locks) are reserved at boot, as Linux allocates them; an `mm_struct` frame is
//! allocated with its address space.
//!
//! An `mm_struct` frame holds the line of `mmap_lock` (and `mm_users`), the line of its
//! cpumask (`cpu_bitmap`, at the end of Linux's mm_struct) and the line of `mm_count`
//! (which Linux keeps on a cache line of its own, `____cacheline_aligned_in_smp` in
//! include/linux/mm_types.h, because lazy-TLB references bounce it). Linux keeps a
//! page-table page's split lock in its `struct page`; a full memmap would cost 1/64 of
//! guest memory in host memory, so the model folds the `struct page`s of an mm's page
//! tables onto the 61 lines that follow: two tables whose frame numbers agree modulo 61
//! share a line (their locks stay distinct; only the cache model sees one line). Each
//! CPU's `cpu_tlbstate` (loaded_mm) and `cpu_tlbstate_shared` (is_lazy) are lines of
//! their own, as Linux's per-CPU areas put them, and so is the per-CPU word in which the
//! `shootdown-active` lazy-mm policy publishes the mm a CPU borrows.

use emu_mmu::{Pfn, PhysMem};

/// Size of a cache line.
const LINE: u64 = 64;
/// Lines per frame.
const PER_FRAME: u64 = 4096 / LINE;
/// Pages of folio descriptors (vmemmap) the model keeps.
const FOLIO_FRAMES: u64 = 16;

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
    /// The mm_cpumask of an address space.
    MmCpumask(u32),
    /// A CPU's `cpu_tlbstate` (its loaded_mm).
    TlbState(usize),
    /// A CPU's `cpu_tlbstate_shared` (its is_lazy).
    TlbStateShared(usize),
    /// An address space's `context.tlb_gen` (in its mm_struct, a line of its own).
    MmTlbGen(u32),
    /// A CPU's per-CPU `flush_tlb_info`, filled by get_flush_tlb_info when it initiates
    /// a flush and read by the CPUs that run flush_tlb_func for it.
    FlushInfo(usize),
    /// The `mm_count` word of an address space (its own line).
    MmCount(u32),
    /// A CPU's published lazy mm (`--lazy-mm shootdown-active`).
    LazyMm(usize),
    /// A CPU's `mm_cid.pcpu` slot of an address space (a per-CPU allocation).
    MmCidPcpu(u32, usize),
    /// A CPU's lockless-walk tracker (`active_lockless_pt_walk_mm`, `--walker-sync
    /// targeted`).
    WalkerTracker(usize),
    /// The `write_protect_seq` of an address space (in its mm_struct, on a line apart
    /// from `mmap_lock`'s), which FOLL_PIN's GUP-fast reads before and after its walk.
    /// Its frames hold 64 address spaces' lines each.
    MmWriteProtectSeq(u32),
    /// The `struct page` of data frame `pfn` (its refcount, which GUP-fast raises): the
    /// vmemmap, 64 bytes per frame, so 64 frames' descriptors per page; the model folds
    /// them onto [`FOLIO_FRAMES`] pages (frames 4 MiB apart share a line).
    Folio(u64),
    /// A vCPU's `struct kvm_steal_time` (per-CPU, 64-byte aligned), whose `preempted`
    /// byte the host sets while it preempts the vCPU ([`crate::host`]).
    StealTime(usize),
}

/// The kind of the frames holding mm_cid per-CPU slots (a kind of their own: the other
/// per-CPU objects' kinds index frames by CPU alone).
const MM_CID_PCPU_KIND: u8 = 11;
/// The kind of the frames holding `write_protect_seq` lines.
const MM_WP_SEQ_KIND: u8 = 12;
/// The kind of the frames holding the vCPUs' steal-time areas.
const STEAL_TIME_KIND: u8 = 13;

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
            k.line(phys, KObj::TlbState(c));
            k.line(phys, KObj::TlbStateShared(c));
            k.line(phys, KObj::FlushInfo(c));
            k.line(phys, KObj::WalkerTracker(c));
        }
        // The folio descriptors GUP-fast references, reserved at boot so that a frame
        // the guest freed is not reused for them behind a stale translation.
        for f in 0..FOLIO_FRAMES {
            k.line(phys, KObj::Folio(f * PER_FRAME));
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
            KObj::MmCpumask(mm) => (0, u64::from(mm), 1),
            KObj::MmTlbGen(mm) => (0, u64::from(mm), 2),
            KObj::MmCount(mm) => (0, u64::from(mm), 3),
            KObj::PageTable(mm, pfn) => (0, u64::from(mm), 4 + pfn % (PER_FRAME - 4)),
            KObj::TlbState(cpu) => (5, cpu as u64 / PER_FRAME, cpu as u64 % PER_FRAME),
            KObj::TlbStateShared(cpu) => (6, cpu as u64 / PER_FRAME, cpu as u64 % PER_FRAME),
            KObj::FlushInfo(cpu) => (7, cpu as u64 / PER_FRAME, cpu as u64 % PER_FRAME),
            KObj::LazyMm(cpu) => (8, cpu as u64 / PER_FRAME, cpu as u64 % PER_FRAME),
            KObj::WalkerTracker(cpu) => (9, cpu as u64 / PER_FRAME, cpu as u64 % PER_FRAME),
            KObj::Folio(pfn) => (10, (pfn / PER_FRAME) % FOLIO_FRAMES, pfn % PER_FRAME),
            KObj::Rq(cpu) => (2, cpu as u64 / PER_FRAME, cpu as u64 % PER_FRAME),
            KObj::StealTime(cpu) => {
                (STEAL_TIME_KIND, cpu as u64 / PER_FRAME, cpu as u64 % PER_FRAME)
            }
            KObj::FutexBucket(b) => (3, u64::from(b) / PER_FRAME, u64::from(b) % PER_FRAME),
            KObj::Global(n) => (4, 0, u64::from(n) % PER_FRAME),
            KObj::MmWriteProtectSeq(mm) => {
                (MM_WP_SEQ_KIND, u64::from(mm) / PER_FRAME, u64::from(mm) % PER_FRAME)
            }
            KObj::MmCidPcpu(mm, cpu) => (
                MM_CID_PCPU_KIND,
                (u64::from(mm) << 16) | (cpu as u64 / PER_FRAME),
                cpu as u64 % PER_FRAME,
            ),
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

    /// Frees the `mm_struct` of a dead address space and its per-CPU mm_cid slots
    /// (on a machine of `cpus` CPUs), in a fixed order.
    pub fn free_mm(&mut self, phys: &mut PhysMem, mm: u32, cpus: usize) {
        if let Some(f) = self.frames.remove(&(0, u64::from(mm))) {
            phys.put(f);
        }
        for c in (0..cpus).step_by(PER_FRAME as usize) {
            if let Some(f) = self
                .frames
                .remove(&(MM_CID_PCPU_KIND, (u64::from(mm) << 16) | (c as u64 / PER_FRAME)))
            {
                phys.put(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tlb_engines_lines_are_their_own() {
        let mut phys = PhysMem::new(16);
        let mut k = KernelData::boot(&mut phys, 4, 16);
        let mm = k.line(&mut phys, KObj::MmStruct(2));
        let mask = k.line(&mut phys, KObj::MmCpumask(2));
        let gen = k.line(&mut phys, KObj::MmTlbGen(2));
        let count = k.line(&mut phys, KObj::MmCount(2));
        // The cpumask, tlb_gen and mm_count share the mm_struct's frame, not its line,
        // nor a page table's.
        assert_eq!(mask, mm + LINE);
        assert_eq!(gen, mm + 2 * LINE);
        assert_eq!(count, mm + 3 * LINE);
        for pfn in 0..200 {
            let pt = k.line(&mut phys, KObj::PageTable(2, pfn));
            assert!(pt != mask && pt != mm && pt != gen && pt != count, "{pfn}");
        }
        let mut lines: Vec<u64> = (0..4)
            .flat_map(|c| {
                [
                    KObj::TlbState(c),
                    KObj::TlbStateShared(c),
                    KObj::Rq(c),
                    KObj::FlushInfo(c),
                    KObj::LazyMm(c),
                ]
            })
            .map(|o| k.line(&mut phys, o))
            .collect();
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 20, "one line per CPU and object");
    }

    #[test]
    fn mm_cid_slots_are_a_line_per_cpu_and_go_with_the_mm() {
        let mut phys = PhysMem::new(16);
        let mut k = KernelData::boot(&mut phys, 70, 16);
        let before = phys.allocated;
        let mut lines: Vec<u64> =
            (0..70).map(|c| k.line(&mut phys, KObj::MmCidPcpu(3, c))).collect();
        let other = k.line(&mut phys, KObj::MmCidPcpu(4, 0));
        assert!(!lines.contains(&other), "another mm's slots are its own");
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 70);
        assert_eq!(phys.allocated, before + 3, "two frames for mm 3's 70 CPUs, one for mm 4");
        k.free_mm(&mut phys, 3, 70);
        assert_eq!(phys.allocated, before + 1);
    }
}
