//! Process and thread lifecycle (kernel/fork.c, kernel/exit.c) and futexes
//! (kernel/futex/): clone, clone3, fork, exit, exit_group, wait4, and FUTEX_WAIT/WAKE,
//! REQUEUE/CMP_REQUEUE, WAKE_OP and the bitset variants.

use crate::fs::errno::*;
use crate::machine::{sig, KState, Machine, Outcome, INIT_MM};
use crate::mm::Gather;
use crate::path::{ExitStep, KPath, Next};
use crate::syscall::{le64, Sys, EPOCH_S};
use crate::task::{ExitCause, State, Task, Wait};
use crate::task::{SigFields, SigInfo};
use crate::tlbflush::{Reason, FLUSH_ALL};
use crate::walker::{GupCont, GupFlags};

/// clone(2) flags.
#[allow(missing_docs)]
pub mod cl {
    pub const VM: u64 = 0x100;
    pub const FS: u64 = 0x200;
    pub const FILES: u64 = 0x400;
    pub const SIGHAND: u64 = 0x800;
    pub const VFORK: u64 = 0x4000;
    pub const PARENT: u64 = 0x8000;
    pub const THREAD: u64 = 0x10000;
    pub const SETTLS: u64 = 0x80000;
    pub const PARENT_SETTID: u64 = 0x100000;
    pub const CHILD_CLEARTID: u64 = 0x200000;
    pub const CHILD_SETTID: u64 = 0x1000000;
}

impl Machine {
    /// clone(2): x86-64 argument order (flags, stack, parent_tid, child_tid, tls).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sys_clone(
        &mut self,
        c: usize,
        tid: u32,
        flags: u64,
        stack: u64,
        ptid: u64,
        ctid: u64,
        tls: u64,
        _stack_size: Option<u64>,
    ) -> Sys {
        if flags & cl::THREAD != 0 && flags & cl::SIGHAND == 0
            || flags & cl::SIGHAND != 0 && flags & cl::VM == 0
        {
            return Sys::Ret(-EINVAL);
        }
        let Some(parent) = self.k.tasks.get(&tid).cloned() else { return Sys::Ret(-ESRCH) };
        let new = self.k.next_id;
        self.k.next_id += 1;
        // Address space.
        let mm = if flags & cl::VM != 0 {
            parent.mm
        } else {
            let id = new;
            let ctx_id = self.k.next_ctx_id;
            self.k.next_ctx_id += 1;
            let Some(pm) = self.k.mms.get_mut(&parent.mm) else { return Sys::Ret(-ENOMEM) };
            let mut child = match pm.fork(&mut self.hw.mem.phys, ctx_id) {
                Ok(m) => m,
                Err(_) => return Sys::Ret(-ENOMEM),
            };
            // init_new_context: the first cpumask trim is due a second (HZ jiffies) on.
            child.ctx.next_trim_jiffies = self.jiffies(c) + u64::from(self.profile.kernel.hz);
            self.k.mms.insert(id, child);
            self.k.kdata.line(&mut self.hw.mem.phys, crate::kdata::KObj::MmStruct(id));
            // dup_mmap write-protected the parent's private pages: flush its TLBs.
            self.flush_tlb_mm(c, parent.mm, false, crate::tlbflush::Reason::Fork);
            self.probes.kstats.forks += 1;
            id
        };
        // Descriptor table.
        let files = if flags & cl::FILES != 0 {
            parent.files
        } else {
            let tab = self.k.fdtables.get(&parent.files).cloned().unwrap_or_default();
            for (id, _) in tab.fds.values() {
                self.k.files.get(*id);
            }
            self.k.fdtables.insert(new, tab);
            new
        };
        // copy_fs: the working directory, shared or copied.
        let fs = if flags & cl::FS != 0 {
            parent.fs
        } else {
            let cwd = self.k.cwds.get(&parent.fs).cloned().unwrap_or_else(|| "/".into());
            self.k.cwds.insert(new, cwd);
            new
        };
        let sighand = if flags & cl::SIGHAND != 0 {
            parent.sighand
        } else {
            let h = self.k.sighands.get(&parent.sighand).cloned().unwrap_or_default();
            self.k.sighands.insert(new, h);
            new
        };
        let mut cpu = parent.cpu.clone();
        cpu.gpr[0] = 0;
        if stack != 0 {
            cpu.gpr[4] = stack;
        }
        if flags & cl::SETTLS != 0 {
            cpu.seg_base[1] = tls;
        }
        let (tgid, ppid) = if flags & cl::THREAD != 0 {
            (parent.tgid, parent.ppid)
        } else if flags & cl::PARENT != 0 {
            (new, parent.ppid)
        } else {
            (new, parent.tgid)
        };
        let exit_signal = if flags & cl::THREAD != 0 { 0 } else { (flags & 0xff) as u32 };
        let child = Task {
            tid: new,
            tgid,
            ppid,
            cpu,
            mm,
            files,
            fs,
            sighand,
            state: State::Runnable,
            clear_child_tid: if flags & cl::CHILD_CLEARTID != 0 { ctid } else { 0 },
            robust_list: 0,
            saved_sigmask: None,
            sigmask: parent.sigmask,
            pending: 0,
            sigq: Vec::new(),
            syscall_nr: None,
            trap: parent.trap,
            exit_status: 0,
            exit_signal,
            // rseq_fork (kernel/rseq.c): a child sharing the address space starts
            // unregistered; a forked process keeps the registration (its copy of the
            // area is at the same address) and has its ids written at its first return
            // to user mode.
            rseq: if flags & cl::VM != 0 { None } else { parent.rseq },
            rseq_notify: flags & cl::VM == 0 && parent.rseq.is_some(),
            rseq_event: false,
            mm_cid: Default::default(),
            cid_mm: 0,
            affinity: parent.affinity.clone(),
            last_cpu: c,
            comm: parent.comm.clone(),
            altstack: if flags & cl::VM != 0 && flags & cl::VFORK == 0 {
                (0, 2, 0)
            } else {
                parent.altstack
            },
            kpath: None,
            exit: None,
            se: crate::sched::Entity::default(),
            nice: parent.nice,
        };
        let at = self.now(c);
        self.k.tasks.insert(new, child);
        if flags & cl::VM != 0 {
            // copy_mm with CLONE_VM: mmget.
            self.mm_users_rmw(c, mm, true);
        }
        if flags & cl::THREAD == 0 {
            self.inherit_rlimits(tid, new);
        }
        if flags & cl::PARENT_SETTID != 0 {
            // kernel_clone's put_user: a fault is ignored, the child runs.
            let _ = self.write_user(c, tid, ptid, &new.to_le_bytes());
        }
        if flags & cl::CHILD_SETTID != 0 {
            // Written in the child's address space.
            self.poke_mm(mm, ctid, &new.to_le_bytes());
        }
        self.probes.kstats.clones += 1;
        // sched_post_fork -> sched_mm_cid_fork (under the mm's mm_cid mutex); a mode
        // change leaves a fixup walk, after which the child becomes runnable.
        let walk = self.mm_cid_fork(c, (flags & cl::VM != 0).then_some(tid), new);
        self.charge(c, crate::machine::fp(self.profile.kernel.wakeup_cycles));
        if let Some(mut w) = walk {
            w.vfork = flags & cl::VFORK != 0;
            return Sys::Path(KPath::CidWalk(Box::new(w)));
        }
        self.enqueue(new, at, c);
        if flags & cl::VFORK != 0 {
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                t.cpu.gpr[0] = u64::from(new);
            }
            return Sys::Block(Wait::Vfork(new));
        }
        Sys::Ret(i64::from(new))
    }

    /// clone3(2): struct clone_args.
    pub(crate) fn sys_clone3(&mut self, c: usize, tid: u32, args: u64, size: u64) -> Sys {
        if !(64..=4096).contains(&size) {
            return Sys::Ret(-EINVAL);
        }
        let mut b = vec![0u8; size as usize];
        if self.read_user(c, tid, args, &mut b).is_err() {
            return Sys::Ret(-EFAULT);
        }
        let w = |i: usize| le64(&b[8 * i..8 * i + 8]);
        let (flags, _pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls) =
            (w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7));
        if flags & 0xff != 0 || exit_signal > 64 {
            return Sys::Ret(-EINVAL);
        }
        let top = if stack != 0 { stack + stack_size } else { 0 };
        self.sys_clone(
            c,
            tid,
            flags | exit_signal,
            top,
            parent_tid,
            child_tid,
            tls,
            Some(stack_size),
        )
    }

    /// Writes bytes into an address space other than the running one.
    fn poke_mm(&mut self, mm: u32, va: u64, bytes: &[u8]) {
        if let Some(m) = self.k.mms.get_mut(&mm) {
            let _ = m.poke(&mut self.hw.mem.phys, va, bytes);
        }
    }

    /// exit(2): the thread exits when the system call returns.
    pub(crate) fn exit_thread(&mut self, tid: u32, code: i32) {
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.exit.get_or_insert(ExitCause { status: code << 8, signaled: false, group: false });
        }
    }

    /// mm_release: CLONE_CHILD_CLEARTID handling.
    pub(crate) fn release_thread(&mut self, c: usize, tid: u32) {
        let Some(t) = self.k.tasks.get(&tid) else { return };
        let (ctid, mm) = (t.clear_child_tid, t.mm);
        if ctid != 0 {
            self.poke_mm(mm, ctid, &0u32.to_le_bytes());
            let at = self.now(c);
            if let Some((kmm, key)) = self.futex_key(tid, ctid, false) {
                self.futex_wake_key(kmm, key, 1, u32::MAX, at);
            }
        }
    }

    /// Takes a task off whatever core runs it (that core schedules the next task) and
    /// out of every runqueue.
    pub(crate) fn unschedule(&mut self, tid: u32) {
        if let Some(k) = self.k.cpus.iter().position(|core| core.current == Some(tid)) {
            if let Some(t) = self.k.tasks.get_mut(&tid) {
                if matches!(t.state, State::Running(_)) {
                    t.state = State::Zombie;
                }
            }
            self.deschedule(k);
        }
        for k in 0..self.hw.cpus.len() {
            self.k.cpus[k].runq.retain(|t| *t != tid);
            self.touch(k);
            self.settle_idle(k);
        }
    }

    /// The exit_group system call, do_group_exit: a group exit already under way
    /// (SIGNAL_GROUP_EXIT: the caller was zapped) makes the caller exit with the group's
    /// status; an execve of another thread waiting in de_thread (`group_exec_task`)
    /// makes the caller exit alone, with status 0, and the exec goes on; otherwise the
    /// whole group exits with `status`.
    pub(crate) fn sys_exit_group(&mut self, c: usize, tid: u32, status: i32) {
        let Some(tgid) = self.k.tasks.get(&tid).map(|t| t.tgid) else { return };
        let exec = self
            .k
            .tasks
            .values()
            .any(|x| x.tgid == tgid && x.tid != tid && x.state == State::Blocked(Wait::Exec));
        if exec {
            self.exit_thread(tid, 0);
            return;
        }
        self.exit_group(c, tid, status, false);
    }

    /// exit_group(2), or death by signal (`status` is then the signal number): every
    /// thread of the group exits at its next return to user mode (zap_other_threads).
    /// Threads asleep interruptibly are woken for it; threads running user code on other
    /// CPUs get a reschedule IPI; threads in the kernel finish their path first.
    /// A thread already leaving with its group (zapped by a group exit or an execve)
    /// leaves that exit as it is (SIGNAL_GROUP_EXIT: the group's status stands).
    pub(crate) fn exit_group(&mut self, c: usize, tid: u32, status: i32, signaled: bool) {
        let Some(t) = self.k.tasks.get(&tid) else { return };
        if t.exit.is_some_and(|e| e.group) {
            return;
        }
        let tgid = t.tgid;
        let cause = ExitCause { status, signaled, group: true };
        let members: Vec<u32> = self
            .k
            .tasks
            .values()
            .filter(|t| t.tgid == tgid && t.state != State::Zombie && t.exit.is_none())
            .map(|t| t.tid)
            .collect();
        self.zap_threads(c, &members, cause);
    }

    /// zap_other_threads for `members`: each that is not already exiting exits with
    /// `cause` at its next return to user mode; sleepers are woken for it (interruptible
    /// ones), threads running user code on other CPUs get a reschedule IPI, threads in the
    /// kernel finish their path first.
    pub(crate) fn zap_threads(&mut self, c: usize, members: &[u32], cause: ExitCause) {
        let at = self.now(c);
        for &m in members {
            let Some(t) = self.k.tasks.get_mut(&m) else { continue };
            if t.exit.is_none() {
                t.exit = Some(cause);
            }
            match t.state.clone() {
                State::Blocked(w) if w.interruptible() => self.wake(m, -EINTR, at),
                State::Running(k) if k != c && self.k.cpus[k].kstate == KState::User => {
                    self.send_reschedule(c, k);
                }
                _ => {}
            }
        }
    }

    /// One step of do_exit (kernel/exit.c) for task `tid` on core `c`.
    pub(crate) fn do_exit(&mut self, c: usize, tid: u32, step: ExitStep) -> Next {
        match step {
            ExitStep::Start => {
                // sched_mm_cid_exit under mm_cid.mutex (waited for while another walk
                // holds it); a switch back walks the CPUs first (and comes back here,
                // the task no longer a user).
                let wait = self.cid_mutex_wait(c, tid);
                if !matches!(wait, crate::cidsched::MutexWait::Free) {
                    return self.cid_mutex_park(tid, wait, KPath::Exit(ExitStep::Start));
                }
                if let Some(w) = self.mm_cid_exit(c, tid) {
                    return Next::Then(KPath::CidWalk(Box::new(w)));
                }
                self.release_thread(c, tid);
                // exit_mm: the task drops its mm and runs on as a kernel thread borrowing
                // it (a lazy reference under --lazy-mm refcount); mmput then drops its
                // user, and the last user tears the address space down (exit_mmap),
                // flushing every CPU of its mask, lazy ones included, since page tables
                // are freed.
                let Some(mm) =
                    self.k.tasks.get_mut(&tid).map(|t| std::mem::replace(&mut t.mm, INIT_MM))
                else {
                    return Next::Gone;
                };
                self.exit_mm(c, mm);
                if mm == INIT_MM || !self.k.mms.contains_key(&mm) {
                    return Next::Then(KPath::Exit(ExitStep::Finish));
                }
                if !self.mm_users_rmw(c, mm, false) {
                    return Next::Then(KPath::Exit(ExitStep::Finish));
                }
                let mut g = Gather::default();
                if let Some(m) = self.k.mms.get_mut(&mm) {
                    m.teardown(&mut self.hw.mem.phys, &mut g);
                }
                self.note_exit_mmap(c, mm);
                let free = (g.pages, g.tables);
                self.flush_and_free(c, mm, 0, FLUSH_ALL, 12, true, Reason::Exit, free);
                Next::Then(KPath::Exit(ExitStep::Mmdrop { mm }))
            }
            s @ (ExitStep::Mmdrop { .. }
            | ExitStep::HazardScan { .. }
            | ExitStep::FreeMm { .. }) => {
                Next::Then(KPath::Exit(self.mmput_step(c, s).unwrap_or(ExitStep::Finish)))
            }
            ExitStep::Finish => {
                self.task_dead(c, tid);
                Next::Gone
            }
        }
    }

    /// One step of mmput's end after exit_mmap (do_exit's, and execve's for the old mm):
    /// `Mmdrop`, `HazardScan` or `FreeMm`. Returns the next such step, or None when the
    /// mm reference is dropped (and the mm freed if it was the last).
    pub(crate) fn mmput_step(&mut self, c: usize, step: ExitStep) -> Option<ExitStep> {
        match step {
            ExitStep::Mmdrop { mm } => {
                // mmput's mmdrop: the users' reference. The last one runs __mmdrop:
                // cleanup_lazy_tlbs (the shootdown policies' IPIs, waited for), then the
                // frees.
                if !self.mmdrop(c, mm) {
                    return None;
                }
                let since_fp = self.now(c);
                if self.cleanup_lazy_tlbs(c, mm) {
                    return Some(ExitStep::HazardScan { mm, since_fp, from: 0, check: false });
                }
                Some(ExitStep::FreeMm { mm, since_fp })
            }
            ExitStep::HazardScan { mm, since_fp, from, check } => {
                match self.hazard_scan(c, mm, from as usize, check) {
                    Some((from, check)) => {
                        let from = from as u32;
                        Some(ExitStep::HazardScan { mm, since_fp, from, check })
                    }
                    None => Some(ExitStep::FreeMm { mm, since_fp }),
                }
            }
            ExitStep::FreeMm { mm, since_fp } => {
                let cleanup = self.now(c).saturating_sub(since_fp) >> 8;
                self.probes.lazy_mm.cleanup_cycles += cleanup;
                self.free_mm_struct(c, mm);
                None
            }
            ExitStep::Start | ExitStep::Finish => None,
        }
    }

    /// The end of do_exit: the task releases its files, becomes a zombie, and leaves its
    /// CPU; the last thread of a group makes the group's exit visible to its parent.
    fn task_dead(&mut self, c: usize, tid: u32) {
        let Some(t) = self.k.tasks.get(&tid) else { return };
        let (tgid, files, fs) = (t.tgid, t.files, t.fs);
        let cause = t.exit.unwrap_or(ExitCause { status: 0, signaled: false, group: false });
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.state = State::Zombie;
            t.exit_status = cause.status;
        }
        // exit_fs: the last user of the working directory drops it.
        if !self.k.tasks.values().any(|t| t.fs == fs && t.tid != tid && t.state != State::Zombie) {
            self.k.cwds.remove(&fs);
        }
        if !self
            .k
            .tasks
            .values()
            .any(|t| t.files == files && t.tid != tid && t.state != State::Zombie)
        {
            if let Some(tab) = self.k.fdtables.remove(&files) {
                for (id, _) in tab.fds.values() {
                    self.k.files.close_fd(files, *id);
                }
                self.wake_io(c);
            }
        }
        let at = self.now(c);
        // The caller leaves its CPU.
        self.unschedule(tid);
        let group_alive = self.k.tasks.values().any(|t| t.tgid == tgid && t.state != State::Zombie);
        if group_alive {
            // A thread other than the leader disappears; the leader stays a zombie until
            // the group is gone.
            if tid != tgid {
                self.k.tasks.remove(&tid);
            }
            // de_thread's wait: an execve goes on once it is the group's last thread.
            self.exec_dethread_wake(tgid, at);
            return;
        }
        // The whole group is gone.
        let threads: Vec<u32> = self
            .k
            .tasks
            .values()
            .filter(|t| t.tgid == tgid && t.tid != tgid)
            .map(|t| t.tid)
            .collect();
        for m in threads {
            self.k.tasks.remove(&m);
        }
        self.exit_itimers(tgid);
        let Some(leader) = self.k.tasks.get_mut(&tgid) else { return };
        leader.exit_status = cause.status;
        let (ppid, exit_signal) = (leader.ppid, leader.exit_signal);
        // forget_original_parent: the children go to the reaper, which is outside the
        // guest (the host's init: emu's first process is not a namespace's init, whose
        // death would kill them); it reaps at once those that are already zombies.
        let orphans: Vec<u32> =
            self.k.tasks.values().filter(|t| t.ppid == tgid).map(|t| t.tid).collect();
        for o in orphans {
            let Some(t) = self.k.tasks.get_mut(&o) else { continue };
            t.ppid = 0;
            let dead_group = t.tid == t.tgid
                && t.state == State::Zombie
                && !self.k.tasks.values().any(|x| x.tgid == o && x.tid != o);
            if dead_group {
                self.reap(o);
            }
        }
        if tgid == self.k.init_pid && self.k.init_exit.is_none() {
            self.k.init_exit = Some(if cause.signaled {
                Outcome::Signaled { sig: cause.status as u32, report: None }
            } else {
                Outcome::Exited((cause.status >> 8) & 0xff)
            });
        }
        // A vfork parent resumes.
        let vforkers: Vec<u32> = self
            .k
            .tasks
            .values()
            .filter(|t| t.state == State::Blocked(Wait::Vfork(tgid)))
            .map(|t| t.tid)
            .collect();
        for v in vforkers {
            self.wake(v, i64::from(tgid), at);
        }
        self.notify_parent(ppid, at);
        // do_notify_parent: the exit signal (SIGCHLD after fork) goes to the parent,
        // after a waiting wait4 has been completed (it returns the child, not EINTR).
        if exit_signal != 0 && self.k.tasks.contains_key(&ppid) {
            let info = chld_info(exit_signal, tgid, self.k.uid, cause);
            self.send_signal(c, ppid, info);
        }
        if ppid == 0 && tgid != self.k.init_pid {
            // An orphan's exit: the reaper outside the guest reaps it.
            self.reap(tgid);
        }
        // The run ends when the first process and every process it left behind are gone
        // (their parents outside the guest would see them exit).
        if self.k.init_exit.is_some()
            && self.outcome.is_none()
            && self.k.tasks.values().all(|t| t.state == State::Zombie)
        {
            self.outcome = self.k.init_exit.clone();
        }
    }

    /// A child changed state: complete a matching wait4 of the parent; waitid callers
    /// are woken to look again.
    fn notify_parent(&mut self, ppid: u32, at: u64) {
        let waiters: Vec<(u32, i64, u64, u64)> = self
            .k
            .tasks
            .values()
            .filter(|t| t.tgid == ppid)
            .filter_map(|t| match &t.state {
                State::Blocked(Wait::Child { pid, status, ru, .. }) => {
                    Some((t.tid, *pid, *status, *ru))
                }
                _ => None,
            })
            .collect();
        for (w, pid, status, ru) in waiters {
            if matches!(self.k.tasks.get(&w).and_then(|t| t.kpath.as_ref()), Some(KPath::Waitid(_)))
            {
                self.wake(w, 0, at);
                continue;
            }
            if let Some((child, st)) = self.find_zombie(ppid, pid) {
                let c = self.k.tasks.get(&w).map_or(0, |t| t.last_cpu);
                self.reap(child);
                // Written through the waiter's mm (it is not running); the rusage is
                // all zero (emu keeps no per-process CPU times).
                let mm = self.k.tasks.get(&w).map_or(0, |t| t.mm);
                if status != 0 {
                    self.poke_mm(mm, status, &st.to_le_bytes());
                }
                if ru != 0 {
                    self.poke_mm(mm, ru, &[0u8; 144]);
                }
                let _ = c;
                self.wake(w, i64::from(child), at);
                return;
            }
        }
    }

    fn find_zombie(&self, parent: u32, pid: i64) -> Option<(u32, i32)> {
        self.k
            .tasks
            .values()
            .filter(|t| t.ppid == parent && t.tid == t.tgid && t.state == State::Zombie)
            .find(|t| pid <= 0 || i64::from(t.tid) == pid)
            .map(|t| (t.tid, t.exit_status))
    }

    fn reap(&mut self, child: u32) {
        if let Some(t) = self.k.tasks.remove(&child) {
            if !self.k.tasks.values().any(|o| o.sighand == t.sighand) {
                self.k.sighands.remove(&t.sighand);
            }
        }
    }

    /// wait4(2).
    pub(crate) fn sys_wait4(
        &mut self,
        c: usize,
        tid: u32,
        pid: i64,
        status: u64,
        options: u64,
        ru: u64,
    ) -> Sys {
        // kernel_wait4: WNOHANG, WUNTRACED, WCONTINUED, __WNOTHREAD, __WCLONE, __WALL.
        if options & !(1 | 2 | 8 | 0xe000_0000) != 0 {
            return Sys::Ret(-EINVAL);
        }
        let Some(me) = self.k.tasks.get(&tid).map(|t| t.tgid) else { return Sys::Ret(-ECHILD) };
        let has_child = self
            .k
            .tasks
            .values()
            .any(|t| t.ppid == me && t.tid == t.tgid && (pid <= 0 || i64::from(t.tid) == pid));
        if !has_child {
            return Sys::Ret(-ECHILD);
        }
        if let Some((child, st)) = self.find_zombie(me, pid) {
            self.reap(child);
            if status != 0 && self.write_user(c, tid, status, &st.to_le_bytes()).is_err() {
                return Sys::Ret(-EFAULT);
            }
            // The rusage: emu keeps no per-process CPU times (all zero).
            if ru != 0 && self.write_user(c, tid, ru, &[0u8; 144]).is_err() {
                return Sys::Ret(-EFAULT);
            }
            return Sys::Ret(i64::from(child));
        }
        if options & 1 != 0 {
            return Sys::Ret(0);
        }
        Sys::Block(Wait::Child { pid, status, options, ru })
    }

    /// waitid(2) (kernel/exit.c `kernel_waitid`): options first (a known bit, and one of
    /// WEXITED, WSTOPPED, WCONTINUED), then the id type: P_ALL, P_PID (a positive pid),
    /// P_PGID (every guest process is in the first process's group), P_PIDFD (emu has
    /// no pidfds: EBADF).
    pub(crate) fn sys_waitid(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let (which, upid, options) = (a[0] as i32, a[1] as i32, a[3] as i32 as u32);
        if options & !(WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | 0xe000_0000) != 0
            || options & (WEXITED | WSTOPPED | WCONTINUED) == 0
        {
            return Sys::Ret(-EINVAL);
        }
        let pid = match which {
            0 => -1,
            1 if upid <= 0 => return Sys::Ret(-EINVAL),
            1 => i64::from(upid),
            2 if upid < 0 => return Sys::Ret(-EINVAL),
            2 if upid == 0 || upid as u32 == self.k.init_pid => -1,
            // No process is in another group.
            2 => 0,
            3 if upid < 0 => return Sys::Ret(-EINVAL),
            // pidfd_get_pid: a descriptor that is not a pidfd is EBADF too.
            3 => return Sys::Ret(-EBADF),
            _ => return Sys::Ret(-EINVAL),
        };
        let op = WaitidOp { pid, infop: a[2], options, ru: a[4] };
        self.waitid_look(c, tid, op)
    }

    /// A waitid after a wake-up looks again.
    pub(crate) fn waitid_step(&mut self, c: usize, tid: u32, op: WaitidOp) -> Next {
        if self.k.tasks.get(&tid).is_some_and(|t| t.exit.is_some()) {
            // Killed: leave for do_exit.
            return self.user_or_gone(c, tid);
        }
        match self.waitid_look(c, tid, op) {
            Sys::Ret(r) => {
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.cpu.gpr[0] = r as u64;
                }
                self.user_or_gone(c, tid)
            }
            Sys::Block(w) => Next::Block(w),
            _ => self.user_or_gone(c, tid),
        }
    }

    /// do_wait for waitid: a zombie child (reaped unless WNOWAIT), nothing with WNOHANG
    /// (the siginfo zeroed), -ERESTARTSYS with a signal pending, or a sleep.
    fn waitid_look(&mut self, c: usize, tid: u32, op: WaitidOp) -> Sys {
        let Some(me) = self.k.tasks.get(&tid).map(|t| t.tgid) else { return Sys::Ret(-ECHILD) };
        let matches = |t: &Task| op.pid < 0 || i64::from(t.tid) == op.pid;
        let has_child =
            self.k.tasks.values().any(|t| t.ppid == me && t.tid == t.tgid && matches(t));
        if !has_child {
            return Sys::Ret(-ECHILD);
        }
        // Stops and continues are not modelled: only exits are reported.
        let found = if op.options & WEXITED != 0 { self.find_zombie(me, op.pid) } else { None };
        if let Some((child, st)) = found {
            if op.options & WNOWAIT == 0 {
                self.reap(child);
            }
            if op.ru != 0 && self.write_user(c, tid, op.ru, &[0u8; 144]).is_err() {
                return Sys::Ret(-EFAULT);
            }
            if op.infop != 0 {
                let cause = ExitCause { status: st, signaled: st & 0x7f != 0, group: false };
                let b = chld_info(sig::SIGCHLD, child, self.k.uid, cause).to_bytes();
                if self.write_user(c, tid, op.infop, &b[..28]).is_err() {
                    return Sys::Ret(-EFAULT);
                }
            }
            return Sys::Ret(0);
        }
        if op.options & WNOHANG != 0 {
            // si_signo, si_errno, si_code, si_pid, si_uid and si_status are cleared.
            if op.infop != 0
                && (self.write_user(c, tid, op.infop, &[0u8; 12]).is_err()
                    || self.write_user(c, tid, op.infop + 16, &[0u8; 12]).is_err())
            {
                return Sys::Ret(-EFAULT);
            }
            return Sys::Ret(0);
        }
        if self.k.tasks.get(&tid).is_some_and(|t| t.pending & !t.sigmask != 0) {
            return Sys::Ret(-crate::signal::restart::ERESTARTSYS);
        }
        let w = Wait::Child { pid: op.pid, status: 0, options: u64::from(op.options), ru: 0 };
        if let Some(t) = self.k.tasks.get_mut(&tid) {
            t.kpath = Some(KPath::Waitid(Box::new(op)));
        }
        Sys::Block(w)
    }

    /// The futex key of `uaddr` for `tid` (kernel/futex/core.c `get_futex_key`): an
    /// address in a private mapping is keyed by (mm, address) whatever the flags; only
    /// a shared mapping is keyed by its physical page, so that processes match.
    pub(crate) fn futex_key(&mut self, tid: u32, uaddr: u64, private: bool) -> Option<(u32, u64)> {
        let mm = self.k.tasks.get(&tid)?.mm;
        let m = self.k.mms.get(&mm)?;
        let vma = m.find(uaddr);
        if private {
            return Some((mm, uaddr));
        }
        // A shared key needs the page (get_user_pages_fast): an unmapped address faults.
        let vma = vma?;
        if !vma.shared {
            return Some((mm, uaddr));
        }
        let leaf = emu_mmu::PageTables::leaf(&self.hw.mem.phys, m.root, uaddr)?;
        let base = leaf.pte & emu_mmu::pte::ADDR;
        Some((0, base | (uaddr & 0xfff)))
    }

    /// futex(2). An operation without FUTEX_PRIVATE_FLAG first looks up its keys
    /// with GUP-fast (get_futex_key), each a path of its own (walker.rs); the
    /// operation goes on when the last walk ends.
    pub(crate) fn sys_futex(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let (op, cmd, uaddr, uaddr2) = (a[1] as u32, a[1] as u32 & 127, a[0], a[4]);
        if op & 128 == 0 && uaddr & 3 == 0 {
            // The keys each operation looks up, in order, and whether FUTEX_WRITE
            // (kernel/futex/waitwake.c futex_wake, futex_wait_setup, futex_wake_op;
            // requeue.c futex_requeue), once its own argument checks have passed.
            let keys = match cmd {
                0 | 1 => vec![(uaddr, false)],
                9 | 10 if a[5] as u32 != 0 => vec![(uaddr, false)],
                3 | 4 if (a[2] as u32 as i32) >= 0 && (a[3] as u32 as i32) >= 0 => {
                    vec![(uaddr, false), (uaddr2, false)]
                }
                5 => vec![(uaddr, false), (uaddr2, true)],
                _ => Vec::new(),
            };
            if !keys.is_empty() {
                let k = FutexKeys { args: a, keys, at: 0, read_only: false };
                if let Some(p) = self.futex_key_walk(tid, k) {
                    return Sys::Path(p);
                }
            }
        }
        self.sys_futex_keyed(c, tid, a)
    }

    /// The GUP-fast call of get_futex_key for key `k.at`: FOLL_WRITE first, without
    /// it for the read-only retry.
    fn futex_key_walk(&self, tid: u32, k: FutexKeys) -> Option<crate::path::KPath> {
        let (addr, _) = *k.keys.get(k.at)?;
        let flags = GupFlags { write: !k.read_only, pin: false };
        self.gup_fast_path(tid, addr, 1, flags, GupCont::Futex(Box::new(k)))
    }

    /// A futex key's GUP-fast call ended, with its page (`got`) or without. Without
    /// it, get_user_pages_fast's slow path decides: it gets the page (faulting it in)
    /// or fails with EFAULT, and get_futex_key then tries again without FOLL_WRITE
    /// when the operation only reads the futex (FUTEX_READ). Then the next key, or
    /// the operation itself.
    pub(crate) fn futex_key_walked(
        &mut self,
        c: usize,
        tid: u32,
        mut k: FutexKeys,
        got: bool,
    ) -> Next {
        let (addr, write) = k.keys[k.at];
        let found = got || self.gup_slow_ok(tid, addr, !k.read_only);
        if found && !got {
            // Slow GUP faults the page in (faultin_page, a write fault for FOLL_WRITE:
            // the word written back as it was, within this step); the key of a shared
            // mapping is its page.
            let mut word = [0u8; 4];
            if self.read_user(c, tid, addr, &mut word).is_ok() && !k.read_only {
                let _ = self.write_user(c, tid, addr, &word);
            }
        }
        if !found {
            if !k.read_only && !write {
                k.read_only = true;
                if let Some(p) = self.futex_key_walk(tid, k) {
                    return Next::Then(p);
                }
            }
            return self.sys_next(c, tid, Sys::Ret(-EFAULT));
        }
        if k.read_only && self.anon_page(tid, addr) {
            // get_futex_key: a read-only anonymous page never changes, so it makes no
            // futex: EFAULT.
            return self.sys_next(c, tid, Sys::Ret(-EFAULT));
        }
        k.at += 1;
        k.read_only = false;
        match k.keys.get(k.at) {
            // get_futex_key's own check of the second address.
            Some(&(a2, _)) if a2 & 3 != 0 => self.sys_next(c, tid, Sys::Ret(-EINVAL)),
            Some(_) => {
                let a = k.args;
                match self.futex_key_walk(tid, k) {
                    Some(p) => Next::Then(p),
                    None => {
                        let r = self.sys_futex_keyed(c, tid, a);
                        self.sys_next(c, tid, r)
                    }
                }
            }
            None => {
                let r = self.sys_futex_keyed(c, tid, k.args);
                self.sys_next(c, tid, r)
            }
        }
    }

    /// `PageAnon` of the page at `va`, as emu knows it: a page of a private anonymous
    /// mapping. (A private file mapping's page that was written before the mapping
    /// became read-only is anonymous in Linux too; emu does not tell those apart and
    /// keys them as file pages.)
    fn anon_page(&self, tid: u32, va: u64) -> bool {
        self.k
            .tasks
            .get(&tid)
            .and_then(|t| self.k.mms.get(&t.mm))
            .and_then(|m| m.find(va))
            .is_some_and(|v| !v.shared && matches!(v.backing, crate::mm::Backing::Anon))
    }

    /// futex(2) once its GUP-fast, if any, is done.
    pub(crate) fn sys_futex_keyed(&mut self, c: usize, tid: u32, a: [u64; 6]) -> Sys {
        let (uaddr, op, val, timeout, uaddr2, val3) =
            (a[0], a[1] as u32, a[2] as u32, a[3], a[4], a[5] as u32);
        let private = op & 128 != 0;
        let realtime = op & 256 != 0;
        let cmd = op & 127;
        if uaddr & 3 != 0 {
            return Sys::Ret(-EINVAL);
        }
        // futex_requeue's counts are ints; get_futex_key of the second address checks
        // its alignment before anything is read or written.
        if matches!(cmd, 3 | 4) && ((val as i32) < 0 || (timeout as u32 as i32) < 0) {
            return Sys::Ret(-EINVAL);
        }
        if matches!(cmd, 3..=5) && uaddr2 & 3 != 0 {
            return Sys::Ret(-EINVAL);
        }
        let now_fp = self.k.tasks.get(&tid).map_or(0, |t| t.cpu.time_fp);
        let mut word = [0u8; 4];
        match cmd {
            0 | 9 => {
                // WAIT, WAIT_BITSET
                let bitset = if cmd == 9 { val3 } else { u32::MAX };
                if bitset == 0 {
                    return Sys::Ret(-EINVAL);
                }
                if self.read_user(c, tid, uaddr, &mut word).is_err() {
                    return Sys::Ret(-EFAULT);
                }
                if u32::from_le_bytes(word) != val {
                    return Sys::Ret(-EAGAIN);
                }
                let until_ns = if timeout != 0 {
                    let mut b = [0u8; 16];
                    if self.read_user(c, tid, timeout, &mut b).is_err() {
                        return Sys::Ret(-EFAULT);
                    }
                    let d =
                        le64(&b[..8]).saturating_mul(1_000_000_000).saturating_add(le64(&b[8..]));
                    Some(if cmd == 9 {
                        // Absolute, on CLOCK_REALTIME or CLOCK_MONOTONIC.
                        if realtime {
                            d.saturating_sub(EPOCH_S * 1_000_000_000)
                        } else {
                            d
                        }
                    } else {
                        self.now_ns(tid).saturating_add(d)
                    })
                } else {
                    None
                };
                if until_ns.is_some_and(|u| u <= self.now_ns(tid)) {
                    return Sys::Ret(-ETIMEDOUT);
                }
                let Some((mm, key)) = self.futex_key(tid, uaddr, private) else {
                    return Sys::Ret(-EFAULT);
                };
                // futex_wait_setup: queued under the hash bucket's lock.
                self.futex_bucket_section(c, mm, key);
                self.probes.kstats.futex_waits += 1;
                self.k.futex_seq += 1;
                Sys::Block(Wait::Futex { mm, key, bitset, until_ns, seq: self.k.futex_seq })
            }
            1 | 10 => {
                let bitset = if cmd == 10 { val3 } else { u32::MAX };
                if bitset == 0 {
                    return Sys::Ret(-EINVAL);
                }
                let Some((mm, key)) = self.futex_key(tid, uaddr, private) else {
                    return Sys::Ret(-EFAULT);
                };
                self.futex_bucket_section(c, mm, key);
                let at = self.now(c);
                Sys::Ret(self.futex_wake_key(mm, key, val, bitset, at))
            }
            3 | 4 => {
                // REQUEUE, CMP_REQUEUE: wake val, move up to `timeout` (val2) to uaddr2.
                if cmd == 4 {
                    if self.read_user(c, tid, uaddr, &mut word).is_err() {
                        return Sys::Ret(-EFAULT);
                    }
                    if u32::from_le_bytes(word) != val3 {
                        return Sys::Ret(-EAGAIN);
                    }
                }
                let Some((mm, key)) = self.futex_key(tid, uaddr, private) else {
                    return Sys::Ret(-EFAULT);
                };
                let Some((mm2, key2)) = self.futex_key(tid, uaddr2, private) else {
                    return Sys::Ret(-EFAULT);
                };
                let woken = self.futex_wake_key(mm, key, val, u32::MAX, now_fp);
                let mut moved = 0;
                for w in self.futex_waiters(mm, key, u32::MAX) {
                    if moved >= timeout as u32 {
                        break;
                    }
                    if let Some(t) = self.k.tasks.get_mut(&w) {
                        if let State::Blocked(Wait::Futex { mm: m, key: k, .. }) = &mut t.state {
                            *m = mm2;
                            *k = key2;
                            moved += 1;
                        }
                    }
                }
                Sys::Ret(woken + i64::from(moved))
            }
            5 => {
                // WAKE_OP: *uaddr2 = op(*uaddr2, oparg); wake val on uaddr; if cmp(old,
                // cmparg) wake val2 (`timeout`) on uaddr2.
                if self.read_user(c, tid, uaddr2, &mut word).is_err() {
                    return Sys::Ret(-EFAULT);
                }
                let old = u32::from_le_bytes(word);
                let (wop, cmp) = ((val3 >> 28) & 15, (val3 >> 24) & 15);
                let mut oparg = (val3 >> 12) & 0xfff;
                let cmparg = val3 & 0xfff;
                if wop & 8 != 0 {
                    oparg = 1u32.checked_shl(oparg).unwrap_or(0);
                }
                let new = match wop & 7 {
                    0 => oparg,
                    1 => old.wrapping_add(oparg),
                    2 => old | oparg,
                    3 => old & !oparg,
                    _ => old ^ oparg,
                };
                if self.write_user(c, tid, uaddr2, &new.to_le_bytes()).is_err() {
                    return Sys::Ret(-EFAULT);
                }
                let Some((mm, key)) = self.futex_key(tid, uaddr, private) else {
                    return Sys::Ret(-EFAULT);
                };
                let Some((mm2, key2)) = self.futex_key(tid, uaddr2, private) else {
                    return Sys::Ret(-EFAULT);
                };
                let mut n = self.futex_wake_key(mm, key, val, u32::MAX, now_fp);
                let (o, ca) = (old as i32, cmparg as i32);
                let hit = match cmp {
                    0 => o == ca,
                    1 => o != ca,
                    2 => o < ca,
                    3 => o <= ca,
                    4 => o > ca,
                    _ => o >= ca,
                };
                if hit {
                    n += self.futex_wake_key(mm2, key2, timeout as u32, u32::MAX, now_fp);
                }
                Sys::Ret(n)
            }
            _ => Sys::Ret(-ENOSYS),
        }
    }

    /// A critical section under the hash-bucket lock of futex key (`mm`, `key`)
    /// (kernel/futex/core.c: the table has `roundup_pow_of_two(256 * CPUs)` buckets).
    fn futex_bucket_section(&mut self, c: usize, mm: u32, key: u64) {
        let buckets = u64::from(crate::machine::futex_buckets(self.hw.cpus.len()));
        let h = (u64::from(mm) ^ key.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let b = crate::lock::LockKey::FutexBucket(((h >> 32) % buckets) as u32);
        self.lock_here(c, b);
        self.unlock(c, b, crate::lock::LockMode::Write);
    }

    fn futex_waiters(&self, mm: u32, key: u64, bitset: u32) -> Vec<u32> {
        let mut v: Vec<(u64, u32)> = self
            .k
            .tasks
            .values()
            .filter_map(|t| match &t.state {
                State::Blocked(Wait::Futex { mm: m, key: k, bitset: b, seq, .. })
                    if *m == mm && *k == key && b & bitset != 0 =>
                {
                    Some((*seq, t.tid))
                }
                _ => None,
            })
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, t)| t).collect()
    }

    /// Wakes up to `n` waiters on a futex key, oldest first. Returns how many.
    pub(crate) fn futex_wake_key(
        &mut self,
        mm: u32,
        key: u64,
        n: u32,
        bitset: u32,
        at: u64,
    ) -> i64 {
        let mut woken = 0;
        for w in self.futex_waiters(mm, key, bitset) {
            if woken >= n {
                break;
            }
            self.wake(w, 0, at);
            woken += 1;
        }
        i64::from(woken)
    }

    /// Moves a task off a core it may no longer run on, from core `c`. A task in the
    /// middle of a kernel path on another core moves when it returns to user mode.
    pub(crate) fn migrate_if_needed(&mut self, c: usize, tid: u32) {
        let Some(t) = self.k.tasks.get(&tid) else { return };
        let aff = t.affinity.clone();
        match t.state.clone() {
            State::Running(k) if !aff[k] && (k == c || self.k.cpus[k].kstate == KState::User) => {
                let at = self.now(k);
                if let Some(t) = self.k.tasks.get_mut(&tid) {
                    t.state = State::Runnable;
                }
                // Not a zombie: deschedule keeps it, then it is placed anew.
                self.trace_task_end(k, tid);
                self.mm_cid_schedout(k, tid);
                self.k.cpus[k].current = None;
                self.k.cpus[k].kstate = KState::User;
                self.hw.cpus[k].time_fp = self.hw.cpus[k].time_fp.max(at);
                self.enqueue(tid, at, k);
                self.schedule(k);
            }
            State::Runnable => {
                for k in 0..self.hw.cpus.len() {
                    if !aff[k] && self.k.cpus[k].runq.contains(&tid) {
                        self.leave_runqueue(k, tid);
                        self.k.cpus[k].runq.retain(|x| *x != tid);
                        self.touch(k);
                        let at = self.hw.cpus[k].time_fp;
                        self.settle_idle(k);
                        self.enqueue(tid, at, k);
                    }
                }
            }
            _ => {}
        }
    }

    /// Sends signal `s` to thread `target` (from core `c`) with the siginfo of a
    /// signal the kernel sends (SIGPIPE: SI_USER from the current process).
    pub(crate) fn signal_thread(&mut self, c: usize, target: u32, s: u32) {
        let me = self.k.cpus[c].current.and_then(|t| self.k.tasks.get(&t)).map_or(0, |t| t.tgid);
        let info = SigInfo {
            signo: s,
            code: crate::signal::si::SI_USER,
            fields: SigFields::Kill { pid: me, uid: self.k.uid },
        };
        self.send_signal(c, target, info);
    }

    /// The thread of process `tgid` that takes a process-directed signal `s`
    /// (complete_signal's `wants_signal`): the leader if it can, else the first live
    /// thread that does not block it, else the leader.
    pub(crate) fn process_target(&self, tgid: u32, s: u32) -> u32 {
        let bit = 1u64 << (s - 1);
        let wants = |t: &Task| t.state != State::Zombie && t.exit.is_none() && t.sigmask & bit == 0;
        if self.k.tasks.get(&tgid).is_some_and(wants) {
            return tgid;
        }
        self.k.tasks.values().find(|t| t.tgid == tgid && wants(t)).map_or(tgid, |t| t.tid)
    }

    /// Sends a signal to thread `target` from core `c` (kernel/signal.c
    /// `send_signal_locked` and `complete_signal`): dropped when ignored and not
    /// blocked (`sig_ignored`); queued otherwise. A sleeping target that does not block
    /// it is woken to take it, or the group is killed now if its action is fatal; a
    /// target running user code on another CPU is kicked (`kick_process`).
    pub(crate) fn send_signal(&mut self, c: usize, target: u32, info: SigInfo) {
        let at = self.now(c);
        self.send_signal_at(c, target, info, at, true);
    }

    /// [`Machine::send_signal`] at time `at` on CPU `c`; a timer's signal (`kill_now`
    /// false) wakes a sleeping target even for a fatal action, which it then takes on
    /// its own CPU. True if the signal was queued.
    pub(crate) fn send_signal_at(
        &mut self,
        c: usize,
        target: u32,
        info: SigInfo,
        at: u64,
        kill_now: bool,
    ) -> bool {
        let s = info.signo;
        // Not a signal (a clone exit signal can be anything up to 255; do_notify_parent
        // then sends nothing).
        if s == 0 || s > 64 {
            return false;
        }
        let Some(t) = self.k.tasks.get(&target) else { return false };
        let bit = 1u64 << (s - 1);
        let real_blocked = match t.state {
            State::Blocked(Wait::Sigtimedwait { real_blocked, .. }) => real_blocked,
            _ => t.sigmask,
        };
        let blocked = t.sigmask & bit != 0;
        let act = self.k.sighands.get(&t.sighand).map(|h| h[s as usize]).unwrap_or_default();
        let ignored = act.handler == 1 || (act.handler == 0 && crate::signal::default_ignored(s));
        if ignored && (t.sigmask | real_blocked) & bit == 0 {
            return false;
        }
        if !self.queue_signal(target, info) {
            return false;
        }
        match self.k.tasks.get(&target).map(|t| t.state.clone()) {
            Some(State::Running(k)) if k != c && self.k.cpus[k].kstate == KState::User => {
                self.send_reschedule(c, k);
            }
            Some(State::Blocked(w)) if !blocked => {
                if act.handler == 0 && !ignored && real_blocked & bit == 0 && kill_now {
                    // Fatal default action: the process dies now.
                    self.kill_process(c, target, s, None);
                } else if w.signal_interruptible() {
                    self.interrupt(target, at);
                }
            }
            _ => {}
        }
        true
    }

    /// A signal ends the interruptible sleep of `tid`: the call returns what Linux's
    /// returns when a signal is pending, which the delivery turns into EINTR or a
    /// restart (see [`crate::signal::restart_action`]).
    pub(crate) fn interrupt(&mut self, tid: u32, at: u64) {
        use crate::signal::restart::*;
        let now_ns = self.ns_of(at);
        let Some(t) = self.k.tasks.get_mut(&tid) else { return };
        let State::Blocked(w) = t.state.clone() else { return };
        let ret = match w {
            // pipe_read, pipe_write, eventfd and unix sockets: -ERESTARTSYS. The call
            // was to run again when woken; it now returns instead.
            Wait::Io => {
                t.cpu.rip += 2;
                t.cpu.gpr[0] = (-ERESTARTSYS) as u64;
                -ERESTARTSYS
            }
            // do_nanosleep: an absolute sleep is -ERESTARTNOHAND; a relative one
            // writes the time left and is -ERESTART_RESTARTBLOCK.
            Wait::Sleep { abs: true, .. } => -ERESTARTNOHAND,
            Wait::Sleep { until_ns, rem, .. } => {
                if rem != 0 {
                    let left = until_ns.saturating_sub(now_ns);
                    let mut b = [0u8; 16];
                    b[..8].copy_from_slice(&(left / 1_000_000_000).to_le_bytes());
                    b[8..].copy_from_slice(&(left % 1_000_000_000).to_le_bytes());
                    let mm = t.mm;
                    self.poke_mm(mm, rem, &b);
                }
                -ERESTART_RESTARTBLOCK
            }
            // futex_wait: -ERESTARTSYS without a timeout, a restart block with one.
            Wait::Futex { until_ns: None, .. } => -ERESTARTSYS,
            Wait::Futex { .. } => -ERESTART_RESTARTBLOCK,
            // do_wait: -ERESTARTSYS.
            Wait::Child { .. } => -ERESTARTSYS,
            // sigsuspend: -ERESTARTNOHAND.
            Wait::Signal => -ERESTARTNOHAND,
            // Their kernel paths look again and decide.
            Wait::Poll { .. } | Wait::Sigtimedwait { .. } => -EINTR,
            Wait::Lock(_)
            | Wait::Rcu { .. }
            | Wait::CidMutex { .. }
            | Wait::Vfork(_)
            | Wait::Exec => return,
        };
        self.wake(tid, ret, at);
    }
}

const WNOHANG: u32 = 1;
const WSTOPPED: u32 = 2;
const WEXITED: u32 = 4;
const WCONTINUED: u32 = 8;
const WNOWAIT: u32 = 0x0100_0000;

/// A waitid in progress.
/// A shared futex operation looking up its keys (get_futex_key), one GUP-fast call
/// each (two for a key whose FOLL_WRITE walk and slow path failed and that the
/// operation only reads).
#[derive(Clone, Debug)]
pub struct FutexKeys {
    /// The system call's arguments.
    pub args: [u64; 6],
    /// The addresses to look up, in order, and whether the operation writes the
    /// futex (FUTEX_WRITE: no read-only retry).
    pub keys: Vec<(u64, bool)>,
    /// The key being looked up.
    pub at: usize,
    /// The walk under way is the read-only retry.
    pub read_only: bool,
}

#[derive(Clone, Debug)]
pub struct WaitidOp {
    /// The child it waits for (-1: any, 0: none can match).
    pid: i64,
    /// Where the siginfo goes.
    infop: u64,
    /// Its options.
    options: u32,
    /// Where the rusage goes.
    ru: u64,
}

/// The siginfo of a child's exit (kernel/signal.c `do_notify_parent`): CLD_EXITED with
/// the exit code, or CLD_KILLED with the signal (emu never dumps core, as Linux with a
/// core size limit of 0, so never CLD_DUMPED).
pub(crate) fn chld_info(signo: u32, pid: u32, uid: u32, cause: ExitCause) -> SigInfo {
    use crate::signal::si::*;
    let (code, status) = if cause.signaled {
        (CLD_KILLED, cause.status & 0x7f)
    } else {
        (CLD_EXITED, (cause.status >> 8) & 0xff)
    };
    SigInfo { signo, code, fields: SigFields::Chld { pid, uid, status } }
}
