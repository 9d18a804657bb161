//! Static ELF loading (fs/binfmt_elf.c `load_elf_binary` and `create_elf_tables`):
//! maps PT_LOAD segments lazily from the image, creates the stack, and writes argc,
//! argv, envp and the auxiliary vector. Static PIE (ET_DYN without PT_INTERP) loads at
//! Linux's ELF_ET_DYN_BASE. No relocations are applied: static glibc does that itself.

use crate::mm::{
    page_up, Backing, Mm, Vma, VmaKind, PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, STACK_LIMIT,
    STACK_TOP,
};
use crate::rng::SimRng;
use emu_mmu::{OutOfMemory, PhysMem};
use goblin::elf::{header, program_header, Elf};
use std::sync::Arc;
use thiserror::Error;

/// Load address of a static PIE (Linux ELF_ET_DYN_BASE on x86-64, no randomisation).
pub const PIE_BASE: u64 = 0x5555_5555_4000;

/// A program that cannot be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Not parseable as ELF.
    #[error("not a valid ELF file: {0}")]
    Malformed(String),
    /// Wrong class, machine or type.
    #[error("unsupported ELF: {0}")]
    Unsupported(String),
    /// Out of guest memory.
    #[error(transparent)]
    Memory(#[from] OutOfMemory),
}

/// Where the loaded program starts.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// Entry point.
    pub entry: u64,
    /// Initial stack pointer (pointing at argc).
    pub sp: u64,
}

/// Auxiliary vector keys (include/uapi/linux/auxvec.h).
mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const PLATFORM: u64 = 15;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const HWCAP2: u64 = 26;
    pub const EXECFN: u64 = 31;
    pub const MINSIGSTKSZ: u64 = 51;
}

/// Loads `image` into `mm` and builds the initial stack.
pub fn load(
    mm: &mut Mm,
    phys: &mut PhysMem,
    image: Arc<[u8]>,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    execfn: &[u8],
    hwcap: u32,
    rng: &mut SimRng,
) -> Result<Loaded, LoadError> {
    let elf = Elf::parse(&image).map_err(|e| LoadError::Malformed(e.to_string()))?;
    if !elf.is_64 || elf.header.e_machine != header::EM_X86_64 {
        return Err(LoadError::Unsupported(format!(
            "need a 64-bit x86-64 executable (class {}, machine {})",
            if elf.is_64 { "ELF64" } else { "ELF32" },
            elf.header.e_machine
        )));
    }
    if elf.interpreter.is_some() {
        return Err(LoadError::Unsupported(
            "dynamically linked (has PT_INTERP); build with -static".into(),
        ));
    }
    let bias = match elf.header.e_type {
        header::ET_EXEC => 0,
        header::ET_DYN => PIE_BASE,
        t => return Err(LoadError::Unsupported(format!("ELF type {t} is not an executable"))),
    };
    let mut highest = 0u64;
    let mut phdr_va = None;
    let mut any = false;
    for ph in elf.program_headers.iter().filter(|p| p.p_type == program_header::PT_LOAD) {
        any = true;
        let (off, filesz, memsz, vaddr) = (ph.p_offset, ph.p_filesz, ph.p_memsz, ph.p_vaddr);
        if filesz > memsz || off.checked_add(filesz).is_none_or(|e| e > image.len() as u64) {
            return Err(LoadError::Malformed(format!(
                "PT_LOAD at {vaddr:#x}: file range {off:#x}+{filesz:#x} outside the file or larger than memsz"
            )));
        }
        if vaddr % PAGE != off % PAGE {
            return Err(LoadError::Malformed(format!(
                "PT_LOAD at {vaddr:#x} is misaligned with its offset"
            )));
        }
        let va = bias
            .checked_add(vaddr)
            .ok_or_else(|| LoadError::Malformed("segment address overflows".into()))?;
        let start = va & !(PAGE - 1);
        let end = page_up(
            va.checked_add(memsz)
                .ok_or_else(|| LoadError::Malformed("segment size overflows".into()))?,
        );
        if end > STACK_TOP - STACK_LIMIT || start < 0x1000 || !mm.is_free(start, end) {
            return Err(LoadError::Malformed(format!(
                "PT_LOAD {start:#x}..{end:#x} overlaps or is out of range"
            )));
        }
        let mut prot = 0;
        if ph.p_flags & program_header::PF_R != 0 {
            prot |= PROT_READ;
        }
        if ph.p_flags & program_header::PF_W != 0 {
            prot |= PROT_WRITE;
        }
        if ph.p_flags & program_header::PF_X != 0 {
            prot |= PROT_EXEC;
        }
        mm.insert(Vma {
            start,
            end,
            prot,
            shared: false,
            backing: Backing::Image {
                data: crate::mm::Source::Bytes(image.clone()),
                va,
                off,
                len: filesz,
            },
            kind: VmaKind::Image,
            hugepage: false,
            nohugepage: false,
        });
        let e_phoff = elf.header.e_phoff;
        if e_phoff >= off && e_phoff < off + filesz {
            phdr_va = Some(va + (e_phoff - off));
        }
        highest = highest.max(end);
    }
    if !any {
        return Err(LoadError::Malformed("no PT_LOAD segments".into()));
    }
    mm.brk_start = highest;
    mm.brk = highest;
    // The stack VMA spans the RLIMIT_STACK below the top; pages fault in on use.
    mm.insert(Vma {
        start: STACK_TOP - STACK_LIMIT,
        end: STACK_TOP,
        prot: PROT_READ | PROT_WRITE,
        shared: false,
        backing: Backing::Anon,
        kind: VmaKind::Stack,
        hugepage: false,
        nohugepage: false,
    });
    let entry = bias + elf.header.e_entry;
    let phdr = phdr_va.unwrap_or(bias + elf.header.e_phoff);
    let phnum = u64::from(elf.header.e_phnum);
    let sp = build_stack(mm, phys, argv, envp, execfn, hwcap, rng, phdr, phnum, entry)?;
    Ok(Loaded { entry, sp })
}

#[allow(clippy::too_many_arguments)]
fn build_stack(
    mm: &mut Mm,
    phys: &mut PhysMem,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    execfn: &[u8],
    hwcap: u32,
    rng: &mut SimRng,
    phdr: u64,
    phnum: u64,
    entry: u64,
) -> Result<u64, LoadError> {
    // The top 8 bytes stay zero, as Linux's bprm->p starts below an end marker.
    let mut sp = STACK_TOP - 8;
    let push_bytes =
        |mm: &mut Mm, phys: &mut PhysMem, sp: &mut u64, b: &[u8]| -> Result<u64, LoadError> {
            *sp -= b.len() as u64;
            if !mm.poke(phys, *sp, b)? {
                return Err(LoadError::Malformed("arguments do not fit the stack".into()));
            }
            Ok(*sp)
        };
    let cstr = |s: &[u8]| {
        let mut v = s.to_vec();
        v.push(0);
        v
    };
    // Strings, highest first: execfn, then envp and argv strings.
    let execfn_va = push_bytes(mm, phys, &mut sp, &cstr(execfn))?;
    let mut env_va = Vec::new();
    for e in envp.iter().rev() {
        env_va.push(push_bytes(mm, phys, &mut sp, &cstr(e))?);
    }
    env_va.reverse();
    let mut arg_va = Vec::new();
    for a in argv.iter().rev() {
        arg_va.push(push_bytes(mm, phys, &mut sp, &cstr(a))?);
    }
    arg_va.reverse();
    let platform = push_bytes(mm, phys, &mut sp, b"x86_64\0")?;
    let mut random = [0u8; 16];
    rng.fill(&mut random);
    sp &= !15;
    let random_va = push_bytes(mm, phys, &mut sp, &random)?;
    let auxv: Vec<(u64, u64)> = vec![
        (at::MINSIGSTKSZ, 2048),
        (at::HWCAP, u64::from(hwcap)),
        (at::PAGESZ, PAGE),
        (at::CLKTCK, 100),
        (at::PHDR, phdr),
        (at::PHENT, 56),
        (at::PHNUM, phnum),
        (at::BASE, 0),
        (at::FLAGS, 0),
        (at::ENTRY, entry),
        (at::UID, 1000),
        (at::EUID, 1000),
        (at::GID, 1000),
        (at::EGID, 1000),
        (at::SECURE, 0),
        (at::RANDOM, random_va),
        (at::HWCAP2, 0),
        (at::EXECFN, execfn_va),
        (at::PLATFORM, platform),
        (at::NULL, 0),
    ];
    let words = 1 + arg_va.len() + 1 + env_va.len() + 1 + 2 * auxv.len();
    sp = (sp - 8 * words as u64) & !15;
    let mut v: Vec<u8> = Vec::with_capacity(8 * words);
    let mut w = |x: u64| v.extend_from_slice(&x.to_le_bytes());
    w(argv.len() as u64);
    arg_va.iter().for_each(|&a| w(a));
    w(0);
    env_va.iter().for_each(|&e| w(e));
    w(0);
    for (k, val) in auxv {
        w(k);
        w(val);
    }
    if !mm.poke(phys, sp, &v)? {
        return Err(LoadError::Malformed("arguments do not fit the stack".into()));
    }
    Ok(sp)
}
