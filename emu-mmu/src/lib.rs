//! `emu-mmu`: guest physical memory, real x86-64 4-level page tables, the hardware page
//! walker, and per-core TLBs tagged by PCID with the architectural invalidation rules.
//! It knows nothing of Linux: the kernel model (in `emu-smp`) builds the page tables and
//! calls the invalidation operations; cores reach memory through [`emu_core::GuestMem`],
//! implemented by [`MemSystem`].

#![allow(clippy::cast_possible_truncation)]

pub mod cache;
pub mod fabric;
mod params;
mod phys;
pub mod psc;
pub mod pte;
mod system;
pub mod tlb;
mod walker;

pub use cache::{CacheGeometry, CacheParams, CacheStats, CoherenceStats};
pub use params::{MemParams, MmuParams};
pub use phys::{OutOfMemory, Pfn, PhysMem, PAGE_SIZE};
pub use psc::{Psc, PscStats};
pub use pte::{Leaf, PageSize, PageTables};
pub use system::{cycles_of, CoreMmu, InvalidationStats, MemSystem, MmuStats, StaleUse};
pub use tlb::{Flush, Replacement, TlbArray, TlbEntry, TlbGeometry};
pub use walker::{table_at, walk, Walk, WalkTrace};
