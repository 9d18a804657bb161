//! A set of CPUs (Linux `struct cpumask`), as a fixed-size bitmap of 64-bit words.
//! Hand-rolled rather than `bitvec`: it is a handful of word operations on the flush
//! path, and iteration order (ascending CPU number) must be deterministic.

use std::fmt::Write;

/// A set of CPU numbers below the machine's core count.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CpuMask {
    words: Vec<u64>,
    n: usize,
}

impl CpuMask {
    /// An empty mask for `n` CPUs.
    pub fn new(n: usize) -> Self {
        CpuMask { words: vec![0; n.div_ceil(64).max(1)], n }
    }

    /// A mask with every one of `n` CPUs set.
    pub fn full(n: usize) -> Self {
        let mut m = CpuMask::new(n);
        for c in 0..n {
            m.set(c);
        }
        m
    }

    /// Adds a CPU.
    #[inline]
    pub fn set(&mut self, c: usize) {
        self.words[c / 64] |= 1 << (c % 64);
    }

    /// Removes a CPU.
    #[inline]
    pub fn clear(&mut self, c: usize) {
        self.words[c / 64] &= !(1 << (c % 64));
    }

    /// True when the CPU is in the set.
    #[inline]
    pub fn test(&self, c: usize) -> bool {
        self.words[c / 64] & (1 << (c % 64)) != 0
    }

    /// Number of CPUs in the set (cpumask_weight).
    pub fn weight(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.n).filter(move |&c| self.test(c))
    }

    /// True when some CPU other than `c` is set (cpumask_any_but < nr_cpu_ids).
    pub fn any_but(&self, c: usize) -> bool {
        self.iter().any(|x| x != c)
    }

    /// As booleans, one per CPU.
    pub fn to_bools(&self) -> Vec<bool> {
        (0..self.n).map(|c| self.test(c)).collect()
    }

    /// Linux list format, e.g. "0-3,8".
    pub fn to_list(&self) -> String {
        let mut out = String::new();
        let mut c = 0;
        while c < self.n {
            if self.test(c) {
                let s = c;
                while c + 1 < self.n && self.test(c + 1) {
                    c += 1;
                }
                if !out.is_empty() {
                    out.push(',');
                }
                if s == c {
                    let _ = write!(out, "{s}");
                } else {
                    let _ = write!(out, "{s}-{c}");
                }
            }
            c += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_clear_weight_list() {
        let mut m = CpuMask::new(130);
        for c in [0, 1, 2, 64, 129] {
            m.set(c);
        }
        assert_eq!(m.weight(), 5);
        assert_eq!(m.to_list(), "0-2,64,129");
        m.clear(1);
        assert!(!m.test(1) && m.test(2));
        assert!(m.any_but(0));
        let mut one = CpuMask::new(4);
        one.set(2);
        assert!(!one.any_but(2));
        assert_eq!(CpuMask::full(3).to_list(), "0-2");
    }
}
