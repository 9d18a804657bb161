//! Per-point results: what a sweep stores for each point (the point, its status, a
//! summary, and the run's statistics), the summary's derivation from `emu run --stats`
//! JSON, and the CSV table over a sweep.

use crate::spec::Point;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the point-file format; points stored under another are run again (2: the
/// ack-wait timeline, IPI delivery measured from the wait, leave_mm in deep idle; 3: the
/// seed sets the tick's phase, the `livelock` status, the mm_cid walk-race counts).
pub const POINT_FORMAT: u32 = 3;

/// Most bytes of guest stdout kept in a point file.
pub const STDOUT_KEPT: usize = 4096;

/// Most mm_cpumask weight samples kept in a point file.
pub const CPUMASK_SAMPLES_KEPT: usize = 2000;

/// The stored result of one point (`points/ID.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PointFile {
    /// Format version.
    pub format: u32,
    /// Identifier (the file name's stem).
    pub id: String,
    /// The point.
    pub point: Point,
    /// `ok`; `livelock` when the run stopped on an mm_cid live lock; or `failed`.
    /// `error` says why for the last two.
    pub status: String,
    /// What went wrong.
    pub error: Option<String>,
    /// The start of the guest's stdout.
    pub guest_stdout: String,
    /// Derived figures (also the CSV row).
    pub summary: Option<Summary>,
    /// The run's statistics (`emu run --stats` schema), with the per-shootdown records
    /// dropped unless the sweep kept them and the cpumask samples thinned.
    pub stats: Option<Value>,
}

impl PointFile {
    /// True when the point ran to a clean exit.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }

    /// True when the point has its result: a clean exit, or a live lock (a finding
    /// that a rerun would only repeat).
    pub fn finished(&self) -> bool {
        self.ok() || self.status == "livelock"
    }
}

/// Figures derived from one run's statistics. Per-shootdown figures are means over the
/// shootdowns that involved other CPUs (IPIs or INVLPGB).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Guest instructions.
    pub instructions: u64,
    /// Simulated cycles (the largest core clock).
    pub cycles: u64,
    /// Simulated nanoseconds.
    pub simulated_ns: u64,
    /// flush_tlb_mm_range calls.
    pub shootdowns: u64,
    /// Of those, involving other CPUs.
    pub remote_shootdowns: u64,
    /// IPIs sent.
    pub ipis_sent: u64,
    /// INVLPGB instructions.
    pub invlpgb: u64,
    /// Coherence-oracle violations.
    pub oracle_violations: u64,
    /// Initiator latency, cycles: mean, p50, p90, p99, max.
    pub latency_mean: f64,
    /// Median.
    pub latency_p50: u64,
    /// 90th percentile.
    pub latency_p90: u64,
    /// 99th percentile.
    pub latency_p99: u64,
    /// Maximum.
    pub latency_max: u64,
    /// Remote CPUs a flush was queued for, per shootdown.
    pub targets_per_shootdown: f64,
    /// IPIs per shootdown.
    pub ipis_per_shootdown: f64,
    /// Initiator cycles outside the wait for acks, per shootdown (sending, queueing,
    /// the local flush, INVLPGB and TLBSYNC).
    pub initiator_cycles: f64,
    /// Initiator cycles waiting for acks (IPI delivery and the remote flushes), per
    /// shootdown.
    pub ack_wait_cycles: f64,
    /// Of that wait, the part until the slowest target's handler started: IPI
    /// delivery, idle-state exits, receivers busy with other interrupts (per shootdown).
    #[serde(default)]
    pub ipi_delivery_cycles: f64,
    /// Cycles taken from the remote CPUs, per shootdown.
    pub victim_cycles: f64,
    /// Page walks that brought back a flushed translation, per shootdown.
    pub refills: f64,
    /// Those walks at the run's mean walk cost, cycles per shootdown.
    pub refill_cycles: f64,
    /// Context switches, all CPUs.
    #[serde(default)]
    pub context_switches: u64,
    /// Locked RMWs on mm_count lines (lazy references, mmput's mmdrop).
    #[serde(default)]
    pub mm_count_atomics: u64,
    /// Those atomics per context switch.
    #[serde(default)]
    pub atomics_per_switch: f64,
    /// Their cycles spent on the line's transfers, per atomic.
    #[serde(default)]
    pub mm_count_transfer_cycles: f64,
    /// Final mmdrops (__mmdrop).
    #[serde(default)]
    pub final_mmdrops: u64,
    /// Lazy-mm shootdown IPIs per final mmdrop.
    #[serde(default)]
    pub lazy_ipis_per_mmdrop: f64,
    /// Cycles their handlers took from the remote CPUs, per final mmdrop.
    #[serde(default)]
    pub lazy_victim_cycles_per_mmdrop: f64,
    /// Cycles a torn-down mm's mm_struct and PGD stayed held by lazy references, mean
    /// over the ones freed.
    #[serde(default)]
    pub lazy_held_cycles: f64,
    /// CPUs found using a freed mm (oracle kind lazy-mm-uaf).
    #[serde(default)]
    pub lazy_mm_uaf: u64,
    /// mm_cid: atomic operations on the CID bitmaps.
    #[serde(default)]
    pub mm_cid_bitmap_ops: u64,
    /// mm_cid: schedule-ins that took a fast path.
    #[serde(default)]
    pub mm_cid_fast_path: u64,
    /// mm_cid: schedule-ins that took a slow path.
    #[serde(default)]
    pub mm_cid_slow_path: u64,
    /// mm_cid: mode switches, both directions.
    #[serde(default)]
    pub mm_cid_mode_switches: u64,
    /// mm_cid: TRANSIT CIDs released at schedule-out.
    #[serde(default)]
    pub mm_cid_transit_drops: u64,
    /// mm_cid: cycles of the longest fixup walk.
    #[serde(default)]
    pub mm_cid_fixup_cycles_max: u64,
    /// mm_cid: mean cycles of a schedule-in (`mm_cid_schedin`).
    #[serde(default)]
    pub mm_cid_schedin_cycles: f64,
    /// Walker sync: retire events (flushes completed with page tables to free).
    #[serde(default)]
    pub walker_retire_events: u64,
    /// Walker sync: page-table pages retired.
    #[serde(default)]
    pub walker_tables_retired: u64,
    /// Walker sync: initiator cycles from the flush's completion to the free (sync
    /// IPIs and their wait, the tracker scan), per retire event.
    #[serde(default)]
    pub walker_cost_per_retire: f64,
    /// Walker sync: the largest of those, cycles.
    #[serde(default)]
    pub walker_cost_max: u64,
    /// Walker sync: CPUs interrupted by sync IPIs, per retire event.
    #[serde(default)]
    pub walker_interrupted_per_retire: f64,
    /// Walker sync: of those, idle CPUs woken, per retire event.
    #[serde(default)]
    pub walker_idle_woken_per_retire: f64,
    /// GUP-fast walks (shared futex operations).
    #[serde(default)]
    pub gup_fast_walks: u64,
    /// Cycles from local_irq_save to local_irq_restore, per GUP-fast walk.
    #[serde(default)]
    pub gup_fast_cycles_per_walk: f64,
    /// Of those, the walker tracker's stores (`targeted`), per walk.
    #[serde(default)]
    pub walker_tracker_cycles_per_walk: f64,
    /// RCU grace periods started (`rcu`, `linux`).
    #[serde(default)]
    pub grace_periods: u64,
    /// The mean length of the grace periods that ended (cycles).
    #[serde(default)]
    pub grace_period_cycles_mean: f64,
    /// The longest, cycles.
    #[serde(default)]
    pub grace_period_cycles_max: u64,
    /// Page-table pages waiting for a grace period: the high-water mark.
    #[serde(default)]
    pub rcu_held_tables_max: u64,
    /// Walker reads of a retired table (oracle kind walker-uaf).
    #[serde(default)]
    pub walker_uaf: u64,
    /// Kernel paths preempted between two steps (`--preempt full` or `lazy`).
    #[serde(default)]
    pub kernel_preemptions: u64,
    /// mm_cid fixup walks preempted.
    #[serde(default)]
    pub mm_cid_walks_preempted: u64,
    /// Schedule-ins of tasks a task-to-CPU walk had not yet reached.
    #[serde(default)]
    pub mm_cid_walk_overtaken: u64,
    /// Schedule-ins that spun in mm_get_cid for want of a free CID.
    #[serde(default)]
    pub mm_cid_schedin_spins: u64,
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

impl Summary {
    /// Derives the summary from `emu run --stats` JSON: per-shootdown means from the
    /// run's `shootdown_totals` (or, in statistics from before them, the records).
    pub fn of(stats: &Value) -> Self {
        let t = &stats["totals"];
        let lat = &stats["shootdown_latency_cycles"];
        let remote = u(&lat["count"]);
        let per = |x: f64| if remote == 0 { 0.0 } else { x / remote as f64 };
        let cores = stats["per_core"].as_array().cloned().unwrap_or_default();
        let ack_wait: f64 = cores.iter().map(|c| f(&c["ack_wait_cycles"])).sum();
        let walks: f64 = cores.iter().map(|c| f(&c["mmu"]["walks"])).sum();
        let walk_cycles: f64 = cores.iter().map(|c| f(&c["mmu"]["walk_cycles"])).sum();
        let walk_cost = if walks > 0.0 { walk_cycles / walks } else { 0.0 };
        // Sums over the remote shootdowns: the run's totals (all of them, kept records
        // or not); statistics older than the totals carry only the records.
        let tot = &stats["shootdown_totals"];
        let (targets, victim, refills, ack_sum, delivery_sum) = if tot.is_object() {
            (
                f(&tot["targets"]),
                f(&tot["victim_cycles"]),
                f(&tot["refills"]),
                f(&tot["ack_wait_cycles"]),
                f(&tot["ipi_delivery_cycles"]),
            )
        } else {
            let records = stats["shootdowns"].as_array().cloned().unwrap_or_default();
            let remote: Vec<&Value> =
                records.iter().filter(|r| u(&r["targets"]) > 0 || u(&r["invlpgb"]) > 0).collect();
            let sum = |k: &str| remote.iter().map(|r| f(&r[k])).sum::<f64>();
            let ack = if remote.is_empty() { ack_wait } else { sum("ack_wait_cycles") };
            (sum("targets"), sum("victim_cycles"), sum("refills"), ack, sum("ipi_delivery_cycles"))
        };
        let latency_mean = f(&lat["mean"]);
        let ack_wait_cycles = per(ack_sum);
        let ipi_delivery_cycles = per(delivery_sum).min(ack_wait_cycles);
        let refills = per(refills);
        let lz = &stats["lazy_mm"];
        let switches: u64 = cores.iter().map(|c| u(&c["context_switches"])).sum();
        let atomics = u(&lz["mm_count_atomics"]);
        let mmdrops = u(&lz["final_mmdrops"]);
        let ratio = |x: f64, n: u64| if n == 0 { 0.0 } else { x / n as f64 };
        let ws = &stats["walker_sync"];
        let retires = u(&ws["retire_events"]);
        let gups = u(&ws["gup_fast_walks"]);
        let gps = u(&ws["grace_periods"]);
        Summary {
            instructions: u(&t["instructions"]),
            cycles: u(&t["cycles"]),
            simulated_ns: u(&t["simulated_ns"]),
            shootdowns: u(&t["shootdowns"]),
            remote_shootdowns: remote,
            ipis_sent: u(&t["ipis_sent"]),
            invlpgb: u(&t["invlpgb"]),
            oracle_violations: u(&t["oracle_violations"]),
            latency_mean,
            latency_p50: u(&lat["p50"]),
            latency_p90: u(&lat["p90"]),
            latency_p99: u(&lat["p99"]),
            latency_max: u(&lat["max"]),
            targets_per_shootdown: per(targets),
            ipis_per_shootdown: per(u(&t["ipis_sent"]) as f64),
            initiator_cycles: (latency_mean - ack_wait_cycles).max(0.0),
            ack_wait_cycles,
            ipi_delivery_cycles,
            victim_cycles: per(victim),
            refills,
            refill_cycles: refills * walk_cost,
            context_switches: switches,
            mm_count_atomics: atomics,
            atomics_per_switch: ratio(atomics as f64, switches),
            mm_count_transfer_cycles: ratio(f(&lz["mm_count_transfer_cycles"]), atomics),
            final_mmdrops: mmdrops,
            lazy_ipis_per_mmdrop: ratio(f(&lz["shootdown_ipis"]), mmdrops),
            lazy_victim_cycles_per_mmdrop: ratio(f(&lz["shootdown_victim_cycles"]), mmdrops),
            lazy_held_cycles: ratio(f(&lz["held_after_exit_cycles_total"]), mmdrops),
            lazy_mm_uaf: u(&lz["uaf"]),
            mm_cid_bitmap_ops: u(&stats["mm_cid"]["bitmap_ops"]),
            mm_cid_fast_path: u(&stats["mm_cid"]["fast_path"]),
            mm_cid_slow_path: u(&stats["mm_cid"]["slow_path"]),
            mm_cid_mode_switches: u(&stats["mm_cid"]["to_percpu"])
                + u(&stats["mm_cid"]["to_pertask"]),
            mm_cid_transit_drops: u(&stats["mm_cid"]["transit_drops"]),
            mm_cid_fixup_cycles_max: u(&stats["mm_cid"]["fixup_cycles_max"]),
            mm_cid_schedin_cycles: {
                let m = &stats["mm_cid"];
                let n = u(&m["fast_path"]) + u(&m["slow_path"]);
                if n == 0 {
                    0.0
                } else {
                    f(&m["schedin_cycles"]) / n as f64
                }
            },
            walker_retire_events: retires,
            walker_tables_retired: u(&ws["tables_retired"]),
            walker_cost_per_retire: ratio(f(&ws["initiator_cycles"]), retires),
            walker_cost_max: u(&ws["initiator_cycles_max"]),
            walker_interrupted_per_retire: ratio(f(&ws["cpus_interrupted"]), retires),
            walker_idle_woken_per_retire: ratio(f(&ws["idle_interrupted"]), retires),
            gup_fast_walks: gups,
            gup_fast_cycles_per_walk: ratio(f(&ws["gup_fast_cycles"]), gups),
            walker_tracker_cycles_per_walk: ratio(f(&ws["tracker_cycles"]), gups),
            grace_periods: gps,
            // Over the grace periods that ended (statistics from before that counter:
            // over those started).
            grace_period_cycles_mean: ratio(
                f(&ws["grace_period_cycles"]),
                ws.get("grace_periods_ended").map_or(gps, u),
            ),
            grace_period_cycles_max: u(&ws["grace_period_cycles_max"]),
            rcu_held_tables_max: u(&ws["rcu_held_tables_max"]),
            walker_uaf: u(&ws["walker_uaf"]),
            kernel_preemptions: cores.iter().map(|c| u(&c["kernel_preemptions"])).sum(),
            mm_cid_walks_preempted: u(&stats["mm_cid"]["walks_preempted"]),
            mm_cid_walk_overtaken: u(&stats["mm_cid"]["walk_overtaken"]),
            mm_cid_schedin_spins: u(&stats["mm_cid"]["schedin_spins"]),
        }
    }
}

/// Shrinks statistics for storage: drops the per-shootdown records (unless `keep`) and
/// keeps at most [`CPUMASK_SAMPLES_KEPT`] evenly spaced cpumask samples (the last one
/// always). Notes what was removed under `stored`.
pub fn reduce(mut stats: Value, keep_records: bool) -> Value {
    let mut note = serde_json::Map::new();
    if !keep_records {
        if let Some(r) = stats.get_mut("shootdowns").and_then(Value::as_array_mut) {
            note.insert("shootdown_records_dropped".into(), Value::from(r.len()));
            r.clear();
        }
    }
    if let Some(s) = stats.get_mut("cpumask_weight").and_then(Value::as_array_mut) {
        let n = s.len();
        if n > CPUMASK_SAMPLES_KEPT {
            let step = n.div_ceil(CPUMASK_SAMPLES_KEPT);
            let kept: Vec<Value> = s
                .iter()
                .enumerate()
                .filter(|(i, _)| i % step == 0 || *i == n - 1)
                .map(|(_, v)| v.clone())
                .collect();
            note.insert("cpumask_weight_samples".into(), Value::from(n));
            *s = kept;
        }
    }
    if let Some(o) = stats.as_object_mut() {
        o.insert("stored".into(), Value::Object(note));
    }
    stats
}

/// The CSV header of `summary.csv`.
pub const CSV_HEADER: [&str; 72] = [
    "id",
    "workload",
    "args",
    "profile",
    "cpumask",
    "flush",
    "cores",
    "seed",
    "status",
    "error",
    "instructions",
    "cycles",
    "simulated_ns",
    "shootdowns",
    "remote_shootdowns",
    "ipis_sent",
    "invlpgb",
    "oracle_violations",
    "latency_mean",
    "latency_p50",
    "latency_p90",
    "latency_p99",
    "latency_max",
    "targets_per_shootdown",
    "ipis_per_shootdown",
    "initiator_cycles",
    "ack_wait_cycles",
    "ipi_delivery_cycles",
    "victim_cycles",
    "refills",
    "refill_cycles",
    "command",
    "oracle",
    "guest_output_bytes",
    "lazy_mm",
    "context_switches",
    "mm_count_atomics",
    "atomics_per_switch",
    "mm_count_transfer_cycles",
    "final_mmdrops",
    "lazy_ipis_per_mmdrop",
    "lazy_victim_cycles_per_mmdrop",
    "lazy_held_cycles",
    "lazy_mm_uaf",
    "mm_cid_bitmap_ops",
    "mm_cid_fast_path",
    "mm_cid_slow_path",
    "mm_cid_mode_switches",
    "mm_cid_transit_drops",
    "mm_cid_fixup_cycles_max",
    "mm_cid_schedin_cycles",
    "mm_cid",
    "walker_sync",
    "walker_retire_events",
    "walker_tables_retired",
    "walker_cost_per_retire",
    "walker_cost_max",
    "walker_interrupted_per_retire",
    "walker_idle_woken_per_retire",
    "gup_fast_walks",
    "gup_fast_cycles_per_walk",
    "walker_tracker_cycles_per_walk",
    "grace_periods",
    "grace_period_cycles_mean",
    "grace_period_cycles_max",
    "rcu_held_tables_max",
    "walker_uaf",
    "preempt",
    "kernel_preemptions",
    "mm_cid_walks_preempted",
    "mm_cid_walk_overtaken",
    "mm_cid_schedin_spins",
];

/// Writes `summary.csv`: one row per point, in the sweep's order. A point without a
/// result file gets status `missing`.
pub fn write_csv(
    path: &std::path::Path,
    points: &[Point],
    results: &std::collections::BTreeMap<String, PointFile>,
) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for p in points {
        let id = p.id();
        let r = results.get(&id);
        let status = r.map_or("missing", |r| r.status.as_str());
        let error = r.and_then(|r| r.error.clone()).unwrap_or_default();
        let mut row = vec![
            id.clone(),
            p.workload.clone(),
            p.args.join(" "),
            p.profile.clone(),
            p.cpumask.clone(),
            p.flush.clone(),
            p.cores.to_string(),
            p.seed.to_string(),
            status.to_string(),
            error,
        ];
        let s = r.and_then(|r| r.summary.clone());
        match &s {
            Some(s) => row.extend([
                s.instructions.to_string(),
                s.cycles.to_string(),
                s.simulated_ns.to_string(),
                s.shootdowns.to_string(),
                s.remote_shootdowns.to_string(),
                s.ipis_sent.to_string(),
                s.invlpgb.to_string(),
                s.oracle_violations.to_string(),
                format!("{:.1}", s.latency_mean),
                s.latency_p50.to_string(),
                s.latency_p90.to_string(),
                s.latency_p99.to_string(),
                s.latency_max.to_string(),
                format!("{:.3}", s.targets_per_shootdown),
                format!("{:.3}", s.ipis_per_shootdown),
                format!("{:.1}", s.initiator_cycles),
                format!("{:.1}", s.ack_wait_cycles),
                format!("{:.1}", s.ipi_delivery_cycles),
                format!("{:.1}", s.victim_cycles),
                format!("{:.3}", s.refills),
                format!("{:.1}", s.refill_cycles),
            ]),
            None => row.extend(std::iter::repeat_n(String::new(), 21)),
        }
        row.push(p.command());
        row.push(p.oracle.to_string());
        row.push(r.map_or(0, |r| r.guest_stdout.len()).to_string());
        row.push(p.lazy_mm.clone());
        match &s {
            Some(s) => row.extend([
                s.context_switches.to_string(),
                s.mm_count_atomics.to_string(),
                format!("{:.3}", s.atomics_per_switch),
                format!("{:.1}", s.mm_count_transfer_cycles),
                s.final_mmdrops.to_string(),
                format!("{:.3}", s.lazy_ipis_per_mmdrop),
                format!("{:.1}", s.lazy_victim_cycles_per_mmdrop),
                format!("{:.1}", s.lazy_held_cycles),
                s.lazy_mm_uaf.to_string(),
            ]),
            None => row.extend(std::iter::repeat_n(String::new(), 9)),
        }
        match &s {
            Some(s) => row.extend([
                s.mm_cid_bitmap_ops.to_string(),
                s.mm_cid_fast_path.to_string(),
                s.mm_cid_slow_path.to_string(),
                s.mm_cid_mode_switches.to_string(),
                s.mm_cid_transit_drops.to_string(),
                s.mm_cid_fixup_cycles_max.to_string(),
                format!("{:.1}", s.mm_cid_schedin_cycles),
            ]),
            None => row.extend(std::iter::repeat_n(String::new(), 7)),
        }
        row.push(p.mm_cid.clone());
        row.push(p.walker_sync.clone());
        match &s {
            Some(s) => row.extend([
                s.walker_retire_events.to_string(),
                s.walker_tables_retired.to_string(),
                format!("{:.1}", s.walker_cost_per_retire),
                s.walker_cost_max.to_string(),
                format!("{:.3}", s.walker_interrupted_per_retire),
                format!("{:.3}", s.walker_idle_woken_per_retire),
                s.gup_fast_walks.to_string(),
                format!("{:.1}", s.gup_fast_cycles_per_walk),
                format!("{:.1}", s.walker_tracker_cycles_per_walk),
                s.grace_periods.to_string(),
                format!("{:.1}", s.grace_period_cycles_mean),
                s.grace_period_cycles_max.to_string(),
                s.rcu_held_tables_max.to_string(),
                s.walker_uaf.to_string(),
            ]),
            None => row.extend(std::iter::repeat_n(String::new(), 14)),
        }
        row.push(p.preempt.clone());
        match s {
            Some(s) => row.extend([
                s.kernel_preemptions.to_string(),
                s.mm_cid_walks_preempted.to_string(),
                s.mm_cid_walk_overtaken.to_string(),
                s.mm_cid_schedin_spins.to_string(),
            ]),
            None => row.extend(std::iter::repeat_n(String::new(), 4)),
        }
        w.write_record(&row)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))?;
    crate::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stats() -> Value {
        json!({
            "totals": {"instructions": 1000, "cycles": 5000, "simulated_ns": 2000, "shootdowns": 3,
                       "ipis_sent": 4, "invlpgb": 0, "oracle_violations": 0},
            "shootdown_latency_cycles": {"count": 2, "mean": 3000.0, "p50": 2000, "p90": 4000, "p99": 4000, "max": 4000},
            "per_core": [
                {"ack_wait_cycles": 1000, "mmu": {"walks": 10, "walk_cycles": 300}},
                {"ack_wait_cycles": 1000, "mmu": {"walks": 10, "walk_cycles": 100}}
            ],
            "shootdowns": [
                {"targets": 0, "invlpgb": 0, "victim_cycles": 0, "refills": 9, "ack_wait_cycles": 0, "ipi_delivery_cycles": 0},
                {"targets": 2, "invlpgb": 0, "victim_cycles": 600, "refills": 4, "ack_wait_cycles": 900, "ipi_delivery_cycles": 500},
                {"targets": 3, "invlpgb": 0, "victim_cycles": 900, "refills": 2, "ack_wait_cycles": 1100, "ipi_delivery_cycles": 700}
            ],
            "cpumask_weight": (0..5000).map(|i| json!([i, 1, i % 4])).collect::<Vec<_>>()
        })
    }

    #[test]
    fn lazy_mm_figures_are_per_switch_and_per_final_mmdrop() {
        let st = json!({
            "totals": {"instructions": 1, "cycles": 10, "simulated_ns": 5, "shootdowns": 0,
                       "ipis_sent": 0, "invlpgb": 0, "oracle_violations": 2},
            "shootdown_latency_cycles": {"count": 0, "mean": 0.0},
            "per_core": [{"context_switches": 6}, {"context_switches": 4}],
            "lazy_mm": {"mm_count_atomics": 25, "mm_count_transfer_cycles": 500,
                        "final_mmdrops": 2, "shootdown_ipis": 6,
                        "shootdown_victim_cycles": 3000, "held_after_exit_cycles_total": 800,
                        "uaf": 2}
        });
        let s = Summary::of(&st);
        assert_eq!((s.context_switches, s.mm_count_atomics, s.final_mmdrops), (10, 25, 2));
        assert!((s.atomics_per_switch - 2.5).abs() < 1e-9);
        assert!((s.mm_count_transfer_cycles - 20.0).abs() < 1e-9);
        assert!((s.lazy_ipis_per_mmdrop - 3.0).abs() < 1e-9);
        assert!((s.lazy_victim_cycles_per_mmdrop - 1500.0).abs() < 1e-9);
        assert!((s.lazy_held_cycles - 400.0).abs() < 1e-9);
        assert_eq!(s.lazy_mm_uaf, 2);
        // Statistics from before the section: zeros.
        let old = Summary::of(&json!({"totals": {}, "per_core": []}));
        assert_eq!((old.mm_count_atomics, old.atomics_per_switch), (0, 0.0));
    }

    #[test]
    fn summary_splits_the_cost() {
        let s = Summary::of(&stats());
        assert_eq!(s.remote_shootdowns, 2);
        assert!((s.targets_per_shootdown - 2.5).abs() < 1e-9);
        assert!((s.ipis_per_shootdown - 2.0).abs() < 1e-9);
        assert!((s.ack_wait_cycles - 1000.0).abs() < 1e-9);
        assert!((s.ipi_delivery_cycles - 600.0).abs() < 1e-9);
        assert!((s.initiator_cycles - 2000.0).abs() < 1e-9);
        assert!((s.victim_cycles - 750.0).abs() < 1e-9);
        assert!((s.refills - 3.0).abs() < 1e-9);
        assert!((s.refill_cycles - 60.0).abs() < 1e-9); // 3 walks at 20 cycles
    }

    #[test]
    fn the_run_totals_give_the_same_summary_without_records() {
        let mut st = stats();
        st["shootdowns"] = json!([]);
        st["shootdown_totals"] = json!({"remote": 2, "targets": 5, "victim_cycles": 1500,
            "refills": 6, "ack_wait_cycles": 2000, "ipi_delivery_cycles": 1200});
        let (a, b) = (Summary::of(&stats()), Summary::of(&st));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn the_mm_cid_section_is_summarised_and_absent_means_zero() {
        assert_eq!(Summary::of(&stats()).mm_cid_bitmap_ops, 0);
        let mut st = stats();
        st["mm_cid"] = json!({"bitmap_ops": 42, "fast_path": 52, "slow_path": 25,
            "to_percpu": 2, "to_pertask": 1, "transit_drops": 3, "fixup_cycles_max": 1200,
            "schedin_cycles": 7700});
        let s = Summary::of(&st);
        assert_eq!((s.mm_cid_bitmap_ops, s.mm_cid_fast_path, s.mm_cid_slow_path), (42, 52, 25));
        assert_eq!((s.mm_cid_mode_switches, s.mm_cid_transit_drops), (3, 3));
        assert_eq!(s.mm_cid_fixup_cycles_max, 1200);
        assert!((s.mm_cid_schedin_cycles - 100.0).abs() < 1e-9);
    }

    #[test]
    fn the_walker_sync_section_is_per_retire_event_and_per_walk() {
        assert_eq!(Summary::of(&stats()).walker_retire_events, 0);
        let mut st = stats();
        st["walker_sync"] = json!({"gup_fast_walks": 40, "gup_fast_cycles": 12000,
            "tracker_cycles": 2000, "retire_events": 10, "tables_retired": 20,
            "cpus_interrupted": 30, "idle_interrupted": 5, "initiator_cycles": 25000,
            "initiator_cycles_max": 4000, "grace_periods": 5, "grace_periods_ended": 4,
            "grace_period_cycles": 10000,
            "grace_period_cycles_max": 3500, "rcu_held_tables_max": 6, "walker_uaf": 1});
        let s = Summary::of(&st);
        assert_eq!(
            (s.walker_retire_events, s.walker_tables_retired, s.walker_cost_max),
            (10, 20, 4000)
        );
        assert!((s.walker_cost_per_retire - 2500.0).abs() < 1e-9);
        assert!((s.walker_interrupted_per_retire - 3.0).abs() < 1e-9);
        assert!((s.walker_idle_woken_per_retire - 0.5).abs() < 1e-9);
        assert!((s.gup_fast_cycles_per_walk - 300.0).abs() < 1e-9);
        assert!((s.walker_tracker_cycles_per_walk - 50.0).abs() < 1e-9);
        assert!((s.grace_period_cycles_mean - 2500.0).abs() < 1e-9);
        assert_eq!((s.grace_periods, s.grace_period_cycles_max), (5, 3500));
        assert_eq!((s.rcu_held_tables_max, s.walker_uaf), (6, 1));
    }

    #[test]
    fn reduce_drops_records_and_thins_samples() {
        let r = reduce(stats(), false);
        assert_eq!(r["shootdowns"].as_array().map(Vec::len), Some(0));
        assert_eq!(r["stored"]["shootdown_records_dropped"], 3);
        let n = r["cpumask_weight"].as_array().map_or(0, Vec::len);
        assert!(n <= CPUMASK_SAMPLES_KEPT + 1 && n > 1000, "{n}");
        assert_eq!(
            r["cpumask_weight"].as_array().and_then(|a| a.last()).cloned(),
            Some(json!([4999, 1, 3]))
        );
        let k = reduce(stats(), true);
        assert_eq!(k["shootdowns"].as_array().map(Vec::len), Some(3));
    }
}
