//! The vDSO (arch/x86/entry/vdso): a small ELF shared object emu builds at startup,
//! maps into every process (`[vdso]` in /proc/self/maps) and names with AT_SYSINFO_EHDR,
//! so that glibc (`setup_vdso`, `dl_vdso_vsym`) and musl (`__vdsosym`) find
//! `__vdso_clock_gettime`, `__vdso_gettimeofday`, `__vdso_time`, `__vdso_getcpu` and
//! `__vdso_clock_getres` (and their unprefixed weak aliases), version LINUX_2.6, as in
//! Linux's vdso.lds.
//!
//! The image is linked at 0 like Linux's: one read-and-execute page holding the ELF
//! header, its program headers (PT_LOAD, PT_DYNAMIC), a SysV hash table (musl reads only
//! DT_HASH), the symbol and string tables, the version tables (DT_VERSYM, DT_VERDEF)
//! and the code. Each function makes the system call it stands for (`mov eax, nr;
//! syscall; ret`): where Linux's vDSO reads the clock from the vvar page without
//! entering the kernel, emu charges a system call, so the time a guest reads is exactly
//! what the system call gives. There is no vvar page.

/// Where the vDSO is mapped: the page below the stack's 8 MiB reservation (Linux puts
/// it near the stack too, at a random place; emu's is fixed).
pub(crate) const VDSO_ADDR: u64 = crate::mm::STACK_TOP - crate::mm::STACK_LIMIT - 0x2000;

/// The functions: name and system call number.
const FUNCS: [(&str, u32); 5] = [
    ("clock_gettime", 228),
    ("gettimeofday", 96),
    ("time", 201),
    ("getcpu", 309),
    ("clock_getres", 229),
];

/// The SONAME.
const SONAME: &str = "linux-vdso.so.1";
/// The version of every symbol.
const VERSION: &str = "LINUX_2.6";

/// The SysV ELF hash (`elf_hash` of the gABI).
pub(crate) fn elf_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// Appends little-endian integers.
struct Buf(Vec<u8>);

impl Buf {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn align(&mut self, a: usize) {
        while !self.0.len().is_multiple_of(a) {
            self.0.push(0);
        }
    }
}

/// The vDSO image (one page).
pub(crate) fn image() -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    const NPHDR: usize = 2;
    // Symbols: the null one, then each function as __vdso_NAME (global) and NAME (weak).
    let mut strtab = vec![0u8];
    let mut add_str = |s: &str| {
        let off = strtab.len() as u32;
        strtab.extend_from_slice(s.as_bytes());
        strtab.push(0);
        off
    };
    let soname_off = add_str(SONAME);
    let version_off = add_str(VERSION);
    let mut syms: Vec<(u32, u8, usize, String)> = Vec::new(); // (name, info, func, name)
    for (i, (name, _)) in FUNCS.iter().enumerate() {
        let full = format!("__vdso_{name}");
        syms.push((add_str(&full), 0x12, i, full)); // STB_GLOBAL, STT_FUNC
        syms.push((add_str(name), 0x22, i, (*name).to_string())); // STB_WEAK, STT_FUNC
    }
    let nsyms = syms.len() + 1;
    // Layout: header, program headers, then the tables, then the code.
    let dynsym_off = (EHDR + NPHDR * PHDR + 7) & !7;
    let dynstr_off = dynsym_off + 24 * nsyms;
    let hash_off = (dynstr_off + strtab.len() + 7) & !7;
    let nbucket = 3usize;
    let hash_len = 4 * (2 + nbucket + nsyms);
    let versym_off = (hash_off + hash_len + 1) & !1;
    let verdef_off = (versym_off + 2 * nsyms + 7) & !7;
    let verdef_len = 2 * 28;
    let dynamic_off = (verdef_off + verdef_len + 15) & !15;
    let ndyn = 10;
    let text_off = (dynamic_off + 16 * ndyn + 15) & !15;
    let func_at = |i: usize| (text_off + 16 * i) as u64;
    let total = text_off + 16 * FUNCS.len();

    let mut b = Buf(Vec::with_capacity(total));
    // ELF header: ELFCLASS64, little-endian, ET_DYN, EM_X86_64.
    b.0.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    b.0.extend_from_slice(&[0; 8]);
    b.u16(3);
    b.u16(62);
    b.u32(1);
    b.u64(func_at(0));
    b.u64(EHDR as u64);
    b.u64(0);
    b.u32(0);
    b.u16(EHDR as u16);
    b.u16(PHDR as u16);
    b.u16(NPHDR as u16);
    b.u16(64);
    b.u16(0);
    b.u16(0);
    // PT_LOAD: the whole image, read and execute.
    for (ty, flags, off, len, align) in
        [(1u32, 5u32, 0usize, total, 0x1000u64), (2, 4, dynamic_off, 16 * ndyn, 8)]
    {
        b.u32(ty);
        b.u32(flags);
        b.u64(off as u64);
        b.u64(off as u64);
        b.u64(off as u64);
        b.u64(len as u64);
        b.u64(len as u64);
        b.u64(align);
    }
    b.align(8);
    assert_eq!(b.0.len(), dynsym_off);
    // .dynsym: st_name, st_info, st_other, st_shndx (any defined section), value, size.
    b.0.extend_from_slice(&[0; 24]);
    for (name, info, f, _) in &syms {
        b.u32(*name);
        b.0.push(*info);
        b.0.push(0);
        b.u16(1);
        b.u64(func_at(*f));
        b.u64(8);
    }
    b.0.extend_from_slice(&strtab);
    b.align(8);
    // .hash: nbucket, nchain, buckets, chains (each bucket's chain in index order).
    let mut buckets = vec![0u32; nbucket];
    let mut chains = vec![0u32; nsyms];
    for (i, (_, _, _, name)) in syms.iter().enumerate().rev() {
        let idx = (i + 1) as u32;
        let h = elf_hash(name.as_bytes()) as usize % nbucket;
        chains[idx as usize] = buckets[h];
        buckets[h] = idx;
    }
    b.u32(nbucket as u32);
    b.u32(nsyms as u32);
    buckets.iter().for_each(|&x| b.u32(x));
    chains.iter().for_each(|&x| b.u32(x));
    b.align(2);
    assert_eq!(b.0.len(), versym_off);
    // .gnu.version: the null symbol is local (0), every other LINUX_2.6 (2).
    b.u16(0);
    for _ in &syms {
        b.u16(2);
    }
    b.align(8);
    assert_eq!(b.0.len(), verdef_off);
    // .gnu.version_d: the base version (the SONAME), then LINUX_2.6.
    for (i, (flags, ndx, name_off, name)) in
        [(1u16, 1u16, soname_off, SONAME), (0, 2, version_off, VERSION)].into_iter().enumerate()
    {
        b.u16(1); // vd_version
        b.u16(flags);
        b.u16(ndx);
        b.u16(1); // vd_cnt
        b.u32(elf_hash(name.as_bytes()));
        b.u32(20); // vd_aux
        b.u32(if i == 0 { 28 } else { 0 }); // vd_next
        b.u32(name_off); // vda_name
        b.u32(0); // vda_next
    }
    b.align(16);
    assert_eq!(b.0.len(), dynamic_off);
    let dynamic: [(u64, u64); 10] = [
        (4, hash_off as u64),             // DT_HASH
        (5, dynstr_off as u64),           // DT_STRTAB
        (6, dynsym_off as u64),           // DT_SYMTAB
        (10, strtab.len() as u64),        // DT_STRSZ
        (11, 24),                         // DT_SYMENT
        (14, u64::from(soname_off)),      // DT_SONAME
        (0x6fff_fff0, versym_off as u64), // DT_VERSYM
        (0x6fff_fffc, verdef_off as u64), // DT_VERDEF
        (0x6fff_fffd, 2),                 // DT_VERDEFNUM
        (0, 0),                           // DT_NULL
    ];
    for (t, v) in dynamic {
        b.u64(t);
        b.u64(v);
    }
    b.align(16);
    assert_eq!(b.0.len(), text_off);
    for (_, nr) in FUNCS {
        // mov eax, nr; syscall; ret; then int3 padding.
        b.0.push(0xb8);
        b.u32(nr);
        b.0.extend_from_slice(&[0x0f, 0x05, 0xc3]);
        b.0.extend_from_slice(&[0xcc; 8]);
    }
    debug_assert!(b.0.len() <= 4096);
    b.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
    }

    fn u64_at(b: &[u8], o: usize) -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(v)
    }

    /// Looks a symbol up as musl's __vdsosym does: DT_HASH's nchain symbols, versions
    /// checked through DT_VERSYM and DT_VERDEF.
    fn lookup(img: &[u8], name: &str, ver: &str) -> Option<u64> {
        let phoff = u64_at(img, 32) as usize;
        let mut dynv = None;
        for i in 0..usize::from(u16::from_le_bytes([img[56], img[57]])) {
            let p = phoff + 56 * i;
            if u32_at(img, p) == 2 {
                dynv = Some(u64_at(img, p + 8) as usize);
            }
        }
        let mut d = dynv?;
        let (mut str_, mut sym, mut hash, mut versym, mut verdef) = (0, 0, 0, 0, 0);
        while u64_at(img, d) != 0 {
            let v = u64_at(img, d + 8) as usize;
            match u64_at(img, d) {
                5 => str_ = v,
                6 => sym = v,
                4 => hash = v,
                0x6fff_fff0 => versym = v,
                0x6fff_fffc => verdef = v,
                _ => {}
            }
            d += 16;
        }
        let cstr = |o: usize| {
            let end = img[o..].iter().position(|&c| c == 0).unwrap_or(0);
            std::str::from_utf8(&img[o..o + end]).unwrap_or("")
        };
        // The hash chain must reach the symbol too (glibc's do_lookup_x).
        let nbucket = u32_at(img, hash) as usize;
        let h = elf_hash(name.as_bytes()) as usize % nbucket;
        let mut i = u32_at(img, hash + 8 + 4 * h) as usize;
        while i != 0 {
            let s = sym + 24 * i;
            if cstr(str_ + u32_at(img, s) as usize) == name {
                let vs = u16::from_le_bytes([img[versym + 2 * i], img[versym + 2 * i + 1]]);
                let mut def = verdef;
                loop {
                    let ndx = u16::from_le_bytes([img[def + 4], img[def + 5]]);
                    let flags = u16::from_le_bytes([img[def + 2], img[def + 3]]);
                    if flags & 1 == 0 && ndx == vs {
                        let aux = def + u32_at(img, def + 12) as usize;
                        if cstr(str_ + u32_at(img, aux) as usize) == ver {
                            return Some(u64_at(img, s + 8));
                        }
                        return None;
                    }
                    let next = u32_at(img, def + 16) as usize;
                    if next == 0 {
                        return None;
                    }
                    def += next;
                }
            }
            i = u32_at(img, hash + 8 + 4 * nbucket + 4 * i) as usize;
        }
        None
    }

    #[test]
    fn the_hash_is_the_gabi_one() {
        // glibc's VDSO_HASH for LINUX_2.6 (sysdeps/unix/sysv/linux/x86_64/dl-vdso... ).
        assert_eq!(elf_hash(b"LINUX_2.6"), 61_765_110);
        assert_eq!(elf_hash(b""), 0);
    }

    #[test]
    fn every_function_is_found_with_its_version_and_makes_its_system_call() {
        let img = image();
        assert!(img.len() <= 4096);
        assert_eq!(&img[..4], b"\x7fELF");
        for (name, nr) in FUNCS {
            for sym in [format!("__vdso_{name}"), name.to_string()] {
                let at = lookup(&img, &sym, "LINUX_2.6").unwrap_or_else(|| panic!("{sym}"));
                let code = &img[at as usize..at as usize + 8];
                assert_eq!(code[0], 0xb8);
                assert_eq!(u32_at(code, 1), nr, "{sym}");
                assert_eq!(&code[5..8], &[0x0f, 0x05, 0xc3]);
            }
            assert_eq!(lookup(&img, &format!("__vdso_{name}"), "LINUX_2.5"), None);
        }
        assert_eq!(lookup(&img, "__vdso_nothing", "LINUX_2.6"), None);
    }
}
