//! Axis `preempt`: the preemption model, as the `preempt=` boot parameter of a
//! CONFIG_PREEMPT_DYNAMIC kernel chooses it (kernel/sched/core.c `sched_dynamic_mode`).
//!
//! It decides whether a task may lose its CPU in the middle of a kernel path. Every model
//! reschedules at the return to user mode; `full` and `lazy` also preempt a kernel path
//! between two of its steps (path.rs) when the task holds no spinlock and has interrupts
//! on, as preempt_schedule_irq and preempt_enable do. This matters where a kernel path
//! holds something others wait for across its steps: a fork's mm_cid fixup walk, which
//! seed 001 says "is fully preemptible except for the short runqueue lock held sections",
//! holds mm_cid.mutex with the transition half done while other threads schedule.

use super::{Axis, Value};
use serde::Serialize;

/// Preemption model (`--preempt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preemption {
    /// Kernel paths are not preempted; a reschedule waits for the return to user mode.
    Voluntary,
    /// A set need_resched preempts a kernel path at its next preemption point.
    Full,
    /// Fair-class reschedules are lazy: honoured at the return to user mode, and in the
    /// kernel only once a tick finds one still pending.
    Lazy,
}

impl Preemption {
    /// Whether a kernel path on a CPU whose need_resched is set (`forced`: a tick found
    /// it still pending, or it was set as TIF_NEED_RESCHED proper) is preempted.
    pub fn preempts_kernel(self, forced: bool) -> bool {
        match self {
            Preemption::Voluntary => false,
            Preemption::Full => true,
            Preemption::Lazy => forced,
        }
    }

    /// Whether the tick upgrades a pending lazy reschedule to a forced one.
    pub fn tick_upgrades(self) -> bool {
        self == Preemption::Lazy
    }
}

impl Axis for Preemption {
    const AXIS: &'static str = "preempt";
    const ABOUT: &'static str = "preemption model (the preempt= boot parameter)";
    const DEFAULT: Self = Preemption::Voluntary;
    const VALUES: &'static [Value<Self>] = &[
        Value {
            value: Preemption::Voluntary,
            name: "voluntary",
            what: "kernel code is not preempted: a reschedule the tick or a wake-up asks for happens at the next return to user mode or sleep. emu models no cond_resched point, so this is also PREEMPT_NONE. Debian's kernels boot with it (PREEMPT_DYNAMIC, voluntary by default); since Linux 7.0 x86 no longer offers it",
            source: "kernel/Kconfig.preempt PREEMPT_VOLUNTARY; linux-headers-6.1.0-56-amd64 .config (CONFIG_PREEMPT_DYNAMIC=y, CONFIG_PREEMPT_VOLUNTARY=y); commit 7dadeaa6e851 \"sched: Further restrict the preemption modes\" (7.0)",
        },
        Value {
            value: Preemption::Full,
            name: "full",
            what: "a kernel path is preempted between its steps as soon as need_resched is set (a tick whose task used its slice, a wake-up that wakeup_preempt_fair lets preempt), unless it holds a spinlock or has interrupts off (GUP-fast)",
            source: "kernel/Kconfig.preempt PREEMPT; kernel/sched/core.c preempt_schedule_irq, resched_curr; kernel/entry/common.c irqentry_exit_cond_resched",
        },
        Value {
            value: Preemption::Lazy,
            name: "lazy",
            what: "fair-class reschedules set TIF_NEED_RESCHED_LAZY: honoured at the return to user mode; a kernel path is preempted only once a later tick finds the lazy flag still set and upgrades it (sched_tick), otherwise as full. The default on x86 since Linux 7.0",
            source: "kernel/Kconfig.preempt PREEMPT_LAZY (default if ARCH_HAS_PREEMPT_LAZY since 7dadeaa6e851, 7.0); kernel/sched/core.c resched_curr_lazy, sched_tick; kernel/sched/fair.c check_preempt_wakeup_fair",
        },
    ];
}
