//! Lazily evaluated arithmetic flags.
//!
//! Most instructions that write CF/PF/AF/ZF/SF/OF are followed by another that overwrites
//! them before anything reads them, so the common ones (ADD, SUB, CMP, logic, INC, DEC, ADC,
//! SBB, NEG) only record their operands, result and width; flags are computed when a
//! reader asks (Jcc, SETcc, CMOVcc, PUSHF, ...). Everything else sets them eagerly.
//! Rules: Intel SDM vol. 1 §3.4.3.1 and the per-instruction "Flags Affected" sections.

/// Carry flag bit in RFLAGS.
pub const CF: u64 = 1 << 0;
/// Parity flag bit.
pub const PF: u64 = 1 << 2;
/// Auxiliary-carry flag bit.
pub const AF: u64 = 1 << 4;
/// Zero flag bit.
pub const ZF: u64 = 1 << 6;
/// Sign flag bit.
pub const SF: u64 = 1 << 7;
/// Overflow flag bit.
pub const OF: u64 = 1 << 11;
/// The six arithmetic status flags.
pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;

/// What the recorded operands describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum FlagOp {
    /// `c` holds the status bits themselves.
    #[default]
    Eager,
    /// res = a + b.
    Add,
    /// res = a + b + c (c is the carry in).
    Adc,
    /// res = a - b.
    Sub,
    /// res = a - b - c (c is the borrow in).
    Sbb,
    /// AND/OR/XOR/TEST: CF = OF = 0, AF = 0.
    Logic,
    /// res = a + 1; CF preserved in c.
    Inc,
    /// res = a - 1; CF preserved in c.
    Dec,
}

/// Operand width index: 0 = 8 bits, 1 = 16, 2 = 32, 3 = 64.
pub type Sz = u8;

/// Bit mask of a width.
#[inline(always)]
pub const fn mask(sz: Sz) -> u64 {
    match sz {
        0 => 0xff,
        1 => 0xffff,
        2 => 0xffff_ffff,
        _ => u64::MAX,
    }
}

/// Sign bit of a width.
#[inline(always)]
pub const fn sign(sz: Sz) -> u64 {
    1u64 << ((8u32 << sz) - 1)
}

/// Sign-extends a value of width `sz` to 64 bits.
#[inline(always)]
pub const fn sext(v: u64, sz: Sz) -> i64 {
    let sh = 64 - (8u32 << sz);
    ((v << sh) as i64) >> sh
}

#[inline(always)]
fn parity(v: u64) -> bool {
    (v as u8).count_ones() % 2 == 0
}

/// The lazily evaluated status flags of one core.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flags {
    op: FlagOp,
    sz: Sz,
    res: u64,
    a: u64,
    b: u64,
    c: u64,
}

impl Flags {
    /// Records an addition `res = a + b`.
    #[inline(always)]
    pub fn set_add(&mut self, sz: Sz, a: u64, b: u64, res: u64) {
        *self = Flags { op: FlagOp::Add, sz, res, a, b, c: 0 };
    }
    /// Records `res = a + b + carry`.
    #[inline(always)]
    pub fn set_adc(&mut self, sz: Sz, a: u64, b: u64, carry: u64, res: u64) {
        *self = Flags { op: FlagOp::Adc, sz, res, a, b, c: carry };
    }
    /// Records a subtraction or comparison `res = a - b`.
    #[inline(always)]
    pub fn set_sub(&mut self, sz: Sz, a: u64, b: u64, res: u64) {
        *self = Flags { op: FlagOp::Sub, sz, res, a, b, c: 0 };
    }
    /// Records `res = a - b - borrow`.
    #[inline(always)]
    pub fn set_sbb(&mut self, sz: Sz, a: u64, b: u64, borrow: u64, res: u64) {
        *self = Flags { op: FlagOp::Sbb, sz, res, a, b, c: borrow };
    }
    /// Records the result of a logical operation.
    #[inline(always)]
    pub fn set_logic(&mut self, sz: Sz, res: u64) {
        *self = Flags { op: FlagOp::Logic, sz, res, a: 0, b: 0, c: 0 };
    }
    /// Records an increment (CF is preserved).
    #[inline(always)]
    pub fn set_inc(&mut self, sz: Sz, a: u64, res: u64) {
        let c = u64::from(self.cf());
        *self = Flags { op: FlagOp::Inc, sz, res, a, b: 1, c };
    }
    /// Records a decrement (CF is preserved).
    #[inline(always)]
    pub fn set_dec(&mut self, sz: Sz, a: u64, res: u64) {
        let c = u64::from(self.cf());
        *self = Flags { op: FlagOp::Dec, sz, res, a, b: 1, c };
    }
    /// Sets all six status flags at once (only the [`STATUS`] bits of `bits` are used).
    #[inline(always)]
    pub fn set_status(&mut self, bits: u64) {
        *self = Flags { op: FlagOp::Eager, sz: 0, res: 0, a: 0, b: 0, c: bits & STATUS };
    }
    /// Sets the status flags of a result: ZF, SF and PF from `res`, CF and OF as given, AF clear.
    #[inline(always)]
    pub fn set_result(&mut self, sz: Sz, res: u64, cf: bool, of: bool) {
        let mut bits = self.szp_bits(sz, res);
        if cf {
            bits |= CF;
        }
        if of {
            bits |= OF;
        }
        self.set_status(bits);
    }

    #[inline(always)]
    fn szp_bits(&self, sz: Sz, res: u64) -> u64 {
        let r = res & mask(sz);
        let mut bits = 0;
        if r == 0 {
            bits |= ZF;
        }
        if r & sign(sz) != 0 {
            bits |= SF;
        }
        if parity(r) {
            bits |= PF;
        }
        bits
    }

    /// Carry flag.
    #[inline(always)]
    pub fn cf(&self) -> bool {
        let m = mask(self.sz);
        match self.op {
            FlagOp::Eager => self.c & CF != 0,
            FlagOp::Add => (self.res & m) < (self.a & m),
            FlagOp::Adc => {
                let (r, a) = (self.res & m, self.a & m);
                r < a || (self.c != 0 && r == a)
            }
            FlagOp::Sub => (self.a & m) < (self.b & m),
            FlagOp::Sbb => {
                let (a, b) = (self.a & m, self.b & m);
                a < b || (self.c != 0 && a == b)
            }
            FlagOp::Logic => false,
            FlagOp::Inc | FlagOp::Dec => self.c != 0,
        }
    }
    /// Zero flag.
    #[inline(always)]
    pub fn zf(&self) -> bool {
        match self.op {
            FlagOp::Eager => self.c & ZF != 0,
            _ => self.res & mask(self.sz) == 0,
        }
    }
    /// Sign flag.
    #[inline(always)]
    pub fn sf(&self) -> bool {
        match self.op {
            FlagOp::Eager => self.c & SF != 0,
            _ => self.res & sign(self.sz) != 0,
        }
    }
    /// Parity flag (even parity of the low byte of the result).
    #[inline(always)]
    pub fn pf(&self) -> bool {
        match self.op {
            FlagOp::Eager => self.c & PF != 0,
            _ => parity(self.res),
        }
    }
    /// Auxiliary carry flag (carry out of bit 3).
    #[inline(always)]
    pub fn af(&self) -> bool {
        match self.op {
            FlagOp::Eager => self.c & AF != 0,
            FlagOp::Logic => false,
            _ => (self.a ^ self.b ^ self.res) & 0x10 != 0,
        }
    }
    /// Overflow flag.
    #[inline(always)]
    pub fn of(&self) -> bool {
        let s = sign(self.sz);
        match self.op {
            FlagOp::Eager => self.c & OF != 0,
            FlagOp::Add | FlagOp::Adc | FlagOp::Inc => {
                ((self.a ^ self.res) & (self.b ^ self.res)) & s != 0
            }
            FlagOp::Sub | FlagOp::Sbb | FlagOp::Dec => {
                ((self.a ^ self.b) & (self.a ^ self.res)) & s != 0
            }
            FlagOp::Logic => false,
        }
    }

    /// The six status flags as RFLAGS bits.
    pub fn status(&self) -> u64 {
        if self.op == FlagOp::Eager {
            return self.c;
        }
        let mut bits = self.szp_bits(self.sz, self.res);
        if self.cf() {
            bits |= CF;
        }
        if self.af() {
            bits |= AF;
        }
        if self.of() {
            bits |= OF;
        }
        bits
    }

    /// Evaluates condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc opcodes:
    /// 0 O, 1 NO, 2 B, 3 AE, 4 E, 5 NE, 6 BE, 7 A, 8 S, 9 NS, 10 P, 11 NP, 12 L, 13 GE,
    /// 14 LE, 15 G).
    #[inline(always)]
    pub fn cond(&self, cc: u8) -> bool {
        match self.op {
            FlagOp::Sub => {
                let m = mask(self.sz);
                let (a, b) = (self.a & m, self.b & m);
                let (sa, sb) = (sext(a, self.sz), sext(b, self.sz));
                match cc {
                    2 => return a < b,
                    3 => return a >= b,
                    4 => return a == b,
                    5 => return a != b,
                    6 => return a <= b,
                    7 => return a > b,
                    12 => return sa < sb,
                    13 => return sa >= sb,
                    14 => return sa <= sb,
                    15 => return sa > sb,
                    _ => {}
                }
            }
            FlagOp::Logic => {
                let r = self.res & mask(self.sz);
                let neg = r & sign(self.sz) != 0;
                match cc {
                    2 | 0 => return false,
                    3 | 1 => return true,
                    4 | 6 => return r == 0,
                    5 | 7 => return r != 0,
                    8 | 12 => return neg,
                    9 | 13 => return !neg,
                    14 => return r == 0 || neg,
                    15 => return r != 0 && !neg,
                    _ => {}
                }
            }
            _ => {}
        }
        self.cond_slow(cc)
    }

    fn cond_slow(&self, cc: u8) -> bool {
        let r = match cc >> 1 {
            0 => self.of(),
            1 => self.cf(),
            2 => self.zf(),
            3 => self.cf() || self.zf(),
            4 => self.sf(),
            5 => self.pf(),
            6 => self.sf() != self.of(),
            _ => self.zf() || (self.sf() != self.of()),
        };
        r ^ (cc & 1 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_conditions_match_materialised_flags() {
        let vals = [0u64, 1, 0x7f, 0x80, 0xff, 0x7fff_ffff, 0x8000_0000, u64::MAX, 1 << 63];
        for sz in 0..4u8 {
            for &a in &vals {
                for &b in &vals {
                    let mut f = Flags::default();
                    f.set_sub(sz, a, b, a.wrapping_sub(b));
                    let mut e = Flags::default();
                    e.set_status(f.status());
                    for cc in 0..16 {
                        assert_eq!(f.cond(cc), e.cond(cc), "sz={sz} a={a:#x} b={b:#x} cc={cc}");
                    }
                }
            }
        }
    }

    #[test]
    fn add_carry_and_overflow() {
        let mut f = Flags::default();
        f.set_add(0, 0x7f, 1, 0x80);
        assert!(f.of() && !f.cf() && f.sf() && f.af());
        f.set_add(0, 0xff, 1, 0x100);
        assert!(f.cf() && f.zf() && !f.of());
        f.set_adc(3, u64::MAX, 0, 1, 0);
        assert!(f.cf() && f.zf());
    }

    #[test]
    fn inc_preserves_carry() {
        let mut f = Flags::default();
        f.set_status(CF);
        f.set_inc(2, 0xffff_ffff, 0x1_0000_0000);
        assert!(f.cf() && f.zf() && !f.of());
        f.set_status(0);
        f.set_dec(1, 0x8000, 0x7fff);
        assert!(!f.cf() && f.of());
    }
}
