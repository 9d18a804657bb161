//! Kernel paths as sequences of timed steps (DESIGN.md, "Kernel paths take time").
//!
//! A system call, page fault, exception or exit is a [`KPath`] owned by its task. The
//! core runs one step at a time, when that step is the next event of the whole machine
//! (so steps of all CPUs execute in simulated-time order); between steps the other
//! cores advance and this core takes the interrupts that have arrived. A step returns a
//! [`Next`]: the path's continuation, a lock to take first, a sleep, or the return to
//! user mode. A step that started TLB flushes is followed by csd_lock_wait for their
//! acks before the continuation runs ([`KState::Acks`]).
//!
//! Nothing here re-enters the event loop: a wait is a state of the core (spinning,
//! waiting for acks) or of the task (sleeping), and the loop resumes the path.

use crate::lock::{LockKey, LockMode};
use crate::machine::{sig, KState, Machine};
use crate::mmpath::{FaultStep, MmOp};
use crate::task::{SigFields, SigInfo, State, Wait};
use emu_core::{Exception, PageFault};

/// Where a task is in a kernel path: the step to run next.
#[derive(Clone, Debug)]
pub enum KPath {
    /// A system call, at entry (its number and arguments are in the task's registers).
    Syscall,
    /// A 32-bit system call made with INT 0x80, at entry.
    Int80,
    /// An address-space system call under mmap_lock.
    Mm(Box<MmOp>),
    /// A page fault raised by a user access.
    Fault(PageFault, FaultStep),
    /// An exception raised by a user instruction.
    Trap(Exception),
    /// do_exit: the task is leaving.
    Exit(ExitStep),
    /// Return to user mode (after the flushes of the previous step completed).
    Return,
    /// Sleep with this wait (after the flushes of the previous step completed).
    Block(Wait),
    /// poll, select or epoll_wait looking again at its files after a wake-up.
    Poll(Box<crate::poll::PollOp>),
    /// waitid after a wake-up: look at the children again.
    Waitid(Box<crate::process::WaitidOp>),
    /// rt_sigtimedwait after its sleep: dequeue, or time out, or EINTR.
    SigWait(Box<crate::signal::SigWaitOp>),
    /// A fork's mm_cid fixup walk, one task or CPU per step.
    CidWalk(Box<crate::cidsched::CidWalk>),
    /// GUP-fast for a shared futex, interrupts off (walker.rs).
    Gup(Box<crate::walker::GupWalk>),
    /// execve past its checks: de_thread, exec_mmap and the new image's setup (exec.rs).
    Exec(Box<crate::exec::ExecOp>),
}

/// The steps of do_exit (kernel/exit.c) and of the mm references it drops
/// (kernel/fork.c mmput, mmdrop, __mmdrop; lazymm.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStep {
    /// mm_release, exit_mm (the task runs on as a kernel thread borrowing its mm), mmput,
    /// and exit_mmap's teardown and flush when this was the last user.
    Start,
    /// After the teardown flush: mmput's mmdrop, and when it was the last reference,
    /// __mmdrop's cleanup_lazy_tlbs (whose IPIs the step's end waits for).
    Mmdrop {
        /// The address space torn down.
        mm: u32,
    },
    /// The hazard-pointer policy's hazptr_scan, one step per match (lazymm.rs
    /// `hazard_scan`).
    HazardScan {
        /// The address space.
        mm: u32,
        /// When __mmdrop began (1/256 cycles).
        since_fp: u64,
        /// The next CPU whose slot to read.
        from: u32,
        /// The previous step shot CPU `from - 1`; its check call is due.
        check: bool,
    },
    /// The rest of __mmdrop: the PGD, the context and the mm_struct are freed.
    FreeMm {
        /// The address space.
        mm: u32,
        /// When __mmdrop began (1/256 cycles).
        since_fp: u64,
    },
    /// The task becomes a zombie and, if it was the last of its thread group, the
    /// group dies.
    Finish,
}

/// What a step asks for next.
#[derive(Debug)]
pub enum Next {
    /// Run this continuation when the core is next due.
    Then(KPath),
    /// Take a lock, then run the continuation.
    Lock(LockKey, LockMode, KPath),
    /// Return to user mode (RAX already holds the result).
    User,
    /// Sleep; the task returns to user mode when woken.
    Block(Wait),
    /// The task left this core (it exited, yielded, or was moved).
    Gone,
    /// Spin in mm_get_cid until a CID of this address space is free (a fork's, under
    /// mm_cid.lock), then run the continuation.
    CidSpin(u32, KPath),
}

/// The cache model as the lock unit sees it: a locked instruction on the lock line.
struct LockLines<'a> {
    caches: &'a mut emu_mmu::cache::CacheSystem,
    locked_fp: u64,
}

impl crate::lock::LineCost for LockLines<'_> {
    fn rmw(&mut self, core: usize, pa: u64) -> u64 {
        self.locked_fp + self.caches.access(core, pa, true)
    }
}

impl Machine {
    /// The physical address of a lock's word.
    fn lock_line(&mut self, key: LockKey) -> u64 {
        use crate::kdata::KObj;
        let obj = match key {
            LockKey::MmapLock(mm) => KObj::MmStruct(mm),
            LockKey::Ptl(mm, pfn) => KObj::PageTable(mm, pfn),
            LockKey::Zone => KObj::Global(0),
            LockKey::Lru => KObj::Global(1),
            LockKey::Rq(cpu) => KObj::Rq(cpu),
            LockKey::FutexBucket(b) => KObj::FutexBucket(b),
        };
        self.k.kdata.line(&mut self.hw.mem.phys, obj)
    }

    /// Core `c`'s task `tid` asks for `key` between two steps of its path: it holds the
    /// lock when its next step runs; meanwhile it spins (spinlocks) or sleeps
    /// (rw-semaphores: the CPU schedules another task or goes idle).
    pub(crate) fn lock_for_path(&mut self, c: usize, tid: u32, key: LockKey, mode: LockMode) {
        let pa = self.lock_line(key);
        let now = self.now(c);
        let locked_fp = crate::machine::fp(self.profile.insn.locked);
        let mut lc = LockLines { caches: &mut self.hw.mem.caches, locked_fp };
        match self.k.locks.acquire(key, mode, c, tid, now, pa, &mut lc) {
            crate::lock::Acquire::At(at) => {
                self.advance(c, at);
                if at > now + (1 << 16) {
                    self.trace_span(c, &format!("spin on {key:?} (just released)"), now, at);
                }
            }
            crate::lock::Acquire::Wait if key.sleeps() => self.block(c, tid, Wait::Lock(key)),
            crate::lock::Acquire::Wait => {
                self.k.cpus[c].kstate =
                    KState::Spin { key, since_fp: now, irqs: key.spins_with_irqs() };
            }
        }
    }

    /// Core `c` releases `key`; the waiters it hands the lock to go on: a spinning CPU
    /// runs its next step, a sleeping task is woken (the releaser pays the wake-up).
    pub(crate) fn unlock(&mut self, c: usize, key: LockKey, mode: LockMode) {
        let pa = self.lock_line(key);
        let now = self.now(c);
        let locked_fp = crate::machine::fp(self.profile.insn.locked);
        let mut lc = LockLines { caches: &mut self.hw.mem.caches, locked_fp };
        let grants = self.k.locks.release(key, mode, now, pa, &mut lc);
        for g in grants {
            let k = g.waiter.core;
            if key.sleeps() {
                self.charge(c, crate::machine::fp(self.profile.kernel.wakeup_cycles));
                self.wake(g.waiter.tid, 0, g.at_fp);
            } else if let KState::Spin { since_fp, .. } = self.k.cpus[k].kstate {
                self.advance(k, g.at_fp);
                self.k.cpus[k].kstate = KState::Ready;
                self.touch(k);
                let irqs = if key.spins_with_irqs() { "irqs on" } else { "irqs off" };
                self.trace_span(k, &format!("spin on {key:?} ({irqs})"), since_fp, g.at_fp);
            }
        }
    }

    /// A critical section inside one kernel step (runqueue, zone, LRU and futex-bucket
    /// locks are never held across steps): core `c` takes `key`, spinning first if a
    /// step that ran earlier released it later in simulated time.
    pub(crate) fn lock_here(&mut self, c: usize, key: LockKey) {
        let pa = self.lock_line(key);
        let now = self.now(c);
        let tid = self.k.cpus[c].current.unwrap_or(0);
        let locked_fp = crate::machine::fp(self.profile.insn.locked);
        let mut lc = LockLines { caches: &mut self.hw.mem.caches, locked_fp };
        match self.k.locks.acquire(key, LockMode::Write, c, tid, now, pa, &mut lc) {
            crate::lock::Acquire::At(at) => {
                self.advance(c, at);
                if at > now + (1 << 16) {
                    let irqs = if key.spins_with_irqs() { "irqs on" } else { "irqs off" };
                    self.trace_span(c, &format!("spin on {key:?} ({irqs})"), now, at);
                }
            }
            crate::lock::Acquire::Wait => debug_assert!(false, "{key:?} held across steps"),
        }
    }

    /// Core `c`'s task `tid` enters the kernel on `path`; its first step runs
    /// when the core is next due.
    pub(crate) fn enter_kernel(&mut self, c: usize, tid: u32, path: KPath) {
        let nr = self.k.tasks.get(&tid).map_or(0, |t| t.cpu.gpr[0]);
        self.trace_kernel_begin(c, || match &path {
            KPath::Syscall => format!("syscall {nr}"),
            KPath::Fault(pf, _) => format!("page fault ({} {:#x})", pf.access, pf.addr),
            KPath::Trap(e) => format!("exception ({e})"),
            KPath::Exit(_) => "exit".into(),
            _ => "kernel".into(),
        });
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.kpath = Some(path);
        }
        self.k.cpus[c].kstate = KState::Ready;
    }

    /// Runs the next step of core `c`'s kernel path (the core is the next event).
    pub(crate) fn run_kernel(&mut self, c: usize) {
        let t = self.now(c);
        self.hw.cpus[c].committed_fp = t;
        let Some(tid) = self.k.cpus[c].current else { return };
        // Every path of the model runs with interrupts enabled between its steps, but
        // GUP-fast, which keeps them off from its first step to its last.
        let irqs_off =
            self.k.tasks.get(&tid).is_some_and(|t| matches!(t.kpath, Some(KPath::Gup(_))));
        if !irqs_off {
            self.take_interrupts(c, t);
        }
        if self.k.cpus[c].current != Some(tid) || self.k.cpus[c].kstate != KState::Ready {
            return;
        }
        let Some(path) = self.k.tasks.get_mut(&tid).and_then(|t| t.kpath.take()) else {
            self.k.cpus[c].kstate = KState::User;
            return;
        };
        if self.kernel_preemption(c, &path) {
            let walk = matches!(path, KPath::CidWalk(_));
            // preempt_schedule_irq: the task goes back to its runqueue in the middle of
            // its path and resumes it where it stopped when it runs again.
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.kpath = Some(path);
            }
            self.probes.cpus[c].kernel_preemptions += 1;
            if walk {
                self.probes.mm_cid.walks_preempted += 1;
            }
            self.trace_instant(c, || "preempted in the kernel".into());
            self.trace_kernel_end(c);
            self.preempt(c, tid);
            return;
        }
        let mm = self.k.tasks.get(&tid).map(|t| t.mm);
        let next = self.kernel_step(c, tid, path);
        // The address-space work the step did and has not charged yet (fork's copies,
        // exit's teardown).
        if let Some(mm) = mm {
            self.settle_work(c, mm);
        }
        self.after_step(c, tid, next);
    }

    /// Whether core `c`'s kernel path, about to run `path`'s next step, is preempted
    /// here: the preemption model lets a pending reschedule preempt kernel code
    /// (`--preempt`), another task waits, and the path is at a preemption point: no
    /// spinlock held (preempt_count is zero), interrupts on (not GUP-fast), not waiting
    /// for acks (a separate state), and not past do_exit's start (emu resumes only an
    /// exit that has not yet dropped its mm).
    fn kernel_preemption(&self, c: usize, path: &KPath) -> bool {
        let cpu = &self.k.cpus[c];
        if !cpu.need_resched
            || cpu.runq.is_empty()
            || !self.k.strategy.preempt.preempts_kernel(cpu.resched_forced)
        {
            return false;
        }
        let point = match path {
            // (execve is preemptible in Linux outside exec_mmap's critical section; emu
            // runs its steps through without a preemption point.)
            KPath::Gup(_) | KPath::Return | KPath::Block(_) | KPath::Exec(_) => false,
            KPath::Exit(step) => *step == ExitStep::Start,
            KPath::CidWalk(w) => w.preemptible(),
            _ => true,
        };
        // (A THP collapse's reused table waits on this CPU's list between the flush and
        // its next step: no preemption point there.)
        point && !self.k.locks.holds_spinlock(c) && cpu.sync_rcu.is_empty()
    }

    /// One step of `path`.
    fn kernel_step(&mut self, c: usize, tid: u32, path: KPath) -> Next {
        match path {
            KPath::Syscall => {
                self.memfd_pull(c, tid);
                self.syscall(c, tid)
            }
            KPath::Int80 => {
                self.memfd_pull(c, tid);
                self.syscall_ia32(c, tid)
            }
            KPath::Mm(op) => self.mm_step(c, tid, *op),
            KPath::Fault(pf, step) => self.fault_step(c, tid, pf, step),
            KPath::Trap(e) => self.trap(c, tid, e),
            KPath::Exit(step) => self.do_exit(c, tid, step),
            KPath::Return => Next::User,
            KPath::Block(w) => Next::Block(w),
            KPath::Poll(op) => self.poll_step(c, tid, *op),
            KPath::SigWait(op) => self.sigwait_step(c, tid, *op),
            KPath::Waitid(op) => self.waitid_step(c, tid, *op),
            KPath::CidWalk(w) => self.cid_walk_step(c, tid, *w),
            KPath::Gup(w) => self.gup_step(c, tid, *w),
            KPath::Exec(op) => self.exec_step(c, tid, *op),
        }
    }

    /// Carries out what a step asked for. A step that started flushes waits for their
    /// acks first (csd_lock_wait), whatever comes next.
    fn after_step(&mut self, c: usize, tid: u32, next: Next) {
        // What the step did to files: epoll ready lists, poll waiters, memfd pages.
        self.fd_after_step(c, tid);
        if !self.k.cpus[c].inflight.is_empty() || !self.k.cpus[c].ack_slots.is_empty() {
            let cont = match next {
                Next::Then(p) => p,
                Next::User => KPath::Return,
                Next::Block(w) => KPath::Block(w),
                Next::Lock(..) | Next::Gone | Next::CidSpin(..) => {
                    // A step that flushes ends before it takes a lock or leaves the CPU.
                    debug_assert!(false, "a kernel step flushed and then {next:?}");
                    KPath::Return
                }
            };
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.kpath = Some(cont);
            }
            self.begin_ack_wait(c);
            return;
        }
        match next {
            Next::Then(p) => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.kpath = Some(p);
                }
                self.k.cpus[c].kstate = KState::Ready;
            }
            Next::Lock(key, mode, p) => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.kpath = Some(p);
                }
                self.k.cpus[c].kstate = KState::Ready;
                self.lock_for_path(c, tid, key, mode);
            }
            Next::User => {
                self.trace_kernel_end(c);
                self.k.cpus[c].kstate = KState::User;
            }
            Next::Block(w) => self.block(c, tid, w),
            Next::Gone => self.trace_kernel_end(c),
            Next::CidSpin(mm, p) => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.kpath = Some(p);
                }
                let since_fp = self.now(c);
                self.k.cpus[c].kstate =
                    KState::CidSpin { mm, since_fp, ready: true, fork: true, retry_fp: u64::MAX };
                self.k.cid_spinners += 1;
            }
        }
    }

    /// The task on core `c` sleeps with wait `w`; the CPU schedules. A task being killed
    /// (a zap reached it in the kernel) that goes into an interruptible sleep is woken at
    /// once, as signal_pending_state keeps it from sleeping in Linux; it exits on its way
    /// out.
    pub(crate) fn block(&mut self, c: usize, tid: u32, w: Wait) {
        self.trace_instant(c, || format!("sleep: {w:?}"));
        self.trace_kernel_end(c);
        let killed = w.interruptible() && self.k.tasks.get(&tid).is_some_and(|t| t.exit.is_some());
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            if w == Wait::Io {
                // Restart the system call when woken.
                t.cpu.rip -= 2;
            }
            let timer = w.until_ns();
            t.state = State::Blocked(w);
            if let Some(u) = timer {
                self.k.timers.insert((u, tid));
            }
        }
        self.k.cpus[c].kstate = KState::User;
        self.deschedule(c);
        if killed {
            let at = self.now(c);
            self.wake(tid, -crate::fs::errno::EINTR, at);
        }
    }

    /// An exception raised by a user instruction: the signal Linux sends for it, with
    /// the thread's trap number and error code set for the signal frame.
    fn trap(&mut self, c: usize, tid: u32, e: Exception) -> Next {
        let Some(t) = self.k.tasks.get_mut(&tid) else { return Next::Gone };
        let rip = t.cpu.rip;
        let fp_status = match e {
            Exception::X87Fp => u32::from(t.cpu.fpu.sw & !t.cpu.fpu.cw & 0x3f),
            _ => t.cpu.mxcsr & !(t.cpu.mxcsr >> 7) & 0x3f,
        };
        let (info, trapno) = trap_signal(e, rip, fp_status);
        t.trap.trapno = trapno;
        t.trap.err = 0;
        let report = format!("{e} at rip {rip:#x}");
        self.force_signal(c, tid, info, Some(report));
        self.user_or_gone(c, tid)
    }

    /// After work that may have moved the task: back to user mode if it is still this
    /// core's, else nothing more here.
    pub(crate) fn user_or_gone(&self, c: usize, tid: u32) -> Next {
        if self.k.cpus[c].current == Some(tid) {
            Next::User
        } else {
            Next::Gone
        }
    }
}

/// The signal Linux sends for an exception raised in user mode, and the trap number
/// (arch/x86/kernel/traps.c): #DE is SIGFPE/FPE_INTDIV at the instruction
/// (`exc_divide_error`), #UD SIGILL/ILL_ILLOPN at the instruction (`exc_invalid_op`),
/// #GP SIGSEGV/SI_KERNEL with no address (`exc_general_protection`), INT3 SIGTRAP/SI_KERNEL
/// (`do_int3_user` sends a bare force_sig), INT1 SIGTRAP/TRAP_BRKPT at the next
/// instruction (`exc_debug_user` and `send_sigtrap`), #MF and #XM SIGFPE with the code
/// of the unmasked exception `fp_status` flags (`math_error`, `fpu__exception_code`).
pub(crate) fn trap_signal(e: Exception, rip: u64, fp_status: u32) -> (SigInfo, u64) {
    use crate::signal::si::*;
    let fault = |signo, code, addr| SigInfo { signo, code, fields: SigFields::Fault { addr } };
    match e {
        Exception::DivideError => (fault(sig::SIGFPE, FPE_INTDIV, rip), 0),
        Exception::InvalidOpcode => (fault(sig::SIGILL, ILL_ILLOPN, rip), 6),
        Exception::GeneralProtection => (fault(sig::SIGSEGV, SI_KERNEL, 0), 13),
        Exception::Breakpoint => {
            (SigInfo { signo: sig::SIGTRAP, code: SI_KERNEL, fields: SigFields::None }, 3)
        }
        Exception::Debug => (fault(sig::SIGTRAP, TRAP_BRKPT, rip), 1),
        Exception::X87Fp | Exception::SimdFp => {
            let code = if fp_status & 0x01 != 0 {
                FPE_FLTINV
            } else if fp_status & 0x04 != 0 {
                3 // FPE_FLTDIV
            } else if fp_status & 0x08 != 0 {
                4 // FPE_FLTOVF
            } else if fp_status & 0x12 != 0 {
                5 // FPE_FLTUND
            } else if fp_status & 0x20 != 0 {
                6 // FPE_FLTRES
            } else {
                0
            };
            let trapno = if e == Exception::X87Fp { 16 } else { 19 };
            (fault(sig::SIGFPE, code, rip), trapno)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_raise_the_signals_linux_sends() {
        let (i, n) = trap_signal(Exception::DivideError, 0x1000, 0);
        assert_eq!((i.signo, i.code, i.fields, n), (8, 1, SigFields::Fault { addr: 0x1000 }, 0));
        let (i, n) = trap_signal(Exception::InvalidOpcode, 0x1000, 0);
        assert_eq!((i.signo, i.code, n), (4, 2, 6));
        let (i, n) = trap_signal(Exception::GeneralProtection, 0x1000, 0);
        assert_eq!((i.signo, i.code, i.fields, n), (11, 0x80, SigFields::Fault { addr: 0 }, 13));
        let (i, n) = trap_signal(Exception::Breakpoint, 0x1000, 0);
        assert_eq!((i.signo, i.code, i.fields, n), (5, 0x80, SigFields::None, 3));
        let (i, n) = trap_signal(Exception::Debug, 0x1001, 0);
        assert_eq!((i.signo, i.code, i.fields, n), (5, 1, SigFields::Fault { addr: 0x1001 }, 1));
        // Invalid beats divide-by-zero; precision alone is FPE_FLTRES.
        assert_eq!(trap_signal(Exception::SimdFp, 0, 0x05).0.code, 7);
        assert_eq!(trap_signal(Exception::SimdFp, 0, 0x20).0.code, 6);
        assert_eq!(trap_signal(Exception::X87Fp, 0, 0x04).1, 16);
    }
}
