//! statx (fs/stat.c), mincore (mm/mincore.c), get_robust_list (kernel/futex),
//! membarrier (kernel/sched/membarrier.c), the mlock family (mm/mlock.c) and fadvise64
//! (mm/fadvise.c).
//!
//! statx reports what fstat and stat report (the file layer's [`crate::fs::Stat`]): the
//! basic fields and a mount id (0); emu keeps one timestamp per file, reported as
//! atime, mtime and ctime, and no birth time. Attributes are none; their mask is what
//! the VFS always offers (automount, DAX, mount root), with shmem's append, immutable
//! and nodump for /dev/null and memfds.
//!
//! mincore reports a page resident when its PTE is present, or, for file mappings, when
//! the page cache holds it: emu's page cache holds every page of the file (images and
//! host files are read on demand but never evicted) and a memfd's written pages.
//!
//! membarrier keeps Linux's registrations per address space (inherited by fork, as
//! dup_mm copies them). An expedited command interrupts the other CPUs running the
//! address space (all CPUs running a registered one for GLOBAL_EXPEDITED) with a
//! cross-CPU call each, through the same IPI machinery as TLB shootdowns, and waits for
//! them; MEMBARRIER_CMD_GLOBAL (synchronize_rcu) returns at once: the model has no
//! RCU grace periods.

use crate::fs::{errno::*, Object, Resolved, Stat};
use crate::machine::Machine;
use crate::mm::{Backing, Source, PAGE};
use crate::syscall::{Sys, TASK_SIZE};
use crate::task::{SigFields, SigInfo, State};

const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
const AT_NO_AUTOMOUNT: u32 = 0x800;
const AT_EMPTY_PATH: u32 = 0x1000;
const AT_STATX_SYNC_TYPE: u32 = 0x6000;
const STATX_BASIC_STATS: u32 = 0x7ff;
const STATX_MNT_ID: u32 = 0x1000;
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
const STATX_RESERVED: u32 = 0x8000_0000;
const STATX_ATTR_AUTOMOUNT: u64 = 0x1000;
const STATX_ATTR_MOUNT_ROOT: u64 = 0x2000;
const STATX_ATTR_DAX: u64 = 0x20_0000;
const STATX_ATTR_SHMEM: u64 = 0x10 | 0x20 | 0x40;

/// The major and minor numbers of a user-space dev_t (glibc's gnu_dev_major/minor).
fn dev_split(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// The 256-byte struct statx.
fn statx_bytes(s: &Stat, mask: u32, attr_mask: u64) -> [u8; 256] {
    let mut b = [0u8; 256];
    let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(0, &mask.to_le_bytes());
    put(4, &(s.blksize as u32).to_le_bytes());
    put(16, &(s.nlink as u32).to_le_bytes());
    put(20, &s.uid.to_le_bytes());
    put(24, &s.gid.to_le_bytes());
    put(28, &(s.mode as u16).to_le_bytes());
    put(32, &s.ino.to_le_bytes());
    put(40, &s.size.to_le_bytes());
    put(48, &s.blocks.to_le_bytes());
    put(56, &attr_mask.to_le_bytes());
    // atime, ctime and mtime (btime at 80 stays zero: not in the mask).
    for off in [64, 96, 112] {
        put(off, &s.mtime.0.to_le_bytes());
        put(off + 8, &(s.mtime.1 as u32).to_le_bytes());
    }
    let (rmaj, rmin) = dev_split(s.rdev);
    let (dmaj, dmin) = dev_split(s.dev);
    put(128, &rmaj.to_le_bytes());
    put(132, &rmin.to_le_bytes());
    put(136, &dmaj.to_le_bytes());
    put(140, &dmin.to_le_bytes());
    b
}

impl Machine {
    /// A path made absolute against `dirfd` (AT_FDCWD: the caller's working directory;
    /// or a directory descriptor).
    /// A descriptor that is not a directory is ENOTDIR.
    pub(crate) fn at_path(&mut self, tid: u32, dirfd: i32, s: &str) -> Result<String, i64> {
        if s.starts_with('/') {
            return Ok(s.to_string());
        }
        let dir = if dirfd != -100 {
            let id = self.fd(tid, dirfd).ok_or(EBADF)?;
            match self.k.files.descs.get(&id).map(|d| &d.obj) {
                Some(Object::Host { path, .. }) if path.is_dir() => path.clone(),
                _ => return Err(ENOTDIR),
            }
        } else {
            self.cwd_of(tid)
        };
        Ok(join_path(&dir.to_string_lossy(), s))
    }

    /// The metadata of a path, following a final symlink or not.
    fn stat_at(
        &mut self,
        tid: u32,
        dirfd: i32,
        path: &str,
        follow: bool,
    ) -> Result<(Stat, bool), i64> {
        let abs = self.at_path(tid, dirfd, path)?;
        let shmem = |r: &Resolved| matches!(r, Resolved::Dev(_));
        if !follow {
            // lstat: the final component itself, in a directory the guest may read.
            let p = std::path::Path::new(&abs);
            if let (Some(parent), Some(name)) = (p.parent(), p.file_name()) {
                if let Ok(Resolved::Host(dir)) = self.k.files.resolve(&parent.to_string_lossy()) {
                    let full = dir.join(name);
                    if self.k.files.resolve(&full.to_string_lossy()).is_ok() || full.is_symlink() {
                        let r = Resolved::Host(full);
                        return self.k.files.stat_path(&r, false).map(|s| (s, false));
                    }
                }
            }
        }
        let r = self.k.files.resolve(&abs)?;
        let s = self.k.files.stat_path(&r, follow)?;
        Ok((s, shmem(&r)))
    }

    /// statx(2).
    pub(crate) fn sys_statx(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let (dirfd, upath, flags, mask, buf) = (a[0] as i32, a[1], a[2] as u32, a[3] as u32, a[4]);
        // getname: with AT_EMPTY_PATH a null or empty path names the descriptor.
        let path = if flags & AT_EMPTY_PATH != 0 && upath == 0 {
            None
        } else {
            match self.read_cstr(c, tid, upath, 4096) {
                Ok(p) if p.is_empty() && flags & AT_EMPTY_PATH != 0 => None,
                Ok(p) if p.is_empty() => return -ENOENT,
                Ok(p) => Some(String::from_utf8_lossy(&p).into_owned()),
                Err(e) => return -e,
            }
        };
        if mask & STATX_RESERVED != 0 || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE {
            return -EINVAL;
        }
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE)
            != 0
        {
            return -EINVAL;
        }
        let (st, shmem) = match path {
            None if dirfd == -100 => match self.stat_at(tid, -100, ".", true) {
                Ok(x) => x,
                Err(e) => return -e,
            },
            None => {
                let Some(d) = self.fd(tid, dirfd) else { return -EBADF };
                let shmem = matches!(
                    self.k.files.descs.get(&d).map(|x| &x.obj),
                    Some(Object::Dev(_) | Object::Memfd(_))
                );
                match self.k.files.stat(d) {
                    Ok(s) => (s, shmem),
                    Err(e) => return -e,
                }
            }
            Some(p) => match self.stat_at(tid, dirfd, &p, flags & AT_SYMLINK_NOFOLLOW == 0) {
                Ok(x) => x,
                Err(e) => return -e,
            },
        };
        let mnt = if mask & STATX_MNT_ID_UNIQUE != 0 { STATX_MNT_ID_UNIQUE } else { STATX_MNT_ID };
        let mut attr_mask = STATX_ATTR_AUTOMOUNT | STATX_ATTR_DAX | STATX_ATTR_MOUNT_ROOT;
        if shmem {
            attr_mask |= STATX_ATTR_SHMEM;
        }
        let b = statx_bytes(&st, STATX_BASIC_STATS | mnt, attr_mask);
        if self.write_user(c, tid, buf, &b).is_err() {
            return -EFAULT;
        }
        0
    }

    /// Whether the page at `va` of `tid`'s address space is resident (mincore).
    fn page_resident(&mut self, mmid: u32, va: u64) -> bool {
        let Some(mm) = self.k.mms.get(&mmid) else { return false };
        if emu_mmu::PageTables::leaf(&self.hw.mem.phys, mm.root, va).is_some() {
            return true;
        }
        let Some(v) = mm.find(va) else { return false };
        match &v.backing {
            Backing::Anon => false,
            Backing::Image { data: Source::Shm(shm), va: fva, off, .. } => {
                shm.borrow().resident((off + (va - fva)) / PAGE)
            }
            // The file's pages are all in the page cache; past its end nothing is.
            Backing::Image { va: fva, len, .. } => va < fva.saturating_add(*len),
        }
    }

    /// mincore(2): a byte per page, bit 0 set when resident; written a batch of up to
    /// a page of results (4096 pages) at a time, each batch within one VMA, so a hole
    /// fails with ENOMEM after the results before it were written.
    pub(crate) fn sys_mincore(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let (mut start, len, mut vec) = (a[0], a[1], a[2]);
        if start & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        if start.checked_add(len).is_none_or(|e| e > TASK_SIZE + PAGE) {
            return -ENOMEM;
        }
        let mut pages = (len >> 12) + u64::from(len & (PAGE - 1) != 0);
        if vec.checked_add(pages).is_none_or(|e| e > TASK_SIZE + PAGE) {
            return -EFAULT;
        }
        let mmid = self.k.tasks.get(&tid).map_or(0, |t| t.mm);
        while pages > 0 {
            let batch = pages.min(4096);
            let Some(vend) = self.k.mms.get(&mmid).and_then(|m| m.find(start)).map(|v| v.end)
            else {
                return -ENOMEM;
            };
            let end = vend.min(start + batch * PAGE);
            let n = (end - start) / PAGE;
            let out: Vec<u8> =
                (0..n).map(|k| u8::from(self.page_resident(mmid, start + k * PAGE))).collect();
            if self.write_user(c, tid, vec, &out).is_err() {
                return -EFAULT;
            }
            pages -= n;
            vec += n;
            start += n * PAGE;
        }
        0
    }

    /// get_robust_list(2): what set_robust_list stored for a task (0 once it exited);
    /// ESRCH for no such task. Every task of the guest runs with the same credentials,
    /// so ptrace_may_access never refuses (no EPERM).
    pub(crate) fn sys_get_robust_list(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let pid = a[0] as i32;
        let target = if pid == 0 { tid } else { pid as u32 };
        let head = match self.k.tasks.get(&target) {
            _ if pid < 0 => return -ESRCH,
            // An exited thread is gone; an exited process waits for its parent without
            // a robust list (futex_cleanup cleared it).
            Some(t) if t.state == State::Zombie && t.tid != t.tgid => return -ESRCH,
            Some(t) if t.state == State::Zombie => 0,
            Some(t) => t.robust_list,
            None => return -ESRCH,
        };
        if self.write_user(c, tid, a[2], &24u64.to_le_bytes()).is_err() {
            return -EFAULT;
        }
        if self.write_user(c, tid, a[1], &head.to_le_bytes()).is_err() {
            return -EFAULT;
        }
        0
    }

    /// membarrier(2) (sys_membarrier and its helpers).
    pub(crate) fn sys_membarrier(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        const QUERY: i32 = 0;
        const GLOBAL: i32 = 1;
        const GLOBAL_EXPEDITED: i32 = 2;
        const REGISTER_GLOBAL_EXPEDITED: i32 = 4;
        const PRIVATE_EXPEDITED: i32 = 8;
        const REGISTER_PRIVATE_EXPEDITED: i32 = 16;
        const PRIVATE_EXPEDITED_SYNC_CORE: i32 = 32;
        const REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: i32 = 64;
        const PRIVATE_EXPEDITED_RSEQ: i32 = 128;
        const REGISTER_PRIVATE_EXPEDITED_RSEQ: i32 = 256;
        const GET_REGISTRATIONS: i32 = 512;
        const FLAG_CPU: u32 = 1;
        // MEMBARRIER_STATE_* bits of mm->membarrier_state.
        const PE_READY: u32 = 1;
        const PE: u32 = 2;
        const GE_READY: u32 = 4;
        const GE: u32 = 8;
        const SC_READY: u32 = 16;
        const SC: u32 = 32;
        const RSEQ_READY: u32 = 64;
        const RSEQ: u32 = 128;
        let (cmd, flags, cpu_id) = (a[0] as i32, a[1] as u32, a[2] as i32);
        let flags_ok = if cmd == PRIVATE_EXPEDITED_RSEQ {
            flags == 0 || flags == FLAG_CPU
        } else {
            flags == 0
        };
        if !flags_ok {
            return Sys::Ret(-EINVAL);
        }
        let cpu_id = if flags & FLAG_CPU != 0 { cpu_id } else { -1 };
        let mmid = self.k.tasks.get(&tid).map_or(0, |t| t.mm);
        let state = self.k.mms.get(&mmid).map_or(0, |m| m.membarrier);
        let set = |m: &mut Machine, bits: u32| {
            if let Some(mm) = m.k.mms.get_mut(&mmid) {
                mm.membarrier |= bits;
            }
        };
        let ncpus = self.hw.cpus.len();
        let r = match cmd {
            QUERY => 0x3ff,
            GLOBAL => 0,
            GLOBAL_EXPEDITED => {
                if ncpus > 1 {
                    // Every other CPU running a task of a registered address space.
                    let targets: Vec<usize> = (0..ncpus)
                        .filter(|&k| k != c && self.runs_mm_with(k, |m| m.membarrier & GE != 0))
                        .collect();
                    self.membarrier_ipis(c, &targets);
                }
                0
            }
            REGISTER_GLOBAL_EXPEDITED => {
                if state & GE_READY == 0 {
                    set(self, GE | GE_READY);
                }
                0
            }
            REGISTER_PRIVATE_EXPEDITED
            | REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
            | REGISTER_PRIVATE_EXPEDITED_RSEQ => {
                let (ready, extra) = match cmd {
                    REGISTER_PRIVATE_EXPEDITED => (PE_READY, 0),
                    REGISTER_PRIVATE_EXPEDITED_SYNC_CORE => (SC_READY, SC),
                    _ => (RSEQ_READY, RSEQ),
                };
                if state & ready != ready {
                    set(self, PE | extra | ready);
                }
                0
            }
            PRIVATE_EXPEDITED | PRIVATE_EXPEDITED_SYNC_CORE | PRIVATE_EXPEDITED_RSEQ => {
                let ready = match cmd {
                    PRIVATE_EXPEDITED => PE_READY,
                    PRIVATE_EXPEDITED_SYNC_CORE => SC_READY,
                    _ => RSEQ_READY,
                };
                if state & ready == 0 {
                    return Sys::Ret(-EPERM);
                }
                let sync_core = cmd == PRIVATE_EXPEDITED_SYNC_CORE;
                let users = self
                    .k
                    .tasks
                    .values()
                    .filter(|t| t.mm == mmid && t.state != State::Zombie)
                    .count();
                if !sync_core && (users == 1 || ncpus == 1) {
                    return Sys::Ret(0);
                }
                let targets: Vec<usize> = if cpu_id >= 0 {
                    let k = cpu_id as usize;
                    if k < ncpus && self.runs_mm_with(k, |_| true) && self.cpu_mm(k) == Some(mmid) {
                        vec![k]
                    } else {
                        Vec::new()
                    }
                } else {
                    (0..ncpus)
                        .filter(|&k| self.cpu_mm(k) == Some(mmid) && (sync_core || k != c))
                        .collect()
                };
                // The calling CPU runs its own call in place; the others get IPIs.
                let remote: Vec<usize> = targets.into_iter().filter(|&k| k != c).collect();
                self.membarrier_ipis(c, &remote);
                0
            }
            GET_REGISTRATIONS => {
                let mut r = 0;
                for (bits, reg) in [
                    (GE | GE_READY, REGISTER_GLOBAL_EXPEDITED),
                    (PE | PE_READY, REGISTER_PRIVATE_EXPEDITED),
                    (SC | SC_READY, REGISTER_PRIVATE_EXPEDITED_SYNC_CORE),
                    (RSEQ | RSEQ_READY, REGISTER_PRIVATE_EXPEDITED_RSEQ),
                ] {
                    if state & bits != 0 {
                        r |= reg;
                    }
                }
                i64::from(r)
            }
            _ => -EINVAL,
        };
        Sys::Ret(r)
    }

    /// The address space of the task CPU `k` runs (rq->curr->mm), if it runs one.
    fn cpu_mm(&self, k: usize) -> Option<u32> {
        let t = self.k.cpus[k].current?;
        self.k.tasks.get(&t).map(|t| t.mm)
    }

    /// Whether CPU `k` runs a task whose address space satisfies `f`.
    fn runs_mm_with(&self, k: usize, f: impl Fn(&crate::mm::Mm) -> bool) -> bool {
        self.cpu_mm(k).and_then(|m| self.k.mms.get(&m)).is_some_and(f)
    }
}

/// posix_fadvise's advice values (POSIX_FADV_NORMAL to POSIX_FADV_NOREUSE).
const FADV_MAX: u64 = 5;
/// MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT.
const MCL_CURRENT: u64 = 1;
const MCL_FUTURE: u64 = 2;
const MCL_ONFAULT: u64 = 4;
/// MLOCK_ONFAULT.
const MLOCK_ONFAULT: u64 = 1;

impl Machine {
    /// fadvise64 (mm/fadvise.c `generic_fadvise`): advice about a file's page cache,
    /// which emu keeps whole, so only its validation shows: a bad descriptor, a pipe
    /// (ESPIPE), a negative length or unknown advice (EINVAL).
    pub(crate) fn sys_fadvise64(&mut self, tid: u32, fd: i32, len: i64, advice: u64) -> i64 {
        let Some(id) = self.fd(tid, fd) else { return -EBADF };
        match self.k.files.descs.get(&id).map(|d| &d.obj) {
            Some(Object::PipeRead(_) | Object::PipeWrite(_)) => return -ESPIPE,
            None => return -EBADF,
            _ => {}
        }
        if len < 0 || advice > FADV_MAX {
            return -EINVAL;
        }
        0
    }

    /// mlock, mlock2, munlock (mm/mlock.c): emu never swaps, so locking changes nothing
    /// but must be refused where Linux refuses it: flags other than MLOCK_ONFAULT, a
    /// range that is not wholly mapped (ENOMEM), more than RLIMIT_MEMLOCK for a caller
    /// without CAP_IPC_LOCK (root here has it).
    pub(crate) fn sys_mlock(&mut self, tid: u32, start: u64, len: u64, flags: Option<u64>) -> i64 {
        if flags.is_some_and(|f| f & !MLOCK_ONFAULT != 0) {
            return -EINVAL;
        }
        // do_mlock: the length is page-aligned with the start's offset (wrapping as
        // PAGE_ALIGN does); an empty range is done, a wrapping one invalid.
        let len = len.wrapping_add(start & (PAGE - 1)).wrapping_add(PAGE - 1) & !(PAGE - 1);
        let start = start & !(PAGE - 1);
        if flags.is_some() && self.k.uid != 0 {
            let limit = self.rlimit(tid, crate::rlimit::RLIMIT_MEMLOCK);
            if limit == 0 {
                return -EPERM;
            }
            if len > limit {
                return -ENOMEM;
            }
        }
        if len == 0 {
            return 0;
        }
        let Some(end) = start.checked_add(len) else { return -EINVAL };
        let Some(mm) = self.k.mms.get(&self.mm_of(tid)) else { return -ENOMEM };
        let mut a = start;
        while a < end {
            match mm.find(a) {
                Some(v) => a = v.end,
                None => return -ENOMEM,
            }
        }
        0
    }

    /// mlockall (mm/mlock.c): MCL_CURRENT and/or MCL_FUTURE, with MCL_ONFAULT only
    /// beside one of them.
    pub(crate) fn sys_mlockall(&mut self, flags: u64) -> i64 {
        if flags == 0
            || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0
            || flags == MCL_ONFAULT
        {
            return -EINVAL;
        }
        0
    }
}

/// The vsyscall page (arch/x86/entry/vsyscall/vsyscall_64.c, VSYSCALL_ADDR).
const VSYSCALL_ADDR: u64 = 0xffff_ffff_ff60_0000;

/// Whether `va` lies in the vsyscall page (`is_vsyscall_vaddr`).
pub(crate) fn is_vsyscall(va: u64) -> bool {
    va & !0xfff == VSYSCALL_ADDR
}

impl Machine {
    /// A fault in the vsyscall page (`emulate_vsyscall`, Linux's default
    /// vsyscall=xonly): the page is not mapped, so reads of it are SIGSEGV, but a call
    /// to one of its three entry points (gettimeofday at +0x0, time at +0x400, getcpu at
    /// +0x800) faults on the instruction fetch and is emulated: the system call is made,
    /// its result goes to RAX and the call returns to the address on the stack. A jump
    /// elsewhere in the page, or a bad pointer argument, is SIGSEGV.
    pub(crate) fn emulate_vsyscall(
        &mut self,
        c: usize,
        tid: u32,
        pf: emu_core::PageFault,
    ) -> crate::path::Next {
        use crate::machine::sig;
        use crate::syscall::nr;
        let Some(t) = self.k.tasks.get(&tid) else { return crate::path::Next::Gone };
        let (rip, rsp, g) = (t.cpu.rip, t.cpu.gpr[4], t.cpu.gpr);
        let call = match pf.addr.wrapping_sub(VSYSCALL_ADDR) {
            0 => Some(nr::GETTIMEOFDAY),
            0x400 => Some(nr::TIME),
            0x800 => Some(nr::GETCPU),
            _ => None,
        };
        let fetch = pf.access == emu_core::Access::Exec && pf.addr == rip;
        let mut ret = [0u8; 8];
        let caller_ok = self.read_user(c, tid, rsp, &mut ret).is_ok();
        let Some(n) = call.filter(|_| fetch && caller_ok) else {
            let report =
                format!("segmentation fault: vsyscall page access at {:#x}, rip {rip:#x}", pf.addr);
            let info = if fetch {
                // emulate_vsyscall's `sigsegv:` label: force_sig, SI_KERNEL.
                SigInfo {
                    signo: sig::SIGSEGV,
                    code: crate::signal::si::SI_KERNEL,
                    fields: SigFields::None,
                }
            } else {
                // Not emulated: the fault goes on to bad_area_nosemaphore, which marks
                // an access to a kernel address as a protection fault.
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.trap = crate::task::TrapInfo {
                        trapno: 14,
                        err: crate::mmpath::pf_error_code(&pf) | 1,
                        cr2: pf.addr,
                    };
                }
                crate::mmpath::user_fault_siginfo(false, false, pf.addr)
            };
            self.force_signal(c, tid, info, Some(report));
            return self.user_or_gone(c, tid);
        };
        // The system call the entry point stands for, charged as one.
        self.charge(c, self.k.costs.syscall);
        let r = match self.dispatch(c, tid, n, [g[7], g[6], g[2], 0, 0, 0]) {
            crate::syscall::Sys::Ret(r) => r,
            _ => -EFAULT,
        };
        if r == -EFAULT {
            let report = format!("segmentation fault: vsyscall with a bad pointer, rip {rip:#x}");
            let info = SigInfo {
                signo: sig::SIGSEGV,
                code: crate::signal::si::SI_KERNEL,
                fields: SigFields::None,
            };
            self.force_signal(c, tid, info, Some(report));
            return self.user_or_gone(c, tid);
        }
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.cpu.gpr[0] = r as u64;
            t.cpu.rip = u64::from_le_bytes(ret);
            t.cpu.gpr[4] = rsp.wrapping_add(8);
        }
        crate::path::Next::User
    }
}

/// `rel` appended to directory `dir`: one slash between them (`dev/null` relative to
/// `/` is `/dev/null`, which the device and /proc names match).
pub(crate) fn join_path(dir: &str, rel: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{rel}")
    } else {
        format!("{dir}/{rel}")
    }
}

#[cfg(test)]
mod join_tests {
    #[test]
    fn one_slash_between_directory_and_name() {
        assert_eq!(super::join_path("/", "dev/null"), "/dev/null");
        assert_eq!(super::join_path("/a/b", "c/./d/"), "/a/b/c/./d/");
        assert_eq!(super::join_path("/a/", "f.txt/."), "/a/f.txt/.");
    }
}
