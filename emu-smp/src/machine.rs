//! The machine: cores with local clocks, the shared memory system and decoded-code cache,
//! and the Linux model's process state. `Machine::run` is the deterministic multi-core
//! loop: the busy core with the smallest local time runs next, for at most one quantum.

use crate::config::RunConfig;
use crate::fs::{FdTable, Files, Object};
use crate::loader::{self, LoadError};
use crate::mm::{Fault, Gather, Mm};
use crate::profile::Profile;
use crate::rng::SimRng;
use crate::stats::{CoreStats, KernelStats, RunStats};
use crate::task::{SigAction, State, Task, Wait};
use emu_core::{Access, CodeCache, Cpu, Exception, Exit, PageFault};
use emu_mmu::MemSystem;
use std::collections::{BTreeMap, VecDeque};
use thiserror::Error;

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

/// Per-core scheduler state.
#[derive(Clone, Debug, Default)]
pub struct CoreState {
    /// Local time (1/256 cycles).
    pub time_fp: u64,
    /// Task running here.
    pub current: Option<u32>,
    /// Counters.
    pub stats: CoreStats,
}

/// Signal numbers used by the kernel model.
pub mod sig {
    #![allow(missing_docs)]
    pub const SIGILL: u32 = 4;
    pub const SIGTRAP: u32 = 5;
    pub const SIGABRT: u32 = 6;
    pub const SIGBUS: u32 = 7;
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
    pub(crate) tasks: BTreeMap<u32, Task>,
    pub(crate) mms: BTreeMap<u32, Mm>,
    pub(crate) fdtables: BTreeMap<u32, FdTable>,
    pub(crate) files: Files,
    pub(crate) sighands: BTreeMap<u32, Vec<SigAction>>,
    pub(crate) cores: Vec<CoreState>,
    pub(crate) runq: VecDeque<(u32, u64)>,
    pub(crate) rng: SimRng,
    pub(crate) next_id: u32,
    pub(crate) init_pid: u32,
    pub(crate) outcome: Option<Outcome>,
    pub(crate) exe_path: String,
    pub(crate) argv: Vec<Vec<u8>>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    quantum_fp: u64,
    max_insns: Option<u64>,
    pub(crate) kstats: KernelStats,
    pub(crate) syscall_fp: u64,
    pub(crate) fault_fp: u64,
    pub(crate) zero_fp: u64,
    pub(crate) copy_bpc: f64,
    pub(crate) warned: std::collections::BTreeSet<u64>,
    pub(crate) futex_seq: u64,
}

pub(crate) fn fp(cycles: f64) -> u64 {
    (cycles * 256.0).round().max(0.0) as u64
}

impl Machine {
    /// Builds a machine and loads the program as its first process.
    pub fn new(cfg: &RunConfig) -> Result<Machine, SimError> {
        let profile = cfg.profile.clone();
        let mut mem = MemSystem::new(cfg.cores, cfg.memory_mib, profile.mem_params());
        let mut rng = SimRng::new(cfg.seed);
        let mut mm = Mm::new(1, &mut mem.phys).map_err(|e| SimError::OutOfMemory(e.to_string()))?;
        mm.thp = cfg.thp;
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
        let mut m = Machine {
            code: CodeCache::new(profile.insn_costs()),
            syscall_fp: fp(k.syscall_cycles),
            fault_fp: fp(k.page_fault_cycles),
            zero_fp: fp(k.page_zero_cycles),
            copy_bpc: k.copy_bytes_per_cycle,
            mem,
            profile,
            tasks: BTreeMap::new(),
            mms: BTreeMap::new(),
            fdtables: BTreeMap::new(),
            files,
            sighands: BTreeMap::new(),
            cores: vec![CoreState::default(); cfg.cores],
            runq: VecDeque::new(),
            rng,
            next_id: pid + 1,
            init_pid: pid,
            outcome: None,
            exe_path: cfg.exe_path.clone(),
            argv: cfg.argv.clone(),
            uid: cfg.uid,
            gid: cfg.gid,
            quantum_fp: cfg.quantum_cycles << 8,
            max_insns: cfg.max_instructions,
            kstats: KernelStats::default(),
            warned: Default::default(),
            futex_seq: 0,
        };
        m.mms.insert(1, mm);
        m.fdtables.insert(1, fds);
        m.sighands.insert(1, vec![SigAction::default(); 65]);
        m.tasks.insert(pid, task);
        m.runq.push_back((pid, 0));
        Ok(m)
    }

    /// Runs until the first process exits or the simulation stops.
    pub fn run(&mut self) -> Outcome {
        while self.outcome.is_none() {
            self.step();
        }
        self.outcome.clone().unwrap_or(Outcome::Exited(0))
    }

    /// Simulated nanoseconds at a local time.
    pub(crate) fn ns_of(&self, time_fp: u64) -> u64 {
        ((time_fp as f64 / 256.0) / self.profile.ghz()) as u64
    }

    /// Local time (fp) of a simulated nanosecond instant.
    pub(crate) fn fp_of_ns(&self, ns: u64) -> u64 {
        (ns as f64 * self.profile.ghz() * 256.0) as u64
    }

    fn step(&mut self) {
        self.dispatch_runnable();
        // The busy core with the smallest local time runs next (ties: lowest index).
        let busy = self
            .cores
            .iter()
            .enumerate()
            .filter(|(_, c)| c.current.is_some())
            .min_by_key(|(i, c)| (c.time_fp, *i))
            .map(|(i, c)| (i, c.time_fp));
        let next_timer = self.next_timer();
        match (busy, next_timer) {
            (Some((c, t)), Some(w)) if w <= t => self.fire_timers(w),
            (Some((c, _)), _) => self.run_core(c),
            (None, Some(w)) => self.fire_timers(w),
            (None, None) => {
                let blocked: Vec<String> = self
                    .tasks
                    .values()
                    .filter(|t| matches!(t.state, State::Blocked(_)))
                    .map(|t| format!("tid {} {:?}", t.tid, t.state))
                    .collect();
                self.outcome = Some(Outcome::Error(SimError::Deadlock(blocked.join(", "))));
            }
        }
    }

    /// Earliest time (fp) at which a blocked task's timer expires.
    fn next_timer(&self) -> Option<u64> {
        self.tasks
            .values()
            .filter_map(|t| match &t.state {
                State::Blocked(Wait::Sleep { until_ns, .. }) => Some(*until_ns),
                State::Blocked(Wait::Futex { until_ns: Some(u), .. }) => Some(*u),
                _ => None,
            })
            .min()
            .map(|ns| self.fp_of_ns(ns))
    }

    /// Wakes every task whose timer expires at or before `at` (fp).
    fn fire_timers(&mut self, at: u64) {
        let now_ns = self.ns_of(at);
        let due: Vec<u32> = self
            .tasks
            .values()
            .filter(|t| match &t.state {
                State::Blocked(Wait::Sleep { until_ns, .. }) => *until_ns <= now_ns,
                State::Blocked(Wait::Futex { until_ns: Some(u), .. }) => *u <= now_ns,
                _ => false,
            })
            .map(|t| t.tid)
            .collect();
        for tid in due {
            let ret = match self.tasks.get(&tid).map(|t| &t.state) {
                Some(State::Blocked(Wait::Futex { .. })) => -crate::fs::errno::ETIMEDOUT,
                _ => 0,
            };
            self.wake(tid, ret, at);
        }
        // Idle cores advance to the wake-up time.
        for c in self.cores.iter_mut().filter(|c| c.current.is_none()) {
            c.time_fp = c.time_fp.max(at);
        }
    }

    /// Makes a blocked task runnable with `ret` as its system call result, ready at `at`.
    pub(crate) fn wake(&mut self, tid: u32, ret: i64, at: u64) {
        if let Some(t) = self.tasks.get_mut(&tid) {
            if matches!(t.state, State::Blocked(_)) {
                if !matches!(t.state, State::Blocked(Wait::Io)) {
                    t.cpu.gpr[0] = ret as u64;
                }
                t.state = State::Runnable;
                self.runq.push_back((tid, at));
            }
        }
    }

    /// Places runnable tasks on idle cores they may run on.
    fn dispatch_runnable(&mut self) {
        let mut rest = VecDeque::new();
        while let Some((tid, ready)) = self.runq.pop_front() {
            let Some(t) = self.tasks.get(&tid) else { continue };
            if t.state != State::Runnable {
                continue;
            }
            // Prefer the core it last ran on, then the idle core with the lowest time.
            let last = t.last_cpu;
            let pick = if self.cores[last].current.is_none() && t.affinity[last] {
                Some(last)
            } else {
                self.cores
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| c.current.is_none() && t.affinity[*i])
                    .min_by_key(|(i, c)| (c.time_fp, *i))
                    .map(|(i, _)| i)
            };
            match pick {
                Some(c) => self.switch_to(c, tid, ready),
                None => rest.push_back((tid, ready)),
            }
        }
        self.runq = rest;
    }

    /// Starts `tid` on idle core `c` (context switch in).
    fn switch_to(&mut self, c: usize, tid: u32, ready: u64) {
        let core_time = self.cores[c].time_fp.max(ready);
        let Some(t) = self.tasks.get_mut(&tid) else { return };
        let mm = t.mm;
        t.state = State::Running(c);
        t.last_cpu = c;
        t.cpu.time_fp = core_time;
        self.cores[c].current = Some(tid);
        self.cores[c].time_fp = core_time;
        self.cores[c].stats.context_switches += 1;
        self.switch_mm(c, mm);
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.cpu.tsc_aux = c as u32;
            t.cpu.cpuid = self.profile.cpuid(c as u32, self.cores.len() as u32);
        }
    }

    /// Loads `mm` on core `c` (switch_mm_irqs_off): a CR3 write with the mm's PCID.
    pub(crate) fn switch_mm(&mut self, c: usize, mm: u32) {
        let Some(m) = self.mms.get(&mm) else { return };
        let root = m.root.addr();
        let cur = self.mem.core(c);
        if cur.root == root {
            return;
        }
        // Single-mm PCID use for now: PCID = mm id (bounded), flushed on load.
        let pcid = (mm % 4095 + 1) as u16;
        let cost = self.mem.write_cr3(c, root, pcid, false);
        self.cores[c].time_fp += cost;
    }

    /// Takes `tid` off core `c`, leaving the core idle.
    pub(crate) fn deschedule(&mut self, c: usize) {
        if let Some(tid) = self.cores[c].current.take() {
            if let Some(t) = self.tasks.get_mut(&tid) {
                self.cores[c].time_fp = self.cores[c].time_fp.max(t.cpu.time_fp);
            }
        }
    }

    fn run_core(&mut self, c: usize) {
        let Some(tid) = self.cores[c].current else { return };
        let start = self.cores[c].time_fp;
        let until = start + self.quantum_fp;
        let Some(task) = self.tasks.get_mut(&tid) else {
            self.cores[c].current = None;
            return;
        };
        self.mem.select(c);
        let insn_before = task.cpu.instret;
        let exit = emu_core::run(&mut task.cpu, &mut self.mem, &mut self.code, until);
        let ran = task.cpu.instret - insn_before;
        self.cores[c].time_fp = task.cpu.time_fp;
        self.cores[c].stats.instructions += ran;
        self.kstats.instructions += ran;
        if let Some(limit) = self.max_insns {
            if self.kstats.instructions >= limit {
                self.outcome = Some(Outcome::Error(SimError::InstructionLimit(limit)));
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
                self.outcome = Some(Outcome::Error(SimError::Unsupported {
                    rip,
                    bytes: hex.join(" "),
                    disasm: dis,
                }));
            }
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
                self.outcome = Some(Outcome::Error(SimError::OutOfMemory(e.to_string())));
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
                self.flush_page_everywhere(mmid, pf.addr);
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
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.cpu.time_fp += cost;
        }
    }

    /// Removes a changed translation from every core running the mm (a one-page shootdown
    /// done synchronously; the flush engine replaces this for multi-core runs).
    pub(crate) fn flush_page_everywhere(&mut self, mmid: u32, va: u64) {
        let Some(root) = self.mms.get(&mmid).map(|m| m.root.addr()) else { return };
        for c in 0..self.cores.len() {
            if self.mem.core(c).root == root {
                self.mem.invlpg(c, va);
            }
        }
    }

    /// Flushes a range of an mm on every core that has it loaded, then frees the
    /// gathered pages (tlb_finish_mmu).
    pub(crate) fn finish_gather(&mut self, mmid: u32, g: Gather) {
        if !g.is_empty() {
            if let Some(root) = self.mms.get(&mmid).map(|m| m.root.addr()) {
                let pages = (g.end - g.start) / 4096;
                for c in 0..self.cores.len() {
                    if self.mem.core(c).root == root {
                        let pcid = self.mem.core(c).pcid;
                        if pages <= 33 && !g.huge {
                            let mut va = g.start;
                            while va < g.end {
                                self.mem.invlpg(c, va);
                                va += 4096;
                            }
                        } else {
                            self.mem.invpcid(c, 1, pcid, 0);
                        }
                    }
                }
            }
        }
        for p in g.pages {
            self.mem.phys.put(p);
        }
        for t in g.tables {
            self.mem.phys.put(t);
        }
    }

    /// Delivers a fatal signal caused by the task itself: the whole process dies (no
    /// handler delivery for synchronous faults yet).
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
        if tgid == self.init_pid {
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
                    self.charge_copy(tid, buf.len());
                    return Ok(());
                }
                Err(pf) => self.kernel_fault(tid, pf)?,
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
                    self.charge_copy(tid, buf.len());
                    return Ok(());
                }
                Err(pf) => self.kernel_fault(tid, pf)?,
            }
        }
        Err(())
    }

    fn charge_copy(&mut self, tid: u32, n: usize) {
        let cost = fp(n as f64 / self.copy_bpc);
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.cpu.time_fp += cost;
        }
    }

    /// A fault taken by a kernel access to user memory (copy_{from,to}_user).
    fn kernel_fault(&mut self, tid: u32, pf: PageFault) -> Result<(), ()> {
        let mmid = self.tasks.get(&tid).ok_or(())?.mm;
        let mm = self.mms.get_mut(&mmid).ok_or(())?;
        match mm.fault(&mut self.mem.phys, pf.addr, pf.access == Access::Write, false) {
            Ok(Fault::Segv) | Err(_) => Err(()),
            Ok(Fault::Spurious) => {
                let c = self.mem.selected();
                self.mem.invlpg(c, pf.addr);
                Ok(())
            }
            Ok(Fault::CowBroken) => {
                self.kstats.cow_faults += 1;
                self.flush_page_everywhere(mmid, pf.addr);
                let cost = self.fault_fp + self.zero_fp;
                if let Some(t) = self.tasks.get_mut(&tid) {
                    t.cpu.time_fp += cost;
                }
                Ok(())
            }
            Ok(Fault::Mapped | Fault::MappedHuge) => {
                self.kstats.page_faults += 1;
                let cost = self.fault_fp + self.zero_fp;
                if let Some(t) = self.tasks.get_mut(&tid) {
                    t.cpu.time_fp += cost;
                }
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

    /// Statistics of the run so far.
    pub fn stats(&self) -> RunStats {
        RunStats::collect(self)
    }
}
