//! The memory system as a guest microbenchmark sees it: TLB reach steps at each
//! profile's sizes, 2 MiB pages, and machine profiles on the command line.

mod common;

use common::*;

/// Runs ptrchase under a profile and returns (pages, cycles per access).
fn ptrchase(profile: &str, sizes: &[u32]) -> Vec<(u32, f64)> {
    let mut args: Vec<String> =
        vec!["run".into(), "--profile".into(), profile.into(), "ptrchase".into(), "20000".into()];
    args.extend(sizes.iter().map(|s| s.to_string()));
    let o = emu().args(&args).output().expect("run ptrchase");
    assert!(o.status.success(), "{}", show(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("pages=")?;
            let (k, c) = l.split_once(" cycles_per_access=")?;
            Some((k.parse().ok()?, c.parse().ok()?))
        })
        .collect()
}

/// The sizes between which cycles per access rise by more than `min` cycles.
fn steps(points: &[(u32, f64)], min: f64) -> Vec<(u32, u32)> {
    points.windows(2).filter(|w| w[1].1 - w[0].1 > min).map(|w| (w[0].0, w[1].0)).collect()
}

fn assert_reach(profile: &str, l1_dtlb: u32, stlb: u32, l1d_lines: u32) {
    // Sizes bracketing each capacity by a quarter, plus a flat stretch below the first.
    let mut sizes = vec![8, 16, 32, l1_dtlb * 3 / 4, l1_dtlb, l1_dtlb * 5 / 4, l1_dtlb * 2];
    sizes.extend([
        l1d_lines / 2,
        l1d_lines * 3 / 4,
        l1d_lines,
        l1d_lines * 5 / 4,
        l1d_lines * 3 / 2,
    ]);
    sizes.extend([stlb * 3 / 4, stlb, stlb * 5 / 4, stlb * 3 / 2]);
    sizes.sort_unstable();
    sizes.dedup();
    let p = ptrchase(profile, &sizes);
    assert_eq!(p.len(), sizes.len(), "{p:?}");
    let s = steps(&p, 3.0);
    // Exactly three steps: past the L1 DTLB reach (STLB hits), past the L1D capacity
    // (one line per page: L2 hits), and past the STLB reach (page walks).
    assert_eq!(
        s,
        vec![(l1_dtlb, l1_dtlb * 5 / 4), (l1d_lines, l1d_lines * 5 / 4), (stlb, stlb * 5 / 4)],
        "{profile}: steps at {s:?} in {p:?}"
    );
    // Flat below the L1 DTLB reach.
    let flat: Vec<f64> = p.iter().filter(|(k, _)| *k <= l1_dtlb).map(|(_, c)| *c).collect();
    let spread = flat.iter().cloned().fold(f64::MIN, f64::max)
        - flat.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 0.5, "{profile}: not flat below the L1 DTLB reach: {p:?}");
}

#[test]
fn ptrchase_steps_at_skylake_tlb_reach() {
    // Skylake-SP: L1 DTLB 64 entries, STLB 1536, L1D 32 KiB = 512 lines.
    assert_reach("skylake-sp", 64, 1536, 512);
}

#[test]
fn ptrchase_steps_at_zen3_tlb_reach() {
    // Zen 3: L1 DTLB 64 entries, L2 TLB 2048, L1D 32 KiB = 512 lines.
    assert_reach("zen3", 64, 2048, 512);
}

#[test]
fn madvise_hugepage_maps_2m_pages_end_to_end() {
    let dir = scratch("thp");
    let src = r#"
#include <stdio.h>
#include <sys/mman.h>
#include <string.h>
int main(void) {
    size_t len = 8u << 20;
    char *m = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *a = (char *)(((unsigned long)m + (2u << 20) - 1) & ~((2ul << 20) - 1));
    madvise(a, 4u << 20, MADV_HUGEPAGE);
    memset(a, 1, 4u << 20);
    unsigned long s = 0;
    for (int r = 0; r < 50; r++) for (size_t i = 0; i < (4u << 20); i += 4096) s += a[i];
    munmap(a + 4096, 4096); /* splits one huge page */
    printf("%lu %d\n", s, a[0]);
    return 0;
}"#;
    let bin = build_c(&dir, "thp", src, &[]);
    let stats = dir.join("s.json");
    let o = emu().arg("run").arg("--stats").arg(&stats).arg(&bin).output().expect("run");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "51200 1\n", "{}", show(&o));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats).expect("stats")).expect("json");
    assert_eq!(v["kernel"]["huge_page_faults"].as_u64(), Some(2), "{}", v["kernel"]);
    assert!(v["per_core"][0]["dtlb_2m"]["hits"].as_u64().unwrap_or(0) > 1000);
    // With THP disabled the same program uses 4 KiB pages only.
    let o = emu()
        .args(["run", "--thp", "never", "--stats"])
        .arg(&stats)
        .arg(&bin)
        .output()
        .expect("run");
    assert!(o.status.success());
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats).expect("stats")).expect("json");
    assert_eq!(v["kernel"]["huge_page_faults"].as_u64(), Some(0));
}

#[test]
fn profiles_select_resolve_and_reject_bad_files() {
    let dir = scratch("profiles");
    let stats = dir.join("run.json");
    let o = emu()
        .args(["run", "--profile", "zen3", "--stats"])
        .arg(&stats)
        .arg("hello")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", show(&o));
    let resolved = std::fs::read_to_string(dir.join("run.profile.toml"))
        .expect("resolved profile beside the stats");
    assert!(resolved.contains("AuthenticAMD") && resolved.contains("invlpgb = true"), "{resolved}");
    // The resolved profile is itself a valid profile file.
    let again = dir.join("again.json");
    let o = emu()
        .arg("run")
        .arg("--profile")
        .arg(dir.join("run.profile.toml"))
        .arg("--stats")
        .arg(&again)
        .arg("hello")
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", show(&o));
    // Unknown keys and impossible values are errors naming the key.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, resolved.replace("[kernel]", "[kernel]\nfrobnicate = 3")).expect("write");
    let o = emu().arg("run").arg("--profile").arg(&bad).arg("hello").output().expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("frobnicate"), "{}", show(&o));
    let bad2 = dir.join("bad2.toml");
    std::fs::write(&bad2, resolved.replace("freq_mhz = 2450", "freq_mhz = 0")).expect("write");
    let o = emu().arg("run").arg("--profile").arg(&bad2).arg("hello").output().expect("run");
    assert!(String::from_utf8_lossy(&o.stderr).contains("freq_mhz"), "{}", show(&o));
}

#[test]
fn cpuid_follows_the_profile() {
    let dir = scratch("cpuid");
    let src = r#"
#include <stdio.h>
#include <cpuid.h>
#include <string.h>
int main(void) {
    unsigned a, b, c, d; char v[13] = {0};
    __cpuid(0, a, b, c, d); memcpy(v, &b, 4); memcpy(v + 4, &d, 4); memcpy(v + 8, &c, 4);
    __cpuid(1, a, b, c, d);
    unsigned fam = ((a >> 8) & 15) + ((a >> 20) & 255), model = ((a >> 4) & 15) | ((a >> 12) & 0xf0);
    __cpuid(0x80000008, a, b, c, d);
    printf("%s family=%#x model=%#x avx=%u invlpgb=%u\n", v, fam, model, 0, (b >> 3) & 1);
    return 0;
}"#;
    let bin = build_c(&dir, "cpuid", src, &[]);
    let out = |p: &str| {
        let o = emu().args(["run", "--profile", p]).arg(&bin).output().expect("run");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(out("skylake-sp"), "GenuineIntel family=0x6 model=0x55 avx=0 invlpgb=0\n");
    assert_eq!(
        out("zen3"),
        "AuthenticAMD family=0x19 model=0x1 invlpgb=1\n".replace("model=0x1 ", "model=0x1 avx=0 ")
    );
}
