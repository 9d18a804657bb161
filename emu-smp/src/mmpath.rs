//! The kernel paths that change or fill an address space, as steps that take the locks
//! Linux takes (DESIGN.md, "Kernel paths take time"):
//!
//! - mmap, munmap, mprotect, mremap, brk and fork take `mmap_lock` for write (the
//!   rw-semaphore: writers wait for readers and sleep while waiting); the change, its
//!   flush and the wait for the flush's acks all happen with the lock held.
//! - madvise(MADV_DONTNEED/MADV_FREE) takes it for read, then zaps the range one page
//!   table at a time under that table's split page-table lock (`zap_pte_range`), and
//!   flushes once at the end (`tlb_finish_mmu`).
//! - a page fault takes it for read (lock_mm_and_find_vma; per-VMA locks are not
//!   modelled), allocates and clears a page before taking the page-table lock, and
//!   installs the PTE under it. A copy-on-write fault flushes the old PTE with the lock
//!   held (`ptep_clear_flush` in `wp_page_copy`).
//!
//! Pages come from, and go back to, per-CPU lists refilled and drained in batches under
//! `zone->lock`; new anonymous pages reach the LRU through a per-CPU batch added under
//! `lru_lock` when it fills or when munmap and madvise drain it (`lru_add_drain`), and
//! freed pages leave it under `lru_lock` ([`Machine::free_pages`]).

use crate::lock::{LockKey, LockMode};
use crate::machine::{sig, Machine};
use crate::mm::{Fault, Gather};
use crate::path::{KPath, Next};
use crate::syscall::Sys;
use crate::task::{SigFields, SigInfo, TrapInfo, Wait};
use crate::tlbflush::Reason;
use emu_core::{Access, PageFault};
use emu_mmu::{PageTables, Pfn};

/// Pages a per-CPU page list moves to or from the zone at once (mm/page_alloc.c
/// `zone_batchsize`: 63 for zones above 256 MiB).
const PCP_BATCH: i64 = 63;
/// Pages a per-CPU list holds before it drains a batch (the `high = 6 * batch` of
/// mm/page_alloc.c `pageset_set_batch`).
const PCP_HIGH: i64 = 6 * PCP_BATCH;
/// New folios a per-CPU LRU batch collects before it takes `lru_lock`
/// (include/linux/folio_batch.h `FOLIO_BATCH_SIZE`).
const LRU_BATCH: u32 = 31;

/// An address-space system call.
#[derive(Clone, Debug, PartialEq)]
pub enum MmCall {
    /// mmap(2) with its six arguments.
    Mmap([u64; 6]),
    /// munmap(2).
    Munmap(u64, u64),
    /// mprotect(2).
    Mprotect(u64, u64, u8),
    /// brk(2).
    Brk(u64),
    /// mremap(2).
    Mremap([u64; 5]),
    /// madvise(MADV_DONTNEED or MADV_FREE) of `[start, end)`.
    Dontneed(u64, u64),
    /// madvise(MADV_COLLAPSE) of `[start, end)`.
    Collapse(u64, u64),
    /// fork, clone or clone3 making a new address space (the syscall number and its
    /// arguments).
    Fork(u64, [u64; 6]),
    /// shmat(2): id, address, flags.
    Shmat(i32, u64, u64),
    /// shmdt(2).
    Shmdt(u64),
}

/// Where an [`MmCall`] is.
#[derive(Clone, Debug)]
pub enum MmStep {
    /// About to take mmap_lock.
    Lock,
    /// mmap_lock held: do the change (and start its flush).
    Body,
    /// madvise: zap the page table covering this address next.
    Zap(u64),
    /// madvise: holding this page-table lock, zap the part of the range it covers.
    ZapLocked(u64, LockKey),
    /// madvise: the whole range is zapped; flush it.
    Flush,
    /// MADV_COLLAPSE: scan the next 2 MiB range and start its collapse.
    CollapseNext(Box<Collapse>),
    /// MADV_COLLAPSE: pmdp_collapse_flush and the walker sync are done; copy.
    CollapseCopy(Box<Collapse>),
    /// The flush completed: release mmap_lock and return.
    Unlock(SysResult),
}

/// An madvise(MADV_COLLAPSE) in progress (mm/madvise.c `madvise_walk_vmas` calling
/// mm/khugepaged.c `madvise_collapse` once per VMA).
#[derive(Clone, Debug, Default)]
pub struct Collapse {
    /// Per VMA met, in order: the 2 MiB ranges of it inside the call's range, or the
    /// errno of a VMA that cannot hold a THP (hugepage_vma_check).
    vmas: std::collections::VecDeque<Result<Vec<u64>, i64>>,
    /// A hole in the range: -ENOMEM at the end.
    unmapped: bool,
    /// The current VMA's ranges collapsed or already huge, and how many it has.
    thps: usize,
    want: usize,
    /// The errno of the current VMA's last failed range (madvise_collapse_errno).
    last_fail: i64,
    /// The range being collapsed: its base, PMD entry, the PTEs of its detached table,
    /// the new 2 MiB frame.
    cur: Option<(u64, u64, Vec<u64>, Pfn)>,
    /// Tables waiting for this task's synchronize_rcu, and when it began.
    rcu: Option<(Vec<Pfn>, u64)>,
}

/// The result an [`MmCall`] returns with.
#[derive(Clone, Debug)]
pub enum SysResult {
    /// A value for RAX.
    Ret(i64),
    /// Sleep (a vfork parent).
    Block(Wait),
}

/// An address-space system call in progress.
#[derive(Clone, Debug)]
pub struct MmOp {
    /// The call.
    pub call: MmCall,
    /// Its address space.
    pub mm: u32,
    /// Where it is.
    pub step: MmStep,
    /// Pages and tables unmapped so far (madvise).
    pub gather: Gather,
}

/// Where a page fault is.
#[derive(Clone, Debug)]
pub enum FaultStep {
    /// Exception entry: take mmap_lock for read.
    Start,
    /// mmap_lock held: find the VMA, allocate and clear the page, take the PTL.
    Locked,
    /// Holding this page-table lock (or none when no table exists yet): install.
    Install(Option<LockKey>),
    /// A copy-on-write flush completed: release the locks.
    Unlock(Option<LockKey>),
}

impl MmOp {
    /// A call on `mm`, before it takes mmap_lock.
    pub fn new(call: MmCall, mm: u32) -> Self {
        MmOp { call, mm, step: MmStep::Lock, gather: Gather::default() }
    }

    fn mode(&self) -> LockMode {
        match self.call {
            // MADV_COLLAPSE scans under the read lock and takes the write lock to
            // collapse (collapse_huge_page); here it holds the write lock throughout.
            MmCall::Dontneed(..) => LockMode::Read,
            _ => LockMode::Write,
        }
    }
}

/// The split page-table lock that covers `va`: its PTE table's, or, with no PTE table
/// there, the PMD table's (`pmd_lock`). None when neither exists.
fn ptl_of(phys: &emu_mmu::PhysMem, mm: u32, root: u64, va: u64) -> Option<LockKey> {
    emu_mmu::table_at(phys, root, va, 1)
        .or_else(|| emu_mmu::table_at(phys, root, va, 2))
        .map(|t| LockKey::Ptl(mm, t >> 12))
}

impl Machine {
    /// One step of an address-space system call on core `c`.
    pub(crate) fn mm_step(&mut self, c: usize, tid: u32, mut op: MmOp) -> Next {
        match std::mem::replace(&mut op.step, MmStep::Flush) {
            MmStep::Lock => {
                let (key, mode) = (LockKey::MmapLock(op.mm), op.mode());
                op.step = MmStep::Body;
                Next::Lock(key, mode, KPath::Mm(Box::new(op)))
            }
            MmStep::Body => {
                // find_vma (or, for a new mapping, the gap search) first.
                self.charge(c, self.k.costs.vma_find);
                let r = match op.call.clone() {
                    MmCall::Mmap(a) => Sys::Ret(self.mmap_call(c, tid, a)),
                    MmCall::Munmap(a, l) => {
                        // unmap_region drains this CPU's LRU batch before it zaps.
                        self.lru_add_drain(c);
                        Sys::Ret(self.sys_munmap(c, tid, a, l))
                    }
                    MmCall::Mprotect(a, l, p) => Sys::Ret(self.sys_mprotect(c, tid, a, l, p)),
                    MmCall::Brk(w) => Sys::Ret(self.sys_brk(c, tid, w)),
                    MmCall::Mremap(a) => {
                        Sys::Ret(self.sys_mremap(c, tid, a[0], a[1], a[2], a[3], a[4]))
                    }
                    MmCall::Fork(nr, a) => self.fork_call(c, tid, nr, a),
                    MmCall::Shmat(id, addr, flg) => {
                        Sys::Ret(self.shmat_call(c, tid, id, addr, flg))
                    }
                    MmCall::Shmdt(addr) => Sys::Ret(self.shmdt_call(c, tid, addr)),
                    MmCall::Collapse(start, end) => {
                        let Some(mm) = self.k.mms.get(&op.mm) else { return Next::Gone };
                        let col = collapse_plan(mm, start, end);
                        // madvise_collapse: lru_add_drain_all (here this CPU's batch).
                        self.lru_add_drain(c);
                        self.probes.kstats.madvise_collapse += 1;
                        op.step = MmStep::CollapseNext(Box::new(col));
                        return Next::Then(KPath::Mm(Box::new(op)));
                    }
                    MmCall::Dontneed(start, end) => {
                        // Every page of the range must be mapped.
                        let Some(mm) = self.k.mms.get(&op.mm) else { return Next::Gone };
                        let mut a = start;
                        while a < end {
                            match mm.find(a) {
                                Some(v) => a = v.end,
                                None => {
                                    op.step =
                                        MmStep::Unlock(SysResult::Ret(-crate::fs::errno::ENOMEM));
                                    return Next::Then(KPath::Mm(Box::new(op)));
                                }
                            }
                        }
                        self.probes.kstats.madvise_dontneed += 1;
                        // zap_page_range_single drains this CPU's LRU batch first.
                        self.lru_add_drain(c);
                        op.step = MmStep::Zap(start);
                        return Next::Then(KPath::Mm(Box::new(op)));
                    }
                };
                op.step = MmStep::Unlock(match r {
                    Sys::Block(w) => SysResult::Block(w),
                    Sys::Ret(v) => SysResult::Ret(v),
                    _ => SysResult::Ret(0),
                });
                Next::Then(KPath::Mm(Box::new(op)))
            }
            MmStep::Zap(at) => {
                let MmCall::Dontneed(_, end) = op.call else { return Next::Gone };
                if at >= end {
                    op.step = MmStep::Flush;
                    return Next::Then(KPath::Mm(Box::new(op)));
                }
                let Some(mm) = self.k.mms.get(&op.mm) else { return Next::Gone };
                match ptl_of(&self.hw.mem.phys, op.mm, mm.root.addr(), at) {
                    Some(key) => {
                        op.step = MmStep::ZapLocked(at, key);
                        Next::Lock(key, LockMode::Write, KPath::Mm(Box::new(op)))
                    }
                    None => {
                        // Nothing is mapped under this page table's span.
                        op.step = MmStep::Zap(chunk_end(at, end));
                        Next::Then(KPath::Mm(Box::new(op)))
                    }
                }
            }
            MmStep::ZapLocked(at, key) => {
                let MmCall::Dontneed(_, end) = op.call else { return Next::Gone };
                let to = chunk_end(at, end);
                if let Some(mm) = self.k.mms.get_mut(&op.mm) {
                    mm.zap(&mut self.hw.mem.phys, at, to, false, &mut op.gather);
                }
                self.unlock(c, key, LockMode::Write);
                op.step = MmStep::Zap(to);
                Next::Then(KPath::Mm(Box::new(op)))
            }
            MmStep::Flush => {
                let g = std::mem::take(&mut op.gather);
                self.finish_gather(c, op.mm, g, Reason::Madvise);
                op.step = MmStep::Unlock(SysResult::Ret(0));
                Next::Then(KPath::Mm(Box::new(op)))
            }
            MmStep::CollapseNext(col) => self.collapse_next(c, op, col),
            MmStep::CollapseCopy(col) => self.collapse_copy(c, tid, op, col),
            MmStep::Unlock(r) => {
                self.unlock(c, LockKey::MmapLock(op.mm), op.mode());
                match r {
                    SysResult::Ret(v) => {
                        if let Some(t) = self.k.tasks.get_mut(&tid) {
                            t.cpu.gpr[0] = v as u64;
                        }
                        Next::User
                    }
                    SysResult::Block(w) => Next::Block(w),
                }
            }
        }
    }

    /// MADV_COLLAPSE's next 2 MiB range: hpage_collapse_scan_pmd (the PTE table's lines
    /// read through the caches), then collapse_huge_page up to its flush: the 2 MiB
    /// folio allocated, the PMD cleared and flushed with `freed_tables`
    /// (pmdp_collapse_flush); the flush's completion runs the walker sync for a reused
    /// table (tlb_remove_table_sync_one upstream, `--walker-sync` here).
    fn collapse_next(&mut self, c: usize, mut op: MmOp, mut col: Box<Collapse>) -> Next {
        use crate::fs::errno::{EINVAL, ENOMEM};
        use crate::mm::CollapseScan;
        let done = |mut op: MmOp, r: i64| {
            op.step = MmStep::Unlock(SysResult::Ret(r));
            Next::Then(KPath::Mm(Box::new(op)))
        };
        let base = loop {
            match col.vmas.front_mut() {
                None => return done(op, if col.unmapped { -ENOMEM } else { 0 }),
                Some(Err(e)) => {
                    let e = *e;
                    return done(op, -e);
                }
                Some(Ok(bases)) if bases.is_empty() => {
                    // madvise_collapse's verdict for this VMA.
                    if col.thps < col.want {
                        return done(op, -col.last_fail);
                    }
                    col.vmas.pop_front();
                    let next = match col.vmas.front() {
                        Some(Ok(b)) => b.len(),
                        _ => 0,
                    };
                    (col.thps, col.want, col.last_fail) = (0, next, EINVAL);
                }
                Some(Ok(bases)) => break bases.remove(0),
            }
        };
        // hugepage_vma_revalidate, then the scan of the PMD and its 512 PTEs.
        self.charge(c, self.k.costs.vma_find);
        let Some(mm) = self.k.mms.get(&op.mm) else { return Next::Gone };
        let scan = mm.collapse_scan(&self.hw.mem.phys, base);
        if let CollapseScan::Ok { table, .. } = scan {
            for line in 0..64 {
                let cost = self.hw.mem.caches.access(c, table.addr() + 64 * line, false);
                self.charge(c, cost);
            }
        }
        let (pmd_pa, table) = match scan {
            CollapseScan::PmdMapped => {
                col.thps += 1;
                op.step = MmStep::CollapseNext(col);
                return Next::Then(KPath::Mm(Box::new(op)));
            }
            CollapseScan::PmdNull => {
                col.last_fail = EINVAL;
                op.step = MmStep::CollapseNext(col);
                return Next::Then(KPath::Mm(Box::new(op)));
            }
            CollapseScan::Ok { pmd_pa, table } => (pmd_pa, table),
        };
        // alloc_charge_folio: SCAN_ALLOC_HUGE_PAGE_FAIL ends the call with -ENOMEM.
        let Ok(frame) = self.hw.mem.phys.alloc_huge() else { return done(op, -ENOMEM) };
        self.alloc_pages(c, 512);
        let Some(mm) = self.k.mms.get_mut(&op.mm) else { return Next::Gone };
        let ptes = mm.collapse_clear_pmd(&mut self.hw.mem.phys, pmd_pa, table);
        let end = base + (1 << 21);
        self.flush_and_free(
            c,
            op.mm,
            base,
            end,
            12,
            true,
            Reason::Collapse,
            (Vec::new(), vec![table]),
        );
        col.cur = Some((base, pmd_pa, ptes, frame));
        op.step = MmStep::CollapseCopy(col);
        Next::Then(KPath::Mm(Box::new(op)))
    }

    /// MADV_COLLAPSE after the flush: under `--walker-sync rcu` the reused table waits
    /// for this task's synchronize_rcu (it sleeps holding mmap_lock); then
    /// __collapse_huge_page_copy copies (or clears) every 4 KiB of the folio, the old
    /// pages are freed and the huge PMD set.
    fn collapse_copy(&mut self, c: usize, tid: u32, mut op: MmOp, mut col: Box<Collapse>) -> Next {
        let pending = std::mem::take(&mut self.k.cpus[c].sync_rcu);
        if !pending.is_empty() {
            let now = self.now(c);
            col.rcu = Some((pending, now));
            self.synchronize_rcu(c, tid);
            op.step = MmStep::CollapseCopy(col);
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.kpath = Some(KPath::Mm(Box::new(op)));
            }
            return Next::Block(Wait::Rcu { since_fp: now });
        }
        if let Some((tables, since)) = col.rcu.take() {
            let spent = self.now(c).saturating_sub(since) >> 8;
            self.note_sync_latency(spent);
            self.free_tables(c, tables);
        }
        let Some((base, pmd_pa, ptes, frame)) = col.cur.take() else { return Next::Gone };
        self.charge(c, 512 * self.k.costs.page_zero);
        let Some(mm) = self.k.mms.get_mut(&op.mm) else { return Next::Gone };
        let old = mm.collapse_install(&mut self.hw.mem.phys, base, pmd_pa, &ptes, frame);
        self.settle_work(c, op.mm);
        self.free_pages(c, old);
        self.probes.kstats.thp_collapsed += 1;
        col.thps += 1;
        op.step = MmStep::CollapseNext(col);
        Next::Then(KPath::Mm(Box::new(op)))
    }

    /// One step of a page fault raised by a user access on core `c`.
    pub(crate) fn fault_step(
        &mut self,
        c: usize,
        tid: u32,
        pf: PageFault,
        step: FaultStep,
    ) -> Next {
        let Some(mmid) = self.k.tasks.get(&tid).map(|t| t.mm) else { return Next::Gone };
        match step {
            FaultStep::Start => {
                self.charge(c, self.k.costs.fault_entry);
                if crate::misc::is_vsyscall(pf.addr) {
                    return self.emulate_vsyscall(c, tid, pf);
                }
                Next::Lock(
                    LockKey::MmapLock(mmid),
                    LockMode::Read,
                    KPath::Fault(pf, FaultStep::Locked),
                )
            }
            FaultStep::Locked => {
                let Some(mm) = self.k.mms.get(&mmid) else { return Next::Gone };
                // Before the page-table lock: allocate and clear (or copy) the page a
                // missing or copy-on-write PTE needs.
                let write = pf.access == Access::Write;
                let allowed = mm.find(pf.addr).is_some_and(|v| {
                    let need = match pf.access {
                        Access::Write => crate::mm::PROT_WRITE,
                        Access::Exec => crate::mm::PROT_EXEC,
                        _ => crate::mm::PROT_READ,
                    };
                    v.prot & need != 0
                });
                let pages = match mm.find(pf.addr).filter(|_| allowed) {
                    None => 0,
                    Some(vma) => match PageTables::leaf(&self.hw.mem.phys, mm.root, pf.addr) {
                        None if mm.thp_allowed(vma, pf.addr) => 512,
                        None => 1,
                        Some(l) if write && l.pte & emu_mmu::pte::RW == 0 => 1,
                        Some(_) => 0,
                    },
                };
                let key = ptl_of(&self.hw.mem.phys, mmid, mm.root.addr(), pf.addr);
                self.charge(c, self.k.costs.vma_find + pages * self.k.costs.page_zero);
                match key {
                    Some(k) => {
                        Next::Lock(k, LockMode::Write, KPath::Fault(pf, FaultStep::Install(key)))
                    }
                    None => Next::Then(KPath::Fault(pf, FaultStep::Install(None))),
                }
            }
            FaultStep::Install(ptl) => {
                let Some(mm) = self.k.mms.get_mut(&mmid) else { return Next::Gone };
                let res = mm.fault(
                    &mut self.hw.mem.phys,
                    pf.addr,
                    pf.access == Access::Write,
                    pf.access == Access::Exec,
                );
                // The page-table pages the fault allocated.
                self.settle_work(c, mmid);
                let r = match res {
                    Ok(r) => r,
                    Err(e) => {
                        self.fail(crate::machine::SimError::OutOfMemory(e.to_string()));
                        return Next::Gone;
                    }
                };
                match r {
                    Fault::Mapped => {
                        self.probes.kstats.page_faults += 1;
                        self.alloc_pages(c, 1);
                    }
                    Fault::MappedHuge => {
                        self.probes.kstats.page_faults += 1;
                        self.probes.kstats.huge_page_faults += 1;
                        self.alloc_pages(c, 512);
                    }
                    Fault::CowBroken => {
                        self.probes.kstats.cow_faults += 1;
                        self.alloc_pages(c, 1);
                        // ptep_clear_flush, with the page-table lock held: other CPUs
                        // may cache the read-only PTE.
                        let page = pf.addr & !0xfff;
                        self.flush_tlb_mm_range(c, mmid, page, page + 4096, 12, false, Reason::Cow);
                        return Next::Then(KPath::Fault(pf, FaultStep::Unlock(ptl)));
                    }
                    Fault::Spurious => {
                        self.probes.kstats.spurious_faults += 1;
                        let cost = self.hw.mem.invlpg(c, pf.addr);
                        self.charge(c, cost);
                    }
                    Fault::Segv | Fault::Sigbus => {
                        self.fault_unlock(c, mmid, ptl);
                        let rip = self.k.tasks.get(&tid).map_or(0, |t| t.cpu.rip);
                        let bus = r == Fault::Sigbus;
                        let what = if bus {
                            "past the end of the file"
                        } else if pf.protection {
                            "protection violation"
                        } else {
                            "page not mapped"
                        };
                        let kind = if bus { "bus error" } else { "segmentation fault" };
                        let report = format!(
                            "{kind}: {} at address {:#x}, rip {:#x} ({what})",
                            pf.access, pf.addr, rip
                        );
                        // bad_area / bad_area_access_error: no VMA is SEGV_MAPERR, a VMA
                        // that forbids the access SEGV_ACCERR; set_signal_archinfo.
                        let mapped =
                            self.k.mms.get(&mmid).is_some_and(|m| m.find(pf.addr).is_some());
                        let info = user_fault_siginfo(bus, mapped, pf.addr);
                        if let Some(t) = self.k.tasks.get_mut(&tid) {
                            t.trap = TrapInfo { trapno: 14, err: pf_error_code(&pf), cr2: pf.addr };
                        }
                        self.force_signal(c, tid, info, Some(report));
                        return self.user_or_gone(c, tid);
                    }
                }
                self.fault_unlock(c, mmid, ptl);
                Next::User
            }
            FaultStep::Unlock(ptl) => {
                self.fault_unlock(c, mmid, ptl);
                Next::User
            }
        }
    }

    /// Charges core `c` for the address-space work done on `mm` since the last
    /// settlement (counted by [`crate::mm::Mm`] as it does the work): called before a
    /// flush starts, so the work precedes the flush as in Linux, and after every kernel
    /// step, so that each step pays for what it did.
    pub(crate) fn settle_work(&mut self, c: usize, mm: u32) {
        let Some(m) = self.k.mms.get_mut(&mm) else { return };
        if m.work == m.settled {
            return;
        }
        let done = m.work.since(&m.settled);
        m.settled = m.work;
        let cost = done.cost(&self.k.costs);
        self.probes.kstats.mm_work.add(&done);
        self.probes.kstats.mm_work_cycles += cost >> 8;
        self.charge(c, cost);
    }

    fn fault_unlock(&mut self, c: usize, mm: u32, ptl: Option<LockKey>) {
        if let Some(k) = ptl {
            self.unlock(c, k, LockMode::Write);
        }
        self.unlock(c, LockKey::MmapLock(mm), LockMode::Read);
    }

    /// A new folio of `n` pages for core `c`: from its per-CPU list, refilled from the
    /// zone in batches under zone->lock; it joins the reverse map, and the LRU through the
    /// per-CPU batch.
    pub(crate) fn alloc_pages(&mut self, c: usize, n: i64) {
        let k = self.k.costs;
        self.charge(c, k.page_alloc + k.rmap_add + k.lru_add);
        self.k.cpus[c].pcp_pages -= n;
        while self.k.cpus[c].pcp_pages < 0 {
            self.lock_here(c, LockKey::Zone);
            self.unlock(c, LockKey::Zone, LockMode::Write);
            self.k.cpus[c].pcp_pages += PCP_BATCH;
        }
        self.k.cpus[c].lru_batch += 1;
        if self.k.cpus[c].lru_batch >= LRU_BATCH {
            self.k.cpus[c].lru_batch = 0;
            self.lock_here(c, LockKey::Lru);
            self.unlock(c, LockKey::Lru, LockMode::Write);
        }
    }

    /// lru_add_drain: the folios of this CPU's LRU batch join the LRU under lru_lock (no
    /// lock when the batch is empty), as munmap and madvise do before they zap.
    fn lru_add_drain(&mut self, c: usize) {
        if self.k.cpus[c].lru_batch > 0 {
            self.k.cpus[c].lru_batch = 0;
            self.lock_here(c, LockKey::Lru);
            self.unlock(c, LockKey::Lru, LockMode::Write);
        }
    }

    /// Releases frames a completed flush made unreachable (tlb_finish_mmu's
    /// free_pages_and_swap_cache): pages leave the LRU under lru_lock and go to the
    /// per-CPU list, which drains batches to the zone under zone->lock.
    pub(crate) fn free_pages(&mut self, c: usize, frames: Vec<Pfn>) {
        if frames.is_empty() {
            return;
        }
        let n = frames.len() as i64;
        for p in frames {
            self.hw.mem.phys.put(p);
        }
        if self.k.cpus[c].current.is_none() {
            return;
        }
        self.lock_here(c, LockKey::Lru);
        self.unlock(c, LockKey::Lru, LockMode::Write);
        self.k.cpus[c].pcp_pages += n;
        while self.k.cpus[c].pcp_pages > PCP_HIGH {
            self.lock_here(c, LockKey::Zone);
            self.unlock(c, LockKey::Zone, LockMode::Write);
            self.k.cpus[c].pcp_pages -= PCP_BATCH;
        }
    }

    /// fork, clone or clone3 with a new address space, under the parent's mmap_lock.
    fn fork_call(&mut self, c: usize, tid: u32, nr: u64, a: [u64; 6]) -> Sys {
        use crate::syscall::nr::{CLONE, CLONE3};
        match nr {
            CLONE => self.sys_clone(c, tid, a[0], a[1], a[2], a[3], a[4], None),
            CLONE3 => self.sys_clone3(c, tid, a[0], a[1]),
            _ => self.sys_clone(c, tid, 17, 0, 0, 0, 0, None),
        }
    }
}

/// What MADV_COLLAPSE of `[start, end)` will do: for each VMA met, its 2 MiB ranges
/// inside the call's range (madvise_collapse's hstart..hend), or -EINVAL for a VMA
/// thp_vma_allowable_order refuses (MADV_NOHUGEPAGE). The sysfs THP mode does not
/// apply to MADV_COLLAPSE. File and shared-memory collapse (collapse_file, retire point
/// E3) is not modelled: such a VMA with a whole 2 MiB in the range is -EINVAL here
/// (Linux would collapse shmem); one without is 0, as in Linux.
fn collapse_plan(mm: &crate::mm::Mm, start: u64, end: u64) -> Collapse {
    const HUGE: u64 = 1 << 21;
    let mut col = Collapse::default();
    let mut a = start;
    while a < end {
        let Some(v) = mm.find(a) else {
            col.unmapped = true;
            a = mm.vmas.range(a..).next().map_or(end, |(k, _)| *k);
            continue;
        };
        let (lo, hi) = (a.max(v.start), end.min(v.end));
        let anon = matches!(v.backing, crate::mm::Backing::Anon) && !v.shared;
        let (hs, he) = ((lo + HUGE - 1) & !(HUGE - 1), hi & !(HUGE - 1));
        if v.nohugepage || (!anon && hs < he) {
            col.vmas.push_back(Err(crate::fs::errno::EINVAL));
            break;
        }
        col.vmas.push_back(Ok((hs..he.max(hs)).step_by(HUGE as usize).collect()));
        a = v.end;
    }
    col.want = match col.vmas.front() {
        Some(Ok(b)) => b.len(),
        _ => 0,
    };
    col.last_fail = crate::fs::errno::EINVAL;
    col
}

/// The end of the part of `[at, end)` one page table covers.
fn chunk_end(at: u64, end: u64) -> u64 {
    ((at | 0x1f_ffff) + 1).min(end)
}

/// The page-fault error code a user fault's signal frame reports
/// (arch/x86/mm/fault.c `set_signal_archinfo`): X86_PF_PROT when the page was present
/// or the address is the kernel's, X86_PF_WRITE, X86_PF_USER, X86_PF_INSTR.
pub(crate) fn pf_error_code(pf: &PageFault) -> u64 {
    let mut e = 4; // X86_PF_USER
    if pf.protection || pf.addr >= crate::syscall::TASK_SIZE {
        e |= 1;
    }
    match pf.access {
        Access::Write => e |= 2,
        Access::Exec => e |= 16,
        Access::Read => {}
    }
    e
}

/// The siginfo of a user page fault that raises a signal: SIGBUS/BUS_ADRERR past the
/// end of a file, else SIGSEGV with SEGV_ACCERR inside a VMA and SEGV_MAPERR outside.
pub(crate) fn user_fault_siginfo(bus: bool, mapped: bool, addr: u64) -> SigInfo {
    use crate::signal::si::*;
    let (signo, code) = if bus {
        (sig::SIGBUS, BUS_ADRERR)
    } else if mapped {
        (sig::SIGSEGV, SEGV_ACCERR)
    } else {
        (sig::SIGSEGV, SEGV_MAPERR)
    };
    SigInfo { signo, code, fields: SigFields::Fault { addr } }
}
