//! The kernel-path costs of the profile are charged where the paths do the work: a
//! guest of a few system calls runs twice, the second time with one cost raised, and
//! its run must take exactly that much longer for each time the work was done (the
//! counts come from the first run's statistics).

use crate::profile::{KernelParams, Profile};
use crate::stats::RunStats;
use crate::RunConfig;

/// A static ELF whose code: mmap(NULL, 8 KiB, RW, private anonymous), writes both pages
/// (two faults), mprotect(first page, PROT_READ) (a split and one PTE rewritten),
/// munmap of both pages (two PTEs zapped, two VMAs removed), exit_group(0).
fn program() -> Vec<u8> {
    let mut code: Vec<u8> = Vec::new();
    let mut put = |b: &[u8]| code.extend_from_slice(b);
    put(&[0xb8, 9, 0, 0, 0]); // mov eax, SYS_mmap
    put(&[0x31, 0xff]); // xor edi, edi
    put(&[0xbe, 0, 0x20, 0, 0]); // mov esi, 0x2000
    put(&[0xba, 3, 0, 0, 0]); // mov edx, PROT_READ | PROT_WRITE
    put(&[0x41, 0xba, 0x22, 0, 0, 0]); // mov r10d, MAP_PRIVATE | MAP_ANONYMOUS
    put(&[0x49, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff]); // mov r8, -1
    put(&[0x45, 0x31, 0xc9]); // xor r9d, r9d
    put(&[0x0f, 0x05]); // syscall
    put(&[0x48, 0x89, 0xc3]); // mov rbx, rax
    put(&[0xc6, 0x03, 0x01]); // mov byte [rbx], 1
    put(&[0xc6, 0x83, 0x00, 0x10, 0x00, 0x00, 0x01]); // mov byte [rbx + 0x1000], 1
    put(&[0x48, 0x89, 0xdf]); // mov rdi, rbx
    put(&[0xbe, 0, 0x10, 0, 0]); // mov esi, 0x1000
    put(&[0xba, 1, 0, 0, 0]); // mov edx, PROT_READ
    put(&[0xb8, 10, 0, 0, 0]); // mov eax, SYS_mprotect
    put(&[0x0f, 0x05]); // syscall
    put(&[0x48, 0x89, 0xdf]); // mov rdi, rbx
    put(&[0xbe, 0, 0x20, 0, 0]); // mov esi, 0x2000
    put(&[0xb8, 11, 0, 0, 0]); // mov eax, SYS_munmap
    put(&[0x0f, 0x05]); // syscall
    put(&[0x31, 0xff]); // xor edi, edi
    put(&[0xb8, 231, 0, 0, 0]); // mov eax, SYS_exit_group
    put(&[0x0f, 0x05]); // syscall
    let base = 0x40_0000u64;
    let entry = base + 64 + 56;
    let len = (64 + 56 + code.len()) as u64;
    let mut b = vec![0u8; 64 + 56];
    b[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&1u16.to_le_bytes());
    let ph = 64;
    b[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    b[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes()); // R | X
    for (k, v) in [0, base, base, len, len, 0x1000].iter().enumerate() {
        b[ph + 8 + 8 * k..ph + 16 + 8 * k].copy_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&code);
    b
}

fn run(profile: Profile) -> RunStats {
    let mut cfg = RunConfig::new(program().into(), "/prog".into(), vec![b"prog".to_vec()], profile);
    cfg.capture_output = true;
    let r = crate::run(&cfg).expect("runs");
    assert!(
        matches!(r.outcome, crate::Outcome::Exited(0)),
        "{:?} {}",
        r.outcome,
        String::from_utf8_lossy(&r.stderr)
    );
    r.stats
}

type Field = fn(&mut KernelParams) -> &mut f64;

#[test]
fn each_kernel_cost_is_charged_once_per_unit_of_work() {
    let base = Profile::load("skylake-sp").expect("profile");
    let s = run(base.clone());
    let w = s.kernel.mm_work;
    let faults = s.kernel.page_faults;
    let syscalls = s.totals.syscalls;
    // What the guest did, and what loading and exit added.
    assert_eq!(syscalls, 4);
    assert!(faults >= 2, "{faults}");
    assert!(w.vma_allocs >= 2 && w.vma_removes >= 2, "{w:?}");
    assert_eq!(w.ptes_changed, 1, "{w:?}");
    assert!(w.ptes_zapped >= 2 && w.tables_allocated >= 1 && w.tables_freed >= 1, "{w:?}");
    let mm_calls = 3; // mmap, mprotect and munmap each look a VMA up once
    let cases: [(&str, Field, u64); 15] = [
        ("syscall", |k| &mut k.syscall_cycles, syscalls),
        ("entry_mitigation", |k| &mut k.entry_mitigation_cycles, syscalls + faults),
        ("fault_entry", |k| &mut k.fault_entry_cycles, faults),
        ("vma_find", |k| &mut k.vma_find_cycles, mm_calls + faults),
        ("vma_alloc", |k| &mut k.vma_alloc_cycles, w.vma_allocs),
        ("vma_remove", |k| &mut k.vma_remove_cycles, w.vma_removes),
        ("pte_zap", |k| &mut k.pte_zap_cycles, w.ptes_zapped),
        ("folio_free", |k| &mut k.folio_free_cycles, w.ptes_zapped),
        ("pte_change", |k| &mut k.pte_change_cycles, w.ptes_changed),
        ("pt_alloc", |k| &mut k.pt_alloc_cycles, w.tables_allocated),
        ("pt_free", |k| &mut k.pt_free_cycles, w.tables_freed),
        ("page_alloc", |k| &mut k.page_alloc_cycles, faults),
        ("page_zero", |k| &mut k.page_zero_cycles, faults + w.tables_allocated),
        ("rmap_add", |k| &mut k.rmap_add_cycles, faults),
        ("lru_add", |k| &mut k.lru_add_cycles, faults),
    ];
    const D: f64 = 1000.0;
    for (name, field, count) in cases {
        let mut p = base.clone();
        *field(&mut p.kernel) += D;
        let t = run(p);
        let grew = t.totals.cycles - s.totals.cycles;
        assert_eq!(grew, count * D as u64, "{name}: {count} times {D} cycles expected");
        assert_eq!(t.kernel.mm_work, w, "raising {name} changed the work done");
    }
    // Nothing forks here: the cost of copying PTEs is not charged.
    let mut p = base;
    p.kernel.pte_copy_cycles += D;
    assert_eq!(run(p).totals.cycles, s.totals.cycles);
}
