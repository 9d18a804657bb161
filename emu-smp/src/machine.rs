//! The machine: cores with local clocks and per-CPU kernel state, the shared memory
//! system and decoded-code cache, and the Linux model's process state.
//!
//! There is one event loop ([`Machine::run`]), and nothing re-enters it. Each core is a
//! state machine ([`KState`]): idle in a C-state (no current task), running user code,
//! in a kernel path whose next step is due, spinning on a lock, or waiting for the acks
//! of its TLB flushes (csd_lock_wait). Every core has a next-event time; the loop takes
//! the earliest (ties: timers first, then the lowest core), and
//!
//! - a kernel step, interrupt, tick or scheduling decision happens only at the global
//!   minimum, so kernel actions (the only ones that touch shared kernel state or send
//!   interrupts) execute in simulated-time order;
//! - user code alone may run ahead of the minimum: a core runs guest instructions up to
//!   the earliest time another core (or a timer) could act, plus the smallest IPI
//!   latency, and no instruction starts at or after that horizon (`emu_core::run`).
//!   Any interrupt another core sends afterwards therefore arrives no earlier than the
//!   start of the receiver's last instruction: it is taken at an instruction boundary,
//!   as on hardware, never in the receiver's past.
//!
//! This is the clock invariant of DESIGN.md. It holds by construction; it is also checked
//! whenever an interrupt or a wake-up is queued (`late_events` in the statistics, and a
//! debug assertion).

use crate::apic::{Csd, PendingIpi};
use crate::config::RunConfig;
use crate::fs::{FdTable, Files, Object};
use crate::loader::{self, LoadError};
use crate::mm::{Fault, Gather, Mm};
use crate::profile::Profile;
use crate::rng::SimRng;
use crate::stats::{CoreStats, KernelStats, RunStats, Violation};
pub use crate::strategy::Strategy;
use crate::task::{SigAction, SigInfo, State, Task, Wait};
use crate::tlbflush::{CpuTlbState, Reason, FLUSH_ALL};
use crate::trace::Trace;
use emu_core::{Access, CodeCache, Cpu, Exit, PageFault};
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
    /// CPUs spun in `mm_get_cid` holding their runqueue locks with no progress for the
    /// hard-lockup watchdog's threshold, or with nothing left that could free a CID.
    #[error("mm_cid live lock: {cpus} spinning in mm_get_cid holding their runqueue locks for {spun_ns} ns ({state})")]
    MmCidLivelock {
        /// The spinning CPUs and their tasks.
        cpus: String,
        /// How long the first has spun.
        spun_ns: u64,
        /// The mm's CID state, the fixup walk's position and the CPUs waiting on locks.
        state: String,
    },
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

/// The idle state a core sits in.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    /// When it went idle.
    pub since_fp: u64,
    /// Index of the C-state the governor chose.
    pub state: usize,
}

/// Longest stretch (cycles) a core runs without yielding to the event loop when no
/// other core can act; it bounds how far `--max-insns` can overshoot.
const SOLO_SLICE_CYCLES: u64 = 1 << 20;

/// What a core with a current task is doing (DESIGN.md, "Kernel paths take time").
///
/// ```text
/// User --syscall/fault--> Ready (a kernel path, next step due at the core's clock)
/// Ready --step done--> Ready            (other cores advance between steps)
/// Ready --lock busy--> Spin | task sleeps -> schedule -> other task / idle (lazy)
/// Ready --flushes in flight--> Acks     (takes interrupts)
/// Spin --granted--> Ready;  Acks --all acked and read--> Ready
/// Ready --path done--> User
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub enum KState {
    /// Running user code.
    #[default]
    User,
    /// In a kernel path; its next step is due at the core's clock.
    Ready,
    /// Spinning on a lock another CPU holds, since `since_fp`; interrupts are taken
    /// meanwhile when `irqs` (spin_lock) and held back otherwise (spin_lock_irq).
    Spin {
        /// The lock.
        key: crate::lock::LockKey,
        /// When the spinning began.
        since_fp: u64,
        /// Interrupts enabled while spinning.
        irqs: bool,
    },
    /// csd_lock_wait: waiting for the acks of the flushes in flight (interrupts on).
    Acks(AckWait),
    /// Spinning in `mm_get_cid` until a CID of address space `mm` is free: in the
    /// schedule-in of the current task, under this CPU's runqueue lock, interrupts off;
    /// or (`fork`) in sched_mm_cid_fork for the new task, under mm_cid.lock.
    CidSpin {
        /// The address space.
        mm: u32,
        /// When the spinning began.
        since_fp: u64,
        /// The task resumes a kernel path (else it returns to user mode).
        ready: bool,
        /// A fork's allocation for its child: its path's next step takes the CID.
        fork: bool,
        /// A CID was freed while the host had this vCPU preempted: it looks again when
        /// it next runs, from this time on (u64::MAX: nothing to look at).
        retry_fp: u64,
    },
}

/// A CPU polling the csd lines of its cross-CPU calls (csd_lock_wait), interrupts on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AckWait {
    /// When the wait began.
    pub start_fp: u64,
    /// Interrupts taken while waiting: (begin, end) local times.
    pub irqs: Vec<(u64, u64)>,
    /// When the last csd line has been read, once every target has acked.
    pub done_fp: Option<u64>,
}

/// One cross-CPU call this CPU waits for: its target, and when the target released the
/// csd (csd_unlock), once it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckSlot {
    /// The target CPU.
    pub target: usize,
    /// Local time of the release on the target.
    pub acked_fp: Option<u64>,
}

/// The cores' next-event times, recomputed only for the cores whose state changed.
#[derive(Debug)]
struct EventQueue {
    events: Vec<u64>,
    dirty: Vec<usize>,
    dirty_flag: Vec<bool>,
}

impl EventQueue {
    fn new(n: usize) -> Self {
        EventQueue { events: vec![u64::MAX; n], dirty: (0..n).collect(), dirty_flag: vec![true; n] }
    }
}

/// One CPU's hardware state: its clock, its local APIC's pending interrupts, its idle
/// state.
#[derive(Clone, Debug, Default)]
pub struct CpuHw {
    /// Local time (1/256 cycles) while no task runs here; the running task's clock is
    /// authoritative otherwise (see [`Machine::now`]).
    pub time_fp: u64,
    /// Start of the last atomic action the core committed to (an instruction, a kernel
    /// step, an interrupt handler): nothing may be queued to arrive before it.
    pub committed_fp: u64,
    /// Interrupts on their way, ordered by arrival (the local APIC's IRR).
    pub ipis: Vec<PendingIpi>,
    /// Idle, and since when.
    pub idle: Option<Idle>,
    /// Lengths (cycles) of the last idle periods, newest last, for the governor.
    pub idle_history: VecDeque<u64>,
}

/// One CPU's kernel state: what runs there, its runqueue, cross-CPU calls, TLB state.
#[derive(Clone, Debug, Default)]
pub struct CpuKernel {
    /// Task running here.
    pub current: Option<u32>,
    /// What the current task is doing.
    pub kstate: KState,
    /// TIF_NEED_RESCHED of the current task: reschedule at the next return to user mode.
    pub need_resched: bool,
    /// A reschedule IPI is on its way: it sets `need_resched` when it arrives.
    pub resched_ipi: bool,
    /// Under `--preempt lazy`, a tick found `need_resched` (TIF_NEED_RESCHED_LAZY) still
    /// set and upgraded it: the kernel path running here may now be preempted.
    pub resched_forced: bool,
    /// When the current task's runtime was last accounted (exec_start).
    pub exec_start_fp: u64,
    /// The fair runqueue's min_vruntime: its average when it has no entity.
    pub min_vruntime: i64,
    /// Runnable tasks waiting for this core.
    pub runq: VecDeque<u32>,
    /// Queued cross-CPU function calls (call_single_queue).
    pub callq: VecDeque<Csd>,
    /// The cross-CPU calls of the flushes in flight, in the order the wait polls them.
    pub ack_slots: Vec<AckSlot>,
    /// TLB flushes this CPU started and has not completed.
    pub inflight: Vec<crate::tlbflush::InFlight>,
    /// Next scheduler tick (local time).
    pub next_tick_fp: u64,
    /// Linux cpu_tlbstate.
    pub tlb: CpuTlbState,
    /// Pages in this CPU's per-CPU page list (negative: owed to it by the next refill).
    pub pcp_pages: i64,
    /// New pages in this CPU's LRU batch.
    pub lru_batch: u32,
    /// The `active_mm` of the context running here (or last run, until the next context
    /// switch): a user task's own mm, or the mm a kernel thread borrows (lazy TLB).
    /// Distinct from `tlb.loaded_mm`, which leave_mm and flushes change behind it.
    pub active_mm: u32,
    /// That context is a user task (false: a kernel thread, the idle task, or a task
    /// past exit_mm).
    pub user_ctx: bool,
    /// The kernel thread here holds an mm_count reference on `active_mm`
    /// (mmgrab_lazy_tlb under `--lazy-mm refcount`).
    pub lazy_ref: bool,
    /// When this CPU's kworker next has deferrable work (0: not queued yet).
    pub next_kwork_fp: u64,
    /// Page tables waiting for this CPU's walker-sync IPIs to be acked.
    pub sync_free: Vec<crate::walker::SyncFree>,
    /// Reused page tables whose walker sync is this CPU's task's synchronize_rcu (its
    /// path's next step sleeps in it).
    pub sync_rcu: Vec<emu_mmu::Pfn>,
}

/// The hardware: CPUs (clocks, local APICs, idle states), the memory system and the
/// decoded-code cache.
pub struct Hardware {
    /// Per-CPU state.
    pub(crate) cpus: Vec<CpuHw>,
    /// Memory, TLBs, caches.
    pub(crate) mem: MemSystem,
    /// Decoded guest code.
    pub(crate) code: CodeCache<MemSystem>,
    /// IPIs sent so far (the order of same-time arrivals).
    pub(crate) ipi_seq: u64,
}

/// The Linux model's state: tasks, address spaces, files, signal handlers, per-CPU
/// kernel state, locks, the strategy, and the costs its paths charge.
pub struct Kernel {
    /// Per-CPU state.
    pub(crate) cpus: Vec<CpuKernel>,
    /// CPUs spinning in `mm_get_cid` (`KState::CidSpin`).
    pub(crate) cid_spinners: usize,
    pub(crate) strategy: Strategy,
    pub(crate) tasks: BTreeMap<u32, Task>,
    /// Armed timers of blocked tasks: (expiry ns, tid). Entries of tasks woken
    /// otherwise stay until they reach the front and are found disarmed.
    pub(crate) timers: std::collections::BTreeSet<(u64, u32)>,
    /// The processes' timers (alarm, setitimer, timer_create), by process.
    pub(crate) ptimers: BTreeMap<u32, crate::itimer::ProcTimers>,
    /// Armed process timers: (expiry ns, process, timer id). Entries of timers set again
    /// or deleted stay until they reach the front and are found stale.
    pub(crate) ptimer_q: BTreeSet<(u64, u32, i32)>,
    pub(crate) mms: BTreeMap<u32, Mm>,
    pub(crate) fdtables: BTreeMap<u32, FdTable>,
    /// The working directories (host paths, canonical), by `Task::fs`.
    pub(crate) cwds: BTreeMap<u32, std::path::PathBuf>,
    pub(crate) files: Files,
    pub(crate) sighands: BTreeMap<u32, Vec<SigAction>>,
    pub(crate) rng: SimRng,
    pub(crate) next_id: u32,
    pub(crate) next_ctx_id: u64,
    /// The id of the next address space an execve builds (a range of its own: the ids
    /// of forked address spaces are their first tasks' ids).
    pub(crate) next_exec_mm: u32,
    pub(crate) init_pid: u32,
    /// How the first process ended, once it has: the run's outcome when the processes
    /// it left behind are gone too.
    pub(crate) init_exit: Option<Outcome>,
    pub(crate) exe_path: String,
    /// The first program's bytes (what its /proc/self/exe opens).
    pub(crate) program: std::sync::Arc<[u8]>,
    /// The files execve has read, by identity, while an address space still runs them:
    /// processes running one program share one copy of it ([`crate::exec::ImageKey`]).
    pub(crate) exec_images: BTreeMap<crate::exec::ImageKey, std::sync::Weak<[u8]>>,
    pub(crate) argv: Vec<Vec<u8>>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// The profile's kernel-path costs, in fixed point.
    pub(crate) costs: crate::profile::KernelCosts,
    pub(crate) copy_bpc: f64,
    pub(crate) warned: BTreeSet<u64>,
    /// Resource limits of the processes that changed theirs or inherited changed ones.
    pub(crate) rlimits: BTreeMap<u32, crate::rlimit::Limits>,
    /// The limits every other process has (the first process's at boot).
    pub(crate) boot_rlimits: crate::rlimit::Limits,
    /// System V shared memory segments ([`crate::sysvshm`]).
    pub(crate) shm: crate::sysvshm::ShmIds,
    pub(crate) futex_seq: u64,
    pub(crate) locks: crate::lock::Locks,
    pub(crate) kdata: crate::kdata::KernelData,
    pub(crate) last_global_asid: u16,
    pub(crate) global_asid_used: BTreeSet<u16>,
    pub(crate) global_asid_freed: Vec<u16>,
    /// Lockless walkers: page-table generations and per-CPU walk trackers.
    pub(crate) walker: crate::walker::Walkers,
    /// The RCU grace-period machine (table freeing under `--walker-sync rcu`).
    pub(crate) rcu: crate::rcu::Rcu,
}

/// What the run measures and checks: counters, shootdown records, cpumask samples, the
/// coherence oracle's findings, the trace.
pub struct Probes {
    /// Per-CPU counters.
    pub(crate) cpus: Vec<CoreStats>,
    pub(crate) kstats: KernelStats,
    pub(crate) lazy_mm: crate::lazymm::LazyMmStats,
    pub(crate) walker_sync: crate::walker::WalkerSyncStats,
    pub(crate) records: crate::records::Records,
    pub(crate) cpumask_samples: crate::records::Samples<(u64, u32, u32)>,
    /// Oracle violations: all counted, the first [`VIOLATIONS_KEPT`] kept.
    pub(crate) violations: Vec<Violation>,
    pub(crate) violation_count: u64,
    /// Per-mm concurrency ID counters.
    pub(crate) mm_cid: crate::mmcid::MmCidStats,
    /// Coherence-oracle bookkeeping on.
    pub(crate) oracle: bool,
    pub(crate) trace: Option<Trace>,
    /// Interrupts or wake-ups queued to arrive before their receiver's last committed
    /// action (the clock invariant says there are none).
    pub(crate) late_events: u64,
}

/// Signal numbers used by the kernel model.
pub mod sig {
    #![allow(missing_docs)]
    pub const SIGILL: u32 = 4;
    pub const SIGTRAP: u32 = 5;
    pub const SIGBUS: u32 = 7;
    pub const SIGFPE: u32 = 8;
    pub const SIGKILL: u32 = 9;
    pub const SIGSEGV: u32 = 11;
    pub const SIGPIPE: u32 = 13;
    pub const SIGALRM: u32 = 14;
    pub const SIGCHLD: u32 = 17;
    pub const SIGCONT: u32 = 18;
    pub const SIGSTOP: u32 = 19;
    pub const SIGURG: u32 = 23;
    pub const SIGVTALRM: u32 = 26;
    pub const SIGPROF: u32 = 27;
    pub const SIGWINCH: u32 = 28;
    pub const SIGSYS: u32 = 31;
}

/// A machine running one guest program: hardware, kernel and probes, and the event loop
/// that drives them.
pub struct Machine {
    pub(crate) hw: Hardware,
    pub(crate) k: Kernel,
    pub(crate) probes: Probes,
    pub(crate) profile: Profile,
    pub(crate) outcome: Option<Outcome>,
    quantum_fp: u64,
    tick_fp: u64,
    /// Where the tick grid starts ([`crate::sched::tick_phase`]): ticks fall at
    /// `tick_phase_fp + n * tick_fp`.
    tick_phase_fp: u64,
    max_insns: Option<u64>,
    /// The event loop's view of the cores.
    sched: EventQueue,
    pub(crate) seed: u64,
    /// The CPU whose event is being run (None while timers fire): the waker of the
    /// tasks woken meanwhile.
    pub(crate) acting: Option<usize>,
    /// The fair class's slice ([`crate::sched::base_slice_ns`]), in 1/256 cycles.
    pub(crate) slice_fp: i64,
    /// jiffies at time 0 ([`crate::tlbflush::boot_jiffies`]).
    pub(crate) jiffies0: u64,
    /// The host's rotation of the vCPUs, in a virtual machine whose vCPUs share their
    /// physical CPUs ([`crate::host`]); None on bare metal.
    pub(crate) host: Option<crate::host::HostShare>,
}

/// Oracle violations kept in the statistics (all are counted).
pub(crate) const VIOLATIONS_KEPT: usize = 10_000;

/// Buckets of the futex hash table (kernel/futex/core.c `futex_init`:
/// `roundup_pow_of_two(256 * num_possible_cpus())`).
pub(crate) fn futex_buckets(cpus: usize) -> u32 {
    (256 * cpus as u32).next_power_of_two()
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
        let mut kdata =
            crate::kdata::KernelData::boot(&mut mem.phys, cfg.cores, futex_buckets(cfg.cores));
        kdata.line(&mut mem.phys, crate::kdata::KObj::MmStruct(1));
        let mut mm = Mm::new(&mut mem.phys, 2, cfg.cores).map_err(oom)?;
        mm.thp = cfg.thp;
        // init_new_context at boot: the first trim is due HZ jiffies on.
        let jiffies0 = crate::tlbflush::boot_jiffies(profile.kernel.hz, cfg.seed);
        mm.ctx.next_trim_jiffies = jiffies0 + u64::from(profile.kernel.hz);
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
            fs: 1,
            sighand: 1,
            state: State::Runnable,
            clear_child_tid: 0,
            robust_list: 0,
            saved_sigmask: None,
            sigmask: 0,
            pending: 0,
            sigq: Vec::new(),
            syscall_nr: None,
            trap: Default::default(),
            exit_status: 0,
            exit_signal: sig::SIGCHLD,
            rseq: None,
            rseq_notify: false,
            rseq_event: false,
            mm_cid: Default::default(),
            cid_mm: 0,
            affinity: vec![true; cfg.cores],
            last_cpu: 0,
            comm: comm.chars().take(15).collect(),
            altstack: (0, 2, 0),
            kpath: None,
            se: crate::sched::Entity::default(),
            nice: 0,
            exit: None,
        };
        let k = &profile.kernel;
        // The quantum never exceeds the smallest IPI latency.
        let quantum = (cfg.quantum_cycles as f64).min(profile.apic.delivery_same_socket_cycles);
        let hw = Hardware {
            cpus: vec![CpuHw::default(); cfg.cores],
            mem,
            code: CodeCache::new(profile.insn_costs()),
            ipi_seq: 0,
        };
        let kernel = Kernel {
            cpus: vec![CpuKernel::default(); cfg.cores],
            cid_spinners: 0,
            strategy: cfg.strategy,
            tasks: BTreeMap::new(),
            timers: Default::default(),
            ptimers: BTreeMap::new(),
            ptimer_q: BTreeSet::new(),
            mms: BTreeMap::new(),
            fdtables: BTreeMap::new(),
            // The guest starts where emu was started, as a child process would.
            cwds: BTreeMap::from([(
                1,
                std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/")),
            )]),
            files,
            sighands: BTreeMap::new(),
            rng,
            next_id: pid + 1,
            next_ctx_id: 3,
            next_exec_mm: crate::exec::FIRST_EXEC_MM,
            init_pid: pid,
            init_exit: None,
            exe_path: cfg.exe_path.clone(),
            exec_images: crate::exec::ImageKey::of(std::path::Path::new(&cfg.exe_path))
                .filter(|k| k.size == cfg.program.len() as u64)
                .map(|k| (k, std::sync::Arc::downgrade(&cfg.program)))
                .into_iter()
                .collect(),
            program: cfg.program.clone(),
            argv: cfg.argv.clone(),
            uid: cfg.uid,
            gid: cfg.gid,
            costs: crate::profile::KernelCosts::new(k),
            copy_bpc: k.copy_bytes_per_cycle,
            warned: BTreeSet::new(),
            rlimits: BTreeMap::new(),
            boot_rlimits: crate::rlimit::boot_limits(cfg.memory_mib as u64),
            shm: Default::default(),
            futex_seq: 0,
            locks: Default::default(),
            kdata,
            last_global_asid: crate::tlbflush::TLB_NR_DYN_ASIDS,
            global_asid_used: BTreeSet::new(),
            global_asid_freed: Vec::new(),
            walker: crate::walker::Walkers::new(cfg.cores),
            rcu: Default::default(),
        };
        let probes = Probes {
            cpus: vec![CoreStats::default(); cfg.cores],
            kstats: KernelStats::default(),
            lazy_mm: crate::lazymm::LazyMmStats::default(),
            walker_sync: Default::default(),
            records: crate::records::Records::new(&cfg.records)
                .map_err(|e| SimError::Load(format!("cannot write the shootdown records: {e}")))?,
            cpumask_samples: Default::default(),
            violations: Vec::new(),
            violation_count: 0,
            mm_cid: Default::default(),
            oracle: cfg.oracle,
            trace: cfg.trace.then(Trace::default),
            late_events: 0,
        };
        let profile_ghz = profile.ghz();
        let tick_fp = fp(f64::from(profile.cpu.freq_mhz) * 1e6 / f64::from(k.hz)).max(1);
        let mut m = Machine {
            quantum_fp: fp(quantum).max(256),
            tick_fp,
            tick_phase_fp: crate::sched::tick_phase(tick_fp, cfg.seed),
            profile,
            hw,
            k: kernel,
            probes,
            outcome: None,
            max_insns: cfg.max_instructions,
            sched: EventQueue::new(cfg.cores),
            seed: cfg.seed,
            acting: None,
            slice_fp: fp(crate::sched::base_slice_ns(cfg.cores) as f64 * profile_ghz) as i64,
            jiffies0,
            host: None,
        };
        m.host = crate::host::HostShare::new(
            cfg.cores,
            m.profile.host.vcpus_per_pcpu,
            fp(m.profile.host.slice_ns as f64 * profile_ghz),
            cfg.seed,
        );
        if m.host.is_some() {
            // The steal-time areas are per-CPU data, there from boot.
            for c in 0..cfg.cores {
                m.k.kdata.line(&mut m.hw.mem.phys, crate::kdata::KObj::StealTime(c));
            }
        }
        m.k.mms.insert(INIT_MM, init_mm);
        m.k.mms.insert(1, mm);
        m.k.fdtables.insert(1, fds);
        m.k.sighands.insert(1, vec![SigAction::default(); 65]);
        m.k.tasks.insert(pid, task);
        m.mm_cid_fork(0, None, pid);
        // Every core starts idle in init_mm.
        let kernel_root = m.k.mms.get(&INIT_MM).map_or(0, |m| m.root.addr());
        for c in 0..cfg.cores {
            m.k.cpus[c].next_tick_fp = m.tick_phase_fp;
            m.hw.mem.write_cr3(c, kernel_root, 1, false);
            m.k.cpus[c].tlb.ctxs[0] = (1, 1);
            m.enter_idle(c);
        }
        m.enqueue(pid, 0, 0);
        Ok(m)
    }

    /// Runs until the first process and the processes it left behind have exited, or
    /// the simulation stops: the event loop.
    pub fn run(&mut self) -> Outcome {
        while self.outcome.is_none() {
            if !self.step() {
                if let Some(o) = self.k.init_exit.clone() {
                    // Orphans asleep for good (on a pipe no one will write, a child that
                    // never comes): the host would leave them behind; the run ends.
                    self.outcome = Some(o);
                    break;
                }
                let blocked: Vec<String> = self
                    .k
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
            self.k.cpus[c]
                .current
                .and_then(|t| self.k.tasks.get(&t))
                .is_none_or(|t| t.cpu.time_fp == self.hw.cpus[c].time_fp),
            "core {c}'s clock lost track of its task's"
        );
        self.hw.cpus[c].time_fp
    }

    /// Advances core `c`'s clock by `cost`.
    #[inline]
    pub(crate) fn charge(&mut self, c: usize, cost: u64) {
        self.touch(c);
        match self.k.cpus[c].current.and_then(|t| self.k.tasks.get_mut(&t)) {
            Some(t) => {
                t.cpu.time_fp += cost;
                self.hw.cpus[c].time_fp = t.cpu.time_fp;
            }
            None => self.hw.cpus[c].time_fp += cost,
        }
    }

    /// Moves core `c`'s clock forward to at least `t`.
    pub(crate) fn advance(&mut self, c: usize, t: u64) {
        let now = self.now(c);
        if t > now {
            self.charge(c, t - now);
        }
    }

    /// Marks core `k`'s next event for recomputation (its clock, state, task, runqueue or
    /// pending interrupts changed).
    #[inline]
    pub(crate) fn touch(&mut self, k: usize) {
        if !self.sched.dirty_flag[k] {
            self.sched.dirty_flag[k] = true;
            self.sched.dirty.push(k);
        }
    }

    /// The time of core `k`'s next event, or `u64::MAX` when it waits for another core:
    /// running user code or a kernel step due now; an interrupt it will take (arrivals
    /// count from its clock); its next tick while busy; the end of its ack wait.
    fn next_event(&self, k: usize) -> u64 {
        let e = self.next_event_bare(k);
        match &self.host {
            // A preempted vCPU does nothing until the host runs it again.
            Some(h) if e != u64::MAX => h.runs_from(k, e),
            _ => e,
        }
    }

    /// [`Machine::next_event`] on bare metal.
    fn next_event_bare(&self, k: usize) -> u64 {
        let (hw, core) = (&self.hw.cpus[k], &self.k.cpus[k]);
        let now = hw.time_fp;
        let irq = hw.ipis.first().map_or(u64::MAX, |i| i.arrival_fp.max(now));
        if core.current.is_none() {
            // Idle, or woken with a task to switch to.
            return if core.runq.is_empty() { irq } else { now };
        }
        let tick = core.next_tick_fp.max(now);
        match &core.kstate {
            KState::User | KState::Ready => now,
            KState::Spin { irqs: true, .. } => irq.min(tick),
            KState::Spin { irqs: false, .. } => u64::MAX,
            KState::Acks(w) => irq.min(tick).min(w.done_fp.unwrap_or(u64::MAX)),
            // Interrupts off: only a CID released elsewhere lets it go on (looked at
            // when a preempted vCPU runs again).
            KState::CidSpin { retry_fp, .. } => *retry_fp,
        }
    }

    /// Processes the earliest pending event: a timer, a core's user run or kernel step,
    /// an interrupt, the end of a wait. Returns false when nothing can happen any more.
    pub(crate) fn step(&mut self) -> bool {
        while let Some(k) = self.sched.dirty.pop() {
            self.sched.dirty_flag[k] = false;
            self.sched.events[k] = self.next_event(k);
        }
        debug_assert!(
            (0..self.hw.cpus.len()).all(|k| self.sched.events[k] == self.next_event(k)),
            "a core's next event changed without touch()"
        );
        let mut best = (u64::MAX, usize::MAX);
        let mut second = u64::MAX;
        for (k, &e) in self.sched.events.iter().enumerate() {
            if e < best.0 {
                second = best.0;
                best = (e, k);
            } else if e < second {
                second = e;
            }
        }
        if let Some(f) = self.rcu_next_fqs() {
            // The GP kthread's FQS scan: before the cores and timers due at that time.
            if f <= best.0 && self.next_timer().is_none_or(|w| f <= w) {
                let reported = self.rcu_fqs();
                // With no core and no timer left to act, a scan that reports nobody
                // would be followed by the same scan forever: the grace period waits
                // for CPUs that will never pass a quiescent state.
                return reported || best.0 != u64::MAX || self.next_timer().is_some();
            }
            second = second.min(f);
        }
        if let Some(w) = self.next_timer() {
            if w <= best.0 {
                if self.fire_timers(w) == 0 {
                    // A timer that fires nothing would be chosen again forever.
                    self.fail(SimError::Deadlock(format!("timer at {w} fp woke no task")));
                    return false;
                }
                return true;
            }
            second = second.min(w);
        }
        let (t, k) = best;
        if self.k.cid_spinners > 0 && self.cid_watchdog(t) {
            return false;
        }
        if t == u64::MAX {
            return false;
        }
        self.acting = Some(k);
        self.run_event(k, t, second);
        self.acting = None;
        self.touch(k);
        true
    }

    /// Runs core `k`'s event at time `t` (the global minimum; `others` is the earliest
    /// time any other core or timer can act).
    fn run_event(&mut self, k: usize, t: u64, others: u64) {
        if self.host.is_some() {
            self.host_enter(k);
            if t > self.now(k) && !matches!(self.k.cpus[k].kstate, KState::CidSpin { .. }) {
                // A vCPU the host preempted: its clock moves over the stolen time (a
                // halted one handles what reached it, or switches to the task woken on
                // it, only now).
                self.advance(k, t);
            }
        }
        if self.k.cpus[k].current.is_none() {
            self.hw.cpus[k].committed_fp = t;
            // Interrupts that reached the idle CPU; or, woken with a task, the ones
            // that arrived while it left its idle state, then the switch to the task.
            self.handle_ipis(k, t);
            if !self.k.cpus[k].runq.is_empty() {
                self.schedule(k);
            }
            return;
        }
        match self.k.cpus[k].kstate {
            KState::User => self.run_core(k, others),
            KState::Ready => self.run_kernel(k),
            KState::Spin { .. } => {
                // An interrupt or the tick: the CPU has spun until then.
                self.hw.cpus[k].committed_fp = t;
                self.advance(k, t);
                self.take_interrupts(k, t);
            }
            KState::Acks(_) => self.ack_wait_event(k, t),
            KState::CidSpin { mm, .. } => {
                // A preempted vCPU back in its window, with a CID freed meanwhile.
                if let KState::CidSpin { retry_fp, .. } = &mut self.k.cpus[k].kstate {
                    *retry_fp = u64::MAX;
                }
                self.cid_retry(k, mm, t);
            }
        }
    }

    /// Interrupts core `k` takes at local time `upto` while in the kernel with interrupts
    /// on: IPIs that have arrived, then the tick if it is due (the lookups of broadcast
    /// invalidations that reached its TLBs meanwhile are charged first). Returns true if
    /// it took any interrupt.
    pub(crate) fn take_interrupts(&mut self, k: usize, upto: u64) -> bool {
        if self.k.cpus[k].current.is_some() {
            // Broadcast invalidations the core's TLBs processed meanwhile (INVLPGB).
            let now = self.now(k);
            let busy = self.hw.mem.take_tlb_busy(k, now, true);
            if busy > 0 {
                self.charge(k, busy);
            }
        }
        let due = self.hw.cpus[k].ipis.first().is_some_and(|i| i.arrival_fp <= upto);
        self.handle_ipis(k, upto);
        if self.k.cpus[k].current.is_some() && self.k.cpus[k].next_tick_fp <= self.now(k) {
            self.tick(k);
            return true;
        }
        due
    }

    /// The timer of blocked task `tid` (ns), if it is still armed.
    fn armed_timer(&self, tid: u32) -> Option<u64> {
        match self.k.tasks.get(&tid).map(|t| &t.state) {
            Some(State::Blocked(w)) => w.until_ns(),
            _ => None,
        }
    }

    /// Earliest time (fp) at which a blocked task's timer expires. Timers of tasks woken
    /// otherwise (or gone) are dropped from the queue here.
    pub(crate) fn next_timer(&mut self) -> Option<u64> {
        let mut next = None;
        while let Some(&(until, tid)) = self.k.timers.first() {
            if self.armed_timer(tid) == Some(until) {
                next = Some(self.fp_of_ns(until));
                break;
            }
            self.k.timers.pop_first();
        }
        let p = self.next_ptimer().map(|e| self.fp_of_ns(e));
        match (next, p) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Wakes every task whose timer expires at or before `at` (fp) and fires the process
    /// timers due; returns how many.
    fn fire_timers(&mut self, at: u64) -> usize {
        let mut n = 0;
        // Compared in the clock's own units, exactly as next_timer computed them (a
        // round trip through nanoseconds could miss the timer and spin).
        while let Some(&(until, tid)) = self.k.timers.first() {
            if self.fp_of_ns(until) > at {
                break;
            }
            self.k.timers.pop_first();
            if self.armed_timer(tid) != Some(until) {
                continue;
            }
            let ret = match self.k.tasks.get(&tid).map(|t| &t.state) {
                Some(State::Blocked(Wait::Futex { .. })) => -crate::fs::errno::ETIMEDOUT,
                _ => 0,
            };
            self.wake(tid, ret, at);
            n += 1;
        }
        n + self.fire_ptimers(at)
    }

    /// Makes a blocked task runnable with `ret` as its system call result, ready at `at`.
    pub(crate) fn wake(&mut self, tid: u32, ret: i64, at: u64) {
        let waker = self.k.tasks.get(&tid).map_or(0, |t| t.last_cpu);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            if matches!(t.state, State::Blocked(_)) {
                if !matches!(
                    t.state,
                    State::Blocked(
                        Wait::Io | Wait::Lock(_) | Wait::Rcu { .. } | Wait::CidMutex { .. }
                    )
                ) {
                    t.cpu.gpr[0] = ret as u64;
                }
                t.state = State::Runnable;
                self.enqueue(tid, at, waker);
            }
        }
    }

    /// Core `c`'s current task is in user mode and `c` is the next event: take the
    /// interrupts and tick that are due, do the work of the return to user mode, then
    /// run guest code up to the horizon (the earliest time `others` any other core or
    /// timer can act, plus the smallest IPI latency). A system call, fault or exception
    /// starts a kernel path whose first step runs when it is the next event.
    fn run_core(&mut self, c: usize, others: u64) {
        let t = self.now(c);
        self.hw.cpus[c].committed_fp = t;
        if self.take_interrupts(c, t) {
            // What the handlers did (an ack, a wake-up) may let other cores act sooner:
            // the horizon is computed anew.
            return;
        }
        let Some(tid) = self.k.cpus[c].current else { return };
        if self.k.cpus[c].kstate != KState::User || !self.exit_to_user_mode(c, tid) {
            return;
        }
        let now = self.now(c);
        if self.host.as_ref().is_some_and(|h| !h.runs(c, now)) {
            // The return to user mode took the vCPU past its window: the guest code
            // runs in the next one.
            return;
        }
        let mut until = if others == u64::MAX {
            now + (SOLO_SLICE_CYCLES << 8)
        } else {
            others + self.quantum_fp
        };
        until = until.min(now + (SOLO_SLICE_CYCLES << 8));
        if let Some(ipi) = self.hw.cpus[c].ipis.first() {
            until = until.min(ipi.arrival_fp.max(now + 1));
        }
        until = until.min(self.k.cpus[c].next_tick_fp.max(now + 1));
        if let Some(h) = &self.host {
            // The host preempts the vCPU at the end of its window.
            until = until.min(h.window_end(c, now).max(now + 1));
        }
        let Some(task) = self.k.tasks.get_mut(&tid) else {
            self.deschedule(c);
            return;
        };
        self.hw.mem.select(c);
        let insn_before = task.cpu.instret;
        let exit = emu_core::run(&mut task.cpu, &mut self.hw.mem, &mut self.hw.code, until);
        self.hw.cpus[c].time_fp = task.cpu.time_fp;
        // The last instruction started before the horizon (or is the one that exited).
        self.hw.cpus[c].committed_fp = task.cpu.time_fp.min(until);
        let ran = task.cpu.instret - insn_before;
        self.probes.cpus[c].instructions += ran;
        self.probes.kstats.instructions += ran;
        if self.hw.mem.has_stale_uses() {
            self.record_violations();
        }
        if self.hw.mem.has_refills() {
            for (_, record) in self.hw.mem.take_refills() {
                self.probes.records.refill(record as usize);
            }
        }
        if let Some(limit) = self.max_insns {
            if self.probes.kstats.instructions >= limit {
                self.fail(SimError::InstructionLimit(limit));
                return;
            }
        }
        let path = match exit {
            Exit::Budget | Exit::Pause | Exit::BlockEnd | Exit::Halt => return,
            Exit::Syscall => crate::path::KPath::Syscall,
            Exit::Int80 => crate::path::KPath::Int80,
            Exit::PageFault(pf) => crate::path::KPath::Fault(pf, crate::mmpath::FaultStep::Start),
            Exit::Exception(e) => crate::path::KPath::Trap(e),
            Exit::Unsupported => {
                let rip = self.k.tasks.get(&tid).map_or(0, |t| t.cpu.rip);
                let mut bytes = [0u8; 15];
                let n = self.read_user(c, tid, rip, &mut bytes).map_or(0, |()| 15);
                let (dis, len) = emu_core::disassemble(&bytes[..n], rip);
                let hex: Vec<String> =
                    bytes[..len.min(n)].iter().map(|b| format!("{b:02x}")).collect();
                self.fail(SimError::Unsupported { rip, bytes: hex.join(" "), disasm: dis });
                return;
            }
        };
        self.enter_kernel(c, tid, path);
    }

    /// exit_to_user_mode on core `c` for its current task `tid`: a killed task starts
    /// exiting, a reschedule the tick asked for happens, a task no longer allowed here
    /// moves, pending signals are delivered. True when `tid` goes on in user mode here.
    pub(crate) fn exit_to_user_mode(&mut self, c: usize, tid: u32) -> bool {
        let Some(t) = self.k.tasks.get(&tid) else { return false };
        if t.exit.is_some() {
            self.enter_kernel(c, tid, crate::path::KPath::Exit(crate::path::ExitStep::Start));
            return false;
        }
        if !t.affinity.get(c).copied().unwrap_or(false) {
            self.migrate_if_needed(c, tid);
            return false;
        }
        self.k.cpus[c].resched_forced = false;
        if std::mem::take(&mut self.k.cpus[c].need_resched) && !self.k.cpus[c].runq.is_empty() {
            self.preempt(c, tid);
            return false;
        }
        // A kworker whose work came due while the task was in the kernel runs first.
        self.kworker_run_if_due(c);
        let Some(t) = self.k.tasks.get(&tid) else { return false };
        // Signals that became pending while the task was elsewhere (in a syscall,
        // blocked, on its runqueue, or running when another CPU sent them).
        if t.pending & !t.sigmask != 0 {
            self.deliver_pending(c, tid);
            let still =
                self.k.cpus[c].current == Some(tid) && self.k.cpus[c].kstate == KState::User;
            if !(still
                && self.outcome.is_none()
                && self.k.tasks.get(&tid).is_some_and(|t| t.exit.is_none()))
            {
                return false;
            }
        } else if t.syscall_nr.is_some() || t.saved_sigmask.is_some() {
            self.no_signal_return(tid);
        }
        // resume_user_mode_work after the signals: rseq's ids, when they are due.
        if !self.rseq_notify_resume(c, tid) {
            return false;
        }
        // A kernel write to user memory here (a signal frame, the rseq ids) that broke a
        // copy-on-write page started a flush: its acks are waited for, as in the fault
        // the write took, before the task goes on in user mode.
        if !self.k.cpus[c].inflight.is_empty() || !self.k.cpus[c].ack_slots.is_empty() {
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.kpath = Some(crate::path::KPath::Return);
            }
            self.begin_ack_wait(c);
            return false;
        }
        true
    }

    /// Attaches time and strategy to the stale-translation uses the MMU saw.
    fn record_violations(&mut self) {
        for u in self.hw.mem.take_stale_uses() {
            self.probes.violation_count += 1;
            if self.probes.violations.len() >= VIOLATIONS_KEPT {
                continue;
            }
            let ns = self.ns_of(self.now(u.core));
            self.probes.violations.push(Violation {
                core: u.core,
                address: u.va,
                kind: u.kind,
                time_ns: ns,
                strategy: self.k.strategy.label(),
                detail: None,
            });
        }
    }

    /// tlb_finish_mmu: flushes the gathered range of `mmid` from core `c`; the pages and
    /// page tables are freed when the flush completes (stale translations may still
    /// reach them until then).
    pub(crate) fn finish_gather(&mut self, c: usize, mmid: u32, g: Gather, reason: Reason) {
        let (empty, freed) = (g.is_empty(), g.freed_tables());
        if empty {
            self.free_pages(c, g.pages);
            return;
        }
        let stride = if g.huge { 21 } else { 12 };
        self.flush_and_free(c, mmid, g.start, g.end, stride, freed, reason, (g.pages, g.tables));
    }

    /// flush_tlb_mm: the whole address space, from core `c`.
    pub(crate) fn flush_tlb_mm(&mut self, c: usize, mmid: u32, freed_tables: bool, reason: Reason) {
        self.flush_tlb_mm_range(c, mmid, 0, FLUSH_ALL, 12, freed_tables, reason);
    }

    /// force_sig_fault (kernel/signal.c `force_sig_info_to_task`): a signal the task
    /// caused. Blocked or ignored, it is unblocked and its action reset to the default,
    /// so it kills; with a handler it is queued and delivered on the way out (first,
    /// as next_signal takes synchronous signals first).
    pub(crate) fn force_signal(
        &mut self,
        c: usize,
        tid: u32,
        info: SigInfo,
        report: Option<String>,
    ) {
        let s = info.signo;
        let Some(t) = self.k.tasks.get(&tid) else { return };
        let (blocked, sh) = (t.sigmask & (1 << (s - 1)) != 0, t.sighand);
        let handler = self.k.sighands.get(&sh).map_or(0, |h| h[s as usize].handler);
        if handler > 1 && !blocked {
            self.queue_signal(tid, info);
            return;
        }
        self.kill_process(c, tid, s, report);
    }

    /// Terminates the thread group of `tid` with signal `s`.
    /// A thread already leaving with its group (a group exit or an execve's de_thread
    /// under way) takes no new fatal signal: the exit under way decides the status.
    pub(crate) fn kill_process(&mut self, c: usize, tid: u32, s: u32, report: Option<String>) {
        let Some(t) = self.k.tasks.get(&tid) else { return };
        if t.exit.is_some_and(|e| e.group) {
            return;
        }
        let tgid = t.tgid;
        if tgid == self.k.init_pid && self.k.init_exit.is_none() {
            self.k.init_exit = Some(Outcome::Signaled { sig: s, report });
        }
        self.exit_group(c, tid, s as i32, true);
    }

    /// Reads user memory of `tid`'s mm on core `c`, faulting pages in as needed
    /// (copy_from_user: page by page, so a large untouched buffer costs one fault per
    /// page, not a restart of the whole copy).
    pub(crate) fn read_user(
        &mut self,
        c: usize,
        tid: u32,
        va: u64,
        buf: &mut [u8],
    ) -> Result<(), ()> {
        self.hw.mem.select(c);
        let mut done = 0;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
            let mut tries = 0;
            loop {
                match self.hw.mem.read_virt(a, &mut buf[done..done + n]) {
                    Ok(()) => break,
                    Err(pf) if tries < 4 => self.kernel_fault(c, tid, pf)?,
                    Err(_) => return Err(()),
                }
                tries += 1;
            }
            done += n;
        }
        self.charge_copy(c, buf.len());
        Ok(())
    }

    /// Writes user memory of `tid`'s mm on core `c`, faulting pages in as needed
    /// (copy_to_user, page by page).
    pub(crate) fn write_user(&mut self, c: usize, tid: u32, va: u64, buf: &[u8]) -> Result<(), ()> {
        self.hw.mem.select(c);
        let mut done = 0;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
            let mut tries = 0;
            loop {
                match self.hw.mem.write_virt(a, &buf[done..done + n]) {
                    Ok(()) => break,
                    Err(pf) if tries < 4 => self.kernel_fault(c, tid, pf)?,
                    Err(_) => return Err(()),
                }
                tries += 1;
            }
            done += n;
        }
        self.charge_copy(c, buf.len());
        Ok(())
    }

    pub(crate) fn charge_copy(&mut self, c: usize, n: usize) {
        let cost = fp(n as f64 / self.k.copy_bpc);
        self.charge(c, cost);
    }

    /// A fault taken by a kernel access to user memory (copy_{from,to}_user).
    fn kernel_fault(&mut self, c: usize, tid: u32, pf: PageFault) -> Result<(), ()> {
        let mmid = self.k.tasks.get(&tid).ok_or(())?.mm;
        let mm = self.k.mms.get_mut(&mmid).ok_or(())?;
        let r = mm.fault(&mut self.hw.mem.phys, pf.addr, pf.access == Access::Write, false);
        self.hw.mem.select(c);
        match r {
            Ok(Fault::Segv | Fault::Sigbus) | Err(_) => Err(()),
            Ok(Fault::Spurious) => {
                let cost = self.hw.mem.invlpg(c, pf.addr);
                self.charge(c, cost);
                Ok(())
            }
            Ok(Fault::CowBroken) => {
                self.probes.kstats.cow_faults += 1;
                let k = self.k.costs;
                self.charge(c, k.fault_entry + k.vma_find + k.page_zero);
                self.alloc_pages(c, 1);
                self.settle_work(c, mmid);
                let page = pf.addr & !0xfff;
                self.flush_tlb_mm_range(c, mmid, page, page + 4096, 12, false, Reason::Cow);
                self.hw.mem.select(c);
                Ok(())
            }
            Ok(r @ (Fault::Mapped | Fault::MappedHuge)) => {
                self.probes.kstats.page_faults += 1;
                let k = self.k.costs;
                let pages = if r == Fault::MappedHuge { 512 } else { 1 };
                self.charge(c, k.fault_entry + k.vma_find + pages as u64 * k.page_zero);
                self.alloc_pages(c, pages);
                self.settle_work(c, mmid);
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
        Err(crate::fs::errno::ENAMETOOLONG)
    }

    /// The guest's captured stdout and stderr (empty unless the run captured them).
    pub fn take_output(&mut self) -> (Vec<u8>, Vec<u8>) {
        self.k.files.capture.take().map(|c| (c.stdout, c.stderr)).unwrap_or_default()
    }

    /// Statistics of the run: call once, at its end (the records still open are
    /// written out).
    pub fn stats(&mut self) -> RunStats {
        let kept = self.probes.records.finish();
        RunStats::collect(self, kept)
    }

    /// Why the records file could not be written, if it could not.
    pub fn records_error(&self) -> Option<String> {
        self.probes.records.error.clone()
    }

    /// The trace, if one was recorded.
    pub fn trace(&self) -> Option<&Trace> {
        self.probes.trace.as_ref()
    }

    /// Length of a scheduler tick (fp).
    pub(crate) fn tick_fp(&self) -> u64 {
        self.tick_fp
    }

    /// Ticks of the grid at or before local time `t` (fp).
    pub(crate) fn ticks_by(&self, t: u64) -> u64 {
        crate::sched::ticks_by(t, self.tick_fp, self.tick_phase_fp)
    }

    /// The first tick of the grid after local time `t` (fp). Every CPU's tick follows
    /// one grid, as tick_setup_sched_timer aligns them (no `skew_tick`).
    pub(crate) fn next_tick_after(&self, t: u64) -> u64 {
        self.tick_phase_fp + self.ticks_by(t) * self.tick_fp
    }
}
