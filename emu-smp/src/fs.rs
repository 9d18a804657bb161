//! Files the guest can reach: its standard streams (emu's own), host files opened
//! read-only under the paths the user allowed, a few synthesized /proc and /sys files,
//! and /dev/null. Nothing is ever written to a host file; writes go to stdout/stderr.
//! Objects that live inside the guest: pipes, and the eventfds, socket pairs, memfds
//! and epoll instances of [`crate::fdtypes`] and [`crate::poll`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Linux errno values used by the file layer.
pub mod errno {
    #![allow(missing_docs)]
    pub const EPERM: i64 = 1;
    pub const ENOENT: i64 = 2;
    pub const ESRCH: i64 = 3;
    pub const EINTR: i64 = 4;
    pub const EIO: i64 = 5;
    pub const EBADF: i64 = 9;
    pub const ECHILD: i64 = 10;
    pub const EAGAIN: i64 = 11;
    pub const ENOMEM: i64 = 12;
    pub const EACCES: i64 = 13;
    pub const EFAULT: i64 = 14;
    pub const EBUSY: i64 = 16;
    pub const EEXIST: i64 = 17;
    pub const EXDEV: i64 = 18;
    pub const ENOTDIR: i64 = 20;
    pub const EISDIR: i64 = 21;
    pub const EINVAL: i64 = 22;
    pub const EMFILE: i64 = 24;
    pub const ENOTTY: i64 = 25;
    pub const ENOSPC: i64 = 28;
    pub const ESPIPE: i64 = 29;
    pub const EROFS: i64 = 30;
    pub const EPIPE: i64 = 32;
    pub const ERANGE: i64 = 34;
    pub const EDEADLK: i64 = 35;
    pub const ENAMETOOLONG: i64 = 36;
    pub const ENOSYS: i64 = 38;
    pub const ENODEV: i64 = 19;
    pub const EOVERFLOW: i64 = 75;
    pub const ETIMEDOUT: i64 = 110;
    pub const ENOTEMPTY: i64 = 39;
    pub const ELOOP: i64 = 40;
    pub const ENOTSOCK: i64 = 88;
    pub const EMSGSIZE: i64 = 90;
    pub const ENOPROTOOPT: i64 = 92;
    pub const EPROTONOSUPPORT: i64 = 93;
    pub const ESOCKTNOSUPPORT: i64 = 94;
    pub const EOPNOTSUPP: i64 = 95;
    pub const EAFNOSUPPORT: i64 = 97;
    pub const EISCONN: i64 = 106;
    pub const ENOTCONN: i64 = 107;
    pub const ECONNRESET: i64 = 104;
    pub const ECONNREFUSED: i64 = 111;
}
use errno::*;

/// What an open file description refers to.
#[derive(Debug)]
pub enum Object {
    /// emu's standard input.
    Stdin,
    /// emu's standard output.
    Stdout,
    /// emu's standard error.
    Stderr,
    /// A host file or directory, read-only.
    Host {
        /// The open file.
        file: std::fs::File,
        /// Its path.
        path: PathBuf,
        /// Directory entries for getdents64, listed on first use.
        dir: Option<Vec<(u64, u8, Vec<u8>)>>,
        /// The same file opened with O_DIRECT, when the guest opened it so.
        direct: Option<DirectFile>,
    },
    /// Generated contents (/proc/self/status and friends).
    Synthetic {
        /// The bytes.
        data: Vec<u8>,
    },
    /// /dev/null, /dev/zero, /dev/full, /dev/random or /dev/urandom.
    Dev(Dev),
    /// The read end of a pipe.
    PipeRead(u32),
    /// The write end of a pipe.
    PipeWrite(u32),
    /// An eventfd counter ([`crate::fdtypes`]).
    EventFd(u32),
    /// One end of an AF_UNIX socket pair ([`crate::fdtypes`]).
    Socket(u32),
    /// A memfd: an anonymous in-guest file ([`crate::fdtypes`]).
    Memfd(u32),
    /// An epoll instance ([`crate::poll`]).
    Epoll(u32),
}

/// A host file the guest opened with O_DIRECT (direct.rs). The host kernel accepted
/// O_DIRECT for it (do_dentry_open's FMODE_CAN_ODIRECT), and emu's reads of it go
/// through this second descriptor, so the host kernel's own direct-I/O checks decide
/// what the guest's read returns.
#[derive(Debug)]
pub struct DirectFile {
    /// The host file, opened with O_DIRECT.
    pub file: std::fs::File,
    /// Its file system does block direct I/O (statx reports STATX_DIOALIGN: ext4,
    /// xfs, btrfs), which pins the user's pages. Without it (tmpfs since 6.6) an
    /// O_DIRECT read is a buffered one.
    pub pins: bool,
}

impl DirectFile {
    /// Opens `path` again with O_DIRECT; the host's error (EINVAL: the file cannot do
    /// direct I/O) is the guest's.
    pub fn open(path: &Path) -> Result<DirectFile, i64> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_DIRECT as i32)
            .open(path)
            .map_err(|e| io_errno(&e))?;
        let pins = rustix::fs::statx(
            &file,
            "",
            rustix::fs::AtFlags::EMPTY_PATH,
            rustix::fs::StatxFlags::DIOALIGN,
        )
        .is_ok_and(|x| {
            x.stx_mask & rustix::fs::StatxFlags::DIOALIGN.bits() != 0 && x.stx_dio_offset_align != 0
        });
        Ok(DirectFile { file, pins })
    }
}

/// O_DIRECT.
pub const O_DIRECT: u32 = 0o40000;

/// An open file description (shared by dup'ed descriptors and across fork).
#[derive(Debug)]
pub struct Description {
    /// What it refers to.
    pub obj: Object,
    /// File position.
    pub pos: u64,
    /// open(2) flags.
    pub flags: u32,
    /// Descriptors referring to it, across all tables.
    pub refs: u32,
}

/// A descriptor table (shared by threads created with CLONE_FILES).
#[derive(Debug, Default, Clone)]
pub struct FdTable {
    /// fd -> (description id, close-on-exec).
    pub fds: BTreeMap<i32, (u32, bool)>,
    /// The highest descriptor the table has held (it sizes `fdtable->max_fds`, which
    /// never shrinks; kept up to date after every kernel step).
    pub high: i32,
}

impl FdTable {
    /// Lowest free descriptor at or above `min`.
    pub fn lowest_free(&self, min: i32) -> i32 {
        let mut fd = min;
        for (&k, _) in self.fds.range(min..) {
            if k != fd {
                break;
            }
            fd += 1;
        }
        fd
    }
}

/// A pipe (fs/pipe.c): a ring of at most [`PIPE_BUFFERS`] buffers of one page each. A
/// write first tops up the last buffer if all of its remainder (length modulo the page
/// size) fits there, then fills new pages; a write of at most a page is never split, so
/// writes up to PIPE_BUF are atomic. A reader frees a buffer when it has consumed it.
#[derive(Debug, Default)]
pub struct Pipe {
    /// Buffers, oldest first: each the unread bytes of a page and where in the page
    /// they start (the merge room of the last one is what follows them).
    pub bufs: std::collections::VecDeque<PipeBuf>,
    /// Open read ends.
    pub readers: u32,
    /// Open write ends.
    pub writers: u32,
    /// Polled at least once (`pipe->poll_usage`): every write then wakes readers, as
    /// epoll's edge-triggered users need.
    pub polled: bool,
}

/// One page of a pipe's ring.
#[derive(Debug, Default)]
pub struct PipeBuf {
    /// Offset of the first unread byte in the page.
    pub off: usize,
    /// The unread bytes.
    pub data: std::collections::VecDeque<u8>,
    /// A later write may append to it (`pipe_buf_can_merge`: a page of the pipe's
    /// own, not a user page vmsplice put there).
    pub merge: bool,
}

/// The most one host read of an O_DIRECT file asks for (a multiple of every
/// alignment a file system asks of direct I/O).
pub const DIRECT_CHUNK: u64 = 1 << 20;

/// Pages in a pipe's ring (PIPE_DEF_BUFFERS: 64 KiB of capacity).
pub const PIPE_BUFFERS: usize = 16;
/// The page size of a pipe buffer.
const PIPE_PAGE: usize = 4096;

impl Pipe {
    /// True when no buffer is in use.
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }
    /// True when every buffer of the ring is in use (`pipe_full`).
    pub fn is_full(&self) -> bool {
        self.bufs.len() >= PIPE_BUFFERS
    }
}

/// All open file descriptions of the machine.
#[derive(Debug, Default)]
pub struct Files {
    /// Descriptions by id.
    pub descs: BTreeMap<u32, Description>,
    next: u32,
    /// Pipes by id.
    pub pipes: BTreeMap<u32, Pipe>,
    next_pipe: u32,
    /// Host paths the guest may read.
    pub allow_read: Vec<PathBuf>,
    /// When set, the guest's stdout and stderr are kept here instead of reaching the
    /// host's, and its stdin is empty.
    pub capture: Option<Captured>,
    /// Eventfds, sockets, memfds and epoll instances.
    pub x: crate::fdtypes::FdExtra,
    /// Wake-ups of file wait queues since the machine last looked, with their poll key
    /// (0: every event), in order: what epoll's callbacks and poll's waiters react to.
    pub events: Vec<(crate::poll::WaitQ, u32)>,
    /// Advisory record and flock locks ([`crate::filelock`]).
    pub(crate) locks: crate::filelock::FileLocks,
}

/// Guest output kept in memory (a sweep runs many guests in one process).
#[derive(Debug, Default)]
pub struct Captured {
    /// Standard output, up to [`CAPTURE_LIMIT`] bytes.
    pub stdout: Vec<u8>,
    /// Standard error, up to [`CAPTURE_LIMIT`] bytes.
    pub stderr: Vec<u8>,
}

/// Most bytes kept of each captured stream; the guest sees every write succeed.
pub const CAPTURE_LIMIT: usize = 1 << 20;

fn keep(v: &mut Vec<u8>, buf: &[u8]) -> i64 {
    let room = CAPTURE_LIMIT.saturating_sub(v.len());
    v.extend_from_slice(&buf[..buf.len().min(room)]);
    buf.len() as i64
}

/// Metadata reported by fstat/newfstatat.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    /// st_dev.
    pub dev: u64,
    /// st_ino.
    pub ino: u64,
    /// st_mode.
    pub mode: u32,
    /// st_nlink.
    pub nlink: u64,
    /// st_uid.
    pub uid: u32,
    /// st_gid.
    pub gid: u32,
    /// st_rdev.
    pub rdev: u64,
    /// st_size.
    pub size: i64,
    /// st_blksize.
    pub blksize: i64,
    /// st_blocks.
    pub blocks: i64,
    /// Modification time, seconds and nanoseconds (also used for atime and ctime).
    pub mtime: (i64, i64),
}

impl Stat {
    /// The 144-byte `struct stat` of x86-64.
    pub fn to_bytes(self) -> [u8; 144] {
        let mut b = [0u8; 144];
        let mut put = |off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
        put(0, &self.dev.to_le_bytes());
        put(8, &self.ino.to_le_bytes());
        put(16, &self.nlink.to_le_bytes());
        put(24, &self.mode.to_le_bytes());
        put(28, &self.uid.to_le_bytes());
        put(32, &self.gid.to_le_bytes());
        put(40, &self.rdev.to_le_bytes());
        put(48, &self.size.to_le_bytes());
        put(56, &self.blksize.to_le_bytes());
        put(64, &self.blocks.to_le_bytes());
        for off in [72, 88, 104] {
            put(off, &self.mtime.0.to_le_bytes());
            put(off + 8, &self.mtime.1.to_le_bytes());
        }
        b
    }

    fn from_meta(m: &std::fs::Metadata) -> Stat {
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev(),
            size: m.size() as i64,
            blksize: m.blksize() as i64,
            blocks: m.blocks() as i64,
            mtime: (m.mtime(), m.mtime_nsec()),
        }
    }
}

/// What a path names for the guest.
pub enum Resolved {
    /// A host path the guest may read.
    Host(PathBuf),
    /// A synthesized file.
    Synthetic(String),
    /// A memory device.
    Dev(Dev),
}

/// The memory devices of drivers/char/mem.c that every guest has, whatever
/// `--allow-read` says: character devices of major 1, mode 0666.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dev {
    /// /dev/null: reads end at once, writes vanish.
    Null,
    /// /dev/zero: reads give zeros; a mapping is anonymous memory (mmap_zero).
    Zero,
    /// /dev/full: reads give zeros, writes are ENOSPC.
    Full,
    /// /dev/random: the seeded generator's bytes (never blocks, as since Linux 5.6).
    Random,
    /// /dev/urandom: the seeded generator's bytes.
    Urandom,
}

impl Dev {
    /// The device a path names.
    pub fn from_path(p: &str) -> Option<Dev> {
        Some(match p {
            "/dev/null" => Dev::Null,
            "/dev/zero" => Dev::Zero,
            "/dev/full" => Dev::Full,
            "/dev/random" => Dev::Random,
            "/dev/urandom" => Dev::Urandom,
            _ => return None,
        })
    }

    /// Its minor number (devlist in drivers/char/mem.c).
    pub fn minor(self) -> u64 {
        match self {
            Dev::Null => 3,
            Dev::Zero => 5,
            Dev::Full => 7,
            Dev::Random => 8,
            Dev::Urandom => 9,
        }
    }

    /// What fstat and stat report: `crw-rw-rw-`, st_rdev makedev(1, minor).
    fn stat(self) -> Stat {
        Stat {
            mode: 0o20666,
            nlink: 1,
            rdev: (1 << 8) | self.minor(),
            blksize: 4096,
            ..Default::default()
        }
    }
}

/// `p` with `.` and `..` components resolved textually (symbolic links not followed).
pub(crate) fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for comp in p.components() {
        match comp {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(c) => out.push(c),
            _ => {}
        }
    }
    out
}

impl Files {
    /// Creates a description, returning its id.
    pub fn create(&mut self, obj: Object, flags: u32) -> u32 {
        let id = self.next;
        self.next += 1;
        self.descs.insert(id, Description { obj, pos: 0, flags, refs: 1 });
        id
    }

    /// Adds a reference (dup, fork).
    pub fn get(&mut self, id: u32) {
        if let Some(d) = self.descs.get_mut(&id) {
            d.refs += 1;
        }
    }

    /// Drops a reference, closing the description with the last one (its file is
    /// released: pipe_release, eventfd_release, unix_release_sock, ep_free, and
    /// eventpoll_release takes it out of every epoll interest list).
    pub fn put(&mut self, id: u32) {
        let Some(d) = self.descs.get_mut(&id) else { return };
        d.refs -= 1;
        if d.refs == 0 {
            // locks_remove_file: its OFD and flock locks go with it.
            self.locks.close_description(id);
            if let Some(d) = self.descs.remove(&id) {
                use crate::poll::WaitQ;
                match d.obj {
                    Object::PipeRead(p) | Object::PipeWrite(p) => {
                        if let Some(pipe) = self.pipes.get_mut(&p) {
                            if matches!(d.obj, Object::PipeRead(_)) {
                                pipe.readers -= 1;
                            } else {
                                pipe.writers -= 1;
                            }
                            if pipe.readers == 0 && pipe.writers == 0 {
                                self.pipes.remove(&p);
                            }
                        }
                        self.events.push((WaitQ::PipeRd(p), 0));
                        self.events.push((WaitQ::PipeWr(p), 0));
                    }
                    Object::EventFd(e) => {
                        self.x.eventfds.remove(&e);
                    }
                    Object::Socket(s) => self.x.sock_release(s, &mut self.events),
                    Object::Memfd(m) => self.x.memfd_close(m),
                    Object::Epoll(e) => {
                        self.x.epolls.remove(&e);
                    }
                    _ => {}
                }
                self.x.epoll_forget(id);
            }
        }
    }

    /// Creates a pipe, returning (read description, write description).
    pub fn pipe(&mut self, flags: u32) -> (u32, u32) {
        let p = self.next_pipe;
        self.next_pipe += 1;
        self.pipes.insert(p, Pipe { readers: 1, writers: 1, ..Pipe::default() });
        (self.create(Object::PipeRead(p), flags), self.create(Object::PipeWrite(p), flags | 1))
    }

    /// Decides what `path` (already absolute) refers to, enforcing `--allow-read`.
    pub fn resolve(&self, path: &str) -> Result<Resolved, i64> {
        match path {
            p if Dev::from_path(p).is_some() => {
                return Ok(Resolved::Dev(Dev::from_path(p).unwrap_or(Dev::Null)));
            }
            "/proc/self/status"
            | "/proc/self/maps"
            | "/proc/self/stat"
            | "/sys/devices/system/cpu/online"
            | "/sys/devices/system/cpu/possible"
            | "/proc/cpuinfo"
            | "/proc/mounts"
            | "/proc/self/mounts"
            | "/proc/self/cmdline"
            | "/proc/self/comm" => {
                return Ok(Resolved::Synthetic(path.to_string()));
            }
            _ => {}
        }
        let p = Path::new(path);
        let canon = match std::fs::canonicalize(p) {
            Ok(c) => c,
            Err(e) => {
                // Do not reveal whether a disallowed path exists: the path as the guest
                // spelled it, `..` and `.` resolved, must lie under an allowed one.
                if !self.allowed(&lexical(p)) {
                    return Err(EACCES);
                }
                return Err(io_errno(&e));
            }
        };
        if self.allowed(&canon) {
            Ok(Resolved::Host(canon))
        } else {
            Err(EACCES)
        }
    }

    /// As [`Files::resolve`] for calls that only look at a file's attributes (stat,
    /// lstat, access): the directories leading to an allowed path may be looked at too,
    /// so that realpath() and friends can walk down to it; their contents stay closed.
    pub fn resolve_attrs(&self, path: &str) -> Result<Resolved, i64> {
        match self.resolve(path) {
            Err(EACCES) => {
                let canon = std::fs::canonicalize(Path::new(path)).map_err(|_| EACCES)?;
                if self.allow_read.iter().any(|a| a.starts_with(&canon)) {
                    Ok(Resolved::Host(canon))
                } else {
                    Err(EACCES)
                }
            }
            r => r,
        }
    }

    /// Whether `p` lies under an allowed path.
    pub(crate) fn allowed_path(&self, p: &Path) -> bool {
        self.allowed(p)
    }

    fn allowed(&self, p: &Path) -> bool {
        self.allow_read.iter().any(|a| p.starts_with(a))
    }

    /// A read of `len` bytes at `at` (or the file position) of a host file opened
    /// with O_DIRECT, into a host buffer placed like the guest's `guest` within its
    /// page, so that the host kernel's checks of memory alignment, length and offset
    /// are those a native read would meet. In chunks of [`DIRECT_CHUNK`], the first
    /// carrying the remainder (a misaligned length fails before anything is read).
    /// None: not such a description. Else the bytes, whether the file system pins
    /// pages, or -errno. The position does not move (the caller's, once the pages
    /// are pinned).
    pub fn read_direct(
        &mut self,
        id: u32,
        guest: u64,
        len: u64,
        at: Option<u64>,
    ) -> Option<Result<(Vec<u8>, bool), i64>> {
        let d = self.descs.get(&id)?;
        let Object::Host { direct: Some(df), .. } = &d.obj else { return None };
        if d.flags & O_DIRECT == 0 || d.flags & 3 == 1 {
            return None;
        }
        let pos = at.unwrap_or(d.pos);
        // pread64: a negative offset.
        if pos > i64::MAX as u64 {
            return Some(Err(EINVAL));
        }
        let mut out = Vec::new();
        let mut done = 0u64;
        let mut host = vec![0u8; (DIRECT_CHUNK + 8192) as usize];
        while done < len {
            let rem = (len - done) % DIRECT_CHUNK;
            let n = if done == 0 && rem != 0 { rem } else { DIRECT_CHUNK.min(len - done) };
            // The host buffer starts where the guest's next byte sits in its page.
            let want = (guest.wrapping_add(done) & 0xfff) as usize;
            let skew = (want + 4096 - (host.as_ptr() as usize & 0xfff)) & 0xfff;
            let buf = &mut host[skew..skew + n as usize];
            match df.file.read_at(buf, pos + done) {
                Ok(k) => {
                    out.extend_from_slice(&buf[..k]);
                    done += k as u64;
                    if (k as u64) < n {
                        break;
                    }
                }
                Err(e) if done == 0 => return Some(Err(io_errno(&e))),
                Err(_) => break,
            }
        }
        Some(Ok((out, df.pins)))
    }

    /// Moves the file position of description `id` by `n` bytes.
    pub fn advance(&mut self, id: u32, n: u64) {
        if let Some(d) = self.descs.get_mut(&id) {
            d.pos += n;
        }
    }

    /// Reads from a description into `buf`. Returns bytes read or -errno; `Err(())`
    /// means the read would block (empty pipe with writers).
    pub fn read(
        &mut self,
        id: u32,
        buf: &mut [u8],
        at: Option<u64>,
        rng: &mut crate::rng::SimRng,
    ) -> Result<i64, ()> {
        let Some(d) = self.descs.get_mut(&id) else { return Ok(-EBADF) };
        if d.flags & 3 == 1 {
            return Ok(-EBADF);
        }
        let pos = at.unwrap_or(d.pos);
        let seekable = matches!(
            d.obj,
            Object::Host { .. } | Object::Synthetic { .. } | Object::Dev(_) | Object::Memfd(_)
        );
        if at.is_some() && !seekable {
            // pread on a pipe, a terminal, an eventfd or a socket (FMODE_PREAD not set).
            return Ok(-ESPIPE);
        }
        let nonblock = d.flags & 0o4000 != 0;
        match d.obj {
            Object::EventFd(e) => return self.x.eventfd_read(e, buf, nonblock, &mut self.events),
            // sock_read_iter: a null read returns at once.
            Object::Socket(_) if buf.is_empty() => return Ok(0),
            Object::Socket(s) => {
                let flags = if nonblock { crate::fdtypes::MSG_DONTWAIT } else { 0 };
                return self
                    .x
                    .sock_recv(s, buf, flags, &mut self.events)
                    .map(|r| r.map_or_else(|e| -e, |(n, _)| n as i64));
            }
            Object::Epoll(_) => return Ok(-EINVAL),
            // The devices' reads leave the position alone (it stays 0).
            Object::Dev(Dev::Null) => return Ok(0),
            Object::Dev(Dev::Zero | Dev::Full) => {
                buf.fill(0);
                return Ok(buf.len() as i64);
            }
            Object::Dev(Dev::Random | Dev::Urandom) => {
                rng.fill(buf);
                return Ok(buf.len() as i64);
            }
            Object::Memfd(m) => {
                let n = self.x.memfd_read(m, buf, pos);
                if n > 0 && at.is_none() {
                    d.pos += n as u64;
                }
                return Ok(n);
            }
            _ => {}
        }
        let n = match &mut d.obj {
            Object::Stdin if self.capture.is_some() => 0,
            Object::Stdin => match std::io::stdin().lock().read(buf) {
                Ok(n) => n as i64,
                Err(e) => -io_errno(&e),
            },
            Object::Stdout | Object::Stderr => -EBADF,
            Object::Host { file, dir, .. } => {
                if dir.is_some() || file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                    -EISDIR
                } else {
                    match file.read_at(buf, pos) {
                        Ok(n) => n as i64,
                        Err(e) => -io_errno(&e),
                    }
                }
            }
            Object::Synthetic { data } => {
                let start = (pos as usize).min(data.len());
                let n = buf.len().min(data.len() - start);
                buf[..n].copy_from_slice(&data[start..start + n]);
                n as i64
            }
            Object::Dev(_) => 0,
            Object::PipeRead(p) => {
                let p = *p;
                let Some(pipe) = self.pipes.get_mut(&p) else { return Ok(-EBADF) };
                return pipe_read(pipe, p, buf, nonblock, &mut self.events);
            }
            Object::PipeWrite(_) => -EBADF,
            Object::EventFd(_) | Object::Socket(_) | Object::Memfd(_) | Object::Epoll(_) => -EINVAL,
        };
        if n > 0 && at.is_none() {
            d.pos += n as u64;
        }
        Ok(n)
    }

    /// Writes to a description. Returns bytes written or -errno; `Err(())` means the
    /// write would block (full pipe).
    pub fn write(&mut self, id: u32, buf: &[u8]) -> Result<i64, ()> {
        if let Some(c) = &mut self.capture {
            match self.descs.get(&id).map(|d| &d.obj) {
                Some(Object::Stdout) => return Ok(keep(&mut c.stdout, buf)),
                Some(Object::Stderr) => return Ok(keep(&mut c.stderr, buf)),
                _ => {}
            }
        }
        self.write_host(id, buf)
    }

    fn write_host(&mut self, id: u32, buf: &[u8]) -> Result<i64, ()> {
        let Some(d) = self.descs.get_mut(&id) else { return Ok(-EBADF) };
        let nonblock = d.flags & 0o4000 != 0;
        Ok(match &d.obj {
            Object::Stdout => host_write(&mut std::io::stdout().lock(), buf),
            Object::Stderr => host_write(&mut std::io::stderr().lock(), buf),
            // write_full; the others take everything (write_null, random_write_iter).
            Object::Dev(Dev::Full) => -ENOSPC,
            Object::Dev(_) => buf.len() as i64,
            Object::PipeWrite(p) => {
                let p = *p;
                let Some(pipe) = self.pipes.get_mut(&p) else { return Ok(-EBADF) };
                return pipe_write(pipe, p, buf, nonblock, &mut self.events);
            }
            Object::Host { .. } | Object::Synthetic { .. } => -EBADF,
            Object::Stdin | Object::PipeRead(_) => -EBADF,
            Object::EventFd(e) => {
                let e = *e;
                return self.x.eventfd_write(e, buf, nonblock, &mut self.events);
            }
            Object::Socket(s) => {
                let (s, flags) = (*s, if nonblock { crate::fdtypes::MSG_DONTWAIT } else { 0 });
                return self.x.sock_send(s, buf, flags, &mut self.events);
            }
            Object::Memfd(m) => {
                let (m, pos) = (*m, d.pos);
                let n = self.x.memfd_write(m, buf, pos);
                if n > 0 {
                    d.pos += n as u64;
                }
                n
            }
            Object::Epoll(_) => -EINVAL,
        })
    }

    /// fstat of a description.
    pub fn stat(&self, id: u32) -> Result<Stat, i64> {
        let d = self.descs.get(&id).ok_or(EBADF)?;
        let captured = self.capture.is_some();
        Ok(match &d.obj {
            // A pipe, the same on every host, and what the reproduce command's stdio
            // looks like when it is redirected to a pipe (stdio buffering follows it).
            Object::Stdin | Object::Stdout | Object::Stderr if captured => {
                Stat { mode: 0o10600, nlink: 1, blksize: 4096, ..Stat::default() }
            }
            Object::Stdin => host_fd_stat(0),
            Object::Stdout => host_fd_stat(1),
            Object::Stderr => host_fd_stat(2),
            Object::Host { file, .. } => {
                Stat::from_meta(&file.metadata().map_err(|e| io_errno(&e))?)
            }
            Object::Synthetic { data } => Stat {
                mode: 0o100444,
                nlink: 1,
                blksize: 1024,
                size: data.len() as i64,
                ..Default::default()
            },
            Object::Dev(d) => d.stat(),
            Object::PipeRead(_) | Object::PipeWrite(_) => {
                Stat { mode: 0o10600, nlink: 1, blksize: 4096, ..Default::default() }
            }
            // Anonymous inodes: mode 0600 without a file type.
            Object::EventFd(_) | Object::Epoll(_) => {
                Stat { mode: 0o600, nlink: 1, blksize: 4096, ..Default::default() }
            }
            Object::Socket(_) => {
                Stat { mode: 0o140777, nlink: 1, blksize: 4096, ..Default::default() }
            }
            Object::Memfd(m) => self.x.memfd_stat(*m),
        })
    }

    /// Metadata of a host path (for stat-by-path).
    pub fn stat_path(&self, r: &Resolved, follow: bool) -> Result<Stat, i64> {
        match r {
            Resolved::Host(p) => {
                let m = if follow { std::fs::metadata(p) } else { std::fs::symlink_metadata(p) };
                m.map(|m| Stat::from_meta(&m)).map_err(|e| io_errno(&e))
            }
            Resolved::Synthetic(_) => {
                Ok(Stat { mode: 0o100444, nlink: 1, blksize: 1024, ..Default::default() })
            }
            Resolved::Dev(d) => Ok(d.stat()),
        }
    }

    /// Fills `out` with linux_dirent64 records of a directory description.
    pub fn getdents(&mut self, id: u32, out: &mut Vec<u8>, max: usize) -> i64 {
        let Some(d) = self.descs.get_mut(&id) else { return -EBADF };
        let Object::Host { file, dir, .. } = &mut d.obj else { return -ENOTDIR };
        if dir.is_none() {
            // The host's own getdents64 records, in its order ("." and ".." where it
            // puts them: first on tmpfs, at their hash positions on ext4).
            let rd = match rustix::fs::Dir::read_from(&*file) {
                Ok(r) => r,
                Err(e) => return -i64::from(e.raw_os_error()),
            };
            let mut v: Vec<(u64, u8, Vec<u8>)> = Vec::new();
            for e in rd {
                let e = match e {
                    Ok(e) => e,
                    Err(e) => return -i64::from(e.raw_os_error()),
                };
                use rustix::fs::FileType as T;
                let ty = match e.file_type() {
                    T::Fifo => 1,
                    T::CharacterDevice => 2,
                    T::Directory => 4,
                    T::BlockDevice => 6,
                    T::RegularFile => 8,
                    T::Symlink => 10,
                    T::Socket => 12,
                    _ => 0,
                };
                v.push((e.ino(), ty, e.file_name().to_bytes().to_vec()));
            }
            *dir = Some(v);
        }
        let entries = dir.as_ref().map_or(&[][..], |v| &v[..]);
        let mut k = d.pos as usize;
        while k < entries.len() {
            let (ino, ty, name) = &entries[k];
            let reclen = (19 + name.len() + 1 + 7) & !7;
            if out.len() + reclen > max {
                break;
            }
            let start = out.len();
            out.extend_from_slice(&ino.to_le_bytes());
            out.extend_from_slice(&((k + 1) as i64).to_le_bytes());
            out.extend_from_slice(&(reclen as u16).to_le_bytes());
            out.push(*ty);
            out.extend_from_slice(name);
            out.resize(start + reclen, 0);
            k += 1;
        }
        if k == d.pos as usize && k < entries.len() {
            return -EINVAL;
        }
        d.pos = k as u64;
        out.len() as i64
    }
}

/// pipe_read: takes bytes from the oldest buffers, freeing each it empties. `Err(())`:
/// the pipe is empty and has writers (the reader sleeps).
fn pipe_read(
    pipe: &mut Pipe,
    p: u32,
    buf: &mut [u8],
    nonblock: bool,
    events: &mut Vec<(crate::poll::WaitQ, u32)>,
) -> Result<i64, ()> {
    // A null read succeeds.
    if buf.is_empty() {
        return Ok(0);
    }
    if pipe.is_empty() {
        if pipe.writers == 0 {
            return Ok(0);
        }
        return if nonblock { Ok(-EAGAIN) } else { Err(()) };
    }
    let was_full = pipe.is_full();
    let mut n = 0;
    while n < buf.len() {
        let Some(front) = pipe.bufs.front_mut() else { break };
        let k = (buf.len() - n).min(front.data.len());
        for (i, b) in front.data.drain(..k).enumerate() {
            buf[n + i] = b;
        }
        front.off += k;
        n += k;
        if front.data.is_empty() {
            pipe.bufs.pop_front();
        }
    }
    // Writers hear of the room only if the pipe was full.
    if was_full {
        events.push((
            crate::poll::WaitQ::PipeWr(p),
            crate::poll::EPOLLOUT | crate::poll::EPOLLWRNORM,
        ));
    }
    Ok(n as i64)
}

/// pipe_write: merges the remainder into the last page if it all fits, then fills new
/// pages while the ring has room. Emu's writes return what fitted once the ring is
/// full (Linux's blocking writes wait for the rest); `Err(())`: nothing fitted and the
/// writer sleeps.
fn pipe_write(
    pipe: &mut Pipe,
    p: u32,
    buf: &[u8],
    nonblock: bool,
    events: &mut Vec<(crate::poll::WaitQ, u32)>,
) -> Result<i64, ()> {
    // A null write succeeds.
    if buf.is_empty() {
        return Ok(0);
    }
    if pipe.readers == 0 {
        return Ok(-EPIPE);
    }
    let was_empty = pipe.is_empty();
    let mut done = 0;
    let chars = buf.len() % PIPE_PAGE;
    if chars != 0 {
        if let Some(last) = pipe.bufs.back_mut() {
            if last.merge && last.off + last.data.len() + chars <= PIPE_PAGE {
                last.data.extend(&buf[..chars]);
                done = chars;
            }
        }
    }
    while done < buf.len() && !pipe.is_full() {
        let k = (buf.len() - done).min(PIPE_PAGE);
        pipe.bufs.push_back(PipeBuf {
            off: 0,
            data: buf[done..done + k].iter().copied().collect(),
            merge: true,
        });
        done += k;
    }
    if done == 0 && !nonblock {
        return Err(());
    }
    // Readers are woken (epoll wants a wake-up even when the pipe was not empty, and
    // even for a write that found no room).
    if was_empty || pipe.polled {
        events
            .push((crate::poll::WaitQ::PipeRd(p), crate::poll::EPOLLIN | crate::poll::EPOLLRDNORM));
    }
    Ok(if done == 0 { -EAGAIN } else { done as i64 })
}

fn host_write(w: &mut impl Write, buf: &[u8]) -> i64 {
    match w.write_all(buf).and_then(|()| w.flush()) {
        Ok(()) => buf.len() as i64,
        Err(e) => -io_errno(&e),
    }
}

fn host_fd_stat(fd: u32) -> Stat {
    // Report what the real stream is (pipe, file, terminal), so buffering decisions in
    // the guest's libc match a native run.
    std::fs::metadata(format!("/proc/self/fd/{fd}")).map(|m| Stat::from_meta(&m)).unwrap_or(Stat {
        mode: 0o10600,
        nlink: 1,
        blksize: 4096,
        ..Default::default()
    })
}

/// The errno of a host I/O error.
pub fn io_errno(e: &std::io::Error) -> i64 {
    use std::io::ErrorKind as K;
    match e.raw_os_error() {
        Some(n) => i64::from(n),
        None => match e.kind() {
            K::NotFound => ENOENT,
            K::PermissionDenied => EACCES,
            K::BrokenPipe => EPIPE,
            _ => EIO,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poll::WaitQ;

    fn pipe() -> (Files, u32, u32) {
        let mut f = Files::default();
        let (r, w) = f.pipe(0o4000);
        (f, r, w)
    }

    fn fill(f: &mut Files, w: u32, size: usize) -> i64 {
        let buf = vec![7u8; size];
        let mut total = 0;
        loop {
            match f.write(w, &buf) {
                Ok(n) if n > 0 => total += n,
                Ok(n) => {
                    assert_eq!(n, -EAGAIN);
                    return total;
                }
                Err(()) => panic!("a non-blocking pipe blocked"),
            }
        }
    }

    #[test]
    fn the_ring_holds_sixteen_pages_and_small_writes_merge() {
        let (mut f, r, w) = pipe();
        assert_eq!(fill(&mut f, w, 4096), 65536);
        let (mut g, _, w2) = pipe();
        // Four 1000-byte writes share a page; the fifth does not fit in it.
        assert_eq!(fill(&mut g, w2, 1000), 64000);
        // Reading part of the first page frees nothing.
        let mut buf = [0u8; 1000];
        assert_eq!(f.read(r, &mut buf, None, &mut crate::rng::SimRng::new(1)), Ok(1000));
        assert_eq!(f.write(w, &[1u8; 10]), Ok(-EAGAIN));
        let mut page = [0u8; 3096];
        assert_eq!(f.read(r, &mut page, None, &mut crate::rng::SimRng::new(1)), Ok(3096));
        // A page is free: a write of more than a page takes one page's worth.
        assert_eq!(f.write(w, &[1u8; 5000]), Ok(4096));
    }

    #[test]
    fn a_write_merges_its_remainder_only_if_all_of_it_fits() {
        let (mut f, _, w) = pipe();
        let p = 0;
        assert_eq!(f.write(w, &[1u8; 100]), Ok(100));
        assert_eq!(f.write(w, &[2u8; 5000]), Ok(5000));
        let sizes: Vec<usize> = f.pipes[&p].bufs.iter().map(|b| b.data.len()).collect();
        assert_eq!(sizes, vec![1004, 4096]);
        assert_eq!(f.write(w, &[3u8; 4000]), Ok(4000));
        assert_eq!(f.pipes[&p].bufs.len(), 3, "4000 bytes do not fit after 4096");
    }

    #[test]
    fn pipe_wake_ups_follow_pipe_read_and_pipe_write() {
        let (mut f, r, w) = pipe();
        assert_eq!(f.write(w, b"ab"), Ok(2));
        assert_eq!(f.events, vec![(WaitQ::PipeRd(0), 0x41)], "the pipe was empty");
        f.events.clear();
        assert_eq!(f.write(w, b"cd"), Ok(2));
        assert!(f.events.is_empty(), "not empty and never polled");
        if let Some(p) = f.pipes.get_mut(&0) {
            p.polled = true;
        }
        assert_eq!(f.write(w, b"ef"), Ok(2));
        assert_eq!(f.events.len(), 1, "polled pipes wake readers on every write");
        f.events.clear();
        let mut buf = [0u8; 2];
        assert_eq!(f.read(r, &mut buf, None, &mut crate::rng::SimRng::new(1)), Ok(2));
        assert!(f.events.is_empty(), "writers hear only when the pipe was full");
        fill(&mut f, w, 4096);
        f.events.clear();
        assert_eq!(f.read(r, &mut buf, None, &mut crate::rng::SimRng::new(1)), Ok(2));
        assert_eq!(f.events, vec![(WaitQ::PipeWr(0), 0x104)]);
        f.events.clear();
        f.put(w);
        assert_eq!(f.events, vec![(WaitQ::PipeRd(0), 0), (WaitQ::PipeWr(0), 0)]);
        let mut big = vec![0u8; 70000];
        assert!(f.read(r, &mut big, None, &mut crate::rng::SimRng::new(1)).is_ok_and(|n| n > 0));
        assert_eq!(
            f.read(r, &mut big, None, &mut crate::rng::SimRng::new(1)),
            Ok(0),
            "end of file once drained"
        );
    }
}
