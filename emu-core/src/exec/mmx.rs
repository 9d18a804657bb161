//! MMX (Intel SDM vol. 1 ch. 9) and the SSE/SSE2 instructions that operate on MMX
//! registers. The eight 64-bit MMX registers alias the significands of the x87 physical
//! registers R0..R7 (not ST(i): TOP does not matter). Every MMX instruction except EMMS
//! sets TOP to 0 and every tag to valid; writing an MMX register also sets the sign and
//! exponent bits of its x87 register to all ones; EMMS marks every register empty (and
//! sets TOP to 0 too).
//! Memory operands have no alignment requirement (CVTPD2PI/CVTTPD2PI read an m128, which
//! must be 16-byte aligned like any legacy SSE m128 operand). The packed operations reuse
//! the SSE lane arithmetic on the low 64 bits.

use crate::cpu::{Cpu, Exception, Exit};
use crate::exec::sse::{interleave, lane, pack, pi, pint_apply, sat_s, sat_u};
use crate::insn::{loc::*, Insn, F_ADDR32};
use crate::mem::GuestMem;
use crate::softfp::{self, F32, F64};

/// Reads the 64-bit source: MMX register r1 or an m64 (an m32 for the PUNPCKL forms,
/// whose memory operand is the low half only).
#[inline(always)]
fn src64<M: GuestMem, const S: u8>(
    cpu: &Cpu,
    m: &mut M,
    i: &Insn<M>,
    m32: bool,
) -> Result<u64, Exit> {
    if S == REG {
        Ok(cpu.fpu.mm(i.r1))
    } else if m32 {
        Ok(u64::from(m.read_u32(i.ea(cpu))?))
    } else {
        Ok(m.read_u64(i.ea(cpu))?)
    }
}

/// The 64-bit result of a packed operation (an [`pi`] selector) on MMX operands.
#[inline(always)]
pub fn apply(op: u8, a: u64, b: u64) -> u64 {
    let (a, b) = (u128::from(a), u128::from(b));
    let r = match op {
        // The pack result is a's lanes then b's, in 64 bits.
        pi::PACKSSWB => pack(a | (b << 64), 0, 16, sat_s),
        pi::PACKSSDW => pack(a | (b << 64), 0, 32, sat_s),
        pi::PACKUSWB => pack(a | (b << 64), 0, 16, sat_u),
        // High unpacks interleave the upper halves.
        pi::PUNPCKHBW => interleave(a >> 32, b >> 32, 8, false),
        pi::PUNPCKHWD => interleave(a >> 32, b >> 32, 16, false),
        pi::PUNPCKHDQ => interleave(a >> 32, b >> 32, 32, false),
        _ => pint_apply(op, a, b),
    };
    r as u64
}

/// Packed integer, logic, unpack, pack and shift-by-register operations:
/// MM r0 = op(MM r0, MM r1 / m64). `Insn::cc` is 1 for the m32 PUNPCKL forms.
pub fn pint<M: GuestMem, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let b = src64::<M, S>(cpu, m, i, i.cc == 1)?;
    let r = apply(OP, cpu.fpu.mm(i.r0), b);
    cpu.fpu.mmx_enter();
    cpu.fpu.set_mm(i.r0, r);
    Ok(())
}

/// PSRLW/PSRLD/PSRLQ/PSRAW/PSRAD/PSLLW/PSLLD/PSLLQ mm, imm8.
pub fn pshift_imm<M: GuestMem, const OP: u8>(
    cpu: &mut Cpu,
    _m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let r = apply(OP, cpu.fpu.mm(i.r0), i.imm & 0xff);
    cpu.fpu.mmx_enter();
    cpu.fpu.set_mm(i.r0, r);
    Ok(())
}

/// Move selectors.
pub mod mv {
    /// MOVD/MOVQ mm, r/m32 or r/m64 (`Insn::sz` 2 or 3; zero-extended).
    pub const TO_MM: u8 = 0;
    /// MOVD/MOVQ r/m32 or r/m64, mm.
    pub const FROM_MM: u8 = 1;
    /// MOVQ mm, mm/m64.
    pub const MM_MM: u8 = 2;
    /// MOVQ m64, mm and MOVNTQ.
    pub const STORE: u8 = 3;
    /// MOVQ2DQ xmm, mm.
    pub const TO_XMM: u8 = 4;
    /// MOVDQ2Q mm, xmm.
    pub const FROM_XMM: u8 = 5;
}

/// Moves to, from and between MMX registers.
pub fn mov<M: GuestMem, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let wide = i.sz == 3;
    match OP {
        mv::TO_MM => {
            let v = if S == REG {
                let g = cpu.gpr[i.r1 as usize & 15];
                if wide {
                    g
                } else {
                    g & 0xffff_ffff
                }
            } else if wide {
                m.read_u64(i.ea(cpu))?
            } else {
                u64::from(m.read_u32(i.ea(cpu))?)
            };
            cpu.fpu.mmx_enter();
            cpu.fpu.set_mm(i.r0, v);
        }
        mv::FROM_MM => {
            let v = cpu.fpu.mm(i.r1);
            if S == REG {
                cpu.gpr[i.r0 as usize & 15] = if wide { v } else { v & 0xffff_ffff };
            } else if wide {
                m.write_u64(i.ea(cpu), v)?;
            } else {
                m.write_u32(i.ea(cpu), v as u32)?;
            }
            cpu.fpu.mmx_enter();
        }
        mv::MM_MM => {
            let v = src64::<M, S>(cpu, m, i, false)?;
            cpu.fpu.mmx_enter();
            cpu.fpu.set_mm(i.r0, v);
        }
        mv::STORE => {
            m.write_u64(i.ea(cpu), cpu.fpu.mm(i.r1))?;
            cpu.fpu.mmx_enter();
        }
        mv::TO_XMM => {
            cpu.xmm[i.r0 as usize & 15] = u128::from(cpu.fpu.mm(i.r1));
            cpu.fpu.mmx_enter();
        }
        _ => {
            let v = cpu.xmm[i.r1 as usize & 15] as u64;
            cpu.fpu.mmx_enter();
            cpu.fpu.set_mm(i.r0, v);
        }
    }
    Ok(())
}

/// EMMS: every x87 register empty. TOP becomes 0 as well, as on the hosts the
/// differential tests run on (the SDM only mentions the tags).
pub fn emms<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    cpu.fpu.top = 0;
    cpu.fpu.empty = 0xff;
    Ok(())
}

/// PSHUFW mm, mm/m64, imm8.
pub fn pshufw<M: GuestMem, const S: u8>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let b = u128::from(src64::<M, S>(cpu, m, i, false)?);
    let imm = i.imm as u32;
    let mut r = 0u64;
    for k in 0..4 {
        r |= lane(b, 16, (imm >> (2 * k)) & 3) << (16 * k);
    }
    cpu.fpu.mmx_enter();
    cpu.fpu.set_mm(i.r0, r);
    Ok(())
}

/// PEXTRW r32/r64, mm, imm8: the selected word, zero-extended.
pub fn pextrw<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = (cpu.fpu.mm(i.r1) >> (16 * (i.imm & 3))) & 0xffff;
    cpu.gpr[i.r0 as usize & 15] = v;
    cpu.fpu.mmx_enter();
    Ok(())
}

/// PINSRW mm, r32/m16, imm8.
pub fn pinsrw<M: GuestMem, const S: u8>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = if S == REG {
        cpu.gpr[i.r1 as usize & 15] & 0xffff
    } else {
        u64::from(m.read_u16(i.ea(cpu))?)
    };
    let k = 16 * (i.imm & 3);
    let r = (cpu.fpu.mm(i.r0) & !(0xffff << k)) | (v << k);
    cpu.fpu.mmx_enter();
    cpu.fpu.set_mm(i.r0, r);
    Ok(())
}

/// PMOVMSKB r32/r64, mm: the byte sign bits.
pub fn pmovmskb<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = cpu.fpu.mm(i.r1);
    let mut r = 0u64;
    for k in 0..8 {
        r |= ((v >> (8 * k + 7)) & 1) << k;
    }
    cpu.gpr[i.r0 as usize & 15] = r;
    cpu.fpu.mmx_enter();
    Ok(())
}

/// MASKMOVQ mm1, mm2: stores the bytes of mm1 whose mask byte in mm2 has its top bit set
/// to DS:RDI (EDI with a 0x67 prefix; the segment may be overridden). Every selected
/// byte is checked for writability before any is stored, so a fault stores nothing.
pub fn maskmovq<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let mut off = cpu.gpr[7];
    if i.flags & F_ADDR32 != 0 {
        off &= 0xffff_ffff;
    }
    let base = off.wrapping_add(cpu.seg_base[i.seg as usize % 3]);
    let (v, mask) = (cpu.fpu.mm(i.r0), cpu.fpu.mm(i.r1));
    for k in 0..8 {
        if (mask >> (8 * k + 7)) & 1 != 0 {
            m.probe_write(base.wrapping_add(k))?;
        }
    }
    for k in 0..8 {
        if (mask >> (8 * k + 7)) & 1 != 0 {
            m.write_u8(base.wrapping_add(k), (v >> (8 * k)) as u8)?;
        }
    }
    cpu.fpu.mmx_enter();
    Ok(())
}

/// MASKMOVDQU xmm1, xmm2: MASKMOVQ's byte-masked store of 16 bytes from XMM registers
/// (no x87 state involved).
pub fn maskmovdqu<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let mut off = cpu.gpr[7];
    if i.flags & F_ADDR32 != 0 {
        off &= 0xffff_ffff;
    }
    let base = off.wrapping_add(cpu.seg_base[i.seg as usize % 3]);
    let (v, mask) = (cpu.xmm[i.r0 as usize & 15], cpu.xmm[i.r1 as usize & 15]);
    for k in 0..16 {
        if (mask >> (8 * k + 7)) & 1 != 0 {
            m.probe_write(base.wrapping_add(k))?;
        }
    }
    for k in 0..16 {
        if (mask >> (8 * k + 7)) & 1 != 0 {
            m.write_u8(base.wrapping_add(k), (v >> (8 * k)) as u8)?;
        }
    }
    Ok(())
}

/// Conversion selectors between MMX and XMM registers.
pub mod cv {
    /// CVTPI2PS xmm, mm/m64.
    pub const PI2PS: u8 = 0;
    /// CVTPI2PD xmm, mm/m64.
    pub const PI2PD: u8 = 1;
    /// CVTPS2PI mm, xmm/m64.
    pub const PS2PI: u8 = 2;
    /// CVTTPS2PI mm, xmm/m64.
    pub const TPS2PI: u8 = 3;
    /// CVTPD2PI mm, xmm/m128.
    pub const PD2PI: u8 = 4;
    /// CVTTPD2PI mm, xmm/m128.
    pub const TPD2PI: u8 = 5;
}

/// CVTPI2PS, CVTPI2PD, CVT(T)PS2PI, CVT(T)PD2PI. The integer-to-float forms make the
/// MMX transition only with an MMX register source (SDM vol. 2 "CVTPI2PS": a memory
/// source leaves the x87 state alone); the float-to-integer forms always make it.
pub fn cvt<M: GuestMem, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let mut mx = cpu.mxcsr;
    match OP {
        cv::PI2PS | cv::PI2PD => {
            let b = src64::<M, S>(cpu, m, i, false)?;
            let lo = crate::exec::sse::sx(b & 0xffff_ffff, 32);
            let hi = crate::exec::sse::sx(b >> 32, 32);
            let d = i.r0 as usize & 15;
            cpu.xmm[d] = if OP == cv::PI2PS {
                let r = softfp::from_int::<F32>(lo, &mut mx)
                    | (softfp::from_int::<F32>(hi, &mut mx) << 32);
                (cpu.xmm[d] & !u128::from(u64::MAX)) | u128::from(r)
            } else {
                let l = softfp::from_int::<F64>(lo, &mut mx);
                let h = softfp::from_int::<F64>(hi, &mut mx);
                u128::from(l) | (u128::from(h) << 64)
            };
            if S == REG {
                cpu.fpu.mmx_enter();
            }
        }
        cv::PS2PI | cv::TPS2PI => {
            let b =
                if S == REG { cpu.xmm[i.r1 as usize & 15] as u64 } else { m.read_u64(i.ea(cpu))? };
            let t = OP == cv::TPS2PI;
            let lo = softfp::to_int::<F32>(b & 0xffff_ffff, 32, t, &mut mx) & 0xffff_ffff;
            let hi = softfp::to_int::<F32>(b >> 32, 32, t, &mut mx) & 0xffff_ffff;
            cpu.fpu.mmx_enter();
            cpu.fpu.set_mm(i.r0, lo | (hi << 32));
        }
        _ => {
            let b = if S == REG {
                cpu.xmm[i.r1 as usize & 15]
            } else {
                let ea = i.ea(cpu);
                if ea & 15 != 0 {
                    return Err(Exit::Exception(Exception::GeneralProtection));
                }
                m.read_u128(ea)?
            };
            let t = OP == cv::TPD2PI;
            let lo = softfp::to_int::<F64>(b as u64, 32, t, &mut mx) & 0xffff_ffff;
            let hi = softfp::to_int::<F64>((b >> 64) as u64, 32, t, &mut mx) & 0xffff_ffff;
            cpu.fpu.mmx_enter();
            cpu.fpu.set_mm(i.r0, lo | (hi << 32));
        }
    }
    cpu.mxcsr = mx;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_high_unpacks_use_64_bit_halves() {
        // PACKSSWB: a's four words then b's, saturated.
        let a = 0x8000_7fff_0100_ff80u64;
        let b = 0x0001_0002_fffe_0003u64;
        assert_eq!(apply(pi::PACKSSWB, a, b), 0x0102_fe03_807f_7f80);
        assert_eq!(
            apply(pi::PUNPCKHBW, 0x0706_0504_0000_0000, 0x1716_1514_0000_0000),
            0x1707_1606_1505_1404
        );
        assert_eq!(
            apply(pi::PUNPCKLWD, 0x0000_0000_0302_0100, 0x0000_0000_1312_1110),
            0x1312_0302_1110_0100
        );
    }

    #[test]
    fn writes_alias_the_x87_registers() {
        let mut cpu = Cpu::default();
        cpu.fpu.top = 5;
        cpu.fpu.set_mm(3, 0x1234);
        cpu.fpu.mmx_enter();
        assert_eq!(cpu.fpu.regs[3], (0xffffu128 << 64) | 0x1234);
        assert_eq!((cpu.fpu.top, cpu.fpu.empty), (0, 0));
    }
}
