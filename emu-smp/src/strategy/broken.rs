//! Axis `broken`: deliberately wrong behaviour, for testing the oracles (coherence,
//! mm_cid).

use super::{Axis, Value};
use serde::Serialize;

/// A deliberately wrong policy (`--broken`, hidden).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokenPolicy {
    /// Nothing broken.
    None,
    /// Omit the highest-numbered target of every flush IPI round.
    DropTarget,
    /// Lazy CPUs take no mm_count reference and nothing shoots them down: the mm is
    /// freed while CPUs still borrow it (CONFIG_MMU_LAZY_TLB_REFCOUNT=n without
    /// the shootdown, which arch/Kconfig forbids).
    NoLazyRef,
    /// mm_get_cid hands out the lowest CID below max_cids without testing its bit.
    MmCidReuse,
}

impl Axis for BrokenPolicy {
    const AXIS: &'static str = "broken";
    const ABOUT: &'static str = "deliberate breakage, for testing the oracle";
    const HIDDEN: bool = true;
    const DEFAULT: Self = BrokenPolicy::None;
    const VALUES: &'static [Value<Self>] = &[
        Value { value: BrokenPolicy::None, name: "none", what: "nothing broken", source: "-" },
        Value {
            value: BrokenPolicy::DropTarget,
            name: "drop-target",
            what: "test only: omits one target of every flush, so stale TLB entries survive",
            source: "oracle test of this project",
        },
        Value {
            value: BrokenPolicy::NoLazyRef,
            name: "no-lazy-ref",
            what: "test only: lazy CPUs hold no mm_count reference and are not shot down, so __mmdrop frees mms they still use",
            source: "oracle test of this project (arch/Kconfig MMU_LAZY_TLB_REFCOUNT's requirement broken)",
        },
        Value {
            value: BrokenPolicy::MmCidReuse,
            name: "mm-cid-reuse",
            what: "test only: mm_get_cid hands out CID 0 without test-and-set, so tasks share CIDs",
            source: "mm_cid oracle test of this project",
        },
    ];
}

impl BrokenPolicy {
    /// mmgrab_lazy_tlb takes no reference even where the lazy-mm policy says it must.
    pub fn skips_lazy_refs(self) -> bool {
        self == BrokenPolicy::NoLazyRef
    }

    /// Of the CPUs a flush IPIs (`targets`, in order, the initiator `me` among them or
    /// not), the ones it actually reaches.
    pub fn reached(self, mut targets: Vec<usize>, me: usize) -> Vec<usize> {
        if self == BrokenPolicy::DropTarget {
            if let Some(pos) = targets.iter().rposition(|&t| t != me) {
                targets.remove(pos);
            }
        }
        targets
    }
}
