//! System calls (arch/x86/entry/syscalls/syscall_64.tbl numbering). Each returns a value
//! for RAX (negative errno on failure), blocks the task, or ends it.

use crate::fs::{errno::*, Object, Resolved};
use crate::machine::{sig, Machine};
use crate::mm::{page_up, Backing, Gather, Vma, VmaKind, PAGE, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::mmpath::{MmCall, MmOp};
use crate::path::Next;
use crate::signal::si;
use crate::task::{SigAction, SigFields, SigInfo, State, Wait};
use crate::tlbflush::Reason;

/// What a system call did.
pub(crate) enum Sys {
    /// Return this value in RAX.
    Ret(i64),
    /// Block the task; it completes when woken.
    Block(Wait),
    /// The task is gone (exit) or was already rescheduled.
    Done,
    /// Go on as a kernel path of several steps.
    Path(crate::path::KPath),
}

/// System call numbers.
#[allow(missing_docs)]
pub mod nr {
    pub const READ: u64 = 0;
    pub const WRITE: u64 = 1;
    pub const OPEN: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const STAT: u64 = 4;
    pub const FSTAT: u64 = 5;
    pub const LSTAT: u64 = 6;
    pub const POLL: u64 = 7;
    pub const LSEEK: u64 = 8;
    pub const MMAP: u64 = 9;
    pub const MPROTECT: u64 = 10;
    pub const MUNMAP: u64 = 11;
    pub const BRK: u64 = 12;
    pub const RT_SIGACTION: u64 = 13;
    pub const RT_SIGPROCMASK: u64 = 14;
    pub const RT_SIGRETURN: u64 = 15;
    pub const IOCTL: u64 = 16;
    pub const PREAD64: u64 = 17;
    pub const PWRITE64: u64 = 18;
    pub const READV: u64 = 19;
    pub const WRITEV: u64 = 20;
    pub const ACCESS: u64 = 21;
    pub const PIPE: u64 = 22;
    pub const SCHED_YIELD: u64 = 24;
    pub const MREMAP: u64 = 25;
    pub const MSYNC: u64 = 26;
    pub const MINCORE: u64 = 27;
    pub const MADVISE: u64 = 28;
    pub const DUP: u64 = 32;
    pub const DUP2: u64 = 33;
    pub const NANOSLEEP: u64 = 35;
    pub const PAUSE: u64 = 34;
    pub const GETITIMER: u64 = 36;
    pub const ALARM: u64 = 37;
    pub const SETITIMER: u64 = 38;
    pub const GETPID: u64 = 39;
    pub const SENDFILE: u64 = 40;
    pub const CLONE: u64 = 56;
    pub const FORK: u64 = 57;
    pub const VFORK: u64 = 58;
    pub const EXECVE: u64 = 59;
    pub const EXECVEAT: u64 = 322;
    pub const EXIT: u64 = 60;
    pub const WAIT4: u64 = 61;
    pub const KILL: u64 = 62;
    pub const UNAME: u64 = 63;
    pub const FCNTL: u64 = 72;
    pub const FLOCK: u64 = 73;
    pub const FSYNC: u64 = 74;
    pub const GETCWD: u64 = 79;
    pub const CHDIR: u64 = 80;
    pub const FCHDIR: u64 = 81;
    pub const READLINK: u64 = 89;
    pub const UMASK: u64 = 95;
    pub const GETTIMEOFDAY: u64 = 96;
    pub const GETRLIMIT: u64 = 97;
    pub const SETRLIMIT: u64 = 160;
    pub const GETPRIORITY: u64 = 140;
    pub const SETPRIORITY: u64 = 141;
    pub const MLOCK: u64 = 149;
    pub const MUNLOCK: u64 = 150;
    pub const MLOCKALL: u64 = 151;
    pub const MUNLOCKALL: u64 = 152;
    pub const FADVISE64: u64 = 221;
    pub const MLOCK2: u64 = 325;
    pub const GETRUSAGE: u64 = 98;
    pub const SYSINFO: u64 = 99;
    pub const TIMES: u64 = 100;
    pub const GETUID: u64 = 102;
    pub const GETGID: u64 = 104;
    pub const SETUID: u64 = 105;
    pub const SETGID: u64 = 106;
    pub const GETEUID: u64 = 107;
    pub const GETEGID: u64 = 108;
    pub const SETPGID: u64 = 109;
    pub const GETPPID: u64 = 110;
    pub const GETPGRP: u64 = 111;
    pub const SETSID: u64 = 112;
    pub const GETGROUPS: u64 = 115;
    pub const GETPGID: u64 = 121;
    pub const GETSID: u64 = 124;
    pub const SIGALTSTACK: u64 = 131;
    pub const PRCTL: u64 = 157;
    pub const ARCH_PRCTL: u64 = 158;
    pub const GETTID: u64 = 186;
    pub const TIME: u64 = 201;
    pub const FUTEX: u64 = 202;
    pub const SCHED_SETAFFINITY: u64 = 203;
    pub const SCHED_GETAFFINITY: u64 = 204;
    pub const GETDENTS64: u64 = 217;
    pub const SET_TID_ADDRESS: u64 = 218;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const CLOCK_GETRES: u64 = 229;
    pub const CLOCK_NANOSLEEP: u64 = 230;
    pub const EXIT_GROUP: u64 = 231;
    pub const TGKILL: u64 = 234;
    pub const OPENAT: u64 = 257;
    pub const NEWFSTATAT: u64 = 262;
    pub const READLINKAT: u64 = 267;
    pub const FACCESSAT: u64 = 269;
    pub const PSELECT6: u64 = 270;
    pub const PPOLL: u64 = 271;
    pub const SET_ROBUST_LIST: u64 = 273;
    pub const GET_ROBUST_LIST: u64 = 274;
    pub const DUP3: u64 = 292;
    pub const PIPE2: u64 = 293;
    pub const PRLIMIT64: u64 = 302;
    pub const GETCPU: u64 = 309;
    pub const GETRANDOM: u64 = 318;
    pub const MEMBARRIER: u64 = 324;
    pub const STATX: u64 = 332;
    pub const RSEQ: u64 = 334;
    pub const CLONE3: u64 = 435;
    pub const FACCESSAT2: u64 = 439;
    pub const TKILL: u64 = 200;
    pub const RT_SIGPENDING: u64 = 127;
    pub const RT_SIGTIMEDWAIT: u64 = 128;
    pub const RT_SIGQUEUEINFO: u64 = 129;
    pub const RT_SIGSUSPEND: u64 = 130;
    pub const RT_TGSIGQUEUEINFO: u64 = 297;
    pub const RESTART_SYSCALL: u64 = 219;
    pub const TIMER_CREATE: u64 = 222;
    pub const TIMER_SETTIME: u64 = 223;
    pub const TIMER_GETTIME: u64 = 224;
    pub const TIMER_GETOVERRUN: u64 = 225;
    pub const TIMER_DELETE: u64 = 226;
    pub const WAITID: u64 = 247;
    pub const VMSPLICE: u64 = 278;
}

/// The argument holding the sigset size of rt_sigsuspend, rt_sigpending and
/// rt_sigtimedwait.
fn n_sigsetsize(n: u64) -> usize {
    match n {
        nr::RT_SIGTIMEDWAIT => 3,
        _ => 1,
    }
}

/// Linux's CLOCK_REALTIME at simulated time zero: 2026-01-01T00:00:00Z.
pub const EPOCH_S: u64 = 1_767_225_600;

fn syscall_name(n: u64) -> &'static str {
    match n {
        41..=55 => "socket family",
        101 => "ptrace",
        _ => "",
    }
}

impl Machine {
    /// The system call the task on core `c` made: its entry, then the call. Calls that
    /// flush TLBs wait for the acks before returning (see [`crate::path`]).
    pub(crate) fn syscall(&mut self, c: usize, tid: u32) -> Next {
        self.charge(c, self.k.costs.syscall);
        let Some(t) = self.k.tasks.get(&tid) else { return Next::Gone };
        let g = &t.cpu.gpr;
        let nr = g[0];
        let a = [g[7], g[6], g[2], g[10], g[8], g[9]];
        self.probes.kstats.syscalls += 1;
        *self.probes.kstats.syscall_counts.entry(nr).or_insert(0) += 1;
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.syscall_nr = Some(nr);
        }
        let r = self.dispatch(c, tid, nr, a);
        self.sys_next(c, tid, r)
    }

    /// What a system call's result asks of its path.
    pub(crate) fn sys_next(&mut self, c: usize, tid: u32, r: Sys) -> Next {
        match r {
            Sys::Ret(v) => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.cpu.gpr[0] = v as u64;
                }
                self.user_or_gone(c, tid)
            }
            Sys::Block(w) => Next::Block(w),
            Sys::Done => self.user_or_gone(c, tid),
            Sys::Path(p) => Next::Then(p),
        }
    }

    /// A system call made with INT 0x80 from this 64-bit process (`do_int80_syscall_32`,
    /// IA32_EMULATION): the number in EAX from the ia32 table
    /// (arch/x86/entry/syscalls/syscall_32.tbl), the arguments in EBX, ECX, EDX, ESI,
    /// EDI and EBP, zero-extended. The calls whose ia32 form is the 64-bit one with 32-bit
    /// arguments are made; others are ENOSYS with a warning.
    pub(crate) fn syscall_ia32(&mut self, c: usize, tid: u32) -> Next {
        self.charge(c, self.k.costs.syscall);
        let Some(t) = self.k.tasks.get(&tid) else { return Next::Gone };
        let g = &t.cpu.gpr;
        let nr32 = g[0] as u32;
        let a = [g[3], g[1], g[2], g[6], g[7], g[5]].map(|r| u64::from(r as u32));
        self.probes.kstats.syscalls += 1;
        let nr = match nr32 {
            1 => Some(nr::EXIT),
            3 => Some(nr::READ),
            4 => Some(nr::WRITE),
            6 => Some(nr::CLOSE),
            20 => Some(nr::GETPID),
            224 => Some(nr::GETTID),
            252 => Some(nr::EXIT_GROUP),
            _ => None,
        };
        let r = match nr {
            Some(n) => self.dispatch(c, tid, n, a),
            None => {
                self.warn_once(
                    0x8000_0000 | u64::from(nr32),
                    format!("unsupported ia32 system call {nr32} (int 0x80); returning ENOSYS"),
                );
                Sys::Ret(-ENOSYS)
            }
        };
        self.sys_next(c, tid, r)
    }

    fn warn_once(&mut self, key: u64, msg: String) {
        if self.k.warned.insert(key) {
            eprintln!("emu: {msg}");
        }
    }

    pub(crate) fn dispatch(&mut self, c: usize, tid: u32, n: u64, a: [u64; 6]) -> Sys {
        use nr::*;
        let r = match n {
            // access_ok: a buffer that wraps or leaves user space faults.
            READ | PREAD64 | WRITE if !access_ok(a[1], a[2]) => -EFAULT,
            READ | PREAD64 if let Some(r) = self.sys_read_direct(c, tid, n, a) => return r,
            READ => return self.sys_read(c, tid, a[0] as i32, a[1], a[2], None),
            PREAD64 => return self.sys_read(c, tid, a[0] as i32, a[1], a[2], Some(a[3])),
            WRITE => return self.sys_write(c, tid, a[0] as i32, a[1], a[2]),
            READV => return self.sys_readv(c, tid, a[0] as i32, a[1], a[2]),
            WRITEV => return self.sys_writev(c, tid, a[0] as i32, a[1], a[2]),
            PWRITE64 => self.sys_pwrite64(c, tid, a),
            SENDFILE => return self.sys_sendfile(c, tid, a[0] as i32, a[1] as i32, a[2], a[3]),
            VMSPLICE => return self.sys_vmsplice(c, tid, a),
            OPEN => self.sys_openat(c, tid, -100, a[0], a[1] as u32),
            OPENAT => self.sys_openat(c, tid, a[0] as i32, a[1], a[2] as u32),
            CLOSE => self.sys_close(c, tid, a[0] as i32),
            STAT | LSTAT => self.sys_stat_path(c, tid, -100, a[0], a[1], n == STAT),
            // vfs_fstatat: AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH only.
            NEWFSTATAT if a[3] & !0x1900 != 0 => -EINVAL,
            NEWFSTATAT => {
                if a[3] & 0x1000 != 0
                    && self.read_cstr(c, tid, a[1], 4096).is_ok_and(|p| p.is_empty())
                {
                    self.sys_fstat(c, tid, a[0] as i32, a[2])
                } else {
                    self.sys_stat_path(c, tid, a[0] as i32, a[1], a[2], a[3] & 0x100 == 0)
                }
            }
            FSTAT => self.sys_fstat(c, tid, a[0] as i32, a[1]),
            STATX => self.sys_statx(c, tid, a),
            LSEEK => self.sys_lseek(tid, a[0] as i32, a[1] as i64, a[2] as u32),
            IOCTL => self.sys_ioctl(tid, a[0] as i32, a[1]),
            // do_faccessat: mode within S_IRWXO; flags AT_EACCESS, AT_SYMLINK_NOFOLLOW,
            // AT_EMPTY_PATH (faccessat2 only).
            ACCESS if a[1] & !7 != 0 => -EINVAL,
            FACCESSAT | FACCESSAT2 if a[2] & !7 != 0 => -EINVAL,
            FACCESSAT2 if a[3] & !0x1300 != 0 => -EINVAL,
            ACCESS => self.sys_access(c, tid, -100, a[0]),
            FACCESSAT | FACCESSAT2 => self.sys_access(c, tid, a[0] as i32, a[1]),
            // do_readlinkat: a buffer size that is not positive (as an int).
            READLINK if a[2] as i32 <= 0 => -EINVAL,
            READLINKAT if a[3] as i32 <= 0 => -EINVAL,
            READLINK => self.sys_readlink(c, tid, crate::exec::AT_FDCWD, a[0], a[1], a[2]),
            READLINKAT => self.sys_readlink(c, tid, a[0] as i32, a[1], a[2], a[3]),
            GETDENTS64 => self.sys_getdents64(c, tid, a[0] as i32, a[1], a[2]),
            GETCWD => self.sys_getcwd(c, tid, a[0], a[1]),
            CHDIR => self.sys_chdir(c, tid, a[0]),
            FCHDIR => self.sys_fchdir(tid, a[0] as i32),
            DUP => self.sys_dup(c, tid, a[0] as i32, 0, false, 0),
            DUP2 => {
                if a[0] == a[1] {
                    if self.fd(tid, a[0] as i32).is_some() {
                        a[0] as i64
                    } else {
                        -EBADF
                    }
                } else {
                    self.sys_dup(c, tid, a[0] as i32, a[1] as i32, true, 0)
                }
            }
            DUP3 => {
                if a[2] & !0o2000000 != 0 || a[0] as i32 == a[1] as i32 {
                    -EINVAL
                } else {
                    self.sys_dup(c, tid, a[0] as i32, a[1] as i32, true, a[2] as u32)
                }
            }
            FCNTL => return self.sys_fcntl(c, tid, a[0] as i32, a[1] as u32, a[2]),
            FLOCK => return self.sys_flock(c, tid, a[0] as i32, a[1] as u32),
            PIPE => self.sys_pipe(c, tid, a[0], 0),
            // O_CLOEXEC, O_NONBLOCK, O_DIRECT, O_NOTIFICATION_PIPE.
            PIPE2 if a[1] & !(0o2000000 | 0o4000 | 0o40000 | 0o40000000) != 0 => -EINVAL,
            PIPE2 => self.sys_pipe(c, tid, a[0], a[1] as u32),
            FSYNC | UMASK => 0o022 * i64::from(n == UMASK),
            MMAP => match check_mmap(a) {
                Err(e) => -e,
                // mmap_min_addr: only CAP_SYS_RAWIO (root) may map below it.
                Ok(()) if a[3] & 0x100010 != 0 && a[0] < crate::mm::MMAP_MIN && self.k.uid != 0 => {
                    -EPERM
                }
                Ok(()) => return self.mm_path(tid, MmCall::Mmap(a)),
            },
            MUNMAP => match check_range(a[0], a[1]) {
                Err(e) => -e,
                Ok(()) => return self.mm_path(tid, MmCall::Munmap(a[0], a[1])),
            },
            MPROTECT => match check_mprotect(a[0], a[1], a[2]) {
                Err(e) => -e,
                Ok(false) => 0,
                Ok(true) => return self.mm_path(tid, MmCall::Mprotect(a[0], a[1], a[2] as u8)),
            },
            MADVISE => match check_madvise(a[0], a[1], a[2]) {
                Err(e) => -e,
                Ok(None) => 0,
                Ok(Some(end)) if a[2] == 4 || a[2] == 8 => {
                    return self.mm_path(tid, MmCall::Dontneed(a[0], end));
                }
                // MADV_COLLAPSE.
                Ok(Some(end)) if a[2] == 25 => {
                    return self.mm_path(tid, MmCall::Collapse(a[0], end));
                }
                Ok(Some(_)) => self.sys_madvise(c, tid, a[0], a[1], a[2]),
            },
            MREMAP => match check_mremap(a[0], a[1], a[2], a[3], a[4]) {
                Err(e) => -e,
                Ok(()) => return self.mm_path(tid, MmCall::Mremap([a[0], a[1], a[2], a[3], a[4]])),
            },
            BRK => return self.mm_path(tid, MmCall::Brk(a[0])),
            MSYNC => self.sys_msync(tid, a[0], a[1]),
            MINCORE => self.sys_mincore(c, tid, a),
            // The kernel's sigset_t is 8 bytes.
            RT_SIGACTION | RT_SIGPROCMASK if a[3] != 8 => -EINVAL,
            RT_SIGACTION => self.sys_rt_sigaction(c, tid, a[0] as i32 as usize, a[1], a[2]),
            RT_SIGPROCMASK => self.sys_rt_sigprocmask(c, tid, a[0] as i32 as u64, a[1], a[2]),
            RT_SIGRETURN => return self.sys_rt_sigreturn(c, tid),
            RT_SIGSUSPEND | RT_SIGTIMEDWAIT if a[n_sigsetsize(n)] != 8 => -EINVAL,
            RT_SIGSUSPEND => return self.sys_rt_sigsuspend(c, tid, a[0]),
            // do_sigpending copies up to sigsetsize bytes: a smaller size is fine.
            RT_SIGPENDING if a[1] > 8 => -EINVAL,
            RT_SIGPENDING => self.sys_rt_sigpending(c, tid, a[0], a[1]),
            RT_SIGTIMEDWAIT => return self.sys_rt_sigtimedwait(c, tid, a[0], a[1], a[2]),
            // The restart block of an interrupted nanosleep, poll or futex wait is not
            // kept: do_no_restart_syscall's EINTR.
            RESTART_SYSCALL => -EINTR,
            SIGALTSTACK => self.sys_sigaltstack(c, tid, a[0], a[1]),
            ARCH_PRCTL => self.sys_arch_prctl(c, tid, a[0], a[1]),
            PRCTL => self.sys_prctl(c, tid, a[0], a[1]),
            SET_TID_ADDRESS => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.clear_child_tid = a[0];
                }
                i64::from(tid)
            }
            // sizeof(struct robust_list_head) is 24.
            SET_ROBUST_LIST if a[1] != 24 => -EINVAL,
            SET_ROBUST_LIST => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.robust_list = a[0];
                }
                0
            }
            GET_ROBUST_LIST => self.sys_get_robust_list(c, tid, a),
            RSEQ => self.sys_rseq(c, tid, a[0], a[1] as u32, a[2], a[3] as u32),
            PRLIMIT64 => self.sys_prlimit(c, tid, a[0] as i32, a[1] as u32, a[2], a[3]),
            GETRLIMIT => self.sys_prlimit(c, tid, 0, a[0] as u32, 0, a[1]),
            SETRLIMIT => self.sys_prlimit(c, tid, 0, a[0] as u32, a[1], 0),
            GETPRIORITY => self.sys_priority(tid, a[0] as i32, a[1] as i32, None),
            SETPRIORITY => self.sys_priority(tid, a[0] as i32, a[1] as i32, Some(a[2] as i32)),
            FADVISE64 => self.sys_fadvise64(tid, a[0] as i32, a[2] as i64, a[3] as u32 as u64),
            MLOCK => self.sys_mlock(tid, a[0], a[1], Some(0)),
            MLOCK2 => self.sys_mlock(tid, a[0], a[1], Some(a[2] as u32 as u64)),
            MUNLOCK => self.sys_mlock(tid, a[0], a[1], None),
            MLOCKALL => self.sys_mlockall(a[0] as u32 as u64),
            MUNLOCKALL => 0,
            GETRANDOM => self.sys_getrandom(c, tid, a[0], a[1], a[2]),
            CLOCK_GETTIME => self.sys_clock_gettime(c, tid, a[0], a[1]),
            CLOCK_GETRES if !valid_clock(a[0] as i32) => -EINVAL,
            CLOCK_GETRES => {
                if a[1] != 0 {
                    // hrtimer clocks: 1 ns; the coarse ones: a jiffy.
                    let res = if matches!(a[0] as i32, 5 | 6) {
                        1_000_000_000 / i64::from(self.profile.kernel.hz)
                    } else {
                        1
                    };
                    let mut b = [0u8; 16];
                    b[8..].copy_from_slice(&res.to_le_bytes());
                    if self.write_user(c, tid, a[1], &b).is_err() {
                        return Sys::Ret(-EFAULT);
                    }
                }
                0
            }
            GETTIMEOFDAY => match self.sys_gettimeofday(c, tid, a[0]) {
                // The timezone: sys_tz, all zeros.
                0 if a[1] != 0 && self.write_user(c, tid, a[1], &[0u8; 8]).is_err() => -EFAULT,
                r => r,
            },
            TIME => {
                let s = EPOCH_S + self.now_ns(tid) / 1_000_000_000;
                if a[0] != 0 && self.write_user(c, tid, a[0], &s.to_le_bytes()).is_err() {
                    return Sys::Ret(-EFAULT);
                }
                s as i64
            }
            NANOSLEEP => return self.sys_nanosleep(c, tid, 0, 0, a[0], a[1]),
            CLOCK_NANOSLEEP => return self.sys_nanosleep(c, tid, a[0], a[1], a[2], a[3]),
            UNAME => self.sys_uname(c, tid, a[0]),
            SYSINFO => self.sys_sysinfo(c, tid, a[0]),
            TIMES => 0,
            GETRUSAGE => {
                let z = [0u8; 144];
                if self.write_user(c, tid, a[1], &z).is_err() {
                    -EFAULT
                } else {
                    0
                }
            }
            GETPID => self.k.tasks.get(&tid).map_or(0, |t| i64::from(t.tgid)),
            GETTID => i64::from(tid),
            GETPPID => self.k.tasks.get(&tid).map_or(0, |t| i64::from(t.ppid)),
            GETUID | GETEUID => i64::from(self.k.uid),
            GETGID | GETEGID => i64::from(self.k.gid),
            SETUID | SETGID => -EPERM,
            GETGROUPS => 0,
            GETPGRP | GETPGID | GETSID => {
                self.k.tasks.get(&tid).map_or(0, |_| i64::from(self.k.init_pid))
            }
            SETPGID | SETSID => -EPERM,
            SCHED_YIELD => {
                self.probes.cpus[c].yields += 1;
                // yield_task_fair: the rest of this slice is given up.
                self.update_curr(c);
                let slice = self.slice_fp;
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.se.deadline += slice;
                    t.se.protected = false;
                }
                if !self.k.cpus[c].runq.is_empty() {
                    if let Some(t) = self.k.tasks.get_mut(&tid) {
                        t.cpu.gpr[0] = 0;
                    }
                    self.preempt(c, tid);
                    return Sys::Done;
                }
                0
            }
            SCHED_GETAFFINITY | SCHED_SETAFFINITY
                if a[0] as i32 != 0 && self.task_by_pid(a[0] as i32).is_none() =>
            {
                -ESRCH
            }
            SCHED_GETAFFINITY => self.sys_sched_getaffinity(c, tid, a[0] as i32, a[1], a[2]),
            SCHED_SETAFFINITY => self.sys_sched_setaffinity(c, tid, a[0] as i32 as u32, a[1], a[2]),
            GETCPU => {
                let cpu = (c as u32).to_le_bytes();
                if a[0] != 0 && self.write_user(c, tid, a[0], &cpu).is_err() {
                    return Sys::Ret(-EFAULT);
                }
                if a[1] != 0 && self.write_user(c, tid, a[1], &0u32.to_le_bytes()).is_err() {
                    return Sys::Ret(-EFAULT);
                }
                0
            }
            EXIT => {
                self.exit_thread(tid, (a[0] & 0xff) as i32);
                return Sys::Done;
            }
            EXIT_GROUP => {
                self.sys_exit_group(c, tid, ((a[0] & 0xff) as i32) << 8);
                return Sys::Done;
            }
            // pid_t and int arguments are the low 32 bits (glibc passes them so).
            KILL => return self.sys_kill(c, tid, i64::from(a[0] as i32), a[1] as i32 as u32, None),
            TGKILL => {
                let (tg, t, s) = (a[0] as i32, a[1] as i32, a[2] as i32);
                if tg <= 0 || t <= 0 {
                    -EINVAL
                } else {
                    return self.sys_kill(c, tid, i64::from(tg), s as u32, Some(t as u32));
                }
            }
            TKILL if a[0] as i32 <= 0 => -EINVAL,
            TKILL => {
                let t = a[0] as i32 as u32;
                let tg = self.k.tasks.get(&t).map_or(-1, |t| i64::from(t.tgid));
                return self.sys_kill(c, tid, tg, a[1] as i32 as u32, Some(t));
            }
            RT_SIGQUEUEINFO => return self.sys_rt_sigqueueinfo(c, tid, a, false),
            RT_TGSIGQUEUEINFO => return self.sys_rt_sigqueueinfo(c, tid, a, true),
            POLL => return self.sys_poll(c, tid, a),
            PPOLL => return self.sys_ppoll(c, tid, a),
            PSELECT6 => return self.sys_pselect6(c, tid, a),
            ALARM => self.sys_alarm(tid, a[0] as u32),
            SETITIMER => self.sys_setitimer(c, tid, a[0] as i32, a[1], a[2]),
            GETITIMER => self.sys_getitimer(c, tid, a[0] as i32, a[1]),
            TIMER_CREATE => self.sys_timer_create(c, tid, a[0] as i32, a[1], a[2]),
            TIMER_SETTIME => self.sys_timer_settime(c, tid, a),
            TIMER_GETTIME => self.sys_timer_gettime(c, tid, a[0] as i32, a[1]),
            TIMER_GETOVERRUN => self.sys_timer_getoverrun(tid, a[0] as i32),
            TIMER_DELETE => self.sys_timer_delete(tid, a[0] as i32),
            // pause(2): sleep until a signal's handler runs (-ERESTARTNOHAND).
            PAUSE if self.k.tasks.get(&tid).is_some_and(|t| t.pending & !t.sigmask != 0) => {
                -crate::signal::restart::ERESTARTNOHAND
            }
            PAUSE => return Sys::Block(Wait::Signal),
            MEMBARRIER => return self.sys_membarrier(c, tid, a),
            FUTEX => return self.sys_futex(c, tid, a),
            // copy_process: a caller being killed (a zap of exit_group or de_thread
            // reached it in the kernel) creates nothing: -ERESTARTNOINTR, and it exits on
            // its way out.
            CLONE | CLONE3 | FORK | VFORK
                if self.k.tasks.get(&tid).is_some_and(|t| t.exit.is_some()) =>
            {
                -crate::signal::restart::ERESTARTNOINTR
            }
            CLONE if a[0] & crate::process::cl::VM == 0 => {
                return self.mm_path(tid, MmCall::Fork(n, a))
            }
            CLONE => return self.sys_clone(c, tid, a[0], a[1], a[2], a[3], a[4], None),
            CLONE3 => {
                let mut f = [0u8; 8];
                if self.read_user(c, tid, a[0], &mut f).is_ok()
                    && u64::from_le_bytes(f) & crate::process::cl::VM == 0
                {
                    return self.mm_path(tid, MmCall::Fork(n, a));
                }
                return self.sys_clone3(c, tid, a[0], a[1]);
            }
            FORK | VFORK => return self.mm_path(tid, MmCall::Fork(n, a)),
            WAIT4 => {
                return self.sys_wait4(
                    c,
                    tid,
                    i64::from(a[0] as i32),
                    a[1],
                    a[2] as u32 as u64,
                    a[3],
                )
            }
            WAITID => return self.sys_waitid(c, tid, a),
            EXECVE => return self.sys_execve(c, tid, crate::exec::AT_FDCWD, a[0], a[1], a[2], 0),
            // execveat(dirfd, pathname, argv, envp, flags): dirfd and flags are ints.
            EXECVEAT => {
                let (dirfd, flags) = (a[0] as i32, u64::from(a[4] as u32));
                return self.sys_execve(c, tid, dirfd, a[1], a[2], a[3], flags);
            }
            crate::fdtypes::sysno::SELECT => return self.sys_select(c, tid, a),
            crate::fdtypes::sysno::EPOLL_CREATE => self.sys_epoll_create(tid, a[0], false),
            crate::fdtypes::sysno::EPOLL_CREATE1 => self.sys_epoll_create(tid, a[0], true),
            crate::fdtypes::sysno::EPOLL_CTL => self.sys_epoll_ctl(c, tid, a),
            crate::fdtypes::sysno::EPOLL_WAIT => return self.sys_epoll_wait(c, tid, a, 0),
            crate::fdtypes::sysno::EPOLL_PWAIT => return self.sys_epoll_wait(c, tid, a, 1),
            crate::fdtypes::sysno::EPOLL_PWAIT2 => return self.sys_epoll_wait(c, tid, a, 2),
            crate::fdtypes::sysno::EVENTFD => self.sys_eventfd(tid, a[0], 0),
            crate::fdtypes::sysno::EVENTFD2 => self.sys_eventfd(tid, a[0], a[1]),
            crate::fdtypes::sysno::SOCKET => self.sys_socket(tid, a),
            crate::fdtypes::sysno::SOCKETPAIR => self.sys_socketpair(c, tid, a),
            crate::fdtypes::sysno::SHUTDOWN => self.sys_shutdown(c, tid, a[0], a[1]),
            crate::fdtypes::sysno::SENDTO => return self.sys_sendto(c, tid, a),
            crate::fdtypes::sysno::RECVFROM => return self.sys_recvfrom(c, tid, a),
            crate::fdtypes::sysno::SENDMSG => return self.sys_sendmsg(c, tid, a),
            crate::fdtypes::sysno::RECVMSG => return self.sys_recvmsg(c, tid, a),
            crate::fdtypes::sysno::GETSOCKNAME => self.sys_getname(c, tid, a, false),
            crate::fdtypes::sysno::GETPEERNAME => self.sys_getname(c, tid, a, true),
            crate::fdtypes::sysno::GETSOCKOPT => self.sys_getsockopt(c, tid, a),
            crate::fdtypes::sysno::SETSOCKOPT => self.sys_setsockopt(c, tid, a),
            crate::fdtypes::sysno::CONNECT => self.sys_connect(c, tid, a),
            crate::fdtypes::sysno::BIND => self.sys_bind(tid, a),
            crate::fdtypes::sysno::LISTEN => self.sys_listen_accept(tid, a[0]),
            crate::fdtypes::sysno::ACCEPT => self.sys_listen_accept(tid, a[0]),
            crate::fdtypes::sysno::ACCEPT4 => self.sys_listen_accept(tid, a[0]),
            crate::fdtypes::sysno::MEMFD_CREATE => self.sys_memfd_create(c, tid, a[0], a[1]),
            crate::fdtypes::sysno::FTRUNCATE => self.sys_ftruncate(tid, a[0], a[1]),
            crate::fdtypes::sysno::CREAT => self.sys_openat(c, tid, -100, a[0], 0o1101),
            // System V shared memory: key, id and cmd are ints, size a size_t.
            29 => self.sys_shmget(tid, a[0] as i32, a[1], a[2] as i32 as u32 as u64),
            30 => {
                return self
                    .mm_path(tid, MmCall::Shmat(a[0] as i32, a[1], a[2] as i32 as u32 as u64))
            }
            31 => self.sys_shmctl(c, tid, a[0] as i32, a[1] as i32, a[2]),
            67 => return self.mm_path(tid, MmCall::Shmdt(a[0])),
            _ if let Some(r) = self.sys_fs_write(c, tid, n, a) => r,
            _ => {
                let name = syscall_name(n);
                let extra = if name.is_empty() { String::new() } else { format!(" ({name})") };
                self.warn_once(n, format!("unsupported system call {n}{extra}; returning ENOSYS"));
                -ENOSYS
            }
        };
        Sys::Ret(r)
    }

    /// An address-space call continues as a path under the task's mmap_lock.
    fn mm_path(&self, tid: u32, call: MmCall) -> Sys {
        Sys::Path(crate::path::KPath::Mm(Box::new(MmOp::new(call, self.mm_of(tid)))))
    }

    pub(crate) fn now_ns(&self, tid: u32) -> u64 {
        self.k.tasks.get(&tid).map_or(0, |t| self.ns_of(t.cpu.time_fp))
    }

    pub(crate) fn fd(&self, tid: u32, fd: i32) -> Option<u32> {
        let t = self.k.tasks.get(&tid)?;
        self.k.fdtables.get(&t.files)?.fds.get(&fd).map(|e| e.0)
    }

    fn sys_read(
        &mut self,
        c: usize,
        tid: u32,
        fd: i32,
        buf: u64,
        len: u64,
        at: Option<u64>,
    ) -> Sys {
        let Some(id) = self.fd(tid, fd) else { return Sys::Ret(-EBADF) };
        // A chunk at a time through a bounded host buffer, at most MAX_RW_COUNT in all;
        // a chunk that comes back short (end of file, what a pipe holds) ends the read.
        let len = len.min(MAX_RW_COUNT);
        let mut total = 0u64;
        let mut tmp = Vec::new();
        while total < len {
            let want = (len - total).min(RW_CHUNK);
            tmp.resize(want as usize, 0);
            match self.k.files.read(
                id,
                &mut tmp,
                at.map(|a| a.wrapping_add(total)),
                &mut self.k.rng,
            ) {
                Err(()) if total == 0 => return Sys::Block(Wait::Io),
                Err(()) => break,
                Ok(n) if n < 0 => return Sys::Ret(if total > 0 { total as i64 } else { n }),
                Ok(n) => {
                    if self.write_user(c, tid, buf.wrapping_add(total), &tmp[..n as usize]).is_err()
                    {
                        // The bytes were consumed from the file, as when Linux's
                        // copy_to_user fails part-way.
                        return Sys::Ret(if total > 0 { total as i64 } else { -EFAULT });
                    }
                    total += n as u64;
                    if (n as u64) < want {
                        break;
                    }
                }
            }
        }
        if total > 0 {
            self.wake_io(c);
        }
        Sys::Ret(total as i64)
    }

    fn sys_write(&mut self, c: usize, tid: u32, fd: i32, buf: u64, len: u64) -> Sys {
        let Some(id) = self.fd(tid, fd) else { return Sys::Ret(-EBADF) };
        self.write_from_user(c, tid, id, &[(buf, len)])
    }

    /// The body of write(2) and writev(2): copies the guest's segments to the file a
    /// chunk at a time, so the host buffer stays at RW_CHUNK however much is asked,
    /// and writes at most MAX_RW_COUNT bytes in all, as rw_verify_area caps a write. A
    /// fault or a short write of the file after some bytes went out returns what was
    /// written, as Linux does; a fault before any is EFAULT.
    fn write_from_user(&mut self, c: usize, tid: u32, id: u32, segs: &[(u64, u64)]) -> Sys {
        let mut left = MAX_RW_COUNT;
        let mut total = 0i64;
        let mut tmp = Vec::new();
        for &(base, len) in segs {
            let mut done = 0u64;
            while done < len.min(left) {
                let n = (len.min(left) - done).min(RW_CHUNK);
                tmp.resize(n as usize, 0);
                if self.read_user(c, tid, base.wrapping_add(done), &mut tmp).is_err() {
                    return Sys::Ret(if total > 0 { total } else { -EFAULT });
                }
                match self.write_bytes(c, tid, id, &tmp) {
                    Sys::Ret(w) if w < 0 => return Sys::Ret(if total > 0 { total } else { w }),
                    Sys::Ret(w) => {
                        total += w;
                        done += w as u64;
                        left -= w as u64;
                        if (w as u64) < n {
                            return Sys::Ret(total);
                        }
                    }
                    other => return if total > 0 { Sys::Ret(total) } else { other },
                }
            }
        }
        Sys::Ret(total)
    }

    /// sendfile(2): copies through a kernel buffer (at most 1 MiB per call).
    fn sys_sendfile(
        &mut self,
        c: usize,
        tid: u32,
        out_fd: i32,
        in_fd: i32,
        off: u64,
        count: u64,
    ) -> Sys {
        let (Some(inp), Some(out)) = (self.fd(tid, in_fd), self.fd(tid, out_fd)) else {
            return Sys::Ret(-EBADF);
        };
        let mut pos = None;
        if off != 0 {
            let mut b = [0u8; 8];
            if self.read_user(c, tid, off, &mut b).is_err() {
                return Sys::Ret(-EFAULT);
            }
            pos = Some(u64::from_le_bytes(b));
        }
        let mut buf = vec![0u8; count.min(1 << 20) as usize];
        let n = match self.k.files.read(inp, &mut buf, pos, &mut self.k.rng) {
            Err(()) => return Sys::Block(Wait::Io),
            Ok(n) if n < 0 => return Sys::Ret(n),
            Ok(n) => n as usize,
        };
        let r = self.write_bytes(c, tid, out, &buf[..n]);
        if let (Some(p), Sys::Ret(w)) = (pos, &r) {
            if *w > 0 {
                let _ = self.write_user(c, tid, off, &(p + *w as u64).to_le_bytes());
            }
        }
        r
    }

    fn write_bytes(&mut self, c: usize, tid: u32, id: u32, data: &[u8]) -> Sys {
        match self.k.files.write(id, data) {
            Err(()) => Sys::Block(Wait::Io),
            Ok(n) if n == -EPIPE => {
                // The result is in RAX before a handler's frame saves the registers.
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.cpu.gpr[0] = n as u64;
                }
                self.signal_thread(c, tid, sig::SIGPIPE);
                Sys::Done
            }
            Ok(n) => {
                self.wake_io(c);
                Sys::Ret(n)
            }
        }
    }

    /// Wakes tasks blocked on pipe I/O so they retry (from core `c`, at its time).
    pub(crate) fn wake_io(&mut self, c: usize) {
        let waiting: Vec<u32> = self
            .k
            .tasks
            .values()
            .filter(|t| t.state == State::Blocked(Wait::Io))
            .map(|t| t.tid)
            .collect();
        let at = self.now(c);
        for tid in waiting {
            self.wake(tid, 0, at);
        }
    }

    pub(crate) fn iovecs(
        &mut self,
        c: usize,
        tid: u32,
        iov: u64,
        cnt: u64,
    ) -> Result<Vec<(u64, u64)>, i64> {
        if cnt > 1024 {
            return Err(EINVAL);
        }
        let mut raw = vec![0u8; 16 * cnt as usize];
        self.read_user(c, tid, iov, &mut raw).map_err(|()| EFAULT)?;
        let v: Vec<(u64, u64)> =
            raw.chunks_exact(16).map(|ch| (le64(&ch[..8]), le64(&ch[8..]))).collect();
        // import_iovec: a length that is negative as an ssize_t is EINVAL.
        if v.iter().any(|&(_, len)| len > i64::MAX as u64) {
            return Err(EINVAL);
        }
        // __import_iovec: every segment must pass access_ok.
        if v.iter().any(|&(base, len)| !access_ok(base, len)) {
            return Err(EFAULT);
        }
        Ok(v)
    }

    fn sys_readv(&mut self, c: usize, tid: u32, fd: i32, iov: u64, cnt: u64) -> Sys {
        let v = match self.iovecs(c, tid, iov, cnt) {
            Ok(v) => v,
            Err(e) => return Sys::Ret(-e),
        };
        let mut total = 0i64;
        for (base, len) in v {
            if len == 0 {
                continue;
            }
            match self.sys_read(c, tid, fd, base, len, None) {
                Sys::Ret(n) if n < 0 => return Sys::Ret(if total > 0 { total } else { n }),
                Sys::Ret(n) => {
                    total += n;
                    if (n as u64) < len {
                        break;
                    }
                }
                other => {
                    if total > 0 {
                        return Sys::Ret(total);
                    }
                    return other;
                }
            }
        }
        Sys::Ret(total)
    }

    fn sys_writev(&mut self, c: usize, tid: u32, fd: i32, iov: u64, cnt: u64) -> Sys {
        let Some(id) = self.fd(tid, fd) else { return Sys::Ret(-EBADF) };
        let v = match self.iovecs(c, tid, iov, cnt) {
            Ok(v) => v,
            Err(e) => return Sys::Ret(-e),
        };
        self.write_from_user(c, tid, id, &v)
    }

    pub(crate) fn abs_path(
        &mut self,
        c: usize,
        tid: u32,
        dirfd: i32,
        p: u64,
    ) -> Result<String, i64> {
        let raw = self.read_cstr(c, tid, p, 4096)?;
        let s = String::from_utf8(raw).map_err(|_| ENOENT)?;
        if s.is_empty() {
            return Err(ENOENT);
        }
        self.at_path(tid, dirfd, &s)
    }

    fn install_fd(&mut self, tid: u32, id: u32, cloexec: bool, min: i32) -> i64 {
        let Some(files) = self.k.tasks.get(&tid).map(|t| t.files) else { return -EBADF };
        let Some(tab) = self.k.fdtables.get_mut(&files) else { return -EBADF };
        let fd = tab.lowest_free(min);
        if fd >= 1024 {
            self.k.files.put(id);
            return -EMFILE;
        }
        tab.fds.insert(fd, (id, cloexec));
        i64::from(fd)
    }

    fn sys_openat(&mut self, c: usize, tid: u32, dirfd: i32, p: u64, flags: u32) -> i64 {
        let path = match self.abs_path(c, tid, dirfd, p) {
            Ok(p) => p,
            Err(e) => return -e,
        };
        // The host's files are a read-only mount (see fswrite.rs); path_openat's order:
        // build_open_flags, the lookup (O_CREAT of a missing name: EROFS once the parent
        // is found), O_EXCL's EEXIST, O_CREAT of a directory EISDIR, O_DIRECTORY's
        // ENOTDIR, O_TRUNC of a regular file EROFS (mnt_want_write), may_open (writing a
        // directory EISDIR), then sb_permission's EROFS for writing a regular file.
        const O_CREAT: u32 = 0o100;
        const O_EXCL: u32 = 0o200;
        const O_TRUNC: u32 = 0o1000;
        const O_DIRECTORY: u32 = 0o200000;
        const O_TMPFILE: u32 = 0o20000000;
        let acc_write = matches!(flags & 3, 1 | 2);
        if flags & O_TMPFILE != 0 {
            if flags & (O_TMPFILE | O_DIRECTORY | O_CREAT) != O_TMPFILE | O_DIRECTORY || !acc_write
            {
                return -EINVAL;
            }
            return match self.k.files.resolve(&path) {
                Err(e) => -e,
                Ok(Resolved::Host(hp)) if hp.is_dir() => -EROFS,
                Ok(_) => -ENOTDIR,
            };
        }
        let (creat, excl, trunc) =
            (flags & O_CREAT != 0, flags & O_EXCL != 0, flags & O_TRUNC != 0);
        let cloexec = flags & 0o2000000 != 0;
        let obj = match self.k.files.resolve(&path) {
            Err(ENOENT) if creat => {
                return match crate::fswrite::split_last(&path).1 {
                    crate::fswrite::Last::Norm(_, true) => -EISDIR,
                    _ => -crate::fswrite::create(&self.k.files, &path, false),
                };
            }
            Err(e) => return -e,
            Ok(_) if creat && excl => return -EEXIST,
            Ok(Resolved::Dev(d)) => Object::Dev(d),
            Ok(Resolved::Synthetic(_)) if acc_write || trunc => return -EACCES,
            Ok(Resolved::Synthetic(name)) => {
                Object::Synthetic { data: self.synthesize(tid, &name) }
            }
            Ok(Resolved::Host(hp)) => match std::fs::File::open(&hp) {
                Ok(f) => {
                    let meta = f.metadata().ok();
                    let is_dir = meta.as_ref().is_some_and(std::fs::Metadata::is_dir);
                    let is_reg = meta.as_ref().is_some_and(std::fs::Metadata::is_file);
                    if creat && is_dir {
                        return -EISDIR;
                    }
                    if flags & O_DIRECTORY != 0 && !is_dir {
                        return -ENOTDIR;
                    }
                    // build_open_flags: O_TRUNC asks for MAY_WRITE too.
                    let may_write = acc_write || trunc;
                    if may_write && is_reg {
                        return -EROFS;
                    }
                    if may_write && is_dir {
                        return -EISDIR;
                    }
                    if may_write {
                        // Devices, fifos and sockets of the host: emu writes none.
                        return -EACCES;
                    }
                    // do_dentry_open: O_DIRECT needs FMODE_CAN_ODIRECT, which the
                    // host's file system says (direct.rs).
                    let direct = if flags & crate::fs::O_DIRECT != 0 {
                        match crate::fs::DirectFile::open(&hp) {
                            Ok(d) => Some(d),
                            Err(e) => return -e,
                        }
                    } else {
                        None
                    };
                    Object::Host { file: f, path: hp, dir: None, direct }
                }
                Err(e) => return -crate::fs::io_errno(&e),
            },
        };
        // Devices and the files emu synthesizes (/proc, /sys) cannot do direct I/O.
        if flags & crate::fs::O_DIRECT != 0
            && matches!(obj, Object::Dev(_) | Object::Synthetic { .. })
        {
            return -EINVAL;
        }
        let id = self.k.files.create(obj, flags & !0o2000000);
        self.install_fd(tid, id, cloexec, 0)
    }

    fn sys_close(&mut self, c: usize, tid: u32, fd: i32) -> i64 {
        let Some(files) = self.k.tasks.get(&tid).map(|t| t.files) else { return -EBADF };
        match self.k.fdtables.get_mut(&files).and_then(|t| t.fds.remove(&fd)) {
            Some((id, _)) => {
                self.k.files.close_fd(files, id);
                self.wake_io(c);
                0
            }
            None => -EBADF,
        }
    }

    fn sys_dup(&mut self, c: usize, tid: u32, old: i32, new: i32, exact: bool, flags: u32) -> i64 {
        let Some(id) = self.fd(tid, old) else { return -EBADF };
        if exact {
            if !(0..1024).contains(&new) {
                return -EBADF;
            }
            let _ = self.sys_close(c, tid, new);
            self.k.files.get(id);
            let Some(files) = self.k.tasks.get(&tid).map(|t| t.files) else { return -EBADF };
            if let Some(tab) = self.k.fdtables.get_mut(&files) {
                tab.fds.insert(new, (id, flags & 0o2000000 != 0));
            }
            i64::from(new)
        } else {
            self.k.files.get(id);
            self.install_fd(tid, id, false, new.max(0))
        }
    }

    fn sys_fcntl(&mut self, c: usize, tid: u32, fd: i32, cmd: u32, arg: u64) -> Sys {
        use crate::filelock::cmd as lk;
        let Some(id) = self.fd(tid, fd) else { return Sys::Ret(-EBADF) };
        if matches!(
            cmd,
            lk::GETLK | lk::SETLK | lk::SETLKW | lk::OFD_GETLK | lk::OFD_SETLK | lk::OFD_SETLKW
        ) {
            return self.sys_fcntl_lock(c, tid, id, cmd, arg);
        }
        Sys::Ret(self.sys_fcntl_other(c, tid, fd, id, cmd, arg))
    }

    fn sys_fcntl_other(&mut self, c: usize, tid: u32, fd: i32, id: u32, cmd: u32, arg: u64) -> i64 {
        let files = self.k.tasks.get(&tid).map_or(0, |t| t.files);
        // f_dupfd: the lowest descriptor asked for must be below RLIMIT_NOFILE.
        if matches!(cmd, 0 | 1030) && arg >= 1024 {
            return -EINVAL;
        }
        match cmd {
            0 => self.sys_dup(c, tid, fd, arg as i32, false, 0),
            1030 => {
                let r = self.sys_dup(c, tid, fd, arg as i32, false, 0);
                if r >= 0 {
                    if let Some(e) =
                        self.k.fdtables.get_mut(&files).and_then(|t| t.fds.get_mut(&(r as i32)))
                    {
                        e.1 = true;
                    }
                }
                r
            }
            1 => self
                .k
                .fdtables
                .get(&files)
                .and_then(|t| t.fds.get(&fd))
                .map_or(-EBADF, |e| i64::from(e.1)),
            2 => {
                if let Some(e) = self.k.fdtables.get_mut(&files).and_then(|t| t.fds.get_mut(&fd)) {
                    e.1 = arg & 1 != 0;
                }
                0
            }
            3 => self.k.files.descs.get(&id).map_or(-EBADF, |d| i64::from(d.flags)),
            4 => {
                if let Some(d) = self.k.files.descs.get_mut(&id) {
                    d.flags = (d.flags & !0o4000) | (arg as u32 & 0o4000);
                }
                0
            }
            _ => -EINVAL,
        }
    }

    fn sys_pipe(&mut self, c: usize, tid: u32, out: u64, flags: u32) -> i64 {
        let (r, w) = self.k.files.pipe(flags & 0o4000);
        let cloexec = flags & 0o2000000 != 0;
        let fr = self.install_fd(tid, r, cloexec, 0);
        let fw = self.install_fd(tid, w, cloexec, 0);
        if fr < 0 || fw < 0 {
            return -EMFILE;
        }
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&(fr as i32).to_le_bytes());
        b[4..].copy_from_slice(&(fw as i32).to_le_bytes());
        if self.write_user(c, tid, out, &b).is_err() {
            return -EFAULT;
        }
        0
    }

    fn sys_fstat(&mut self, c: usize, tid: u32, fd: i32, out: u64) -> i64 {
        let Some(id) = self.fd(tid, fd) else { return -EBADF };
        match self.k.files.stat(id) {
            Ok(s) => {
                if self.write_user(c, tid, out, &s.to_bytes()).is_err() {
                    -EFAULT
                } else {
                    0
                }
            }
            Err(e) => -e,
        }
    }

    fn sys_stat_path(
        &mut self,
        c: usize,
        tid: u32,
        dirfd: i32,
        p: u64,
        out: u64,
        follow: bool,
    ) -> i64 {
        let path = match self.abs_path(c, tid, dirfd, p) {
            Ok(p) => p,
            Err(e) => return -e,
        };
        let r = match self.k.files.resolve_attrs(&path) {
            Ok(r) => r,
            Err(e) => return -e,
        };
        match self.k.files.stat_path(&r, follow) {
            Ok(s) => {
                if self.write_user(c, tid, out, &s.to_bytes()).is_err() {
                    -EFAULT
                } else {
                    0
                }
            }
            Err(e) => -e,
        }
    }

    fn sys_access(&mut self, c: usize, tid: u32, dirfd: i32, p: u64) -> i64 {
        let path = match self.abs_path(c, tid, dirfd, p) {
            Ok(p) => p,
            Err(e) => return -e,
        };
        match self.k.files.resolve_attrs(&path) {
            Ok(_) => 0,
            Err(e) => -e,
        }
    }

    fn sys_lseek(&mut self, tid: u32, fd: i32, off: i64, whence: u32) -> i64 {
        let Some(id) = self.fd(tid, fd) else { return -EBADF };
        let size = match self.k.files.stat(id) {
            Ok(s) => s.size,
            Err(e) => return -e,
        };
        let Some(d) = self.k.files.descs.get_mut(&id) else { return -EBADF };
        match d.obj {
            Object::Stdin
            | Object::Stdout
            | Object::Stderr
            | Object::PipeRead(_)
            | Object::PipeWrite(_) => return -ESPIPE,
            // null_lseek, zero_lseek, full_lseek, noop_llseek: the position stays 0.
            Object::Dev(_) => return 0,
            _ => {}
        }
        let base = match whence {
            0 => 0,
            1 => d.pos as i64,
            2 => size,
            _ => return -EINVAL,
        };
        let new = base + off;
        if new < 0 {
            return -EINVAL;
        }
        d.pos = new as u64;
        new
    }

    fn sys_ioctl(&mut self, tid: u32, fd: i32, req: u64) -> i64 {
        if self.fd(tid, fd).is_none() {
            return -EBADF;
        }
        // TCGETS, TIOCGWINSZ and other terminal requests: not a terminal.
        let _ = req;
        -ENOTTY
    }

    fn sys_readlink(&mut self, c: usize, tid: u32, dirfd: i32, p: u64, buf: u64, len: u64) -> i64 {
        let path = match self.read_cstr(c, tid, p, 4096) {
            Ok(p) => p,
            Err(e) => return -e,
        };
        let target = if path == b"/proc/self/exe" {
            self.exe_path_of(tid).into_bytes()
        } else if path == b"/proc/self/cwd" {
            self.cwd_of(tid).to_string_lossy().into_owned().into_bytes()
        } else {
            let abs = match self.abs_path(c, tid, dirfd, p) {
                Ok(a) => a,
                Err(e) => return -e,
            };
            match self.k.files.resolve_attrs(&abs) {
                Ok(Resolved::Host(_)) => match std::fs::read_link(&abs) {
                    Ok(t) => t.to_string_lossy().into_owned().into_bytes(),
                    Err(e) => return -crate::fs::io_errno(&e),
                },
                Ok(_) => return -EINVAL,
                Err(e) => return -e,
            }
        };
        let n = target.len().min(len as usize);
        if self.write_user(c, tid, buf, &target[..n]).is_err() {
            return -EFAULT;
        }
        n as i64
    }

    fn sys_getdents64(&mut self, c: usize, tid: u32, fd: i32, buf: u64, len: u64) -> i64 {
        let Some(id) = self.fd(tid, fd) else { return -EBADF };
        let mut out = Vec::new();
        let r = self.k.files.getdents(id, &mut out, len.min(1 << 20) as usize);
        if r <= 0 {
            return r;
        }
        if self.write_user(c, tid, buf, &out).is_err() {
            return -EFAULT;
        }
        r
    }

    /// The working directory of `tid`'s fs_struct.
    pub(crate) fn cwd_of(&self, tid: u32) -> std::path::PathBuf {
        self.k
            .tasks
            .get(&tid)
            .and_then(|t| self.k.cwds.get(&t.fs))
            .cloned()
            .unwrap_or_else(|| "/".into())
    }

    /// chdir(2) (fs/open.c): the path, followed, must name a directory the caller may
    /// search (outside `--allow-read` and the directories leading to it: EACCES, as for
    /// a directory without search permission); then it is the caller's fs_struct's
    /// working directory, shared by the threads created with CLONE_FS.
    fn sys_chdir(&mut self, c: usize, tid: u32, path: u64) -> i64 {
        let abs = match self.abs_path(c, tid, crate::exec::AT_FDCWD, path) {
            Ok(p) => p,
            Err(e) => return -e,
        };
        match self.k.files.resolve_attrs(&abs) {
            Ok(crate::fs::Resolved::Host(dir)) if dir.is_dir() => self.set_cwd(tid, dir),
            Ok(_) => -ENOTDIR,
            Err(e) => -e,
        }
    }

    /// fchdir(2): the descriptor's directory becomes the working directory.
    fn sys_fchdir(&mut self, tid: u32, fd: i32) -> i64 {
        let Some(id) = self.fd(tid, fd) else { return -EBADF };
        match self.k.files.descs.get(&id).map(|d| &d.obj) {
            Some(Object::Host { path, .. }) if path.is_dir() => {
                let dir = path.clone();
                self.set_cwd(tid, dir)
            }
            _ => -ENOTDIR,
        }
    }

    fn set_cwd(&mut self, tid: u32, dir: std::path::PathBuf) -> i64 {
        if let Some(fs) = self.k.tasks.get(&tid).map(|t| t.fs) {
            self.k.cwds.insert(fs, dir);
        }
        0
    }

    /// getcwd(2): the working directory and its NUL; ERANGE when `len` is short.
    fn sys_getcwd(&mut self, c: usize, tid: u32, buf: u64, len: u64) -> i64 {
        let mut b = self.cwd_of(tid).to_string_lossy().into_owned().into_bytes();
        b.push(0);
        if b.len() as u64 > len {
            return -ERANGE;
        }
        if self.write_user(c, tid, buf, &b).is_err() {
            return -EFAULT;
        }
        b.len() as i64
    }

    pub(crate) fn mm_of(&self, tid: u32) -> u32 {
        self.k.tasks.get(&tid).map_or(0, |t| t.mm)
    }

    pub(crate) fn sys_mmap(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let (addr, len, prot, flags, fd, off) = (a[0], a[1], a[2] as u8, a[3], a[4] as i32, a[5]);
        const MAP_SHARED: u64 = 1;
        const MAP_PRIVATE: u64 = 2;
        const MAP_FIXED: u64 = 0x10;
        const MAP_ANON: u64 = 0x20;
        const MAP_FIXED_NOREPLACE: u64 = 0x100000;
        if len == 0 || addr & (PAGE - 1) != 0 || off & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        if flags & (MAP_SHARED | MAP_PRIVATE) == 0 {
            return -EINVAL;
        }
        let len = page_up(len);
        if len == 0 || len > (1 << 46) {
            return -ENOMEM;
        }
        let backing = if flags & MAP_ANON != 0 && flags & MAP_SHARED != 0 {
            // shmem_zero_setup: a shared anonymous mapping is an unlinked shmem file of
            // its length, so a page first touched after a fork is still the same page in
            // parent and child.
            let shm = crate::fdtypes::Shm::with_size(len);
            let data = crate::mm::Source::Shm(std::rc::Rc::new(std::cell::RefCell::new(shm)));
            Backing::Image { data, va: 0, off: 0, len }
        } else if flags & MAP_ANON != 0 {
            Backing::Anon
        } else {
            let Some(id) = self.fd(tid, fd) else { return -EBADF };
            let (data, size) = match self.k.files.descs.get(&id).map(|d| &d.obj) {
                Some(Object::Host { file, .. }) => {
                    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                    match file.try_clone() {
                        Ok(f) => (crate::mm::Source::File(std::sync::Arc::new(f)), size),
                        Err(e) => return -crate::fs::io_errno(&e),
                    }
                }
                Some(Object::Synthetic { data }) => {
                    (crate::mm::Source::Bytes(data.clone().into()), data.len() as u64)
                }
                _ => return -ENODEV,
            };
            if flags & MAP_SHARED != 0 && prot & PROT_WRITE != 0 {
                return -EACCES;
            }
            let avail = size.saturating_sub(off);
            Backing::Image { data, va: 0, off, len: avail.min(len) }
        };
        let mmid = self.mm_of(tid);
        let Some(mm) = self.k.mms.get_mut(&mmid) else { return -EINVAL };
        if mm.vmas.len() >= MAX_MAP_COUNT {
            return -ENOMEM;
        }
        let start = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
            if addr == 0 || addr.checked_add(len).is_none_or(|e| e > crate::mm::STACK_TOP) {
                return -EINVAL;
            }
            if flags & MAP_FIXED_NOREPLACE != 0 && !mm.is_free(addr, addr + len) {
                return -EEXIST;
            }
            addr
        } else if addr != 0
            && addr.checked_add(len).is_some_and(|e| e <= crate::mm::MMAP_BASE)
            && mm.is_free(addr, addr + len)
        {
            addr
        } else {
            match mm.find_free(len) {
                Some(a) => a,
                None => return -ENOMEM,
            }
        };
        let mut g = Gather::default();
        if !mm.is_free(start, start + len) {
            mm.unmap(&mut self.hw.mem.phys, start, start + len, &mut g);
        }
        let backing = match backing {
            Backing::Image { data, off, len: l, .. } => {
                Backing::Image { data, va: start, off, len: l }
            }
            b => b,
        };
        mm.insert(Vma {
            start,
            end: start + len,
            prot: prot & (PROT_READ | PROT_WRITE | PROT_EXEC),
            shared: flags & MAP_SHARED != 0,
            backing,
            kind: VmaKind::Anon,
            hugepage: false,
            nohugepage: false,
        });
        self.finish_gather(c, mmid, g, Reason::MmapFixed);
        let _ = c;
        start as i64
    }

    pub(crate) fn sys_munmap(&mut self, c: usize, tid: u32, addr: u64, len: u64) -> i64 {
        if let Err(e) = check_range(addr, len) {
            return -e;
        }
        let end = addr + page_up(len);
        let mmid = self.mm_of(tid);
        let Some(mm) = self.k.mms.get_mut(&mmid) else { return -EINVAL };
        let mut g = Gather::default();
        mm.unmap(&mut self.hw.mem.phys, addr, end, &mut g);
        self.probes.kstats.munmaps += 1;
        self.finish_gather(c, mmid, g, Reason::Munmap);
        0
    }

    pub(crate) fn sys_mprotect(
        &mut self,
        c: usize,
        tid: u32,
        addr: u64,
        len: u64,
        prot: u8,
    ) -> i64 {
        match check_mprotect(addr, len, u64::from(prot)) {
            Err(e) => return -e,
            Ok(false) => return 0,
            Ok(true) => {}
        }
        let end = addr + page_up(len);
        let mmid = self.mm_of(tid);
        let Some(mm) = self.k.mms.get_mut(&mmid) else { return -EINVAL };
        if let Err(e) = mm.protect(&mut self.hw.mem.phys, addr, end, prot & 7) {
            return -e;
        }
        // change_protection: flush the range.
        self.flush_tlb_mm_range(c, mmid, addr, end, 12, false, Reason::Mprotect);
        0
    }

    pub(crate) fn sys_madvise(
        &mut self,
        c: usize,
        tid: u32,
        addr: u64,
        len: u64,
        advice: u64,
    ) -> i64 {
        if addr & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        let end = addr.saturating_add(page_up(len));
        let mmid = self.mm_of(tid);
        let Some(mm) = self.k.mms.get_mut(&mmid) else { return -EINVAL };
        match advice {
            // MADV_DONTNEED, MADV_FREE: drop the pages; later touches see zeroes (or
            // the file contents again).
            4 | 8 => {
                let mut a = addr;
                while a < end {
                    match mm.find(a) {
                        Some(v) => a = v.end,
                        None => return -ENOMEM,
                    }
                }
                let mut g = Gather::default();
                mm.zap(&mut self.hw.mem.phys, addr, end, false, &mut g);
                self.probes.kstats.madvise_dontneed += 1;
                self.finish_gather(c, mmid, g, Reason::Madvise);
                0
            }
            // MADV_HUGEPAGE / MADV_NOHUGEPAGE.
            14 | 15 => {
                mm.set_hugepage(addr, end, advice == 14);
                0
            }
            0..=3 | 9..=13 | 16..=21 | 100..=101 => 0,
            _ => -EINVAL,
        }
    }

    pub(crate) fn sys_mremap(
        &mut self,
        c: usize,
        tid: u32,
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> i64 {
        const MAYMOVE: u64 = 1;
        const FIXED: u64 = 2;
        if let Err(e) = check_mremap(old, old_len, new_len, flags, new_addr) {
            return -e;
        }
        let (old_len, new_len) = (page_up(old_len), page_up(new_len));
        if old.checked_add(old_len).is_none_or(|e| e > TASK_SIZE) {
            return -EFAULT;
        }
        let mmid = self.mm_of(tid);
        let Some(mm) = self.k.mms.get_mut(&mmid) else { return -EINVAL };
        let Some(vma) = mm.find(old).cloned() else { return -EFAULT };
        if old + old_len > vma.end {
            return -EFAULT;
        }
        let mut g = Gather::default();
        if flags & FIXED == 0 && new_len <= old_len {
            if new_len < old_len {
                mm.unmap(&mut self.hw.mem.phys, old + new_len, old + old_len, &mut g);
            }
            self.finish_gather(c, mmid, g, Reason::Mremap);
            return old as i64;
        }
        // Grow in place if the following range is free (and within user space).
        if flags & FIXED == 0
            && old + old_len == vma.end
            && new_len <= TASK_SIZE - old
            && mm.is_free(old + old_len, old + new_len)
        {
            let mut v = vma.clone();
            v.start = old + old_len;
            v.end = old + new_len;
            if let Backing::Image { .. } = v.backing {
                // Keep the original description so file offsets stay right.
            }
            mm.insert(v);
            return old as i64;
        }
        if flags & MAYMOVE == 0 {
            return -ENOMEM;
        }
        let dest = if flags & FIXED != 0 {
            if new_addr & (PAGE - 1) != 0 {
                return -EINVAL;
            }
            mm.unmap(&mut self.hw.mem.phys, new_addr, new_addr + new_len, &mut g);
            new_addr
        } else {
            match mm.find_free(new_len) {
                Some(a) => a,
                None => return -ENOMEM,
            }
        };
        // Move: copy the PTEs of the old range to the new one (move_page_tables), then
        // drop the old range without freeing the moved pages.
        let mut moved = Vec::new();
        mm.for_each_leaf(
            &mut self.hw.mem.phys,
            old,
            old + old_len.min(new_len),
            |phys, pte_pa, pte, va| {
                phys.write_u64(pte_pa, 0);
                phys.pte_changed(pte_pa);
                moved.push((va - old, pte));
            },
        );
        let mut created = Vec::new();
        for (off, pte) in moved {
            match emu_mmu::PageTables::entry(
                &mut self.hw.mem.phys,
                mm.root,
                dest + off,
                1,
                true,
                &mut created,
            ) {
                Ok(Some(epa)) => self.hw.mem.phys.write_u64(epa, pte),
                _ => return -ENOMEM,
            }
        }
        mm.table_pages += created.len() as u64;
        mm.work.tables_allocated += created.len() as u64;
        let mut v = vma.clone();
        v.start = dest;
        v.end = dest + new_len;
        if let Backing::Image { data, va, off, len } = &vma.backing {
            let shift = old as i64 - *va as i64;
            let new_va = (dest as i64 - shift) as u64;
            v.backing = Backing::Image { data: data.clone(), va: new_va, off: *off, len: *len };
        }
        mm.unmap(&mut self.hw.mem.phys, old, old + old_len, &mut g);
        mm.insert(v);
        g.start = g.start.min(old);
        g.end = g.end.max(old + old_len);
        self.finish_gather(c, mmid, g, Reason::Mremap);
        dest as i64
    }

    fn sys_msync(&mut self, tid: u32, addr: u64, len: u64) -> i64 {
        if addr & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        let Some(mm) = self.k.mms.get(&self.mm_of(tid)) else { return -EINVAL };
        let end = addr.saturating_add(page_up(len));
        let mut a = addr;
        while a < end {
            match mm.find(a) {
                Some(v) => a = v.end,
                None => return -ENOMEM,
            }
        }
        0
    }

    pub(crate) fn sys_brk(&mut self, c: usize, tid: u32, want: u64) -> i64 {
        let mmid = self.mm_of(tid);
        let Some(mm) = self.k.mms.get_mut(&mmid) else { return 0 };
        let cur = mm.brk;
        // Below the heap's start, or a new end that wraps or leaves user space (the
        // check_brk_limits / get_unmapped_area refusal): brk stays where it is.
        if want < mm.brk_start || want > TASK_SIZE {
            return cur as i64;
        }
        let (old_end, new_end) = (page_up(cur), page_up(want));
        let mut g = Gather::default();
        if new_end > old_end {
            if !mm.is_free(old_end, new_end) {
                return cur as i64;
            }
            // Extend (or create) the heap VMA.
            let heap = mm.vmas.values().find(|v| v.kind == VmaKind::Heap).map(|v| v.start);
            match heap {
                Some(s) if mm.vmas.get(&s).is_some_and(|v| v.end == old_end) => {
                    if let Some(v) = mm.vmas.get_mut(&s) {
                        v.end = new_end;
                    }
                }
                _ => mm.insert(Vma {
                    start: old_end,
                    end: new_end,
                    prot: PROT_READ | PROT_WRITE,
                    shared: false,
                    backing: Backing::Anon,
                    kind: VmaKind::Heap,
                    hugepage: false,
                    nohugepage: false,
                }),
            }
        } else if new_end < old_end {
            mm.unmap(&mut self.hw.mem.phys, new_end, old_end, &mut g);
        }
        mm.brk = want;
        self.finish_gather(c, mmid, g, Reason::Brk);
        want as i64
    }

    fn sys_rt_sigaction(&mut self, c: usize, tid: u32, signo: usize, act: u64, old: u64) -> i64 {
        if signo == 0
            || signo > 64
            || signo == sig::SIGKILL as usize
            || signo == sig::SIGSTOP as usize && act != 0
        {
            return -EINVAL;
        }
        let Some(sh) = self.k.tasks.get(&tid).map(|t| t.sighand) else { return -EINVAL };
        let cur = self.k.sighands.get(&sh).map(|h| h[signo]).unwrap_or_default();
        if old != 0 {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&cur.handler.to_le_bytes());
            b[8..16].copy_from_slice(&cur.flags.to_le_bytes());
            b[16..24].copy_from_slice(&cur.restorer.to_le_bytes());
            b[24..].copy_from_slice(&cur.mask.to_le_bytes());
            if self.write_user(c, tid, old, &b).is_err() {
                return -EFAULT;
            }
        }
        if act != 0 {
            let mut b = [0u8; 32];
            if self.read_user(c, tid, act, &mut b).is_err() {
                return -EFAULT;
            }
            let a = SigAction {
                handler: le64(&b[..8]),
                flags: le64(&b[8..16]),
                restorer: le64(&b[16..24]),
                mask: le64(&b[24..]),
            };
            if let Some(h) = self.k.sighands.get_mut(&sh) {
                h[signo] = a;
            }
        }
        0
    }

    /// rt_sigprocmask(2) (kernel/signal.c): the new set is read and applied (a bad `how`
    /// is EINVAL only with a set), then the old mask written. Signals it unblocks are
    /// delivered on the way out, after the call's 0 is in RAX.
    fn sys_rt_sigprocmask(&mut self, c: usize, tid: u32, how: u64, set: u64, old: u64) -> i64 {
        let cur = self.k.tasks.get(&tid).map_or(0, |t| t.sigmask);
        if set != 0 {
            let mut b = [0u8; 8];
            if self.read_user(c, tid, set, &mut b).is_err() {
                return -EFAULT;
            }
            let s =
                u64::from_le_bytes(b) & !((1 << (sig::SIGKILL - 1)) | (1 << (sig::SIGSTOP - 1)));
            let new = match how {
                0 => cur | s,
                1 => cur & !s,
                2 => s,
                _ => return -EINVAL,
            };
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.sigmask = new;
            }
        }
        if old != 0 && self.write_user(c, tid, old, &cur.to_le_bytes()).is_err() {
            return -EFAULT;
        }
        0
    }

    fn sys_sigaltstack(&mut self, c: usize, tid: u32, ss: u64, old: u64) -> i64 {
        let cur = self.k.tasks.get(&tid).map_or((0, 2, 0), |t| t.altstack);
        if old != 0 {
            let mut b = [0u8; 24];
            b[..8].copy_from_slice(&cur.0.to_le_bytes());
            b[8..12].copy_from_slice(&cur.1.to_le_bytes());
            b[16..].copy_from_slice(&cur.2.to_le_bytes());
            if self.write_user(c, tid, old, &b).is_err() {
                return -EFAULT;
            }
        }
        if ss != 0 {
            // do_sigaltstack: not while running on it; SS_DISABLE, SS_ONSTACK or 0, with
            // SS_AUTODISARM; a stack of at least MINSIGSTKSZ (2048) bytes.
            const SS_ONSTACK: u32 = 1;
            const SS_DISABLE: u32 = 2;
            const SS_AUTODISARM: u32 = 1 << 31;
            let sp = self.k.tasks.get(&tid).map_or(0, |t| t.cpu.gpr[4]);
            if cur.1 & SS_DISABLE == 0 && sp > cur.0 && sp <= cur.0.wrapping_add(cur.2) {
                return -EPERM;
            }
            let mut b = [0u8; 24];
            if self.read_user(c, tid, ss, &mut b).is_err() {
                return -EFAULT;
            }
            let flags = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
            let mode = flags & !SS_AUTODISARM;
            if !matches!(mode, 0 | SS_ONSTACK | SS_DISABLE) {
                return -EINVAL;
            }
            let stack = if mode == SS_DISABLE {
                (0, SS_DISABLE, 0)
            } else {
                let size = le64(&b[16..]);
                if size < 2048 {
                    return -ENOMEM;
                }
                (le64(&b[..8]), flags & SS_AUTODISARM, size)
            };
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.altstack = stack;
            }
        }
        0
    }

    /// The live task with thread id `pid`.
    pub(crate) fn task_by_pid(&self, pid: i32) -> Option<u32> {
        let t = self.k.tasks.get(&u32::try_from(pid).ok()?)?;
        (t.state != State::Zombie).then_some(t.tid)
    }

    fn sys_arch_prctl(&mut self, c: usize, tid: u32, code: u64, addr: u64) -> i64 {
        const SET_GS: u64 = 0x1001;
        const SET_FS: u64 = 0x1002;
        const GET_FS: u64 = 0x1003;
        const GET_GS: u64 = 0x1004;
        match code {
            // do_arch_prctl_64: a base outside user space is refused.
            SET_FS | SET_GS if addr >= TASK_SIZE => -EPERM,
            SET_FS | SET_GS => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.cpu.seg_base[if code == SET_FS { 1 } else { 2 }] = addr;
                }
                0
            }
            GET_FS | GET_GS => {
                let v = self
                    .k
                    .tasks
                    .get(&tid)
                    .map_or(0, |t| t.cpu.seg_base[if code == GET_FS { 1 } else { 2 }]);
                if self.write_user(c, tid, addr, &v.to_le_bytes()).is_err() {
                    -EFAULT
                } else {
                    0
                }
            }
            _ => -EINVAL,
        }
    }

    fn sys_prctl(&mut self, c: usize, tid: u32, option: u64, arg: u64) -> i64 {
        const PR_SET_NAME: u64 = 15;
        const PR_GET_NAME: u64 = 16;
        match option {
            // The name is truncated to 15 bytes (strncpy_from_user into comm).
            PR_SET_NAME => match self.read_cstr(c, tid, arg, 15).or_else(|e| {
                let mut b = [0u8; 15];
                match e {
                    ENAMETOOLONG => self
                        .read_user(c, tid, arg, &mut b)
                        .map(|()| b.to_vec())
                        .map_err(|()| EFAULT),
                    e => Err(e),
                }
            }) {
                Ok(name) => {
                    if let Some(t) = self.k.tasks.get_mut(&tid) {
                        t.comm = String::from_utf8_lossy(&name[..name.len().min(15)]).into_owned();
                    }
                    0
                }
                Err(_) => -EFAULT,
            },
            PR_GET_NAME => {
                let mut b = [0u8; 16];
                if let Some(t) = self.k.tasks.get(&tid) {
                    let n = t.comm.len().min(15);
                    b[..n].copy_from_slice(&t.comm.as_bytes()[..n]);
                }
                if self.write_user(c, tid, arg, &b).is_err() {
                    -EFAULT
                } else {
                    0
                }
            }
            _ => -EINVAL,
        }
    }

    /// rseq(2) as kernel/rseq.c's sys_rseq checks it: unregistering needs the same
    /// address, length and signature and resets the ids; registering needs a 32-byte
    /// area aligned on 32 (or a longer one covering the feature size), and the ids are
    /// written at the return to user mode (rseq_set_notify_resume).
    fn sys_rseq(&mut self, c: usize, tid: u32, addr: u64, len: u32, flags: u64, sig: u32) -> i64 {
        const FLAG_UNREGISTER: u64 = 1;
        let Some(cur) = self.k.tasks.get(&tid).map(|t| t.rseq) else { return -ESRCH };
        if flags & FLAG_UNREGISTER != 0 {
            let Some((a, l, s)) = cur else { return -EINVAL };
            if flags & !FLAG_UNREGISTER != 0 || a != addr || l != len {
                return -EINVAL;
            }
            if s != sig {
                return -EPERM;
            }
            // rseq_reset_rseq_cpu_node_id: cpu_id_start 0, cpu_id
            // RSEQ_CPU_ID_UNINITIALIZED, node_id 0, mm_cid 0.
            let mut b = [0u8; 8];
            b[4..8].copy_from_slice(&RSEQ_CPU_ID_UNINITIALIZED.to_le_bytes());
            if self.write_user(c, tid, addr, &b).is_err()
                || self.write_user(c, tid, addr + 20, &[0u8; 8]).is_err()
            {
                return -EFAULT;
            }
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.rseq = None;
                t.rseq_notify = false;
            }
            return 0;
        }
        if flags != 0 {
            return -EINVAL;
        }
        if let Some((a, l, s)) = cur {
            if a != addr || l != len {
                return -EINVAL;
            }
            if s != sig {
                return -EPERM;
            }
            return -EBUSY;
        }
        let ok = if len == RSEQ_ORIG_SIZE {
            addr.is_multiple_of(u64::from(RSEQ_ORIG_SIZE))
        } else {
            len > RSEQ_ORIG_SIZE && addr.is_multiple_of(RSEQ_ALIGN) && len >= RSEQ_FEATURE_SIZE
        };
        if !ok {
            return -EINVAL;
        }
        if addr.checked_add(u64::from(len)).is_none_or(|end| end > TASK_SIZE) {
            return -EFAULT;
        }
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.rseq = Some((addr, len, sig));
            t.rseq_notify = true;
        }
        0
    }

    /// __rseq_handle_notify_resume on core `c` for `tid` returning to user mode: when
    /// its ids are due, writes cpu_id_start, cpu_id, node_id and mm_cid (the user
    /// copies of rseq_update_cpu_node_id); an area that cannot be written kills the
    /// process with SIGSEGV (force_sigsegv). True when the task goes on to user mode.
    pub(crate) fn rseq_notify_resume(&mut self, c: usize, tid: u32) -> bool {
        let Some(t) = self.k.tasks.get_mut(&tid) else { return false };
        if !std::mem::take(&mut t.rseq_notify) {
            return true;
        }
        self.rseq_handle(c, tid)
    }

    /// rseq_preempt / rseq_migrate: an event for `tid`'s critical section, handled at
    /// its next return to user mode.
    pub(crate) fn rseq_event(&mut self, tid: u32) {
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            if t.rseq.is_some() {
                t.rseq_event = true;
                t.rseq_notify = true;
            }
        }
    }

    /// rseq_signal_deliver: a signal is being delivered to `tid` on core `c`, so the
    /// critical section it is in (if any) aborts before the handler's frame is built.
    /// False when the task's rseq state was bad and the process was killed.
    pub(crate) fn rseq_signal_deliver(&mut self, c: usize, tid: u32) -> bool {
        let Some(t) = self.k.tasks.get_mut(&tid) else { return false };
        if t.rseq.is_none() {
            return true;
        }
        t.rseq_event = true;
        t.rseq_notify = false;
        self.rseq_handle(c, tid)
    }

    /// __rseq_handle_notify_resume: the critical-section fixup, then the ids; an error
    /// is force_sigsegv.
    fn rseq_handle(&mut self, c: usize, tid: u32) -> bool {
        let Some((addr, _, sig)) = self.k.tasks.get(&tid).and_then(|t| t.rseq) else {
            return true;
        };
        if self.rseq_ip_fixup(c, tid, addr, sig).is_err() {
            self.kill_process(c, tid, crate::machine::sig::SIGSEGV, Some("rseq_cs".into()));
            return false;
        }
        let cid = self.mm_cid(tid, c);
        let b = rseq_ids(c as u32, 0, cid);
        if self.write_user(c, tid, addr, &b[..8]).is_err()
            || self.write_user(c, tid, addr + 20, &b[20..28]).is_err()
        {
            self.kill_process(c, tid, crate::machine::sig::SIGSEGV, Some("rseq area".into()));
            return false;
        }
        self.probes.kstats.rseq_updates += 1;
        true
    }

    /// rseq_ip_fixup (kernel/rseq.c) for `tid`, whose area is at `addr` and signature
    /// `sig`: rseq_get_rseq_cs reads and checks the descriptor `rseq_cs` points at
    /// (version 0, the range below TASK_SIZE, abort_ip outside it and preceded by the
    /// signature); an IP outside the range clears `rseq_cs`; inside it, with an event
    /// since (rseq_need_restart, which also refuses any flags), `rseq_cs` is cleared and
    /// the task resumes at abort_ip. Err: the task's state is bad (SIGSEGV).
    fn rseq_ip_fixup(&mut self, c: usize, tid: u32, addr: u64, sig: u32) -> Result<(), ()> {
        let mut b = [0u8; 8];
        self.read_user(c, tid, addr + 8, &mut b)?;
        let ptr = u64::from_le_bytes(b);
        if ptr == 0 {
            return Ok(());
        }
        if ptr >= TASK_SIZE {
            return Err(());
        }
        let mut d = [0u8; 32];
        self.read_user(c, tid, ptr, &mut d)?;
        let w = |k: usize| u64::from_le_bytes(d[k..k + 8].try_into().unwrap_or_default());
        let (version, flags) = (
            u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
            u32::from_le_bytes([d[4], d[5], d[6], d[7]]),
        );
        let (start, post, abort) = (w(8), w(16), w(24));
        if version > 0 || start >= TASK_SIZE || start.wrapping_add(post) >= TASK_SIZE {
            return Err(());
        }
        // The abort handler lies outside the critical section.
        if abort.wrapping_sub(start) < post {
            return Err(());
        }
        let mut s = [0u8; 4];
        self.read_user(c, tid, abort.wrapping_sub(4), &mut s)?;
        if u32::from_le_bytes(s) != sig {
            return Err(());
        }
        let ip = self.k.tasks.get(&tid).map_or(0, |t| t.cpu.rip);
        if ip.wrapping_sub(start) >= post {
            return self.write_user(c, tid, addr + 8, &[0; 8]);
        }
        // rseq_need_restart: flags of the descriptor or of the area are refused.
        let mut f = [0u8; 4];
        self.read_user(c, tid, addr + 16, &mut f)?;
        if flags != 0 || u32::from_le_bytes(f) != 0 {
            return Err(());
        }
        let Some(t) = self.k.tasks.get_mut(&tid) else { return Err(()) };
        if !std::mem::take(&mut t.rseq_event) {
            return Ok(());
        }
        self.write_user(c, tid, addr + 8, &[0; 8])?;
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.cpu.rip = abort;
        }
        self.probes.kstats.rseq_aborts += 1;
        Ok(())
    }

    /// getrandom(2) (drivers/char/random.c): the seeded generator's bytes, written a
    /// MiB at a time; lengths above INT_MAX are clamped.
    fn sys_getrandom(&mut self, c: usize, tid: u32, buf: u64, len: u64, flags: u64) -> i64 {
        const NONBLOCK: u64 = 1;
        const RANDOM: u64 = 2;
        const INSECURE: u64 = 4;
        if flags & !(NONBLOCK | RANDOM | INSECURE) != 0
            || flags & (RANDOM | INSECURE) == RANDOM | INSECURE
        {
            return -EINVAL;
        }
        let len = len.min(i32::MAX as u64);
        let mut chunk = vec![0u8; len.min(1 << 20) as usize];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.k.rng.fill(&mut chunk[..n]);
            if self.write_user(c, tid, buf.wrapping_add(done), &chunk[..n]).is_err() {
                return if done > 0 { done as i64 } else { -EFAULT };
            }
            done += n as u64;
        }
        len as i64
    }

    fn sys_clock_gettime(&mut self, c: usize, tid: u32, clock: u64, out: u64) -> i64 {
        let ns = self.now_ns(tid);
        let ns = match clock {
            0 | 5 | 8 | 11 => ns + EPOCH_S * 1_000_000_000, // REALTIME, *_COARSE, ALARM, TAI
            1 | 4 | 6 | 7 | 9 => ns,                        // MONOTONIC, RAW, COARSE, BOOTTIME
            2 | 3 => ns,                                    // process/thread CPU time
            _ => return -EINVAL,
        };
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
        if self.write_user(c, tid, out, &b).is_err() {
            return -EFAULT;
        }
        0
    }

    fn sys_gettimeofday(&mut self, c: usize, tid: u32, out: u64) -> i64 {
        if out == 0 {
            return 0;
        }
        let ns = self.now_ns(tid) + EPOCH_S * 1_000_000_000;
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
        if self.write_user(c, tid, out, &b).is_err() {
            return -EFAULT;
        }
        0
    }

    fn sys_nanosleep(
        &mut self,
        c: usize,
        tid: u32,
        clock: u64,
        flags: u64,
        req: u64,
        rem: u64,
    ) -> Sys {
        let mut b = [0u8; 16];
        if self.read_user(c, tid, req, &mut b).is_err() {
            return Sys::Ret(-EFAULT);
        }
        let (s, ns) = (le64(&b[..8]) as i64, le64(&b[8..]) as i64);
        if s < 0 || !(0..1_000_000_000).contains(&ns) {
            return Sys::Ret(-EINVAL);
        }
        let d = (s as u64).saturating_mul(1_000_000_000).saturating_add(ns as u64);
        let now = self.now_ns(tid);
        let until = if flags & 1 != 0 {
            // TIMER_ABSTIME
            let base = if clock == 0 { EPOCH_S * 1_000_000_000 } else { 0 };
            d.saturating_sub(base)
        } else {
            now.saturating_add(d)
        };
        if until <= now {
            return Sys::Ret(0);
        }
        let abs = flags & 1 != 0;
        Sys::Block(Wait::Sleep { until_ns: until, rem: if abs { 0 } else { rem }, abs })
    }

    fn sys_uname(&mut self, c: usize, tid: u32, out: u64) -> i64 {
        let mut b = [0u8; 390];
        for (k, s) in ["Linux", "emu", "6.18.0-emu", "#1 SMP PREEMPT_DYNAMIC", "x86_64", "(none)"]
            .iter()
            .enumerate()
        {
            b[65 * k..65 * k + s.len()].copy_from_slice(s.as_bytes());
        }
        if self.write_user(c, tid, out, &b).is_err() {
            return -EFAULT;
        }
        0
    }

    fn sys_sysinfo(&mut self, c: usize, tid: u32, out: u64) -> i64 {
        let mut b = [0u8; 112];
        let up = self.now_ns(tid) / 1_000_000_000;
        b[..8].copy_from_slice(&up.to_le_bytes());
        let total = self.hw.mem.phys_limit_bytes();
        b[32..40].copy_from_slice(&total.to_le_bytes());
        b[40..48].copy_from_slice(
            &total.saturating_sub(self.hw.mem.phys.allocated * PAGE).to_le_bytes(),
        );
        b[80..82].copy_from_slice(&(self.k.tasks.len() as u16).to_le_bytes());
        b[104..108].copy_from_slice(&1u32.to_le_bytes());
        if self.write_user(c, tid, out, &b).is_err() {
            return -EFAULT;
        }
        0
    }

    fn sys_sched_getaffinity(&mut self, c: usize, tid: u32, pid: i32, len: u64, out: u64) -> i64 {
        let n = self.hw.cpus.len();
        let bytes = n.div_ceil(64) * 8;
        if (len as usize) < bytes || len & 7 != 0 {
            return -EINVAL;
        }
        let target = if pid == 0 { tid } else { pid as u32 };
        let aff = self.k.tasks.get(&target).map(|t| t.affinity.clone()).unwrap_or_default();
        let mut b = vec![0u8; bytes];
        for (i, on) in aff.iter().enumerate() {
            if *on {
                b[i / 8] |= 1 << (i % 8);
            }
        }
        if self.write_user(c, tid, out, &b).is_err() {
            return -EFAULT;
        }
        bytes as i64
    }

    fn sys_sched_setaffinity(&mut self, c: usize, tid: u32, pid: u32, len: u64, mask: u64) -> i64 {
        let target = if pid == 0 { tid } else { pid };
        if !self.k.tasks.contains_key(&target) {
            return -ESRCH;
        }
        let n = self.hw.cpus.len();
        let mut b = vec![0u8; (len as usize).min(1024)];
        if self.read_user(c, tid, mask, &mut b).is_err() {
            return -EFAULT;
        }
        let aff: Vec<bool> =
            (0..n).map(|i| b.get(i / 8).is_some_and(|x| x & (1 << (i % 8)) != 0)).collect();
        if !aff.iter().any(|&x| x) {
            return -EINVAL;
        }
        if let Some(t) = self.k.tasks.get_mut(&target) {
            t.affinity = aff.clone();
        }
        self.mm_cid_affinity(target, &aff);
        self.migrate_if_needed(c, target);
        0
    }

    /// kill, tgkill, tkill. Every guest process is in one process group (its id is the
    /// first process's pid), so `kill(0, ..)`, `kill(-pgrp, ..)` and `kill(-1, ..)`
    /// reach every guest process, the caller's included.
    fn sys_kill(&mut self, c: usize, tid: u32, pid: i64, s: u32, thread: Option<u32>) -> Sys {
        self.send_from_user(c, tid, pid, s, thread, None)
    }

    /// rt_sigqueueinfo(2) and rt_tgsigqueueinfo(2) (do_rt_sigqueueinfo): the sender's
    /// siginfo, read whole; a non-negative si_code (or SI_TKILL) would impersonate
    /// the kernel or kill(2) and is EPERM unless the target is the caller.
    fn sys_rt_sigqueueinfo(&mut self, c: usize, tid: u32, a: [u64; 6], thread: bool) -> Sys {
        let (pid, t, s, uinfo) = if thread {
            (a[0] as i32, Some(a[1] as i32), a[2] as i32 as u32, a[3])
        } else {
            (a[0] as i32, None, a[1] as i32 as u32, a[2])
        };
        let mut b = [0u8; 128];
        if self.read_user(c, tid, uinfo, &mut b).is_err() {
            return Sys::Ret(-EFAULT);
        }
        if pid <= 0 && thread || t.is_some_and(|t| t <= 0) {
            return Sys::Ret(-EINVAL);
        }
        let code = i32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        let me = match t {
            Some(_) => i64::from(tid),
            None => self.k.tasks.get(&tid).map_or(0, |x| i64::from(x.tgid)),
        };
        let target = t.map_or(i64::from(pid), i64::from);
        if (code >= 0 || code == -6) && target != me {
            return Sys::Ret(-EPERM);
        }
        let mut rest = [0u8; 112];
        rest.copy_from_slice(&b[16..]);
        let errno = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let info = SigInfo { signo: s, code, fields: SigFields::User { errno, rest } };
        // POSIX.1b does not mention process groups: one process only.
        if pid <= 0 {
            return Sys::Ret(-ESRCH);
        }
        self.send_from_user(c, tid, i64::from(pid), s, t.map(|t| t as u32), Some(info))
    }

    /// The body of kill, tgkill, tkill and rt_[tg]sigqueueinfo.
    fn send_from_user(
        &mut self,
        c: usize,
        tid: u32,
        pid: i64,
        s: u32,
        thread: Option<u32>,
        given: Option<SigInfo>,
    ) -> Sys {
        if s > 64 {
            return Sys::Ret(-EINVAL);
        }
        let targets: Vec<u32> = match thread {
            Some(t) => match self.k.tasks.get(&t) {
                Some(x) if x.state != State::Zombie && (i64::from(x.tgid) == pid || pid == -1) => {
                    vec![t]
                }
                _ => return Sys::Ret(-ESRCH),
            },
            None if pid > 0 => match self.k.tasks.get(&(pid as u32)) {
                Some(x) if x.state != State::Zombie && x.tgid == x.tid => vec![pid as u32],
                // A thread id names its process.
                Some(x) if x.state != State::Zombie => vec![x.tgid],
                _ => return Sys::Ret(-ESRCH),
            },
            None if pid == 0 || pid == -1 || pid == -i64::from(self.k.init_pid) => self
                .k
                .tasks
                .values()
                .filter(|t| t.tid == t.tgid && t.state != State::Zombie)
                .map(|t| t.tid)
                .collect(),
            None => return Sys::Ret(-ESRCH),
        };
        if s == 0 {
            return Sys::Ret(0);
        }
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.cpu.gpr[0] = 0;
        }
        // The caller's own process last, so that a fatal signal to itself comes after
        // the others are signalled.
        let me = self.k.tasks.get(&tid).map_or(0, |t| t.tgid);
        // tgkill and tkill are SI_USER too since Linux 6.9 (6.18 reports SI_USER where
        // older kernels said SI_TKILL).
        let code = si::SI_USER;
        let info = given.unwrap_or(SigInfo {
            signo: s,
            code,
            fields: SigFields::Kill { pid: me, uid: self.k.uid },
        });
        let (t1, s1) = (thread.is_some(), s.max(1));
        for &t in targets.iter().filter(|&&t| t != me) {
            let target = if t1 { t } else { self.process_target(t, s1) };
            self.send_signal(c, target, info);
        }
        if targets.contains(&me) {
            // The caller takes a signal to its own process if it does not block it.
            let mine = self.k.tasks.get(&tid).is_some_and(|t| t.sigmask & (1 << (s1 - 1)) == 0);
            let target = if t1 {
                targets[0]
            } else if mine {
                tid
            } else {
                self.process_target(me, s1)
            };
            self.send_signal(c, target, info);
        }
        Sys::Done
    }
}

const EBUSY: i64 = 16;

/// The top of user space (TASK_SIZE_MAX with 4-level paging: 2^47 minus a page).
/// rseq's original (and minimum) area size and alignment, ORIG_RSEQ_SIZE.
pub(crate) const RSEQ_ORIG_SIZE: u32 = 32;
/// AT_RSEQ_FEATURE_SIZE: offsetof(struct rseq, end) for the fields emu writes
/// (cpu_id_start, cpu_id, rseq_cs, flags, node_id, mm_cid), as Linux 6.3 to 6.18 report
/// it (fs/binfmt_elf.c create_elf_tables; include/uapi/linux/rseq.h).
pub(crate) const RSEQ_FEATURE_SIZE: u32 = 28;
/// AT_RSEQ_ALIGN: __alignof__(struct rseq), which is aligned(4 * sizeof(__u64)).
pub(crate) const RSEQ_ALIGN: u64 = 32;
/// RSEQ_CPU_ID_UNINITIALIZED (include/uapi/linux/rseq.h), cpu_id of an unregistered area.
const RSEQ_CPU_ID_UNINITIALIZED: u32 = u32::MAX;

/// The first 28 bytes of a struct rseq as __rseq_handle_notify_resume leaves them for a
/// task on `cpu` of NUMA node `node` with concurrency id `cid` (rseq_cs and flags,
/// bytes 8..20, are the user's and not written).
pub(crate) fn rseq_ids(cpu: u32, node: u32, cid: u32) -> [u8; 28] {
    let mut b = [0u8; 28];
    b[0..4].copy_from_slice(&cpu.to_le_bytes());
    b[4..8].copy_from_slice(&cpu.to_le_bytes());
    b[20..24].copy_from_slice(&node.to_le_bytes());
    b[24..28].copy_from_slice(&cid.to_le_bytes());
    b
}

pub const TASK_SIZE: u64 = (1 << 47) - PAGE;
/// vm.max_map_count's default (DEFAULT_MAX_MAP_COUNT: USHRT_MAX - 5).
pub const MAX_MAP_COUNT: usize = 65_530;

/// The most one read or write transfers (rw_verify_area's MAX_RW_COUNT: INT_MAX rounded
/// down to a page).
pub(crate) const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// The host buffer read(2) and write(2) copy through, a chunk at a time.
const RW_CHUNK: u64 = 1 << 20;

/// access_ok: `[addr, addr + len)` lies in user space.
fn access_ok(addr: u64, len: u64) -> bool {
    addr.checked_add(len).is_some_and(|e| e <= TASK_SIZE + PAGE)
}

/// A clock id clock_gettime and clock_getres accept (posix_clock: REALTIME, MONOTONIC,
/// the CPU-time clocks, MONOTONIC_RAW, the coarse ones, BOOTTIME, the alarm clocks, TAI).
fn valid_clock(id: i32) -> bool {
    matches!(id, 0..=9 | 11)
}

/// munmap's argument checks (mm/vma.c `do_vmi_munmap`): a page-aligned start within user
/// space and a length that fits above it.
fn check_range(addr: u64, len: u64) -> Result<(), i64> {
    if addr & (PAGE - 1) != 0 || addr > TASK_SIZE || len > TASK_SIZE - addr || page_up(len) == 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// mmap's argument checks (mm/mmap.c `do_mmap`, `ksys_mmap_pgoff`, `get_unmapped_area`).
fn check_mmap(a: [u64; 6]) -> Result<(), i64> {
    let (addr, len, flags, off) = (a[0], a[1], a[3], a[5]);
    const MAP_FIXED: u64 = 0x10;
    const MAP_FIXED_NOREPLACE: u64 = 0x100000;
    if off & (PAGE - 1) != 0 || !matches!(flags & 0xf, 1..=3) || len == 0 {
        return Err(EINVAL);
    }
    let len = page_up(len);
    if len == 0 || len > TASK_SIZE - crate::mm::MMAP_MIN {
        return Err(ENOMEM);
    }
    if (off >> 12).checked_add(len >> 12).is_none() {
        return Err(EOVERFLOW);
    }
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        if addr & (PAGE - 1) != 0 {
            return Err(EINVAL);
        }
        if addr > TASK_SIZE - len {
            return Err(ENOMEM);
        }
    }
    Ok(())
}

/// mprotect's argument checks (mm/mprotect.c `do_mprotect_pkey`): Ok(false) when there
/// is nothing to do (a zero length).
fn check_mprotect(addr: u64, len: u64, prot: u64) -> Result<bool, i64> {
    const KNOWN: u64 = 0x1 | 0x2 | 0x4 | 0x8 | 0x0100_0000 | 0x0200_0000;
    if addr & (PAGE - 1) != 0 || prot & !KNOWN != 0 || prot & 0x0300_0000 == 0x0300_0000 {
        return Err(EINVAL);
    }
    if len == 0 {
        return Ok(false);
    }
    let end = addr.wrapping_add(page_up(len));
    if page_up(len) == 0 || end <= addr {
        return Err(ENOMEM);
    }
    Ok(true)
}

/// madvise's argument checks (mm/madvise.c `madvise_behavior_valid`, `do_madvise`):
/// Ok(None) when there is nothing to do, else the end of the range.
fn check_madvise(addr: u64, len: u64, advice: u64) -> Result<Option<u64>, i64> {
    if !matches!(advice, 0..=4 | 8..=25 | 100 | 101 | 102 | 103) {
        return Err(EINVAL);
    }
    if addr & (PAGE - 1) != 0 || (len != 0 && page_up(len) == 0) {
        return Err(EINVAL);
    }
    let end = addr.wrapping_add(page_up(len));
    if end < addr {
        return Err(EINVAL);
    }
    if matches!(advice, 100 | 101) {
        // MADV_HWPOISON, MADV_SOFT_OFFLINE: CAP_SYS_ADMIN only.
        return Err(EPERM);
    }
    Ok((end != addr).then_some(end))
}

/// mremap's argument checks (mm/mremap.c `do_mremap`, `mremap_to`).
fn check_mremap(
    addr: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> Result<(), i64> {
    const MAYMOVE: u64 = 1;
    const FIXED: u64 = 2;
    const DONTUNMAP: u64 = 4;
    if flags & !(MAYMOVE | FIXED | DONTUNMAP) != 0
        || flags & (FIXED | DONTUNMAP) != 0 && flags & MAYMOVE == 0
        || addr & (PAGE - 1) != 0
    {
        return Err(EINVAL);
    }
    let (old_len, new_len) = (page_up(old_len), page_up(new_len));
    if new_len == 0 || new_len > TASK_SIZE || old_len > TASK_SIZE {
        return Err(EINVAL);
    }
    if flags & FIXED != 0 {
        if new_addr & (PAGE - 1) != 0 || new_len > TASK_SIZE || new_addr > TASK_SIZE - new_len {
            return Err(EINVAL);
        }
        // The old and new ranges may not overlap.
        if addr.saturating_add(old_len) > new_addr && new_addr + new_len > addr {
            return Err(EINVAL);
        }
    }
    if flags & DONTUNMAP != 0 && old_len != new_len {
        return Err(EINVAL);
    }
    Ok(())
}

pub(crate) fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}
