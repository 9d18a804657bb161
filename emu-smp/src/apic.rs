//! Local APICs and cross-CPU function calls (kernel/smp.c `smp_call_function_many_cond`
//! and `flush_smp_call_function_queue`): per-CPU call queues, IPIs as timestamped
//! messages (ICR writes per target or per x2APIC cluster, delivery latency by distance),
//! receiver interrupt entry and exit, idle-state exit, and the initiator's wait for acks
//! (csd_lock_wait) as a state of its core ([`KState::Acks`]) in which the other CPUs keep
//! advancing (DESIGN.md principle 5).

use crate::machine::{fp, AckSlot, AckWait, KState, Machine};
use crate::profile::ApicMode;
use crate::tlbflush::FlushInfo;

/// The function a cross-CPU call runs.
#[derive(Clone, Copy, Debug)]
pub enum CallFn {
    /// flush_tlb_func with this request.
    Flush(FlushInfo),
    /// membarrier's `ipi_mb`, which does nothing but order memory.
    Barrier,
    /// cleanup_lazy_tlbs's `do_shoot_lazy_tlb` for this mm.
    ShootLazy(u32),
    /// tlb_remove_table_smp_sync: nothing; the walker sync needs only the ack.
    WalkerSync,
}

/// A queued cross-CPU function call (`call_single_data`): a flush request,
/// membarrier's barrier, or a lazy-mm shootdown.
#[derive(Clone, Copy, Debug)]
pub struct Csd {
    /// The function to run.
    pub func: CallFn,
    /// The CPU that queued it.
    pub initiator: usize,
    /// Index of its slot in the initiator's [`AckSlot`]s.
    pub slot: usize,
    /// When its initiator began waiting for it (csd_lock_wait): its IPI delivery is
    /// the time from there to the handler. Set at queueing, then at the wait's start
    /// (the handlers all run after it).
    pub wait_from_fp: u64,
}

/// An interrupt on its way to a CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingIpi {
    /// Local time at which it arrives.
    pub arrival_fp: u64,
    /// Send order (tie-break).
    pub seq: u64,
    /// The sender (for flow traces).
    pub from: usize,
}

impl Machine {
    /// Latency of an IPI from CPU `from` to CPU `to` (1/256 cycles).
    fn delivery_fp(&self, from: usize, to: usize) -> u64 {
        let a = &self.profile.apic;
        let per_socket = self.profile.cache.cores_per_socket.max(1) as usize;
        if from / per_socket == to / per_socket {
            fp(a.delivery_same_socket_cycles)
        } else {
            fp(a.delivery_cross_socket_cycles)
        }
    }

    /// The IPI from CPU `c` (at its local time) reaches CPU `t` one delivery latency
    /// later. The clock invariant: it never arrives before `t`'s last committed action.
    fn queue_ipi(&mut self, c: usize, t: usize) -> u64 {
        let now = self.now(c);
        let arrival = now + self.delivery_fp(c, t);
        self.note_arrival(t, arrival);
        self.insert_interrupt(t, arrival, c);
        self.probes.cpus[c].ipis_sent += 1;
        self.trace_ipi(c, t, now, arrival);
        arrival
    }

    /// An interrupt from CPU `from` pending on CPU `t` from `arrival` on, in the order
    /// of arrival (same-time arrivals in the order they were sent).
    pub(crate) fn insert_interrupt(&mut self, t: usize, arrival: u64, from: usize) {
        self.hw.ipi_seq += 1;
        let ipi = PendingIpi { arrival_fp: arrival, seq: self.hw.ipi_seq, from };
        let pos = self.hw.cpus[t].ipis.partition_point(|p| p < &ipi);
        self.hw.cpus[t].ipis.insert(pos, ipi);
        self.touch(t);
    }

    /// Checks the clock invariant for an event reaching CPU `t` at `arrival`.
    pub(crate) fn note_arrival(&mut self, t: usize, arrival: u64) {
        if arrival < self.hw.cpus[t].committed_fp {
            self.probes.late_events += 1;
            debug_assert!(
                false,
                "event queued into CPU {t}'s past: arrival {arrival} < committed {}",
                self.hw.cpus[t].committed_fp
            );
        }
    }

    /// A reschedule IPI (`smp_send_reschedule`, as `kick_process` sends): the target
    /// takes an interrupt and, returning to user mode, notices what changed.
    pub(crate) fn send_reschedule(&mut self, c: usize, t: usize) {
        let cost = fp(self.profile.apic.icr_write_cycles);
        self.charge(c, cost);
        self.probes.cpus[c].icr_writes += 1;
        self.queue_ipi(c, t);
    }

    /// smp_call_function_many_cond: queue the flush on each target's call queue, and
    /// send an IPI to the targets whose queue was empty (one ICR write per target, or per
    /// x2APIC cluster). The calls get ack slots on CPU `c`, which waits for them when
    /// its kernel step ends.
    pub(crate) fn smp_call_function_many(&mut self, c: usize, targets: &[usize], info: &FlushInfo) {
        let (icr_writes, ipis) = self.queue_calls(c, targets, CallFn::Flush(*info));
        let rec = self.probes.records.get_mut(info.record);
        rec.icr_writes += icr_writes;
        rec.ipis_sent += ipis;
    }

    /// membarrier's smp_call_function_many (ipi_mb on each target): queued like a
    /// flush's calls, one IPI per target whose queue was empty; CPU `c` waits for the
    /// acks when its kernel step ends.
    pub(crate) fn membarrier_ipis(&mut self, c: usize, targets: &[usize]) {
        self.queue_calls(c, targets, CallFn::Barrier);
    }

    /// cleanup_lazy_tlbs's on_each_cpu_mask(do_shoot_lazy_tlb, wait=1) to the other
    /// CPUs `targets`, queued like a flush's calls; CPU `c` waits for the acks when its
    /// kernel step ends. Returns the ICR writes and the IPIs sent.
    pub(crate) fn shoot_lazy_ipis(&mut self, c: usize, targets: &[usize], mm: u32) -> (u32, u32) {
        self.queue_calls(c, targets, CallFn::ShootLazy(mm))
    }

    /// The hazard-pointer scan's smp_call_function_single(do_check_lazy_tlb, wait=1) to
    /// CPU `t`: a call that only looks (the model's CPUs were shot already).
    pub(crate) fn hazard_check_ipi(&mut self, c: usize, t: usize) -> (u32, u32) {
        self.queue_calls(c, &[t], CallFn::Barrier)
    }

    /// A walker sync's smp_call_function(tlb_remove_table_smp_sync, wait=1) to
    /// `targets`; CPU `c` waits for the acks when its kernel step ends.
    pub(crate) fn walker_sync_ipis(&mut self, c: usize, targets: &[usize]) -> (u32, u32) {
        self.queue_calls(c, targets, CallFn::WalkerSync)
    }

    /// The cross-CPU calls of smp_call_function_many_cond from CPU `c`: a csd running
    /// `func` on each target's queue and an ack slot for it, then the IPIs to the
    /// targets whose queue was empty. Returns the ICR writes and the IPIs sent.
    fn queue_calls(&mut self, c: usize, targets: &[usize], func: CallFn) -> (u32, u32) {
        let mut need_ipi = Vec::new();
        for &t in targets {
            let slot = self.k.cpus[c].ack_slots.len();
            self.k.cpus[c].ack_slots.push(AckSlot { target: t, acked_fp: None });
            // llist_add onto the target's call_single_queue: a locked cmpxchg on a line
            // the target owns, one after another.
            let rfo = self.hw.mem.caches.transfer_fp(t, c);
            self.charge(c, rfo);
            if self.k.cpus[t].callq.is_empty() {
                need_ipi.push(t);
            }
            let wait_from_fp = self.now(c);
            self.k.cpus[t].callq.push_back(Csd { func, initiator: c, slot, wait_from_fp });
        }
        let icr = fp(self.profile.apic.icr_write_cycles);
        let writes = icr_writes(self.profile.apic.mode, self.profile.apic.cluster_size, &need_ipi);
        let mut n_writes = 0;
        for (&t, write) in need_ipi.iter().zip(writes) {
            if write {
                self.charge(c, icr);
                self.probes.cpus[c].icr_writes += 1;
                n_writes += 1;
            }
            self.queue_ipi(c, t);
        }
        (n_writes, need_ipi.len() as u32)
    }

    /// Handles the IPIs that reached CPU `k` by local time `upto`: interrupt entry,
    /// every queued function call, interrupt exit. An idle CPU first leaves its idle
    /// state (paying its exit latency).
    pub(crate) fn handle_ipis(&mut self, k: usize, upto: u64) {
        while let Some(&ipi) = self.hw.cpus[k].ipis.first() {
            if ipi.arrival_fp > upto {
                break;
            }
            self.hw.cpus[k].ipis.remove(0);
            self.advance(k, ipi.arrival_fp);
            // The reschedule IPI (or timer interrupt) a wake-up sent: the interrupted
            // task is to be preempted on its way back (scheduler_ipi). The model lets the
            // first interrupt taken after the wake-up stand for it.
            if std::mem::take(&mut self.k.cpus[k].resched_ipi) {
                self.k.cpus[k].need_resched = true;
            }
            if self.k.cpus[k].current.is_none() {
                self.leave_idle(k);
            }
            let t0 = self.now(k);
            self.charge(k, fp(self.profile.apic.irq_entry_cycles));
            self.probes.cpus[k].ipis_received += 1;
            let mut handled: smallvec::SmallVec<[(usize, u64); 4]> = smallvec::SmallVec::new();
            let mut barriers = 0;
            // Lazy-mm shootdowns served: their own cycles.
            let mut shot: smallvec::SmallVec<[u64; 2]> = smallvec::SmallVec::new();
            while let Some(csd) = self.k.cpus[k].callq.pop_front() {
                let before = self.now(k);
                // The csd (and the queue head) were written by the initiator.
                let miss = self.hw.mem.caches.transfer_fp(csd.initiator, k);
                self.charge(k, fp(self.profile.apic.call_function_cycles) + miss);
                match &csd.func {
                    CallFn::Flush(info) => {
                        // From the initiator's wait to the handler: IPI delivery, and any
                        // wait for a receiver that was asleep or handling something else.
                        let r = self.probes.records.get_mut(info.record);
                        r.ipi_delivery_cycles =
                            r.ipi_delivery_cycles.max(t0.saturating_sub(csd.wait_from_fp) >> 8);
                        self.flush_tlb_func(k, info);
                    }
                    CallFn::Barrier | CallFn::WalkerSync => barriers += 1,
                    CallFn::ShootLazy(mm) => self.do_shoot_lazy_tlb(k, *mm),
                }
                // csd_unlock: the release store to the initiator's csd line.
                let now = self.now(k);
                self.ack(csd.initiator, csd.slot, now);
                match &csd.func {
                    CallFn::Flush(info) => handled.push((info.record, now - before)),
                    CallFn::ShootLazy(_) => shot.push(now - before),
                    CallFn::Barrier | CallFn::WalkerSync => {}
                }
            }
            self.charge(k, fp(self.profile.apic.irq_exit_cycles));
            let t1 = self.now(k);
            // The interrupt's entry and exit are shared by the calls it served.
            let own: u64 = handled.iter().map(|h| h.1).sum::<u64>() + shot.iter().sum::<u64>();
            let shared = (t1 - t0 - own) / (handled.len() + shot.len()).max(1) as u64;
            for &(rec, own) in &handled {
                let r = self.probes.records.get_mut(rec);
                r.victim_cycles += (own + shared) >> 8;
                r.victims += 1;
            }
            for &own in &shot {
                self.probes.lazy_mm.shootdown_victim_cycles += (own + shared) >> 8;
            }
            self.probes.cpus[k].irq_cycles += (t1 - t0) >> 8;
            if let KState::Acks(w) = &mut self.k.cpus[k].kstate {
                w.irqs.push((t0, t1));
            }
            if self.probes.trace.is_some() {
                let name = if !shot.is_empty() && handled.is_empty() {
                    "lazy mm shootdown IPI".to_string()
                } else if handled.is_empty() && barriers > 0 {
                    "membarrier IPI".to_string()
                } else if handled.is_empty() {
                    "reschedule IPI".to_string()
                } else {
                    let ids: Vec<String> = handled.iter().map(|h| h.0.to_string()).collect();
                    format!("flush IPI (shootdowns {})", ids.join(","))
                };
                self.trace_span(k, &name, t0, t1);
            }
            if self.k.cpus[k].current.is_none() && self.k.cpus[k].runq.is_empty() {
                self.enter_idle(k);
            }
            self.update_ack_wait(k);
        }
    }

    /// csd_unlock by a target at local time `at`: slot `slot` of CPU `c`'s wait.
    fn ack(&mut self, c: usize, slot: usize, at: u64) {
        if let Some(s) = self.k.cpus[c].ack_slots.get_mut(slot) {
            s.acked_fp = Some(at);
        }
        self.update_ack_wait(c);
    }

    /// CPU `c`'s kernel step started flushes: it waits in csd_lock_wait for their acks,
    /// interrupts on, while the other CPUs advance.
    pub(crate) fn begin_ack_wait(&mut self, c: usize) {
        let start = self.now(c);
        // The handlers all run inside this wait: delivery is measured from here.
        for slot in 0..self.k.cpus[c].ack_slots.len() {
            let target = self.k.cpus[c].ack_slots[slot].target;
            if let Some(csd) =
                self.k.cpus[target].callq.iter_mut().find(|q| q.initiator == c && q.slot == slot)
            {
                csd.wait_from_fp = start;
            }
        }
        self.k.cpus[c].kstate = KState::Acks(AckWait { start_fp: start, ..AckWait::default() });
        self.update_ack_wait(c);
    }

    /// Recomputes when CPU `c`'s ack wait ends, once every target has acked. The csd
    /// lines are polled in target order: each read costs a line transfer from the
    /// target, starts once the target released the line and the previous read is done,
    /// and an interrupt taken during a read delays it (the read starts over).
    fn update_ack_wait(&mut self, c: usize) {
        let KState::Acks(w) = &self.k.cpus[c].kstate else { return };
        let slots = &self.k.cpus[c].ack_slots;
        let done = if slots.iter().all(|s| s.acked_fp.is_some()) {
            let caches = &self.hw.mem.caches;
            let reads = slots
                .iter()
                .map(|s| (s.acked_fp.unwrap_or(w.start_fp), caches.transfer_fp(s.target, c)));
            Some(poll_timeline(w.start_fp, reads, &w.irqs))
        } else {
            None
        };
        if let KState::Acks(w) = &mut self.k.cpus[c].kstate {
            w.done_fp = done;
        }
        self.touch(c);
    }

    /// CPU `c`, waiting for acks, is the next event at `t`: an interrupt or tick to take,
    /// or the end of the wait (then its flushes complete and its path goes on).
    pub(crate) fn ack_wait_event(&mut self, c: usize, t: u64) {
        self.hw.cpus[c].committed_fp = t;
        let KState::Acks(w) = &self.k.cpus[c].kstate else { return };
        // A vCPU back from preemption takes the interrupts that reached it meanwhile (the
        // acks it owes others among them) before it polls again.
        let pending =
            self.host.is_some() && self.hw.cpus[c].ipis.first().is_some_and(|i| i.arrival_fp <= t);
        if pending || !w.done_fp.is_some_and(|d| d <= t) {
            // An interrupt or the tick: the CPU has polled until then. (The end of the
            // wait may come late: a vCPU the host preempted polls again only when it
            // runs.)
            self.advance(c, t);
            self.take_interrupts(c, t);
            self.update_ack_wait(c);
            return;
        }
        let start = w.start_fp;
        self.advance(c, t);
        // (A vCPU whose polls resumed after interrupts ends its wait at its clock.)
        let t = t.max(self.now(c));
        let waited = (t - start) >> 8;
        self.probes.cpus[c].ack_wait_cycles += waited;
        self.trace_span(c, "wait for flush acks", start, t);
        self.k.cpus[c].ack_slots.clear();
        self.k.cpus[c].kstate = KState::Ready;
        let synced = std::mem::take(&mut self.k.cpus[c].sync_free);
        for f in std::mem::take(&mut self.k.cpus[c].inflight) {
            let r = self.probes.records.get_mut(f.info.record);
            r.ack_wait_cycles += waited;
            // Delivery is the part of the wait before the slowest handler began.
            r.ipi_delivery_cycles = r.ipi_delivery_cycles.min(r.ack_wait_cycles);
            self.flush_complete(c, f);
        }
        self.sync_frees_done(c, synced);
        // A completed flush that freed page tables may have started a walker sync.
        if !self.k.cpus[c].ack_slots.is_empty() {
            self.begin_ack_wait(c);
        }
    }
}

/// Which IPIs of a round (to `targets`, in order) cost an ICR write: every one in x2APIC
/// physical mode; in cluster mode, the first of each run of targets in one cluster (the
/// logical destination then names several CPUs of the cluster at once).
pub(crate) fn icr_writes(mode: ApicMode, cluster_size: u32, targets: &[usize]) -> Vec<bool> {
    let cluster = cluster_size.max(1) as usize;
    let mut last = usize::MAX;
    targets
        .iter()
        .map(|&t| match mode {
            ApicMode::X2apicPhysical => true,
            ApicMode::X2apicCluster => {
                let new = t / cluster != last;
                last = t / cluster;
                new
            }
        })
        .collect()
}

/// When a CPU polling ack lines from `start` is done: `reads` are (release time, line
/// transfer) in polling order, each read starting once its line is released and the
/// previous read is done; `irqs` are the (begin, end) of the interrupts it took, in
/// order. An interrupt that begins before a read completes holds the read until it
/// returns, and the read starts over.
fn poll_timeline(
    start: u64,
    reads: impl IntoIterator<Item = (u64, u64)>,
    irqs: &[(u64, u64)],
) -> u64 {
    let mut done = start;
    let mut pending = irqs.iter().peekable();
    for (released, x) in reads {
        let mut s = done.max(released);
        while let Some(&&(begin, end)) = pending.peek() {
            if begin >= s + x {
                break;
            }
            s = s.max(end);
            pending.next();
        }
        done = s + x;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::{icr_writes, poll_timeline};
    use crate::profile::ApicMode;

    #[test]
    fn one_icr_write_per_target_or_per_cluster_run() {
        let t = [1, 2, 3, 17, 18, 40];
        assert_eq!(icr_writes(ApicMode::X2apicPhysical, 16, &t), vec![true; 6]);
        assert_eq!(
            icr_writes(ApicMode::X2apicCluster, 16, &t),
            vec![true, false, false, true, false, true]
        );
        assert!(icr_writes(ApicMode::X2apicCluster, 16, &[]).is_empty());
    }

    #[test]
    fn interrupts_delay_only_the_reads_they_overlap() {
        // No interrupts: sequential reads after their releases.
        assert_eq!(poll_timeline(0, [(100, 5), (50, 5)], &[]), 110);
        // An interrupt over while the CPU only waited for a release costs nothing.
        assert_eq!(poll_timeline(0, [(100, 5)], &[(10, 20)]), 105);
        // One that begins during a read restarts it after the handler.
        assert_eq!(poll_timeline(0, [(100, 5)], &[(102, 130)]), 135);
        // One that runs past a release delays the read to its end.
        assert_eq!(poll_timeline(0, [(100, 5)], &[(90, 120)]), 125);
        // Back-to-back interrupts both count; one after the last read does not.
        assert_eq!(poll_timeline(0, [(100, 5)], &[(90, 120), (121, 140), (200, 210)]), 145);
    }
}
