//! Resource limits (kernel/sys.c: `do_prlimit`, getrlimit, setrlimit, prlimit64): one
//! table per process, inherited by fork and kept across execve, starting from the
//! values init has at boot (include/asm-generic/resource.h INIT_RLIMITS, with
//! RLIMIT_NPROC and RLIMIT_SIGPENDING from `fork_init`'s max_threads, which follows
//! the machine's memory). The limits are recorded and reported; emu enforces none of
//! them beyond what it already bounds (the stack's growth, the descriptor table).

use crate::fs::errno::*;
use crate::machine::Machine;

/// RLIM_NLIMITS.
pub const NLIMITS: usize = 16;
/// RLIM_INFINITY.
const INF: u64 = u64::MAX;
const RLIMIT_STACK: usize = 3;
const RLIMIT_CORE: usize = 4;
const RLIMIT_NPROC: usize = 6;
const RLIMIT_NOFILE: usize = 7;
pub const RLIMIT_MEMLOCK: usize = 8;
const RLIMIT_SIGPENDING: usize = 11;
const RLIMIT_MSGQUEUE: usize = 12;
const RLIMIT_NICE: usize = 13;
const RLIMIT_RTPRIO: usize = 14;
/// fs/file.c sysctl_nr_open: the highest RLIMIT_NOFILE hard limit.
const NR_OPEN: u64 = 1 << 20;

/// A process's limits: (soft, hard) per resource.
pub type Limits = [(u64, u64); NLIMITS];

/// The limits of the first process on a machine with `memory_mib` MiB: INIT_RLIMITS
/// (an 8 MiB stack, no core files, 1024/4096 descriptors (as systemd sets them), 8 MiB
/// of locked memory, 819200 bytes of message queues, nice and RT priority 0) and half
/// of fork_init's max_threads (memory pages / 32 with 4 KiB pages and 16 KiB stacks)
/// for the processes and pending signals of a user.
pub fn boot_limits(memory_mib: u64) -> Limits {
    let mut l = [(INF, INF); NLIMITS];
    let threads = (memory_mib * 256 / 32).max(20) / 2;
    l[RLIMIT_STACK] = (crate::mm::STACK_LIMIT, INF);
    l[RLIMIT_CORE] = (0, INF);
    l[RLIMIT_NPROC] = (threads, threads);
    l[RLIMIT_NOFILE] = (1024, 4096);
    l[RLIMIT_MEMLOCK] = (8 << 20, 8 << 20);
    l[RLIMIT_SIGPENDING] = (threads, threads);
    l[RLIMIT_MSGQUEUE] = (819_200, 819_200);
    l[RLIMIT_NICE] = (0, 0);
    l[RLIMIT_RTPRIO] = (0, 0);
    l
}

/// do_prlimit's checks of a new limit for `resource` against the current one; `root`
/// has CAP_SYS_RESOURCE. Returns the errno.
pub fn check_new(resource: usize, old: (u64, u64), new: (u64, u64), root: bool) -> Result<(), i64> {
    if new.0 > new.1 {
        return Err(EINVAL);
    }
    if resource == RLIMIT_NOFILE && new.1 > NR_OPEN {
        return Err(EPERM);
    }
    if new.1 > old.1 && !root {
        return Err(EPERM);
    }
    Ok(())
}

impl Machine {
    /// The limits of `tid`'s process.
    fn limits(&self, tid: u32) -> Limits {
        let tgid = self.k.tasks.get(&tid).map_or(tid, |t| t.tgid);
        self.k.rlimits.get(&tgid).copied().unwrap_or(self.k.boot_rlimits)
    }

    /// The soft limit of `resource` for `tid`'s process.
    pub(crate) fn rlimit(&self, tid: u32, resource: usize) -> u64 {
        self.limits(tid)[resource].0
    }

    /// A new process `child` starts with `parent`'s limits (copy_signal).
    pub(crate) fn inherit_rlimits(&mut self, parent: u32, child: u32) {
        let l = self.limits(parent);
        self.k.rlimits.insert(child, l);
    }

    /// prlimit64(pid, resource, new, old), and getrlimit/setrlimit as prlimit64 on the
    /// caller (`pid` 0). `new` and `old` are user addresses or 0.
    pub(crate) fn sys_prlimit(
        &mut self,
        c: usize,
        tid: u32,
        pid: i32,
        resource: u32,
        new: u64,
        old: u64,
    ) -> i64 {
        // sys_prlimit64: the new limit is read, the process found, then do_prlimit
        // checks the resource and the limit; the old one is written back last.
        let mut want = None;
        if new != 0 {
            let mut b = [0u8; 16];
            if self.read_user(c, tid, new, &mut b).is_err() {
                return -EFAULT;
            }
            let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
            want = Some((word(0), word(8)));
        }
        let target = if pid == 0 {
            tid
        } else {
            match self.task_by_pid(pid) {
                Some(t) => t,
                None => return -ESRCH,
            }
        };
        let resource = resource as usize;
        if resource >= NLIMITS {
            return -EINVAL;
        }
        let mut limits = self.limits(target);
        let cur = limits[resource];
        if let Some(w) = want {
            if let Err(e) = check_new(resource, cur, w, self.k.uid == 0) {
                return -e;
            }
            limits[resource] = w;
            let tgid = self.k.tasks.get(&target).map_or(target, |t| t.tgid);
            self.k.rlimits.insert(tgid, limits);
        }
        if old != 0 {
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&cur.0.to_le_bytes());
            b[8..].copy_from_slice(&cur.1.to_le_bytes());
            if self.write_user(c, tid, old, &b).is_err() {
                return -EFAULT;
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_limits_follow_init_and_the_memory() {
        let l = boot_limits(1024);
        assert_eq!(l[RLIMIT_STACK], (8 << 20, INF));
        assert_eq!(l[RLIMIT_NOFILE], (1024, 4096));
        assert_eq!(l[RLIMIT_CORE], (0, INF));
        // 1 GiB: 262144 pages, max_threads 8192, half of it per user.
        assert_eq!(l[RLIMIT_NPROC], (4096, 4096));
        assert_eq!(l[0], (INF, INF));
    }

    #[test]
    fn new_limits_are_checked_as_do_prlimit_does() {
        let old = (1024, 4096);
        assert_eq!(check_new(RLIMIT_NOFILE, old, (10, 20), false), Ok(()));
        assert_eq!(check_new(RLIMIT_NOFILE, old, (30, 20), true), Err(EINVAL));
        assert_eq!(check_new(RLIMIT_NOFILE, old, (10, 5000), false), Err(EPERM));
        assert_eq!(check_new(RLIMIT_NOFILE, old, (10, 5000), true), Ok(()));
        assert_eq!(check_new(RLIMIT_NOFILE, old, (10, NR_OPEN + 1), true), Err(EPERM));
        assert_eq!(check_new(0, (INF, INF), (5, INF), false), Ok(()));
    }
}
