//! Sweeps: the report references every plot and every PNG decodes, the CSV has one row
//! per point, an interrupted sweep resumes without recomputing finished points, shards
//! merged equal the unsharded sweep byte for byte, failures are recorded, and
//! `emu report` and `emu compare` work from stored results.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

/// A small grid: 2 profiles x 2 policies x 2 transports (invlpgb only on zen3) x 3
/// core counts = 18 points of a few milliseconds each.
const GRID: &[&str] = &[
    "--workload",
    "madvise_shared {cores} 4 30",
    "--cores",
    "1,2,4",
    "--cpumask",
    "lazy,eager",
    "--flush",
    "ipi,invlpgb",
    "--profile",
    "skylake-sp,zen3",
];
const GRID_POINTS: usize = 18;

fn sweep(out: &Path, extra: &[&str]) -> Output {
    emu()
        .arg("sweep")
        .args(GRID)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .output()
        .expect("run emu sweep")
}

/// Runs `emu sweep ARGS --out DIR` (no Slurm array in sight), which must succeed, and
/// returns summary.csv's header and rows, split into fields.
fn sweep_table(dir: &Path, args: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let o = emu()
        .arg("sweep")
        .args(args)
        .arg("--out")
        .arg(dir)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .output()
        .expect("run emu sweep");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let text = std::fs::read_to_string(dir.join("summary.csv")).expect("csv");
    let mut lines = text.lines().map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>());
    let header = lines.next().expect("header");
    (header, lines.collect())
}

fn csv_rows(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("summary.csv")).expect("summary.csv");
    text.lines().skip(1).map(str::to_string).collect()
}

fn point_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("points"))
        .expect("points dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).and_then(|m| m.modified()).expect("mtime")
}

/// The `href` and `src` targets of an HTML page.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            if let Some(j) = rest.find('"') {
                out.push(rest[..j].to_string());
                rest = &rest[j..];
            }
        }
    }
    out
}

#[test]
fn a_sweep_writes_csv_plots_and_a_report_that_references_them() {
    let dir = scratch("sweep-basic");
    let o = sweep(&dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("report: "), "{}", show(&o));
    // One row per point, in a CSV pandas can read: a header and uniform columns.
    let rows = csv_rows(&dir);
    assert_eq!(rows.len(), GRID_POINTS);
    assert_eq!(point_files(&dir).len(), GRID_POINTS);
    let header = std::fs::read_to_string(dir.join("summary.csv")).expect("csv");
    assert!(header.starts_with("id,workload,args,profile,cpumask,flush,cores,seed,status,"));
    assert!(rows.iter().all(|r| r.contains(",ok,")), "{rows:?}");
    // Every plot the page references exists; every image in the report is referenced.
    let report = dir.join("report");
    let html = std::fs::read_to_string(report.join("index.html")).expect("index.html");
    let refs = links(&html);
    let images: Vec<&String> =
        refs.iter().filter(|l| l.ends_with(".png") || l.ends_with(".svg")).collect();
    assert!(images.len() >= 20, "only {} plot links", images.len());
    for l in &images {
        assert!(report.join(l).exists(), "index.html links to missing {l}");
    }
    let mut pngs = 0;
    for e in std::fs::read_dir(&report).expect("report dir").filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".png") || name.ends_with(".svg") {
            assert!(refs.contains(&name), "{name} is not referenced by index.html");
        }
        if name.ends_with(".png") {
            // Every PNG decodes to a real image.
            let decoder = png::Decoder::new(std::io::BufReader::new(
                std::fs::File::open(e.path()).expect("open png"),
            ));
            let mut reader = decoder.read_info().unwrap_or_else(|err| panic!("{name}: {err}"));
            let mut buf = vec![0; reader.output_buffer_size().expect("size")];
            let info = reader.next_frame(&mut buf).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert!(
                info.width >= 800 && info.height >= 200,
                "{name}: {}x{}",
                info.width,
                info.height
            );
            // Not blank: some pixels are neither white nor grey.
            assert!(
                buf.chunks(3).any(|p| p.len() == 3 && (p[0] != p[1] || p[1] != p[2])),
                "{name} has no colour"
            );
            pngs += 1;
        }
        if name.ends_with(".svg") {
            let svg = std::fs::read_to_string(e.path()).expect("svg");
            assert!(svg.starts_with("<svg") && svg.contains("</svg>"), "{name}");
        }
    }
    assert_eq!(pngs * 2, images.len());
    // The page gives the command reproducing each point.
    assert_eq!(
        html.matches("emu run --no-env --profile").count(),
        GRID_POINTS,
        "one command per point"
    );
    // The report can be rebuilt from the stored results alone, identically.
    let csv_before = std::fs::read(dir.join("summary.csv")).expect("csv");
    let o = emu().arg("report").arg(&dir).output().expect("emu report");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(std::fs::read(dir.join("summary.csv")).expect("csv"), csv_before);
    assert_eq!(std::fs::read_to_string(report.join("index.html")).expect("html"), html);
}

#[test]
fn a_rerun_skips_finished_points_and_an_interrupted_sweep_resumes() {
    let dir = scratch("sweep-resume");
    let o = sweep(&dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let files = point_files(&dir);
    let before: Vec<SystemTime> = files.iter().map(|f| mtime(f)).collect();
    let csv = std::fs::read(dir.join("summary.csv")).expect("csv");
    // Lose two results, as a crash before they were written would.
    std::fs::remove_file(&files[3]).expect("rm");
    std::fs::remove_file(&files[10]).expect("rm");
    std::thread::sleep(Duration::from_millis(20));
    let o = sweep(&dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("16 done before, 2 to run"), "{err}");
    for (k, f) in files.iter().enumerate() {
        if k == 3 || k == 10 {
            assert!(f.exists(), "{} not recomputed", f.display());
        } else {
            assert_eq!(mtime(f), before[k], "{} was recomputed", f.display());
        }
    }
    // Deterministic: the recomputed points give the same table.
    assert_eq!(std::fs::read(dir.join("summary.csv")).expect("csv"), csv);

    // Kill a sweep part-way (one point at a time, larger points), then rerun it.
    let dir = scratch("sweep-kill");
    let args = [
        "sweep",
        "--workload",
        "madvise_shared {cores} 16 400",
        "--cores",
        "2,4,8",
        "--cpumask",
        "lazy,eager,sticky,all",
        "--flush",
        "ipi",
        "--profile",
        "skylake-sp",
        "--jobs",
        "1",
    ];
    let mut child = emu()
        .args(args)
        .arg("--out")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sweep");
    let t0 = std::time::Instant::now();
    while (!dir.join("points").exists() || point_files(&dir).is_empty())
        && t0.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    let done = point_files(&dir);
    assert!(!done.is_empty() && done.len() < 12, "{} points finished before the kill", done.len());
    let stamps: Vec<SystemTime> = done.iter().map(|f| mtime(f)).collect();
    let o = emu().args(args).arg("--out").arg(&dir).output().expect("rerun");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{} done before", done.len())), "{err}");
    for (f, t) in done.iter().zip(stamps) {
        assert_eq!(mtime(f), t, "{} recomputed", f.display());
    }
    assert_eq!(csv_rows(&dir).len(), 12);
    assert!(csv_rows(&dir).iter().all(|r| r.contains(",ok,")));
}

#[test]
fn shards_merged_equal_the_unsharded_sweep() {
    let whole = scratch("sweep-whole");
    assert_eq!(sweep(&whole, &[]).status.code(), Some(0));
    let (a, b, c) = (scratch("sweep-shard0"), scratch("sweep-shard1"), scratch("sweep-shard2"));
    let o = sweep(&a, &["--shard", "0/3"]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("emu merge"), "{}", show(&o));
    assert!(!a.join("summary.csv").exists(), "a shard writes no table of its own");
    assert_eq!(point_files(&a).len(), GRID_POINTS / 3);
    // The Slurm array variables choose the shard when --shard is absent.
    let o = emu()
        .arg("sweep")
        .args(GRID)
        .arg("--out")
        .arg(&b)
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .expect("sweep");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shard 1/3"), "{}", show(&o));
    // Merging without the last shard fails, naming what is missing.
    let merged = scratch("sweep-merged");
    let o = emu().arg("merge").arg("--out").arg(&merged).arg(&a).arg(&b).output().expect("merge");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("6 of 18 points have no result") && err.contains("madvise_shared_"),
        "{err}"
    );
    assert_eq!(sweep(&c, &["--shard", "2/3"]).status.code(), Some(0));
    let o = emu()
        .arg("merge")
        .arg("--out")
        .arg(&merged)
        .arg(&a)
        .arg(&b)
        .arg(&c)
        .output()
        .expect("merge");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert_eq!(
        std::fs::read(merged.join("summary.csv")).expect("merged csv"),
        std::fs::read(whole.join("summary.csv")).expect("whole csv"),
        "merged shards differ from the unsharded sweep"
    );
    assert!(merged.join("report/index.html").exists());
    // A shard of another sweep is refused.
    let other = scratch("sweep-other");
    let o = emu()
        .args(["sweep", "--workload", "hello", "--cores", "1", "--profile", "zen3", "--out"])
        .arg(&other)
        .output()
        .expect("sweep");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = emu()
        .arg("merge")
        .arg("--out")
        .arg(scratch("sweep-m2"))
        .arg(&a)
        .arg(&other)
        .output()
        .expect("merge");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("different sweeps"), "{}", show(&o));
}

#[test]
fn failed_points_are_recorded_and_do_not_stop_the_others() {
    let dir = scratch("sweep-fail");
    // 1024 pages per thread fit in 16 MiB of guest memory at 1 thread, not at 8.
    let o = emu()
        .args([
            "sweep",
            "--workload",
            "madvise_shared {cores} 1024 1",
            "--cores",
            "1,8",
            "--cpumask",
            "lazy",
            "--flush",
            "ipi",
            "--profile",
            "skylake-sp",
            "--memory",
            "16",
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("sweep");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let rows = csv_rows(&dir);
    assert_eq!(rows.len(), 2);
    assert!(rows[0].contains(",ok,"), "{}", rows[0]);
    assert!(rows[1].contains(",failed,"), "{}", rows[1]);
    assert!(rows[1].to_lowercase().contains("memory"), "{}", rows[1]);
    // Off a terminal (as under a batch scheduler) the failure is still on stderr.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("c8") && err.contains("failed: "), "{err}");
    assert!(err.contains("points/ID.json"), "{err}");
    let html = std::fs::read_to_string(dir.join("report/index.html")).expect("html");
    assert!(html.contains("Failed points"));
    // Bad sweep arguments are errors before anything runs.
    for bad in [
        vec!["sweep", "--cores", "0"],
        vec!["sweep", "--shard", "2/2"],
        vec!["sweep", "--workload", "no_such_workload", "--cores", "1"],
        vec!["sweep", "--spec", "/no/such/spec.toml"],
        vec!["sweep", "--memory", "1"],
    ] {
        let o = emu().args(&bad).arg("--out").arg(scratch("sweep-bad")).output().expect("sweep");
        assert_eq!(o.status.code(), Some(1), "{bad:?}: {}", show(&o));
        assert!(String::from_utf8_lossy(&o.stderr).starts_with("emu: "), "{bad:?}: {}", show(&o));
    }
}

#[test]
fn compare_prints_both_runs_with_ratios() {
    let dir = scratch("sweep-compare");
    let o = sweep(&dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let files = point_files(&dir);
    let pick = |needle: &str| {
        files.iter().find(|f| f.to_string_lossy().contains(needle)).cloned().expect(needle)
    };
    let a = pick("zen3_lazy_ipi_c4_");
    let b = pick("zen3_lazy_invlpgb_c4_");
    let o = emu().arg("compare").arg(&a).arg(&b).output().expect("compare");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("B/A") && t.contains("latency p99") && t.contains("IPIs per shootdown"),
        "{t}"
    );
    // Plain `emu run --stats` files compare too.
    let s = dir.join("run.json");
    let st = emu()
        .args(["run", "--cores", "2", "--stats"])
        .arg(&s)
        .args(["madvise_shared", "2", "4", "30"])
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(st.success());
    let o = emu().arg("compare").arg(&s).arg(&a).output().expect("compare");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let o = emu().arg("compare").arg(&s).arg("/no/such.json").output().expect("compare");
    assert_eq!(o.status.code(), Some(1));
}

/// A sweep slow enough to be caught in the middle: 12 points, one at a time.
const SLOW: &[&str] = &[
    "sweep",
    "--workload",
    "madvise_shared {cores} 16 2000",
    "--cores",
    "2,4,8",
    "--cpumask",
    "lazy,eager,sticky,all",
    "--flush",
    "ipi",
    "--profile",
    "skylake-sp",
    "--jobs",
    "1",
];

/// Waits until a sweep has stored its first point.
fn wait_for_a_point(dir: &Path) {
    let t0 = std::time::Instant::now();
    while (!dir.join("points").exists() || point_files(dir).is_empty())
        && t0.elapsed() < Duration::from_secs(120)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_busy_sweep_directory_is_refused_and_a_dead_holder_does_not_block_it() {
    // A report of a directory that is not a sweep's says so and creates nothing.
    let nowhere = scratch("sweep-lock-none").join("no-such-sweep");
    let o = emu().arg("report").arg(&nowhere).output().expect("report");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a sweep directory"));
    assert!(!nowhere.exists());
    let dir = scratch("sweep-lock");
    let mut first = emu()
        .args(SLOW)
        .arg("--out")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sweep");
    wait_for_a_point(&dir);
    // A second sweep into the same directory computes nothing and names the holder.
    let o = emu().args(SLOW).arg("--out").arg(&dir).output().expect("second sweep");
    let before_kill = point_files(&dir).len();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("emu: ")
            && err.contains("is in use by another emu process")
            && err.contains(&format!("pid {} ", first.id()))
            && err.contains("`emu sweep`"),
        "{err}"
    );
    assert!(!err.contains("to run"), "the second sweep started: {err}");
    // So does a report into it.
    let o = emu().arg("report").arg(&dir).output().expect("report");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is in use"), "{}", show(&o));
    // Killed, the holder leaves its lock file behind, naming it; that does not block.
    first.kill().expect("kill");
    let _ = first.wait();
    let lock = std::fs::read_to_string(dir.join(".lock")).expect("lock file left behind");
    assert!(lock.contains(&format!("pid {}", first.id())), "{lock}");
    let o = emu().args(SLOW).arg("--out").arg(&dir).output().expect("rerun");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("done before") && !err.contains("0 done before"), "{err}");
    assert!(point_files(&dir).len() >= before_kill);
    assert_eq!(csv_rows(&dir).len(), 12);
    assert!(csv_rows(&dir).iter().all(|r| r.contains(",ok,")));
    // No temporary file is left anywhere.
    for sub in ["", "points", "report"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("dir").filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".tmp"), "{sub}/{name} left behind");
        }
    }
}

#[test]
fn point_files_edited_by_hand_are_recomputed_not_trusted() {
    let dir = scratch("sweep-digest");
    let o = sweep(&dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let csv = std::fs::read(dir.join("summary.csv")).expect("csv");
    let files = point_files(&dir);
    let (edited, stripped) = (&files[2], &files[7]);
    let originals: Vec<Vec<u8>> =
        [edited, stripped].iter().map(|f| std::fs::read(f).expect("point")).collect();
    // A figure changed by hand (the digest left as it was).
    let text = String::from_utf8(originals[0].clone()).expect("utf-8");
    let at = text.find("\"cycles\":").expect("cycles") + "\"cycles\":".len();
    let digit = text.as_bytes()[at];
    assert!(digit.is_ascii_digit(), "{}", &text[at..at + 20]);
    let mut changed = text.clone().into_bytes();
    changed[at] = if digit == b'9' { b'1' } else { digit + 1 };
    std::fs::write(edited, &changed).expect("edit");
    // A point file without its digest (as an older emu wrote them).
    let text = String::from_utf8(originals[1].clone()).expect("utf-8");
    let cut = text.rfind(",\"digest\"").expect("a digest");
    std::fs::write(stripped, format!("{}}}", &text[..cut])).expect("strip");
    // The report leaves both out, saying so.
    let o = emu().arg("report").arg(&dir).output().expect("report");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not match its digest") && err.contains("has no digest"), "{err}");
    assert_eq!(csv_rows(&dir).iter().filter(|r| r.contains(",missing,")).count(), 2);
    // A rerun recomputes exactly those two, saying why.
    let o = sweep(&dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("{} does not match its digest", edited.display())), "{err}");
    assert!(err.contains(&format!("{} has no digest", stripped.display())), "{err}");
    assert!(err.contains("recomputing it") && err.contains("16 done before, 2 to run"), "{err}");
    // Deterministic: the recomputed files are the originals, and so is the table.
    assert_eq!(std::fs::read(edited).expect("point"), originals[0]);
    assert_eq!(std::fs::read(stripped).expect("point"), originals[1]);
    assert_eq!(std::fs::read(dir.join("summary.csv")).expect("csv"), csv);
    // A shard holding an edited point does not merge as if it were whole.
    let shard = scratch("sweep-digest-shard");
    assert_eq!(sweep(&shard, &["--shard", "0/1"]).status.code(), Some(0));
    let f = point_files(&shard)[0].clone();
    let t = std::fs::read_to_string(&f).expect("point").replacen("\"ok\"", "\"failed\"", 1);
    std::fs::write(&f, t).expect("edit");
    let o = emu().arg("merge").arg("--out").arg(scratch("sweep-digest-m")).arg(&shard).output();
    let o = o.expect("merge");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("1 of 18 points have no result") && err.contains("not trusted"), "{err}");
}

/// Every image file in a report directory decodes completely, and every plot that
/// index.html references exists.
fn check_plots(report: &Path) {
    for e in std::fs::read_dir(report).expect("report dir").filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".png") {
            let decoder = png::Decoder::new(std::io::BufReader::new(
                std::fs::File::open(e.path()).expect("open png"),
            ));
            let mut reader = decoder.read_info().unwrap_or_else(|err| panic!("{name}: {err}"));
            let mut buf = vec![0; reader.output_buffer_size().expect("size")];
            reader.next_frame(&mut buf).unwrap_or_else(|err| panic!("{name}: {err}"));
        }
        if name.ends_with(".svg") {
            let svg = std::fs::read_to_string(e.path()).expect("svg");
            assert!(svg.trim_end().ends_with("</svg>"), "{name} is cut short");
        }
    }
    if let Ok(html) = std::fs::read_to_string(report.join("index.html")) {
        for l in links(&html).iter().filter(|l| l.ends_with(".png") || l.ends_with(".svg")) {
            assert!(report.join(l).exists(), "index.html links to missing {l}");
        }
    }
}

#[test]
fn a_report_killed_while_plotting_leaves_no_partial_plot() {
    let dir = scratch("sweep-killed-report");
    let o = sweep(&dir, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let report = dir.join("report");
    // Plots rewritten in place were empty or cut short when the report was killed; now
    // each is a temporary renamed over the old one. Kill reports at spread-out moments.
    let t0 = std::time::Instant::now();
    let o = emu().arg("report").arg(&dir).output().expect("report");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let full = t0.elapsed();
    for k in 0..12u32 {
        let mut child = emu()
            .arg("report")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn report");
        std::thread::sleep(full * k / 10);
        let _ = child.kill();
        let _ = child.wait();
        check_plots(&report);
    }
    // The next report removes what killed writers left behind.
    let o = emu().arg("report").arg(&dir).output().expect("report");
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    check_plots(&report);
    for e in std::fs::read_dir(&report).expect("report dir").filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "{name} left behind");
    }
}

#[test]
fn a_lazy_mm_sweep_compares_the_policies_over_core_counts() {
    let dir = scratch("sweep-lazy");
    let (header, rows) = sweep_table(
        &dir,
        &["--workload", "pingpong_threads 2 100", "--cores", "2,4", "--cpumask", "lazy"]
            .into_iter()
            .chain(["--flush", "ipi", "--profile", "skylake-sp"])
            .chain(["--lazy-mm", "refcount,shootdown-all"])
            .collect::<Vec<_>>(),
    );
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let atomics: f64 = r[col("atomics_per_switch")].parse().expect("number");
        let ipis: f64 = r[col("lazy_ipis_per_mmdrop")].parse().expect("number");
        let cores: f64 = r[col("cores")].parse().expect("cores");
        match r[col("lazy_mm")].as_str() {
            // Refcount: about two atomics per switch to and from idle, no IPIs.
            "refcount" => assert!(atomics > 0.5 && ipis == 0.0, "{r:?}"),
            // Shootdown-all: one IPI per other CPU at each exit, (almost) no atomics.
            "shootdown-all" => assert!(atomics < 0.1 && ipis == cores - 1.0, "{r:?}"),
            other => panic!("unexpected policy {other}"),
        }
        assert_eq!(r[col("lazy_mm_uaf")], "0");
    }
    let report = dir.join("report");
    let html = std::fs::read_to_string(report.join("index.html")).expect("index.html");
    assert!(html.contains("Lazy-TLB mm references"));
    assert!(links(&html).iter().any(|l| l.starts_with("lazymm_") && l.ends_with(".png")));
    check_plots(&report);
}

#[test]
fn a_walker_sync_sweep_writes_the_walker_columns() {
    let dir = scratch("sweep-walker");
    let (header, rows) = sweep_table(
        &dir,
        &["--workload", "gup_race 2 8 20", "--cores", "2", "--cpumask", "lazy", "--flush"]
            .into_iter()
            .chain(["ipi", "--profile", "zen3", "--walker-sync", "broadcast,rcu"])
            .collect::<Vec<_>>(),
    );
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    // --workload makes a one-grid sweep: the default sweep's extra grid is not run.
    assert_eq!(rows.len(), 2);
    let num = |r: &[String], c: &str| -> f64 { r[col(c)].parse().expect(c) };
    for r in &rows {
        assert!(num(r, "walker_retire_events") > 0.0 && num(r, "gup_fast_walks") > 0.0, "{r:?}");
        assert!(num(r, "gup_fast_cycles_per_walk") > 0.0, "{r:?}");
        assert_eq!(r[col("walker_uaf")], "0");
        match r[col("walker_sync")].as_str() {
            // Every other CPU (one here) interrupted at each retire event.
            "broadcast" => {
                assert_eq!(num(r, "walker_interrupted_per_retire"), 1.0, "{r:?}");
                assert!(num(r, "walker_cost_per_retire") > 0.0, "{r:?}");
                assert_eq!(num(r, "grace_periods"), 0.0, "{r:?}");
            }
            // The freer never waits; the tables wait for a grace period.
            "rcu" => {
                assert_eq!(num(r, "walker_interrupted_per_retire"), 0.0, "{r:?}");
                assert_eq!(num(r, "walker_cost_per_retire"), 0.0, "{r:?}");
                assert!(num(r, "grace_periods") > 0.0 && num(r, "rcu_held_tables_max") > 0.0);
            }
            other => panic!("unexpected strategy {other}"),
        }
    }
    let html = std::fs::read_to_string(dir.join("report/index.html")).expect("index.html");
    assert!(html.contains("Page-table walker synchronisation"));
    // A strategy that does not exist is refused before anything runs.
    let o = emu()
        .args(["sweep", "--walker-sync", "bogus", "--dry-run", "--out"])
        .arg(scratch("sweep-walker-bad"))
        .output()
        .expect("sweep");
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("the sweep's `walker_sync` list: unknown --walker-sync `bogus`"),
        "{}",
        show(&o)
    );
}

#[test]
fn a_preemption_sweep_writes_the_preempt_columns() {
    // cid_pool with its busy neighbour on CPU 0: under full preemption kernel paths are
    // preempted; under voluntary none is, walks included. The walk-race columns are
    // there for both.
    let dir = scratch("sweep-preempt");
    let (header, rows) = sweep_table(
        &dir,
        &["--workload", "cid_pool 200 130 busy", "--cores", "4", "--cpumask", "lazy"]
            .into_iter()
            .chain(["--flush", "ipi", "--profile", "skylake-sp", "--mm-cid", "afm"])
            .chain(["--preempt", "voluntary,full"])
            .collect::<Vec<_>>(),
    );
    let col = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let n = |c: &str| -> u64 { r[col(c)].parse().expect(c) };
        match r[col("preempt")].as_str() {
            "voluntary" => {
                assert_eq!((n("kernel_preemptions"), n("mm_cid_walks_preempted")), (0, 0))
            }
            "full" => assert!(n("kernel_preemptions") > 0, "{r:?}"),
            other => panic!("unexpected model {other}"),
        }
        assert!(r[col("id")].contains("_afm_"), "{r:?}");
        let _ = (n("mm_cid_walk_overtaken"), n("mm_cid_schedin_spins"));
    }
}

#[test]
fn command_line_axes_apply_to_every_grid_of_the_default_sweep() {
    let dry = |extra: &[&str]| -> Vec<String> {
        let o = emu()
            .args(["sweep", "--dry-run", "--out"])
            .arg(scratch("sweep-grids-dry"))
            .args(extra)
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("SLURM_ARRAY_TASK_COUNT")
            .output()
            .expect("sweep --dry-run");
        assert_eq!(o.status.code(), Some(0), "{}", show(&o));
        String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
    };
    // The default sweep's walker-sync grids: five strategies at five core counts with
    // IPIs, at two with INVLPGB; THP collapse: six at four.
    let all = dry(&[]);
    let gup = |lines: &[String]| lines.iter().filter(|l| l.starts_with("gup_race_")).count();
    assert_eq!(gup(&all), 25 + 10 + 24);
    // --cores and --flush replace the core counts and transports of every grid (the
    // gup_race grids still differ in their arguments).
    let two = dry(&["--cores", "2", "--flush", "ipi"]);
    assert_eq!(gup(&two), 5 + 5 + 6);
    assert!(two.iter().filter(|l| !l.starts_with("skipped")).all(|l| l.contains("_c2_s1_")));
    // --workload makes one grid.
    assert_eq!(gup(&dry(&["--workload", "hello", "--cores", "1"])), 0);
}
