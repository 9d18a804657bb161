//! `emu check`: bounded model checkers (crate `emu-check`). Thin glue: parse the model's
//! size and variant, run the exploration, print the verdict, the shortest trace of a
//! violation, and how fast it went.

use clap::{Args, Subcommand};
use emu_check::mmcid::{self, Variant};
use emu_check::Outcome;
use std::process::ExitCode;
use std::time::Instant;

/// Exit code when a violation was found (its trace is printed).
pub(crate) const EXIT_VIOLATION: u8 = 4;
/// Exit code when `--max-states` stopped the exploration before it finished.
pub(crate) const EXIT_BOUND: u8 = 3;

#[derive(Subcommand)]
pub(crate) enum CheckCmd {
    /// The per-mm concurrency-ID ownership scheme (kernel/sched/core.c, sched.h:
    /// mm_cid_*): every interleaving of fork, exit, schedule-in/out, migration and the
    /// fixup walks, breadth-first, against invariants I1-I5 (README "Model checking").
    MmCid(MmCidArgs),
}

#[derive(Args)]
pub(crate) struct MmCidArgs {
    /// num_possible_cpus() (all allowed), 1 to 8.
    #[arg(long, default_value_t = 4)]
    cpus: usize,
    /// Threads in all; all but the forked ones exist at the start, T_i owning CID i.
    #[arg(long, default_value_t = 5)]
    threads: usize,
    /// How many of the threads T0 forks during the run.
    #[arg(long, default_value_t = 1)]
    forks: usize,
    /// How many threads other than T0 may exit.
    #[arg(long, default_value_t = 0)]
    exits: usize,
    /// The code: afm, afm+p1, afm+p1p2, fixed, current, or all (each in turn).
    #[arg(long, default_value = "afm")]
    variant: String,
    /// Readers of the mode word(s) may see stale values (store-store and load-load
    /// reordering, as POWER allows), unless ordered by a runqueue lock.
    #[arg(long)]
    weak_memory: bool,
    /// Stop after this many distinct states and report "bound reached".
    #[arg(long, default_value_t = 20_000_000)]
    max_states: usize,
    /// Print only the verdict line (no trace).
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn check(cmd: CheckCmd) -> ExitCode {
    match cmd {
        CheckCmd::MmCid(a) => mm_cid(&a),
    }
}

fn mm_cid(a: &MmCidArgs) -> ExitCode {
    let variants: Vec<Variant> = if a.variant == "all" {
        Variant::ALL.to_vec()
    } else {
        match Variant::parse(&a.variant) {
            Some(v) => vec![v],
            None => {
                let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
                eprintln!(
                    "emu: unknown --variant {:?}; one of: {}, all",
                    a.variant,
                    names.join(", ")
                );
                return ExitCode::from(super::EXIT_INPUT);
            }
        }
    };
    let mut worst = 0u8;
    for v in variants {
        let cfg = mmcid::Config {
            cpus: a.cpus,
            threads: a.threads,
            forks: a.forks,
            exits: a.exits,
            variant: v,
            weak_memory: a.weak_memory,
            max_states: a.max_states,
        };
        println!(
            "emu check mm-cid: variant {} ({}); {} CPUs, {} threads ({} at start, {} forked), \
             {} exits, {}",
            v.name(),
            v.about(),
            a.cpus,
            a.threads,
            a.threads.saturating_sub(a.forks),
            a.forks,
            a.exits,
            if a.weak_memory { "weak memory" } else { "sequential consistency" }
        );
        let t0 = Instant::now();
        let rep = match mmcid::check(&cfg) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("emu: {e}");
                return ExitCode::from(super::EXIT_INPUT);
            }
        };
        let secs = t0.elapsed().as_secs_f64();
        let code = match &rep.outcome {
            Outcome::Holds => {
                println!("all invariants hold (I1 unique, I2 range, I3 bitmap, I4 no live lock, I5 settled mode)");
                0
            }
            Outcome::BoundReached => {
                println!(
                    "bound reached: {} states explored without a violation, but not all \
                     (raise --max-states)",
                    rep.states
                );
                EXIT_BOUND
            }
            Outcome::Violation { invariant, detail, trace, depth } => {
                println!("VIOLATION of {}", invariant.describe());
                println!("  {detail}");
                if !a.quiet {
                    println!("shortest trace ({depth} steps):");
                    print!("{trace}");
                }
                EXIT_VIOLATION
            }
        };
        println!(
            "explored {} states, {} transitions, depth {}, {} stuck-spin states examined, {} \
             states with an inactive task holding a CID; {:.3} s, {:.0} states/s",
            rep.states,
            rep.transitions,
            rep.depth,
            rep.spin_states,
            rep.inactive_cid_states,
            secs,
            rep.states as f64 / secs.max(1e-9)
        );
        // A violation outranks an incomplete run.
        worst = match (worst, code) {
            (EXIT_VIOLATION, _) | (_, EXIT_VIOLATION) => EXIT_VIOLATION,
            (w, c) => w.max(c),
        };
    }
    ExitCode::from(worst)
}
