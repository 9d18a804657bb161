//! Axis `mm-cid`: how per-mm concurrency IDs are owned (AXES.md §3; seeds 001 and 003),
//! the scheme of `crate::mmcid` as first merged, with seed 001's patches, and today.

use super::{Axis, Value};
use serde::Serialize;

/// The mm_cid code a run models (`--mm-cid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MmCidVariant {
    /// CONFIG_SCHED_MM_CID=n: rseq's mm_cid is the CPU number.
    Off,
    /// As first merged: two mode words, TRANSIT only on the CPU-to-task switch.
    Afm,
    /// Patch 1: TRANSIT in both directions.
    AfmP1,
    /// Patches 1-2: one mode word.
    AfmP1P2,
    /// Patches 1-4.
    Fixed,
    /// Today's tree: patches 1-4 plus the March 2026 changes.
    Current,
}

impl Axis for MmCidVariant {
    const AXIS: &'static str = "mm-cid";
    const ABOUT: &'static str = "per-mm concurrency IDs (rseq mm_cid) ownership scheme";
    const DEFAULT: Self = MmCidVariant::Current;
    const VALUES: &'static [Value<Self>] = &[
        Value {
            value: MmCidVariant::Off,
            name: "off",
            what: "CONFIG_SCHED_MM_CID=n: rseq mm_cid is the CPU number, no bitmap",
            source: "include/linux/sched.h: task_mm_cid() is raw_smp_processor_id() without CONFIG_SCHED_MM_CID",
        },
        Value {
            value: MmCidVariant::Afm,
            name: "afm",
            what: "as first merged: per-task/per-CPU ownership, two mode words, TRANSIT only on the switch back",
            source: "fbd0e71dc370, 653fda7ae73d (v6.19-rc1); seed 003",
        },
        Value {
            value: MmCidVariant::AfmP1,
            name: "afm+p1",
            what: "patch 1: TRANSIT on the task-to-CPU switch too (the live lock's fix)",
            source: "seed 001 patch 1/4 (2026-01-29)",
        },
        Value {
            value: MmCidVariant::AfmP1P2,
            name: "afm+p1p2",
            what: "patches 1-2: one mode word flipped with XOR, so readers see a consistent pair",
            source: "seed 001 patch 2/4; tip 47ee94efccf6",
        },
        Value {
            value: MmCidVariant::Fixed,
            name: "fixed",
            what: "patches 1-4: exit drops the CPU's CID; schedout keeps settled TRANSIT CIDs",
            source: "seed 001 patches 3/4 and 4/4",
        },
        Value {
            value: MmCidVariant::Current,
            name: "current",
            what: "today's tree: fixed plus March 2026 (user list walk, pcpu_thrs at least 1, running task CIDs marked TRANSIT on the switch back)",
            source: "kernel/sched/core.c, sched.h (7.0-rc4, sched-urgent-2026-03-15)",
        },
    ];
}

impl MmCidVariant {
    /// The ownership scheme runs (not `off`).
    pub fn enabled(self) -> bool {
        self != MmCidVariant::Off
    }
    /// Patch 1: TRANSIT in both directions.
    pub fn p1(self) -> bool {
        !matches!(self, MmCidVariant::Off | MmCidVariant::Afm)
    }
    /// Patch 2: one mode word.
    pub fn one_word(self) -> bool {
        matches!(self, MmCidVariant::AfmP1P2 | MmCidVariant::Fixed | MmCidVariant::Current)
    }
    /// Patch 3: an exit-initiated switch back drops the CPU's CID.
    pub fn p3(self) -> bool {
        matches!(self, MmCidVariant::Fixed | MmCidVariant::Current)
    }
    /// Patch 4: schedout keeps a TRANSIT CID once the transition is over.
    pub fn p4(self) -> bool {
        self.p3()
    }
}
