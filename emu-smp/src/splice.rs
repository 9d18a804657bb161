//! vmsplice(2) on emu's pipes (fs/splice.c).
//!
//! Into a pipe (`vmsplice_to_pipe`, a descriptor open for writing): the kernel waits
//! for room (`wait_for_space`), then `iter_to_pipe` takes the user pages with
//! `iov_iter_get_pages2`, up to 16 pages of one iovec segment per call, each call a
//! GUP-fast walk without FOLL_WRITE (walker.rs) whose slow path gets what the walk
//! could not; every page becomes a pipe buffer of its own (`add_to_pipe`, no merging)
//! until the ring is full. Linux's buffers then reference the user's pages, so a
//! change of that memory before the reader reads is seen by the reader; emu copies the
//! bytes into the pipe at vmsplice time (charged as a copy) and a later change is not
//! seen. The walks are the kernel's, and so is what the call returns.
//!
//! Out of a pipe (`vmsplice_to_user`, a descriptor open only for reading): a copy of
//! the buffers to the user's segments, a whole buffer's part at a time
//! (`__splice_from_pipe` with `pipe_to_user`), no GUP.
//!
//! Only SPLICE_F_NONBLOCK makes either direction non-blocking: the file's O_NONBLOCK
//! is ignored (`pipe_clear_nowait`). A blocked call sleeps as emu's pipe writes and
//! reads do and starts over when woken.

use crate::fs::errno::*;
use crate::fs::{Object, PipeBuf};
use crate::machine::{sig, Machine};
use crate::path::Next;
use crate::poll::{WaitQ, EPOLLIN, EPOLLOUT, EPOLLRDNORM, EPOLLWRNORM};
use crate::syscall::{Sys, MAX_RW_COUNT};
use crate::task::Wait;
use crate::walker::{GupCont, GupFlags};

/// SPLICE_F_MOVE, SPLICE_F_NONBLOCK, SPLICE_F_MORE, SPLICE_F_GIFT (SPLICE_F_ALL).
const SPLICE_F_ALL: u32 = 0xf;
/// SPLICE_F_NONBLOCK.
const SPLICE_F_NONBLOCK: u32 = 2;
/// The pages one `iov_iter_get_pages2` call of `iter_to_pipe` asks for at most.
const PAGES_PER_CALL: u64 = 16;

/// A vmsplice into a pipe between its GUP-fast calls.
#[derive(Clone, Debug)]
pub struct VmspliceOp {
    /// The pipe.
    pub pipe: u32,
    /// The user's segments (base, length), capped to MAX_RW_COUNT in all.
    pub segs: Vec<(u64, u64)>,
    /// The segment the next call starts in.
    pub seg: usize,
    /// How far into it.
    pub off: u64,
    /// Bytes put into the pipe so far.
    pub total: u64,
}

impl VmspliceOp {
    /// Skips empty segments: the next bytes' address and how many the segment has
    /// left, or None when the iterator is used up.
    fn next_span(&mut self) -> Option<(u64, u64)> {
        while let Some(&(base, len)) = self.segs.get(self.seg) {
            if self.off < len {
                return Some((base.wrapping_add(self.off), len - self.off));
            }
            self.seg += 1;
            self.off = 0;
        }
        None
    }
}

/// The pages the next `iov_iter_get_pages2` call of a span at `addr`, `left` bytes
/// long, asks for (`want_pages_array`).
fn pages_for(addr: u64, left: u64) -> u32 {
    ((left + (addr & 0xfff)).div_ceil(4096)).min(PAGES_PER_CALL) as u32
}

impl Machine {
    /// vmsplice(2): argument checks in the kernel's order (flags, the descriptor and
    /// its mode, `import_iovec`, an empty iterator, the pipe), then one direction.
    pub(crate) fn sys_vmsplice(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let (fd, uiov, nr_segs, flags) = (a[0] as i32, a[1], a[2], a[3] as u32);
        if flags & !SPLICE_F_ALL != 0 {
            return Sys::Ret(-EINVAL);
        }
        let Some(id) = self.fd(tid, fd) else { return Sys::Ret(-EBADF) };
        let Some(d) = self.k.files.descs.get(&id) else { return Sys::Ret(-EBADF) };
        // FMODE_WRITE: into the pipe; else FMODE_READ: out of it. An O_PATH
        // descriptor is no file here (fdget).
        let into = match d.flags & 3 {
            _ if d.flags & 0o10000000 != 0 => return Sys::Ret(-EBADF),
            1 | 2 => true,
            0 => false,
            _ => return Sys::Ret(-EBADF),
        };
        let pipe = match d.obj {
            Object::PipeWrite(p) if into => Some(p),
            Object::PipeRead(p) if !into => Some(p),
            _ => None,
        };
        let mut segs = match self.iovecs(c, tid, uiov, nr_segs) {
            Ok(v) => v,
            Err(e) => return Sys::Ret(-e),
        };
        // The iterator holds at most MAX_RW_COUNT bytes.
        let mut room = MAX_RW_COUNT;
        for s in &mut segs {
            s.1 = s.1.min(room);
            room -= s.1;
        }
        if room == MAX_RW_COUNT {
            return Sys::Ret(0);
        }
        // get_pipe_info: not a pipe.
        let Some(pipe) = pipe else { return Sys::Ret(-EBADF) };
        if !into {
            return self.vmsplice_to_user(c, tid, pipe, &segs, flags);
        }
        // wait_for_space.
        let Some(p) = self.k.files.pipes.get(&pipe) else { return Sys::Ret(-EBADF) };
        if p.readers == 0 {
            return self.vmsplice_epipe(c, tid, 0);
        }
        if p.is_full() {
            return if flags & SPLICE_F_NONBLOCK != 0 {
                Sys::Ret(-EAGAIN)
            } else {
                Sys::Block(Wait::Io)
            };
        }
        let mut op = VmspliceOp { pipe, segs, seg: 0, off: 0, total: 0 };
        match self.vmsplice_call(tid, &mut op) {
            Some(p) => Sys::Path(p),
            None => self.vmsplice_done(c, op, -EFAULT),
        }
    }

    /// The next `iov_iter_get_pages2` of `iter_to_pipe`: a GUP-fast call for the
    /// pages of the current segment's next bytes (None: nothing left, or no mm).
    fn vmsplice_call(&mut self, tid: u32, op: &mut VmspliceOp) -> Option<crate::path::KPath> {
        let (addr, left) = op.next_span()?;
        let flags = GupFlags { write: false, pin: false };
        let cont = GupCont::Vmsplice(Box::new(op.clone()));
        self.gup_fast_path(tid, addr, pages_for(addr, left), flags, cont)
    }

    /// A GUP-fast call of vmsplice ended with `fast` pages; slow GUP tries the rest
    /// (a page it cannot get ends the pages at the one before), the pages go into the
    /// pipe while it has room, then the next call or the end.
    pub(crate) fn vmsplice_walked(
        &mut self,
        c: usize,
        tid: u32,
        mut op: VmspliceOp,
        fast: u32,
    ) -> Next {
        let Some((addr, left)) = op.next_span() else {
            let r = self.vmsplice_done(c, op, 0);
            return self.sys_next(c, tid, r);
        };
        let want = pages_for(addr, left);
        let page = addr & !0xfff;
        let mut got = fast;
        while got < want && self.gup_slow_ok(tid, page + (u64::from(got) << 12), false) {
            got += 1;
        }
        if got == 0 {
            let r = self.vmsplice_done(c, op, -EFAULT);
            return self.sys_next(c, tid, r);
        }
        let mut left = left.min((u64::from(got) << 12) - (addr & 0xfff));
        let mut at = addr;
        while left > 0 {
            // add_to_pipe.
            let Some(p) = self.k.files.pipes.get(&op.pipe) else { break };
            if p.readers == 0 {
                let r = self.vmsplice_epipe(c, tid, op.total);
                return self.sys_next(c, tid, r);
            }
            if p.is_full() {
                let r = self.vmsplice_done(c, op, -EAGAIN);
                return self.sys_next(c, tid, r);
            }
            let size = left.min(4096 - (at & 0xfff));
            let mut data = vec![0u8; size as usize];
            if self.read_user(c, tid, at, &mut data).is_err() {
                // The slow path said the page was there; a fault now ends the call.
                let r = self.vmsplice_done(c, op, -EFAULT);
                return self.sys_next(c, tid, r);
            }
            if let Some(p) = self.k.files.pipes.get_mut(&op.pipe) {
                let off = (at & 0xfff) as usize;
                p.bufs.push_back(PipeBuf { off, data: data.into(), merge: false });
            }
            op.total += size;
            op.off += size;
            at += size;
            left -= size;
        }
        match self.vmsplice_call(tid, &mut op) {
            Some(p) => Next::Then(p),
            None => {
                let r = self.vmsplice_done(c, op, 0);
                self.sys_next(c, tid, r)
            }
        }
    }

    /// The end of vmsplice into a pipe: what went in, or `err` when nothing did; the
    /// readers are woken when something did.
    fn vmsplice_done(&mut self, c: usize, op: VmspliceOp, err: i64) -> Sys {
        if op.total == 0 {
            return Sys::Ret(err);
        }
        self.k.files.events.push((WaitQ::PipeRd(op.pipe), EPOLLIN | EPOLLRDNORM));
        self.wake_io(c);
        Sys::Ret(op.total as i64)
    }

    /// No reader: SIGPIPE, and EPIPE unless `total` bytes went in first.
    fn vmsplice_epipe(&mut self, c: usize, tid: u32, total: u64) -> Sys {
        let r = if total > 0 { total as i64 } else { -EPIPE };
        // The result is in RAX before a handler's frame saves the registers.
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.cpu.gpr[0] = r as u64;
        }
        if total > 0 {
            self.wake_io(c);
        }
        self.signal_thread(c, tid, sig::SIGPIPE);
        Sys::Done
    }

    /// vmsplice_to_user: the pipe's buffers copied to `segs`, each buffer's part in one
    /// `copy_page_to_iter` (a fault there consumes nothing of it and ends the call).
    /// An empty pipe ends the call once something was copied, or when it has no
    /// writer; otherwise EAGAIN with SPLICE_F_NONBLOCK, or a sleep.
    fn vmsplice_to_user(
        &mut self,
        c: usize,
        tid: u32,
        pipe: u32,
        segs: &[(u64, u64)],
        flags: u32,
    ) -> Sys {
        let mut op = VmspliceOp { pipe, segs: segs.to_vec(), seg: 0, off: 0, total: 0 };
        let mut fault = false;
        while let Some(p) = self.k.files.pipes.get(&pipe) {
            let Some(front) = p.bufs.front() else {
                if p.writers == 0 || op.total > 0 {
                    break;
                }
                if flags & SPLICE_F_NONBLOCK != 0 {
                    return Sys::Ret(-EAGAIN);
                }
                return Sys::Block(Wait::Io);
            };
            let remaining: u64 = op.segs[op.seg..].iter().map(|s| s.1).sum::<u64>() - op.off;
            let n = (front.data.len() as u64).min(remaining) as usize;
            let bytes: Vec<u8> = front.data.iter().take(n).copied().collect();
            // copy_page_to_iter across the segments.
            let mut it = op.clone();
            let mut done = 0usize;
            while done < n {
                let Some((at, left)) = it.next_span() else { break };
                let k = (left as usize).min(n - done);
                if self.write_user(c, tid, at, &bytes[done..done + k]).is_err() {
                    fault = true;
                    break;
                }
                it.off += k as u64;
                done += k;
            }
            if fault {
                break;
            }
            op = it;
            op.total += n as u64;
            if let Some(p) = self.k.files.pipes.get_mut(&pipe) {
                if let Some(f) = p.bufs.front_mut() {
                    f.data.drain(..n);
                    f.off += n;
                    if f.data.is_empty() {
                        p.bufs.pop_front();
                    }
                }
            }
            if op.next_span().is_none() {
                break;
            }
        }
        if op.total == 0 {
            return Sys::Ret(if fault { -EFAULT } else { 0 });
        }
        // wakeup_pipe_writers.
        self.k.files.events.push((WaitQ::PipeWr(pipe), EPOLLOUT | EPOLLWRNORM));
        self.wake_io(c);
        Sys::Ret(op.total as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_asks_for_the_pages_of_its_span_and_at_most_sixteen() {
        assert_eq!(pages_for(0x1000, 1), 1);
        assert_eq!(pages_for(0x1fff, 2), 2);
        assert_eq!(pages_for(0x1000, 0x2000), 2);
        assert_eq!(pages_for(0x1800, 0x2000), 3);
        assert_eq!(pages_for(0x1000, 1 << 20), 16);
    }

    #[test]
    fn the_iterator_skips_empty_segments() {
        let mut op = VmspliceOp {
            pipe: 0,
            segs: vec![(0x1000, 0), (0x5000, 10), (0x9000, 0)],
            seg: 0,
            off: 0,
            total: 0,
        };
        assert_eq!(op.next_span(), Some((0x5000, 10)));
        op.off = 10;
        assert_eq!(op.next_span(), None);
    }
}
