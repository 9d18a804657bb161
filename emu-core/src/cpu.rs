//! Architectural register state of one x86-64 core, and the reasons execution stops.

use crate::flags::{Flags, STATUS};
use crate::mem::PageFault;
use crate::x87::X87;

/// Index of the always-zero pseudo register used for absent base/index registers.
pub const NOREG: u8 = 16;
/// Marks an 8-bit register operand as the high byte (AH, CH, DH, BH) of register `r & 3`.
pub const HI8: u8 = 0x80;

/// Segment-base slot: no segment base.
pub const SEG_NONE: u8 = 0;
/// Segment-base slot: FS.
pub const SEG_FS: u8 = 1;
/// Segment-base slot: GS.
pub const SEG_GS: u8 = 2;

/// Architectural exceptions other than page faults (Intel SDM vol. 3 §6.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// #DE: divide error.
    DivideError,
    /// #UD: invalid opcode.
    InvalidOpcode,
    /// #GP(0): general protection (e.g. misaligned MOVAPS, privileged instruction).
    GeneralProtection,
    /// #BP: INT3.
    Breakpoint,
    /// #DB raised by INT1 (ICEBP), a trap.
    Debug,
    /// #MF: unmasked x87 floating-point exception.
    X87Fp,
    /// #XM: unmasked SIMD floating-point exception.
    SimdFp,
}

impl std::fmt::Display for Exception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Exception::DivideError => "divide error (#DE)",
            Exception::InvalidOpcode => "invalid opcode (#UD)",
            Exception::GeneralProtection => "general protection fault (#GP)",
            Exception::Breakpoint => "breakpoint (#BP)",
            Exception::Debug => "debug trap (#DB, INT1)",
            Exception::X87Fp => "x87 floating-point exception (#MF)",
            Exception::SimdFp => "SIMD floating-point exception (#XM)",
        })
    }
}

/// Why a core stopped executing guest instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// SYSCALL executed: RIP is past it, RCX and R11 hold the return RIP and RFLAGS.
    Syscall,
    /// INT 0x80 executed (the 32-bit system call gate): RIP is past it.
    Int80,
    /// A translation failed; RIP is the faulting instruction.
    PageFault(PageFault),
    /// An exception; RIP is the faulting instruction (after it, for #BP).
    Exception(Exception),
    /// HLT.
    Halt,
    /// A valid instruction this emulator does not implement; RIP is that instruction.
    Unsupported,
    /// The cycle budget of this run is used up.
    Budget,
    /// PAUSE in a spin loop: a hint that this core is waiting on another.
    Pause,
    /// Internal: leave the current basic block and continue at RIP.
    BlockEnd,
}

impl From<PageFault> for Exit {
    #[inline(always)]
    fn from(pf: PageFault) -> Self {
        Exit::PageFault(pf)
    }
}

/// CPUID answers for one core, set up by the machine from its profile.
#[derive(Clone, Debug, Default)]
pub struct CpuidModel {
    entries: Vec<(u32, u32, [u32; 4])>,
    /// Leaves whose answer does not depend on ECX.
    leaf_only: Vec<u32>,
}

impl CpuidModel {
    /// Sets the answer (EAX, EBX, ECX, EDX) for `leaf`; `subleaf: None` means any ECX.
    pub fn set(&mut self, leaf: u32, subleaf: Option<u32>, regs: [u32; 4]) {
        let sub = subleaf.unwrap_or(0);
        if subleaf.is_none() && !self.leaf_only.contains(&leaf) {
            self.leaf_only.push(leaf);
        }
        match self.entries.iter_mut().find(|e| e.0 == leaf && e.1 == sub) {
            Some(e) => e.2 = regs,
            None => self.entries.push((leaf, sub, regs)),
        }
    }

    /// The answer to CPUID(leaf, subleaf). Leaves above the maximum report zeros, as
    /// documented for AMD; Intel would repeat the highest basic leaf.
    pub fn query(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        let sub = if self.leaf_only.contains(&leaf) { 0 } else { subleaf };
        self.entries.iter().find(|e| e.0 == leaf && e.1 == sub).map_or([0; 4], |e| e.2)
    }
}

/// Register state of one core.
#[derive(Clone, Debug)]
pub struct Cpu {
    /// RAX..R15 in encoding order; index 16 ([`NOREG`]) is always zero. 32 slots so that
    /// masked indices need no bounds check.
    pub gpr: [u64; 32],
    /// Instruction pointer.
    pub rip: u64,
    /// Arithmetic status flags.
    pub flags: Flags,
    /// Direction flag.
    pub df: bool,
    /// RFLAGS bits other than the status flags and DF (IF, AC, ID, reserved bit 1).
    pub rflags_other: u64,
    /// Segment bases indexed by [`SEG_NONE`], [`SEG_FS`], [`SEG_GS`].
    pub seg_base: [u64; 3],
    /// Segment selectors ES, CS, SS, DS, FS, GS (in encoding order) as Linux sets them
    /// for a 64-bit process: CS = 0x33 (`__USER_CS`), SS = 0x2b (`__USER_DS`), the
    /// others null. Only the selector values live here: in 64-bit mode the ES, CS, SS and
    /// DS bases are 0 and the FS and GS bases are in [`Cpu::seg_base`].
    pub sel: [u16; 6],
    /// XMM0..XMM15.
    pub xmm: [u128; 16],
    /// SSE control and status.
    pub mxcsr: u32,
    /// x87 floating-point unit.
    pub fpu: X87,
    /// Local time in 1/256 cycle units.
    pub time_fp: u64,
    /// Instructions retired.
    pub instret: u64,
    /// CPUID answers.
    pub cpuid: CpuidModel,
    /// Value RDTSCP returns in ECX (IA32_TSC_AUX: Linux puts node << 12 | cpu there).
    pub tsc_aux: u32,
    /// The horizon of the current run ([`crate::run`]): no instruction, and no iteration
    /// of a repeated string instruction, starts at or after it.
    pub until_fp: u64,
}

/// The segment selectors of a 64-bit Linux process at exec: see [`Cpu::sel`].
pub const USER_SELECTORS: [u16; 6] = [0, 0x33, 0x2b, 0, 0, 0];

/// RFLAGS bit: direction.
pub const DF_BIT: u64 = 1 << 10;
/// RFLAGS bits a user program may change with POPF (status, DF, AC, ID; not IF, IOPL).
pub const USER_RFLAGS_WRITABLE: u64 = STATUS | DF_BIT | (1 << 18) | (1 << 21) | (1 << 8);

impl Default for Cpu {
    fn default() -> Self {
        Cpu {
            gpr: [0; 32],
            rip: 0,
            flags: Flags::default(),
            df: false,
            rflags_other: 0x202,
            seg_base: [0; 3],
            sel: USER_SELECTORS,
            xmm: [0; 16],
            mxcsr: 0x1f80,
            fpu: X87::default(),
            time_fp: 0,
            instret: 0,
            cpuid: CpuidModel::default(),
            tsc_aux: 0,
            until_fp: u64::MAX,
        }
    }
}

impl Cpu {
    /// Current cycle count of this core.
    #[inline(always)]
    pub fn cycles(&self) -> u64 {
        self.time_fp >> 8
    }

    /// Advances local time by whole cycles.
    #[inline(always)]
    pub fn add_cycles(&mut self, c: u64) {
        self.time_fp += c << 8;
    }

    /// RFLAGS as the guest would see it with PUSHF.
    pub fn rflags(&self) -> u64 {
        self.flags.status() | if self.df { DF_BIT } else { 0 } | self.rflags_other | 2
    }

    /// Loads RFLAGS; only bits in `writable` change.
    pub fn set_rflags(&mut self, v: u64, writable: u64) {
        let cur = self.rflags();
        let new = (cur & !writable) | (v & writable);
        self.flags.set_status(new & STATUS);
        self.df = new & DF_BIT != 0;
        self.rflags_other = new & !(STATUS | DF_BIT) | 2;
    }

    /// Register `r` (0..15) read as 64 bits.
    #[inline(always)]
    pub fn reg(&self, r: usize) -> u64 {
        self.gpr[r & 31]
    }

    /// Writes register `r` (0..15) as 64 bits.
    #[inline(always)]
    pub fn set_reg(&mut self, r: usize, v: u64) {
        self.gpr[r & 15] = v;
    }
}

impl Cpu {
    /// The 512-byte FXSAVE image of the x87, MXCSR and XMM state (64-bit layout, Intel
    /// SDM vol. 2 "FXSAVE", table 3-53); used for signal frames.
    pub fn fxsave_image(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..2].copy_from_slice(&self.fpu.cw.to_le_bytes());
        b[2..4].copy_from_slice(&self.fpu.status_word().to_le_bytes());
        // Abridged tag word: one bit per physical register, set when valid.
        b[4] = !self.fpu.empty;
        b[24..28].copy_from_slice(&self.mxcsr.to_le_bytes());
        b[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
        for k in 0..8u8 {
            let v = self.fpu.regs[self.fpu.phys(k)] & ((1u128 << 80) - 1);
            let o = 32 + 16 * k as usize;
            b[o..o + 16].copy_from_slice(&v.to_le_bytes());
        }
        for (k, x) in self.xmm.iter().enumerate() {
            b[160 + 16 * k..176 + 16 * k].copy_from_slice(&x.to_le_bytes());
        }
        b
    }

    /// Loads state from an FXSAVE image; false (and nothing changed) if MXCSR has
    /// reserved bits set.
    pub fn fxrstor_image(&mut self, b: &[u8; 512]) -> bool {
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let mx = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
        if mx & !0xffff != 0 {
            return false;
        }
        let sw = u16_at(2);
        self.fpu.set_cw(u16_at(0));
        self.fpu.sw = sw & !(7 << 11);
        self.fpu.top = ((sw >> 11) & 7) as u8;
        self.fpu.empty = !b[4];
        for k in 0..8u8 {
            let o = 32 + 16 * k as usize;
            let mut r = [0u8; 16];
            r.copy_from_slice(&b[o..o + 16]);
            let p = self.fpu.phys(k);
            self.fpu.regs[p] = u128::from_le_bytes(r) & ((1u128 << 80) - 1);
        }
        for k in 0..16 {
            let mut r = [0u8; 16];
            r.copy_from_slice(&b[160 + 16 * k..176 + 16 * k]);
            self.xmm[k] = u128::from_le_bytes(r);
        }
        self.mxcsr = mx;
        true
    }
}
