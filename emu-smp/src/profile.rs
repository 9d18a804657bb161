//! Machine profiles: every cost and geometry the model uses, with its source, in TOML.
//! The defaults are embedded in the binary; a user may pass a file of their own. Unknown
//! keys and impossible values are rejected with the offending key named.

use emu_core::{CostClass, CpuidModel, InsnCosts, NUM_CLASSES};
use emu_mmu::{CacheGeometry, CacheParams, MemParams, MmuParams, TlbGeometry};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The profiles shipped in the binary: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("skylake-sp", include_str!("../profiles/skylake-sp.toml")),
    ("zen3", include_str!("../profiles/zen3.toml")),
];

/// A profile that cannot be used.
#[derive(Debug, Error)]
pub enum ProfileError {
    /// Not a built-in name and not a readable file.
    #[error("unknown profile `{0}` (built-in profiles: {1}; or give a path to a .toml file)")]
    Unknown(String, String),
    /// The file could not be read.
    #[error("cannot read profile {path}: {source}")]
    Read {
        /// Path given.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax, unknown key or wrong type.
    #[error("invalid profile {path}: {source}")]
    Parse {
        /// Path or name.
        path: String,
        /// Cause.
        source: Box<toml::de::Error>,
    },
    /// A value outside what the model can represent.
    #[error("invalid profile {path}: {key}: {why}")]
    Value {
        /// Path or name.
        path: String,
        /// The offending key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

/// CPU identity and features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuParams {
    /// CPUID vendor string (12 characters).
    pub vendor: String,
    /// Display family.
    pub family: u32,
    /// Display model.
    pub model: u32,
    /// Stepping.
    pub stepping: u32,
    /// Brand string (at most 47 characters).
    pub brand: String,
    /// Core and TSC frequency in MHz (the guest clock follows it).
    pub freq_mhz: u32,
    /// Process-context identifiers.
    pub pcid: bool,
    /// INVPCID instruction.
    pub invpcid: bool,
    /// AMD INVLPGB and TLBSYNC.
    pub invlpgb: bool,
    /// Pages one INVLPGB may cover (CPUID Fn8000_0008_EDX[15:0] + 1); 0 without INVLPGB.
    pub invlpgb_max_pages: u32,
}

/// Instruction class costs (reciprocal throughput, cycles).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct InsnParams {
    pub alu: f64,
    pub branch: f64,
    pub mul: f64,
    pub div32: f64,
    pub div64: f64,
    pub string_iter: f64,
    pub sse_int: f64,
    pub sse_fp: f64,
    pub sse_mul: f64,
    pub sse_div: f64,
    pub x87: f64,
    pub x87_div: f64,
    pub x87_transcendental: f64,
    pub locked: f64,
    pub serializing: f64,
    pub rdtsc: f64,
    pub syscall: f64,
    pub pause: f64,
    pub mem_operand: f64,
}

/// How the local APIC addresses IPIs to several CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApicMode {
    /// x2APIC logical cluster mode: one ICR write per cluster of targets.
    X2apicCluster,
    /// x2APIC physical mode: one ICR write per target.
    X2apicPhysical,
}

/// Local APIC and interrupt costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApicParams {
    /// Destination mode.
    pub mode: ApicMode,
    /// CPUs per x2APIC cluster.
    pub cluster_size: u32,
    /// One write of the interrupt command register (sending an IPI).
    pub icr_write_cycles: f64,
    /// From the ICR write to the interrupt on a CPU of the same socket.
    pub delivery_same_socket_cycles: f64,
    /// Same, on another socket.
    pub delivery_cross_socket_cycles: f64,
    /// Interrupt entry on the receiver.
    pub irq_entry_cycles: f64,
    /// Interrupt exit on the receiver.
    pub irq_exit_cycles: f64,
    /// Dispatching one queued cross-CPU function call.
    pub call_function_cycles: f64,
}

/// One idle state (C-state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleState {
    /// Name.
    pub name: String,
    /// Time to leave it when woken.
    pub exit_latency_cycles: f64,
    /// Shortest expected idle period for which the governor picks it.
    pub target_residency_cycles: f64,
    /// The state loses the TLB's contents and the kernel calls leave_mm() before
    /// entering it (cpuidle's CPUIDLE_FLAG_TLB_FLUSHED).
    #[serde(default)]
    pub tlb_flushed: bool,
}

/// Idle states, shallowest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdleParams {
    /// The states.
    pub states: Vec<IdleState>,
}

/// The host a virtual machine's vCPUs run on ([`crate::host`]). The defaults are bare
/// metal, so profiles written before this section keep their meaning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostParams {
    /// Busy vCPU threads sharing each physical CPU of the host, this machine's included
    /// (1: bare metal, or a VM on dedicated CPUs).
    pub vcpus_per_pcpu: u32,
    /// The host scheduler's slice for a vCPU thread, ns.
    pub slice_ns: u64,
    /// The guest flushes preempted vCPUs' TLBs through KVM's steal-time area
    /// (KVM_FEATURE_PV_TLB_FLUSH, `kvm_flush_tlb_multi`) instead of IPIs.
    pub pv_tlb_flush: bool,
}

impl Default for HostParams {
    fn default() -> Self {
        // sysctl_sched_base_slice (0.75 ms) scaled by 1 + ilog2(8) on a host of 8 or
        // more CPUs (kernel/sched/fair.c): the slice an EEVDF host gives each of its
        // equally weighted, always runnable threads in turn.
        HostParams {
            vcpus_per_pcpu: 1,
            slice_ns: crate::sched::base_slice_ns(8),
            pv_tlb_flush: true,
        }
    }
}

/// Costs of kernel paths not made of modelled guest instructions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelParams {
    /// System call entry plus exit, without mitigations.
    pub syscall_cycles: f64,
    /// What the profile's mitigations add to each kernel entry plus exit (system call or
    /// page fault): PTI's CR3 switches on CPUs affected by Meltdown.
    pub entry_mitigation_cycles: f64,
    /// Page-fault exception entry, exit and dispatch to handle_mm_fault.
    pub fault_entry_cycles: f64,
    /// Finding the VMA of an address (the maple-tree walk of find_vma / vma_lookup).
    pub vma_find_cycles: f64,
    /// A new vm_area_struct allocated, filled and stored in the tree (a mapping that
    /// merged with nothing; each side of __split_vma).
    pub vma_alloc_cycles: f64,
    /// A vm_area_struct erased from the tree and freed (merged away, or unmapped).
    pub vma_remove_cycles: f64,
    /// Clearing one present PTE in zap_pte_range.
    pub pte_zap_cycles: f64,
    /// Releasing the folio a zapped PTE mapped: rmap removal, reference drop, memcg
    /// uncharge and the free (lru_lock and zone->lock are modelled apart).
    pub folio_free_cycles: f64,
    /// Rewriting one present PTE in change_protection (mprotect).
    pub pte_change_cycles: f64,
    /// Copying one present PTE into a child in copy_page_range (fork), with the
    /// parent's write-protect, the folio reference and the rmap duplicate.
    pub pte_copy_cycles: f64,
    /// Allocating a page-table page (pte_alloc_one and the ctor), its clearing aside.
    pub pt_alloc_cycles: f64,
    /// Freeing a page-table page (the dtor, uncharge and free).
    pub pt_free_cycles: f64,
    /// Allocating one folio from the per-CPU lists (the zone refills under zone->lock
    /// are modelled apart).
    pub page_alloc_cycles: f64,
    /// Zeroing one 4 KiB page.
    pub page_zero_cycles: f64,
    /// Adding a new anonymous folio to the reverse map (folio_add_new_anon_rmap).
    pub rmap_add_cycles: f64,
    /// Adding a folio to the per-CPU LRU batch (its drain under lru_lock is modelled
    /// apart).
    pub lru_add_cycles: f64,
    /// Throughput of copies between user and kernel space.
    pub copy_bytes_per_cycle: f64,
    /// Scheduler tick frequency (CONFIG_HZ).
    pub hz: u32,
    /// Preemptible RCU (CONFIG_PREEMPT_RCU): a tick taken in the kernel with preemption
    /// enabled (no spinlock held) is a quiescent state, not only one taken in user mode.
    pub preempt_rcu: bool,
    /// One scheduler tick interrupt.
    pub tick_cycles: f64,
    /// A context switch, excluding the address-space switch.
    pub context_switch_cycles: f64,
    /// Waking a task (try_to_wake_up).
    pub wakeup_cycles: f64,
    /// flush_tlb_func bookkeeping, beyond its invalidation instructions.
    pub flush_func_cycles: f64,
    /// Setting or clearing a bit of an mm_cpumask.
    pub mm_cpumask_op_cycles: f64,
    /// How often a busy CPU's kworker runs its deferrable per-CPU work (vmstat_update,
    /// every `sysctl_stat_interval`), in milliseconds; 0: never.
    pub vm_stat_interval_ms: f64,
    /// The kworker's work item (vmstat_update: refresh_cpu_vm_stats).
    pub kworker_work_cycles: f64,
    /// A test-and-set or clear of an mm_cidmask bit, cache-line transfers aside.
    pub mm_cid_bitmap_op_cycles: f64,
    /// One element of an mm_cid fixup walk (a task or a CPU, its runqueue lock taken).
    pub mm_cid_fixup_visit_cycles: f64,
    /// One round of a mutex's optimistic spinning on a running owner (mm_cid.mutex).
    pub mutex_spin_poll_cycles: f64,
    /// The hard-lockup watchdog's threshold: a CPU spinning with interrupts off this
    /// long is reported (here: a CPU spinning in mm_get_cid ends the run).
    pub watchdog_thresh_ms: f64,
    /// local_irq_save or local_irq_restore (PUSHF/CLI, POPF), each.
    pub irq_toggle_cycles: f64,
    /// GUP-fast's per-page checks beyond its loads and atomics (pte_special,
    /// gup_fast_folio_allowed, folio lookups).
    pub gup_fast_checks_cycles: f64,
}

/// The kernel-path costs of a profile in fixed-point cycles, ready to charge
/// (see [`crate::mm::Work::cost`] and the steps of the kernel paths).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct KernelCosts {
    pub syscall: u64,
    pub fault_entry: u64,
    pub vma_find: u64,
    pub vma_alloc: u64,
    pub vma_remove: u64,
    pub pte_zap: u64,
    pub folio_free: u64,
    pub pte_change: u64,
    pub pte_copy: u64,
    pub pt_alloc: u64,
    pub pt_free: u64,
    pub page_alloc: u64,
    pub page_zero: u64,
    pub rmap_add: u64,
    pub lru_add: u64,
}

impl KernelCosts {
    /// The costs of `k`: a system call's and a fault's entry include the mitigations.
    pub fn new(k: &KernelParams) -> Self {
        let f = |c: f64| (c * 256.0).round().max(0.0) as u64;
        KernelCosts {
            syscall: f(k.syscall_cycles + k.entry_mitigation_cycles),
            fault_entry: f(k.fault_entry_cycles + k.entry_mitigation_cycles),
            vma_find: f(k.vma_find_cycles),
            vma_alloc: f(k.vma_alloc_cycles),
            vma_remove: f(k.vma_remove_cycles),
            pte_zap: f(k.pte_zap_cycles),
            folio_free: f(k.folio_free_cycles),
            pte_change: f(k.pte_change_cycles),
            pte_copy: f(k.pte_copy_cycles),
            pt_alloc: f(k.pt_alloc_cycles),
            pt_free: f(k.pt_free_cycles),
            page_alloc: f(k.page_alloc_cycles),
            page_zero: f(k.page_zero_cycles),
            rmap_add: f(k.rmap_add_cycles),
            lru_add: f(k.lru_add_cycles),
        }
    }
}

/// A machine profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// CPU identity and features.
    pub cpu: CpuParams,
    /// Instruction costs.
    pub insn: InsnParams,
    /// TLB and paging-structure-cache geometry, walk and invalidation costs.
    pub mmu: MmuParams,
    /// Data caches and topology.
    pub cache: CacheParams,
    /// Kernel path costs.
    pub kernel: KernelParams,
    /// Local APICs and interrupts.
    pub apic: ApicParams,
    /// Idle states.
    pub idle: IdleParams,
    /// The host under a virtual machine (bare metal when left out).
    #[serde(default)]
    pub host: HostParams,
}

impl Profile {
    /// Loads a built-in profile by name, or a TOML file by path, with parameters
    /// overridden by `+KEY=VALUE` suffixes (`zen3+mmu.invlpgb_receive_cycles=200`), so
    /// that a sweep can vary any parameter through its list of profiles.
    pub fn load(spec: &str) -> Result<Profile, ProfileError> {
        if std::path::Path::new(spec).exists() || !spec.contains('+') {
            return Profile::load_base(spec);
        }
        let mut parts = spec.split('+');
        let base = Profile::load_base(parts.next().unwrap_or(""))?;
        let bad = |key: &str, why: String| ProfileError::Value {
            path: spec.into(),
            key: key.into(),
            why,
        };
        let mut doc = toml::Value::try_from(&base).map_err(|e| bad("", e.to_string()))?;
        for o in parts {
            let Some((key, text)) = o.split_once('=') else {
                return Err(bad(o, "an override is KEY=VALUE".into()));
            };
            let mut slot = &mut doc;
            for name in key.split('.') {
                slot = slot
                    .get_mut(name)
                    .ok_or_else(|| bad(key, "no such parameter in the profile".into()))?;
            }
            let parsed: toml::Table = toml::from_str(&format!("v = {text}"))
                .or_else(|_| toml::from_str(&format!("v = {:?}", text)))
                .map_err(|e| bad(key, e.to_string()))?;
            let mut v = parsed.get("v").cloned().unwrap_or(toml::Value::Boolean(false));
            if let (toml::Value::Float(_), toml::Value::Integer(i)) = (&*slot, &v) {
                v = toml::Value::Float(*i as f64);
            }
            if std::mem::discriminant(&*slot) != std::mem::discriminant(&v) {
                return Err(bad(key, format!("`{text}` is not of the type {}", slot.type_str())));
            }
            *slot = v;
        }
        let p: Profile = doc
            .try_into()
            .map_err(|e| ProfileError::Parse { path: spec.into(), source: Box::new(e) })?;
        p.validate(spec)?;
        Ok(p)
    }

    fn load_base(name_or_path: &str) -> Result<Profile, ProfileError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Profile::parse(text, name_or_path);
        }
        let p = std::path::Path::new(name_or_path);
        if p.extension().is_some_and(|e| e == "toml") || p.exists() {
            let text = std::fs::read_to_string(p)
                .map_err(|source| ProfileError::Read { path: name_or_path.into(), source })?;
            return Profile::parse(&text, name_or_path);
        }
        let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        Err(ProfileError::Unknown(name_or_path.into(), names.join(", ")))
    }

    /// Parses and validates a profile.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let p: Profile = toml::from_str(text)
            .map_err(|e| ProfileError::Parse { path: origin.into(), source: Box::new(e) })?;
        p.validate(origin)?;
        Ok(p)
    }

    fn validate(&self, origin: &str) -> Result<(), ProfileError> {
        let bad = |key: &str, why: String| {
            Err(ProfileError::Value { path: origin.into(), key: key.into(), why })
        };
        if self.cpu.vendor.len() != 12 {
            return bad("cpu.vendor", "must be exactly 12 characters".into());
        }
        if self.cpu.brand.len() > 47 {
            return bad("cpu.brand", "must be at most 47 characters".into());
        }
        if self.cpu.freq_mhz == 0 || self.cpu.freq_mhz > 10_000 {
            return bad(
                "cpu.freq_mhz",
                format!("{} is not a plausible frequency", self.cpu.freq_mhz),
            );
        }
        if self.cpu.invlpgb != (self.cpu.invlpgb_max_pages > 0)
            || self.cpu.invlpgb_max_pages > 65536
        {
            return bad(
                "cpu.invlpgb_max_pages",
                "must be 1..=65536 with invlpgb = true, and 0 without".into(),
            );
        }
        for (key, g) in [
            ("mmu.itlb", self.mmu.itlb),
            ("mmu.dtlb_4k", self.mmu.dtlb_4k),
            ("mmu.dtlb_2m", self.mmu.dtlb_2m),
            ("mmu.stlb", self.mmu.stlb),
            ("mmu.psc_pml4e", self.mmu.psc_pml4e),
            ("mmu.psc_pdpte", self.mmu.psc_pdpte),
            ("mmu.psc_pde", self.mmu.psc_pde),
        ] {
            check_geometry(g).or_else(|why| bad(key, why))?;
        }
        let c = &self.cache;
        for (key, g) in [("cache.l1d", c.l1d), ("cache.l2", c.l2), ("cache.llc", c.llc)] {
            check_cache(g).or_else(|why| bad(key, why))?;
        }
        if c.cores_per_llc == 0
            || c.cores_per_socket == 0
            || c.cores_per_socket % c.cores_per_llc != 0
        {
            return bad(
                "cache.cores_per_socket",
                "must be a positive multiple of cache.cores_per_llc".into(),
            );
        }
        for (key, v) in self.insn_costs_named() {
            if !(0.0..=10_000.0).contains(&v) {
                return bad(
                    &format!("insn.{key}"),
                    format!("{v} cycles is out of range 0..=10000"),
                );
            }
        }
        for (key, v) in [
            ("mmu.stlb_hit_cycles", self.mmu.stlb_hit_cycles),
            ("mmu.walk_base_cycles", self.mmu.walk_base_cycles),
            ("mmu.ad_update_cycles", self.mmu.ad_update_cycles),
            ("mmu.invlpg_cycles", self.mmu.invlpg_cycles),
            ("mmu.invpcid_cycles", self.mmu.invpcid_cycles),
            ("mmu.cr3_write_cycles", self.mmu.cr3_write_cycles),
            ("mmu.invlpgb_cycles", self.mmu.invlpgb_cycles),
            ("mmu.tlbsync_cycles", self.mmu.tlbsync_cycles),
            ("mmu.invlpgb_hop_cycles", self.mmu.invlpgb_hop_cycles),
            ("mmu.invlpgb_ccx_cycles", self.mmu.invlpgb_ccx_cycles),
            ("mmu.invlpgb_socket_cycles", self.mmu.invlpgb_socket_cycles),
            ("mmu.invlpgb_receive_cycles", self.mmu.invlpgb_receive_cycles),
            ("cache.memory_latency_cycles", c.memory_latency_cycles),
            ("cache.transfer_same_llc_cycles", c.transfer_same_llc_cycles),
            ("cache.transfer_same_socket_cycles", c.transfer_same_socket_cycles),
            ("cache.transfer_cross_socket_cycles", c.transfer_cross_socket_cycles),
            ("kernel.syscall_cycles", self.kernel.syscall_cycles),
            ("kernel.entry_mitigation_cycles", self.kernel.entry_mitigation_cycles),
            ("kernel.fault_entry_cycles", self.kernel.fault_entry_cycles),
            ("kernel.vma_find_cycles", self.kernel.vma_find_cycles),
            ("kernel.vma_alloc_cycles", self.kernel.vma_alloc_cycles),
            ("kernel.vma_remove_cycles", self.kernel.vma_remove_cycles),
            ("kernel.pte_zap_cycles", self.kernel.pte_zap_cycles),
            ("kernel.folio_free_cycles", self.kernel.folio_free_cycles),
            ("kernel.pte_change_cycles", self.kernel.pte_change_cycles),
            ("kernel.pte_copy_cycles", self.kernel.pte_copy_cycles),
            ("kernel.pt_alloc_cycles", self.kernel.pt_alloc_cycles),
            ("kernel.pt_free_cycles", self.kernel.pt_free_cycles),
            ("kernel.page_alloc_cycles", self.kernel.page_alloc_cycles),
            ("kernel.page_zero_cycles", self.kernel.page_zero_cycles),
            ("kernel.rmap_add_cycles", self.kernel.rmap_add_cycles),
            ("kernel.lru_add_cycles", self.kernel.lru_add_cycles),
        ] {
            if !(0.0..=1e7).contains(&v) {
                return bad(key, format!("{v} is out of range 0..=1e7"));
            }
        }
        let k = &self.kernel;
        if !(100..=10_000).contains(&k.hz) {
            return bad("kernel.hz", format!("{} is outside 100..=10000", k.hz));
        }
        let a = &self.apic;
        if a.cluster_size == 0 || a.cluster_size > 64 {
            return bad("apic.cluster_size", "must be 1..=64".into());
        }
        if !(a.delivery_same_socket_cycles >= 100.0)
            || !(a.delivery_cross_socket_cycles >= a.delivery_same_socket_cycles)
        {
            return bad(
                "apic.delivery_same_socket_cycles",
                "must be at least 100 cycles (it bounds the scheduling quantum) and at most the cross-socket latency".into(),
            );
        }
        for (key, v) in [
            ("kernel.tick_cycles", k.tick_cycles),
            ("kernel.context_switch_cycles", k.context_switch_cycles),
            ("kernel.wakeup_cycles", k.wakeup_cycles),
            ("kernel.flush_func_cycles", k.flush_func_cycles),
            ("kernel.mm_cpumask_op_cycles", k.mm_cpumask_op_cycles),
            ("kernel.vm_stat_interval_ms", k.vm_stat_interval_ms),
            ("kernel.kworker_work_cycles", k.kworker_work_cycles),
            ("kernel.mm_cid_bitmap_op_cycles", k.mm_cid_bitmap_op_cycles),
            ("kernel.mm_cid_fixup_visit_cycles", k.mm_cid_fixup_visit_cycles),
            ("kernel.watchdog_thresh_ms", k.watchdog_thresh_ms),
            ("kernel.mutex_spin_poll_cycles", k.mutex_spin_poll_cycles),
            ("kernel.irq_toggle_cycles", k.irq_toggle_cycles),
            ("kernel.gup_fast_checks_cycles", k.gup_fast_checks_cycles),
            ("apic.icr_write_cycles", a.icr_write_cycles),
            ("apic.delivery_cross_socket_cycles", a.delivery_cross_socket_cycles),
            ("apic.irq_entry_cycles", a.irq_entry_cycles),
            ("apic.irq_exit_cycles", a.irq_exit_cycles),
            ("apic.call_function_cycles", a.call_function_cycles),
        ] {
            if !(0.0..=1e8).contains(&v) {
                return bad(key, format!("{v} is out of range 0..=1e8"));
            }
        }
        if !(1..=64).contains(&self.host.vcpus_per_pcpu) {
            return bad(
                "host.vcpus_per_pcpu",
                format!("{} is outside 1..=64", self.host.vcpus_per_pcpu),
            );
        }
        if !(10_000..=1_000_000_000).contains(&self.host.slice_ns) {
            return bad(
                "host.slice_ns",
                format!("{} is outside 10000..=1000000000 ns", self.host.slice_ns),
            );
        }
        if self.idle.states.is_empty() {
            return bad("idle.states", "at least one idle state is needed".into());
        }
        for (i, st) in self.idle.states.iter().enumerate() {
            if !(0.0..=1e9).contains(&st.exit_latency_cycles)
                || !(0.0..=1e10).contains(&st.target_residency_cycles)
            {
                return bad(
                    &format!("idle.states[{i}]"),
                    "latency or residency out of range".into(),
                );
            }
            if i > 0 && st.target_residency_cycles < self.idle.states[i - 1].target_residency_cycles
            {
                return bad(
                    &format!("idle.states[{i}]"),
                    "states must be ordered shallowest first".into(),
                );
            }
        }
        if !(self.kernel.copy_bytes_per_cycle > 0.0 && self.kernel.copy_bytes_per_cycle <= 1024.0) {
            return bad("kernel.copy_bytes_per_cycle", "must be in (0, 1024]".into());
        }
        Ok(())
    }

    fn insn_costs_named(&self) -> [(&'static str, f64); 19] {
        let i = &self.insn;
        [
            ("alu", i.alu),
            ("branch", i.branch),
            ("mul", i.mul),
            ("div32", i.div32),
            ("div64", i.div64),
            ("string_iter", i.string_iter),
            ("sse_int", i.sse_int),
            ("sse_fp", i.sse_fp),
            ("sse_mul", i.sse_mul),
            ("sse_div", i.sse_div),
            ("x87", i.x87),
            ("x87_div", i.x87_div),
            ("x87_transcendental", i.x87_transcendental),
            ("locked", i.locked),
            ("serializing", i.serializing),
            ("rdtsc", i.rdtsc),
            ("syscall", i.syscall),
            ("pause", i.pause),
            ("mem_operand", i.mem_operand),
        ]
    }

    /// The instruction cost table for the core model.
    pub fn insn_costs(&self) -> InsnCosts {
        let i = &self.insn;
        let mut c = [0.0; NUM_CLASSES];
        c[CostClass::Alu as usize] = i.alu;
        c[CostClass::Branch as usize] = i.branch;
        c[CostClass::Mul as usize] = i.mul;
        c[CostClass::Div32 as usize] = i.div32;
        c[CostClass::Div64 as usize] = i.div64;
        c[CostClass::StringIter as usize] = i.string_iter;
        c[CostClass::SseInt as usize] = i.sse_int;
        c[CostClass::SseFp as usize] = i.sse_fp;
        c[CostClass::SseMul as usize] = i.sse_mul;
        c[CostClass::SseDiv as usize] = i.sse_div;
        c[CostClass::X87 as usize] = i.x87;
        c[CostClass::X87Div as usize] = i.x87_div;
        c[CostClass::X87Transcendental as usize] = i.x87_transcendental;
        c[CostClass::Locked as usize] = i.locked;
        c[CostClass::Serializing as usize] = i.serializing;
        c[CostClass::Rdtsc as usize] = i.rdtsc;
        c[CostClass::Syscall as usize] = i.syscall;
        c[CostClass::Pause as usize] = i.pause;
        InsnCosts { class_cycles: c, mem_operand_cycles: i.mem_operand }
    }

    /// The memory-system parameters.
    pub fn mem_params(&self) -> MemParams {
        MemParams { mmu: self.mmu.clone(), cache: self.cache.clone() }
    }

    /// Cycles per nanosecond of the guest clock.
    pub fn ghz(&self) -> f64 {
        f64::from(self.cpu.freq_mhz) / 1000.0
    }

    /// The CPUID answers of core `cpu` of `ncpus`. The feature set is the profile's CPU
    /// restricted to what emu implements: no AVX/AVX-512, no SSE3 and later vector
    /// extensions, no XSAVE, no ERMS/FSRM, no RDRAND; BMI1/BMI2/LZCNT/POPCNT are kept.
    pub fn cpuid(&self, cpu: u32, ncpus: u32) -> CpuidModel {
        let c = &self.cpu;
        let amd = c.vendor == "AuthenticAMD";
        let mut m = CpuidModel::default();
        let vendor = c.vendor.as_bytes();
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let max_basic = if amd { 0x10 } else { 0x16 };
        m.set(0, None, [max_basic, word(&vendor[0..4]), word(&vendor[8..12]), word(&vendor[4..8])]);
        // Leaf 1: family/model/stepping signature, APIC id, features.
        let (fam, ext_fam) = if c.family > 15 { (15, c.family - 15) } else { (c.family, 0) };
        let sig = (ext_fam << 20)
            | ((c.model >> 4) << 16)
            | (fam << 8)
            | ((c.model & 15) << 4)
            | c.stepping;
        let ebx1 = (cpu << 24) | (ncpus.min(255) << 16) | (8 << 8);
        // EDX: FPU TSC MSR CX8 APIC SEP PGE CMOV PAT CLFSH MMX FXSR SSE SSE2 HTT
        let edx1: u32 = (1 << 0)
            | (1 << 4)
            | (1 << 5)
            | (1 << 8)
            | (1 << 9)
            | (1 << 11)
            | (1 << 13)
            | (1 << 15)
            | (1 << 16)
            | (1 << 19)
            | (1 << 23)
            | (1 << 24)
            | (1 << 25)
            | (1 << 26)
            | (1 << 28);
        // ECX: CX16 (13), PCID (17), POPCNT (23), HYPERVISOR (31) clear.
        let mut ecx1: u32 = (1 << 13) | (1 << 23);
        if c.pcid {
            ecx1 |= 1 << 17;
        }
        m.set(1, None, [sig, ebx1, ecx1, edx1]);
        // Leaf 7.0: BMI1 (3), BMI2 (8), INVPCID (10).
        let mut ebx7 = (1 << 3) | (1 << 8);
        if c.invpcid {
            ebx7 |= 1 << 10;
        }
        m.set(7, Some(0), [0, ebx7, 0, 0]);
        // Leaf 0xB: x2APIC topology, one thread per core, all cores in one package.
        m.set(0xb, Some(0), [0, 1, 0x100, cpu]);
        m.set(0xb, Some(1), [bits_for(ncpus), ncpus, 0x201, cpu]);
        m.set(0xb, Some(2), [0, 0, 2, cpu]);
        let cache = &self.cache;
        if !amd {
            // Leaf 0x16: base/max/bus frequency in MHz.
            m.set(0x16, None, [c.freq_mhz, c.freq_mhz, 100, 0]);
            // Leaf 2: descriptor 0xFF ("use leaf 4") and 0xF0 (prefetch), AL = 1.
            m.set(2, None, [0x00f0_ff01, 0, 0, 0]);
            // Leaf 4: deterministic cache parameters (Intel SDM vol. 2 "CPUID", leaf 04H).
            let leaf4 = |ty: u32, level: u32, g: CacheGeometry, sharing: u32| {
                let sets = g.size_kib * 16 / g.ways;
                let eax = ty
                    | (level << 5)
                    | (1 << 8)
                    | ((sharing.max(1) - 1) << 14)
                    | ((ncpus.max(1) - 1).min(63) << 26);
                [eax, ((g.ways - 1) << 22) | 63, sets - 1, 0]
            };
            m.set(4, Some(0), leaf4(1, 1, cache.l1d, 1));
            m.set(
                4,
                Some(1),
                leaf4(2, 1, CacheGeometry { size_kib: 32, ways: 8, latency_cycles: 0.0 }, 1),
            );
            m.set(4, Some(2), leaf4(3, 2, cache.l2, 1));
            m.set(4, Some(3), leaf4(3, 3, cache.llc, cache.cores_per_llc));
            m.set(4, Some(4), [0; 4]);
            // Leaf 0x18: deterministic address translation parameters (one subleaf per
            // structure): subleaf 0 reports the count; 1 = L1 DTLB 4K, 2 = L1 DTLB 2M,
            // 3 = L1 ITLB, 4 = STLB.
            let leaf18 = |g: TlbGeometry, sizes: u32, ty: u32, level: u32| {
                [
                    0,
                    sizes | (g.ways << 16),
                    g.entries / g.ways,
                    ty | (level << 5) | (1 << 8) | (g.ways == g.entries) as u32 * (1 << 8),
                ]
            };
            m.set(0x18, Some(0), [4, 0, 0, 0]);
            m.set(0x18, Some(1), leaf18(self.mmu.dtlb_4k, 1, 1, 1));
            m.set(0x18, Some(2), leaf18(self.mmu.dtlb_2m, 2, 1, 1));
            m.set(0x18, Some(3), leaf18(self.mmu.itlb, 1 | 2, 2, 1));
            m.set(0x18, Some(4), leaf18(self.mmu.stlb, 1 | 2, 3, 2));
        }
        // Extended leaves.
        m.set(0x8000_0000, None, [0x8000_0008, if amd { word(&vendor[0..4]) } else { 0 }, 0, 0]);
        // ECX: LAHF (0), LZCNT/ABM (5); EDX: SYSCALL (11), NX (20), 1GB (26) clear, RDTSCP (27), LM (29).
        m.set(
            0x8000_0001,
            None,
            [sig, 0, 1 | (1 << 5), (1 << 11) | (1 << 20) | (1 << 27) | (1 << 29)],
        );
        let mut brand = [0u8; 48];
        brand[..c.brand.len()].copy_from_slice(c.brand.as_bytes());
        for k in 0..3u32 {
            let b = &brand[16 * k as usize..16 * k as usize + 16];
            m.set(
                0x8000_0002 + k,
                None,
                [word(&b[0..4]), word(&b[4..8]), word(&b[8..12]), word(&b[12..16])],
            );
        }
        if amd {
            // Fn8000_0005/6: L1 and L2 TLB identifiers (AMD APM vol. 3 appendix E).
            // L1 TLB: entries and associativity (255 = fully associative); L1 caches:
            // size in KiB, associativity, lines per tag, line size.
            let l1 = |g: TlbGeometry| {
                (g.entries.min(255)) | ((if g.ways == g.entries { 255 } else { g.ways }) << 8)
            };
            let d = l1(self.mmu.dtlb_4k);
            let i = l1(self.mmu.itlb);
            let l1d = (cache.l1d.size_kib << 24) | (cache.l1d.ways << 16) | (1 << 8) | 64;
            m.set(
                0x8000_0005,
                None,
                [0, (d << 16) | i, l1d, (32 << 24) | (8 << 16) | (1 << 8) | 64],
            );
            let s = self.mmu.stlb.entries.min(4095);
            let l2 = (cache.l2.size_kib << 16) | (0x6 << 12) | (1 << 8) | 64;
            let l3 = ((cache.llc.size_kib * cache.cores_per_socket / cache.cores_per_llc / 512)
                << 18)
                | (0x6 << 12)
                | (1 << 8)
                | 64;
            m.set(0x8000_0006, None, [0, (0x6 << 28) | (s << 16) | (0x6 << 12) | s, l2, l3]);
        }
        // Fn8000_0008: address sizes; EBX[3] INVLPGB; EDX[15:0] INVLPGB max pages - 1.
        let ebx8 = if c.invlpgb { 1 << 3 } else { 0 };
        let edx8 = if c.invlpgb { c.invlpgb_max_pages - 1 } else { 0 };
        m.set(0x8000_0008, None, [0x3030, ebx8, ncpus.saturating_sub(1) & 0xff, edx8]);
        m
    }
}

fn bits_for(n: u32) -> u32 {
    32 - n.saturating_sub(1).leading_zeros()
}

fn check_cache(g: CacheGeometry) -> Result<(), String> {
    let lines = u64::from(g.size_kib) * 16;
    if g.size_kib == 0 || g.ways == 0 || lines % u64::from(g.ways) != 0 {
        return Err(format!(
            "{} KiB is not a whole number of {}-way sets of 64-byte lines",
            g.size_kib, g.ways
        ));
    }
    if g.ways > emu_mmu::cache::MAX_WAYS {
        return Err(format!("{} ways: at most {} are supported", g.ways, emu_mmu::cache::MAX_WAYS));
    }
    if !(g.latency_cycles >= 0.0 && g.latency_cycles < 10_000.0) {
        return Err("latency_cycles out of range".into());
    }
    Ok(())
}

fn check_geometry(g: TlbGeometry) -> Result<(), String> {
    if g.entries == 0 || g.ways == 0 {
        return Err("entries and ways must be positive".into());
    }
    if g.entries % g.ways != 0 {
        return Err(format!("{} entries are not a multiple of {} ways", g.entries, g.ways));
    }
    let sets = g.entries / g.ways;
    if !sets.is_power_of_two() {
        return Err(format!("{sets} sets is not a power of two"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_validate() {
        for (name, _) in BUILTIN {
            let p = Profile::load(name).unwrap();
            assert_eq!(&p.name, name);
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let text = BUILTIN[0].1.replace("[kernel]", "[kernel]\nbogus = 1");
        let e = Profile::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let text = BUILTIN[0].1.replace(
            "stlb = { entries = 1536, ways = 12 }",
            "stlb = { entries = 1500, ways = 12 }",
        );
        let e = Profile::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("mmu.stlb"), "{e}");
        // A fully associative 1 MiB L2 (16384 ways) is more than the cache arrays model.
        let text = BUILTIN[0]
            .1
            .replace("l2 = { size_kib = 1024, ways = 16,", "l2 = { size_kib = 1024, ways = 16384,");
        let e = Profile::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("at most 64"), "{e}");
        assert!(matches!(Profile::load("nope"), Err(ProfileError::Unknown(..))));
    }

    #[test]
    fn overrides_set_one_parameter_and_are_checked() {
        let base = Profile::load("zen3").unwrap();
        let p = Profile::load("zen3+mmu.invlpgb_receive_cycles=250+kernel.hz=1000").unwrap();
        assert_eq!(p.mmu.invlpgb_receive_cycles, 250.0);
        assert_eq!(p.kernel.hz, 1000);
        let mut q = p.clone();
        q.mmu.invlpgb_receive_cycles = base.mmu.invlpgb_receive_cycles;
        q.kernel.hz = base.kernel.hz;
        assert_eq!(q, base, "nothing else changed");
        let err = |spec: &str| Profile::load(spec).unwrap_err().to_string();
        assert!(err("zen3+mmu.nope=1").contains("mmu.nope"), "{}", err("zen3+mmu.nope=1"));
        assert!(err("zen3+kernel.hz=fast").contains("not of the type integer"));
        assert!(err("zen3+kernel.hz=5").contains("kernel.hz"), "{}", err("zen3+kernel.hz=5"));
        assert!(err("zen3+mmu").contains("KEY=VALUE"));
    }

    #[test]
    fn cpuid_reports_profile_identity() {
        let p = Profile::load("zen3").unwrap();
        let m = p.cpuid(3, 8);
        let l0 = m.query(0, 0);
        assert_eq!(l0[1], u32::from_le_bytes(*b"Auth"));
        let l1 = m.query(1, 0);
        assert_eq!((l1[0] >> 8) & 15, 15);
        assert_eq!((l1[0] >> 20) & 0xff, 0x19 - 15);
        assert_eq!(l1[1] >> 24, 3);
        assert_eq!(m.query(0x8000_0008, 0)[3], 7);
        assert_eq!(l1[2] & (1 << 28), 0, "no AVX");
    }
}
