//! Control transfer and stack instructions. Each writes RIP last, after every access
//! that can fault, so a fault restarts the instruction cleanly.

use crate::cpu::{Cpu, Exit, USER_RFLAGS_WRITABLE};
use crate::insn::{loc::*, Insn, Width};
use crate::mem::GuestMem;

/// JMP rel.
pub fn jmp<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    cpu.rip = i.imm;
    Ok(())
}

/// JMP r/m64.
pub fn jmp_ind<M: GuestMem, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    cpu.rip = if S == REG { cpu.gpr[i.r0 as usize & 15] } else { m.read_u64(i.ea(cpu))? };
    Ok(())
}

/// Jcc rel.
pub fn jcc<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    if cpu.flags.cond(i.cc) {
        cpu.rip = i.imm;
    }
    Ok(())
}

/// Counter-branch selectors.
pub mod lp {
    /// JRCXZ / JECXZ (`Insn::sz` says which).
    pub const JRCXZ: u8 = 0;
    /// LOOP.
    pub const LOOP: u8 = 1;
    /// LOOPE.
    pub const LOOPE: u8 = 2;
    /// LOOPNE.
    pub const LOOPNE: u8 = 3;
}

/// JRCXZ, LOOP, LOOPE, LOOPNE (64- or 32-bit counter by `Insn::sz`).
pub fn loopcc<M: GuestMem, const OP: u8>(
    cpu: &mut Cpu,
    _m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let m = if i.sz == 3 { u64::MAX } else { 0xffff_ffff };
    let taken = if OP == lp::JRCXZ {
        cpu.gpr[1] & m == 0
    } else {
        let c = cpu.gpr[1].wrapping_sub(1) & m;
        cpu.gpr[1] = c;
        c != 0
            && match OP {
                lp::LOOPE => cpu.flags.zf(),
                lp::LOOPNE => !cpu.flags.zf(),
                _ => true,
            }
    };
    if taken {
        cpu.rip = i.imm;
    }
    Ok(())
}

#[inline(always)]
fn push64<M: GuestMem>(cpu: &mut Cpu, m: &mut M, v: u64) -> Result<(), Exit> {
    let sp = cpu.gpr[4].wrapping_sub(8);
    m.write_u64(sp, v)?;
    cpu.gpr[4] = sp;
    Ok(())
}

/// CALL rel.
pub fn call<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    push64(cpu, m, i.next_rip)?;
    cpu.rip = i.imm;
    Ok(())
}

/// CALL r/m64.
pub fn call_ind<M: GuestMem, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let t = if S == REG { cpu.gpr[i.r0 as usize & 15] } else { m.read_u64(i.ea(cpu))? };
    push64(cpu, m, i.next_rip)?;
    cpu.rip = t;
    Ok(())
}

/// RET and RET imm16.
pub fn ret<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let sp = cpu.gpr[4];
    let t = m.read_u64(sp)?;
    cpu.gpr[4] = sp.wrapping_add(8).wrapping_add(i.imm);
    cpu.rip = t;
    Ok(())
}

/// PUSH of a register, memory or immediate operand (W is W64 or W16).
pub fn push<M: GuestMem, W: Width, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let v = match S {
        REG => W::get(cpu, i.r0),
        MEM => W::load(m, i.ea(cpu))?,
        _ => i.imm,
    };
    let n = 1u64 << W::SZ;
    let sp = cpu.gpr[4].wrapping_sub(n);
    W::store(m, sp, v)?;
    cpu.gpr[4] = sp;
    Ok(())
}

/// POP into a register or memory (W is W64 or W16). For a memory destination that
/// uses RSP, the address is computed after the increment (SDM vol. 2 "POP").
pub fn pop<M: GuestMem, W: Width, const D: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sp = cpu.gpr[4];
    let v = W::load(m, sp)?;
    let n = 1u64 << W::SZ;
    if D == REG {
        cpu.gpr[4] = sp.wrapping_add(n);
        W::set(cpu, i.r0, v);
    } else {
        cpu.gpr[4] = sp.wrapping_add(n);
        let ea = i.ea(cpu);
        if let Err(e) = W::store(m, ea, v) {
            cpu.gpr[4] = sp;
            return Err(e.into());
        }
    }
    Ok(())
}

/// LEAVE: RSP = RBP; RBP = pop.
pub fn leave<M: GuestMem>(cpu: &mut Cpu, m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    let bp = cpu.gpr[5];
    let v = m.read_u64(bp)?;
    cpu.gpr[4] = bp.wrapping_add(8);
    cpu.gpr[5] = v;
    Ok(())
}

/// ENTER imm16, imm8 (`Insn::imm` = size | level << 16; `Insn::sz` 1 for a 16-bit
/// operand size, else 64): pushes RBP (or BP), copies level - 1 frame pointers from the
/// enclosing frame and pushes the new one, then RBP = the frame (only BP with a 16-bit
/// operand size, as the host does) and RSP drops by the size. The registers change
/// only when every access succeeded.
pub fn enter<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let size = i.imm & 0xffff;
    let level = (i.imm >> 16) & 31;
    let n: u64 = if i.sz == 1 { 2 } else { 8 };
    let put = |m: &mut M, at: u64, v: u64| -> Result<(), Exit> {
        if n == 2 {
            m.write_u16(at, v as u16)?;
        } else {
            m.write_u64(at, v)?;
        }
        Ok(())
    };
    let mut sp = cpu.gpr[4].wrapping_sub(n);
    let mut bp = cpu.gpr[5];
    put(m, sp, bp)?;
    let frame = sp;
    if level > 0 {
        for _ in 1..level {
            bp = bp.wrapping_sub(n);
            let v = if n == 2 { u64::from(m.read_u16(bp)?) } else { m.read_u64(bp)? };
            sp = sp.wrapping_sub(n);
            put(m, sp, v)?;
        }
        sp = sp.wrapping_sub(n);
        put(m, sp, frame)?;
    }
    cpu.gpr[5] = if n == 2 { (cpu.gpr[5] & !0xffff) | (frame & 0xffff) } else { frame };
    cpu.gpr[4] = sp.wrapping_sub(size);
    Ok(())
}

/// PUSHF.
pub fn pushf<M: GuestMem>(cpu: &mut Cpu, m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    // VM and RF are cleared in the pushed image.
    let v = cpu.rflags() & !((1 << 16) | (1 << 17));
    push64(cpu, m, v)
}

/// POPF (user mode: IF and IOPL are not changed).
pub fn popf<M: GuestMem>(cpu: &mut Cpu, m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    let sp = cpu.gpr[4];
    let v = m.read_u64(sp)?;
    cpu.gpr[4] = sp.wrapping_add(8);
    cpu.set_rflags(v, USER_RFLAGS_WRITABLE);
    Ok(())
}
