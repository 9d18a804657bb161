//! The instruction definition table: maps each decoded iced-x86 instruction to its
//! handler, operand fields and cost class, once, at decode time.
//!
//! Forms are chosen from the operand kinds (register, memory, immediate) and the operand
//! width, so one generic handler serves every encoding of an operation; the match below
//! is the table. Anything it does not list decodes to [`system::unsupported`], which
//! stops the run naming the instruction if it is ever executed.

use crate::cpu::{Exception, HI8, NOREG, SEG_FS, SEG_GS, SEG_NONE};
use crate::exec::{bmi, ctrl, int, mmx, seg, sse, string, system, x87};
use crate::insn::{loc::*, ExecFn, Insn, F_ADDR32, F_LOCK, F_REP, F_REPNE, W16, W32, W64, W8};
use crate::mem::GuestMem;
use crate::softfp::{F32, F64};
use crate::timing::{CostClass, InsnCosts};
use iced_x86::{Code, CpuidFeature, Instruction, MemorySize, Mnemonic, OpKind, Register};

/// Selects a width-generic handler: `w!(sz, |W| expr)`.
macro_rules! w {
    ($sz:expr, |$W:ident| $e:expr) => {
        match $sz {
            0 => {
                type $W = W8;
                $e
            }
            1 => {
                type $W = W16;
                $e
            }
            2 => {
                type $W = W32;
                $e
            }
            _ => {
                type $W = W64;
                $e
            }
        }
    };
}

/// Selects by a location kind: `l!(kind, |K| expr)` for K in REG, MEM, IMM.
macro_rules! l {
    ($k:expr, |$K:ident| $e:expr) => {
        match $k {
            REG => {
                const $K: u8 = REG;
                $e
            }
            MEM => {
                const $K: u8 = MEM;
                $e
            }
            _ => {
                const $K: u8 = IMM;
                $e
            }
        }
    };
}

/// Selects a REG or MEM location kind (no immediate).
macro_rules! rm {
    ($k:expr, |$K:ident| $e:expr) => {
        if $k == MEM {
            const $K: u8 = MEM;
            $e
        } else {
            const $K: u8 = REG;
            $e
        }
    };
}

/// Width index of a byte count.
fn sz_of(bytes: usize) -> u8 {
    match bytes {
        1 => 0,
        2 => 1,
        4 => 2,
        _ => 3,
    }
}

/// Our register number for a general-purpose register (HI8 for AH..BH).
fn gpr(r: Register) -> u8 {
    match r {
        Register::AH => HI8,
        Register::CH => HI8 | 1,
        Register::DH => HI8 | 2,
        Register::BH => HI8 | 3,
        _ => r.full_register().number() as u8,
    }
}

fn kind(k: OpKind) -> u8 {
    match k {
        OpKind::Register => REG,
        OpKind::Memory => MEM,
        _ => IMM,
    }
}

/// Builds instructions for one machine profile's costs.
pub struct Resolver {
    costs: InsnCosts,
}

/// Why a block ends after an instruction.
pub fn ends_block(ins: &Instruction) -> bool {
    !matches!(ins.flow_control(), iced_x86::FlowControl::Next)
}

impl Resolver {
    /// A resolver charging the given costs.
    pub fn new(costs: InsnCosts) -> Self {
        Resolver { costs }
    }

    /// Decodes `ins` into an [`Insn`].
    pub fn resolve<M: GuestMem>(&self, ins: &Instruction) -> Insn<M> {
        let mut i = base_insn::<M>(ins);
        let (f, class) = self.handler::<M>(ins, &mut i);
        i.exec = f;
        i.cost = self.costs.fixed(class, has_mem(ins));
        i
    }

    fn handler<M: GuestMem>(&self, ins: &Instruction, i: &mut Insn<M>) -> (ExecFn<M>, CostClass) {
        if let Some(r) = self.int_handler::<M>(ins, i) {
            return r;
        }
        if let Some(r) = bmi_handler::<M>(ins) {
            return r;
        }
        match sse_handler::<M>(ins, i) {
            Some(f) => f,
            None => match x87_handler::<M>(ins, i) {
                Some(f) => (f, x87_class(ins.mnemonic())),
                None if hidden_extension(ins) => {
                    i.cc = system::fault_code(Exception::InvalidOpcode);
                    (system::fault::<M> as ExecFn<M>, CostClass::Alu)
                }
                None => (system::unsupported::<M> as ExecFn<M>, CostClass::Alu),
            },
        }
    }

    #[allow(clippy::too_many_lines)]
    fn int_handler<M: GuestMem>(
        &self,
        ins: &Instruction,
        i: &mut Insn<M>,
    ) -> Option<(ExecFn<M>, CostClass)> {
        use CostClass as C;
        use Mnemonic as Mn;
        let n = ins.op_count();
        let k0 = if n > 0 { kind(ins.op0_kind()) } else { REG };
        let k1 = if n > 1 { kind(ins.op1_kind()) } else { REG };
        let sz = i.sz;
        let alu = |op: u8| -> Option<ExecFn<M>> {
            Some(match (k0, k1) {
                (REG, REG) => alu_w::<M, REG, REG>(op, sz),
                (REG, MEM) => alu_w::<M, REG, MEM>(op, sz),
                (MEM, REG) => alu_w::<M, MEM, REG>(op, sz),
                (REG, IMM) => alu_w::<M, REG, IMM>(op, sz),
                (MEM, IMM) => alu_w::<M, MEM, IMM>(op, sz),
                _ => return None,
            })
        };
        let locked_class = if i.flags & F_LOCK != 0 { C::Locked } else { C::Alu };
        let r: (ExecFn<M>, CostClass) = match ins.mnemonic() {
            Mn::Add => (alu(int::op::ADD)?, locked_class),
            Mn::Or => (alu(int::op::OR)?, locked_class),
            Mn::Adc => (alu(int::op::ADC)?, locked_class),
            Mn::Sbb => (alu(int::op::SBB)?, locked_class),
            Mn::And => (alu(int::op::AND)?, locked_class),
            Mn::Sub => (alu(int::op::SUB)?, locked_class),
            Mn::Xor => (alu(int::op::XOR)?, locked_class),
            Mn::Cmp => (alu(int::op::CMP)?, C::Alu),
            Mn::Test => (alu(int::op::TEST)?, C::Alu),
            Mn::Inc | Mn::Dec | Mn::Neg | Mn::Not => {
                let op = match ins.mnemonic() {
                    Mn::Inc => int::un::INC,
                    Mn::Dec => int::un::DEC,
                    Mn::Neg => int::un::NEG,
                    _ => int::un::NOT,
                };
                let f = rm!(k0, |D| w!(sz, |W| match op {
                    int::un::INC => int::unary::<M, W, { int::un::INC }, D> as ExecFn<M>,
                    int::un::DEC => int::unary::<M, W, { int::un::DEC }, D>,
                    int::un::NEG => int::unary::<M, W, { int::un::NEG }, D>,
                    _ => int::unary::<M, W, { int::un::NOT }, D>,
                }));
                (f, locked_class)
            }
            Mn::Mov => {
                let control = |k: u32| {
                    ins.op_kind(k) == OpKind::Register
                        && (ins.op_register(k).is_cr() || ins.op_register(k).is_dr())
                };
                if control(0) || (n > 1 && control(1)) {
                    // MOV to or from CR3 and friends: privileged, #GP in user mode.
                    i.cc = system::fault_code(Exception::GeneralProtection);
                    return Some((system::fault::<M> as ExecFn<M>, C::Alu));
                }
                let sreg = |k: u32| {
                    ins.op_kind(k) == OpKind::Register && ins.op_register(k).is_segment_register()
                };
                if sreg(0) {
                    i.cc = ins.op0_register().number() as u8;
                    let f = rm!(k1, |S| seg::mov_to_sreg::<M, S> as ExecFn<M>);
                    return Some((f, C::Serializing));
                }
                if sreg(1) {
                    i.cc = ins.op1_register().number() as u8;
                    if k0 == REG {
                        i.sz = sz_of(ins.op0_register().size());
                    }
                    return Some((rm!(k0, |D| seg::mov_from_sreg::<M, D> as ExecFn<M>), C::Alu));
                }
                if ins.op0_kind() == OpKind::Register && !ins.op0_register().is_gpr() {
                    return None;
                }
                if k1 == REG && !ins.op1_register().is_gpr() {
                    return None;
                }
                let f = match (k0, k1) {
                    (REG, REG) => w!(sz, |W| int::mov::<M, W, REG, REG> as ExecFn<M>),
                    (REG, MEM) => w!(sz, |W| int::mov::<M, W, REG, MEM> as ExecFn<M>),
                    (MEM, REG) => w!(sz, |W| int::mov::<M, W, MEM, REG> as ExecFn<M>),
                    (REG, IMM) => w!(sz, |W| int::mov::<M, W, REG, IMM> as ExecFn<M>),
                    (MEM, IMM) => w!(sz, |W| int::mov::<M, W, MEM, IMM> as ExecFn<M>),
                    _ => return None,
                };
                (f, C::Alu)
            }
            Mn::Movnti => (w!(sz, |W| int::mov::<M, W, MEM, REG> as ExecFn<M>), C::Alu),
            Mn::Movzx | Mn::Movsx | Mn::Movsxd => {
                let ssz = if k1 == REG {
                    sz_of(ins.op1_register().size())
                } else {
                    sz_of(ins.memory_size().size())
                };
                if ins.mnemonic() == Mn::Movsxd && sz < 3 {
                    // MOVSXD without REX.W is a plain move of the low bits.
                    let f = rm!(k1, |S| w!(sz, |W| int::mov::<M, W, REG, S> as ExecFn<M>));
                    return Some((f, C::Alu));
                }
                let signed = ins.mnemonic() != Mn::Movzx;
                (movx_fn::<M>(sz, ssz, k1, signed)?, C::Alu)
            }
            Mn::Lea => (w!(sz, |W| int::lea::<M, W> as ExecFn<M>), C::Alu),
            Mn::Shl | Mn::Sal | Mn::Shr | Mn::Sar | Mn::Rol | Mn::Ror | Mn::Rcl | Mn::Rcr => {
                let op = match ins.mnemonic() {
                    Mn::Shl | Mn::Sal => int::sh::SHL,
                    Mn::Shr => int::sh::SHR,
                    Mn::Sar => int::sh::SAR,
                    Mn::Rol => int::sh::ROL,
                    Mn::Ror => int::sh::ROR,
                    Mn::Rcl => int::sh::RCL,
                    _ => int::sh::RCR,
                };
                let cl = k1 == REG;
                (shift_fn::<M>(op, sz, k0, cl), C::Alu)
            }
            Mn::Shld | Mn::Shrd => {
                let cl = ins.op2_kind() == OpKind::Register;
                if !cl {
                    i.imm = ins.immediate(2);
                }
                let left = ins.mnemonic() == Mn::Shld;
                let f = rm!(k0, |D| w!(sz, |W| match (left, cl) {
                    (true, true) => int::shld::<M, W, true, D, { int::cnt::CL }> as ExecFn<M>,
                    (true, false) => int::shld::<M, W, true, D, { int::cnt::IMM }>,
                    (false, true) => int::shld::<M, W, false, D, { int::cnt::CL }>,
                    (false, false) => int::shld::<M, W, false, D, { int::cnt::IMM }>,
                }));
                (f, C::Alu)
            }
            Mn::Mul | Mn::Imul if n == 1 => {
                let signed = ins.mnemonic() == Mn::Imul;
                let f = rm!(k0, |S| w!(sz, |W| if signed {
                    int::mul1::<M, W, true, S> as ExecFn<M>
                } else {
                    int::mul1::<M, W, false, S>
                }));
                (f, C::Mul)
            }
            Mn::Imul => {
                let three = n == 3;
                if three {
                    i.imm = ins.immediate(2);
                }
                let f = rm!(k1, |S| w!(sz, |W| if three {
                    int::imul::<M, W, S, true> as ExecFn<M>
                } else {
                    int::imul::<M, W, S, false>
                }));
                (f, C::Mul)
            }
            Mn::Div | Mn::Idiv => {
                let signed = ins.mnemonic() == Mn::Idiv;
                let f = rm!(k0, |S| w!(sz, |W| if signed {
                    int::div::<M, W, true, S> as ExecFn<M>
                } else {
                    int::div::<M, W, false, S>
                }));
                (f, if sz == 3 { C::Div64 } else { C::Div32 })
            }
            Mn::Cbw => (int::cbw::<M, W16> as ExecFn<M>, C::Alu),
            Mn::Cwde => (int::cbw::<M, W32>, C::Alu),
            Mn::Cdqe => (int::cbw::<M, W64>, C::Alu),
            Mn::Cwd => (int::cwd::<M, W16>, C::Alu),
            Mn::Cdq => (int::cwd::<M, W32>, C::Alu),
            Mn::Cqo => (int::cwd::<M, W64>, C::Alu),
            Mn::Xchg => {
                // Normalise to (r0 = reg or mem, r1 = reg).
                if k0 == REG && k1 == MEM {
                    i.r1 = i.r0;
                    (w!(sz, |W| int::xchg::<M, W, MEM> as ExecFn<M>), C::Locked)
                } else if k0 == MEM {
                    (w!(sz, |W| int::xchg::<M, W, MEM> as ExecFn<M>), C::Locked)
                } else {
                    (w!(sz, |W| int::xchg::<M, W, REG> as ExecFn<M>), C::Alu)
                }
            }
            Mn::Xadd => (rm!(k0, |D| w!(sz, |W| int::xadd::<M, W, D> as ExecFn<M>)), locked_class),
            Mn::Cmpxchg => {
                (rm!(k0, |D| w!(sz, |W| int::cmpxchg::<M, W, D> as ExecFn<M>)), locked_class)
            }
            Mn::Cmpxchg8b => (int::cmpxchg_wide::<M, false> as ExecFn<M>, C::Locked),
            Mn::Cmpxchg16b => (int::cmpxchg_wide::<M, true>, C::Locked),
            Mn::Bswap => (w!(sz, |W| int::bswap::<M, W> as ExecFn<M>), C::Alu),
            Mn::Bt | Mn::Bts | Mn::Btr | Mn::Btc => {
                let op = match ins.mnemonic() {
                    Mn::Bt => int::bt::BT,
                    Mn::Bts => int::bt::BTS,
                    Mn::Btr => int::bt::BTR,
                    _ => int::bt::BTC,
                };
                (bt_fn::<M>(op, sz, k0, k1), if op == int::bt::BT { C::Alu } else { locked_class })
            }
            Mn::Bsf | Mn::Bsr | Mn::Tzcnt | Mn::Lzcnt | Mn::Popcnt => {
                let op = match ins.mnemonic() {
                    Mn::Bsf => int::scan::BSF,
                    Mn::Bsr => int::scan::BSR,
                    Mn::Tzcnt => int::scan::TZCNT,
                    Mn::Lzcnt => int::scan::LZCNT,
                    _ => int::scan::POPCNT,
                };
                (scan_fn::<M>(op, sz, k1), C::Alu)
            }
            m if is_setcc(m) => {
                i.cc = ins.condition_code() as u8 - 1;
                (rm!(k0, |D| int::setcc::<M, D> as ExecFn<M>), C::Alu)
            }
            m if is_cmovcc(m) => {
                i.cc = ins.condition_code() as u8 - 1;
                (rm!(k1, |S| w!(sz, |W| int::cmovcc::<M, W, S> as ExecFn<M>)), C::Alu)
            }
            m if is_jcc(m) => {
                i.cc = ins.condition_code() as u8 - 1;
                i.imm = ins.near_branch_target();
                (ctrl::jcc::<M> as ExecFn<M>, C::Branch)
            }
            Mn::Jmp | Mn::Call if far_ptr_size(ins.memory_size()).is_some() && k0 == MEM => {
                i.sz = far_ptr_size(ins.memory_size())?;
                let f = if ins.mnemonic() == Mn::Call {
                    seg::far_branch::<M, true> as ExecFn<M>
                } else {
                    seg::far_branch::<M, false>
                };
                (f, C::Serializing)
            }
            Mn::Retf => {
                i.sz = match ins.code() {
                    Code::Retfw | Code::Retfw_imm16 => 1,
                    Code::Retfd | Code::Retfd_imm16 => 2,
                    _ => 3,
                };
                i.imm = if n == 1 { ins.immediate(0) } else { 0 };
                (seg::retf::<M> as ExecFn<M>, C::Serializing)
            }
            Mn::Iret | Mn::Iretd | Mn::Iretq => {
                i.sz = match ins.mnemonic() {
                    Mn::Iret => 1,
                    Mn::Iretd => 2,
                    _ => 3,
                };
                (seg::iret::<M> as ExecFn<M>, C::Serializing)
            }
            Mn::Xlatb => (seg::xlat::<M> as ExecFn<M>, C::Alu),
            Mn::Lar | Mn::Lsl => {
                i.sz = sz_of(ins.op0_register().size());
                let f = rm!(k1, |S| if ins.mnemonic() == Mn::Lar {
                    seg::desc_query::<M, { seg::dq::LAR }, S> as ExecFn<M>
                } else {
                    seg::desc_query::<M, { seg::dq::LSL }, S>
                });
                (f, C::Serializing)
            }
            Mn::Verr | Mn::Verw => {
                let f = rm!(k0, |S| if ins.mnemonic() == Mn::Verr {
                    seg::desc_query::<M, { seg::dq::VERR }, S> as ExecFn<M>
                } else {
                    seg::desc_query::<M, { seg::dq::VERW }, S>
                });
                (f, C::Serializing)
            }
            // UMIP-protected: #GP in user mode, completed by Linux's emulation.
            Mn::Sgdt | Mn::Sidt | Mn::Smsw | Mn::Sldt | Mn::Str => {
                use seg::um;
                if k0 == REG {
                    i.sz = sz_of(ins.op0_register().size());
                }
                let f = rm!(k0, |D| match ins.mnemonic() {
                    Mn::Sgdt => seg::umip::<M, { um::SGDT }, D> as ExecFn<M>,
                    Mn::Sidt => seg::umip::<M, { um::SIDT }, D>,
                    Mn::Smsw => seg::umip::<M, { um::SMSW }, D>,
                    Mn::Sldt => seg::umip::<M, { um::SLDT }, D>,
                    _ => seg::umip::<M, { um::STR }, D>,
                });
                (f, C::Serializing)
            }
            Mn::Jmp => match ins.op0_kind() {
                OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16 => {
                    i.imm = ins.near_branch_target();
                    (ctrl::jmp::<M> as ExecFn<M>, C::Branch)
                }
                OpKind::Register => (ctrl::jmp_ind::<M, REG> as ExecFn<M>, C::Branch),
                OpKind::Memory if ins.memory_size().size() == 8 => {
                    (ctrl::jmp_ind::<M, MEM> as ExecFn<M>, C::Branch)
                }
                _ => return None,
            },
            Mn::Call => match ins.op0_kind() {
                OpKind::NearBranch64 => {
                    i.imm = ins.near_branch_target();
                    (ctrl::call::<M> as ExecFn<M>, C::Branch)
                }
                OpKind::Register => (ctrl::call_ind::<M, REG> as ExecFn<M>, C::Branch),
                OpKind::Memory if ins.memory_size().size() == 8 => {
                    (ctrl::call_ind::<M, MEM> as ExecFn<M>, C::Branch)
                }
                _ => return None,
            },
            Mn::Ret => {
                i.imm = if n == 1 { ins.immediate(0) } else { 0 };
                (ctrl::ret::<M> as ExecFn<M>, C::Branch)
            }
            Mn::Jrcxz | Mn::Jecxz | Mn::Loop | Mn::Loope | Mn::Loopne => {
                i.imm = ins.near_branch_target();
                i.sz = if matches!(ins.mnemonic(), Mn::Jecxz)
                    || ins.op1_kind() == OpKind::Register && ins.op1_register() == Register::ECX
                {
                    2
                } else {
                    3
                };
                if matches!(
                    ins.code(),
                    Code::Loop_rel8_64_ECX | Code::Loope_rel8_64_ECX | Code::Loopne_rel8_64_ECX
                ) {
                    i.sz = 2;
                }
                let f = match ins.mnemonic() {
                    Mn::Jrcxz | Mn::Jecxz => ctrl::loopcc::<M, { ctrl::lp::JRCXZ }> as ExecFn<M>,
                    Mn::Loop => ctrl::loopcc::<M, { ctrl::lp::LOOP }>,
                    Mn::Loope => ctrl::loopcc::<M, { ctrl::lp::LOOPE }>,
                    _ => ctrl::loopcc::<M, { ctrl::lp::LOOPNE }>,
                };
                (f, C::Branch)
            }
            Mn::Push | Mn::Pop if k0 == REG && ins.op0_register().is_segment_register() => {
                // PUSH/POP FS and GS (the other segment registers' forms are invalid in
                // 64-bit mode and decode as such).
                i.cc = ins.op0_register().number() as u8;
                i.sz = if matches!(
                    ins.code(),
                    Code::Pushw_FS | Code::Pushw_GS | Code::Popw_FS | Code::Popw_GS
                ) {
                    1
                } else {
                    3
                };
                if ins.mnemonic() == Mn::Push {
                    (seg::push_sreg::<M> as ExecFn<M>, C::Alu)
                } else {
                    (seg::pop_sreg::<M> as ExecFn<M>, C::Serializing)
                }
            }
            Mn::Push => {
                if k0 == REG && !ins.op0_register().is_gpr() {
                    return None;
                }
                let psz = if k0 == IMM {
                    if ins.op0_kind() == OpKind::Immediate8to16 || ins.code() == Code::Push_imm16 {
                        1
                    } else {
                        3
                    }
                } else {
                    sz
                };
                if k0 == IMM {
                    i.imm = ins.immediate(0);
                }
                let f = match psz {
                    1 => l!(k0, |S| ctrl::push::<M, W16, S> as ExecFn<M>),
                    _ => l!(k0, |S| ctrl::push::<M, W64, S> as ExecFn<M>),
                };
                (f, C::Alu)
            }
            Mn::Pop => {
                if k0 == REG && !ins.op0_register().is_gpr() {
                    return None;
                }
                let f = match sz {
                    1 => rm!(k0, |D| ctrl::pop::<M, W16, D> as ExecFn<M>),
                    _ => rm!(k0, |D| ctrl::pop::<M, W64, D> as ExecFn<M>),
                };
                (f, C::Alu)
            }
            Mn::Leave => (ctrl::leave::<M> as ExecFn<M>, C::Alu),
            Mn::Enter => {
                i.imm = (ins.immediate(0) & 0xffff) | ((ins.immediate(1) & 0xff) << 16);
                i.sz = if ins.code() == Code::Enterw_imm16_imm8 { 1 } else { 3 };
                (ctrl::enter::<M> as ExecFn<M>, C::Alu)
            }
            Mn::Pushfq => (ctrl::pushf::<M> as ExecFn<M>, C::Alu),
            Mn::Popfq => (ctrl::popf::<M> as ExecFn<M>, C::Serializing),
            Mn::Pushf => (seg::pushfw::<M> as ExecFn<M>, C::Alu),
            Mn::Popf => (seg::popfw::<M> as ExecFn<M>, C::Serializing),
            Mn::Lfs | Mn::Lgs | Mn::Lss => {
                i.cc = match ins.mnemonic() {
                    Mn::Lfs => seg::sr::FS,
                    Mn::Lgs => seg::sr::GS,
                    _ => seg::sr::SS,
                };
                i.sz = sz_of(ins.op0_register().size());
                (seg::load_far_ptr::<M> as ExecFn<M>, C::Serializing)
            }
            Mn::Clc => (int::flagop::<M, { int::fl::CLC }> as ExecFn<M>, C::Alu),
            Mn::Stc => (int::flagop::<M, { int::fl::STC }>, C::Alu),
            Mn::Cmc => (int::flagop::<M, { int::fl::CMC }>, C::Alu),
            Mn::Cld => (int::flagop::<M, { int::fl::CLD }>, C::Alu),
            Mn::Std => (int::flagop::<M, { int::fl::STD }>, C::Alu),
            Mn::Lahf => (int::flagop::<M, { int::fl::LAHF }>, C::Alu),
            Mn::Sahf => (int::flagop::<M, { int::fl::SAHF }>, C::Alu),
            Mn::Movsb | Mn::Movsw | Mn::Movsd | Mn::Movsq
                if ins.op0_kind() == OpKind::MemoryESRDI =>
            {
                (string_fn::<M>(string::so::MOVS, ins), C::StringIter)
            }
            Mn::Stosb | Mn::Stosw | Mn::Stosd | Mn::Stosq => {
                (string_fn::<M>(string::so::STOS, ins), C::StringIter)
            }
            Mn::Lodsb | Mn::Lodsw | Mn::Lodsd | Mn::Lodsq => {
                (string_fn::<M>(string::so::LODS, ins), C::StringIter)
            }
            Mn::Scasb | Mn::Scasw | Mn::Scasd | Mn::Scasq => {
                (string_fn::<M>(string::so::SCAS, ins), C::StringIter)
            }
            Mn::Cmpsb | Mn::Cmpsw | Mn::Cmpsd | Mn::Cmpsq
                if ins.op0_kind() == OpKind::MemorySegRSI
                    || ins.op0_kind() == OpKind::MemorySegESI =>
            {
                (string_fn::<M>(string::so::CMPS, ins), C::StringIter)
            }
            // The hint-NOP space: 0F 0D and 0F 18..0F 1F with a ModRM byte are NOPs on
            // processors that give them no other meaning, and access no memory. In the
            // 0F 1E row: ENDBR64/ENDBR32, and RDSSPD/RDSSPQ, which leave their register
            // unchanged while shadow stacks are not enabled (Linux enables them only for
            // a process that asks: CPUID here advertises no CET).
            Mn::Nop
            | Mn::Reservednop
            | Mn::Endbr64
            | Mn::Endbr32
            | Mn::Rdsspd
            | Mn::Rdsspq
            | Mn::Cldemote
            | Mn::Prefetchnta
            | Mn::Prefetcht0
            | Mn::Prefetcht1
            | Mn::Prefetcht2
            | Mn::Prefetchw
            | Mn::Prefetch
            | Mn::Prefetchwt1
            | Mn::Prefetchit0
            | Mn::Prefetchit1
            | Mn::Fnop
            // 8087/287 control instructions, no-ops since the 387.
            | Mn::Fneni
            | Mn::Fndisi
            | Mn::Fnsetpm
            | Mn::Feni
            | Mn::Fdisi
            | Mn::Fsetpm
            | Mn::Wait => (system::nop::<M> as ExecFn<M>, C::Alu),
            Mn::Lfence | Mn::Mfence | Mn::Sfence | Mn::Clflush | Mn::Clflushopt => {
                (system::nop::<M> as ExecFn<M>, C::Serializing)
            }
            Mn::Pause => (system::pause::<M> as ExecFn<M>, C::Pause),
            Mn::Cpuid => (system::cpuid::<M> as ExecFn<M>, C::Serializing),
            Mn::Rdtsc => (system::rdtsc::<M, false> as ExecFn<M>, C::Rdtsc),
            Mn::Rdtscp => (system::rdtsc::<M, true> as ExecFn<M>, C::Rdtsc),
            Mn::Xgetbv => (system::xgetbv::<M> as ExecFn<M>, C::Serializing),
            Mn::Syscall => (system::syscall::<M> as ExecFn<M>, C::Syscall),
            Mn::Hlt => (system::hlt::<M> as ExecFn<M>, C::Alu),
            // Privileged instructions (the TLB-maintenance ones included) fault in user
            // mode, as on hardware: the kernel model performs them, not the guest.
            Mn::Invlpg
            | Mn::Invpcid
            | Mn::Invlpgb
            | Mn::Tlbsync
            | Mn::Invlpga
            | Mn::Wbinvd
            | Mn::Invd
            | Mn::Clts
            | Mn::Lgdt
            | Mn::Lidt
            | Mn::Lldt
            | Mn::Ltr
            | Mn::Rdmsr
            | Mn::Wrmsr
            | Mn::Swapgs
            | Mn::Sysretq
            | Mn::Sysret
            | Mn::Sysexit
            | Mn::Sysexitq
            | Mn::Lmsw
            | Mn::Rdpmc
            // Port I/O: IOPL is 0 and Linux gives a process no I/O bitmap unless it asks
            // with ioperm/iopl, which this machine does not offer.
            | Mn::In
            | Mn::Out
            | Mn::Insb
            | Mn::Insw
            | Mn::Insd
            | Mn::Outsb
            | Mn::Outsw
            | Mn::Outsd
            | Mn::Cli
            | Mn::Sti => {
                i.cc = system::fault_code(Exception::GeneralProtection);
                (system::fault::<M> as ExecFn<M>, C::Alu)
            }

            Mn::Ud2 | Mn::Ud0 | Mn::Ud1 => {
                i.cc = system::fault_code(Exception::InvalidOpcode);
                (system::fault::<M> as ExecFn<M>, C::Alu)
            }
            Mn::Int3 => {
                i.cc = system::fault_code(Exception::Breakpoint);
                (system::fault::<M> as ExecFn<M>, C::Alu)
            }
            // INT1 (ICEBP) raises #DB and INT 3 reaches the breakpoint gate, which Linux
            // opens to user mode: both are traps that Linux reports as SIGTRAP.
            Mn::Int1 => {
                i.cc = system::fault_code(Exception::Debug);
                (system::fault::<M> as ExecFn<M>, C::Alu)
            }
            Mn::Int if ins.immediate(0) == 3 => {
                i.cc = system::fault_code(Exception::Breakpoint);
                (system::fault::<M> as ExecFn<M>, C::Alu)
            }
            Mn::Int if ins.immediate(0) == 0x80 => (system::int80::<M> as ExecFn<M>, C::Syscall),
            Mn::Int | Mn::Into => {
                // INT n in a 64-bit Linux process without an IDT gate for user: #GP.
                i.cc = system::fault_code(Exception::GeneralProtection);
                (system::fault::<M> as ExecFn<M>, C::Alu)
            }
            Mn::INVALID => {
                i.cc = system::fault_code(Exception::InvalidOpcode);
                (system::fault::<M> as ExecFn<M>, C::Alu)
            }
            _ => return None,
        };
        Some(r)
    }
}

fn base_insn<M: GuestMem>(ins: &Instruction) -> Insn<M> {
    let mut flags = 0;
    if ins.has_lock_prefix() {
        flags |= F_LOCK;
    }
    if ins.has_rep_prefix() {
        flags |= F_REP;
    }
    if ins.has_repne_prefix() {
        flags |= F_REPNE;
    }
    let mut i = Insn {
        exec: system::unsupported::<M>,
        next_rip: ins.next_ip(),
        imm: 0,
        disp: 0,
        base: NOREG,
        index: NOREG,
        scale: 0,
        seg: SEG_NONE,
        r0: NOREG,
        r1: NOREG,
        r2: NOREG,
        len: ins.len() as u8,
        cc: 0,
        sz: 3,
        flags,
        cost: 0,
        code: ins.code() as u16,
    };
    let n = ins.op_count();
    let mut regs = [NOREG; 3];
    let mut nreg = 0;
    let mut width = None;
    for k in 0..n.min(4) {
        match ins.op_kind(k) {
            OpKind::Register => {
                let r = ins.op_register(k);
                let v = if r.is_gpr() {
                    gpr(r)
                } else if r.is_xmm() || r.is_st() || r.is_mm() {
                    r.number() as u8
                } else {
                    NOREG
                };
                if width.is_none() && r.is_gpr() {
                    width = Some(sz_of(r.size()));
                }
                if nreg < 3 {
                    regs[nreg] = v;
                    nreg += 1;
                }
            }
            OpKind::Memory => {
                let ms = ins.memory_size().size();
                if width.is_none() && k == 0 {
                    width = Some(sz_of(ms));
                }
                // Keep positional register numbering: a memory operand takes a slot.
                if nreg < 3 {
                    regs[nreg] = NOREG;
                    nreg += 1;
                }
                let base = ins.memory_base();
                if base == Register::RIP || base == Register::EIP {
                    i.disp = ins.memory_displacement64();
                } else {
                    i.disp = ins.memory_displacement64();
                    if base != Register::None {
                        i.base = gpr(base);
                        if base.size() == 4 {
                            i.flags |= F_ADDR32;
                        }
                    }
                }
                let index = ins.memory_index();
                if index != Register::None && index.is_gpr() {
                    i.index = gpr(index);
                    i.scale = ins.memory_index_scale().trailing_zeros() as u8;
                    if index.size() == 4 {
                        i.flags |= F_ADDR32;
                    }
                }
                i.seg = match ins.memory_segment() {
                    Register::FS => SEG_FS,
                    Register::GS => SEG_GS,
                    _ => SEG_NONE,
                };
            }
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => {
                i.imm = ins.immediate(k);
            }
            OpKind::MemorySegRSI | OpKind::MemorySegESI | OpKind::MemorySegSI => {
                i.seg = match ins.memory_segment() {
                    Register::FS => SEG_FS,
                    Register::GS => SEG_GS,
                    _ => SEG_NONE,
                };
            }
            _ => {}
        }
    }
    i.r0 = regs[0];
    i.r1 = regs[1];
    i.r2 = regs[2];
    if let Some(w) = width {
        i.sz = w;
    }
    i
}

/// True when `f` is a feature the machine profiles can advertise in CPUID (see
/// `emu_smp::profile`): the x86-64 baseline with x87, MMX, FXSR, SSE and SSE2,
/// CMPXCHG16B, POPCNT, LZCNT, BMI1/BMI2, RDTSCP, SYSCALL/SYSENTER, CLFLUSH.
fn advertised(f: CpuidFeature) -> bool {
    use CpuidFeature::*;
    matches!(
        f,
        INTEL8086
            | INTEL186
            | INTEL286
            | INTEL386
            | INTEL486
            | X64
            | CPUID
            | TSC
            | MSR
            | RDPMC
            | SEP
            | CMOV
            | CX8
            | CMPXCHG16B
            | FPU
            | FPU287
            | FPU387
            | FXSR
            | MMX
            | SSE
            | SSE2
            | POPCNT
            | LZCNT
            | BMI1
            | BMI2
            | RDTSCP
            | SYSCALL
            | CLFSH
            | PAUSE
            | MULTIBYTENOP
            | INVPCID
    )
}

/// An instruction this emulator does not implement that belongs to an extension CPUID
/// does not advertise (AVX, AVX-512, SSE3 and later, XSAVE, RDRAND, FSGSBASE, ...), or
/// that no longer exists: a processor without that extension raises #UD, which Linux
/// delivers as SIGILL. Programs that check CPUID never execute them.
fn hidden_extension(ins: &Instruction) -> bool {
    ins.cpuid_features().iter().any(|&f| !advertised(f))
}

/// Operand-size index (1 = 16, 2 = 32, 3 = 64 bits) of a far pointer operand.
fn far_ptr_size(ms: MemorySize) -> Option<u8> {
    match ms {
        MemorySize::SegPtr16 => Some(1),
        MemorySize::SegPtr32 => Some(2),
        MemorySize::SegPtr64 => Some(3),
        _ => None,
    }
}

fn has_mem(ins: &Instruction) -> bool {
    (0..ins.op_count()).any(|k| ins.op_kind(k) == OpKind::Memory)
}

fn alu_w<M: GuestMem, const D: u8, const S: u8>(op: u8, sz: u8) -> ExecFn<M> {
    w!(sz, |W| match op {
        int::op::ADD => int::alu::<M, W, { int::op::ADD }, D, S> as ExecFn<M>,
        int::op::OR => int::alu::<M, W, { int::op::OR }, D, S>,
        int::op::ADC => int::alu::<M, W, { int::op::ADC }, D, S>,
        int::op::SBB => int::alu::<M, W, { int::op::SBB }, D, S>,
        int::op::AND => int::alu::<M, W, { int::op::AND }, D, S>,
        int::op::SUB => int::alu::<M, W, { int::op::SUB }, D, S>,
        int::op::XOR => int::alu::<M, W, { int::op::XOR }, D, S>,
        int::op::CMP => int::alu::<M, W, { int::op::CMP }, D, S>,
        _ => int::alu::<M, W, { int::op::TEST }, D, S>,
    })
}

fn movx_fn<M: GuestMem>(dsz: u8, ssz: u8, k1: u8, signed: bool) -> Option<ExecFn<M>> {
    macro_rules! pick {
        ($WD:ty, $WS:ty) => {
            rm!(k1, |S| if signed {
                int::movx::<M, $WD, $WS, S, true> as ExecFn<M>
            } else {
                int::movx::<M, $WD, $WS, S, false>
            })
        };
    }
    Some(match (dsz, ssz) {
        (1, 0) => pick!(W16, W8),
        (2, 0) => pick!(W32, W8),
        (3, 0) => pick!(W64, W8),
        (2, 1) => pick!(W32, W16),
        (3, 1) => pick!(W64, W16),
        (3, 2) => pick!(W64, W32),
        (1, 1) => pick!(W16, W16),
        _ => return None,
    })
}

fn shift_fn<M: GuestMem>(op: u8, sz: u8, k0: u8, cl: bool) -> ExecFn<M> {
    macro_rules! ops {
        ($D:ident, $C:expr) => {
            w!(sz, |W| match op {
                int::sh::ROL => int::shift::<M, W, { int::sh::ROL }, $D, $C> as ExecFn<M>,
                int::sh::ROR => int::shift::<M, W, { int::sh::ROR }, $D, $C>,
                int::sh::RCL => int::shift::<M, W, { int::sh::RCL }, $D, $C>,
                int::sh::RCR => int::shift::<M, W, { int::sh::RCR }, $D, $C>,
                int::sh::SHL => int::shift::<M, W, { int::sh::SHL }, $D, $C>,
                int::sh::SHR => int::shift::<M, W, { int::sh::SHR }, $D, $C>,
                _ => int::shift::<M, W, { int::sh::SAR }, $D, $C>,
            })
        };
    }
    rm!(k0, |D| if cl { ops!(D, { int::cnt::CL }) } else { ops!(D, { int::cnt::IMM }) })
}

fn bt_fn<M: GuestMem>(op: u8, sz: u8, k0: u8, k1: u8) -> ExecFn<M> {
    macro_rules! ops {
        ($D:ident, $S:ident) => {
            w!(sz, |W| match op {
                int::bt::BT => int::bittest::<M, W, { int::bt::BT }, $D, $S> as ExecFn<M>,
                int::bt::BTS => int::bittest::<M, W, { int::bt::BTS }, $D, $S>,
                int::bt::BTR => int::bittest::<M, W, { int::bt::BTR }, $D, $S>,
                _ => int::bittest::<M, W, { int::bt::BTC }, $D, $S>,
            })
        };
    }
    rm!(k0, |D| if k1 == REG {
        const S: u8 = REG;
        ops!(D, S)
    } else {
        const S: u8 = IMM;
        ops!(D, S)
    })
}

fn scan_fn<M: GuestMem>(op: u8, sz: u8, k1: u8) -> ExecFn<M> {
    rm!(k1, |S| w!(sz, |W| match op {
        int::scan::BSF => int::bitscan::<M, W, { int::scan::BSF }, S> as ExecFn<M>,
        int::scan::BSR => int::bitscan::<M, W, { int::scan::BSR }, S>,
        int::scan::TZCNT => int::bitscan::<M, W, { int::scan::TZCNT }, S>,
        int::scan::LZCNT => int::bitscan::<M, W, { int::scan::LZCNT }, S>,
        _ => int::bitscan::<M, W, { int::scan::POPCNT }, S>,
    }))
}

fn string_fn<M: GuestMem>(op: u8, ins: &Instruction) -> ExecFn<M> {
    let sz = sz_of(ins.memory_size().size());
    w!(sz, |W| match op {
        string::so::MOVS => string::string::<M, W, { string::so::MOVS }> as ExecFn<M>,
        string::so::STOS => string::string::<M, W, { string::so::STOS }>,
        string::so::LODS => string::string::<M, W, { string::so::LODS }>,
        string::so::SCAS => string::string::<M, W, { string::so::SCAS }>,
        _ => string::string::<M, W, { string::so::CMPS }>,
    })
}

/// True for the SETcc instructions.
pub fn is_setcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Seto | Setno
            | Setb
            | Setae
            | Sete
            | Setne
            | Setbe
            | Seta
            | Sets
            | Setns
            | Setp
            | Setnp
            | Setl
            | Setge
            | Setle
            | Setg
    )
}

/// True for the CMOVcc instructions.
pub fn is_cmovcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Cmovo
            | Cmovno
            | Cmovb
            | Cmovae
            | Cmove
            | Cmovne
            | Cmovbe
            | Cmova
            | Cmovs
            | Cmovns
            | Cmovp
            | Cmovnp
            | Cmovl
            | Cmovge
            | Cmovle
            | Cmovg
    )
}

fn is_jcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Jo | Jno | Jb | Jae | Je | Jne | Jbe | Ja | Js | Jns | Jp | Jnp | Jl | Jge | Jle | Jg
    )
}

/// BMI1/BMI2 handlers (VEX-encoded general-purpose instructions, 32 and 64 bits).
fn bmi_handler<M: GuestMem>(ins: &Instruction) -> Option<(ExecFn<M>, CostClass)> {
    use bmi::op;
    use Mnemonic as Mn;
    let op = match ins.mnemonic() {
        Mn::Andn => op::ANDN,
        Mn::Bextr if ins.encoding() == iced_x86::EncodingKind::VEX => op::BEXTR,
        Mn::Blsi => op::BLSI,
        Mn::Blsmsk => op::BLSMSK,
        Mn::Blsr => op::BLSR,
        Mn::Bzhi => op::BZHI,
        Mn::Mulx => op::MULX,
        Mn::Pdep => op::PDEP,
        Mn::Pext => op::PEXT,
        Mn::Rorx => op::RORX,
        Mn::Sarx => op::SARX,
        Mn::Shlx => op::SHLX,
        Mn::Shrx => op::SHRX,
        _ => return None,
    };
    let k = kind(if bmi::rm_in_slot2(op) { ins.op2_kind() } else { ins.op1_kind() });
    let wide = ins.op0_register().size() == 8;
    macro_rules! ops {
        ($W:ty, $S:ident) => {
            match op {
                op::ANDN => bmi::bmi::<M, $W, { op::ANDN }, $S> as ExecFn<M>,
                op::BEXTR => bmi::bmi::<M, $W, { op::BEXTR }, $S>,
                op::BLSI => bmi::bmi::<M, $W, { op::BLSI }, $S>,
                op::BLSMSK => bmi::bmi::<M, $W, { op::BLSMSK }, $S>,
                op::BLSR => bmi::bmi::<M, $W, { op::BLSR }, $S>,
                op::BZHI => bmi::bmi::<M, $W, { op::BZHI }, $S>,
                op::MULX => bmi::bmi::<M, $W, { op::MULX }, $S>,
                op::PDEP => bmi::bmi::<M, $W, { op::PDEP }, $S>,
                op::PEXT => bmi::bmi::<M, $W, { op::PEXT }, $S>,
                op::RORX => bmi::bmi::<M, $W, { op::RORX }, $S>,
                op::SARX => bmi::bmi::<M, $W, { op::SARX }, $S>,
                op::SHLX => bmi::bmi::<M, $W, { op::SHLX }, $S>,
                _ => bmi::bmi::<M, $W, { op::SHRX }, $S>,
            }
        };
    }
    let f = rm!(k, |S| if wide { ops!(W64, S) } else { ops!(W32, S) });
    let class =
        if matches!(op, op::MULX | op::PDEP | op::PEXT) { CostClass::Mul } else { CostClass::Alu };
    Some((f, class))
}

/// SSE/SSE2 handlers. Only forms whose first register operand is an XMM register (or
/// memory with an XMM source) are accepted; MMX and VEX forms are not.
#[allow(clippy::too_many_lines)]
fn sse_handler<M: GuestMem>(ins: &Instruction, i: &mut Insn<M>) -> Option<(ExecFn<M>, CostClass)> {
    use sse::pi;
    use CostClass as C;
    use Mnemonic as Mn;
    let n = ins.op_count();
    if n == 0 {
        return match ins.mnemonic() {
            Mn::Emms => Some((mmx::emms::<M> as ExecFn<M>, C::SseInt)),
            _ => None,
        };
    }
    let reg_xmm = |k: u32| ins.op_kind(k) == OpKind::Register && ins.op_register(k).is_xmm();
    let k0 = kind(ins.op0_kind());
    let k1 = if n > 1 { kind(ins.op1_kind()) } else { REG };
    let any_xmm = (0..n).any(reg_xmm);
    let any_mm = (0..n).any(|k| ins.op_kind(k) == OpKind::Register && ins.op_register(k).is_mm());
    let m = ins.mnemonic();
    if matches!(
        m,
        Mn::Ldmxcsr | Mn::Stmxcsr | Mn::Fxsave | Mn::Fxsave64 | Mn::Fxrstor | Mn::Fxrstor64
    ) {
        let f = match m {
            Mn::Ldmxcsr => sse::mxcsr::<M, true> as ExecFn<M>,
            Mn::Stmxcsr => sse::mxcsr::<M, false>,
            Mn::Fxsave | Mn::Fxsave64 => x87::fmem::<M, { x87::mctl::FXSAVE }>,
            _ => x87::fmem::<M, { x87::mctl::FXRSTOR }>,
        };
        return Some((f, C::Serializing));
    }
    if any_mm || matches!(m, Mn::Emms | Mn::Cvtpi2ps | Mn::Cvtpi2pd) {
        return mmx_handler::<M>(ins, i);
    }
    // CVT(T)SS2SI/CVT(T)SD2SI with a memory source name no XMM register.
    let scalar_to_int =
        matches!(m, Mn::Cvtss2si | Mn::Cvtsd2si | Mn::Cvttss2si | Mn::Cvttsd2si) && k1 == MEM;
    if !(any_xmm || scalar_to_int) || any_mm {
        return None;
    }
    // Packed op on (xmm, xmm/m128).
    let pint = |op: u8| -> ExecFn<M> {
        macro_rules! table {
            ($S:ident) => {
                match op {
                    pi::PADDB => sse::pint::<M, { pi::PADDB }, $S> as ExecFn<M>,
                    pi::PADDW => sse::pint::<M, { pi::PADDW }, $S>,
                    pi::PADDD => sse::pint::<M, { pi::PADDD }, $S>,
                    pi::PADDQ => sse::pint::<M, { pi::PADDQ }, $S>,
                    pi::PSUBB => sse::pint::<M, { pi::PSUBB }, $S>,
                    pi::PSUBW => sse::pint::<M, { pi::PSUBW }, $S>,
                    pi::PSUBD => sse::pint::<M, { pi::PSUBD }, $S>,
                    pi::PSUBQ => sse::pint::<M, { pi::PSUBQ }, $S>,
                    pi::PADDSB => sse::pint::<M, { pi::PADDSB }, $S>,
                    pi::PADDSW => sse::pint::<M, { pi::PADDSW }, $S>,
                    pi::PADDUSB => sse::pint::<M, { pi::PADDUSB }, $S>,
                    pi::PADDUSW => sse::pint::<M, { pi::PADDUSW }, $S>,
                    pi::PSUBSB => sse::pint::<M, { pi::PSUBSB }, $S>,
                    pi::PSUBSW => sse::pint::<M, { pi::PSUBSW }, $S>,
                    pi::PSUBUSB => sse::pint::<M, { pi::PSUBUSB }, $S>,
                    pi::PSUBUSW => sse::pint::<M, { pi::PSUBUSW }, $S>,
                    pi::PCMPEQB => sse::pint::<M, { pi::PCMPEQB }, $S>,
                    pi::PCMPEQW => sse::pint::<M, { pi::PCMPEQW }, $S>,
                    pi::PCMPEQD => sse::pint::<M, { pi::PCMPEQD }, $S>,
                    pi::PCMPGTB => sse::pint::<M, { pi::PCMPGTB }, $S>,
                    pi::PCMPGTW => sse::pint::<M, { pi::PCMPGTW }, $S>,
                    pi::PCMPGTD => sse::pint::<M, { pi::PCMPGTD }, $S>,
                    pi::PAND => sse::pint::<M, { pi::PAND }, $S>,
                    pi::PANDN => sse::pint::<M, { pi::PANDN }, $S>,
                    pi::POR => sse::pint::<M, { pi::POR }, $S>,
                    pi::PXOR => sse::pint::<M, { pi::PXOR }, $S>,
                    pi::PMULLW => sse::pint::<M, { pi::PMULLW }, $S>,
                    pi::PMULHW => sse::pint::<M, { pi::PMULHW }, $S>,
                    pi::PMULHUW => sse::pint::<M, { pi::PMULHUW }, $S>,
                    pi::PMULUDQ => sse::pint::<M, { pi::PMULUDQ }, $S>,
                    pi::PMADDWD => sse::pint::<M, { pi::PMADDWD }, $S>,
                    pi::PAVGB => sse::pint::<M, { pi::PAVGB }, $S>,
                    pi::PAVGW => sse::pint::<M, { pi::PAVGW }, $S>,
                    pi::PMINUB => sse::pint::<M, { pi::PMINUB }, $S>,
                    pi::PMAXUB => sse::pint::<M, { pi::PMAXUB }, $S>,
                    pi::PMINSW => sse::pint::<M, { pi::PMINSW }, $S>,
                    pi::PMAXSW => sse::pint::<M, { pi::PMAXSW }, $S>,
                    pi::PSADBW => sse::pint::<M, { pi::PSADBW }, $S>,
                    pi::PUNPCKLBW => sse::pint::<M, { pi::PUNPCKLBW }, $S>,
                    pi::PUNPCKLWD => sse::pint::<M, { pi::PUNPCKLWD }, $S>,
                    pi::PUNPCKLDQ => sse::pint::<M, { pi::PUNPCKLDQ }, $S>,
                    pi::PUNPCKLQDQ => sse::pint::<M, { pi::PUNPCKLQDQ }, $S>,
                    pi::PUNPCKHBW => sse::pint::<M, { pi::PUNPCKHBW }, $S>,
                    pi::PUNPCKHWD => sse::pint::<M, { pi::PUNPCKHWD }, $S>,
                    pi::PUNPCKHDQ => sse::pint::<M, { pi::PUNPCKHDQ }, $S>,
                    pi::PUNPCKHQDQ => sse::pint::<M, { pi::PUNPCKHQDQ }, $S>,
                    pi::PACKSSWB => sse::pint::<M, { pi::PACKSSWB }, $S>,
                    pi::PACKSSDW => sse::pint::<M, { pi::PACKSSDW }, $S>,
                    pi::PACKUSWB => sse::pint::<M, { pi::PACKUSWB }, $S>,
                    pi::PSRLW => sse::pint::<M, { pi::PSRLW }, $S>,
                    pi::PSRLD => sse::pint::<M, { pi::PSRLD }, $S>,
                    pi::PSRLQ => sse::pint::<M, { pi::PSRLQ }, $S>,
                    pi::PSRAW => sse::pint::<M, { pi::PSRAW }, $S>,
                    pi::PSRAD => sse::pint::<M, { pi::PSRAD }, $S>,
                    pi::PSLLW => sse::pint::<M, { pi::PSLLW }, $S>,
                    pi::PSLLD => sse::pint::<M, { pi::PSLLD }, $S>,
                    pi::PSLLQ => sse::pint::<M, { pi::PSLLQ }, $S>,
                    pi::MOVLHPS => sse::pint::<M, { pi::MOVLHPS }, $S>,
                    pi::PCMPEQQ => sse::pint::<M, { pi::PCMPEQQ }, $S>,
                    _ => sse::pint::<M, { pi::MOVHLPS }, $S>,
                }
            };
        }
        rm!(k1, |S| table!(S))
    };
    let pint_op = match m {
        Mn::Paddb => Some(pi::PADDB),
        Mn::Paddw => Some(pi::PADDW),
        Mn::Paddd => Some(pi::PADDD),
        Mn::Paddq => Some(pi::PADDQ),
        Mn::Psubb => Some(pi::PSUBB),
        Mn::Psubw => Some(pi::PSUBW),
        Mn::Psubd => Some(pi::PSUBD),
        Mn::Psubq => Some(pi::PSUBQ),
        Mn::Paddsb => Some(pi::PADDSB),
        Mn::Paddsw => Some(pi::PADDSW),
        Mn::Paddusb => Some(pi::PADDUSB),
        Mn::Paddusw => Some(pi::PADDUSW),
        Mn::Psubsb => Some(pi::PSUBSB),
        Mn::Psubsw => Some(pi::PSUBSW),
        Mn::Psubusb => Some(pi::PSUBUSB),
        Mn::Psubusw => Some(pi::PSUBUSW),
        Mn::Pcmpeqb => Some(pi::PCMPEQB),
        Mn::Pcmpeqw => Some(pi::PCMPEQW),
        Mn::Pcmpeqd => Some(pi::PCMPEQD),
        Mn::Pcmpgtb => Some(pi::PCMPGTB),
        Mn::Pcmpgtw => Some(pi::PCMPGTW),
        Mn::Pcmpgtd => Some(pi::PCMPGTD),
        Mn::Pand | Mn::Andps | Mn::Andpd => Some(pi::PAND),
        Mn::Pandn | Mn::Andnps | Mn::Andnpd => Some(pi::PANDN),
        Mn::Por | Mn::Orps | Mn::Orpd => Some(pi::POR),
        Mn::Pxor | Mn::Xorps | Mn::Xorpd => Some(pi::PXOR),
        Mn::Pmullw => Some(pi::PMULLW),
        Mn::Pmulhw => Some(pi::PMULHW),
        Mn::Pmulhuw => Some(pi::PMULHUW),
        Mn::Pmuludq => Some(pi::PMULUDQ),
        Mn::Pmaddwd => Some(pi::PMADDWD),
        Mn::Pavgb => Some(pi::PAVGB),
        Mn::Pavgw => Some(pi::PAVGW),
        Mn::Pminub => Some(pi::PMINUB),
        Mn::Pmaxub => Some(pi::PMAXUB),
        Mn::Pminsw => Some(pi::PMINSW),
        Mn::Pmaxsw => Some(pi::PMAXSW),
        Mn::Psadbw => Some(pi::PSADBW),
        Mn::Punpcklbw => Some(pi::PUNPCKLBW),
        Mn::Punpcklwd => Some(pi::PUNPCKLWD),
        Mn::Punpckldq | Mn::Unpcklps => Some(pi::PUNPCKLDQ),
        Mn::Punpcklqdq | Mn::Unpcklpd => Some(pi::PUNPCKLQDQ),
        Mn::Punpckhbw => Some(pi::PUNPCKHBW),
        Mn::Punpckhwd => Some(pi::PUNPCKHWD),
        Mn::Punpckhdq | Mn::Unpckhps => Some(pi::PUNPCKHDQ),
        Mn::Punpckhqdq | Mn::Unpckhpd => Some(pi::PUNPCKHQDQ),
        Mn::Packsswb => Some(pi::PACKSSWB),
        Mn::Packssdw => Some(pi::PACKSSDW),
        Mn::Packuswb => Some(pi::PACKUSWB),
        Mn::Movlhps => Some(pi::MOVLHPS),
        Mn::Movhlps => Some(pi::MOVHLPS),
        Mn::Psrlw
        | Mn::Psrld
        | Mn::Psrlq
        | Mn::Psraw
        | Mn::Psrad
        | Mn::Psllw
        | Mn::Pslld
        | Mn::Psllq => {
            let op = match m {
                Mn::Psrlw => pi::PSRLW,
                Mn::Psrld => pi::PSRLD,
                Mn::Psrlq => pi::PSRLQ,
                Mn::Psraw => pi::PSRAW,
                Mn::Psrad => pi::PSRAD,
                Mn::Psllw => pi::PSLLW,
                Mn::Pslld => pi::PSLLD,
                _ => pi::PSLLQ,
            };
            if k1 == IMM {
                let f = match op {
                    pi::PSRLW => sse::pshift_imm::<M, { pi::PSRLW }> as ExecFn<M>,
                    pi::PSRLD => sse::pshift_imm::<M, { pi::PSRLD }>,
                    pi::PSRLQ => sse::pshift_imm::<M, { pi::PSRLQ }>,
                    pi::PSRAW => sse::pshift_imm::<M, { pi::PSRAW }>,
                    pi::PSRAD => sse::pshift_imm::<M, { pi::PSRAD }>,
                    pi::PSLLW => sse::pshift_imm::<M, { pi::PSLLW }>,
                    pi::PSLLD => sse::pshift_imm::<M, { pi::PSLLD }>,
                    _ => sse::pshift_imm::<M, { pi::PSLLQ }>,
                };
                return Some((f, C::SseInt));
            }
            Some(op)
        }
        _ => None,
    };
    if let Some(op) = pint_op {
        let class =
            if matches!(op, pi::PMULLW | pi::PMULHW | pi::PMULHUW | pi::PMULUDQ | pi::PMADDWD) {
                C::SseMul
            } else {
                C::SseInt
            };
        return Some((pint(op), class));
    }
    let f: ExecFn<M> = match m {
        Mn::Psrldq => sse::pshift_imm::<M, { sse::psh::PSRLDQ }>,
        Mn::Pslldq => sse::pshift_imm::<M, { sse::psh::PSLLDQ }>,
        Mn::Pshufd | Mn::Pshuflw | Mn::Pshufhw | Mn::Shufps | Mn::Shufpd => {
            i.imm = ins.immediate(2);
            rm!(k1, |S| match m {
                Mn::Pshufd => sse::shuffle::<M, { sse::shuf::PSHUFD }, S> as ExecFn<M>,
                Mn::Pshuflw => sse::shuffle::<M, { sse::shuf::PSHUFLW }, S>,
                Mn::Pshufhw => sse::shuffle::<M, { sse::shuf::PSHUFHW }, S>,
                Mn::Shufps => sse::shuffle::<M, { sse::shuf::SHUFPS }, S>,
                _ => sse::shuffle::<M, { sse::shuf::SHUFPD }, S>,
            })
        }
        Mn::Movdqa | Mn::Movaps | Mn::Movapd | Mn::Movntdq | Mn::Movntps | Mn::Movntpd => {
            match (k0, k1) {
                (REG, REG) => sse::mov128::<M, REG, REG, true>,
                (REG, MEM) => sse::mov128::<M, REG, MEM, true>,
                (MEM, REG) => sse::mov128::<M, MEM, REG, true>,
                _ => return None,
            }
        }
        Mn::Movdqu | Mn::Movups | Mn::Movupd | Mn::Lddqu => match (k0, k1) {
            (REG, REG) => sse::mov128::<M, REG, REG, false>,
            (REG, MEM) => sse::mov128::<M, REG, MEM, false>,
            (MEM, REG) => sse::mov128::<M, MEM, REG, false>,
            _ => return None,
        },
        Mn::Movd | Mn::Movq => {
            use sse::pm;
            let x0 = reg_xmm(0);
            let x1 = n > 1 && reg_xmm(1);
            match (x0, x1, k0, k1) {
                (true, true, _, _) => {
                    i.sz = 3;
                    sse::movpart::<M, { pm::MOVQ_XX }, REG>
                }
                (true, false, _, REG) => {
                    i.sz = sz_of(ins.op1_register().size());
                    sse::movpart::<M, { pm::TO_XMM_ZX }, REG>
                }
                (true, false, _, MEM) => {
                    i.sz = sz_of(ins.memory_size().size());
                    sse::movpart::<M, { pm::TO_XMM_ZX }, MEM>
                }
                (false, true, REG, _) => {
                    i.sz = sz_of(ins.op0_register().size());
                    sse::movpart::<M, { pm::FROM_XMM }, REG>
                }
                (false, true, MEM, _) => {
                    i.sz = sz_of(ins.memory_size().size());
                    sse::movpart::<M, { pm::FROM_XMM }, MEM>
                }
                _ => return None,
            }
        }
        Mn::Movss | Mn::Movsd => {
            use sse::pm;
            i.sz = if m == Mn::Movss { 2 } else { 3 };
            match (k0, k1) {
                (REG, REG) => sse::movpart::<M, { pm::MERGE_LOW }, REG>,
                (REG, MEM) => sse::movpart::<M, { pm::TO_XMM_ZX }, MEM>,
                (MEM, REG) => sse::movpart::<M, { pm::FROM_XMM }, MEM>,
                _ => return None,
            }
        }
        Mn::Movlps | Mn::Movlpd | Mn::Movhps | Mn::Movhpd => {
            use sse::pm;
            i.sz = 3;
            let high = matches!(m, Mn::Movhps | Mn::Movhpd);
            match (k0, high) {
                (REG, false) => sse::movpart::<M, { pm::LOAD_LOW }, MEM>,
                (REG, true) => sse::movpart::<M, { pm::LOAD_HIGH }, MEM>,
                (_, false) => sse::movpart::<M, { pm::FROM_XMM }, MEM>,
                (_, true) => sse::movpart::<M, { pm::STORE_HIGH }, MEM>,
            }
        }
        Mn::Pmovmskb => sse::movmsk::<M, 8>,
        Mn::Maskmovdqu => {
            // Operands: [rDI] (implicit), xmm1 (data), xmm2 (mask).
            i.r0 = ins.op1_register().number() as u8;
            i.r1 = ins.op2_register().number() as u8;
            i.seg = match ins.memory_segment() {
                Register::FS => SEG_FS,
                Register::GS => SEG_GS,
                _ => SEG_NONE,
            };
            if ins.op0_kind() == OpKind::MemorySegEDI {
                i.flags |= F_ADDR32;
            }
            mmx::maskmovdqu::<M>
        }
        Mn::Movmskps => sse::movmsk::<M, 32>,
        Mn::Movmskpd => sse::movmsk::<M, 64>,
        Mn::Pextrw if k0 == REG && reg_xmm(1) => {
            i.imm = ins.immediate(2);
            sse::pextrw::<M>
        }
        Mn::Pinsrw => {
            i.imm = ins.immediate(2);
            rm!(k1, |S| sse::pinsrw::<M, S> as ExecFn<M>)
        }
        Mn::Addps
        | Mn::Addpd
        | Mn::Addss
        | Mn::Addsd
        | Mn::Subps
        | Mn::Subpd
        | Mn::Subss
        | Mn::Subsd
        | Mn::Mulps
        | Mn::Mulpd
        | Mn::Mulss
        | Mn::Mulsd
        | Mn::Divps
        | Mn::Divpd
        | Mn::Divss
        | Mn::Divsd
        | Mn::Minps
        | Mn::Minpd
        | Mn::Minss
        | Mn::Minsd
        | Mn::Maxps
        | Mn::Maxpd
        | Mn::Maxss
        | Mn::Maxsd
        | Mn::Sqrtps
        | Mn::Sqrtpd
        | Mn::Sqrtss
        | Mn::Sqrtsd => {
            let name = format!("{m:?}");
            let (op, class) = match &name[..3] {
                "Add" => (sse::fa::ADD, C::SseFp),
                "Sub" => (sse::fa::SUB, C::SseFp),
                "Mul" => (sse::fa::MUL, C::SseMul),
                "Div" => (sse::fa::DIV, C::SseDiv),
                "Min" => (sse::fa::MIN, C::SseFp),
                "Max" => (sse::fa::MAX, C::SseFp),
                _ => (sse::fa::SQRT, C::SseDiv),
            };
            let packed = name.as_bytes()[name.len() - 2] == b'p';
            let double = name.ends_with('d');
            return Some((fp_arith_fn::<M>(op, packed, double, k1), class));
        }
        Mn::Cmpps | Mn::Cmppd | Mn::Cmpss | Mn::Cmpsd => {
            i.imm = ins.immediate(2);
            let r = rm!(k1, |S| match m {
                Mn::Cmpps => sse::fp_cmp::<M, F32, true, S> as ExecFn<M>,
                Mn::Cmppd => sse::fp_cmp::<M, F64, true, S>,
                Mn::Cmpss => sse::fp_cmp::<M, F32, false, S>,
                _ => sse::fp_cmp::<M, F64, false, S>,
            });
            return Some((r, C::SseFp));
        }
        Mn::Comiss | Mn::Comisd | Mn::Ucomiss | Mn::Ucomisd => rm!(k1, |S| match m {
            Mn::Comiss => sse::comis::<M, F32, true, S> as ExecFn<M>,
            Mn::Comisd => sse::comis::<M, F64, true, S>,
            Mn::Ucomiss => sse::comis::<M, F32, false, S>,
            _ => sse::comis::<M, F64, false, S>,
        }),
        Mn::Cvtsi2ss
        | Mn::Cvtsi2sd
        | Mn::Cvtss2si
        | Mn::Cvtsd2si
        | Mn::Cvttss2si
        | Mn::Cvttsd2si
        | Mn::Cvtss2sd
        | Mn::Cvtsd2ss
        | Mn::Cvtdq2ps
        | Mn::Cvtps2dq
        | Mn::Cvttps2dq
        | Mn::Cvtdq2pd
        | Mn::Cvtpd2dq
        | Mn::Cvttpd2dq
        | Mn::Cvtps2pd
        | Mn::Cvtpd2ps => {
            use sse::cv;
            let op = match m {
                Mn::Cvtsi2ss => cv::SI2SS,
                Mn::Cvtsi2sd => cv::SI2SD,
                Mn::Cvtss2si => cv::SS2SI,
                Mn::Cvtsd2si => cv::SD2SI,
                Mn::Cvttss2si => cv::TSS2SI,
                Mn::Cvttsd2si => cv::TSD2SI,
                Mn::Cvtss2sd => cv::SS2SD,
                Mn::Cvtsd2ss => cv::SD2SS,
                Mn::Cvtdq2ps => cv::DQ2PS,
                Mn::Cvtps2dq => cv::PS2DQ,
                Mn::Cvttps2dq => cv::TPS2DQ,
                Mn::Cvtdq2pd => cv::DQ2PD,
                Mn::Cvtpd2dq => cv::PD2DQ,
                Mn::Cvttpd2dq => cv::TPD2DQ,
                Mn::Cvtps2pd => cv::PS2PD,
                _ => cv::PD2PS,
            };
            // GPR width for the integer forms.
            if matches!(op, cv::SI2SS | cv::SI2SD) {
                i.sz = if k1 == REG {
                    sz_of(ins.op1_register().size())
                } else {
                    sz_of(ins.memory_size().size())
                };
            } else if matches!(op, cv::SS2SI | cv::SD2SI | cv::TSS2SI | cv::TSD2SI) {
                i.sz = sz_of(ins.op0_register().size());
            }
            return Some((cvt_fn::<M>(op, k1), C::SseFp));
        }
        Mn::Rcpps | Mn::Rcpss | Mn::Rsqrtps | Mn::Rsqrtss => rm!(k1, |S| match m {
            Mn::Rcpps => sse::rcp::<M, false, true, S> as ExecFn<M>,
            Mn::Rcpss => sse::rcp::<M, false, false, S>,
            Mn::Rsqrtps => sse::rcp::<M, true, true, S>,
            _ => sse::rcp::<M, true, false, S>,
        }),
        _ => return None,
    };
    Some((f, C::SseInt))
}

/// Handlers of the instructions with an MMX register operand (MMX, and the SSE/SSE2
/// forms on MMX registers).
#[allow(clippy::too_many_lines)]
fn mmx_handler<M: GuestMem>(ins: &Instruction, i: &mut Insn<M>) -> Option<(ExecFn<M>, CostClass)> {
    use sse::pi;
    use CostClass as C;
    use Mnemonic as Mn;
    let n = ins.op_count();
    let k0 = kind(ins.op0_kind());
    let k1 = if n > 1 { kind(ins.op1_kind()) } else { REG };
    let m = ins.mnemonic();
    let reg_mm = |k: u32| ins.op_kind(k) == OpKind::Register && ins.op_register(k).is_mm();
    let op = match m {
        Mn::Paddb => pi::PADDB,
        Mn::Paddw => pi::PADDW,
        Mn::Paddd => pi::PADDD,
        Mn::Paddq => pi::PADDQ,
        Mn::Psubb => pi::PSUBB,
        Mn::Psubw => pi::PSUBW,
        Mn::Psubd => pi::PSUBD,
        Mn::Psubq => pi::PSUBQ,
        Mn::Paddsb => pi::PADDSB,
        Mn::Paddsw => pi::PADDSW,
        Mn::Paddusb => pi::PADDUSB,
        Mn::Paddusw => pi::PADDUSW,
        Mn::Psubsb => pi::PSUBSB,
        Mn::Psubsw => pi::PSUBSW,
        Mn::Psubusb => pi::PSUBUSB,
        Mn::Psubusw => pi::PSUBUSW,
        Mn::Pcmpeqb => pi::PCMPEQB,
        Mn::Pcmpeqw => pi::PCMPEQW,
        Mn::Pcmpeqd => pi::PCMPEQD,
        Mn::Pcmpgtb => pi::PCMPGTB,
        Mn::Pcmpgtw => pi::PCMPGTW,
        Mn::Pcmpgtd => pi::PCMPGTD,
        Mn::Pand => pi::PAND,
        Mn::Pandn => pi::PANDN,
        Mn::Por => pi::POR,
        Mn::Pxor => pi::PXOR,
        Mn::Pmullw => pi::PMULLW,
        Mn::Pmulhw => pi::PMULHW,
        Mn::Pmulhuw => pi::PMULHUW,
        Mn::Pmuludq => pi::PMULUDQ,
        Mn::Pmaddwd => pi::PMADDWD,
        Mn::Pavgb => pi::PAVGB,
        Mn::Pavgw => pi::PAVGW,
        Mn::Pminub => pi::PMINUB,
        Mn::Pmaxub => pi::PMAXUB,
        Mn::Pminsw => pi::PMINSW,
        Mn::Pmaxsw => pi::PMAXSW,
        Mn::Psadbw => pi::PSADBW,
        Mn::Punpcklbw => pi::PUNPCKLBW,
        Mn::Punpcklwd => pi::PUNPCKLWD,
        Mn::Punpckldq => pi::PUNPCKLDQ,
        Mn::Punpckhbw => pi::PUNPCKHBW,
        Mn::Punpckhwd => pi::PUNPCKHWD,
        Mn::Punpckhdq => pi::PUNPCKHDQ,
        Mn::Packsswb => pi::PACKSSWB,
        Mn::Packssdw => pi::PACKSSDW,
        Mn::Packuswb => pi::PACKUSWB,
        Mn::Psrlw => pi::PSRLW,
        Mn::Psrld => pi::PSRLD,
        Mn::Psrlq => pi::PSRLQ,
        Mn::Psraw => pi::PSRAW,
        Mn::Psrad => pi::PSRAD,
        Mn::Psllw => pi::PSLLW,
        Mn::Pslld => pi::PSLLD,
        Mn::Psllq => pi::PSLLQ,
        _ => u8::MAX,
    };
    if op != u8::MAX {
        if !reg_mm(0) {
            return None;
        }
        if k1 == IMM {
            i.imm = ins.immediate(1);
            macro_rules! sh {
                ($($OP:ident),*) => {
                    match op {
                        $(pi::$OP => mmx::pshift_imm::<M, { pi::$OP }> as ExecFn<M>,)*
                        _ => return None,
                    }
                };
            }
            let f = sh!(PSRLW, PSRLD, PSRLQ, PSRAW, PSRAD, PSLLW, PSLLD, PSLLQ);
            return Some((f, C::SseInt));
        }
        // PUNPCKLBW/WD/DQ mm, m32 read four bytes only.
        if k1 == MEM && ins.memory_size().size() == 4 {
            i.cc = 1;
        }
        macro_rules! table {
            ($S:ident; $($OP:ident),*) => {
                match op {
                    $(pi::$OP => mmx::pint::<M, { pi::$OP }, $S> as ExecFn<M>,)*
                    _ => return None,
                }
            };
        }
        let f = rm!(k1, |S| table!(S; PADDB, PADDW, PADDD, PADDQ, PSUBB, PSUBW, PSUBD, PSUBQ,
            PADDSB, PADDSW, PADDUSB, PADDUSW, PSUBSB, PSUBSW, PSUBUSB, PSUBUSW, PCMPEQB,
            PCMPEQW, PCMPEQD, PCMPGTB, PCMPGTW, PCMPGTD, PAND, PANDN, POR, PXOR, PMULLW,
            PMULHW, PMULHUW, PMULUDQ, PMADDWD, PAVGB, PAVGW, PMINUB, PMAXUB, PMINSW, PMAXSW,
            PSADBW, PUNPCKLBW, PUNPCKLWD, PUNPCKLDQ, PUNPCKHBW, PUNPCKHWD, PUNPCKHDQ,
            PACKSSWB, PACKSSDW, PACKUSWB, PSRLW, PSRLD, PSRLQ, PSRAW, PSRAD, PSLLW, PSLLD,
            PSLLQ));
        let class =
            if matches!(op, pi::PMULLW | pi::PMULHW | pi::PMULHUW | pi::PMULUDQ | pi::PMADDWD) {
                C::SseMul
            } else {
                C::SseInt
            };
        return Some((f, class));
    }
    use mmx::{cv, mv};
    let f: ExecFn<M> = match m {
        Mn::Movd | Mn::Movq => match (reg_mm(0), n > 1 && reg_mm(1), k0, k1) {
            (true, true, _, _) => mmx::mov::<M, { mv::MM_MM }, REG>,
            (true, false, _, REG) => {
                i.sz = sz_of(ins.op1_register().size());
                mmx::mov::<M, { mv::TO_MM }, REG>
            }
            (true, false, _, MEM) if ins.code() == Code::Movq_mm_mmm64 => {
                mmx::mov::<M, { mv::MM_MM }, MEM>
            }
            (true, false, _, MEM) => {
                i.sz = sz_of(ins.memory_size().size());
                mmx::mov::<M, { mv::TO_MM }, MEM>
            }
            (false, true, REG, _) => {
                i.sz = sz_of(ins.op0_register().size());
                mmx::mov::<M, { mv::FROM_MM }, REG>
            }
            (false, true, MEM, _) => {
                i.sz = sz_of(ins.memory_size().size());
                mmx::mov::<M, { mv::FROM_MM }, MEM>
            }
            _ => return None,
        },
        Mn::Movntq => mmx::mov::<M, { mv::STORE }, MEM>,
        Mn::Movq2dq => mmx::mov::<M, { mv::TO_XMM }, REG>,
        Mn::Movdq2q => mmx::mov::<M, { mv::FROM_XMM }, REG>,
        Mn::Pshufw => {
            i.imm = ins.immediate(2);
            rm!(k1, |S| mmx::pshufw::<M, S> as ExecFn<M>)
        }
        Mn::Pextrw if reg_mm(1) => {
            i.imm = ins.immediate(2);
            mmx::pextrw::<M>
        }
        Mn::Pinsrw => {
            i.imm = ins.immediate(2);
            rm!(k1, |S| mmx::pinsrw::<M, S> as ExecFn<M>)
        }
        Mn::Pmovmskb => mmx::pmovmskb::<M>,
        Mn::Maskmovq => {
            // Operands: [rDI] (implicit), mm1 (data), mm2 (mask).
            i.r0 = ins.op1_register().number() as u8;
            i.r1 = ins.op2_register().number() as u8;
            i.seg = match ins.memory_segment() {
                Register::FS => SEG_FS,
                Register::GS => SEG_GS,
                _ => SEG_NONE,
            };
            if ins.op0_kind() == OpKind::MemorySegEDI {
                i.flags |= F_ADDR32;
            }
            mmx::maskmovq::<M>
        }
        Mn::Cvtpi2ps => rm!(k1, |S| mmx::cvt::<M, { cv::PI2PS }, S> as ExecFn<M>),
        Mn::Cvtpi2pd => rm!(k1, |S| mmx::cvt::<M, { cv::PI2PD }, S> as ExecFn<M>),
        Mn::Cvtps2pi => rm!(k1, |S| mmx::cvt::<M, { cv::PS2PI }, S> as ExecFn<M>),
        Mn::Cvttps2pi => rm!(k1, |S| mmx::cvt::<M, { cv::TPS2PI }, S> as ExecFn<M>),
        Mn::Cvtpd2pi => rm!(k1, |S| mmx::cvt::<M, { cv::PD2PI }, S> as ExecFn<M>),
        Mn::Cvttpd2pi => rm!(k1, |S| mmx::cvt::<M, { cv::TPD2PI }, S> as ExecFn<M>),
        _ => return None,
    };
    let class = if matches!(
        m,
        Mn::Cvtpi2ps | Mn::Cvtpi2pd | Mn::Cvtps2pi | Mn::Cvttps2pi | Mn::Cvtpd2pi | Mn::Cvttpd2pi
    ) {
        C::SseFp
    } else {
        C::SseInt
    };
    Some((f, class))
}

fn fp_arith_fn<M: GuestMem>(op: u8, packed: bool, double: bool, k1: u8) -> ExecFn<M> {
    macro_rules! ops {
        ($L:ty, $P:expr, $S:ident) => {
            match op {
                sse::fa::ADD => sse::fp_arith::<M, $L, { sse::fa::ADD }, $P, $S> as ExecFn<M>,
                sse::fa::SUB => sse::fp_arith::<M, $L, { sse::fa::SUB }, $P, $S>,
                sse::fa::MUL => sse::fp_arith::<M, $L, { sse::fa::MUL }, $P, $S>,
                sse::fa::DIV => sse::fp_arith::<M, $L, { sse::fa::DIV }, $P, $S>,
                sse::fa::MIN => sse::fp_arith::<M, $L, { sse::fa::MIN }, $P, $S>,
                sse::fa::MAX => sse::fp_arith::<M, $L, { sse::fa::MAX }, $P, $S>,
                _ => sse::fp_arith::<M, $L, { sse::fa::SQRT }, $P, $S>,
            }
        };
    }
    rm!(k1, |S| match (packed, double) {
        (true, true) => ops!(F64, true, S),
        (true, false) => ops!(F32, true, S),
        (false, true) => ops!(F64, false, S),
        (false, false) => ops!(F32, false, S),
    })
}

fn cvt_fn<M: GuestMem>(op: u8, k1: u8) -> ExecFn<M> {
    use sse::cv;
    rm!(k1, |S| match op {
        cv::SI2SS => sse::cvt::<M, { cv::SI2SS }, S> as ExecFn<M>,
        cv::SI2SD => sse::cvt::<M, { cv::SI2SD }, S>,
        cv::SS2SI => sse::cvt::<M, { cv::SS2SI }, S>,
        cv::SD2SI => sse::cvt::<M, { cv::SD2SI }, S>,
        cv::TSS2SI => sse::cvt::<M, { cv::TSS2SI }, S>,
        cv::TSD2SI => sse::cvt::<M, { cv::TSD2SI }, S>,
        cv::SS2SD => sse::cvt::<M, { cv::SS2SD }, S>,
        cv::SD2SS => sse::cvt::<M, { cv::SD2SS }, S>,
        cv::DQ2PS => sse::cvt::<M, { cv::DQ2PS }, S>,
        cv::PS2DQ => sse::cvt::<M, { cv::PS2DQ }, S>,
        cv::TPS2DQ => sse::cvt::<M, { cv::TPS2DQ }, S>,
        cv::DQ2PD => sse::cvt::<M, { cv::DQ2PD }, S>,
        cv::PD2DQ => sse::cvt::<M, { cv::PD2DQ }, S>,
        cv::TPD2DQ => sse::cvt::<M, { cv::TPD2DQ }, S>,
        cv::PS2PD => sse::cvt::<M, { cv::PS2PD }, S>,
        _ => sse::cvt::<M, { cv::PD2PS }, S>,
    })
}

fn x87_class(m: Mnemonic) -> CostClass {
    use Mnemonic as Mn;
    match m {
        Mn::Fdiv
        | Mn::Fdivp
        | Mn::Fidiv
        | Mn::Fdivr
        | Mn::Fdivrp
        | Mn::Fidivr
        | Mn::Fsqrt
        | Mn::Fprem
        | Mn::Fprem1 => CostClass::X87Div,
        Mn::Fsin
        | Mn::Fcos
        | Mn::Fsincos
        | Mn::Fptan
        | Mn::Fpatan
        | Mn::F2xm1
        | Mn::Fyl2x
        | Mn::Fyl2xp1
        | Mn::Fscale => CostClass::X87Transcendental,
        _ => CostClass::X87,
    }
}

/// Index of the ST(i) operand that is not ST(0) (0 if all are ST(0)).
fn sti(ins: &Instruction) -> u8 {
    for k in 0..ins.op_count() {
        if ins.op_kind(k) == OpKind::Register {
            let r = ins.op_register(k);
            if r.is_st() && r != Register::ST0 {
                return r.number() as u8;
            }
        }
    }
    0
}

fn x87_fmt(ms: MemorySize) -> Option<u8> {
    use x87::mf;
    Some(match ms {
        MemorySize::Float32 => mf::F32,
        MemorySize::Float64 => mf::F64,
        MemorySize::Float80 => mf::F80,
        MemorySize::Int16 => mf::I16,
        MemorySize::Int32 => mf::I32,
        MemorySize::Int64 => mf::I64,
        _ => return None,
    })
}

#[allow(clippy::too_many_lines)]
fn x87_handler<M: GuestMem>(ins: &Instruction, i: &mut Insn<M>) -> Option<ExecFn<M>> {
    use x87::{af, ar, ctl, mctl, mf, un};
    use Mnemonic as Mn;
    let m = ins.mnemonic();
    let has_mem = has_mem(ins);
    let fmt = if has_mem { x87_fmt(ins.memory_size()) } else { None };
    i.r0 = sti(ins);
    if let Some(f) = fmt {
        i.sz = f;
    }
    // Which operand is the destination for the register forms of arithmetic.
    let dst_is_st0 = ins.op_count() < 1
        || (ins.op0_kind() == OpKind::Register && ins.op0_register() == Register::ST0);
    let arith = |op: u8| -> Option<ExecFn<M>> {
        macro_rules! forms {
            ($OP:expr) => {
                if has_mem {
                    x87::farith::<M, { $OP }, { af::ST0_MEM }> as ExecFn<M>
                } else if matches!(
                    m,
                    Mn::Faddp | Mn::Fmulp | Mn::Fsubp | Mn::Fsubrp | Mn::Fdivp | Mn::Fdivrp
                ) {
                    x87::farith::<M, { $OP }, { af::STI_ST0_POP }>
                } else if dst_is_st0 {
                    x87::farith::<M, { $OP }, { af::ST0_STI }>
                } else {
                    x87::farith::<M, { $OP }, { af::STI_ST0 }>
                }
            };
        }
        Some(match op {
            ar::ADD => forms!(ar::ADD),
            ar::MUL => forms!(ar::MUL),
            ar::SUB => forms!(ar::SUB),
            ar::SUBR => forms!(ar::SUBR),
            ar::DIV => forms!(ar::DIV),
            _ => forms!(ar::DIVR),
        })
    };
    Some(match m {
        Mn::Fld | Mn::Fild => {
            if has_mem {
                match fmt? {
                    mf::F32 => x87::fld_mem::<M, { mf::F32 }> as ExecFn<M>,
                    mf::F64 => x87::fld_mem::<M, { mf::F64 }>,
                    mf::F80 => x87::fld_mem::<M, { mf::F80 }>,
                    mf::I16 => x87::fld_mem::<M, { mf::I16 }>,
                    mf::I32 => x87::fld_mem::<M, { mf::I32 }>,
                    _ => x87::fld_mem::<M, { mf::I64 }>,
                }
            } else {
                x87::fld_st::<M>
            }
        }
        Mn::Fst | Mn::Fstp | Mn::Fstpnce | Mn::Fist | Mn::Fistp | Mn::Fisttp => {
            // FSTPNCE (D9 D8+i) is an alias of FSTP ST(i).
            let pop = matches!(m, Mn::Fstp | Mn::Fstpnce | Mn::Fistp | Mn::Fisttp);
            if !has_mem {
                if pop {
                    x87::fst_st::<M, true>
                } else {
                    x87::fst_st::<M, false>
                }
            } else {
                let t = m == Mn::Fisttp;
                match (fmt?, pop, t) {
                    (mf::F32, false, _) => x87::fst_mem::<M, { mf::F32 }, false, false>,
                    (mf::F32, true, _) => x87::fst_mem::<M, { mf::F32 }, true, false>,
                    (mf::F64, false, _) => x87::fst_mem::<M, { mf::F64 }, false, false>,
                    (mf::F64, true, _) => x87::fst_mem::<M, { mf::F64 }, true, false>,
                    (mf::F80, _, _) => x87::fst_mem::<M, { mf::F80 }, true, false>,
                    (mf::I16, false, _) => x87::fst_mem::<M, { mf::I16 }, false, false>,
                    (mf::I16, true, false) => x87::fst_mem::<M, { mf::I16 }, true, false>,
                    (mf::I16, true, true) => x87::fst_mem::<M, { mf::I16 }, true, true>,
                    (mf::I32, false, _) => x87::fst_mem::<M, { mf::I32 }, false, false>,
                    (mf::I32, true, false) => x87::fst_mem::<M, { mf::I32 }, true, false>,
                    (mf::I32, true, true) => x87::fst_mem::<M, { mf::I32 }, true, true>,
                    (_, _, false) => x87::fst_mem::<M, { mf::I64 }, true, false>,
                    (_, _, true) => x87::fst_mem::<M, { mf::I64 }, true, true>,
                }
            }
        }
        Mn::Fbld => x87::fbld::<M>,
        Mn::Fbstp => x87::fbstp::<M>,
        Mn::Fld1 => x87::fld_const::<M, 0>,
        Mn::Fldl2t => x87::fld_const::<M, 1>,
        Mn::Fldl2e => x87::fld_const::<M, 2>,
        Mn::Fldpi => x87::fld_const::<M, 3>,
        Mn::Fldlg2 => x87::fld_const::<M, 4>,
        Mn::Fldln2 => x87::fld_const::<M, 5>,
        Mn::Fldz => x87::fld_const::<M, 6>,
        Mn::Fadd | Mn::Faddp | Mn::Fiadd => arith(ar::ADD)?,
        Mn::Fmul | Mn::Fmulp | Mn::Fimul => arith(ar::MUL)?,
        Mn::Fsub | Mn::Fsubp | Mn::Fisub => arith(ar::SUB)?,
        Mn::Fsubr | Mn::Fsubrp | Mn::Fisubr => arith(ar::SUBR)?,
        Mn::Fdiv | Mn::Fdivp | Mn::Fidiv => arith(ar::DIV)?,
        Mn::Fdivr | Mn::Fdivrp | Mn::Fidivr => arith(ar::DIVR)?,
        Mn::Fcom | Mn::Ficom => {
            if has_mem {
                x87::fcom::<M, MEM, 0, false>
            } else {
                x87::fcom::<M, REG, 0, false>
            }
        }
        Mn::Fcomp | Mn::Ficomp => {
            if has_mem {
                x87::fcom::<M, MEM, 1, false>
            } else {
                x87::fcom::<M, REG, 1, false>
            }
        }
        Mn::Fcompp => {
            i.r0 = 1;
            x87::fcom::<M, REG, 2, false>
        }
        Mn::Fucom => x87::fcom::<M, REG, 0, true>,
        Mn::Fucomp => x87::fcom::<M, REG, 1, true>,
        Mn::Fucompp => {
            i.r0 = 1;
            x87::fcom::<M, REG, 2, true>
        }
        Mn::Fcomi => x87::fcomi::<M, false, false>,
        Mn::Fcomip => x87::fcomi::<M, true, false>,
        Mn::Fucomi => x87::fcomi::<M, false, true>,
        Mn::Fucomip => x87::fcomi::<M, true, true>,
        Mn::Fcmovb
        | Mn::Fcmove
        | Mn::Fcmovbe
        | Mn::Fcmovu
        | Mn::Fcmovnb
        | Mn::Fcmovne
        | Mn::Fcmovnbe
        | Mn::Fcmovnu => {
            i.cc = match m {
                Mn::Fcmovb => 0,
                Mn::Fcmove => 1,
                Mn::Fcmovbe => 2,
                Mn::Fcmovu => 3,
                Mn::Fcmovnb => 4,
                Mn::Fcmovne => 5,
                Mn::Fcmovnbe => 6,
                _ => 7,
            };
            x87::fcmov::<M>
        }
        Mn::Fxch => x87::fxch::<M>,
        Mn::Ffree | Mn::Ffreep => x87::fctl::<M, { ctl::FFREE }>,
        Mn::Fincstp => x87::fctl::<M, { ctl::FINCSTP }>,
        Mn::Fdecstp => x87::fctl::<M, { ctl::FDECSTP }>,
        Mn::Fnclex | Mn::Fclex => x87::fctl::<M, { ctl::FNCLEX }>,
        Mn::Fninit | Mn::Finit => x87::fctl::<M, { ctl::FNINIT }>,
        Mn::Fnstsw | Mn::Fstsw => {
            if has_mem {
                x87::fmem::<M, { mctl::FNSTSW }>
            } else {
                x87::fctl::<M, { ctl::FNSTSW_AX }>
            }
        }
        Mn::Fnstcw | Mn::Fstcw => x87::fmem::<M, { mctl::FNSTCW }>,
        Mn::Fldcw => x87::fmem::<M, { mctl::FLDCW }>,
        Mn::Fnstenv | Mn::Fstenv | Mn::Fldenv | Mn::Fnsave | Mn::Fsave | Mn::Frstor => {
            // The 16-bit layouts (14-byte environment, 94-byte state) with a 0x66 prefix.
            i.cc = u8::from(matches!(
                ins.memory_size(),
                MemorySize::FpuEnv14 | MemorySize::FpuState94
            ));
            match m {
                Mn::Fnstenv | Mn::Fstenv => x87::fmem::<M, { mctl::FNSTENV }>,
                Mn::Fldenv => x87::fmem::<M, { mctl::FLDENV }>,
                Mn::Fnsave | Mn::Fsave => x87::fmem::<M, { mctl::FNSAVE }>,
                _ => x87::fmem::<M, { mctl::FRSTOR }>,
            }
        }
        Mn::Fchs => x87::funary::<M, { un::FCHS }>,
        Mn::Fabs => x87::funary::<M, { un::FABS }>,
        Mn::Ftst => x87::funary::<M, { un::FTST }>,
        Mn::Fxam => x87::funary::<M, { un::FXAM }>,
        Mn::Fsqrt => x87::funary::<M, { un::FSQRT }>,
        Mn::Frndint => x87::funary::<M, { un::FRNDINT }>,
        Mn::Fscale => x87::funary::<M, { un::FSCALE }>,
        Mn::Fxtract => x87::funary::<M, { un::FXTRACT }>,
        Mn::Fprem => x87::funary::<M, { un::FPREM }>,
        Mn::Fprem1 => x87::funary::<M, { un::FPREM1 }>,
        Mn::F2xm1 => x87::funary::<M, { un::F2XM1 }>,
        Mn::Fyl2x => x87::funary::<M, { un::FYL2X }>,
        Mn::Fyl2xp1 => x87::funary::<M, { un::FYL2XP1 }>,
        Mn::Fptan => x87::funary::<M, { un::FPTAN }>,
        Mn::Fpatan => x87::funary::<M, { un::FPATAN }>,
        Mn::Fsin => x87::funary::<M, { un::FSIN }>,
        Mn::Fcos => x87::funary::<M, { un::FCOS }>,
        Mn::Fsincos => x87::funary::<M, { un::FSINCOS }>,
        _ => return None,
    })
}
