//! Per-shootdown records, mm_cpumask samples, and the coherence oracle's check after
//! each completed flush.

use crate::machine::Machine;
use crate::stats::ShootdownRecord;
use crate::tlbflush::{kern_pcid, FlushInfo, Reason, FLUSH_ALL};

/// The per-shootdown records of a run.
#[derive(Debug, Default)]
pub struct Records {
    all: Vec<ShootdownRecord>,
}

impl Records {
    /// Adds a record; returns its id.
    pub fn push(&mut self, mut r: ShootdownRecord) -> usize {
        r.id = self.all.len();
        self.all.push(r);
        self.all.len() - 1
    }

    /// The record `id`.
    pub fn get_mut(&mut self, id: usize) -> &mut ShootdownRecord {
        &mut self.all[id]
    }

    /// A page walk brought back a translation that shootdown `id` removed.
    pub fn refill(&mut self, id: usize) {
        if let Some(r) = self.all.get_mut(id) {
            r.refills += 1;
        }
    }

    /// Every record, oldest first.
    pub fn all(&self) -> &[ShootdownRecord] {
        &self.all
    }
}

impl Machine {
    /// Opens the record of a shootdown started by core `c` at local time `t0`.
    pub(crate) fn begin_shootdown(
        &mut self,
        c: usize,
        mm: u32,
        reason: Reason,
        pages: i64,
        freed_tables: bool,
        t0: u64,
    ) -> usize {
        let weight = self.mms.get(&mm).map_or(0, |m| m.ctx.cpumask.weight());
        self.kstats.shootdowns += 1;
        self.records.push(ShootdownRecord {
            id: 0,
            initiator: c,
            mm,
            reason,
            start_ns: self.ns_of(t0),
            pages,
            full: pages < 0,
            freed_tables,
            cpumask_weight: weight,
            targets: 0,
            to_idle: 0,
            to_lazy: 0,
            ipis_sent: 0,
            icr_writes: 0,
            invlpgb: 0,
            latency_cycles: 0,
            victims: 0,
            victim_cycles: 0,
            ipi_delivery_cycles: 0,
            ack_wait_cycles: 0,
            refills: 0,
        })
    }

    /// Closes a shootdown record with the initiator's latency.
    pub(crate) fn end_shootdown(&mut self, id: usize, latency_fp: u64) {
        self.records.get_mut(id).latency_cycles = latency_fp >> 8;
    }

    /// Samples the weight of `mm`'s cpumask after core `c` changed it.
    pub(crate) fn note_cpumask(&mut self, c: usize, mm: u32) {
        let w = self.mms.get(&mm).map_or(0, |m| m.ctx.cpumask.weight());
        let ns = self.ns_of(self.now(c));
        if self.cpumask_samples.len() < 1_000_000 {
            self.cpumask_samples.push((ns, mm, w));
        }
        self.trace_counter(c, mm, w);
    }

    /// Coherence oracle, when a flush has completed (been reported complete to its
    /// initiator): every core that may still hold translations of the mm under a
    /// dynamic ASID gets the entries that went stale by generation `upto` marked; a later
    /// use of one is a violation. Cores the flush reached have none left; lazy cores and
    /// cores that switched away flush before they can use the mm again, so only a wrong
    /// strategy leaves a marked entry that gets used.
    pub(crate) fn oracle_check_after_flush(&mut self, info: &FlushInfo, upto: u64) {
        if !self.oracle {
            return;
        }
        let Some(ctx_id) = self.mms.get(&info.mm).map(|m| m.ctx.ctx_id) else { return };
        let (start, end) =
            if info.end == FLUSH_ALL { (0, u64::MAX) } else { (info.start, info.end) };
        for k in 0..self.cores.len() {
            let slots: Vec<u16> = self.cores[k]
                .tlb
                .ctxs
                .iter()
                .enumerate()
                .filter(|(_, s)| s.0 == ctx_id)
                .map(|(a, _)| a as u16)
                .collect();
            for asid in slots {
                self.mem.oracle_mark(k, kern_pcid(asid), start, end, upto);
            }
        }
    }
}
