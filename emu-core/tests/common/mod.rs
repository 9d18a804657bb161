//! Test-only guest memory: a few flat regions at fixed virtual addresses, identity
//! "translated", faulting outside them. No TLB, no caches, no stall accounting.

use emu_core::{Access, GuestMem, PageFault};

/// Flat guest memory made of disjoint regions; virtual address = physical address.
#[derive(Default)]
pub struct FlatMem {
    regions: Vec<(u64, Vec<u8>)>,
}

impl FlatMem {
    /// Adds a region of `bytes` starting at `base`.
    pub fn map(&mut self, base: u64, bytes: Vec<u8>) {
        self.regions.push((base, bytes));
    }

    /// The contents of the region starting at `base`.
    pub fn region(&self, base: u64) -> &[u8] {
        match self.regions.iter().find(|r| r.0 == base) {
            Some(r) => &r.1,
            None => panic!("no region at {base:#x}"),
        }
    }

    /// The `len` bytes at `va`, all inside one region, or the fault an access would raise.
    fn span(&mut self, va: u64, len: usize, access: Access) -> Result<&mut [u8], PageFault> {
        for (base, bytes) in &mut self.regions {
            if va >= *base && va - *base < bytes.len() as u64 {
                let off = (va - *base) as usize;
                if off + len <= bytes.len() {
                    return Ok(&mut bytes[off..off + len]);
                }
                let end = *base + bytes.len() as u64;
                return Err(PageFault { addr: end, access, protection: false });
            }
        }
        Err(PageFault { addr: va, access, protection: false })
    }

    fn read<const N: usize>(&mut self, va: u64) -> Result<[u8; N], PageFault> {
        let s = self.span(va, N, Access::Read)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn write(&mut self, va: u64, v: &[u8]) -> Result<(), PageFault> {
        self.span(va, v.len(), Access::Write)?.copy_from_slice(v);
        Ok(())
    }
}

impl GuestMem for FlatMem {
    fn read_u8(&mut self, va: u64) -> Result<u8, PageFault> {
        Ok(self.read::<1>(va)?[0])
    }
    fn read_u16(&mut self, va: u64) -> Result<u16, PageFault> {
        Ok(u16::from_le_bytes(self.read(va)?))
    }
    fn read_u32(&mut self, va: u64) -> Result<u32, PageFault> {
        Ok(u32::from_le_bytes(self.read(va)?))
    }
    fn read_u64(&mut self, va: u64) -> Result<u64, PageFault> {
        Ok(u64::from_le_bytes(self.read(va)?))
    }
    fn write_u8(&mut self, va: u64, v: u8) -> Result<(), PageFault> {
        self.write(va, &[v])
    }
    fn write_u16(&mut self, va: u64, v: u16) -> Result<(), PageFault> {
        self.write(va, &v.to_le_bytes())
    }
    fn write_u32(&mut self, va: u64, v: u32) -> Result<(), PageFault> {
        self.write(va, &v.to_le_bytes())
    }
    fn write_u64(&mut self, va: u64, v: u64) -> Result<(), PageFault> {
        self.write(va, &v.to_le_bytes())
    }
    fn probe_write(&mut self, va: u64) -> Result<(), PageFault> {
        self.span(va, 1, Access::Write).map(|_| ())
    }
    fn fetch_translate(&mut self, va: u64) -> Result<u64, PageFault> {
        self.span(va, 1, Access::Exec).map(|_| va)
    }
    fn read_code_phys(&mut self, pa: u64, buf: &mut [u8]) -> usize {
        let page_left = (4096 - (pa & 4095)) as usize;
        let mut n = 0;
        while n < buf.len().min(page_left) {
            match self.span(pa + n as u64, 1, Access::Exec) {
                Ok(b) => buf[n] = b[0],
                Err(_) => break,
            }
            n += 1;
        }
        n
    }
    fn mark_code_page(&mut self, _pa: u64) {}
    fn code_invalidations_pending(&self) -> bool {
        false
    }
    fn take_code_invalidations(&mut self, _out: &mut Vec<u64>) {}
    fn take_stall(&mut self) -> u64 {
        0
    }
    fn pending_stall(&self) -> u64 {
        0
    }
}
