//! Run configuration: what to run, on what machine, with what seed. Built by the CLI
//! and validated once ([`RunConfig::validate`]) before a machine is created.

use crate::profile::Profile;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// Everything a run depends on. Identical configs give byte-identical results.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The static ELF image.
    pub program: Arc<[u8]>,
    /// Path reported as /proc/self/exe and AT_EXECFN.
    pub exe_path: String,
    /// Guest argv, argv[0] included.
    pub argv: Vec<Vec<u8>>,
    /// Guest environment (`NAME=value`).
    pub envp: Vec<Vec<u8>>,
    /// Host paths the guest may read (canonicalised).
    pub allow_read: Vec<PathBuf>,
    /// Machine profile.
    pub profile: Profile,
    /// Number of simulated cores.
    pub cores: usize,
    /// Seed of the simulation's random numbers (AT_RANDOM, getrandom, ...).
    pub seed: u64,
    /// Guest physical memory, MiB.
    pub memory_mib: u64,
    /// Longest stretch one core runs before the others catch up, in cycles.
    pub quantum_cycles: u64,
    /// Stop after this many guest instructions (a runaway guard), if set.
    pub max_instructions: Option<u64>,
    /// User and group ids the guest sees.
    pub uid: u32,
    /// Group id the guest sees.
    pub gid: u32,
    /// Transparent huge page policy.
    pub thp: crate::mm::Thp,
    /// TLB strategy.
    pub strategy: crate::machine::Strategy,
    /// Coherence-oracle bookkeeping.
    pub oracle: bool,
    /// Record a trace (Chrome JSON and ftrace text).
    pub trace: bool,
    /// Keep the guest's stdout and stderr in the result instead of writing them to the
    /// host's, and give it an empty stdin.
    pub capture_output: bool,
    /// Where the per-shootdown records go.
    pub records: crate::records::RecordSink,
}

/// A configuration that cannot run.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// Bad core count.
    #[error("--cores must be between 1 and {max}, got {got}")]
    Cores {
        /// Requested.
        got: usize,
        /// Maximum.
        max: usize,
    },
    /// Bad memory size.
    #[error("--memory must be between 16 and 131072 MiB, got {0}")]
    Memory(u64),
    /// Bad quantum.
    #[error("--quantum must be between 100 and 10000000 cycles, got {0}")]
    Quantum(u64),
    /// Empty argv.
    #[error("the guest needs at least argv[0]")]
    NoArgv,
    /// A strategy the profile's machine cannot run.
    #[error(
        "--flush invlpgb needs a profile with INVLPGB (profile `{0}` has none; try --profile zen3)"
    )]
    NoInvlpgb(String),
}

/// Most cores a machine may have.
pub const MAX_CORES: usize = 1024;

impl RunConfig {
    /// A configuration with the defaults for everything but the program.
    pub fn new(program: Arc<[u8]>, exe_path: String, argv: Vec<Vec<u8>>, profile: Profile) -> Self {
        RunConfig {
            program,
            exe_path,
            argv,
            envp: Vec::new(),
            allow_read: Vec::new(),
            profile,
            cores: 1,
            seed: 1,
            memory_mib: 4096,
            quantum_cycles: 2000,
            max_instructions: None,
            uid: 1000,
            gid: 1000,
            thp: crate::mm::Thp::default(),
            strategy: crate::machine::Strategy::default(),
            oracle: true,
            trace: false,
            capture_output: false,
            records: crate::records::RecordSink::Memory,
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cores == 0 || self.cores > MAX_CORES {
            return Err(ConfigError::Cores { got: self.cores, max: MAX_CORES });
        }
        if !(16..=131_072).contains(&self.memory_mib) {
            return Err(ConfigError::Memory(self.memory_mib));
        }
        if !(100..=10_000_000).contains(&self.quantum_cycles) {
            return Err(ConfigError::Quantum(self.quantum_cycles));
        }
        if self.argv.is_empty() {
            return Err(ConfigError::NoArgv);
        }
        if self.strategy.flush.global_asids() && !self.profile.cpu.invlpgb {
            return Err(ConfigError::NoInvlpgb(self.profile.name.clone()));
        }
        Ok(())
    }
}
