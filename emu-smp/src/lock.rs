//! Kernel locks as simulated objects: an owner (or readers), a FIFO of waiters, and a
//! lock word that is a cache line in the coherence directory, so that what contention
//! costs emerges from line transfers and queueing (DESIGN.md, "Kernel paths take time").
//!
//! Two kinds, as in Linux:
//! - **spinlocks** (qspinlock: `spin_lock`, `spin_lock_irq`, `raw_spin_rq_lock`): a
//!   waiter spins on its CPU until the holder releases; waiters are served in FIFO order
//!   (the MCS queue), each handoff moving the lock line to the next CPU;
//! - **reader-writer semaphores** (`mmap_lock`, kernel/locking/rwsem.c): waiters sleep.
//!   A reader takes the lock only when no writer holds it and nobody waits (a waiting
//!   writer holds back new readers). A release wakes the head of the queue: a writer
//!   alone, or, when the head is a reader, every reader in the queue (rwsem_mark_wake's
//!   phase-fair reader wake-up), writers keeping their order. The lock is handed to the
//!   woken waiters directly (modelled as rwsem's handoff; optimistic spinning of writers
//!   on a running owner is not modelled).
//!
//! A lock released at time `r` and acquired later in host order at an earlier simulated
//! time `t < r` (possible only while its holder's step was still running) makes the
//! acquirer spin until `r`: steps of different CPUs execute in simulated-time order, so
//! such overlaps are exactly the critical sections that really overlapped.
//!
//! The unit knows nothing of tasks or cores beyond their numbers: the machine supplies
//! the cost of the atomic on the lock line ([`LineCost`]) and acts on the grants.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// A lock instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockKey {
    /// `mm->mmap_lock` of an address space (rw-semaphore).
    MmapLock(u32),
    /// The split page-table lock of a page-table page of an address space (its frame
    /// number).
    Ptl(u32, u64),
    /// `zone->lock` of the memory zone (the buddy allocator).
    Zone,
    /// `lruvec->lru_lock`.
    Lru,
    /// A CPU's runqueue lock.
    Rq(usize),
    /// A futex hash bucket's lock.
    FutexBucket(u32),
}

/// Lock classes, for statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockClass {
    /// mmap_lock.
    MmapLock,
    /// Split page-table locks.
    Ptl,
    /// zone->lock.
    Zone,
    /// lru_lock.
    Lru,
    /// Runqueue locks.
    Rq,
    /// Futex hash-bucket locks.
    FutexBucket,
}

impl LockKey {
    /// The class of the lock.
    pub fn class(self) -> LockClass {
        match self {
            LockKey::MmapLock(_) => LockClass::MmapLock,
            LockKey::Ptl(..) => LockClass::Ptl,
            LockKey::Zone => LockClass::Zone,
            LockKey::Lru => LockClass::Lru,
            LockKey::Rq(_) => LockClass::Rq,
            LockKey::FutexBucket(_) => LockClass::FutexBucket,
        }
    }

    /// True for sleeping locks (rw-semaphores); spinlocks otherwise.
    pub fn sleeps(self) -> bool {
        matches!(self, LockKey::MmapLock(_))
    }

    /// True when a CPU spinning on it takes interrupts (`spin_lock`), false when the lock
    /// is taken with interrupts off (`spin_lock_irq`, `spin_lock_irqsave`).
    pub fn spins_with_irqs(self) -> bool {
        matches!(self, LockKey::Ptl(..) | LockKey::FutexBucket(_))
    }
}

/// How a lock is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Shared (rwsem readers).
    Read,
    /// Exclusive (rwsem writers, spinlocks).
    Write,
}

/// The cost of the atomic read-modify-write of a lock word: the locked instruction plus
/// getting the line exclusive on `core` (1/256 cycles).
pub trait LineCost {
    /// Cost of an atomic on the line holding `pa`, by `core`.
    fn rmw(&mut self, core: usize, pa: u64) -> u64;
}

/// Per-class lock statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LockStats {
    /// Acquisitions.
    pub acquisitions: u64,
    /// Acquisitions that found the lock held (or just being released) and waited.
    pub contentions: u64,
    /// Cycles from asking for the lock to holding it, over all acquisitions (line
    /// transfers included).
    pub wait_cycles: u64,
    /// Waits spent asleep (rw-semaphores).
    pub sleeps: u64,
    /// Cycles the lock was held, over all acquisitions.
    pub hold_cycles: u64,
}

/// A CPU (and task) waiting for a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    /// The CPU it asked on.
    pub core: usize,
    /// The task.
    pub tid: u32,
    /// Shared or exclusive.
    pub mode: LockMode,
    /// When it asked.
    pub since_fp: u64,
}

/// A waiter that now holds the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The waiter.
    pub waiter: Waiter,
    /// When it holds the lock (its CPU's local time).
    pub at_fp: u64,
}

/// The outcome of asking for a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquire {
    /// Held from this local time on (after any spinning and the line transfer).
    At(u64),
    /// Held by another: the caller waits (spins, or sleeps for a sleeping lock) until a
    /// release grants it.
    Wait,
}

#[derive(Clone, Debug, Default)]
struct LockState {
    /// Exclusive holder (core, tid).
    writer: Option<(usize, u32)>,
    /// Shared holders.
    readers: u32,
    /// When the lock was last released.
    free_at_fp: u64,
    /// When the current holder(s) took it (for hold times): the earliest of them.
    held_since_fp: u64,
    waiters: VecDeque<Waiter>,
}

/// Every lock that has been taken, by key.
#[derive(Clone, Debug, Default)]
pub struct Locks {
    locks: BTreeMap<LockKey, LockState>,
    /// Statistics by class.
    pub stats: BTreeMap<LockClass, LockStats>,
}

impl Locks {
    /// Asks for `key` in `mode` on `core` for task `tid` at local time `now`; `pa` is the
    /// lock word's physical address.
    pub fn acquire(
        &mut self,
        key: LockKey,
        mode: LockMode,
        core: usize,
        tid: u32,
        now: u64,
        pa: u64,
        lc: &mut impl LineCost,
    ) -> Acquire {
        let st = self.locks.entry(key).or_default();
        let stats = self.stats.entry(key.class()).or_default();
        let free = st.writer.is_none()
            && st.waiters.is_empty()
            && (mode == LockMode::Read || st.readers == 0);
        if !free {
            stats.contentions += 1;
            if key.sleeps() {
                stats.sleeps += 1;
            }
            st.waiters.push_back(Waiter { core, tid, mode, since_fp: now });
            return Acquire::Wait;
        }
        // Released later than `now` by a step that ran first: spin until then.
        let start = if st.readers == 0 { now.max(st.free_at_fp) } else { now };
        if start > now {
            stats.contentions += 1;
        }
        let at = start + lc.rmw(core, pa);
        Self::take(st, stats, core, tid, mode, now, at);
        Acquire::At(at)
    }

    fn take(
        st: &mut LockState,
        stats: &mut LockStats,
        core: usize,
        tid: u32,
        mode: LockMode,
        asked: u64,
        at: u64,
    ) {
        if st.writer.is_none() && st.readers == 0 {
            st.held_since_fp = at;
        }
        match mode {
            LockMode::Write => st.writer = Some((core, tid)),
            LockMode::Read => st.readers += 1,
        }
        stats.acquisitions += 1;
        stats.wait_cycles += (at - asked) >> 8;
    }

    /// Releases `key` (held in `mode`) at local time `now` on `core`; returns the waiters
    /// the release hands the lock to, each with the time it holds the lock from.
    pub fn release(
        &mut self,
        key: LockKey,
        mode: LockMode,
        now: u64,
        pa: u64,
        lc: &mut impl LineCost,
    ) -> Vec<Grant> {
        let Some(st) = self.locks.get_mut(&key) else { return Vec::new() };
        match mode {
            LockMode::Write => st.writer = None,
            LockMode::Read => st.readers = st.readers.saturating_sub(1),
        }
        if st.writer.is_some() || st.readers > 0 {
            return Vec::new();
        }
        let stats = self.stats.entry(key.class()).or_default();
        stats.hold_cycles += now.saturating_sub(st.held_since_fp) >> 8;
        st.free_at_fp = now;
        let mut granted = Vec::new();
        match st.waiters.front().map(|w| w.mode) {
            None => {}
            Some(LockMode::Write) => {
                if let Some(w) = st.waiters.pop_front() {
                    granted.push(w);
                }
            }
            Some(LockMode::Read) => {
                // Every reader in the queue; writers keep their places.
                let (readers, rest): (Vec<Waiter>, Vec<Waiter>) =
                    st.waiters.drain(..).partition(|w| w.mode == LockMode::Read);
                st.waiters = rest.into();
                granted = readers;
            }
        }
        let mut out = Vec::with_capacity(granted.len());
        for w in granted {
            let at = now.max(w.since_fp) + lc.rmw(w.core, pa);
            Self::take(st, stats, w.core, w.tid, w.mode, w.since_fp, at);
            out.push(Grant { waiter: w, at_fp: at });
        }
        out
    }

    /// True when `key` is held or waited for.
    pub fn busy(&self, key: LockKey) -> bool {
        self.locks
            .get(&key)
            .is_some_and(|s| s.writer.is_some() || s.readers > 0 || !s.waiters.is_empty())
    }

    /// True when `core` holds a spinning lock (preemption is off there).
    pub fn holds_spinlock(&self, core: usize) -> bool {
        self.locks.iter().any(|(k, s)| !k.sleeps() && s.writer.is_some_and(|(c, _)| c == core))
    }

    /// Forgets the locks of a dead address space (its mmap_lock and page-table locks).
    /// They must be free.
    pub fn forget_mm(&mut self, mm: u32) {
        self.locks.retain(|k, s| {
            let mine = matches!(*k, LockKey::MmapLock(m) | LockKey::Ptl(m, _) if m == mm);
            debug_assert!(
                !mine || (s.writer.is_none() && s.readers == 0 && s.waiters.is_empty()),
                "forgetting {k:?} while it is held"
            );
            !mine
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every atomic costs 10 cycles, 100 when the line moves from another core.
    struct Lines(BTreeMap<u64, usize>);
    impl LineCost for Lines {
        fn rmw(&mut self, core: usize, pa: u64) -> u64 {
            let moved = self.0.insert(pa, core).is_some_and(|c| c != core);
            if moved {
                100
            } else {
                10
            }
        }
    }

    #[test]
    fn an_uncontended_lock_costs_its_line() {
        let mut l = Locks::default();
        let mut lc = Lines(BTreeMap::new());
        let k = LockKey::Zone;
        assert_eq!(l.acquire(k, LockMode::Write, 0, 1, 1000, 64, &mut lc), Acquire::At(1010));
        assert!(l.release(k, LockMode::Write, 1200, 64, &mut lc).is_empty());
        // Another CPU, later: the line moves.
        assert_eq!(l.acquire(k, LockMode::Write, 1, 2, 2000, 64, &mut lc), Acquire::At(2100));
        let s = l.stats[&LockClass::Zone];
        assert_eq!((s.acquisitions, s.contentions), (2, 0));
    }

    #[test]
    fn a_lock_released_later_in_simulated_time_makes_the_acquirer_spin() {
        let mut l = Locks::default();
        let mut lc = Lines(BTreeMap::new());
        let k = LockKey::Rq(0);
        l.acquire(k, LockMode::Write, 0, 1, 0, 64, &mut lc);
        l.release(k, LockMode::Write, 5000, 64, &mut lc);
        // CPU 1 asks at 3000, before the release at 5000: it holds the lock after it.
        assert_eq!(l.acquire(k, LockMode::Write, 1, 2, 3000, 64, &mut lc), Acquire::At(5100));
        assert_eq!(l.stats[&LockClass::Rq].contentions, 1);
    }

    #[test]
    fn spin_waiters_are_served_in_order() {
        let mut l = Locks::default();
        let mut lc = Lines(BTreeMap::new());
        let k = LockKey::Ptl(1, 7);
        assert!(matches!(l.acquire(k, LockMode::Write, 0, 1, 0, 64, &mut lc), Acquire::At(_)));
        assert_eq!(l.acquire(k, LockMode::Write, 1, 2, 10, 64, &mut lc), Acquire::Wait);
        assert_eq!(l.acquire(k, LockMode::Write, 2, 3, 20, 64, &mut lc), Acquire::Wait);
        let g = l.release(k, LockMode::Write, 1000, 64, &mut lc);
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].waiter.core, g[0].at_fp), (1, 1100));
        let g = l.release(k, LockMode::Write, 2000, 64, &mut lc);
        assert_eq!((g[0].waiter.core, g[0].at_fp), (2, 2100));
        let s = l.stats[&LockClass::Ptl];
        assert_eq!((s.acquisitions, s.contentions, s.sleeps), (3, 2, 0));
        // Waits: 10 (line), 1100 - 10, 2100 - 20, in cycles (fixed point / 256).
        assert_eq!(s.wait_cycles, (10 + 1090 + 2080) >> 8);
    }

    #[test]
    fn rwsem_readers_share_and_a_waiting_writer_holds_back_new_readers() {
        let mut l = Locks::default();
        let mut lc = Lines(BTreeMap::new());
        let k = LockKey::MmapLock(1);
        assert!(matches!(l.acquire(k, LockMode::Read, 0, 1, 0, 64, &mut lc), Acquire::At(_)));
        assert!(matches!(l.acquire(k, LockMode::Read, 1, 2, 5, 64, &mut lc), Acquire::At(_)));
        // A writer waits for both readers; a reader after it waits too.
        assert_eq!(l.acquire(k, LockMode::Write, 2, 3, 10, 64, &mut lc), Acquire::Wait);
        assert_eq!(l.acquire(k, LockMode::Read, 3, 4, 20, 64, &mut lc), Acquire::Wait);
        assert!(l.release(k, LockMode::Read, 100, 64, &mut lc).is_empty());
        let g = l.release(k, LockMode::Read, 200, 64, &mut lc);
        assert_eq!(g.iter().map(|g| g.waiter.tid).collect::<Vec<_>>(), vec![3]);
        assert_eq!(l.stats[&LockClass::MmapLock].sleeps, 2);
        // The writer's release wakes the reader.
        let g = l.release(k, LockMode::Write, 300, 64, &mut lc);
        assert_eq!(g.iter().map(|g| g.waiter.tid).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn a_reader_at_the_head_wakes_every_queued_reader_but_no_writer() {
        let mut l = Locks::default();
        let mut lc = Lines(BTreeMap::new());
        let k = LockKey::MmapLock(1);
        l.acquire(k, LockMode::Write, 0, 1, 0, 64, &mut lc);
        for (tid, mode) in
            [(2, LockMode::Read), (3, LockMode::Write), (4, LockMode::Read), (5, LockMode::Write)]
        {
            assert_eq!(l.acquire(k, mode, tid as usize, tid, 10, 64, &mut lc), Acquire::Wait);
        }
        let g = l.release(k, LockMode::Write, 100, 64, &mut lc);
        assert_eq!(g.iter().map(|g| g.waiter.tid).collect::<Vec<_>>(), vec![2, 4]);
        assert!(l.release(k, LockMode::Read, 200, 64, &mut lc).is_empty());
        let g = l.release(k, LockMode::Read, 300, 64, &mut lc);
        assert_eq!(g.iter().map(|g| g.waiter.tid).collect::<Vec<_>>(), vec![3]);
        let g = l.release(k, LockMode::Write, 400, 64, &mut lc);
        assert_eq!(g.iter().map(|g| g.waiter.tid).collect::<Vec<_>>(), vec![5]);
        assert!(l.busy(k));
        l.release(k, LockMode::Write, 500, 64, &mut lc);
        assert!(!l.busy(k));
    }
}
