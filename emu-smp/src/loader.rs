//! Static ELF loading as Linux's fs/binfmt_elf.c does it (`load_elf_binary`,
//! `load_elf_phdrs`, `elf_load`, `elf_map`, `total_mapping_size`, `create_elf_tables`),
//! reading only the ELF header and the program headers: section headers, symbol tables
//! and PT_DYNAMIC are never looked at, as the kernel never looks at them.
//!
//! Every check the kernel makes is made here, with the errno its execve would fail with:
//! those before `begin_new_exec` (ENOEXEC for a malformed header or program header
//! table, a malformed PT_INTERP), and those of the mapping loop after it (EINVAL,
//! ENOMEM, EPERM, EEXIST, EFAULT: there Linux has already destroyed the old
//! image and kills the process with SIGSEGV). All arithmetic on header fields is checked
//! or wraps exactly where the kernel's unsigned long arithmetic wraps, so no input makes
//! the loader panic.
//!
//! Segments map as `elf_load` maps them: whole file pages from the page-aligned offset
//! (bytes before `p_vaddr` in the first page and after `p_filesz` in the last come from
//! the file), the rest of the last file page zeroed by `padzero` only when the segment is
//! writable, and the `.bss` past it an anonymous read-write mapping (`vm_brk_flags`).
//! The first PT_LOAD maps with MAP_FIXED_NOREPLACE, later ones with MAP_FIXED, so a
//! later segment replaces what an earlier one mapped at the same addresses. A static PIE
//! (ET_DYN without PT_INTERP) is placed as Linux places a PIE: at ELF_ET_DYN_BASE, aligned
//! down to the largest power-of-two PT_LOAD alignment, less its first `p_vaddr`, without
//! randomisation. No relocations are applied: static glibc does that itself.
//!
//! Where emu differs from Linux, it refuses to load rather than run something else:
//! a mapping over the stack (emu reserves RLIMIT_STACK below STACK_TOP for it; Linux
//! would map over its smaller initial stack and the program would start on a corrupt
//! stack), and file pages past the end of the file (Linux maps them and delivers SIGBUS
//! when they are touched; emu has no SIGBUS for them).

use crate::mm::{
    Backing, Gather, Mm, Vma, VmaKind, MMAP_MIN, PAGE, PROT_EXEC, PROT_READ, PROT_WRITE,
    STACK_LIMIT, STACK_TOP,
};
use crate::rng::SimRng;
use emu_mmu::{OutOfMemory, PhysMem};
use std::sync::Arc;
use thiserror::Error;

/// Linux's ELF_ET_DYN_BASE on x86-64: `DEFAULT_MAP_WINDOW / 3 * 2`.
const ELF_ET_DYN_BASE: u64 = (STACK_TOP / 3) * 2;
/// TASK_SIZE of a 64-bit task with 4-level paging (the top of the stack, as emu places it).
const TASK_SIZE: u64 = STACK_TOP;
/// The kernel's limit on the size of the program header table (`load_elf_phdrs`: 64 KiB,
/// 1170 headers; older kernels also capped it at ELF_MIN_ALIGN, 73 headers).
const MAX_PHDRS_BYTES: u64 = 65536;
/// PATH_MAX, the longest PT_INTERP.
const PATH_MAX: u64 = 4096;
/// MAX_ARG_STRLEN: the longest argument or environment string, NUL included.
pub(crate) const MAX_ARG_STRLEN: usize = 32 * 4096;
/// ARG_MAX: 32 pages of strings are allowed whatever the stack limit.
const ARG_MAX: u64 = 32 * 4096;
/// _STK_LIM: the default RLIMIT_STACK.
const STK_LIM: u64 = 8 << 20;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: u64 = 56;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// A program that cannot be loaded.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Not an ELF executable Linux would start: its execve fails with `errno` before the
    /// point of no return (the caller keeps running).
    #[error("not a valid ELF executable: {msg} (Linux's execve fails with {errno})")]
    Malformed {
        /// The errno execve returns.
        errno: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The headers are valid but a segment cannot be mapped: Linux's execve fails with
    /// `errno` after the point of no return, and the process is killed by SIGSEGV.
    #[error(
        "cannot map the program: {msg} (Linux's execve fails with {errno} after the point of \
         no return, and the process is killed by SIGSEGV)"
    )]
    Unmappable {
        /// The errno of the failed mapping.
        errno: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A program Linux would start but emu does not (wrong class, dynamically linked,
    /// mappings emu cannot represent).
    #[error("unsupported ELF: {0}")]
    Unsupported(String),
    /// The arguments and environment do not fit (execve's E2BIG).
    #[error("{0} (Linux's execve fails with E2BIG)")]
    TooBig(String),
    /// Out of guest memory.
    #[error(transparent)]
    Memory(#[from] OutOfMemory),
}

fn malformed(errno: &'static str, msg: String) -> LoadError {
    LoadError::Malformed { errno, msg }
}

fn unmappable(errno: &'static str, msg: String) -> LoadError {
    LoadError::Unmappable { errno, msg }
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
    pub const RSEQ_FEATURE_SIZE: u64 = 27;
    pub const RSEQ_ALIGN: u64 = 28;
    pub const EXECFN: u64 = 31;
    pub const SYSINFO_EHDR: u64 = 33;
    pub const MINSIGSTKSZ: u64 = 51;
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// The ELF header fields the kernel reads. Like the kernel, emu reads them little-endian
/// whatever EI_DATA says, and does not look at EI_VERSION, e_version, e_flags, e_ehsize
/// or any section header field.
#[derive(Clone, Copy, Debug)]
struct Ehdr {
    class: u8,
    e_type: u16,
    e_machine: u16,
    e_entry: u64,
    e_phoff: u64,
    e_phentsize: u16,
    e_phnum: u16,
}

impl Ehdr {
    /// The header from the start of the file. The kernel reads the first bytes of the file
    /// into a zeroed buffer (`prepare_binprm`), so a short file reads as zero-padded.
    fn parse(image: &[u8]) -> Result<Ehdr, LoadError> {
        let mut b = [0u8; EHDR_SIZE];
        let n = image.len().min(EHDR_SIZE);
        b[..n].copy_from_slice(&image[..n]);
        if b[..4] != *b"\x7fELF" {
            return Err(malformed("ENOEXEC", "no ELF magic at the start of the file".into()));
        }
        Ok(Ehdr {
            class: b[4],
            e_type: u16_at(&b, 16),
            e_machine: u16_at(&b, 18),
            e_entry: u64_at(&b, 24),
            e_phoff: u64_at(&b, 32),
            e_phentsize: u16_at(&b, 54),
            e_phnum: u16_at(&b, 56),
        })
    }
}

/// One program header.
#[derive(Clone, Copy, Debug)]
struct Phdr {
    p_type: u32,
    p_flags: u32,
    p_offset: u64,
    p_vaddr: u64,
    p_filesz: u64,
    p_memsz: u64,
    p_align: u64,
}

impl Phdr {
    fn parse(b: &[u8]) -> Phdr {
        Phdr {
            p_type: u32_at(b, 0),
            p_flags: u32_at(b, 4),
            p_offset: u64_at(b, 8),
            p_vaddr: u64_at(b, 16),
            p_filesz: u64_at(b, 32),
            p_memsz: u64_at(b, 40),
            p_align: u64_at(b, 48),
        }
    }

    /// `make_prot`: PF_R, PF_W, PF_X as PROT_READ, PROT_WRITE, PROT_EXEC.
    fn prot(&self) -> u8 {
        let mut prot = 0;
        if self.p_flags & PF_R != 0 {
            prot |= PROT_READ;
        }
        if self.p_flags & PF_W != 0 {
            prot |= PROT_WRITE;
        }
        if self.p_flags & PF_X != 0 {
            prot |= PROT_EXEC;
        }
        prot
    }
}

/// ELF_PAGESTART.
fn page_start(v: u64) -> u64 {
    v & !(PAGE - 1)
}

/// ELF_PAGEOFFSET.
fn page_offset(v: u64) -> u64 {
    v & (PAGE - 1)
}

/// ELF_PAGEALIGN / PAGE_ALIGN, wrapping to 0 past the top as the kernel's does.
fn page_align(v: u64) -> u64 {
    v.wrapping_add(PAGE - 1) & !(PAGE - 1)
}

/// Reads and checks the program header table (`load_elf_phdrs`).
fn read_phdrs(image: &[u8], eh: &Ehdr) -> Result<Vec<Phdr>, LoadError> {
    if u64::from(eh.e_phentsize) != PHDR_SIZE {
        return Err(malformed(
            "ENOEXEC",
            format!("e_phentsize is {}, not {PHDR_SIZE}", eh.e_phentsize),
        ));
    }
    let size = PHDR_SIZE * u64::from(eh.e_phnum);
    if size == 0 {
        return Err(malformed("ENOEXEC", "no program headers (e_phnum is 0)".into()));
    }
    if size > MAX_PHDRS_BYTES {
        return Err(malformed(
            "ENOEXEC",
            format!(
                "{} program headers ({size} bytes; the kernel reads at most {MAX_PHDRS_BYTES}, {} headers)",
                eh.e_phnum,
                MAX_PHDRS_BYTES / PHDR_SIZE
            ),
        ));
    }
    let table = eh
        .e_phoff
        .checked_add(size)
        .filter(|&end| end <= image.len() as u64)
        .map(|end| &image[eh.e_phoff as usize..end as usize])
        .ok_or_else(|| {
            malformed(
                "ENOEXEC",
                format!(
                    "the program header table at {:#x} ({size} bytes) runs past the end of the file ({} bytes)",
                    eh.e_phoff,
                    image.len()
                ),
            )
        })?;
    Ok(table.chunks_exact(PHDR_SIZE as usize).map(Phdr::parse).collect())
}

/// The first PT_INTERP's path, checked as `load_elf_binary` checks it.
fn interpreter(image: &[u8], phdrs: &[Phdr]) -> Result<Option<String>, LoadError> {
    let Some((i, ph)) = phdrs.iter().enumerate().find(|(_, p)| p.p_type == PT_INTERP) else {
        return Ok(None);
    };
    if ph.p_filesz > PATH_MAX || ph.p_filesz < 2 {
        return Err(malformed(
            "ENOEXEC",
            format!("PT_INTERP (program header {i}) is {} bytes long", ph.p_filesz),
        ));
    }
    let path = ph
        .p_offset
        .checked_add(ph.p_filesz)
        .filter(|&end| end <= image.len() as u64)
        .map(|end| &image[ph.p_offset as usize..end as usize])
        .ok_or_else(|| {
            malformed(
                "EIO",
                format!(
                    "PT_INTERP (program header {i}) at {:#x}+{:#x} runs past the end of the file",
                    ph.p_offset, ph.p_filesz
                ),
            )
        })?;
    let Some((&0, name)) = path.split_last() else {
        return Err(malformed(
            "ENOEXEC",
            format!("PT_INTERP (program header {i}) is not NUL-terminated"),
        ));
    };
    // The kernel opens it as a C string: up to the first NUL.
    let name = name.split(|&c| c == 0).next().unwrap_or_default();
    Ok(Some(String::from_utf8_lossy(name).escape_debug().to_string()))
}

/// `total_mapping_size`: the span of every PT_LOAD from the first page start to the
/// highest end, in the kernel's wrapping arithmetic.
fn total_mapping_size(phdrs: &[Phdr]) -> u64 {
    let (mut min, mut max, mut any) = (u64::MAX, 0u64, false);
    for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        min = min.min(page_start(p.p_vaddr));
        max = max.max(p.p_vaddr.wrapping_add(p.p_memsz));
        any = true;
    }
    if any {
        max.wrapping_sub(min)
    } else {
        0
    }
}

/// `maximum_alignment`: the largest power-of-two PT_LOAD alignment, page-aligned.
fn maximum_alignment(phdrs: &[Phdr]) -> u64 {
    let a = phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD && p.p_align.is_power_of_two())
        .map(|p| p.p_align)
        .max()
        .unwrap_or(0);
    page_align(a)
}

/// The address space being built, with the checks of the kernel's mapping functions.
struct Mapper<'a> {
    mm: &'a mut Mm,
    phys: &'a mut PhysMem,
    image: &'a Arc<[u8]>,
    /// Guest RAM in pages: the overcommit heuristic's `totalram_pages()` (no swap).
    ram_pages: u64,
}

/// What a segment's mapping is called in messages.
struct What<'a>(&'a str, usize, u64);

impl std::fmt::Display for What<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of PT_LOAD {} (p_vaddr {:#x})", self.0, self.1, self.2)
    }
}

impl Mapper<'_> {
    /// The checks of `get_unmapped_area` with MAP_FIXED and `security_mmap_addr`.
    fn check_area(&self, what: &What<'_>, addr: u64, len: u64) -> Result<(), LoadError> {
        if len > TASK_SIZE || addr > TASK_SIZE - len {
            return Err(unmappable(
                "ENOMEM",
                format!(
                    "{what}: {addr:#x}+{len:#x} runs past the top of the user address space ({TASK_SIZE:#x})"
                ),
            ));
        }
        if addr < MMAP_MIN {
            return Err(unmappable(
                "EPERM",
                format!("{what}: {addr:#x} is below vm.mmap_min_addr ({MMAP_MIN:#x})"),
            ));
        }
        Ok(())
    }

    /// The overcommit heuristic (`__vm_enough_memory`, OVERCOMMIT_GUESS): one accounted
    /// mapping larger than RAM fails.
    fn check_commit(&self, what: &What<'_>, len: u64) -> Result<(), LoadError> {
        if len / PAGE > self.ram_pages {
            return Err(unmappable(
                "ENOMEM",
                format!(
                    "{what}: {len:#x} bytes of private writable memory exceed the guest's {} MiB",
                    self.ram_pages / 256
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a mapping that would overlap emu's stack reservation.
    fn check_stack(&self, what: &What<'_>, addr: u64, len: u64) -> Result<(), LoadError> {
        let stack = STACK_TOP - STACK_LIMIT;
        if addr + len > stack {
            return Err(LoadError::Unsupported(format!(
                "{what}: {addr:#x}..{:#x} overlaps the stack, which emu reserves at {stack:#x}..{STACK_TOP:#x} \
                 (Linux would map over its initial stack)",
                addr + len
            )));
        }
        Ok(())
    }

    /// `vm_mmap` of a private file mapping at a fixed address: the checks of
    /// `vm_mmap_pgoff`, `do_mmap` and `mmap_region`, in their order. `reserve` is the
    /// length the kernel maps first (ET_DYN's total mapping size), `len` what stays.
    #[allow(clippy::too_many_arguments)]
    fn mmap_file(
        &mut self,
        what: &What<'_>,
        addr: u64,
        reserve: u64,
        len: u64,
        off: u64,
        prot: u8,
        noreplace: bool,
        visible: u64,
    ) -> Result<(), LoadError> {
        let rlen = page_align(reserve);
        if off.checked_add(rlen).is_none() {
            return Err(unmappable(
                "EINVAL",
                format!("{what}: file offset {off:#x} + length {rlen:#x} runs past 2^64"),
            ));
        }
        if page_offset(off) != 0 {
            return Err(unmappable(
                "EINVAL",
                format!(
                    "{what}: p_offset and p_vaddr differ modulo the page size (page-aligned offset {off:#x})"
                ),
            ));
        }
        if rlen == 0 {
            return Err(unmappable(
                "ENOMEM",
                format!("{what}: length {reserve:#x} wraps past 2^64"),
            ));
        }
        // do_mmap's EOVERFLOW (page offset + pages wrapping) cannot happen once the
        // offset plus the length did not.
        self.check_area(what, addr, rlen)?;
        if noreplace && !self.mm.is_free(addr, addr + rlen) {
            return Err(unmappable(
                "EEXIST",
                format!("{what}: {addr:#x}..{:#x} is already mapped", addr + rlen),
            ));
        }
        if prot & PROT_WRITE != 0 {
            self.check_commit(what, rlen)?;
        }
        // elf_map maps the reservation and unmaps what lies past the segment's own pages.
        let len = len.min(rlen);
        self.check_stack(what, addr, len)?;
        let image = self.image.clone();
        let avail = (image.len() as u64).saturating_sub(off);
        self.map(Vma {
            start: addr,
            end: addr + len,
            prot,
            shared: false,
            backing: Backing::Image {
                data: crate::mm::Source::Bytes(image),
                va: addr,
                off,
                len: visible.min(avail),
            },
            kind: VmaKind::Image,
            hugepage: false,
            nohugepage: false,
        });
        Ok(())
    }

    /// `vm_brk_flags`: an anonymous read-write mapping (executable if asked) replacing
    /// whatever was there.
    fn brk(&mut self, what: &What<'_>, addr: u64, end: u64, exec: bool) -> Result<(), LoadError> {
        if end < addr {
            // The kernel's length end - addr wraps to more than TASK_SIZE.
            return Err(unmappable(
                "ENOMEM",
                format!("{what}: its end (p_vaddr + p_memsz, page-aligned) wraps past the top of the address space"),
            ));
        }
        let request = end - addr;
        let len = page_align(request);
        if len < request {
            return Err(unmappable(
                "ENOMEM",
                format!("{what}: length {request:#x} wraps past 2^64"),
            ));
        }
        if len == 0 {
            return Ok(());
        }
        self.check_area(what, addr, len)?;
        self.check_commit(what, len)?;
        self.check_stack(what, addr, len)?;
        let prot = PROT_READ | PROT_WRITE | if exec { PROT_EXEC } else { 0 };
        self.map(Vma {
            start: addr,
            end: addr + len,
            prot,
            shared: false,
            backing: Backing::Anon,
            kind: VmaKind::Anon,
            hugepage: false,
            nohugepage: false,
        });
        Ok(())
    }

    /// Inserts a VMA, unmapping what it replaces (MAP_FIXED). Nothing is populated yet, so
    /// no page is freed; whatever the unmap gathered is released at once.
    fn map(&mut self, vma: Vma) {
        if !self.mm.is_free(vma.start, vma.end) {
            let mut g = Gather::default();
            self.mm.unmap(self.phys, vma.start, vma.end, &mut g);
            for p in g.pages.into_iter().chain(g.tables) {
                self.phys.put(p);
            }
        }
        self.mm.insert(vma);
    }

    /// True when file offset page `page` of the image (its first byte's offset) lies
    /// wholly past the end of the file.
    fn past_eof(&self, off: u64) -> bool {
        off >= page_align(self.image.len() as u64)
    }

    /// `elf_load`: maps one PT_LOAD at `addr` (load bias included).
    fn load_segment(
        &mut self,
        i: usize,
        ph: &Phdr,
        addr: u64,
        total_size: u64,
        noreplace: bool,
    ) -> Result<(), LoadError> {
        let prot = ph.prot();
        let pageoff = page_offset(ph.p_vaddr);
        let zero_start;
        let zero_end;
        if ph.p_filesz != 0 {
            // elf_map: whole pages of the file from the page-aligned offset.
            let what = What("file mapping", i, ph.p_vaddr);
            let size = page_align(ph.p_filesz.wrapping_add(pageoff));
            let off = ph.p_offset.wrapping_sub(pageoff);
            let map_addr = page_start(addr);
            if size != 0 {
                let reserve = if total_size != 0 { total_size } else { size };
                // padzero clears the rest of the last file page of a writable segment
                // with a .bss; otherwise that page shows the file's bytes.
                let zeroed = prot & PROT_WRITE != 0 && ph.p_memsz > ph.p_filesz;
                let visible = if zeroed { ph.p_filesz + pageoff } else { size };
                self.mmap_file(&what, map_addr, reserve, size, off, prot, noreplace, visible)?;
            }
            zero_start = map_addr.wrapping_add(pageoff).wrapping_add(ph.p_filesz);
            zero_end = map_addr.wrapping_add(pageoff).wrapping_add(ph.p_memsz);
            if ph.p_memsz > ph.p_filesz && page_offset(zero_start) != 0 && prot & PROT_WRITE != 0 {
                // padzero: clear_user faults if the page is not mapped or lies past the
                // end of the file (SIGBUS), and the error counts for a writable segment.
                let page = page_start(zero_start);
                let mapped = size != 0 && page >= map_addr && page < map_addr + size;
                let file_page = off.wrapping_add(page.wrapping_sub(map_addr));
                if !mapped || self.past_eof(file_page) {
                    return Err(unmappable(
                        "EFAULT",
                        format!(
                            "PT_LOAD {i} (p_vaddr {:#x}): the end of its file data at {zero_start:#x} cannot be zeroed ({})",
                            ph.p_vaddr,
                            if mapped { "that page is past the end of the file" } else { "that page is not mapped" }
                        ),
                    ));
                }
            }
        } else {
            zero_start = page_start(addr);
            zero_end = zero_start.wrapping_add(pageoff).wrapping_add(ph.p_memsz);
        }
        if ph.p_memsz > ph.p_filesz {
            let what = What(".bss", i, ph.p_vaddr);
            let (start, end) = (page_align(zero_start), page_align(zero_end));
            self.brk(&what, start, end, prot & PROT_EXEC != 0)?;
        }
        // The checks load_elf_binary makes after mapping, so that the brk stays sane.
        let k = ph.p_vaddr;
        if k >= TASK_SIZE
            || ph.p_filesz > ph.p_memsz
            || ph.p_memsz > TASK_SIZE
            || TASK_SIZE - ph.p_memsz < k
        {
            return Err(unmappable(
                "EINVAL",
                format!(
                    "PT_LOAD {i}: p_vaddr {k:#x}, p_filesz {:#x}, p_memsz {:#x}: {}",
                    ph.p_filesz,
                    ph.p_memsz,
                    if ph.p_filesz > ph.p_memsz {
                        "p_filesz is larger than p_memsz"
                    } else {
                        "the segment runs past the top of the user address space"
                    }
                ),
            ));
        }
        Ok(())
    }
}

/// Loads `image` into `mm` and builds the initial stack.
#[allow(clippy::too_many_arguments)]
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
    check_args(argv, envp, execfn)?;
    let eh = Ehdr::parse(&image)?;
    if eh.e_type != ET_EXEC && eh.e_type != ET_DYN {
        return Err(malformed(
            "ENOEXEC",
            format!("e_type {} is not an executable (ET_EXEC 2 or ET_DYN 3)", eh.e_type),
        ));
    }
    if eh.class == 1 || eh.e_machine == EM_386 {
        return Err(LoadError::Unsupported(format!(
            "a 32-bit program (EI_CLASS {}, e_machine {}); emu runs 64-bit x86-64 programs",
            eh.class, eh.e_machine
        )));
    }
    if eh.e_machine != EM_X86_64 {
        return Err(malformed(
            "ENOEXEC",
            format!("e_machine {} is not x86-64 ({EM_X86_64})", eh.e_machine),
        ));
    }
    let phdrs = read_phdrs(&image, &eh)?;
    if let Some(interp) = interpreter(&image, &phdrs)? {
        return Err(LoadError::Unsupported(format!(
            "dynamically linked (has PT_INTERP {interp}); build with -static"
        )));
    }
    let exec_stack = phdrs
        .iter()
        .rev()
        .find(|p| p.p_type == PT_GNU_STACK)
        .is_some_and(|p| p.p_flags & PF_X != 0);

    // The point of no return (begin_new_exec). setup_arg_pages: the stack comes first.
    let stack_prot = PROT_READ | PROT_WRITE | if exec_stack { PROT_EXEC } else { 0 };
    mm.insert(Vma {
        start: STACK_TOP - STACK_LIMIT,
        end: STACK_TOP,
        prot: stack_prot,
        shared: false,
        backing: Backing::Anon,
        kind: VmaKind::Stack,
        hugepage: false,
        nohugepage: false,
    });
    let ram_pages = phys.limit_bytes() / PAGE;
    let mut m = Mapper { mm, phys, image: &image, ram_pages };
    let mut load_bias = 0u64;
    let mut first = true;
    let mut elf_brk = 0u64;
    let mut phdr_addr = 0u64;
    for (i, ph) in phdrs.iter().enumerate().filter(|(_, p)| p.p_type == PT_LOAD) {
        let mut total_size = 0;
        if first && eh.e_type == ET_DYN {
            let alignment = maximum_alignment(&phdrs);
            let mut base = ELF_ET_DYN_BASE;
            if alignment != 0 {
                base &= !(alignment - 1);
            }
            load_bias = page_start(base.wrapping_sub(ph.p_vaddr));
            total_size = total_mapping_size(&phdrs);
            if total_size == 0 {
                return Err(unmappable(
                    "EINVAL",
                    "the PT_LOAD segments span no memory (total mapping size 0)".into(),
                ));
            }
        }
        m.load_segment(i, ph, load_bias.wrapping_add(ph.p_vaddr), total_size, first)?;
        first = false;
        let in_segment = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .is_some_and(|end| ph.p_offset <= eh.e_phoff && eh.e_phoff < end);
        if in_segment {
            phdr_addr = eh.e_phoff - ph.p_offset + ph.p_vaddr;
        }
        // Checked by load_segment: no wrap.
        elf_brk = elf_brk.max(ph.p_vaddr + ph.p_memsz);
    }
    let entry = eh.e_entry.wrapping_add(load_bias);
    if entry >= TASK_SIZE {
        return Err(unmappable(
            "EINVAL",
            format!("the entry point {entry:#x} is outside the user address space"),
        ));
    }
    // Pages of a file mapping past the end of the file: Linux's SIGBUS on touching them.
    let eof = page_align(image.len() as u64);
    for v in m.mm.vmas.values() {
        if let Backing::Image { va, off, .. } = &v.backing {
            if v.kind == VmaKind::Image && off.saturating_add(v.end - va) > eof {
                return Err(LoadError::Unsupported(format!(
                    "the program maps {:#x}..{:#x} from file offsets up to {:#x}, past the end of the \
                     file ({} bytes; truncated?): Linux would deliver SIGBUS when those pages are touched",
                    v.start,
                    v.end,
                    off.saturating_add(v.end - va),
                    image.len()
                )));
            }
        }
    }
    let brk = page_align(elf_brk.wrapping_add(load_bias));
    mm_set_brk(m.mm, brk);
    let phdr = phdr_addr.wrapping_add(load_bias);
    let phnum = u64::from(eh.e_phnum);
    // arch_setup_additional_pages: the vDSO, after the program (a program whose
    // segments took its place goes without, AT_SYSINFO_EHDR absent).
    let vdso = crate::vdso::VDSO_ADDR;
    let vdso = if mm.is_free(vdso, vdso + PAGE) {
        mm.insert(Vma {
            start: vdso,
            end: vdso + PAGE,
            prot: PROT_READ | PROT_EXEC,
            shared: false,
            backing: Backing::Image {
                data: crate::mm::Source::Bytes(crate::vdso::image().into()),
                va: vdso,
                off: 0,
                len: PAGE,
            },
            kind: VmaKind::Vdso,
            hugepage: false,
            nohugepage: false,
        });
        Some(vdso)
    } else {
        None
    };
    let sp = build_stack(mm, phys, argv, envp, execfn, hwcap, rng, phdr, phnum, entry, vdso)?;
    Ok(Loaded { entry, sp })
}

fn mm_set_brk(mm: &mut Mm, brk: u64) {
    mm.brk_start = brk;
    mm.brk = brk;
}

/// The bytes the argument and environment strings, the file name and the pointers to
/// the strings may take (`bprm_stack_limits`): the smaller of 3/4 of _STK_LIM and 1/4 of
/// the stack limit, but at least ARG_MAX.
pub(crate) fn arg_limit() -> u64 {
    (STK_LIM / 4 * 3).min(STACK_LIMIT / 4).max(ARG_MAX)
}

/// `bprm_stack_limits` and `copy_strings`: each string at most MAX_ARG_STRLEN, all of
/// them (the file name `execfn`, copied first, included) with their pointers within
/// [`arg_limit`].
fn check_args(argv: &[Vec<u8>], envp: &[Vec<u8>], execfn: &[u8]) -> Result<(), LoadError> {
    let limit = arg_limit();
    let ptrs = 8 * (argv.len().max(1) as u64 + envp.len() as u64);
    let mut total = ptrs + execfn.len() as u64 + 1;
    for s in argv.iter().chain(envp) {
        if s.len() + 1 > MAX_ARG_STRLEN {
            return Err(LoadError::TooBig(format!(
                "an argument or environment string is {} bytes (at most {MAX_ARG_STRLEN} with its NUL)",
                s.len() + 1
            )));
        }
        total = total.saturating_add(s.len() as u64 + 1);
    }
    if total > limit {
        return Err(LoadError::TooBig(format!(
            "the arguments and environment take {total} bytes with their pointers (at most {limit})"
        )));
    }
    Ok(())
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
    vdso: Option<u64>,
) -> Result<u64, LoadError> {
    // The top 8 bytes stay zero, as Linux's bprm->p starts below an end marker.
    let mut sp = STACK_TOP - 8;
    let push_bytes =
        |mm: &mut Mm, phys: &mut PhysMem, sp: &mut u64, b: &[u8]| -> Result<u64, LoadError> {
            *sp -= b.len() as u64;
            if !mm.poke(phys, *sp, b)? {
                return Err(LoadError::TooBig(
                    "the arguments and environment do not fit the stack".into(),
                ));
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
    let mut auxv: Vec<(u64, u64)> = vec![
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
        // CONFIG_RSEQ: after AT_EXECFD (none here), before AT_NULL.
        (at::RSEQ_FEATURE_SIZE, u64::from(crate::syscall::RSEQ_FEATURE_SIZE)),
        (at::RSEQ_ALIGN, crate::syscall::RSEQ_ALIGN),
        (at::NULL, 0),
    ];
    if let Some(v) = vdso {
        // ARCH_DLINFO puts it first.
        auxv.insert(0, (at::SYSINFO_EHDR, v));
    }
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
        return Err(LoadError::TooBig("the arguments and environment do not fit the stack".into()));
    }
    Ok(sp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A program header: type, flags, offset, vaddr, filesz, memsz, align.
    type Ph = (u32, u32, u64, u64, u64, u64, u64);

    /// A minimal ELF: the header, the program headers right after it, then zeros up to
    /// `len` bytes.
    fn elf(e_type: u16, entry: u64, phdrs: &[Ph], len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len.max(64 + 56 * phdrs.len())];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[6] = 1;
        b[16..18].copy_from_slice(&e_type.to_le_bytes());
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[24..32].copy_from_slice(&entry.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, p) in phdrs.iter().enumerate() {
            let o = 64 + 56 * i;
            b[o..o + 4].copy_from_slice(&p.0.to_le_bytes());
            b[o + 4..o + 8].copy_from_slice(&p.1.to_le_bytes());
            for (k, v) in [p.2, p.3, p.3, p.4, p.5, p.6].iter().enumerate() {
                b[o + 8 + 8 * k..o + 16 + 8 * k].copy_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    const RX: u32 = PF_R | PF_X;
    const RW: u32 = PF_R | PF_W;

    fn try_load(image: Vec<u8>) -> (Result<Loaded, LoadError>, Mm) {
        let mut phys = PhysMem::new(64);
        let mut mm = Mm::new(&mut phys, 1, 1).expect("mm");
        let argv = vec![b"prog".to_vec()];
        let mut rng = SimRng::new(1);
        let r = load(&mut mm, &mut phys, image.into(), &argv, &[], b"prog", 0, &mut rng);
        (r, mm)
    }

    fn errno(r: &Result<Loaded, LoadError>) -> String {
        match r {
            Err(LoadError::Malformed { errno, .. } | LoadError::Unmappable { errno, .. }) => {
                errno.to_string()
            }
            Err(e) => format!("{e}"),
            Ok(_) => "ok".into(),
        }
    }

    /// The image VMAs as (start, end, prot, file-backed).
    fn vmas(mm: &Mm) -> Vec<(u64, u64, u8, bool)> {
        mm.vmas
            .values()
            .filter(|v| v.kind != VmaKind::Stack && v.kind != VmaKind::Vdso)
            .map(|v| (v.start, v.end, v.prot, matches!(v.backing, Backing::Image { .. })))
            .collect()
    }

    #[test]
    fn segments_map_as_elf_load_maps_them() {
        // Text, then data with a .bss two pages long past its file page.
        let img = elf(
            ET_EXEC,
            0x40_1000,
            &[
                (PT_LOAD, RX, 0, 0x40_0000, 0x1800, 0x1800, 0x1000),
                (PT_LOAD, RW, 0x1f00, 0x40_2f00, 0x200, 0x2200, 0x1000),
            ],
            0x2100,
        );
        let (r, mm) = try_load(img);
        let l = r.expect("loads");
        assert_eq!(l.entry, 0x40_1000);
        let rw = PROT_READ | PROT_WRITE;
        assert_eq!(
            vmas(&mm),
            vec![
                (0x40_0000, 0x40_2000, PROT_READ | PROT_EXEC, true),
                (0x40_2000, 0x40_4000, rw, true),
                (0x40_4000, 0x40_6000, rw, false),
            ]
        );
        // The data mapping starts at its page, from the page-aligned offset, and shows the
        // file up to p_filesz (padzero clears the rest of that page).
        let data = mm.find(0x40_2000).map(|v| v.backing.clone());
        let Some(Backing::Image { va, off, len, .. }) = data else { panic!("{data:?}") };
        assert_eq!((va, off, len), (0x40_2000, 0x1000, 0x1100));
        // A read-only segment's last page shows the file's bytes past p_filesz.
        let text = mm.find(0x40_0000).map(|v| v.backing.clone());
        let Some(Backing::Image { len, .. }) = text else { panic!("{text:?}") };
        assert_eq!(len, 0x2000);
        assert_eq!((mm.brk_start, mm.brk), (0x40_6000, 0x40_6000));
    }

    #[test]
    fn later_segments_replace_earlier_ones_and_section_headers_are_never_read() {
        let mut img = elf(
            ET_EXEC,
            0x40_0000,
            &[
                (PT_LOAD, RX, 0, 0x40_0000, 0x3000, 0x3000, 0x1000),
                (PT_LOAD, RX, 0, 0x40_0000, 0x3000, 0x3000, 0x1000),
                (PT_LOAD, RW, 0x1000, 0x40_1000, 0x1000, 0x1000, 0x1000),
            ],
            0x3000,
        );
        // Section headers far past the end of the file, and too many of them.
        img[40..48].copy_from_slice(&(1u64 << 40).to_le_bytes());
        img[58..60].copy_from_slice(&64u16.to_le_bytes());
        img[60..62].copy_from_slice(&0xffffu16.to_le_bytes());
        img[62..64].copy_from_slice(&0xfffeu16.to_le_bytes());
        let (r, mm) = try_load(img);
        assert!(r.is_ok(), "{:?}", r.err());
        let (rx, rw) = (PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE);
        assert_eq!(
            vmas(&mm),
            vec![
                (0x40_0000, 0x40_1000, rx, true),
                (0x40_1000, 0x40_2000, rw, true),
                (0x40_2000, 0x40_3000, rx, true)
            ]
        );
    }

    #[test]
    fn wrapping_and_oversized_segments_fail_as_execve_does() {
        let seg = |vaddr: u64, filesz: u64, memsz: u64| {
            let off = page_offset(vaddr);
            elf(ET_EXEC, 0x40_0000, &[(PT_LOAD, RW, off, vaddr, filesz, memsz, 0x1000)], 0x1000)
        };
        // The .bss end wraps past 2^64: once a host panic (BTreeMap range start > end).
        let (r, _) = try_load(seg(0x40_0fc0, 0x10, 0u64.wrapping_sub(0x40_0fc0 + 5)));
        assert_eq!(errno(&r), "ENOMEM");
        // Past TASK_SIZE, and over the RAM (the overcommit heuristic).
        assert_eq!(errno(&try_load(seg(0x7fff_ffff_0000, 0, 0x10_0000)).0), "ENOMEM");
        assert_eq!(errno(&try_load(seg(0x40_0000, 0x10, 1 << 40)).0), "ENOMEM");
        // p_filesz > p_memsz; p_vaddr past TASK_SIZE; below mmap_min_addr.
        assert_eq!(errno(&try_load(seg(0x40_0000, 0x800, 0x10)).0), "EINVAL");
        assert_eq!(errno(&try_load(seg(0xffff_8000_0000_0000, 0x10, 0x10)).0), "ENOMEM");
        assert_eq!(errno(&try_load(seg(0x1000, 0x10, 0x10)).0), "EPERM");
        // Offset and address not congruent modulo the page size.
        let img = elf(ET_EXEC, 0x40_0000, &[(PT_LOAD, RW, 0x10, 0x40_0000, 8, 8, 0)], 0x1000);
        assert_eq!(errno(&try_load(img).0), "EINVAL");
        // A file size whose page-aligned length wraps: nothing is mapped, and padzero
        // faults on the unmapped page of a writable segment; read-only, the checks after
        // the mapping fail.
        assert_eq!(errno(&try_load(seg(0x40_0000, u64::MAX - 4, u64::MAX)).0), "EFAULT");
        let img = elf(ET_EXEC, 0, &[(PT_LOAD, RX, 0, 0x40_0000, u64::MAX - 4, u64::MAX, 0)], 64);
        assert_eq!(errno(&try_load(img).0), "EINVAL");
        // The first segment over the stack: MAP_FIXED_NOREPLACE's EEXIST.
        assert_eq!(errno(&try_load(seg(STACK_TOP - 0x2000, 0x10, 0x10)).0), "EEXIST");
        // A later one: emu refuses rather than map over its stack.
        let img = elf(
            ET_EXEC,
            0x40_0000,
            &[
                (PT_LOAD, RW, 0, 0x40_0000, 0x10, 0x10, 0x1000),
                (PT_LOAD, RW, 0, STACK_TOP - 0x2000, 0x10, 0x10, 0x1000),
            ],
            0x1000,
        );
        assert!(errno(&try_load(img).0).contains("overlaps the stack"));
    }

    #[test]
    fn header_and_program_header_table_checks_give_enoexec() {
        let good = elf(ET_EXEC, 0x40_0000, &[(PT_LOAD, RX, 0, 0x40_0000, 0x100, 0x100, 0)], 0x100);
        assert_eq!(errno(&try_load(good.clone()).0), "ok");
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            errno(&try_load(b).0)
        };
        assert_eq!(with(&|b| b[0] = b'X'), "ENOEXEC");
        assert_eq!(with(&|b| b[16] = 1), "ENOEXEC"); // ET_REL
        assert_eq!(with(&|b| b[18] = 40), "ENOEXEC"); // EM_ARM
        assert!(with(&|b| b[4] = 1).contains("32-bit"));
        assert_eq!(with(&|b| b[54] = 32), "ENOEXEC"); // e_phentsize
                                                      // No program headers; more than 64 KiB of them (1171); 1170 fit, but these run
                                                      // past the end of the file.
        assert_eq!(with(&|b| b[56] = 0), "ENOEXEC");
        assert_eq!(with(&|b| b[56..58].copy_from_slice(&1171u16.to_le_bytes())), "ENOEXEC");
        assert_eq!(with(&|b| b[56..58].copy_from_slice(&1170u16.to_le_bytes())), "ENOEXEC");
        assert_eq!(with(&|b| b[32..40].copy_from_slice(&u64::MAX.to_le_bytes())), "ENOEXEC");
        assert_eq!(with(&|b| b.truncate(100)), "ENOEXEC");
        // EI_DATA, EI_VERSION and e_version are not checked, as in Linux.
        assert_eq!(with(&|b| (b[5], b[6], b[20]) = (2, 0, 9)), "ok");
        // PT_INTERP: too short, not NUL-terminated, past the end, and a real one.
        let interp = |off: u64, size: u64, text: &[u8]| {
            let mut b = elf(
                ET_EXEC,
                0x40_0000,
                &[
                    (PT_INTERP, PF_R, off, 0, size, size, 1),
                    (PT_LOAD, RX, 0, 0x40_0000, 0x100, 0x100, 0),
                ],
                0x200,
            );
            b[0x180..0x180 + text.len()].copy_from_slice(text);
            errno(&try_load(b).0)
        };
        assert_eq!(interp(0x180, 1, b"\0"), "ENOEXEC");
        assert_eq!(interp(0x180, 4, b"/abc"), "ENOEXEC");
        assert_eq!(interp(0x1f0, 0x20, b""), "EIO");
        assert!(interp(0x180, 5, b"/ld\0").contains("dynamically linked (has PT_INTERP /ld)"));
    }

    #[test]
    fn a_static_pie_is_placed_at_elf_et_dyn_base() {
        let pie =
            |align: u64| elf(ET_DYN, 0x120, &[(PT_LOAD, RX, 0, 0, 0x200, 0x200, align)], 0x200);
        let (r, mm) = try_load(pie(0x1000));
        assert_eq!(r.expect("loads").entry, 0x5555_5555_4120);
        assert_eq!(vmas(&mm)[0].0, 0x5555_5555_4000);
        // A 2 MiB alignment aligns the base down, as the kernel does.
        let (r, _) = try_load(pie(0x20_0000));
        assert_eq!(r.expect("loads").entry, 0x5555_5540_0120);
        // Segments spanning more than the space above the base cannot be reserved.
        let big = elf(
            ET_DYN,
            0,
            &[
                (PT_LOAD, RX, 0, 0, 0x200, 0x200, 0x1000),
                (PT_LOAD, RX, 0, 0x3000_0000_0000, 0x200, 0x200, 0x1000),
            ],
            0x200,
        );
        assert_eq!(errno(&try_load(big).0), "ENOMEM");
    }

    #[test]
    fn no_segments_load_and_the_tables_follow_linux() {
        // No PT_LOAD: execve succeeds (the program faults at its entry).
        let img = elf(ET_EXEC, 0x40_0000, &[(PT_GNU_STACK, RW | PF_X, 0, 0, 0, 0, 16)], 0x100);
        let (r, mm) = try_load(img);
        assert!(r.is_ok(), "{:?}", r.err());
        assert!(vmas(&mm).is_empty());
        // PT_GNU_STACK with PF_X: an executable stack.
        let stack = mm.vmas.values().find(|v| v.kind == VmaKind::Stack).map(|v| v.prot);
        assert_eq!(stack, Some(PROT_READ | PROT_WRITE | PROT_EXEC));
        // An entry point past TASK_SIZE.
        let img = elf(ET_EXEC, 1 << 63, &[(PT_LOAD, RX, 0, 0x40_0000, 0x100, 0x100, 0)], 0x100);
        assert_eq!(errno(&try_load(img).0), "EINVAL");
    }

    #[test]
    fn file_pages_past_the_end_of_the_file_are_refused() {
        // A read-only segment whose second page lies past the end of the file.
        let img = elf(ET_EXEC, 0x40_0000, &[(PT_LOAD, RX, 0, 0x40_0000, 0x1800, 0x1800, 0)], 0x300);
        assert!(errno(&try_load(img).0).contains("past the end of the file"));
        // Within the last page of the file: allowed, the rest reads as zero.
        let img = elf(ET_EXEC, 0x40_0000, &[(PT_LOAD, RX, 0, 0x40_0000, 0xf00, 0xf00, 0)], 0x300);
        let (r, mm) = try_load(img);
        assert!(r.is_ok(), "{:?}", r.err());
        let text = mm.find(0x40_0000).map(|v| v.backing.clone());
        let Some(Backing::Image { len, .. }) = text else { panic!("{text:?}") };
        assert_eq!(len, 0x300);
        // A writable segment whose .bss starts in a page past the end: padzero's EFAULT.
        let img = elf(ET_EXEC, 0x40_0000, &[(PT_LOAD, RW, 0, 0x40_0000, 0x1800, 0x3000, 0)], 0x300);
        assert_eq!(errno(&try_load(img).0), "EFAULT");
    }

    #[test]
    fn oversized_arguments_are_e2big() {
        let img = elf(ET_EXEC, 0x40_0000, &[(PT_LOAD, RX, 0, 0x40_0000, 0x100, 0x100, 0)], 0x100);
        let mut phys = PhysMem::new(64);
        let mut mm = Mm::new(&mut phys, 1, 1).expect("mm");
        let argv = vec![b"prog".to_vec(), vec![b'x'; MAX_ARG_STRLEN]];
        let mut rng = SimRng::new(1);
        let r = load(&mut mm, &mut phys, img.into(), &argv, &[], b"prog", 0, &mut rng);
        assert!(matches!(r, Err(LoadError::TooBig(_))), "{:?}", r.err());
    }
}
