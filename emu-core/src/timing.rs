//! Per-instruction cost classes. A core's time advances by its instructions' class costs
//! (reciprocal throughputs, in cycles, from the machine profile) plus the stalls the
//! memory system and kernel model charge. This is an interval-style model: no pipeline,
//! no branch prediction, no out-of-order overlap beyond what the class costs average in.

/// Cost classes of instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CostClass {
    /// Simple integer ALU, moves, LEA, SETcc, CMOVcc.
    Alu,
    /// Taken-or-not branches, calls, returns.
    Branch,
    /// Integer multiply.
    Mul,
    /// 32-bit (or narrower) integer divide.
    Div32,
    /// 64-bit integer divide.
    Div64,
    /// One iteration of a string instruction.
    StringIter,
    /// SSE integer, logic and shuffle operations, and SSE moves.
    SseInt,
    /// SSE FP add, compare, convert, min/max.
    SseFp,
    /// SSE FP multiply.
    SseMul,
    /// SSE FP divide and square root.
    SseDiv,
    /// x87 load/store/add/mul/compare.
    X87,
    /// x87 divide and square root.
    X87Div,
    /// x87 transcendental instructions.
    X87Transcendental,
    /// LOCK-prefixed read-modify-write and XCHG with memory.
    Locked,
    /// Serializing instructions (CPUID) and fences.
    Serializing,
    /// RDTSC and RDTSCP.
    Rdtsc,
    /// The SYSCALL instruction itself (kernel entry/exit is charged by the kernel model).
    Syscall,
    /// PAUSE.
    Pause,
}

/// Number of cost classes.
pub const NUM_CLASSES: usize = CostClass::Pause as usize + 1;

/// Instruction costs in cycles, one per class, plus the extra cost of a memory operand.
#[derive(Clone, Debug, PartialEq)]
pub struct InsnCosts {
    /// Cycles per instruction of each class, indexed by `CostClass as usize`.
    pub class_cycles: [f64; NUM_CLASSES],
    /// Extra cycles for an instruction with a memory operand (address generation and an
    /// L1 hit; misses are charged by the memory system).
    pub mem_operand_cycles: f64,
}

impl Default for InsnCosts {
    /// A generic out-of-order core: reciprocal throughputs typical of Skylake-class cores
    /// (Intel Optimization Reference Manual, Agner Fog's tables used as a cross-check).
    fn default() -> Self {
        let mut c = [0.0; NUM_CLASSES];
        c[CostClass::Alu as usize] = 0.35;
        c[CostClass::Branch as usize] = 0.6;
        c[CostClass::Mul as usize] = 1.0;
        c[CostClass::Div32 as usize] = 26.0;
        c[CostClass::Div64 as usize] = 42.0;
        c[CostClass::StringIter as usize] = 1.0;
        c[CostClass::SseInt as usize] = 0.4;
        c[CostClass::SseFp as usize] = 0.6;
        c[CostClass::SseMul as usize] = 0.6;
        c[CostClass::SseDiv as usize] = 5.0;
        c[CostClass::X87 as usize] = 1.0;
        c[CostClass::X87Div as usize] = 15.0;
        c[CostClass::X87Transcendental as usize] = 60.0;
        c[CostClass::Locked as usize] = 18.0;
        c[CostClass::Serializing as usize] = 100.0;
        c[CostClass::Rdtsc as usize] = 25.0;
        c[CostClass::Syscall as usize] = 1.0;
        c[CostClass::Pause as usize] = 140.0;
        InsnCosts { class_cycles: c, mem_operand_cycles: 0.5 }
    }
}

impl InsnCosts {
    /// Fixed-point (1/256 cycle) cost of an instruction of `class`, with or without a
    /// memory operand. Saturates at the largest representable cost.
    pub fn fixed(&self, class: CostClass, mem: bool) -> u16 {
        let mut c = self.class_cycles[class as usize];
        if mem {
            c += self.mem_operand_cycles;
        }
        (c * 256.0).round().clamp(0.0, f64::from(u16::MAX)) as u16
    }
}
