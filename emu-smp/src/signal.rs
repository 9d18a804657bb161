//! Signal delivery (arch/x86/kernel/signal.c and signal_64.c): builds the x86-64
//! `rt_sigframe` (return address, `ucontext` with the saved registers and signal mask,
//! `siginfo`, and the FXSAVE image) on the user stack, and restores it in rt_sigreturn.

use crate::machine::{sig, Machine};
use crate::syscall::{le64, Sys};
use crate::task::SigAction;

const SA_SIGINFO: u64 = 4;
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

impl Machine {
    /// Delivers unblocked pending signals of the task running on core `c`.
    pub(crate) fn deliver_pending(&mut self, c: usize, tid: u32) {
        loop {
            let Some(t) = self.k.tasks.get(&tid) else { return };
            let ready = t.pending & !t.sigmask;
            if ready == 0 {
                // No handler runs on the way out: the mask that ppoll, pselect6 or
                // epoll_pwait replaced comes back (restore_saved_sigmask).
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    if let Some(m) = t.saved_sigmask.take() {
                        t.sigmask = m;
                    }
                }
                return;
            }
            let s = ready.trailing_zeros() + 1;
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.pending &= !(1 << (s - 1));
            }
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
                    if matches!(s, sig::SIGCHLD | sig::SIGURG | sig::SIGWINCH | sig::SIGCONT) {
                        continue;
                    }
                    self.kill_process(c, tid, s, None);
                    return;
                }
                _ => {
                    if !self.deliver_signal(c, tid, s) {
                        return;
                    }
                }
            }
        }
    }

    /// Sets up a handler frame for signal `s` on the task's stack; false if the frame
    /// cannot be written (the process is then killed with SIGSEGV, as Linux does).
    pub(crate) fn deliver_signal(&mut self, c: usize, tid: u32, s: u32) -> bool {
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
        uc[m + 144..m + 146].copy_from_slice(&0x33u16.to_le_bytes()); // cs
        uc[m + 150..m + 152].copy_from_slice(&0x2bu16.to_le_bytes()); // ss
        uc[m + 184..m + 192].copy_from_slice(&fp_addr.to_le_bytes()); // fpstate
                                                                      // The mask the handler's return restores: the one a ppoll-like call replaced
                                                                      // for its wait, if the signal interrupted such a wait (sigmask_to_save).
        let saved = t.saved_sigmask.unwrap_or(t.sigmask);
        uc[m + 256..m + 264].copy_from_slice(&saved.to_le_bytes());
        // siginfo
        let mut info = vec![0u8; 128];
        info[0..4].copy_from_slice(&s.to_le_bytes());
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
        let _ = SA_SIGINFO;
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
        self.deliver_pending(c, tid);
        Sys::Done
    }
}
