//! Sweep specifications (a grid of workloads x profiles x strategies x core counts x
//! seeds, plus optional extra grids that override some of its fields), their expansion
//! into points with stable identifiers, and sharding.

use serde::{Deserialize, Serialize};

/// A workload of the sweep: a catalogue name and its arguments, in which `{cores}` is
/// replaced by the point's core count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// Catalogue name (`emu list workloads`).
    pub name: String,
    /// Arguments; `{cores}` stands for the core count. Empty: the catalogue defaults.
    #[serde(default)]
    pub args: Vec<String>,
}

impl WorkloadSpec {
    /// `NAME ARGS...` as written, `{cores}` included.
    pub fn label(&self) -> String {
        std::iter::once(self.name.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Parses `NAME [ARG...]` (whitespace-separated).
    pub fn parse(s: &str) -> Option<Self> {
        let mut words = s.split_whitespace();
        let name = words.next()?.to_string();
        Some(WorkloadSpec { name, args: words.map(str::to_string).collect() })
    }
}

/// The grids a sweep runs: the main grid (the spec's own fields) and the extra ones in
/// `grids`. Every combination of a grid is a point; the sweep's points are the union
/// of its grids' (in grid order, duplicates removed). Combinations a profile cannot
/// run (INVLPGB on a CPU without it) are skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// Workloads.
    pub workloads: Vec<WorkloadSpec>,
    /// Machine profiles (built-in names or TOML paths).
    pub profiles: Vec<String>,
    /// mm_cpumask policies.
    pub cpumask: Vec<String>,
    /// Flush transports.
    pub flush: Vec<String>,
    /// Lazy-TLB mm reference policies (`--lazy-mm`).
    #[serde(default = "default_lazy_mm")]
    pub lazy_mm: Vec<String>,
    /// mm_cid variants (`--mm-cid`).
    #[serde(default = "default_mm_cid")]
    pub mm_cid: Vec<String>,
    /// Walker synchronisation strategies (`--walker-sync`).
    #[serde(default = "default_walker_sync")]
    pub walker_sync: Vec<String>,
    /// Preemption models (`--preempt`); left out of the serialized spec when it is the
    /// default alone, so the manifests of sweeps from before the axis stay the same.
    #[serde(default = "default_preempt", skip_serializing_if = "is_default_preempt_list")]
    pub preempt: Vec<String>,
    /// Core counts.
    pub cores: Vec<usize>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Coherence-oracle bookkeeping in every run.
    #[serde(default = "yes")]
    pub oracle: bool,
    /// Guest physical memory of every run, MiB.
    #[serde(default = "default_memory")]
    pub memory_mib: u64,
    /// Extra grids, each the main grid with the fields it names replaced (`[[grids]]`
    /// in TOML). Left out of the serialized spec when there are none, so the manifests
    /// of one-grid sweeps are what they were before extra grids existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grids: Vec<GridSpec>,
}

/// An extra grid of a sweep: the fields it names replace the main grid's, the others
/// are the main grid's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    /// Workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<Vec<WorkloadSpec>>,
    /// Machine profiles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<String>>,
    /// mm_cpumask policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpumask: Option<Vec<String>>,
    /// Flush transports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush: Option<Vec<String>>,
    /// Lazy-TLB mm reference policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy_mm: Option<Vec<String>>,
    /// mm_cid variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mm_cid: Option<Vec<String>>,
    /// Walker synchronisation strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walker_sync: Option<Vec<String>>,
    /// Preemption models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<Vec<String>>,
    /// Core counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<Vec<usize>>,
    /// Seeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
    /// Coherence-oracle bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oracle: Option<bool>,
    /// Guest memory, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
}

fn yes() -> bool {
    true
}

/// `emu run`'s default `--lazy-mm`.
pub const DEFAULT_LAZY_MM: &str = "refcount";

fn default_lazy_mm() -> Vec<String> {
    vec![DEFAULT_LAZY_MM.into()]
}

fn default_lazy_mm_one() -> String {
    DEFAULT_LAZY_MM.into()
}

fn is_default_lazy_mm(s: &str) -> bool {
    s == DEFAULT_LAZY_MM
}

/// `emu run`'s default `--mm-cid`.
pub const DEFAULT_MM_CID: &str = "current";

fn default_mm_cid() -> Vec<String> {
    vec![DEFAULT_MM_CID.into()]
}

fn default_mm_cid_one() -> String {
    DEFAULT_MM_CID.into()
}

fn is_default_mm_cid(s: &str) -> bool {
    s == DEFAULT_MM_CID
}

/// `emu run`'s default `--walker-sync` (`linux`: x86 frees page tables through RCU).
pub const DEFAULT_WALKER_SYNC: &str = "linux";

fn default_walker_sync() -> Vec<String> {
    vec![DEFAULT_WALKER_SYNC.into()]
}

fn default_walker_sync_one() -> String {
    DEFAULT_WALKER_SYNC.into()
}

fn is_default_walker_sync(s: &str) -> bool {
    s == DEFAULT_WALKER_SYNC
}

/// `emu run`'s default `--preempt` (`voluntary`: kernel paths are not preempted).
pub const DEFAULT_PREEMPT: &str = "voluntary";

fn default_preempt() -> Vec<String> {
    vec![DEFAULT_PREEMPT.into()]
}

fn default_preempt_one() -> String {
    DEFAULT_PREEMPT.into()
}

fn is_default_preempt(s: &str) -> bool {
    s == DEFAULT_PREEMPT
}

fn is_default_preempt_list(v: &[String]) -> bool {
    v.len() == 1 && is_default_preempt(&v[0])
}

/// `emu run`'s default guest memory.
pub const DEFAULT_MEMORY_MIB: u64 = 4096;

fn default_memory() -> u64 {
    DEFAULT_MEMORY_MIB
}

impl Default for SweepSpec {
    /// The embedded default sweep: the shared-region shootdown workload, one thread per
    /// core, at 1 to 32 cores, every cpumask policy and flush transport, on both
    /// built-in profiles; and two more, [`SweepSpec::walker_sync_grids`], comparing the
    /// page-table walker synchronisation strategies over core counts.
    fn default() -> Self {
        SweepSpec {
            workloads: vec![WorkloadSpec {
                name: "madvise_shared".into(),
                args: vec!["{cores}".into(), "16".into(), "1000".into()],
            }],
            profiles: vec!["skylake-sp".into(), "zen3".into()],
            cpumask: ["lazy", "lazy-notrim", "eager", "sticky", "all"].map(String::from).to_vec(),
            flush: vec!["ipi".into(), "invlpgb".into()],
            lazy_mm: default_lazy_mm(),
            mm_cid: default_mm_cid(),
            walker_sync: default_walker_sync(),
            preempt: default_preempt(),
            cores: vec![1, 2, 4, 8, 16, 32],
            seeds: vec![1],
            oracle: true,
            memory_mib: DEFAULT_MEMORY_MIB,
            grids: SweepSpec::walker_sync_grids(),
        }
    }
}

impl SweepSpec {
    /// The default sweep's walker-sync grids: `gup_race` (one GUP-fast walker thread per
    /// core racing a thread that maps, touches and unmaps a region, retiring its page
    /// tables each round) under each walker synchronisation strategy on zen3 (`linux` is
    /// left out: it is `rcu`). First with IPIs, 300 rounds at 2 to 32 cores. Then with
    /// INVLPGB, which goes to an mm only once it has a global ASID: consider_global_asid
    /// grants one to an mm active on more than 3 CPUs when the flushing task's pid
    /// matches the jiffy counter (mod 32, up to 128 ms at HZ 250). `gup_race 4 8 1000`
    /// (19 ms simulated) ran without one, `gup_race 4 8 10000` (about 200 ms) sent
    /// INVLPGBs for most of its rounds, and at 2 CPUs none is ever sent; so 10,000
    /// rounds at 4 and 8 CPUs (the 10 points took 112 s of host CPU time, a loaded
    /// machine). Last, THP collapse with IPIs (`gup_race ... collapse`: each round
    /// MADV_COLLAPSEs the walked region, retire point E2, whose PTE table is reused), 30
    /// rounds at 2 to 16 CPUs, `linux` included: there it is tlb_remove_table_sync_one's
    /// broadcast, and `rcu` sleeps a grace period per collapse (the 16-CPU rcu point
    /// took 10 s of host time).
    pub fn walker_sync_grids() -> Vec<GridSpec> {
        let gup_race = |rounds: &str| {
            Some(vec![WorkloadSpec {
                name: "gup_race".into(),
                args: vec!["{cores}".into(), "8".into(), rounds.into()],
            }])
        };
        let grid = GridSpec {
            profiles: Some(vec!["zen3".into()]),
            cpumask: Some(vec!["lazy".into()]),
            walker_sync: Some(
                ["broadcast", "targeted", "rcu", "implied", "none"].map(String::from).to_vec(),
            ),
            ..GridSpec::default()
        };
        vec![
            GridSpec {
                workloads: gup_race("300"),
                flush: Some(vec!["ipi".into()]),
                cores: Some(vec![2, 4, 8, 16, 32]),
                ..grid.clone()
            },
            GridSpec {
                workloads: gup_race("10000"),
                flush: Some(vec!["invlpgb".into()]),
                cores: Some(vec![4, 8]),
                ..grid.clone()
            },
            GridSpec {
                workloads: Some(vec![WorkloadSpec {
                    name: "gup_race".into(),
                    args: ["{cores}", "8", "30", "collapse"].map(String::from).to_vec(),
                }]),
                flush: Some(vec!["ipi".into()]),
                cores: Some(vec![2, 4, 8, 16]),
                walker_sync: Some(
                    ["linux", "broadcast", "targeted", "rcu", "implied", "none"]
                        .map(String::from)
                        .to_vec(),
                ),
                ..grid
            },
        ]
    }

    /// Reads a TOML spec; fields it leaves out keep their default values, except
    /// `grids`: a file has the extra grids it lists (none when it lists none), so that
    /// a spec written for one grid stays one grid.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Partial {
            workloads: Option<Vec<WorkloadSpec>>,
            profiles: Option<Vec<String>>,
            cpumask: Option<Vec<String>>,
            flush: Option<Vec<String>>,
            lazy_mm: Option<Vec<String>>,
            mm_cid: Option<Vec<String>>,
            walker_sync: Option<Vec<String>>,
            preempt: Option<Vec<String>>,
            cores: Option<Vec<usize>>,
            seeds: Option<Vec<u64>>,
            oracle: Option<bool>,
            memory_mib: Option<u64>,
            #[serde(default)]
            grids: Vec<GridSpec>,
        }
        let p: Partial = toml::from_str(text)?;
        let d = SweepSpec::default();
        let spec = SweepSpec {
            workloads: p.workloads.unwrap_or(d.workloads),
            profiles: p.profiles.unwrap_or(d.profiles),
            cpumask: p.cpumask.unwrap_or(d.cpumask),
            flush: p.flush.unwrap_or(d.flush),
            lazy_mm: p.lazy_mm.unwrap_or(d.lazy_mm),
            mm_cid: p.mm_cid.unwrap_or(d.mm_cid),
            walker_sync: p.walker_sync.unwrap_or(d.walker_sync),
            preempt: p.preempt.unwrap_or(d.preempt),
            cores: p.cores.unwrap_or(d.cores),
            seeds: p.seeds.unwrap_or(d.seeds),
            oracle: p.oracle.unwrap_or(d.oracle),
            memory_mib: p.memory_mib.unwrap_or(d.memory_mib),
            grids: p.grids,
        };
        spec.check()?;
        Ok(spec)
    }

    /// Every grid resolved to a one-grid spec: the main grid, then each extra grid with
    /// the main grid's values for the fields it leaves out.
    pub fn resolved_grids(&self) -> Vec<SweepSpec> {
        let main = SweepSpec { grids: Vec::new(), ..self.clone() };
        let mut out = vec![main.clone()];
        for g in &self.grids {
            let m = main.clone();
            out.push(SweepSpec {
                workloads: g.workloads.clone().unwrap_or(m.workloads),
                profiles: g.profiles.clone().unwrap_or(m.profiles),
                cpumask: g.cpumask.clone().unwrap_or(m.cpumask),
                flush: g.flush.clone().unwrap_or(m.flush),
                lazy_mm: g.lazy_mm.clone().unwrap_or(m.lazy_mm),
                mm_cid: g.mm_cid.clone().unwrap_or(m.mm_cid),
                walker_sync: g.walker_sync.clone().unwrap_or(m.walker_sync),
                preempt: g.preempt.clone().unwrap_or(m.preempt),
                cores: g.cores.clone().unwrap_or(m.cores),
                seeds: g.seeds.clone().unwrap_or(m.seeds),
                oracle: g.oracle.unwrap_or(m.oracle),
                memory_mib: g.memory_mib.unwrap_or(m.memory_mib),
                grids: Vec::new(),
            });
        }
        out
    }

    /// Every value of every grid on one strategy axis (`cpumask`, `flush`, `lazy_mm`,
    /// `mm_cid`, `walker_sync`, `preempt`), each once, for checking them against the
    /// strategies.
    pub fn axis_values(&self, axis: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for g in self.resolved_grids() {
            let values = match axis {
                "cpumask" => g.cpumask,
                "flush" => g.flush,
                "lazy_mm" => g.lazy_mm,
                "mm_cid" => g.mm_cid,
                "walker_sync" => g.walker_sync,
                "preempt" => g.preempt,
                _ => Vec::new(),
            };
            for v in values {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        out
    }

    /// Rejects empty axes and zero core counts, in the main grid and every extra one.
    pub fn check(&self) -> anyhow::Result<()> {
        for (i, g) in self.resolved_grids().iter().enumerate() {
            g.check_one().map_err(|e| {
                if i == 0 {
                    e
                } else {
                    anyhow::anyhow!("grid {} (of `grids`, from 1): {e}", i)
                }
            })?;
        }
        Ok(())
    }

    /// [`SweepSpec::check`] for one resolved grid.
    fn check_one(&self) -> anyhow::Result<()> {
        let empty = [
            ("workloads", self.workloads.is_empty()),
            ("profiles", self.profiles.is_empty()),
            ("cpumask", self.cpumask.is_empty()),
            ("flush", self.flush.is_empty()),
            ("lazy_mm", self.lazy_mm.is_empty()),
            ("mm_cid", self.mm_cid.is_empty()),
            ("walker_sync", self.walker_sync.is_empty()),
            ("preempt", self.preempt.is_empty()),
            ("cores", self.cores.is_empty()),
            ("seeds", self.seeds.is_empty()),
        ];
        if let Some((axis, _)) = empty.iter().find(|(_, e)| *e) {
            anyhow::bail!("the sweep's `{axis}` list is empty");
        }
        if self.cores.contains(&0) {
            anyhow::bail!("a core count of 0 in the sweep");
        }
        if !(16..=131_072).contains(&self.memory_mib) {
            anyhow::bail!(
                "the sweep's memory_mib must be between 16 and 131072, got {}",
                self.memory_mib
            );
        }
        Ok(())
    }

    /// Every point of every grid, grid by grid, each in a fixed order (workload,
    /// profile, cpumask, flush, lazy-mm, mm_cid, walker-sync, preempt, cores, seed), duplicates
    /// removed.
    pub fn points(&self) -> Vec<Point> {
        let mut out: Vec<Point> = Vec::new();
        for g in self.resolved_grids() {
            g.grid_points(&mut out);
        }
        out
    }

    /// Appends the points of this spec's main grid that `out` does not hold yet.
    fn grid_points(&self, out: &mut Vec<Point>) {
        type Combo<'a> = (&'a String, &'a String, &'a String, &'a String, &'a String, &'a String);
        let combos: Vec<Combo> = self
            .cpumask
            .iter()
            .flat_map(|c| {
                self.flush.iter().flat_map(move |f| {
                    self.lazy_mm.iter().flat_map(move |l| {
                        self.mm_cid.iter().flat_map(move |m| {
                            self.walker_sync.iter().flat_map(move |w| {
                                self.preempt.iter().map(move |r| (c, f, l, m, w, r))
                            })
                        })
                    })
                })
            })
            .collect();
        for w in &self.workloads {
            for profile in &self.profiles {
                for &(cpumask, flush, lazy_mm, mm_cid, walker_sync, preempt) in &combos {
                    for &cores in &self.cores {
                        for &seed in &self.seeds {
                            let args = w
                                .args
                                .iter()
                                .map(|a| a.replace("{cores}", &cores.to_string()))
                                .collect();
                            let p = Point {
                                workload: w.name.clone(),
                                label: w.label(),
                                args,
                                profile: profile.clone(),
                                cpumask: cpumask.clone(),
                                flush: flush.clone(),
                                lazy_mm: lazy_mm.clone(),
                                mm_cid: mm_cid.clone(),
                                walker_sync: walker_sync.clone(),
                                preempt: preempt.clone(),
                                cores,
                                seed,
                                oracle: self.oracle,
                                memory_mib: self.memory_mib,
                            };
                            if !out.contains(&p) {
                                out.push(p);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// Catalogue workload.
    pub workload: String,
    /// The workload as the spec wrote it (`{cores}` unresolved): points that differ
    /// only in the core count share it.
    pub label: String,
    /// Its arguments (resolved).
    pub args: Vec<String>,
    /// Machine profile.
    pub profile: String,
    /// mm_cpumask policy.
    pub cpumask: String,
    /// Flush transport.
    pub flush: String,
    /// Lazy-TLB mm reference policy (left out of the identifier's hash when it is the
    /// default, so that points of older sweeps keep their identifiers).
    #[serde(default = "default_lazy_mm_one", skip_serializing_if = "is_default_lazy_mm")]
    pub lazy_mm: String,
    /// mm_cid variant; left out of the serialized point when it is the default, so the
    /// points (and ids) of sweeps from before the axis stay the same.
    #[serde(default = "default_mm_cid_one", skip_serializing_if = "is_default_mm_cid")]
    pub mm_cid: String,
    /// Walker synchronisation strategy; left out of the serialized point when it is the
    /// default, so the points (and ids) of sweeps from before the axis stay the same.
    #[serde(default = "default_walker_sync_one", skip_serializing_if = "is_default_walker_sync")]
    pub walker_sync: String,
    /// Preemption model; left out of the serialized point when it is the default, so the
    /// points (and ids) of sweeps from before the axis stay the same.
    #[serde(default = "default_preempt_one", skip_serializing_if = "is_default_preempt")]
    pub preempt: String,
    /// Core count.
    pub cores: usize,
    /// Seed.
    pub seed: u64,
    /// Oracle bookkeeping.
    pub oracle: bool,
    /// Guest memory, MiB.
    pub memory_mib: u64,
}

/// 32-bit FNV-1a: a stable hash for identifiers (the same on every host and version).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Keeps `[A-Za-z0-9._-]`, turning anything else into `-`.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
        .collect()
}

impl Point {
    /// A stable identifier, readable and safe as a file name: the axes' values and a
    /// hash of the whole point (arguments and profile path included).
    pub fn id(&self) -> String {
        let profile = std::path::Path::new(&self.profile)
            .file_stem()
            .map_or_else(|| self.profile.clone(), |s| s.to_string_lossy().into_owned());
        let canonical = serde_json::to_string(self).unwrap_or_default();
        let flush = if is_default_lazy_mm(&self.lazy_mm) {
            file_safe(&self.flush)
        } else {
            format!("{}_{}", file_safe(&self.flush), file_safe(&self.lazy_mm))
        };
        let mut mm_cid = if is_default_mm_cid(&self.mm_cid) {
            String::new()
        } else {
            format!("_{}", file_safe(&self.mm_cid))
        };
        if !is_default_walker_sync(&self.walker_sync) {
            mm_cid += &format!("_walker-{}", file_safe(&self.walker_sync));
        }
        if !is_default_preempt(&self.preempt) {
            mm_cid += &format!("_preempt-{}", file_safe(&self.preempt));
        }
        format!(
            "{}_{}_{}_{}{}_c{}_s{}_{:08x}",
            file_safe(&self.workload),
            file_safe(&profile),
            file_safe(&self.cpumask),
            flush,
            mm_cid,
            self.cores,
            self.seed,
            fnv1a(canonical.as_bytes())
        )
    }

    /// Strategy label used in plots and tables.
    pub fn strategy(&self) -> String {
        let mut s = format!("{}/{}", self.cpumask, self.flush);
        if !is_default_lazy_mm(&self.lazy_mm) {
            s = format!("{s}/{}", self.lazy_mm);
        }
        if !is_default_mm_cid(&self.mm_cid) {
            s = format!("{s}/{}", self.mm_cid);
        }
        if !is_default_walker_sync(&self.walker_sync) {
            s = format!("{s}/walker-{}", self.walker_sync);
        }
        if !is_default_preempt(&self.preempt) {
            s = format!("{s}/preempt-{}", self.preempt);
        }
        s
    }

    /// The `emu run` command that reproduces this point.
    pub fn command(&self) -> String {
        let mut c = format!(
            "emu run --no-env --profile {} --cores {} --cpumask {} --flush {}{} --seed {}{}{} --stats {}.json {}",
            shell_word(&self.profile),
            self.cores,
            shell_word(&self.cpumask),
            shell_word(&self.flush),
            {
                let mut extra = String::new();
                if !is_default_lazy_mm(&self.lazy_mm) {
                    extra += &format!(" --lazy-mm {}", shell_word(&self.lazy_mm));
                }
                if !is_default_mm_cid(&self.mm_cid) {
                    extra += &format!(" --mm-cid {}", shell_word(&self.mm_cid));
                }
                if !is_default_walker_sync(&self.walker_sync) {
                    extra += &format!(" --walker-sync {}", shell_word(&self.walker_sync));
                }
                if !is_default_preempt(&self.preempt) {
                    extra += &format!(" --preempt {}", shell_word(&self.preempt));
                }
                extra
            },
            self.seed,
            if self.oracle { "" } else { " --oracle off" },
            if self.memory_mib == DEFAULT_MEMORY_MIB {
                String::new()
            } else {
                format!(" --memory {}", self.memory_mib)
            },
            self.id(),
            shell_word(&self.workload)
        );
        for a in &self.args {
            c.push(' ');
            c.push_str(&shell_word(a));
        }
        c
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Which part of a sweep one process runs: points `i` with `i % count == index`
/// (0-based), so long and short points spread evenly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Parses `K/N` (0 <= K < N).
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let (k, n) =
            s.split_once('/').ok_or_else(|| anyhow::anyhow!("--shard wants K/N, got `{s}`"))?;
        let index: usize =
            k.trim().parse().map_err(|_| anyhow::anyhow!("--shard: bad K in `{s}`"))?;
        let count: usize =
            n.trim().parse().map_err(|_| anyhow::anyhow!("--shard: bad N in `{s}`"))?;
        if count == 0 || index >= count {
            anyhow::bail!("--shard K/N needs 0 <= K < N (K counts from 0), got `{s}`");
        }
        Ok(Shard { index, count })
    }

    /// Whether the point at position `i` of the full list belongs to this shard.
    pub fn holds(&self, i: usize) -> bool {
        i % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_grid_and_ids() {
        let s = SweepSpec::default();
        let pts = s.points();
        // The shootdown grid, then the walker-sync ones (5 strategies at 5 core counts
        // with IPIs, at 2 with INVLPGB; THP collapse: 6 at 4).
        assert_eq!(pts.len(), 2 * 5 * 2 * 6 + 5 * 5 + 5 * 2 + 6 * 4);
        let ids: std::collections::BTreeSet<String> = pts.iter().map(Point::id).collect();
        assert_eq!(ids.len(), pts.len(), "identifiers collide");
        let p = &pts[3];
        assert_eq!(p.args[0], p.cores.to_string());
        assert!(p.id().starts_with("madvise_shared_skylake-sp_lazy_ipi_c8_s1_"), "{}", p.id());
        // Stable across runs and hosts: a fixed hash of the canonical point.
        assert_eq!(p.id(), pts[3].clone().id());
        assert!(
            p.command().contains("--cores 8") && p.command().ends_with("madvise_shared 8 16 1000")
        );
    }

    #[test]
    fn the_default_sweeps_first_grid_keeps_its_points_and_ids() {
        let pts = SweepSpec::default().points();
        // The identifier this point had before the walker-sync axis and extra grids
        // (`emu sweep --dry-run` of the tree before them).
        assert_eq!(pts[3].id(), "madvise_shared_skylake-sp_lazy_ipi_c8_s1_93d3a3bf");
        let main = SweepSpec { grids: Vec::new(), ..SweepSpec::default() };
        assert_eq!(pts[..120], main.points()[..]);
        assert!(pts[..120].iter().all(|p| p.walker_sync == DEFAULT_WALKER_SYNC));
        // A one-grid spec serializes as before: no `grids`, and points without
        // `walker_sync`.
        let json = serde_json::to_string(&main).expect("json");
        assert!(!json.contains("grids"), "{json}");
        assert!(!serde_json::to_string(&pts[0]).expect("json").contains("walker_sync"));
        let gup = &pts[120..];
        assert!(gup.iter().all(|p| p.workload == "gup_race" && p.profile == "zen3"));
        let strategies: std::collections::BTreeSet<&str> =
            gup.iter().map(|p| p.walker_sync.as_str()).collect();
        assert_eq!(
            strategies.into_iter().collect::<Vec<_>>(),
            ["broadcast", "implied", "linux", "none", "rcu", "targeted"]
        );
        let collapse: Vec<&Point> = gup.iter().filter(|p| p.args.len() == 4).collect();
        assert_eq!(collapse.len(), 24);
        assert!(collapse.iter().all(|p| p.args[3] == "collapse" && p.flush == "ipi"));
        assert!(gup.iter().all(|p| p.walker_sync != "linux" || p.args.len() == 4));
        assert_eq!(gup[0].args[0], gup[0].cores.to_string());
        let invlpgb: Vec<&Point> = gup.iter().filter(|p| p.flush == "invlpgb").collect();
        assert_eq!(invlpgb.len(), 10);
        assert!(invlpgb.iter().all(|p| p.cores >= 4 && p.args[2] == "10000"));
    }

    #[test]
    fn extra_grids_override_what_they_name_and_union_their_points() {
        let s = SweepSpec::from_toml(
            "cores = [2, 4]\nflush = [\"ipi\"]\ncpumask = [\"lazy\"]\nprofiles = [\"zen3\"]\n\
             [[workloads]]\nname = \"hello\"\n\
             [[grids]]\nwalker_sync = [\"rcu\", \"broadcast\"]\ncores = [4, 8]\n\
             [[grids.workloads]]\nname = \"gup_race\"\nargs = [\"{cores}\", \"8\", \"5\"]\n\
             [[grids]]\ncores = [2]\n",
        )
        .expect("parse");
        assert_eq!(s.grids.len(), 2);
        let g = s.resolved_grids();
        assert_eq!((g[1].flush.clone(), g[1].cores.clone()), (vec!["ipi".into()], vec![4, 8]));
        let pts = s.points();
        // hello at 2 and 4 cores; gup_race at 4 and 8 under two strategies; the third
        // grid's only point (hello at 2 cores) is the first grid's and counted once.
        assert_eq!(pts.len(), 2 + 2 * 2);
        assert_eq!(pts[2].id().split("_c").next(), Some("gup_race_zen3_lazy_ipi_walker-rcu"));
        assert_eq!(pts[2].strategy(), "lazy/ipi/walker-rcu");
        assert!(pts[2].command().contains(" --walker-sync rcu --seed 1"), "{}", pts[2].command());
        assert!(pts[3].command().ends_with("gup_race 8 8 5"), "{}", pts[3].command());
        // The spec round-trips through TOML (the manifest and the report print it).
        let text = toml::to_string(&s).expect("toml");
        assert_eq!(SweepSpec::from_toml(&text).expect("reparse"), s);
        // A file without `grids` has none, whatever the default sweep has.
        assert!(SweepSpec::from_toml("cores = [2]").expect("parse").grids.is_empty());
    }

    #[test]
    fn the_walker_sync_axis_expands_and_bad_grids_are_refused() {
        let s = SweepSpec::from_toml(
            "cores = [4]\nflush = [\"ipi\"]\ncpumask = [\"lazy\"]\nprofiles = [\"zen3\"]\n\
             walker_sync = [\"linux\", \"targeted\", \"none\"]\n",
        )
        .expect("parse");
        let pts = s.points();
        assert_eq!(pts.len(), 3);
        assert!(pts[0].id().starts_with("madvise_shared_zen3_lazy_ipi_c4_s1_"), "{}", pts[0].id());
        assert!(!pts[0].command().contains("--walker-sync"));
        assert!(pts[1].id().starts_with("madvise_shared_zen3_lazy_ipi_walker-targeted_c4_"));
        assert_eq!(s.axis_values("walker_sync"), ["linux", "targeted", "none"]);
        let err = |text: &str| format!("{:#}", SweepSpec::from_toml(text).expect_err(text));
        assert_eq!(err("walker_sync = []"), "the sweep's `walker_sync` list is empty");
        assert_eq!(
            err("[[grids]]\ncores = [0]"),
            "grid 1 (of `grids`, from 1): a core count of 0 in the sweep"
        );
        assert_eq!(
            err("[[grids]]\nwalker_sync = []\n[[grids]]\nseeds = []"),
            "grid 1 (of `grids`, from 1): the sweep's `walker_sync` list is empty"
        );
        assert!(err("[[grids]]\nwalker = [\"rcu\"]").contains("unknown field `walker`"));
        // The shipped INVLPGB comparison parses and spans every strategy but linux.
        let shipped = SweepSpec::from_toml(include_str!("../../benches/walker_sync_invlpgb.toml"))
            .expect("benches/walker_sync_invlpgb.toml");
        assert_eq!(shipped.walker_sync.len(), 5);
        assert_eq!(shipped.points().len(), 5 * 2 * 2);
    }

    #[test]
    fn the_lazy_mm_axis_keeps_default_points_as_they_were() {
        let s = SweepSpec::from_toml(
            "cores = [4]\ncpumask = [\"lazy\"]\nflush = [\"ipi\"]\nlazy_mm = [\"refcount\", \"shootdown\"]\n",
        )
        .expect("spec");
        let pts = s.points();
        assert_eq!(pts.len(), 4, "two profiles, two policies");
        let (dflt, other) = (&pts[0], &pts[1]);
        assert_eq!((dflt.lazy_mm.as_str(), other.lazy_mm.as_str()), ("refcount", "shootdown"));
        // The default is not serialized: the hash, and so the identifier, of a point is
        // what it was before the axis existed.
        let canonical = serde_json::to_string(dflt).expect("json");
        assert!(!canonical.contains("lazy_mm"), "{canonical}");
        let back: Point = serde_json::from_str(&canonical).expect("parse");
        assert_eq!(&back, dflt);
        assert!(dflt.id().starts_with("madvise_shared_skylake-sp_lazy_ipi_c4_s1_"));
        assert!(other.id().starts_with("madvise_shared_skylake-sp_lazy_ipi_shootdown_c4_s1_"));
        assert_eq!(other.strategy(), "lazy/ipi/shootdown");
        assert!(other.command().contains("--flush ipi --lazy-mm shootdown --seed"));
        assert!(!dflt.command().contains("--lazy-mm"));
        assert!(SweepSpec::from_toml("lazy_mm = []").is_err());
        // The shipped lazy-mm comparison parses and spans every policy.
        let shipped = SweepSpec::from_toml(include_str!("../../benches/lazy_mm_sweep.toml"))
            .expect("benches/lazy_mm_sweep.toml");
        assert_eq!(shipped.lazy_mm.len(), 5);
        assert_eq!(shipped.points().len(), 2 * 2 * 5 * 6);
    }

    #[test]
    fn the_preemption_model_is_an_axis_whose_default_keeps_ids_and_manifests() {
        let s = SweepSpec::from_toml(
            "profiles = [\"zen3\"]\ncpumask = [\"lazy\"]\nflush = [\"ipi\"]\ncores = [4]\nseeds = [1]\n\
             mm_cid = [\"afm\"]\npreempt = [\"voluntary\", \"full\"]\n[[workloads]]\nname = \"cid_pool\"\n\
             args = [\"100\", \"130\", \"busy\"]\n",
        )
        .expect("parse");
        let pts = s.points();
        assert_eq!(pts.len(), 2);
        let (dflt, full) = (&pts[0], &pts[1]);
        let canonical = serde_json::to_string(dflt).expect("json");
        assert!(!canonical.contains("preempt"), "{canonical}");
        assert!(dflt.id().starts_with("cid_pool_zen3_lazy_ipi_afm_c4_s1_"), "{}", dflt.id());
        assert!(full.id().starts_with("cid_pool_zen3_lazy_ipi_afm_preempt-full_c4_s1_"));
        assert_eq!(full.strategy(), "lazy/ipi/afm/preempt-full");
        assert!(full.command().contains(" --preempt full "), "{}", full.command());
        assert!(!dflt.command().contains("--preempt"));
        // A spec that leaves the axis at its default serializes as before it existed.
        let text = toml::to_string(&SweepSpec::default()).expect("toml");
        assert!(!text.contains("preempt"), "{text}");
        assert_eq!(s.axis_values("preempt"), vec!["voluntary", "full"]);
        assert!(SweepSpec::from_toml("preempt = []").is_err());
    }

    #[test]
    fn toml_specs_override_the_default() {
        let s = SweepSpec::from_toml(
            "cores = [2, 4]\nflush = [\"ipi\"]\n[[workloads]]\nname = \"mmap_churn\"\nargs = [\"{cores}\", \"4\", \"10\"]\n",
        )
        .expect("parse");
        assert_eq!(s.cores, vec![2, 4]);
        assert_eq!(s.profiles, SweepSpec::default().profiles);
        assert_eq!(s.points().len(), 2 * 5 * 2);
        assert!(SweepSpec::from_toml("cores = []").is_err());
        assert!(SweepSpec::from_toml("bogus = 1").is_err());
        assert!(SweepSpec::from_toml("cores = [0]").is_err());
    }

    #[test]
    fn the_mm_cid_axis_names_non_default_points_only() {
        let s = SweepSpec::from_toml(
            "cores = [4]\nflush = [\"ipi\"]\ncpumask = [\"lazy\"]\nprofiles = [\"zen3\"]\n\
             mm_cid = [\"current\", \"afm\"]\n[[workloads]]\nname = \"cid_pool\"\nargs = []\n",
        )
        .expect("parse");
        let pts = s.points();
        assert_eq!(pts.len(), 2);
        // The default leaves ids, labels and commands as they were before the axis.
        let json = serde_json::to_string(&pts[0]).expect("json");
        assert!(!json.contains("mm_cid"), "{json}");
        assert!(pts[0].id().starts_with("cid_pool_zen3_lazy_ipi_c4_s1_"), "{}", pts[0].id());
        assert_eq!(pts[0].strategy(), "lazy/ipi");
        assert!(!pts[0].command().contains("--mm-cid"));
        assert!(pts[1].id().starts_with("cid_pool_zen3_lazy_ipi_afm_c4_s1_"), "{}", pts[1].id());
        assert_eq!(pts[1].strategy(), "lazy/ipi/afm");
        assert!(pts[1].command().contains(" --mm-cid afm --seed 1"), "{}", pts[1].command());
        let back: Point = serde_json::from_str(&json).expect("old points read back");
        assert_eq!(back.mm_cid, "current");
        assert!(SweepSpec::from_toml("mm_cid = []").is_err());
    }

    #[test]
    fn shards_partition_the_points() {
        let n = 7;
        let mut seen = vec![0; 20];
        for k in 0..n {
            let s = Shard::parse(&format!("{k}/{n}")).expect("shard");
            for (i, c) in seen.iter_mut().enumerate() {
                if s.holds(i) {
                    *c += 1;
                }
            }
        }
        assert!(seen.iter().all(|&c| c == 1));
        for bad in ["3/3", "1", "a/2", "0/0"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_quote_what_the_shell_would_split() {
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("zen3"), "zen3");
    }
}
