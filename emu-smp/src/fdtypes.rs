//! Files that live inside the guest besides pipes: eventfds (fs/eventfd.c), AF_UNIX
//! socket pairs (net/unix/af_unix.c), memfds (mm/memfd.c, mm/shmem.c), and the system
//! calls that make and use them: eventfd/eventfd2, socket, socketpair, shutdown,
//! send/recv and friends, get/setsockopt, getsockname/getpeername, memfd_create,
//! ftruncate and creat.
//!
//! Sockets. The machine has no network: `socket(2)` and `socketpair(2)` know only
//! AF_UNIX, as a kernel built without IPv4, IPv6 and the other families would (every
//! other family is EAFNOSUPPORT, so a program sees a machine without networking rather
//! than a network that drops everything). A socket pair is two connected sockets of
//! type SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET with Linux's semantics for what this
//! model covers: stream data is queued per send (an skb) and a read never glues past a
//! partly read skb; datagrams keep their boundaries and are truncated to the reader's
//! buffer (MSG_TRUNC); closing a stream or seqpacket socket shuts its peer down
//! completely, and with unread data queued the peer's next read fails with ECONNRESET;
//! a datagram sent to a closed peer is ECONNREFUSED once, then ENOTCONN; writing to a
//! stream whose peer is gone or shut down is EPIPE with SIGPIPE unless MSG_NOSIGNAL;
//! poll masks follow unix_poll and unix_dgram_poll. A socket from `socket(2)` is never
//! connected: there is no address to reach (connect is ENOENT, EACCES or ECONNREFUSED
//! as the path resolves, bind is EACCES in the read-only sandbox, listen and accept are
//! EINVAL on an unbound socket). Not modelled: SCM_RIGHTS and other control messages
//! (sendmsg with a control buffer is EINVAL), MSG_OOB, SO_PEEK_OFF. The send buffer is
//! counted in bytes of data, not in skb truesize, so a writer fills somewhat more than
//! on Linux before it blocks; a blocking send returns what fitted instead of waiting
//! for the rest (as emu's pipes do); MSG_WAITALL waits for the whole request only up
//! to half the send buffer.
//!
//! memfds. The file's pages are host copies until a shared mapping faults one in; that
//! page then lives in a guest frame the file holds, which every shared mapping maps.
//! read/write go through the host copies: before a system call reads or writes a memfd
//! its frames are copied to them ([`Machine::memfd_pull`]) and pages it wrote are
//! copied back after the step ([`Machine::memfd_after_step`]). Not modelled: seals
//! (F_ADD_SEALS and F_GET_SEALS stay unsupported fcntl commands), hugetlb memfds (an
//! MFD_HUGETLB memfd is an ordinary one), a truncation unmapping pages past the new end
//! from existing mappings (they keep them; new faults past the end are SIGSEGV, where
//! Linux sends SIGBUS), private mappings seeing later writes to pages they have not
//! touched before (they copy at fault time).

use crate::fs::{errno::*, Files, Object, Stat};
use crate::machine::{sig, Machine};
use crate::poll::{
    WaitQ, EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLRDBAND, EPOLLRDNORM, EPOLLWRBAND, EPOLLWRNORM,
};
use crate::syscall::{le64, Sys};
use crate::task::Wait;
use emu_mmu::{OutOfMemory, Pfn, PhysMem};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

/// Don't block (also set by O_NONBLOCK on the description).
pub const MSG_DONTWAIT: u32 = 0x40;
const MSG_OOB: u32 = 1;
const MSG_PEEK: u32 = 2;
const MSG_TRUNC: u32 = 0x20;
const MSG_WAITALL: u32 = 0x100;
const MSG_NOSIGNAL: u32 = 0x4000;

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const SOCK_RAW: u32 = 3;
const SOCK_SEQPACKET: u32 = 5;
const SOCK_MAX: u32 = 11;
const AF_UNIX: u32 = 1;
/// Address families Linux knows (NPROTO).
const NPROTO: u32 = 46;
const RCV_SHUTDOWN: u32 = 1;
const SEND_SHUTDOWN: u32 = 2;
const O_NONBLOCK: u32 = 0o4000;
const O_CLOEXEC: u32 = 0o2000000;
/// net.core.wmem_default and wmem_max, rmem_default and rmem_max.
const SOCK_BUF: usize = 212_992;
/// SOCK_MIN_SNDBUF and SOCK_MIN_RCVBUF (twice and once TCP_SKB_MIN_TRUESIZE).
const SOCK_MIN_SNDBUF: usize = 4608;
const SOCK_MIN_RCVBUF: usize = 2304;
const PAGE: u64 = 4096;

/// An eventfd (`struct eventfd_ctx`).
#[derive(Debug, Default)]
pub struct EventFd {
    count: u64,
    semaphore: bool,
}

/// One AF_UNIX socket.
#[derive(Debug)]
pub struct Sock {
    ty: u32,
    /// The connected peer (None: never connected, or a datagram peer that went away).
    peer: Option<u32>,
    /// Queued skbs (stream) or datagrams, oldest first.
    rx: VecDeque<Vec<u8>>,
    /// Bytes of the oldest skb already read (stream).
    rx_off: usize,
    shutdown: u32,
    /// sk_err (ECONNRESET after a peer closed with data unread).
    err: i64,
    sndbuf: usize,
    rcvbuf: usize,
    /// Released (its last descriptor closed).
    dead: bool,
    /// Its creator's (pid, uid, gid): what SO_PEERCRED gives its peer.
    cred: (u32, u32, u32),
}

/// A memfd's contents (a shmem inode).
#[derive(Debug, Default)]
pub struct Shm {
    /// i_size.
    size: u64,
    /// Host copies of pages, authoritative for pages without a frame.
    pages: BTreeMap<u64, Box<[u8]>>,
    /// Frames of pages a shared mapping faulted in (one reference held here),
    /// authoritative for their pages.
    frames: BTreeMap<u64, Pfn>,
    /// Pages written through the host copies since they were last copied to frames.
    dirty: BTreeSet<u64>,
    /// Open descriptions.
    open: u32,
}

impl Shm {
    /// An empty file of `size` bytes (a System V segment's shmem file).
    pub(crate) fn with_size(size: u64) -> Shm {
        Shm { size, ..Shm::default() }
    }

    /// Pages it holds (`shm_rss`).
    pub(crate) fn resident_pages(&self) -> u64 {
        let mut n = self.frames.len() as u64;
        n += self.pages.keys().filter(|k| !self.frames.contains_key(k)).count() as u64;
        n
    }

    /// The frame backing page `index` for a mapping fault, with a reference for the
    /// PTE: the file's own frame (made from its host copy if need be) for a shared
    /// mapping, a private copy otherwise. None past the end of the file.
    pub(crate) fn frame_for(
        &mut self,
        phys: &mut PhysMem,
        index: u64,
        shared: bool,
    ) -> Result<Option<Pfn>, OutOfMemory> {
        if index * PAGE >= self.size {
            return Ok(None);
        }
        if shared {
            let f = match self.frames.get(&index) {
                Some(&f) => f,
                None => {
                    let f = phys.alloc()?;
                    if let Some(p) = self.pages.get(&index) {
                        phys.slice_mut(f.addr(), PAGE as usize).copy_from_slice(p);
                    }
                    self.frames.insert(index, f);
                    f
                }
            };
            phys.get(f);
            return Ok(Some(f));
        }
        let f = phys.alloc()?;
        if let Some(&src) = self.frames.get(&index) {
            phys.copy_frame(src, f);
        } else if let Some(p) = self.pages.get(&index) {
            phys.slice_mut(f.addr(), PAGE as usize).copy_from_slice(p);
        }
        Ok(Some(f))
    }

    /// Whether page `index` holds data (mincore: in the page cache).
    pub(crate) fn resident(&self, index: u64) -> bool {
        self.frames.contains_key(&index) || self.pages.contains_key(&index)
    }

    /// The host copy of page `index`, made if need be.
    fn page_mut(&mut self, index: u64) -> &mut [u8] {
        self.pages.entry(index).or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice())
    }
}

/// The in-guest objects behind descriptors, besides pipes.
#[derive(Debug, Default)]
pub struct FdExtra {
    next: u32,
    /// Eventfds by id.
    pub eventfds: BTreeMap<u32, EventFd>,
    /// Sockets by id.
    pub sockets: BTreeMap<u32, Sock>,
    /// memfds by id.
    pub memfds: BTreeMap<u32, Rc<RefCell<Shm>>>,
    /// epoll instances by id.
    pub epolls: BTreeMap<u32, crate::poll::Epoll>,
}

impl FdExtra {
    /// A fresh object id.
    pub(crate) fn new_id(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    /// eventfd_read: the count (or 1 with EFD_SEMAPHORE), which then drops; writers
    /// hear of it. `Err(())`: zero, and the reader sleeps.
    pub(crate) fn eventfd_read(
        &mut self,
        e: u32,
        buf: &mut [u8],
        nonblock: bool,
        events: &mut Vec<(WaitQ, u32)>,
    ) -> Result<i64, ()> {
        let Some(ctx) = self.eventfds.get_mut(&e) else { return Ok(-EBADF) };
        if buf.len() < 8 {
            return Ok(-EINVAL);
        }
        if ctx.count == 0 {
            return if nonblock { Ok(-EAGAIN) } else { Err(()) };
        }
        let v = if ctx.semaphore { 1 } else { ctx.count };
        ctx.count -= v;
        buf[..8].copy_from_slice(&v.to_le_bytes());
        events.push((WaitQ::EventFd(e), EPOLLOUT));
        Ok(8)
    }

    /// eventfd_write: adds to the count unless it would reach ULLONG_MAX (then the
    /// writer sleeps, or EAGAIN); readers hear of it.
    pub(crate) fn eventfd_write(
        &mut self,
        e: u32,
        buf: &[u8],
        nonblock: bool,
        events: &mut Vec<(WaitQ, u32)>,
    ) -> Result<i64, ()> {
        let Some(ctx) = self.eventfds.get_mut(&e) else { return Ok(-EBADF) };
        if buf.len() < 8 {
            return Ok(-EINVAL);
        }
        let v = le64(buf);
        if v == u64::MAX {
            return Ok(-EINVAL);
        }
        if u64::MAX - ctx.count <= v {
            return if nonblock { Ok(-EAGAIN) } else { Err(()) };
        }
        ctx.count += v;
        events.push((WaitQ::EventFd(e), EPOLLIN));
        Ok(8)
    }

    /// eventfd_poll.
    pub(crate) fn eventfd_poll(&self, e: u32) -> u32 {
        let Some(ctx) = self.eventfds.get(&e) else { return 0 };
        let mut m = 0;
        if ctx.count > 0 {
            m |= EPOLLIN;
        }
        if ctx.count == u64::MAX {
            m |= crate::poll::EPOLLERR;
        }
        if u64::MAX - 1 > ctx.count {
            m |= EPOLLOUT;
        }
        m
    }

    /// Bytes a socket sent that its peer has not consumed (sk_wmem_alloc, counted in
    /// data bytes).
    fn wmem(&self, s: u32) -> usize {
        let Some(p) = self.sockets.get(&s).and_then(|x| x.peer) else { return 0 };
        self.sockets.get(&p).map_or(0, |p| p.rx.iter().map(Vec::len).sum())
    }

    /// unix_writable.
    fn writable(&self, s: u32) -> bool {
        let sndbuf = self.sockets.get(&s).map_or(SOCK_BUF, |x| x.sndbuf);
        (self.wmem(s) + 1) * 4 <= sndbuf
    }

    /// unix_poll (streams) and unix_dgram_poll (datagrams, seqpackets).
    pub(crate) fn sock_poll(&self, s: u32) -> u32 {
        use crate::poll::{EPOLLERR, EPOLLHUP, EPOLLRDHUP};
        let Some(k) = self.sockets.get(&s) else { return 0 };
        let mut m = 0;
        if k.err != 0 {
            m |= EPOLLERR;
        }
        if k.shutdown == RCV_SHUTDOWN | SEND_SHUTDOWN {
            m |= EPOLLHUP;
        }
        if k.shutdown & RCV_SHUTDOWN != 0 {
            m |= EPOLLRDHUP | EPOLLIN | EPOLLRDNORM;
        }
        if !k.rx.is_empty() {
            m |= EPOLLIN | EPOLLRDNORM;
        }
        // A connection-based socket that was never connected is closed.
        if k.ty != SOCK_DGRAM && k.peer.is_none() && k.shutdown == 0 {
            m |= EPOLLHUP;
        }
        if self.writable(s) {
            m |= EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
        }
        m
    }

    /// A new socket of type `ty` made by (pid, uid, gid).
    fn sock_new(&mut self, ty: u32, cred: (u32, u32, u32)) -> u32 {
        let id = self.new_id();
        let k = Sock {
            ty,
            peer: None,
            rx: VecDeque::new(),
            rx_off: 0,
            shutdown: 0,
            err: 0,
            sndbuf: SOCK_BUF,
            rcvbuf: SOCK_BUF,
            dead: false,
            cred,
        };
        self.sockets.insert(id, k);
        id
    }

    /// sendmsg on a socket of this model (unix_stream_sendmsg, unix_dgram_sendmsg):
    /// bytes sent or -errno; `Err(())`: no room and the sender sleeps.
    pub(crate) fn sock_send(
        &mut self,
        s: u32,
        buf: &[u8],
        flags: u32,
        events: &mut Vec<(WaitQ, u32)>,
    ) -> Result<i64, ()> {
        let Some(k) = self.sockets.get(&s) else { return Ok(-EBADF) };
        let (ty, peer, shutdown, sndbuf) = (k.ty, k.peer, k.shutdown, k.sndbuf);
        let nonblock = flags & MSG_DONTWAIT != 0;
        if flags & MSG_OOB != 0 {
            return Ok(-EOPNOTSUPP);
        }
        let Some(p) = peer else { return Ok(-ENOTCONN) };
        let (peer_dead, peer_shut) =
            self.sockets.get(&p).map_or((true, 0), |x| (x.dead, x.shutdown));
        let wake = EPOLLIN | EPOLLPRI | EPOLLRDNORM | EPOLLRDBAND;
        if ty == SOCK_STREAM {
            if shutdown & SEND_SHUTDOWN != 0 {
                return Ok(-EPIPE);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            if peer_dead || peer_shut & RCV_SHUTDOWN != 0 {
                return Ok(-EPIPE);
            }
            // One skb per chunk of at most half the send buffer (less its header).
            let chunk = (sndbuf / 2).saturating_sub(64).max(1);
            let mut sent = 0;
            while sent < buf.len() && self.wmem(s) < sndbuf {
                let n = (buf.len() - sent).min(chunk);
                if let Some(x) = self.sockets.get_mut(&p) {
                    x.rx.push_back(buf[sent..sent + n].to_vec());
                }
                sent += n;
            }
            if sent == 0 {
                return if nonblock { Ok(-EAGAIN) } else { Err(()) };
            }
            events.push((WaitQ::Sock(p), wake));
            return Ok(sent as i64);
        }
        if buf.len() > sndbuf.saturating_sub(32) {
            return Ok(-EMSGSIZE);
        }
        if self.wmem(s) >= sndbuf && !peer_dead {
            return if nonblock { Ok(-EAGAIN) } else { Err(()) };
        }
        if peer_dead {
            if ty == SOCK_SEQPACKET {
                return Ok(-EPIPE);
            }
            // The peer is gone: this socket disconnects (unix_dgram_sendmsg).
            if let Some(x) = self.sockets.get_mut(&s) {
                x.peer = None;
            }
            self.sock_reap(p);
            return Ok(-ECONNREFUSED);
        }
        if peer_shut & RCV_SHUTDOWN != 0 {
            return Ok(-EPIPE);
        }
        if let Some(x) = self.sockets.get_mut(&p) {
            x.rx.push_back(buf.to_vec());
        }
        events.push((WaitQ::Sock(p), wake));
        Ok(buf.len() as i64)
    }

    /// recvmsg on a socket of this model: Ok((bytes copied, length of the datagram))
    /// or the errno; `Err(())`: nothing to read and the reader sleeps.
    pub(crate) fn sock_recv(
        &mut self,
        s: u32,
        buf: &mut [u8],
        flags: u32,
        events: &mut Vec<(WaitQ, u32)>,
    ) -> Result<Result<(usize, usize), i64>, ()> {
        let nonblock = flags & MSG_DONTWAIT != 0;
        let Some(k) = self.sockets.get_mut(&s) else { return Ok(Err(EBADF)) };
        let ty = k.ty;
        if flags & MSG_OOB != 0 {
            return Ok(Err(if ty == SOCK_STREAM { EINVAL } else { EOPNOTSUPP }));
        }
        if ty == SOCK_STREAM && k.peer.is_none() && k.shutdown == 0 {
            return Ok(Err(EINVAL));
        }
        let avail: usize = k.rx.iter().map(Vec::len).sum::<usize>() - k.rx_off;
        let waitall = ty == SOCK_STREAM
            && flags & MSG_WAITALL != 0
            && avail < buf.len()
            && avail < k.sndbuf / 2
            && k.shutdown & RCV_SHUTDOWN == 0
            && k.err == 0;
        if k.rx.is_empty() || (waitall && !nonblock) {
            if k.err != 0 {
                return Ok(Err(std::mem::take(&mut k.err)));
            }
            if k.shutdown & RCV_SHUTDOWN != 0 {
                // A datagram socket shut down for reading keeps EAGAIN.
                return Ok(if ty == SOCK_DGRAM { Err(EAGAIN) } else { Ok((0, 0)) });
            }
            if k.rx.is_empty() || !waitall {
                return if nonblock { Ok(Err(EAGAIN)) } else { Err(()) };
            }
            return Err(());
        }
        let peek = flags & MSG_PEEK != 0;
        let mut freed = false;
        let result = if ty == SOCK_STREAM {
            let mut n = 0;
            let mut i = 0;
            let mut off = k.rx_off;
            while n < buf.len() && i < k.rx.len() {
                let skb = &k.rx[i];
                let m = (skb.len() - off).min(buf.len() - n);
                buf[n..n + m].copy_from_slice(&skb[off..off + m]);
                n += m;
                if off + m < skb.len() {
                    off += m;
                    break;
                }
                off = 0;
                i += 1;
            }
            if !peek {
                for _ in 0..i {
                    k.rx.pop_front();
                    freed = true;
                }
                k.rx_off = off;
            }
            (n, n)
        } else {
            let Some(d) = (if peek { k.rx.front().cloned() } else { k.rx.pop_front() }) else {
                return Ok(Err(EAGAIN));
            };
            freed = !peek;
            let n = d.len().min(buf.len());
            buf[..n].copy_from_slice(&d[..n]);
            (n, d.len())
        };
        // The sender's skbs were freed: it may write again (unix_write_space).
        if let Some(p) = k.peer {
            if freed && self.writable(p) {
                events.push((WaitQ::Sock(p), EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND));
            }
        }
        Ok(Ok(result))
    }

    /// unix_release_sock: the socket's last descriptor is closed. A stream or
    /// seqpacket peer is shut down (with ECONNRESET if data was left unread here).
    pub(crate) fn sock_release(&mut self, s: u32, events: &mut Vec<(WaitQ, u32)>) {
        let Some(k) = self.sockets.get_mut(&s) else { return };
        k.dead = true;
        let unread = !k.rx.is_empty();
        k.rx.clear();
        k.rx_off = 0;
        let (ty, peer) = (k.ty, k.peer);
        if let Some(p) = peer {
            if let Some(x) = self.sockets.get_mut(&p) {
                if !x.dead {
                    if ty != SOCK_DGRAM {
                        x.shutdown = RCV_SHUTDOWN | SEND_SHUTDOWN;
                        if unread {
                            x.err = ECONNRESET;
                        }
                        events.push((WaitQ::Sock(p), 0));
                    } else if unread {
                        events.push((WaitQ::Sock(p), EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND));
                    }
                }
            }
        }
        self.sock_reap(s);
    }

    /// Forgets a dead socket once no live socket refers to it.
    fn sock_reap(&mut self, s: u32) {
        let Some(k) = self.sockets.get(&s) else { return };
        if !k.dead {
            return;
        }
        let referenced =
            self.sockets.iter().any(|(id, x)| *id != s && !x.dead && x.peer == Some(s));
        if !referenced {
            let peer = k.peer;
            self.sockets.remove(&s);
            if let Some(p) = peer {
                if self.sockets.get(&p).is_some_and(|x| x.dead) {
                    self.sockets.remove(&p);
                }
            }
        }
    }

    /// Reads a memfd at `pos` (from its host copies; see [`Machine::memfd_pull`]).
    pub(crate) fn memfd_read(&mut self, m: u32, buf: &mut [u8], pos: u64) -> i64 {
        let Some(shm) = self.memfds.get(&m) else { return -EBADF };
        let shm = shm.borrow();
        let end = shm.size.min(pos.saturating_add(buf.len() as u64));
        let mut a = pos;
        while a < end {
            let (index, off) = (a / PAGE, (a % PAGE) as usize);
            let n = ((PAGE as usize - off) as u64).min(end - a) as usize;
            let dst = &mut buf[(a - pos) as usize..(a - pos) as usize + n];
            match shm.pages.get(&index) {
                Some(p) => dst.copy_from_slice(&p[off..off + n]),
                None => dst.fill(0),
            }
            a += n as u64;
        }
        end.saturating_sub(pos) as i64
    }

    /// Writes a memfd at `pos`, growing it (shmem_write_begin).
    pub(crate) fn memfd_write(&mut self, m: u32, buf: &[u8], pos: u64) -> i64 {
        let Some(shm) = self.memfds.get(&m) else { return -EBADF };
        let mut shm = shm.borrow_mut();
        // MAX_LFS_FILESIZE.
        if pos.saturating_add(buf.len() as u64) > i64::MAX as u64 {
            return -EFBIG;
        }
        let mut done = 0;
        while done < buf.len() {
            let a = pos + done as u64;
            let (index, off) = (a / PAGE, (a % PAGE) as usize);
            let n = (PAGE as usize - off).min(buf.len() - done);
            shm.page_mut(index)[off..off + n].copy_from_slice(&buf[done..done + n]);
            shm.dirty.insert(index);
            done += n;
        }
        shm.size = shm.size.max(pos + buf.len() as u64);
        buf.len() as i64
    }

    /// fstat of a memfd: a regular file, mode 0777, no links, blocks as allocated.
    pub(crate) fn memfd_stat(&self, m: u32) -> Stat {
        let Some(shm) = self.memfds.get(&m) else { return Stat::default() };
        let shm = shm.borrow();
        let pages = shm.pages.keys().chain(shm.frames.keys()).collect::<BTreeSet<_>>().len();
        Stat {
            mode: 0o100777,
            nlink: 0,
            size: shm.size as i64,
            blksize: 4096,
            blocks: pages as i64 * 8,
            ..Stat::default()
        }
    }

    /// A description of memfd `m` is closed.
    pub(crate) fn memfd_close(&mut self, m: u32) {
        if let Some(shm) = self.memfds.get(&m) {
            let mut shm = shm.borrow_mut();
            shm.open = shm.open.saturating_sub(1);
        }
    }

    /// Forgets a closed description in every epoll instance.
    pub(crate) fn epoll_forget(&mut self, desc: u32) {
        for ep in self.epolls.values_mut() {
            ep.forget(desc);
        }
    }
}

const EFBIG: i64 = 27;

impl Files {
    /// The socket behind a description: Err(ENOTSOCK) for another file.
    fn sock_of(&self, desc: u32) -> Result<u32, i64> {
        match self.descs.get(&desc).map(|d| &d.obj) {
            Some(Object::Socket(s)) => Ok(*s),
            _ => Err(ENOTSOCK),
        }
    }
}

impl Machine {
    /// Installs description `desc` at the lowest free descriptor of `tid`'s table
    /// (fd_install after get_unused_fd_flags); EMFILE past RLIMIT_NOFILE.
    pub(crate) fn install_new_fd(&mut self, tid: u32, desc: u32, cloexec: bool) -> i64 {
        let Some(files) = self.k.tasks.get(&tid).map(|t| t.files) else { return -EBADF };
        let Some(tab) = self.k.fdtables.get_mut(&files) else { return -EBADF };
        let fd = tab.lowest_free(0);
        if fd >= 1024 {
            self.k.files.put(desc);
            return -EMFILE;
        }
        tab.fds.insert(fd, (desc, cloexec));
        i64::from(fd)
    }

    /// The socket behind descriptor `fd` of `tid`: EBADF or ENOTSOCK otherwise.
    fn sock_fd(&self, tid: u32, fd: u64) -> Result<u32, i64> {
        let d = self.fd(tid, fd as i32).ok_or(EBADF)?;
        self.k.files.sock_of(d)
    }

    /// Whether descriptor `fd`'s description is non-blocking.
    fn nonblocking(&self, tid: u32, fd: u64) -> bool {
        self.fd(tid, fd as i32)
            .and_then(|d| self.k.files.descs.get(&d))
            .is_some_and(|d| d.flags & O_NONBLOCK != 0)
    }

    /// eventfd(2) and eventfd2(2): `flags` EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC.
    pub(crate) fn sys_eventfd(&mut self, tid: u32, count: u64, flags: u64) -> i64 {
        let flags = flags as u32;
        if flags & !(1 | O_NONBLOCK | O_CLOEXEC) != 0 {
            return -EINVAL;
        }
        let id = self.k.files.x.new_id();
        let ctx = EventFd { count: u64::from(count as u32), semaphore: flags & 1 != 0 };
        self.k.files.x.eventfds.insert(id, ctx);
        let desc = self.k.files.create(Object::EventFd(id), 2 | (flags & O_NONBLOCK));
        self.install_new_fd(tid, desc, flags & O_CLOEXEC != 0)
    }

    /// The checks of socket(2) and socketpair(2) (__sys_socket_create, __sock_create,
    /// unix_create): Ok((type, flags)).
    fn socket_args(&self, family: u64, ty: u64, protocol: u64) -> Result<(u32, u32), i64> {
        let (family, ty, protocol) = (family as i32, ty as i32 as u32, protocol as i32);
        let flags = ty & !0xf;
        if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
            return Err(EINVAL);
        }
        let mut ty = ty & 0xf;
        if family < 0 || family as u32 >= NPROTO {
            return Err(EAFNOSUPPORT);
        }
        if ty >= SOCK_MAX {
            return Err(EINVAL);
        }
        // The only family this kernel has.
        if family as u32 != AF_UNIX {
            return Err(EAFNOSUPPORT);
        }
        if protocol != 0 && protocol != AF_UNIX as i32 {
            return Err(EPROTONOSUPPORT);
        }
        if ty == SOCK_RAW {
            ty = SOCK_DGRAM;
        }
        if !matches!(ty, SOCK_STREAM | SOCK_DGRAM | SOCK_SEQPACKET) {
            return Err(ESOCKTNOSUPPORT);
        }
        Ok((ty, flags))
    }

    fn cred(&self, tid: u32) -> (u32, u32, u32) {
        let pid = self.k.tasks.get(&tid).map_or(0, |t| t.tgid);
        (pid, self.k.uid, self.k.gid)
    }

    /// socket(2): only AF_UNIX exists, and its sockets can reach no address.
    pub(crate) fn sys_socket(&mut self, tid: u32, a: [u64; 6]) -> i64 {
        let (ty, flags) = match self.socket_args(a[0], a[1], a[2]) {
            Ok(x) => x,
            Err(e) => return -e,
        };
        let cred = self.cred(tid);
        let s = self.k.files.x.sock_new(ty, cred);
        let desc = self.k.files.create(Object::Socket(s), 2 | (flags & O_NONBLOCK));
        self.install_new_fd(tid, desc, flags & O_CLOEXEC != 0)
    }

    /// socketpair(2) (__sys_socketpair, unix_socketpair): the descriptors are chosen
    /// and written back before the sockets are made, as Linux does.
    pub(crate) fn sys_socketpair(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let flags = (a[1] as u32) & !0xf;
        if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
            return -EINVAL;
        }
        let Some(files) = self.k.tasks.get(&tid).map(|t| t.files) else { return -EBADF };
        let Some(tab) = self.k.fdtables.get(&files) else { return -EBADF };
        let fd1 = tab.lowest_free(0);
        let mut fd2 = fd1 + 1;
        while tab.fds.contains_key(&fd2) {
            fd2 += 1;
        }
        if fd2 >= 1024 {
            return -EMFILE;
        }
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&fd1.to_le_bytes());
        b[4..].copy_from_slice(&fd2.to_le_bytes());
        if self.write_user(c, tid, a[3], &b[..4]).is_err()
            || self.write_user(c, tid, a[3] + 4, &b[4..]).is_err()
        {
            return -EFAULT;
        }
        let (ty, _) = match self.socket_args(a[0], a[1], a[2]) {
            Ok(x) => x,
            Err(e) => return -e,
        };
        let cred = self.cred(tid);
        let x = &mut self.k.files.x;
        let (s1, s2) = (x.sock_new(ty, cred), x.sock_new(ty, cred));
        for (s, p) in [(s1, s2), (s2, s1)] {
            if let Some(k) = x.sockets.get_mut(&s) {
                k.peer = Some(p);
            }
        }
        let fl = 2 | (flags & O_NONBLOCK);
        let (d1, d2) = (
            self.k.files.create(Object::Socket(s1), fl),
            self.k.files.create(Object::Socket(s2), fl),
        );
        let cloexec = flags & O_CLOEXEC != 0;
        if let Some(tab) = self.k.fdtables.get_mut(&files) {
            tab.fds.insert(fd1, (d1, cloexec));
            tab.fds.insert(fd2, (d2, cloexec));
        }
        0
    }

    /// shutdown(2) (unix_shutdown).
    pub(crate) fn sys_shutdown(&mut self, c: usize, tid: u32, fd: u64, how: u64) -> i64 {
        let s = match self.sock_fd(tid, fd) {
            Ok(s) => s,
            Err(e) => return -e,
        };
        let how = how as i32;
        if !(0..=2).contains(&how) {
            return -EINVAL;
        }
        let mode = (how as u32 + 1) & (RCV_SHUTDOWN | SEND_SHUTDOWN);
        let x = &mut self.k.files.x;
        let Some(k) = x.sockets.get_mut(&s) else { return -EBADF };
        k.shutdown |= mode;
        let (ty, peer) = (k.ty, k.peer);
        self.k.files.events.push((WaitQ::Sock(s), 0));
        if let (Some(p), true) = (peer, ty != SOCK_DGRAM) {
            if let Some(o) = self.k.files.x.sockets.get_mut(&p) {
                if !o.dead {
                    let mut peer_mode = 0;
                    if mode & RCV_SHUTDOWN != 0 {
                        peer_mode |= SEND_SHUTDOWN;
                    }
                    if mode & SEND_SHUTDOWN != 0 {
                        peer_mode |= RCV_SHUTDOWN;
                    }
                    o.shutdown |= peer_mode;
                    self.k.files.events.push((WaitQ::Sock(p), 0));
                }
            }
        }
        self.wake_io(c);
        0
    }

    /// A sendmsg with its data gathered: the model's send, SIGPIPE for a broken
    /// stream, wake-ups of blocked readers.
    fn send_common(&mut self, c: usize, tid: u32, s: u32, data: &[u8], flags: u32) -> Sys {
        let x = &mut self.k.files.x;
        let ty = x.sockets.get(&s).map_or(0, |k| k.ty);
        match x.sock_send(s, data, flags, &mut self.k.files.events) {
            Err(()) => Sys::Block(Wait::Io),
            Ok(r) => {
                if r >= 0 {
                    self.wake_io(c);
                }
                if r == -EPIPE && ty == SOCK_STREAM && flags & MSG_NOSIGNAL == 0 {
                    // The result is in RAX before a handler's frame saves the registers.
                    if let Some(t) = self.k.tasks.get_mut(&tid) {
                        t.cpu.gpr[0] = r as u64;
                    }
                    self.signal_thread(c, tid, sig::SIGPIPE);
                    return Sys::Done;
                }
                Sys::Ret(r)
            }
        }
    }

    /// Checks a destination address given to sendto/sendmsg on a socket of type `ty`
    /// (unix_validate_addr, unix_find_other): a connected stream is EISCONN; a
    /// seqpacket ignores it; a datagram finds nothing to send to.
    fn send_addr(&mut self, c: usize, tid: u32, ty: u32, addr: u64, len: u64) -> Result<(), i64> {
        let len = len as i32;
        if addr == 0 || len == 0 || ty == SOCK_SEQPACKET {
            return Ok(());
        }
        if !(0..=128).contains(&len) {
            return Err(EINVAL);
        }
        let mut b = vec![0u8; len as usize];
        self.read_user(c, tid, addr, &mut b).map_err(|()| EFAULT)?;
        if ty == SOCK_STREAM {
            return Err(EISCONN);
        }
        self.unix_lookup(&b)
    }

    /// unix_find_other: no socket is bound anywhere, so an address names either
    /// nothing (ENOENT, or EACCES outside the readable paths) or something that is not
    /// a listening socket (ECONNREFUSED).
    fn unix_lookup(&mut self, b: &[u8]) -> Result<(), i64> {
        if b.len() < 2 || b.len() > 110 || u16::from_le_bytes([b[0], b[1]]) != AF_UNIX as u16 {
            return Err(EINVAL);
        }
        let path = &b[2..];
        if path.is_empty() {
            return Err(EINVAL);
        }
        if path[0] == 0 {
            return Err(ECONNREFUSED);
        }
        let end = path.iter().position(|&x| x == 0).unwrap_or(path.len());
        let p = String::from_utf8_lossy(&path[..end]).into_owned();
        if !p.starts_with('/') {
            return Err(ENOENT);
        }
        match self.k.files.resolve(&p) {
            Err(e) => Err(e),
            Ok(_) => Err(ECONNREFUSED),
        }
    }

    /// sendto(2) (and send(3), which is sendto without an address).
    pub(crate) fn sys_sendto(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let s = match self.sock_fd(tid, a[0]) {
            Ok(s) => s,
            Err(e) => return Sys::Ret(-e),
        };
        let len = a[2].min(0x7fff_f000) as usize;
        let mut data = vec![0u8; len];
        if self.read_user(c, tid, a[1], &mut data).is_err() {
            return Sys::Ret(-EFAULT);
        }
        if a[4] != 0 && !(0..=128).contains(&(a[5] as i32)) {
            return Sys::Ret(-EINVAL);
        }
        let ty = self.k.files.x.sockets.get(&s).map_or(0, |k| k.ty);
        if let Err(e) = self.send_addr(c, tid, ty, a[4], a[5]) {
            return Sys::Ret(-e);
        }
        let mut flags = a[3] as u32;
        if self.nonblocking(tid, a[0]) {
            flags |= MSG_DONTWAIT;
        }
        self.send_common(c, tid, s, &data, flags)
    }

    /// A recvmsg into a buffer of `len` bytes: Ok(Ok((data, length to return,
    /// truncated))).
    fn recv_common(
        &mut self,
        tid: u32,
        fd: u64,
        s: u32,
        len: usize,
        flags: u32,
    ) -> Result<Result<(Vec<u8>, usize, bool), i64>, ()> {
        let mut flags = flags;
        if self.nonblocking(tid, fd) {
            flags |= MSG_DONTWAIT;
        }
        let mut buf = vec![0u8; len.min(1 << 24)];
        let x = &mut self.k.files.x;
        match x.sock_recv(s, &mut buf, flags, &mut self.k.files.events)? {
            Err(e) => Ok(Err(e)),
            Ok((n, full)) => {
                buf.truncate(n);
                let ret = if flags & MSG_TRUNC != 0 { full } else { n };
                Ok(Ok((buf, ret, full > n)))
            }
        }
    }

    /// recvfrom(2) (and recv(3)). The sender is never bound: an address buffer gets
    /// length 0.
    pub(crate) fn sys_recvfrom(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let s = match self.sock_fd(tid, a[0]) {
            Ok(s) => s,
            Err(e) => return Sys::Ret(-e),
        };
        let r = match self.recv_common(tid, a[0], s, a[2].min(0x7fff_f000) as usize, a[3] as u32) {
            Err(()) => return Sys::Block(Wait::Io),
            Ok(Err(e)) => return Sys::Ret(-e),
            Ok(Ok((data, ret, _))) => {
                if self.write_user(c, tid, a[1], &data).is_err() {
                    return Sys::Ret(-EFAULT);
                }
                self.wake_io(c);
                ret as i64
            }
        };
        if a[4] != 0 {
            if let Err(e) = self.put_addr(c, tid, a[4], a[5], &[]) {
                return Sys::Ret(-e);
            }
        }
        Sys::Ret(r)
    }

    /// move_addr_to_user: copies at most `*ulen` bytes of `addr` and stores its
    /// length in `*ulen`.
    fn put_addr(
        &mut self,
        c: usize,
        tid: u32,
        uaddr: u64,
        ulen: u64,
        addr: &[u8],
    ) -> Result<(), i64> {
        let mut b = [0u8; 4];
        self.read_user(c, tid, ulen, &mut b).map_err(|()| EFAULT)?;
        let len = i32::from_le_bytes(b);
        if len < 0 {
            return Err(EINVAL);
        }
        let n = (len as usize).min(addr.len());
        if n > 0 {
            self.write_user(c, tid, uaddr, &addr[..n]).map_err(|()| EFAULT)?;
        }
        self.write_user(c, tid, ulen, &(addr.len() as u32).to_le_bytes()).map_err(|()| EFAULT)
    }

    /// Reads a struct msghdr and its iovecs: (name, namelen, iovecs, control,
    /// controllen).
    fn read_msghdr(
        &mut self,
        c: usize,
        tid: u32,
        msg: u64,
    ) -> Result<(u64, u64, Vec<(u64, u64)>, u64, u64), i64> {
        let mut h = [0u8; 56];
        self.read_user(c, tid, msg, &mut h).map_err(|()| EFAULT)?;
        let (name, namelen) =
            (le64(&h[0..]), u64::from(u32::from_le_bytes([h[8], h[9], h[10], h[11]])));
        let (iov, iovlen) = (le64(&h[16..]), le64(&h[24..]));
        let (control, controllen) = (le64(&h[32..]), le64(&h[40..]));
        if iovlen > 1024 {
            return Err(EMSGSIZE);
        }
        let mut raw = vec![0u8; 16 * iovlen as usize];
        self.read_user(c, tid, iov, &mut raw).map_err(|()| EFAULT)?;
        let v: Vec<(u64, u64)> =
            raw.chunks_exact(16).map(|x| (le64(&x[..8]), le64(&x[8..]))).collect();
        if v.iter().any(|&(_, l)| l > i64::MAX as u64) {
            return Err(EINVAL);
        }
        Ok((name, namelen, v, control, controllen))
    }

    /// sendmsg(2): the iovecs gathered into one send; no control messages.
    pub(crate) fn sys_sendmsg(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let s = match self.sock_fd(tid, a[0]) {
            Ok(s) => s,
            Err(e) => return Sys::Ret(-e),
        };
        let (name, namelen, iov, _, controllen) = match self.read_msghdr(c, tid, a[1]) {
            Ok(h) => h,
            Err(e) => return Sys::Ret(-e),
        };
        if controllen > 0 {
            return Sys::Ret(-EINVAL);
        }
        let mut data = Vec::new();
        for (base, len) in iov {
            let len = (len as usize).min((1 << 24) - data.len());
            let start = data.len();
            data.resize(start + len, 0);
            if self.read_user(c, tid, base, &mut data[start..]).is_err() {
                return Sys::Ret(-EFAULT);
            }
        }
        let ty = self.k.files.x.sockets.get(&s).map_or(0, |k| k.ty);
        if let Err(e) = self.send_addr(c, tid, ty, name, namelen) {
            return Sys::Ret(-e);
        }
        let mut flags = a[2] as u32;
        if self.nonblocking(tid, a[0]) {
            flags |= MSG_DONTWAIT;
        }
        self.send_common(c, tid, s, &data, flags)
    }

    /// recvmsg(2): one receive scattered over the iovecs; msg_flags gets MSG_TRUNC for
    /// a truncated datagram, msg_controllen 0, msg_namelen 0.
    pub(crate) fn sys_recvmsg(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let s = match self.sock_fd(tid, a[0]) {
            Ok(s) => s,
            Err(e) => return Sys::Ret(-e),
        };
        let (name, _, iov, _, _) = match self.read_msghdr(c, tid, a[1]) {
            Ok(h) => h,
            Err(e) => return Sys::Ret(-e),
        };
        let total: u64 = iov.iter().map(|v| v.1).fold(0, u64::saturating_add);
        let (data, ret, trunc) = match self.recv_common(tid, a[0], s, total as usize, a[2] as u32) {
            Err(()) => return Sys::Block(Wait::Io),
            Ok(Err(e)) => return Sys::Ret(-e),
            Ok(Ok(r)) => r,
        };
        let mut done = 0;
        for (base, len) in iov {
            if done >= data.len() {
                break;
            }
            let n = (len as usize).min(data.len() - done);
            if self.write_user(c, tid, base, &data[done..done + n]).is_err() {
                return Sys::Ret(-EFAULT);
            }
            done += n;
        }
        let msg = a[1];
        let flags: u32 = if trunc { MSG_TRUNC } else { 0 };
        let ok = (name == 0 || self.write_user(c, tid, msg + 8, &0u32.to_le_bytes()).is_ok())
            && self.write_user(c, tid, msg + 40, &0u64.to_le_bytes()).is_ok()
            && self.write_user(c, tid, msg + 48, &flags.to_le_bytes()).is_ok();
        self.wake_io(c);
        Sys::Ret(if ok { ret as i64 } else { -EFAULT })
    }

    /// getsockname(2) and getpeername(2): sockets are never bound, so the address is
    /// the family alone; a socket without a peer has no peer name.
    pub(crate) fn sys_getname(&mut self, c: usize, tid: u32, a: [u64; 6], peer: bool) -> i64 {
        let s = match self.sock_fd(tid, a[0]) {
            Ok(s) => s,
            Err(e) => return -e,
        };
        if peer {
            let connected = self.k.files.x.sockets.get(&s).and_then(|k| k.peer).is_some();
            if !connected {
                return -ENOTCONN;
            }
        }
        match self.put_addr(c, tid, a[1], a[2], &(AF_UNIX as u16).to_le_bytes()) {
            Ok(()) => 0,
            Err(e) => -e,
        }
    }

    /// getsockopt(2) at SOL_SOCKET (sk_getsockopt); AF_UNIX has no other level.
    pub(crate) fn sys_getsockopt(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let s = match self.sock_fd(tid, a[0]) {
            Ok(s) => s,
            Err(e) => return -e,
        };
        let (level, name) = (a[1] as i32, a[2] as i32);
        if level != 1 {
            return -EOPNOTSUPP;
        }
        let mut b = [0u8; 4];
        if self.read_user(c, tid, a[4], &mut b).is_err() {
            return -EFAULT;
        }
        let len = i32::from_le_bytes(b);
        if len < 0 {
            return -EINVAL;
        }
        let peer_cred = {
            let x = &self.k.files.x;
            x.sockets.get(&s).and_then(|k| k.peer).and_then(|p| x.sockets.get(&p)).map(|p| p.cred)
        };
        let Some(k) = self.k.files.x.sockets.get_mut(&s) else { return -EBADF };
        let v: Vec<u8> = match name {
            3 => k.ty.to_le_bytes().to_vec(),     // SO_TYPE
            39 => AF_UNIX.to_le_bytes().to_vec(), // SO_DOMAIN
            38 => 0u32.to_le_bytes().to_vec(),    // SO_PROTOCOL
            4 => (std::mem::take(&mut k.err) as u32).to_le_bytes().to_vec(), // SO_ERROR
            7 => (k.sndbuf as u32).to_le_bytes().to_vec(), // SO_SNDBUF
            8 => (k.rcvbuf as u32).to_le_bytes().to_vec(), // SO_RCVBUF
            // SO_ACCEPTCONN, SO_PASSCRED, SO_KEEPALIVE, SO_REUSEADDR, SO_BROADCAST,
            // SO_DONTROUTE, SO_OOBINLINE, SO_PASSSEC: off.
            30 | 16 | 9 | 2 | 6 | 5 | 10 | 34 => 0u32.to_le_bytes().to_vec(),
            17 => {
                // SO_PEERCRED: the peer's creator, or nobody.
                let (pid, uid, gid) = peer_cred.unwrap_or((0, u32::MAX, u32::MAX));
                [pid, uid, gid].iter().flat_map(|x| x.to_le_bytes()).collect()
            }
            _ => return -ENOPROTOOPT,
        };
        let n = (len as usize).min(v.len());
        if self.write_user(c, tid, a[3], &v[..n]).is_err()
            || self.write_user(c, tid, a[4], &(n as u32).to_le_bytes()).is_err()
        {
            return -EFAULT;
        }
        0
    }

    /// setsockopt(2) at SOL_SOCKET: buffer sizes (doubled, capped at wmem_max and
    /// rmem_max, floored at the minimums); other known options are accepted.
    pub(crate) fn sys_setsockopt(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let s = match self.sock_fd(tid, a[0]) {
            Ok(s) => s,
            Err(e) => return -e,
        };
        let (level, name, len) = (a[1] as i32, a[2] as i32, a[4] as i32);
        if level != 1 {
            return -EOPNOTSUPP;
        }
        if len < 4 {
            return -EINVAL;
        }
        let mut b = [0u8; 4];
        if self.read_user(c, tid, a[3], &mut b).is_err() {
            return -EFAULT;
        }
        let v = i32::from_le_bytes(b).max(0) as usize;
        let Some(k) = self.k.files.x.sockets.get_mut(&s) else { return -EBADF };
        match name {
            7 => k.sndbuf = (v.min(SOCK_BUF) * 2).max(SOCK_MIN_SNDBUF),
            8 => k.rcvbuf = (v.min(SOCK_BUF) * 2).max(SOCK_MIN_RCVBUF),
            16 | 9 | 2 | 6 | 5 | 10 | 34 => {}
            _ => return -ENOPROTOOPT,
        }
        self.k.files.events.push((WaitQ::Sock(s), EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND));
        0
    }

    /// connect(2): socket pairs are connected already; nothing is bound to connect to.
    pub(crate) fn sys_connect(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let s = match self.sock_fd(tid, a[0]) {
            Ok(s) => s,
            Err(e) => return -e,
        };
        let len = a[2] as i32;
        if !(0..=128).contains(&len) {
            return -EINVAL;
        }
        let mut b = vec![0u8; len as usize];
        if self.read_user(c, tid, a[1], &mut b).is_err() {
            return -EFAULT;
        }
        let Some(k) = self.k.files.x.sockets.get(&s) else { return -EBADF };
        if k.ty != SOCK_DGRAM && k.peer.is_some() {
            return -EISCONN;
        }
        match self.unix_lookup(&b) {
            Ok(()) => 0,
            Err(e) => -e,
        }
    }

    /// bind(2): nothing can be bound (the sandbox's file system is read-only and the
    /// abstract namespace is not modelled).
    pub(crate) fn sys_bind(&mut self, tid: u32, a: [u64; 6]) -> i64 {
        match self.sock_fd(tid, a[0]) {
            Ok(_) => -EACCES,
            Err(e) => -e,
        }
    }

    /// listen(2) and accept(2)/accept4(2): EINVAL on sockets that are not bound and
    /// listening, which is all of them.
    pub(crate) fn sys_listen_accept(&mut self, tid: u32, fd: u64) -> i64 {
        match self.sock_fd(tid, fd) {
            Ok(_) => -EINVAL,
            Err(e) => -e,
        }
    }

    /// memfd_create(2) (sanitize_flags, alloc_name).
    pub(crate) fn sys_memfd_create(&mut self, c: usize, tid: u32, name: u64, flags: u64) -> i64 {
        const CLOEXEC: u32 = 1;
        const ALLOW_SEALING: u32 = 2;
        const HUGETLB: u32 = 4;
        const NOEXEC_SEAL: u32 = 8;
        const EXEC: u32 = 0x10;
        const ALL: u32 = CLOEXEC | ALLOW_SEALING | HUGETLB | NOEXEC_SEAL | EXEC;
        let flags = flags as u32;
        let allowed = if flags & HUGETLB != 0 { ALL | (0x3f << 26) } else { ALL };
        if flags & !allowed != 0 || (flags & EXEC != 0 && flags & NOEXEC_SEAL != 0) {
            return -EINVAL;
        }
        match self.read_cstr(c, tid, name, 250) {
            Ok(_) => {}
            Err(ENAMETOOLONG) => return -EINVAL,
            Err(e) => return -e,
        }
        let id = self.k.files.x.new_id();
        let shm = Shm { open: 1, ..Shm::default() };
        self.k.files.x.memfds.insert(id, Rc::new(RefCell::new(shm)));
        // O_RDWR | O_LARGEFILE, as memfd_create sets them.
        let desc = self.k.files.create(Object::Memfd(id), 2 | 0o100000);
        self.install_new_fd(tid, desc, flags & CLOEXEC != 0)
    }

    /// ftruncate(2) (do_sys_ftruncate): memfds change size (a shrink drops the pages
    /// past the end and zeroes the rest of the last one); other files are EINVAL (not
    /// regular, or not open for writing).
    pub(crate) fn sys_ftruncate(&mut self, tid: u32, fd: u64, len: u64) -> i64 {
        let len = len as i64;
        if len < 0 {
            return -EINVAL;
        }
        let Some(d) = self.fd(tid, fd as i32) else { return -EBADF };
        let Some(&Object::Memfd(m)) = self.k.files.descs.get(&d).map(|x| &x.obj) else {
            return -EINVAL;
        };
        let Some(shm) = self.k.files.x.memfds.get(&m).cloned() else { return -EBADF };
        let mut shm = shm.borrow_mut();
        let len = len as u64;
        if len < shm.size {
            let keep = len.div_ceil(PAGE);
            let gone: Vec<u64> = shm.frames.range(keep..).map(|(k, _)| *k).collect();
            for k in gone {
                if let Some(f) = shm.frames.remove(&k) {
                    self.hw.mem.phys.put(f);
                }
            }
            shm.pages.retain(|k, _| *k < keep);
            shm.dirty.retain(|k| *k < keep);
            if len % PAGE != 0 {
                let (index, off) = (len / PAGE, (len % PAGE) as usize);
                if let Some(&f) = shm.frames.get(&index) {
                    self.hw.mem.phys.slice_mut(f.addr() + off as u64, PAGE as usize - off).fill(0);
                }
                if let Some(p) = shm.pages.get_mut(&index) {
                    p[off..].fill(0);
                }
            }
        }
        shm.size = len;
        0
    }

    /// pwrite64(2) (ksys_pwrite64): memfds and /dev/null take it; streams (pipes,
    /// sockets, eventfds, epoll instances, emu's standard streams) are ESPIPE; host
    /// files are open read-only (EBADF).
    pub(crate) fn sys_pwrite64(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let pos = a[3] as i64;
        if pos < 0 {
            return -EINVAL;
        }
        let Some(d) = self.fd(tid, a[0] as i32) else { return -EBADF };
        let Some(desc) = self.k.files.descs.get(&d) else { return -EBADF };
        let writable = desc.flags & 3 != 0;
        let memfd = match desc.obj {
            Object::Memfd(m) => Some(m),
            Object::Dev(_) | Object::Host { .. } | Object::Synthetic { .. } => None,
            _ => return -ESPIPE,
        };
        if !writable {
            return -EBADF;
        }
        let len = a[2].min(0x7fff_f000) as usize;
        let mut data = vec![0u8; len];
        if self.read_user(c, tid, a[1], &mut data).is_err() {
            return -EFAULT;
        }
        match memfd {
            Some(m) => self.k.files.x.memfd_write(m, &data, pos as u64),
            None => len as i64,
        }
    }

    /// Before a system call reads or writes a memfd through a descriptor: the frames of
    /// its mapped pages are copied to the host copies the file layer uses.
    pub(crate) fn memfd_pull(&mut self, _c: usize, tid: u32) {
        if self.k.files.x.memfds.is_empty() {
            return;
        }
        let Some(t) = self.k.tasks.get(&tid) else { return };
        let (nr, a0, a1) = (t.cpu.gpr[0], t.cpu.gpr[7], t.cpu.gpr[6]);
        // read, write, pread64, pwrite64, readv, writev, sendfile, preadv, pwritev,
        // preadv2, pwritev2.
        let fds: &[u64] = match nr {
            0 | 1 | 17 | 18 | 19 | 20 | 295 | 296 | 327 | 328 => &[a0],
            40 => &[a0, a1],
            _ => return,
        };
        for &fd in fds {
            let Some(d) = self.fd(tid, fd as i32) else { continue };
            let Some(&Object::Memfd(m)) = self.k.files.descs.get(&d).map(|x| &x.obj) else {
                continue;
            };
            let Some(shm) = self.k.files.x.memfds.get(&m) else { continue };
            let mut shm = shm.borrow_mut();
            let frames: Vec<(u64, Pfn)> = shm.frames.iter().map(|(k, f)| (*k, *f)).collect();
            for (index, f) in frames {
                let src = self.hw.mem.phys.slice(f.addr(), PAGE as usize).to_vec();
                shm.page_mut(index).copy_from_slice(&src);
            }
        }
    }

    /// After a step: pages written through the file layer go to their frames; memfds
    /// with no descriptor and no mapping left free their frames.
    pub(crate) fn memfd_after_step(&mut self) {
        if self.k.files.x.memfds.is_empty() {
            return;
        }
        let mut dead = Vec::new();
        for (&id, shm) in &self.k.files.x.memfds {
            let mut s = shm.borrow_mut();
            let dirty = std::mem::take(&mut s.dirty);
            for index in dirty {
                if let (Some(&f), Some(p)) = (s.frames.get(&index), s.pages.get(&index)) {
                    self.hw.mem.phys.slice_mut(f.addr(), PAGE as usize).copy_from_slice(p);
                }
            }
            if s.open == 0 && Rc::strong_count(shm) == 1 {
                dead.push(id);
            }
        }
        for id in dead {
            if let Some(shm) = self.k.files.x.memfds.remove(&id) {
                for (_, f) in std::mem::take(&mut shm.borrow_mut().frames) {
                    self.hw.mem.phys.put(f);
                }
            }
        }
    }

    /// mmap(2), with memfds mapped as files: the area is placed as an anonymous one
    /// would be, then backed by the memfd's pages.
    pub(crate) fn mmap_call(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        const MAP_ANON: u64 = 0x20;
        let shm = if a[3] & MAP_ANON == 0 {
            let memfd = self.fd(tid, a[4] as i32).and_then(|d| match self.k.files.descs.get(&d) {
                Some(x) => match x.obj {
                    Object::Memfd(m) => Some(m),
                    _ => None,
                },
                None => None,
            });
            memfd.and_then(|m| self.k.files.x.memfds.get(&m).cloned())
        } else {
            None
        };
        // mmap_zero: a private mapping of /dev/zero is anonymous memory, a shared one
        // shared anonymous memory (shmem_zero_setup); the descriptor must be readable,
        // and writable for a shared writable mapping.
        if a[3] & MAP_ANON == 0 {
            let dev = self.fd(tid, a[4] as i32).and_then(|d| self.k.files.descs.get(&d));
            if let Some(d) = dev.filter(|d| matches!(d.obj, Object::Dev(crate::fs::Dev::Zero))) {
                let acc = d.flags & 3;
                if acc == 1 || (a[3] & 1 != 0 && a[2] & 2 != 0 && acc != 2) {
                    return -EACCES;
                }
                let mut anon = a;
                anon[3] |= MAP_ANON;
                return self.sys_mmap(c, tid, anon);
            }
        }
        let Some(shm) = shm else { return self.sys_mmap(c, tid, a) };
        let mut anon = a;
        anon[3] |= MAP_ANON;
        let start = self.sys_mmap(c, tid, anon);
        if start < 0 {
            return start;
        }
        let (start, len) = (start as u64, crate::mm::page_up(a[1]));
        let backing = crate::mm::Backing::Image {
            data: crate::mm::Source::Shm(shm),
            va: start,
            off: a[5],
            len,
        };
        let mmid = self.k.tasks.get(&tid).map_or(0, |t| t.mm);
        if let Some(mm) = self.k.mms.get_mut(&mmid) {
            mm.set_backing(start, start + len, backing);
        }
        start as i64
    }
}

/// Numbers of the system calls this module and [`crate::poll`] add
/// (arch/x86/entry/syscalls/syscall_64.tbl).
#[allow(missing_docs)]
pub mod sysno {
    pub const SELECT: u64 = 23;
    pub const SOCKET: u64 = 41;
    pub const CONNECT: u64 = 42;
    pub const ACCEPT: u64 = 43;
    pub const SENDTO: u64 = 44;
    pub const RECVFROM: u64 = 45;
    pub const SENDMSG: u64 = 46;
    pub const RECVMSG: u64 = 47;
    pub const SHUTDOWN: u64 = 48;
    pub const BIND: u64 = 49;
    pub const LISTEN: u64 = 50;
    pub const GETSOCKNAME: u64 = 51;
    pub const GETPEERNAME: u64 = 52;
    pub const SOCKETPAIR: u64 = 53;
    pub const SETSOCKOPT: u64 = 54;
    pub const GETSOCKOPT: u64 = 55;
    pub const FTRUNCATE: u64 = 77;
    pub const CREAT: u64 = 85;
    pub const EPOLL_CREATE: u64 = 213;
    pub const EPOLL_WAIT: u64 = 232;
    pub const EPOLL_CTL: u64 = 233;
    pub const EPOLL_PWAIT: u64 = 281;
    pub const EVENTFD: u64 = 284;
    pub const ACCEPT4: u64 = 288;
    pub const EVENTFD2: u64 = 290;
    pub const EPOLL_CREATE1: u64 = 291;
    pub const MEMFD_CREATE: u64 = 319;
    pub const EPOLL_PWAIT2: u64 = 441;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eventfd_counts_and_limits() {
        let mut x = FdExtra::default();
        let mut ev = Vec::new();
        x.eventfds.insert(1, EventFd { count: 0, semaphore: false });
        let mut b = [0u8; 8];
        assert_eq!(x.eventfd_read(1, &mut b, true, &mut ev), Ok(-EAGAIN));
        assert_eq!(x.eventfd_read(1, &mut b, false, &mut ev), Err(()));
        assert_eq!(x.eventfd_write(1, &u64::MAX.to_le_bytes(), true, &mut ev), Ok(-EINVAL));
        assert_eq!(x.eventfd_write(1, &(u64::MAX - 1).to_le_bytes(), true, &mut ev), Ok(8));
        assert_eq!(x.eventfd_poll(1), EPOLLIN);
        assert_eq!(x.eventfd_write(1, &1u64.to_le_bytes(), true, &mut ev), Ok(-EAGAIN));
        assert_eq!(x.eventfd_read(1, &mut b, true, &mut ev), Ok(8));
        assert_eq!(u64::from_le_bytes(b), u64::MAX - 1);
        assert_eq!(x.eventfd_poll(1), EPOLLOUT);
        x.eventfds.insert(2, EventFd { count: 2, semaphore: true });
        assert_eq!(x.eventfd_read(2, &mut b, true, &mut ev), Ok(8));
        assert_eq!(u64::from_le_bytes(b), 1);
    }

    fn pair(x: &mut FdExtra, ty: u32) -> (u32, u32) {
        let (a, b) = (x.sock_new(ty, (1, 0, 0)), x.sock_new(ty, (1, 0, 0)));
        for (s, p) in [(a, b), (b, a)] {
            if let Some(k) = x.sockets.get_mut(&s) {
                k.peer = Some(p);
            }
        }
        (a, b)
    }

    #[test]
    fn streams_read_across_sends_but_not_past_a_partial_skb() {
        let mut x = FdExtra::default();
        let mut ev = Vec::new();
        let (a, b) = pair(&mut x, SOCK_STREAM);
        assert_eq!(x.sock_send(a, b"hello", 0, &mut ev), Ok(5));
        assert_eq!(x.sock_send(a, b"world", 0, &mut ev), Ok(5));
        let mut buf = [0u8; 3];
        assert_eq!(x.sock_recv(b, &mut buf, 0, &mut ev), Ok(Ok((3, 3))));
        let mut rest = [0u8; 20];
        assert_eq!(x.sock_recv(b, &mut rest, 0, &mut ev), Ok(Ok((7, 7))));
        assert_eq!(&rest[..7], b"loworld");
        assert_eq!(x.sock_recv(b, &mut rest, MSG_DONTWAIT, &mut ev), Ok(Err(EAGAIN)));
        // Closing with data unread resets the peer once, then it reads end of file.
        assert_eq!(x.sock_send(a, b"x", 0, &mut ev), Ok(1));
        assert_eq!(x.sock_send(b, b"unread", 0, &mut ev), Ok(6));
        x.sock_release(a, &mut ev);
        assert_eq!(x.sock_recv(b, &mut rest, 0, &mut ev), Ok(Ok((1, 1))));
        assert_eq!(x.sock_recv(b, &mut rest, 0, &mut ev), Ok(Err(ECONNRESET)));
        assert_eq!(x.sock_recv(b, &mut rest, 0, &mut ev), Ok(Ok((0, 0))));
        assert_eq!(x.sock_send(b, b"x", 0, &mut ev), Ok(-EPIPE));
    }

    #[test]
    fn datagrams_keep_boundaries_and_a_dead_peer_refuses_once() {
        let mut x = FdExtra::default();
        let mut ev = Vec::new();
        let (a, b) = pair(&mut x, SOCK_DGRAM);
        assert_eq!(x.sock_send(a, b"abcdef", 0, &mut ev), Ok(6));
        assert_eq!(x.sock_send(a, b"", 0, &mut ev), Ok(0));
        let mut buf = [0u8; 2];
        assert_eq!(x.sock_recv(b, &mut buf, MSG_PEEK, &mut ev), Ok(Ok((2, 6))));
        assert_eq!(x.sock_recv(b, &mut buf, 0, &mut ev), Ok(Ok((2, 6))));
        assert_eq!(x.sock_recv(b, &mut buf, 0, &mut ev), Ok(Ok((0, 0))));
        x.sock_release(b, &mut ev);
        assert_eq!(x.sock_send(a, b"x", 0, &mut ev), Ok(-ECONNREFUSED));
        assert_eq!(x.sock_send(a, b"x", 0, &mut ev), Ok(-ENOTCONN));
        assert_eq!(x.sockets.len(), 1, "the dead socket is forgotten");
    }
}
