//! `emu`: run static x86-64 Linux programs on a simulated multi-core machine and
//! measure what its TLB shootdowns cost. This file is thin glue: it parses arguments,
//! builds a `RunConfig` and calls `emu_smp::run`.

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use emu_smp::{Outcome, Profile, RunConfig, SimError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod check;
mod sweep;
mod validate;

/// Exit code of emu itself failing to run the guest (bad input, unsupported program).
const EXIT_INPUT: u8 = 1;
/// Exit code when the simulation stopped without the guest exiting (unsupported
/// instruction, deadlock, instruction limit).
const EXIT_SIM: u8 = 125;

#[derive(Parser)]
#[command(
    name = "emu",
    version,
    about = "Cycle-level multi-core x86-64 emulator for TLB-shootdown costs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a static x86-64 Linux program (a path, or a catalogue workload name).
    Run(RunArgs),
    /// List workloads, profiles or strategies.
    List {
        /// What to list.
        #[arg(value_parser = ["workloads", "profiles", "strategies"])]
        what: String,
    },
    /// Run a grid of workloads x core counts x strategies x profiles and report it
    /// (with no options: the default sweep of the shared-region workload).
    Sweep(sweep::SweepArgs),
    /// Rebuild a sweep directory's summary.csv and report/ from its stored results.
    Report {
        /// The sweep directory.
        dir: PathBuf,
    },
    /// Join the directories of a sharded sweep into one, checking nothing is missing.
    Merge {
        /// Directory to write the joined sweep to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Shard directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// Model-check a kernel mechanism exhaustively, up to a bound (exit status 0: all
    /// invariants hold; 4: a violation, its shortest trace printed; 3: bound reached).
    Check {
        /// What to check.
        #[command(subcommand)]
        what: check::CheckCmd,
    },
    /// Run guest programs that reproduce published end-to-end measurements and print
    /// emu's figures beside the published ones.
    Validate(validate::ValidateArgs),
    /// Compare two runs (`emu run --stats` files or sweep point files) side by side.
    Compare {
        /// Baseline.
        a: PathBuf,
        /// Compared with the baseline (ratios are B/A).
        b: PathBuf,
    },
}

#[derive(Args)]
#[command(trailing_var_arg = true)]
struct RunArgs {
    /// Machine profile: a built-in name or a TOML file.
    #[arg(long, default_value = "skylake-sp")]
    profile: String,
    /// Number of simulated cores.
    #[arg(long, default_value_t = 1)]
    cores: usize,
    /// Seed of the simulation's randomness.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Host path the guest may read (repeatable).
    #[arg(long = "allow-read", value_name = "PATH")]
    allow_read: Vec<PathBuf>,
    /// Guest physical memory in MiB.
    #[arg(long, default_value_t = 4096)]
    memory: u64,
    /// Scheduling quantum in cycles (upper bound; the IPI latency also bounds it).
    #[arg(long, default_value_t = 2000)]
    quantum: u64,
    /// Stop after this many guest instructions.
    #[arg(long)]
    max_insns: Option<u64>,
    /// Write run statistics as JSON to this file.
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Coherence-oracle bookkeeping: on or off (off is faster).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    oracle: String,
    /// The strategy axes' values (`--cpumask`, `--flush`, ...: one flag per axis, added
    /// from the axes emu-smp declares).
    #[arg(skip)]
    strategy: Vec<(String, String)>,
    /// Write a Chrome trace-event JSON file (Perfetto UI opens it).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write the tlb:tlb_flush tracepoint in ftrace text format.
    #[arg(long, value_name = "FILE")]
    ftrace: Option<PathBuf>,
    /// Transparent huge pages: never, madvise (regions marked MADV_HUGEPAGE) or always.
    #[arg(long, default_value = "madvise", value_parser = ["never", "madvise", "always"])]
    thp: String,
    /// Use the musl build of a catalogue workload instead of the glibc one.
    #[arg(long)]
    musl: bool,
    /// Start the guest with an empty environment (as sweep points run).
    #[arg(long)]
    no_env: bool,
    /// Program path or catalogue name, followed by its arguments.
    #[arg(required = true, allow_hyphen_values = true, num_args = 1..)]
    program: Vec<String>,
}

fn main() -> ExitCode {
    // One flag per strategy axis, from the axes' own declarations.
    let cmd = Cli::command().mut_subcommand("run", |mut run| {
        for ax in emu_smp::Strategy::axes() {
            let values: Vec<&'static str> = emu_smp::Strategy::infos()
                .iter()
                .filter(|i| i.axis == ax.axis)
                .map(|i| i.name)
                .collect();
            run = run.arg(
                clap::Arg::new(ax.axis)
                    .long(ax.axis)
                    .value_name("NAME")
                    .default_value(ax.default)
                    .hide(ax.hidden)
                    .help(format!("{}: {} (`emu list strategies`)", ax.about, values.join(", "))),
            );
        }
        run
    });
    let matches = cmd.get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let (Cmd::Run(a), Some(m)) = (&mut cli.cmd, matches.subcommand_matches("run")) {
        for ax in emu_smp::Strategy::axes() {
            if let Some(v) = m.get_one::<String>(ax.axis) {
                a.strategy.push((ax.axis.to_string(), v.clone()));
            }
        }
    }
    match cli.cmd {
        Cmd::List { what } => {
            list(&what);
            ExitCode::SUCCESS
        }
        Cmd::Sweep(a) => match sweep::sweep(&a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!(
                    "emu: some points failed; their errors are in {}/points/ID.json{}",
                    a.out.display(),
                    if a.shard().ok().flatten().is_some() {
                        " (a shard writes no report; `emu merge` makes one)"
                    } else {
                        ", the report and the CSV"
                    }
                );
                ExitCode::from(EXIT_INPUT)
            }
            Err(e) => {
                eprintln!("emu: {e:#}");
                ExitCode::from(EXIT_INPUT)
            }
        },
        Cmd::Check { what } => check::check(what),
        Cmd::Validate(a) => match validate::validate(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("emu: {e:#}");
                ExitCode::from(EXIT_INPUT)
            }
        },
        Cmd::Report { dir } => report_result(reports::report(&dir)),
        Cmd::Merge { out, dirs } => report_result(reports::merge(&out, &dirs)),
        Cmd::Compare { a, b } => match reports::compare(&a, &b) {
            Ok(t) => {
                print!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("emu: {e:#}");
                ExitCode::from(EXIT_INPUT)
            }
        },
        Cmd::Run(a) => match run(a) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("emu: {e:#}");
                ExitCode::from(EXIT_INPUT)
            }
        },
    }
}

fn report_result(r: Result<reports::ReportOutput>) -> ExitCode {
    match r {
        Ok(r) => {
            for (path, why) in &r.untrusted {
                eprintln!(
                    "emu: {} {why}: left out of the report (rerun the sweep to recompute it)",
                    path.display()
                );
            }
            println!(
                "{} of {} points have results ({} failed, {} of them live-locked); {} plots",
                r.done, r.total, r.failed, r.livelocked, r.plots
            );
            println!("report: {}", r.index.display());
            println!("table:  {}", r.csv.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("emu: {e:#}");
            ExitCode::from(EXIT_INPUT)
        }
    }
}

fn list(what: &str) {
    match what {
        "workloads" => {
            for p in workloads::catalogue().filter(|p| p.libc == workloads::Libc::Glibc) {
                println!(
                    "{:<16} {}  (default args: {})",
                    p.name,
                    p.description,
                    p.default_args.join(" ")
                );
            }
        }
        "profiles" => {
            for (name, _) in emu_smp::profile::BUILTIN {
                match Profile::load(name) {
                    Ok(p) => println!("{:<12} {}", p.name, p.description),
                    Err(e) => println!("{name:<12} (invalid: {e})"),
                }
            }
        }
        _ => {
            for ax in emu_smp::Strategy::axes().iter().filter(|a| !a.hidden) {
                println!("--{} ({}; default {})", ax.axis, ax.about, ax.default);
                for st in emu_smp::Strategy::infos().iter().filter(|i| i.axis == ax.axis) {
                    println!("  {:<12} {}\n  {:<12} source: {}", st.name, st.what, "", st.source);
                }
            }
        }
    }
}

/// Loads the program: an existing file, or a catalogue workload by name (then also its
/// default arguments).
fn load_program(name: &str, musl: bool) -> Result<(Arc<[u8]>, String, &'static [&'static str])> {
    let path = std::path::Path::new(name);
    if path.exists() {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {name}"))?;
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        return Ok((bytes.into(), abs.to_string_lossy().into_owned(), &[]));
    }
    let libc = if musl { workloads::Libc::Musl } else { workloads::Libc::Glibc };
    if let Some(p) = workloads::find(name, libc) {
        if p.kind == workloads::Kind::Catalogue {
            let bytes =
                workloads::elf_bytes(p).with_context(|| format!("cannot read workload {name}"))?;
            return Ok((
                bytes.into_owned().into(),
                format!("/emu/workloads/{name}"),
                p.default_args,
            ));
        }
    }
    if name.contains('/') {
        bail!("{name}: no such file");
    }
    bail!("{name}: no such file, and not a catalogue workload (see `emu list workloads`)")
}

fn run(a: RunArgs) -> Result<u8> {
    if a.program[0].starts_with('-') {
        bail!(
            "unknown option `{}` (options go before the program; see `emu run --help`)",
            a.program[0]
        );
    }
    let profile = Profile::load(&a.profile)?;
    let profile_toml = toml::to_string(&profile)?;
    let (image, exe_path, defaults) = load_program(&a.program[0], a.musl)?;
    let mut argv: Vec<Vec<u8>> = a.program.iter().map(|s| s.clone().into_bytes()).collect();
    if argv.len() == 1 {
        // A catalogue workload run without arguments gets its catalogue defaults.
        argv.extend(defaults.iter().map(|d| d.as_bytes().to_vec()));
    }
    let mut cfg = RunConfig::new(image, exe_path, argv, profile);
    cfg.envp = std::env::vars_os()
        .filter(|_| !a.no_env)
        .map(|(k, v)| {
            use std::os::unix::ffi::OsStrExt;
            let mut e = k.as_bytes().to_vec();
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            e
        })
        .collect();
    cfg.allow_read = a
        .allow_read
        .iter()
        .map(|p| std::fs::canonicalize(p).with_context(|| format!("--allow-read {}", p.display())))
        .collect::<Result<_>>()?;
    cfg.cores = a.cores;
    cfg.seed = a.seed;
    cfg.memory_mib = a.memory;
    cfg.quantum_cycles = a.quantum;
    cfg.max_instructions = a.max_insns;
    for (axis, value) in &a.strategy {
        cfg.strategy.set(axis, value)?;
    }
    cfg.oracle = a.oracle == "on";
    cfg.trace = a.trace.is_some() || a.ftrace.is_some();
    cfg.thp = match a.thp.as_str() {
        "never" => emu_smp::Thp::Never,
        "always" => emu_smp::Thp::Always,
        _ => emu_smp::Thp::Madvise,
    };
    (cfg.uid, cfg.gid) = host_ids();
    // With --stats, the per-shootdown records stream to a file beside it during the run
    // (host memory stays bounded) and are spliced into the statistics at the end.
    let records_tmp = a.stats.as_ref().map(|p| p.with_extension("records.tmp"));
    cfg.records = match &records_tmp {
        Some(p) => emu_smp::RecordSink::File(p.clone()),
        None => emu_smp::RecordSink::Drop,
    };
    cfg.validate()?;
    let result = emu_smp::run(&cfg);
    let r = match result {
        Ok(r) => r,
        Err(SimError::Load(m)) => bail!("{}: {m}", a.program[0]),
        Err(e) => bail!("{e}"),
    };
    if let Some(e) = &r.records_error {
        bail!("cannot write the shootdown records: {e}");
    }
    let (outcome, stats) = (r.outcome, r.stats);
    if let (Some(path), Some(t)) = (&a.trace, &r.chrome_trace) {
        write_atomic(path, serde_json::to_string(t)?.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let (Some(path), Some(t)) = (&a.ftrace, &r.ftrace) {
        write_atomic(path, t.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let (Some(path), Some(tmp)) = (&a.stats, &records_tmp) {
        write_stats(path, &stats, tmp)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let _ = std::fs::remove_file(tmp);
        // The resolved machine profile, beside the stats.
        let prof = path.with_extension("profile.toml");
        write_atomic(&prof, profile_toml.as_bytes())
            .with_context(|| format!("cannot write {}", prof.display()))?;
    }
    Ok(match outcome {
        Outcome::Exited(c) => c as u8,
        Outcome::Signaled { sig, report } => {
            if let Some(r) = report {
                eprintln!("emu: guest killed by signal {sig} ({}): {r}", signame(sig));
            }
            (128 + sig) as u8
        }
        Outcome::Error(e) => {
            eprintln!("emu: {e}");
            EXIT_SIM
        }
    })
}

fn signame(s: u32) -> &'static str {
    match s {
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}

pub(crate) fn host_ids() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| (m.uid(), m.gid())).unwrap_or((0, 0))
}

/// Writes the statistics as JSON, with the records streamed during the run (one JSON
/// object per line in `records`) as its `shootdowns` array, without holding them in
/// memory; via a temporary file and a rename.
fn write_stats(
    path: &std::path::Path,
    stats: &emu_smp::RunStats,
    records: &std::path::Path,
) -> Result<()> {
    use std::io::{BufRead, Write};
    let json = serde_json::to_string_pretty(stats)?;
    let marker = "\"shootdowns\": [],";
    let (head, tail) = json.split_once(marker).context("statistics without shootdowns")?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        out.write_all(head.as_bytes())?;
        out.write_all(b"\"shootdowns\": [")?;
        let mut first = true;
        for line in std::io::BufReader::new(std::fs::File::open(records)?).lines() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            out.write_all(if first { b"\n    " } else { b",\n    " })?;
            out.write_all(line.as_bytes())?;
            first = false;
        }
        out.write_all(if first { b"]," } else { b"\n  ]," })?;
        out.write_all(tail.as_bytes())?;
        out.flush()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Writes a file via a temporary and a rename, so readers never see a partial file.
fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
