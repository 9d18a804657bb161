//! Lockless page-table walkers and the retirement of page-table pages (seed 002,
//! ../shared/AXES.md §1).
//!
//! GUP-fast (mm/gup.c `gup_fast_fallback` → `gup_fast` → `gup_fast_pgd_range` and the
//! per-level `gup_fast_*_range`) walks `current->mm` with local interrupts disabled and
//! no lock: one kernel step per table read (PGD, PUD, PMD, PTE) charged through the
//! cache model, the folio reference as a locked RMW on the folio's `struct page` line
//! (`try_grab_folio_fast`), then one step re-reading the PMD and the PTE (the pairing
//! with `pmdp_collapse_flush`). A non-present entry, a missing permission or a changed
//! entry ends the walk with nothing, and the caller falls back to the slow path. The
//! steps run with interrupts off: the core takes no IPI and no tick until the walk
//! ends (path.rs `run_kernel`), so a flush IPI to it waits, which is what makes the
//! IPI a sync.
//!
//! A call asks for `nr` consecutive pages and walks them page by page, going on from
//! the table pointers it holds (the nested loops of `gup_fast_pgd_range`); a huge
//! leaf gives every page of its range at once with one reference add
//! (`gup_fast_pmd_leaf`). The first page it cannot take ends the walk, and the
//! caller's slow path (`__gup_longterm_locked`, untimed: `gup_slow_ok`) gets the
//! rest. FOLL_WRITE makes a read-only leaf such a page; FOLL_PIN adds the two reads
//! of `mm->write_protect_seq`. What runs after the walk is a `GupCont`:
//! - shared futexes, as Linux (kernel/futex/core.c `get_futex_key`: any operation
//!   without FUTEX_PRIVATE_FLAG walks, whatever the mapping), one call per key, two
//!   for FUTEX_WAKE_OP and the requeues (process.rs);
//! - vmsplice into a pipe, up to 16 pages per call (splice.rs);
//! - O_DIRECT reads of host files on block file systems, pins of up to 256 pages per
//!   call (direct.rs).
//!
//! Retirement: every page-table page carries a generation, bumped when the page is
//! freed (after the flush of its mmu_gather and the `--walker-sync` strategy's sync).
//! A walk remembers the generation of each table when it read the pointer to it; a
//! later read of that table under another generation is the oracle kind `walker-uaf`.

use crate::kdata::KObj;
use crate::machine::{fp, Machine};
use crate::path::{KPath, Next};
use crate::strategy::SyncAction;
use emu_mmu::pte;
use serde::Serialize;

/// What a GUP-fast call asks for: the `gup_flags` emu models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GupFlags {
    /// FOLL_WRITE: the caller will write the pages; a read-only leaf stops the walk.
    pub write: bool,
    /// FOLL_PIN (pin_user_pages_fast) rather than FOLL_GET (get_user_pages_fast): the
    /// walk reads `mm->write_protect_seq` before and after, and the reference is
    /// GUP_PIN_COUNTING_BIAS (the same locked add on the folio's refcount).
    pub pin: bool,
}

/// What runs when a GUP-fast call ends, with the pages it returned.
#[derive(Clone, Debug)]
pub enum GupCont {
    /// get_futex_key for a futex without FUTEX_PRIVATE_FLAG (process.rs).
    Futex(Box<crate::process::FutexKeys>),
    /// iov_iter_get_pages2 for vmsplice into a pipe (splice.rs).
    Vmsplice(Box<crate::splice::VmspliceOp>),
    /// pin_user_pages_fast for an O_DIRECT read (direct.rs).
    DirectRead(Box<crate::direct::DirectRead>),
}

/// One GUP-fast call in progress (mm/gup.c `gup_fast`): `nr` consecutive pages from
/// `start`, taken page by page until one cannot be; the caller's slow path gets the
/// rest.
#[derive(Clone, Debug)]
pub struct GupWalk {
    /// What runs after the walk.
    pub cont: GupCont,
    /// The first page's address (page-aligned).
    pub start: u64,
    /// Pages asked for.
    pub nr: u32,
    /// FOLL_WRITE, FOLL_PIN.
    pub flags: GupFlags,
    /// The level of the table read next (4 = PGD ... 1 = PTE table), or 0 when the
    /// leaf was found and the re-checks are next.
    pub level: u8,
    /// The frame of the table read next.
    pub table: u64,
    /// Its generation when the pointer to it was read.
    pub gen: u32,
    /// The table the walk holds a pointer to at each level (index = level), with its
    /// generation when the pointer was read: the next page resumes from these, as
    /// gup_fast_pgd_range's nested loops do.
    pub tables: [(u64, u32); 5],
    /// The PMD entry read: (its address, its value, its table, the table's generation).
    pub pmd: Option<(u64, u64, u64, u32)>,
    /// The leaf entry read (PTE, or a huge PMD/PUD): (address, value, table, generation).
    pub leaf: Option<(u64, u64, u64, u32)>,
    /// The folio referenced for the current leaf (its head frame: the refcount's line).
    pub folio: u64,
    /// The first page the current leaf gives, and how many (a huge leaf gives every
    /// page of the range it maps, one reference add for all, as gup_fast_pmd_leaf).
    pub leaf_pages: (u64, u32),
    /// The pages taken so far (frames), in address order.
    pub pages: Vec<u64>,
    /// When the walk began (interrupts off), 1/256 cycles.
    pub start_fp: u64,
}

impl GupWalk {
    /// The address of the page the walk is at.
    fn addr(&self) -> u64 {
        self.start + ((self.pages.len() as u64) << 12)
    }
}

/// Host-side state of the walkers: table generations and which CPUs walk which mm.
#[derive(Debug, Default)]
pub struct Walkers {
    /// Generation of each page-table frame that was ever retired (absent: 0).
    gens: rustc_hash::FxHashMap<u64, u32>,
    /// The mm each CPU's tracker holds (`--walker-sync targeted`), or its walk's mm.
    pub walking: Vec<Option<u32>>,
}

impl Walkers {
    /// No walks on `cpus` CPUs, no table retired yet.
    pub fn new(cpus: usize) -> Self {
        Walkers { gens: Default::default(), walking: vec![None; cpus] }
    }

    /// Generation of page-table frame `pfn`.
    pub fn gen(&self, pfn: u64) -> u32 {
        self.gens.get(&pfn).copied().unwrap_or(0)
    }

    /// Frame `pfn` is retired (freed or reused).
    pub fn retire(&mut self, pfn: u64) {
        *self.gens.entry(pfn).or_insert(0) += 1;
    }
}

/// Page-table frames waiting for a walker sync's acks before they are freed.
#[derive(Clone, Debug)]
pub struct SyncFree {
    /// The frames.
    pub tables: Vec<emu_mmu::Pfn>,
    /// When the sync began (1/256 cycles).
    pub t0_fp: u64,
}

/// The `walker_sync` section of the statistics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WalkerSyncStats {
    /// GUP-fast calls (the keys of shared futex operations, vmsplice's chunks of up
    /// to 16 pages, O_DIRECT reads' pins of up to 256), each one walk with interrupts
    /// off.
    pub gup_fast_walks: u64,
    /// Pages the walks returned (a folio reference taken and kept past the
    /// re-checks). A futex key asks for one page, so for futexes alone this is the
    /// number of walks that found their page.
    pub gup_fast_pages: u64,
    /// Walks that did not return every page asked for and left the rest to the slow
    /// path (non-present or read-only leaf, a re-check that failed, or a retired
    /// table).
    pub gup_fast_fallbacks: u64,
    /// Cycles from local_irq_save to local_irq_restore, summed.
    pub gup_fast_cycles: u64,
    /// Of those, the tracker's xchg and release store (`targeted`), summed.
    pub tracker_cycles: u64,
    /// Retire events: flushes completed with page tables to free.
    pub retire_events: u64,
    /// Page-table pages retired.
    pub tables_retired: u64,
    /// Retire events that sent sync IPIs.
    pub syncs: u64,
    /// CPUs interrupted by sync IPIs, summed over events.
    pub cpus_interrupted: u64,
    /// Of those, CPUs found idle (woken by the sync).
    pub idle_interrupted: u64,
    /// Initiator cycles from the flush's completion to the free, summed (the sync's
    /// IPIs and wait, the tracker scan).
    pub initiator_cycles: u64,
    /// The largest of those.
    pub initiator_cycles_max: u64,
    /// Tracker lines read by the targeted scans.
    pub tracker_reads: u64,
    /// Grace periods started (`rcu`, `linux`).
    pub grace_periods: u64,
    /// Of those, grace periods that ended (their lengths are summed below).
    pub grace_periods_ended: u64,
    /// Force-quiescent-state scans run by the GP kthread.
    pub rcu_fqs_scans: u64,
    /// Their lengths, summed, and the longest (cycles).
    pub grace_period_cycles: u64,
    /// The longest grace period (cycles).
    pub grace_period_cycles_max: u64,
    /// RCU callbacks run (table batches freed after their grace period).
    pub rcu_callbacks: u64,
    /// Cycles from call_rcu to the callback freeing the tables, summed.
    pub rcu_callback_wait_cycles: u64,
    /// Page-table pages queued for RCU and not yet freed: the high-water mark.
    pub rcu_held_tables_max: u64,
    /// synchronize_rcu calls (a reused table's sync under `rcu`).
    pub synchronize_rcu: u64,
    /// Cycles their callers slept, summed.
    pub synchronize_rcu_cycles: u64,
    /// The longest such sleep (cycles).
    pub synchronize_rcu_cycles_max: u64,
    /// Quiescent states reported at a kernel-mode tick because the grace period was old
    /// enough to ask for an urgent one.
    pub rcu_urgent_qs: u64,
    /// Walker reads of a table retired after the walk read its pointer (oracle kind
    /// `walker-uaf`).
    pub walker_uaf: u64,
}

impl Machine {
    /// Starts a GUP-fast call of task `tid` (gup_fast_fallback → gup_fast): `nr`
    /// pages from the page holding `addr`, then `cont`. The path's first step reads
    /// the PGD entry. None when the task has no address space.
    pub(crate) fn gup_fast_path(
        &self,
        tid: u32,
        addr: u64,
        nr: u32,
        flags: GupFlags,
        cont: GupCont,
    ) -> Option<KPath> {
        let mm = self.k.tasks.get(&tid)?.mm;
        let table = self.k.mms.get(&mm)?.root.0;
        let gen = self.k.walker.gen(table);
        debug_assert!(nr > 0, "a GUP-fast call asks for at least one page");
        Some(KPath::Gup(Box::new(GupWalk {
            cont,
            start: addr & !0xfff,
            nr,
            flags,
            level: 4,
            table,
            gen,
            tables: [(0, 0), (0, 0), (0, 0), (0, 0), (table, gen)],
            pmd: None,
            leaf: None,
            folio: 0,
            leaf_pages: (0, 0),
            pages: Vec::new(),
            start_fp: 0,
        })))
    }

    /// One step of a GUP-fast walk on core `c` (interrupts off throughout).
    pub(crate) fn gup_step(&mut self, c: usize, tid: u32, mut w: GupWalk) -> Next {
        let mm = self.k.tasks.get(&tid).map_or(0, |t| t.mm);
        if w.start_fp == 0 {
            if w.flags.pin {
                // raw_read_seqcount(&mm->write_protect_seq), before interrupts go off.
                // No emu fork copies page tables while another thread runs (a fork is
                // one step), so the count is never odd and never moves.
                let x = self.kline_access(c, KObj::MmWriteProtectSeq(mm), false);
                self.charge(c, x);
            }
            // local_irq_save, then (targeted) pt_walk_lockless_start: xchg of the mm
            // into this CPU's tracker, a full barrier on x86.
            w.start_fp = self.now(c).max(1);
            self.charge(c, fp(self.profile.kernel.irq_toggle_cycles));
            if self.k.strategy.walker_sync.tracks_walkers() {
                let x = fp(self.profile.insn.locked)
                    + self.kline_access(c, KObj::WalkerTracker(c), true);
                self.charge(c, x);
                self.probes.walker_sync.tracker_cycles += x >> 8;
            }
            if let Some(s) = self.k.walker.walking.get_mut(c) {
                *s = Some(mm);
            }
        }
        let addr = w.addr();
        if w.level == 0 {
            // The re-checks: PMD, then PTE; either changed drops the reference.
            let mut same = true;
            for (pa, val, table, gen) in [w.pmd, w.leaf].into_iter().flatten() {
                if !self.walker_read_ok(c, table, gen, addr) {
                    same = false;
                    break;
                }
                let cost = self.hw.mem.caches.access(c, pa, false);
                self.charge(c, cost);
                if self.hw.mem.phys.read_u64(pa) != val {
                    same = false;
                }
            }
            let futex = matches!(w.cont, GupCont::Futex(_));
            if !same || futex {
                // A failed re-check: gup_put_folio drops the reference. A futex key:
                // get_futex_key is done with its page at once (put_page, right after
                // local_irq_restore; charged here). Either is a second locked RMW on
                // the folio line.
                let put =
                    fp(self.profile.insn.locked) + self.kline_access(c, KObj::Folio(w.folio), true);
                self.charge(c, put);
            }
            if !same {
                return self.gup_end(c, tid, w);
            }
            let (first, n) = w.leaf_pages;
            if cfg!(debug_assertions) {
                // Each page taken is the one the page tables map (now: a later step
                // of a longer walk may find it unmapped, and keeps its reference).
                let root = self.k.mms.get(&mm).map(|m| m.root);
                for i in 0..u64::from(n) {
                    let va = addr + (i << 12);
                    let want = root
                        .and_then(|r| emu_mmu::PageTables::leaf(&self.hw.mem.phys, r, va))
                        .map(|l| {
                            let span = 1u64 << level_shift(l.size.leaf_level());
                            ((l.pte & pte::ADDR) + (va & (span - 1) & !0xfff)) >> 12
                        });
                    debug_assert_eq!(want, Some(first + i), "GUP-fast's page for {va:#x}");
                }
            }
            w.pages.extend((0..u64::from(n)).map(|i| first + i));
            if w.pages.len() as u32 >= w.nr {
                return self.gup_end(c, tid, w);
            }
            // The next page: the loops of gup_fast_pgd_range go on from the highest
            // level whose index changed, with the table pointers they hold.
            let next = w.addr();
            let level = (1..=4u8)
                .rev()
                .find(|&l| level_index(addr, l) != level_index(next, l))
                .unwrap_or(1);
            w.level = level;
            (w.table, w.gen) = w.tables[usize::from(level)];
            w.pmd = None;
            w.leaf = None;
            return Next::Then(KPath::Gup(Box::new(w)));
        }
        if !self.walker_read_ok(c, w.table, w.gen, addr) {
            return self.gup_end(c, tid, w);
        }
        w.tables[usize::from(w.level)] = (w.table, w.gen);
        let shift = level_shift(w.level);
        let pa = (w.table << 12) + level_index(addr, w.level) * 8;
        let cost = self.hw.mem.caches.access(c, pa, false);
        self.charge(c, cost);
        let e = self.hw.mem.phys.read_u64(pa);
        if e & pte::P == 0 {
            return self.gup_end(c, tid, w);
        }
        let leaf = w.level == 1 || (w.level <= 3 && e & pte::PS != 0);
        if !leaf {
            if w.level == 2 {
                w.pmd = Some((pa, e, w.table, w.gen));
            }
            w.table = (e & pte::ADDR) >> 12;
            w.gen = self.k.walker.gen(w.table);
            w.level -= 1;
            return Next::Then(KPath::Gup(Box::new(w)));
        }
        // gup_fast_pte_range's checks: user, writable (FOLL_WRITE), not special; then
        // try_grab_folio_fast's locked add on the folio's refcount (one for every page
        // a huge leaf gives; a pin adds GUP_PIN_COUNTING_BIAS per page, the same RMW).
        self.charge(c, fp(self.profile.kernel.gup_fast_checks_cycles));
        if e & pte::US == 0 || (w.flags.write && e & pte::RW == 0) || self.protnone(tid, addr) {
            return self.gup_end(c, tid, w);
        }
        let span = 1u64 << shift;
        let head = (e & pte::ADDR) >> 12;
        let first = head + ((addr & (span - 1)) >> 12);
        let in_leaf = ((span - (addr & (span - 1))) >> 12) as u32;
        let want = w.nr - w.pages.len() as u32;
        w.leaf_pages = (first, want.min(in_leaf));
        w.folio = head;
        let grab = fp(self.profile.insn.locked) + self.kline_access(c, KObj::Folio(w.folio), true);
        self.charge(c, grab);
        w.leaf = Some((pa, e, w.table, w.gen));
        if w.level >= 2 {
            // A huge leaf: the PMD re-check is the leaf's.
            w.pmd = None;
        }
        w.level = 0;
        Next::Then(KPath::Gup(Box::new(w)))
    }

    /// The walk reads table `table`, whose pointer it read under generation `gen`: a
    /// retired table is a `walker-uaf` (the walk then gives up).
    fn walker_read_ok(&mut self, c: usize, table: u64, gen: u32, va: u64) -> bool {
        if self.k.walker.gen(table) == gen {
            return true;
        }
        self.probes.walker_sync.walker_uaf += 1;
        self.probes.violation_count += 1;
        if self.probes.violations.len() < crate::machine::VIOLATIONS_KEPT {
            let time_ns = self.ns_of(self.now(c));
            self.probes.violations.push(crate::stats::Violation {
                core: c,
                address: va,
                kind: "walker-uaf",
                time_ns,
                strategy: self.k.strategy.label(),
                detail: None,
            });
        }
        false
    }

    /// The walk ends (pt_walk_lockless_end's release store, local_irq_restore, and
    /// for a pin the seqcount's re-read) and its caller goes on with the pages.
    fn gup_end(&mut self, c: usize, tid: u32, w: GupWalk) -> Next {
        if self.k.strategy.walker_sync.tracks_walkers() {
            let x = self.kline_access(c, KObj::WalkerTracker(c), true);
            self.charge(c, x);
            self.probes.walker_sync.tracker_cycles += x >> 8;
        }
        if let Some(s) = self.k.walker.walking.get_mut(c) {
            *s = None;
        }
        self.charge(c, fp(self.profile.kernel.irq_toggle_cycles));
        let spent = (self.now(c).saturating_sub(w.start_fp)) >> 8;
        let mm = self.k.tasks.get(&tid).map_or(0, |t| t.mm);
        if w.flags.pin {
            // read_seqcount_retry(&mm->write_protect_seq): unchanged (see gup_step).
            let x = self.kline_access(c, KObj::MmWriteProtectSeq(mm), false);
            self.charge(c, x);
        }
        let s = &mut self.probes.walker_sync;
        s.gup_fast_walks += 1;
        s.gup_fast_pages += w.pages.len() as u64;
        s.gup_fast_fallbacks += u64::from((w.pages.len() as u32) < w.nr);
        s.gup_fast_cycles += spent;
        match w.cont {
            GupCont::Futex(k) => self.futex_key_walked(c, tid, *k, !w.pages.is_empty()),
            GupCont::Vmsplice(op) => self.vmsplice_walked(c, tid, *op, w.pages.len() as u32),
            GupCont::DirectRead(op) => self.direct_walked(c, tid, *op, w.pages.len() as u32),
        }
    }

    /// `pte_protnone`: the page at `va` is in a PROT_NONE mapping. Linux's entry says
    /// so itself (_PAGE_PROTNONE, _PAGE_PRESENT clear); emu's page tables keep such an
    /// entry present (mm.rs `protect` changes only RW and NX), so the walk asks the
    /// VMA instead, untimed, as a stand-in for that bit.
    fn protnone(&self, tid: u32, va: u64) -> bool {
        let rwx = crate::mm::PROT_READ | crate::mm::PROT_WRITE | crate::mm::PROT_EXEC;
        self.k
            .tasks
            .get(&tid)
            .and_then(|t| self.k.mms.get(&t.mm))
            .and_then(|m| m.find(va))
            .is_some_and(|v| v.prot & rwx == 0)
    }

    /// Slow GUP's verdict on the page at `va` for task `tid` (mm/gup.c
    /// `__get_user_pages` → `check_vma_flags`): a VMA must hold it and allow the
    /// access (VM_WRITE for FOLL_WRITE, VM_READ otherwise); the fault it may take to
    /// map the page is the caller's copy's. Untimed, as every slow path here.
    pub(crate) fn gup_slow_ok(&self, tid: u32, va: u64, write: bool) -> bool {
        let want = if write { crate::mm::PROT_WRITE } else { crate::mm::PROT_READ };
        self.k
            .tasks
            .get(&tid)
            .and_then(|t| self.k.mms.get(&t.mm))
            .and_then(|m| m.find(va))
            .is_some_and(|v| v.prot & want != 0)
    }

    /// A flush that freed the page tables `tables` of `mm` completed on core `c`;
    /// `ipid_all` says it reached every CPU of the mm's cpumask through IPIs it waited
    /// for, `reuse` that the tables are reused (a THP collapse) rather than freed. The
    /// strategy's sync, then the free (now, when the sync's acks are in, after a grace
    /// period, or after the caller's synchronize_rcu). A reused table is freed too: emu's
    /// huge pages allocate a PTE table when split instead of keeping a deposited one,
    /// and a walker holding the old pointer is as wrong either way.
    pub(crate) fn retire_tables(
        &mut self,
        c: usize,
        mm: u32,
        tables: Vec<emu_mmu::Pfn>,
        ipid_all: bool,
        reuse: bool,
    ) {
        let s = &mut self.probes.walker_sync;
        s.retire_events += 1;
        s.tables_retired += tables.len() as u64;
        let t0 = self.now(c);
        let targets: Vec<usize> = match self.k.strategy.walker_sync.after_flush(ipid_all, reuse) {
            SyncAction::Free => Vec::new(),
            SyncAction::Rcu => {
                self.call_rcu_tables(c, tables);
                return;
            }
            SyncAction::SyncRcu => {
                // The caller's next step sleeps in synchronize_rcu, then retires them.
                self.k.cpus[c].sync_rcu.extend(tables);
                return;
            }
            SyncAction::Broadcast => (0..self.hw.cpus.len()).filter(|&t| t != c).collect(),
            SyncAction::Targeted => {
                // tlb_remove_table_sync_mm: smp_mb, then every online CPU's tracker.
                self.charge(c, fp(self.profile.insn.locked));
                let mut v = Vec::new();
                for t in (0..self.hw.cpus.len()).filter(|&t| t != c) {
                    let x = self.kline_access(c, KObj::WalkerTracker(t), false);
                    self.charge(c, x);
                    self.probes.walker_sync.tracker_reads += 1;
                    if self.k.walker.walking.get(t).copied().flatten() == Some(mm) {
                        v.push(t);
                    }
                }
                v
            }
        };
        if targets.is_empty() {
            let spent = (self.now(c) - t0) >> 8;
            self.note_sync_latency(spent);
            self.free_tables(c, tables);
            return;
        }
        let idle = targets.iter().filter(|&&t| self.k.cpus[t].current.is_none()).count();
        let s = &mut self.probes.walker_sync;
        s.syncs += 1;
        s.cpus_interrupted += targets.len() as u64;
        s.idle_interrupted += idle as u64;
        self.walker_sync_ipis(c, &targets);
        self.k.cpus[c].sync_free.push(SyncFree { tables, t0_fp: t0 });
    }

    /// The sync waits of core `c` are over: free their tables.
    pub(crate) fn sync_frees_done(&mut self, c: usize, done: Vec<SyncFree>) {
        for f in done {
            let spent = (self.now(c).saturating_sub(f.t0_fp)) >> 8;
            self.note_sync_latency(spent);
            self.free_tables(c, f.tables);
        }
    }

    pub(crate) fn note_sync_latency(&mut self, cycles: u64) {
        let s = &mut self.probes.walker_sync;
        s.initiator_cycles += cycles;
        s.initiator_cycles_max = s.initiator_cycles_max.max(cycles);
    }

    /// Page-table frames retired: their generation moves on, then they are freed.
    pub(crate) fn free_tables(&mut self, c: usize, tables: Vec<emu_mmu::Pfn>) {
        for p in &tables {
            self.k.walker.retire(p.0);
        }
        self.free_pages(c, tables);
    }
}

/// The bit position of the range one entry of a level-`level` table maps.
fn level_shift(level: u8) -> u32 {
    12 + 9 * (u32::from(level) - 1)
}

/// The index of `va`'s entry in its level-`level` table.
fn level_index(va: u64, level: u8) -> u64 {
    (va >> level_shift(level)) & 511
}
