//! `emu validate`: guest programs that reproduce published end-to-end experiments, run
//! on the closest built-in profile, side by side with the published figure. The figures
//! are outputs of the model: no profile parameter is ever set from them (DESIGN.md,
//! "Principles").

use anyhow::{bail, Context, Result};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

/// Options of `emu validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// Only the smallest configuration of each experiment (what CI runs).
    #[arg(long)]
    quick: bool,
    /// Also write the table (Markdown) to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// One published measurement and how emu reproduces it.
struct Experiment {
    /// What was measured.
    what: &'static str,
    /// The machine it was measured on.
    machine: &'static str,
    /// Where it was published.
    source: &'static str,
    /// The published figure.
    published: f64,
    /// Its unit.
    unit: &'static str,
    /// emu's profile, core count and extra `emu run` options.
    profile: &'static str,
    cores: usize,
    flags: &'static [&'static str],
    /// The catalogue workload and its arguments.
    workload: &'static str,
    args: Vec<String>,
    /// Part of `--quick`.
    quick: bool,
}

const RIEL: &str = "Rik van Riel, \"x86/mm: Enable broadcast TLB invalidation for \
                    multi-threaded processes\", tip 2025-02-25 (median of 5)";

fn experiments() -> Vec<Experiment> {
    let mut v = Vec::new();
    // (threads, tip loops/s, INVLPGB loops/s) as published.
    let riel = [
        (1, 315_000.0, 304_000.0),
        (2, 423_000.0, 424_000.0),
        (4, 644_000.0, 1_032_000.0),
        (8, 652_000.0, 1_267_000.0),
        (16, 737_000.0, 1_368_000.0),
    ];
    for (threads, tip, invlpgb) in riel {
        for (flush, published) in [("ipi", tip), ("invlpgb", invlpgb)] {
            v.push(Experiment {
                what: if flush == "ipi" {
                    "will-it-scale tlb_flush2_threads, IPIs"
                } else {
                    "will-it-scale tlb_flush2_threads, INVLPGB"
                },
                machine: "AMD Milan, 72 CPUs",
                source: RIEL,
                published,
                unit: "loops/s",
                profile: "zen3",
                cores: 36,
                flags: if flush == "ipi" { &["--flush", "ipi"] } else { &["--flush", "invlpgb"] },
                workload: "wis_tlb_flush2",
                // Past the first 32 jiffies (128 ms at HZ=250), when a process on more
                // than 3 CPUs has been given its global ASID.
                args: vec![threads.to_string(), "4000".into(), "150".into()],
                quick: threads == 2,
            });
        }
    }
    v.push(Experiment {
        what: "will-it-scale lseek1, 1 process, PTI with PCID",
        machine: "Intel (model not named)",
        source: "Dave Hansen, \"[PATCH 00/23] KAISER\" cover letter, LKML 2017-10-31",
        published: 3_000_000.0,
        unit: "lseeks/s",
        profile: "skylake-sp",
        cores: 1,
        flags: &[],
        workload: "wis_lseek1",
        args: vec!["20000".into()],
        quick: true,
    });
    v
}

/// Runs the experiments and prints the table; an experiment that fails to run is an
/// error (after the table of those that ran).
pub fn validate(a: &ValidateArgs) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the emu executable")?;
    let mut table = String::from(
        "| experiment | threads | machine | published | emu | emu/published | emu run options |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut sources: Vec<&str> = Vec::new();
    let mut failed = Vec::new();
    for e in experiments().into_iter().filter(|e| e.quick || !a.quick) {
        let mut cmd = Command::new(&exe);
        cmd.arg("run").arg("--profile").arg(e.profile).arg("--cores").arg(e.cores.to_string());
        cmd.args(e.flags).arg("--oracle").arg("off").arg(e.workload).args(&e.args);
        let out = cmd.output().with_context(|| format!("cannot run {}", exe.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let figure = stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix("loops_per_sec="))
            .and_then(|x| x.parse::<f64>().ok());
        let Some(figure) = figure.filter(|_| out.status.success()) else {
            failed.push(format!(
                "{} {:?}: {}{}",
                e.workload,
                e.args,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        };
        if !sources.contains(&e.source) {
            sources.push(e.source);
        }
        let n = sources.iter().position(|s| *s == e.source).unwrap_or(0) + 1;
        let threads = if e.workload == "wis_lseek1" { "1" } else { &e.args[0] };
        let _ = writeln!(
            table,
            "| {} [{n}] | {threads} | {} | {} {} | {} | {:.2} | {} |",
            e.what,
            e.machine,
            thousands(e.published),
            e.unit,
            thousands(figure),
            figure / e.published,
            [&["--profile", e.profile, "--cores", &e.cores.to_string()][..], e.flags]
                .concat()
                .join(" "),
        );
    }
    table.push('\n');
    for (i, s) in sources.iter().enumerate() {
        let _ = writeln!(table, "[{}] {s}", i + 1);
    }
    print!("{table}");
    if let Some(path) = &a.out {
        std::fs::write(path, &table).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if !failed.is_empty() {
        bail!("{} experiment(s) did not run:\n{}", failed.len(), failed.join("\n"));
    }
    Ok(())
}

/// `1234567.8` as `1,234,568`.
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_print_with_thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_267_000.0), "1,267,000");
    }

    #[test]
    fn quick_keeps_one_configuration_per_experiment_kind() {
        let quick: Vec<_> = experiments().into_iter().filter(|e| e.quick).collect();
        assert_eq!(quick.len(), 3);
        assert!(experiments().iter().all(|e| e.published > 0.0 && !e.source.is_empty()));
    }
}
