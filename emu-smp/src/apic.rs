//! Local APICs and cross-CPU function calls (kernel/smp.c `smp_call_function_many_cond`
//! and `flush_smp_call_function_queue`): per-CPU call queues, IPIs as timestamped
//! messages (ICR writes per target or per x2APIC cluster, delivery latency by distance),
//! receiver interrupt entry and exit, idle-state exit, and the initiator's wait for acks
//! as an explicit state in which the other CPUs keep advancing (DESIGN.md principle 5).

use crate::machine::{fp, Machine};
use crate::profile::ApicMode;
use crate::tlbflush::FlushInfo;

/// A queued cross-CPU function call (`call_single_data`): a flush request.
#[derive(Clone, Copy, Debug)]
pub struct Csd {
    /// The flush to run.
    pub info: FlushInfo,
    /// Id of the ack slot.
    pub id: usize,
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

    /// smp_call_function_many_cond: queue the flush on each target's call queue, and
    /// send an IPI to the targets whose queue was empty (one ICR write per target, or per
    /// x2APIC cluster). Returns the ack slots to wait for, with their targets.
    pub(crate) fn smp_call_function_many(
        &mut self,
        c: usize,
        targets: &[usize],
        info: &FlushInfo,
    ) -> Vec<(usize, usize)> {
        let mut acks = Vec::with_capacity(targets.len());
        let mut need_ipi = Vec::new();
        for &t in targets {
            let id = self.ack_fp.len();
            self.ack_fp.push(None);
            acks.push((id, t));
            // llist_add onto the target's call_single_queue: a locked cmpxchg on a line
            // the target owns, one after another.
            let rfo = self.mem.caches.transfer_fp(t, c);
            self.charge(c, rfo);
            if self.cores[t].callq.is_empty() {
                need_ipi.push(t);
            }
            let wait_from_fp = self.now(c);
            self.cores[t].callq.push_back(Csd { info: *info, id, wait_from_fp });
        }
        let icr = fp(self.profile.apic.icr_write_cycles);
        let cluster = self.profile.apic.cluster_size.max(1) as usize;
        let mut last_cluster = usize::MAX;
        for &t in &need_ipi {
            let write = match self.profile.apic.mode {
                ApicMode::X2apicPhysical => true,
                ApicMode::X2apicCluster => t / cluster != last_cluster,
            };
            if write {
                self.charge(c, icr);
                self.cores[c].stats.icr_writes += 1;
                self.shootdowns[info.record].icr_writes += 1;
                last_cluster = t / cluster;
            }
            let arrival = self.now(c) + self.delivery_fp(c, t);
            self.ipi_seq += 1;
            let ipi = PendingIpi { arrival_fp: arrival, seq: self.ipi_seq, from: c };
            let pos = self.cores[t].ipis.partition_point(|p| p < &ipi);
            self.cores[t].ipis.insert(pos, ipi);
            self.cores[c].stats.ipis_sent += 1;
            self.shootdowns[info.record].ipis_sent += 1;
            self.trace_ipi(c, t, self.now(c), arrival);
        }
        acks
    }

    /// Handles the IPIs that reached CPU `k` by local time `upto`: interrupt entry,
    /// every queued function call, interrupt exit. An idle CPU first leaves its idle
    /// state (paying its exit latency).
    pub(crate) fn handle_ipis(&mut self, k: usize, upto: u64) {
        while let Some(&ipi) = self.cores[k].ipis.first() {
            if ipi.arrival_fp > upto {
                break;
            }
            self.cores[k].ipis.remove(0);
            self.advance(k, ipi.arrival_fp);
            if self.cores[k].current.is_none() {
                self.leave_idle(k);
            }
            let t0 = self.now(k);
            self.charge(k, fp(self.profile.apic.irq_entry_cycles));
            self.cores[k].stats.ipis_received += 1;
            let mut handled = Vec::new();
            let mut handled_ids = Vec::new();
            while let Some(csd) = self.cores[k].callq.pop_front() {
                let before = self.now(k);
                // From the initiator's wait to the handler: IPI delivery, and any wait
                // for a receiver that was asleep or handling something else.
                let r = &mut self.shootdowns[csd.info.record];
                r.ipi_delivery_cycles =
                    r.ipi_delivery_cycles.max(t0.saturating_sub(csd.wait_from_fp) >> 8);
                // The csd (and the queue head) were written by the initiator.
                let miss = self.mem.caches.transfer_fp(csd.info.initiator, k);
                self.charge(k, fp(self.profile.apic.call_function_cycles) + miss);
                self.flush_tlb_func(k, &csd.info);
                // csd_unlock: the release store to the initiator's csd line.
                self.ack_fp[csd.id] = Some(self.now(k));
                handled.push((csd.info.record, self.now(k) - before));
                handled_ids.push(csd.info.record);
            }
            self.charge(k, fp(self.profile.apic.irq_exit_cycles));
            let t1 = self.now(k);
            // The interrupt's entry and exit are shared by the calls it served.
            let shared =
                (t1 - t0 - handled.iter().map(|h| h.1).sum::<u64>()) / handled.len().max(1) as u64;
            for (rec, own) in handled {
                let r = &mut self.shootdowns[rec];
                r.victim_cycles += (own + shared) >> 8;
                r.victims += 1;
            }
            self.cores[k].stats.irq_cycles += (t1 - t0) >> 8;
            if self.cores[k].waiting > 0 {
                self.cores[k].wait_irqs.push((t0, t1));
            }
            if self.trace.is_some() {
                let ids: Vec<String> = handled_ids.iter().map(|i| i.to_string()).collect();
                self.trace_span(k, &format!("flush IPI (shootdowns {})", ids.join(",")), t0, t1);
            }
            if self.cores[k].current.is_none() && self.cores[k].runq.is_empty() {
                self.enter_idle(k);
            }
        }
    }

    /// csd_lock_wait for every ack slot, in target order: the waiting CPU stays in its
    /// kernel, interrupts on, while the other CPUs advance. Each csd line was last
    /// written by its target (csd_unlock), so reading it costs a line transfer once the
    /// target has released it; the reads are sequential, and interrupts taken while
    /// polling delay them.
    ///
    /// The loop below runs the other CPUs in event order until every ack is set, and
    /// this CPU takes its interrupts as they arrive. One may arrive after the polling
    /// timeline ends (a read of the last line was still due): its time stays on this
    /// CPU's clock, with the gap before it, and goes to `post_wait_fp` so that the
    /// shootdown's latency leaves it out. That gap is an artefact of running the wait
    /// as a nested loop; it is rare and small (at most one line transfer).
    pub(crate) fn wait_for_acks(&mut self, c: usize, acks: Vec<(usize, usize)>) {
        if acks.is_empty() {
            return;
        }
        let start = self.now(c);
        // The handlers all run inside this wait: delivery is measured from here.
        for &(id, target) in &acks {
            if let Some(csd) = self.cores[target].callq.iter_mut().find(|q| q.id == id) {
                csd.wait_from_fp = start;
            }
        }
        self.cores[c].waiting += 1;
        let outer_irqs = std::mem::take(&mut self.cores[c].wait_irqs);
        loop {
            if acks.iter().all(|&(id, _)| self.ack_fp[id].is_some()) {
                break;
            }
            if !self.step() {
                // Nothing can happen any more: a model bug; stop rather than spin.
                self.fail(crate::machine::SimError::Deadlock(format!(
                    "CPU {c} waits for flush acks that can never arrive"
                )));
                break;
            }
            if self.outcome.is_some() {
                break;
            }
        }
        let irqs = std::mem::replace(&mut self.cores[c].wait_irqs, outer_irqs);
        self.cores[c].waiting -= 1;
        // The polling timeline: each read starts once its target released the line and
        // the previous read is done; an interrupt that begins before a read completes
        // holds it until the handler returns, and the read starts over.
        let reads: Vec<(u64, u64)> = acks
            .iter()
            .map(|&(id, t)| (self.ack_fp[id].unwrap_or(start), self.mem.caches.transfer_fp(t, c)))
            .collect();
        let done = poll_timeline(start, &reads, &irqs);
        let now = self.now(c);
        self.advance(c, done);
        self.cores[c].post_wait_fp += now.saturating_sub(done);
        self.cores[c].stats.ack_wait_cycles += (done - start) >> 8;
        self.trace_span(c, "wait for flush acks", start, done);
    }
}

/// When a CPU polling ack lines from `start` is done: `reads` are (release time, line
/// transfer) in polling order, each read starting once its line is released and the
/// previous read is done; `irqs` are the (begin, end) of the interrupts it took, in
/// order. An interrupt that begins before a read completes holds the read until it
/// returns, and the read starts over.
fn poll_timeline(start: u64, reads: &[(u64, u64)], irqs: &[(u64, u64)]) -> u64 {
    let mut done = start;
    let mut pending = irqs.iter().peekable();
    for &(released, x) in reads {
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
    use super::poll_timeline;

    #[test]
    fn interrupts_delay_only_the_reads_they_overlap() {
        // No interrupts: sequential reads after their releases.
        assert_eq!(poll_timeline(0, &[(100, 5), (50, 5)], &[]), 110);
        // An interrupt over while the CPU only waited for a release costs nothing.
        assert_eq!(poll_timeline(0, &[(100, 5)], &[(10, 20)]), 105);
        // One that begins during a read restarts it after the handler.
        assert_eq!(poll_timeline(0, &[(100, 5)], &[(102, 130)]), 135);
        // One that runs past a release delays the read to its end.
        assert_eq!(poll_timeline(0, &[(100, 5)], &[(90, 120)]), 125);
        // Back-to-back interrupts both count; one after the last read does not.
        assert_eq!(poll_timeline(0, &[(100, 5)], &[(90, 120), (121, 140), (200, 210)]), 145);
    }
}
