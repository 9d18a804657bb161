//! `index.html`: the plots, a table per workload and profile, failed points with their
//! errors, and the command that reproduces each point.

use crate::plot::PlotFile;
use crate::spec::{Point, SweepSpec};
use crate::summary::PointFile;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1250px;color:#222}\
table{border-collapse:collapse;font-size:13px;margin:1em 0}\
td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}\
th{background:#f3f3f3}td.l,th.l{text-align:left}\
code{font-size:12px;background:#f6f6f6;padding:1px 3px}\
img{max-width:100%;border:1px solid #ddd;margin:6px 0}\
.bad{color:#b00}";

/// Builds the page. `data_dir` is how the page reaches the sweep directory (for the
/// point files and the CSV).
pub fn page(
    spec: &SweepSpec,
    points: &[Point],
    results: &BTreeMap<String, PointFile>,
    plots: &[PlotFile],
    data_dir: &str,
) -> String {
    let ok = points.iter().filter(|p| results.get(&p.id()).is_some_and(PointFile::ok)).count();
    let failed: Vec<&PointFile> =
        points.iter().filter_map(|p| results.get(&p.id())).filter(|r| !r.ok()).collect();
    let missing = points.len() - ok - failed.len();
    let livelocked = failed.iter().filter(|r| r.finished()).count();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>emu sweep</title>\
         <style>{STYLE}</style></head><body><h1>emu sweep: TLB shootdown costs</h1>"
    );
    let _ = write!(
        h,
        "<p>{} points: {ok} ran, {} failed ({livelocked} of them live-locked), {missing} missing. One row per point in \
         <a href=\"{data_dir}/summary.csv\">summary.csv</a>; each point's statistics in \
         <code>{data_dir}/points/ID.json</code>. Latencies are in core cycles of the \
         profile's clock; per-shootdown figures are means over the shootdowns that reached \
         other CPUs.</p>",
        points.len(),
        failed.len()
    );
    let spec_toml = toml::to_string(spec).unwrap_or_default();
    let _ = write!(
        h,
        "<details><summary>Sweep specification</summary><pre>{}</pre></details>",
        esc(&spec_toml)
    );
    if !failed.is_empty() {
        h.push_str("<h2 class=\"bad\">Failed points</h2><table><tr><th class=\"l\">point</th><th class=\"l\">error</th><th class=\"l\">command</th></tr>");
        for r in &failed {
            let _ = write!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"l bad\">{}</td><td class=\"l\"><code>{}</code></td></tr>",
                esc(&r.id),
                esc(r.error.as_deref().unwrap_or("")),
                esc(&r.point.command())
            );
        }
        h.push_str("</table>");
    }
    let mut groups: Vec<&str> = Vec::new();
    for p in plots {
        if !groups.contains(&p.group.as_str()) {
            groups.push(&p.group);
        }
    }
    for g in groups {
        let _ = write!(h, "<h2>{}</h2>", esc(g));
        for p in plots.iter().filter(|p| p.group == g) {
            let _ = write!(
                h,
                "<h3>{}</h3><a href=\"{s}.svg\"><img src=\"{s}.png\" alt=\"{t}\"></a>",
                esc(&p.title),
                s = esc(&p.stem),
                t = esc(&p.title)
            );
        }
    }
    let lazy_axis =
        spec.lazy_mm.len() > 1 || points.iter().any(|p| p.lazy_mm != crate::spec::DEFAULT_LAZY_MM);
    if lazy_axis {
        h.push_str(
            "<h2>Lazy-TLB mm references</h2><table><tr><th class=\"l\">workload</th>\
            <th class=\"l\">profile</th><th class=\"l\">strategy</th><th>CPUs</th>\
            <th>context switches per ms</th><th>mm_count atomics per switch</th>\
            <th>transfer cycles per atomic</th><th>final mmdrops</th>\
            <th>shootdown IPIs per mmdrop</th><th>victim cycles per mmdrop</th>\
            <th>cycles held after exit</th><th>lazy-mm-uaf</th></tr>",
        );
        for p in points {
            let Some(s) = results.get(&p.id()).and_then(|r| r.summary.as_ref()) else { continue };
            let per_ms = if s.simulated_ns == 0 {
                0.0
            } else {
                s.context_switches as f64 * 1e6 / s.simulated_ns as f64
            };
            let _ = write!(
                h,
                "<tr><td class=\"l\">{} {}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td>{}</td><td>{:.1}</td><td>{:.3}</td><td>{:.1}</td><td>{}</td><td>{:.2}</td>\
                 <td>{:.0}</td><td>{:.0}</td><td{}>{}</td></tr>",
                esc(&p.workload),
                esc(&p.args.join(" ")),
                esc(&p.profile),
                esc(&p.strategy()),
                p.cores,
                per_ms,
                s.atomics_per_switch,
                s.mm_count_transfer_cycles,
                s.final_mmdrops,
                s.lazy_ipis_per_mmdrop,
                s.lazy_victim_cycles_per_mmdrop,
                s.lazy_held_cycles,
                if s.lazy_mm_uaf > 0 { " class=\"bad\"" } else { "" },
                s.lazy_mm_uaf
            );
        }
        h.push_str("</table>");
    }
    let walker_axis = spec.resolved_grids().iter().any(|g| g.walker_sync.len() > 1)
        || points.iter().any(|p| p.walker_sync != crate::spec::DEFAULT_WALKER_SYNC);
    if walker_axis {
        walker_sync_table(&mut h, points, results);
    }
    h.push_str(
        "<h2>All points</h2><table><tr><th class=\"l\">workload</th><th class=\"l\">profile</th>\
        <th class=\"l\">strategy</th><th>CPUs</th><th>seed</th><th>remote shootdowns</th>\
        <th>latency mean</th><th>p50</th><th>p99</th><th>targets/sd</th><th>IPIs/sd</th>\
        <th>victim cycles/sd</th><th>refills/sd</th><th>CID bitmap ops</th>\
        <th>CID fast path</th><th>CID schedin cycles</th><th>oracle violations</th>\
        <th class=\"l\">status</th><th class=\"l\">reproduce</th></tr>",
    );
    for p in points {
        let r = results.get(&p.id());
        let status = r.map_or("missing", |r| r.status.as_str());
        let _ = write!(
            h,
            "<tr><td class=\"l\">{} {}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>",
            esc(&p.workload),
            esc(&p.args.join(" ")),
            esc(&p.profile),
            esc(&p.strategy()),
            p.cores,
            p.seed
        );
        match r.and_then(|r| r.summary.as_ref()) {
            Some(s) => {
                let _ = write!(
                    h,
                    "<td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.0}</td><td>{:.2}</td><td>{}</td><td>{:.0}%</td><td>{:.0}</td><td{}>{}</td>",
                    s.remote_shootdowns,
                    s.latency_mean,
                    s.latency_p50,
                    s.latency_p99,
                    s.targets_per_shootdown,
                    s.ipis_per_shootdown,
                    s.victim_cycles,
                    s.refills,
                    s.mm_cid_bitmap_ops,
                    100.0 * s.mm_cid_fast_path as f64
                        / (s.mm_cid_fast_path + s.mm_cid_slow_path).max(1) as f64,
                    s.mm_cid_schedin_cycles,
                    if s.oracle_violations > 0 { " class=\"bad\"" } else { "" },
                    s.oracle_violations
                );
            }
            None => h.push_str(&"<td></td>".repeat(12)),
        }
        let _ = write!(
            h,
            "<td class=\"l{}\">{}</td><td class=\"l\"><code>{}</code></td></tr>",
            if status == "ok" { "" } else { " bad" },
            esc(status),
            esc(&p.command())
        );
    }
    h.push_str(
        "</table><p>Commands are relative to a checkout where <code>emu</code> is on the PATH \
        (for example <code>cargo run --release --</code>).</p></body></html>\n",
    );
    h
}

/// The walker-sync table: per point of each workload and profile that varies the
/// strategy, what freeing page tables cost the unmapping CPU and the others, what
/// GUP-fast walks cost, and the RCU grace periods.
fn walker_sync_table(h: &mut String, points: &[Point], results: &BTreeMap<String, PointFile>) {
    let varied = |p: &Point| {
        points.iter().any(|q| {
            q.label == p.label
                && q.profile == p.profile
                && q.walker_sync != crate::spec::DEFAULT_WALKER_SYNC
        })
    };
    h.push_str(
        "<h2>Page-table walker synchronisation</h2><p>A retire event is a flush that \
        completed with page tables to free or reuse; its cost is the initiator's cycles \
        from the flush's completion to the free (sync IPIs and their wait, the tracker \
        scan, or a THP collapse's synchronize_rcu sleep). Tables freed through RCU cost \
        the initiator nothing there and wait for a grace period instead (the mean is over \
        the grace periods that ended).</p><table><tr><th class=\"l\">workload</th>\
        <th class=\"l\">profile</th><th class=\"l\">strategy</th><th>CPUs</th>\
        <th>retire events</th><th>tables retired</th><th>cycles per retire event</th>\
        <th>most cycles</th><th>CPUs interrupted per event</th><th>idle ones woken</th>\
        <th>GUP-fast walks</th><th>cycles per walk</th><th>tracker cycles per walk</th>\
        <th>grace periods</th><th>mean grace period</th><th>longest</th>\
        <th>RCU-held tables, most</th><th>walker-uaf</th></tr>",
    );
    for p in points.iter().filter(|p| varied(p)) {
        let Some(s) = results.get(&p.id()).and_then(|r| r.summary.as_ref()) else { continue };
        let _ = write!(
            h,
            "<tr><td class=\"l\">{} {}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{:.2}</td>\
             <td>{:.2}</td><td>{}</td><td>{:.0}</td><td>{:.1}</td><td>{}</td><td>{:.0}</td>\
             <td>{}</td><td>{}</td><td{}>{}</td></tr>",
            esc(&p.workload),
            esc(&p.args.join(" ")),
            esc(&p.profile),
            esc(&p.strategy()),
            p.cores,
            s.walker_retire_events,
            s.walker_tables_retired,
            s.walker_cost_per_retire,
            s.walker_cost_max,
            s.walker_interrupted_per_retire,
            s.walker_idle_woken_per_retire,
            s.gup_fast_walks,
            s.gup_fast_cycles_per_walk,
            s.walker_tracker_cycles_per_walk,
            s.grace_periods,
            s.grace_period_cycles_mean,
            s.grace_period_cycles_max,
            s.rcu_held_tables_max,
            if s.walker_uaf > 0 { " class=\"bad\"" } else { "" },
            s.walker_uaf
        );
    }
    h.push_str("</table>");
}
