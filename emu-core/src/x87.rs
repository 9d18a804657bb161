//! x87 FPU state (Intel SDM vol. 1 ch. 8): eight 80-bit registers addressed relative to
//! TOP, the tag word (only empty/non-empty is tracked), control and status words.
//! Arithmetic is done in 80-bit extended precision with `rustc_apfloat`.

use rustc_apfloat::ieee::X87DoubleExtended;
use rustc_apfloat::Float;

/// The 80-bit extended format.
pub type F80 = X87DoubleExtended;

/// Status word: invalid operation.
pub const SW_IE: u16 = 1 << 0;
/// Status word: stack fault.
pub const SW_SF: u16 = 1 << 6;
/// Status word: condition code C0.
pub const SW_C0: u16 = 1 << 8;
/// Status word: condition code C1.
pub const SW_C1: u16 = 1 << 9;
/// Status word: condition code C2.
pub const SW_C2: u16 = 1 << 10;
/// Status word: condition code C3.
pub const SW_C3: u16 = 1 << 14;
/// The default control word after FNINIT (all exceptions masked, 64-bit precision,
/// round to nearest).
pub const CW_DEFAULT: u16 = 0x37f;

/// x87 register file and control state.
#[derive(Clone, Debug)]
pub struct X87 {
    /// Physical registers R0..R7 as raw 80-bit values.
    pub regs: [u128; 8],
    /// Index of the physical register that is ST(0).
    pub top: u8,
    /// Bit n set: physical register n is empty.
    pub empty: u8,
    /// Control word.
    pub cw: u16,
    /// Status word without the TOP field.
    pub sw: u16,
}

impl Default for X87 {
    fn default() -> Self {
        X87 { regs: [0; 8], top: 0, empty: 0xff, cw: CW_DEFAULT, sw: 0 }
    }
}

/// Classes of 80-bit encodings (Intel SDM vol. 1 §8.2.2, table 8-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Pseudo-NaN, pseudo-infinity or unnormal (integer bit clear with a non-zero
    /// exponent): no longer supported as operands, an invalid operation.
    Unsupported,
    /// NaN (integer bit set, exponent all ones, fraction non-zero).
    Nan,
    /// Infinity.
    Inf,
    /// Zero.
    Zero,
    /// Denormal (exponent 0, integer bit clear).
    Denormal,
    /// Pseudo-denormal (exponent 0, integer bit set): a denormal operand whose value is
    /// that of the same significand with exponent 1.
    PseudoDenormal,
    /// Normal.
    Normal,
}

/// The class of an 80-bit encoding.
pub fn classify(v: u128) -> Class {
    let exp = (v >> 64) as u16 & 0x7fff;
    let sig = v as u64;
    let j = sig >> 63 != 0;
    match exp {
        0x7fff if !j => Class::Unsupported,
        0x7fff if sig << 1 == 0 => Class::Inf,
        0x7fff => Class::Nan,
        0 if sig == 0 => Class::Zero,
        0 if j => Class::PseudoDenormal,
        0 => Class::Denormal,
        _ if !j => Class::Unsupported,
        _ => Class::Normal,
    }
}

/// The x87 "real indefinite" QNaN.
pub fn indefinite() -> F80 {
    F80::from_bits(0xffff_c000_0000_0000_0000)
}

impl X87 {
    /// Physical index of ST(i).
    #[inline]
    pub fn phys(&self, i: u8) -> usize {
        usize::from((self.top + i) & 7)
    }

    /// True when ST(i) is empty.
    pub fn is_empty(&self, i: u8) -> bool {
        self.empty & (1 << self.phys(i)) != 0
    }

    /// Reads ST(i); an empty register is a stack underflow: IE|SF set, indefinite returned.
    pub fn st(&mut self, i: u8) -> F80 {
        F80::from_bits(self.st_bits(i))
    }

    /// Reads the encoding of ST(i) as stored (special encodings kept); an empty register
    /// is a stack underflow: IE|SF set, the indefinite returned.
    pub fn st_bits(&mut self, i: u8) -> u128 {
        if self.is_empty(i) {
            self.sw |= SW_IE | SW_SF;
            self.sw &= !SW_C1;
            return indefinite().to_bits();
        }
        self.regs[self.phys(i)]
    }

    /// Writes ST(i) and marks it non-empty.
    pub fn set_st(&mut self, i: u8, v: F80) {
        self.set_st_bits(i, v.to_bits());
    }

    /// Writes an encoding to ST(i) unchanged and marks it non-empty.
    pub fn set_st_bits(&mut self, i: u8, v: u128) {
        let p = self.phys(i);
        self.regs[p] = v;
        self.empty &= !(1 << p);
    }

    /// Pushes a value (C1 cleared); pushing onto a full register is a stack overflow
    /// (IE, SF and C1 set, the indefinite pushed).
    pub fn push(&mut self, v: F80) {
        self.push_bits(v.to_bits());
    }

    /// Pushes an encoding unchanged, as [`X87::push`].
    pub fn push_bits(&mut self, v: u128) {
        self.top = (self.top + 7) & 7;
        let p = self.phys(0);
        if self.empty & (1 << p) == 0 {
            self.sw |= SW_IE | SW_SF | SW_C1;
            self.regs[p] = indefinite().to_bits();
        } else {
            self.sw &= !SW_C1;
            self.regs[p] = v;
        }
        self.empty &= !(1 << p);
    }

    /// Pops ST(0), marking it empty.
    pub fn pop(&mut self) {
        let p = self.phys(0);
        self.empty |= 1 << p;
        self.top = (self.top + 1) & 7;
    }

    /// The full status word: TOP, and the error-summary (ES) and busy (B) bits, which
    /// are set exactly when an exception flag is set whose mask bit is clear.
    pub fn status_word(&self) -> u16 {
        let es = if self.sw & !self.cw & 0x3f != 0 { 0x8080 } else { 0 };
        (self.sw & !(0x8080 | (7 << 11))) | (u16::from(self.top) << 11) | es
    }

    /// Loads the control word: the reserved bits 7 and 13..15 read as 0, bit 6 as 1.
    pub fn set_cw(&mut self, v: u16) {
        self.cw = (v & 0x1f3f) | 0x40;
    }

    /// FNINIT: default control word, status cleared, TOP = 0, every register empty (the
    /// register contents stay).
    pub fn fninit(&mut self) {
        self.cw = CW_DEFAULT;
        self.sw = 0;
        self.top = 0;
        self.empty = 0xff;
    }

    /// The tag of a non-empty register from its encoding: 00 valid (a normal number),
    /// 01 zero, 10 special (NaN, infinity, denormal, pseudo-denormal, unnormal and the
    /// other unsupported encodings).
    pub fn tag_of(v: u128) -> u16 {
        let exp = (v >> 64) as u16 & 0x7fff;
        let sig = v as u64;
        match exp {
            0 if sig == 0 => 1,
            0 | 0x7fff => 2,
            _ if sig >> 63 == 0 => 2,
            _ => 0,
        }
    }

    /// The 16-bit tag word in FSTENV format (00 valid, 01 zero, 10 special, 11 empty).
    pub fn tag_word(&self) -> u16 {
        let mut tw = 0u16;
        for p in 0..8 {
            let t = if self.empty & (1 << p) != 0 { 3 } else { Self::tag_of(self.regs[p]) };
            tw |= t << (2 * p);
        }
        tw
    }

    /// Loads the tag word (only "empty" is kept).
    pub fn set_tag_word(&mut self, tw: u16) {
        self.empty = 0;
        for p in 0..8 {
            if (tw >> (2 * p)) & 3 == 3 {
                self.empty |= 1 << p;
            }
        }
    }
}

impl X87 {
    /// MMX register `r` (0..7): the significand of physical register R`r`, whatever TOP.
    #[inline(always)]
    pub fn mm(&self, r: u8) -> u64 {
        self.regs[r as usize & 7] as u64
    }

    /// Writes MMX register `r`: the significand, with the sign and exponent bits of the
    /// 80-bit register all set (Intel SDM vol. 1 §9.5.1, table 9-3).
    #[inline(always)]
    pub fn set_mm(&mut self, r: u8, v: u64) {
        self.regs[r as usize & 7] = (0xffffu128 << 64) | u128::from(v);
    }

    /// The x87-to-MMX transition every MMX instruction but EMMS makes: TOP = 0 and every
    /// tag valid.
    #[inline(always)]
    pub fn mmx_enter(&mut self) {
        self.top = 0;
        self.empty = 0;
    }
}
