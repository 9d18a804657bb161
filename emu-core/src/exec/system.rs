//! SYSCALL, CPUID, RDTSC and the other instructions that reach outside the core, plus
//! NOP-like hints and faulting instructions.

use crate::cpu::{Cpu, Exception, Exit};
use crate::insn::Insn;
use crate::mem::GuestMem;

/// SYSCALL: RCX = return RIP, R11 = RFLAGS (Intel SDM vol. 2 "SYSCALL").
pub fn syscall<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    cpu.gpr[1] = i.next_rip;
    cpu.gpr[11] = cpu.rflags() & !(1 << 16);
    Err(Exit::Syscall)
}

/// CPUID.
pub fn cpuid<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    let r = cpu.cpuid.query(cpu.gpr[0] as u32, cpu.gpr[1] as u32);
    cpu.gpr[0] = u64::from(r[0]);
    cpu.gpr[3] = u64::from(r[1]);
    cpu.gpr[1] = u64::from(r[2]);
    cpu.gpr[2] = u64::from(r[3]);
    Ok(())
}

/// RDTSC (RDTSCP when `P`): the core's cycle count, including stalls charged so far.
pub fn rdtsc<M: GuestMem, const P: bool>(
    cpu: &mut Cpu,
    m: &mut M,
    _i: &Insn<M>,
) -> Result<(), Exit> {
    cpu.time_fp += m.take_stall();
    let t = cpu.cycles();
    cpu.gpr[0] = t & 0xffff_ffff;
    cpu.gpr[2] = t >> 32;
    if P {
        cpu.gpr[1] = u64::from(cpu.tsc_aux);
    }
    Ok(())
}

/// XGETBV: #UD, as on hardware when CR4.OSXSAVE is clear (Intel SDM vol. 2 "XGETBV":
/// "#UD If CR4.OSXSAVE[bit 18] = 0"). CPUID hides XSAVE and OSXSAVE, which is what the
/// kernel reports when it did not enable XSAVE, so the instruction does not exist.
pub fn xgetbv<M: GuestMem>(_cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    Err(Exit::Exception(Exception::InvalidOpcode))
}

/// INT 0x80: Linux's 32-bit system call gate, open to user mode (IA32_EMULATION).
pub fn int80<M: GuestMem>(_cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    Err(Exit::Int80)
}

/// Instructions with no architectural effect here (NOP, ENDBR64, fences, prefetches):
/// only their cost is charged.
pub fn nop<M: GuestMem>(_cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    Ok(())
}

/// PAUSE: a spin-wait hint the machine may use to let other cores run.
pub fn pause<M: GuestMem>(_cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    Err(Exit::Pause)
}

/// Raises the exception in `Insn::cc` (see [`fault_code`]).
pub fn fault<M: GuestMem>(cpu: &mut Cpu, _m: &mut M, i: &Insn<M>) -> Result<(), Exit> {
    let e = match i.cc {
        0 => Exception::InvalidOpcode,
        1 => Exception::GeneralProtection,
        c => {
            // INT3 and INT1 are traps: RIP stays after them.
            cpu.rip = i.next_rip;
            let e = if c == 3 { Exception::Debug } else { Exception::Breakpoint };
            return Err(Exit::Exception(e));
        }
    };
    Err(Exit::Exception(e))
}

/// `Insn::cc` value for [`fault`] raising each exception.
pub fn fault_code(e: Exception) -> u8 {
    match e {
        Exception::GeneralProtection => 1,
        Exception::Breakpoint => 2,
        Exception::Debug => 3,
        _ => 0,
    }
}

/// HLT in user mode is privileged: #GP.
pub fn hlt<M: GuestMem>(_cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    Err(Exit::Exception(Exception::GeneralProtection))
}

/// A valid instruction that is not implemented.
pub fn unsupported<M: GuestMem>(_cpu: &mut Cpu, _m: &mut M, _i: &Insn<M>) -> Result<(), Exit> {
    Err(Exit::Unsupported)
}
