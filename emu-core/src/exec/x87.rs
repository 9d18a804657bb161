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
use crate::x87::{classify, indefinite, Class, F80, SW_C0, SW_C1, SW_C2, SW_C3, SW_IE};
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

/// x87 NaN rule for two operands: a signalling and a quiet NaN give the quiet one, two of
/// a kind the one with the larger significand; the result is quieted.
fn nan_result(cpu: &mut Cpu, a: F80, b: F80) -> Option<F80> {
    if !(a.is_nan() || b.is_nan()) {
        return None;
    }
    if is_snan(a) || is_snan(b) {
        cpu.fpu.sw |= SW_IE as u16;
    }
    let quiet = |v: F80| F80::from_bits(v.to_bits() | (1u128 << 62));
    Some(match (a.is_nan(), b.is_nan()) {
        // A signalling and a quiet NaN: the quiet one (SDM vol. 1 table 4-7).
        (true, true) if is_snan(a) != is_snan(b) => {
            if is_snan(a) {
                b
            } else {
                a
            }
        }
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
    if FMT == mf::F80 {
        // An 80-bit load copies the encoding, special ones included, and raises nothing.
        let ea = i.ea(cpu);
        let lo = m.read_u64(ea)?;
        let hi = m.read_u16(ea.wrapping_add(8))?;
        cpu.fpu.push_bits(u128::from(lo) | (u128::from(hi) << 64));
        return Ok(());
    }
    let v = load_mem(cpu, m, i.ea(cpu), FMT)?;
    // FLD of a signaling NaN from m32/m64 delivers it quieted.
    let v = if FMT <= mf::F64 && v.is_nan() { F80::from_bits(v.to_bits() | (1 << 62)) } else { v };
    cpu.fpu.push(v);
    Ok(())
}

/// FLD ST(i).
pub fn fld_st<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = cpu.fpu.st_bits(i.r0);
    cpu.fpu.push_bits(v);
    Ok(())
}

/// Constant loads: 0 FLD1, 1 FLDL2T, 2 FLDL2E, 3 FLDPI, 4 FLDLG2, 5 FLDLN2, 6 FLDZ.
pub fn fld_const<M: GuestMem, const K: u8>(
    cpu: &mut Cpu,
    _m: &mut M,
    _i: &Insn<M>,
) -> Result<(), Exit> {
    // The 80-bit images of the constants truncated to 64 significand bits, and whether
    // the bits beyond are above one half ulp. The hardware holds them to more bits and
    // rounds them under the control word's rounding mode (no precision exception): every
    // tail is nonzero, so rounding up adds one ulp, and to nearest does when above half.
    let (bits, above_half): (u128, bool) = match K {
        0 => (0x3fff_8000_0000_0000_0000, false),
        1 => (0x4000_d49a_784b_cd1b_8afe, false),
        2 => (0x3fff_b8aa_3b29_5c17_f0bb, true),
        3 => (0x4000_c90f_daa2_2168_c234, true),
        4 => (0x3ffd_9a20_9a84_fbcf_f798, true),
        5 => (0x3ffe_b172_17f7_d1cf_79ab, true),
        _ => (0, false),
    };
    let up = match (cpu.fpu.cw >> 10) & 3 {
        0 => above_half,
        2 => true,
        _ => false,
    };
    let bits = if K >= 1 && K <= 5 && up { bits + 1 } else { bits };
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

/// FBLD m80bcd: pushes the signed 18-digit packed-BCD integer (digit k in nibble k,
/// the sign in bit 79; the other bits of the top byte are ignored). Nibbles above 9 are
/// weighted like digits, as the hardware does with these undefined encodings.
pub fn fbld<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let ea = i.ea(cpu);
    let lo = m.read_u64(ea)?;
    let hi = m.read_u16(ea.wrapping_add(8))?;
    let bits = u128::from(lo) | (u128::from(hi) << 64);
    let mut v: u128 = 0;
    for k in (0..18).rev() {
        v = v * 10 + ((bits >> (4 * k)) & 15);
    }
    // At most 15 * (10^18 - 1) / 9 < 2^64: exact.
    let r = F80::from_u128(v).value;
    let r = if hi & 0x8000 != 0 { -r } else { r };
    cpu.fpu.push(r);
    Ok(())
}

/// FBSTP m80bcd: stores ST(0) rounded to an integer under the control word as 18 packed
/// BCD digits and a sign byte (0x80 or 0), then pops. NaNs, infinities, unsupported
/// encodings, an empty register and magnitudes of 10^18 or more are invalid: the BCD
/// indefinite (0xFFFF_C000_0000_0000_0000) is stored. Inexact rounding sets PE and C1
/// says whether it rounded up in magnitude.
pub fn fbstp<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    const BCD_INDEFINITE: u128 = 0xffff_c000_0000_0000_0000;
    let ea = i.ea(cpu);
    m.probe_write(ea.wrapping_add(9))?;
    let raw = cpu.fpu.st_bits(0);
    let empty = cpu.fpu.is_empty(0);
    cpu.fpu.sw &= !SW_C1;
    let out = match classify(raw) {
        _ if empty => BCD_INDEFINITE,
        Class::Unsupported | Class::Nan | Class::Inf => {
            cpu.fpu.sw |= SW_IE;
            BCD_INDEFINITE
        }
        // Denormals round to 0 or 1 with PE only (the host sets no DE).
        _ => {
            let v = F80::from_bits(raw);
            let neg = raw >> 79 != 0;
            let r = v.round_to_integral(rc(cpu)).value;
            let mut exact = false;
            let mag = r.abs().to_u128_r(64, Round::TowardZero, &mut exact).value;
            if r.abs() >= F80::from_u128(1_000_000_000_000_000_000).value {
                cpu.fpu.sw |= SW_IE;
                BCD_INDEFINITE
            } else {
                if r.partial_cmp(&v) != Some(std::cmp::Ordering::Equal) {
                    cpu.fpu.sw |= crate::softfp::PE as u16;
                    if r.abs() > v.abs() {
                        cpu.fpu.sw |= SW_C1;
                    }
                }
                let mut d = 0u128;
                let mut x = mag;
                for k in 0..18 {
                    d |= (x % 10) << (4 * k);
                    x /= 10;
                }
                d | if neg { 1 << 79 } else { 0 }
            }
        }
    };
    m.write_u64(ea, out as u64)?;
    m.write_u16(ea.wrapping_add(8), (out >> 64) as u16)?;
    cpu.fpu.pop();
    Ok(())
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
            // The encoding as held (an empty register gave the indefinite).
            let b = cpu.fpu.st_bits(0);
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
    cpu.fpu.sw &= !SW_C1;
    let v = cpu.fpu.st_bits(0);
    cpu.fpu.set_st_bits(i.r0, v);
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
        let v = cpu.fpu.st_bits(i.r0);
        cpu.fpu.set_st_bits(0, v);
    }
    Ok(())
}

/// FXCH ST(r0).
pub fn fxch<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let (a, b) = (cpu.fpu.st_bits(0), cpu.fpu.st_bits(i.r0));
    cpu.fpu.set_st_bits(0, b);
    cpu.fpu.set_st_bits(i.r0, a);
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
pub fn fctl<M: GuestMem, const OP: u8>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let f = &mut cpu.fpu;
    match OP {
        ctl::FFREE => {
            let p = f.phys(i.r0);
            f.empty |= 1 << p;
        }
        ctl::FINCSTP => f.top = (f.top + 1) & 7,
        ctl::FDECSTP => f.top = (f.top + 7) & 7,
        ctl::FNCLEX => f.sw &= !0x80ff,
        ctl::FNINIT => f.fninit(),
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
    pub const FNSAVE: u8 = 7;
    pub const FRSTOR: u8 = 8;
}

/// Stores the x87 environment at `ea`: the 28-byte 32-bit protected-mode layout, or the
/// 14-byte 16-bit one (`small`). The last-instruction and last-operand pointers and the
/// opcode are not tracked: they are stored as 0 (FCS and FDS as well, as processors that
/// deprecate them do); the unused upper halves of the 32-bit layout read as ones.
fn store_env<M: GuestMem>(cpu: &Cpu, m: &mut M, ea: u64, small: bool) -> Result<(), Exit> {
    let (cw, sw, tw) = (cpu.fpu.cw, cpu.fpu.status_word(), cpu.fpu.tag_word());
    if small {
        m.probe_write(ea.wrapping_add(13))?;
        for (k, w) in [cw, sw, tw, 0, 0, 0, 0].iter().enumerate() {
            m.write_u16(ea.wrapping_add(2 * k as u64), *w)?;
        }
    } else {
        m.probe_write(ea.wrapping_add(27))?;
        let hi = 0xffff_0000;
        let words = [u32::from(cw) | hi, u32::from(sw) | hi, u32::from(tw) | hi, 0, 0, 0, hi];
        for (k, w) in words.iter().enumerate() {
            m.write_u32(ea.wrapping_add(4 * k as u64), *w)?;
        }
    }
    Ok(())
}

/// Reads the environment stored by [`store_env`]: (control, status, tag) words.
fn read_env<M: GuestMem>(m: &mut M, ea: u64, small: bool) -> Result<(u16, u16, u16), Exit> {
    let step = if small { 2 } else { 4 };
    Ok((
        m.read_u16(ea)?,
        m.read_u16(ea.wrapping_add(step))?,
        m.read_u16(ea.wrapping_add(2 * step))?,
    ))
}

/// Loads an environment read by [`read_env`].
fn load_env(cpu: &mut Cpu, (cw, sw, tw): (u16, u16, u16)) {
    cpu.fpu.set_cw(cw);
    cpu.fpu.sw = sw & !(7 << 11);
    cpu.fpu.top = ((sw >> 11) & 7) as u8;
    cpu.fpu.set_tag_word(tw);
}

/// FNSTSW m16, FNSTCW, FLDCW, FNSTENV, FLDENV, FNSAVE and FRSTOR (28-byte environment,
/// or the 14-byte one with a 16-bit operand size: `Insn::cc` = 1; FNSAVE/FRSTOR add the
/// eight registers, ST(0) first, 10 bytes each: 108 or 94 bytes), FXSAVE and FXRSTOR
/// (512-byte 64-bit layout, SDM vol. 2 "FXSAVE" table 3-53).
pub fn fmem<M: GuestMem, const OP: u8>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let ea = i.ea(cpu);
    match OP {
        mctl::FNSTSW => m.write_u16(ea, cpu.fpu.status_word())?,
        mctl::FNSTCW => m.write_u16(ea, cpu.fpu.cw)?,
        mctl::FLDCW => cpu.fpu.set_cw(m.read_u16(ea)?),
        mctl::FNSTENV => {
            store_env(cpu, m, ea, i.cc == 1)?;
            // FNSTENV masks all exceptions afterwards.
            cpu.fpu.cw |= 0x3f;
        }
        mctl::FLDENV => {
            let env = read_env(m, ea, i.cc == 1)?;
            load_env(cpu, env);
        }
        mctl::FNSAVE => {
            let base = if i.cc == 1 { 14 } else { 28 };
            m.probe_write(ea.wrapping_add(base + 79))?;
            store_env(cpu, m, ea, i.cc == 1)?;
            for k in 0..8u8 {
                let v = cpu.fpu.regs[cpu.fpu.phys(k)];
                let at = ea.wrapping_add(base + 10 * u64::from(k));
                m.write_u64(at, v as u64)?;
                m.write_u16(at.wrapping_add(8), (v >> 64) as u16)?;
            }
            // Then FNINIT.
            cpu.fpu.fninit();
        }
        mctl::FRSTOR => {
            let base = if i.cc == 1 { 14 } else { 28 };
            let env = read_env(m, ea, i.cc == 1)?;
            let mut regs = [0u128; 8];
            for (k, r) in regs.iter_mut().enumerate() {
                let at = ea.wrapping_add(base + 10 * k as u64);
                *r = u128::from(m.read_u64(at)?)
                    | (u128::from(m.read_u16(at.wrapping_add(8))?) << 64);
            }
            load_env(cpu, env);
            for (k, r) in regs.iter().enumerate() {
                let p = cpu.fpu.phys(k as u8);
                cpu.fpu.regs[p] = *r;
            }
        }
        mctl::FXSAVE => {
            if ea & 15 != 0 {
                return Err(Exit::Exception(crate::cpu::Exception::GeneralProtection));
            }
            m.probe_write(ea.wrapping_add(511))?;
            // Abridged tag: bit set = valid (non-empty).
            let ftw = u64::from(!cpu.fpu.empty);
            let w0 = u64::from(cpu.fpu.cw) | (u64::from(cpu.fpu.status_word()) << 16) | (ftw << 32);
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
            cpu.fpu.set_cw(w0 as u16);
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

/// The checks the hardware makes on the operands ST(0) (and ST(1) when `two`) of an
/// arithmetic instruction before computing: an empty register is a stack underflow
/// (IE|SF, result the indefinite), an unsupported encoding (pseudo-NaN, pseudo-infinity,
/// unnormal) is invalid (IE, the indefinite), a NaN propagates (IE for a signalling
/// one), and a denormal or pseudo-denormal operand sets DE. Err(result) when that decides
/// the result, else the operand values.
fn precheck(cpu: &mut Cpu, two: bool) -> Result<(F80, F80), F80> {
    let r = precheck_quiet(cpu, two)?;
    if r.2 {
        cpu.fpu.sw |= 2; // DE
    }
    Ok((r.0, r.1))
}

/// [`precheck`] without setting DE: the third value says whether an operand is a
/// denormal (the caller sets DE unless the operation turns out invalid).
fn precheck_quiet(cpu: &mut Cpu, two: bool) -> Result<(F80, F80, bool), F80> {
    let n = if two { 2 } else { 1 };
    if (0..n).any(|k| cpu.fpu.is_empty(k)) {
        cpu.fpu.sw |= SW_IE | crate::x87::SW_SF;
        cpu.fpu.sw &= !SW_C1;
        return Err(indefinite());
    }
    let ra = cpu.fpu.regs[cpu.fpu.phys(0)];
    let rb = if two { cpu.fpu.regs[cpu.fpu.phys(1)] } else { ra };
    let (ca, cb) = (classify(ra), classify(rb));
    if ca == Class::Unsupported || cb == Class::Unsupported {
        cpu.fpu.sw |= SW_IE;
        return Err(indefinite());
    }
    let (a, b) = (F80::from_bits(ra), F80::from_bits(rb));
    if let Some(r) = nan_result(cpu, a, b) {
        return Err(r);
    }
    let denormal = |c| matches!(c, Class::Denormal | Class::PseudoDenormal);
    Ok((a, b, denormal(ca) || denormal(cb)))
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
        // Sign-bit operations on the encoding as held; on an empty register (stack
        // underflow) the indefinite is written unchanged.
        un::FCHS | un::FABS => {
            let empty = cpu.fpu.is_empty(0);
            let a = cpu.fpu.st_bits(0);
            let r = match (empty, OP) {
                (true, _) => a,
                (false, un::FCHS) => a ^ (1 << 79),
                _ => a & !(1 << 79),
            };
            cpu.fpu.set_st_bits(0, r);
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
            let v = cpu.fpu.regs[cpu.fpu.phys(0)];
            // Classified from the encoding: unsupported ones report C3 C2 C0 = 000,
            // pseudo-denormals report as denormals.
            let cls = if empty {
                SW_C3 | SW_C0
            } else {
                match classify(v) {
                    Class::Unsupported => 0,
                    Class::Nan => SW_C0,
                    Class::Inf => SW_C2 | SW_C0,
                    Class::Zero => SW_C3,
                    Class::Denormal | Class::PseudoDenormal => SW_C3 | SW_C2,
                    Class::Normal => SW_C2,
                }
            };
            let sign = if (v >> 79) & 1 != 0 { SW_C1 } else { 0 };
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
            cpu.fpu.sw &= !SW_C1;
            let r = match precheck(cpu, true) {
                Err(r) => r,
                Ok((a, b)) => fscale(cpu, a, b),
            };
            cpu.fpu.set_st(0, r);
        }
        un::FXTRACT => {
            // Stack overflow (ST(7) in use, ST(0) not empty): IE, SF, C1; the indefinite
            // replaces ST(0) and is pushed.
            if !cpu.fpu.is_empty(0) && !cpu.fpu.is_empty(7) {
                cpu.fpu.set_st(0, indefinite());
                cpu.fpu.push(indefinite());
                return Ok(());
            }
            let a = match precheck(cpu, false) {
                Err(r) => {
                    // Both results are the NaN or indefinite (an underflow reports no
                    // overflow as well).
                    cpu.fpu.sw &= !SW_C1;
                    cpu.fpu.set_st(0, r);
                    cpu.fpu.top = (cpu.fpu.top + 7) & 7;
                    cpu.fpu.set_st(0, r);
                    return Ok(());
                }
                Ok((a, _)) => a,
            };
            if a.is_zero() {
                cpu.fpu.sw |= 4; // ZE
                cpu.fpu.set_st(0, -F80::INFINITY);
                cpu.fpu.push(a);
            } else if a.is_infinite() {
                cpu.fpu.set_st(0, F80::INFINITY);
                cpu.fpu.push(a);
            } else {
                let e = a.ilogb();
                let sig = a.scalbn(-e);
                cpu.fpu.set_st(0, F80::from_i128(i128::from(e)).value);
                cpu.fpu.push(sig);
            }
        }
        un::FPREM | un::FPREM1 => {
            // C1 and C2 are cleared; C0 and C3 are replaced only by a complete
            // reduction's quotient bits (otherwise the host keeps them).
            cpu.fpu.sw &= !(SW_C1 | SW_C2);
            let r = match precheck_quiet(cpu, true) {
                Err(r) => r,
                Ok((a, b, den)) => fprem(cpu, a, b, den, OP == un::FPREM1),
            };
            cpu.fpu.set_st(0, r);
        }
        _ => transcendental(cpu, OP),
    }
    Ok(())
}

/// FSCALE on checked operands: ST(0) * 2^trunc(ST(1)).
fn fscale(cpu: &mut Cpu, a: F80, b: F80) -> F80 {
    if b.is_infinite() {
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
        let r = a.scalbn_r(n, rc(cpu));
        if a.is_zero() || a.is_infinite() {
            return r;
        }
        let e = a.ilogb() + n;
        if e > 16383 {
            // Overflow: an infinity or the largest finite value by the rounding mode.
            cpu.fpu.sw |= crate::softfp::OE as u16 | crate::softfp::PE as u16;
            if r.is_infinite() {
                cpu.fpu.sw |= SW_C1;
            }
            return r;
        }
        let back = r.scalbn(-n);
        if back.partial_cmp(&a) != Some(std::cmp::Ordering::Equal) {
            cpu.fpu.sw |= crate::softfp::PE as u16;
            if e < -16382 {
                cpu.fpu.sw |= crate::softfp::UE as u16;
            }
            if back.abs() > a.abs() {
                cpu.fpu.sw |= SW_C1;
            }
        }
        r
    }
}

/// Significand (integer bit set) and unbiased exponent of a finite non-zero encoding,
/// denormals and pseudo-denormals normalised: the value is sig * 2^(exp - 63).
fn unpack(v: u128) -> (u64, i32) {
    let be = (v >> 64) as i32 & 0x7fff;
    let sig = v as u64;
    let e = if be == 0 { 1 - 16383 } else { be - 16383 };
    let lz = sig.leading_zeros() as i32;
    (sig << lz, e - lz)
}

/// The 80-bit encoding of sign * r * 2^(e - 63) for an exact r < 2^64 (the result of a
/// remainder: no rounding is needed unless it falls below the denormal range, where the
/// operands' own granularity keeps it exact).
fn pack_exact(neg: bool, r: u64, e: i32) -> u128 {
    let sign = u128::from(neg) << 79;
    if r == 0 {
        return sign;
    }
    let lz = r.leading_zeros() as i32;
    let (mut sig, mut e) = (r << lz, e - lz);
    if e < -16382 {
        let sh = (-16382 - e) as u32;
        sig = if sh >= 64 { 0 } else { sig >> sh };
        e = -16383; // biased 0: denormal
        return sign | u128::from(sig) | (u128::from((e + 16383) as u16) << 64);
    }
    sign | u128::from(sig) | (u128::from((e + 16383) as u16) << 64)
}

/// FPREM (quotient truncated) or FPREM1 (quotient rounded to nearest, `ieee`) on
/// checked operands (`denormal`: one is, DE unless invalid), exactly as the hardware's
/// iteration: when the exponents differ by
/// 64 or more only a partial remainder is formed (C2 = 1), reducing by 2^(D - N) with
/// N = 32 + D mod 32; otherwise C2 = 0 and C0, C3, C1 get quotient bits 2, 1, 0.
fn fprem(cpu: &mut Cpu, a: F80, b: F80, denormal: bool, ieee: bool) -> F80 {
    if a.is_infinite() || b.is_zero() {
        cpu.fpu.sw |= SW_IE;
        return indefinite();
    }
    if denormal {
        cpu.fpu.sw |= 2; // DE
    }
    cpu.fpu.sw &= !(SW_C0 | SW_C3);
    if b.is_infinite() || a.is_zero() {
        return a;
    }
    let (ra, rb) = (cpu.fpu.regs[cpu.fpu.phys(0)], cpu.fpu.regs[cpu.fpu.phys(1)]);
    let neg = ra >> 79 != 0;
    let (ma, ea) = unpack(ra);
    let (mb, eb) = unpack(rb);
    let d = ea - eb;
    let bb = u128::from(mb);
    if d >= 64 {
        let n = 32 + d % 32;
        let aa = u128::from(ma) << n;
        let r = (aa % bb) as u64;
        cpu.fpu.sw |= SW_C2;
        return F80::from_bits(pack_exact(neg, r, ea - n));
    }
    if d < -1 || (d == -1 && !ieee) {
        // |a| < |b| / 2 (or < |b| for FPREM): the quotient is 0.
        return F80::from_bits(ra);
    }
    // Align both on b's exponent: a = (ma << d) (or ma >> 1 for d = -1, kept exact by
    // doubling both).
    let (aa, bb2, scale) =
        if d >= 0 { (u128::from(ma) << d, bb, eb) } else { (u128::from(ma), bb << 1, eb - 1) };
    let mut q = aa / bb2;
    let mut r = aa % bb2;
    let mut rneg = neg;
    if ieee && (2 * r > bb2 || (2 * r == bb2 && q & 1 == 1)) {
        q += 1;
        r = bb2 - r;
        rneg = !neg;
    }
    let qb = q as u16;
    let cc = (if qb & 4 != 0 { SW_C0 } else { 0 })
        | (if qb & 1 != 0 { SW_C1 } else { 0 })
        | (if qb & 2 != 0 { SW_C3 } else { 0 });
    cpu.fpu.sw |= cc;
    // A zero remainder keeps the dividend's sign.
    let rneg = if r == 0 { neg } else { rneg };
    F80::from_bits(pack_exact(rneg, r as u64, scale))
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

/// A double-double number: hi + lo with |lo| <= ulp(hi)/2 (about 106 bits).
#[derive(Clone, Copy, Debug)]
struct Dd(f64, f64);

impl Dd {
    const ZERO: Dd = Dd(0.0, 0.0);
    const ONE: Dd = Dd(1.0, 0.0);
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
    fn div(self, o: Dd) -> Dd {
        let q1 = self.0 / o.0;
        let r = self.sub(o.mul(Dd(q1, 0.0)));
        let q2 = r.0 / o.0;
        let r = r.sub(o.mul(Dd(q2, 0.0)));
        let q3 = r.0 / o.0;
        Dd::two_sum(q1, q2).add(Dd(q3, 0.0))
    }
    /// Division by a small integer, exactly rounded at double-double precision.
    fn div_n(self, n: f64) -> Dd {
        self.div(Dd(n, 0.0))
    }
    fn scale(self, e: i32) -> Dd {
        let f = 2f64.powi(e);
        Dd(self.0 * f, self.1 * f)
    }
}

/// Splits a finite non-zero value into an exact double-double mantissa in [1, 2) and
/// a binary exponent, so operands outside the double range keep full precision.
fn split(v: F80) -> (Dd, i32) {
    let e = v.ilogb();
    let m = v.abs().scalbn(-e);
    let mut loses = false;
    let hi: Double = m.convert(&mut loses).value;
    let hi_back: F80 = hi.convert(&mut loses).value;
    let rest = m.sub_r(hi_back, Round::NearestTiesToEven).value;
    let lo: Double = rest.convert(&mut loses).value;
    let d = Dd(f64::from_bits(hi.to_bits() as u64), f64::from_bits(lo.to_bits() as u64));
    (if v.is_negative() { d.neg() } else { d }, e)
}

/// `d * 2^e` rounded once to 80 bits (signed zero kept).
fn join(d: Dd, e: i32, round: Round) -> F80 {
    if d.0 == 0.0 {
        return if d.0.is_sign_negative() { -F80::ZERO } else { F80::ZERO };
    }
    let mut loses = false;
    let hi: F80 = Double::from_bits(u128::from(d.0.to_bits())).convert(&mut loses).value;
    let lo: F80 = Double::from_bits(u128::from(d.1.to_bits())).convert(&mut loses).value;
    let s = hi.scalbn(e).add_r(lo.scalbn(e), round).value;
    if s.is_zero() {
        F80::ZERO.copy_sign(hi)
    } else {
        s
    }
}

/// [`join`], setting C1 when the rounding went away from zero (the x87 "rounded up"
/// indication).
/// Also sets UE for a result below the normal range (the callers' results are inexact),
/// rounding such results once, from the double-double sum kept to odd.
fn join_c1(cpu: &mut Cpu, d: Dd, e: i32, round: Round) -> F80 {
    let r = join(d, e, round);
    let tiny = r.is_zero() || r.is_denormal();
    let r = if tiny && d.0 != 0.0 { join_tiny(d, e, round) } else { r };
    if r.is_zero() || r.is_denormal() {
        cpu.fpu.sw |= crate::softfp::UE as u16;
    }
    if round != Round::TowardZero && !r.is_zero() {
        let t =
            if tiny { join_tiny(d, e, Round::TowardZero) } else { join(d, e, Round::TowardZero) };
        if t.partial_cmp(&r) != Some(std::cmp::Ordering::Equal) {
            cpu.fpu.sw |= SW_C1;
        }
    }
    r
}

/// hi + lo rounded to 64 bits toward zero with a sticky lowest bit (round to odd), then
/// scaled by 2^e into the denormal range under `round`.
fn join_tiny(d: Dd, e: i32, round: Round) -> F80 {
    let mut loses = false;
    let hi: F80 = Double::from_bits(u128::from(d.0.to_bits())).convert(&mut loses).value;
    let lo: F80 = Double::from_bits(u128::from(d.1.to_bits())).convert(&mut loses).value;
    let s = hi.add_r(lo, Round::TowardZero);
    let bits =
        if s.status.contains(Status::INEXACT) { s.value.to_bits() | 1 } else { s.value.to_bits() };
    let r = F80::from_bits(bits).scalbn_r(e, round);
    if r.is_zero() {
        F80::ZERO.copy_sign(hi)
    } else {
        r
    }
}

// Double-double constants.
const DD_LN2: Dd = Dd(std::f64::consts::LN_2, 2.319_046_813_846_299_6e-17);
const DD_PI_2: Dd = Dd(std::f64::consts::FRAC_PI_2, 6.123_233_995_736_766e-17);
const DD_PI: Dd = Dd(std::f64::consts::PI, 1.224_646_799_147_353_2e-16);
const DD_PI_4: Dd = Dd(std::f64::consts::FRAC_PI_4, 3.061_616_997_868_383e-17);

/// expm1(x) for |x| <= 1: Taylor series on x/1024, then 10 doublings of
/// expm1(2y) = expm1(y) (expm1(y) + 2).
fn dd_expm1(x: Dd) -> Dd {
    let y = x.scale(-10);
    let mut term = y;
    let mut sum = y;
    for n in 2..24 {
        term = term.mul(y).div_n(f64::from(n));
        sum = sum.add(term);
        if term.0.abs() < 1e-40 * sum.0.abs() {
            break;
        }
    }
    for _ in 0..10 {
        sum = sum.mul(sum.add(Dd(2.0, 0.0)));
    }
    sum
}

/// ln(1 + u) for |u| <= 0.5 by Newton iteration on expm1.
fn dd_ln1p(u: Dd) -> Dd {
    let mut t = Dd(u.0.ln_1p(), 0.0);
    for _ in 0..3 {
        let em1 = dd_expm1(t);
        t = t.sub(em1.sub(u).div(em1.add(Dd::ONE)));
    }
    t
}

/// sin and cos for |x| <= pi/4 by their Taylor series.
fn dd_sincos_small(x: Dd) -> (Dd, Dd) {
    let x2 = x.mul(x);
    let (mut s, mut t) = (x, x);
    let (mut c, mut u) = (Dd::ONE, Dd::ONE);
    for n in 1..18 {
        let k = f64::from(2 * n);
        t = t.mul(x2).div_n(k * (k + 1.0)).neg();
        s = s.add(t);
        u = u.mul(x2).div_n((k - 1.0) * k).neg();
        c = c.add(u);
    }
    (s, c)
}

/// The 66-bit pi/2 the x87 uses for FSIN/FCOS/FSINCOS/FPTAN argument reduction (Intel
/// SDM vol. 1 §8.3.10): 0x3_243F_6A88_85A3_08D3 * 2^-65, exact in double-double.
fn pi66_half() -> Dd {
    const N: u64 = 0x243f_6a88_85a3_08d3; // low 64 of the 66 bits; the top bits are 0b11
                                          // N66 = 3 * 2^64 + N. Split into 53 high bits and 13 low bits, each exact in f64.
    let n66 = (3u128 << 64) | u128::from(N);
    let hi = ((n66 >> 13) as u64) as f64 * 2f64.powi(13 - 65);
    let lo = ((n66 & 0x1fff) as u64) as f64 * 2f64.powi(-65);
    Dd::two_sum(hi, lo)
}

/// sin and cos of x after reduction by the x87's pi/2: q = round(x / (pi/2)).
fn dd_sincos_x87(x: Dd) -> (Dd, Dd) {
    let p = pi66_half();
    let q = (x.0 / p.0).round();
    let r = x.sub(p.mul(Dd(q, 0.0)));
    let (s, c) = dd_sincos_small(r);
    match (q as i64).rem_euclid(4) {
        0 => (s, c),
        1 => (c, s.neg()),
        2 => (s.neg(), c.neg()),
        _ => (c.neg(), s),
    }
}

/// atan(w) for 0 <= w <= 1 by Newton iteration on tan (no argument reduction needed).
fn dd_atan01(w: Dd) -> Dd {
    if w.0 < 1e-30 {
        return w;
    }
    let mut y = Dd(w.0.atan(), 0.0);
    for _ in 0..3 {
        let (s, c) = dd_sincos_small(y);
        // y -= (tan y - w) cos^2 y
        y = y.sub(s.mul(c).sub(w.mul(c).mul(c)));
    }
    y
}

/// log2 of a positive finite value as double-double (mantissa in [0.75, 1.5)).
fn dd_log2(v: F80) -> Dd {
    let (mut m, mut e) = split(v);
    if m.0 > 1.5 {
        m = m.scale(-1);
        e += 1;
    }
    let ln = dd_ln1p(m.sub(Dd::ONE));
    Dd(f64::from(e), 0.0).add(ln.div(DD_LN2))
}

fn transcendental(cpu: &mut Cpu, op: u8) {
    let round = rc(cpu);
    let yl2x = matches!(op, un::FYL2X | un::FYL2XP1);
    let (a, b, denormal) = if yl2x {
        // FYL2X/FYL2XP1: only C1 (rounding) changes; the operand checks come first and
        // DE is raised for a denormal operand unless the operation is invalid.
        cpu.fpu.sw &= !SW_C1;
        match precheck_quiet(cpu, true) {
            Err(r) => {
                finish_yl2x(cpu, r);
                return;
            }
            Ok(v) => v,
        }
    } else {
        let a = cpu.fpu.st(0);
        let needs_two = op == un::FPATAN;
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
        (a, b, false)
    };
    let pe = crate::softfp::PE as u16;
    match op {
        un::F2XM1 => {
            // 2^x - 1, defined for |x| <= 1.
            let r = if a.is_zero() {
                a
            } else if a.is_infinite() {
                if a.is_negative() {
                    -F80::from_u128(1).value
                } else {
                    a
                }
            } else {
                cpu.fpu.sw |= pe;
                let (m, e) = split(a);
                if e < -60 {
                    join(m.mul(DD_LN2), e, round)
                } else {
                    join(dd_expm1(m.scale(e).mul(DD_LN2)), 0, round)
                }
            };
            cpu.fpu.set_st(0, r);
        }
        un::FYL2XP1 => {
            let r = fyl2xp1(cpu, a, b, denormal, round);
            finish_yl2x(cpu, r);
        }
        un::FYL2X => {
            // ST(1) * log2(ST(0)) (or, in the code below, log2(ST(0) + 1)), then pop.
            let arg_neg = if op == un::FYL2X {
                a.is_negative() && !a.is_zero()
            } else {
                a.partial_cmp(&-F80::from_u128(1).value) == Some(std::cmp::Ordering::Less)
            };
            let arg_zero = if op == un::FYL2X {
                a.is_zero()
            } else {
                a.partial_cmp(&-F80::from_u128(1).value) == Some(std::cmp::Ordering::Equal)
            };
            let invalid = arg_neg
                || (arg_zero && b.is_zero())
                || (op == un::FYL2X && a.is_infinite() && b.is_zero());
            if denormal && !invalid && !arg_zero {
                cpu.fpu.sw |= 2; // DE
            }
            let r = if invalid {
                cpu.fpu.sw |= SW_IE;
                indefinite()
            } else if arg_zero {
                // log2(0) = -inf: a divide by zero unless y is infinite.
                if !b.is_infinite() {
                    cpu.fpu.sw |= 4; // ZE
                }
                F80::INFINITY.copy_sign(-b)
            } else if a.is_infinite() {
                F80::INFINITY.copy_sign(b)
            } else if b.is_infinite() {
                let l = if op == un::FYL2X {
                    dd_log2(a)
                } else {
                    dd_log2(a.add_r(F80::from_u128(1).value, Round::NearestTiesToEven).value)
                };
                if l.0 == 0.0 {
                    cpu.fpu.sw |= SW_IE;
                    indefinite()
                } else if l.0 < 0.0 {
                    -b
                } else {
                    b
                }
            } else if b.is_zero() {
                let l = if op == un::FYL2X {
                    dd_log2(a)
                } else {
                    Dd(if a.is_negative() { -1.0 } else { 1.0 }, 0.0)
                };
                if l.0 < 0.0 {
                    -b
                } else {
                    b
                }
            } else {
                cpu.fpu.sw |= pe;
                let (ym, ye) = split(b);
                let l = if op == un::FYL2X {
                    dd_log2(a)
                } else if a.is_zero() {
                    Dd::ZERO
                } else {
                    let (xm, xe) = split(a);
                    if xe < -60 {
                        // log2(1 + x) = x / ln 2 for tiny x, kept scaled.
                        let r = join_c1(cpu, ym.mul(xm.div(DD_LN2)), ye + xe, round);
                        return finish_yl2x(cpu, r);
                    }
                    dd_ln1p(xm.scale(xe)).div(DD_LN2)
                };
                join_c1(cpu, ym.mul(l), ye, round)
            };
            finish_yl2x(cpu, r);
        }
        un::FPATAN => {
            // atan(ST(1) / ST(0)) with the quadrant of (ST(0), ST(1)), then pop.
            let (x, y) = (a, b);
            let pi = |r| join(DD_PI, 0, r);
            let half = |r| join(DD_PI_2, 0, r);
            let r = if y.is_zero() {
                if x.is_negative() {
                    pi(round).copy_sign(y)
                } else {
                    y
                }
            } else if x.is_zero() {
                half(round).copy_sign(y)
            } else if y.is_infinite() {
                let v = if x.is_infinite() {
                    if x.is_negative() {
                        join(DD_PI_4.add(DD_PI_2), 0, round)
                    } else {
                        join(DD_PI_4, 0, round)
                    }
                } else {
                    half(round)
                };
                v.copy_sign(y)
            } else if x.is_infinite() {
                if x.is_negative() {
                    pi(round).copy_sign(y)
                } else {
                    F80::ZERO.copy_sign(y)
                }
            } else {
                cpu.fpu.sw |= pe;
                let (ym, ye) = split(y.abs());
                let (xm, xe) = split(x.abs());
                let y_small = (ye, ym.0) <= (xe, xm.0);
                let (num, ne, den, de) = if y_small { (ym, ye, xm, xe) } else { (xm, xe, ym, ye) };
                let de = ne - de; // exponent of the ratio w = num/den <= 1
                let t = if de < -1000 {
                    if y_small && !x.is_negative() {
                        // atan(w) = w: round y/x directly.
                        let q = y.abs().div_r(x.abs(), round).value;
                        cpu.fpu.pop();
                        cpu.fpu.set_st(0, q.copy_sign(y));
                        return;
                    }
                    Dd::ZERO
                } else {
                    dd_atan01(num.div(den).scale(de))
                };
                let t = if y_small { t } else { DD_PI_2.sub(t) };
                let t = if x.is_negative() { DD_PI.sub(t) } else { t };
                join(if y.is_negative() { t.neg() } else { t }, 0, round)
            };
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
            if !a.is_zero() && a.ilogb() >= 63 {
                // Out of range: C2 set, operand unchanged.
                cpu.fpu.sw |= SW_C2;
                return;
            }
            let one = F80::from_u128(1).value;
            let (s, c) = if a.is_zero() {
                (a, one)
            } else {
                cpu.fpu.sw |= pe;
                let (m, e) = split(a);
                if e < -40 {
                    // sin x = x, tan x = x, cos x = 1 to within half an ulp.
                    let c = match round {
                        Round::TowardNegative | Round::TowardZero => one.next_down().value,
                        _ => one,
                    };
                    let s = match round {
                        Round::TowardZero => {
                            if a.is_negative() {
                                a.next_up().value
                            } else {
                                a.next_down().value
                            }
                        }
                        Round::TowardNegative if !a.is_negative() => a.next_down().value,
                        Round::TowardPositive if a.is_negative() => a.next_up().value,
                        _ => a,
                    };
                    (s, c)
                } else {
                    let (sd, cd) = dd_sincos_x87(m.scale(e));
                    if op == un::FPTAN {
                        (join(sd.div(cd), 0, round), one)
                    } else {
                        (join(sd, 0, round), join(cd, 0, round))
                    }
                }
            };
            match op {
                un::FSIN => cpu.fpu.set_st(0, s),
                un::FCOS => cpu.fpu.set_st(0, c),
                un::FSINCOS => {
                    cpu.fpu.set_st(0, s);
                    cpu.fpu.push(c);
                }
                _ => {
                    cpu.fpu.set_st(0, s);
                    cpu.fpu.push(one);
                }
            }
        }
    }
}

/// FYL2XP1 on checked operands x = ST(0), y = ST(1): y * log2(x + 1). The SDM defines
/// it for |x| < 1 - sqrt(2)/2; beyond, the result follows the host: the logarithm is
/// computed for any x > -1, and for x < -1 (no invalid operation unless x = -inf) a zero
/// or infinite y gives a zero or an infinity and any other y gives x back, inexact.
fn fyl2xp1(cpu: &mut Cpu, a: F80, b: F80, denormal: bool, round: Round) -> F80 {
    let one = F80::from_u128(1).value;
    let neg_sign = a.is_negative() != b.is_negative();
    let zero = if neg_sign { -F80::ZERO } else { F80::ZERO };
    let inf = if neg_sign { -F80::INFINITY } else { F80::INFINITY };
    let below = a.partial_cmp(&-one) == Some(std::cmp::Ordering::Less);
    let at_minus_one = a.partial_cmp(&-one) == Some(std::cmp::Ordering::Equal);
    // 0 * inf, and x = -inf: invalid.
    let minus_inf = a.is_infinite() && a.is_negative();
    if (a.is_zero() && b.is_infinite()) || (at_minus_one && b.is_zero()) || minus_inf {
        cpu.fpu.sw |= SW_IE;
        return indefinite();
    }
    if denormal {
        cpu.fpu.sw |= 2; // DE
    }
    if at_minus_one {
        if !b.is_infinite() {
            cpu.fpu.sw |= 4; // ZE: log2(0)
        }
        return if b.is_negative() { F80::INFINITY } else { -F80::INFINITY };
    }
    if a.is_infinite() && b.is_zero() {
        cpu.fpu.sw |= SW_IE;
        return indefinite();
    }
    if below {
        if b.is_zero() {
            return zero;
        }
        if b.is_infinite() {
            return inf;
        }
        cpu.fpu.sw |= crate::softfp::PE as u16;
        return a;
    }
    if a.is_zero() || b.is_zero() {
        return zero;
    }
    if b.is_infinite() || a.is_infinite() {
        return inf;
    }
    cpu.fpu.sw |= crate::softfp::PE as u16;
    let (ym, ye) = split(b);
    let (xm, xe) = split(a);
    if xe < -80 {
        // log2(1 + x) = x / ln 2 (to 2^-80 relative) for tiny x, kept scaled.
        return join_c1(cpu, ym.mul(xm.div(DD_LN2)), ye + xe, round);
    }
    let l = if xe < -1 {
        dd_ln1p(xm.scale(xe)).div(DD_LN2)
    } else {
        // |x| >= 0.5: 1 + x is exact for x in [-1, -0.5] and close enough above.
        dd_log2(a.add_r(one, Round::NearestTiesToEven).value)
    };
    join_c1(cpu, ym.mul(l), ye, round)
}

fn finish_yl2x(cpu: &mut Cpu, r: F80) {
    cpu.fpu.pop();
    cpu.fpu.set_st(0, r);
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
    fn double_double_kernels() {
        let (s, c) = dd_sincos_small(Dd(0.5, 0.0));
        assert!((s.0 - 0.5f64.sin()).abs() < 1e-16);
        assert!((c.0 - 0.5f64.cos()).abs() < 1e-16);
        assert!((dd_expm1(Dd(1.0, 0.0)).0 - (std::f64::consts::E - 1.0)).abs() < 1e-15);
        assert!((dd_ln1p(Dd(0.5, 0.0)).0 - 1.5f64.ln()).abs() < 1e-16);
        assert!((dd_atan01(Dd(1.0, 0.0)).0 - std::f64::consts::FRAC_PI_4).abs() < 1e-16);
        let p = pi66_half();
        assert!((p.0 - std::f64::consts::FRAC_PI_2).abs() < 1e-16);
        // The 66-bit pi/2 differs from pi/2 by about 2e-21.
        let d = DD_PI_2.sub(p);
        assert!(d.0.abs() > 1e-22 && d.0.abs() < 1e-20, "{:e}", d.0);
    }

    #[test]
    fn split_join_round_trip() {
        for v in [1.0f64, -3.5, 1e-310, 1e300, 0.1] {
            let x = f(v);
            let (m, e) = split(x);
            assert_eq!(back(join(m, e, Round::NearestTiesToEven)), v);
        }
    }
}
