//! Per-shootdown records, mm_cpumask samples, and the coherence oracle's check after
//! each completed flush.

use crate::machine::Machine;
use crate::stats::ShootdownRecord;
use crate::tlbflush::{kern_pcid, FlushInfo, Reason, FLUSH_ALL};
use serde::Serialize;

/// Where the per-shootdown records of a run go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RecordSink {
    /// Kept in memory and returned in the statistics (grows with the run).
    #[default]
    Memory,
    /// Written to this file as they complete, one JSON object per line (host memory stays
    /// bounded); the statistics hold only the aggregates.
    File(std::path::PathBuf),
    /// Not kept: only the aggregates.
    Drop,
}

/// Records a shootdown stays open for refills before it is written out: a refill of an
/// older one counts in the totals only (`late_refills`).
const WINDOW: usize = 1 << 12;

/// Sums over the shootdowns that involved other CPUs (IPIs or INVLPGB), and latency
/// histograms of those and of all, kept as records are written out.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RecordTotals {
    /// Shootdowns that involved other CPUs.
    pub remote: u64,
    /// Their remote targets.
    pub targets: u64,
    /// Of those, idle at the time.
    pub to_idle: u64,
    /// Of those, lazy.
    pub to_lazy: u64,
    /// Remote CPUs that ran them.
    pub victims: u64,
    /// Cycles those CPUs spent on them.
    pub victim_cycles: u64,
    /// Initiator cycles waiting for acks.
    pub ack_wait_cycles: u64,
    /// IPI delivery cycles (per shootdown, its slowest target).
    pub ipi_delivery_cycles: u64,
    /// Refills that followed them (within the record window).
    pub refills: u64,
    /// Refills of any shootdown counted after its record was written out.
    pub late_refills: u64,
}

/// The per-shootdown records of a run: open and recent ones in a window, older ones
/// written to the sink; the aggregates cover every record.
#[derive(Debug, Default)]
pub struct Records {
    window: std::collections::VecDeque<ShootdownRecord>,
    /// Id of the window's first record.
    base: usize,
    sink: Sink,
    /// Aggregates over the records written out.
    pub totals: RecordTotals,
    /// Initiator latency of the shootdowns that involved other CPUs.
    pub remote_latency: Histogram,
    /// Initiator latency of all shootdowns.
    pub all_latency: Histogram,
    /// The first error writing the records file.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
enum Sink {
    #[default]
    Memory,
    Kept(Vec<ShootdownRecord>),
    File(std::io::BufWriter<std::fs::File>),
    Drop,
}

impl Records {
    /// Records going to `sink`.
    pub fn new(sink: &RecordSink) -> Result<Self, std::io::Error> {
        let sink = match sink {
            RecordSink::Memory => Sink::Kept(Vec::new()),
            RecordSink::File(p) => Sink::File(std::io::BufWriter::new(std::fs::File::create(p)?)),
            RecordSink::Drop => Sink::Drop,
        };
        Ok(Records { sink, ..Records::default() })
    }

    /// Adds a record; returns its id.
    pub fn push(&mut self, mut r: ShootdownRecord) -> usize {
        let id = self.base + self.window.len();
        r.id = id;
        self.window.push_back(r);
        if self.window.len() > WINDOW {
            if let Some(old) = self.window.pop_front() {
                self.base += 1;
                self.write_out(old);
            }
        }
        id
    }

    /// The record `id`, which must still be in the window (it is while its shootdown is
    /// in flight: a window holds far more records than CPUs).
    pub fn get_mut(&mut self, id: usize) -> &mut ShootdownRecord {
        let i = id.checked_sub(self.base).filter(|&i| i < self.window.len());
        &mut self.window[i.expect("a shootdown record in flight left the window")]
    }

    /// A page walk brought back a translation that shootdown `id` removed.
    pub fn refill(&mut self, id: usize) {
        match id.checked_sub(self.base).and_then(|i| self.window.get_mut(i)) {
            Some(r) => r.refills += 1,
            None => self.totals.late_refills += 1,
        }
    }

    fn write_out(&mut self, r: ShootdownRecord) {
        let t = &mut self.totals;
        if r.targets > 0 || r.invlpgb > 0 {
            t.remote += 1;
            t.targets += u64::from(r.targets);
            t.to_idle += u64::from(r.to_idle);
            t.to_lazy += u64::from(r.to_lazy);
            t.victims += u64::from(r.victims);
            t.victim_cycles += r.victim_cycles;
            t.ack_wait_cycles += r.ack_wait_cycles;
            t.ipi_delivery_cycles += r.ipi_delivery_cycles;
            t.refills += r.refills;
            self.remote_latency.add(r.latency_cycles);
        }
        self.all_latency.add(r.latency_cycles);
        match &mut self.sink {
            Sink::Kept(v) => v.push(r),
            Sink::File(f) => {
                use std::io::Write;
                let line = serde_json::to_string(&r).map_err(std::io::Error::other);
                if let Err(e) = line.and_then(|l| writeln!(f, "{l}")) {
                    self.error.get_or_insert(e.to_string());
                }
            }
            Sink::Memory | Sink::Drop => {}
        }
    }

    /// Writes out every record still in the window (at the end of a run) and flushes the
    /// sink; returns the records kept in memory, if they are.
    pub fn finish(&mut self) -> Vec<ShootdownRecord> {
        while let Some(r) = self.window.pop_front() {
            self.base += 1;
            self.write_out(r);
        }
        match &mut self.sink {
            Sink::Kept(v) => std::mem::take(v),
            Sink::File(f) => {
                use std::io::Write;
                if let Err(e) = f.flush() {
                    self.error.get_or_insert(e.to_string());
                }
                Vec::new()
            }
            Sink::Memory | Sink::Drop => Vec::new(),
        }
    }

    /// Records written out so far plus those in the window.
    pub fn count(&self) -> usize {
        self.base + self.window.len()
    }
}

/// Samples kept in bounded memory: every `stride`-th one, the stride doubling (and every
/// other kept sample dropped) whenever [`Samples::CAP`] are kept, so that the kept ones
/// stay evenly spread over the whole run.
#[derive(Clone, Debug, Default)]
pub struct Samples<T> {
    kept: Vec<T>,
    stride: u64,
    seen: u64,
}

impl<T: Clone> Samples<T> {
    /// Most samples kept.
    pub const CAP: usize = 1 << 16;

    /// Offers a sample.
    pub fn add(&mut self, v: T) {
        let stride = self.stride.max(1);
        if self.seen % stride == 0 {
            if self.kept.len() == Self::CAP {
                let halved: Vec<T> = self.kept.iter().step_by(2).cloned().collect();
                self.kept = halved;
                self.stride = stride * 2;
            }
            if self.seen % self.stride.max(1) == 0 {
                self.kept.push(v);
            }
        }
        self.seen += 1;
    }

    /// The kept samples, in order.
    pub fn kept(&self) -> &[T] {
        &self.kept
    }
}

/// A latency distribution in bounded memory (an HDR histogram with three significant
/// digits: a recorded value is within 0.1% of the sample); mean and maximum exact.
#[derive(Clone, Debug)]
pub struct Histogram {
    h: hdrhistogram::Histogram<u64>,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        let mut h = hdrhistogram::Histogram::new(3).expect("3 significant digits is valid");
        h.auto(true);
        Histogram { h, sum: 0, max: 0 }
    }
}

impl Histogram {
    /// Adds a sample.
    pub fn add(&mut self, v: u64) {
        if self.h.record(v).is_err() {
            // Beyond what the histogram can grow to: counted at its highest value.
            self.h.saturating_record(v);
        }
        self.sum += u128::from(v);
        self.max = self.max.max(v);
    }

    /// Count, mean, percentiles (nearest rank, to three significant digits) and maximum.
    pub fn summary(&self) -> crate::stats::LatencySummary {
        let count = self.h.len();
        if count == 0 {
            return crate::stats::LatencySummary::default();
        }
        let pct = |q: f64| self.h.lowest_equivalent(self.h.value_at_quantile(q));
        crate::stats::LatencySummary {
            count,
            mean: self.sum as f64 / count as f64,
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            max: self.max,
        }
    }

    /// (lower bound, count) of the non-empty buckets of a log-linear histogram with
    /// `per_octave` buckets per power of two (a power of two; smaller values exact).
    pub fn buckets(&self, per_octave: u64) -> Vec<(u64, u64)> {
        let mut out: std::collections::BTreeMap<u64, u64> = Default::default();
        let bits = per_octave.trailing_zeros();
        for v in self.h.iter_recorded() {
            let b = self.h.lowest_equivalent(v.value_iterated_to());
            let f = if b < 2 * per_octave {
                b
            } else {
                let shift = 63 - b.leading_zeros() - bits;
                (b >> shift) << shift
            };
            *out.entry(f).or_insert(0) += v.count_at_value();
        }
        out.into_iter().collect()
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
        let weight = self.k.mms.get(&mm).map_or(0, |m| m.ctx.cpumask.weight());
        self.probes.kstats.shootdowns += 1;
        self.probes.records.push(ShootdownRecord {
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
        self.probes.records.get_mut(id).latency_cycles = latency_fp >> 8;
    }

    /// Samples the weight of `mm`'s cpumask after core `c` changed it.
    pub(crate) fn note_cpumask(&mut self, c: usize, mm: u32) {
        let w = self.k.mms.get(&mm).map_or(0, |m| m.ctx.cpumask.weight());
        let ns = self.ns_of(self.now(c));
        self.probes.cpumask_samples.add((ns, mm, w));
        self.trace_counter(c, mm, w);
    }

    /// Coherence oracle, when a flush has completed (been reported complete to its
    /// initiator): every core that may still hold translations of the mm under a
    /// dynamic ASID gets the entries that went stale by generation `upto` marked; a later
    /// use of one is a violation. Cores the flush reached have none left; lazy cores and
    /// cores that switched away flush before they can use the mm again, so only a wrong
    /// strategy leaves a marked entry that gets used.
    pub(crate) fn oracle_check_after_flush(&mut self, info: &FlushInfo, upto: u64) {
        if !self.probes.oracle {
            return;
        }
        let Some(ctx_id) = self.k.mms.get(&info.mm).map(|m| m.ctx.ctx_id) else { return };
        let (start, end) =
            if info.end == FLUSH_ALL { (0, u64::MAX) } else { (info.start, info.end) };
        for k in 0..self.hw.cpus.len() {
            for asid in 0..self.k.cpus[k].tlb.ctxs.len() {
                if self.k.cpus[k].tlb.ctxs[asid].0 == ctx_id {
                    self.hw.mem.oracle_mark(k, kern_pcid(asid as u16), start, end, upto);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_bounded_and_evenly_spread() {
        let mut s = Samples::default();
        for i in 0..(Samples::<u64>::CAP as u64 * 5) {
            s.add(i);
        }
        let k = s.kept();
        assert!(k.len() <= Samples::<u64>::CAP && k.len() > Samples::<u64>::CAP / 4);
        let step = k[1] - k[0];
        assert!(k.windows(2).all(|w| w[1] - w[0] == step), "evenly spaced");
        assert_eq!(k[0], 0);
    }

    #[test]
    fn histogram_percentiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.add(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 100_000);
        assert_eq!(s.max, 100_000);
        assert!((s.mean - 50_000.5).abs() < 1e-6);
        for (p, want) in [(s.p50, 50_000.0), (s.p90, 90_000.0), (s.p99, 99_000.0)] {
            assert!((p as f64 - want).abs() <= want / 500.0, "{p} vs {want}");
        }
        // Small values are exact; coarser buckets merge.
        let mut h = Histogram::default();
        for v in [5, 5, 1000, 1010, 1030, 3] {
            h.add(v);
        }
        assert_eq!(h.buckets(8), vec![(3, 1), (5, 2), (960, 2), (1024, 1)]);
    }
}
