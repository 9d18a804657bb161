//! `reports`: what emu does with many runs. A sweep is a grid of points (workload x
//! profile x strategy x core count x seed, see [`spec`]) kept in a directory:
//!
//! ```text
//! DIR/manifest.json      the spec and every point of the full sweep (and the shard)
//! DIR/points/ID.json     one point's result: status, summary, statistics
//! DIR/summary.csv        one row per point, in sweep order
//! DIR/report/index.html  the plots (PNG and SVG) and tables
//! ```
//!
//! Running the points is the `emu` binary's job; this crate plans sweeps, stores and
//! reads their results, and derives the CSV, the plots, the HTML report, shard merges
//! and comparisons from stored statistics alone.

pub mod html;
pub mod plot;
pub mod spec;
pub mod summary;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use spec::{Point, Shard, SweepSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use summary::{PointFile, Summary};

/// Writes a file atomically: a temporary file in the same directory, then a rename, so
/// readers (and reruns after a crash) never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Version of the manifest format.
pub const MANIFEST_FORMAT: u32 = 1;

/// `manifest.json`: what a sweep directory is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub format: u32,
    /// The grid.
    pub spec: SweepSpec,
    /// Every runnable point of the full sweep, in order (all shards list all of them).
    pub points: Vec<Point>,
    /// Grid combinations that cannot run, and why.
    pub skipped: Vec<(Point, String)>,
    /// The part of the sweep this directory holds, if it is a shard.
    pub shard: Option<Shard>,
}

impl Manifest {
    /// The points this directory is responsible for.
    pub fn own_points(&self) -> Vec<&Point> {
        self.points
            .iter()
            .enumerate()
            .filter(|(i, _)| self.shard.is_none_or(|s| s.holds(*i)))
            .map(|(_, p)| p)
            .collect()
    }
}

/// Path of the manifest in a sweep directory.
pub fn manifest_path(dir: &Path) -> PathBuf {
    dir.join("manifest.json")
}

/// Path of a point's result file.
pub fn point_path(dir: &Path, id: &str) -> PathBuf {
    dir.join("points").join(format!("{id}.json"))
}

/// Reads a sweep directory's manifest.
pub fn load_manifest(dir: &Path) -> Result<Manifest> {
    let p = manifest_path(dir);
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!("{} is not a sweep directory (no manifest.json)", dir.display())
    })?;
    let m: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a sweep manifest", p.display()))?;
    if m.format != MANIFEST_FORMAT {
        bail!("{}: manifest format {} (this emu reads {MANIFEST_FORMAT})", p.display(), m.format);
    }
    Ok(m)
}

/// Starts or resumes a sweep in `dir`: writes the manifest, or checks that the one there
/// describes the same sweep and shard.
pub fn prepare_dir(dir: &Path, m: &Manifest) -> Result<()> {
    std::fs::create_dir_all(dir.join("points"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    if manifest_path(dir).exists() {
        let old = load_manifest(dir)?;
        if old.spec != m.spec || old.points != m.points || old.shard != m.shard {
            bail!(
                "{} holds a different sweep (spec, points or shard differ); use another --out",
                dir.display()
            );
        }
        return Ok(());
    }
    write_atomic(&manifest_path(dir), serde_json::to_string_pretty(m)?.as_bytes())
}

/// Reads a point's stored result, if there is a readable one.
pub fn load_point(dir: &Path, id: &str) -> Option<PointFile> {
    let text = std::fs::read_to_string(point_path(dir, id)).ok()?;
    let p: PointFile = serde_json::from_str(&text).ok()?;
    (p.id == id && p.format == summary::POINT_FORMAT).then_some(p)
}

/// Stores a point's result atomically.
pub fn store_point(dir: &Path, p: &PointFile) -> Result<()> {
    write_atomic(&point_path(dir, &p.id), serde_json::to_string(p)?.as_bytes())
}

/// The stored results of `points` in `dir`, by id.
pub fn load_results(dir: &Path, points: &[Point]) -> BTreeMap<String, PointFile> {
    points.iter().filter_map(|p| load_point(dir, &p.id()).map(|r| (p.id(), r))).collect()
}

/// What [`report`] produced.
#[derive(Debug)]
pub struct ReportOutput {
    /// The HTML page.
    pub index: PathBuf,
    /// The CSV table.
    pub csv: PathBuf,
    /// Points with a result.
    pub done: usize,
    /// Points that failed.
    pub failed: usize,
    /// Points of the sweep.
    pub total: usize,
    /// Plot files written (stems).
    pub plots: usize,
}

/// Rebuilds `summary.csv` and `report/` of a sweep directory from its stored results,
/// without simulating anything.
pub fn report(dir: &Path) -> Result<ReportOutput> {
    let m = load_manifest(dir)?;
    let results = load_results(dir, &m.points);
    let csv = dir.join("summary.csv");
    summary::write_csv(&csv, &m.points, &results)?;
    let rdir = dir.join("report");
    std::fs::create_dir_all(&rdir).with_context(|| format!("cannot create {}", rdir.display()))?;
    let ordered: Vec<&PointFile> = m.points.iter().filter_map(|p| results.get(&p.id())).collect();
    let plots = plot::render_all(&rdir, &ordered)?;
    let page = html::page(&m.spec, &m.points, &results, &plots, "..");
    let index = rdir.join("index.html");
    write_atomic(&index, page.as_bytes())?;
    Ok(ReportOutput {
        index,
        csv,
        done: results.len(),
        failed: results.values().filter(|r| !r.ok()).count(),
        total: m.points.len(),
        plots: plots.len(),
    })
}

/// Joins shard directories into `out`: every shard must describe the same sweep, and
/// together they must hold a result for every point. Then writes the CSV and report.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Result<ReportOutput> {
    let Some(first) = dirs.first() else { bail!("emu merge needs at least one sweep directory") };
    let base = load_manifest(first)?;
    let mut found: BTreeMap<String, PointFile> = BTreeMap::new();
    for d in dirs {
        let m = load_manifest(d)?;
        if m.spec != base.spec || m.points != base.points {
            bail!("{} and {} hold different sweeps", first.display(), d.display());
        }
        for p in m.own_points() {
            if let Some(r) = load_point(d, &p.id()) {
                // A clean result wins over a failed one from another attempt.
                let better = found.get(&r.id).is_none_or(|old| !old.ok() && r.ok());
                if better {
                    found.insert(r.id.clone(), r);
                }
            }
        }
    }
    let missing: Vec<String> =
        base.points.iter().map(Point::id).filter(|id| !found.contains_key(id)).collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(20).map(String::as_str).collect();
        bail!(
            "{} of {} points have no result in these directories (a shard missing or unfinished?): {}{}",
            missing.len(),
            base.points.len(),
            shown.join(", "),
            if missing.len() > 20 { ", ..." } else { "" }
        );
    }
    let merged = Manifest { shard: None, ..base };
    if manifest_path(out).exists() {
        let old = load_manifest(out)?;
        if old != merged {
            bail!("{} holds a different sweep; merge into an empty directory", out.display());
        }
    }
    std::fs::create_dir_all(out.join("points"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    write_atomic(&manifest_path(out), serde_json::to_string_pretty(&merged)?.as_bytes())?;
    for r in found.values() {
        store_point(out, r)?;
    }
    report(out)
}

/// Reads a run's figures from `emu run --stats` JSON or a sweep point file.
pub fn load_summary(path: &Path) -> Result<(String, Summary)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    if v.get("schema_version").is_some() {
        let c = &v["config"];
        let what = format!(
            "{} on {} cores, {}, cpumask={} flush={}",
            c["argv"].as_array().and_then(|a| a.first()).and_then(Value::as_str).unwrap_or("?"),
            c["cores"],
            c["profile"].as_str().unwrap_or("?"),
            c["cpumask"].as_str().unwrap_or("?"),
            c["flush"].as_str().unwrap_or("?")
        );
        return Ok((what, Summary::of(&v)));
    }
    let p: PointFile = serde_json::from_value(v)
        .with_context(|| format!("{}: neither emu stats nor a sweep point file", path.display()))?;
    let s = p.summary.clone().with_context(|| {
        format!("{}: the point failed: {}", path.display(), p.error.clone().unwrap_or_default())
    })?;
    Ok((p.point.command(), s))
}

/// A side-by-side table of two runs' figures with the ratio B/A.
pub fn compare(a: &Path, b: &Path) -> Result<String> {
    let (wa, sa) = load_summary(a)?;
    let (wb, sb) = load_summary(b)?;
    let rows: Vec<(&str, f64, f64)> = vec![
        ("guest instructions", sa.instructions as f64, sb.instructions as f64),
        ("simulated cycles", sa.cycles as f64, sb.cycles as f64),
        ("shootdowns", sa.shootdowns as f64, sb.shootdowns as f64),
        ("  involving other CPUs", sa.remote_shootdowns as f64, sb.remote_shootdowns as f64),
        ("IPIs sent", sa.ipis_sent as f64, sb.ipis_sent as f64),
        ("INVLPGB", sa.invlpgb as f64, sb.invlpgb as f64),
        ("latency mean (cycles)", sa.latency_mean, sb.latency_mean),
        ("latency p50", sa.latency_p50 as f64, sb.latency_p50 as f64),
        ("latency p90", sa.latency_p90 as f64, sb.latency_p90 as f64),
        ("latency p99", sa.latency_p99 as f64, sb.latency_p99 as f64),
        ("latency max", sa.latency_max as f64, sb.latency_max as f64),
        ("targets per shootdown", sa.targets_per_shootdown, sb.targets_per_shootdown),
        ("IPIs per shootdown", sa.ipis_per_shootdown, sb.ipis_per_shootdown),
        ("initiator cycles / sd", sa.initiator_cycles, sb.initiator_cycles),
        ("ack-wait cycles / sd", sa.ack_wait_cycles, sb.ack_wait_cycles),
        ("victim cycles / sd", sa.victim_cycles, sb.victim_cycles),
        ("refills / sd", sa.refills, sb.refills),
        ("refill cycles / sd", sa.refill_cycles, sb.refill_cycles),
        ("oracle violations", sa.oracle_violations as f64, sb.oracle_violations as f64),
    ];
    let mut out = format!("A: {} ({wa})\nB: {} ({wb})\n\n", a.display(), b.display());
    out.push_str(&format!("{:<24} {:>16} {:>16} {:>9}\n", "", "A", "B", "B/A"));
    for (name, x, y) in rows {
        let ratio = if x == 0.0 {
            if y == 0.0 {
                "=".to_string()
            } else {
                "-".to_string()
            }
        } else {
            format!("{:.3}", y / x)
        };
        let fmt = |v: f64| if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") };
        out.push_str(&format!("{name:<24} {:>16} {:>16} {ratio:>9}\n", fmt(x), fmt(y)));
    }
    Ok(out)
}
