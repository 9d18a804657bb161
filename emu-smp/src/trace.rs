//! Traces of a run: per-core timelines in the Chrome trace-event JSON format that Perfetto
//! UI opens (a track per core with the task running, flush handlers, waits for acks and
//! idle periods; IPIs as flow arrows from sender to receiver; mm_cpumask weight as a
//! counter), and the kernel's `tlb:tlb_flush` tracepoint in ftrace text format.
//! Timestamps are simulated time.

use crate::machine::Machine;
use serde_json::{json, Value};
use std::fmt::Write;

/// Events recorded during a run.
#[derive(Debug, Default)]
pub struct Trace {
    events: Vec<Value>,
    ftrace: String,
    /// Task slices open per core: (tid, start fp).
    open: Vec<Option<(u32, u64)>>,
    /// Kernel-path slices open per core: (name, start fp).
    kernel: Vec<Option<(String, u64)>>,
    flows: u64,
}

/// tlb_flush reason strings (include/trace/events/tlb.h TLB_FLUSH_REASON).
fn reason_str(r: u8) -> &'static str {
    match r {
        0 => "flush on task switch",
        1 => "remote shootdown",
        2 => "local shootdown",
        3 => "local mm shootdown",
        4 => "remote ipi send",
        _ => "remote wrong CPU",
    }
}

impl Trace {
    /// The Chrome trace-event JSON document.
    pub fn chrome_json(&self, ncores: usize, ghz: f64) -> Value {
        let mut ev = Vec::with_capacity(self.events.len() + ncores + 2);
        ev.push(
            json!({"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "emu machine"}}),
        );
        for c in 0..ncores {
            ev.push(json!({"name": "thread_name", "ph": "M", "pid": 0, "tid": c, "args": {"name": format!("CPU {c}")}}));
        }
        ev.extend(self.events.iter().cloned());
        json!({
            "traceEvents": ev,
            "displayTimeUnit": "ns",
            "otherData": {"clock": "simulated", "ghz": ghz},
        })
    }

    /// The ftrace text of the tlb:tlb_flush events.
    pub fn ftrace_text(&self) -> String {
        let mut s = String::from("# tracer: nop\n#\n#           TASK-PID     CPU#  TIMESTAMP  FUNCTION\n#              | |         |       |         |\n");
        s.push_str(&self.ftrace);
        s
    }
}

impl Machine {
    fn us(&self, t: u64) -> f64 {
        self.ns_of(t) as f64 / 1000.0
    }

    /// A tlb:tlb_flush tracepoint on core `c` (`pages` -1 means TLB_FLUSH_ALL).
    pub(crate) fn trace_flush(&mut self, c: usize, reason: u8, pages: i64) {
        if self.probes.trace.is_none() {
            return;
        }
        let t = self.now(c);
        let ns = self.ns_of(t);
        let (comm, pid) = match self.k.cpus[c].current.and_then(|tid| self.k.tasks.get(&tid)) {
            Some(task) => (task.comm.clone(), task.tid),
            None => ("<idle>".to_string(), 0),
        };
        let us = self.us(t);
        let Some(tr) = self.probes.trace.as_mut() else { return };
        let _ = writeln!(
            tr.ftrace,
            "{:>16}-{:<7} [{:03}] d..2. {:>5}.{:06}: tlb_flush: pages:{} reason:{} ({})",
            comm,
            pid,
            c,
            ns / 1_000_000_000,
            (ns / 1000) % 1_000_000,
            pages,
            reason_str(reason),
            reason
        );
        tr.events.push(
            json!({"name": format!("tlb_flush: {}", reason_str(reason)), "ph": "i", "s": "t",
            "pid": 0, "tid": c, "ts": us, "args": {"pages": pages, "reason": reason}}),
        );
    }

    /// An IPI from `from` (sent at `sent`) to `to` (arriving at `arrival`), as a flow.
    pub(crate) fn trace_ipi(&mut self, from: usize, to: usize, sent: u64, arrival: u64) {
        if self.probes.trace.is_none() {
            return;
        }
        let (a, b) = (self.us(sent), self.us(arrival));
        let Some(tr) = self.probes.trace.as_mut() else { return };
        tr.flows += 1;
        let id = tr.flows;
        tr.events.push(json!({"name": "IPI", "cat": "ipi", "ph": "s", "id": id, "pid": 0, "tid": from, "ts": a}));
        tr.events.push(json!({"name": "IPI", "cat": "ipi", "ph": "f", "bp": "e", "id": id, "pid": 0, "tid": to, "ts": b}));
    }

    /// A complete slice on core `c`.
    pub(crate) fn trace_span(&mut self, c: usize, name: &str, t0: u64, t1: u64) {
        if self.probes.trace.is_none() {
            return;
        }
        let (a, d) = (self.us(t0), self.us(t1) - self.us(t0));
        if let Some(tr) = self.probes.trace.as_mut() {
            tr.events.push(json!({"name": name, "ph": "X", "pid": 0, "tid": c, "ts": a, "dur": d}));
        }
    }

    /// Core `c` enters (or resumes) a kernel path named `name`: its slice runs until the
    /// core returns to user mode or leaves the task (sleeping in the path, exiting).
    pub(crate) fn trace_kernel_begin(&mut self, c: usize, name: impl FnOnce() -> String) {
        if self.probes.trace.is_none() {
            return;
        }
        let t = self.now(c);
        let n = self.hw.cpus.len();
        if let Some(tr) = self.probes.trace.as_mut() {
            if tr.kernel.len() < n {
                tr.kernel.resize(n, None);
            }
            if tr.kernel[c].is_none() {
                tr.kernel[c] = Some((name(), t));
            }
        }
    }

    /// Core `c` leaves the kernel path it was in.
    pub(crate) fn trace_kernel_end(&mut self, c: usize) {
        let open = self.probes.trace.as_mut().and_then(|tr| tr.kernel.get_mut(c)?.take());
        if let Some((name, t0)) = open {
            let t1 = self.now(c);
            self.trace_span(c, &name, t0, t1);
        }
    }

    /// An instant event on core `c`.
    pub(crate) fn trace_instant(&mut self, c: usize, name: impl FnOnce() -> String) {
        if self.probes.trace.is_none() {
            return;
        }
        let ts = self.us(self.now(c));
        let name = name();
        if let Some(tr) = self.probes.trace.as_mut() {
            tr.events
                .push(json!({"name": name, "ph": "i", "s": "t", "pid": 0, "tid": c, "ts": ts}));
        }
    }

    /// An idle period on core `c`.
    pub(crate) fn trace_idle(&mut self, c: usize, t0: u64, t1: u64, state: &str) {
        if self.probes.trace.is_some() {
            self.trace_span(c, &format!("idle ({state})"), t0, t1);
        }
    }

    /// The mm_cpumask weight counter.
    pub(crate) fn trace_counter(&mut self, c: usize, mm: u32, w: u32) {
        if self.probes.trace.is_none() {
            return;
        }
        let ts = self.us(self.now(c));
        if let Some(tr) = self.probes.trace.as_mut() {
            tr.events.push(json!({"name": format!("mm_cpumask weight (mm {mm})"), "ph": "C", "pid": 0, "ts": ts, "args": {"cpus": w}}));
        }
    }

    /// A task starts running on core `c`.
    pub(crate) fn trace_task_begin(&mut self, c: usize, tid: u32) {
        if self.probes.trace.is_none() {
            return;
        }
        let t = self.hw.cpus[c].time_fp;
        let n = self.hw.cpus.len();
        if let Some(tr) = self.probes.trace.as_mut() {
            if tr.open.len() < n {
                tr.open.resize(n, None);
            }
            tr.open[c] = Some((tid, t));
        }
    }

    /// The task on core `c` stops running.
    pub(crate) fn trace_task_end(&mut self, c: usize, tid: u32) {
        if self.probes.trace.is_none() {
            return;
        }
        let t1 = self.now(c);
        let comm = self.k.tasks.get(&tid).map(|t| t.comm.clone()).unwrap_or_default();
        let start =
            self.probes.trace.as_mut().and_then(|tr| tr.open.get_mut(c).and_then(Option::take));
        if let Some((_, t0)) = start {
            let (a, d) = (self.us(t0), self.us(t1) - self.us(t0));
            if let Some(tr) = self.probes.trace.as_mut() {
                tr.events.push(json!({"name": format!("{comm} [{tid}]"), "cat": "task", "ph": "X", "pid": 0, "tid": c, "ts": a, "dur": d}));
            }
        }
    }
}
