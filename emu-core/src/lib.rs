//! `emu-core`: one x86-64 core. Instructions are decoded with iced-x86 into basic blocks
//! of [`Insn`] records whose handlers were chosen at decode time, and executed against
//! guest memory reached only through the [`GuestMem`] trait. The core knows nothing of
//! page tables, TLBs or Linux.
//!
//! Coverage: the integer ISA, string instructions, LOCK-prefixed atomics, SSE/SSE2, MMX
//! (with the SSE/SSE2 forms on MMX registers), x87 (FBLD/FBSTP, FSAVE/FRSTOR, the
//! unsupported 80-bit encodings), CPUID/RDTSC/RDTSCP/XGETBV, PAUSE, SYSCALL, the hint-NOP
//! space, and user-mode system instructions as a Linux process sees them: segment
//! registers, far transfers to the 64-bit user code segment, LAR/LSL/VERR/VERW against
//! Linux's GDT, SGDT/SIDT/SMSW/SLDT/STR as Linux's UMIP emulation completes them; port I/O
//! and privileged instructions raise #GP, unimplemented instructions of extensions CPUID
//! does not advertise raise #UD. No AVX (CPUID must not report it).

#![allow(clippy::cast_possible_truncation, clippy::cast_lossless)]

mod cache;
mod cpu;
mod decode;
pub mod exec;
mod flags;
mod insn;
mod mem;
mod run;
pub mod softfp;
mod timing;
pub mod x87;

pub use cache::{CodeCache, CodeCacheStats};
pub use cpu::{
    Cpu, CpuidModel, Exception, Exit, DF_BIT, HI8, NOREG, SEG_FS, SEG_GS, SEG_NONE,
    USER_RFLAGS_WRITABLE, USER_SELECTORS,
};
pub use decode::{is_cmovcc, is_setcc, Resolver};
pub use flags::{Flags, AF, CF, OF, PF, SF, STATUS, ZF};
pub use insn::{ExecFn, Insn, Width, W16, W32, W64, W8};
pub use mem::{Access, GuestMem, PageFault};
pub use run::run;
pub use timing::{CostClass, InsnCosts, NUM_CLASSES};

/// Formats the instruction at the start of `bytes` (decoded at `rip`) for diagnostics,
/// e.g. `"lock cmpxchg [rdi],rsi"`.
pub fn disassemble(bytes: &[u8], rip: u64) -> (String, usize) {
    use iced_x86::{Decoder, DecoderOptions, FastFormatter};
    let mut d = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
    let ins = d.decode();
    let mut s = String::new();
    FastFormatter::new().format(&ins, &mut s);
    (s, ins.len())
}
