//! Builds every C program under `c/` into static x86-64 ELF binaries in
//! `OUT_DIR` and generates the table that `src/lib.rs` includes.
//!
//! Layout: `c/catalogue/*.c`, `c/diff/*.c` and `c/bench/*.c`; the directory
//! gives the program's kind and the file stem its name (unique across kinds).
//!
//! Each program is built with `gcc -O2 -static` (glibc) and, when `musl-gcc`
//! is on `PATH`, with `musl-gcc -O2 -static`; diff programs also get a
//! static-PIE glibc variant (`gcc -O2 -static-pie -fPIE`). Header comment
//! lines in the C file configure it:
//!
//! ```c
//! // emu-desc: one line saying what the program stresses   (required)
//! // emu-args: 4 1000                                       (default argv, space separated)
//! // emu-stdin: text with \n escapes                        (stdin for tests)
//! // emu-cflags: -O3 -pthread                               (extra flags, both libcs)
//! // emu-libc: glibc                                        (build for one libc only)
//! ```
//!
//! These lines must sit in the comment block at the top of the file; an
//! unknown `emu-` key or a repeated one fails the build. `-lm` is always
//! added last.
//!
//! A binary is recompiled only when its compiler command line or its source
//! changed (a fingerprint is kept beside it), so touching one C file does
//! not rebuild the others.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::thread;

/// Kinds in the order the generated table sorts them (matches `Kind`'s
/// derived `Ord` in lib.rs): directory name and Rust variant.
const KINDS: [(&str, &str); 3] = [("catalogue", "Catalogue"), ("diff", "Diff"), ("bench", "Bench")];

/// One libc variant: its tag (file suffix and `Display` of `Libc`), the
/// Rust variant, the compiler and the linking flags. Sorted like `Libc`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Glibc,
    GlibcPie,
    Musl,
}

impl Variant {
    fn tag(self) -> &'static str {
        match self {
            Variant::Glibc => "glibc",
            Variant::GlibcPie => "glibc-pie",
            Variant::Musl => "musl",
        }
    }
    fn rust(self) -> &'static str {
        match self {
            Variant::Glibc => "Glibc",
            Variant::GlibcPie => "GlibcPie",
            Variant::Musl => "Musl",
        }
    }
    fn compiler(self) -> &'static str {
        match self {
            Variant::Glibc | Variant::GlibcPie => "gcc",
            Variant::Musl => "musl-gcc",
        }
    }
    fn link_flags(self) -> &'static [&'static str] {
        match self {
            Variant::Glibc | Variant::Musl => &["-static"],
            Variant::GlibcPie => &["-static-pie", "-fPIE"],
        }
    }
}

/// What a C file's header says about it.
struct Source {
    kind_index: usize,
    name: String,
    path: PathBuf,
    desc: String,
    args: Vec<String>,
    stdin: String,
    cflags: Vec<String>,
    only_libc: Option<String>,
}

/// One compiler invocation.
struct Job {
    source_index: usize,
    variant: Variant,
    out: PathBuf,
    argv: Vec<String>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: building the workloads failed:\n{msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let c_dir = manifest.join("c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", c_dir.display());
    println!("cargo:rerun-if-env-changed=PATH");

    let sources = collect_sources(&c_dir)?;
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.path.display());
    }

    if find_on_path("gcc").is_none() {
        return Err("gcc was not found on PATH; it is needed to build the guest programs".into());
    }
    let musl = find_on_path("musl-gcc").is_some();
    if !musl {
        println!(
            "cargo:warning=musl-gcc not found on PATH: building the workloads for glibc only \
             (install musl-tools for the musl variants)"
        );
    }

    let bin_dir = out_dir.join("bin");
    let mut jobs = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let kind = KINDS[s.kind_index].0;
        let dir = bin_dir.join(kind);
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        for variant in [Variant::Glibc, Variant::GlibcPie, Variant::Musl] {
            let wanted = match variant {
                Variant::Glibc => s.only_libc.as_deref() != Some("musl"),
                Variant::GlibcPie => kind == "diff" && s.only_libc.as_deref() != Some("musl"),
                Variant::Musl => musl && s.only_libc.as_deref() != Some("glibc"),
            };
            if !wanted {
                continue;
            }
            let out = dir.join(format!("{}.{}", s.name, variant.tag()));
            let mut argv: Vec<String> = vec![variant.compiler().into(), "-O2".into()];
            argv.extend(variant.link_flags().iter().map(ToString::to_string));
            argv.extend(s.cflags.iter().cloned());
            argv.push("-o".into());
            argv.push(path_str(&out)?.into());
            argv.push(path_str(&s.path)?.into());
            argv.push("-lm".into());
            jobs.push(Job { source_index: i, variant, out, argv });
        }
    }

    compile_all(&sources, &jobs)?;
    let table = generate_table(&sources, &jobs, musl)?;
    let table_path = out_dir.join("programs.rs");
    write_if_changed(&table_path, &table)
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|e| format!("environment variable {name}: {e}"))
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("path is not UTF-8: {}", p.display()))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(program)).find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Every `c/<kind>/*.c`, sorted by kind then name, headers parsed.
fn collect_sources(c_dir: &Path) -> Result<Vec<Source>, String> {
    let mut sources = Vec::new();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (kind_index, (kind, _)) in KINDS.iter().enumerate() {
        let dir = c_dir.join(kind);
        let entries = fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?.path();
            if path.extension().is_some_and(|x| x == "c") {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or_else(|| format!("bad file name: {}", path.display()))?
                .to_string();
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err(format!(
                    "{}: program names may use [A-Za-z0-9_-] only",
                    path.display()
                ));
            }
            if let Some(other) = seen.insert(name.clone(), path.clone()) {
                return Err(format!(
                    "program name {name:?} is used twice: {} and {}",
                    other.display(),
                    path.display()
                ));
            }
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            sources.push(parse_header(kind_index, name, path, &text)?);
        }
    }
    Ok(sources)
}

/// Reads the `// emu-KEY: value` lines of the leading comment block.
fn parse_header(
    kind_index: usize,
    name: String,
    path: PathBuf,
    text: &str,
) -> Result<Source, String> {
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("//") else { break };
        let Some(rest) = comment.trim_start().strip_prefix("emu-") else { continue };
        let (key, value) = rest
            .split_once(':')
            .ok_or_else(|| format!("{}: header line without ':': {line}", path.display()))?;
        let key = key.trim();
        if !matches!(key, "desc" | "args" | "stdin" | "cflags" | "libc") {
            return Err(format!("{}: unknown header key emu-{key}", path.display()));
        }
        let value = value.strip_prefix(' ').unwrap_or(value).trim_end().to_string();
        if keys.insert(key.to_string(), value).is_some() {
            return Err(format!("{}: emu-{key} given twice", path.display()));
        }
    }
    let desc = keys.remove("desc").filter(|d| !d.trim().is_empty()).ok_or_else(|| {
        format!("{}: missing `// emu-desc: ...` line saying what it stresses", path.display())
    })?;
    let words = |v: Option<String>| -> Vec<String> {
        v.map(|v| v.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
    };
    let args = words(keys.remove("args"));
    let cflags = words(keys.remove("cflags"));
    let stdin = match keys.remove("stdin") {
        Some(s) => unescape(&s).map_err(|e| format!("{}: emu-stdin: {e}", path.display()))?,
        None => String::new(),
    };
    let only_libc = keys.remove("libc").map(|l| l.trim().to_string());
    if let Some(l) = &only_libc {
        if l != "glibc" && l != "musl" {
            return Err(format!("{}: emu-libc must be glibc or musl, not {l:?}", path.display()));
        }
    }
    Ok(Source {
        kind_index,
        name,
        path,
        desc: desc.trim().to_string(),
        args,
        stdin,
        cflags,
        only_libc,
    })
}

/// `\n`, `\t`, `\r`, `\0` and `\\` escapes.
fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(other) => return Err(format!("unknown escape \\{other}")),
            None => return Err("trailing backslash".into()),
        }
    }
    Ok(out)
}

/// FNV-1a, enough to notice a changed command line or source.
fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&[0xffu8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}\n")
}

/// Runs the compiler jobs on up to `NUM_JOBS` threads; returns every
/// failure's command line and compiler output.
fn compile_all(sources: &[Source], jobs: &[Job]) -> Result<(), String> {
    let workers = env::var("NUM_JOBS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .or_else(|| thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .clamp(1, 16);
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::<String>::new());
    thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let index = match next.lock() {
                    Ok(mut n) => {
                        let i = *n;
                        *n += 1;
                        i
                    }
                    Err(_) => return,
                };
                let Some(job) = jobs.get(index) else { return };
                if let Err(e) = compile(&sources[job.source_index], job) {
                    if let Ok(mut f) = failures.lock() {
                        f.push(e);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().map_err(|_| "a compile thread panicked".to_string())?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn compile(source: &Source, job: &Job) -> Result<(), String> {
    let text =
        fs::read(&source.path).map_err(|e| format!("reading {}: {e}", source.path.display()))?;
    let cmdline = job.argv.join("\x1f");
    let stamp = PathBuf::from(format!("{}.stamp", job.out.display()));
    let want = fingerprint(&[cmdline.as_bytes(), &text]);
    if job.out.is_file() && fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    let _ = fs::remove_file(&stamp);
    let output = Command::new(&job.argv[0])
        .args(&job.argv[1..])
        .output()
        .map_err(|e| format!("running {}: {e}", job.argv[0]))?;
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({}):\n{}{}",
            job.argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    fs::write(&stamp, want).map_err(|e| format!("writing {}: {e}", stamp.display()))
}

/// The Rust source included by lib.rs: `PROGRAMS`, `EMBEDDED` (catalogue
/// binaries via `include_bytes!`, parallel to `PROGRAMS`) and
/// `MUSL_AVAILABLE`.
fn generate_table(sources: &[Source], jobs: &[Job], musl: bool) -> Result<String, String> {
    let rank = |v: Variant| match v {
        Variant::Glibc => 0,
        Variant::GlibcPie => 1,
        Variant::Musl => 2,
    };
    let mut order: Vec<&Job> = jobs.iter().collect();
    order.sort_by(|a, b| {
        let (sa, sb) = (&sources[a.source_index], &sources[b.source_index]);
        (sa.kind_index, &sa.name, rank(a.variant)).cmp(&(sb.kind_index, &sb.name, rank(b.variant)))
    });

    let mut programs = String::new();
    let mut embedded = String::new();
    for job in &order {
        let s = &sources[job.source_index];
        let (kind, kind_variant) = KINDS[s.kind_index];
        let path = path_str(&job.out)?;
        let args: Vec<String> = s.args.iter().map(|a| format!("{a:?}")).collect();
        let _ = writeln!(
            programs,
            "    Program {{ name: {:?}, kind: Kind::{kind_variant}, libc: Libc::{}, path: {path:?}, \
             description: {:?}, default_args: &[{}], stdin: {:?} }},",
            s.name,
            job.variant.rust(),
            s.desc,
            args.join(", "),
            s.stdin
        );
        if kind == "catalogue" {
            let _ = writeln!(embedded, "    Some(include_bytes!({path:?})),");
        } else {
            let _ = writeln!(embedded, "    None,");
        }
    }
    Ok(format!(
        "// Generated by build.rs from the C sources under c/. Do not edit.\n\n\
         /// Whether `musl-gcc` was on PATH when the crate was built.\n\
         const MUSL_AVAILABLE: bool = {musl};\n\n\
         /// Every built program, sorted by (kind, name, libc).\n\
         static PROGRAMS: [Program; {n}] = [\n{programs}];\n\n\
         /// ELF bytes of catalogue programs, index-parallel to `PROGRAMS`.\n\
         static EMBEDDED: [Option<&[u8]>; {n}] = [\n{embedded}];\n",
        n = order.len()
    ))
}

/// Avoids touching the generated file (and recompiling the crate) when
/// nothing changed.
fn write_if_changed(path: &Path, text: &str) -> Result<(), String> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}
