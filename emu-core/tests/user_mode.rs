//! Instructions whose user-mode outcome the host cannot show the differential tests:
//! extensions CPUID hides (the host has them), far transfers to the 32-bit code segment,
//! the per-CPU segment's limit, and faults the native run would turn into a signal the
//! comparison cannot tell apart.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

#[allow(dead_code)]
mod common;

use common::FlatMem;
use emu_core::{CodeCache, Cpu, Exception, Exit, InsnCosts, ZF};

const CODE: u64 = 0x40_0000;
const DATA: u64 = 0x50_0000;
const STACK: u64 = 0x60_0000;

/// Runs `code` (followed by INT3) on a fresh core after `setup`; returns the exit and
/// the core.
fn run(code: &[u8], setup: impl FnOnce(&mut Cpu)) -> (Exit, Cpu) {
    let mut page = vec![0xccu8; 4096];
    page[..code.len()].copy_from_slice(code);
    let mut mem = FlatMem::default();
    mem.map(CODE, page);
    mem.map(DATA, vec![0; 4096]);
    mem.map(STACK, vec![0; 8192]);
    let mut cpu = Cpu { rip: CODE, ..Cpu::default() };
    cpu.gpr[4] = STACK + 4096;
    setup(&mut cpu);
    let mut cache = CodeCache::new(InsnCosts::default());
    let exit = emu_core::run(&mut cpu, &mut mem, &mut cache, 1 << 32);
    (exit, cpu)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_extensions_raise_invalid_opcode() {
        let ud = Exit::Exception(Exception::InvalidOpcode);
        let cases: [(&str, &[u8]); 10] = [
            ("vzeroupper (AVX)", &[0xc5, 0xf8, 0x77]),
            ("vaddps ymm0, ymm1, ymm2 (AVX)", &[0xc5, 0xf4, 0x58, 0xc2]),
            ("vaddps zmm0, zmm1, zmm2 (AVX-512)", &[0x62, 0xf1, 0x74, 0x48, 0x58, 0xc2]),
            ("xsave [rax] (XSAVE)", &[0x0f, 0xae, 0x20]),
            ("xsetbv (XSAVE)", &[0x0f, 0x01, 0xd1]),
            ("rdrand eax (RDRAND)", &[0x0f, 0xc7, 0xf0]),
            ("rdseed eax (RDSEED)", &[0x0f, 0xc7, 0xf8]),
            ("pshufb xmm0, xmm1 (SSSE3)", &[0x66, 0x0f, 0x38, 0x00, 0xc1]),
            ("wrfsbase rax (FSGSBASE)", &[0xf3, 0x48, 0x0f, 0xae, 0xd0]),
            ("monitor (MONITOR)", &[0x0f, 0x01, 0xc8]),
        ];
        for (name, bytes) in cases {
            let (exit, cpu) = run(bytes, |c| c.gpr[0] = DATA);
            assert_eq!(exit, ud, "{name}");
            assert_eq!(cpu.rip, CODE, "{name}: RIP stays at the faulting instruction");
        }
    }

    #[test]
    fn port_io_and_privileged_instructions_raise_general_protection() {
        let gp = Exit::Exception(Exception::GeneralProtection);
        let cases: [&[u8]; 12] = [
            &[0xe4, 0x60],       // in al, 0x60
            &[0xe7, 0x80],       // out 0x80, eax
            &[0xec],             // in al, dx
            &[0x66, 0xef],       // out dx, ax
            &[0x6c],             // insb
            &[0xf3, 0x6d],       // rep insd
            &[0x6e],             // outsb
            &[0xf3, 0x66, 0x6f], // rep outsw
            &[0x0f, 0x33],       // rdpmc
            &[0x0f, 0x01, 0xf0], // lmsw ax
            &[0x48, 0x0f, 0x35], // sysexitq
            &[0x0f, 0x00, 0xd0], // lldt ax
        ];
        for bytes in cases {
            let (exit, cpu) = run(bytes, |c| {
                c.gpr[6] = DATA;
                c.gpr[7] = DATA;
                c.gpr[1] = 4;
            });
            assert_eq!(exit, gp, "{bytes:02x?}");
            assert_eq!(cpu.rip, CODE);
            assert_eq!((cpu.gpr[1], cpu.gpr[6], cpu.gpr[7]), (4, DATA, DATA), "no iteration ran");
        }
    }

    #[test]
    fn far_transfers_to_compatibility_mode_are_unsupported() {
        // push 0x23; push rax; retfq: a return to the 32-bit user code segment.
        let (exit, cpu) = run(&[0x6a, 0x23, 0x50, 0x48, 0xcb], |c| c.gpr[0] = CODE + 0x100);
        assert_eq!(exit, Exit::Unsupported);
        assert_eq!(cpu.rip, CODE + 3, "stopped at the RETF");
        // The same return to the 64-bit code segment continues there.
        let (exit, cpu) = run(&[0x6a, 0x33, 0x50, 0x48, 0xcb], |c| c.gpr[0] = CODE + 0x100);
        assert_eq!(exit, Exit::Exception(Exception::Breakpoint));
        assert_eq!(cpu.rip, CODE + 0x101);
        assert_eq!(cpu.gpr[4], STACK + 4096);
        // A non-canonical return address is #GP.
        let (exit, _) = run(&[0x6a, 0x33, 0x50, 0x48, 0xcb], |c| c.gpr[0] = 1 << 47);
        assert_eq!(exit, Exit::Exception(Exception::GeneralProtection));
    }

    #[test]
    fn int1_and_int_3_trap_like_int3() {
        // int1 (F1, #DB) and int 3 (CD 03, #BP): traps, RIP after the instruction.
        for (code, e) in [(&[0xf1u8][..], Exception::Debug), (&[0xcd, 0x03], Exception::Breakpoint)]
        {
            let (exit, cpu) = run(code, |_| {});
            assert_eq!(exit, Exit::Exception(e));
            assert_eq!(cpu.rip, CODE + code.len() as u64);
        }
        // Other vectors have no user gate: #GP.
        let (exit, cpu) = run(&[0xcd, 0x21], |_| {});
        assert_eq!(exit, Exit::Exception(Exception::GeneralProtection));
        assert_eq!(cpu.rip, CODE);
    }

    #[test]
    fn cpunode_segment_limit_is_tsc_aux() {
        // lsl eax, ecx with ecx = 0x7b (__CPUNODE_SEG): node << 12 | cpu, as vgetcpu reads it.
        let (exit, cpu) = run(&[0x0f, 0x03, 0xc1], |c| {
            c.gpr[1] = 0x7b;
            c.tsc_aux = (1 << 12) | 3;
        });
        assert_eq!(exit, Exit::Exception(Exception::Breakpoint));
        assert_eq!(cpu.gpr[0], 0x1003);
        assert!(cpu.flags.status() & ZF != 0);
    }

    #[test]
    fn segment_loads_zero_the_fs_and_gs_bases() {
        // mov fs, ax (ax = 0): Intel clears the base of a null selector load.
        let (exit, cpu) = run(&[0x8e, 0xe0], |c| c.seg_base[1] = 0x1234_5000);
        assert_eq!(exit, Exit::Exception(Exception::Breakpoint));
        assert_eq!(cpu.seg_base[1], 0);
        // A faulting load changes nothing.
        let (exit, cpu) = run(&[0x8e, 0xe8], |c| {
            c.seg_base[2] = 0x1234_5000;
            c.gpr[0] = 0x63;
        });
        assert_eq!(exit, Exit::Exception(Exception::GeneralProtection));
        assert_eq!((cpu.seg_base[2], cpu.sel[5]), (0x1234_5000, 0));
    }
}
