//! Segment registers, descriptor-table queries and far transfers as a 64-bit process sees
//! them under Linux, which owns the descriptor tables.
//!
//! The GDT modelled is Linux's x86-64 one (the `GDT_ENTRY_*` indexes of
//! arch/x86/include/asm/segment.h, filled in arch/x86/kernel/cpu/common.c): kernel code
//! and data at 0x08/0x10/0x18 (DPL 0), user 32-bit code 0x23, user data 0x2b, user 64-bit
//! code 0x33 (DPL 3), the TSS at 0x40 (DPL 0), empty TLS slots at 0x60..0x77, and the
//! per-CPU "CPUNODE" segment 0x7b (DPL 3, read-only data, limit = node << 12 | cpu, the
//! value `setup_getcpu` stores and RDTSCP's TSC_AUX holds). No process here has an LDT.
//!
//! The instructions UMIP protects (SGDT, SIDT, SLDT, SMSW, STR) fault in user mode on a
//! CPU with UMIP, and current Linux then emulates them for 32- and 64-bit processes alike
//! (arch/x86/kernel/umip.c, `fixup_umip_exception`): dummy table bases near the top of
//! the address space with limit 0, SMSW = the boot CR0 value, SLDT = 0 (no LDT), STR =
//! the TSS selector. A register result is copied over the operand-size bytes of the
//! saved register, leaving the bytes above them alone; a memory result is 2 bytes
//! (10 for SGDT/SIDT). [`umip`] reproduces that.

use crate::cpu::{Cpu, Exception, Exit, SEG_FS, SEG_GS, USER_RFLAGS_WRITABLE};
use crate::insn::Insn;
use crate::insn::{loc::*, F_ADDR32};
use crate::mem::GuestMem;

#[inline(always)]
fn gp() -> Exit {
    Exit::Exception(Exception::GeneralProtection)
}

/// Segment register numbers (encoding order), as in [`Cpu::sel`].
pub mod sr {
    /// ES.
    pub const ES: u8 = 0;
    /// CS.
    pub const CS: u8 = 1;
    /// SS.
    pub const SS: u8 = 2;
    /// DS.
    pub const DS: u8 = 3;
    /// FS.
    pub const FS: u8 = 4;
    /// GS.
    pub const GS: u8 = 5;
}

/// A segment descriptor: access byte (P, DPL, S, type), the flags nibble (G, D/B, L,
/// AVL) and the 20-bit limit. Every base in Linux's GDT that user mode can load is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// Access byte.
    pub access: u8,
    /// G, D/B, L, AVL (bits 3..0).
    pub flags: u8,
    /// Limit, in bytes or (G) 4 KiB units.
    pub limit: u32,
}

impl Desc {
    fn dpl(self) -> u16 {
        u16::from(self.access >> 5) & 3
    }
    /// Code or data (not a system descriptor).
    fn user_type(self) -> bool {
        self.access & 0x10 != 0
    }
    fn code(self) -> bool {
        self.user_type() && self.access & 8 != 0
    }
    fn readable(self) -> bool {
        self.user_type() && (self.access & 8 == 0 || self.access & 2 != 0)
    }
    fn writable(self) -> bool {
        self.user_type() && self.access & 8 == 0 && self.access & 2 != 0
    }
    fn conforming(self) -> bool {
        self.code() && self.access & 4 != 0
    }
    /// The limit in bytes.
    fn byte_limit(self) -> u32 {
        if self.flags & 8 != 0 {
            (self.limit << 12) | 0xfff
        } else {
            self.limit
        }
    }
}

/// The descriptor selector `sel` designates in Linux's x86-64 GDT, or None (null
/// selector, an LDT selector, an empty slot, or past the table's limit).
pub fn descriptor(cpu: &Cpu, sel: u16) -> Option<Desc> {
    if sel & 4 != 0 {
        return None;
    }
    let d = |access, flags, limit| Some(Desc { access, flags, limit });
    match sel >> 3 {
        1 => d(0x9b, 0xc, 0xfffff),
        2 => d(0x9b, 0xa, 0xfffff),
        3 => d(0x93, 0xc, 0xfffff),
        4 => d(0xfb, 0xc, 0xfffff),
        5 => d(0xf3, 0xc, 0xfffff),
        6 => d(0xfb, 0xa, 0xfffff),
        // 64-bit TSS (busy), 16 bytes: the second half (index 9) is not a descriptor.
        8 => d(0x8b, 0, 0x2067),
        15 => d(0xf5, 0x4, cpu.tsc_aux & 0xfffff),
        _ => None,
    }
}

/// Is `sel` loadable into DS, ES, FS or GS at CPL 3 (null included)?
fn data_loadable(cpu: &Cpu, sel: u16) -> bool {
    if sel & !3 == 0 {
        return true;
    }
    match descriptor(cpu, sel) {
        // Data or readable code; unless conforming code, DPL >= max(CPL, RPL) = 3.
        Some(d) => d.readable() && (d.conforming() || d.dpl() == 3),
        None => false,
    }
}

/// Loads segment register `r` with `sel` as MOV Sreg and POP Sreg do at CPL 3: #GP for a
/// selector it may not hold. In 64-bit mode only FS and GS have bases; loading either
/// sets its base from the descriptor (0 in Linux's GDT), and a null selector zeroes it
/// too, as on Intel processors (on some AMD ones it stays: Linux's X86_BUG_NULL_SEG).
fn load_sreg(cpu: &mut Cpu, r: u8, sel: u16) -> Result<(), Exit> {
    let ok = match r {
        // SS at CPL 3: RPL = DPL = 3, writable data; null is refused.
        sr::SS => {
            sel & 3 == 3 && descriptor(cpu, sel).is_some_and(|d| d.writable() && d.dpl() == 3)
        }
        sr::CS => return Err(Exit::Exception(Exception::InvalidOpcode)),
        _ => data_loadable(cpu, sel),
    };
    if !ok {
        return Err(gp());
    }
    cpu.sel[r as usize % 6] = sel;
    match r {
        sr::FS => cpu.seg_base[SEG_FS as usize] = 0,
        sr::GS => cpu.seg_base[SEG_GS as usize] = 0,
        _ => {}
    }
    Ok(())
}

/// MOV r/m, Sreg: the selector (segment register number in `Insn::cc`). A register
/// destination gets it zero-extended to 32 or 64 bits, or its low 16 bits replaced with
/// a 16-bit operand size (`Insn::sz`); memory gets 16 bits.
pub fn mov_from_sreg<M: GuestMem, const D: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let v = cpu.sel[i.cc as usize % 6];
    if D == MEM {
        m.write_u16(i.ea(cpu), v)?;
    } else {
        let g = &mut cpu.gpr[i.r0 as usize & 15];
        *g = if i.sz == 1 { (*g & !0xffff) | u64::from(v) } else { u64::from(v) };
    }
    Ok(())
}

/// MOV Sreg, r/m16.
pub fn mov_to_sreg<M: GuestMem, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let sel = if S == MEM { m.read_u16(i.ea(cpu))? } else { cpu.gpr[i.r1 as usize & 15] as u16 };
    load_sreg(cpu, i.cc, sel)
}

/// PUSH FS/GS: the selector, zero-extended to 8 bytes (`Insn::sz` 3) or 2 bytes.
pub fn push_sreg<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let v = cpu.sel[i.cc as usize % 6];
    let n = if i.sz == 1 { 2 } else { 8 };
    let sp = cpu.gpr[4].wrapping_sub(n);
    if n == 2 {
        m.write_u16(sp, v)?;
    } else {
        m.write_u64(sp, u64::from(v))?;
    }
    cpu.gpr[4] = sp;
    Ok(())
}

/// POP FS/GS: loads the popped selector as MOV does (a #GP leaves RSP alone).
pub fn pop_sreg<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let sp = cpu.gpr[4];
    let n = if i.sz == 1 { 2 } else { 8 };
    let v = m.read_u16(sp)?;
    if n == 8 {
        // The whole slot must be readable.
        m.read_u64(sp)?;
    }
    load_sreg(cpu, i.cc, v)?;
    cpu.gpr[4] = sp.wrapping_add(n);
    Ok(())
}

/// LFS, LGS, LSS r, m16:16/32/64: the offset (operand size `Insn::sz`) into GPR r0 and
/// the selector after it into the segment register `Insn::cc`, loaded as MOV does.
pub fn load_far_ptr<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let n = opsize(i.sz);
    let ea = i.ea(cpu);
    let off = read_n(m, ea, n)?;
    let sel = m.read_u16(ea.wrapping_add(n))?;
    load_sreg(cpu, i.cc, sel)?;
    let g = &mut cpu.gpr[i.r0 as usize & 15];
    *g = if n == 2 { (*g & !0xffff) | off } else { off };
    Ok(())
}

/// PUSHF with a 16-bit operand size: FLAGS (the low 16 bits).
pub fn pushfw<M: GuestMem>(cpu: &mut Cpu, m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    let sp = cpu.gpr[4].wrapping_sub(2);
    m.write_u16(sp, cpu.rflags() as u16)?;
    cpu.gpr[4] = sp;
    Ok(())
}

/// POPF with a 16-bit operand size: the low 16 flag bits a user program may change.
pub fn popfw<M: GuestMem>(cpu: &mut Cpu, m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    let sp = cpu.gpr[4];
    let v = m.read_u16(sp)?;
    cpu.gpr[4] = sp.wrapping_add(2);
    cpu.set_rflags(u64::from(v), USER_RFLAGS_WRITABLE & 0xffff);
    Ok(())
}

/// Descriptor-query selectors.
pub mod dq {
    /// LAR.
    pub const LAR: u8 = 0;
    /// LSL.
    pub const LSL: u8 = 1;
    /// VERR.
    pub const VERR: u8 = 2;
    /// VERW.
    pub const VERW: u8 = 3;
}

/// LAR, LSL, VERR, VERW: ZF = 1 (and for LAR/LSL the access rights or byte limit in
/// register r0, with `Insn::sz` its width) when the descriptor is visible at CPL 3;
/// otherwise ZF = 0 and the register is not written. Other flags are unchanged.
pub fn desc_query<M: GuestMem, const OP: u8, const S: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let src = if OP == dq::LAR || OP == dq::LSL { i.r1 } else { i.r0 };
    let sel = if S == MEM { m.read_u16(i.ea(cpu))? } else { cpu.gpr[src as usize & 15] as u16 };
    let d = descriptor(cpu, sel).filter(|d| {
        let visible = d.conforming() || d.dpl() >= 3;
        visible
            && match OP {
                // System descriptors valid for LAR/LSL (TSS, LDT) are all DPL 0 here.
                dq::LAR | dq::LSL => d.user_type(),
                dq::VERR => d.readable(),
                _ => d.writable(),
            }
    });
    let mut st = cpu.flags.status();
    match d {
        Some(d) => {
            st |= crate::flags::ZF;
            let v = match OP {
                dq::LAR => {
                    let dw = (u32::from(d.flags) << 20)
                        | ((d.limit >> 16) << 16)
                        | (u32::from(d.access) << 8);
                    Some(u64::from(if i.sz == 1 { dw & 0xff00 } else { dw & 0x00ff_ff00 }))
                }
                dq::LSL => Some(u64::from(d.byte_limit())),
                _ => None,
            };
            if let Some(v) = v {
                let g = &mut cpu.gpr[i.r0 as usize & 15];
                *g = if i.sz == 1 { (*g & !0xffff) | (v & 0xffff) } else { v };
            }
        }
        None => st &= !crate::flags::ZF,
    }
    cpu.flags.set_status(st);
    Ok(())
}

/// UMIP-emulated selectors.
pub mod um {
    /// SGDT m.
    pub const SGDT: u8 = 0;
    /// SIDT m.
    pub const SIDT: u8 = 1;
    /// SMSW r/m.
    pub const SMSW: u8 = 2;
    /// SLDT r/m.
    pub const SLDT: u8 = 3;
    /// STR r/m.
    pub const STR: u8 = 4;
}

/// The dummy GDT base Linux's UMIP emulation reports to 64-bit processes.
pub const UMIP_GDT_BASE: u64 = 0xffff_ffff_fffe_0000;
/// The dummy IDT base.
pub const UMIP_IDT_BASE: u64 = 0xffff_ffff_ffff_0000;
/// CR0 at boot (PE MP ET NE WP AM PG), which the emulated SMSW returns.
pub const UMIP_CR0: u64 = 0x8005_0033;
/// The TSS selector (GDT entry 8), which the emulated STR returns.
pub const UMIP_TR: u64 = 0x40;

/// SGDT, SIDT, SMSW, SLDT, STR as Linux's UMIP emulation completes them (see the module
/// documentation). `Insn::sz` is the operand size of the register forms.
pub fn umip<M: GuestMem, const OP: u8, const D: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let v = match OP {
        um::SMSW => UMIP_CR0,
        um::STR => UMIP_TR,
        _ => 0,
    };
    if D == MEM {
        let ea = i.ea(cpu);
        if OP == um::SGDT || OP == um::SIDT {
            m.probe_write(ea.wrapping_add(9))?;
            m.write_u16(ea, 0)?;
            let base = if OP == um::SGDT { UMIP_GDT_BASE } else { UMIP_IDT_BASE };
            m.write_u64(ea.wrapping_add(2), base)?;
        } else {
            m.write_u16(ea, v as u16)?;
        }
    } else {
        let keep = match i.sz {
            1 => !0xffff,
            2 => !0xffff_ffff,
            _ => 0,
        };
        let g = &mut cpu.gpr[i.r0 as usize & 15];
        *g = (*g & keep) | (v & !keep);
    }
    Ok(())
}

/// Checks a far-transfer target code selector at CPL 3: Ok for the user 64-bit code
/// segment; the 32-bit one would switch to compatibility mode, which this emulator does
/// not run (unsupported); anything else is #GP. `ret` is true for RETF/IRET, which
/// require RPL = CPL here (a return to an inner level faults).
fn target_cs(cpu: &Cpu, sel: u16, ret: bool) -> Result<(), Exit> {
    let d = descriptor(cpu, sel).ok_or_else(gp)?;
    if !d.code() || d.dpl() != 3 || (ret && sel & 3 != 3) {
        return Err(gp());
    }
    if d.flags & 2 == 0 {
        return Err(Exit::Unsupported);
    }
    Ok(())
}

#[inline(always)]
fn canonical(v: u64) -> bool {
    ((v as i64) << 16 >> 16) as u64 == v
}

#[inline(always)]
fn read_n<M: GuestMem>(m: &mut M, va: u64, n: u64) -> Result<u64, Exit> {
    Ok(match n {
        2 => u64::from(m.read_u16(va)?),
        4 => u64::from(m.read_u32(va)?),
        _ => m.read_u64(va)?,
    })
}

#[inline(always)]
fn write_n<M: GuestMem>(m: &mut M, va: u64, n: u64, v: u64) -> Result<(), Exit> {
    match n {
        2 => m.write_u16(va, v as u16)?,
        4 => m.write_u32(va, v as u32)?,
        _ => m.write_u64(va, v)?,
    }
    Ok(())
}

/// Operand size in bytes from `Insn::sz` (1 = 16, 2 = 32, 3 = 64 bits).
#[inline(always)]
fn opsize(i_sz: u8) -> u64 {
    1 << i_sz
}

/// RETF / RETF imm16: pops the offset and CS (operand-size slots), checks CS, adds the
/// immediate to RSP.
pub fn retf<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let n = opsize(i.sz);
    let sp = cpu.gpr[4];
    let ip = read_n(m, sp, n)?;
    let cs = read_n(m, sp.wrapping_add(n), n)? as u16;
    target_cs(cpu, cs, true)?;
    if !canonical(ip) {
        return Err(gp());
    }
    cpu.gpr[4] = sp.wrapping_add(2 * n).wrapping_add(i.imm);
    cpu.sel[sr::CS as usize] = cs;
    cpu.rip = ip;
    Ok(())
}

/// IRET/IRETD/IRETQ in 64-bit mode at CPL 3: pops RIP, CS, RFLAGS, RSP and SS
/// (operand-size slots); CS must be the user code segment and SS the user data segment
/// (RPL 3); RFLAGS changes as with POPF (IF and IOPL stay). NT set is #GP.
pub fn iret<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    if cpu.rflags() & (1 << 14) != 0 {
        return Err(gp());
    }
    let n = opsize(i.sz);
    let sp = cpu.gpr[4];
    let ip = read_n(m, sp, n)?;
    let cs = read_n(m, sp.wrapping_add(n), n)? as u16;
    let fl = read_n(m, sp.wrapping_add(2 * n), n)?;
    let nsp = read_n(m, sp.wrapping_add(3 * n), n)?;
    let ss = read_n(m, sp.wrapping_add(4 * n), n)? as u16;
    target_cs(cpu, cs, true)?;
    let ss_ok = ss & 3 == 3 && descriptor(cpu, ss).is_some_and(|d| d.writable() && d.dpl() == 3);
    if !ss_ok || !canonical(ip) {
        return Err(gp());
    }
    let writable = if n == 2 { USER_RFLAGS_WRITABLE & 0xffff } else { USER_RFLAGS_WRITABLE };
    cpu.set_rflags(fl, writable);
    cpu.sel[sr::CS as usize] = cs;
    cpu.sel[sr::SS as usize] = ss;
    cpu.gpr[4] = if n == 2 { (sp & !0xffff) | nsp } else { nsp };
    cpu.rip = ip;
    Ok(())
}

/// Far CALL (CALL) or JMP through an m16:16/32/64 pointer (offset, then selector).
/// CALL pushes CS and the return offset in operand-size slots.
pub fn far_branch<M: GuestMem, const CALL: bool>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let n = opsize(i.sz);
    let ea = i.ea(cpu);
    let ip = read_n(m, ea, n)?;
    let cs = m.read_u16(ea.wrapping_add(n))?;
    target_cs(cpu, cs, false)?;
    if !canonical(ip) {
        return Err(gp());
    }
    let cs = (cs & !3) | 3;
    if CALL {
        let sp = cpu.gpr[4];
        write_n(m, sp.wrapping_sub(n), n, u64::from(cpu.sel[sr::CS as usize]))?;
        write_n(m, sp.wrapping_sub(2 * n), n, i.next_rip)?;
        cpu.gpr[4] = sp.wrapping_sub(2 * n);
    }
    cpu.sel[sr::CS as usize] = cs;
    cpu.rip = ip;
    Ok(())
}

/// XLAT: AL = [seg: RBX + AL] (EBX with a 0x67 prefix).
pub fn xlat<M: GuestMem>(cpu: &mut Cpu, m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let mut off = cpu.gpr[3].wrapping_add(cpu.gpr[0] & 0xff);
    if i.flags & F_ADDR32 != 0 {
        off &= 0xffff_ffff;
    }
    let v = m.read_u8(off.wrapping_add(cpu.seg_base[i.seg as usize % 3]))?;
    cpu.gpr[0] = (cpu.gpr[0] & !0xff) | u64::from(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_table_matches_linux() {
        let cpu = Cpu { tsc_aux: (1 << 12) | 5, ..Cpu::default() };
        assert!(descriptor(&cpu, 0).is_none());
        assert!(descriptor(&cpu, 0x63).is_none());
        assert!(descriptor(&cpu, 0x37).is_none(), "LDT selector");
        let cs = descriptor(&cpu, 0x33).expect("user CS");
        assert!(cs.code() && cs.readable() && !cs.writable() && cs.dpl() == 3);
        assert_eq!(descriptor(&cpu, 0x7b).map(|d| d.byte_limit()), Some(0x1005));
        assert!(data_loadable(&cpu, 0x2b) && data_loadable(&cpu, 0x7b) && data_loadable(&cpu, 2));
        assert!(!data_loadable(&cpu, 0x18) && !data_loadable(&cpu, 0x40));
    }
}
