//! SSE and SSE2 (the x86-64 baseline): 128-bit integer and floating-point operations,
//! moves, shuffles, conversions and MXCSR. Legacy-encoded m128 operands must be 16-byte
//! aligned except for the explicitly unaligned moves (SDM vol. 1 §11.4.1).

use crate::cpu::{Cpu, Exception, Exit};
use crate::flags::{CF, PF, ZF};
use crate::insn::{loc::*, Insn};
use crate::mem::GuestMem;
use crate::softfp::{self, FpOp, Lane, F32, F64};

#[inline(always)]
fn gp() -> Exit {
    Exit::Exception(Exception::GeneralProtection)
}

/// Reads the 128-bit source: XMM r1 or memory (checked for alignment when `ALIGN`).
#[inline(always)]
fn src128<M: GuestMem, const S: u8, const ALIGN: bool>(
    cpu: &Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<u128, Exit> {
    if S == REG {
        Ok(cpu.xmm[i.r1 as usize & 15])
    } else {
        let ea = i.ea(cpu);
        if ALIGN && ea & 15 != 0 {
            return Err(gp());
        }
        Ok(m.read_u128(ea)?)
    }
}

#[inline(always)]
pub(crate) fn lane(v: u128, bits: u32, k: u32) -> u64 {
    let m = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    (v >> (k * bits)) as u64 & m
}

#[inline(always)]
fn map2(a: u128, b: u128, bits: u32, mut f: impl FnMut(u64, u64) -> u64) -> u128 {
    let m = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let mut r = 0u128;
    let mut k = 0;
    while k < 128 / bits {
        r |= u128::from(f(lane(a, bits, k), lane(b, bits, k)) & m) << (k * bits);
        k += 1;
    }
    r
}

#[inline(always)]
pub(crate) fn sx(v: u64, bits: u32) -> i64 {
    let sh = 64 - bits;
    ((v << sh) as i64) >> sh
}

#[inline(always)]
pub(crate) fn sat_s(v: i64, bits: u32) -> u64 {
    let lo = -(1i64 << (bits - 1));
    let hi = (1i64 << (bits - 1)) - 1;
    v.clamp(lo, hi) as u64
}

#[inline(always)]
pub(crate) fn sat_u(v: i64, bits: u32) -> u64 {
    v.clamp(0, (1i64 << bits) - 1) as u64
}

pub(crate) fn interleave(a: u128, b: u128, bits: u32, high: bool) -> u128 {
    let n = 64 / bits;
    let base = if high { n } else { 0 };
    let mut r = 0u128;
    for k in 0..n {
        r |= u128::from(lane(a, bits, base + k)) << (2 * k * bits);
        r |= u128::from(lane(b, bits, base + k)) << ((2 * k + 1) * bits);
    }
    r
}

pub(crate) fn pack(a: u128, b: u128, from: u32, sat: fn(i64, u32) -> u64) -> u128 {
    let to = from / 2;
    let n = 128 / from;
    let mut r = 0u128;
    // Signed saturation yields negative values: keep only the `to` bits of each lane.
    let m = (1u64 << to) - 1;
    for k in 0..n {
        r |= u128::from(sat(sx(lane(a, from, k), from), to) & m) << (k * to);
        r |= u128::from(sat(sx(lane(b, from, k), from), to) & m) << ((k + n) * to);
    }
    r
}

fn shift_lanes(a: u128, bits: u32, count: u64, kind: u8) -> u128 {
    // kind: 0 logical right, 1 arithmetic right, 2 left
    map2(a, 0, bits, |x, _| {
        if count >= u64::from(bits) {
            match kind {
                1 => sx(x, bits).wrapping_shr(63) as u64,
                _ => 0,
            }
        } else {
            match kind {
                0 => x >> count,
                1 => (sx(x, bits) >> count) as u64,
                _ => x << count,
            }
        }
    })
}

/// Packed-integer and bitwise operation selectors.
#[allow(missing_docs)]
pub mod pi {
    pub const PADDB: u8 = 0;
    pub const PADDW: u8 = 1;
    pub const PADDD: u8 = 2;
    pub const PADDQ: u8 = 3;
    pub const PSUBB: u8 = 4;
    pub const PSUBW: u8 = 5;
    pub const PSUBD: u8 = 6;
    pub const PSUBQ: u8 = 7;
    pub const PADDSB: u8 = 8;
    pub const PADDSW: u8 = 9;
    pub const PADDUSB: u8 = 10;
    pub const PADDUSW: u8 = 11;
    pub const PSUBSB: u8 = 12;
    pub const PSUBSW: u8 = 13;
    pub const PSUBUSB: u8 = 14;
    pub const PSUBUSW: u8 = 15;
    pub const PCMPEQB: u8 = 16;
    pub const PCMPEQW: u8 = 17;
    pub const PCMPEQD: u8 = 18;
    pub const PCMPGTB: u8 = 19;
    pub const PCMPGTW: u8 = 20;
    pub const PCMPGTD: u8 = 21;
    pub const PAND: u8 = 22;
    pub const PANDN: u8 = 23;
    pub const POR: u8 = 24;
    pub const PXOR: u8 = 25;
    pub const PMULLW: u8 = 26;
    pub const PMULHW: u8 = 27;
    pub const PMULHUW: u8 = 28;
    pub const PMULUDQ: u8 = 29;
    pub const PMADDWD: u8 = 30;
    pub const PAVGB: u8 = 31;
    pub const PAVGW: u8 = 32;
    pub const PMINUB: u8 = 33;
    pub const PMAXUB: u8 = 34;
    pub const PMINSW: u8 = 35;
    pub const PMAXSW: u8 = 36;
    pub const PSADBW: u8 = 37;
    pub const PUNPCKLBW: u8 = 38;
    pub const PUNPCKLWD: u8 = 39;
    pub const PUNPCKLDQ: u8 = 40;
    pub const PUNPCKLQDQ: u8 = 41;
    pub const PUNPCKHBW: u8 = 42;
    pub const PUNPCKHWD: u8 = 43;
    pub const PUNPCKHDQ: u8 = 44;
    pub const PUNPCKHQDQ: u8 = 45;
    pub const PACKSSWB: u8 = 46;
    pub const PACKSSDW: u8 = 47;
    pub const PACKUSWB: u8 = 48;
    pub const PSRLW: u8 = 49;
    pub const PSRLD: u8 = 50;
    pub const PSRLQ: u8 = 51;
    pub const PSRAW: u8 = 52;
    pub const PSRAD: u8 = 53;
    pub const PSLLW: u8 = 54;
    pub const PSLLD: u8 = 55;
    pub const PSLLQ: u8 = 56;
    pub const MOVLHPS: u8 = 57;
    pub const MOVHLPS: u8 = 58;
    pub const PCMPEQQ: u8 = 59;
}

pub(crate) fn pint_apply(op: u8, a: u128, b: u128) -> u128 {
    use pi::*;
    match op {
        PADDB => map2(a, b, 8, u64::wrapping_add),
        PADDW => map2(a, b, 16, u64::wrapping_add),
        PADDD => map2(a, b, 32, u64::wrapping_add),
        PADDQ => map2(a, b, 64, u64::wrapping_add),
        PSUBB => map2(a, b, 8, u64::wrapping_sub),
        PSUBW => map2(a, b, 16, u64::wrapping_sub),
        PSUBD => map2(a, b, 32, u64::wrapping_sub),
        PSUBQ => map2(a, b, 64, u64::wrapping_sub),
        PADDSB => map2(a, b, 8, |x, y| sat_s(sx(x, 8) + sx(y, 8), 8)),
        PADDSW => map2(a, b, 16, |x, y| sat_s(sx(x, 16) + sx(y, 16), 16)),
        PADDUSB => map2(a, b, 8, |x, y| sat_u((x + y) as i64, 8)),
        PADDUSW => map2(a, b, 16, |x, y| sat_u((x + y) as i64, 16)),
        PSUBSB => map2(a, b, 8, |x, y| sat_s(sx(x, 8) - sx(y, 8), 8)),
        PSUBSW => map2(a, b, 16, |x, y| sat_s(sx(x, 16) - sx(y, 16), 16)),
        PSUBUSB => map2(a, b, 8, |x, y| sat_u(x as i64 - y as i64, 8)),
        PSUBUSW => map2(a, b, 16, |x, y| sat_u(x as i64 - y as i64, 16)),
        PCMPEQB => map2(a, b, 8, |x, y| if x == y { u64::MAX } else { 0 }),
        PCMPEQW => map2(a, b, 16, |x, y| if x == y { u64::MAX } else { 0 }),
        PCMPEQD => map2(a, b, 32, |x, y| if x == y { u64::MAX } else { 0 }),
        PCMPEQQ => map2(a, b, 64, |x, y| if x == y { u64::MAX } else { 0 }),
        PCMPGTB => map2(a, b, 8, |x, y| if sx(x, 8) > sx(y, 8) { u64::MAX } else { 0 }),
        PCMPGTW => map2(a, b, 16, |x, y| if sx(x, 16) > sx(y, 16) { u64::MAX } else { 0 }),
        PCMPGTD => map2(a, b, 32, |x, y| if sx(x, 32) > sx(y, 32) { u64::MAX } else { 0 }),
        PAND => a & b,
        PANDN => !a & b,
        POR => a | b,
        PXOR => a ^ b,
        PMULLW => map2(a, b, 16, |x, y| x.wrapping_mul(y)),
        PMULHW => map2(a, b, 16, |x, y| ((sx(x, 16) * sx(y, 16)) >> 16) as u64),
        PMULHUW => map2(a, b, 16, |x, y| (x * y) >> 16),
        PMULUDQ => {
            let lo = (a as u64 & 0xffff_ffff) * (b as u64 & 0xffff_ffff);
            let hi = ((a >> 64) as u64 & 0xffff_ffff) * ((b >> 64) as u64 & 0xffff_ffff);
            u128::from(lo) | (u128::from(hi) << 64)
        }
        PMADDWD => {
            let mut r = 0u128;
            for k in 0..4 {
                let p0 = sx(lane(a, 16, 2 * k), 16) * sx(lane(b, 16, 2 * k), 16);
                let p1 = sx(lane(a, 16, 2 * k + 1), 16) * sx(lane(b, 16, 2 * k + 1), 16);
                r |= u128::from((p0 + p1) as u64 & 0xffff_ffff) << (32 * k);
            }
            r
        }
        PAVGB => map2(a, b, 8, |x, y| (x + y + 1) >> 1),
        PAVGW => map2(a, b, 16, |x, y| (x + y + 1) >> 1),
        PMINUB => map2(a, b, 8, u64::min),
        PMAXUB => map2(a, b, 8, u64::max),
        PMINSW => map2(a, b, 16, |x, y| if sx(x, 16) < sx(y, 16) { x } else { y }),
        PMAXSW => map2(a, b, 16, |x, y| if sx(x, 16) > sx(y, 16) { x } else { y }),
        PSADBW => {
            let mut r = 0u128;
            for h in 0..2 {
                let mut s = 0u64;
                for k in 0..8 {
                    s += lane(a, 8, h * 8 + k).abs_diff(lane(b, 8, h * 8 + k));
                }
                r |= u128::from(s) << (64 * h);
            }
            r
        }
        PUNPCKLBW => interleave(a, b, 8, false),
        PUNPCKLWD => interleave(a, b, 16, false),
        PUNPCKLDQ => interleave(a, b, 32, false),
        PUNPCKLQDQ => interleave(a, b, 64, false),
        PUNPCKHBW => interleave(a, b, 8, true),
        PUNPCKHWD => interleave(a, b, 16, true),
        PUNPCKHDQ => interleave(a, b, 32, true),
        PUNPCKHQDQ => interleave(a, b, 64, true),
        PACKSSWB => pack(a, b, 16, sat_s),
        PACKSSDW => pack(a, b, 32, sat_s),
        PACKUSWB => pack(a, b, 16, sat_u),
        PSRLW => shift_lanes(a, 16, b as u64, 0),
        PSRLD => shift_lanes(a, 32, b as u64, 0),
        PSRLQ => shift_lanes(a, 64, b as u64, 0),
        PSRAW => shift_lanes(a, 16, b as u64, 1),
        PSRAD => shift_lanes(a, 32, b as u64, 1),
        PSLLW => shift_lanes(a, 16, b as u64, 2),
        PSLLD => shift_lanes(a, 32, b as u64, 2),
        PSLLQ => shift_lanes(a, 64, b as u64, 2),
        MOVLHPS => (a & u128::from(u64::MAX)) | (b << 64),
        _ => (a & !u128::from(u64::MAX)) | (b >> 64),
    }
}

/// Packed integer or bitwise operation: XMM r0 = op(XMM r0, src).
pub fn pint<M: GuestMem, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let b = src128::<M, S, true>(cpu, m, i)?;
    let d = i.r0 as usize & 15;
    cpu.xmm[d] = pint_apply(OP, cpu.xmm[d], b);
    Ok(())
}

/// Shift-by-immediate selectors (the lane shifts reuse the `pi` codes).
pub mod psh {
    /// PSRLDQ (bytes).
    pub const PSRLDQ: u8 = 100;
    /// PSLLDQ (bytes).
    pub const PSLLDQ: u8 = 101;
}

/// Shift XMM r0 by the immediate.
pub fn pshift_imm<M: GuestMem, const OP: u8>(
    cpu: &mut Cpu,
    _m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let d = i.r0 as usize & 15;
    let a = cpu.xmm[d];
    let c = i.imm & 0xff;
    cpu.xmm[d] = match OP {
        psh::PSRLDQ => {
            if c > 15 {
                0
            } else {
                a >> (8 * c)
            }
        }
        psh::PSLLDQ => {
            if c > 15 {
                0
            } else {
                a << (8 * c)
            }
        }
        _ => pint_apply(OP, a, u128::from(c)),
    };
    Ok(())
}

/// Shuffle selectors.
pub mod shuf {
    /// PSHUFD.
    pub const PSHUFD: u8 = 0;
    /// PSHUFLW.
    pub const PSHUFLW: u8 = 1;
    /// PSHUFHW.
    pub const PSHUFHW: u8 = 2;
    /// SHUFPS.
    pub const SHUFPS: u8 = 3;
    /// SHUFPD.
    pub const SHUFPD: u8 = 4;
}

/// Shuffles with an immediate selector.
pub fn shuffle<M: GuestMem, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let b = src128::<M, S, true>(cpu, m, i)?;
    let d = i.r0 as usize & 15;
    let a = cpu.xmm[d];
    let imm = i.imm as u32;
    let sel = |v: u128, bits: u32, k: u32| u128::from(lane(v, bits, (imm >> (2 * k)) & 3));
    cpu.xmm[d] = match OP {
        shuf::PSHUFD => (0..4).fold(0, |r, k| r | sel(b, 32, k) << (32 * k)),
        shuf::PSHUFLW => {
            let lo = (0..4).fold(0u128, |r, k| r | sel(b, 16, k) << (16 * k));
            lo | (b >> 64 << 64)
        }
        shuf::PSHUFHW => {
            let hi = (0..4).fold(0u128, |r, k| r | sel(b >> 64, 16, k) << (16 * k));
            (b & u128::from(u64::MAX)) | (hi << 64)
        }
        shuf::SHUFPS => {
            sel(a, 32, 0) | sel(a, 32, 1) << 32 | sel(b, 32, 2) << 64 | sel(b, 32, 3) << 96
        }
        _ => {
            let lo = lane(a, 64, imm & 1);
            let hi = lane(b, 64, (imm >> 1) & 1);
            u128::from(lo) | (u128::from(hi) << 64)
        }
    };
    Ok(())
}

/// 128-bit moves: XMM from XMM/memory, or memory from XMM.
pub fn mov128<M: GuestMem, const D: u8, const S: u8, const ALIGN: bool>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    if D == MEM {
        let ea = i.ea(cpu);
        if ALIGN && ea & 15 != 0 {
            return Err(gp());
        }
        m.write_u128(ea, cpu.xmm[i.r1 as usize & 15])?;
    } else {
        cpu.xmm[i.r0 as usize & 15] = src128::<M, S, ALIGN>(cpu, m, i)?;
    }
    Ok(())
}

/// Partial moves selectors.
pub mod pm {
    /// MOVD/MOVQ xmm, r/m (zero-extending; width in `Insn::sz`).
    pub const TO_XMM_ZX: u8 = 0;
    /// MOVD/MOVQ r/m, xmm (low lane).
    pub const FROM_XMM: u8 = 1;
    /// MOVSS/MOVSD xmm, xmm (merge low lane).
    pub const MERGE_LOW: u8 = 2;
    /// MOVLPS/MOVLPD xmm, m64.
    pub const LOAD_LOW: u8 = 3;
    /// MOVHPS/MOVHPD xmm, m64.
    pub const LOAD_HIGH: u8 = 4;
    /// MOVHPS/MOVHPD m64, xmm.
    pub const STORE_HIGH: u8 = 5;
    /// MOVQ xmm, xmm (zero upper).
    pub const MOVQ_XX: u8 = 6;
}

/// MOVD, MOVQ, MOVSS, MOVSD, MOVLPx, MOVHPx. `Insn::sz` is the element width (2 or 3).
/// For register forms a GPR is `r0`/`r1` as appropriate.
pub fn movpart<M: GuestMem, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let wide = i.sz == 3;
    let msk: u64 = if wide { u64::MAX } else { 0xffff_ffff };
    let low_mask: u128 = u128::from(msk);
    match OP {
        pm::TO_XMM_ZX => {
            let v = if S == REG {
                cpu.gpr[i.r1 as usize & 15] & msk
            } else if S == MEM {
                let ea = i.ea(cpu);
                if wide {
                    m.read_u64(ea)?
                } else {
                    u64::from(m.read_u32(ea)?)
                }
            } else {
                // From another XMM (MOVQ xmm, xmm handled separately).
                (cpu.xmm[i.r1 as usize & 15] as u64) & msk
            };
            cpu.xmm[i.r0 as usize & 15] = u128::from(v);
        }
        pm::FROM_XMM => {
            let v = cpu.xmm[i.r1 as usize & 15] as u64 & msk;
            if S == REG {
                cpu.gpr[i.r0 as usize & 15] = v;
            } else {
                let ea = i.ea(cpu);
                if wide {
                    m.write_u64(ea, v)?;
                } else {
                    m.write_u32(ea, v as u32)?;
                }
            }
        }
        pm::MERGE_LOW => {
            let d = i.r0 as usize & 15;
            cpu.xmm[d] = (cpu.xmm[d] & !low_mask) | (cpu.xmm[i.r1 as usize & 15] & low_mask);
        }
        pm::LOAD_LOW => {
            let v = m.read_u64(i.ea(cpu))?;
            let d = i.r0 as usize & 15;
            cpu.xmm[d] = (cpu.xmm[d] & !u128::from(u64::MAX)) | u128::from(v);
        }
        pm::LOAD_HIGH => {
            let v = m.read_u64(i.ea(cpu))?;
            let d = i.r0 as usize & 15;
            cpu.xmm[d] = (cpu.xmm[d] & u128::from(u64::MAX)) | (u128::from(v) << 64);
        }
        pm::STORE_HIGH => {
            let v = (cpu.xmm[i.r1 as usize & 15] >> 64) as u64;
            m.write_u64(i.ea(cpu), v)?;
        }
        _ => {
            let v = cpu.xmm[i.r1 as usize & 15] as u64;
            cpu.xmm[i.r0 as usize & 15] = u128::from(v);
        }
    }
    Ok(())
}

/// PMOVMSKB (BITS = 8), MOVMSKPS (32), MOVMSKPD (64): sign bits into GPR r0.
pub fn movmsk<M: GuestMem, const BITS: u32>(
    cpu: &mut Cpu,
    _m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let v = cpu.xmm[i.r1 as usize & 15];
    let mut r = 0u64;
    for k in 0..128 / BITS {
        r |= u64::from((v >> (k * BITS + BITS - 1)) as u8 & 1) << k;
    }
    cpu.gpr[i.r0 as usize & 15] = r;
    Ok(())
}

/// PEXTRW r32, xmm, imm8.
pub fn pextrw<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = lane(cpu.xmm[i.r1 as usize & 15], 16, (i.imm & 7) as u32);
    cpu.gpr[i.r0 as usize & 15] = v;
    Ok(())
}

/// PINSRW xmm, r32/m16, imm8.
pub fn pinsrw<M: GuestMem, const S: u8>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = if S == REG {
        cpu.gpr[i.r1 as usize & 15] & 0xffff
    } else {
        u64::from(m.read_u16(i.ea(cpu))?)
    };
    let k = (i.imm & 7) as u32 * 16;
    let d = i.r0 as usize & 15;
    cpu.xmm[d] = (cpu.xmm[d] & !(0xffffu128 << k)) | (u128::from(v) << k);
    Ok(())
}

/// Reads a scalar FP source of width L: XMM r1 low lane or memory.
#[inline(always)]
fn src_scalar<M: GuestMem, const S: u8>(
    cpu: &Cpu,
    m: &mut M,
    i: &Insn<M>,
    wide: bool,
) -> Result<u64, Exit> {
    if S == REG {
        let v = cpu.xmm[i.r1 as usize & 15] as u64;
        Ok(if wide { v } else { v & 0xffff_ffff })
    } else {
        let ea = i.ea(cpu);
        Ok(if wide { m.read_u64(ea)? } else { u64::from(m.read_u32(ea)?) })
    }
}

/// FP arithmetic selectors.
pub mod fa {
    /// ADD.
    pub const ADD: u8 = 0;
    /// SUB.
    pub const SUB: u8 = 1;
    /// MUL.
    pub const MUL: u8 = 2;
    /// DIV.
    pub const DIV: u8 = 3;
    /// MIN.
    pub const MIN: u8 = 4;
    /// MAX.
    pub const MAX: u8 = 5;
    /// SQRT.
    pub const SQRT: u8 = 6;
}

fn fpop(op: u8) -> FpOp {
    match op {
        fa::ADD => FpOp::Add,
        fa::SUB => FpOp::Sub,
        fa::MUL => FpOp::Mul,
        fa::DIV => FpOp::Div,
        fa::MIN => FpOp::Min,
        fa::MAX => FpOp::Max,
        _ => FpOp::Sqrt,
    }
}

/// Lane width in bits of an SSE element format.
trait LaneBits: Lane {
    const W: u32;
}
impl LaneBits for F32 {
    const W: u32 = 32;
}
impl LaneBits for F64 {
    const W: u32 = 64;
}

/// Packed (PACKED) or scalar FP arithmetic on XMM r0 with the source.
#[allow(private_bounds)]
pub fn fp_arith<M: GuestMem, L: LaneBits, const OP: u8, const PACKED: bool, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let d = i.r0 as usize & 15;
    let a = cpu.xmm[d];
    let op = fpop(OP);
    let mut mx = cpu.mxcsr;
    let r = if PACKED {
        let b = src128::<M, S, true>(cpu, m, i)?;
        map2(a, b, L::W, |x, y| softfp::arith::<L>(op, x, y, &mut mx))
    } else {
        let b = src_scalar::<M, S>(cpu, m, i, L::W == 64)?;
        let lm = if L::W == 64 { u128::from(u64::MAX) } else { 0xffff_ffff };
        let x = lane(a, L::W, 0);
        (a & !lm) | u128::from(softfp::arith::<L>(op, x, b, &mut mx))
    };
    cpu.mxcsr = mx;
    cpu.xmm[d] = r;
    Ok(())
}

/// CMPPS/CMPPD/CMPSS/CMPSD with the predicate in the immediate (0..7).
#[allow(private_bounds)]
pub fn fp_cmp<M: GuestMem, L: LaneBits, const PACKED: bool, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    use std::cmp::Ordering::*;
    let pred = (i.imm & 7) as u8;
    let signaling = matches!(pred, 1 | 2 | 5 | 6);
    let mut mx = cpu.mxcsr;
    let mut f = |x: u64, y: u64| -> u64 {
        let o = softfp::compare::<L>(x, y, signaling, &mut mx);
        let t = match pred {
            0 => o == Some(Equal),
            1 => o == Some(Less),
            2 => matches!(o, Some(Less | Equal)),
            3 => o.is_none(),
            4 => o != Some(Equal),
            5 => o != Some(Less),
            6 => !matches!(o, Some(Less | Equal)),
            _ => o.is_some(),
        };
        if t {
            u64::MAX
        } else {
            0
        }
    };
    let d = i.r0 as usize & 15;
    let a = cpu.xmm[d];
    let r = if PACKED {
        let b = src128::<M, S, true>(cpu, m, i)?;
        map2(a, b, L::W, f)
    } else {
        let b = src_scalar::<M, S>(cpu, m, i, L::W == 64)?;
        let lm = if L::W == 64 { u128::from(u64::MAX) } else { 0xffff_ffff };
        (a & !lm) | (u128::from(f(lane(a, L::W, 0), b)) & lm)
    };
    cpu.mxcsr = mx;
    cpu.xmm[d] = r;
    Ok(())
}

/// COMISS/COMISD (SIGNALING) and UCOMISS/UCOMISD: ZF, PF, CF from the comparison.
#[allow(private_bounds)]
pub fn comis<M: GuestMem, L: LaneBits, const SIGNALING: bool, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let a = lane(cpu.xmm[i.r0 as usize & 15], L::W, 0);
    let b = src_scalar::<M, S>(cpu, m, i, L::W == 64)?;
    let mut mx = cpu.mxcsr;
    let bits = match softfp::compare::<L>(a, b, SIGNALING, &mut mx) {
        None => ZF | PF | CF,
        Some(std::cmp::Ordering::Less) => CF,
        Some(std::cmp::Ordering::Equal) => ZF,
        Some(std::cmp::Ordering::Greater) => 0,
    };
    cpu.mxcsr = mx;
    cpu.flags.set_status(bits);
    Ok(())
}

/// Conversion selectors.
#[allow(missing_docs)]
pub mod cv {
    pub const SI2SS: u8 = 0;
    pub const SI2SD: u8 = 1;
    pub const SS2SI: u8 = 2;
    pub const SD2SI: u8 = 3;
    pub const TSS2SI: u8 = 4;
    pub const TSD2SI: u8 = 5;
    pub const SS2SD: u8 = 6;
    pub const SD2SS: u8 = 7;
    pub const DQ2PS: u8 = 8;
    pub const PS2DQ: u8 = 9;
    pub const TPS2DQ: u8 = 10;
    pub const DQ2PD: u8 = 11;
    pub const PD2DQ: u8 = 12;
    pub const TPD2DQ: u8 = 13;
    pub const PS2PD: u8 = 14;
    pub const PD2PS: u8 = 15;
}

/// Conversions between integers, singles and doubles. `Insn::sz` is the GPR width for
/// the forms with a general-purpose register (2 = 32 bits, 3 = 64 bits).
pub fn cvt<M: GuestMem, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let mut mx = cpu.mxcsr;
    let d = i.r0 as usize & 15;
    let ibits = if i.sz == 3 { 64 } else { 32 };
    match OP {
        cv::SI2SS | cv::SI2SD => {
            let v = if S == REG {
                cpu.gpr[i.r1 as usize & 15]
            } else if ibits == 64 {
                m.read_u64(i.ea(cpu))?
            } else {
                u64::from(m.read_u32(i.ea(cpu))?)
            };
            let v = if ibits == 64 { v as i64 } else { i64::from(v as u32 as i32) };
            cpu.xmm[d] = if OP == cv::SI2SS {
                (cpu.xmm[d] & !0xffff_ffffu128) | u128::from(softfp::from_int::<F32>(v, &mut mx))
            } else {
                (cpu.xmm[d] & !u128::from(u64::MAX))
                    | u128::from(softfp::from_int::<F64>(v, &mut mx))
            };
        }
        cv::SS2SI | cv::TSS2SI | cv::SD2SI | cv::TSD2SI => {
            let wide = OP == cv::SD2SI || OP == cv::TSD2SI;
            let x = src_scalar::<M, S>(cpu, m, i, wide)?;
            let t = OP == cv::TSS2SI || OP == cv::TSD2SI;
            let r = if wide {
                softfp::to_int::<F64>(x, ibits, t, &mut mx)
            } else {
                softfp::to_int::<F32>(x, ibits, t, &mut mx)
            };
            cpu.gpr[d] = r;
        }
        cv::SS2SD => {
            let x = src_scalar::<M, S>(cpu, m, i, false)?;
            let r = softfp::convert::<F32, F64>(x, &mut mx);
            cpu.xmm[d] = (cpu.xmm[d] & !u128::from(u64::MAX)) | u128::from(r);
        }
        cv::SD2SS => {
            let x = src_scalar::<M, S>(cpu, m, i, true)?;
            let r = softfp::convert::<F64, F32>(x, &mut mx);
            cpu.xmm[d] = (cpu.xmm[d] & !0xffff_ffffu128) | u128::from(r);
        }
        cv::DQ2PS => {
            let b = src128::<M, S, true>(cpu, m, i)?;
            cpu.xmm[d] = map2(b, 0, 32, |x, _| softfp::from_int::<F32>(sx(x, 32), &mut mx));
        }
        cv::PS2DQ | cv::TPS2DQ => {
            let b = src128::<M, S, true>(cpu, m, i)?;
            let t = OP == cv::TPS2DQ;
            cpu.xmm[d] = map2(b, 0, 32, |x, _| softfp::to_int::<F32>(x, 32, t, &mut mx));
        }
        cv::DQ2PD => {
            let b = if S == REG {
                cpu.xmm[i.r1 as usize & 15]
            } else {
                u128::from(m.read_u64(i.ea(cpu))?)
            };
            let lo = softfp::from_int::<F64>(sx(lane(b, 32, 0), 32), &mut mx);
            let hi = softfp::from_int::<F64>(sx(lane(b, 32, 1), 32), &mut mx);
            cpu.xmm[d] = u128::from(lo) | (u128::from(hi) << 64);
        }
        cv::PD2DQ | cv::TPD2DQ => {
            let b = src128::<M, S, true>(cpu, m, i)?;
            let t = OP == cv::TPD2DQ;
            let lo = softfp::to_int::<F64>(lane(b, 64, 0), 32, t, &mut mx);
            let hi = softfp::to_int::<F64>(lane(b, 64, 1), 32, t, &mut mx);
            cpu.xmm[d] = u128::from(lo) | (u128::from(hi) << 32);
        }
        cv::PS2PD => {
            let b = if S == REG {
                cpu.xmm[i.r1 as usize & 15]
            } else {
                u128::from(m.read_u64(i.ea(cpu))?)
            };
            let lo = softfp::convert::<F32, F64>(lane(b, 32, 0), &mut mx);
            let hi = softfp::convert::<F32, F64>(lane(b, 32, 1), &mut mx);
            cpu.xmm[d] = u128::from(lo) | (u128::from(hi) << 64);
        }
        _ => {
            let b = src128::<M, S, true>(cpu, m, i)?;
            let lo = softfp::convert::<F64, F32>(lane(b, 64, 0), &mut mx);
            let hi = softfp::convert::<F64, F32>(lane(b, 64, 1), &mut mx);
            cpu.xmm[d] = u128::from(lo) | (u128::from(hi) << 32);
        }
    }
    cpu.mxcsr = mx;
    Ok(())
}

/// LDMXCSR (LOAD) and STMXCSR m32. Reserved bits set: #GP.
pub fn mxcsr<M: GuestMem, const LOAD: bool>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let ea = i.ea(cpu);
    if LOAD {
        let v = m.read_u32(ea)?;
        if v & !0xffff != 0 {
            return Err(gp());
        }
        cpu.mxcsr = v;
    } else {
        m.write_u32(ea, cpu.mxcsr)?;
    }
    Ok(())
}

/// RCPPS/RCPSS (RSQRT = false) and RSQRTPS/RSQRTSS: hardware gives a 12-bit
/// approximation whose exact bits differ between vendors; this returns the correctly
/// rounded value truncated to 12 fraction bits, within the documented error bound.
/// Special operands follow the SDM: denormals count as zeros (giving an infinity of
/// their sign), tiny reciprocals flush to a zero of the operand's sign, RSQRT of a
/// negative number is the QNaN indefinite, NaNs come back quieted, and MXCSR is
/// neither read nor written.
pub fn rcp<M: GuestMem, const RSQRT: bool, const PACKED: bool, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    const INDEFINITE: u32 = 0xffc0_0000;
    let f = |x: u64| -> u64 {
        let x = x as u32;
        let sign = x & 0x8000_0000;
        let exp = (x >> 23) & 0xff;
        let r = if exp == 0xff && x & 0x7f_ffff != 0 {
            x | 0x40_0000
        } else if exp == 0xff {
            // 1/inf = 0; 1/sqrt(+inf) = +0, 1/sqrt(-inf) is invalid.
            if RSQRT && sign != 0 {
                INDEFINITE
            } else {
                sign
            }
        } else if exp == 0 {
            sign | 0x7f80_0000
        } else if RSQRT && sign != 0 {
            INDEFINITE
        } else {
            let v = f32::from_bits(x);
            let b = if RSQRT { 1.0 / v.sqrt() } else { 1.0 / v }.to_bits();
            if (b >> 23) & 0xff == 0 {
                sign
            } else {
                b & !0x7ff
            }
        };
        u64::from(r)
    };
    let d = i.r0 as usize & 15;
    if PACKED {
        let b = src128::<M, S, true>(cpu, m, i)?;
        cpu.xmm[d] = map2(b, 0, 32, |x, _| f(x));
    } else {
        let b = src_scalar::<M, S>(cpu, m, i, false)?;
        cpu.xmm[d] = (cpu.xmm[d] & !0xffff_ffffu128) | u128::from(f(b));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_and_pack() {
        let a = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100u128;
        let b = 0x1f1e_1d1c_1b1a_1918_1716_1514_1312_1110u128;
        assert_eq!(interleave(a, b, 8, false) & 0xffff_ffff, 0x1101_1000);
        assert_eq!(pint_apply(pi::PUNPCKLQDQ, a, b), (a & u128::from(u64::MAX)) | (b << 64));
        let w = pint_apply(pi::PACKUSWB, 0x0000_7fff_8000_0100u128, 0);
        assert_eq!(w & 0xffff_ffff, 0x00ff_00ff);
    }

    #[test]
    fn compares_and_sad() {
        let r = pint_apply(pi::PCMPEQB, 0x0102u128, 0x0103u128);
        assert_eq!(r & 0xffff, 0xff00);
        let s = pint_apply(pi::PSADBW, 0x0a, 0x03);
        assert_eq!(s, 7);
    }
}
