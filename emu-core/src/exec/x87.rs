//! x87 instructions. Arithmetic runs in 80-bit precision with the control word's rounding
//! (and precision control), setting the sticky exception bits of the status word.
//! Unmasked x87 exceptions are not delivered (Linux starts programs with all masked).
//! Transcendentals (FSIN, FCOS, FPTAN, FPATAN, F2XM1, FYL2X, FYL2XP1) are computed in
//! double-double arithmetic and rounded to 64 bits; hardware results may differ in the
//! last bit, as they also do between Intel and AMD.

use crate::cpu::{Cpu, Exit};
use crate::flags::{CF, PF, ZF};
use crate::insn::{loc::*, Insn};
use crate::mem::GuestMem;
use crate::softfp::{flags_of, round_of};
use crate::x87::{indefinite, F80, SW_C0, SW_C1, SW_C2, SW_C3, SW_IE};
use rustc_apfloat::ieee::{Double, Single};
use rustc_apfloat::{Float, FloatConvert, Round, Status, StatusAnd};

#[inline]
fn rc(cpu: &Cpu) -> Round {
    round_of(u32::from(cpu.fpu.cw >> 10))
}

/// Records the exception flags of an operation's status.
fn note(cpu: &mut Cpu, st: Status) {
    cpu.fpu.sw |= flags_of(st) as u16;
}

/// Rounds the significand to the precision-control width (bits 8-9 of the control word).
fn apply_pc(cpu: &mut Cpu, v: F80) -> F80 {
    let pc = (cpu.fpu.cw >> 8) & 3;
    let n = match pc {
        0 => 24,
        2 => 53,
        _ => return v,
    };
    let bits = v.to_bits();
    let sig = bits as u64;
    let se = (bits >> 64) as u16;
    if se & 0x7fff == 0x7fff || sig == 0 {
        return v;
    }
    let drop = 64 - n;
    let lowmask = (1u64 << drop) - 1;
    let rem = sig & lowmask;
    if rem == 0 {
        return v;
    }
    cpu.fpu.sw |= crate::softfp::PE as u16;
    let neg = se & 0x8000 != 0;
    let half = 1u64 << (drop - 1);
    let base = sig & !lowmask;
    let up = match rc(cpu) {
        Round::TowardZero => false,
        Round::TowardNegative => neg,
        Round::TowardPositive => !neg,
        _ => rem > half || (rem == half && (base >> drop) & 1 == 1),
    };
    let (mut s, mut e) = (base, se);
    if up {
        let (ns, carry) = s.overflowing_add(1 << drop);
        s = ns;
        if carry {
            s = 1 << 63;
            e += 1;
        }
    }
    F80::from_bits((u128::from(e) << 64) | u128::from(s))
}

fn finish(cpu: &mut Cpu, r: StatusAnd<F80>) -> F80 {
    note(cpu, r.status);
    if r.status.contains(Status::INVALID_OP) {
        return indefinite();
    }
    apply_pc(cpu, r.value)
}

fn is_snan(v: F80) -> bool {
    v.is_signaling()
}

/// x87 NaN rule for two operands: the NaN with the larger significand, quieted.
fn nan_result(cpu: &mut Cpu, a: F80, b: F80) -> Option<F80> {
    if !(a.is_nan() || b.is_nan()) {
        return None;
    }
    if is_snan(a) || is_snan(b) {
        cpu.fpu.sw |= SW_IE as u16;
    }
    let quiet = |v: F80| F80::from_bits(v.to_bits() | (1u128 << 62));
    Some(match (a.is_nan(), b.is_nan()) {
        (true, true) => {
            let (sa, sb) = (a.to_bits() as u64 & !(1 << 62), b.to_bits() as u64 & !(1 << 62));
            if sa >= sb {
                quiet(a)
            } else {
                quiet(b)
            }
        }
        (true, false) => quiet(a),
        _ => quiet(b),
    })
}

/// Memory operand formats.
#[allow(missing_docs)]
pub mod mf {
    pub const F32: u8 = 0;
    pub const F64: u8 = 1;
    pub const F80: u8 = 2;
    pub const I16: u8 = 3;
    pub const I32: u8 = 4;
    pub const I64: u8 = 5;
}

fn load_mem<M: GuestMem>(cpu: &mut Cpu, m: &mut M, ea: u64, fmt: u8) -> Result<F80, Exit> {
    let mut loses = false;
    Ok(match fmt {
        mf::F32 => {
            let v = Single::from_bits(u128::from(m.read_u32(ea)?));
            if v.is_signaling() {
                cpu.fpu.sw |= SW_IE;
            }
            if v.is_denormal() {
                cpu.fpu.sw |= 2;
            }
            v.convert(&mut loses).value
        }
        mf::F64 => {
            let v = Double::from_bits(u128::from(m.read_u64(ea)?));
            if v.is_signaling() {
                cpu.fpu.sw |= SW_IE;
            }
            if v.is_denormal() {
                cpu.fpu.sw |= 2;
            }
            v.convert(&mut loses).value
        }
        mf::F80 => {
            let lo = m.read_u64(ea)?;
            let hi = m.read_u16(ea.wrapping_add(8))?;
            F80::from_bits(u128::from(lo) | (u128::from(hi) << 64))
        }
        mf::I16 => F80::from_i128(i128::from(m.read_u16(ea)? as i16)).value,
        mf::I32 => F80::from_i128(i128::from(m.read_u32(ea)? as i32)).value,
        _ => F80::from_i128(i128::from(m.read_u64(ea)? as i64)).value,
    })
}

/// FLD/FILD from memory.
pub fn fld_mem<M: GuestMem, const FMT: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let v = load_mem(cpu, m, i.ea(cpu), FMT)?;
    // FLD of a signaling NaN from m32/m64 delivers it quieted.
    let v = if FMT <= mf::F64 && v.is_nan() { F80::from_bits(v.to_bits() | (1 << 62)) } else { v };
    cpu.fpu.push(v);
    Ok(())
}

/// FLD ST(i).
pub fn fld_st<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = cpu.fpu.st(i.r0);
    cpu.fpu.push(v);
    Ok(())
}

/// Constant loads: 0 FLD1, 1 FLDL2T, 2 FLDL2E, 3 FLDPI, 4 FLDLG2, 5 FLDLN2, 6 FLDZ.
pub fn fld_const<M: GuestMem, const K: u8>(
    cpu: &mut Cpu,
    _m: &mut M,
    _i: &Insn<M>,
) -> Result<(), Exit> {
    // 80-bit images of the constants as the hardware stores them under round-to-nearest.
    let bits: u128 = match K {
        0 => 0x3fff_8000_0000_0000_0000,
        1 => 0x4000_d49a_784b_cd1b_8afe,
        2 => 0x3fff_b8aa_3b29_5c17_f0bc,
        3 => 0x4000_c90f_daa2_2168_c235,
        4 => 0x3ffd_9a20_9a84_fbcf_f799,
        5 => 0x3ffe_b172_17f7_d1cf_79ac,
        _ => 0,
    };
    cpu.fpu.push(F80::from_bits(bits));
    Ok(())
}

fn store_conv<T: Float>(cpu: &mut Cpu, v: F80) -> u128
where
    F80: FloatConvert<T>,
{
    if v.is_nan() {
        if v.is_signaling() {
            cpu.fpu.sw |= SW_IE;
        }
        let mut loses = false;
        let q = F80::from_bits(v.to_bits() | (1 << 62));
        return FloatConvert::<T>::convert(q, &mut loses).value.to_bits();
    }
    let mut loses = false;
    let r: StatusAnd<T> = FloatConvert::<T>::convert_r(v, rc(cpu), &mut loses);
    note(cpu, r.status);
    r.value.to_bits()
}

fn to_int(cpu: &mut Cpu, v: F80, bits: usize, trunc: bool) -> u64 {
    let indefinite = 1u64 << (bits - 1);
    if v.is_nan() || v.is_infinite() {
        cpu.fpu.sw |= SW_IE;
        return indefinite;
    }
    let mut exact = false;
    let round = if trunc { Round::TowardZero } else { rc(cpu) };
    let r = v.to_i128_r(bits, round, &mut exact);
    if r.status.contains(Status::INVALID_OP) {
        cpu.fpu.sw |= SW_IE;
        return indefinite;
    }
    if !exact {
        cpu.fpu.sw |= crate::softfp::PE as u16;
    }
    r.value as u64
}

/// FST/FSTP/FIST/FISTP/FISTTP to memory. `TRUNC` selects FISTTP's truncation.
pub fn fst_mem<M: GuestMem, const FMT: u8, const POP: bool, const TRUNC: bool>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let ea = i.ea(cpu);
    let v = cpu.fpu.st(0);
    match FMT {
        mf::F32 => {
            m.probe_write(ea.wrapping_add(3))?;
            let b = store_conv::<Single>(cpu, v);
            m.write_u32(ea, b as u32)?;
        }
        mf::F64 => {
            m.probe_write(ea.wrapping_add(7))?;
            let b = store_conv::<Double>(cpu, v);
            m.write_u64(ea, b as u64)?;
        }
        mf::F80 => {
            m.probe_write(ea.wrapping_add(9))?;
            let b = v.to_bits();
            m.write_u64(ea, b as u64)?;
            m.write_u16(ea.wrapping_add(8), (b >> 64) as u16)?;
        }
        mf::I16 => {
            m.probe_write(ea.wrapping_add(1))?;
            let r = to_int(cpu, v, 16, TRUNC);
            m.write_u16(ea, r as u16)?;
        }
        mf::I32 => {
            m.probe_write(ea.wrapping_add(3))?;
            let r = to_int(cpu, v, 32, TRUNC);
            m.write_u32(ea, r as u32)?;
        }
        _ => {
            m.probe_write(ea.wrapping_add(7))?;
            let r = to_int(cpu, v, 64, TRUNC);
            m.write_u64(ea, r)?;
        }
    }
    if POP {
        cpu.fpu.pop();
    }
    Ok(())
}

/// FST/FSTP ST(i).
pub fn fst_st<M: GuestMem, const POP: bool>(
    cpu: &mut Cpu,
    _m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let v = cpu.fpu.st(0);
    cpu.fpu.set_st(i.r0, v);
    if POP {
        cpu.fpu.pop();
    }
    Ok(())
}

/// Arithmetic selectors.
#[allow(missing_docs)]
pub mod ar {
    pub const ADD: u8 = 0;
    pub const MUL: u8 = 1;
    pub const SUB: u8 = 4;
    pub const SUBR: u8 = 5;
    pub const DIV: u8 = 6;
    pub const DIVR: u8 = 7;
}

/// Operand forms of the arithmetic instructions.
#[allow(missing_docs)]
pub mod af {
    /// ST(0) = ST(0) op mem (format in `Insn::sz` as an `mf` code).
    pub const ST0_MEM: u8 = 0;
    /// ST(0) = ST(0) op ST(i).
    pub const ST0_STI: u8 = 1;
    /// ST(i) = ST(i) op ST(0).
    pub const STI_ST0: u8 = 2;
    /// ST(i) = ST(i) op ST(0), then pop.
    pub const STI_ST0_POP: u8 = 3;
}

fn arith_op(cpu: &mut Cpu, op: u8, a: F80, b: F80) -> F80 {
    if let Some(n) = nan_result(cpu, a, b) {
        return n;
    }
    if a.is_denormal() || b.is_denormal() {
        cpu.fpu.sw |= 2;
    }
    let round = rc(cpu);
    let r = match op {
        ar::ADD => a.add_r(b, round),
        ar::MUL => a.mul_r(b, round),
        ar::SUB => a.sub_r(b, round),
        ar::SUBR => b.sub_r(a, round),
        ar::DIV => a.div_r(b, round),
        _ => b.div_r(a, round),
    };
    finish(cpu, r)
}

/// FADD, FMUL, FSUB, FSUBR, FDIV, FDIVR and their P and I forms.
pub fn farith<M: GuestMem, const OP: u8, const FORM: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    match FORM {
        af::ST0_MEM => {
            let b = load_mem(cpu, m, i.ea(cpu), i.sz)?;
            let a = cpu.fpu.st(0);
            let r = arith_op(cpu, OP, a, b);
            cpu.fpu.set_st(0, r);
        }
        af::ST0_STI => {
            let (a, b) = (cpu.fpu.st(0), cpu.fpu.st(i.r0));
            let r = arith_op(cpu, OP, a, b);
            cpu.fpu.set_st(0, r);
        }
        _ => {
            let (a, b) = (cpu.fpu.st(i.r0), cpu.fpu.st(0));
            let r = arith_op(cpu, OP, a, b);
            cpu.fpu.set_st(i.r0, r);
            if FORM == af::STI_ST0_POP {
                cpu.fpu.pop();
            }
        }
    }
    Ok(())
}

fn compare(cpu: &mut Cpu, a: F80, b: F80, unordered_ok: bool) -> Option<std::cmp::Ordering> {
    if a.is_nan() || b.is_nan() {
        if !unordered_ok || is_snan(a) || is_snan(b) {
            cpu.fpu.sw |= SW_IE;
        }
        return None;
    }
    a.partial_cmp(&b)
}

fn set_cc(cpu: &mut Cpu, o: Option<std::cmp::Ordering>) {
    let cc = match o {
        None => SW_C3 | SW_C2 | SW_C0,
        Some(std::cmp::Ordering::Less) => SW_C0,
        Some(std::cmp::Ordering::Equal) => SW_C3,
        Some(std::cmp::Ordering::Greater) => 0,
    };
    cpu.fpu.sw = (cpu.fpu.sw & !(SW_C0 | SW_C1 | SW_C2 | SW_C3)) | cc;
}

/// FCOM/FCOMP/FCOMPP/FUCOM*/FICOM*: S is MEM (format in `sz`) or REG (ST(r0));
/// POPS pops after; UNORD is the quiet (FUCOM) variant.
pub fn fcom<M: GuestMem, const S: u8, const POPS: u8, const UNORD: bool>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let b = if S == MEM { load_mem(cpu, m, i.ea(cpu), i.sz)? } else { cpu.fpu.st(i.r0) };
    let a = cpu.fpu.st(0);
    let o = compare(cpu, a, b, UNORD);
    set_cc(cpu, o);
    for _ in 0..POPS {
        cpu.fpu.pop();
    }
    Ok(())
}

/// FCOMI/FCOMIP/FUCOMI/FUCOMIP: EFLAGS from comparing ST(0) with ST(r0).
pub fn fcomi<M: GuestMem, const POP: bool, const UNORD: bool>(
    cpu: &mut Cpu,
    _m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let (a, b) = (cpu.fpu.st(0), cpu.fpu.st(i.r0));
    let bits = match compare(cpu, a, b, UNORD) {
        None => ZF | PF | CF,
        Some(std::cmp::Ordering::Less) => CF,
        Some(std::cmp::Ordering::Equal) => ZF,
        Some(std::cmp::Ordering::Greater) => 0,
    };
    cpu.flags.set_status(bits);
    cpu.fpu.sw &= !SW_C1;
    if POP {
        cpu.fpu.pop();
    }
    Ok(())
}

/// FCMOVcc ST(0), ST(r0); `cc`: 0 B, 1 E, 2 BE, 3 U, 4 NB, 5 NE, 6 NBE, 7 NU.
pub fn fcmov<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let f = &cpu.flags;
    let c = match i.cc & 3 {
        0 => f.cf(),
        1 => f.zf(),
        2 => f.cf() || f.zf(),
        _ => f.pf(),
    };
    if c ^ (i.cc & 4 != 0) {
        let v = cpu.fpu.st(i.r0);
        cpu.fpu.set_st(0, v);
    }
    Ok(())
}

/// FXCH ST(r0).
pub fn fxch<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let (a, b) = (cpu.fpu.st(0), cpu.fpu.st(i.r0));
    cpu.fpu.set_st(0, b);
    cpu.fpu.set_st(i.r0, a);
    cpu.fpu.sw &= !SW_C1;
    Ok(())
}

/// Stack/control selectors.
#[allow(missing_docs)]
pub mod ctl {
    pub const FFREE: u8 = 0;
    pub const FINCSTP: u8 = 1;
    pub const FDECSTP: u8 = 2;
    pub const FNCLEX: u8 = 3;
    pub const FNINIT: u8 = 4;
    pub const FNSTSW_AX: u8 = 5;
}

/// FFREE, FINCSTP, FDECSTP, FNCLEX, FNINIT, FNSTSW AX.
pub fn fctl<M: GuestMem, const OP: u8>(
    cpu: &mut Cpu,
    _m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let f = &mut cpu.fpu;
    match OP {
        ctl::FFREE => {
            let p = f.phys(i.r0);
            f.empty |= 1 << p;
        }
        ctl::FINCSTP => f.top = (f.top + 1) & 7,
        ctl::FDECSTP => f.top = (f.top + 7) & 7,
        ctl::FNCLEX => f.sw &= !0x80ff,
        ctl::FNINIT => *f = crate::x87::X87::default(),
        _ => {
            let sw = u64::from(f.status_word());
            cpu.gpr[0] = (cpu.gpr[0] & !0xffff) | sw;
        }
    }
    Ok(())
}

/// Memory-operand control selectors.
#[allow(missing_docs)]
pub mod mctl {
    pub const FNSTSW: u8 = 0;
    pub const FNSTCW: u8 = 1;
    pub const FLDCW: u8 = 2;
    pub const FNSTENV: u8 = 3;
    pub const FLDENV: u8 = 4;
    pub const FXSAVE: u8 = 5;
    pub const FXRSTOR: u8 = 6;
}

/// FNSTSW m16, FNSTCW, FLDCW, FNSTENV, FLDENV (28-byte protected-mode layout),
/// FXSAVE and FXRSTOR (512-byte 64-bit layout, SDM vol. 2 "FXSAVE" table 3-53).
pub fn fmem<M: GuestMem, const OP: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let ea = i.ea(cpu);
    match OP {
        mctl::FNSTSW => m.write_u16(ea, cpu.fpu.status_word())?,
        mctl::FNSTCW => m.write_u16(ea, cpu.fpu.cw)?,
        mctl::FLDCW => cpu.fpu.cw = m.read_u16(ea)? | 0x40,
        mctl::FNSTENV => {
            m.probe_write(ea.wrapping_add(27))?;
            let words = [
                u32::from(cpu.fpu.cw) | 0xffff_0000,
                u32::from(cpu.fpu.status_word()) | 0xffff_0000,
                u32::from(cpu.fpu.tag_word()) | 0xffff_0000,
                0,
                0,
                0,
                0xffff_0000,
            ];
            for (k, w) in words.iter().enumerate() {
                m.write_u32(ea.wrapping_add(4 * k as u64), *w)?;
            }
            // FNSTENV masks all exceptions afterwards.
            cpu.fpu.cw |= 0x3f;
        }
        mctl::FLDENV => {
            let cw = m.read_u16(ea)?;
            let sw = m.read_u16(ea.wrapping_add(4))?;
            let tw = m.read_u16(ea.wrapping_add(8))?;
            cpu.fpu.cw = cw | 0x40;
            cpu.fpu.sw = sw & !(7 << 11);
            cpu.fpu.top = ((sw >> 11) & 7) as u8;
            cpu.fpu.set_tag_word(tw);
        }
        mctl::FXSAVE => {
            if ea & 15 != 0 {
                return Err(Exit::Exception(crate::cpu::Exception::GeneralProtection));
            }
            m.probe_write(ea.wrapping_add(511))?;
            // Abridged tag: bit set = valid (non-empty).
            let ftw = u64::from(!cpu.fpu.empty);
            let w0 = u64::from(cpu.fpu.cw)
                | (u64::from(cpu.fpu.status_word()) << 16)
                | (ftw << 32);
            m.write_u64(ea, w0)?;
            m.write_u64(ea + 8, 0)?;
            m.write_u64(ea + 16, 0)?;
            m.write_u64(ea + 24, u64::from(cpu.mxcsr) | (0xffffu64 << 32))?;
            for k in 0..8u8 {
                let v = cpu.fpu.regs[cpu.fpu.phys(k)];
                m.write_u128(ea + 32 + 16 * u64::from(k), v & ((1u128 << 80) - 1))?;
            }
            for k in 0..16 {
                m.write_u128(ea + 160 + 16 * k as u64, cpu.xmm[k])?;
            }
        }
        _ => {
            if ea & 15 != 0 {
                return Err(Exit::Exception(crate::cpu::Exception::GeneralProtection));
            }
            let w0 = m.read_u64(ea)?;
            let mx = m.read_u32(ea + 24)?;
            if mx & !0xffff != 0 {
                return Err(Exit::Exception(crate::cpu::Exception::GeneralProtection));
            }
            let mut regs = [0u128; 8];
            for (k, r) in regs.iter_mut().enumerate() {
                *r = m.read_u128(ea + 32 + 16 * k as u64)? & ((1u128 << 80) - 1);
            }
            let mut xmm = [0u128; 16];
            for (k, x) in xmm.iter_mut().enumerate() {
                *x = m.read_u128(ea + 160 + 16 * k as u64)?;
            }
            let sw = (w0 >> 16) as u16;
            cpu.fpu.cw = w0 as u16 | 0x40;
            cpu.fpu.sw = sw & !(7 << 11);
            cpu.fpu.top = ((sw >> 11) & 7) as u8;
            cpu.fpu.empty = !((w0 >> 32) as u8);
            for (k, r) in regs.iter().enumerate() {
                let p = cpu.fpu.phys(k as u8);
                cpu.fpu.regs[p] = *r;
            }
            cpu.mxcsr = mx;
            cpu.xmm = xmm;
        }
    }
    Ok(())
}

/// Unary and special selectors.
#[allow(missing_docs)]
pub mod un {
    pub const FCHS: u8 = 0;
    pub const FABS: u8 = 1;
    pub const FTST: u8 = 2;
    pub const FXAM: u8 = 3;
    pub const FSQRT: u8 = 4;
    pub const FRNDINT: u8 = 5;
    pub const FSCALE: u8 = 6;
    pub const FXTRACT: u8 = 7;
    pub const FPREM: u8 = 8;
    pub const FPREM1: u8 = 9;
    pub const F2XM1: u8 = 10;
    pub const FYL2X: u8 = 11;
    pub const FYL2XP1: u8 = 12;
    pub const FPTAN: u8 = 13;
    pub const FPATAN: u8 = 14;
    pub const FSIN: u8 = 15;
    pub const FCOS: u8 = 16;
    pub const FSINCOS: u8 = 17;
}

/// FCHS, FABS, FTST, FXAM, FSQRT, FRNDINT, FSCALE, FXTRACT, FPREM, FPREM1 and the
/// transcendental instructions.
pub fn funary<M: GuestMem, const OP: u8>(
    cpu: &mut Cpu,
    _m: &mut M,
    _i: &Insn<M>,
) -> Result<(), Exit> {
    let clear_c = |cpu: &mut Cpu| cpu.fpu.sw &= !(SW_C0 | SW_C1 | SW_C2 | SW_C3);
    match OP {
        un::FCHS => {
            let a = cpu.fpu.st(0);
            cpu.fpu.set_st(0, -a);
            cpu.fpu.sw &= !SW_C1;
        }
        un::FABS => {
            let a = cpu.fpu.st(0);
            cpu.fpu.set_st(0, a.abs());
            cpu.fpu.sw &= !SW_C1;
        }
        un::FTST => {
            let a = cpu.fpu.st(0);
            let o = compare(cpu, a, F80::ZERO, false);
            set_cc(cpu, o);
        }
        un::FXAM => {
            clear_c(cpu);
            let empty = cpu.fpu.is_empty(0);
            let v = F80::from_bits(cpu.fpu.regs[cpu.fpu.phys(0)]);
            let cls = if empty {
                SW_C3 | SW_C0
            } else if v.is_nan() {
                SW_C0
            } else if v.is_infinite() {
                SW_C2 | SW_C0
            } else if v.is_zero() {
                SW_C3
            } else if v.is_denormal() {
                SW_C3 | SW_C2
            } else if (v.to_bits() >> 63) & 1 == 0 {
                // Unnormal (integer bit clear with non-zero exponent): unsupported.
                0
            } else {
                SW_C2
            };
            let sign = if (v.to_bits() >> 79) & 1 != 0 { SW_C1 } else { 0 };
            cpu.fpu.sw |= cls | sign;
        }
        un::FSQRT => {
            let a = cpu.fpu.st(0);
            let r = sqrt80(cpu, a);
            cpu.fpu.set_st(0, r);
        }
        un::FRNDINT => {
            let a = cpu.fpu.st(0);
            let r = if a.is_nan() {
                nan_result(cpu, a, a).unwrap_or(a)
            } else {
                let round = rc(cpu);
                let r = a.round_to_integral(round);
                // round_to_integral reports no inexact; x87 sets PE when the value changed.
                if r.value.partial_cmp(&a) != Some(std::cmp::Ordering::Equal) {
                    cpu.fpu.sw |= crate::softfp::PE as u16;
                }
                r.value
            };
            cpu.fpu.set_st(0, r);
        }
        un::FSCALE => {
            let (a, b) = (cpu.fpu.st(0), cpu.fpu.st(1));
            let r = if let Some(n) = nan_result(cpu, a, b) {
                n
            } else if b.is_infinite() {
                if b.is_negative() {
                    if a.is_infinite() {
                        cpu.fpu.sw |= SW_IE;
                        indefinite()
                    } else {
                        F80::ZERO.copy_sign(a)
                    }
                } else if a.is_zero() {
                    cpu.fpu.sw |= SW_IE;
                    indefinite()
                } else {
                    F80::INFINITY.copy_sign(a)
                }
            } else {
                let t = b.round_to_integral(Round::TowardZero).value;
                let mut exact = false;
                let n = t.to_i128_r(32, Round::TowardZero, &mut exact).value;
                let n = n.clamp(-100_000, 100_000) as i32;
                a.scalbn_r(n, rc(cpu))
            };
            cpu.fpu.set_st(0, r);
        }
        un::FXTRACT => {
            let a = cpu.fpu.st(0);
            if a.is_zero() {
                cpu.fpu.sw |= 4; // ZE
                cpu.fpu.set_st(0, -F80::INFINITY);
                cpu.fpu.push(a);
            } else if a.is_nan() || a.is_infinite() {
                cpu.fpu.set_st(0, if a.is_infinite() { F80::INFINITY } else { a });
                cpu.fpu.push(a);
            } else {
                let e = a.ilogb();
                let sig = a.scalbn(-e);
                cpu.fpu.set_st(0, F80::from_i128(i128::from(e)).value);
                cpu.fpu.push(sig);
            }
        }
        un::FPREM | un::FPREM1 => {
            let (a, b) = (cpu.fpu.st(0), cpu.fpu.st(1));
            clear_c(cpu);
            let r = if let Some(n) = nan_result(cpu, a, b) {
                n
            } else if a.is_infinite() || b.is_zero() {
                cpu.fpu.sw |= SW_IE;
                indefinite()
            } else if b.is_infinite() || a.is_zero() {
                a
            } else {
                let r = if OP == un::FPREM { a.c_fmod(b).value } else { a.ieee_rem(b).value };
                // Low three quotient bits: q = (a - r) / b is an integer; take it mod 8.
                let q = a.sub_r(r, Round::NearestTiesToEven).value;
                let q = q.div_r(b, Round::NearestTiesToEven).value.abs();
                let q8 = q.c_fmod(F80::from_u128(8).value).value;
                let mut exact = false;
                let qb = q8.to_u128_r(8, Round::NearestTiesToEven, &mut exact).value as u16;
                let cc = (if qb & 4 != 0 { SW_C0 } else { 0 })
                    | (if qb & 1 != 0 { SW_C1 } else { 0 })
                    | (if qb & 2 != 0 { SW_C3 } else { 0 });
                cpu.fpu.sw |= cc;
                r
            };
            cpu.fpu.set_st(0, r);
        }
        _ => transcendental(cpu, OP),
    }
    Ok(())
}

/// Correctly rounded 80-bit square root (integer square root of the significand).
fn sqrt80(cpu: &mut Cpu, a: F80) -> F80 {
    if a.is_nan() {
        return nan_result(cpu, a, a).unwrap_or(a);
    }
    if a.is_zero() || (a.is_infinite() && !a.is_negative()) {
        return a;
    }
    if a.is_negative() {
        cpu.fpu.sw |= SW_IE;
        return indefinite();
    }
    // a = sig * 2^(e - 63) with sig in [2^63, 2^64).
    let e = a.ilogb();
    let norm = a.scalbn(-e); // in [1, 2)
    let sig = norm.to_bits() as u64;
    // Make the exponent even: sqrt(sig * 2^(e-63)).
    let (n, half_e) = if e % 2 == 0 {
        (u128::from(sig) << 63, e / 2)
    } else {
        (u128::from(sig) << 64, (e - 1) / 2)
    };
    // isqrt(n) has 64 significant bits (n in [2^126, 2^128)).
    let mut r = n.isqrt();
    let rem = n - r * r;
    let round = rc(cpu);
    if rem != 0 {
        cpu.fpu.sw |= crate::softfp::PE as u16;
        // Nearest: compare n with (r + 1/2)^2 = r^2 + r + 1/4, i.e. rem > r.
        let up = match round {
            Round::TowardPositive => true,
            Round::TowardNegative | Round::TowardZero => false,
            _ => rem > r,
        };
        if up {
            r += 1;
        }
    }
    let r = r as u64; // r < 2^64 always for n < 2^128; r == 2^64 impossible after +1 here.
    let v = F80::from_bits((0x3fffu128 << 64) | u128::from(r));
    apply_pc(cpu, v.scalbn(half_e))
}

/// A double-double number: hi + lo with |lo| <= ulp(hi)/2.
#[derive(Clone, Copy)]
struct Dd(f64, f64);

impl Dd {
    fn two_sum(a: f64, b: f64) -> Dd {
        let s = a + b;
        let bb = s - a;
        Dd(s, (a - (s - bb)) + (b - bb))
    }
    fn add(self, o: Dd) -> Dd {
        let s = Dd::two_sum(self.0, o.0);
        let t = Dd::two_sum(self.1, o.1);
        let s = Dd::two_sum(s.0, s.1 + t.0);
        Dd::two_sum(s.0, s.1 + t.1)
    }
    fn neg(self) -> Dd {
        Dd(-self.0, -self.1)
    }
    fn sub(self, o: Dd) -> Dd {
        self.add(o.neg())
    }
    fn mul(self, o: Dd) -> Dd {
        let p = self.0 * o.0;
        let e = self.0.mul_add(o.0, -p);
        Dd::two_sum(p, e + self.0 * o.1 + self.1 * o.0)
    }
    fn mul_f(self, f: f64) -> Dd {
        self.mul(Dd(f, 0.0))
    }
    fn div(self, o: Dd) -> Dd {
        let q1 = self.0 / o.0;
        let r = self.sub(o.mul_f(q1));
        let q2 = r.0 / o.0;
        let r = r.sub(o.mul_f(q2));
        let q3 = r.0 / o.0;
        Dd::two_sum(q1, q2).add(Dd(q3, 0.0))
    }
    fn from_f80(v: F80) -> Dd {
        let mut loses = false;
        let hi: Double = v.convert(&mut loses).value;
        let rest = v.sub_r(hi.convert(&mut loses).value, Round::NearestTiesToEven).value;
        let lo: Double = rest.convert(&mut loses).value;
        Dd(f64::from_bits(hi.to_bits() as u64), f64::from_bits(lo.to_bits() as u64))
    }
    fn to_f80(self, round: Round) -> F80 {
        let mut loses = false;
        let hi: F80 = Double::from_bits(u128::from(self.0.to_bits())).convert(&mut loses).value;
        let lo: F80 = Double::from_bits(u128::from(self.1.to_bits())).convert(&mut loses).value;
        hi.add_r(lo, round).value
    }
}

// Double-double constants (hi, lo).
const DD_LN2: Dd = Dd(std::f64::consts::LN_2, 2.319_046_813_846_299_6e-17);
const DD_PI_2: Dd = Dd(std::f64::consts::FRAC_PI_2, 6.123_233_995_736_766e-17);
const DD_PI_4: Dd = Dd(std::f64::consts::FRAC_PI_4, 3.061_616_997_868_383e-17);

/// exp(x) for |x| <= 1 by argument halving and Taylor series.
fn dd_expm1_small(x: Dd) -> Dd {
    // Reduce: x = 2^-k * y, expm1(2y) = expm1(y) * (expm1(y) + 2).
    let k = 10;
    let y = Dd(x.0 / 1024.0, x.1 / 1024.0);
    let mut term = y;
    let mut sum = y;
    for n in 2..20 {
        term = term.mul(y).mul_f(1.0 / f64::from(n));
        sum = sum.add(term);
        if term.0.abs() < 1e-40 {
            break;
        }
    }
    for _ in 0..k {
        sum = sum.mul(sum.add(Dd(2.0, 0.0)));
    }
    sum
}

/// ln(x) for x > 0 by Newton iteration on exp.
fn dd_ln(x: Dd) -> Dd {
    let mut y = Dd(x.0.ln(), 0.0);
    for _ in 0..3 {
        // y += x * exp(-y) - 1
        let e = dd_exp(y.neg());
        y = y.add(x.mul(e).sub(Dd(1.0, 0.0)));
    }
    y
}

fn dd_exp(x: Dd) -> Dd {
    // x = n ln2 + r, |r| <= ln2/2
    let n = (x.0 / std::f64::consts::LN_2).round();
    let r = x.sub(DD_LN2.mul_f(n));
    let e = dd_expm1_small(r).add(Dd(1.0, 0.0));
    Dd(e.0 * 2f64.powi(n as i32), e.1 * 2f64.powi(n as i32))
}

/// sin and cos for |x| <= pi/4 by Taylor series.
fn dd_sincos_small(x: Dd) -> (Dd, Dd) {
    let x2 = x.mul(x);
    let mut s = x;
    let mut t = x;
    let mut c = Dd(1.0, 0.0);
    let mut u = Dd(1.0, 0.0);
    for n in 1..16 {
        let k = f64::from(2 * n);
        t = t.mul(x2).mul_f(-1.0 / (k * (k + 1.0)));
        s = s.add(t);
        u = u.mul(x2).mul_f(-1.0 / ((k - 1.0) * k));
        c = c.add(u);
    }
    (s, c)
}

/// sin and cos with reduction modulo pi/2 (accurate for the |x| < 2^63 FSIN accepts,
/// up to the precision of a 107-bit pi/2).
fn dd_sincos(x: Dd) -> (Dd, Dd) {
    let q = (x.0 / std::f64::consts::FRAC_PI_2).round();
    let r = x.sub(DD_PI_2.mul_f(q));
    let (s, c) = dd_sincos_small(r);
    match (q as i64).rem_euclid(4) {
        0 => (s, c),
        1 => (c, s.neg()),
        2 => (s.neg(), c.neg()),
        _ => (c.neg(), s),
    }
}

/// atan(x) by Newton iteration on tan.
fn dd_atan(x: Dd) -> Dd {
    let mut y = Dd(x.0.atan(), 0.0);
    for _ in 0..3 {
        // y -= (tan y - x) cos^2 y = sin y cos y - x cos^2 y
        let (s, c) = dd_sincos(y);
        let corr = s.mul(c).sub(x.mul(c).mul(c));
        y = y.sub(corr);
    }
    y
}

fn transcendental(cpu: &mut Cpu, op: u8) {
    let round = rc(cpu);
    let a = cpu.fpu.st(0);
    let needs_two = matches!(op, un::FYL2X | un::FYL2XP1 | un::FPATAN);
    let b = if needs_two { cpu.fpu.st(1) } else { F80::ZERO };
    if let Some(n) = nan_result(cpu, a, if needs_two { b } else { a }) {
        if needs_two {
            cpu.fpu.pop();
        }
        cpu.fpu.set_st(0, n);
        if op == un::FPTAN || op == un::FSINCOS {
            cpu.fpu.push(n);
        }
        return;
    }
    cpu.fpu.sw &= !(SW_C1 | SW_C2);
    cpu.fpu.sw |= crate::softfp::PE as u16;
    let x = Dd::from_f80(a);
    match op {
        un::F2XM1 => {
            // 2^x - 1 = expm1(x ln2), defined for |x| <= 1.
            let r = dd_expm1_small(x.mul(DD_LN2)).to_f80(round);
            cpu.fpu.set_st(0, r);
        }
        un::FYL2X | un::FYL2XP1 => {
            let y = Dd::from_f80(b);
            let arg = if op == un::FYL2XP1 { x.add(Dd(1.0, 0.0)) } else { x };
            let r = if arg.0 < 0.0 || (arg.0 == 0.0 && y.0 == 0.0) {
                cpu.fpu.sw |= SW_IE;
                indefinite()
            } else if arg.0 == 0.0 {
                cpu.fpu.sw |= 4;
                if b.is_negative() {
                    F80::INFINITY
                } else {
                    -F80::INFINITY
                }
            } else if a.is_infinite() {
                F80::INFINITY.copy_sign(b)
            } else {
                // y * log2(arg) = y * ln(arg) / ln2
                let ln = if op == un::FYL2XP1 && x.0.abs() < 0.25 {
                    // ln(1+x) via Newton with expm1 for accuracy near zero.
                    let mut t = Dd(x.0.ln_1p(), 0.0);
                    for _ in 0..3 {
                        let em1 = if t.0.abs() <= 1.0 {
                            dd_expm1_small(t)
                        } else {
                            dd_exp(t).sub(Dd(1.0, 0.0))
                        };
                        // t -= (em1 - x) / (em1 + 1)
                        t = t.sub(em1.sub(x).div(em1.add(Dd(1.0, 0.0))));
                    }
                    t
                } else {
                    dd_ln(arg)
                };
                y.mul(ln).div(DD_LN2).to_f80(round)
            };
            cpu.fpu.pop();
            cpu.fpu.set_st(0, r);
        }
        un::FPATAN => {
            let y = Dd::from_f80(b);
            let r = if x.0 == 0.0 && y.0 == 0.0 {
                let pi = if (a.to_bits() >> 79) & 1 != 0 { DD_PI_2.mul_f(2.0) } else { Dd(0.0, 0.0) };
                pi.to_f80(round).copy_sign(b)
            } else if y.0.abs() <= x.0.abs() {
                let t = dd_atan(y.div(x));
                let t = if x.0 < 0.0 {
                    if y.0 >= 0.0 {
                        t.add(DD_PI_2.mul_f(2.0))
                    } else {
                        t.sub(DD_PI_2.mul_f(2.0))
                    }
                } else {
                    t
                };
                t.to_f80(round)
            } else {
                let t = dd_atan(x.div(y));
                let base = if y.0 > 0.0 { DD_PI_2 } else { DD_PI_2.neg() };
                base.sub(t).to_f80(round)
            };
            let _ = DD_PI_4;
            cpu.fpu.pop();
            cpu.fpu.set_st(0, r);
        }
        _ => {
            if a.is_infinite() {
                cpu.fpu.sw |= SW_IE;
                cpu.fpu.set_st(0, indefinite());
                if op == un::FPTAN || op == un::FSINCOS {
                    cpu.fpu.push(indefinite());
                }
                return;
            }
            if a.ilogb() >= 63 {
                // Out of range: C2 set, operand unchanged.
                cpu.fpu.sw |= SW_C2;
                return;
            }
            let (s, c) = dd_sincos(x);
            match op {
                un::FSIN => cpu.fpu.set_st(0, s.to_f80(round)),
                un::FCOS => cpu.fpu.set_st(0, c.to_f80(round)),
                un::FSINCOS => {
                    cpu.fpu.set_st(0, s.to_f80(round));
                    cpu.fpu.push(c.to_f80(round));
                }
                _ => {
                    cpu.fpu.set_st(0, s.div(c).to_f80(round));
                    cpu.fpu.push(F80::from_u128(1).value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> F80 {
        let mut l = false;
        Double::from_bits(u128::from(v.to_bits())).convert(&mut l).value
    }
    fn back(v: F80) -> f64 {
        let mut l = false;
        let d: Double = v.convert(&mut l).value;
        f64::from_bits(d.to_bits() as u64)
    }

    #[test]
    fn sqrt_is_exact_for_squares() {
        let mut cpu = Cpu::default();
        assert_eq!(back(sqrt80(&mut cpu, f(9.0))), 3.0);
        assert_eq!(back(sqrt80(&mut cpu, f(2.0))), std::f64::consts::SQRT_2);
        assert_eq!(back(sqrt80(&mut cpu, f(0.25))), 0.5);
    }

    #[test]
    fn transcendentals_match_f64() {
        let x = Dd(0.5, 0.0);
        let (s, c) = dd_sincos(x);
        assert!((s.0 - 0.5f64.sin()).abs() < 1e-16);
        assert!((c.0 - 0.5f64.cos()).abs() < 1e-16);
        assert!((dd_exp(Dd(1.0, 0.0)).0 - std::f64::consts::E).abs() < 1e-15);
        assert!((dd_ln(Dd(10.0, 0.0)).0 - std::f64::consts::LN_10).abs() < 1e-15);
        assert!((dd_atan(Dd(1.0, 0.0)).0 - std::f64::consts::FRAC_PI_4).abs() < 1e-16);
    }
}
