//! `reports`: what emu does with many runs. A sweep is a grid of points (workload x
//! profile x strategy x core count x seed, see [`spec`]), or the union of several such
//! grids, kept in a directory:
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

pub mod digest;
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

/// Writes a file atomically: a temporary file in the same directory (`.NAME.PID.tmp`),
/// flushed to the disk, then renamed over `path`, so readers (and reruns after a kill, a
/// crash or a power loss) see the old file or the new one, never a part of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}{TMP_SUFFIX}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The end of the names of [`write_atomic`]'s temporary files.
const TMP_SUFFIX: &str = ".tmp";

/// Removes the temporary files a killed writer left in `dir` (`.NAME.PID.tmp`). Only
/// safe while holding the directory's [`DirLock`]: no other writer is at work.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.filter_map(std::result::Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Name of the lock file in a sweep directory.
pub const LOCK_FILE: &str = ".lock";

/// Exclusive use of a sweep directory by one emu process: an advisory `flock` on
/// `DIR/.lock`, held until the value is dropped or the process ends. The kernel drops
/// the lock when its holder exits, however it exits (killed, crashed), so a lock file
/// left behind never blocks anyone: only a live holder does. The file names the last
/// holder (pid, host, command, start time) for the error message.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "?".into())
}

/// Takes the lock of sweep directory `dir` (which must exist) for `what` (`emu sweep`,
/// `emu report`, ...), or fails naming the live process that holds it. On a file system
/// without `flock` it warns and goes on unlocked.
pub fn lock_dir(dir: &Path, what: &str) -> Result<DirLock> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let field = |k: &str| {
                holder
                    .lines()
                    .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
                    .unwrap_or_else(|| "?".into())
            };
            let since = field("since ").parse::<u64>().ok();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            bail!(
                "{} is in use by another emu process (pid {} on {}, `{}`{}); wait for it to end \
                 or use another directory (the lock is released when that process ends)",
                dir.display(),
                field("pid "),
                field("host "),
                field("command "),
                since.map(|t| format!(", for {} s", now.saturating_sub(t))).unwrap_or_default()
            );
        }
        Err(std::fs::TryLockError::Error(e))
            if matches!(e.kind(), std::io::ErrorKind::Unsupported)
                || e.raw_os_error() == Some(37) =>
        {
            // ENOLCK, or no flock at all: some network file systems.
            eprintln!(
                "emu: warning: cannot lock {} ({e}); nothing keeps another emu from using it meanwhile",
                dir.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text =
        format!("pid {}\nhost {}\ncommand {what}\nsince {now}\n", std::process::id(), hostname());
    // Informative only: the flock is the lock.
    let _ =
        file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(text.as_bytes()));
    Ok(DirLock { _file: file, path })
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

/// Starts or resumes a sweep in `dir`, whose lock the caller holds: writes the manifest,
/// or checks that the one there describes the same sweep and shard; removes the
/// temporary files of a writer that was killed.
pub fn prepare_dir(dir: &Path, m: &Manifest, _lock: &DirLock) -> Result<()> {
    std::fs::create_dir_all(dir.join("points"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    remove_stale_temporaries(dir);
    remove_stale_temporaries(&dir.join("points"));
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

/// What a point's stored result file holds.
#[derive(Debug)]
pub enum Stored {
    /// No file.
    Missing,
    /// A result whose bytes match the digest it was sealed with.
    Trusted(Box<PointFile>),
    /// A file that cannot be reused, and why: edited or damaged (its digest does not
    /// match), unsealed, unreadable, of another format or another point.
    Untrusted(String),
}

/// How a point file ends: its digest, after the JSON object's other fields.
const DIGEST_KEY: &str = ",\"digest\":\"sha256:";

/// Seals a point's JSON: the SHA-256 of the JSON without the digest, appended as the
/// object's last field `digest`.
fn seal(json: &str) -> Result<String> {
    let body = json.strip_suffix('}').context("a point file is a JSON object")?;
    Ok(format!("{body}{DIGEST_KEY}{}\"}}", digest::sha256_hex(json.as_bytes())))
}

/// The sealed JSON without its digest, if the digest matches the bytes; else why not.
fn unseal(text: &str) -> std::result::Result<String, String> {
    let Some(at) = text.rfind(DIGEST_KEY) else {
        return Err("has no digest (written by an older emu, or edited)".into());
    };
    let hex = &text[at + DIGEST_KEY.len()..];
    let Some(hex) = hex.strip_suffix("\"}").filter(|h| h.len() == 64) else {
        return Err("has a malformed digest (edited or damaged)".into());
    };
    let body = format!("{}}}", &text[..at]);
    if digest::sha256_hex(body.as_bytes()) != hex {
        return Err("does not match its digest (edited by hand or damaged)".into());
    }
    Ok(body)
}

/// Reads and checks a point's stored result.
pub fn stored_point(dir: &Path, id: &str) -> Stored {
    let path = point_path(dir, id);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Stored::Missing,
        Err(e) => return Stored::Untrusted(format!("cannot be read ({e})")),
    };
    let body = match unseal(&text) {
        Ok(b) => b,
        Err(why) => return Stored::Untrusted(why),
    };
    match serde_json::from_str::<PointFile>(&body) {
        Err(e) => Stored::Untrusted(format!("is not a point file ({e})")),
        Ok(p) if p.id != id => Stored::Untrusted(format!("holds point {}", p.id)),
        Ok(p) if p.format != summary::POINT_FORMAT => Stored::Untrusted(format!(
            "is of point format {} (this emu writes {})",
            p.format,
            summary::POINT_FORMAT
        )),
        Ok(p) => Stored::Trusted(Box::new(p)),
    }
}

/// Reads a point's stored result, if there is a trusted one.
pub fn load_point(dir: &Path, id: &str) -> Option<PointFile> {
    match stored_point(dir, id) {
        Stored::Trusted(p) => Some(*p),
        _ => None,
    }
}

/// Stores a point's result atomically, sealed with its digest.
pub fn store_point(dir: &Path, p: &PointFile) -> Result<()> {
    write_atomic(&point_path(dir, &p.id), seal(&serde_json::to_string(p)?)?.as_bytes())
}

/// The trusted stored results of `points` in `dir`, by id, and the files not trusted
/// (`points/ID.json` and why).
pub fn load_results(
    dir: &Path,
    points: &[Point],
) -> (BTreeMap<String, PointFile>, Vec<(PathBuf, String)>) {
    let mut found = BTreeMap::new();
    let mut untrusted = Vec::new();
    for p in points {
        match stored_point(dir, &p.id()) {
            Stored::Trusted(r) => {
                found.insert(p.id(), *r);
            }
            Stored::Untrusted(why) => untrusted.push((point_path(dir, &p.id()), why)),
            Stored::Missing => {}
        }
    }
    (found, untrusted)
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
    /// Of those, points stopped by an mm_cid live lock.
    pub livelocked: usize,
    /// Points of the sweep.
    pub total: usize,
    /// Plot files written (stems).
    pub plots: usize,
    /// Point files left out because they cannot be trusted, and why.
    pub untrusted: Vec<(PathBuf, String)>,
}

/// Rebuilds `summary.csv` and `report/` of a sweep directory from its stored results,
/// without simulating anything, holding the directory's lock.
pub fn report(dir: &Path) -> Result<ReportOutput> {
    // Not a sweep directory: say so before touching it.
    load_manifest(dir)?;
    let lock = lock_dir(dir, "emu report")?;
    report_locked(dir, &lock)
}

/// [`report`] by the holder of the directory's lock. Point files that cannot be trusted
/// are left out (status `missing` in the CSV) and listed in the output.
pub fn report_locked(dir: &Path, _lock: &DirLock) -> Result<ReportOutput> {
    let m = load_manifest(dir)?;
    let (results, untrusted) = load_results(dir, &m.points);
    let csv = dir.join("summary.csv");
    remove_stale_temporaries(dir);
    summary::write_csv(&csv, &m.points, &results)?;
    let rdir = dir.join("report");
    std::fs::create_dir_all(&rdir).with_context(|| format!("cannot create {}", rdir.display()))?;
    remove_stale_temporaries(&rdir);
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
        livelocked: results.values().filter(|r| !r.ok() && r.finished()).count(),
        total: m.points.len(),
        plots: plots.len(),
        untrusted,
    })
}

/// Joins shard directories into `out`: every shard must describe the same sweep, and
/// together they must hold a result for every point. Then writes the CSV and report.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Result<ReportOutput> {
    let Some(first) = dirs.first() else { bail!("emu merge needs at least one sweep directory") };
    let base = load_manifest(first)?;
    let mut found: BTreeMap<String, PointFile> = BTreeMap::new();
    let mut untrusted: Vec<String> = Vec::new();
    for d in dirs {
        let m = load_manifest(d)?;
        if m.spec != base.spec || m.points != base.points {
            bail!("{} and {} hold different sweeps", first.display(), d.display());
        }
        for p in m.own_points() {
            match stored_point(d, &p.id()) {
                Stored::Trusted(r) => {
                    // A clean result wins over a live lock, and that over a failure,
                    // from another attempt.
                    let rank = |p: &PointFile| u8::from(p.finished()) + u8::from(p.ok());
                    let better = found.get(&r.id).is_none_or(|old| rank(&r) > rank(old));
                    if better {
                        found.insert(r.id.clone(), *r);
                    }
                }
                Stored::Untrusted(why) => {
                    untrusted.push(format!("{} {why}", point_path(d, &p.id()).display()));
                }
                Stored::Missing => {}
            }
        }
    }
    let missing: Vec<String> =
        base.points.iter().map(Point::id).filter(|id| !found.contains_key(id)).collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(20).map(String::as_str).collect();
        let why: Vec<&str> = untrusted.iter().take(5).map(String::as_str).collect();
        bail!(
            "{} of {} points have no result in these directories (a shard missing or unfinished?): {}{}{}",
            missing.len(),
            base.points.len(),
            shown.join(", "),
            if missing.len() > 20 { ", ..." } else { "" },
            if why.is_empty() {
                String::new()
            } else {
                format!("; not trusted (rerun that shard to recompute them): {}", why.join("; "))
            }
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let lock = lock_dir(out, "emu merge")?;
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
    report_locked(out, &lock)
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
            "{} on {} cores, {}, cpumask={} flush={}{}",
            c["argv"].as_array().and_then(|a| a.first()).and_then(Value::as_str).unwrap_or("?"),
            c["cores"],
            c["profile"].as_str().unwrap_or("?"),
            c["cpumask"].as_str().unwrap_or("?"),
            c["flush"].as_str().unwrap_or("?"),
            // Statistics from before the axis have no walker_sync.
            c["walker_sync"].as_str().map(|w| format!(" walker-sync={w}")).unwrap_or_default()
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
        ("context switches", sa.context_switches as f64, sb.context_switches as f64),
        ("mm_count atomics", sa.mm_count_atomics as f64, sb.mm_count_atomics as f64),
        ("  per context switch", sa.atomics_per_switch, sb.atomics_per_switch),
        ("  transfer cycles each", sa.mm_count_transfer_cycles, sb.mm_count_transfer_cycles),
        ("final mmdrops", sa.final_mmdrops as f64, sb.final_mmdrops as f64),
        ("lazy IPIs / mmdrop", sa.lazy_ipis_per_mmdrop, sb.lazy_ipis_per_mmdrop),
        (
            "lazy victim cyc / mmdrop",
            sa.lazy_victim_cycles_per_mmdrop,
            sb.lazy_victim_cycles_per_mmdrop,
        ),
        ("mm held after exit (cyc)", sa.lazy_held_cycles, sb.lazy_held_cycles),
        ("lazy-mm-uaf", sa.lazy_mm_uaf as f64, sb.lazy_mm_uaf as f64),
        ("table retire events", sa.walker_retire_events as f64, sb.walker_retire_events as f64),
        ("  sync cycles each", sa.walker_cost_per_retire, sb.walker_cost_per_retire),
        (
            "  CPUs interrupted each",
            sa.walker_interrupted_per_retire,
            sb.walker_interrupted_per_retire,
        ),
        ("    idle ones woken", sa.walker_idle_woken_per_retire, sb.walker_idle_woken_per_retire),
        ("GUP-fast walks", sa.gup_fast_walks as f64, sb.gup_fast_walks as f64),
        ("  cycles each", sa.gup_fast_cycles_per_walk, sb.gup_fast_cycles_per_walk),
        (
            "  tracker cycles each",
            sa.walker_tracker_cycles_per_walk,
            sb.walker_tracker_cycles_per_walk,
        ),
        ("grace periods", sa.grace_periods as f64, sb.grace_periods as f64),
        ("  mean length (cyc)", sa.grace_period_cycles_mean, sb.grace_period_cycles_mean),
        ("  longest (cyc)", sa.grace_period_cycles_max as f64, sb.grace_period_cycles_max as f64),
        ("RCU-held tables, most", sa.rcu_held_tables_max as f64, sb.rcu_held_tables_max as f64),
        ("walker-uaf", sa.walker_uaf as f64, sb.walker_uaf as f64),
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
