//! The execution loop of one core: fetch a decoded block through the instruction TLB,
//! run its instructions, charge their costs, and stop at the first exit.

use crate::cache::CodeCache;
use crate::cpu::{Cpu, Exception, Exit};
use crate::mem::GuestMem;

/// Runs `cpu` until an exit, or until its local time reaches `until_fp` (1/256 cycles).
/// The horizon is checked before every instruction (and every iteration of a repeated
/// string instruction), so no instruction starts at or after it: an interrupt that
/// arrives at the horizon or later finds the core at an instruction boundary no later
/// than the instruction that was executing when it arrived, as on hardware.
///
/// On return RIP is where execution resumes: after SYSCALL and PAUSE, after INT3, and at
/// the faulting instruction for faults and unsupported instructions.
pub fn run<M: GuestMem>(
    cpu: &mut Cpu,
    mem: &mut M,
    cache: &mut CodeCache<M>,
    until_fp: u64,
) -> Exit {
    cpu.until_fp = until_fp;
    loop {
        if mem.code_invalidations_pending() {
            cache.invalidate(mem);
        }
        if cpu.time_fp >= until_fp {
            return Exit::Budget;
        }
        let rip = cpu.rip;
        let pa = match mem.fetch_translate(rip) {
            Ok(pa) => pa,
            Err(pf) => return Exit::PageFault(pf),
        };
        let id = match cache.block(rip, pa, mem) {
            Ok(id) => id,
            Err(pf) => return Exit::PageFault(pf),
        };
        for insn in cache.insns(id) {
            if cpu.time_fp + mem.pending_stall() >= until_fp {
                // The horizon falls inside this block: stop before the next instruction.
                cpu.rip = insn.rip();
                cpu.time_fp += mem.take_stall();
                return Exit::Budget;
            }
            cpu.rip = insn.next_rip;
            cpu.time_fp += u64::from(insn.cost);
            cpu.instret += 1;
            if let Err(e) = (insn.exec)(cpu, mem, insn) {
                match e {
                    Exit::BlockEnd => break,
                    Exit::Syscall
                    | Exit::Int80
                    | Exit::Pause
                    | Exit::Exception(Exception::Breakpoint | Exception::Debug) => {
                        cpu.time_fp += mem.take_stall();
                        return e;
                    }
                    _ => {
                        cpu.rip = insn.rip();
                        cpu.instret -= 1;
                        cpu.time_fp += mem.take_stall();
                        return e;
                    }
                }
            }
        }
        cpu.time_fp += mem.take_stall();
    }
}
