//! BMI1 and BMI2: the VEX-encoded general-purpose bit-manipulation instructions
//! (Intel SDM vol. 2, one page each: ANDN, BEXTR, BLSI, BLSMSK, BLSR, BZHI, MULX, PDEP,
//! PEXT, RORX, SARX, SHLX, SHRX). They exist in 32- and 64-bit forms only; a 32-bit
//! destination is zero-extended. MULX, PDEP, PEXT, RORX and the shifts leave the flags
//! alone; flags the SDM leaves undefined (AF, PF, and SF for BEXTR) are cleared here.
//!
//! Operand slots follow the decoder's positional numbering, a memory operand taking the
//! slot of the r/m operand: ANDN, PDEP, PEXT and MULX read r/m from slot 2 (`r2`), the
//! others from slot 1 (`r1`). The VEX.vvvv register is `r1` for ANDN/PDEP/PEXT/MULX, `r0`
//! for BLSI/BLSMSK/BLSR, and `r2` for BEXTR/BZHI/SARX/SHLX/SHRX.

use crate::cpu::{Cpu, Exit};
use crate::flags::{mask, sign, CF, SF, ZF};
use crate::insn::{loc::*, Insn, Width};
use crate::mem::GuestMem;

/// Operation selectors.
pub mod op {
    /// ANDN: r0 = !r1 & r/m.
    pub const ANDN: u8 = 0;
    /// BEXTR: r0 = bit field of r/m selected by r2 (start in bits 7:0, length in 15:8).
    pub const BEXTR: u8 = 1;
    /// BLSI: r0 = lowest set bit of r/m.
    pub const BLSI: u8 = 2;
    /// BLSMSK: r0 = mask up to and including the lowest set bit of r/m.
    pub const BLSMSK: u8 = 3;
    /// BLSR: r0 = r/m with its lowest set bit cleared.
    pub const BLSR: u8 = 4;
    /// BZHI: r0 = r/m with the bits from index r2[7:0] upwards cleared.
    pub const BZHI: u8 = 5;
    /// MULX: r0:r1 = rDX * r/m (unsigned; high half in r0).
    pub const MULX: u8 = 6;
    /// PDEP: r0 = low bits of r1 deposited at the set bits of r/m.
    pub const PDEP: u8 = 7;
    /// PEXT: r0 = bits of r1 at the set bits of r/m, packed to the bottom.
    pub const PEXT: u8 = 8;
    /// RORX: r0 = r/m rotated right by the immediate.
    pub const RORX: u8 = 9;
    /// SARX: r0 = r/m >> r2 (arithmetic).
    pub const SARX: u8 = 10;
    /// SHLX: r0 = r/m << r2.
    pub const SHLX: u8 = 11;
    /// SHRX: r0 = r/m >> r2 (logical).
    pub const SHRX: u8 = 12;
}

/// True for the operations whose r/m operand is the third one (slot 2).
pub const fn rm_in_slot2(op: u8) -> bool {
    matches!(op, op::ANDN | op::MULX | op::PDEP | op::PEXT)
}

#[inline(always)]
fn flag(bit: u64, on: bool) -> u64 {
    if on {
        bit
    } else {
        0
    }
}

/// Parallel bit deposit: the low bits of `v`, in order, at the set bits of `m`.
fn pdep(v: u64, mut m: u64) -> u64 {
    let mut r = 0;
    let mut k = 0;
    while m != 0 {
        let low = m & m.wrapping_neg();
        if (v >> k) & 1 != 0 {
            r |= low;
        }
        k += 1;
        m &= m - 1;
    }
    r
}

/// Parallel bit extract: the bits of `v` at the set bits of `m`, packed to the bottom.
fn pext(v: u64, mut m: u64) -> u64 {
    let mut r = 0;
    let mut k = 0;
    while m != 0 {
        let low = m & m.wrapping_neg();
        if v & low != 0 {
            r |= 1 << k;
        }
        k += 1;
        m &= m - 1;
    }
    r
}

/// One BMI1/BMI2 instruction of width W with its r/m operand in a register or memory.
pub fn bmi<M: GuestMem, W: Width, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sz = W::SZ;
    let bits = 8u32 << sz;
    let msk = mask(sz);
    let src = if S == MEM {
        W::load(m, i.ea(cpu))?
    } else {
        W::get(cpu, if rm_in_slot2(OP) { i.r2 } else { i.r1 })
    };
    let szf = |r: u64| flag(ZF, r == 0) | flag(SF, r & sign(sz) != 0);
    let (r, flags) = match OP {
        op::ANDN => {
            let r = !W::get(cpu, i.r1) & src & msk;
            (r, Some(szf(r)))
        }
        op::BEXTR => {
            let ctl = W::get(cpu, i.r2);
            let start = (ctl & 0xff) as u32;
            let len = ((ctl >> 8) & 0xff) as u32;
            let shifted = if start >= bits { 0 } else { src >> start };
            let r = if len >= 64 { shifted } else { shifted & ((1u64 << len) - 1) };
            (r, Some(flag(ZF, r == 0)))
        }
        op::BLSI => {
            let r = src & src.wrapping_neg() & msk;
            (r, Some(szf(r) | flag(CF, src != 0)))
        }
        op::BLSMSK => {
            let r = (src ^ src.wrapping_sub(1)) & msk;
            (r, Some(flag(SF, r & sign(sz) != 0) | flag(CF, src == 0)))
        }
        op::BLSR => {
            let r = src & src.wrapping_sub(1) & msk;
            (r, Some(szf(r) | flag(CF, src == 0)))
        }
        op::BZHI => {
            let n = (W::get(cpu, i.r2) & 0xff) as u32;
            let r = if n < bits { src & ((1u64 << n) - 1) } else { src };
            (r, Some(szf(r) | flag(CF, n > bits - 1)))
        }
        op::MULX => {
            let p = u128::from(W::get(cpu, 2)) * u128::from(src);
            // Low half first: when both destinations are the same register it ends up
            // holding the high half (SDM vol. 2 "MULX").
            W::set(cpu, i.r1, p as u64 & msk);
            ((p >> bits) as u64 & msk, None)
        }
        op::PDEP => (pdep(W::get(cpu, i.r1), src) & msk, None),
        op::PEXT => (pext(W::get(cpu, i.r1), src) & msk, None),
        op::RORX => {
            let c = (i.imm as u32) & (bits - 1);
            let r = if c == 0 { src } else { ((src >> c) | (src << (bits - c))) & msk };
            (r, None)
        }
        op::SARX | op::SHLX | op::SHRX => {
            let c = (W::get(cpu, i.r2) as u32) & (bits - 1);
            let r = match OP {
                op::SARX => (crate::flags::sext(src, sz) >> c) as u64 & msk,
                op::SHLX => (src << c) & msk,
                _ => src >> c,
            };
            (r, None)
        }
        _ => return Err(Exit::Unsupported),
    };
    W::set(cpu, i.r0, r);
    if let Some(f) = flags {
        // CF and OF are set above where defined (OF is always cleared).
        cpu.flags.set_status(f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposit_and_extract() {
        assert_eq!(pdep(0b101, 0b1101_0000), 0b1001_0000);
        assert_eq!(pext(0b1001_0000, 0b1101_0000), 0b101);
        assert_eq!(pdep(u64::MAX, 0), 0);
        assert_eq!(pext(u64::MAX, u64::MAX), u64::MAX);
    }
}
