//! The seam between a core and memory: the core reaches guest memory only through
//! [`GuestMem`], which `emu-mmu` implements with TLBs, page walks and caches.
//!
//! Every access names a guest *virtual* address; translation, permission checks and
//! timing are the implementor's business. A failed translation is a [`PageFault`] value
//! that the core turns into an architectural #PF at the faulting instruction.

/// Kind of access that caused a translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Data read.
    Read,
    /// Data write.
    Write,
    /// Instruction fetch.
    Exec,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Exec => "exec",
        })
    }
}

/// A failed translation (Intel SDM vol. 3 §4.7: page-fault exceptions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFault {
    /// Faulting linear address (what CR2 would hold).
    pub addr: u64,
    /// What the access was.
    pub access: Access,
    /// True when the page was present but the access was not permitted (error code bit P).
    pub protection: bool,
}

/// Guest memory as seen by one core.
///
/// Multi-byte accesses are little-endian and may be unaligned or cross a page; the
/// implementor must fault before changing anything when any byte is inaccessible.
pub trait GuestMem {
    /// Reads one byte.
    fn read_u8(&mut self, va: u64) -> Result<u8, PageFault>;
    /// Reads two bytes.
    fn read_u16(&mut self, va: u64) -> Result<u16, PageFault>;
    /// Reads four bytes.
    fn read_u32(&mut self, va: u64) -> Result<u32, PageFault>;
    /// Reads eight bytes.
    fn read_u64(&mut self, va: u64) -> Result<u64, PageFault>;
    /// Reads sixteen bytes.
    fn read_u128(&mut self, va: u64) -> Result<u128, PageFault> {
        // Translate both halves before returning either, so a fault leaves nothing done.
        let lo = self.read_u64(va)?;
        let hi = self.read_u64(va.wrapping_add(8))?;
        Ok(u128::from(lo) | (u128::from(hi) << 64))
    }
    /// Writes one byte.
    fn write_u8(&mut self, va: u64, v: u8) -> Result<(), PageFault>;
    /// Writes two bytes.
    fn write_u16(&mut self, va: u64, v: u16) -> Result<(), PageFault>;
    /// Writes four bytes.
    fn write_u32(&mut self, va: u64, v: u32) -> Result<(), PageFault>;
    /// Writes eight bytes.
    fn write_u64(&mut self, va: u64, v: u64) -> Result<(), PageFault>;
    /// Writes sixteen bytes.
    fn write_u128(&mut self, va: u64, v: u128) -> Result<(), PageFault> {
        // Probe the second half first so that a fault there leaves memory unchanged.
        self.probe_write(va.wrapping_add(15))?;
        self.write_u64(va, v as u64)?;
        self.write_u64(va.wrapping_add(8), (v >> 64) as u64)
    }
    /// Checks that a write to `va` would succeed, without writing.
    fn probe_write(&mut self, va: u64) -> Result<(), PageFault>;

    /// Translates an instruction-fetch address through the instruction TLB and returns
    /// the physical address it maps to.
    fn fetch_translate(&mut self, va: u64) -> Result<u64, PageFault>;
    /// Copies code bytes starting at physical address `pa`, never past the end of its
    /// page. Returns how many bytes were copied.
    fn read_code_phys(&mut self, pa: u64, buf: &mut [u8]) -> usize;
    /// Marks the physical page holding `pa` as containing decoded code, so that writes
    /// to it and its release are reported through [`GuestMem::take_code_invalidations`].
    fn mark_code_page(&mut self, pa: u64);
    /// True when code pages were written or released since the last call to
    /// [`GuestMem::take_code_invalidations`]. Cheap; called once per basic block.
    fn code_invalidations_pending(&self) -> bool;
    /// Drains the physical frame numbers whose decoded code must be discarded.
    fn take_code_invalidations(&mut self, out: &mut Vec<u64>);

    /// Drains the stall cycles (fixed point, 1/256 cycle units) that memory accesses
    /// charged since the last call.
    fn take_stall(&mut self) -> u64;
    /// The stall cycles (fixed point) charged since the last [`GuestMem::take_stall`],
    /// without draining them.
    fn pending_stall(&self) -> u64;
    /// Charges the extra cost of a locked read-modify-write at `va` (cache-line
    /// ownership); default: nothing beyond the ordinary accesses.
    fn locked_rmw(&mut self, _va: u64) {}
}
