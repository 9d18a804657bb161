//! Axis `cpumask`: how `mm_cpumask` is maintained, and so which CPUs a flush reaches.

use super::{Axis, Value};
use crate::tlbflush::{CpuTlbState, FlushInfo};
use serde::Serialize;

/// How mm_cpumask is maintained (`--cpumask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpumaskPolicy {
    /// Today's x86: set at switch-in, kept while lazy, cleared when a flush reaches a CPU
    /// that switched to another mm; such CPUs get flushes only once a second (the trim).
    Lazy,
    /// x86 before the trim: every CPU of the mask that is not lazy gets every flush, and
    /// one that switched to another mm drops out when a flush reaches it.
    LazyNotrim,
    /// Cleared at switch-out; no lazy TLB mode: an idle CPU switches to init_mm.
    Eager,
    /// Never cleared (what INVLPGB users and arm64 get).
    Sticky,
    /// Not tracked: flushes go to every online CPU.
    All,
}

impl Axis for CpumaskPolicy {
    const AXIS: &'static str = "cpumask";
    const ABOUT: &'static str = "mm_cpumask policy";
    const DEFAULT: Self = CpumaskPolicy::Lazy;
    const VALUES: &'static [Value<Self>] = &[
        Value {
            value: CpumaskPolicy::Lazy,
            name: "lazy",
            what: "set at switch-in, kept while lazy, cleared when a flush reaches a CPU running another mm; such CPUs are sent a flush once a second (the trim)",
            source: "arch/x86/mm/tlb.c flush_tlb_func, should_flush_tlb, should_trim_cpumask; seed 000",
        },
        Value {
            value: CpumaskPolicy::LazyNotrim,
            name: "lazy-notrim",
            what: "as lazy, but every non-lazy CPU of the mask gets every flush, those running another mm dropping out as it reaches them",
            source: "arch/x86/mm/tlb.c tlb_is_not_lazy, before \"x86/mm/tlb: Only trim the mm_cpumask once a second\" (Rik van Riel, 2024)",
        },
        Value {
            value: CpumaskPolicy::Eager,
            name: "eager",
            what: "cleared at switch-out; idle CPUs leave the mm instead of going lazy",
            source: "design axis of this project (DESIGN.md)",
        },
        Value {
            value: CpumaskPolicy::Sticky,
            name: "sticky",
            what: "never cleared: every CPU that ever ran the mm stays in the mask",
            source: "INVLPGB users and arm64 semantics (seed 000, Rik van Riel's reply)",
        },
        Value {
            value: CpumaskPolicy::All,
            name: "all",
            what: "no tracking: every online CPU is a flush target",
            source: "design axis of this project (DESIGN.md)",
        },
    ];
}

impl CpumaskPolicy {
    /// switch_mm to another mm clears the CPU's bit in the previous mm's mask.
    pub fn clears_at_switch_out(self) -> bool {
        self == CpumaskPolicy::Eager
    }

    /// An idle CPU keeps its mm loaded in lazy TLB mode (otherwise it switches to
    /// init_mm at once).
    pub fn lazy_tlb(self) -> bool {
        self != CpumaskPolicy::Eager
    }

    /// A flush that reaches a CPU no longer running the mm clears its bit
    /// (flush_tlb_func's "wrong CPU" path).
    pub fn clears_wrong_cpu(self) -> bool {
        self != CpumaskPolicy::Sticky
    }

    /// Flushes are sent to every online CPU, tracked or not.
    pub fn everyone(self) -> bool {
        self == CpumaskPolicy::All
    }

    /// The mask is trimmed once a second (should_trim_cpumask).
    pub fn trims(self) -> bool {
        self == CpumaskPolicy::Lazy
    }

    /// Whether a CPU of the mask, in state `ts`, is sent the flush `info` when no page
    /// tables were freed (should_flush_tlb; tlb_is_not_lazy before the trim).
    pub fn should_flush(self, ts: &CpuTlbState, info: &FlushInfo) -> bool {
        if ts.is_lazy {
            return false;
        }
        match self {
            CpumaskPolicy::LazyNotrim => true,
            _ => ts.loaded_mm == info.mm || info.trim,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(mm: u32, trim: bool) -> FlushInfo {
        FlushInfo {
            mm,
            start: 0,
            end: 4096,
            stride_shift: 12,
            freed_tables: false,
            new_tlb_gen: 2,
            initiator: 0,
            trim,
            record: 0,
        }
    }

    fn cpu(loaded: u32, lazy: bool) -> CpuTlbState {
        CpuTlbState { loaded_mm: loaded, is_lazy: lazy, ..CpuTlbState::default() }
    }

    #[test]
    fn who_gets_a_flush_of_mm_1() {
        use CpumaskPolicy::*;
        let running = cpu(1, false);
        let lazy = cpu(1, true);
        let elsewhere = cpu(2, false);
        for p in [Lazy, LazyNotrim, Eager, Sticky] {
            assert!(p.should_flush(&running, &info(1, false)), "{p:?}");
            assert!(!p.should_flush(&lazy, &info(1, false)), "{p:?}");
        }
        // A CPU running another mm: only before the trim existed, or at a trim.
        assert!(LazyNotrim.should_flush(&elsewhere, &info(1, false)));
        assert!(!Lazy.should_flush(&elsewhere, &info(1, false)));
        assert!(Lazy.should_flush(&elsewhere, &info(1, true)));
        assert!(!Lazy.should_flush(&lazy, &info(1, true)), "the trim skips lazy CPUs too");
    }
}
