//! Axis `flush`: how remote CPUs are told to flush their TLBs.

use super::{Axis, Value};
use serde::Serialize;

/// How remote CPUs are told to flush (`--flush`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlushTransport {
    /// Flush IPIs (smp_call_function_many) with acks; the local flush runs meanwhile.
    Ipi,
    /// Global ASIDs and INVLPGB + TLBSYNC for mms active on more than 3 CPUs; IPIs for
    /// the others.
    Invlpgb,
}

impl Axis for FlushTransport {
    const AXIS: &'static str = "flush";
    const ABOUT: &'static str = "flush transport";
    const DEFAULT: Self = FlushTransport::Ipi;
    const VALUES: &'static [Value<Self>] = &[
        Value {
            value: FlushTransport::Ipi,
            name: "ipi",
            what: "flush IPIs with acks; lazy CPUs skipped unless page tables are freed",
            source: "arch/x86/mm/tlb.c native_flush_tlb_multi",
        },
        Value {
            value: FlushTransport::Invlpgb,
            name: "invlpgb",
            what: "global ASIDs and INVLPGB+TLBSYNC broadcasts, no IPIs, for mms active on more than 3 CPUs",
            source: "arch/x86/mm/tlb.c broadcast_tlb_flush, consider_global_asid (Linux 6.15+)",
        },
    ];
}

impl FlushTransport {
    /// True when busy mms get global ASIDs and their flushes are INVLPGB broadcasts
    /// (the machine must have INVLPGB).
    pub fn global_asids(self) -> bool {
        self == FlushTransport::Invlpgb
    }
}
