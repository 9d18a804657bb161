//! The address space of a process (Linux `mm_struct`): VMAs, page tables in guest
//! physical memory built on demand by the page-fault handler, and the operations behind
//! mmap, munmap, mprotect, mremap, madvise and brk. Pages are faulted in lazily, as in
//! Linux: anonymous pages zero-filled, ELF segments copied from the image on first touch.
//!
//! Unmapping follows mm/memory.c's `zap_page_range` and `free_pgtables` in spirit: PTEs
//! are cleared, the pages and (for unmaps) emptied page-table pages are collected in a
//! [`Gather`] (the kernel's `mmu_gather`), and freed only after the TLB flush that makes
//! them unreachable.

use emu_mmu::pte::{self, PageTables, ADDR, NX, P, PS, RW, SW_COW, US};
use emu_mmu::{OutOfMemory, Pfn, PhysMem};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Page size.
pub const PAGE: u64 = 4096;
/// Protection: readable.
pub const PROT_READ: u8 = 1;
/// Protection: writable.
pub const PROT_WRITE: u8 = 2;
/// Protection: executable.
pub const PROT_EXEC: u8 = 4;

/// Top of the user stack (no randomisation; Linux's TASK_SIZE minus one page).
pub const STACK_TOP: u64 = 0x7fff_ffff_f000;
/// Default stack size limit (RLIMIT_STACK).
pub const STACK_LIMIT: u64 = 8 << 20;
/// Highest address the top-down mmap allocator uses (below the stack gap, mm/util.c
/// `mmap_base` with a 128 MiB minimum gap and no randomisation).
pub const MMAP_BASE: u64 = STACK_TOP - (128 << 20) - STACK_LIMIT;
/// Lowest address mmap hands out.
pub const MMAP_MIN: u64 = 0x1_0000;

/// Rounds up to a page.
pub fn page_up(v: u64) -> u64 {
    v.wrapping_add(PAGE - 1) & !(PAGE - 1)
}

/// The contents behind a file-backed mapping.
#[derive(Clone, Debug)]
pub enum Source {
    /// Bytes in memory (the program image, synthesized files).
    Bytes(Arc<[u8]>),
    /// A host file, read a page at a time as the guest faults pages in (the page cache's
    /// part): mapping a file costs no host memory beyond the pages touched.
    File(Arc<std::fs::File>),
    /// A memfd's pages ([`crate::fdtypes::Shm`]): shared mappings map its frames, private
    /// ones copy them at fault time. Its size is its own, not the mapping's `len`.
    Shm(std::rc::Rc<std::cell::RefCell<crate::fdtypes::Shm>>),
}

impl Source {
    /// Copies the bytes at offset `off` into `buf` (as many as exist; the rest stay zero).
    fn read_at(&self, off: u64, buf: &mut [u8]) {
        match self {
            Source::Bytes(d) => {
                let lo = (off as usize).min(d.len());
                let hi = lo.saturating_add(buf.len()).min(d.len());
                buf[..hi - lo].copy_from_slice(&d[lo..hi]);
            }
            Source::File(f) => {
                use std::os::unix::fs::FileExt;
                let mut done = 0;
                while done < buf.len() {
                    match f.read_at(&mut buf[done..], off + done as u64) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => done += n,
                    }
                }
            }
            // Faults on memfd mappings read frames (see [`Mm::fault`]).
            Source::Shm(_) => {}
        }
    }

    /// True when the mapping may be made writable while shared (an in-guest file).
    fn writable(&self) -> bool {
        matches!(self, Source::Shm(_))
    }

    /// The same contents (the same image or the same open host file).
    fn same(&self, other: &Source) -> bool {
        match (self, other) {
            (Source::Bytes(a), Source::Bytes(b)) => Arc::ptr_eq(a, b),
            (Source::File(a), Source::File(b)) => Arc::ptr_eq(a, b),
            (Source::Shm(a), Source::Shm(b)) => std::rc::Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Where the bytes of a file-backed mapping come from.
#[derive(Clone, Debug)]
pub enum Backing {
    /// Anonymous memory: zero-filled.
    Anon,
    /// Bytes of a file: virtual addresses `[va, va + len)` hold bytes `[off, off + len)`
    /// of `data`; the rest of the mapping reads as zero (ELF `.bss`, past end of file).
    Image {
        /// The file contents.
        data: Source,
        /// First virtual address backed by the file.
        va: u64,
        /// File offset of `va`.
        off: u64,
        /// Bytes backed by the file.
        len: u64,
    },
}

/// What a mapping is, for /proc/self/maps and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaKind {
    /// Anonymous mmap.
    Anon,
    /// The program image.
    Image,
    /// The heap (brk).
    Heap,
    /// The main thread's stack.
    Stack,
    /// The vDSO ([`crate::vdso`]).
    Vdso,
}

/// A virtual memory area.
#[derive(Clone, Debug)]
pub struct Vma {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u8,
    /// MAP_SHARED: pages are shared with forked children rather than copied on write.
    pub shared: bool,
    /// Contents.
    pub backing: Backing,
    /// Kind.
    pub kind: VmaKind,
    /// madvise(MADV_HUGEPAGE) was applied.
    pub hugepage: bool,
    /// madvise(MADV_NOHUGEPAGE) was applied.
    pub nohugepage: bool,
}

impl Vma {
    /// The PTE flags of a page of this VMA. A PROT_NONE page stays present for the
    /// kernel's bookkeeping but loses its user bit, so every user access faults with a
    /// protection error as a `pte_protnone` entry does (x86's _PAGE_PROTNONE clears the
    /// present bit instead).
    fn pte_flags(&self) -> u64 {
        let mut f = P;
        if self.prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
            f |= US;
        }
        if self.prot & PROT_WRITE != 0 {
            f |= RW;
        }
        if self.prot & PROT_EXEC == 0 {
            f |= NX;
        }
        f
    }
}

/// Pages and page-table pages unmapped but not yet freed: they may still be reachable
/// through TLBs until the flush that covers `[start, end)` completes (mmu_gather).
#[derive(Clone, Debug, Default)]
pub struct Gather {
    /// Lowest address unmapped.
    pub start: u64,
    /// One past the highest.
    pub end: u64,
    /// Leaf pages to release after the flush.
    pub pages: Vec<Pfn>,
    /// Page-table pages to release after the flush (non-empty: `freed_tables`).
    pub tables: Vec<Pfn>,
    /// Whether a 2 MiB mapping was removed (flush stride).
    pub huge: bool,
}

impl Gather {
    fn note(&mut self, a: u64, b: u64) {
        if self.pages.is_empty() && self.tables.is_empty() && self.start == self.end {
            self.start = a;
            self.end = b;
        } else {
            self.start = self.start.min(a);
            self.end = self.end.max(b);
        }
    }
    /// True when nothing was unmapped.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    /// True when page-table pages are being freed (lazy CPUs must be flushed too).
    pub fn freed_tables(&self) -> bool {
        !self.tables.is_empty()
    }
}

/// Transparent huge page policy (/sys/kernel/mm/transparent_hugepage/enabled).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Thp {
    /// Never map 2 MiB pages.
    Never,
    /// Only in regions marked with madvise(MADV_HUGEPAGE).
    #[default]
    Madvise,
    /// In every suitable anonymous region not marked MADV_NOHUGEPAGE.
    Always,
}

/// Result of a page fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A page was mapped (zero-filled or copied).
    Mapped,
    /// A 2 MiB page was mapped (zero-filled).
    MappedHuge,
    /// A copy-on-write page was broken.
    CowBroken,
    /// The PTE already allowed the access: a stale TLB entry caused the fault.
    Spurious,
    /// No mapping, or the mapping forbids the access: SIGSEGV.
    Segv,
    /// A page of a file mapping past the end of the file: SIGBUS (BUS_ADRERR).
    Sigbus,
}

/// True when two VMAs' contents come from the same source at the same offsets.
fn same_backing(a: &Backing, b: &Backing) -> bool {
    match (a, b) {
        (Backing::Anon, Backing::Anon) => true,
        (
            Backing::Image { data: d1, va: v1, off: o1, len: l1 },
            Backing::Image { data: d2, va: v2, off: o2, len: l2 },
        ) => d1.same(d2) && v1 == v2 && o1 == o2 && l1 == l2,
        _ => false,
    }
}

/// The kernel work an address space's changes took, counted where the work is done so
/// that the kernel path that caused it charges its cost ([`Work::cost`]; DESIGN.md,
/// "Kernel-path costs").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Work {
    /// vm_area_structs allocated and stored in the tree (a new mapping that merged with
    /// nothing, each side of a split).
    pub vma_allocs: u64,
    /// vm_area_structs erased from the tree and freed (merged into a neighbour, unmapped).
    pub vma_removes: u64,
    /// Present PTEs (or huge PMDs) cleared by a zap.
    pub ptes_zapped: u64,
    /// Present PTEs whose protection was rewritten (change_protection).
    pub ptes_changed: u64,
    /// Present PTEs copied into a child (copy_page_range).
    pub ptes_copied: u64,
    /// Page-table pages allocated.
    pub tables_allocated: u64,
    /// Page-table pages unhooked to be freed.
    pub tables_freed: u64,
}

impl Work {
    /// What was done since `before`.
    pub fn since(&self, before: &Work) -> Work {
        Work {
            vma_allocs: self.vma_allocs - before.vma_allocs,
            vma_removes: self.vma_removes - before.vma_removes,
            ptes_zapped: self.ptes_zapped - before.ptes_zapped,
            ptes_changed: self.ptes_changed - before.ptes_changed,
            ptes_copied: self.ptes_copied - before.ptes_copied,
            tables_allocated: self.tables_allocated - before.tables_allocated,
            tables_freed: self.tables_freed - before.tables_freed,
        }
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Work) {
        self.vma_allocs += other.vma_allocs;
        self.vma_removes += other.vma_removes;
        self.ptes_zapped += other.ptes_zapped;
        self.ptes_changed += other.ptes_changed;
        self.ptes_copied += other.ptes_copied;
        self.tables_allocated += other.tables_allocated;
        self.tables_freed += other.tables_freed;
    }

    /// Its cost (fixed point) under the profile's kernel costs. A zapped PTE also pays
    /// for releasing its folio (rmap, reference, uncharge); a new page-table page is
    /// allocated and cleared.
    pub fn cost(&self, k: &crate::profile::KernelCosts) -> u64 {
        self.vma_allocs * k.vma_alloc
            + self.vma_removes * k.vma_remove
            + self.ptes_zapped * (k.pte_zap + k.folio_free)
            + self.ptes_changed * k.pte_change
            + self.ptes_copied * k.pte_copy
            + self.tables_allocated * (k.pt_alloc + k.page_zero)
            + self.tables_freed * k.pt_free
    }
}

/// What [`Mm::collapse_scan`] found at a 2 MiB range (mm/khugepaged.c `enum scan_result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollapseScan {
    /// No PTE table there (SCAN_PMD_NULL).
    PmdNull,
    /// Already one huge page (SCAN_PMD_MAPPED).
    PmdMapped,
    /// Collapsible: the PMD entry's address and the PTE table it points at.
    Ok {
        /// Physical address of the PMD entry.
        pmd_pa: u64,
        /// The PTE table.
        table: Pfn,
    },
}

/// A process address space.
pub struct Mm {
    /// PML4 frame.
    pub root: Pfn,
    /// Areas by start address.
    pub vmas: BTreeMap<u64, Vma>,
    /// Start of the heap.
    pub brk_start: u64,
    /// Current program break.
    pub brk: u64,
    /// Page-table pages in use (PML4 included).
    pub table_pages: u64,
    /// Resident pages mapped.
    pub rss: u64,
    /// Faults handled, by outcome.
    pub faults: u64,
    /// Huge page policy.
    pub thp: Thp,
    /// TLB context (ctx_id, tlb_gen, mm_cpumask, global ASID).
    pub ctx: crate::tlbflush::MmCtx,
    /// Every address from here up to `MMAP_BASE` is mapped (see [`Mm::find_free`]).
    packed_from: u64,
    /// membarrier registrations (`mm->membarrier_state`, MEMBARRIER_STATE_* bits).
    pub membarrier: u32,
    /// Kernel work done on this address space so far.
    pub work: Work,
    /// The part of `work` already charged to a CPU.
    pub settled: Work,
    /// `mm_users`: the tasks using the address space (kernel/fork.c mmget, mmput).
    pub users: u32,
    /// `mm_count`: references to the mm_struct itself, one standing for all the users
    /// and, under `--lazy-mm refcount`, one per CPU borrowing it lazily (mmgrab_lazy_tlb).
    pub count: u32,
    /// When exit_mmap tore it down: from then on only lazy references keep its
    /// mm_struct and PGD (1/256 cycles, the tearing CPU's clock).
    pub exited_fp: Option<u64>,
    /// Its concurrency IDs (`mm->mm_cid` and `mm_cidmask`).
    pub cid: crate::mmcid::MmCid,
    /// The program an execve loaded into it (`mm->exe_file` and the argument area):
    /// None for the program emu started and the address spaces forked from it.
    pub exe: Option<std::sync::Arc<ExeFile>>,
}

/// The program of an address space, as /proc/self/exe, /proc/self/cmdline and
/// /proc/self/maps show it.
#[derive(Debug)]
pub struct ExeFile {
    /// The host path of the executable (the interpreter's, for a script).
    pub path: String,
    /// Its argument strings.
    pub argv: Vec<Vec<u8>>,
    /// Its bytes (what /proc/self/exe opens).
    pub image: std::sync::Arc<[u8]>,
}

impl Mm {
    /// An empty address space with TLB context id `ctx_id` on a machine of `ncpus` CPUs.
    pub fn new(phys: &mut PhysMem, ctx_id: u64, ncpus: usize) -> Result<Mm, OutOfMemory> {
        let root = phys.alloc()?;
        Ok(Mm {
            ctx: crate::tlbflush::MmCtx {
                ctx_id,
                tlb_gen: 1,
                cpumask: crate::cpumask::CpuMask::new(ncpus),
                // init_new_context sets it to jiffies + HZ; the creator does.
                next_trim_jiffies: 0,
                global_asid: 0,
                asid_transition: false,
            },
            root,
            vmas: BTreeMap::new(),
            brk_start: 0,
            brk: 0,
            table_pages: 1,
            rss: 0,
            faults: 0,
            thp: Thp::default(),
            packed_from: MMAP_BASE,
            membarrier: 0,
            work: Work::default(),
            settled: Work::default(),
            users: 1,
            count: 1,
            exited_fp: None,
            cid: crate::mmcid::MmCid::new(ncpus),
            exe: None,
        })
    }

    /// The VMA containing `va`.
    pub fn find(&self, va: u64) -> Option<&Vma> {
        self.vmas.range(..=va).next_back().map(|(_, v)| v).filter(|v| va < v.end)
    }

    /// True when `[start, end)` intersects no VMA.
    pub fn is_free(&self, start: u64, end: u64) -> bool {
        if let Some((_, v)) = self.vmas.range(..end).next_back() {
            if v.end > start {
                return false;
            }
        }
        true
    }

    /// Highest free gap of `len` bytes at or below `MMAP_BASE` (top-down, as Linux).
    /// The search starts below `packed_from`, under which every address up to
    /// `MMAP_BASE` is known to be mapped, so a program that maps many areas does not pay
    /// for the ones it already has (an unmap above that point moves it back up).
    pub fn find_free(&mut self, len: u64) -> Option<u64> {
        let first = self.packed_from.min(MMAP_BASE);
        let mut top = first;
        for (_, v) in self.vmas.range(..first).rev() {
            if v.end <= top && top - v.end >= len {
                break;
            }
            top = top.min(v.start);
        }
        let found = top.checked_sub(len).filter(|&a| a >= MMAP_MIN)?;
        if top == first {
            // Directly below the packed region: it grows down to the new area.
            self.packed_from = found;
        }
        Some(found)
    }

    /// Inserts a VMA (the range must be free), merging it with compatible neighbours as
    /// Linux's `vma_merge` does.
    pub fn insert(&mut self, vma: Vma) {
        let (lo, hi) = (vma.start, vma.end);
        self.vmas.insert(vma.start, vma);
        self.work.vma_allocs += 1;
        self.merge_range(lo, hi);
    }

    /// Gives `[start, end)` (one VMA's pages, just mapped) another backing, as
    /// mmap of an in-guest file does after placing the area.
    pub fn set_backing(&mut self, start: u64, end: u64, backing: Backing) {
        self.split_at(start);
        self.split_at(end);
        for (_, v) in self.vmas.range_mut(start..end) {
            v.backing = backing.clone();
        }
        self.merge_range(start, end);
    }

    /// Splits VMAs so that `addr` is a boundary.
    fn split_at(&mut self, addr: u64) {
        let hit = self.vmas.range(..addr).next_back().map(|(k, v)| (*k, v.end));
        if let Some((k, end)) = hit {
            if end > addr {
                let Some(v) = self.vmas.get_mut(&k) else { return };
                let mut tail = v.clone();
                v.end = addr;
                tail.start = addr;
                self.vmas.insert(addr, tail);
                self.work.vma_allocs += 1;
            }
        }
    }

    /// Sets the madvise(MADV_[NO]HUGEPAGE) flag on the VMAs of `[start, end)`.
    pub fn set_hugepage(&mut self, start: u64, end: u64, huge: bool) {
        self.split_at(start);
        self.split_at(end);
        for (_, v) in self.vmas.range_mut(start..end) {
            v.hugepage = huge;
            v.nohugepage = !huge;
        }
        self.merge_range(start, end);
    }

    /// Splits a 2 MiB mapping covering `va` into 512 4 KiB PTEs (split_huge_pmd), so an
    /// operation on part of it can proceed. Returns false if the table could not be
    /// allocated.
    pub fn split_huge(&mut self, phys: &mut PhysMem, va: u64) -> Result<(), OutOfMemory> {
        let Some(leaf) = PageTables::leaf(phys, self.root, va) else { return Ok(()) };
        if leaf.size != emu_mmu::PageSize::Size2M {
            return Ok(());
        }
        let pt = phys.alloc()?;
        self.table_pages += 1;
        self.work.tables_allocated += 1;
        let base = leaf.pte & ADDR & !0x1f_ffff;
        let flags = leaf.pte & !(ADDR | PS);
        for k in 0..512u64 {
            phys.write_u64(pt.addr() + 8 * k, (base + (k << 12)) | flags);
        }
        phys.write_u64(leaf.pte_pa, pt.addr() | pte::TABLE_FLAGS);
        Ok(())
    }

    /// hpage_collapse_scan_pmd (mm/khugepaged.c) for MADV_COLLAPSE of the 2 MiB at
    /// `base`, in a VMA that allows it: what is mapped there and whether it can become
    /// one huge page. A collapse that is not khugepaged's takes any number of empty or
    /// zero-page PTEs and of pages shared with other processes, and (since 6.18,
    /// Dev Jain's "allow collapse of anonymous regions without writable PTEs") no
    /// writable PTE is needed; emu tracks no references beyond the mappings (GUP pins
    /// are not held), so no page is refused for its count.
    pub fn collapse_scan(&self, phys: &PhysMem, base: u64) -> CollapseScan {
        let Some(pmd_table) = emu_mmu::table_at(phys, self.root.addr(), base, 2) else {
            return CollapseScan::PmdNull;
        };
        let pmd_pa = pmd_table + 8 * pte::index(base, 2);
        let pmd = phys.read_u64(pmd_pa);
        if pmd & P == 0 {
            return CollapseScan::PmdNull;
        }
        if pmd & PS != 0 {
            return CollapseScan::PmdMapped;
        }
        CollapseScan::Ok { pmd_pa, table: Pfn((pmd & ADDR) >> 12) }
    }

    /// pmdp_collapse_flush's clear: the PMD at `pmd_pa` no longer points at PTE table
    /// `table`, whose entries are returned (the copy reads them after the flush and
    /// the walker sync; the table itself is then retired). Cached copies of the PMD and
    /// of every PTE under it are stale from here.
    pub fn collapse_clear_pmd(&mut self, phys: &mut PhysMem, pmd_pa: u64, table: Pfn) -> Vec<u64> {
        phys.write_u64(pmd_pa, 0);
        phys.pte_changed(pmd_pa);
        let ptes: Vec<u64> = (0..512).map(|k| phys.read_u64(table.addr() + 8 * k)).collect();
        for (k, e) in ptes.iter().enumerate() {
            if e & P != 0 {
                phys.pte_changed(table.addr() + 8 * k as u64);
            }
        }
        self.table_pages -= 1;
        self.work.tables_freed += 1;
        ptes
    }

    /// __collapse_huge_page_copy and set_pmd_at: the pages `ptes` mapped are copied into
    /// the 2 MiB frame starting at `frame` (empty PTEs become zeroes), the PMD at
    /// `pmd_pa` maps it with the VMA's protection, and the small frames are returned to
    /// be freed.
    pub fn collapse_install(
        &mut self,
        phys: &mut PhysMem,
        base: u64,
        pmd_pa: u64,
        ptes: &[u64],
        frame: Pfn,
    ) -> Vec<Pfn> {
        let mut old = Vec::new();
        for (k, e) in ptes.iter().enumerate() {
            let dst = Pfn(frame.0 + k as u64);
            if e & P != 0 {
                let src = Pfn((e & ADDR) >> 12);
                phys.copy_frame(src, dst);
                old.push(src);
            }
        }
        let flags = self.find(base).map_or(P | US | RW | NX, |v| v.pte_flags());
        phys.write_u64(pmd_pa, frame.addr() | flags | PS);
        self.work.ptes_zapped += old.len() as u64;
        self.rss = self.rss + 512 - old.len() as u64;
        old
    }

    /// Splits huge mappings straddling the edges of `[start, end)`.
    fn split_edges(&mut self, phys: &mut PhysMem, start: u64, end: u64) {
        const HUGE: u64 = 1 << 21;
        if start % HUGE != 0 {
            let _ = self.split_huge(phys, start);
        }
        if end % HUGE != 0 {
            let _ = self.split_huge(phys, end - 1);
        }
    }

    /// Removes VMAs in `[start, end)`, splitting partial ones, and unmaps their pages
    /// into `g` (freeing emptied page tables).
    pub fn unmap(&mut self, phys: &mut PhysMem, start: u64, end: u64, g: &mut Gather) {
        if end > self.packed_from && start < MMAP_BASE {
            self.packed_from = MMAP_BASE;
        }
        self.split_edges(phys, start, end);
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.vmas.range(start..end).map(|(k, _)| *k).collect();
        for k in keys {
            self.vmas.remove(&k);
            self.work.vma_removes += 1;
        }
        self.zap(phys, start, end, true, g);
    }

    /// Changes the protection of `[start, end)` (all of it must be mapped), updating
    /// present PTEs. Errors: ENOMEM if part of the range is unmapped, EACCES for write
    /// access to a shared file mapping (emu's host files are read-only: no VM_MAYWRITE).
    pub fn protect(
        &mut self,
        phys: &mut PhysMem,
        start: u64,
        end: u64,
        prot: u8,
    ) -> Result<(), i64> {
        let mut a = start;
        while a < end {
            match self.find(a) {
                Some(v) => {
                    let file =
                        matches!(&v.backing, Backing::Image { data, .. } if !data.writable());
                    if prot & PROT_WRITE != 0 && v.shared && file {
                        return Err(crate::fs::errno::EACCES);
                    }
                    a = v.end;
                }
                None => return Err(crate::fs::errno::ENOMEM),
            }
        }
        self.split_edges(phys, start, end);
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.vmas.range(start..end).map(|(k, _)| *k).collect();
        for k in keys {
            if let Some(v) = self.vmas.get_mut(&k) {
                v.prot = prot;
                let flags = v.pte_flags();
                let (s, e, shared) = (v.start, v.end, v.shared);
                let mut changed = 0;
                self.for_each_leaf(phys, s, e, |phys, pte_pa, pte, _| {
                    changed += 1;
                    let mut new = (pte & !(RW | NX | US)) | (flags & (RW | NX | US));
                    // A shared-by-fork page stays read-only until its COW is broken.
                    if pte & SW_COW != 0 && !shared {
                        new &= !RW;
                    }
                    if new != pte {
                        phys.write_u64(pte_pa, new);
                        // Write or user access removed, or execute-disable added: cached copies grant
                        // more than the entry now does.
                        if (pte & RW != 0 && new & RW == 0)
                            || (pte & NX == 0 && new & NX != 0)
                            || (pte & US != 0 && new & US == 0)
                        {
                            phys.pte_changed(pte_pa);
                        }
                    }
                });
                self.work.ptes_changed += changed;
            }
        }
        self.merge_range(start, end);
        Ok(())
    }

    /// Merges adjacent VMAs with identical attributes that touch `[lo, hi]` (Linux's
    /// vma_merge, applied after inserts and protection changes).
    fn merge_range(&mut self, lo: u64, hi: u64) {
        let first = self.vmas.range(..lo).next_back().map_or(lo, |(k, _)| *k);
        let keys: Vec<u64> = self.vmas.range(first..=hi).map(|(k, _)| *k).collect();
        let mut prev: Option<u64> = None;
        for k in keys {
            if let Some(p) = prev {
                let mergeable = match (self.vmas.get(&p), self.vmas.get(&k)) {
                    (Some(a), Some(b)) => {
                        a.end == b.start
                            && a.prot == b.prot
                            && a.shared == b.shared
                            && a.kind == b.kind
                            && a.hugepage == b.hugepage
                            && a.nohugepage == b.nohugepage
                            && same_backing(&a.backing, &b.backing)
                    }
                    _ => false,
                };
                if mergeable {
                    if let Some(b) = self.vmas.remove(&k) {
                        self.work.vma_removes += 1;
                        if let Some(a) = self.vmas.get_mut(&p) {
                            a.end = b.end;
                        }
                    }
                    continue;
                }
            }
            prev = Some(k);
        }
    }

    /// Calls `f(phys, pte_pa, pte, va)` for each present leaf in `[start, end)`.
    pub fn for_each_leaf(
        &self,
        phys: &mut PhysMem,
        start: u64,
        end: u64,
        mut f: impl FnMut(&mut PhysMem, u64, u64, u64),
    ) {
        fn rec(
            phys: &mut PhysMem,
            table: u64,
            level: u8,
            base: u64,
            start: u64,
            end: u64,
            f: &mut dyn FnMut(&mut PhysMem, u64, u64, u64),
        ) {
            let span = 1u64 << (12 + 9 * (u32::from(level) - 1));
            for i in 0..512u64 {
                let lo = base + i * span;
                let hi = lo + span;
                if hi <= start || lo >= end {
                    continue;
                }
                let epa = table + 8 * i;
                let e = phys.read_u64(epa);
                if e & P == 0 {
                    continue;
                }
                if level == 1 || (level == 2 && e & PS != 0) {
                    f(phys, epa, e, lo);
                } else {
                    rec(phys, e & ADDR, level - 1, lo, start, end, f);
                }
            }
        }
        rec(phys, self.root.addr(), 4, 0, start, end, &mut f);
    }

    /// Clears the PTEs of `[start, end)`, moving their pages into `g`; with
    /// `free_tables`, page-table pages left empty are unhooked and moved into `g` too.
    pub fn zap(
        &mut self,
        phys: &mut PhysMem,
        start: u64,
        end: u64,
        free_tables: bool,
        g: &mut Gather,
    ) {
        let mut pages = Vec::new();
        let mut huge = false;
        let mut zapped = 0;
        self.for_each_leaf(phys, start, end, |phys, pte_pa, pte, va| {
            zapped += 1;
            phys.write_u64(pte_pa, 0);
            phys.pte_changed(pte_pa);
            if pte & PS != 0 {
                huge = true;
                // A 2 MiB page is 512 frames allocated together; release each.
                for k in 0..512 {
                    pages.push(Pfn(((pte & ADDR & !0x1f_ffff) >> 12) + k));
                }
            } else {
                pages.push(Pfn((pte & ADDR) >> 12));
            }
            let _ = va;
        });
        self.work.ptes_zapped += zapped;
        if !pages.is_empty() {
            g.note(start, end);
        }
        self.rss = self.rss.saturating_sub(pages.len() as u64);
        g.huge |= huge;
        g.pages.extend(pages);
        if free_tables {
            let before = g.tables.len();
            self.free_empty_tables(phys, start, end, g);
            if g.tables.len() > before {
                g.note(start, end);
            }
        }
    }

    /// Unhooks page-table pages under `[start, end)` that no longer map anything and
    /// whose span no VMA still uses (mm/memory.c `free_pgtables` floor/ceiling rule).
    /// Only the tables that exist are visited (bottom-up, so emptied parents are seen),
    /// so the cost follows the page tables, not the length of the range.
    fn free_empty_tables(&mut self, phys: &mut PhysMem, start: u64, end: u64, g: &mut Gather) {
        let before = g.tables.len();
        self.free_in(phys, self.root.addr(), 4, 0, start, end, g);
        self.table_pages -= (g.tables.len() - before) as u64;
        self.work.tables_freed += (g.tables.len() - before) as u64;
    }

    /// [`Mm::free_empty_tables`] below the table at `table` (level `level`, covering
    /// addresses from `base`): frees each child table whose span lies in no VMA once its
    /// own children are gone.
    #[allow(clippy::too_many_arguments)]
    fn free_in(
        &self,
        phys: &mut PhysMem,
        table: u64,
        level: u8,
        base: u64,
        start: u64,
        end: u64,
        g: &mut Gather,
    ) {
        if level == 1 {
            return;
        }
        let span = 1u64 << (12 + 9 * (u32::from(level) - 1)); // what one entry covers
        for i in 0..512u64 {
            let lo = base + i * span;
            let hi = lo.saturating_add(span);
            if hi <= start || lo >= end {
                continue;
            }
            let epa = table + 8 * i;
            let e = phys.read_u64(epa);
            if e & P == 0 || e & PS != 0 {
                continue;
            }
            let child = e & ADDR;
            self.free_in(phys, child, level - 1, lo, start, end, g);
            let t = Pfn(child >> 12);
            if self.is_free(lo, hi) && PageTables::table_empty(phys, t) {
                phys.write_u64(epa, 0);
                phys.pte_changed(epa);
                g.tables.push(t);
            }
        }
    }

    /// Handles a page fault at `va`.
    pub fn fault(
        &mut self,
        phys: &mut PhysMem,
        va: u64,
        write: bool,
        exec: bool,
    ) -> Result<Fault, OutOfMemory> {
        self.faults += 1;
        let Some(vma) = self.find(va).cloned() else { return Ok(Fault::Segv) };
        let need = if write {
            PROT_WRITE
        } else if exec {
            PROT_EXEC
        } else {
            PROT_READ
        };
        if vma.prot & need == 0 {
            return Ok(Fault::Segv);
        }
        if let Some(leaf) = PageTables::leaf(phys, self.root, va) {
            let pte = leaf.pte;
            if write && pte & RW == 0 {
                if pte & SW_COW != 0 {
                    if leaf.size == emu_mmu::PageSize::Size2M {
                        self.split_huge(phys, va)?;
                        return self.fault(phys, va, write, exec);
                    }
                    return self.break_cow(phys, leaf.pte_pa, pte).map(|_| Fault::CowBroken);
                }
                return Ok(Fault::Segv);
            }
            return Ok(Fault::Spurious);
        }
        if self.thp_allowed(&vma, va) {
            if let Some(r) = self.fault_huge(phys, &vma, va)? {
                return Ok(r);
            }
        }
        let page = va & !(PAGE - 1);
        if let Backing::Image { data: Source::Shm(shm), va: fva, off, .. } = &vma.backing {
            // A memfd page: past the end of the file a fault is SIGBUS (shmem_fault's
            // VM_FAULT_SIGBUS); a shared mapping maps the file's frame, a private one a
            // copy.
            let index = (off + (page - fva)) / PAGE;
            let frame = match shm.borrow_mut().frame_for(phys, index, vma.shared)? {
                Some(f) => f,
                None => return Ok(Fault::Sigbus),
            };
            let mut created = Vec::new();
            let Some(epa) = PageTables::entry(phys, self.root, page, 1, true, &mut created)? else {
                phys.put(frame);
                return Ok(Fault::Segv);
            };
            self.table_pages += created.len() as u64;
            self.work.tables_allocated += created.len() as u64;
            phys.write_u64(epa, frame.addr() | vma.pte_flags());
            self.rss += 1;
            return Ok(Fault::Mapped);
        }
        let frame = phys.alloc()?;
        if let Backing::Image { data, va: fva, off, len } = &vma.backing {
            let lo = page.max(*fva);
            let hi = (page + PAGE).min(fva.saturating_add(*len));
            if lo < hi {
                let dst = phys.slice_mut(frame.addr() + (lo - page), (hi - lo) as usize);
                data.read_at(off + (lo - fva), dst);
            }
        }
        let mut created = Vec::new();
        let epa = match PageTables::entry(phys, self.root, page, 1, true, &mut created)? {
            Some(e) => e,
            None => {
                phys.put(frame);
                return Ok(Fault::Segv);
            }
        };
        self.table_pages += created.len() as u64;
        self.work.tables_allocated += created.len() as u64;
        phys.write_u64(epa, frame.addr() | vma.pte_flags());
        self.rss += 1;
        Ok(Fault::Mapped)
    }

    /// True when a fault at `va` may map a 2 MiB page: an anonymous private VMA that
    /// covers the whole aligned 2 MiB range, under the THP policy.
    pub(crate) fn thp_allowed(&self, vma: &Vma, va: u64) -> bool {
        let base = va & !0x1f_ffff;
        let policy = match self.thp {
            Thp::Never => false,
            Thp::Madvise => vma.hugepage,
            Thp::Always => !vma.nohugepage,
        };
        policy
            && !vma.shared
            && matches!(vma.backing, Backing::Anon)
            && vma.start <= base
            && base + (1 << 21) <= vma.end
    }

    /// Maps a zeroed 2 MiB page at the PDE covering `va` if that PDE is empty.
    fn fault_huge(
        &mut self,
        phys: &mut PhysMem,
        vma: &Vma,
        va: u64,
    ) -> Result<Option<Fault>, OutOfMemory> {
        let base = va & !0x1f_ffff;
        let mut created = Vec::new();
        let Some(epa) = PageTables::entry(phys, self.root, base, 2, true, &mut created)? else {
            return Ok(None);
        };
        self.table_pages += created.len() as u64;
        self.work.tables_allocated += created.len() as u64;
        if phys.read_u64(epa) & P != 0 {
            return Ok(None); // a page table is already there: map 4 KiB pages
        }
        let Ok(frame) = phys.alloc_huge() else { return Ok(None) };
        phys.write_u64(epa, frame.addr() | vma.pte_flags() | PS);
        self.rss += 512;
        Ok(Some(Fault::MappedHuge))
    }

    fn break_cow(&mut self, phys: &mut PhysMem, pte_pa: u64, pte: u64) -> Result<(), OutOfMemory> {
        let old = Pfn((pte & ADDR) >> 12);
        let new_pte_base = (pte & !(ADDR | SW_COW)) | RW;
        if phys.refs(old) == 1 {
            phys.write_u64(pte_pa, new_pte_base | old.addr());
        } else {
            let new = phys.alloc()?;
            phys.copy_frame(old, new);
            phys.put(old);
            phys.write_u64(pte_pa, new_pte_base | new.addr());
            // Cached read-only copies still point at the old frame.
            phys.pte_changed(pte_pa);
        }
        Ok(())
    }

    /// Makes sure the page holding `va` is mapped (kernel-side population, e.g. to build
    /// the initial stack), returning its physical address.
    pub fn populate(&mut self, phys: &mut PhysMem, va: u64) -> Result<Option<u64>, OutOfMemory> {
        if PageTables::leaf(phys, self.root, va).is_none() {
            match self.fault(phys, va, true, false)? {
                Fault::Mapped | Fault::MappedHuge | Fault::CowBroken | Fault::Spurious => {}
                Fault::Segv | Fault::Sigbus => return Ok(None),
            }
        }
        Ok(PageTables::leaf(phys, self.root, va).map(|l| (l.pte & ADDR) | (va & 0xfff)))
    }

    /// Writes bytes into this address space from the kernel side (populating pages).
    pub fn poke(&mut self, phys: &mut PhysMem, va: u64, bytes: &[u8]) -> Result<bool, OutOfMemory> {
        let mut done = 0;
        while done < bytes.len() {
            let a = va + done as u64;
            let n = ((PAGE - (a & 0xfff)) as usize).min(bytes.len() - done);
            let Some(pa) = self.populate(phys, a)? else { return Ok(false) };
            phys.slice_mut(pa, n).copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
        Ok(true)
    }

    /// Duplicates this address space for fork: private writable pages become shared
    /// copy-on-write in both (parent PTEs are write-protected), shared mappings share
    /// frames, page tables are copied.
    pub fn fork(&mut self, phys: &mut PhysMem, ctx_id: u64) -> Result<Mm, OutOfMemory> {
        let mut child = Mm::new(phys, ctx_id, self.ctx.cpumask.to_bools().len())?;
        child.thp = self.thp;
        child.vmas = self.vmas.clone();
        child.brk_start = self.brk_start;
        child.brk = self.brk;
        // dup_mm copies the mm, registrations included.
        child.membarrier = self.membarrier;
        child.exe = self.exe.clone();
        let mut leaves = Vec::new();
        for v in self.vmas.values() {
            let shared = v.shared;
            self.for_each_leaf(phys, v.start, v.end, |_, pte_pa, pte, va| {
                leaves.push((pte_pa, pte, va, shared));
            });
        }
        for (pte_pa, pte, va, shared) in leaves {
            let mut cpte = pte;
            if !shared && pte & RW != 0 {
                cpte = (pte & !RW) | SW_COW;
                phys.write_u64(pte_pa, cpte);
                phys.pte_changed(pte_pa);
            } else if !shared && pte & SW_COW != 0 {
                cpte = pte;
            }
            if pte & PS != 0 {
                let first = (pte & ADDR & !0x1f_ffff) >> 12;
                for k in 0..512 {
                    phys.get(Pfn(first + k));
                }
            } else {
                phys.get(Pfn((pte & ADDR) >> 12));
            }
            let mut created = Vec::new();
            let level = if pte & PS != 0 { 2 } else { 1 };
            if let Some(epa) = PageTables::entry(phys, child.root, va, level, true, &mut created)? {
                phys.write_u64(epa, cpte);
            }
            child.table_pages += created.len() as u64;
            self.work.tables_allocated += created.len() as u64;
            self.work.ptes_copied += 1;
            child.rss += if pte & PS != 0 { 512 } else { 1 };
        }
        Ok(child)
    }

    /// Tears the whole address space down into `g` (exit_mmap). The PML4 is not freed here.
    pub fn teardown(&mut self, phys: &mut PhysMem, g: &mut Gather) {
        let vmas: Vec<(u64, u64)> = self.vmas.values().map(|v| (v.start, v.end)).collect();
        self.vmas.clear();
        for (s, e) in vmas {
            self.zap(phys, s, e, true, g);
        }
        // The PGD stays: __mmdrop frees it (mm_free_pgd) with the mm_struct.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anon(start: u64, end: u64, prot: u8) -> Vma {
        Vma {
            start,
            end,
            prot,
            shared: false,
            backing: Backing::Anon,
            kind: VmaKind::Anon,
            hugepage: false,
            nohugepage: false,
        }
    }

    #[test]
    fn demand_fault_and_unmap_frees_tables() {
        let mut phys = PhysMem::new(64);
        let mut mm = Mm::new(&mut phys, 2, 1).unwrap();
        mm.insert(anon(0x10_0000, 0x20_0000, PROT_READ | PROT_WRITE));
        assert_eq!(mm.fault(&mut phys, 0x10_1234, true, false).unwrap(), Fault::Mapped);
        assert_eq!(mm.fault(&mut phys, 0x10_1234, true, false).unwrap(), Fault::Spurious);
        assert_eq!(mm.fault(&mut phys, 0x30_0000, false, false).unwrap(), Fault::Segv);
        assert_eq!(mm.table_pages, 4);
        let mut g = Gather::default();
        mm.unmap(&mut phys, 0x10_0000, 0x20_0000, &mut g);
        assert_eq!(g.pages.len(), 1);
        assert_eq!(g.tables.len(), 3, "PT, PD and PDPT emptied");
        assert!(g.freed_tables());
        assert_eq!(mm.table_pages, 1);
    }

    #[test]
    fn partial_unmap_splits_and_keeps_tables_in_use() {
        let mut phys = PhysMem::new(64);
        let mut mm = Mm::new(&mut phys, 2, 1).unwrap();
        mm.insert(anon(0x10_0000, 0x10_4000, PROT_READ | PROT_WRITE));
        for k in 0..4 {
            mm.fault(&mut phys, 0x10_0000 + k * PAGE, true, false).unwrap();
        }
        let mut g = Gather::default();
        mm.unmap(&mut phys, 0x10_1000, 0x10_2000, &mut g);
        assert_eq!(g.pages.len(), 1);
        assert!(!g.freed_tables());
        assert_eq!(mm.vmas.len(), 2);
        assert!(mm.find(0x10_1000).is_none() && mm.find(0x10_2000).is_some());
    }

    #[test]
    fn mprotect_and_cow() {
        let mut phys = PhysMem::new(64);
        let mut mm = Mm::new(&mut phys, 2, 1).unwrap();
        mm.insert(anon(0x10_0000, 0x10_2000, PROT_READ | PROT_WRITE));
        mm.fault(&mut phys, 0x10_0000, true, false).unwrap();
        assert!(mm.protect(&mut phys, 0x10_0000, 0x10_1000, PROT_READ).is_ok());
        assert_eq!(mm.fault(&mut phys, 0x10_0000, true, false).unwrap(), Fault::Segv);
        assert!(mm.protect(&mut phys, 0x10_0000, 0x10_1000, PROT_READ | PROT_WRITE).is_ok());
        assert_eq!(mm.vmas.len(), 1, "merged back");
        let mut child = mm.fork(&mut phys, 3).unwrap();
        assert_eq!(child.fault(&mut phys, 0x10_0000, true, false).unwrap(), Fault::CowBroken);
        assert_eq!(mm.fault(&mut phys, 0x10_0000, true, false).unwrap(), Fault::CowBroken);
        let a = PageTables::leaf(&phys, mm.root, 0x10_0000).unwrap().pte & ADDR;
        let b = PageTables::leaf(&phys, child.root, 0x10_0000).unwrap().pte & ADDR;
        assert_ne!(a, b);
    }

    #[test]
    fn find_free_is_top_down() {
        let mut phys = PhysMem::new(64);
        let mut mm = Mm::new(&mut phys, 2, 1).unwrap();
        let a = mm.find_free(0x2000).unwrap();
        assert_eq!(a, MMAP_BASE - 0x2000);
        mm.insert(anon(a, a + 0x2000, PROT_READ));
        assert_eq!(mm.find_free(0x1000).unwrap(), a - 0x1000);
    }
}

#[cfg(test)]
mod huge_tests {
    use super::*;

    #[test]
    fn madvised_region_gets_a_2m_page_and_splits_on_partial_unmap() {
        let mut phys = PhysMem::new(64);
        let mut mm = Mm::new(&mut phys, 2, 1).unwrap();
        let v = Vma {
            start: 0x4000_0000,
            end: 0x4040_0000,
            prot: PROT_READ | PROT_WRITE,
            shared: false,
            backing: Backing::Anon,
            kind: VmaKind::Anon,
            hugepage: false,
            nohugepage: false,
        };
        mm.insert(v);
        assert_eq!(
            mm.fault(&mut phys, 0x4000_1000, true, false).unwrap(),
            Fault::Mapped,
            "not madvised"
        );
        mm.set_hugepage(0x4000_0000, 0x4040_0000, true);
        assert_eq!(mm.fault(&mut phys, 0x4020_3000, true, false).unwrap(), Fault::MappedHuge);
        let leaf = PageTables::leaf(&phys, mm.root, 0x4021_0000).unwrap();
        assert_eq!(leaf.size, emu_mmu::PageSize::Size2M);
        let mut g = Gather::default();
        mm.unmap(&mut phys, 0x4021_0000, 0x4021_2000, &mut g);
        assert_eq!(g.pages.len(), 2, "split, then two 4 KiB pages unmapped");
        let leaf = PageTables::leaf(&phys, mm.root, 0x4030_0000).unwrap();
        assert_eq!(leaf.size, emu_mmu::PageSize::Size4K);
        assert!(PageTables::leaf(&phys, mm.root, 0x4021_1000).is_none());
    }
}
