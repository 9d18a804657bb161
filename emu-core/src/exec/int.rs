//! Integer instructions: ALU, moves, shifts and rotates, multiply and divide, bit
//! operations, conditional moves and sets, exchanges and atomics.
//! Semantics: Intel SDM vol. 2, one instruction page each; flags left "undefined" by the
//! SDM are given a deterministic value here and masked by the differential tests.

use crate::cpu::{Cpu, Exception, Exit};
use crate::flags::{mask, sext, sign, Flags, AF, CF, OF, PF, SF, ZF};
use crate::insn::{loc::*, Insn, Width, F_LOCK, W16, W32, W8};
use crate::mem::GuestMem;

/// ALU operation selectors (the /digit of opcodes 80-83, plus TEST).
pub mod op {
    /// ADD.
    pub const ADD: u8 = 0;
    /// OR.
    pub const OR: u8 = 1;
    /// ADC.
    pub const ADC: u8 = 2;
    /// SBB.
    pub const SBB: u8 = 3;
    /// AND.
    pub const AND: u8 = 4;
    /// SUB.
    pub const SUB: u8 = 5;
    /// XOR.
    pub const XOR: u8 = 6;
    /// CMP.
    pub const CMP: u8 = 7;
    /// TEST.
    pub const TEST: u8 = 8;
}

#[inline(always)]
fn read_src<M: GuestMem, W: Width, const S: u8>(
    cpu: &Cpu,
    m: &mut M,
    i: &Insn<M>,
    ea: u64,
) -> Result<u64, Exit> {
    Ok(match S {
        REG => W::get(cpu, i.r1),
        MEM => W::load(m, ea)?,
        _ => i.imm & mask(W::SZ),
    })
}

#[inline(always)]
fn alu_apply(f: &mut Flags, op: u8, sz: u8, a: u64, b: u64) -> u64 {
    let m = mask(sz);
    match op {
        op::ADD => {
            let r = a.wrapping_add(b) & m;
            f.set_add(sz, a, b, r);
            r
        }
        op::OR => {
            let r = a | b;
            f.set_logic(sz, r);
            r
        }
        op::ADC => {
            let c = u64::from(f.cf());
            let r = a.wrapping_add(b).wrapping_add(c) & m;
            f.set_adc(sz, a, b, c, r);
            r
        }
        op::SBB => {
            let c = u64::from(f.cf());
            let r = a.wrapping_sub(b).wrapping_sub(c) & m;
            f.set_sbb(sz, a, b, c, r);
            r
        }
        op::AND | op::TEST => {
            let r = a & b;
            f.set_logic(sz, r);
            r
        }
        op::SUB | op::CMP => {
            let r = a.wrapping_sub(b) & m;
            f.set_sub(sz, a, b, r);
            r
        }
        _ => {
            let r = a ^ b;
            f.set_logic(sz, r);
            r
        }
    }
}

/// Two-operand ALU instruction; D is where the destination lives, S the source.
pub fn alu<M: GuestMem, W: Width, const OP: u8, const D: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let ea = if D == MEM || S == MEM { i.ea(cpu) } else { 0 };
    let a = if D == REG { W::get(cpu, i.r0) } else { W::load(m, ea)? };
    let b = read_src::<M, W, S>(cpu, m, i, ea)?;
    let mut f = cpu.flags;
    let r = alu_apply(&mut f, OP, W::SZ, a, b);
    if OP != op::CMP && OP != op::TEST {
        if D == REG {
            W::set(cpu, i.r0, r);
        } else {
            if i.flags & F_LOCK != 0 {
                m.locked_rmw(ea);
            }
            W::store(m, ea, r)?;
        }
    }
    cpu.flags = f;
    Ok(())
}

/// Unary operation selectors.
pub mod un {
    /// INC.
    pub const INC: u8 = 0;
    /// DEC.
    pub const DEC: u8 = 1;
    /// NEG.
    pub const NEG: u8 = 2;
    /// NOT.
    pub const NOT: u8 = 3;
}

/// INC, DEC, NEG, NOT on a register or memory operand.
pub fn unary<M: GuestMem, W: Width, const OP: u8, const D: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let ea = if D == MEM { i.ea(cpu) } else { 0 };
    let a = if D == REG { W::get(cpu, i.r0) } else { W::load(m, ea)? };
    let msk = mask(W::SZ);
    let r = match OP {
        un::INC => a.wrapping_add(1) & msk,
        un::DEC => a.wrapping_sub(1) & msk,
        un::NEG => a.wrapping_neg() & msk,
        _ => !a & msk,
    };
    if D == REG {
        W::set(cpu, i.r0, r);
    } else {
        if i.flags & F_LOCK != 0 {
            m.locked_rmw(ea);
        }
        W::store(m, ea, r)?;
    }
    match OP {
        un::INC => cpu.flags.set_inc(W::SZ, a, r),
        un::DEC => cpu.flags.set_dec(W::SZ, a, r),
        un::NEG => cpu.flags.set_sub(W::SZ, 0, a, r),
        _ => {}
    }
    Ok(())
}

/// MOV between register, memory and immediate.
pub fn mov<M: GuestMem, W: Width, const D: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let ea = if D == MEM || S == MEM { i.ea(cpu) } else { 0 };
    let v = read_src::<M, W, S>(cpu, m, i, ea)?;
    if D == REG {
        W::set(cpu, i.r0, v);
    } else {
        W::store(m, ea, v)?;
    }
    Ok(())
}

/// MOVZX / MOVSX / MOVSXD: destination width WD, source width WS.
pub fn movx<M: GuestMem, WD: Width, WS: Width, const S: u8, const SIGNED: bool>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let v = if S == REG { WS::get(cpu, i.r1) } else { WS::load(m, i.ea(cpu))? };
    let v = if SIGNED { sext(v, WS::SZ) as u64 } else { v };
    WD::set(cpu, i.r0, v & mask(WD::SZ));
    Ok(())
}

/// LEA: the offset part of the address, without segment base, truncated to the width.
pub fn lea<M: GuestMem, W: Width>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let off = i.ea(cpu).wrapping_sub(cpu.seg_base[i.seg as usize % 3]);
    W::set(cpu, i.r0, off & mask(W::SZ));
    Ok(())
}

/// Shift/rotate selectors (the /digit of opcodes C0, C1, D0-D3).
pub mod sh {
    /// ROL.
    pub const ROL: u8 = 0;
    /// ROR.
    pub const ROR: u8 = 1;
    /// RCL.
    pub const RCL: u8 = 2;
    /// RCR.
    pub const RCR: u8 = 3;
    /// SHL/SAL.
    pub const SHL: u8 = 4;
    /// SHR.
    pub const SHR: u8 = 5;
    /// SAR.
    pub const SAR: u8 = 7;
}

/// Where a shift count comes from.
pub mod cnt {
    /// The immediate (1 for the D0/D1 forms).
    pub const IMM: u8 = 0;
    /// CL.
    pub const CL: u8 = 1;
}

/// Shifts and rotates.
pub fn shift<M: GuestMem, W: Width, const OP: u8, const D: u8, const C: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sz = W::SZ;
    let bits = 8u32 << sz;
    let raw = if C == cnt::CL { cpu.gpr[1] } else { i.imm };
    let count = (raw & if sz == 3 { 63 } else { 31 }) as u32;
    if count == 0 {
        return zero_count::<M, W, D>(cpu, m, i);
    }
    let ea = if D == MEM { i.ea(cpu) } else { 0 };
    let a = if D == REG { W::get(cpu, i.r0) } else { W::load(m, ea)? };
    let msk = mask(sz);
    let msb = |v: u64| v & sign(sz) != 0;
    let status = cpu.flags.status();
    let (r, bits_out) = match OP {
        sh::SHL => {
            let r = if count >= 64 { 0 } else { (a << count) & msk };
            let cf = count <= bits && (a >> (bits - count)) & 1 != 0;
            let of = msb(r) ^ cf;
            (r, szp(sz, r) | flag(CF, cf) | flag(OF, of))
        }
        sh::SHR => {
            let r = if count >= 64 { 0 } else { a >> count };
            let cf = count <= bits && (a >> (count - 1)) & 1 != 0;
            (r, szp(sz, r) | flag(CF, cf) | flag(OF, msb(a)))
        }
        sh::SAR => {
            let s = sext(a, sz);
            let r = (s >> count.min(63)) as u64 & msk;
            let cf = (s >> (count - 1).min(63)) & 1 != 0;
            (r, szp(sz, r) | flag(CF, cf))
        }
        sh::ROL => {
            let c = count % bits;
            let r = if c == 0 { a } else { ((a << c) | (a >> (bits - c))) & msk };
            let cf = r & 1 != 0;
            (r, (status & !(CF | OF)) | flag(CF, cf) | flag(OF, msb(r) ^ cf))
        }
        sh::ROR => {
            let c = count % bits;
            let r = if c == 0 { a } else { ((a >> c) | (a << (bits - c))) & msk };
            let cf = msb(r);
            let of = msb(r) ^ ((r >> (bits - 2)) & 1 != 0);
            (r, (status & !(CF | OF)) | flag(CF, cf) | flag(OF, of))
        }
        sh::RCL | sh::RCR => {
            let c = if sz < 2 { count % (bits + 1) } else { count };
            let cin = u128::from(status & CF != 0);
            let w = u128::from(bits) + 1;
            // The (bits+1)-bit value CF:a rotated as one quantity.
            let full = (cin << bits) | u128::from(a);
            let wmask = (1u128 << w) - 1;
            let c = u128::from(c);
            let rot = if c == 0 {
                full
            } else if OP == sh::RCL {
                ((full << c) | (full >> (w - c))) & wmask
            } else {
                ((full >> c) | (full << (w - c))) & wmask
            };
            let r = (rot as u64) & msk;
            let cf = (rot >> bits) & 1 != 0;
            let of = if OP == sh::RCL { msb(r) ^ cf } else { msb(a) ^ (status & CF != 0) };
            (r, (status & !(CF | OF)) | flag(CF, cf) | flag(OF, of))
        }
        _ => return Err(Exit::Exception(Exception::InvalidOpcode)),
    };
    if D == REG {
        W::set(cpu, i.r0, r);
    } else {
        W::store(m, ea, r)?;
    }
    cpu.flags.set_status(bits_out);
    Ok(())
}

/// A shift or rotate by a masked count of zero changes neither the operand nor the
/// flags, but hardware still performs the access: a memory operand is read (and faults
/// if it must), and a 32-bit register destination is written, clearing bits 63:32
/// (SDM vol. 1 §3.4.1.1).
#[inline(always)]
fn zero_count<M: GuestMem, W: Width, const D: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    if D == MEM {
        W::load(m, i.ea(cpu))?;
    } else if W::SZ == 2 {
        W::set(cpu, i.r0, W::get(cpu, i.r0));
    }
    Ok(())
}

#[inline(always)]
fn flag(bit: u64, on: bool) -> u64 {
    if on {
        bit
    } else {
        0
    }
}

#[inline(always)]
fn szp(sz: u8, r: u64) -> u64 {
    let r = r & mask(sz);
    flag(ZF, r == 0) | flag(SF, r & sign(sz) != 0) | flag(PF, (r as u8).count_ones() % 2 == 0)
}

/// SHLD (LEFT) / SHRD: destination r0 or memory, source register r1, count imm or CL.
pub fn shld<M: GuestMem, W: Width, const LEFT: bool, const D: u8, const C: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sz = W::SZ;
    let bits = 8u32 << sz;
    let raw = if C == cnt::CL { cpu.gpr[1] } else { i.imm };
    let count = (raw & if sz == 3 { 63 } else { 31 }) as u32;
    if count == 0 {
        return zero_count::<M, W, D>(cpu, m, i);
    }
    let ea = if D == MEM { i.ea(cpu) } else { 0 };
    let a = if D == REG { W::get(cpu, i.r0) } else { W::load(m, ea)? };
    let b = W::get(cpu, i.r1);
    let msk = mask(sz);
    // 16-bit counts above 16 are undefined: treat the operand as a:b:a, as common
    // hardware does. Other widths concatenate a:b (left) or b:a (right).
    let (r, cf) = if sz == 1 {
        let cat = (u128::from(a) << 32) | (u128::from(b) << 16) | u128::from(a);
        if LEFT {
            (((cat << count) >> 32) as u64 & msk, (cat >> (48 - count)) & 1 != 0)
        } else {
            ((cat >> count) as u64 & msk, (cat >> (count - 1)) & 1 != 0)
        }
    } else if LEFT {
        let cat = (u128::from(a) << bits) | u128::from(b);
        (((cat << count) >> bits) as u64 & msk, (cat >> (2 * bits - count)) & 1 != 0)
    } else {
        let cat = (u128::from(b) << bits) | u128::from(a);
        ((cat >> count) as u64 & msk, (cat >> (count - 1)) & 1 != 0)
    };
    let of = (r ^ a) & sign(sz) != 0;
    if D == REG {
        W::set(cpu, i.r0, r);
    } else {
        W::store(m, ea, r)?;
    }
    cpu.flags.set_status(szp(sz, r) | flag(CF, cf) | flag(OF, of));
    Ok(())
}

/// One-operand MUL (SIGNED = false) and IMUL (SIGNED = true): rDX:rAX = rAX * src.
pub fn mul1<M: GuestMem, W: Width, const SIGNED: bool, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sz = W::SZ;
    let bits = 8u32 << sz;
    let src = if S == REG { W::get(cpu, i.r0) } else { W::load(m, i.ea(cpu))? };
    let a = W::get(cpu, 0);
    let msk = mask(sz);
    let (lo, hi, overflow) = if SIGNED {
        let p = i128::from(sext(a, sz)) * i128::from(sext(src, sz));
        let lo = p as u64 & msk;
        let hi = (p >> bits) as u64 & msk;
        (lo, hi, p != i128::from(sext(lo, sz)))
    } else {
        let p = u128::from(a) * u128::from(src);
        let lo = p as u64 & msk;
        let hi = (p >> bits) as u64 & msk;
        (lo, hi, hi != 0)
    };
    if sz == 0 {
        W16::set(cpu, 0, (hi << 8) | lo);
    } else {
        W::set(cpu, 0, lo);
        W::set(cpu, 2, hi);
    }
    cpu.flags.set_status(szp(sz, lo) | flag(CF | OF, overflow));
    Ok(())
}

/// Two- and three-operand IMUL: r0 = (r0 or src) * (src or imm), truncated.
pub fn imul<M: GuestMem, W: Width, const S: u8, const THREE: bool>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sz = W::SZ;
    let src = if S == REG { W::get(cpu, i.r1) } else { W::load(m, i.ea(cpu))? };
    let other = if THREE { i.imm & mask(sz) } else { W::get(cpu, i.r0) };
    let p = i128::from(sext(src, sz)) * i128::from(sext(other, sz));
    let lo = p as u64 & mask(sz);
    let overflow = p != i128::from(sext(lo, sz));
    W::set(cpu, i.r0, lo);
    cpu.flags.set_status(szp(sz, lo) | flag(CF | OF, overflow));
    Ok(())
}

/// DIV and IDIV: rAX, rDX = rDX:rAX / src, rDX:rAX % src; #DE on zero or overflow.
pub fn div<M: GuestMem, W: Width, const SIGNED: bool, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sz = W::SZ;
    let bits = 8u32 << sz;
    let src = if S == REG { W::get(cpu, i.r0) } else { W::load(m, i.ea(cpu))? };
    let msk = mask(sz);
    let (hi, lo) = if sz == 0 {
        let ax = W16::get(cpu, 0);
        (ax >> 8, ax & 0xff)
    } else {
        (W::get(cpu, 2), W::get(cpu, 0))
    };
    let de = Err(Exit::Exception(Exception::DivideError));
    if src == 0 {
        return de;
    }
    let (q, r) = if SIGNED {
        let n = ((u128::from(hi) << bits) | u128::from(lo)) as i128;
        // Sign-extend the 2*bits-wide dividend.
        let sh = 128 - 2 * bits;
        let n = (n << sh) >> sh;
        let d = i128::from(sext(src, sz));
        let q = n.wrapping_div(d);
        let r = n.wrapping_rem(d);
        let qmin = -(1i128 << (bits - 1));
        let qmax = (1i128 << (bits - 1)) - 1;
        if q < qmin || q > qmax {
            return de;
        }
        (q as u64 & msk, r as u64 & msk)
    } else {
        let n = (u128::from(hi) << bits) | u128::from(lo);
        let d = u128::from(src);
        let q = n / d;
        if q > u128::from(msk) {
            return de;
        }
        (q as u64, (n % d) as u64)
    };
    if sz == 0 {
        W16::set(cpu, 0, (r << 8) | q);
    } else {
        W::set(cpu, 0, q);
        W::set(cpu, 2, r);
    }
    Ok(())
}

/// CBW/CWDE/CDQE: sign-extend the lower half of rAX into rAX (W is the result width).
pub fn cbw<M: GuestMem, W: Width>(cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    let v = sext(cpu.gpr[0], W::SZ - 1) as u64;
    W::set(cpu, 0, v & mask(W::SZ));
    Ok(())
}

/// CWD/CDQ/CQO: fill rDX with the sign of rAX.
pub fn cwd<M: GuestMem, W: Width>(cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    let neg = W::get(cpu, 0) & sign(W::SZ) != 0;
    W::set(cpu, 2, if neg { mask(W::SZ) } else { 0 });
    Ok(())
}

/// XCHG register with register or memory (memory form is always locked).
pub fn xchg<M: GuestMem, W: Width, const D: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let b = W::get(cpu, i.r1);
    if D == REG {
        let a = W::get(cpu, i.r0);
        W::set(cpu, i.r0, b);
        W::set(cpu, i.r1, a);
    } else {
        let ea = i.ea(cpu);
        let a = W::load(m, ea)?;
        m.locked_rmw(ea);
        W::store(m, ea, b)?;
        W::set(cpu, i.r1, a);
    }
    Ok(())
}

/// XADD: temp = dst + src; src = dst; dst = temp.
pub fn xadd<M: GuestMem, W: Width, const D: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let b = W::get(cpu, i.r1);
    let ea = if D == MEM { i.ea(cpu) } else { 0 };
    let a = if D == REG { W::get(cpu, i.r0) } else { W::load(m, ea)? };
    let r = a.wrapping_add(b) & mask(W::SZ);
    if D == REG {
        W::set(cpu, i.r1, a);
        W::set(cpu, i.r0, r);
    } else {
        if i.flags & F_LOCK != 0 {
            m.locked_rmw(ea);
        }
        W::store(m, ea, r)?;
        W::set(cpu, i.r1, a);
    }
    cpu.flags.set_add(W::SZ, a, b, r);
    Ok(())
}

/// CMPXCHG: compare rAX with dst; equal: dst = src, else rAX = dst.
pub fn cmpxchg<M: GuestMem, W: Width, const D: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let ea = if D == MEM { i.ea(cpu) } else { 0 };
    let dst = if D == REG { W::get(cpu, i.r0) } else { W::load(m, ea)? };
    let acc = W::get(cpu, 0);
    let src = W::get(cpu, i.r1);
    if D == MEM && i.flags & F_LOCK != 0 {
        m.locked_rmw(ea);
    }
    if acc == dst {
        if D == REG {
            W::set(cpu, i.r0, src);
        } else {
            W::store(m, ea, src)?;
        }
    } else {
        // The processor writes back the old value to memory in the failing case.
        if D == MEM {
            W::store(m, ea, dst)?;
        }
        W::set(cpu, 0, dst);
    }
    cpu.flags.set_sub(W::SZ, acc, dst, acc.wrapping_sub(dst) & mask(W::SZ));
    Ok(())
}

/// CMPXCHG8B (WIDE = false) and CMPXCHG16B (WIDE = true, 16-byte aligned operand).
pub fn cmpxchg_wide<M: GuestMem, const WIDE: bool>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let ea = i.ea(cpu);
    m.locked_rmw(ea);
    if WIDE {
        if ea & 15 != 0 {
            return Err(Exit::Exception(Exception::GeneralProtection));
        }
        let cur = m.read_u128(ea)?;
        let cmp = u128::from(cpu.gpr[0]) | (u128::from(cpu.gpr[2]) << 64);
        if cur == cmp {
            let new = u128::from(cpu.gpr[3]) | (u128::from(cpu.gpr[1]) << 64);
            m.write_u128(ea, new)?;
            cpu.flags.set_status((cpu.flags.status() & !ZF) | ZF);
        } else {
            m.write_u128(ea, cur)?;
            cpu.gpr[0] = cur as u64;
            cpu.gpr[2] = (cur >> 64) as u64;
            cpu.flags.set_status(cpu.flags.status() & !ZF);
        }
    } else {
        let cur = m.read_u64(ea)?;
        let cmp = (cpu.gpr[0] & 0xffff_ffff) | (cpu.gpr[2] << 32);
        if cur == cmp {
            let new = (cpu.gpr[3] & 0xffff_ffff) | (cpu.gpr[1] << 32);
            m.write_u64(ea, new)?;
            cpu.flags.set_status(cpu.flags.status() | ZF);
        } else {
            m.write_u64(ea, cur)?;
            cpu.gpr[0] = cur & 0xffff_ffff;
            cpu.gpr[2] = cur >> 32;
            cpu.flags.set_status(cpu.flags.status() & !ZF);
        }
    }
    Ok(())
}

/// BSWAP.
pub fn bswap<M: GuestMem, W: Width>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = W::get(cpu, i.r0);
    let r = if W::SZ == 3 { v.swap_bytes() } else { u64::from((v as u32).swap_bytes()) };
    W::set(cpu, i.r0, r);
    Ok(())
}

/// Bit-test selectors.
pub mod bt {
    /// BT.
    pub const BT: u8 = 0;
    /// BTS.
    pub const BTS: u8 = 1;
    /// BTR.
    pub const BTR: u8 = 2;
    /// BTC.
    pub const BTC: u8 = 3;
}

/// BT/BTS/BTR/BTC. With a register bit offset and a memory operand the offset is a
/// signed bit index relative to the operand (SDM vol. 2 "BT": bit base addressing).
pub fn bittest<M: GuestMem, W: Width, const OP: u8, const D: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sz = W::SZ;
    let bits = 8u64 << sz;
    let off = if S == REG { W::get(cpu, i.r1) } else { i.imm };
    let (ea, bit) = if D == MEM {
        let base = i.ea(cpu);
        if S == REG {
            let soff = sext(off, sz);
            let unit = soff.div_euclid(bits as i64);
            let bytes = (bits / 8) as i64;
            (base.wrapping_add((unit * bytes) as u64), soff.rem_euclid(bits as i64) as u64)
        } else {
            (base, off & (bits - 1))
        }
    } else {
        (0, off & (bits - 1))
    };
    let v = if D == REG { W::get(cpu, i.r0) } else { W::load(m, ea)? };
    let was = (v >> bit) & 1 != 0;
    let nv = match OP {
        bt::BTS => v | (1 << bit),
        bt::BTR => v & !(1 << bit),
        bt::BTC => v ^ (1 << bit),
        _ => v,
    };
    if OP != bt::BT {
        if D == REG {
            W::set(cpu, i.r0, nv);
        } else {
            if i.flags & F_LOCK != 0 {
                m.locked_rmw(ea);
            }
            W::store(m, ea, nv)?;
        }
    }
    let st = cpu.flags.status();
    cpu.flags.set_status((st & !CF) | flag(CF, was));
    Ok(())
}

/// Bit-scan selectors.
pub mod scan {
    /// BSF.
    pub const BSF: u8 = 0;
    /// BSR.
    pub const BSR: u8 = 1;
    /// TZCNT.
    pub const TZCNT: u8 = 2;
    /// LZCNT.
    pub const LZCNT: u8 = 3;
    /// POPCNT.
    pub const POPCNT: u8 = 4;
}

/// BSF, BSR, TZCNT, LZCNT, POPCNT.
pub fn bitscan<M: GuestMem, W: Width, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sz = W::SZ;
    let bits = 8u32 << sz;
    let v = if S == REG { W::get(cpu, i.r1) } else { W::load(m, i.ea(cpu))? };
    match OP {
        scan::BSF | scan::BSR => {
            if v == 0 {
                // Destination unchanged (AMD documents it; Intel preserves it in practice).
                cpu.flags.set_status(ZF);
            } else {
                let r = if OP == scan::BSF { v.trailing_zeros() } else { 63 - v.leading_zeros() };
                W::set(cpu, i.r0, u64::from(r));
                cpu.flags.set_status(0);
            }
        }
        scan::TZCNT | scan::LZCNT => {
            let r = if v == 0 {
                bits
            } else if OP == scan::TZCNT {
                v.trailing_zeros()
            } else {
                v.leading_zeros() - (64 - bits)
            };
            W::set(cpu, i.r0, u64::from(r));
            cpu.flags.set_status(flag(CF, v == 0) | flag(ZF, r == 0));
        }
        _ => {
            let r = v.count_ones();
            W::set(cpu, i.r0, u64::from(r));
            cpu.flags.set_status(flag(ZF, v == 0));
        }
    }
    Ok(())
}

/// SETcc.
pub fn setcc<M: GuestMem, const D: u8>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = u64::from(cpu.flags.cond(i.cc));
    if D == REG {
        W8::set(cpu, i.r0, v);
    } else {
        m.write_u8(i.ea(cpu), v as u8)?;
    }
    Ok(())
}

/// CMOVcc. The memory operand is read even when the condition is false, and a 32-bit
/// destination is zero-extended either way.
pub fn cmovcc<M: GuestMem, W: Width, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let v = if S == REG { W::get(cpu, i.r1) } else { W::load(m, i.ea(cpu))? };
    if cpu.flags.cond(i.cc) {
        W::set(cpu, i.r0, v);
    } else if W::SZ == 2 {
        W32::set(cpu, i.r0, W32::get(cpu, i.r0));
    }
    Ok(())
}

/// Flag-manipulation selectors.
pub mod fl {
    /// CLC.
    pub const CLC: u8 = 0;
    /// STC.
    pub const STC: u8 = 1;
    /// CMC.
    pub const CMC: u8 = 2;
    /// CLD.
    pub const CLD: u8 = 3;
    /// STD.
    pub const STD: u8 = 4;
    /// LAHF.
    pub const LAHF: u8 = 5;
    /// SAHF.
    pub const SAHF: u8 = 6;
}

/// CLC, STC, CMC, CLD, STD, LAHF, SAHF.
pub fn flagop<M: GuestMem, const OP: u8>(
    cpu: &mut Cpu,
    _m: &mut M,
    _i: &Insn<M>,
) -> Result<(), Exit> {
    let st = cpu.flags.status();
    match OP {
        fl::CLC => cpu.flags.set_status(st & !CF),
        fl::STC => cpu.flags.set_status(st | CF),
        fl::CMC => cpu.flags.set_status(st ^ CF),
        fl::CLD => cpu.df = false,
        fl::STD => cpu.df = true,
        fl::LAHF => {
            let ah = (st & (SF | ZF | AF | PF | CF)) | 2;
            W8::set(cpu, crate::cpu::HI8, ah);
        }
        _ => {
            let ah = W8::get(cpu, crate::cpu::HI8);
            cpu.flags.set_status((st & OF) | (ah & (SF | ZF | AF | PF | CF)));
        }
    }
    Ok(())
}

/// Selects a width-generic handler by width index.
#[macro_export]
macro_rules! by_width {
    ($sz:expr, $f:ident :: < $m:ty, _ $(, $rest:tt)* >) => {
        match $sz {
            0 => $f::<$m, $crate::insn::W8 $(, $rest)*> as $crate::insn::ExecFn<$m>,
            1 => $f::<$m, $crate::insn::W16 $(, $rest)*>,
            2 => $f::<$m, $crate::insn::W32 $(, $rest)*>,
            _ => $f::<$m, $crate::insn::W64 $(, $rest)*>,
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn szp_parity() {
        assert_eq!(szp(0, 0), ZF | PF);
        assert_eq!(szp(0, 0x80), SF);
        assert_eq!(szp(0, 3), PF);
        assert_eq!(szp(3, 1 << 63), SF | PF);
    }
}
