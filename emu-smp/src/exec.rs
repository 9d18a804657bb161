//! execve(2) and execveat(2), modelled on fs/exec.c (`do_execveat_common`,
//! `do_open_execat`, `bprm_stack_limits`, `copy_strings`, `exec_binprm`,
//! `begin_new_exec`, `de_thread`, `exec_mmap`, `setup_new_exec`), fs/binfmt_script.c
//! (`load_script`) and fs/binfmt_elf.c through loader.rs.
//!
//! The call has two halves, as Linux's has:
//!
//! ```text
//! syscall step (nothing changed yet; any failure returns its errno):
//!   getname -> do_open_execat -> count/copy envp, argv -> #! rewrites (at most 5)
//!   -> read the ELF file -> the new mm built by the loader (bprm_mm_init, the stack)
//! --- point of no return ---
//! DeThread  --other threads live--> zap them, sleep (Wait::Exec) until the last is gone
//! ExecMmap  sched_mm_cid_before_execve (an exit, its walk included), mm_release
//!           (clear_child_tid, the vfork parent released), activate_mm, mmput(old)
//!           (exit_mmap's teardown and flush when it was the last user)
//! Mmput     mmput's mmdrop / __mmdrop steps, as do_exit's (process.rs `mmput_step`)
//! Setup     sched_mm_cid_after_execve (a fork into the new mm), signal handlers,
//!           close-on-exec, POSIX timers, rseq, altstack, comm, fresh registers, and a
//!           non-leader caller takes the leader's PID -> user mode at the entry point
//! ```
//!
//! Where emu's order differs from Linux's, the difference cannot be seen by the guest:
//! the ELF segments are mapped into the new mm before the point of no return (Linux
//! maps them after it); a mapping failure there (the loader's `Unmappable`) still kills
//! the process with SIGSEGV after de_thread, as force_fatal_sig does. A non-leader caller
//! takes the leader's PID at the end of the call instead of in de_thread (nothing runs
//! in the process in between).
//!
//! Costs: the copies of the file name, the pointers and the strings are charged at the
//! profile's kernel copy rate (`copy_bytes_per_cycle`), as is the read of the file's
//! first BINPRM_BUF_SIZE bytes for each binary handler; the loader's work on the new
//! address space (VMAs, the stack pages) is counted by `Mm` and charged by
//! `settle_work`; exit_mmap of the old address space, its flush and the mm_cid and
//! lazy-TLB work are those of the exit path.

use crate::fs::errno::*;
use crate::fs::{Object, Resolved};
use crate::loader::{self, LoadError};
use crate::machine::{sig, Machine, SimError, INIT_MM};
use crate::mm::{ExeFile, Gather, Mm};
use crate::path::{ExitStep, KPath, Next};
use crate::syscall::Sys;
use crate::task::{ExitCause, State, Wait};
use crate::tlbflush::{Reason, FLUSH_ALL};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The first id of an address space built by execve.
pub(crate) const FIRST_EXEC_MM: u32 = 1 << 30;
/// AT_FDCWD.
pub(crate) const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EMPTY_PATH: u64 = 0x1000;
const E2BIG: i64 = 7;
const ENOEXEC: i64 = 8;
/// PATH_MAX, the longest file name getname accepts (with its NUL).
const PATH_MAX: usize = 4096;
/// BINPRM_BUF_SIZE: the bytes of the file a binary handler looks at.
const BINPRM_BUF_SIZE: usize = 256;
/// exec_binprm gives up with ELOOP when a handler asks for another file at depth 6:
/// five `#!` rewrites are allowed.
const MAX_REWRITES: u32 = 5;
/// The largest executable emu reads (it reads the file whole into host memory).
const MAX_IMAGE_BYTES: u64 = 1 << 30;
/// SS_DISABLE.
const SS_DISABLE: u32 = 2;

/// The part of execve past its point of no return (the caller's kernel path).
#[derive(Clone, Debug)]
pub struct ExecOp {
    /// The step to run next.
    step: ExecStep,
    /// The new address space (INIT_MM when the loader failed after the point of no
    /// return and the process is to die).
    mm: u32,
    /// The program's entry point.
    entry: u64,
    /// Its initial stack pointer.
    sp: u64,
    /// The task's new name (the file name's last component, 15 bytes at most).
    comm: String,
    /// Why the process dies at the point of no return (the loader's `Unmappable`).
    fatal: Option<String>,
    /// The caller's thread id when it called (a vfork parent waits on it).
    tid: u32,
}

/// The steps of [`ExecOp`].
#[derive(Clone, Copy, Debug)]
enum ExecStep {
    DeThread,
    ExecMmap,
    Mmput(ExitStep),
    Setup,
}

/// Why execve does not reach its point of no return.
enum Refused {
    /// It returns this errno.
    Errno(i64),
    /// emu cannot run the program: the simulation stops.
    Stop(SimError),
}

impl From<i64> for Refused {
    fn from(e: i64) -> Self {
        Refused::Errno(e)
    }
}

/// An executable file found by do_open_execat.
struct ExecFile {
    /// Its host path.
    host: PathBuf,
    /// Its bytes, when they are already at hand (/proc/self/exe: the mm's exe_file,
    /// opened without a path lookup).
    image: Option<Arc<[u8]>>,
}

/// The errno number of a name the loader gives.
fn errno_number(name: &str) -> i64 {
    match name {
        "EPERM" => EPERM,
        "E2BIG" => E2BIG,
        "ENOEXEC" => ENOEXEC,
        "ENOMEM" => ENOMEM,
        "EACCES" => EACCES,
        "EFAULT" => EFAULT,
        "EEXIST" => EEXIST,
        "EINVAL" => EINVAL,
        _ => ENOEXEC,
    }
}

/// What `load_script` makes of a file's first BINPRM_BUF_SIZE bytes (`head`, zero
/// padded): None when it is not a `#!` script, else the interpreter and its optional
/// argument, or ENOEXEC. The interpreter is a whole word: with no newline in the
/// buffer, it must end (space, tab or NUL) inside it, else it may be truncated and the
/// script is refused. The argument is the rest of the line after spaces and tabs, with
/// trailing spaces and tabs removed, kept whole (up to a NUL).
fn parse_shebang(head: &[u8; BINPRM_BUF_SIZE]) -> Option<Result<(Vec<u8>, Option<Vec<u8>>), i64>> {
    if &head[..2] != b"#!" {
        return None;
    }
    let spacetab = |b: u8| b == b' ' || b == b'\t';
    let terminator = |b: u8| b == b' ' || b == b'\t' || b == 0;
    // The buffer's last byte is not looked at (the kernel's buf_end).
    let buf_end = BINPRM_BUF_SIZE - 1;
    let end = match head.iter().position(|&b| b == b'\n') {
        Some(nl) => nl,
        None => {
            let Some(name) = (2..buf_end).find(|&i| !spacetab(head[i])) else {
                return Some(Err(ENOEXEC));
            };
            if !(name..buf_end).any(|i| terminator(head[i])) {
                return Some(Err(ENOEXEC));
            }
            buf_end
        }
    };
    let mut end = end;
    while end > 2 && spacetab(head[end - 1]) {
        end -= 1;
    }
    let Some(name) = (2..end).find(|&i| !spacetab(head[i])) else {
        return Some(Err(ENOEXEC));
    };
    let cstr = |from: usize, to: usize| -> Vec<u8> {
        head[from..to].iter().take_while(|&&b| b != 0).copied().collect()
    };
    let sep = (name..end).find(|&i| terminator(head[i]));
    let (name_end, arg) = match sep {
        Some(s) if head[s] != 0 => {
            let arg = (s..end).find(|&i| !spacetab(head[i])).map(|a| cstr(a, end));
            (s, arg)
        }
        Some(s) => (s, None),
        None => (end, None),
    };
    Some(Ok((cstr(name, name_end), arg)))
}

/// The last component of a file name (kbasename).
fn basename(name: &[u8]) -> &[u8] {
    name.rsplit(|&b| b == b'/').next().unwrap_or(name)
}

/// A file's identity for the exec image cache: device, inode, size, and modification
/// and change times (user space can set the first, not the second), so that a file
/// rewritten in place is read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ImageKey {
    dev: u64,
    ino: u64,
    pub(crate) size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl ImageKey {
    pub(crate) fn of(path: &Path) -> Option<ImageKey> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        let (mtime_ns, ctime_ns) = (ns(m.mtime(), m.mtime_nsec()), ns(m.ctime(), m.ctime_nsec()));
        Some(ImageKey { dev: m.dev(), ino: m.ino(), size: m.size(), mtime_ns, ctime_ns })
    }
}

impl Machine {
    /// execve(2) (`dirfd` AT_FDCWD, `flags` 0) and execveat(2).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sys_execve(
        &mut self,
        c: usize,
        tid: u32,
        dirfd: i32,
        path: u64,
        argv: u64,
        envp: u64,
        flags: u64,
    ) -> Sys {
        match self.exec_prepare(c, tid, dirfd, path, argv, envp, flags) {
            Ok(op) => Sys::Path(KPath::Exec(Box::new(op))),
            Err(Refused::Errno(e)) => Sys::Ret(-e),
            Err(Refused::Stop(e)) => {
                self.fail(e);
                Sys::Ret(-ENOEXEC)
            }
        }
    }

    /// The exe path of `tid`'s address space (/proc/self/exe).
    pub(crate) fn exe_path_of(&self, tid: u32) -> String {
        let mm = self.k.mms.get(&self.mm_of(tid));
        mm.and_then(|m| m.exe.as_ref()).map_or_else(|| self.k.exe_path.clone(), |e| e.path.clone())
    }

    /// Everything before the point of no return: the arguments, the file, the `#!`
    /// rewrites and the new address space. Nothing of the caller has changed when this
    /// fails.
    #[allow(clippy::too_many_arguments)]
    fn exec_prepare(
        &mut self,
        c: usize,
        tid: u32,
        dirfd: i32,
        path: u64,
        argv: u64,
        envp: u64,
        flags: u64,
    ) -> Result<ExecOp, Refused> {
        // getname: EFAULT, ENAMETOOLONG; an empty name is ENOENT unless AT_EMPTY_PATH.
        let name = self.read_cstr(c, tid, path, PATH_MAX)?;
        if name.is_empty() && flags & AT_EMPTY_PATH == 0 {
            return Err(ENOENT.into());
        }
        // do_open_execat.
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
            return Err(EINVAL.into());
        }
        let mut file = self.exec_open(tid, dirfd, &name, flags)?;
        // bprm->filename: the name, or /dev/fd/N[/name] for a name relative to a
        // descriptor (whose script cannot be read again after the exec when the
        // descriptor is close-on-exec: BINPRM_FLAGS_PATH_INACCESSIBLE).
        let mut inaccessible = false;
        let filename = if dirfd == AT_FDCWD || name.first() == Some(&b'/') {
            name.clone()
        } else {
            inaccessible = self.fd_cloexec(tid, dirfd);
            let mut f = format!("/dev/fd/{dirfd}").into_bytes();
            if !name.is_empty() {
                f.push(b'/');
                f.extend_from_slice(&name);
            }
            f
        };
        // comm: the file name's last component; for a descriptor's own file, its name
        // (the dentry's, as Linux 6.18 sets it: checked natively, not "N" of /dev/fd/N).
        let comm_src = if name.is_empty() {
            file.host.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default()
        } else {
            basename(&filename).to_vec()
        };
        let comm: String =
            String::from_utf8_lossy(&comm_src[..comm_src.len().min(15)]).into_owned();

        // count(argv), count(envp), bprm_stack_limits, copy_strings: the file name
        // first, then the environment, then the arguments.
        let limit = loader::arg_limit();
        let argp = self.exec_ptrs(c, tid, argv, limit)?;
        let envpp = self.exec_ptrs(c, tid, envp, limit)?;
        let ptr_size = 8 * (argp.len().max(1) as u64 + envpp.len() as u64);
        if limit <= ptr_size {
            return Err(E2BIG.into());
        }
        let mut used = ptr_size + filename.len() as u64 + 1;
        if used > limit {
            return Err(E2BIG.into());
        }
        let mut env = Vec::with_capacity(envpp.len());
        for &p in &envpp {
            env.push(self.exec_string(c, tid, p, &mut used, limit)?);
        }
        let mut args = Vec::with_capacity(argp.len());
        for &p in &argp {
            args.push(self.exec_string(c, tid, p, &mut used, limit)?);
        }
        if args.is_empty() {
            // Linux 5.18 and later: an empty argv gets an empty argv[0] (and a warning).
            self.warn_once_exec(
                "execve with an empty argv: argv[0] becomes \"\" as Linux makes it".into(),
            );
            args.push(Vec::new());
            used += 1;
            if used > limit {
                return Err(E2BIG.into());
            }
        }

        // exec_binprm: the binary handlers, `#!` scripts rewriting argv.
        let mut interp = filename.clone();
        let mut rewrites = 0;
        loop {
            let head = self.exec_head(c, &file)?;
            let Some(script) = parse_shebang(&head) else { break };
            let (i_name, i_arg) = script?;
            if inaccessible {
                return Err(ENOENT.into());
            }
            if rewrites == MAX_REWRITES {
                // The interpreter is opened before the depth is looked at.
                self.exec_open(tid, AT_FDCWD, &i_name, 0)?;
                return Err(ELOOP.into());
            }
            rewrites += 1;
            // remove_arg_zero, then the script's name, the argument and the
            // interpreter go in front.
            used -= args[0].len() as u64 + 1;
            let mut front = vec![i_name.clone()];
            front.extend(i_arg);
            front.push(std::mem::take(&mut interp));
            for s in &front {
                used += s.len() as u64 + 1;
            }
            // copy_string_kernel: against the limit set before (the pointers of the
            // added strings are not counted again).
            if used > limit {
                return Err(E2BIG.into());
            }
            front.extend(args.drain(1..));
            args = front;
            interp = i_name.clone();
            file = self.exec_open(tid, AT_FDCWD, &i_name, 0)?;
            inaccessible = false;
        }

        // The ELF file, whole.
        let image: Arc<[u8]> = match file.image.clone() {
            Some(i) => i,
            None => {
                let meta = std::fs::metadata(&file.host).map_err(|e| crate::fs::io_errno(&e))?;
                if meta.len() > MAX_IMAGE_BYTES {
                    return Err(Refused::Stop(SimError::Load(format!(
                        "execve of {}: the file is {} bytes, more than emu reads ({MAX_IMAGE_BYTES})",
                        file.host.display(),
                        meta.len()
                    ))));
                }
                self.exec_image(&file.host)?
            }
        };

        // bprm_mm_init and the loader: the new address space.
        let oom = |e: emu_mmu::OutOfMemory| Refused::Stop(SimError::OutOfMemory(e.to_string()));
        let ncpus = self.hw.cpus.len();
        let ctx_id = self.k.next_ctx_id;
        let mut mm = Mm::new(&mut self.hw.mem.phys, ctx_id, ncpus).map_err(oom)?;
        self.k.next_ctx_id += 1;
        mm.thp = self.k.mms.get(&self.mm_of(tid)).map_or(mm.thp, |m| m.thp);
        // init_new_context: the first cpumask trim is due a second (HZ jiffies) on.
        mm.ctx.next_trim_jiffies = self.jiffies(c) + u64::from(self.profile.kernel.hz);
        let hwcap = self.profile.cpuid(0, ncpus as u32).query(1, 0)[3];
        let r = loader::load(
            &mut mm,
            &mut self.hw.mem.phys,
            image.clone(),
            &args,
            &env,
            &filename,
            hwcap,
            &mut self.k.rng,
        );
        let host = file.host.to_string_lossy().into_owned();
        let (entry, sp, fatal) = match r {
            Ok(l) => (l.entry, l.sp, None),
            Err(LoadError::Unmappable { msg, .. }) => {
                self.discard_mm(c, mm);
                let why = format!("execve of {host}: cannot map the program: {msg}");
                return Ok(ExecOp {
                    step: ExecStep::DeThread,
                    mm: INIT_MM,
                    entry: 0,
                    sp: 0,
                    comm,
                    fatal: Some(why),
                    tid,
                });
            }
            Err(e) => {
                self.discard_mm(c, mm);
                return Err(match e {
                    LoadError::Malformed { errno, .. } => Refused::Errno(errno_number(errno)),
                    LoadError::TooBig(_) => Refused::Errno(E2BIG),
                    LoadError::Memory(m) => Refused::Stop(SimError::OutOfMemory(m.to_string())),
                    e => Refused::Stop(SimError::Load(format!("execve of {host}: {e}"))),
                });
            }
        };
        mm.exe = Some(Arc::new(ExeFile { path: host, argv: args, image }));
        let id = self.k.next_exec_mm;
        self.k.next_exec_mm = self.k.next_exec_mm.wrapping_add(1).max(FIRST_EXEC_MM);
        self.k.mms.insert(id, mm);
        self.k.kdata.line(&mut self.hw.mem.phys, crate::kdata::KObj::MmStruct(id));
        // The loader's work on the new address space, charged to this CPU.
        self.settle_work(c, id);
        Ok(ExecOp { step: ExecStep::DeThread, mm: id, entry, sp, comm, fatal, tid })
    }

    fn warn_once_exec(&mut self, msg: String) {
        if self.k.warned.insert(crate::syscall::nr::EXECVE | 0x4000_0000) {
            eprintln!("emu: {msg}");
        }
    }

    /// Whether descriptor `fd` of `tid` is close-on-exec.
    fn fd_cloexec(&self, tid: u32, fd: i32) -> bool {
        let Some(t) = self.k.tasks.get(&tid) else { return false };
        self.k.fdtables.get(&t.files).and_then(|tab| tab.fds.get(&fd)).is_some_and(|e| e.1)
    }

    /// The bytes of the program file at `host`: the copy an address space already runs
    /// when the file is the same ([`ImageKey`]), else read
    /// anew. Entries whose last user has gone are dropped as new ones come.
    fn exec_image(&mut self, host: &Path) -> Result<Arc<[u8]>, i64> {
        let key = ImageKey::of(host);
        if let Some(image) = key.and_then(|k| self.k.exec_images.get(&k)).and_then(|w| w.upgrade())
        {
            return Ok(image);
        }
        let image: Arc<[u8]> = std::fs::read(host).map_err(|e| crate::fs::io_errno(&e))?.into();
        if let Some(k) = key.filter(|k| k.size == image.len() as u64) {
            self.k.exec_images.retain(|_, w| w.strong_count() > 0);
            self.k.exec_images.insert(k, Arc::downgrade(&image));
        }
        Ok(image)
    }

    /// do_open_execat: the file `name` names (relative to `dirfd`; with AT_EMPTY_PATH
    /// and an empty name, the file `dirfd` is), which must be a regular file the caller
    /// may execute (a directory or anything else is EACCES). The sandbox's rules are
    /// those of open (`--allow-read`).
    fn exec_open(
        &mut self,
        tid: u32,
        dirfd: i32,
        name: &[u8],
        flags: u64,
    ) -> Result<ExecFile, Refused> {
        let host = if name.is_empty() {
            if dirfd == AT_FDCWD {
                // The working directory.
                return Err(EACCES.into());
            }
            let id = self.fd(tid, dirfd).ok_or(EBADF)?;
            match self.k.files.descs.get(&id).map(|d| &d.obj) {
                Some(Object::Host { path, .. }) => path.clone(),
                Some(Object::Memfd(_)) => {
                    return Err(Refused::Stop(SimError::Load(
                        "execveat of a memfd: emu runs programs from host files only".into(),
                    )))
                }
                _ => return Err(EACCES.into()),
            }
        } else {
            let s = String::from_utf8(name.to_vec()).map_err(|_| ENOENT)?;
            if s == "/proc/self/exe" {
                // The running program's file itself (proc_exe_link: no lookup of its
                // path, so the sandbox's rules for paths do not apply).
                let mm = self.k.mms.get(&self.mm_of(tid)).and_then(|m| m.exe.clone());
                let (path, image) = match mm {
                    Some(e) => (e.path.clone(), e.image.clone()),
                    None => (self.k.exe_path.clone(), self.k.program.clone()),
                };
                return Ok(ExecFile { host: PathBuf::from(path), image: Some(image) });
            }
            let abs = self.at_path(tid, dirfd, &s)?;
            let host = match self.k.files.resolve(&abs)? {
                Resolved::Host(p) => p,
                // /proc and /sys files (mode 0444) and the character devices.
                Resolved::Synthetic(_) | Resolved::Dev(_) => return Err(EACCES.into()),
            };
            if flags & AT_SYMLINK_NOFOLLOW != 0
                && std::fs::symlink_metadata(&abs).is_ok_and(|m| m.file_type().is_symlink())
            {
                return Err(ELOOP.into());
            }
            host
        };
        let meta = std::fs::metadata(&host).map_err(|e| crate::fs::io_errno(&e))?;
        if !meta.is_file() {
            return Err(EACCES.into());
        }
        // may_open with MAY_EXEC: the host decides, as for the native run (the mode's
        // execute bits for this user, a noexec mount).
        if rustix::fs::access(&host, rustix::fs::Access::EXEC_OK).is_err() {
            return Err(EACCES.into());
        }
        Ok(ExecFile { host, image: None })
    }

    /// count(): the pointers of an argv or envp array up to its NULL (a NULL array is
    /// empty). Stops with E2BIG once the pointers alone pass `limit` (Linux counts on
    /// to the NULL first, so an unreadable pointer further on would be EFAULT there).
    fn exec_ptrs(
        &mut self,
        c: usize,
        tid: u32,
        array: u64,
        limit: u64,
    ) -> Result<Vec<u64>, Refused> {
        let mut v = Vec::new();
        if array == 0 {
            return Ok(v);
        }
        loop {
            let mut b = [0u8; 8];
            let at = array.wrapping_add(8 * v.len() as u64);
            self.read_user(c, tid, at, &mut b).map_err(|()| EFAULT)?;
            let p = u64::from_le_bytes(b);
            if p == 0 {
                return Ok(v);
            }
            v.push(p);
            if 8 * v.len() as u64 >= limit {
                return Err(E2BIG.into());
            }
        }
    }

    /// One string of copy_strings: EFAULT, E2BIG past MAX_ARG_STRLEN or the limit.
    fn exec_string(
        &mut self,
        c: usize,
        tid: u32,
        p: u64,
        used: &mut u64,
        limit: u64,
    ) -> Result<Vec<u8>, Refused> {
        let s = self.read_cstr(c, tid, p, loader::MAX_ARG_STRLEN).map_err(|e| {
            if e == ENAMETOOLONG {
                E2BIG
            } else {
                e
            }
        })?;
        *used += s.len() as u64 + 1;
        if *used > limit {
            return Err(E2BIG.into());
        }
        Ok(s)
    }

    /// prepare_binprm: the file's first BINPRM_BUF_SIZE bytes, zero padded.
    fn exec_head(&mut self, c: usize, file: &ExecFile) -> Result<[u8; BINPRM_BUF_SIZE], Refused> {
        use std::io::Read;
        let mut head = [0u8; BINPRM_BUF_SIZE];
        if let Some(image) = &file.image {
            let n = image.len().min(BINPRM_BUF_SIZE);
            head[..n].copy_from_slice(&image[..n]);
            self.charge_copy(c, BINPRM_BUF_SIZE);
            return Ok(head);
        }
        let f = std::fs::File::open(&file.host).map_err(|e| crate::fs::io_errno(&e))?;
        let mut n = 0;
        let mut r = f.take(BINPRM_BUF_SIZE as u64);
        loop {
            match r.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(crate::fs::io_errno(&e).into()),
            }
        }
        self.charge_copy(c, BINPRM_BUF_SIZE);
        Ok(head)
    }

    /// Frees an address space that no CPU ever loaded (a refused execve's).
    fn discard_mm(&mut self, c: usize, mut mm: Mm) {
        let mut g = Gather::default();
        mm.teardown(&mut self.hw.mem.phys, &mut g);
        let mut frames = g.pages;
        frames.extend(g.tables);
        frames.push(mm.root);
        self.free_pages(c, frames);
    }

    /// Frees the new address space of an execve that will not use it.
    fn drop_exec_mm(&mut self, c: usize, op: &ExecOp) {
        if op.mm == INIT_MM {
            return;
        }
        if let Some(mm) = self.k.mms.remove(&op.mm) {
            self.discard_mm(c, mm);
            self.k.kdata.free_mm(&mut self.hw.mem.phys, op.mm, self.hw.cpus.len());
        }
    }

    /// One step of execve past its point of no return.
    pub(crate) fn exec_step(&mut self, c: usize, tid: u32, mut op: ExecOp) -> Next {
        match op.step {
            ExecStep::DeThread => {
                let Some((tgid, killed)) =
                    self.k.tasks.get(&tid).map(|t| (t.tgid, t.exit.is_some()))
                else {
                    self.drop_exec_mm(c, &op);
                    return Next::Gone;
                };
                if killed {
                    // Killed meanwhile (another thread's exit_group or execve).
                    self.drop_exec_mm(c, &op);
                    return Next::User;
                }
                let others: Vec<u32> = self
                    .k
                    .tasks
                    .values()
                    .filter(|x| x.tgid == tgid && x.tid != tid && x.state != State::Zombie)
                    .map(|x| x.tid)
                    .collect();
                if !others.is_empty() {
                    // zap_other_threads: each gets SIGKILL and exits at its next return
                    // to user mode; the caller sleeps until the last is gone.
                    let cause =
                        ExitCause { status: sig::SIGKILL as i32, signaled: true, group: true };
                    self.zap_threads(c, &others, cause);
                    if let Some(t) = self.k.tasks.get_mut(&tid) {
                        t.kpath = Some(KPath::Exec(Box::new(op)));
                    }
                    return Next::Block(Wait::Exec);
                }
                op.step = ExecStep::ExecMmap;
                Next::Then(KPath::Exec(Box::new(op)))
            }
            ExecStep::ExecMmap => {
                if let Some(why) = op.fatal.take() {
                    // The loader failed past the point of no return: force_fatal_sig.
                    self.kill_process(c, tid, sig::SIGSEGV, Some(why));
                    return Next::User;
                }
                // sched_mm_cid_before_execve: an exit from the old mm (its switch back
                // walks the CPUs first and comes back here).
                let wait = self.cid_mutex_wait(c, tid);
                if !matches!(wait, crate::cidsched::MutexWait::Free) {
                    return self.cid_mutex_park(tid, wait, KPath::Exec(Box::new(op)));
                }
                if let Some(mut w) = self.mm_cid_exit(c, tid) {
                    w.resume = Some(Box::new(KPath::Exec(Box::new(op))));
                    return Next::Then(KPath::CidWalk(Box::new(w)));
                }
                // exec_mm_release -> mm_release: clear_child_tid, and the vfork parent
                // goes on (complete_vfork_done).
                self.release_thread(c, tid);
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.clear_child_tid = 0;
                }
                let at = self.now(c);
                let vforkers: Vec<u32> = self
                    .k
                    .tasks
                    .values()
                    .filter(|t| t.state == State::Blocked(Wait::Vfork(op.tid)))
                    .map(|t| t.tid)
                    .collect();
                for v in vforkers {
                    self.wake(v, i64::from(op.tid), at);
                }
                // exec_mmap: the task takes the new mm and the CPU loads it
                // (activate_mm: no lazy-TLB reference for the old one), then mmput.
                let Some(old) =
                    self.k.tasks.get_mut(&tid).map(|t| std::mem::replace(&mut t.mm, op.mm))
                else {
                    return Next::Gone;
                };
                if self.k.cpus[c].user_ctx {
                    self.k.cpus[c].active_mm = op.mm;
                    self.switch_mm_irqs_off(c, op.mm);
                } else {
                    self.context_switch_mm(c, op.mm);
                }
                op.step = ExecStep::Setup;
                if old == INIT_MM || !self.k.mms.contains_key(&old) {
                    return Next::Then(KPath::Exec(Box::new(op)));
                }
                if !self.mm_users_rmw(c, old, false) {
                    return Next::Then(KPath::Exec(Box::new(op)));
                }
                // The last user: exit_mmap, flushing every CPU of the old mm's mask.
                let mut g = Gather::default();
                if let Some(m) = self.k.mms.get_mut(&old) {
                    m.teardown(&mut self.hw.mem.phys, &mut g);
                }
                self.note_exit_mmap(c, old);
                let free = (g.pages, g.tables);
                self.flush_and_free(c, old, 0, FLUSH_ALL, 12, true, Reason::Exit, free);
                op.step = ExecStep::Mmput(ExitStep::Mmdrop { mm: old });
                Next::Then(KPath::Exec(Box::new(op)))
            }
            ExecStep::Mmput(s) => {
                op.step = match self.mmput_step(c, s) {
                    Some(n) => ExecStep::Mmput(n),
                    None => ExecStep::Setup,
                };
                Next::Then(KPath::Exec(Box::new(op)))
            }
            ExecStep::Setup => self.exec_setup(c, tid, op),
        }
    }

    /// A thread of group `tgid` died: wake an execve in de_thread when no other thread
    /// is left.
    pub(crate) fn exec_dethread_wake(&mut self, tgid: u32, at: u64) {
        let Some(w) = self
            .k
            .tasks
            .values()
            .find(|t| t.tgid == tgid && t.state == State::Blocked(Wait::Exec))
            .map(|t| t.tid)
        else {
            return;
        };
        let alone = !self
            .k
            .tasks
            .values()
            .any(|t| t.tgid == tgid && t.tid != w && t.state != State::Zombie);
        if alone {
            self.wake(w, 0, at);
        }
    }

    /// The end of execve: setup_new_exec, the rest of begin_new_exec and start_thread.
    fn exec_setup(&mut self, c: usize, tid: u32, op: ExecOp) -> Next {
        // sched_mm_cid_after_execve: a fork into the new mm, as its first user.
        let _walk = self.mm_cid_fork(c, None, tid);
        debug_assert!(_walk.is_none(), "the first user of an mm forks without a walk");
        let Some(t) = self.k.tasks.get_mut(&tid) else { return Next::Gone };
        let (tgid, files, sighand) = (t.tgid, t.files, t.sighand);
        // rseq_execve: no registration, no pending notification or event.
        t.rseq = None;
        t.rseq_notify = false;
        t.rseq_event = false;
        t.altstack = (0, SS_DISABLE, 0);
        t.robust_list = 0;
        t.saved_sigmask = None;
        t.trap = Default::default();
        t.comm = op.comm.clone();
        // start_thread: fresh registers, FPU and SSE state; the clock, the retired
        // instruction count and the CPU's CPUID answers are the task's, not the program's.
        let old = &t.cpu;
        let mut cpu = emu_core::Cpu::default();
        cpu.time_fp = old.time_fp;
        cpu.instret = old.instret;
        cpu.cpuid = old.cpuid.clone();
        cpu.tsc_aux = old.tsc_aux;
        cpu.until_fp = old.until_fp;
        cpu.rip = op.entry;
        cpu.gpr[4] = op.sp;
        t.cpu = cpu;
        // unshare_sighand, then flush_signal_handlers: every handler but SIG_IGN is
        // SIG_DFL again, flags, restorers and masks are cleared.
        let shared = |m: &Machine, f: &dyn Fn(&crate::task::Task) -> bool| {
            m.k.tasks.values().any(|x| x.tid != tid && x.state != State::Zombie && f(x))
        };
        let new_id = op.mm;
        let mut handlers = self.k.sighands.get(&sighand).cloned().unwrap_or_default();
        for a in handlers.iter_mut() {
            if a.handler != 1 {
                a.handler = 0;
            }
            a.flags = 0;
            a.restorer = 0;
            a.mask = 0;
        }
        if shared(self, &|x| x.sighand == sighand) {
            self.k.sighands.insert(new_id, handlers);
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.sighand = new_id;
            }
        } else {
            self.k.sighands.insert(sighand, handlers);
        }
        // unshare_files, then do_close_on_exec.
        let table = if shared(self, &|x| x.files == files) {
            let tab = self.k.fdtables.get(&files).cloned().unwrap_or_default();
            for (id, _) in tab.fds.values() {
                self.k.files.get(*id);
            }
            self.k.fdtables.insert(new_id, tab);
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.files = new_id;
            }
            new_id
        } else {
            files
        };
        let closing: Vec<(i32, u32)> = self
            .k
            .fdtables
            .get(&table)
            .map(|tab| tab.fds.iter().filter(|(_, e)| e.1).map(|(&fd, e)| (fd, e.0)).collect())
            .unwrap_or_default();
        if !closing.is_empty() {
            for (fd, id) in closing {
                if let Some(tab) = self.k.fdtables.get_mut(&table) {
                    tab.fds.remove(&fd);
                }
                self.k.files.close_fd(table, id);
            }
            self.wake_io(c);
        }
        // exit_itimers: POSIX timers go, the itimers (alarm, setitimer) stay.
        self.exec_itimers(tgid);
        if tid != tgid {
            self.exec_take_leader(c, tid, tgid);
        }
        if let Some(t) = self.k.tasks.get_mut(&tgid) {
            // execve returns 0 into the new program.
            t.cpu.gpr[0] = 0;
        }
        Next::User
    }

    /// de_thread's end for a caller other than the leader: the leader (a zombie by
    /// now) is released without a notification and the caller takes its PID, its
    /// parent and its exit signal (`exchange_tids`, `transfer_pid`).
    fn exec_take_leader(&mut self, c: usize, tid: u32, tgid: u32) {
        let Some(leader) = self.k.tasks.remove(&tgid) else { return };
        let Some(mut t) = self.k.tasks.remove(&tid) else { return };
        t.tid = tgid;
        t.ppid = leader.ppid;
        t.exit_signal = leader.exit_signal;
        t.state = State::Running(c);
        self.k.tasks.insert(tgid, t);
        if leader.sighand != self.k.tasks.get(&tgid).map_or(0, |t| t.sighand)
            && !self.k.tasks.values().any(|o| o.sighand == leader.sighand)
        {
            self.k.sighands.remove(&leader.sighand);
        }
        self.k.cpus[c].current = Some(tgid);
        for k in 0..self.hw.cpus.len() {
            for q in self.k.cpus[k].runq.iter_mut() {
                if *q == tid {
                    *q = tgid;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &[u8]) -> [u8; BINPRM_BUF_SIZE] {
        let mut h = [0u8; BINPRM_BUF_SIZE];
        h[..s.len()].copy_from_slice(s);
        h
    }

    fn parse(s: &[u8]) -> Option<Result<(String, Option<String>), i64>> {
        parse_shebang(&head(s)).map(|r| {
            r.map(|(n, a)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    a.map(|a| String::from_utf8_lossy(&a).into_owned()),
                )
            })
        })
    }

    #[test]
    fn shebang_lines_parse_as_load_script_does() {
        assert_eq!(parse(b"\x7fELF"), None);
        assert_eq!(parse(b"#!/bin/sh\necho"), Some(Ok(("/bin/sh".into(), None))));
        assert_eq!(parse(b"#!  /bin/sh  \n"), Some(Ok(("/bin/sh".into(), None))));
        // One argument: the rest of the line, inner spaces kept, trailing ones dropped.
        assert_eq!(
            parse(b"#! /usr/bin/env  -S a  b \t\nx"),
            Some(Ok(("/usr/bin/env".into(), Some("-S a  b".into()))))
        );
        assert_eq!(parse(b"#!/bin/sh"), Some(Ok(("/bin/sh".into(), None))));
        assert_eq!(parse(b"#!\n"), Some(Err(ENOEXEC)));
        assert_eq!(parse(b"#!   \t \n"), Some(Err(ENOEXEC)));
        // No newline and no end to the name within the buffer: it may be truncated.
        let mut long = b"#!/".to_vec();
        long.extend(std::iter::repeat_n(b'a', 300));
        assert_eq!(parse_shebang(&head(&long[..BINPRM_BUF_SIZE])), Some(Err(ENOEXEC)));
        // A long argument is cut at the buffer, the name is whole.
        let mut arg = b"#!/bin/sh ".to_vec();
        arg.extend(std::iter::repeat_n(b'x', 300));
        let r = parse_shebang(&head(&arg[..BINPRM_BUF_SIZE]));
        let Some(Ok((n, Some(a)))) = r else { panic!("{r:?}") };
        assert_eq!((n.as_slice(), a.len()), (&b"/bin/sh"[..], BINPRM_BUF_SIZE - 1 - 10));
    }

    #[test]
    fn basenames() {
        assert_eq!(basename(b"/bin/sh"), b"sh");
        assert_eq!(basename(b"prog"), b"prog");
        assert_eq!(basename(b"/dev/fd/3"), b"3");
    }
}
