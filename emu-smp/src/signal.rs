//! Signal delivery (arch/x86/kernel/signal.c and signal_64.c): builds the x86-64
//! `rt_sigframe` (return address, `ucontext` with the saved registers and signal mask,
//! `siginfo`, and the FXSAVE image) on the user stack, and restores it in rt_sigreturn.

use crate::machine::{sig, Machine};
use crate::path::{KPath, Next};
use crate::syscall::{le64, Sys};
use crate::task::{SigAction, SigFields, SigInfo, Wait};

const SA_RESTART: u64 = 0x1000_0000;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTORER: u64 = 0x0400_0000;
const SA_NODEFER: u64 = 0x4000_0000;
const SA_RESETHAND: u64 = 0x8000_0000;
/// sizeof(struct ucontext) on x86-64 with the 256-byte sigcontext.
const UC_SIZE: u64 = 304;
/// Offset of uc_mcontext in struct ucontext.
const MCTX: u64 = 40;
/// Order of the general registers in struct sigcontext_64, as GPR indices.
const SIGCTX_REGS: [usize; 16] = [8, 9, 10, 11, 12, 13, 14, 15, 7, 6, 5, 3, 2, 0, 1, 4];

/// Internal return values of interrupted system calls (include/linux/errno.h); they
/// never reach user space: signal delivery turns them into EINTR or a restart.
pub(crate) mod restart {
    /// Restart if the handler has SA_RESTART (or no handler runs).
    pub const ERESTARTSYS: i64 = 512;
    /// Always restart.
    pub const ERESTARTNOINTR: i64 = 513;
    /// Restart only if no handler runs.
    pub const ERESTARTNOHAND: i64 = 514;
    /// Restart through restart_syscall(2) only if no handler runs.
    pub const ERESTART_RESTARTBLOCK: i64 = 516;
}

/// SIGKILL and SIGSTOP, which no mask blocks.
pub(crate) const UNBLOCKABLE: u64 = (1 << (sig::SIGKILL - 1)) | (1 << (sig::SIGSTOP - 1));

/// An rt_sigtimedwait in progress.
#[derive(Clone, Debug)]
pub struct SigWaitOp {
    /// The signals it waits for.
    set: u64,
    /// Where the siginfo goes (0: nowhere).
    uinfo: u64,
    /// Timeout (simulated ns), if any.
    until_ns: Option<u64>,
    /// The mask to restore.
    real_blocked: u64,
}

/// restart_syscall(2)'s number.
pub(crate) const NR_RESTART_SYSCALL: u64 = 219;

/// What signal delivery does to the result of the system call it interrupts
/// (arch/x86/kernel/signal.c: `handle_signal` with a handler, the end of
/// `arch_do_signal_or_restart` without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Restart {
    /// Not an interrupted call: RAX stays.
    Keep,
    /// The call fails with EINTR.
    Eintr,
    /// The call runs again (RAX = its number, RIP back over the `syscall`).
    Again,
    /// restart_syscall(2) runs instead (RAX = its number, RIP back).
    ViaRestartSyscall,
}

/// The restart decision for a call that returned `ret`, when a handler with flags
/// `handler` runs (Some) or none does (None).
pub(crate) fn restart_action(ret: i64, handler: Option<u64>) -> Restart {
    use restart::*;
    match (-ret, handler) {
        (ERESTART_RESTARTBLOCK | ERESTARTNOHAND, Some(_)) => Restart::Eintr,
        (ERESTARTSYS, Some(f)) if f & SA_RESTART == 0 => Restart::Eintr,
        (ERESTARTSYS | ERESTARTNOINTR, Some(_)) => Restart::Again,
        (ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND, None) => Restart::Again,
        (ERESTART_RESTARTBLOCK, None) => Restart::ViaRestartSyscall,
        _ => Restart::Keep,
    }
}

/// si_code values (include/uapi/asm-generic/siginfo.h).
#[allow(missing_docs)]
pub(crate) mod si {
    pub const SI_USER: i32 = 0;
    pub const SI_KERNEL: i32 = 0x80;
    pub const SI_TIMER: i32 = -2;
    pub const ILL_ILLOPN: i32 = 2;
    pub const FPE_INTDIV: i32 = 1;
    pub const FPE_FLTINV: i32 = 7;
    pub const SEGV_MAPERR: i32 = 1;
    pub const SEGV_ACCERR: i32 = 2;
    pub const BUS_ADRERR: i32 = 2;
    pub const TRAP_BRKPT: i32 = 1;
    pub const CLD_EXITED: i32 = 1;
    pub const CLD_KILLED: i32 = 2;
}

/// Signals next_signal (kernel/signal.c) takes first: the synchronous ones.
const SYNCHRONOUS_MASK: u64 = (1 << (sig::SIGSEGV - 1))
    | (1 << (sig::SIGBUS - 1))
    | (1 << (sig::SIGILL - 1))
    | (1 << (sig::SIGTRAP - 1))
    | (1 << (sig::SIGFPE - 1))
    | (1 << (sig::SIGSYS - 1));

/// The signal to dequeue from `ready` (kernel/signal.c `next_signal`): a synchronous
/// one first, else the lowest.
pub(crate) fn next_signal(ready: u64) -> Option<u32> {
    if ready == 0 {
        return None;
    }
    let sync = ready & SYNCHRONOUS_MASK;
    let pick = if sync != 0 { sync } else { ready };
    Some(pick.trailing_zeros() + 1)
}

/// True for the signals whose default action is to ignore them.
pub(crate) fn default_ignored(s: u32) -> bool {
    matches!(s, sig::SIGCHLD | sig::SIGURG | sig::SIGWINCH | sig::SIGCONT)
}

impl Machine {
    /// Queues `info` for `tid` (kernel/signal.c `__send_signal_locked`): a standard
    /// signal already pending is not queued again (`legacy_queue`). False if dropped.
    pub(crate) fn queue_signal(&mut self, tid: u32, info: SigInfo) -> bool {
        let Some(t) = self.k.tasks.get_mut(&tid) else { return false };
        let bit = 1u64 << (info.signo - 1);
        if info.signo < 32 && t.pending & bit != 0 {
            return false;
        }
        t.pending |= bit;
        t.sigq.push(info);
        true
    }

    /// Dequeues the next pending signal of `tid` among `allowed` (dequeue_signal).
    /// A stale timer signal is dropped on the way (posixtimer_deliver_signal).
    pub(crate) fn dequeue_signal(&mut self, tid: u32, allowed: u64) -> Option<SigInfo> {
        loop {
            let t = self.k.tasks.get_mut(&tid)?;
            let s = next_signal(t.pending & allowed)?;
            let mut info = match t.sigq.iter().position(|i| i.signo == s) {
                Some(k) => t.sigq.remove(k),
                None => SigInfo { signo: s, code: si::SI_KERNEL, fields: SigFields::None },
            };
            if !t.sigq.iter().any(|i| i.signo == s) {
                t.pending &= !(1 << (s - 1));
            }
            if self.timer_dequeued(tid, &mut info) {
                return Some(info);
            }
        }
    }

    /// Applies the restart rules to the call `tid` returns from, if any (handler flags
    /// when a handler is about to run); the call counts as handled afterwards.
    fn restart_syscall(&mut self, tid: u32, handler: Option<u64>) {
        let Some(t) = self.k.tasks.get_mut(&tid) else { return };
        let Some(nr) = t.syscall_nr.take() else { return };
        match restart_action(t.cpu.gpr[0] as i64, handler) {
            Restart::Keep => {}
            Restart::Eintr => t.cpu.gpr[0] = (-crate::fs::errno::EINTR) as u64,
            Restart::Again => {
                t.cpu.gpr[0] = nr;
                t.cpu.rip -= 2;
            }
            Restart::ViaRestartSyscall => {
                t.cpu.gpr[0] = NR_RESTART_SYSCALL;
                t.cpu.rip -= 2;
            }
        }
    }

    /// The way back to user mode with no signal to deliver: an interrupted call
    /// restarts, the mask a sigsuspend-like call replaced comes back
    /// (restore_saved_sigmask), and the task is no longer returning from a call.
    pub(crate) fn no_signal_return(&mut self, tid: u32) {
        self.restart_syscall(tid, None);
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            if let Some(m) = t.saved_sigmask.take() {
                t.sigmask = m;
            }
        }
    }

    /// Delivers unblocked pending signals of the task running on core `c`
    /// (arch_do_signal_or_restart, once per signal as exit_to_user_mode_loop does).
    pub(crate) fn deliver_pending(&mut self, c: usize, tid: u32) {
        loop {
            let Some(mask) = self.k.tasks.get(&tid).map(|t| t.sigmask) else { return };
            let Some(info) = self.dequeue_signal(tid, !mask) else {
                self.no_signal_return(tid);
                return;
            };
            let s = info.signo;
            let act = self
                .k
                .tasks
                .get(&tid)
                .and_then(|t| self.k.sighands.get(&t.sighand))
                .map(|h| h[s as usize])
                .unwrap_or_default();
            match act.handler {
                1 => continue,
                0 => {
                    if default_ignored(s) {
                        continue;
                    }
                    self.kill_process(c, tid, s, None);
                    return;
                }
                _ => {
                    self.restart_syscall(tid, Some(act.flags));
                    // handle_signal: rseq_signal_deliver before the frame is built, so an
                    // interrupted critical section's frame resumes at its abort handler.
                    if !self.rseq_signal_deliver(c, tid) {
                        return;
                    }
                    if !self.deliver_signal(c, tid, &info) {
                        return;
                    }
                }
            }
        }
    }

    /// rt_sigsuspend(2) (kernel/signal.c `sigsuspend`): sleeps with the given mask until
    /// a signal it does not block is pending, then returns -ERESTARTNOHAND (EINTR once
    /// a handler runs); the handler's frame saves the old mask, which its return
    /// restores (`set_restore_sigmask`).
    pub(crate) fn sys_rt_sigsuspend(&mut self, c: usize, tid: u32, uset: u64) -> Sys {
        let mut b = [0u8; 8];
        if self.read_user(c, tid, uset, &mut b).is_err() {
            return Sys::Ret(-crate::fs::errno::EFAULT);
        }
        let new = u64::from_le_bytes(b) & !UNBLOCKABLE;
        let Some(t) = self.k.tasks.get_mut(&tid) else { return Sys::Done };
        t.saved_sigmask = Some(t.sigmask);
        t.sigmask = new;
        if t.pending & !new != 0 {
            return Sys::Ret(-restart::ERESTARTNOHAND);
        }
        Sys::Block(Wait::Signal)
    }

    /// rt_sigpending(2): the pending signals the task blocks, `size` bytes of them.
    pub(crate) fn sys_rt_sigpending(&mut self, c: usize, tid: u32, uset: u64, size: u64) -> i64 {
        let set = self.k.tasks.get(&tid).map_or(0, |t| t.pending & t.sigmask);
        if self.write_user(c, tid, uset, &set.to_le_bytes()[..size as usize]).is_err() {
            return -crate::fs::errno::EFAULT;
        }
        0
    }

    /// rt_sigtimedwait(2) (kernel/signal.c `do_sigtimedwait`): dequeues a pending signal
    /// of the set, or sleeps with the set unblocked until one arrives, the timeout
    /// expires (EAGAIN) or another unblocked signal interrupts (EINTR).
    pub(crate) fn sys_rt_sigtimedwait(
        &mut self,
        c: usize,
        tid: u32,
        uset: u64,
        uinfo: u64,
        uts: u64,
    ) -> Sys {
        use crate::fs::errno::{EFAULT, EINVAL};
        let mut b = [0u8; 8];
        if self.read_user(c, tid, uset, &mut b).is_err() {
            return Sys::Ret(-EFAULT);
        }
        let set = u64::from_le_bytes(b) & !UNBLOCKABLE;
        let mut timeout = None;
        if uts != 0 {
            let mut ts = [0u8; 16];
            if self.read_user(c, tid, uts, &mut ts).is_err() {
                return Sys::Ret(-EFAULT);
            }
            let (s, ns) = (le64(&ts[..8]) as i64, le64(&ts[8..]) as i64);
            if s < 0 || !(0..1_000_000_000).contains(&ns) {
                return Sys::Ret(-EINVAL);
            }
            timeout = Some((s as u64).saturating_mul(1_000_000_000).saturating_add(ns as u64));
        }
        let op = SigWaitOp {
            set,
            uinfo,
            until_ns: timeout.map(|d| self.now_ns(tid).saturating_add(d)),
            real_blocked: self.k.tasks.get(&tid).map_or(0, |t| t.sigmask),
        };
        if let Some(info) = self.dequeue_signal(tid, set) {
            return Sys::Ret(self.sigwait_result(c, tid, uinfo, &info));
        }
        if timeout == Some(0) {
            return Sys::Ret(-crate::fs::errno::EAGAIN);
        }
        let Some(t) = self.k.tasks.get_mut(&tid) else { return Sys::Done };
        t.sigmask &= !set;
        if t.pending & !t.sigmask != 0 {
            // A signal it now lets through is already pending: no sleep.
            return Sys::Path(KPath::SigWait(Box::new(op)));
        }
        let w = Wait::Sigtimedwait { until_ns: op.until_ns, real_blocked: op.real_blocked };
        t.kpath = Some(KPath::SigWait(Box::new(op)));
        Sys::Block(w)
    }

    /// rt_sigtimedwait after its sleep: the old mask comes back, then a signal of the
    /// set is dequeued, or the timeout has expired, or another signal interrupted.
    pub(crate) fn sigwait_step(&mut self, c: usize, tid: u32, op: SigWaitOp) -> Next {
        use crate::fs::errno::{EAGAIN, EINTR};
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.sigmask = op.real_blocked;
        }
        let r = if let Some(info) = self.dequeue_signal(tid, op.set) {
            self.sigwait_result(c, tid, op.uinfo, &info)
        } else if op.until_ns.is_some_and(|u| self.fp_of_ns(u) <= self.now(c)) {
            -EAGAIN
        } else {
            -EINTR
        };
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.cpu.gpr[0] = r as u64;
        }
        self.user_or_gone(c, tid)
    }

    /// The signal number, once its siginfo is written (the signal is consumed even if
    /// that faults).
    fn sigwait_result(&mut self, c: usize, tid: u32, uinfo: u64, info: &SigInfo) -> i64 {
        if uinfo != 0 && self.write_user(c, tid, uinfo, &info.to_bytes()).is_err() {
            return -crate::fs::errno::EFAULT;
        }
        i64::from(info.signo)
    }

    /// Sets up a handler frame for signal `s` on the task's stack; false if the frame
    /// cannot be written (the process is then killed with SIGSEGV, as Linux does).
    pub(crate) fn deliver_signal(&mut self, c: usize, tid: u32, info: &SigInfo) -> bool {
        let s = info.signo;
        let Some(t) = self.k.tasks.get(&tid) else { return false };
        let Some(h) = self.k.sighands.get(&t.sighand) else { return false };
        let act: SigAction = h[s as usize];
        let cpu = t.cpu.clone();
        let (ss_sp, ss_flags, ss_size) = t.altstack;
        let mut sp = cpu.gpr[4];
        let on_alt = ss_flags & 2 == 0 && sp > ss_sp && sp <= ss_sp + ss_size;
        if act.flags & SA_ONSTACK != 0 && ss_flags & 2 == 0 && !on_alt && ss_size > 0 {
            sp = ss_sp + ss_size;
        } else {
            sp -= 128; // red zone
        }
        let fp_addr = (sp - 512) & !63;
        let frame = ((fp_addr - (8 + UC_SIZE + 128)) & !15) - 8;
        // ucontext
        let mut uc = vec![0u8; UC_SIZE as usize];
        uc[16..24].copy_from_slice(&ss_sp.to_le_bytes());
        uc[24..28].copy_from_slice(&(if on_alt { 1u32 } else { ss_flags }).to_le_bytes());
        uc[32..40].copy_from_slice(&ss_size.to_le_bytes());
        let m = MCTX as usize;
        for (k, r) in SIGCTX_REGS.iter().enumerate() {
            uc[m + 8 * k..m + 8 * k + 8].copy_from_slice(&cpu.gpr[*r].to_le_bytes());
        }
        uc[m + 128..m + 136].copy_from_slice(&cpu.rip.to_le_bytes());
        uc[m + 136..m + 144].copy_from_slice(&cpu.rflags().to_le_bytes());
        // cs, ss
        uc[m + 144..m + 146].copy_from_slice(&0x33u16.to_le_bytes());
        uc[m + 150..m + 152].copy_from_slice(&0x2bu16.to_le_bytes());
        // setup_sigcontext: the thread's last trap (err, trapno, cr2), fpstate, oldmask.
        uc[m + 152..m + 160].copy_from_slice(&t.trap.err.to_le_bytes());
        uc[m + 160..m + 168].copy_from_slice(&t.trap.trapno.to_le_bytes());
        uc[m + 176..m + 184].copy_from_slice(&t.trap.cr2.to_le_bytes());
        uc[m + 184..m + 192].copy_from_slice(&fp_addr.to_le_bytes());
        // The mask the handler's return restores: the one a sigsuspend- or ppoll-like
        // call replaced for its wait, if the signal interrupted such a wait
        // (sigmask_to_save).
        let saved = t.saved_sigmask.unwrap_or(t.sigmask);
        uc[m + 168..m + 176].copy_from_slice(&saved.to_le_bytes());
        uc[m + 256..m + 264].copy_from_slice(&saved.to_le_bytes());
        let info = info.to_bytes();
        let pretcode = if act.flags & SA_RESTORER != 0 { act.restorer } else { 0 };
        let mut head = pretcode.to_le_bytes().to_vec();
        head.extend_from_slice(&uc);
        head.extend_from_slice(&info);
        let fx = cpu.fxsave_image();
        let ok = self.write_user(c, tid, frame, &head).is_ok()
            && self.write_user(c, tid, fp_addr, &fx).is_ok();
        if !ok {
            self.kill_process(
                c,
                tid,
                sig::SIGSEGV,
                Some(format!("cannot build the frame for signal {s}")),
            );
            return false;
        }
        let Some(t) = self.k.tasks.get_mut(&tid) else { return false };
        t.cpu.gpr[4] = frame;
        t.cpu.gpr[7] = u64::from(s);
        t.cpu.gpr[6] = frame + 8 + UC_SIZE;
        t.cpu.gpr[2] = frame + 8;
        t.cpu.gpr[0] = 0;
        t.cpu.rip = act.handler;
        t.cpu.df = false;
        t.saved_sigmask = None;
        t.sigmask |= act.mask;
        if act.flags & SA_NODEFER == 0 {
            t.sigmask |= 1 << (s - 1);
        }
        if act.flags & SA_RESETHAND != 0 {
            let sh = t.sighand;
            if let Some(h) = self.k.sighands.get_mut(&sh) {
                h[s as usize] = SigAction::default();
            }
        }
        self.probes.kstats.signals_delivered += 1;
        true
    }

    /// rt_sigreturn(2): restores the context saved by [`Machine::deliver_signal`].
    pub(crate) fn sys_rt_sigreturn(&mut self, c: usize, tid: u32) -> Sys {
        let Some(sp) = self.k.tasks.get(&tid).map(|t| t.cpu.gpr[4]) else { return Sys::Done };
        let frame = sp - 8;
        let mut uc = vec![0u8; UC_SIZE as usize];
        if self.read_user(c, tid, frame + 8, &mut uc).is_err() {
            self.kill_process(c, tid, sig::SIGSEGV, Some("bad signal frame".into()));
            return Sys::Done;
        }
        let m = MCTX as usize;
        let fp_addr = le64(&uc[m + 184..m + 192]);
        let mut fx = [0u8; 512];
        if fp_addr != 0 && self.read_user(c, tid, fp_addr, &mut fx).is_err() {
            self.kill_process(c, tid, sig::SIGSEGV, Some("bad signal frame".into()));
            return Sys::Done;
        }
        let Some(t) = self.k.tasks.get_mut(&tid) else { return Sys::Done };
        // restore_sigcontext: "disable syscall checks" (orig_ax = -1).
        t.syscall_nr = None;
        for (k, r) in SIGCTX_REGS.iter().enumerate() {
            t.cpu.gpr[*r] = le64(&uc[m + 8 * k..m + 8 * k + 8]);
        }
        t.cpu.rip = le64(&uc[m + 128..m + 136]);
        t.cpu.set_rflags(le64(&uc[m + 136..m + 144]), emu_core::USER_RFLAGS_WRITABLE);
        if fp_addr != 0 {
            let _ = t.cpu.fxrstor_image(&fx);
        }
        t.sigmask =
            le64(&uc[m + 256..m + 264]) & !((1 << (sig::SIGKILL - 1)) | (1 << (sig::SIGSTOP - 1)));
        // Signals the restored mask unblocks are delivered on the way out.
        Sys::Done
    }
}

#[cfg(test)]
mod tests {
    use super::restart::*;
    use super::*;

    #[test]
    fn restart_follows_handle_signal() {
        let with = Some(0);
        let restart = Some(SA_RESTART);
        // With a handler: only ERESTARTSYS with SA_RESTART and ERESTARTNOINTR restart.
        assert_eq!(restart_action(-ERESTARTSYS, with), Restart::Eintr);
        assert_eq!(restart_action(-ERESTARTSYS, restart), Restart::Again);
        assert_eq!(restart_action(-ERESTARTNOINTR, with), Restart::Again);
        assert_eq!(restart_action(-ERESTARTNOHAND, restart), Restart::Eintr);
        assert_eq!(restart_action(-ERESTART_RESTARTBLOCK, restart), Restart::Eintr);
        // Without one, everything restarts; a restart block through restart_syscall.
        assert_eq!(restart_action(-ERESTARTSYS, None), Restart::Again);
        assert_eq!(restart_action(-ERESTARTNOHAND, None), Restart::Again);
        assert_eq!(restart_action(-ERESTART_RESTARTBLOCK, None), Restart::ViaRestartSyscall);
        // Ordinary results stay.
        assert_eq!(restart_action(-4, with), Restart::Keep);
        assert_eq!(restart_action(0, None), Restart::Keep);
        assert_eq!(restart_action(-515, with), Restart::Keep);
    }

    #[test]
    fn synchronous_signals_come_first() {
        assert_eq!(next_signal(0), None);
        let bit = |s: u32| 1u64 << (s - 1);
        assert_eq!(next_signal(bit(2) | bit(10)), Some(2));
        assert_eq!(next_signal(bit(2) | bit(sig::SIGSEGV)), Some(sig::SIGSEGV));
        assert_eq!(next_signal(bit(sig::SIGFPE) | bit(sig::SIGILL)), Some(sig::SIGILL));
        assert_eq!(next_signal(bit(40) | bit(34)), Some(34));
    }

    #[test]
    fn siginfo_layouts() {
        let i = SigInfo {
            signo: 17,
            code: si::CLD_EXITED,
            fields: SigFields::Chld { pid: 5, uid: 7, status: 3 },
        };
        let b = i.to_bytes();
        assert_eq!(&b[0..4], &17u32.to_le_bytes());
        assert_eq!(&b[8..12], &1i32.to_le_bytes());
        assert_eq!(&b[16..28], &[5, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 0]);
        let t = SigInfo {
            signo: 34,
            code: si::SI_TIMER,
            fields: SigFields::Timer { id: 2, overrun: 4, value: 9, seq: 1 },
        };
        let b = t.to_bytes();
        assert_eq!(&b[8..12], &(-2i32).to_le_bytes());
        assert_eq!(&b[16..32], &[2, 0, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
    }
}
