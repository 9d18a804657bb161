//! `emu sweep`: runs every point of a sweep in parallel (rayon), each in its own
//! simulated machine in this process, storing each result atomically as it finishes,
//! skipping points already done, then writes the CSV and the report.

use anyhow::{bail, Context, Result};
use emu_smp::{Outcome, Profile, RunConfig};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use reports::spec::{Point, Shard, SweepSpec, WorkloadSpec};
use reports::summary::{self, PointFile, Summary};
use reports::Manifest;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Options of `emu sweep`.
#[derive(clap::Args)]
pub struct SweepArgs {
    /// A TOML sweep specification (fields it leaves out keep the default sweep's).
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Workload and arguments, `{cores}` standing for the core count (repeatable), e.g.
    /// 'madvise_shared {cores} 16 300'.
    #[arg(long, value_name = "'NAME ARGS...'")]
    workload: Vec<String>,
    /// Core counts, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    cores: Vec<usize>,
    /// mm_cpumask policies, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "POLICY,...")]
    cpumask: Vec<String>,
    /// Flush transports, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "ipi,invlpgb")]
    flush: Vec<String>,
    /// Lazy-TLB mm reference policies, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "POLICY,...")]
    lazy_mm: Vec<String>,
    /// mm_cid variants, comma-separated (`emu list strategies`).
    #[arg(long = "mm-cid", value_delimiter = ',', value_name = "VARIANT,...")]
    mm_cid: Vec<String>,
    /// Walker synchronisation strategies, comma-separated (`emu list strategies`).
    #[arg(long = "walker-sync", value_delimiter = ',', value_name = "STRATEGY,...")]
    walker_sync: Vec<String>,
    /// Preemption models, comma-separated (`emu list strategies`).
    #[arg(long, value_delimiter = ',', value_name = "MODEL,...")]
    preempt: Vec<String>,
    /// Machine profiles, comma-separated (names or TOML paths).
    #[arg(long, value_delimiter = ',', value_name = "PROFILE,...")]
    profile: Vec<String>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "SEED,...")]
    seed: Vec<u64>,
    /// Coherence-oracle bookkeeping in every run: on or off.
    #[arg(long, value_parser = ["on", "off"])]
    oracle: Option<String>,
    /// Guest physical memory of every run, MiB.
    #[arg(long, value_name = "MIB")]
    memory: Option<u64>,
    /// Output directory (created; a rerun resumes it).
    #[arg(long, default_value = "emu-sweep", value_name = "DIR")]
    pub out: PathBuf,
    /// Points run at once [default: SLURM_CPUS_PER_TASK, else the host's CPUs].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Run only shard K of N (K from 0): points i with i % N == K. Without it,
    /// SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT choose the shard when set.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Keep every shootdown record in the point files (large).
    #[arg(long)]
    keep_records: bool,
    /// Print the points and exit.
    #[arg(long)]
    dry_run: bool,
}

impl SweepArgs {
    /// The sweep: the spec file's (or the default one), with the command line's values
    /// in place of the spec's on every grid. `--workload` makes it one grid: the extra
    /// grids are studies of workloads of their own.
    fn spec(&self) -> Result<SweepSpec> {
        let mut s = match &self.spec {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                SweepSpec::from_toml(&text).with_context(|| format!("{}", p.display()))?
            }
            None => SweepSpec::default(),
        };
        if !self.workload.is_empty() {
            s.workloads = self
                .workload
                .iter()
                .map(|w| WorkloadSpec::parse(w).with_context(|| format!("bad --workload `{w}`")))
                .collect::<Result<_>>()?;
            s.grids.clear();
        }
        // An option given replaces the value of the main grid and of every extra one.
        macro_rules! everywhere {
            ($given:expr, $field:ident, $value:expr) => {
                if $given {
                    s.$field = $value;
                    for g in &mut s.grids {
                        g.$field = None;
                    }
                }
            };
        }
        everywhere!(!self.cores.is_empty(), cores, self.cores.clone());
        everywhere!(!self.cpumask.is_empty(), cpumask, self.cpumask.clone());
        everywhere!(!self.flush.is_empty(), flush, self.flush.clone());
        everywhere!(!self.lazy_mm.is_empty(), lazy_mm, self.lazy_mm.clone());
        everywhere!(!self.mm_cid.is_empty(), mm_cid, self.mm_cid.clone());
        everywhere!(!self.walker_sync.is_empty(), walker_sync, self.walker_sync.clone());
        everywhere!(!self.preempt.is_empty(), preempt, self.preempt.clone());
        everywhere!(!self.profile.is_empty(), profiles, self.profile.clone());
        everywhere!(!self.seed.is_empty(), seeds, self.seed.clone());
        everywhere!(self.oracle.is_some(), oracle, self.oracle.as_deref() == Some("on"));
        everywhere!(self.memory.is_some(), memory_mib, self.memory.unwrap_or_default());
        s.check()?;
        check_strategies(&s)?;
        Ok(s)
    }

    pub fn shard(&self) -> Result<Option<Shard>> {
        if let Some(s) = &self.shard {
            return Shard::parse(s).map(Some);
        }
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.trim().parse::<usize>().ok());
        match (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT")) {
            (Some(id), Some(count)) => {
                let min = var("SLURM_ARRAY_TASK_MIN").unwrap_or(0);
                let index = id
                    .checked_sub(min)
                    .context("SLURM_ARRAY_TASK_ID below SLURM_ARRAY_TASK_MIN")?;
                Shard::parse(&format!("{index}/{count}")).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn jobs(&self) -> usize {
        self.jobs
            .or_else(|| std::env::var("SLURM_CPUS_PER_TASK").ok().and_then(|v| v.parse().ok()))
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1)
            .max(1)
    }
}

/// Checks that a point can run at all (the workload exists, the profile loads and can
/// run the strategy); the reason when not.
fn runnable(p: &Point) -> Result<(), String> {
    if workloads::find(&p.workload, workloads::Libc::Glibc)
        .is_none_or(|w| w.kind != workloads::Kind::Catalogue)
    {
        return Err(format!("`{}` is not a catalogue workload", p.workload));
    }
    let strategy = point_strategy(p).map_err(|e| e.to_string())?;
    let profile = Profile::load(&p.profile).map_err(|e| format!("profile {}: {e}", p.profile))?;
    if strategy.flush.global_asids() && !profile.cpu.invlpgb {
        return Err(format!("profile {} has no INVLPGB", profile.name));
    }
    if p.cores == 0 || p.cores > emu_smp::MAX_CORES {
        return Err(format!("{} cores", p.cores));
    }
    Ok(())
}

/// Rejects a spec naming a strategy that does not exist, whichever grid names it: a
/// typo would otherwise only skip its points.
fn check_strategies(s: &SweepSpec) -> Result<()> {
    for (field, axis) in [
        ("cpumask", "cpumask"),
        ("flush", "flush"),
        ("lazy_mm", "lazy-mm"),
        ("mm_cid", "mm-cid"),
        ("walker_sync", "walker-sync"),
        ("preempt", "preempt"),
    ] {
        for v in s.axis_values(field) {
            emu_smp::Strategy::default()
                .set(axis, &v)
                .with_context(|| format!("the sweep's `{field}` list"))?;
        }
    }
    Ok(())
}

/// The strategy of a point.
fn point_strategy(p: &Point) -> Result<emu_smp::Strategy, emu_smp::strategy::StrategyError> {
    let mut s = emu_smp::Strategy::default();
    s.set("cpumask", &p.cpumask)?;
    s.set("flush", &p.flush)?;
    s.set("lazy-mm", &p.lazy_mm)?;
    s.set("mm-cid", &p.mm_cid)?;
    s.set("walker-sync", &p.walker_sync)?;
    s.set("preempt", &p.preempt)?;
    Ok(s)
}

/// Runs one point to a result (never an error: failures are results too).
fn run_point(p: &Point, keep_records: bool) -> PointFile {
    let mut file = PointFile {
        format: summary::POINT_FORMAT,
        id: p.id(),
        point: p.clone(),
        status: "failed".into(),
        error: None,
        guest_stdout: String::new(),
        summary: None,
        stats: None,
    };
    let result = (|| -> Result<emu_smp::RunResult> {
        let w = workloads::find(&p.workload, workloads::Libc::Glibc).context("no such workload")?;
        let image = workloads::elf_bytes(w).context("cannot read the workload")?;
        let mut argv = vec![p.workload.clone().into_bytes()];
        argv.extend(p.args.iter().map(|a| a.clone().into_bytes()));
        if p.args.is_empty() {
            argv.extend(w.default_args.iter().map(|a| a.as_bytes().to_vec()));
        }
        let profile = Profile::load(&p.profile)?;
        let mut cfg = RunConfig::new(
            image.into_owned().into(),
            format!("/emu/workloads/{}", p.workload),
            argv,
            profile,
        );
        cfg.cores = p.cores;
        cfg.seed = p.seed;
        cfg.oracle = p.oracle;
        cfg.memory_mib = p.memory_mib;
        cfg.capture_output = true;
        cfg.records =
            if keep_records { emu_smp::RecordSink::Memory } else { emu_smp::RecordSink::Drop };
        (cfg.uid, cfg.gid) = crate::host_ids();
        cfg.strategy = point_strategy(p)?;
        cfg.validate()?;
        Ok(emu_smp::run(&cfg)?)
    })();
    match result {
        Err(e) => file.error = Some(format!("{e:#}")),
        Ok(r) => {
            let out = &r.stdout[..r.stdout.len().min(summary::STDOUT_KEPT)];
            file.guest_stdout = String::from_utf8_lossy(out).into_owned();
            let stats = serde_json::to_value(&r.stats).unwrap_or_default();
            file.summary = Some(Summary::of(&stats));
            file.stats = Some(summary::reduce(stats, keep_records));
            match r.outcome {
                Outcome::Exited(0) => file.status = "ok".into(),
                Outcome::Exited(c) => {
                    let err = String::from_utf8_lossy(&r.stderr);
                    file.error = Some(format!("the guest exited with status {c}: {}", err.trim()));
                }
                Outcome::Signaled { sig, report } => {
                    file.error = Some(format!(
                        "the guest was killed by signal {sig}{}",
                        report.map(|r| format!(": {r}")).unwrap_or_default()
                    ));
                }
                Outcome::Error(e) => {
                    // A live lock is a finding about the strategy, counted apart from
                    // runs that failed.
                    if matches!(e, emu_smp::SimError::MmCidLivelock { .. }) {
                        file.status = "livelock".into();
                    }
                    file.error = Some(format!("simulation stopped: {e}"));
                }
            }
        }
    }
    file
}

/// `emu sweep`.
pub fn sweep(a: &SweepArgs) -> Result<bool> {
    let spec = a.spec()?;
    let shard = a.shard()?;
    let mut points = Vec::new();
    let mut skipped = Vec::new();
    for p in spec.points() {
        match runnable(&p) {
            Ok(()) => points.push(p),
            Err(why) => skipped.push((p, why)),
        }
    }
    if points.is_empty() {
        bail!("no point of this sweep can run: {}", skipped.first().map_or("", |s| s.1.as_str()));
    }
    let manifest = Manifest { format: reports::MANIFEST_FORMAT, spec, points, skipped, shard };
    let mine: Vec<Point> = manifest.own_points().into_iter().cloned().collect();
    if a.dry_run {
        for p in &mine {
            println!("{}  {}", p.id(), p.command());
        }
        for (p, why) in &manifest.skipped {
            println!("skipped {}: {why}", p.id());
        }
        return Ok(true);
    }
    // One sweep at a time in a directory: the lock is held until this function returns
    // (or the process ends, however it ends).
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let lock = reports::lock_dir(&a.out, "emu sweep")?;
    reports::prepare_dir(&a.out, &manifest, &lock)?;
    let mut todo: Vec<&Point> = Vec::new();
    for p in &mine {
        match reports::stored_point(&a.out, &p.id()) {
            reports::Stored::Trusted(r) if r.finished() => {}
            reports::Stored::Untrusted(why) => {
                eprintln!(
                    "emu sweep: {} {why}: recomputing it",
                    reports::point_path(&a.out, &p.id()).display()
                );
                todo.push(p);
            }
            _ => todo.push(p),
        }
    }
    let jobs = a.jobs();
    eprintln!(
        "emu sweep: {} points{} ({} done before, {} to run, {} skipped as not runnable) on {jobs} threads into {}",
        mine.len(),
        shard.map(|s| format!(" in shard {}/{}", s.index, s.count)).unwrap_or_default(),
        mine.len() - todo.len(),
        todo.len(),
        manifest.skipped.len(),
        a.out.display()
    );
    let bar = ProgressBar::new(todo.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} points, eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let failed = AtomicUsize::new(0);
    let livelocked = AtomicUsize::new(0);
    let t0 = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build().context("thread pool")?;
    let stored: Result<()> = pool.install(|| {
        todo.par_iter().try_for_each(|p| {
            let r = run_point(p, a.keep_records);
            if !r.ok() {
                let what = if r.finished() {
                    livelocked.fetch_add(1, Ordering::Relaxed);
                    "live-locked"
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    "failed"
                };
                let msg =
                    format!("emu sweep: {} {what}: {}", r.id, r.error.as_deref().unwrap_or(""));
                // The bar swallows println when it is hidden (stderr not a terminal,
                // as under a batch scheduler).
                if bar.is_hidden() {
                    eprintln!("{msg}");
                } else {
                    bar.println(msg);
                }
            }
            reports::store_point(&a.out, &r)?;
            bar.inc(1);
            Ok(())
        })
    });
    bar.finish_and_clear();
    stored?;
    let secs = t0.elapsed().as_secs_f64();
    let failed = failed.into_inner();
    let livelocked = livelocked.into_inner();
    eprintln!(
        "emu sweep: ran {} points in {secs:.1} s ({:.1} points per minute), {failed} failed, {livelocked} live-locked",
        todo.len(),
        if secs > 0.0 { todo.len() as f64 * 60.0 / secs } else { 0.0 }
    );
    if let Some(s) = shard {
        eprintln!(
            "emu sweep: shard {}/{} done; when every shard is, join them with `emu merge --out DIR <shard dirs>`",
            s.index, s.count
        );
        return Ok(failed == 0);
    }
    let r = reports::report_locked(&a.out, &lock)?;
    println!("report: {}", r.index.display());
    println!("table:  {}", r.csv.display());
    Ok(failed == 0)
}
