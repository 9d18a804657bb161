//! Per-process timers: alarm, setitimer and getitimer (kernel/time/itimer.c) and POSIX
//! timers (kernel/time/posix-timers.c), in simulated time.
//!
//! Every armed timer has an entry in the kernel's timer queue (`Kernel::ptimer_q`), which
//! the event loop fires with the sleepers' timeouts (DESIGN.md, "Timers"). As in Linux:
//!
//! - a POSIX timer whose signal is queued is not re-armed until the signal is dequeued
//!   (delivered, or taken by sigwaitinfo); the dequeue forwards it past the current time
//!   (`hrtimer_forward`), and the periods it skipped are the signal's `si_overrun` and
//!   what timer_getoverrun reports (`__posixtimer_deliver_signal`, `it_overrun` starting
//!   at -1);
//! - ITIMER_REAL sends SIGALRM with SI_KERNEL and is re-armed when a SIGALRM is dequeued
//!   (`dequeue_signal`'s real_timer forward); a dropped (ignored) SIGALRM leaves it
//!   stopped;
//! - ITIMER_VIRTUAL and ITIMER_PROF re-arm at expiry (`check_cpu_itimer`);
//! - a one-shot POSIX timer is disarmed when it fires (it reads 0 even before its
//!   signal is delivered); a periodic one with its signal pending reads 1 ns left;
//! - the queued signal of a timer set again or deleted stays pending but is dropped
//!   when dequeued (`it_signal_seq`); timers are not inherited by a fork and die with
//!   the process (`exit_itimers`).
//!
//! Simplifications: emu keeps no per-task CPU time (clock_gettime's CPU clocks read
//! elapsed simulated time), so CPU-time clocks, ITIMER_VIRTUAL and ITIMER_PROF count
//! elapsed simulated time as well; a POSIX timer whose signal is ignored keeps running
//! (Linux parks it until the signal is no longer ignored).

use crate::fs::errno::*;
use crate::machine::{sig, Machine};
use crate::signal::si;
use crate::syscall::{le64, EPOCH_S};
use crate::task::{SigFields, SigInfo, State};
use std::collections::BTreeMap;

const NS: u64 = 1_000_000_000;
/// Timer ids of the three interval timers (POSIX timers use ids from 0).
const ITIMER_IDS: [i32; 3] = [-1, -2, -3];
const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD: i32 = 2;
const SIGEV_THREAD_ID: i32 = 4;

/// One timer of a process.
#[derive(Clone, Debug, Default)]
pub struct Timer {
    /// The clock (for absolute times: CLOCK_REALTIME and CLOCK_TAI count from the epoch).
    clock: i32,
    /// Signal sent at expiry (0: SIGEV_NONE).
    signo: u32,
    /// sigev_value.
    value: u64,
    /// SIGEV_THREAD_ID's thread, else the process.
    thread: Option<u32>,
    /// A POSIX timer (SI_TIMER) rather than an interval timer (SI_KERNEL).
    posix: bool,
    /// Next expiry (simulated ns), if armed.
    expires: Option<u64>,
    /// Period (ns), 0 for a one-shot timer.
    interval: u64,
    /// Periods missed since the signal was queued (`it_overrun`, from -1).
    overrun: i64,
    /// The overrun count of the last delivered signal (`it_overrun_last`).
    overrun_last: i64,
    /// The expiry's signal is queued and not yet dequeued (POSIX_TIMER_REQUEUE_PENDING).
    queued: bool,
    /// Generation, bumped when the timer is set or deleted (`it_signal_seq`).
    seq: u32,
}

/// The timers of one process.
#[derive(Clone, Debug, Default)]
pub struct ProcTimers {
    /// By id.
    timers: BTreeMap<i32, Timer>,
    /// The next POSIX timer id.
    next_id: i32,
}

/// hrtimer_forward: moves `expires` past `now` by whole intervals; returns how many.
pub(crate) fn hrtimer_forward(expires: &mut u64, now: u64, interval: u64) -> u64 {
    if now < *expires || interval == 0 {
        return 0;
    }
    let delta = now - *expires;
    let mut orun = 1;
    if delta >= interval {
        orun = delta / interval;
        *expires += interval * orun;
        if *expires > now {
            return orun;
        }
        orun += 1;
    }
    *expires += interval;
    orun
}

/// alarm(2)'s return value from the old timer's remaining time (alarm_setitimer): whole
/// seconds, rounded up from half a second, and never 0 while an alarm is pending.
pub(crate) fn alarm_seconds(rem_ns: u64) -> u64 {
    let (s, ns) = (rem_ns / NS, rem_ns % NS);
    if (s == 0 && ns != 0) || ns >= NS / 2 {
        s + 1
    } else {
        s
    }
}

/// A timespec or timeval pair read from the guest: (value, interval) in ns, or EINVAL.
fn read_pair(b: &[u8], micro: bool) -> Result<(u64, u64), i64> {
    let unit = if micro { 1_000_000 } else { NS as i64 };
    let one = |o: usize| {
        let (s, f) = (le64(&b[o..o + 8]) as i64, le64(&b[o + 8..o + 16]) as i64);
        if s < 0 || !(0..unit).contains(&f) {
            return Err(EINVAL);
        }
        let f = if micro { f as u64 * 1000 } else { f as u64 };
        Ok((s as u64).saturating_mul(NS).saturating_add(f))
    };
    let interval = one(0)?;
    Ok((one(16)?, interval))
}

/// The guest's (interval, value) pair, as timespecs or timevals.
fn pair_bytes(value: u64, interval: u64, micro: bool) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (o, v) in [(0, interval), (16, value)] {
        let f = if micro { (v % NS) / 1000 } else { v % NS };
        b[o..o + 8].copy_from_slice(&(v / NS).to_le_bytes());
        b[o + 8..o + 16].copy_from_slice(&f.to_le_bytes());
    }
    b
}

impl Machine {
    fn tgid_of(&self, tid: u32) -> u32 {
        self.k.tasks.get(&tid).map_or(0, |t| t.tgid)
    }

    fn timer_mut(&mut self, tgid: u32, id: i32) -> Option<&mut Timer> {
        self.k.ptimers.get_mut(&tgid)?.timers.get_mut(&id)
    }

    /// Arms (or disarms) a timer and queues its expiry for the event loop.
    fn arm(&mut self, tgid: u32, id: i32, expires: Option<u64>) {
        if let Some(t) = self.timer_mut(tgid, id) {
            t.expires = expires;
            t.queued = false;
            if let (Some(e), true) = (expires, t.signo != 0) {
                self.k.ptimer_q.insert((e, tgid, id));
            }
        }
    }

    /// What a timer reads now (common_timer_get / itimer_get_remtime): the time left
    /// and the interval. A timer that expired with its signal not yet delivered reads a
    /// tiny positive time left, a one-shot SIGEV_NONE timer that expired zero.
    fn timer_read(&mut self, tgid: u32, id: i32, now: u64) -> (u64, u64) {
        let Some(t) = self.timer_mut(tgid, id) else { return (0, 0) };
        let Some(mut e) = t.expires else { return (0, t.interval) };
        if !t.posix && t.queued {
            // An interval timer whose signal is pending: its hrtimer is not active.
            return (0, t.interval);
        }
        if t.posix && t.interval != 0 && (t.queued || t.signo == 0) {
            t.overrun += hrtimer_forward(&mut e, now, t.interval) as i64;
            t.expires = Some(e);
        }
        let left = if e > now {
            e - now
        } else if t.signo == 0 {
            0
        } else if t.posix {
            1
        } else {
            // itimer_get_remtime: an active timer at its expiry reads a microsecond.
            1000
        };
        (left, t.interval)
    }

    /// Sets a timer (do_timer_settime / do_setitimer); returns the old reading.
    fn timer_set(
        &mut self,
        tgid: u32,
        id: i32,
        value: u64,
        interval: u64,
        abs: bool,
        now: u64,
    ) -> (u64, u64) {
        let old = self.timer_read(tgid, id, now);
        let clock = self.timer_mut(tgid, id).map_or(1, |t| t.clock);
        if let Some(t) = self.timer_mut(tgid, id) {
            // A signal still queued is dropped when dequeued.
            t.seq = t.seq.wrapping_add(1);
            t.interval = interval;
            t.overrun = -1;
            t.overrun_last = 0;
        }
        let expires = if value == 0 {
            None
        } else if abs {
            // A time already past expires at once.
            let base = if matches!(clock, 0 | 11) { EPOCH_S * NS } else { 0 };
            Some(value.saturating_sub(base).max(now))
        } else {
            Some(now.saturating_add(value))
        };
        self.arm(tgid, id, expires);
        old
    }

    /// The earliest armed timer expiry (ns); stale queue entries are dropped.
    pub(crate) fn next_ptimer(&mut self) -> Option<u64> {
        while let Some(&(e, tgid, id)) = self.k.ptimer_q.first() {
            let live = self
                .k
                .ptimers
                .get(&tgid)
                .and_then(|p| p.timers.get(&id))
                .is_some_and(|t| t.expires == Some(e) && !t.queued && t.signo != 0);
            if live {
                return Some(e);
            }
            self.k.ptimer_q.pop_first();
        }
        None
    }

    /// Fires the timers due at or before `at` (fp); returns how many fired.
    pub(crate) fn fire_ptimers(&mut self, at: u64) -> usize {
        let mut n = 0;
        while let Some(e) = self.next_ptimer() {
            if self.fp_of_ns(e) > at {
                break;
            }
            let Some((_, tgid, id)) = self.k.ptimer_q.pop_first() else { break };
            self.expire(tgid, id, e, at);
            n += 1;
        }
        n
    }

    /// A timer expires (posix_timer_fn, it_real_fn, check_cpu_itimer): its signal is
    /// sent; an interval timer re-arms now, a POSIX timer or ITIMER_REAL when its
    /// signal is dequeued.
    fn expire(&mut self, tgid: u32, id: i32, e: u64, at: u64) {
        let Some(t) = self.timer_mut(tgid, id) else { return };
        let (signo, posix, value, thread, interval, seq) =
            (t.signo, t.posix, t.value, t.thread, t.interval, t.seq);
        let eager = !posix && id != -1;
        if eager && interval != 0 {
            t.expires = Some(e + interval);
            self.k.ptimer_q.insert((e + interval, tgid, id));
        } else {
            t.queued = true;
            if posix && interval == 0 {
                // A one-shot timer is disarmed once it has fired.
                t.expires = None;
            }
        }
        let info = if posix {
            let fields = SigFields::Timer { id, overrun: 0, value, seq };
            SigInfo { signo, code: si::SI_TIMER, fields }
        } else {
            SigInfo { signo, code: si::SI_KERNEL, fields: SigFields::None }
        };
        let target = match thread.filter(|t| self.k.tasks.contains_key(t)) {
            Some(t) => t,
            None => self.process_target(tgid, signo),
        };
        // The timer interrupt is taken on the CPU the target runs on (or last ran on).
        let c = match self.k.tasks.get(&target).map(|t| (&t.state, t.last_cpu)) {
            Some((State::Running(k), _)) => *k,
            Some((_, k)) => k,
            None => return,
        };
        let queued = self.send_signal_at(c, target, info, at, false);
        if !queued && !eager {
            // Dropped (ignored): nothing will dequeue it.
            if let Some(t) = self.timer_mut(tgid, id) {
                t.queued = false;
                if posix && interval != 0 {
                    let mut next = e;
                    let now = self.ns_of(at);
                    hrtimer_forward(&mut next, now, interval);
                    self.arm(tgid, id, Some(next));
                } else if !posix {
                    t.expires = None;
                }
            }
        }
    }

    /// The dequeue of a signal of task `tid` re-arms its timer (dequeue_signal,
    /// posixtimer_deliver_signal); a POSIX timer's overrun goes into the siginfo. False
    /// when the signal is dropped instead: its timer was set again or deleted since.
    pub(crate) fn timer_dequeued(&mut self, tid: u32, info: &mut SigInfo) -> bool {
        let tgid = self.tgid_of(tid);
        let now = self.now_ns(tid);
        let id = match info.fields {
            SigFields::Timer { id, seq, .. } if info.code == si::SI_TIMER => {
                match self.timer_mut(tgid, id) {
                    Some(t) if t.seq == seq => id,
                    _ => return false,
                }
            }
            _ if info.signo == sig::SIGALRM => -1,
            _ => return true,
        };
        let Some(t) = self.timer_mut(tgid, id) else { return true };
        if !t.queued {
            return true;
        }
        t.queued = false;
        let Some(mut e) = t.expires else { return true };
        if t.interval == 0 {
            t.expires = None;
            return true;
        }
        let forwarded = hrtimer_forward(&mut e, now, t.interval) as i64;
        if t.posix {
            t.overrun += forwarded;
            t.overrun_last = t.overrun;
            t.overrun = -1;
            let o = t.overrun_last.clamp(0, i64::from(i32::MAX)) as i32;
            if let SigFields::Timer { overrun, .. } = &mut info.fields {
                *overrun = o;
            }
        }
        self.arm(tgid, id, Some(e));
        true
    }

    /// The timers of an exiting process go with it (exit_itimers).
    pub(crate) fn exit_itimers(&mut self, tgid: u32) {
        self.k.ptimers.remove(&tgid);
    }

    /// execve's exit_itimers: the POSIX timers go; alarm and the itimers stay.
    pub(crate) fn exec_itimers(&mut self, tgid: u32) {
        if let Some(p) = self.k.ptimers.get_mut(&tgid) {
            p.timers.retain(|id, _| ITIMER_IDS.contains(id));
        }
    }

    fn itimer_entry(&mut self, tgid: u32, which: usize) {
        let signo = [sig::SIGALRM, sig::SIGVTALRM, sig::SIGPROF][which];
        let p = self.k.ptimers.entry(tgid).or_default();
        p.timers.entry(ITIMER_IDS[which]).or_insert(Timer { clock: 1, signo, ..Timer::default() });
    }

    /// alarm(2).
    pub(crate) fn sys_alarm(&mut self, tid: u32, seconds: u32) -> i64 {
        let (tgid, now) = (self.tgid_of(tid), self.now_ns(tid));
        self.itimer_entry(tgid, 0);
        let (left, _) = self.timer_set(tgid, -1, u64::from(seconds) * NS, 0, false, now);
        alarm_seconds(left) as i64
    }

    /// setitimer(2): the new value is read and checked, then `which`, then the old value
    /// written; a null new value disarms.
    pub(crate) fn sys_setitimer(
        &mut self,
        c: usize,
        tid: u32,
        which: i32,
        new: u64,
        old: u64,
    ) -> i64 {
        let mut b = [0u8; 32];
        if new != 0 && self.read_user(c, tid, new, &mut b).is_err() {
            return -EFAULT;
        }
        let (value, interval) = match read_pair(&b, true) {
            Ok(p) => p,
            Err(e) => return -e,
        };
        if !(0..3).contains(&which) {
            return -EINVAL;
        }
        let (tgid, now) = (self.tgid_of(tid), self.now_ns(tid));
        self.itimer_entry(tgid, which as usize);
        let (l, i) = self.timer_set(tgid, ITIMER_IDS[which as usize], value, interval, false, now);
        if old != 0 && self.write_user(c, tid, old, &pair_bytes(l, i, true)).is_err() {
            return -EFAULT;
        }
        0
    }

    /// getitimer(2).
    pub(crate) fn sys_getitimer(&mut self, c: usize, tid: u32, which: i32, out: u64) -> i64 {
        if !(0..3).contains(&which) {
            return -EINVAL;
        }
        let (tgid, now) = (self.tgid_of(tid), self.now_ns(tid));
        let (l, i) = self.timer_read(tgid, ITIMER_IDS[which as usize], now);
        if self.write_user(c, tid, out, &pair_bytes(l, i, true)).is_err() {
            return -EFAULT;
        }
        0
    }

    /// timer_create(2) (do_timer_create, good_sigevent): clocks with timers are
    /// CLOCK_REALTIME, MONOTONIC, PROCESS_CPUTIME_ID, THREAD_CPUTIME_ID, BOOTTIME and
    /// TAI (the other clocks are EOPNOTSUPP: the alarm clocks find no RTC); no
    /// sigevent means SIGALRM with the timer id as value.
    pub(crate) fn sys_timer_create(
        &mut self,
        c: usize,
        tid: u32,
        clock: i32,
        sevp: u64,
        out: u64,
    ) -> i64 {
        let mut ev = [0u8; 64];
        if sevp != 0 && self.read_user(c, tid, sevp, &mut ev).is_err() {
            return -EFAULT;
        }
        match clock {
            0 | 1 | 2 | 3 | 7 | 11 => {}
            // Clocks without timers; the alarm clocks need an RTC (alarm_timer_create).
            4 | 5 | 6 | 8 | 9 => return -EOPNOTSUPP,
            _ => return -EINVAL,
        }
        let tgid = self.tgid_of(tid);
        let id = self.k.ptimers.get(&tgid).map_or(0, |p| p.next_id);
        let mut t = Timer { clock, posix: true, overrun: -1, ..Timer::default() };
        if sevp == 0 {
            t.signo = sig::SIGALRM;
            t.value = id as u64;
        } else {
            let signo = i32::from_le_bytes([ev[8], ev[9], ev[10], ev[11]]);
            let notify = i32::from_le_bytes([ev[12], ev[13], ev[14], ev[15]]);
            let thread = i32::from_le_bytes([ev[16], ev[17], ev[18], ev[19]]);
            t.value = le64(&ev[..8]);
            match notify {
                SIGEV_NONE => {}
                SIGEV_SIGNAL | SIGEV_THREAD | SIGEV_THREAD_ID => {
                    if notify == SIGEV_THREAD_ID {
                        let ok = thread > 0
                            && self.k.tasks.get(&(thread as u32)).is_some_and(|x| x.tgid == tgid);
                        if !ok {
                            return -EINVAL;
                        }
                        t.thread = Some(thread as u32);
                    }
                    if !(1..=64).contains(&signo) {
                        return -EINVAL;
                    }
                    t.signo = signo as u32;
                }
                _ => return -EINVAL,
            }
        }
        if self.write_user(c, tid, out, &id.to_le_bytes()).is_err() {
            return -EFAULT;
        }
        let p = self.k.ptimers.entry(tgid).or_default();
        p.next_id = id + 1;
        p.timers.insert(id, t);
        0
    }

    /// The POSIX timer `id` of the caller's process, if it exists.
    fn posix_timer(&self, tid: u32, id: i32) -> bool {
        id >= 0
            && self
                .k
                .ptimers
                .get(&self.tgid_of(tid))
                .is_some_and(|p| p.timers.get(&id).is_some_and(|t| t.posix))
    }

    /// timer_settime(2): the new value is read, checked, the timer looked up, then the
    /// old value written.
    pub(crate) fn sys_timer_settime(&mut self, c: usize, tid: u32, a: [u64; 6]) -> i64 {
        let (id, flags, new, old) = (a[0] as i32, a[1] as i32, a[2], a[3]);
        if new == 0 {
            return -EINVAL;
        }
        let mut b = [0u8; 32];
        if self.read_user(c, tid, new, &mut b).is_err() {
            return -EFAULT;
        }
        let (value, interval) = match read_pair(&b, false) {
            Ok(p) => p,
            Err(e) => return -e,
        };
        if !self.posix_timer(tid, id) {
            return -EINVAL;
        }
        let (tgid, now) = (self.tgid_of(tid), self.now_ns(tid));
        let (l, i) = self.timer_set(tgid, id, value, interval, flags & 1 != 0, now);
        if old != 0 && self.write_user(c, tid, old, &pair_bytes(l, i, false)).is_err() {
            return -EFAULT;
        }
        0
    }

    /// timer_gettime(2).
    pub(crate) fn sys_timer_gettime(&mut self, c: usize, tid: u32, id: i32, out: u64) -> i64 {
        if !self.posix_timer(tid, id) {
            return -EINVAL;
        }
        let (tgid, now) = (self.tgid_of(tid), self.now_ns(tid));
        let (l, i) = self.timer_read(tgid, id, now);
        if self.write_user(c, tid, out, &pair_bytes(l, i, false)).is_err() {
            return -EFAULT;
        }
        0
    }

    /// timer_getoverrun(2): the overrun count of the last delivered signal.
    pub(crate) fn sys_timer_getoverrun(&mut self, tid: u32, id: i32) -> i64 {
        if !self.posix_timer(tid, id) {
            return -EINVAL;
        }
        let tgid = self.tgid_of(tid);
        self.timer_mut(tgid, id).map_or(0, |t| t.overrun_last.clamp(0, i64::from(i32::MAX)))
    }

    /// timer_delete(2): its queued signal goes too.
    pub(crate) fn sys_timer_delete(&mut self, tid: u32, id: i32) -> i64 {
        if !self.posix_timer(tid, id) {
            return -EINVAL;
        }
        let tgid = self.tgid_of(tid);
        if let Some(p) = self.k.ptimers.get_mut(&tgid) {
            p.timers.remove(&id);
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrtimer_forward_counts_the_periods_it_skips() {
        let mut e = 100;
        assert_eq!(hrtimer_forward(&mut e, 50, 10), 0);
        assert_eq!(e, 100);
        assert_eq!(hrtimer_forward(&mut e, 100, 10), 1);
        assert_eq!(e, 110);
        assert_eq!(hrtimer_forward(&mut e, 135, 10), 3);
        assert_eq!(e, 140);
        assert_eq!(hrtimer_forward(&mut e, 160, 10), 3);
        assert_eq!(e, 170);
    }

    #[test]
    fn alarm_rounds_the_time_left_as_linux() {
        assert_eq!(alarm_seconds(0), 0);
        assert_eq!(alarm_seconds(1), 1);
        assert_eq!(alarm_seconds(2 * NS + NS / 2 - 1), 2);
        assert_eq!(alarm_seconds(2 * NS + NS / 2), 3);
    }

    #[test]
    fn timer_values_are_checked_and_converted() {
        let mut b = [0u8; 32];
        b[16..24].copy_from_slice(&1u64.to_le_bytes());
        b[24..32].copy_from_slice(&500_000u64.to_le_bytes());
        assert_eq!(read_pair(&b, true), Ok((1_500_000_000, 0)));
        assert_eq!(read_pair(&b, false), Ok((1_000_500_000, 0)));
        b[8..16].copy_from_slice(&1_000_000u64.to_le_bytes());
        assert_eq!(read_pair(&b, true), Err(EINVAL));
        assert_eq!(&pair_bytes(1_500_000_000, 0, true)[16..32], &b[16..32]);
    }
}
