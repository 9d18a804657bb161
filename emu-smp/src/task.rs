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
        /// Where to write the remaining time if interrupted (unused: sleeps are not
        /// interrupted).
        rem: u64,
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
    },
    /// Blocked on a pipe or stdin: retry the system call.
    Io,
    /// A vfork parent waiting for its child to exit.
    Vfork(u32),
    /// Asleep on a sleeping lock (rw-semaphore) inside a kernel path, uninterruptibly.
    Lock(crate::lock::LockKey),
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
    /// True when a signal (or a kill) ends the wait early: every wait but a lock's.
    pub fn interruptible(&self) -> bool {
        !matches!(self, Wait::Lock(_))
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
    /// Pending signals (thread-directed).
    pub pending: u64,
    /// Exit status (wait format) once a zombie.
    pub exit_status: i32,
    /// Signal to send the parent on exit (SIGCHLD for fork, 0 for threads).
    pub exit_signal: u32,
    /// rseq registration: (address, length, signature).
    pub rseq: Option<(u64, u32, u32)>,
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
}
