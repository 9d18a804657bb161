//! The x86 TLB-flush engine of Linux, modelled on `arch/x86/mm/tlb.c` (read for its
//! algorithms; nothing is copied): per-mm `ctx_id` and `tlb_gen`, per-CPU `cpu_tlbstate`
//! with `TLB_NR_DYN_ASIDS` dynamic ASIDs, lazy TLB mode, `switch_mm_irqs_off`,
//! `choose_new_asid`, `flush_tlb_mm_range` with the 33-page single-flush ceiling,
//! `native_flush_tlb_multi` with `should_flush_tlb` and `should_trim_cpumask`,
//! `flush_tlb_func`, `leave_mm`, and the global-ASID scheme for INVLPGB
//! (`consider_global_asid`, `use_global_asid`, `broadcast_tlb_flush`,
//! `finish_asid_transition`).
//!
//! The policy choices that the project sweeps are values of the strategy axes
//! ([`crate::strategy`]), asked at the points where Linux's behaviour would differ.

use crate::cpumask::CpuMask;
use crate::machine::{Machine, INIT_MM};
use emu_mmu::Flush;
use serde::Serialize;

/// Dynamic ASIDs per CPU (TLB_NR_DYN_ASIDS).
pub const TLB_NR_DYN_ASIDS: u16 = 6;
/// Highest usable ASID with 12-bit PCIDs and no page-table isolation
/// (MAX_ASID_AVAILABLE = (1 << 12) - 2).
pub const MAX_ASID_AVAILABLE: u16 = 4094;
/// Pages above which a range flush becomes a full flush (tlb_single_page_flush_ceiling).
pub const FLUSH_CEILING: u64 = 33;
/// `FlushInfo::end` of a full flush (TLB_FLUSH_ALL).
pub const FLUSH_ALL: u64 = u64::MAX;

/// The TLB context of an address space (`mm->context`).
#[derive(Clone, Debug)]
pub struct MmCtx {
    /// Unique, never reused, id (ctx_id).
    pub ctx_id: u64,
    /// Generation of the page tables: bumped by every flush request.
    pub tlb_gen: u64,
    /// mm_cpumask: CPUs that may hold TLB entries of this mm.
    pub cpumask: CpuMask,
    /// next_trim_cpumask: the jiffies after which a flush trims the cpumask.
    pub next_trim_jiffies: u64,
    /// Global ASID for INVLPGB, or 0.
    pub global_asid: u16,
    /// Moving from per-CPU ASIDs to the global one.
    pub asid_transition: bool,
}

/// Per-CPU TLB state (`cpu_tlbstate` and `cpu_tlbstate_shared`).
#[derive(Clone, Debug)]
pub struct CpuTlbState {
    /// The mm whose page tables CR3 points to (INIT_MM for init_mm).
    pub loaded_mm: u32,
    /// Its ASID.
    pub loaded_mm_asid: u16,
    /// Lazy TLB mode: a kernel thread (the idle task) runs on a user mm.
    pub is_lazy: bool,
    /// Next dynamic ASID slot to hand out.
    pub next_asid: u16,
    /// Dynamic ASID slots: (ctx_id, tlb_gen the slot is up to date with).
    pub ctxs: [(u64, u64); TLB_NR_DYN_ASIDS as usize],
}

impl CpuTlbState {
    /// choose_new_asid for an mm with context id `ctx_id` at generation `next_tlb_gen`:
    /// its `global` ASID if it has one (never flushed: INVLPGB keeps it current), else an
    /// ASID slot already holding the mm (to be flushed if it fell behind), else the next
    /// slot round-robin (always flushed). Returns (ASID, flush needed).
    pub fn choose_new_asid(
        &mut self,
        ctx_id: u64,
        next_tlb_gen: u64,
        global: Option<u16>,
    ) -> (u16, bool) {
        if let Some(g) = global {
            return (g, false);
        }
        for asid in 0..TLB_NR_DYN_ASIDS {
            if self.ctxs[asid as usize].0 == ctx_id {
                return (asid, self.ctxs[asid as usize].1 < next_tlb_gen);
            }
        }
        let mut asid = self.next_asid;
        self.next_asid += 1;
        if asid >= TLB_NR_DYN_ASIDS {
            asid = 0;
            self.next_asid = 1;
        }
        (asid, true)
    }

    /// What flush_tlb_func does on a CPU in this state for the request `f`, when the
    /// mm's generation is `mm_gen` (the CPU already switched to a global ASID the mm has).
    pub fn flush_action(&self, f: &FlushInfo, mm_gen: u64) -> FlushAction {
        if f.mm != self.loaded_mm {
            return FlushAction::WrongCpu;
        }
        if self.loaded_mm == INIT_MM || is_global_asid(self.loaded_mm_asid) {
            return FlushAction::Nothing;
        }
        if self.is_lazy {
            return FlushAction::LeaveLazy;
        }
        let local_gen = self.ctxs[self.loaded_mm_asid as usize].1;
        if f.new_tlb_gen <= local_gen {
            return FlushAction::Nothing;
        }
        if local_gen == mm_gen {
            return FlushAction::AlreadyCurrent;
        }
        if f.end != FLUSH_ALL && f.new_tlb_gen == local_gen + 1 && f.new_tlb_gen == mm_gen {
            FlushAction::Partial
        } else {
            FlushAction::Full
        }
    }
}

/// flush_tlb_func's decision on one CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushAction {
    /// The CPU runs another mm: it leaves the mm's cpumask (if the policy clears bits).
    WrongCpu,
    /// Nothing to do: init_mm, a global ASID (INVLPGB covers it), or already flushed up
    /// to this request's generation.
    Nothing,
    /// Lazy: switch to init_mm instead of flushing (barely slower than a minimal flush).
    LeaveLazy,
    /// Caught up by a later flush already: only the tracepoint.
    AlreadyCurrent,
    /// This request is the only generation missing: one INVLPG per stride.
    Partial,
    /// More is missing, or the request is a full flush: reload CR3 without NOFLUSH.
    Full,
}

impl Default for CpuTlbState {
    fn default() -> Self {
        CpuTlbState {
            loaded_mm: INIT_MM,
            loaded_mm_asid: 0,
            is_lazy: false,
            next_asid: 1,
            ctxs: [(0, 0); 6],
        }
    }
}

/// A flush request (`struct flush_tlb_info`).
#[derive(Clone, Copy, Debug)]
pub struct FlushInfo {
    /// The mm.
    pub mm: u32,
    /// First address.
    pub start: u64,
    /// One past the last address, or FLUSH_ALL.
    pub end: u64,
    /// log2 of the stride (12 or 21).
    pub stride_shift: u32,
    /// Page tables were freed: lazy CPUs must flush too.
    pub freed_tables: bool,
    /// The tlb_gen this flush brings CPUs up to.
    pub new_tlb_gen: u64,
    /// The CPU that asked.
    pub initiator: usize,
    /// Also flush CPUs in the mask that no longer run the mm (trim).
    pub trim: bool,
    /// Index of the shootdown record.
    pub record: usize,
}

/// How a flush in flight reaches the other CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlightKind {
    /// Only the initiator flushed.
    Local,
    /// Flush IPIs (native_flush_tlb_multi).
    Ipi,
    /// INVLPGB broadcasts (TLBSYNC pending), maybe with IPIs for an ASID transition.
    Broadcast,
}

/// A flush its initiator has started and not completed (it waits for acks).
#[derive(Clone, Debug)]
pub struct InFlight {
    /// The request.
    pub info: FlushInfo,
    /// When flush_tlb_mm_range was called.
    pub t0_fp: u64,
    /// How it went out.
    pub kind: FlightKind,
    /// PTE-change generation when it started (coherence oracle).
    pub change_gen: u64,
    /// Frames to release once it completes.
    pub free: Vec<emu_mmu::Pfn>,
    /// Page-table frames to retire once it completes (after the walker sync).
    pub tables: Vec<emu_mmu::Pfn>,
    /// The tables are reused, not freed (a THP collapse): a sync that would be RCU
    /// must be synchronous.
    pub reuse: bool,
    /// Some vCPU of the mask was preempted and left the flush in its steal-time area
    /// (KVM's paravirtual flush): it got no IPI.
    pub pv_deferred: bool,
}

/// Why a flush happened (for records and traces).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// munmap.
    Munmap,
    /// madvise(DONTNEED/FREE).
    Madvise,
    /// mprotect.
    Mprotect,
    /// mremap.
    Mremap,
    /// brk shrinking.
    Brk,
    /// mmap over an existing mapping.
    MmapFixed,
    /// Copy-on-write fault.
    Cow,
    /// fork write-protecting the parent.
    Fork,
    /// Address-space teardown (exit_mmap: at exit, and of the old address space at
    /// execve).
    Exit,
    /// madvise(MADV_COLLAPSE): `pmdp_collapse_flush` of the PMD whose PTE table the
    /// collapse reuses (deposits).
    Collapse,
}

/// tlb:tlb_flush reasons (include/linux/mm_types.h `enum tlb_flush_reason`).
pub mod trace_reason {
    /// TLB_FLUSH_ON_TASK_SWITCH.
    pub const TASK_SWITCH: u8 = 0;
    /// TLB_REMOTE_SHOOTDOWN.
    pub const REMOTE_SHOOTDOWN: u8 = 1;
    /// TLB_LOCAL_SHOOTDOWN.
    pub const LOCAL_SHOOTDOWN: u8 = 2;
    /// TLB_LOCAL_MM_SHOOTDOWN.
    pub const LOCAL_MM_SHOOTDOWN: u8 = 3;
    /// TLB_REMOTE_SEND_IPI.
    pub const REMOTE_SEND_IPI: u8 = 4;
    /// TLB_REMOTE_WRONG_CPU.
    pub const REMOTE_WRONG_CPU: u8 = 5;
}

/// PCID of an ASID (kern_pcid: ASID + 1; PCID 0 is reserved).
pub fn kern_pcid(asid: u16) -> u16 {
    asid + 1
}

/// True for ASIDs from the global space.
pub fn is_global_asid(asid: u16) -> bool {
    asid >= TLB_NR_DYN_ASIDS
}

/// The jiffies counter at boot. Linux starts it at INITIAL_JIFFIES
/// (include/linux/jiffies.h), 300 seconds' worth of ticks before the 32-bit counter
/// wraps; emu adds a seeded offset below one second, so that the phase of every
/// jiffy-sampled decision (the global-ASID sampling of `consider_global_asid`, the
/// cpumask trim of `should_trim_cpumask`) differs between seeds as it differs between
/// real boots.
pub fn boot_jiffies(hz: u32, seed: u64) -> u64 {
    let initial = u64::from((300u32.wrapping_mul(hz)).wrapping_neg());
    initial + crate::rng::SimRng::new(seed ^ 0x6a69_6666_6965_7321).next_u64() % u64::from(hz)
}

impl Machine {
    /// The CPU's `jiffies` at its local time: ticks of the profile's HZ since boot,
    /// counted from [`boot_jiffies`].
    pub(crate) fn jiffies(&self, c: usize) -> u64 {
        self.jiffies0 + self.ticks_by(self.now(c))
    }

    /// choose_new_asid: the global ASID, an ASID slot already holding `mm` (flushed if
    /// it fell behind), or the next slot round-robin (always flushed).
    fn choose_new_asid(&mut self, c: usize, mm: u32, next_tlb_gen: u64) -> (u16, bool) {
        let (ctx_id, global) =
            self.k.mms.get(&mm).map_or((0, 0), |m| (m.ctx.ctx_id, m.ctx.global_asid));
        let global = (self.k.strategy.flush.global_asids() && global != 0).then_some(global);
        self.k.cpus[c].tlb.choose_new_asid(ctx_id, next_tlb_gen, global)
    }

    /// mm_needs_global_asid: the mm has a global ASID the CPU does not use yet.
    fn mm_needs_global_asid(&self, mm: u32, asid: u16) -> bool {
        self.k.strategy.flush.global_asids()
            && self
                .k
                .mms
                .get(&mm)
                .is_some_and(|m| m.ctx.global_asid != 0 && m.ctx.global_asid != asid)
    }

    /// leave_mm: a CPU about to enter an idle state that loses the TLB stops using its
    /// (lazily kept) user mm and loads init_mm, so flushes of that mm need not reach it.
    /// Its bit stays in the mm's cpumask until a flush finds it elsewhere.
    pub(crate) fn leave_mm(&mut self, c: usize) {
        if self.k.cpus[c].tlb.loaded_mm == INIT_MM {
            return;
        }
        self.switch_mm_irqs_off(c, INIT_MM);
    }

    /// switch_mm_irqs_off: loads `next` on CPU `c`, leaving lazy mode.
    pub(crate) fn switch_mm_irqs_off(&mut self, c: usize, next: u32) {
        let prev = self.k.cpus[c].tlb.loaded_mm;
        let prev_asid = self.k.cpus[c].tlb.loaded_mm_asid;
        let was_lazy = self.k.cpus[c].tlb.is_lazy;
        self.k.cpus[c].tlb.is_lazy = false;
        let next_gen = self.k.mms.get(&next).map_or(0, |m| m.ctx.tlb_gen);
        let (asid, need_flush) = if prev == next {
            if self.mm_needs_global_asid(next, prev_asid) {
                self.choose_new_asid(c, next, next_gen)
            } else if is_global_asid(prev_asid) || !was_lazy {
                return;
            } else if self.k.cpus[c].tlb.ctxs[prev_asid as usize].1 == next_gen {
                return;
            } else {
                (prev_asid, true)
            }
        } else {
            if self.k.strategy.cpumask.clears_at_switch_out() && prev != INIT_MM {
                self.cpumask_clear(c, prev);
            }
            if next != INIT_MM && !self.k.mms.get(&next).is_some_and(|m| m.ctx.cpumask.test(c)) {
                self.cpumask_set(c, next);
            }
            self.choose_new_asid(c, next, next_gen)
        };
        let (root, ctx_id) = match self.k.mms.get(&next) {
            Some(m) => (m.root.addr(), m.ctx.ctx_id),
            None => return,
        };
        let pcid = kern_pcid(asid);
        let cost = if need_flush {
            if !is_global_asid(asid) {
                self.k.cpus[c].tlb.ctxs[asid as usize] = (ctx_id, next_gen);
            }
            self.trace_flush(c, trace_reason::TASK_SWITCH, -1);
            self.hw.mem.write_cr3(c, root, pcid, false)
        } else {
            self.trace_flush(c, trace_reason::TASK_SWITCH, 0);
            self.hw.mem.write_cr3(c, root, pcid, true)
        };
        // this_cpu_write of cpu_tlbstate.loaded_mm, and of is_lazy when it was set.
        let mut lines = self.kline_access(c, crate::kdata::KObj::TlbState(c), true);
        if was_lazy {
            lines += self.kline_access(c, crate::kdata::KObj::TlbStateShared(c), true);
        }
        self.charge(c, cost + lines);
        self.k.cpus[c].tlb.loaded_mm = next;
        self.k.cpus[c].tlb.loaded_mm_asid = asid;
        self.probes.cpus[c].mm_switches += 1;
    }

    /// enter_lazy_tlb when CPU `c` goes idle: keep the mm loaded in lazy mode, or under
    /// the eager policy leave it for init_mm at once.
    pub(crate) fn enter_lazy_tlb(&mut self, c: usize) {
        if self.k.cpus[c].tlb.loaded_mm == INIT_MM {
            return;
        }
        if self.k.strategy.cpumask.lazy_tlb() {
            self.k.cpus[c].tlb.is_lazy = true;
            // this_cpu_write(cpu_tlbstate_shared.is_lazy, true)
            let cost = self.kline_access(c, crate::kdata::KObj::TlbStateShared(c), true);
            self.charge(c, cost);
        } else {
            self.switch_mm_irqs_off(c, INIT_MM);
        }
    }

    /// CPU `c` reads (or writes) the line of kernel object `obj`: what the cache model
    /// charges for it (an L1 hit, or a transfer from the CPU that last wrote it).
    pub(crate) fn kline_access(&mut self, c: usize, obj: crate::kdata::KObj, write: bool) -> u64 {
        let pa = self.k.kdata.line(&mut self.hw.mem.phys, obj);
        self.hw.mem.caches.access(c, pa, write)
    }

    /// cpumask_set_cpu: a locked RMW of the mm_cpumask's line.
    fn cpumask_set(&mut self, c: usize, mm: u32) {
        if let Some(m) = self.k.mms.get_mut(&mm) {
            m.ctx.cpumask.set(c);
        }
        let cost = crate::machine::fp(self.profile.kernel.mm_cpumask_op_cycles)
            + self.kline_access(c, crate::kdata::KObj::MmCpumask(mm), true);
        self.charge(c, cost);
        self.note_cpumask(c, mm);
    }

    /// cpumask_clear_cpu: a locked RMW of the mm_cpumask's line.
    fn cpumask_clear(&mut self, c: usize, mm: u32) {
        if let Some(m) = self.k.mms.get_mut(&mm) {
            m.ctx.cpumask.clear(c);
        }
        let cost = crate::machine::fp(self.profile.kernel.mm_cpumask_op_cycles)
            + self.kline_access(c, crate::kdata::KObj::MmCpumask(mm), true);
        self.charge(c, cost);
        self.note_cpumask(c, mm);
    }

    /// The CPUs a flush of `mm` considers: its mm_cpumask, or every CPU under `all`.
    fn flush_mask(&self, mm: u32) -> CpuMask {
        if self.k.strategy.cpumask.everyone() {
            return CpuMask::full(self.hw.cpus.len());
        }
        self.k
            .mms
            .get(&mm)
            .map_or_else(|| CpuMask::new(self.hw.cpus.len()), |m| m.ctx.cpumask.clone())
    }

    /// flush_tlb_mm_range, called by the kernel on CPU `c` after it changed page tables
    /// of `mm` in `[start, end)`: bumps the mm's `tlb_gen`, flushes locally, and queues
    /// the flush on the CPUs that need it (or broadcasts it with INVLPGB).
    ///
    /// Completion contract: the flush is complete when the kernel step that called this
    /// has been followed by the wait for its acks ([`KState::Acks`](crate::machine::KState));
    /// then every CPU that could hold a stale translation of the range has dropped it (or
    /// will before it next runs the mm), `free` has been released, and the initiator's
    /// clock has advanced by its cost, wait included. A flush that needs no acks
    /// completes before this returns.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn flush_tlb_mm_range(
        &mut self,
        c: usize,
        mm: u32,
        start: u64,
        end: u64,
        stride_shift: u32,
        freed_tables: bool,
        reason: Reason,
    ) {
        let none = (Vec::new(), Vec::new());
        self.flush_and_free(c, mm, start, end, stride_shift, freed_tables, reason, none);
    }

    /// [`Machine::flush_tlb_mm_range`], then release `free` (pages and page tables that
    /// stale translations may reach until the flush completes: tlb_finish_mmu).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn flush_and_free(
        &mut self,
        c: usize,
        mm: u32,
        start: u64,
        end: u64,
        stride_shift: u32,
        freed_tables: bool,
        reason: Reason,
        (free, tables): (Vec<emu_mmu::Pfn>, Vec<emu_mmu::Pfn>),
    ) {
        // The work that made the flush necessary comes first.
        self.settle_work(c, mm);
        let t0 = self.now(c);
        let Some(m) = self.k.mms.get_mut(&mm) else {
            for p in free {
                self.hw.mem.phys.put(p);
            }
            for p in tables {
                self.k.walker.retire(p.0);
                self.hw.mem.phys.put(p);
            }
            return;
        };
        m.ctx.tlb_gen += 1;
        let new_tlb_gen = m.ctx.tlb_gen;
        // inc_mm_tlb_gen, a locked increment of the mm's tlb_gen; get_flush_tlb_info
        // fills this CPU's flush_tlb_info.
        use crate::kdata::KObj;
        let lines = crate::machine::fp(self.profile.insn.locked)
            + self.kline_access(c, KObj::MmTlbGen(mm), true)
            + self.kline_access(c, KObj::FlushInfo(c), true);
        self.charge(c, lines);
        let (start, end) = if end != FLUSH_ALL && (end - start) >> stride_shift > FLUSH_CEILING {
            (0, FLUSH_ALL)
        } else {
            (start, end)
        };
        let pages = if end == FLUSH_ALL { -1 } else { ((end - start) >> 12) as i64 };
        let record = self.begin_shootdown(c, mm, reason, pages, freed_tables, t0);
        let mut info = FlushInfo {
            mm,
            start,
            end,
            stride_shift,
            freed_tables,
            new_tlb_gen,
            initiator: c,
            trim: false,
            record,
        };
        let change_gen = self.hw.mem.phys.oracle_gen();
        let global = self.k.mms.get(&mm).map_or(0, |m| m.ctx.global_asid);
        let mask = self.flush_mask(mm);
        let first_slot = self.k.cpus[c].ack_slots.len();
        let mut kind = FlightKind::Local;
        let mut pv_deferred = false;
        if self.k.strategy.flush.global_asids() && global != 0 {
            self.broadcast_tlb_flush(c, &info);
            kind = FlightKind::Broadcast;
        } else if mask.any_but(c) {
            info.trim = self.should_trim_cpumask(c, mm);
            pv_deferred = self.flush_tlb_multi(c, &mask, &info);
            kind = FlightKind::Ipi;
        } else if self.k.cpus[c].tlb.loaded_mm == mm {
            self.flush_tlb_func(c, &info);
        }
        let reuse = reason == Reason::Collapse;
        let f = InFlight { info, t0_fp: t0, kind, change_gen, free, tables, reuse, pv_deferred };
        if self.k.cpus[c].ack_slots.len() == first_slot {
            self.flush_complete(c, f);
        } else {
            self.k.cpus[c].inflight.push(f);
        }
    }

    /// The end of a flush on its initiator, once its acks are in: TLBSYNC after INVLPGB,
    /// consider_global_asid after IPIs, the record, the oracle, and the deferred frees.
    pub(crate) fn flush_complete(&mut self, c: usize, f: InFlight) {
        match f.kind {
            FlightKind::Broadcast => {
                let now = self.now(c);
                let cost = self.hw.mem.tlbsync(c, now);
                self.charge(c, cost);
            }
            FlightKind::Ipi => self.consider_global_asid(c, f.info.mm),
            FlightKind::Local => {}
        }
        let t1 = self.now(c);
        self.end_shootdown(f.info.record, t1 - f.t0_fp);
        self.oracle_check_after_flush(&f.info, f.change_gen);
        self.free_pages(c, f.free);
        if !f.tables.is_empty() {
            // Every CPU that could be walking the mm took the flush's IPI (a CPU alone
            // in the mask sent none: no other CPU runs the mm), unless it went out as a
            // broadcast invalidation, or some vCPU was preempted and left it for the host
            // (which is why kvm_guest_init, installing the PV flush, made x86 free page
            // tables through RCU: tlb_remove_table).
            let ipid_all = f.kind != FlightKind::Broadcast && !f.pv_deferred;
            self.retire_tables(c, f.info.mm, f.tables, ipid_all, f.reuse);
        }
    }

    /// should_trim_cpumask: true at most once a second per mm (lazy policy only).
    fn should_trim_cpumask(&mut self, c: usize, mm: u32) -> bool {
        if !self.k.strategy.cpumask.trims() {
            return false;
        }
        let now = self.jiffies(c);
        let hz = u64::from(self.profile.kernel.hz);
        let Some(m) = self.k.mms.get_mut(&mm) else { return false };
        if now > m.ctx.next_trim_jiffies {
            m.ctx.next_trim_jiffies = now + hz;
            return true;
        }
        false
    }

    /// native_flush_tlb_multi: IPIs to the CPUs of `mask` that need them (all of them
    /// when page tables were freed), and the local flush meanwhile; the initiator waits
    /// for the acks when its kernel step ends.
    ///
    /// In a virtual machine with KVM's paravirtual flush, the vCPUs the host preempted
    /// are left their flush first ([`Machine::pv_flush_preempted`]); returns true when
    /// any was, so that the flush did not interrupt every CPU of the mask.
    pub(crate) fn flush_tlb_multi(&mut self, c: usize, mask: &CpuMask, info: &FlushInfo) -> bool {
        let left = if self.host.is_some() { self.pv_flush_preempted(c, mask) } else { None };
        let deferred = left.is_some();
        let mask = left.as_ref().unwrap_or(mask);
        let pages = if info.end == FLUSH_ALL { -1 } else { ((info.end - info.start) >> 12) as i64 };
        self.trace_flush(c, trace_reason::REMOTE_SEND_IPI, pages);
        let in_transition = self.k.mms.get(&info.mm).is_some_and(|m| m.ctx.asid_transition);
        let policy = self.k.strategy.cpumask;
        let everyone = info.freed_tables || in_transition || policy.everyone();
        let targets: Vec<usize> = mask
            .iter()
            .filter(|&t| everyone || t == c || policy.should_flush(&self.k.cpus[t].tlb, info))
            .collect();
        // The remote reads of the scan: the mask's line, then should_flush_tlb's
        // per_cpu reads of each other candidate's is_lazy and, when it is not lazy, its
        // loaded_mm (lines their CPUs write at every switch).
        let cpus = &self.k.cpus;
        let lines = scan_lines(c, info.mm, mask, everyone, |t| cpus[t].tlb.is_lazy);
        let mut scan = 0;
        for obj in lines {
            scan += self.kline_access(c, obj, false);
        }
        self.charge(c, scan);
        let targets = self.k.strategy.broken.reached(targets, c);
        let local = targets.contains(&c);
        let remote: Vec<usize> = targets.into_iter().filter(|&t| t != c).collect();
        for &t in &remote {
            let idle = self.k.cpus[t].current.is_none();
            let lazy = self.k.cpus[t].tlb.is_lazy;
            let rec = self.probes.records.get_mut(info.record);
            rec.targets += 1;
            if idle {
                rec.to_idle += 1;
            }
            if lazy {
                rec.to_lazy += 1;
            }
        }
        self.smp_call_function_many(c, &remote, info);
        if local {
            // The local flush runs while the IPIs are on their way.
            self.flush_tlb_func(c, info);
        }
        deferred
    }

    /// flush_tlb_func on CPU `c` (local, or in the IPI handler).
    pub(crate) fn flush_tlb_func(&mut self, c: usize, f: &FlushInfo) {
        // Translations this removes and a later walk brings back count as its refills.
        self.hw.mem.set_flush_tag(Some(f.record as u32));
        self.flush_tlb_func_inner(c, f);
        self.hw.mem.set_flush_tag(None);
    }

    fn flush_tlb_func_inner(&mut self, c: usize, f: &FlushInfo) {
        let local = c == f.initiator;
        let base = crate::machine::fp(self.profile.kernel.flush_func_cycles);
        self.charge(c, base);
        let loaded = self.k.cpus[c].tlb.loaded_mm;
        // The request (the initiator's flush_tlb_info) and the loaded mm's tlb_gen.
        use crate::kdata::KObj;
        let mut lines = self.kline_access(c, KObj::FlushInfo(f.initiator), false);
        if loaded != INIT_MM {
            lines += self.kline_access(c, KObj::MmTlbGen(loaded), false);
        }
        self.charge(c, lines);
        if f.mm == loaded && self.mm_needs_global_asid(loaded, self.k.cpus[c].tlb.loaded_mm_asid) {
            self.switch_mm_irqs_off(c, loaded);
        }
        let mm_gen = self.k.mms.get(&loaded).map_or(0, |m| m.ctx.tlb_gen);
        let asid = self.k.cpus[c].tlb.loaded_mm_asid;
        let reason =
            if local { trace_reason::LOCAL_MM_SHOOTDOWN } else { trace_reason::REMOTE_SHOOTDOWN };
        let nr = match self.k.cpus[c].tlb.flush_action(f, mm_gen) {
            FlushAction::WrongCpu => {
                // The CPU was left in the mm_cpumask of an mm it no longer runs.
                if self.k.strategy.cpumask.clears_wrong_cpu() {
                    self.cpumask_clear(c, f.mm);
                }
                self.trace_flush(c, trace_reason::REMOTE_WRONG_CPU, 0);
                return;
            }
            FlushAction::Nothing => return,
            FlushAction::LeaveLazy => {
                self.switch_mm_irqs_off(c, INIT_MM);
                return;
            }
            FlushAction::AlreadyCurrent => {
                self.trace_flush(c, reason, 0);
                return;
            }
            FlushAction::Partial => {
                let mut addr = f.start;
                let mut n = 0;
                while addr < f.end {
                    let cost = self.hw.mem.invlpg(c, addr);
                    self.charge(c, cost);
                    addr += 1 << f.stride_shift;
                    n += 1;
                }
                n
            }
            FlushAction::Full => {
                let root = self.hw.mem.core(c).root;
                let cost = self.hw.mem.write_cr3(c, root, kern_pcid(asid), false);
                self.charge(c, cost);
                -1
            }
        };
        self.k.cpus[c].tlb.ctxs[asid as usize].1 = mm_gen;
        self.trace_flush(c, reason, nr);
    }

    /// consider_global_asid: now and then, give an mm active on more than 3 CPUs a
    /// global ASID (INVLPGB transport only).
    fn consider_global_asid(&mut self, c: usize, mm: u32) {
        if !self.k.strategy.flush.global_asids() {
            return;
        }
        // current->pid is the thread id.
        let pid = self.k.cpus[c].current.unwrap_or(0);
        if u64::from(pid & 0x1f) != self.jiffies(c) & 0x1f {
            return;
        }
        let active = self
            .k
            .mms
            .get(&mm)
            .map(|m| {
                m.ctx
                    .cpumask
                    .iter()
                    .filter(|&k| self.k.cpus[k].tlb.loaded_mm == mm && !self.k.cpus[k].tlb.is_lazy)
                    .count()
            })
            .unwrap_or(0);
        if active > 3 {
            self.use_global_asid(c, mm);
        }
    }

    /// use_global_asid / allocate_global_asid: next free ASID above the dynamic range.
    fn use_global_asid(&mut self, c: usize, mm: u32) {
        if self.k.mms.get(&mm).is_some_and(|m| m.ctx.global_asid != 0) {
            return;
        }
        if self.k.last_global_asid >= MAX_ASID_AVAILABLE - 1 {
            // reset_global_asid_space: a full broadcast flush makes freed ASIDs reusable.
            // invlpgb_flush_all_nonglobals: INVLPGB, then TLBSYNC.
            let now = self.now(c);
            let cost = self.hw.mem.invlpgb(c, &Flush::AllNonGlobal, now);
            self.charge(c, cost);
            let now = self.now(c);
            let cost = self.hw.mem.tlbsync(c, now);
            self.charge(c, cost);
            for a in std::mem::take(&mut self.k.global_asid_freed) {
                self.k.global_asid_used.remove(&a);
            }
            self.k.last_global_asid = TLB_NR_DYN_ASIDS;
        }
        let mut asid = self.k.last_global_asid.max(TLB_NR_DYN_ASIDS);
        while asid < MAX_ASID_AVAILABLE && self.k.global_asid_used.contains(&asid) {
            asid += 1;
        }
        if asid >= MAX_ASID_AVAILABLE {
            return;
        }
        self.k.global_asid_used.insert(asid);
        self.k.last_global_asid = asid;
        if let Some(m) = self.k.mms.get_mut(&mm) {
            m.ctx.global_asid = asid;
            m.ctx.asid_transition = true;
        }
        self.probes.kstats.global_asids += 1;
    }

    /// mm_free_global_asid at mm destruction: reusable after the next wrap-around flush.
    pub(crate) fn free_global_asid(&mut self, mm: u32) {
        if let Some(m) = self.k.mms.get_mut(&mm) {
            if m.ctx.global_asid != 0 {
                self.k.global_asid_freed.push(m.ctx.global_asid);
                m.ctx.global_asid = 0;
            }
        }
    }

    /// broadcast_tlb_flush: INVLPGB over the range (in chunks of the CPU's maximum page
    /// count) and finish_asid_transition; TLBSYNC follows when the flush completes.
    fn broadcast_tlb_flush(&mut self, c: usize, info: &FlushInfo) {
        self.hw.mem.set_flush_tag(Some(info.record as u32));
        self.broadcast_tlb_flush_inner(c, info);
        self.hw.mem.set_flush_tag(None);
    }

    fn broadcast_tlb_flush_inner(&mut self, c: usize, info: &FlushInfo) {
        let asid = self.k.mms.get(&info.mm).map_or(0, |m| m.ctx.global_asid);
        let pcid = kern_pcid(asid);
        let max = u64::from(self.profile.cpu.invlpgb_max_pages.max(1));
        let mut ops = 0;
        if info.end == FLUSH_ALL {
            let now = self.now(c);
            let cost = self.hw.mem.invlpgb(c, &Flush::Pcid(pcid), now);
            self.charge(c, cost);
            ops += 1;
        } else {
            let mut addr = info.start;
            loop {
                let mut nr = 1;
                if info.stride_shift <= 21 {
                    nr = ((info.end - addr) >> info.stride_shift).clamp(1, max);
                }
                let f = Flush::Range {
                    pcid,
                    va: addr,
                    pages: nr,
                    stride_2m: info.stride_shift == 21,
                    globals: false,
                    final_only: false,
                };
                let now = self.now(c);
                let cost = self.hw.mem.invlpgb(c, &f, now);
                self.charge(c, cost);
                ops += 1;
                addr += nr << info.stride_shift;
                if addr >= info.end {
                    break;
                }
            }
        }
        self.probes.records.get_mut(info.record).invlpgb += ops;
        self.finish_asid_transition(c, info);
    }

    /// finish_asid_transition: IPIs to any CPU still running the mm on its old ASID.
    fn finish_asid_transition(&mut self, c: usize, info: &FlushInfo) {
        let Some(m) = self.k.mms.get(&info.mm) else { return };
        if !m.ctx.asid_transition {
            return;
        }
        let global = m.ctx.global_asid;
        let mask = m.ctx.cpumask.clone();
        for k in mask.iter() {
            let ts = &self.k.cpus[k].tlb;
            if ts.loaded_mm == info.mm && ts.loaded_mm_asid != global {
                self.flush_tlb_multi(c, &mask, info);
                return;
            }
        }
        if let Some(m) = self.k.mms.get_mut(&info.mm) {
            m.ctx.asid_transition = false;
        }
    }
}

/// The lines the scan of native_flush_tlb_multi reads on CPU `c`: the mm_cpumask's, then
/// (unless every CPU of the mask is flushed anyway) should_flush_tlb's per_cpu reads of
/// each other candidate's is_lazy and, when it is not lazy, its loaded_mm.
pub(crate) fn scan_lines(
    c: usize,
    mm: u32,
    mask: &CpuMask,
    everyone: bool,
    lazy: impl Fn(usize) -> bool,
) -> Vec<crate::kdata::KObj> {
    use crate::kdata::KObj;
    let mut lines = vec![KObj::MmCpumask(mm)];
    if !everyone {
        for t in mask.iter().filter(|&t| t != c) {
            lines.push(KObj::TlbStateShared(t));
            if !lazy(t) {
                lines.push(KObj::TlbState(t));
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_reads_more_lines_for_each_candidate_that_is_not_lazy() {
        let mut mask = CpuMask::new(8);
        for k in 0..8 {
            mask.set(k);
        }
        let n = |not_lazy: usize| scan_lines(0, 3, &mask, false, |t| t > not_lazy).len();
        // The mask, then each of the 7 others' is_lazy, then loaded_mm of the non-lazy.
        assert_eq!(n(0), 1 + 7);
        assert_eq!(n(3), 1 + 7 + 3);
        assert_eq!(n(7), 1 + 7 + 7);
        // Freed page tables flush everyone: no per-CPU reads.
        assert_eq!(scan_lines(0, 3, &mask, true, |_| false).len(), 1);
    }

    #[test]
    fn jiffies_start_five_minutes_before_the_wrap_at_a_seeded_phase() {
        for hz in [100, 250, 1000] {
            let initial = (1u64 << 32) - 300 * u64::from(hz);
            let phases: std::collections::BTreeSet<u64> = (0..64)
                .map(|seed| {
                    let j = boot_jiffies(hz, seed);
                    assert!((initial..initial + u64::from(hz)).contains(&j), "{j}");
                    assert_eq!(j, boot_jiffies(hz, seed));
                    j & 0x1f
                })
                .collect();
            // The sampling phase of consider_global_asid varies with the seed.
            assert!(phases.len() > 16, "{phases:?}");
        }
    }

    fn request(mm: u32, gen: u64, end: u64) -> FlushInfo {
        FlushInfo {
            mm,
            start: 0x1000,
            end,
            stride_shift: 12,
            freed_tables: false,
            new_tlb_gen: gen,
            initiator: 0,
            trim: false,
            record: 0,
        }
    }

    /// A CPU running mm 1 on ASID 2, up to date with generation `local`.
    fn running(local: u64) -> CpuTlbState {
        let mut ts = CpuTlbState { loaded_mm: 1, loaded_mm_asid: 2, ..CpuTlbState::default() };
        ts.ctxs[2] = (7, local);
        ts
    }

    #[test]
    fn asids_are_reused_per_mm_and_handed_out_round_robin() {
        let mut ts = CpuTlbState::default();
        // init_mm holds slot 0; new mms take 1, 2, ... and wrap to 0.
        let got: Vec<u16> = (10..17).map(|ctx| ts.choose_new_asid(ctx, 1, None).0).collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5, 0, 1]);
        // A slot that already holds the mm is reused, flushed only if it fell behind.
        ts.ctxs[3] = (42, 5);
        assert_eq!(ts.choose_new_asid(42, 5, None), (3, false));
        assert_eq!(ts.choose_new_asid(42, 6, None), (3, true));
        // A global ASID wins and never needs a flush.
        assert_eq!(ts.choose_new_asid(42, 9, Some(100)), (100, false));
    }

    #[test]
    fn flush_tlb_func_decisions() {
        use FlushAction::*;
        // The only generation missing, a range: INVLPGs.
        assert_eq!(running(4).flush_action(&request(1, 5, 0x3000), 5), Partial);
        // A generation in between is missing too, or the request is a full flush.
        assert_eq!(running(3).flush_action(&request(1, 5, 0x3000), 5), Full);
        assert_eq!(running(4).flush_action(&request(1, 5, FLUSH_ALL), 5), Full);
        // A later request's flush got here first.
        assert_eq!(running(4).flush_action(&request(1, 5, 0x3000), 6), Full);
        assert_eq!(running(5).flush_action(&request(1, 5, 0x3000), 6), Nothing);
        assert_eq!(running(6).flush_action(&request(1, 5, 0x3000), 6), Nothing);
        let mut caught_up = running(4);
        caught_up.ctxs[2].1 = 4;
        assert_eq!(caught_up.flush_action(&request(1, 5, 0x3000), 4), AlreadyCurrent);
        // Lazy, elsewhere, in init_mm, on a global ASID.
        let mut lazy = running(4);
        lazy.is_lazy = true;
        assert_eq!(lazy.flush_action(&request(1, 5, 0x3000), 5), LeaveLazy);
        assert_eq!(running(4).flush_action(&request(2, 5, 0x3000), 5), WrongCpu);
        let init = CpuTlbState::default();
        assert_eq!(init.flush_action(&request(INIT_MM, 5, 0x3000), 5), Nothing);
        let mut global = running(4);
        global.loaded_mm_asid = 100;
        assert_eq!(global.flush_action(&request(1, 5, 0x3000), 5), Nothing);
    }
}
