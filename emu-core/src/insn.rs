//! The decoded instruction: a `Copy` record with its handler resolved at decode time and
//! its operands pre-extracted, so that executing it reads no iced-x86 state.

use crate::cpu::{Cpu, Exit, HI8};
use crate::mem::{GuestMem, PageFault};

/// Handler of one instruction form.
pub type ExecFn<M> = fn(&mut Cpu, &mut M, &Insn<M>) -> Result<(), Exit>;

/// `Insn::flags`: the effective address is computed modulo 2^32 (0x67 prefix).
pub const F_ADDR32: u8 = 1;
/// `Insn::flags`: REP/REPE prefix.
pub const F_REP: u8 = 2;
/// `Insn::flags`: REPNE prefix.
pub const F_REPNE: u8 = 4;
/// `Insn::flags`: LOCK prefix.
pub const F_LOCK: u8 = 8;

/// One decoded instruction.
pub struct Insn<M> {
    /// The handler.
    pub exec: ExecFn<M>,
    /// Address of the next instruction.
    pub next_rip: u64,
    /// Immediate operand, or branch target for relative branches.
    pub imm: u64,
    /// Displacement of the memory operand (absolute address when RIP-relative).
    pub disp: u64,
    /// Base register of the memory operand, or [`crate::cpu::NOREG`].
    pub base: u8,
    /// Index register of the memory operand, or [`crate::cpu::NOREG`].
    pub index: u8,
    /// log2 of the index scale.
    pub scale: u8,
    /// Segment-base slot of the memory operand.
    pub seg: u8,
    /// First register operand (GPR number, XMM number or ST(i) index).
    pub r0: u8,
    /// Second register operand.
    pub r1: u8,
    /// Third register operand.
    pub r2: u8,
    /// Length in bytes.
    pub len: u8,
    /// Condition code, or a handler-specific sub-operation.
    pub cc: u8,
    /// Width index of the operation (0 = 8 bits ... 3 = 64 bits) where one applies.
    pub sz: u8,
    /// `F_*` bits.
    pub flags: u8,
    /// Cost in 1/256 cycles, from the profile's instruction cost table.
    pub cost: u16,
    /// The iced-x86 `Code` (for diagnostics and handlers that serve several forms).
    pub code: u16,
}

impl<M> Clone for Insn<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Insn<M> {}

impl<M> Insn<M> {
    /// Address of this instruction.
    #[inline(always)]
    pub fn rip(&self) -> u64 {
        self.next_rip.wrapping_sub(u64::from(self.len))
    }

    /// Effective (linear) address of the memory operand.
    #[inline(always)]
    pub fn ea(&self, cpu: &Cpu) -> u64 {
        let mut off = self
            .disp
            .wrapping_add(cpu.gpr[self.base as usize & 31])
            .wrapping_add(cpu.gpr[self.index as usize & 31] << self.scale);
        if self.flags & F_ADDR32 != 0 {
            off &= 0xffff_ffff;
        }
        off.wrapping_add(cpu.seg_base[self.seg as usize % 3])
    }
}

/// An operand width, used to instantiate handlers per size.
pub trait Width {
    /// Width index (0..3).
    const SZ: u8;
    /// Reads a register operand (GPR number, or [`HI8`] | n for AH..BH).
    fn get(cpu: &Cpu, r: u8) -> u64;
    /// Writes a register operand with the architectural merge rule (32-bit writes zero
    /// the upper half; 8- and 16-bit writes preserve the rest).
    fn set(cpu: &mut Cpu, r: u8, v: u64);
    /// Reads memory.
    fn load<M: GuestMem>(m: &mut M, va: u64) -> Result<u64, PageFault>;
    /// Writes memory.
    fn store<M: GuestMem>(m: &mut M, va: u64, v: u64) -> Result<(), PageFault>;
}

/// 8-bit operands.
pub struct W8;
/// 16-bit operands.
pub struct W16;
/// 32-bit operands.
pub struct W32;
/// 64-bit operands.
pub struct W64;

impl Width for W8 {
    const SZ: u8 = 0;
    #[inline(always)]
    fn get(cpu: &Cpu, r: u8) -> u64 {
        if r & HI8 != 0 {
            (cpu.gpr[(r & 3) as usize] >> 8) & 0xff
        } else {
            cpu.gpr[(r & 31) as usize] & 0xff
        }
    }
    #[inline(always)]
    fn set(cpu: &mut Cpu, r: u8, v: u64) {
        if r & HI8 != 0 {
            let g = &mut cpu.gpr[(r & 3) as usize];
            *g = (*g & !0xff00) | ((v & 0xff) << 8);
        } else {
            let g = &mut cpu.gpr[(r & 15) as usize];
            *g = (*g & !0xff) | (v & 0xff);
        }
    }
    #[inline(always)]
    fn load<M: GuestMem>(m: &mut M, va: u64) -> Result<u64, PageFault> {
        m.read_u8(va).map(u64::from)
    }
    #[inline(always)]
    fn store<M: GuestMem>(m: &mut M, va: u64, v: u64) -> Result<(), PageFault> {
        m.write_u8(va, v as u8)
    }
}

impl Width for W16 {
    const SZ: u8 = 1;
    #[inline(always)]
    fn get(cpu: &Cpu, r: u8) -> u64 {
        cpu.gpr[(r & 31) as usize] & 0xffff
    }
    #[inline(always)]
    fn set(cpu: &mut Cpu, r: u8, v: u64) {
        let g = &mut cpu.gpr[(r & 15) as usize];
        *g = (*g & !0xffff) | (v & 0xffff);
    }
    #[inline(always)]
    fn load<M: GuestMem>(m: &mut M, va: u64) -> Result<u64, PageFault> {
        m.read_u16(va).map(u64::from)
    }
    #[inline(always)]
    fn store<M: GuestMem>(m: &mut M, va: u64, v: u64) -> Result<(), PageFault> {
        m.write_u16(va, v as u16)
    }
}

impl Width for W32 {
    const SZ: u8 = 2;
    #[inline(always)]
    fn get(cpu: &Cpu, r: u8) -> u64 {
        cpu.gpr[(r & 31) as usize] & 0xffff_ffff
    }
    #[inline(always)]
    fn set(cpu: &mut Cpu, r: u8, v: u64) {
        cpu.gpr[(r & 15) as usize] = v & 0xffff_ffff;
    }
    #[inline(always)]
    fn load<M: GuestMem>(m: &mut M, va: u64) -> Result<u64, PageFault> {
        m.read_u32(va).map(u64::from)
    }
    #[inline(always)]
    fn store<M: GuestMem>(m: &mut M, va: u64, v: u64) -> Result<(), PageFault> {
        m.write_u32(va, v as u32)
    }
}

impl Width for W64 {
    const SZ: u8 = 3;
    #[inline(always)]
    fn get(cpu: &Cpu, r: u8) -> u64 {
        cpu.gpr[(r & 31) as usize]
    }
    #[inline(always)]
    fn set(cpu: &mut Cpu, r: u8, v: u64) {
        cpu.gpr[(r & 15) as usize] = v;
    }
    #[inline(always)]
    fn load<M: GuestMem>(m: &mut M, va: u64) -> Result<u64, PageFault> {
        m.read_u64(va)
    }
    #[inline(always)]
    fn store<M: GuestMem>(m: &mut M, va: u64, v: u64) -> Result<(), PageFault> {
        m.write_u64(va, v)
    }
}

/// Operand location kinds used as const-generic parameters of handlers.
pub mod loc {
    /// Register operand.
    pub const REG: u8 = 0;
    /// Memory operand.
    pub const MEM: u8 = 1;
    /// Immediate operand.
    pub const IMM: u8 = 2;
}
