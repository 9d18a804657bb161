//! Waiting for files: poll, ppoll, select and pselect6 (fs/select.c) and epoll
//! (fs/eventpoll.c).
//!
//! Every file answers a poll with a mask of events (`Files::poll_mask`, the `->poll`
//! methods: pipe_poll, eventfd_poll, unix_poll and unix_dgram_poll, ep_eventpoll_poll,
//! DEFAULT_POLLMASK for the rest). Files that change wake their wait queues with a key
//! (`Files::events`, pushed by the file layer as pipe_read/pipe_write, eventfd and the
//! socket code do); after every kernel step the machine runs epoll's callback
//! (ep_poll_callback: the item joins its instance's ready list when the key matches its
//! events, and the instance's own queue is woken) and wakes the tasks asleep in poll,
//! select or epoll_wait on a matching queue. A woken task looks at its files again (its
//! kernel path is [`KPath::Poll`]) and returns, or sleeps again.
//!
//! As in Linux: readiness is counted before a pending signal is noticed (poll and select
//! return EINTR only when nothing is ready; epoll_wait with a zero timeout returns 0 even
//! then); ppoll, pselect6 and epoll_pwait sleep with the mask they were given and a
//! handler run on the way out saves the old one in its frame; select and pselect6 clamp
//! `nfds` to the size of the descriptor table and write back the time left, as ppoll
//! does; epoll's ready list keeps Linux's order (level-triggered items go back to the
//! tail, items not reached for want of room stay at the head); edge-triggered items are
//! reported again only after a new wake-up of their file; EPOLLONESHOT disables an item
//! until EPOLL_CTL_MOD. Timeouts run in simulated time and fire exactly (no timer slack).
//!
//! Simplifications: EPOLLEXCLUSIVE is accepted and checked but every waiter is woken;
//! a task asleep on a file closed meanwhile sees POLLNVAL when it next looks (Linux's
//! poll keeps the file alive until it returns); a forked child's table is as large as
//! its parent's (Linux sizes it by the highest descriptor open).

use crate::fs::{errno::*, Files, Object};
use crate::machine::Machine;
use crate::path::{KPath, Next};
use crate::syscall::{le64, Sys};
use crate::task::Wait;
use std::collections::{BTreeMap, VecDeque};

#[allow(missing_docs)]
pub mod ev {
    pub const EPOLLIN: u32 = 0x001;
    pub const EPOLLPRI: u32 = 0x002;
    pub const EPOLLOUT: u32 = 0x004;
    pub const EPOLLERR: u32 = 0x008;
    pub const EPOLLHUP: u32 = 0x010;
    pub const EPOLLNVAL: u32 = 0x020;
    pub const EPOLLRDNORM: u32 = 0x040;
    pub const EPOLLRDBAND: u32 = 0x080;
    pub const EPOLLWRNORM: u32 = 0x100;
    pub const EPOLLWRBAND: u32 = 0x200;
    pub const EPOLLRDHUP: u32 = 0x2000;
    pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
    pub const EPOLLWAKEUP: u32 = 1 << 29;
    pub const EPOLLONESHOT: u32 = 1 << 30;
    pub const EPOLLET: u32 = 1 << 31;
}
pub use ev::*;

/// Bits of an epoll item that are not events (EP_PRIVATE_BITS).
const EP_PRIVATE_BITS: u32 = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
/// What EPOLLEXCLUSIVE may be combined with (EPOLLEXCLUSIVE_OK_BITS).
const EXCLUSIVE_OK: u32 =
    EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;
/// What a file without a ->poll method reports (DEFAULT_POLLMASK).
const DEFAULT_POLLMASK: u32 = EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM;
/// Deepest nesting of epoll instances (EP_MAX_NESTS).
const EP_MAX_NESTS: u32 = 4;
/// Most events one epoll_wait returns (EP_MAX_EVENTS: INT_MAX / 12).
const EP_MAX_EVENTS: i64 = i32::MAX as i64 / 12;
/// select's sets: what makes a descriptor readable, writable or exceptional.
const POLLIN_SET: u32 = EPOLLRDNORM | EPOLLRDBAND | EPOLLIN | EPOLLHUP | EPOLLERR;
const POLLOUT_SET: u32 = EPOLLWRBAND | EPOLLWRNORM | EPOLLOUT | EPOLLERR;
const POLLEX_SET: u32 = EPOLLPRI;

/// A wait queue of a file (what `poll_wait` registers on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WaitQ {
    /// A pipe's readers (`pipe->rd_wait`).
    PipeRd(u32),
    /// A pipe's writers (`pipe->wr_wait`).
    PipeWr(u32),
    /// An eventfd's queue.
    EventFd(u32),
    /// A socket's queue (`sk_sleep(sk)`).
    Sock(u32),
    /// An epoll instance's waiters (`ep->wq` and `ep->poll_wait`).
    Epoll(u32),
}

/// An epoll instance (`struct eventpoll`): its interest list, keyed like Linux's by the
/// (file, descriptor number) pair, and its ready list.
#[derive(Debug, Default)]
pub struct Epoll {
    items: BTreeMap<(u32, i32), Item>,
    ready: VecDeque<(u32, i32)>,
}

impl Epoll {
    /// Forgets the items of a closed description (eventpoll_release).
    pub(crate) fn forget(&mut self, desc: u32) {
        self.items.retain(|k, _| k.0 != desc);
        self.ready.retain(|k| k.0 != desc);
    }
}

/// One watched file (`struct epitem`).
#[derive(Debug, Clone, Copy)]
struct Item {
    events: u32,
    data: u64,
    /// On the ready list (`ep_is_linked`).
    linked: bool,
}

impl Files {
    /// The wait queues a description's file wakes.
    pub(crate) fn queues_of(&self, desc: u32) -> Vec<WaitQ> {
        match self.descs.get(&desc).map(|d| &d.obj) {
            Some(Object::PipeRead(p)) => vec![WaitQ::PipeRd(*p)],
            Some(Object::PipeWrite(p)) => vec![WaitQ::PipeWr(*p)],
            Some(Object::EventFd(e)) => vec![WaitQ::EventFd(*e)],
            Some(Object::Socket(s)) => vec![WaitQ::Sock(*s)],
            Some(Object::Epoll(e)) => vec![WaitQ::Epoll(*e)],
            _ => Vec::new(),
        }
    }

    /// `file_can_poll`: whether the file has a ->poll method (epoll refuses the rest).
    fn can_poll(&self, desc: u32) -> bool {
        let Some(d) = self.descs.get(&desc) else { return false };
        match &d.obj {
            Object::PipeRead(_)
            | Object::PipeWrite(_)
            | Object::EventFd(_)
            | Object::Socket(_)
            | Object::Epoll(_) => true,
            // Regular files, directories, /dev/null, shmem files and the /proc files of
            // a process have none.
            Object::Host { .. } | Object::Synthetic { .. } | Object::Dev(_) | Object::Memfd(_) => {
                false
            }
            // emu's own streams: a pipe when captured, else whatever the host gave
            // (terminals, pipes and sockets poll; files and memory devices do not).
            Object::Stdin | Object::Stdout | Object::Stderr => match self.stat(desc) {
                Ok(s) => {
                    let ty = s.mode & 0o170000;
                    !(ty == 0o100000 || ty == 0o040000 || (ty == 0o020000 && s.rdev >> 8 == 1))
                }
                Err(_) => false,
            },
        }
    }

    /// The events a description's file reports now (`vfs_poll`). Polling a pipe marks it
    /// polled; polling an epoll instance drops the items of its ready list that are not
    /// ready up to the first that is (`__ep_eventpoll_poll`).
    pub(crate) fn poll_mask(&mut self, desc: u32, depth: u32) -> u32 {
        let Some(d) = self.descs.get(&desc) else { return EPOLLNVAL };
        let write_end = d.flags & 3 != 0;
        match d.obj {
            // emu's standard streams poll as what the host gave: a stream (pipe, socket,
            // terminal) is always ready in its direction (a read of it is served outside
            // simulated time); files and memory devices have no ->poll.
            Object::Stdin | Object::Stdout | Object::Stderr if !self.can_poll(desc) => {
                DEFAULT_POLLMASK
            }
            Object::Stdin => EPOLLIN | EPOLLRDNORM,
            Object::Stdout | Object::Stderr => EPOLLOUT | EPOLLWRNORM,
            Object::Host { .. } | Object::Synthetic { .. } | Object::Dev(_) | Object::Memfd(_) => {
                DEFAULT_POLLMASK
            }
            Object::PipeRead(p) | Object::PipeWrite(p) => {
                let Some(pipe) = self.pipes.get_mut(&p) else { return 0 };
                pipe.polled = true;
                let mut m = 0;
                if matches!(d.obj, Object::PipeRead(_)) || !write_end {
                    if !pipe.is_empty() {
                        m |= EPOLLIN | EPOLLRDNORM;
                    }
                    if pipe.writers == 0 {
                        m |= EPOLLHUP;
                    }
                }
                if matches!(d.obj, Object::PipeWrite(_)) {
                    if !pipe.is_full() {
                        m |= EPOLLOUT | EPOLLWRNORM;
                    }
                    if pipe.readers == 0 {
                        m |= EPOLLERR;
                    }
                }
                m
            }
            Object::EventFd(e) => self.x.eventfd_poll(e),
            Object::Socket(s) => self.x.sock_poll(s),
            Object::Epoll(e) => self.ep_poll_nested(e, depth),
        }
    }

    /// `ep_item_poll`: an item's file's events, masked by what the item asks for.
    fn ep_item_poll(&mut self, desc: u32, events: u32, depth: u32) -> u32 {
        self.poll_mask(desc, depth + 1) & events
    }

    /// `__ep_eventpoll_poll`: readable when an item of the ready list is ready; items
    /// found not ready on the way are unlinked.
    fn ep_poll_nested(&mut self, e: u32, depth: u32) -> u32 {
        if depth > EP_MAX_NESTS {
            return 0;
        }
        let keys: Vec<(u32, i32)> =
            self.x.epolls.get(&e).map(|ep| ep.ready.iter().copied().collect()).unwrap_or_default();
        for key in keys {
            let Some(events) =
                self.x.epolls.get(&e).and_then(|ep| ep.items.get(&key)).map(|i| i.events)
            else {
                continue;
            };
            if self.ep_item_poll(key.0, events, depth) != 0 {
                return EPOLLIN | EPOLLRDNORM;
            }
            if let Some(ep) = self.x.epolls.get_mut(&e) {
                ep.ready.retain(|k| *k != key);
                if let Some(i) = ep.items.get_mut(&key) {
                    i.linked = false;
                }
            }
        }
        0
    }

    /// ep_poll_callback for every wake-up queued since the last call: items whose file
    /// woke with a matching key join their instance's ready list, and the instance's own
    /// queue is woken in turn (nested epoll). Returns every wake-up, the instances' too.
    pub(crate) fn ep_callbacks(&mut self) -> Vec<(WaitQ, u32)> {
        let mut done = Vec::new();
        let mut k = 0;
        let mut work = std::mem::take(&mut self.events);
        while k < work.len() {
            let (q, key) = work[k];
            k += 1;
            let ids: Vec<u32> = self.x.epolls.keys().copied().collect();
            for id in ids {
                let keys: Vec<(u32, i32)> = self.x.epolls[&id].items.keys().copied().collect();
                let mut woke = false;
                for item_key in keys {
                    if !self.queues_of(item_key.0).contains(&q) {
                        continue;
                    }
                    let Some(ep) = self.x.epolls.get_mut(&id) else { continue };
                    let Some(item) = ep.items.get_mut(&item_key) else { continue };
                    // A disabled EPOLLONESHOT item, or a key it does not ask for.
                    if item.events & !EP_PRIVATE_BITS == 0 || (key != 0 && key & item.events == 0) {
                        continue;
                    }
                    if !item.linked {
                        item.linked = true;
                        ep.ready.push_back(item_key);
                    }
                    woke = true;
                }
                if woke {
                    work.push((WaitQ::Epoll(id), EPOLLIN));
                }
            }
            done.push((q, key));
            // Guard against a cycle the ctl checks should have refused.
            if work.len() > 1 << 16 {
                break;
            }
        }
        done
    }

    /// True when instance `from` reaches instance `to` through its items.
    fn ep_reaches(&self, from: u32, to: u32, depth: u32) -> bool {
        if from == to {
            return true;
        }
        if depth > 64 {
            return true;
        }
        let Some(ep) = self.x.epolls.get(&from) else { return false };
        ep.items.keys().any(|k| match self.descs.get(&k.0).map(|d| &d.obj) {
            Some(Object::Epoll(inner)) => self.ep_reaches(*inner, to, depth + 1),
            _ => false,
        })
    }

    /// Levels of epoll instances below `e` (0: it watches no epoll instance).
    fn ep_depth_below(&self, e: u32, depth: u32) -> u32 {
        if depth > 64 {
            return depth;
        }
        let Some(ep) = self.x.epolls.get(&e) else { return 0 };
        ep.items
            .keys()
            .filter_map(|k| match self.descs.get(&k.0).map(|d| &d.obj) {
                Some(Object::Epoll(inner)) => Some(1 + self.ep_depth_below(*inner, depth + 1)),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Levels of epoll instances above `e` (0: no instance watches it).
    fn ep_depth_above(&self, e: u32, depth: u32) -> u32 {
        if depth > 64 {
            return depth;
        }
        let mut best = 0;
        for (id, ep) in &self.x.epolls {
            let watches = ep.items.keys().any(|k| {
                matches!(self.descs.get(&k.0).map(|d| &d.obj), Some(Object::Epoll(x)) if *x == e)
            });
            if watches {
                best = best.max(1 + self.ep_depth_above(*id, depth + 1));
            }
        }
        best
    }
}

/// What a poll-like call waits for.
#[derive(Clone, Debug)]
enum What {
    /// poll/ppoll: the user's array, the kernel's copy of (fd, events), and the revents
    /// of the last look.
    Poll { ufds: u64, fds: Vec<(i32, u16)>, revents: Vec<u16> },
    /// select/pselect6: nfds (clamped), the three user sets, their kernel copies, and
    /// the result sets of the last look.
    Select { n: usize, ptrs: [u64; 3], sets: [Vec<u64>; 3], res: [Vec<u64>; 3] },
    /// epoll_wait and friends: the instance, the user's array and its length.
    Epoll { ep: u32, events: u64, max: usize },
}

/// A poll-like call in progress (its kernel path while it sleeps).
#[derive(Clone, Debug)]
pub struct PollOp {
    what: What,
    /// When the timeout expires (simulated ns); None: never.
    until_ns: Option<u64>,
    /// A zero timeout: look once.
    once: bool,
    /// Where to write the time left (user pointer, as a timeval rather than timespec).
    remain: Option<(u64, bool)>,
    /// A signal mask was installed for the wait (ppoll, pselect6, epoll_pwait).
    masked: bool,
}

/// What looking at the files gave.
enum Look {
    /// The call returns this.
    Done(i64),
    /// Nothing yet: sleep.
    Sleep(Wait),
}

impl Machine {
    /// Runs epoll's callbacks for the wake-ups of the step that just ran and wakes the
    /// tasks asleep on those queues; writes memfd pages the step changed back to their
    /// frames, and frees the memfds nothing refers to any more.
    pub(crate) fn fd_after_step(&mut self, c: usize, tid: u32) {
        // The descriptor table's high-water mark (the step may have opened one).
        if let Some(tab) = self.k.tasks.get(&tid).and_then(|t| self.k.fdtables.get_mut(&t.files)) {
            if let Some(&hi) = tab.fds.keys().next_back() {
                tab.high = tab.high.max(hi);
            }
        }
        if !self.k.files.events.is_empty() {
            self.wake_pollers(c);
        }
        self.memfd_after_step();
    }

    /// ep_poll_callback and pollwake for the queued wake-ups.
    fn wake_pollers(&mut self, c: usize) {
        let woken = self.k.files.ep_callbacks();
        let sleepers: Vec<u32> = self
            .k
            .tasks
            .values()
            .filter(|t| match &t.state {
                crate::task::State::Blocked(Wait::Poll { queues, .. }) => {
                    queues.iter().any(|(q, mask)| {
                        woken.iter().any(|(wq, key)| {
                            wq == q && (*key == 0 || *mask == 0 || key & mask != 0)
                        })
                    })
                }
                _ => false,
            })
            .map(|t| t.tid)
            .collect();
        let at = self.now(c);
        for tid in sleepers {
            self.wake(tid, 0, at);
        }
    }

    /// set_user_sigmask: installs the wait's signal mask (the old one is restored when
    /// the call returns, or by the handler's frame if a signal interrupts it).
    fn set_user_sigmask(&mut self, c: usize, tid: u32, umask: u64, size: u64) -> Result<bool, i64> {
        if umask == 0 {
            return Ok(false);
        }
        if size != 8 {
            return Err(EINVAL);
        }
        let mut b = [0u8; 8];
        self.read_user(c, tid, umask, &mut b).map_err(|()| EFAULT)?;
        let unblockable = (1u64 << (crate::machine::sig::SIGKILL - 1))
            | (1u64 << (crate::machine::sig::SIGSTOP - 1));
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.saved_sigmask = Some(t.sigmask);
            t.sigmask = u64::from_le_bytes(b) & !unblockable;
        }
        Ok(true)
    }

    /// restore_saved_sigmask_unless(EINTR with a signal to deliver).
    fn restore_sigmask(&mut self, tid: u32, ret: i64) {
        let Some(t) = self.k.tasks.get_mut(&tid) else { return };
        if ret == -EINTR && t.pending & !t.sigmask != 0 {
            return;
        }
        if let Some(m) = t.saved_sigmask.take() {
            t.sigmask = m;
        }
    }

    /// Reads a timespec and turns it into a deadline (poll_select_set_timeout):
    /// Ok(None) for a zero timeout.
    fn timespec_deadline(&mut self, c: usize, tid: u32, p: u64) -> Result<Option<u64>, i64> {
        let mut b = [0u8; 16];
        self.read_user(c, tid, p, &mut b).map_err(|()| EFAULT)?;
        let (s, ns) = (le64(&b[..8]) as i64, le64(&b[8..]) as i64);
        self.deadline(tid, s, ns)
    }

    /// A deadline `s` seconds and `ns` nanoseconds from now; Ok(None) when both are 0.
    fn deadline(&self, tid: u32, s: i64, ns: i64) -> Result<Option<u64>, i64> {
        if s < 0 || !(0..1_000_000_000).contains(&ns) {
            return Err(EINVAL);
        }
        if s == 0 && ns == 0 {
            return Ok(None);
        }
        let d = (s as u64).saturating_mul(1_000_000_000).saturating_add(ns as u64);
        Ok(Some(self.now_ns(tid).saturating_add(d)))
    }

    /// poll(2): `timeout` in milliseconds, negative for none.
    pub(crate) fn sys_poll(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let ms = i64::from(a[2] as i32);
        let (until_ns, once) = match ms {
            ms if ms < 0 => (None, false),
            0 => (None, true),
            ms => (Some(self.now_ns(tid) + ms as u64 * 1_000_000), false),
        };
        self.poll_start(c, tid, a[0], a[1] as u32, until_ns, once, None, false)
    }

    /// ppoll(2): a timespec timeout and a signal mask for the wait.
    pub(crate) fn sys_ppoll(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let (mut until_ns, mut once) = (None, false);
        if a[2] != 0 {
            match self.timespec_deadline(c, tid, a[2]) {
                Err(e) => return Sys::Ret(-e),
                Ok(None) => once = true,
                Ok(d) => until_ns = d,
            }
        }
        let masked = match self.set_user_sigmask(c, tid, a[3], a[4]) {
            Err(e) => return Sys::Ret(-e),
            Ok(m) => m,
        };
        let remain = (a[2] != 0).then_some((a[2], false));
        self.poll_start(c, tid, a[0], a[1] as u32, until_ns, once, remain, masked)
    }

    #[allow(clippy::too_many_arguments)]
    fn poll_start(
        &mut self,
        c: usize,
        tid: u32,
        ufds: u64,
        nfds: u32,
        until_ns: Option<u64>,
        once: bool,
        remain: Option<(u64, bool)>,
        masked: bool,
    ) -> Sys {
        let op = PollOp {
            what: What::Poll { ufds, fds: Vec::new(), revents: Vec::new() },
            until_ns,
            once,
            remain,
            masked,
        };
        // RLIMIT_NOFILE's soft limit (emu's prlimit reports 1024).
        if nfds > 1024 {
            return self.poll_return(c, tid, &op, -EINVAL);
        }
        let mut raw = vec![0u8; nfds as usize * 8];
        if self.read_user(c, tid, ufds, &mut raw).is_err() {
            return self.poll_return(c, tid, &op, -EFAULT);
        }
        let fds = raw
            .chunks_exact(8)
            .map(|e| {
                (i32::from_le_bytes([e[0], e[1], e[2], e[3]]), u16::from_le_bytes([e[4], e[5]]))
            })
            .collect();
        let op = PollOp { what: What::Poll { ufds, fds, revents: Vec::new() }, ..op };
        self.poll_first(c, tid, op)
    }

    /// select(2): a timeval timeout, written back with the time left.
    pub(crate) fn sys_select(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let (mut until_ns, mut once) = (None, false);
        if a[4] != 0 {
            let mut b = [0u8; 16];
            if self.read_user(c, tid, a[4], &mut b).is_err() {
                return Sys::Ret(-EFAULT);
            }
            let (s, us) = (le64(&b[..8]) as i64, le64(&b[8..]) as i64);
            match self.deadline(tid, s.saturating_add(us / 1_000_000), (us % 1_000_000) * 1000) {
                Err(e) => return Sys::Ret(-e),
                Ok(None) => once = true,
                Ok(d) => until_ns = d,
            }
        }
        let remain = (a[4] != 0).then_some((a[4], true));
        self.select_start(c, tid, a, until_ns, once, remain, false)
    }

    /// pselect6(2): a timespec timeout and a {sigset pointer, size} pair.
    pub(crate) fn sys_pselect6(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let (mut sigp, mut sigsize) = (0, 0);
        if a[5] != 0 {
            let mut b = [0u8; 16];
            if self.read_user(c, tid, a[5], &mut b).is_err() {
                return Sys::Ret(-EFAULT);
            }
            (sigp, sigsize) = (le64(&b[..8]), le64(&b[8..]));
        }
        let (mut until_ns, mut once) = (None, false);
        if a[4] != 0 {
            match self.timespec_deadline(c, tid, a[4]) {
                Err(e) => return Sys::Ret(-e),
                Ok(None) => once = true,
                Ok(d) => until_ns = d,
            }
        }
        let masked = match self.set_user_sigmask(c, tid, sigp, sigsize) {
            Err(e) => return Sys::Ret(-e),
            Ok(m) => m,
        };
        let remain = (a[4] != 0).then_some((a[4], false));
        self.select_start(c, tid, a, until_ns, once, remain, masked)
    }

    /// The size of `tid`'s descriptor table (fdtable->max_fds: 64, then 128 times a
    /// power of two), from the highest descriptor it has held.
    fn max_fds(&self, tid: u32) -> usize {
        let hi = self
            .k
            .tasks
            .get(&tid)
            .and_then(|t| self.k.fdtables.get(&t.files))
            .map_or(0, |tab| tab.high.max(tab.fds.keys().next_back().copied().unwrap_or(0)))
            .max(0) as usize;
        if hi < 64 {
            64
        } else {
            128 * (hi / 128 + 1).next_power_of_two()
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn select_start(
        &mut self,
        c: usize,
        tid: u32,
        a: [u64; 6],
        until_ns: Option<u64>,
        once: bool,
        remain: Option<(u64, bool)>,
        masked: bool,
    ) -> Sys {
        let ptrs = [a[1], a[2], a[3]];
        let mut op = PollOp {
            what: What::Select { n: 0, ptrs, sets: Default::default(), res: Default::default() },
            until_ns,
            once,
            remain,
            masked,
        };
        let n = a[0] as i32;
        if n < 0 {
            return self.poll_return(c, tid, &op, -EINVAL);
        }
        let n = (n as usize).min(self.max_fds(tid));
        let words = n.div_ceil(64);
        let mut sets: [Vec<u64>; 3] = Default::default();
        for (k, &p) in ptrs.iter().enumerate() {
            let mut raw = vec![0u8; words * 8];
            if p != 0 && self.read_user(c, tid, p, &mut raw).is_err() {
                return self.poll_return(c, tid, &op, -EFAULT);
            }
            sets[k] = raw.chunks_exact(8).map(le64).collect();
            if n % 64 != 0 {
                if let Some(w) = sets[k].last_mut() {
                    *w &= (1u64 << (n % 64)) - 1;
                }
            }
        }
        // max_select_fd: every descriptor named must be open.
        for fd in 0..n {
            let named = sets.iter().any(|s| s[fd / 64] >> (fd % 64) & 1 != 0);
            if named && self.fd(tid, fd as i32).is_none() {
                return self.poll_return(c, tid, &op, -EBADF);
            }
        }
        op.what = What::Select { n, ptrs, sets, res: Default::default() };
        self.poll_first(c, tid, op)
    }

    /// epoll_create(2) (`size` must be positive) and epoll_create1(2) (`flags`:
    /// EPOLL_CLOEXEC only).
    pub(crate) fn sys_epoll_create(&mut self, tid: u32, arg: u64, create1: bool) -> i64 {
        let cloexec = if create1 {
            let flags = arg as u32;
            if flags & !0o2000000 != 0 {
                return -EINVAL;
            }
            flags != 0
        } else {
            if arg as i32 <= 0 {
                return -EINVAL;
            }
            false
        };
        let id = self.k.files.x.new_id();
        self.k.files.x.epolls.insert(id, Epoll::default());
        let desc = self.k.files.create(Object::Epoll(id), 2);
        self.install_new_fd(tid, desc, cloexec)
    }

    /// epoll_ctl(2) (do_epoll_ctl, ep_insert, ep_modify, ep_remove), checking in
    /// Linux's order.
    pub(crate) fn sys_epoll_ctl(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        const ADD: i32 = 1;
        const DEL: i32 = 2;
        const MOD: i32 = 3;
        let (epfd, op, fd, event) = (a[0] as i32, a[1] as i32, a[2] as i32, a[3]);
        let (mut events, mut data) = (0u32, 0u64);
        if op != DEL {
            let mut b = [0u8; 12];
            if self.read_user(c, tid, event, &mut b).is_err() {
                return -EFAULT;
            }
            events = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            data = le64(&b[4..]);
        }
        let Some(epd) = self.fd(tid, epfd) else { return -EBADF };
        let Some(td) = self.fd(tid, fd) else { return -EBADF };
        if !self.k.files.can_poll(td) {
            return -EPERM;
        }
        if op != DEL && self.k.uid != 0 {
            // EPOLLWAKEUP needs CAP_BLOCK_SUSPEND; without it the bit is dropped.
            events &= !EPOLLWAKEUP;
        }
        let obj = |d: u32| self.k.files.descs.get(&d).map(|x| &x.obj);
        let Some(&Object::Epoll(ep)) = obj(epd) else { return -EINVAL };
        if epd == td {
            return -EINVAL;
        }
        let target_ep = match obj(td) {
            Some(&Object::Epoll(t)) => Some(t),
            _ => None,
        };
        if op != DEL && events & EPOLLEXCLUSIVE != 0 {
            if op == MOD || (op == ADD && (target_ep.is_some() || events & !EXCLUSIVE_OK != 0)) {
                return -EINVAL;
            }
        }
        if op == ADD {
            if let Some(t) = target_ep {
                let f = &self.k.files;
                if f.ep_reaches(t, ep, 0)
                    || f.ep_depth_above(ep, 0) + 1 + f.ep_depth_below(t, 0) > EP_MAX_NESTS
                {
                    return -ELOOP;
                }
            }
        }
        let key = (td, fd);
        let exists = self.k.files.x.epolls.get(&ep).is_some_and(|e| e.items.contains_key(&key));
        match op {
            ADD if exists => -EEXIST,
            ADD => {
                let item = Item { events: events | EPOLLERR | EPOLLHUP, data, linked: false };
                if let Some(e) = self.k.files.x.epolls.get_mut(&ep) {
                    e.items.insert(key, item);
                }
                self.ep_link_if_ready(ep, key);
                0
            }
            DEL if exists => {
                if let Some(e) = self.k.files.x.epolls.get_mut(&ep) {
                    e.items.remove(&key);
                    e.ready.retain(|k| *k != key);
                }
                0
            }
            MOD if exists => {
                let Some(e) = self.k.files.x.epolls.get_mut(&ep) else { return -EINVAL };
                let Some(item) = e.items.get_mut(&key) else { return -EINVAL };
                if item.events & EPOLLEXCLUSIVE != 0 {
                    return -EINVAL;
                }
                item.events = events | EPOLLERR | EPOLLHUP;
                item.data = data;
                self.ep_link_if_ready(ep, key);
                0
            }
            DEL | MOD => -ENOENT,
            _ => -EINVAL,
        }
    }

    /// After ADD or MOD: a ready item joins the ready list and wakes the instance.
    fn ep_link_if_ready(&mut self, ep: u32, key: (u32, i32)) {
        let Some(events) =
            self.k.files.x.epolls.get(&ep).and_then(|e| e.items.get(&key)).map(|i| i.events)
        else {
            return;
        };
        if self.k.files.ep_item_poll(key.0, events, 0) == 0 {
            return;
        }
        let Some(e) = self.k.files.x.epolls.get_mut(&ep) else { return };
        if let Some(item) = e.items.get_mut(&key) {
            if !item.linked {
                item.linked = true;
                e.ready.push_back(key);
                self.k.files.events.push((WaitQ::Epoll(ep), EPOLLIN));
            }
        }
    }

    /// epoll_wait(2), epoll_pwait(2) (with a sigmask) and epoll_pwait2(2) (a timespec
    /// timeout): `kind` 0, 1 and 2.
    pub(crate) fn sys_epoll_wait(&mut self, c: usize, tid: u32, a: [u64; 6], kind: u8) -> Sys {
        let (mut until_ns, mut once) = (None, false);
        if kind == 2 {
            if a[3] != 0 {
                match self.timespec_deadline(c, tid, a[3]) {
                    Err(e) => return Sys::Ret(-e),
                    Ok(None) => once = true,
                    Ok(d) => until_ns = d,
                }
            }
        } else {
            let ms = i64::from(a[3] as i32);
            if ms == 0 {
                once = true;
            } else if ms > 0 {
                until_ns = Some(self.now_ns(tid) + ms as u64 * 1_000_000);
            }
        }
        let masked = if kind == 0 {
            false
        } else {
            match self.set_user_sigmask(c, tid, a[4], a[5]) {
                Err(e) => return Sys::Ret(-e),
                Ok(m) => m,
            }
        };
        let mut op = PollOp {
            what: What::Epoll { ep: 0, events: a[1], max: 0 },
            until_ns,
            once,
            remain: None,
            masked,
        };
        let max = i64::from(a[2] as i32);
        if max <= 0 || max > EP_MAX_EVENTS {
            return self.poll_return(c, tid, &op, -EINVAL);
        }
        // access_ok: the array must lie in user space.
        if a[1].checked_add(max as u64 * 12).is_none_or(|e| e > crate::syscall::TASK_SIZE) {
            return self.poll_return(c, tid, &op, -EFAULT);
        }
        let Some(epd) = self.fd(tid, a[0] as i32) else {
            return self.poll_return(c, tid, &op, -EBADF);
        };
        let Some(&Object::Epoll(ep)) = self.k.files.descs.get(&epd).map(|d| &d.obj) else {
            return self.poll_return(c, tid, &op, -EINVAL);
        };
        op.what = What::Epoll { ep, events: a[1], max: max as usize };
        self.poll_first(c, tid, op)
    }

    /// The first look of a poll-like call, from its system call.
    fn poll_first(&mut self, c: usize, tid: u32, op: PollOp) -> Sys {
        let mut op = op;
        match self.poll_look(c, tid, &mut op) {
            Look::Done(r) => self.poll_return(c, tid, &op, r),
            Look::Sleep(w) => {
                if !self.k.cpus[c].inflight.is_empty() {
                    return Sys::Path(KPath::Poll(Box::new(op)));
                }
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.kpath = Some(KPath::Poll(Box::new(op)));
                }
                Sys::Block(w)
            }
        }
    }

    /// A later look, after a wake-up (the task's kernel path resumed).
    pub(crate) fn poll_step(&mut self, c: usize, tid: u32, op: PollOp) -> Next {
        let mut op = op;
        let look = if self.k.tasks.get(&tid).is_some_and(|t| t.exit.is_some()) {
            // Killed: leave for do_exit.
            Look::Done(-EINTR)
        } else {
            self.poll_look(c, tid, &mut op)
        };
        match look {
            Look::Done(r) => {
                let Sys::Ret(v) = self.poll_return(c, tid, &op, r) else { return Next::Gone };
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.cpu.gpr[0] = v as u64;
                }
                self.user_or_gone(c, tid)
            }
            Look::Sleep(w) => {
                if !self.k.cpus[c].inflight.is_empty() {
                    // Look again once the flushes the copies caused are done.
                    return Next::Then(KPath::Poll(Box::new(op)));
                }
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.kpath = Some(KPath::Poll(Box::new(op)));
                }
                Next::Block(w)
            }
        }
    }

    /// Looks at the files once (do_poll, do_select, ep_poll's loop body).
    fn poll_look(&mut self, c: usize, tid: u32, op: &mut PollOp) -> Look {
        // Callbacks of wake-ups not yet seen (the step that made them may be this one).
        if !self.k.files.events.is_empty() {
            self.wake_pollers(c);
        }
        let mut queues: Vec<(WaitQ, u32)> = Vec::new();
        let count = match &mut op.what {
            What::Poll { fds, revents, .. } => {
                let mut count = 0;
                revents.clear();
                for &(fd, events) in fds.iter() {
                    let filter = u32::from(events) | EPOLLERR | EPOLLHUP;
                    let mask = if fd < 0 {
                        0
                    } else {
                        match self.fd(tid, fd) {
                            None => EPOLLNVAL,
                            Some(d) => {
                                for q in self.k.files.queues_of(d) {
                                    queues.push((q, filter));
                                }
                                self.k.files.poll_mask(d, 0) & filter
                            }
                        }
                    };
                    revents.push(mask as u16);
                    if mask != 0 {
                        count += 1;
                    }
                }
                count
            }
            What::Select { n, sets, res, .. } => {
                let mut count = 0;
                let words = n.div_ceil(64);
                *res = [vec![0; words], vec![0; words], vec![0; words]];
                for fd in 0..*n {
                    let bit = |s: &Vec<u64>| s[fd / 64] >> (fd % 64) & 1 != 0;
                    let want = [bit(&sets[0]), bit(&sets[1]), bit(&sets[2])];
                    if !want.iter().any(|&w| w) {
                        continue;
                    }
                    let Some(d) = self.fd(tid, fd as i32) else { continue };
                    let filters = [POLLIN_SET, POLLOUT_SET, POLLEX_SET];
                    let mut filter = 0;
                    for k in 0..3 {
                        if want[k] {
                            filter |= filters[k];
                        }
                    }
                    for q in self.k.files.queues_of(d) {
                        queues.push((q, filter));
                    }
                    let mask = self.k.files.poll_mask(d, 0);
                    for k in 0..3 {
                        if want[k] && mask & filters[k] != 0 {
                            res[k][fd / 64] |= 1 << (fd % 64);
                            count += 1;
                        }
                    }
                }
                count
            }
            What::Epoll { ep, events, max } => {
                let (ep, events, max) = (*ep, *events, *max);
                queues.push((WaitQ::Epoll(ep), 0));
                let n = self.ep_send_events(c, tid, ep, events, max);
                if n != 0 {
                    return Look::Done(n);
                }
                // ep_poll: a zero timeout returns before a signal is noticed.
                if op.once || op.until_ns.is_some_and(|u| self.fp_of_ns(u) <= self.now(c)) {
                    return Look::Done(0);
                }
                0
            }
        };
        if count != 0 {
            return Look::Done(count);
        }
        let pending = self.k.tasks.get(&tid).is_some_and(|t| t.pending & !t.sigmask != 0);
        if pending {
            return Look::Done(-EINTR);
        }
        if op.once || op.until_ns.is_some_and(|u| self.fp_of_ns(u) <= self.now(c)) {
            return Look::Done(0);
        }
        Look::Sleep(Wait::Poll { until_ns: op.until_ns, queues })
    }

    /// ep_send_events: reports up to `max` ready items into the user's array, returning
    /// how many (or -EFAULT when not even the first could be written).
    fn ep_send_events(&mut self, c: usize, tid: u32, ep: u32, uevents: u64, max: usize) -> i64 {
        let Some(e) = self.k.files.x.epolls.get_mut(&ep) else { return 0 };
        let mut tx = std::mem::take(&mut e.ready);
        let mut relink = Vec::new();
        let mut res: i64 = 0;
        while let Some(key) = tx.pop_front() {
            if res as usize >= max {
                tx.push_front(key);
                break;
            }
            let Some(item) = self.k.files.x.epolls.get_mut(&ep).and_then(|e| e.items.get_mut(&key))
            else {
                continue;
            };
            item.linked = false;
            let events = item.events;
            let revents = self.k.files.ep_item_poll(key.0, events, 0);
            if revents == 0 {
                continue;
            }
            let data = self
                .k
                .files
                .x
                .epolls
                .get(&ep)
                .and_then(|e| e.items.get(&key))
                .map_or(0, |i| i.data);
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&revents.to_le_bytes());
            b[4..].copy_from_slice(&data.to_le_bytes());
            if self.write_user(c, tid, uevents + res as u64 * 12, &b).is_err() {
                tx.push_front(key);
                if let Some(i) =
                    self.k.files.x.epolls.get_mut(&ep).and_then(|e| e.items.get_mut(&key))
                {
                    i.linked = true;
                }
                if res == 0 {
                    res = -EFAULT;
                }
                break;
            }
            res += 1;
            let Some(item) = self.k.files.x.epolls.get_mut(&ep).and_then(|e| e.items.get_mut(&key))
            else {
                continue;
            };
            if events & EPOLLONESHOT != 0 {
                item.events &= EP_PRIVATE_BITS;
            } else if events & EPOLLET == 0 {
                item.linked = true;
                relink.push(key);
            }
        }
        if let Some(e) = self.k.files.x.epolls.get_mut(&ep) {
            // What was not reached stays at the head; level-triggered items follow.
            let mut ready = tx;
            ready.extend(relink);
            // Items that ADD/MOD or callbacks linked meanwhile (none: this is one step).
            ready.extend(e.ready.drain(..));
            e.ready = ready;
        }
        res
    }

    /// The end of a poll-like call: results written back (revents, the fd sets), the
    /// time left written (poll_select_finish), the signal mask restored.
    fn poll_return(&mut self, c: usize, tid: u32, op: &PollOp, r: i64) -> Sys {
        let mut r = r;
        match &op.what {
            What::Poll { ufds, revents, .. } => {
                // do_sys_poll writes every revents of its last pass, even after a signal.
                for (k, rev) in revents.iter().enumerate() {
                    if self.write_user(c, tid, ufds + 8 * k as u64 + 6, &rev.to_le_bytes()).is_err()
                    {
                        r = -EFAULT;
                        break;
                    }
                }
            }
            What::Select { ptrs, res, .. } if r >= 0 => {
                for k in 0..3 {
                    if ptrs[k] == 0 {
                        continue;
                    }
                    let bytes: Vec<u8> = res[k].iter().flat_map(|w| w.to_le_bytes()).collect();
                    if self.write_user(c, tid, ptrs[k], &bytes).is_err() {
                        r = -EFAULT;
                    }
                }
            }
            _ => {}
        }
        if op.masked {
            self.restore_sigmask(tid, r);
        }
        if let (Some((p, timeval)), Some(until), false) = (op.remain, op.until_ns, op.once) {
            let left = until.saturating_sub(self.now_ns(tid));
            let (s, sub) = (left / 1_000_000_000, left % 1_000_000_000);
            let sub = if timeval { sub / 1000 } else { sub };
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&s.to_le_bytes());
            b[8..].copy_from_slice(&sub.to_le_bytes());
            // A timeout that cannot be written back is not an error.
            let _ = self.write_user(c, tid, p, &b);
        }
        Sys::Ret(r)
    }
}
