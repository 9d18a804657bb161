//! Tasks (Linux `task_struct`): one per guest thread, holding its register state while
//! it is not running and the kernel state attached to it.

use emu_core::Cpu;

/// Why a task is not runnable.
#[derive(Clone, Debug, PartialEq)]
pub enum Wait {
    /// nanosleep/clock_nanosleep until a simulated time (ns).
    Sleep {
        /// Wake-up time.
        until_ns: u64,
        /// Where to write the remaining time if a signal interrupts a relative sleep.
        rem: u64,
        /// TIMER_ABSTIME: an interrupted sleep is -ERESTARTNOHAND, not a restart block.
        abs: bool,
    },
    /// FUTEX_WAIT on a (mm, address) key, with a bitset and optional timeout.
    Futex {
        /// Address-space id (0 for shared futexes keyed by physical address).
        mm: u32,
        /// Futex word address (virtual, or physical for shared).
        key: u64,
        /// Wake bitset.
        bitset: u32,
        /// Timeout (simulated ns), if any.
        until_ns: Option<u64>,
        /// Order of arrival (wakes are FIFO).
        seq: u64,
    },
    /// wait4 for a child (pid, or -1 for any).
    Child {
        /// The pid argument.
        pid: i64,
        /// Status pointer.
        status: u64,
        /// Options.
        options: u64,
        /// Where wait4 writes the rusage (0: nowhere).
        ru: u64,
    },
    /// Blocked on a pipe or stdin: retry the system call.
    Io,
    /// rt_sigsuspend (kernel/signal.c `sigsuspend`): asleep with a temporary mask until
    /// a signal it does not block arrives.
    Signal,
    /// rt_sigtimedwait (kernel/signal.c `do_sigtimedwait`): asleep with the wanted
    /// signals unblocked until one of them (or another unblocked signal) arrives or the
    /// timeout expires; its kernel path then dequeues.
    Sigtimedwait {
        /// Timeout (simulated ns), if any.
        until_ns: Option<u64>,
        /// The mask before the call (`real_blocked`), restored when it returns.
        real_blocked: u64,
    },
    /// A vfork parent waiting for its child to exit or exec.
    Vfork(u32),
    /// execve's de_thread (fs/exec.c): killably asleep until every other thread of the
    /// group has exited; its kernel path then goes on.
    Exec,
    /// Asleep on a sleeping lock (rw-semaphore) inside a kernel path, uninterruptibly.
    Lock(crate::lock::LockKey),
    /// In synchronize_rcu inside a kernel path (wait_rcu_gp), uninterruptibly, since
    /// this time (1/256 cycles).
    Rcu {
        /// When the wait began.
        since_fp: u64,
    },
    /// In mutex_lock of an mm's `mm_cid.mutex` (a fork's registration or an exit),
    /// uninterruptibly, since this time (1/256 cycles), its owner off CPU mid-walk.
    CidMutex {
        /// The address space.
        mm: u32,
        /// When the wait began (the first sleeper is woken first).
        since_fp: u64,
    },
    /// In poll, select or epoll_wait (fs/select.c, fs/eventpoll.c): asleep on the wait
    /// queues of the files it polls until one of them reports a matching event, its
    /// timeout expires or a signal arrives; its kernel path then looks again.
    Poll {
        /// Timeout (simulated ns), if any.
        until_ns: Option<u64>,
        /// The wait queues it sleeps on, with the events that wake it (0: any).
        queues: Vec<(crate::poll::WaitQ, u32)>,
    },
}

impl Wait {
    /// True when a kill (a fatal signal, exit_group) ends the wait early: every wait but
    /// a lock's.
    pub fn interruptible(&self) -> bool {
        !matches!(self, Wait::Lock(_) | Wait::Rcu { .. } | Wait::CidMutex { .. })
    }

    /// True when a signal with a handler ends the wait (TASK_INTERRUPTIBLE sleeps): a
    /// vfork parent sleeps killable only (wait_for_vfork_done), and so does de_thread.
    pub fn signal_interruptible(&self) -> bool {
        !matches!(
            self,
            Wait::Lock(_) | Wait::Rcu { .. } | Wait::CidMutex { .. } | Wait::Vfork(_) | Wait::Exec
        )
    }

    /// The timer of the wait (simulated ns), if it has one.
    pub fn until_ns(&self) -> Option<u64> {
        match self {
            Wait::Sleep { until_ns, .. } => Some(*until_ns),
            Wait::Futex { until_ns, .. }
            | Wait::Poll { until_ns, .. }
            | Wait::Sigtimedwait { until_ns, .. } => *until_ns,
            _ => None,
        }
    }
}

/// How a task ends: its status in wait(2) format (exit code << 8, or the signal number),
/// and whether a signal ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitCause {
    /// wait(2) status.
    pub status: i32,
    /// Killed by a signal.
    pub signaled: bool,
    /// Part of its group's exit (zap_other_threads, from exit_group, a fatal signal or
    /// an execve's de_thread), not an exit(2) of its own.
    pub group: bool,
}

/// Scheduling state.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Ready to run, on some runqueue.
    Runnable,
    /// Running on a core.
    Running(usize),
    /// Blocked.
    Blocked(Wait),
    /// Exited, waiting to be reaped by its parent (processes) or already gone (threads).
    Zombie,
}

/// The fields of a `siginfo_t` after si_signo, si_errno and si_code (the union's
/// layouts in include/uapi/asm-generic/siginfo.h).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SigFields {
    /// Nothing more (SI_KERNEL).
    #[default]
    None,
    /// kill, tgkill, SIGPIPE: the sender's pid and uid.
    Kill {
        /// Sender's process id.
        pid: u32,
        /// Sender's uid.
        uid: u32,
    },
    /// SIGCHLD: the child, its uid, its status (exit code or signal) and CPU times.
    Chld {
        /// Child's process id.
        pid: u32,
        /// Child's uid.
        uid: u32,
        /// Exit code or signal number.
        status: i32,
    },
    /// A fault: the address.
    Fault {
        /// si_addr.
        addr: u64,
    },
    /// rt_sigqueueinfo: what the sender wrote after si_code (si_errno, then the union),
    /// kept as it was.
    User {
        /// si_errno.
        errno: i32,
        /// Bytes 16 to 128 of the siginfo.
        rest: [u8; 112],
    },
    /// A POSIX timer: its id, overrun count and sigev_value.
    Timer {
        /// si_tid (the timer id).
        id: i32,
        /// si_overrun.
        overrun: i32,
        /// si_value.
        value: u64,
        /// The timer's generation when the signal was queued (not part of the user
        /// siginfo): a signal of a timer set again or deleted since is dropped.
        seq: u32,
    },
}

/// A queued signal (struct kernel_siginfo).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigInfo {
    /// si_signo.
    pub signo: u32,
    /// si_code.
    pub code: i32,
    /// The union.
    pub fields: SigFields,
}

impl SigInfo {
    /// The 128-byte user `siginfo_t` (x86-64 layout).
    pub fn to_bytes(self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        match self.fields {
            SigFields::None => {}
            SigFields::User { errno, rest } => {
                b[4..8].copy_from_slice(&errno.to_le_bytes());
                b[16..].copy_from_slice(&rest);
            }
            SigFields::Kill { pid, uid } => {
                b[16..20].copy_from_slice(&pid.to_le_bytes());
                b[20..24].copy_from_slice(&uid.to_le_bytes());
            }
            SigFields::Chld { pid, uid, status } => {
                b[16..20].copy_from_slice(&pid.to_le_bytes());
                b[20..24].copy_from_slice(&uid.to_le_bytes());
                b[24..28].copy_from_slice(&status.to_le_bytes());
            }
            SigFields::Fault { addr } => b[16..24].copy_from_slice(&addr.to_le_bytes()),
            SigFields::Timer { id, overrun, value, .. } => {
                b[16..20].copy_from_slice(&id.to_le_bytes());
                b[20..24].copy_from_slice(&overrun.to_le_bytes());
                b[24..32].copy_from_slice(&value.to_le_bytes());
            }
        }
        b
    }
}

/// What the last trap left in the thread (`thread.trap_nr`, `error_code`, `cr2`),
/// which a signal frame's sigcontext reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Trap number (X86_TRAP_*).
    pub trapno: u64,
    /// Error code (for a page fault, the X86_PF_* bits as set_signal_archinfo leaves them).
    pub err: u64,
    /// Faulting address of the last page fault that raised a signal.
    pub cr2: u64,
}

/// A signal disposition (struct sigaction).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    /// Handler address, or 0 (SIG_DFL) / 1 (SIG_IGN).
    pub handler: u64,
    /// SA_* flags.
    pub flags: u64,
    /// sa_restorer.
    pub restorer: u64,
    /// Signals blocked during the handler.
    pub mask: u64,
}

/// One guest thread.
#[derive(Clone, Debug)]
pub struct Task {
    /// Thread id.
    pub tid: u32,
    /// Thread group (process) id.
    pub tgid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Register state (live on the core while running).
    pub cpu: Cpu,
    /// Address space.
    pub mm: u32,
    /// Descriptor table.
    pub files: u32,
    /// Working directory (`struct fs_struct`, shared by threads created with
    /// CLONE_FS): a key of `Kernel::cwds`.
    pub fs: u32,
    /// Signal handler table (shared within a thread group).
    pub sighand: u32,
    /// Scheduling state.
    pub state: State,
    /// CLONE_CHILD_CLEARTID address.
    pub clear_child_tid: u64,
    /// set_robust_list head.
    pub robust_list: u64,
    /// The signal mask to restore on the way out of ppoll, pselect6 or epoll_pwait,
    /// which sleep with the mask they were given (`saved_sigmask` with
    /// TIF_RESTORE_SIGMASK): a handler run on the way out saves this one in its frame.
    pub saved_sigmask: Option<u64>,
    /// Blocked signals.
    pub sigmask: u64,
    /// Pending signals (thread-directed): one bit per signal with an entry in `sigq`.
    pub pending: u64,
    /// The siginfo of each pending signal, in the order they were sent (one per
    /// standard signal, every one for real-time signals, as `legacy_queue` keeps them).
    pub sigq: Vec<SigInfo>,
    /// The number of the system call the task is in or returns from (`orig_ax`), for
    /// the restart rules of signal delivery; None after a fault or rt_sigreturn.
    pub syscall_nr: Option<u64>,
    /// The last trap's number, error code and address, for sigcontext.
    pub trap: TrapInfo,
    /// Exit status (wait format) once a zombie.
    pub exit_status: i32,
    /// Signal to send the parent on exit (SIGCHLD for fork, 0 for threads).
    pub exit_signal: u32,
    /// rseq registration: (address, length, signature).
    pub rseq: Option<(u64, u32, u32)>,
    /// The rseq ids must be written at the next return to user mode (TIF_NOTIFY_RESUME
    /// set by rseq_set_notify_resume: after registration, a preemption or other
    /// schedule-out, a migration, or a schedule that changed the task's CID; handled as
    /// __rseq_handle_notify_resume does).
    pub rseq_notify: bool,
    /// rseq_event_mask is not empty: the task was scheduled out, migrated or is getting
    /// a signal since a critical section last looked, so one it is in must abort.
    pub rseq_event: bool,
    /// Its concurrency ID (`struct sched_mm_cid`).
    pub mm_cid: crate::mmcid::TaskCid,
    /// The mm whose CID `mm_cid` holds (an exiting task keeps one after it dropped its
    /// mm, until its last schedule-out: as first merged, a switch back hands it one).
    pub cid_mm: u32,
    /// Allowed CPUs.
    pub affinity: Vec<bool>,
    /// CPU the task last ran on.
    pub last_cpu: usize,
    /// Command name.
    pub comm: String,
    /// Alternate signal stack (ss_sp, ss_flags, ss_size).
    pub altstack: (u64, u32, u64),
    /// The kernel path the task is in, when it is in one (running it, or asleep in it).
    pub kpath: Option<crate::path::KPath>,
    /// Set when the task must exit at its next return to user mode (exit, exit_group, a
    /// fatal signal to its thread group).
    pub exit: Option<ExitCause>,
    /// Its fair-class scheduling entity.
    pub se: crate::sched::Entity,
    /// Nice value (-20..=19), as setpriority sets it; recorded and reported, while the
    /// scheduler runs every task at the weight of nice 0.
    pub nice: i32,
}
