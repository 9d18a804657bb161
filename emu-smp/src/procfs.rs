//! Synthesized /proc and /sys files: their contents are generated from the model's
//! state when opened (a snapshot, like a single read of the real file).

use crate::machine::Machine;
use crate::mm::{VmaKind, PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::task::State;
use std::fmt::Write;

/// Formats a CPU set as a Linux list ("0-3,5").
pub fn cpu_list(bits: &[bool]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < bits.len() {
        if bits[i] {
            let s = i;
            while i + 1 < bits.len() && bits[i + 1] {
                i += 1;
            }
            if !out.is_empty() {
                out.push(',');
            }
            if s == i {
                let _ = write!(out, "{s}");
            } else {
                let _ = write!(out, "{s}-{i}");
            }
        }
        i += 1;
    }
    out
}

/// Formats a CPU set as the comma-separated 32-bit hex words of /proc status files.
pub fn cpu_mask_hex(bits: &[bool]) -> String {
    let words = bits.len().div_ceil(32).max(1);
    let mut parts = Vec::new();
    for w in (0..words).rev() {
        let mut v = 0u32;
        for b in 0..32 {
            if bits.get(w * 32 + b).copied().unwrap_or(false) {
                v |= 1 << b;
            }
        }
        parts.push(format!("{v:08x}"));
    }
    parts.join(",")
}

impl Machine {
    /// The contents of a synthesized file as seen by `tid`.
    pub(crate) fn synthesize(&self, tid: u32, path: &str) -> Vec<u8> {
        let n = self.hw.cpus.len();
        match path {
            "/sys/devices/system/cpu/online" | "/sys/devices/system/cpu/possible" => {
                format!("{}\n", cpu_list(&vec![true; n])).into_bytes()
            }
            "/proc/self/status" => self.proc_status(tid).into_bytes(),
            "/proc/self/maps" => self.proc_maps(tid).into_bytes(),
            // The machine's file systems: a read-only root (the sandbox writes nothing)
            // and proc.
            "/proc/mounts" | "/proc/self/mounts" => {
                b"/dev/root / ext4 ro,relatime 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
                    .to_vec()
            }
            "/proc/self/cmdline" => {
                let mut v = Vec::new();
                let exe = self.k.mms.get(&self.mm_of(tid)).and_then(|m| m.exe.clone());
                for a in exe.as_ref().map_or(&self.k.argv, |e| &e.argv) {
                    v.extend_from_slice(a);
                    v.push(0);
                }
                v
            }
            // The task's name (comm_show): execve sets it, prctl(PR_SET_NAME) too.
            "/proc/self/comm" => {
                let comm = self.k.tasks.get(&tid).map(|t| t.comm.clone()).unwrap_or_default();
                format!("{comm}\n").into_bytes()
            }
            "/proc/self/stat" => {
                let t = self.k.tasks.get(&tid);
                let (pid, ppid, comm) =
                    t.map_or((0, 0, String::new()), |t| (t.tgid, t.ppid, t.comm.clone()));
                format!(
                    "{pid} ({comm}) R {ppid} {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 0 0 0\n"
                )
                .into_bytes()
            }
            "/proc/cpuinfo" => {
                let mut s = String::new();
                for k in 0..n {
                    let _ = writeln!(
                        s,
                        "processor\t: {k}\nvendor_id\t: {}\nmodel name\t: {}\ncpu MHz\t\t: {}.000\n",
                        self.profile.cpu.vendor, self.profile.cpu.brand, self.profile.cpu.freq_mhz
                    );
                }
                s.into_bytes()
            }
            _ => Vec::new(),
        }
    }

    /// /proc/self/status, including Cpus_active_mm and Cpus_active_mm_list (seed 000):
    /// the mm_cpumask of the task's address space.
    fn proc_status(&self, tid: u32) -> String {
        let Some(t) = self.k.tasks.get(&tid) else { return String::new() };
        let threads =
            self.k.tasks.values().filter(|o| o.tgid == t.tgid && o.state != State::Zombie).count();
        let mm = self.k.mms.get(&t.mm);
        let rss_kb = mm.map_or(0, |m| m.rss * 4);
        let vm_kb: u64 = mm.map_or(0, |m| m.vmas.values().map(|v| (v.end - v.start) / 1024).sum());
        let active = self.mm_cpumask(t.mm);
        let mut s = String::new();
        let _ = writeln!(s, "Name:\t{}", t.comm);
        let _ = writeln!(s, "State:\tR (running)");
        let _ = writeln!(s, "Tgid:\t{}", t.tgid);
        let _ = writeln!(s, "Pid:\t{}", t.tid);
        let _ = writeln!(s, "PPid:\t{}", t.ppid);
        let _ = writeln!(s, "Uid:\t{0}\t{0}\t{0}\t{0}", self.k.uid);
        let _ = writeln!(s, "Gid:\t{0}\t{0}\t{0}\t{0}", self.k.gid);
        let _ = writeln!(s, "VmSize:\t{vm_kb:8} kB");
        let _ = writeln!(s, "VmRSS:\t{rss_kb:8} kB");
        let _ = writeln!(s, "VmPTE:\t{:8} kB", mm.map_or(0, |m| m.table_pages * 4));
        let _ = writeln!(s, "Threads:\t{threads}");
        let _ = writeln!(s, "SigBlk:\t{:016x}", t.sigmask);
        let _ = writeln!(s, "Cpus_allowed:\t{}", cpu_mask_hex(&t.affinity));
        let _ = writeln!(s, "Cpus_allowed_list:\t{}", cpu_list(&t.affinity));
        let _ = writeln!(s, "Cpus_active_mm:\t{}", cpu_mask_hex(&active));
        let _ = writeln!(s, "Cpus_active_mm_list:\t{}", cpu_list(&active));
        s
    }

    fn proc_maps(&self, tid: u32) -> String {
        let Some(mm) = self.k.tasks.get(&tid).and_then(|t| self.k.mms.get(&t.mm)) else {
            return String::new();
        };
        let mut s = String::new();
        for v in mm.vmas.values() {
            let p = |b: u8, c: char| if v.prot & b != 0 { c } else { '-' };
            let name = match v.kind {
                VmaKind::Stack => "[stack]",
                VmaKind::Heap => "[heap]",
                VmaKind::Vdso => "[vdso]",
                VmaKind::Image => mm.exe.as_ref().map_or(self.k.exe_path.as_str(), |e| &e.path),
                VmaKind::Anon => "",
            };
            let _ = writeln!(
                s,
                "{:08x}-{:08x} {}{}{}{} 00000000 00:00 0 {}",
                v.start,
                v.end,
                p(PROT_READ, 'r'),
                p(PROT_WRITE, 'w'),
                p(PROT_EXEC, 'x'),
                if v.shared { 's' } else { 'p' },
                name
            );
        }
        // The vsyscall page, execute-only (vsyscall=xonly), as Linux's gate VMA.
        let _ = writeln!(s, "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]");
        s
    }

    /// The mm_cpumask of an address space: the cores whose TLBs may hold its entries.
    pub(crate) fn mm_cpumask(&self, mmid: u32) -> Vec<bool> {
        match self.k.strategy.cpumask.everyone() {
            true => vec![true; self.hw.cpus.len()],
            false => self
                .k
                .mms
                .get(&mmid)
                .map_or_else(|| vec![false; self.hw.cpus.len()], |m| m.ctx.cpumask.to_bools()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_masks() {
        assert_eq!(cpu_list(&[true, true, true, false, true]), "0-2,4");
        assert_eq!(cpu_list(&[false, true]), "1");
        assert_eq!(cpu_mask_hex(&[true, false, true]), "00000005");
        let mut v = vec![false; 40];
        v[33] = true;
        assert_eq!(cpu_mask_hex(&v), "00000002,00000000");
    }
}
