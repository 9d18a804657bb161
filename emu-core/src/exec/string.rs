//! String instructions (MOVS, STOS, LODS, SCAS, CMPS) with REP/REPE/REPNE.
//!
//! A repeated instruction runs at most [`REP_CHUNK`] iterations per execution, and no
//! iteration past the run's horizon (`Cpu::until_fp`); then it restarts itself with RCX,
//! RSI and RDI updated, exactly as an interrupted REP does on hardware, so long copies
//! interleave with other cores and take interrupts between iterations.

use crate::cpu::Cpu;
use crate::cpu::Exit;
use crate::insn::{Insn, Width, F_REP, F_REPNE};
use crate::mem::GuestMem;

/// Iterations of a REP instruction executed before it yields and restarts.
pub const REP_CHUNK: u64 = 4096;

/// String operation selectors.
pub mod so {
    /// MOVS.
    pub const MOVS: u8 = 0;
    /// STOS.
    pub const STOS: u8 = 1;
    /// LODS.
    pub const LODS: u8 = 2;
    /// SCAS.
    pub const SCAS: u8 = 3;
    /// CMPS.
    pub const CMPS: u8 = 4;
}

/// One string instruction, repeated if prefixed.
pub fn string<M: GuestMem, W: Width, const OP: u8>(
    cpu: &mut Cpu,
    m: &mut M,
    i: &Insn<M>,
) -> Result<(), Exit> {
    let rep = i.flags & (F_REP | F_REPNE) != 0;
    let n = 1u64 << W::SZ;
    let step = if cpu.df { n.wrapping_neg() } else { n };
    let seg = cpu.seg_base[i.seg as usize % 3];
    let mut done = 0u64;
    loop {
        if rep {
            if cpu.gpr[1] == 0 {
                break;
            }
            if done == REP_CHUNK || (done > 0 && cpu.time_fp + m.pending_stall() >= cpu.until_fp) {
                // Yield: re-execute this instruction to continue.
                cpu.rip = i.rip();
                return Err(Exit::BlockEnd);
            }
        }
        let si = cpu.gpr[6];
        let di = cpu.gpr[7];
        match OP {
            so::MOVS => {
                let v = W::load(m, si.wrapping_add(seg))?;
                W::store(m, di, v)?;
                cpu.gpr[6] = si.wrapping_add(step);
                cpu.gpr[7] = di.wrapping_add(step);
            }
            so::STOS => {
                W::store(m, di, W::get(cpu, 0))?;
                cpu.gpr[7] = di.wrapping_add(step);
            }
            so::LODS => {
                let v = W::load(m, si.wrapping_add(seg))?;
                W::set(cpu, 0, v);
                cpu.gpr[6] = si.wrapping_add(step);
            }
            so::SCAS => {
                let b = W::load(m, di)?;
                let a = W::get(cpu, 0);
                let r = a.wrapping_sub(b) & crate::flags::mask(W::SZ);
                cpu.flags.set_sub(W::SZ, a, b, r);
                cpu.gpr[7] = di.wrapping_add(step);
            }
            _ => {
                let a = W::load(m, si.wrapping_add(seg))?;
                let b = W::load(m, di)?;
                let r = a.wrapping_sub(b) & crate::flags::mask(W::SZ);
                cpu.flags.set_sub(W::SZ, a, b, r);
                cpu.gpr[6] = si.wrapping_add(step);
                cpu.gpr[7] = di.wrapping_add(step);
            }
        }
        if !rep {
            break;
        }
        cpu.gpr[1] -= 1;
        done += 1;
        if done > 1 {
            cpu.time_fp += u64::from(i.cost);
        }
        if OP == so::SCAS || OP == so::CMPS {
            let zf = cpu.flags.zf();
            if (i.flags & F_REP != 0 && !zf) || (i.flags & F_REPNE != 0 && zf) {
                break;
            }
        }
    }
    Ok(())
}
