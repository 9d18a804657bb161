//! The machine: cores with local clocks and per-CPU kernel state, the shared memory
//! system and decoded-code cache, and the Linux model's process state.
//!
//! Clock discipline (DESIGN.md): the runnable core with the smallest local time runs
//! next, for at most one quantum, which is never longer than the smallest IPI latency, so
//! every message arrives in its receiver's future. A core's run also stops at its next
//! pending interrupt and its next scheduler tick. Idle cores and cores waiting inside the
//! kernel (a flush initiator spinning for acks) take part only through the interrupts
//! that reach them. Same-time events are ordered by (time, kind, core): timers first,
//! then cores in index order.

use crate::apic::{Csd, PendingIpi};
use crate::config::RunConfig;
use crate::fs::{FdTable, Files, Object};
use crate::loader::{self, LoadError};
use crate::mm::{Fault, Gather, Mm};
use crate::profile::Profile;
use crate::rng::SimRng;
use crate::stats::{CoreStats, KernelStats, RunStats, ShootdownRecord, Violation};
use crate::task::{SigAction, State, Task, Wait};
use crate::tlbflush::{
    BrokenPolicy, CpuTlbState, CpumaskPolicy, FlushTransport, Reason, FLUSH_ALL,
};
use crate::trace::Trace;
use emu_core::{Access, CodeCache, Cpu, Exception, Exit, PageFault};
use emu_mmu::MemSystem;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use thiserror::Error;

/// The kernel's own address space (init_mm): lazy CPUs leave for it.
pub const INIT_MM: u32 = 0;

/// Why a simulation stopped without the guest exiting on its own.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SimError {
    /// The program could not be loaded.
    #[error("{0}")]
    Load(String),
    /// The guest executed an instruction emu does not implement.
    #[error("unsupported instruction at rip {rip:#x}: {bytes} ({disasm})")]
    Unsupported {
        /// Its address.
        rip: u64,
        /// Its bytes in hex.
        bytes: String,
        /// Its disassembly.
        disasm: String,
    },
    /// Every thread is blocked with no timer pending.
    #[error("deadlock: every guest thread is blocked and no timer is pending ({0})")]
    Deadlock(String),
    /// The instruction limit was reached.
    #[error("instruction limit of {0} reached")]
    InstructionLimit(u64),
    /// Guest physical memory is exhausted while the kernel needed a page.
    #[error("{0}")]
    OutOfMemory(String),
    /// emu itself failed (a panic in the simulation): a bug, not the guest's doing.
    #[error("internal error in emu (a bug, please report it): {0}")]
    Internal(String),
}

/// How the guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// exit/exit_group with this status (low 8 bits).
    Exited(i32),
    /// Killed by a signal; `report` describes a fault if one caused it.
    Signaled {
        /// Signal number.
        sig: u32,
        /// A segfault-style report, when a fault raised the signal.
        report: Option<String>,
    },
    /// The simulation stopped.
    Error(SimError),
}

impl Outcome {
    /// The exit code a shell would see (128+signal for a signal).
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Exited(c) => *c & 0xff,
            Outcome::Signaled { sig, .. } => 128 + *sig as i32,
            Outcome::Error(_) => 125,
        }
    }
}

/// The strategy of a run, one value per axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strategy {
    /// mm_cpumask maintenance.
    pub cpumask: CpumaskPolicy,
    /// Flush transport.
    pub flush: FlushTransport,
    /// Test-only breakage.
    pub broken: BrokenPolicy,
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy {
            cpumask: CpumaskPolicy::Lazy,
            flush: FlushTransport::Ipi,
            broken: BrokenPolicy::None,
        }
    }
}

/// The idle state a core sits in.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    /// When it went idle.
    pub since_fp: u64,
    /// Index of the C-state the governor chose.
    pub state: usize,
}

/// Longest stretch (cycles) a core runs without yielding to the event loop when no
/// other core is active; it bounds how far `--max-insns` can overshoot.
const SOLO_SLICE_CYCLES: u64 = 1 << 20;

/// Per-core scheduler, interrupt and TLB state.
#[derive(Clone, Debug, Default)]
pub struct CoreState {
    /// Local time (1/256 cycles) while no task runs here; the running task's clock is
    /// authoritative otherwise (see [`Machine::now`]).
    pub time_fp: u64,
    /// Task running here.
    pub current: Option<u32>,
    /// Runnable tasks waiting for this core.
    pub runq: VecDeque<u32>,
    /// Interrupts on their way, ordered by arrival.
    pub ipis: Vec<PendingIpi>,
    /// Queued cross-CPU function calls.
    pub callq: VecDeque<Csd>,
    /// Nesting depth of in-kernel waits (no guest code runs while positive).
    pub waiting: u32,
    /// Idle, and since when.
    pub idle: Option<Idle>,
    /// Lengths (cycles) of the last idle periods, newest last, for the governor.
    pub idle_history: VecDeque<u64>,
    /// Next scheduler tick (local time).
    pub next_tick_fp: u64,
    /// Linux cpu_tlbstate.
    pub tlb: CpuTlbState,
    /// Counters.
    pub stats: CoreStats,
    /// Interrupts taken during the current flush wait: (start, end) local times.
    pub wait_irqs: Vec<(u64, u64)>,
    /// Interrupt time taken after a flush wait was over but before it was seen to be
    /// (see `wait_for_acks`); the shootdown's latency leaves it out.
    pub post_wait_fp: u64,
}

/// Signal numbers used by the kernel model.
pub mod sig {
    #![allow(missing_docs)]
    pub const SIGILL: u32 = 4;
    pub const SIGTRAP: u32 = 5;
    pub const SIGFPE: u32 = 8;
    pub const SIGKILL: u32 = 9;
    pub const SIGSEGV: u32 = 11;
    pub const SIGPIPE: u32 = 13;
    pub const SIGCHLD: u32 = 17;
    pub const SIGCONT: u32 = 18;
    pub const SIGSTOP: u32 = 19;
    pub const SIGURG: u32 = 23;
    pub const SIGWINCH: u32 = 28;
}

/// A machine running one guest program.
pub struct Machine {
    pub(crate) mem: MemSystem,
    pub(crate) code: CodeCache<MemSystem>,
    pub(crate) profile: Profile,
    pub(crate) strategy: Strategy,
    pub(crate) tasks: BTreeMap<u32, Task>,
    /// Armed timers of blocked tasks: (expiry ns, tid). Entries of tasks woken
    /// otherwise stay until they reach the front and are found disarmed.
    pub(crate) timers: std::collections::BTreeSet<(u64, u32)>,
    pub(crate) mms: BTreeMap<u32, Mm>,
    pub(crate) fdtables: BTreeMap<u32, FdTable>,
    pub(crate) files: Files,
    pub(crate) sighands: BTreeMap<u32, Vec<SigAction>>,
    pub(crate) cores: Vec<CoreState>,
    pub(crate) rng: SimRng,
    pub(crate) next_id: u32,
    pub(crate) next_ctx_id: u64,
    pub(crate) init_pid: u32,
    pub(crate) outcome: Option<Outcome>,
    pub(crate) exe_path: String,
    pub(crate) argv: Vec<Vec<u8>>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    quantum_fp: u64,
    tick_fp: u64,
    max_insns: Option<u64>,
    pub(crate) kstats: KernelStats,
    pub(crate) syscall_fp: u64,
    pub(crate) fault_fp: u64,
    pub(crate) zero_fp: u64,
    pub(crate) copy_bpc: f64,
    pub(crate) warned: BTreeSet<u64>,
    pub(crate) futex_seq: u64,
    pub(crate) ipi_seq: u64,
    pub(crate) ack_fp: Vec<Option<u64>>,
    pub(crate) shootdowns: Vec<ShootdownRecord>,
    pub(crate) cpumask_samples: Vec<(u64, u32, u32)>,
    pub(crate) violations: Vec<Violation>,
    pub(crate) oracle: bool,
    pub(crate) last_global_asid: u16,
    pub(crate) global_asid_used: BTreeSet<u16>,
    pub(crate) global_asid_freed: Vec<u16>,
    pub(crate) trace: Option<Trace>,
    pub(crate) seed: u64,
}

/// Cycles to fixed point (1/256 cycles).
pub(crate) fn fp(cycles: f64) -> u64 {
    (cycles * 256.0).round().max(0.0) as u64
}

impl Machine {
    /// Builds a machine and loads the program as its first process.
    pub fn new(cfg: &RunConfig) -> Result<Machine, SimError> {
        let profile = cfg.profile.clone();
        let oom = |e: emu_mmu::OutOfMemory| SimError::OutOfMemory(e.to_string());
        let mut mem = MemSystem::new(cfg.cores, cfg.memory_mib, profile.mem_params());
        if cfg.oracle {
            mem.phys.enable_oracle();
        }
        let mut rng = SimRng::new(cfg.seed);
        let init_mm = Mm::new(&mut mem.phys, 1, cfg.cores).map_err(oom)?;
        let mut mm = Mm::new(&mut mem.phys, 2, cfg.cores).map_err(oom)?;
        mm.thp = cfg.thp;
        // init_new_context at jiffies 0: the first trim is due HZ jiffies on.
        mm.ctx.next_trim_jiffies = u64::from(profile.kernel.hz);
        let hwcap = profile.cpuid(0, cfg.cores as u32).query(1, 0)[3];
        let loaded = loader::load(
            &mut mm,
            &mut mem.phys,
            cfg.program.clone(),
            &cfg.argv,
            &cfg.envp,
            cfg.exe_path.as_bytes(),
            hwcap,
            &mut rng,
        )
        .map_err(|e| match e {
            LoadError::Memory(m) => SimError::OutOfMemory(m.to_string()),
            e => SimError::Load(e.to_string()),
        })?;
        let mut cpu = Cpu::default();
        cpu.rip = loaded.entry;
        cpu.gpr[4] = loaded.sp;
        // rdx = 0: no exit handler for glibc's _start to register.
        cpu.gpr[2] = 0;
        let pid = 1;
        let mut files = Files::default();
        files.allow_read = cfg.allow_read.clone();
        if cfg.capture_output {
            files.capture = Some(crate::fs::Captured::default());
        }
        let mut fds = FdTable::default();
        for (fd, obj, flags) in
            [(0, Object::Stdin, 0), (1, Object::Stdout, 1), (2, Object::Stderr, 1)]
        {
            let id = files.create(obj, flags);
            fds.fds.insert(fd, (id, false));
        }
        let comm = cfg
            .argv
            .first()
            .map(|a| {
                String::from_utf8_lossy(a.rsplit(|&b| b == b'/').next().unwrap_or(a)).into_owned()
            })
            .unwrap_or_default();
        let task = Task {
            tid: pid,
            tgid: pid,
            ppid: 0,
            cpu,
            mm: 1,
            files: 1,
            sighand: 1,
            state: State::Runnable,
            clear_child_tid: 0,
            robust_list: 0,
            sigmask: 0,
            pending: 0,
            exit_status: 0,
            exit_signal: sig::SIGCHLD,
            rseq: None,
            affinity: vec![true; cfg.cores],
            last_cpu: 0,
            comm: comm.chars().take(15).collect(),
            altstack: (0, 2, 0),
        };
        let k = &profile.kernel;
        // The quantum never exceeds the smallest IPI latency.
        let quantum = (cfg.quantum_cycles as f64).min(profile.apic.delivery_same_socket_cycles);
        let mut m = Machine {
            code: CodeCache::new(profile.insn_costs()),
            syscall_fp: fp(k.syscall_cycles),
            fault_fp: fp(k.page_fault_cycles),
            zero_fp: fp(k.page_zero_cycles),
            copy_bpc: k.copy_bytes_per_cycle,
            quantum_fp: fp(quantum).max(256),
            tick_fp: fp(f64::from(profile.cpu.freq_mhz) * 1e6 / f64::from(k.hz)),
            mem,
            strategy: cfg.strategy,
            profile,
            tasks: BTreeMap::new(),
            timers: Default::default(),
            mms: BTreeMap::new(),
            fdtables: BTreeMap::new(),
            files,
            sighands: BTreeMap::new(),
            cores: vec![CoreState::default(); cfg.cores],
            rng,
            next_id: pid + 1,
            next_ctx_id: 3,
            init_pid: pid,
            outcome: None,
            exe_path: cfg.exe_path.clone(),
            argv: cfg.argv.clone(),
            uid: cfg.uid,
            gid: cfg.gid,
            max_insns: cfg.max_instructions,
            kstats: KernelStats::default(),
            warned: BTreeSet::new(),
            futex_seq: 0,
            ipi_seq: 0,
            ack_fp: Vec::new(),
            shootdowns: Vec::new(),
            cpumask_samples: Vec::new(),
            violations: Vec::new(),
            oracle: cfg.oracle,
            last_global_asid: crate::tlbflush::TLB_NR_DYN_ASIDS,
            global_asid_used: BTreeSet::new(),
            global_asid_freed: Vec::new(),
            trace: cfg.trace.then(Trace::default),
            seed: cfg.seed,
        };
        m.mms.insert(INIT_MM, init_mm);
        m.mms.insert(1, mm);
        m.fdtables.insert(1, fds);
        m.sighands.insert(1, vec![SigAction::default(); 65]);
        m.tasks.insert(pid, task);
        // Every core starts idle in init_mm.
        let kernel_root = m.mms.get(&INIT_MM).map_or(0, |m| m.root.addr());
        for c in 0..cfg.cores {
            m.mem.write_cr3(c, kernel_root, 1, false);
            m.cores[c].tlb.ctxs[0] = (1, 1);
            m.enter_idle(c);
        }
        m.enqueue(pid, 0, 0);
        Ok(m)
    }

    /// Runs until the first process exits or the simulation stops.
    pub fn run(&mut self) -> Outcome {
        while self.outcome.is_none() {
            if !self.step() {
                let blocked: Vec<String> = self
                    .tasks
                    .values()
                    .filter(|t| matches!(t.state, State::Blocked(_)))
                    .map(|t| format!("tid {} {:?}", t.tid, t.state))
                    .collect();
                self.fail(SimError::Deadlock(blocked.join(", ")));
            }
        }
        self.outcome.clone().unwrap_or(Outcome::Exited(0))
    }

    /// Stops the simulation with an error (the first error wins).
    pub(crate) fn fail(&mut self, e: SimError) {
        if self.outcome.is_none() {
            self.outcome = Some(Outcome::Error(e));
        }
    }

    /// Simulated nanoseconds at a local time.
    pub(crate) fn ns_of(&self, time_fp: u64) -> u64 {
        ((time_fp as f64 / 256.0) / self.profile.ghz()) as u64
    }

    /// Local time (fp) of a simulated nanosecond instant.
    pub(crate) fn fp_of_ns(&self, ns: u64) -> u64 {
        (ns as f64 * self.profile.ghz() * 256.0) as u64
    }

    /// Local time of core `c`. The running task's clock is authoritative; the core's
    /// copy follows it at every charge and after every run of guest code.
    #[inline]
    pub(crate) fn now(&self, c: usize) -> u64 {
        debug_assert!(
            self.cores[c]
                .current
                .and_then(|t| self.tasks.get(&t))
                .is_none_or(|t| t.cpu.time_fp == self.cores[c].time_fp),
            "core {c}'s clock lost track of its task's"
        );
        self.cores[c].time_fp
    }

    /// Advances core `c`'s clock by `cost`.
    #[inline]
    pub(crate) fn charge(&mut self, c: usize, cost: u64) {
        match self.cores[c].current.and_then(|t| self.tasks.get_mut(&t)) {
            Some(t) => {
                t.cpu.time_fp += cost;
                self.cores[c].time_fp = t.cpu.time_fp;
            }
            None => self.cores[c].time_fp += cost,
        }
    }

    /// Moves core `c`'s clock forward to at least `t`.
    pub(crate) fn advance(&mut self, c: usize, t: u64) {
        let now = self.now(c);
        if t > now {
            self.charge(c, t - now);
        }
    }

    /// Processes the earliest pending event: a timer, a core's run, or an interrupt on
    /// an idle or waiting core. Returns false when nothing can happen any more.
    pub(crate) fn step(&mut self) -> bool {
        let mut best: Option<(u64, u8, usize)> = None;
        let mut consider = |cand: (u64, u8, usize)| {
            if best.is_none_or(|b| cand < b) {
                best = Some(cand);
            }
        };
        for (k, core) in self.cores.iter().enumerate() {
            if core.waiting == 0 && (core.current.is_some() || !core.runq.is_empty()) {
                // Running, or woken from idle with a task to switch to.
                consider((self.now(k), 1, k));
            } else if let Some(ipi) = core.ipis.first() {
                consider((self.now(k).max(ipi.arrival_fp), 1, k));
            }
        }
        if let Some(w) = self.next_timer() {
            consider((w, 0, usize::MAX));
        }
        match best {
            None => false,
            Some((w, 0, _)) => {
                if self.fire_timers(w) == 0 {
                    // A timer that fires nothing would be chosen again forever.
                    self.fail(SimError::Deadlock(format!("timer at {w} fp woke no task")));
                    return false;
                }
                true
            }
            Some((t, _, k)) => {
                let core = &self.cores[k];
                if core.current.is_some() && core.waiting == 0 {
                    self.run_core(k);
                } else if core.waiting == 0 && !core.runq.is_empty() {
                    // The woken CPU has left its idle state: it takes the interrupts
                    // that arrived meanwhile, then switches to the task.
                    self.handle_ipis(k, t);
                    self.schedule(k);
                } else {
                    self.handle_ipis(k, t);
                }
                true
            }
        }
    }

    /// The timer of blocked task `tid` (ns), if it is still armed.
    fn armed_timer(&self, tid: u32) -> Option<u64> {
        match self.tasks.get(&tid).map(|t| &t.state) {
            Some(State::Blocked(Wait::Sleep { until_ns, .. })) => Some(*until_ns),
            Some(State::Blocked(Wait::Futex { until_ns: Some(u), .. })) => Some(*u),
            _ => None,
        }
    }

    /// Earliest time (fp) at which a blocked task's timer expires. Timers of tasks woken
    /// otherwise (or gone) are dropped from the queue here.
    pub(crate) fn next_timer(&mut self) -> Option<u64> {
        while let Some(&(until, tid)) = self.timers.first() {
            if self.armed_timer(tid) == Some(until) {
                return Some(self.fp_of_ns(until));
            }
            self.timers.pop_first();
        }
        None
    }

    /// Wakes every task whose timer expires at or before `at` (fp); returns how many.
    fn fire_timers(&mut self, at: u64) -> usize {
        let mut n = 0;
        // Compared in the clock's own units, exactly as next_timer computed them (a
        // round trip through nanoseconds could miss the timer and spin).
        while let Some(&(until, tid)) = self.timers.first() {
            if self.fp_of_ns(until) > at {
                break;
            }
            self.timers.pop_first();
            if self.armed_timer(tid) != Some(until) {
                continue;
            }
            let ret = match self.tasks.get(&tid).map(|t| &t.state) {
                Some(State::Blocked(Wait::Futex { .. })) => -crate::fs::errno::ETIMEDOUT,
                _ => 0,
            };
            self.wake(tid, ret, at);
            n += 1;
        }
        n
    }

    /// Makes a blocked task runnable with `ret` as its system call result, ready at `at`.
    pub(crate) fn wake(&mut self, tid: u32, ret: i64, at: u64) {
        let waker = self.tasks.get(&tid).map_or(0, |t| t.last_cpu);
        if let Some(t) = self.tasks.get_mut(&tid) {
            if matches!(t.state, State::Blocked(_)) {
                if !matches!(t.state, State::Blocked(Wait::Io)) {
                    t.cpu.gpr[0] = ret as u64;
                }
                t.state = State::Runnable;
                self.enqueue(tid, at, waker);
            }
        }
    }

    fn run_core(&mut self, c: usize) {
        let t = self.now(c);
        self.handle_ipis(c, t);
        if self.cores[c].next_tick_fp <= self.now(c) {
            self.tick(c);
        }
        let Some(tid) = self.cores[c].current else { return };
        // exit_to_user_mode: signals that became pending while the task was elsewhere
        // (in a syscall, blocked, on its runqueue, or running when another CPU sent them).
        if self.tasks.get(&tid).is_some_and(|t| t.pending & !t.sigmask != 0) {
            self.deliver_pending(c, tid);
            if self.cores[c].current != Some(tid) || self.outcome.is_some() {
                return;
            }
        }
        let now = self.now(c);
        // While another CPU runs (or is about to), this one may run at most a quantum
        // ahead, so no interrupt can reach it in its past. Alone, it runs to its next
        // event: a tick, an interrupt, or a timer that may wake a task elsewhere.
        let others = self.cores.iter().enumerate().any(|(k, o)| {
            k != c
                && o.waiting == 0
                && (o.current.is_some() || !o.runq.is_empty() || !o.ipis.is_empty())
        });
        let mut until = if others {
            now + self.quantum_fp
        } else {
            let alone = now + (SOLO_SLICE_CYCLES << 8);
            self.next_timer().map_or(alone, |t| alone.min(t.max(now + 1)))
        };
        if let Some(ipi) = self.cores[c].ipis.first() {
            until = until.min(ipi.arrival_fp.max(now + 1));
        }
        until = until.min(self.cores[c].next_tick_fp.max(now + 1));
        let Some(task) = self.tasks.get_mut(&tid) else {
            self.deschedule(c);
            return;
        };
        self.mem.select(c);
        let insn_before = task.cpu.instret;
        let exit = emu_core::run(&mut task.cpu, &mut self.mem, &mut self.code, until);
        self.cores[c].time_fp = task.cpu.time_fp;
        let ran = task.cpu.instret - insn_before;
        self.cores[c].stats.instructions += ran;
        self.kstats.instructions += ran;
        if self.mem.has_stale_uses() {
            self.record_violations();
        }
        if self.mem.has_refills() {
            for (_, record) in self.mem.take_refills() {
                if let Some(r) = self.shootdowns.get_mut(record as usize) {
                    r.refills += 1;
                }
            }
        }
        if let Some(limit) = self.max_insns {
            if self.kstats.instructions >= limit {
                self.fail(SimError::InstructionLimit(limit));
                return;
            }
        }
        match exit {
            Exit::Budget | Exit::Pause | Exit::BlockEnd | Exit::Halt => {}
            Exit::Syscall => self.syscall(c, tid),
            Exit::PageFault(pf) => self.page_fault(c, tid, pf),
            Exit::Exception(e) => {
                let s = match e {
                    Exception::DivideError | Exception::X87Fp | Exception::SimdFp => sig::SIGFPE,
                    Exception::InvalidOpcode => sig::SIGILL,
                    Exception::GeneralProtection => sig::SIGSEGV,
                    Exception::Breakpoint => sig::SIGTRAP,
                };
                let rip = self.tasks.get(&tid).map_or(0, |t| t.cpu.rip);
                let report = format!("{e} at rip {rip:#x}");
                self.force_signal(c, tid, s, Some(report));
            }
            Exit::Unsupported => {
                let rip = self.tasks.get(&tid).map_or(0, |t| t.cpu.rip);
                let mut bytes = [0u8; 15];
                let n = self.read_user(c, tid, rip, &mut bytes).map_or(0, |()| 15);
                let (dis, len) = emu_core::disassemble(&bytes[..n], rip);
                let hex: Vec<String> =
                    bytes[..len.min(n)].iter().map(|b| format!("{b:02x}")).collect();
                self.fail(SimError::Unsupported { rip, bytes: hex.join(" "), disasm: dis });
            }
        }
    }

    /// Attaches time and strategy to the stale-translation uses the MMU saw.
    fn record_violations(&mut self) {
        for u in self.mem.take_stale_uses() {
            let ns = self.ns_of(self.now(u.core));
            self.violations.push(Violation {
                core: u.core,
                address: u.va,
                kind: u.kind,
                time_ns: ns,
                strategy: format!(
                    "cpumask={} flush={}",
                    self.strategy.cpumask.name(),
                    self.strategy.flush.name()
                ),
            });
        }
    }

    /// Handles a page fault raised by a guest access on core `c`.
    fn page_fault(&mut self, c: usize, tid: u32, pf: PageFault) {
        let Some(task) = self.tasks.get(&tid) else { return };
        let mmid = task.mm;
        let Some(mm) = self.mms.get_mut(&mmid) else { return };
        let res = mm.fault(
            &mut self.mem.phys,
            pf.addr,
            pf.access == Access::Write,
            pf.access == Access::Exec,
        );
        let mut cost = self.fault_fp;
        let r = match res {
            Ok(r) => r,
            Err(e) => {
                self.fail(SimError::OutOfMemory(e.to_string()));
                return;
            }
        };
        match r {
            Fault::Mapped => {
                cost += self.zero_fp;
                self.kstats.page_faults += 1;
            }
            Fault::MappedHuge => {
                cost += 512 * self.zero_fp;
                self.kstats.page_faults += 1;
                self.kstats.huge_page_faults += 1;
            }
            Fault::CowBroken => {
                cost += self.zero_fp;
                self.kstats.cow_faults += 1;
                self.charge(c, cost);
                // ptep_clear_flush: other CPUs may cache the read-only PTE.
                let page = pf.addr & !0xfff;
                self.flush_tlb_mm_range(c, mmid, page, page + 4096, 12, false, Reason::Cow);
                return;
            }
            Fault::Spurious => {
                self.kstats.spurious_faults += 1;
                cost += self.mem.invlpg(c, pf.addr);
            }
            Fault::Segv => {
                let rip = self.tasks.get(&tid).map_or(0, |t| t.cpu.rip);
                let what = if pf.protection { "protection violation" } else { "page not mapped" };
                let report = format!(
                    "segmentation fault: {} at address {:#x}, rip {:#x} ({what})",
                    pf.access, pf.addr, rip
                );
                self.force_signal(c, tid, sig::SIGSEGV, Some(report));
                return;
            }
        }
        self.charge(c, cost);
    }

    /// tlb_finish_mmu: flushes the gathered range of `mmid` from core `c`, then frees
    /// the pages and page tables (only after the flush: stale translations may still
    /// reach them until then).
    pub(crate) fn finish_gather(&mut self, c: usize, mmid: u32, g: Gather, reason: Reason) {
        if !g.is_empty() {
            let stride = if g.huge { 21 } else { 12 };
            let freed = g.freed_tables();
            self.flush_tlb_mm_range(c, mmid, g.start, g.end, stride, freed, reason);
        }
        for p in g.pages {
            self.mem.phys.put(p);
        }
        for t in g.tables {
            self.mem.phys.put(t);
        }
    }

    /// flush_tlb_mm: the whole address space, from core `c`.
    pub(crate) fn flush_tlb_mm(&mut self, c: usize, mmid: u32, freed_tables: bool, reason: Reason) {
        self.flush_tlb_mm_range(c, mmid, 0, FLUSH_ALL, 12, freed_tables, reason);
    }

    /// Delivers a fatal signal caused by the task itself: a handler runs if installed,
    /// otherwise the whole process dies.
    pub(crate) fn force_signal(&mut self, c: usize, tid: u32, s: u32, report: Option<String>) {
        let handler = self
            .tasks
            .get(&tid)
            .and_then(|t| self.sighands.get(&t.sighand))
            .map_or(0, |h| h[s as usize].handler);
        if handler > 1 && self.deliver_signal(c, tid, s) {
            return;
        }
        self.kill_process(c, tid, s, report);
    }

    /// Terminates the thread group of `tid` with signal `s`.
    pub(crate) fn kill_process(&mut self, c: usize, tid: u32, s: u32, report: Option<String>) {
        let Some(tgid) = self.tasks.get(&tid).map(|t| t.tgid) else { return };
        if tgid == self.init_pid && self.outcome.is_none() {
            self.outcome = Some(Outcome::Signaled { sig: s, report });
        }
        self.exit_group(c, tid, s as i32, true);
    }

    /// Reads user memory of `tid`'s mm on core `c`, faulting pages in as needed.
    pub(crate) fn read_user(
        &mut self,
        c: usize,
        tid: u32,
        va: u64,
        buf: &mut [u8],
    ) -> Result<(), ()> {
        self.mem.select(c);
        for _ in 0..64 {
            match self.mem.read_virt(va, buf) {
                Ok(()) => {
                    self.charge_copy(c, buf.len());
                    return Ok(());
                }
                Err(pf) => self.kernel_fault(c, tid, pf)?,
            }
        }
        Err(())
    }

    /// Writes user memory of `tid`'s mm on core `c`, faulting pages in as needed.
    pub(crate) fn write_user(&mut self, c: usize, tid: u32, va: u64, buf: &[u8]) -> Result<(), ()> {
        self.mem.select(c);
        for _ in 0..64 {
            match self.mem.write_virt(va, buf) {
                Ok(()) => {
                    self.charge_copy(c, buf.len());
                    return Ok(());
                }
                Err(pf) => self.kernel_fault(c, tid, pf)?,
            }
        }
        Err(())
    }

    fn charge_copy(&mut self, c: usize, n: usize) {
        let cost = fp(n as f64 / self.copy_bpc);
        self.charge(c, cost);
    }

    /// A fault taken by a kernel access to user memory (copy_{from,to}_user).
    fn kernel_fault(&mut self, c: usize, tid: u32, pf: PageFault) -> Result<(), ()> {
        let mmid = self.tasks.get(&tid).ok_or(())?.mm;
        let mm = self.mms.get_mut(&mmid).ok_or(())?;
        let r = mm.fault(&mut self.mem.phys, pf.addr, pf.access == Access::Write, false);
        self.mem.select(c);
        match r {
            Ok(Fault::Segv) | Err(_) => Err(()),
            Ok(Fault::Spurious) => {
                let cost = self.mem.invlpg(c, pf.addr);
                self.charge(c, cost);
                Ok(())
            }
            Ok(Fault::CowBroken) => {
                self.kstats.cow_faults += 1;
                self.charge(c, self.fault_fp + self.zero_fp);
                let page = pf.addr & !0xfff;
                self.flush_tlb_mm_range(c, mmid, page, page + 4096, 12, false, Reason::Cow);
                self.mem.select(c);
                Ok(())
            }
            Ok(Fault::Mapped | Fault::MappedHuge) => {
                self.kstats.page_faults += 1;
                self.charge(c, self.fault_fp + self.zero_fp);
                Ok(())
            }
        }
    }

    /// Reads a NUL-terminated string of at most `max` bytes from user memory.
    pub(crate) fn read_cstr(
        &mut self,
        c: usize,
        tid: u32,
        va: u64,
        max: usize,
    ) -> Result<Vec<u8>, i64> {
        let mut out = Vec::new();
        let mut a = va;
        while out.len() < max {
            let n = ((4096 - (a & 0xfff)) as usize).min(max - out.len());
            let mut buf = vec![0u8; n];
            self.read_user(c, tid, a, &mut buf).map_err(|()| crate::fs::errno::EFAULT)?;
            if let Some(z) = buf.iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..z]);
                return Ok(out);
            }
            out.extend_from_slice(&buf);
            a += n as u64;
        }
        Err(crate::fs::errno::ERANGE)
    }

    /// The guest's captured stdout and stderr (empty unless the run captured them).
    pub fn take_output(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.files.capture.take().map(|c| (c.stdout, c.stderr)).unwrap_or_default()
    }

    /// Statistics of the run so far.
    pub fn stats(&self) -> RunStats {
        RunStats::collect(self)
    }

    /// The trace, if one was recorded.
    pub fn trace(&self) -> Option<&Trace> {
        self.trace.as_ref()
    }

    /// Length of a scheduler tick (fp).
    pub(crate) fn tick_fp(&self) -> u64 {
        self.tick_fp
    }
}
